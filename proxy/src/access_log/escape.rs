//! Escaping client bytes for a log line: nginx's rule for the combined format, JSON's for
//! the JSON lines. Both work on raw bytes (a request may carry any), append to a reused
//! buffer, and never fail.

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Whether nginx's `ngx_http_log_escape` writes `b` as `\xHH`: `"`, `\`, control bytes,
/// DEL and every byte of 0x80 and above (so a log line is printable ASCII whatever a client
/// sent, and a quoted field cannot be closed from inside).
pub(crate) fn nginx_escapes(b: u8) -> bool {
    !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\'
}

/// Appends `value` escaped as nginx escapes a variable in its default `escape=default`
/// mode, or `-` when there is none (nginx's "not found"). An empty value stays empty, as
/// in nginx (`User-Agent:` with no value logs `""`).
pub(crate) fn push_nginx(out: &mut Vec<u8>, value: Option<&[u8]>) {
    let Some(value) = value else {
        out.push(b'-');
        return;
    };
    push_escaping(out, value, nginx_escapes, |out, b| {
        out.extend_from_slice(&[
            b'\\',
            b'x',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 15)],
        ]);
    });
}

/// Appends `value` as a JSON string, quotes included. Valid UTF-8 goes through as is
/// (escaped where JSON requires: `"`, `\`, control characters, and for safety DEL and the
/// C1 controls U+0080–U+009F, which a terminal may act on: `\u009b` is CSI; found by
/// review); each byte of an invalid UTF-8 sequence becomes `\u00XX`, its value as a code
/// point, so the line stays valid JSON and the byte can still be read back. A `\u00a0`–
/// `\u00ff` escape in ringway's output thus always stands for such a raw byte; a `\u0080`–
/// `\u009f` one for a raw byte or a C1 control.
pub(crate) fn push_json_string(out: &mut Vec<u8>, value: &[u8]) {
    out.push(b'"');
    for chunk in value.utf8_chunks() {
        push_json_text(out, chunk.valid().as_bytes());
        for &b in chunk.invalid() {
            push_unicode_escape(out, b);
        }
    }
    out.push(b'"');
}

/// Appends valid UTF-8 text, escaping what JSON needs escaped (ASCII) and the C1 controls
/// (U+0080–U+009F, two bytes each: `C2 80` to `C2 9F`), never splitting another character.
fn push_json_text(out: &mut Vec<u8>, text: &[u8]) {
    let mut rest = text;
    while !rest.is_empty() {
        let c1 = rest.windows(2).position(|w| w[0] == 0xc2 && w[1] < 0xa0);
        let (plain, after) = match c1 {
            Some(at) => (&rest[..at], Some(rest[at + 1])),
            None => (rest, None),
        };
        push_escaping(out, plain, json_escapes, |out, b| match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => push_unicode_escape(out, b),
        });
        let Some(control) = after else {
            break;
        };
        push_unicode_escape(out, control);
        rest = &rest[plain.len() + 2..];
    }
}

/// Appends `text`, the runs `escapes` passes over as they are, each byte it picks as
/// `escape` writes it.
fn push_escaping(
    out: &mut Vec<u8>,
    text: &[u8],
    escapes: impl Fn(u8) -> bool,
    escape: impl Fn(&mut Vec<u8>, u8),
) {
    let mut rest = text;
    while !rest.is_empty() {
        let plain = rest.iter().position(|&b| escapes(b)).unwrap_or(rest.len());
        out.extend_from_slice(&rest[..plain]);
        let Some(&b) = rest.get(plain) else {
            break;
        };
        escape(out, b);
        rest = &rest[plain + 1..];
    }
}

/// Appends `value` as nginx's `escape=json` writes a variable (`ngx_escape_json`): `"`, `\`
/// and control bytes escaped (`\n`, `\r`, `\t`, `\b`, `\f`, else `\u00XX`), every other
/// byte as it is, quotes not added (the format has them).
pub(crate) fn push_nginx_json(out: &mut Vec<u8>, value: &[u8]) {
    let escapes = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    push_escaping(out, value, escapes, |out, b| match b {
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        // The rest as JSON text escapes them.
        _ => push_json_text(out, &[b]),
    });
}

fn json_escapes(b: u8) -> bool {
    b < 0x20 || b == 0x7f || b == b'"' || b == b'\\'
}

