//! An htpasswd file, read as nginx reads `auth_basic_user_file`: a line per user,
//! `name:password[:comment]`, `#` lines and blank lines skipped, the first line for a name
//! the one that counts; the password in one of the schemes nginx takes (bcrypt, yescrypt,
//! SHA-crypt, MD5-crypt and Apache's `$apr1$`, `{SHA}`, `{SSHA}`, `{PLAIN}`). A line ringway could not
//! check is refused when the file is loaded, not found out on a request.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use super::md5_crypt::md5_crypt;

/// The users of one file, by name (no `Debug`: it would print `{PLAIN}` passwords).
#[derive(Default)]
pub(crate) struct Users {
    by_name: HashMap<Box<[u8]>, Hash>,
}

/// A stored password.
#[derive(Clone)]
pub(crate) enum Hash {
    /// `{PLAIN}secret` (nginx's own scheme for clear text).
    Plain(Box<[u8]>),
    /// `{SHA}` + base64 of SHA-1(password) (`htpasswd -s`).
    Sha1([u8; 20]),
    /// `{SSHA}` + base64 of SHA-1(password + salt) + salt.
    SaltedSha1 { digest: [u8; 20], salt: Box<[u8]> },
    /// `$apr1$salt$hash` (`htpasswd`'s default, `-m`) or `$1$salt$hash`.
    Md5Crypt {
        magic: &'static [u8],
        salt: Box<[u8]>,
        hash: [u8; 22],
    },
    /// `$5$...` or `$6$...` (SHA-256/512-crypt, `mkpasswd`, `openssl passwd -6`).
    ShaCrypt(Box<str>),
    /// `$2y$`, `$2b$`, `$2a$` (`htpasswd -B`).
    Bcrypt(Box<str>),
    /// `$y$...` (`mkpasswd`'s default on Debian 12 and Ubuntu 22.04).
    Yescrypt(Box<str>),
}

impl Users {
    /// Parses a file's text; `Err` names the line and what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<Users, String> {
        let mut by_name = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |m: &str| format!("line {}: {m}", i + 1);
            let Some((name, rest)) = line.split_once(':') else {
                return Err(at("no ':' between the user's name and the password"));
            };
            if name.is_empty() {
                return Err(at("no user name before the ':'"));
            }
            // As nginx: the password ends at the next ':' (the rest is a comment).
            let stored = rest.split(':').next().unwrap_or_default();
            let hash = Hash::parse(stored).map_err(|m| at(&format!("user {name:?}: {m}")))?;
            by_name.entry(name.as_bytes().into()).or_insert(hash);
        }
        Ok(Users { by_name })
    }

    /// The stored password of `name`.
    pub(crate) fn get(&self, name: &[u8]) -> Option<&Hash> {
        self.by_name.get(name)
    }

    /// How many users there are.
    pub(crate) fn len(&self) -> usize {
        self.by_name.len()
    }
}

