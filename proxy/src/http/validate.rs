//! The byte-level rules httparse leaves to its caller: Content-Length syntax, token lists,
//! Host syntax, and telling apart the precise reason when httparse refuses a head (httparse
//! answers "bad header name" where RFC 9112 wants ObsFold, SpaceBeforeColon or BareCr).

use super::{HttpError, Span};

/// Largest Content-Length or chunk size accepted: nginx's `off_t` bound, so a length never
/// overflows on either side of the proxy.
pub(crate) const MAX_LENGTH: u64 = i64::MAX as u64;

/// The span `part` covers in `buf`, when `part` is a sub-slice of `buf` (httparse hands out
/// sub-slices; a `&'static ""` it may substitute is not one, hence the `Option`).
pub(crate) fn span_of(buf: &[u8], part: &[u8]) -> Option<Span> {
    let base = buf.as_ptr() as usize;
    let start = (part.as_ptr() as usize).checked_sub(base)?;
    let end = start.checked_add(part.len())?;
    if end > buf.len() {
        return None;
    }
    Some(Span {
        start: u32::try_from(start).ok()?,
        end: u32::try_from(end).ok()?,
    })
}

/// `value` without leading and trailing SP / HTAB (RFC 9110 OWS).
pub(crate) fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    value.get(start..end).unwrap_or_default()
}

/// The non-empty elements of a comma-separated list (RFC 9110 §5.6.1), trimmed.
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// Whether the comma list `value` holds `token` (case-insensitive).
pub(crate) fn list_has(value: &[u8], token: &[u8]) -> bool {
    list_elements(value).any(|e| e.eq_ignore_ascii_case(token))
}

/// A Content-Length value: one or more digits, at most [`MAX_LENGTH`]. Anything else (sign,
/// spaces inside, empty, a list) is `None`.
pub(crate) fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in value {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    (n <= MAX_LENGTH).then_some(n)
}

/// A Host (or an absolute target's authority) a client may send: a name of letters,
/// digits, `-`, `_` and `.` (no `..`), or an IPv6 literal in brackets (a zone after `%25`
/// too), then at most a `:` and up to five digits; no userinfo (`user@host`), which RFC 9110 §7.2 leaves out.
/// Stricter than nginx, which passes any byte but whitespace, controls, `/` and `\`: its
/// `server_name *.example.com` also takes `evil.com?.example.com`, which reaches the app
/// as the host it builds its links with (found by review). Browsers send names in that
/// alphabet (IDNs as punycode).
pub(crate) fn is_valid_host(host: &[u8]) -> bool {
    let (name, port) = match host.first() {
        Some(b'[') => match host.iter().position(|&b| b == b']') {
            Some(end) => {
                let (literal, rest) = host.split_at(end + 1);
                let inside = &literal[1..end];
                // RFC 6874: a zone after `%25` (`[fe80::1%25eth0]`).
                let (address, zone) = match inside.windows(3).position(|w| w == b"%25") {
                    Some(at) => (&inside[..at], Some(&inside[at + 3..])),
                    None => (inside, None),
                };
                let ipv6 = !address.is_empty()
                    && address
                        .iter()
                        .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
                    && zone.is_none_or(|zone| {
                        !zone.is_empty()
                            && zone.iter().all(|&b| {
                                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
                            })
                    });
                if !ipv6 {
                    return false;
                }
                (None, rest)
            }
            None => return false,
        },
        _ => match host.iter().position(|&b| b == b':') {
            Some(colon) => (Some(&host[..colon]), &host[colon..]),
            None => (Some(host), &b""[..]),
        },
    };
    let name_ok = name.is_none_or(|name| {
        !name.is_empty()
            && name
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && !name.windows(2).any(|w| w == b"..")
    });
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    name_ok && port_ok
}

/// The host part of a `host[:port]` authority: the port dropped, IPv6 brackets kept.
pub fn host_without_port(authority: &[u8]) -> &[u8] {
    if authority.first() == Some(&b'[') {
        let close = authority.iter().position(|&b| b == b']');
        return close.and_then(|i| authority.get(..=i)).unwrap_or(authority);
    }
    match authority.iter().position(|&b| b == b':') {
        Some(i) => authority.get(..i).unwrap_or(authority),
        None => authority,
    }
}

/// Whether a request header's name is one ringway passes to an app. As nginx's default
/// `ignore_invalid_headers on`: letters, digits and `-` only (a name such as `X.Foo` or
/// `X~Foo` is a valid token, but no client needs it, and servers and middleware fold such
/// characters into `_`, so it could pose as another header); `_` only when
/// `allow_underscores` (`underscores_in_headers`), since `X_Foo` and `X-Foo` are both
/// HTTP_X_FOO.
pub(crate) fn is_forwardable_name(name: &[u8], allow_underscores: bool) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || (b == b'_' && allow_underscores))
}

