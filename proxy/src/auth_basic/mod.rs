//! HTTP Basic authentication on a route, as nginx's `auth_basic` with
//! `auth_basic_user_file`: a request without the right user and password gets 401 with
//! `WWW-Authenticate: Basic realm="..."`, and never reaches the route's app or files.
//!
//! The users are read from their htpasswd file when the configuration is loaded (start and
//! reload), so a line ringway cannot check is refused then (`htpasswd.rs`); and, as nginx
//! reads the file at every request, a changed file is read again: the file is looked at
//! (a `stat`, on the blocking pool) at most once per [`LOOK_EVERY`] by the request that
//! finds the time past, and a new user or password counts from the next request. A file
//! gone lets no one in (403, as nginx), nor does one unreadable or with a line ringway
//! cannot check (500) until it is mended. Checking a
//! password of the crypt schemes costs a thousand digest rounds or bcrypt's (up to tens of
//! milliseconds): it runs on the blocking pool, a few at a time per route, never on the
//! event loop; and the credentials that passed are kept (as a keyed SHA-256 of the user
//! and password) for [`VERIFIED_FOR`], so a browser, which sends them with every request, pays the
//! check about once per that time, not per request.

mod htpasswd;
mod md5_crypt;
mod yescrypt;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
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
/// How often the user file is looked at for a change.
const LOOK_EVERY: Duration = Duration::from_secs(1);

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
    /// The user file changed into one that cannot be used: no one is let in until it is
    /// mended.
    UserFile(UserFile),
    /// The client left while its check waited for a place.
    ClientGone,
    /// The password could not be checked: no thread could be started for its slow hash.
    Unchecked,
}

/// Why the user file cannot be used (nginx's answers: 403 for a file missing, 500 else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserFile {
    /// There is no file at its path.
    Missing,
    /// It cannot be read, or has a line ringway cannot check.
    Broken,
}

/// One route's `auth_basic`.
pub(crate) struct BasicAuth {
    /// `Basic realm="..."`.
    challenge: String,
    /// The htpasswd file.
    file: PathBuf,
    /// Its users as last read, or why the file cannot be used, with the reading's number:
    /// one lock, so that a check takes the users and the number of one reading.
    users: RwLock<Reading>,
    /// The file as last read, and when it is looked at next; held during a look.
    looked: tokio::sync::Mutex<Looked>,
    /// How often the file is looked at ([`LOOK_EVERY`]; tests look every time).
    look_every: Duration,
    /// SHA-256 of the secret and credentials that passed → when they did, and under which
    /// reading of the file.
    verified: Mutex<HashMap<[u8; 32], (Instant, u64)>>,
    /// Random, made when the setting is loaded.
    secret: [u8; 32],
    checking: Arc<Semaphore>,
}

/// What tells one version of the user file from another (as the open-file cache tells a
/// changed file: its identity, size and times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// How long after a change a file is read again at every look: file times come from a
/// clock that ticks every few milliseconds, so a second write of the same size within a tick
/// leaves the stamp as it was.
const SETTLING: Duration = Duration::from_secs(2);

impl Stamp {
    /// Whether the file changed too recently for its stamp to tell a later change.
    fn is_settling(&self) -> bool {
        let changed = UNIX_EPOCH
            + Duration::new(
                self.ctime.0.max(0) as u64,
                self.ctime.1.clamp(0, 999_999_999) as u32,
            );
        // A change time ahead of the clock (the clock was set back since) is settled: a
        // later change gets the clock's time, which differs from it. Taken as settling, the
        // file was read and checked again at every look until the clock caught up (found by
        // review).
        SystemTime::now()
            .duration_since(changed)
            .is_ok_and(|age| age < SETTLING)
    }

    /// The stamp of the file at `path` now; `None` if it cannot be seen.
    fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }
}

/// The user file as last looked at.
struct Looked {
    stamp: Option<Stamp>,
    next: Instant,
    /// The last read failed: read again at every look until one succeeds (a failure may
    /// have been passing: too many open files, a network file system).
    failed: bool,
}

