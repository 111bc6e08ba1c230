//! yescrypt (`$y$`), the hash Debian 12, Ubuntu 22.04 and later make by default
//! (`mkpasswd`, `/etc/shadow`), which nginx takes through the system's libcrypt. Checked by
//! the RustCrypto implementation; its cost, which the hash's parameters set (memory above
//! all: 16 MiB a check for Debian's default), is bounded when the file is read.

use yescrypt::PasswordVerifier as _;
use yescrypt::password_hash::Error;

/// Most memory one check may take (128 · r · N · p bytes): Debian's default (`j9T`: N =
/// 4096, r = 32) takes 16 MiB; four checks run at once per `auth_basic` file.
const MAX_BYTES: u64 = 64 << 20;

/// Highest time factor `t` taken (libcrypt writes 0).
const MAX_T: u32 = 4;

/// Checks that `stored` (`$y$PARAMS$SALT$HASH`) can be checked, within the bounds; `Err`
/// says why not.
pub(super) fn check(stored: &str) -> Result<(), String> {
    let mut fields = stored.split('$');
    let (Some(""), Some("y"), Some(params), Some(salt), Some(hash), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err("not a yescrypt hash ($y$, the parameters, a salt, the hash)".to_owned());
    };
    let unreadable = || format!("yescrypt parameters {params:?} that cannot be read");
    params
        .parse::<yescrypt::Params>()
        .map_err(|_| unreadable())?;
    let cost = Cost::decode(params.as_bytes()).ok_or_else(unreadable)?;
    if cost.bytes().is_none_or(|b| b > MAX_BYTES) || cost.t > MAX_T {
        return Err(format!(
            "yescrypt parameters {params:?} (N = 2^{}, r = {}, p = {}, t = {}) are over \
             {} MiB or t = {MAX_T} a check: each check would hold that much",
            cost.n_log2,
            cost.r,
            cost.p,
            cost.t,
            MAX_BYTES >> 20
        ));
    }
    // The salt and hash as the check reads them, at the lowest cost: the file is read again
    // after each change, and a check at the hash's own cost per user each time would hold
    // the request that looked.
    let cheap =
        yescrypt::Params::new(yescrypt::Mode::default(), 16, 8, 1).map_err(|_| unreadable())?;
    let probe = format!("$y${cheap}${salt}${hash}");
    match yescrypt::Yescrypt::default().verify_password(b"", probe.as_str()) {
        Ok(()) | Err(Error::PasswordInvalid) => Ok(()),
        Err(_) => Err("a yescrypt hash that cannot be read (its salt or hash)".to_owned()),
    }
}

/// Whether `password` is the one `stored` (which [`check`] passed) was made from.
pub(super) fn verify(password: &[u8], stored: &str) -> bool {
    yescrypt::Yescrypt::default()
        .verify_password(password, stored)
        .is_ok()
}

/// What a check of a hash costs, from its parameters.
#[derive(Debug, PartialEq, Eq)]
struct Cost {
    n_log2: u32,
    r: u32,
    p: u32,
    t: u32,
}

impl Cost {
    /// The parameters' numbers, as yescrypt's reference code encodes them: the flags,
    /// log2(N), r, then, if more follows, which of p, t, g and NROM do and their values.
    fn decode(params: &[u8]) -> Option<Cost> {
        let mut at = 0;
        let mut next = |min: u32| decode64_uint32(params, &mut at, min);
        let _flags = next(0)?;
        let n_log2 = next(1)?;
        let r = next(1)?;
        let (mut p, mut t) = (1, 0);
        if at < params.len() {
            let have = decode64_uint32(params, &mut at, 1)?;
            if have & 1 != 0 {
                p = decode64_uint32(params, &mut at, 2)?;
            }
            if have & 2 != 0 {
                t = decode64_uint32(params, &mut at, 1)?;
            }
        }
        Some(Cost { n_log2, r, p, t })
    }