impl Hash {
    fn parse(stored: &str) -> Result<Hash, String> {
        if let Some(plain) = stored.strip_prefix("{PLAIN}") {
            return Ok(Hash::Plain(plain.as_bytes().into()));
        }
        if let Some(b64) = stored.strip_prefix("{SHA}") {
            let bytes = decode(b64)?;
            let digest = bytes
                .try_into()
                .map_err(|_| "{SHA}: not a 20-byte SHA-1 digest".to_owned())?;
            return Ok(Hash::Sha1(digest));
        }
        if let Some(b64) = stored.strip_prefix("{SSHA}") {
            let bytes = decode(b64)?;
            let (digest, salt) = bytes
                .split_first_chunk::<20>()
                .ok_or_else(|| "{SSHA}: shorter than a SHA-1 digest".to_owned())?;
            return Ok(Hash::SaltedSha1 {
                digest: *digest,
                salt: salt.into(),
            });
        }
        for magic in ["$apr1$", "$1$"] {
            if let Some(rest) = stored.strip_prefix(magic) {
                let (salt, hash) = rest
                    .split_once('$')
                    .ok_or_else(|| format!("{magic}: no '$' after the salt"))?;
                let hash: [u8; 22] = hash
                    .as_bytes()
                    .try_into()
                    .map_err(|_| format!("{magic}: the hash is not 22 characters"))?;
                let magic: &'static [u8] = if magic == "$1$" { b"$1$" } else { b"$apr1$" };
                return Ok(Hash::Md5Crypt {
                    magic,
                    salt: salt.as_bytes().into(),
                    hash,
                });
            }
        }
        if stored.starts_with("$5$") || stored.starts_with("$6$") {
            // Checked now: a hash that cannot be read would fail every request.
            let Some(probe) = sha_crypt_probe(stored) else {
                return Err(format!(
                    "not a valid SHA-crypt hash ($5$ or $6$, [rounds=N$] with N from {} to \
                     {MAX_SHA_ROUNDS}, a salt, the hash)",
                    sha_crypt::Params::ROUNDS_MIN
                ));
            };
            let readable = {
                use sha_crypt::PasswordVerifier as _;
                // An empty password: right, or wrong; anything else is a hash it cannot read.
                matches!(
                    sha_crypt::ShaCrypt::default().verify_password(b"", probe.as_str()),
                    Ok(()) | Err(sha_crypt::password_hash::Error::PasswordInvalid)
                )
            };
            if !readable {
                return Err("a SHA-crypt hash that cannot be read (its salt or hash)".to_owned());
            }
            return Ok(Hash::ShaCrypt(stored.into()));
        }
        if ["$2y$", "$2b$", "$2a$"]
            .iter()
            .any(|p| stored.starts_with(p))
        {
            let parts = stored
                .parse::<bcrypt::HashParts>()
                .map_err(|e| format!("not a valid bcrypt hash ({e})"))?;
            if parts.get_cost() > MAX_BCRYPT_COST {
                return Err(format!(
                    "bcrypt cost {} is over {MAX_BCRYPT_COST}: each check would hold a thread \
                     for seconds",
                    parts.get_cost()
                ));
            }
            return Ok(Hash::Bcrypt(stored.into()));
        }
        if stored.starts_with("$y$") {
            super::yescrypt::check(stored)?;
            return Ok(Hash::Yescrypt(stored.into()));
        }
        if stored.len() == 13 {
            return Err(
                "a DES crypt hash (`htpasswd -d`): it checks only 8 characters of a \
                        password, and ringway does not take it; hash it again with \
                        `htpasswd -B`"
                    .to_owned(),
            );
        }
        Err(
            "an unknown password scheme (ringway takes $2y$ bcrypt, $y$ yescrypt, $5$/$6$ \
             SHA-crypt, $apr1$/$1$ MD5-crypt, {SHA}, {SSHA}, {PLAIN})"
                .to_owned(),
        )
    }

    /// Whether checking a password against it takes long enough (a thousand rounds of a
    /// digest, or bcrypt's) that it must not run on the event loop.
    pub(crate) fn is_slow(&self) -> bool {
        matches!(
            self,
            Hash::Md5Crypt { .. } | Hash::ShaCrypt(_) | Hash::Bcrypt(_) | Hash::Yescrypt(_)
        )
    }

    /// The longest password checked against it: a longer one is wrong without a check.
    /// SHA-crypt's cost grows with the square of the password's length (a 24 KiB one took
    /// seconds of a checking thread: found by review), and nginx hands these schemes to the
    /// C library's `crypt`, whose libxcrypt (Debian, Ubuntu, Fedora) refuses a passphrase of
    /// 512 bytes or more unchecked. `$apr1$` is nginx's own code, bounded only by its 8 KiB
    /// header line; the digests of `{SHA}`, `{SSHA}` and `{PLAIN}` cost one pass.
    pub(crate) fn longest_password(&self) -> usize {
        match self {
            Hash::Plain(_) | Hash::Sha1(_) | Hash::SaltedSha1 { .. } => usize::MAX,
            Hash::Md5Crypt {
                magic: b"$apr1$", ..
            } => MAX_APR1_PASSWORD,
            Hash::Md5Crypt { .. } | Hash::ShaCrypt(_) | Hash::Bcrypt(_) | Hash::Yescrypt(_) => {
                MAX_CRYPT_PASSWORD
            }
        }
    }

