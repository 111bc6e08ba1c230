//! PATH_INFO as nginx computes `$uri`: percent-decoded, dot-segments resolved, slashes merged.
//!
//! Matched against nginx 1.22 (`PATH_INFO $document_uri` with the stock uwsgi_params):
//! decoding happens first, so `%2F` becomes a separator and `%2e%2e` a `..` segment; a `..`
//! that would climb above the root, a malformed escape (`%zz`, `%4`), or a decoded NUL is a
//! 400 (BadPath). A trailing `.` or `..` leaves a trailing slash (`/a/b/..` is `/a/`). `\` is
//! an ordinary byte (nginx on Unix). An empty path (absolute-form target without one) is `/`.
//! A path not starting with `/` never reaches here (the request parser refuses such targets,
//! as nginx does); it is BadPath, to be safe.

use super::UwsgiError;
use crate::http::hex_digit;

/// Appends the normalized form of the raw request path `raw` to `out`.
///
/// On error, `out` may hold part of the output: the caller discards the packet.
pub fn normalize_path(raw: &[u8], out: &mut Vec<u8>) -> Result<(), UwsgiError> {
    if raw.is_empty() {
        out.push(b'/');
        return Ok(());
    }
    if raw.first() != Some(&b'/') {
        return Err(UwsgiError::BadPath);
    }
    let base = out.len();
    // Index in `out` just after the last '/', where the current segment starts.
    let mut segment = base;
    let mut i = 0;
    loop {
        let byte = match raw.get(i) {
            None => None,
            Some(b'%') => {
                let hi = raw.get(i + 1).copied().and_then(hex_digit);
                let lo = raw.get(i + 2).copied().and_then(hex_digit);
                i += 3;
                match (hi, lo) {
                    (Some(h), Some(l)) => Some((h << 4) | l),
                    _ => return Err(UwsgiError::BadPath),
                }
            }
            Some(&b) => {
                i += 1;
                Some(b)
            }
        };
        match byte {
            None | Some(b'/') => {
                close_segment(out, base, segment)?;
                if byte.is_none() {
                    return Ok(());
                }
                if out.len() == base || out.last() != Some(&b'/') {
                    out.push(b'/');
                }
                segment = out.len();
            }
            Some(0) => return Err(UwsgiError::BadPath),
            Some(b) => out.push(b),
        }
    }
}

/// Resolves the segment `out[segment..]` if it is `.` or `..`.
fn close_segment(out: &mut Vec<u8>, base: usize, segment: usize) -> Result<(), UwsgiError> {
    match out.get(segment..) {
        Some(b".") => out.truncate(segment),
        Some(b"..") => {
            // out[segment - 1] is the '/' before "..": drop it and the parent segment.
            let slash = segment.checked_sub(1).ok_or(UwsgiError::BadPath)?;
            if slash <= base {
                return Err(UwsgiError::BadPath);
            }
            let parent = out
                .get(base..slash)
                .and_then(|s| s.iter().rposition(|&b| b == b'/'))
                .ok_or(UwsgiError::BadPath)?;
            out.truncate(base + parent + 1);
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<String, UwsgiError> {
        let mut out = b"prefix".to_vec();
        normalize_path(raw.as_bytes(), &mut out)?;
        assert!(out.starts_with(b"prefix"), "existing content kept");
        Ok(String::from_utf8_lossy(&out[6..]).into_owned())
    }

    /// Each case was checked against nginx 1.22 + uWSGI (PATH_INFO) on this project's machine.
    macro_rules! path_cases {
        ($($name:ident: $raw:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let want: Result<&str, UwsgiError> = $want;
                assert_eq!(norm($raw).as_deref().map_err(|e| *e), want, "{:?}", $raw);
            }
        )*};
    }

    path_cases! {
        root: "/" => Ok("/");
        empty_is_root: "" => Ok("/");
        plain: "/a/b" => Ok("/a/b");
        trailing_slash_kept: "/a/b/" => Ok("/a/b/");
        merge_slashes: "//a///b/./c/" => Ok("/a/b/c/");
        encoded_dotdot: "/a/%2e%2e/b" => Ok("/b");
        mixed_case_encoded_dotdot: "/a/.%2E/b" => Ok("/b");
        encoded_slash_is_a_separator: "/a/%2F/b" => Ok("/a/b");
        dotdot_then_encoded_slash: "/a/..%2f" => Ok("/");
        trailing_dotdot: "/a/b/.." => Ok("/a/");
        trailing_dotdot_slash: "/a/b/../" => Ok("/a/");
        dotdot_to_root: "/a/.." => Ok("/");
        trailing_dot: "/a/." => Ok("/a/");
        encoded_dot: "/a/%2e" => Ok("/a/");
        dot_slash: "/a/./" => Ok("/a/");
        dots_in_names: "/a.b/..c/...d/c.." => Ok("/a.b/..c/...d/c..");
        three_dots_is_a_name: "/a/.../b" => Ok("/a/.../b");
        space: "/a%20b" => Ok("/a b");
        plus_untouched: "/a+b" => Ok("/a+b");
        backslash_is_a_byte: "/a\\..\\b" => Ok("/a\\..\\b");
        utf8: "/%C3%A9" => Ok("/é");
        deep_dotdot: "/a/b/c/../../d" => Ok("/a/d");
        dotdot_above_root: "/.." => Err(UwsgiError::BadPath);
        dotdot_above_root_later: "/a/../.." => Err(UwsgiError::BadPath);
        encoded_dotdot_above_root: "/.%2e/" => Err(UwsgiError::BadPath);
        slashes_dont_hide_root: "//..//" => Err(UwsgiError::BadPath);
        bad_escape: "/a%zz/b" => Err(UwsgiError::BadPath);
        short_escape_end: "/a%4" => Err(UwsgiError::BadPath);
        short_escape_mid: "/a%4/b" => Err(UwsgiError::BadPath);
        lone_percent: "/%" => Err(UwsgiError::BadPath);
        nul: "/%00" => Err(UwsgiError::BadPath);
        not_absolute: "a/b" => Err(UwsgiError::BadPath);
        star: "*" => Err(UwsgiError::BadPath);
    }

    #[test]
    fn never_panics_on_any_short_input() {
        let alphabet = b"/.%2eEfF0a\0";
        let mut raw = Vec::new();
        let mut out = Vec::new();
        // Every string of up to 5 bytes over the alphabet.
        let n = alphabet.len();
        for len in 0..=5u32 {
            for mut k in 0..n.pow(len) {
                raw.clear();
                for _ in 0..len {
                    raw.push(alphabet[k % n]);
                    k /= n;
                }
                out.clear();
                if normalize_path(&raw, &mut out).is_ok() {
                    assert_eq!(out.first(), Some(&b'/'), "{raw:?}");
                    assert!(!out.windows(2).any(|w| w == b"//"), "{raw:?} -> {out:?}");
                    assert!(
                        !out.split(|&b| b == b'/').any(|s| s == b".." || s == b"."),
                        "{raw:?} -> {out:?}"
                    );
                }
            }
        }
    }
}