    /// 128 · r · N · p, if it is a number of bytes at all.
    fn bytes(&self) -> Option<u64> {
        let n = 1u64.checked_shl(self.n_log2)?;
        128u64
            .checked_mul(u64::from(self.r))?
            .checked_mul(n)?
            .checked_mul(u64::from(self.p))
    }
}

/// Reads one number at `at` in yescrypt's variable-width encoding (a first character that
/// says how many follow, in crypt's base-64 alphabet), at least `min`; moves `at` past it.
fn decode64_uint32(src: &[u8], at: &mut usize, min: u32) -> Option<u32> {
    let digit = |c: u8| {
        b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
            .iter()
            .position(|&a| a == c)
            .and_then(|d| u32::try_from(d).ok())
    };
    let first = digit(*src.get(*at)?)?;
    *at += 1;
    let (mut start, mut end, mut chars, mut bits) = (0u32, 47u32, 1u32, 0u32);
    let mut value = min;
    while first > end {
        value = value.checked_add((end + 1 - start).checked_shl(bits)?)?;
        start = end + 1;
        end = start + (62 - end) / 2;
        chars += 1;
        bits += 6;
    }
    value = value.checked_add((first - start).checked_shl(bits)?)?;
    while chars > 1 {
        chars -= 1;
        bits = bits.checked_sub(6)?;
        let c = digit(*src.get(*at)?)?;
        *at += 1;
        value = value.checked_add(c.checked_shl(bits)?)?;
    }
    Some(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    /// Made by the system's libcrypt (libxcrypt, as nginx on Debian uses it), with
    /// Python's `crypt.crypt(password, "$y$j9T$abcdefghijklmnop")`.
    const SECRET: &str = "$y$j9T$abcdefghijklmnop$3dL1LkYnZM.OVXuVdnnaKVDlLYT92dRwOzDZ5XiVCe.";
    const ODD: &str = "$y$j9T$Zm9vYmFyYmF6cXV4$.lhBNupVsm/FWK.x.0zpLabnYUYOS78XwZgcmwzSxwB";

    #[test]
    fn hashes_libcrypt_made_verify() {
        assert_eq!(check(SECRET), Ok(()));
        assert!(verify(b"secret", SECRET));
        assert!(!verify(b"secreT", SECRET));
        assert!(!verify(b"", SECRET));
        assert_eq!(check(ODD), Ok(()));
        assert!(verify("pa:ss wörd".as_bytes(), ODD));
        assert!(!verify(b"secret", ODD));
    }

    #[test]
    fn debians_default_parameters_cost_16_mib() {
        let cost = Cost::decode(b"j9T").unwrap();
        assert_eq!(
            cost,
            Cost {
                n_log2: 12,
                r: 32,
                p: 1,
                t: 0
            }
        );
        assert_eq!(cost.bytes(), Some(16 << 20));
    }

    #[test]
    fn costly_or_unreadable_hashes_are_refused() {
        for (stored, want) in [
            // N = 32768: 128 MiB a check (libcrypt made it).
            (
                "$y$jCT$saltsaltsalt$GlKXaKEhlHDgK6dgXwI1zmMcBuzC5zGdBKA2yjXpMk1",
                "over 64 MiB",
            ),
            // N = 2^63.
            (
                "$y$jzT$salt$GlKXaKEhlHDgK6dgXwI1zmMcBuzC5zGdBKA2yjXpMk1",
                "cannot be read",
            ),
            ("$y$j9T$abcdefghijklmnop", "not a yescrypt hash"),
            ("$y$j9T$a$b$c", "not a yescrypt hash"),
            ("$y$$salt$hash", "cannot be read"),
            ("$y$j9T$abc$not*base64", "cannot be read"),
            (
                "$y$j9T$ab_c$3dL1LkYnZM.OVXuVdnnaKVDlLYT92dRwOzDZ5XiVCe.",
                "cannot be read",
            ),
        ] {
            let err = check(stored).unwrap_err();
            assert!(err.contains(want), "{stored}: {err}");
        }
    }
}