fn push_unicode_escape(out: &mut Vec<u8>, b: u8) {
    out.extend_from_slice(&[
        b'\\',
        b'u',
        b'0',
        b'0',
        HEX[usize::from(b >> 4)],
        HEX[usize::from(b & 15)],
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nginx's `ngx_escape_json`: the two JSON specials and control bytes escaped (upper-case
    /// hex), DEL and bytes from 0x80 up as they are.
    #[test]
    fn escape_json_as_nginx_escapes_it() {
        let mut out = Vec::new();
        push_nginx_json(&mut out, b"a\"b\\c\n\r\t\x08\x0c\x01\x1f\x7f\xff\xc3\xa9");
        assert_eq!(
            out,
            b"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001F\x7f\xff\xc3\xa9"
        );
    }

    fn nginx(value: &[u8]) -> String {
        let mut out = Vec::new();
        push_nginx(&mut out, Some(value));
        String::from_utf8(out).unwrap()
    }

    fn json(value: &[u8]) -> String {
        let mut out = Vec::new();
        push_json_string(&mut out, value);
        String::from_utf8(out).unwrap()
    }

    /// Every byte value, alone and between plain text, against nginx's own table (the
    /// bitmap of `ngx_http_log_escape`: one bit per byte, set for `"`, `\`, below 0x20 and
    /// from 0x7f up), escaped as `\xHH` in upper-case hex; everything else as is.
    #[test]
    fn nginx_escapes_every_byte_as_nginx_does() {
        const NGINX_TABLE: [u32; 8] = [
            0xffff_ffff,
            0x0000_0004,
            0x1000_0000,
            0x8000_0000,
            0xffff_ffff,
            0xffff_ffff,
            0xffff_ffff,
            0xffff_ffff,
        ];
        for b in 0..=255u8 {
            let escaped = NGINX_TABLE[usize::from(b >> 5)] & (1 << (b & 0x1f)) != 0;
            assert_eq!(nginx_escapes(b), escaped, "byte {b:#04x}");
            let want = if escaped {
                format!("\\x{b:02X}")
            } else {
                char::from(b).to_string()
            };
            assert_eq!(nginx(&[b]), want, "byte {b:#04x}");
            assert_eq!(
                nginx(&[b'a', b, b'z']),
                format!("a{want}z"),
                "byte {b:#04x}"
            );
        }
    }

    #[test]
    fn nginx_marks_a_missing_value_and_keeps_an_empty_one() {
        let mut out = Vec::new();
        push_nginx(&mut out, None);
        push_nginx(&mut out, Some(b""));
        push_nginx(&mut out, Some(b"curl/8.0 \"x\" \\ \xc3\xa9"));
        assert_eq!(out, b"-curl/8.0 \\x22x\\x22 \\x5C \\xC3\\xA9");
    }

    /// Every byte value alone (as an invalid sequence from 0x80 up), then as part of valid
    /// UTF-8, must give a JSON string that a JSON parser reads back to what was meant.
    #[test]
    fn json_escapes_every_byte_value() {
        for b in 0..=255u8 {
            let text = json(&[b]);
            let parsed: String = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("byte {b:#04x}: {text} is not JSON: {e}"));
            let want = char::from(b).to_string();
            assert_eq!(parsed, want, "byte {b:#04x} as {text}");
            let raw_allowed = (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\';
            assert_eq!(text.len() == 3, raw_allowed, "byte {b:#04x} as {text}");
        }
        // Valid multi-byte text goes through unescaped, but for the C1 controls a terminal
        // may act on (CSI, U+009B), whose escapes read back as the same characters.
        assert_eq!(json("é中🎉".as_bytes()), "\"é中🎉\"");
        let c1 = "a\u{9b}2J\u{80}\u{9f}\u{a0}é";
        assert_eq!(json(c1.as_bytes()), "\"a\\u009B2J\\u0080\\u009F\u{a0}é\"");
        let parsed: String = serde_json::from_str(&json(c1.as_bytes())).unwrap();
        assert_eq!(parsed, c1);
        // An invalid byte inside valid text: only it is escaped.
        assert_eq!(json(b"a\xffb\xc3\xa9"), "\"a\\u00FFb\u{e9}\"");
        // A truncated sequence: each of its bytes escaped.
        assert_eq!(json(b"\xe4\xb8"), "\"\\u00E4\\u00B8\"");
        assert_eq!(
            json(b"q\"\\\n\r\t\x01\x7f"),
            "\"q\\\"\\\\\\n\\r\\t\\u0001\\u007F\""
        );
    }
}
