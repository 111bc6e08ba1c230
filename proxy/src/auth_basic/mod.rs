//! HTTP Basic authentication on a route, as nginx's `auth_basic` with
//! `auth_basic_user_file`: a request without the right user and password gets 401 with
//! `WWW-Authenticate: Basic realm="..."`, and never reaches the route's app or files.
//!
//! The users are read from their htpasswd file when the configuration is loaded (start and
//! reload), so a line ringway cannot check is refused then (`htpasswd.rs`). Checking a
//! password of the crypt schemes costs a thousand digest rounds or bcrypt's (up to tens of
//! milliseconds): it runs on the blocking pool, a few at a time per route, never on the
//! event loop; and the credentials that passed are kept (as a SHA-256 of the header's
//! value) for [`VERIFIED_FOR`], so a browser, which sends them with every request, pays the
//! check about once per that time, not per request.

mod htpasswd;
mod md5_crypt;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::small_file::read_small_file;

pub(crate) use htpasswd::Users;

/// Largest htpasswd file taken (some ten thousand users).
const MAX_USER_FILE: u64 = 1 << 20;
/// How long credentials that passed are taken without a new check.
const VERIFIED_FOR: Duration = Duration::from_secs(300);
/// Most credentials kept per route (past it, the list starts again).
const MAX_VERIFIED: usize = 4096;
/// Slow checks in flight per `auth_basic` setting (a top-level one is shared by the routes
/// that inherit it), across the workers: a flood of wrong passwords for a bcrypt user takes
/// these threads of the blocking pool, not the event loops.
const MAX_CHECKING: usize = 4;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// No Authorization header (a browser's first request, before it asks its user).
    NoCredentials,
    /// An Authorization header that is not `Basic` with base64 of `user:password`.
    Malformed,
    /// A user the file does not list.
    UnknownUser,
    /// A listed user with another password.
    WrongPassword,
}

/// One route's `auth_basic`.
pub(crate) struct BasicAuth {
    /// `Basic realm="..."`.
    challenge: String,
    users: Arc<Users>,
    /// SHA-256 of an Authorization value that passed → when it did.
    verified: Mutex<HashMap<[u8; 32], Instant>>,
    checking: Arc<Semaphore>,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("challenge", &self.challenge)
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// The realm shown to the user, and the users of the htpasswd file at `file`; `Err`
    /// says what is wrong, for the configuration's error.
    pub(crate) fn load(realm: &str, file: &Path) -> Result<BasicAuth, String> {
        if realm.is_empty()
            || realm
                .chars()
                .any(|c| c.is_control() || c == '"' || c == '\\')
        {
            return Err(format!(
                "realm {realm:?}: one line of text, without quotes or backslashes"
            ));
        }
        let at = |e: String| format!("user_file {}: {e}", file.display());
        let bytes = read_small_file(file, MAX_USER_FILE).map_err(at)?;
        let text = String::from_utf8(bytes).map_err(|e| at(format!("not UTF-8 text ({e})")))?;
        let users = Users::parse(&text).map_err(at)?;
        Ok(BasicAuth::new(realm, users))
    }

    fn new(realm: &str, users: Users) -> BasicAuth {
        BasicAuth {
            challenge: format!("Basic realm=\"{realm}\""),
            users: Arc::new(users),
            verified: Mutex::default(),
            checking: Arc::new(Semaphore::new(MAX_CHECKING)),
        }
    }

    /// The 401's `WWW-Authenticate` value.
    pub(crate) fn challenge(&self) -> &str {
        &self.challenge
    }

    /// Whether the request's `Authorization` value names a user of the file with its
    /// password.
    pub(crate) async fn check(&self, authorization: Option<&[u8]>) -> Result<(), Denied> {
        let value = authorization.ok_or(Denied::NoCredentials)?;
        let (user, password) = credentials(value).ok_or(Denied::Malformed)?;
        // Keyed by what was decoded, so spellings of one header (the scheme's case, spaces,
        // padding) are one entry.
        let key: [u8; 32] = {
            let mut sha = Sha256::new();
            sha.update(&user);
            sha.update(b":");
            sha.update(&password);
            sha.finalize().into()
        };
        if self
            .verified
            .lock()
            .ok()
            .and_then(|v| v.get(&key).copied())
            .is_some_and(|at| at.elapsed() < VERIFIED_FOR)
        {
            return Ok(());
        }
        let hash = self.users.get(&user).ok_or(Denied::UnknownUser)?;
        let right = if hash.is_slow() {
            // Never closed: acquiring fails only if it were, and then nothing passes.
            let Ok(permit) = Arc::clone(&self.checking).acquire_owned().await else {
                return Err(Denied::WrongPassword);
            };
            let (users, user) = (Arc::clone(&self.users), user.clone());
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                users.get(&user).is_some_and(|hash| hash.verify(&password))
            })
            .await
            .unwrap_or(false)
        } else {
            hash.verify(&password)
        };
        if !right {
            return Err(Denied::WrongPassword);
        }
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= MAX_VERIFIED {
                verified.clear();
            }
            verified.insert(key, Instant::now());
        }
        Ok(())
    }
}