/// Whether a request header's `name` is the header `lower` (a lower-case name) as an app
/// would see it: case aside, and `_` standing for `-` (with `allow_underscores`, `X_Real_IP`
/// reaches the app as `HTTP_X_REAL_IP`, or as X-Real-IP to a server that folds `_`, so it
/// must be dropped where X-Real-IP is).
pub(crate) fn names_header(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len()
        && name
            .iter()
            .zip(lower)
            .all(|(&n, &l)| n.to_ascii_lowercase() == l || (n == b'_' && l == b'-'))
}

/// Whether header `name` starts with `lower`, read as [`names_header`] reads a name.
pub(crate) fn names_header_prefix(name: &[u8], lower: &[u8]) -> bool {
    name.get(..lower.len())
        .is_some_and(|start| names_header(start, lower))
}

/// Finds why httparse refused `buf`, scanning the raw lines in order; the first defect found
/// wins. Falls back to BadSyntax.
pub(crate) fn classify_request_error(buf: &[u8]) -> HttpError {
    let mut lines = Lines { buf, pos: 0 };
    // Empty lines before the request line are tolerated (RFC 9112 §2.2).
    let request_line = loop {
        match lines.next() {
            Some((b"", _)) => continue,
            Some((line, complete)) => break (line, complete),
            None => return HttpError::BadSyntax,
        }
    };
    if let Some(err) = classify_request_line(request_line.0, request_line.1) {
        return err;
    }
    if !request_line.1 {
        return HttpError::BadSyntax;
    }
    for (line, complete) in lines {
        if line.is_empty() && complete {
            break;
        }
        if let Some(err) = classify_header_line(line, complete) {
            return err;
        }
    }
    HttpError::BadSyntax
}

fn has_bare_cr(line: &[u8]) -> bool {
    line.contains(&b'\r')
}

fn classify_request_line(line: &[u8], complete: bool) -> Option<HttpError> {
    if has_bare_cr(line) {
        return Some(HttpError::BareCr);
    }
    let mut parts = line.split(|&b| b == b' ');
    let (_method, _target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    // `HTTP/<digits>.<digits>` that is not 1.0 or 1.1: a version we do not speak (505), as
    // opposed to garbage (400).
    if version == b"HTTP/1.0" || version == b"HTTP/1.1" {
        return None;
    }
    let rest = version.strip_prefix(b"HTTP/")?;
    if !complete {
        // httparse refused a prefix such as `HTTP/2.` or `HTTP/12`: a version, just not ours.
        let version_like = rest.first().is_some_and(u8::is_ascii_digit)
            && rest.iter().all(|&b| b.is_ascii_digit() || b == b'.');
        return version_like.then_some(HttpError::UnsupportedVersion);
    }
    let dot = rest.iter().position(|&b| b == b'.')?;
    let (major, minor) = (rest.get(..dot)?, rest.get(dot + 1..)?);
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    (digits(major) && digits(minor)).then_some(HttpError::UnsupportedVersion)
}

fn classify_header_line(line: &[u8], complete: bool) -> Option<HttpError> {
    match line.first() {
        Some(b' ' | b'\t') => return Some(HttpError::ObsFold),
        None => return None,
        _ => {}
    }
    if has_bare_cr(line) {
        return Some(HttpError::BareCr);
    }
    let name_len = line
        .iter()
        .position(|&b| !is_token(b))
        .unwrap_or(line.len());
    let rest = line.get(name_len..).unwrap_or_default();
    if name_len > 0 && matches!(rest.first(), Some(b' ' | b'\t')) {
        let after_ws = trim_ows(rest);
        if after_ws.first() == Some(&b':') || (after_ws.is_empty() && !complete) {
            return Some(HttpError::SpaceBeforeColon);
        }
    }
    None
}

/// Control bytes httparse refuses in a header value but nginx passes on (its parser refuses
/// only NUL, CR and LF there): a client's `User-Agent` holding one is served as nginx serves
/// it, and an app that echoes a client's `%01` into a `Location` is answered as nginx
/// answers it, not with a 502 that strikes the server.
pub(crate) fn is_passed_control(b: u8) -> bool {
    matches!(b, 0x01..=0x08 | 0x0b | 0x0c | 0x0e..=0x1f | 0x7f)
}

/// RFC 9110 tchar.
pub(crate) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Lines of a buffer: each item is the line without its LF (and without the CR before that
/// LF), and whether the line ended (false for the unterminated tail).
struct Lines<'b> {
    buf: &'b [u8],
    pos: usize,
}

impl<'b> Iterator for Lines<'b> {
    type Item = (&'b [u8], bool);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        match rest.iter().position(|&b| b == b'\n') {
            Some(lf) => {
                self.pos += lf + 1;
                let line = rest.get(..lf).unwrap_or_default();
                Some((line.strip_suffix(b"\r").unwrap_or(line), true))
            }
            None => {
                self.pos = self.buf.len();
                // A CR at the very end may still be followed by its LF.
                Some((rest.strip_suffix(b"\r").unwrap_or(rest), false))
            }
        }
    }
}