/// The users of the file as last read.
struct Reading {
    /// Counts the readings that changed the users, so that credentials verified under an
    /// older one are not taken as verified.
    number: u64,
    /// SHA-256 of the bytes read (`None`: the read failed), to tell a reading that changed
    /// nothing (a settling file read again).
    digest: Option<[u8; 32]>,
    users: Result<Arc<Users>, UserFile>,
}

/// What a look at the user file found.
enum Look {
    Unchanged,
    /// The file read again: its stamp, whether that is new (else it was still settling),
    /// and its users, or why it cannot be used (and the error, for the log).
    Read {
        stamp: Option<Stamp>,
        new: bool,
        users: Result<(Option<Users>, [u8; 32]), (UserFile, String)>,
    },
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("challenge", &self.challenge)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// The users of the htpasswd file at `file`, and the SHA-256 of its bytes; `Err` says what
/// is wrong.
fn read_users(file: &Path) -> Result<(Users, [u8; 32]), String> {
    let (users, digest) = read_users_unless(file, None)?;
    Ok((users.unwrap_or_default(), digest))
}

/// [`read_users`], with no users (`None`) when the bytes' digest is `known`: the reading in
/// use. Parsing checks each SHA-crypt line at a thousand rounds (half a millisecond each),
/// and a file is read again at every look while it settles: bytes already read are not
/// parsed again (found by review: a big file's every change held the looking request for
/// seconds, two or three times over).
fn read_users_unless(
    file: &Path,
    known: Option<[u8; 32]>,
) -> Result<(Option<Users>, [u8; 32]), String> {
    let at = |e: String| format!("user_file {}: {e}", file.display());
    let bytes = read_small_file(file, MAX_USER_FILE).map_err(at)?;
    let digest = Sha256::digest(&bytes).into();
    if known == Some(digest) {
        return Ok((None, digest));
    }
    let text = String::from_utf8(bytes).map_err(|e| at(format!("not UTF-8 text ({e})")))?;
    Ok((Some(Users::parse(&text).map_err(at)?), digest))
}

/// Looks at the user file: read again if it is not the version `last`, if it changed too
/// recently to tell, or if the last read `failed` (blocking: a `stat`, and maybe a read);
/// bytes whose digest is `known` (the reading in use) are not parsed again.
fn look(file: &Path, last: Option<Stamp>, failed: bool, known: Option<[u8; 32]>) -> Look {
    let stamp = Stamp::of(file);
    let new = stamp != last;
    if !new && !failed && !stamp.is_some_and(|s| s.is_settling()) {
        return Look::Unchanged;
    }
    let users = read_users_unless(file, known).map_err(|err| {
        // As nginx, whose open() of the file fails: a dangling symlink is missing too.
        let missing =
            std::fs::metadata(file).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
        let why = if missing {
            UserFile::Missing
        } else {
            UserFile::Broken
        };
        (why, err)
    });
    Look::Read { stamp, new, users }
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
        // Stamped before the read: a change during it is read again at the first look.
        let stamp = Stamp::of(file);
        let (users, digest) = read_users(file)?;
        BasicAuth::new(realm, file, stamp, users, Some(digest), LOOK_EVERY)
    }

    fn new(
        realm: &str,
        file: &Path,
        stamp: Option<Stamp>,
        users: Users,
        digest: Option<[u8; 32]>,
        look_every: Duration,
    ) -> Result<BasicAuth, String> {
        let mut secret = [0; 32];
        ChaCha20Rng::try_from_os_rng()
            .map_err(|e| format!("no randomness from the kernel for its cache's key: {e}"))?
            .fill_bytes(&mut secret);
        Ok(BasicAuth {
            challenge: format!("Basic realm=\"{realm}\""),
            file: file.to_owned(),
            users: RwLock::new(Reading {
                number: 0,
                digest,
                users: Ok(Arc::new(users)),
            }),
            looked: tokio::sync::Mutex::new(Looked {
                stamp,
                next: Instant::now() + look_every,
                failed: false,
            }),
            look_every,
            verified: Mutex::default(),
            secret,
            checking: Arc::new(Semaphore::new(MAX_CHECKING)),
        })
    }