    /// Whether `password` is the stored one (digests compared in constant time).
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        match self {
            Hash::Plain(stored) => bool::from(stored.as_ref().ct_eq(password)),
            Hash::Sha1(digest) => bool::from(Sha1::digest(password).as_slice().ct_eq(digest)),
            Hash::SaltedSha1 { digest, salt } => {
                let mut sha = Sha1::new();
                sha.update(password);
                sha.update(salt);
                bool::from(sha.finalize().as_slice().ct_eq(digest))
            }
            Hash::Md5Crypt { magic, salt, hash } => {
                bool::from(md5_crypt(password, salt, magic).ct_eq(hash))
            }
            Hash::ShaCrypt(stored) => {
                use sha_crypt::PasswordVerifier as _;
                sha_crypt::ShaCrypt::default()
                    .verify_password(password, stored.as_ref())
                    .is_ok()
            }
            Hash::Bcrypt(stored) => bcrypt::verify(password, stored).unwrap_or(false),
            Hash::Yescrypt(stored) => super::yescrypt::verify(password, stored),
        }
    }
}

/// libxcrypt's `CRYPT_MAX_PASSPHRASE_SIZE` less its NUL: the longest password nginx's
/// `crypt` checks.
const MAX_CRYPT_PASSWORD: usize = 511;
/// nginx's default `large_client_header_buffers` line: no longer password reaches its
/// `$apr1$` check.
const MAX_APR1_PASSWORD: usize = 8 * 1024;
/// Most SHA-crypt rounds taken (the default is 5000): each check costs them.
const MAX_SHA_ROUNDS: u32 = 1_000_000;
/// Highest bcrypt cost taken (`htpasswd -B` uses 5; 16 takes seconds a check).
const MAX_BCRYPT_COST: u32 = 16;

/// For `$5$[rounds=N$]salt$hash` (43 characters of hash) or `$6$...` (86), in crypt's
/// alphabet, as glibc and the sha-crypt crate write it, with N within bounds: the same hash
/// at the fewest rounds SHA-crypt takes, whose check reads every field as the check of
/// `stored` would, for a fraction of its cost. The file is read again after each change,
/// and checking each user at its own rounds (up to a million) every time held the request
/// that looked (found by review).
fn sha_crypt_probe(stored: &str) -> Option<String> {
    let mut fields = stored.split('$').skip(1);
    let id = fields.next()?;
    let hash_len = match id {
        "5" => 43,
        "6" => 86,
        _ => return None,
    };
    let mut rest: Vec<&str> = fields.collect();
    if rest.first().is_some_and(|f| f.starts_with("rounds=")) {
        let rounds = rest.remove(0).trim_start_matches("rounds=");
        let bounds = sha_crypt::Params::ROUNDS_MIN..=MAX_SHA_ROUNDS;
        if !rounds.parse::<u32>().is_ok_and(|n| bounds.contains(&n)) {
            return None;
        }
    }
    let crypt64 = |f: &str| {
        f.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    };
    match rest.as_slice() {
        [salt, hash] if salt.len() <= 16 && hash.len() == hash_len && crypt64(hash) => {
            Some(format!(
                "${id}$rounds={}${salt}${hash}",
                sha_crypt::Params::ROUNDS_MIN
            ))
        }
        _ => None,
    }
}