/// The user name of a `Basic` Authorization value (nginx's `$remote_user`, for the access
/// log), whoever checks it.
pub(crate) fn basic_user(value: &[u8]) -> Option<Vec<u8>> {
    credentials(value).map(|(user, _)| user)
}

/// The user and password of a `Basic` Authorization value (the scheme's name in any case,
/// padding optional, as nginx decodes it).
fn credentials(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = value.trim_ascii();
    let (scheme, token) = value.split_at_checked(5)?;
    if !scheme.eq_ignore_ascii_case(b"basic") || token.first() != Some(&b' ') {
        return None;
    }
    let token = token.trim_ascii();
    let unpadded = token.strip_suffix(b"==").or(token.strip_suffix(b"="));
    let decoded = STANDARD_NO_PAD.decode(unpadded.unwrap_or(token)).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let (user, password) = (decoded.get(..colon)?, decoded.get(colon + 1..)?);
    // nginx refuses an empty name too.
    if user.is_empty() {
        return None;
    }
    Some((user.to_vec(), password.to_vec()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn basic(text: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
        .into_bytes()
    }

    #[test]
    fn credentials_are_read_as_nginx_reads_them() {
        assert_eq!(
            credentials(&basic("ann:se:cret")),
            Some((b"ann".to_vec(), b"se:cret".to_vec())),
            "the password may hold ':'"
        );
        assert_eq!(
            credentials(b"bAsIc   YW5uOnM="),
            Some((b"ann".to_vec(), b"s".to_vec()))
        );
        assert_eq!(
            credentials(b"Basic YW5uOnM"),
            Some((b"ann".to_vec(), b"s".to_vec())),
            "no padding"
        );
        for bad in [
            &b"Bearer YW5uOnM="[..],
            b"Basic",
            b"BasicYW5uOnM=",
            b"Basic !!!",
            b"Basic YW5u",         // "ann": no colon
            b"Basic OnNlY3JldA==", // ":secret": no name
            b"",
        ] {
            assert_eq!(credentials(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_check_takes_the_right_password_only_and_keeps_what_passed() {
        let users = Users::parse(
            "plain:{PLAIN}secret\n\
             apr1:$apr1$lZL6V/ci$PR6QJXkRFUzdUuaYcwrI//\n",
        )
        .unwrap();
        let auth = BasicAuth::new("Staff only", users);
        assert_eq!(auth.challenge(), "Basic realm=\"Staff only\"");
        tokio_uring::start(async {
            assert_eq!(auth.check(None).await, Err(Denied::NoCredentials));
            assert_eq!(auth.check(Some(b"Basic !")).await, Err(Denied::Malformed));
            let check = |text: &'static str| {
                let value = basic(text);
                let auth = &auth;
                async move { auth.check(Some(&value)).await }
            };
            assert_eq!(check("nobody:secret").await, Err(Denied::UnknownUser));
            assert_eq!(check("plain:wrong").await, Err(Denied::WrongPassword));
            assert_eq!(check("apr1:wrong").await, Err(Denied::WrongPassword));
            assert_eq!(check("plain:secret").await, Ok(()));
            assert_eq!(check("apr1:secret").await, Ok(()), "on the blocking pool");
            assert_eq!(auth.verified.lock().unwrap().len(), 2, "both kept");
            assert_eq!(check("apr1:secret").await, Ok(()));
        });
    }

    #[test]
    fn realms_and_files_are_checked_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("htpasswd");
        std::fs::write(&file, "ann:{PLAIN}x\n").unwrap();
        assert!(BasicAuth::load("Staff", &file).is_ok());
        for realm in ["", "a\"b", "a\\b", "a\nb"] {
            assert!(BasicAuth::load(realm, &file).is_err(), "{realm:?}");
        }
        let err = BasicAuth::load("Staff", &dir.path().join("missing")).unwrap_err();
        assert!(err.contains("missing"), "{err}");
        // Nothing can hang or fill the load: a device, a directory, a FIFO.
        let fifo = dir.path().join("fifo");
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        for odd in [Path::new("/dev/zero"), dir.path(), &fifo] {
            let err = BasicAuth::load("Staff", odd).unwrap_err();
            assert!(err.contains("not a regular file"), "{err}");
        }
        std::fs::write(&file, "ann:x\n").unwrap();
        let err = BasicAuth::load("Staff", &file).unwrap_err();
        assert!(err.contains("line 1") && err.contains("htpasswd"), "{err}");
    }
}
