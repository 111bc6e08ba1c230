//! MD5-crypt, the scheme of `$1$` (FreeBSD, glibc) and `$apr1$` (Apache's `htpasswd`,
//! its default), which differ only in the magic string mixed in: 1000 rounds of MD5 over
//! the password and a salt of up to 8 characters.

use md5::{Digest, Md5};

/// crypt(3)'s base-64 alphabet.
const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The 22 characters of the hash of `password` with `salt` (as it follows the magic in the
/// stored value, at most 8 characters used) and `magic` (`$1$` or `$apr1$`).
pub(super) fn md5_crypt(password: &[u8], salt: &[u8], magic: &[u8]) -> [u8; 22] {
    let salt = salt.get(..salt.len().min(8)).unwrap_or(salt);
    let alternate = {
        let mut md = Md5::new();
        md.update(password);
        md.update(salt);
        md.update(password);
        md.finalize()
    };
    let mut md = Md5::new();
    md.update(password);
    md.update(magic);
    md.update(salt);
    for piece in password.chunks(16) {
        md.update(alternate.get(..piece.len()).unwrap_or_default());
    }
    let mut bits = password.len();
    while bits != 0 {
        if bits & 1 == 1 {
            md.update([0u8]);
        } else {
            md.update(password.get(..1).unwrap_or_default());
        }
        bits >>= 1;
    }
    let mut sum = md.finalize();
    for round in 0..1000 {
        let mut md = Md5::new();
        if round & 1 == 1 {
            md.update(password);
        } else {
            md.update(sum);
        }
        if round % 3 != 0 {
            md.update(salt);
        }
        if round % 7 != 0 {
            md.update(password);
        }
        if round & 1 == 1 {
            md.update(sum);
        } else {
            md.update(password);
        }
        sum = md.finalize();
    }
    let mut out = [0u8; 22];
    let groups = [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)];
    for (i, (a, b, c)) in groups.into_iter().enumerate() {
        let value = (u32::from(sum[a]) << 16) | (u32::from(sum[b]) << 8) | u32::from(sum[c]);
        encode(value, &mut out[i * 4..i * 4 + 4]);
    }
    encode(u32::from(sum[11]), &mut out[20..22]);
    out
}

/// `value`'s low 6-bit groups, least significant first, into `out`.
fn encode(mut value: u32, out: &mut [u8]) {
    for c in out {
        *c = ITOA64[(value & 0x3f) as usize];
        value >>= 6;
    }
}

#[cfg(test)]
mod tests {
    use super::md5_crypt;

    /// Vectors from `openssl passwd -apr1 -salt S P` and `openssl passwd -1 -salt S P`.
    #[test]
    fn matches_openssl() {
        let cases = [
            ("password", "lZL6V/ci", "$apr1$", "eIMz/iKDkbtys/uU7LEK00"),
            ("password", "RandSalt", "$apr1$", "PgCXHRrkpSt4cbyC2C6bm/"),
            ("secret", "saltsalt", "$1$", "9xy1btjgzLYfb7hivXtC//"),
            ("", "abc", "$apr1$", "BfqKdn9xFDWJPa3kcp/PH0"),
        ];
        for (password, salt, magic, want) in cases {
            let got = md5_crypt(password.as_bytes(), salt.as_bytes(), magic.as_bytes());
            assert_eq!(std::str::from_utf8(&got).unwrap(), want, "{salt:?}");
        }
    }
}