    /// The users to check against, and which reading of the file they come from: the file
    /// is looked at first if its time has come and no other request is looking (the others
    /// go on with what was read last).
    async fn users(&self) -> (Result<Arc<Users>, UserFile>, u64) {
        if let Ok(mut looked) = self.looked.try_lock()
            && looked.next <= Instant::now()
        {
            let (file, last, failed) = (self.file.clone(), looked.stamp, looked.failed);
            let known = self
                .users
                .read()
                .ok()
                .filter(|now| now.users.is_ok())
                .and_then(|now| now.digest);
            let found = crate::blocking::run((), move |()| look(&file, last, failed, known)).await;
            looked.next = Instant::now() + self.look_every;
            if let Some(Look::Read { stamp, new, users }) = found {
                looked.stamp = stamp;
                looked.failed = users.is_err();
                // An error is said when the file changed or the reads just started failing.
                self.replace_users(users, new || !failed);
            }
        }
        match self.users.read() {
            Ok(now) => (now.users.clone(), now.number),
            Err(_) => (Err(UserFile::Broken), u64::MAX),
        }
    }

    /// Puts a new reading of the file in place, if it changed the users (or, if the file
    /// cannot be used, none; said in the log when `say_error`).
    fn replace_users(
        &self,
        read: Result<(Option<Users>, [u8; 32]), (UserFile, String)>,
        say_error: bool,
    ) {
        let Ok(mut now) = self.users.write() else {
            return;
        };
        match read {
            // The bytes in use, not parsed again: nothing changed.
            Ok((None, _)) => {}
            Ok((Some(users), digest)) => {
                tracing::info!(file = %self.file.display(), users = users.len(), "auth_basic user file read again");
                now.number += 1;
                now.digest = Some(digest);
                now.users = Ok(Arc::new(users));
            }
            Err((why, err)) => {
                if say_error {
                    let status = if why == UserFile::Missing { 403 } else { 500 };
                    tracing::error!(
                        "auth_basic: {err}: no one gets in ({status}) until it is mended"
                    );
                }
                now.number += 1;
                now.digest = None;
                now.users = Err(why);
            }
        }
    }

    /// The 401's `WWW-Authenticate` value.
    pub(crate) fn challenge(&self) -> &str {
        &self.challenge
    }

    /// Whether the request's `Authorization` value names a user of the file with its
    /// password. A slow hash waits for one of the file's four places to check it in; a
    /// client that leaves meanwhile (`gone` resolves) ends that wait, and its check never
    /// runs.
    pub(crate) async fn check(
        &self,
        authorization: Option<&[u8]>,
        gone: impl Future<Output = ()>,
    ) -> Result<(), Denied> {
        let value = authorization.ok_or(Denied::NoCredentials)?;
        let (user, password) = credentials(value).ok_or(Denied::Malformed)?;
        // Keyed by what was decoded, so spellings of one header (the scheme's case, spaces,
        // padding) are one entry; and by a secret of this process, so the kept digests are
        // not an unsalted SHA-256 of each password for whoever reads the memory (a core
        // dump, swap).
        let key: [u8; 32] = {
            let mut sha = Sha256::new();
            sha.update(self.secret);
            sha.update(&user);
            sha.update(b":");
            sha.update(&password);
            sha.finalize().into()
        };
        let (users, reading) = self.users().await;
        let users = users.map_err(Denied::UserFile)?;
        if self
            .verified
            .lock()
            .ok()
            .and_then(|v| v.get(&key).copied())
            .is_some_and(|(at, under)| under == reading && at.elapsed() < VERIFIED_FOR)
        {
            return Ok(());
        }
        let hash = users.get(&user).ok_or(Denied::UnknownUser)?;
        if password.len() > hash.longest_password() {
            return Err(Denied::WrongPassword);
        }
        let right = if hash.is_slow() {
            // Boxed: a request's future stays its size whether or not it ever waits here.
            Box::pin(async {
                let permit = tokio::select! {
                    permit = Arc::clone(&self.checking).acquire_owned() => permit,
                    () = gone => return Err(Denied::ClientGone),
                };
                // Never closed: acquiring fails only if it were, and then nothing passes.
                let Ok(permit) = permit else {
                    return Err(Denied::WrongPassword);
                };
                let (users, user) = (Arc::clone(&users), user.clone());
                crate::blocking::run(permit, move |_permit| {
                    users.get(&user).is_some_and(|hash| hash.verify(&password))
                })
                .await
                .ok_or(Denied::Unchecked)
            })
            .await?
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
            verified.insert(key, (Instant::now(), reading));
        }
        Ok(())
    }
}