fn decode(b64: &str) -> Result<Vec<u8>, String> {
    STANDARD
        .decode(b64)
        .map_err(|e| format!("not base64 ({e})"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    /// One user per scheme, each with the password "secret", as `openssl passwd` and
    /// libxcrypt's crypt(3) make them (bcrypt: cost 5).
    pub(crate) const FILE: &str = "\
# made by htpasswd and openssl passwd
plain:{PLAIN}secret
sha:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=
ssha:{SSHA}gVK8WC9YyFT1gMsQHTGCgT3sSv5zYWx0
apr1:$apr1$lZL6V/ci$PR6QJXkRFUzdUuaYcwrI//
md5:$1$saltsalt$9xy1btjgzLYfb7hivXtC//
sha256:$5$abcdefgh$gruCpC7VkOTspMQTTSAR8mtlO9Upms.fwqE5y16JVM.
sha512:$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG.
bcrypt:$2y$05$KkHXfcCOE.uQ9hwydT.zb.RhMJ2tNqrkqjVBRMlZ8btZ7/zo.8P7C:a comment

plain:{PLAIN}not-this-one
";

    #[test]
    fn every_scheme_checks_its_password() {
        let users = Users::parse(FILE).unwrap();
        assert_eq!(users.len(), 8);
        for name in [
            "plain", "sha", "ssha", "apr1", "md5", "sha256", "sha512", "bcrypt",
        ] {
            let hash = users.get(name.as_bytes()).unwrap();
            assert!(hash.verify(b"secret"), "{name}: the right password");
            assert!(!hash.verify(b"Secret"), "{name}: a wrong one");
            assert!(!hash.verify(b""), "{name}: none");
        }
        assert!(users.get(b"nobody").is_none());
        assert!(users.get(b"PLAIN").is_none(), "names are case-sensitive");
    }

    #[test]
    fn lines_that_cannot_be_checked_are_refused_with_their_number() {
        for (text, want) in [
            (
                "a:secret\n",
                "line 1: user \"a\": an unknown password scheme",
            ),
            (
                "# x\na:abNANd1rDfiNc\n",
                "line 2: user \"a\": a DES crypt hash",
            ),
            ("a\n", "line 1: no ':'"),
            ("a:{SHA}xyz\n", "line 1: user \"a\": not base64"),
            ("a:{SHA}c2VjcmV0\n", "not a 20-byte SHA-1 digest"),
            ("a:$apr1$salt\n", "no '$' after the salt"),
            ("a:$6$x\n", "not a valid SHA-crypt hash"),
            ("a:$5$salt$short\n", "not a valid SHA-crypt hash"),
            (":{PLAIN}x\n", "line 1: no user name"),
            ("a:$2y$05$short\n", "not a valid bcrypt hash"),
            (
                "a:$2y$31$KkHXfcCOE.uQ9hwydT.zb.RhMJ2tNqrkqjVBRMlZ8btZ7/zo.8P7C\n",
                "bcrypt cost 31",
            ),
            (
                "a:$6$rounds=999999999$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG.\n",
                "not a valid SHA-crypt hash",
            ),
            (
                "a:$5$rounds=999$saltsalt$3Gj9uuf2Mb6gu/7xjkvfLSc2PkSaJgBpqAeTLKSHtQ0\n",
                "not a valid SHA-crypt hash",
            ),
            (
                "a:$6$ab_cd$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG.\n",
                "cannot be read",
            ),
        ] {
            let Err(err) = Users::parse(text) else {
                panic!("{text:?} loaded");
            };
            assert!(err.contains(want), "{text:?} → {err}");
        }
        assert_eq!(Users::parse("").unwrap().len(), 0);
    }

    #[test]
    fn the_slow_schemes_are_the_crypt_ones() {
        let users = Users::parse(FILE).unwrap();
        let slow = |n: &str| users.get(n.as_bytes()).unwrap().is_slow();
        assert!(!slow("plain") && !slow("sha") && !slow("ssha"));
        assert!(slow("apr1") && slow("md5") && slow("sha512") && slow("bcrypt"));
    }
}