/// The user name of a `Basic` Authorization value (nginx's `$remote_user`, for the access
/// log), whoever checks it.
pub(crate) fn basic_user(value: &[u8]) -> Option<Vec<u8>> {
    credentials(value).map(|(user, _)| user)
}

/// nginx's base64 decoder (`ngx_decode_base64`): what follows the first `=` is not read,
/// and the last character's spare bits need not be zero.
const AS_NGINX_DECODES: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// The user and password of a `Basic` Authorization value, as nginx reads it
/// (`ngx_http_auth_basic_user`): the scheme's name in any case, then spaces (not tabs), then
/// base64 up to the first `=`.
fn credentials(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = value.trim_ascii();
    let (scheme, token) = value.split_at_checked(5)?;
    if !scheme.eq_ignore_ascii_case(b"basic") || token.first() != Some(&b' ') {
        return None;
    }
    let spaces = token.iter().take_while(|&&b| b == b' ').count();
    let token = token.get(spaces..).unwrap_or_default();
    let encoded = token.split(|&b| b == b'=').next().unwrap_or_default();
    let decoded = AS_NGINX_DECODES.decode(encoded).ok()?;
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
    use std::future::pending;

    use super::*;

    /// A setting over `users`, with no file behind them.
    fn from_memory(realm: &str, users: Users) -> BasicAuth {
        let nowhere = Path::new("/nonexistent");
        BasicAuth::new(realm, nowhere, None, users, None, LOOK_EVERY).unwrap()
    }

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
        // nginx's decoder stops at the first `=` and takes spare bits in the last character.
        for spelt in [
            &b"Basic YW5uOnM=xyz"[..],
            b"Basic YW5uOnM===",
            b"Basic YW5uOnN",
        ] {
            assert_eq!(
                credentials(spelt),
                Some((b"ann".to_vec(), b"s".to_vec())),
                "{:?}",
                String::from_utf8_lossy(spelt)
            );
        }
        for bad in [
            &b"Bearer YW5uOnM="[..],
            b"Basic \tYW5uOnM=", // nginx skips spaces only
            b"Basic YW5uOnNlY",  // a lone character left over: no byte
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
        let auth = from_memory("Staff only", users);
        assert_eq!(auth.challenge(), "Basic realm=\"Staff only\"");
        tokio_uring::start(async {
            assert_eq!(
                auth.check(None, pending()).await,
                Err(Denied::NoCredentials)
            );
            assert_eq!(
                auth.check(Some(b"Basic !"), pending()).await,
                Err(Denied::Malformed)
            );
            let check = |text: &'static str| {
                let value = basic(text);
                let auth = &auth;
                async move { auth.check(Some(&value), pending()).await }
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

    /// nginx hands these schemes to libxcrypt's `crypt`, which refuses a password of 512
    /// bytes or more: ringway refuses it too, before SHA-crypt's cost (the square of the
    /// password's length) is paid.
    #[test]
    fn a_password_crypt_refuses_is_wrong_without_a_check() {
        use sha_crypt::PasswordHasher as _;
        let stored = |password: &str| {
            sha_crypt::ShaCrypt::default()
                .hash_password_with_salt(password.as_bytes(), b"abcdefgh")
                .unwrap()
                .to_string()
        };
        let (longest, too_long) = ("p".repeat(511), "p".repeat(512));
        let users = Users::parse(&format!(
            "ann:{}\nbob:{}\nplain:{{PLAIN}}{too_long}\n",
            stored(&longest),
            stored(&too_long)
        ))
        .unwrap();
        let auth = from_memory("Staff", users);
        tokio_uring::start(async {
            let check = |text: String| {
                let value = basic(&text);
                let auth = &auth;
                async move { auth.check(Some(&value), pending()).await }
            };
            assert_eq!(check(format!("ann:{longest}")).await, Ok(()));
            assert_eq!(
                check(format!("bob:{too_long}")).await,
                Err(Denied::WrongPassword)
            );
            assert_eq!(
                check(format!("plain:{too_long}")).await,
                Ok(()),
                "a digest of one pass takes any length"
            );
        });
    }

    /// As nginx reads the file at every request: a new password, a new user, a user gone
    /// count from the next look; a file that cannot be used lets no one in until mended.
    #[test]
    fn a_changed_user_file_is_read_again_and_a_broken_one_lets_no_one_in() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("htpasswd");
        std::fs::write(&file, "ann:{PLAIN}old\n").unwrap();
        let (users, digest) = read_users(&file).unwrap();
        let stamp = Stamp::of(&file);
        let auth =
            BasicAuth::new("Staff", &file, stamp, users, Some(digest), Duration::ZERO).unwrap();
        tokio_uring::start(async {
            let check = |text: &'static str| {
                let value = basic(text);
                let auth = &auth;
                async move { auth.check(Some(&value), pending()).await }
            };
            assert_eq!(check("ann:old").await, Ok(()));
            // The same size, within the clock's tick: told apart while the file settles.
            std::fs::write(&file, "ann:{PLAIN}new\n").unwrap();
            assert_eq!(
                check("ann:old").await,
                Err(Denied::WrongPassword),
                "verified under the old file only"
            );
            assert_eq!(check("ann:new").await, Ok(()));
            std::fs::write(&file, "ann:{PLAIN}new\nbob:{PLAIN}b\n").unwrap();
            assert_eq!(check("bob:b").await, Ok(()));
            std::fs::remove_file(&file).unwrap();
            let unusable = |why| Err(Denied::UserFile(why));
            assert_eq!(check("ann:new").await, unusable(UserFile::Missing));
            std::fs::write(&file, "ann:des-is-refused\n").unwrap();
            assert_eq!(check("ann:new").await, unusable(UserFile::Broken));
            std::fs::write(&file, "bob:{PLAIN}b\n").unwrap();
            assert_eq!(check("bob:b").await, Ok(()));
            assert_eq!(check("ann:new").await, Err(Denied::UnknownUser));
            // Read again while settling, the same bytes change nothing: what was verified
            // stays verified.
            let number = |auth: &BasicAuth| auth.users.read().unwrap().number;
            let before = number(&auth);
            assert_eq!(check("bob:b").await, Ok(()));
            assert_eq!(number(&auth), before);
        });
        // Once settled, an unchanged file is not read again.
        let settled = Stamp {
            ctime: (0, 0),
            ..Stamp::of(&file).unwrap()
        };
        assert!(!settled.is_settling());
        assert!(Stamp::of(&file).unwrap().is_settling());
        // Changed "in the future" (the clock was set back since): settled too.
        let ahead = Stamp {
            ctime: (i64::from(u32::MAX), 0),
            ..settled
        };
        assert!(!ahead.is_settling());
        assert!(matches!(
            look(&file, Some(settled), false, None),
            Look::Read { new: true, .. }
        ));
        // Read again while it settles, bytes already in use are not parsed again.
        let (_, digest) = read_users(&file).unwrap();
        let Look::Read { users, .. } = look(&file, Some(settled), false, Some(digest)) else {
            panic!("read again");
        };
        assert!(matches!(users, Ok((None, d)) if d == digest));
        // A file that has not changed for long (the system's own) is not read again, unless
        // the last read failed.
        let old = Path::new("/etc/passwd");
        assert!(matches!(
            look(old, Stamp::of(old), false, None),
            Look::Unchanged
        ));
        assert!(matches!(
            look(old, Stamp::of(old), true, None),
            Look::Read { new: false, .. }
        ));
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
