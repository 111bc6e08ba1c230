//! Request heads: httparse for the syntax, then the RFC 9112 rules httparse leaves out.
//!
//! This module owns the decision "is this a request head ringway will forward, and how is
//! its body framed". It checks, in this order: size limits (414 for the request line, 431 for
//! the head), syntax (httparse, with the precise reason recovered by `validate.rs`),
//! the request target (origin-form or absolute-form only, like nginx), Host, and body
//! framing (RFC 9112 §6). It does not look at the path's meaning (see
//! [`crate::uwsgi::normalize_path`]) nor read bodies (see [`super::ChunkedDecoder`]).

use std::mem::MaybeUninit;

use super::invalid_names::{Names, first_bad_name_has_a_visible_char, only_invalid_names_dropped};
use super::validate::{
    classify_request_error, is_passed_control, is_valid_host, list_has, parse_length, span_of,
    trim_ows,
};
use super::{BodyFraming, HeaderSpan, HttpError, Span, Status, Version};

/// Limits applied while parsing a request head.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest request line, in bytes, not counting its line ending (414 beyond).
    pub max_request_line: usize,
    /// Largest head (request line + headers + blank line, and any empty lines before the
    /// request line), in bytes (431 beyond).
    pub max_head: usize,
    /// Most header lines (431 beyond); values over 128 act as 128.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8192,
            max_head: 16 * 1024,
            max_headers: 100,
        }
    }
}

/// Request methods ringway forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// PATCH
    Patch,
    /// OPTIONS
    Options,
    /// CONNECT
    Connect,
    /// TRACE
    Trace,
    /// Any other token method (kept as a span of the buffer).
    Other,
}

/// A parsed, validated request head. All spans point into the parsed buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead {
    /// Bytes of the head, including the final blank line: the body starts here.
    pub head_len: usize,
    /// Method.
    pub method: Method,
    /// Method as sent.
    pub method_span: Span,
    /// Request target as sent (origin-form, absolute-form, `*`).
    pub target: Span,
    /// Path part of the target (before `?` or `#`), raw; for absolute-form, the path after the
    /// authority (empty when there is none: the consumer treats that as `/`).
    pub path: Span,
    /// Query part (after `?`, without it, up to any `#`); empty if none.
    pub query: Span,
    /// Version.
    pub version: Version,
    /// Host: the Host header's value, or the authority of an absolute-form target.
    pub host: Option<Span>,
    /// Body framing decided from Content-Length / Transfer-Encoding.
    pub body: BodyFraming,
    /// Whether the connection may stay open after this request (version default and Connection).
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
}

/// httparse needs a stack array of header slots; more than this is never useful (nginx's
/// default large_client_header_buffers fit far fewer) and keeps the stack frame bounded.
const MAX_HEADER_SLOTS: usize = 128;

impl Method {
    /// The method for a token as sent (methods are case-sensitive, RFC 9110 §9.1).
    pub fn from_token(token: &[u8]) -> Method {
        match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"PATCH" => Method::Patch,
            b"OPTIONS" => Method::Options,
            b"CONNECT" => Method::Connect,
            b"TRACE" => Method::Trace,
            _ => Method::Other,
        }
    }
}

/// Parses and validates a request head at the start of `buf`.
///
/// `headers` is cleared and filled with one entry per header line, in order; the caller keeps
/// it across requests so no allocation happens in steady state.
///
/// Empty lines before the request line are skipped (RFC 9112 §2.2) and count in `head_len`.
/// The request line's length is measured without its line ending. `Content-Length: 0` gives
/// `BodyFraming::Length(0)`; no Content-Length and no Transfer-Encoding gives `None`.
///
/// A request line ending in a higher HTTP/1 minor version (`HTTP/1.2` to `HTTP/1.9`) is
/// served as HTTP/1.1, as RFC 9112 §2.3 asks: those bytes of `buf` are rewritten to `1.1`, the
/// only change ever made to `buf`. While such a line has not ended yet, the head is `Partial`:
/// the verdict never depends on where the reads cut the bytes.
pub fn parse_request(
    buf: &mut [u8],
    limits: &Limits,
    headers: &mut Vec<HeaderSpan>,
) -> Result<Status<RequestHead>, HttpError> {
    match parse_head(buf, limits, headers) {
        Err(HttpError::UnsupportedVersion) => match serve_as_http11(buf) {
            HigherMinor::Rewritten => parse_head(buf, limits, headers),
            // httparse refuses `HTTP/1.2` as soon as it sees the digit; whether the line
            // ends there (served) or goes on (`HTTP/1.23`, refused) is in bytes not read yet.
            HigherMinor::LineNotEnded if buf.len() <= limits.max_head => Ok(Status::Partial),
            HigherMinor::LineNotEnded => Err(HttpError::HeadersTooLarge),
            HigherMinor::No => Err(HttpError::UnsupportedVersion),
        },
        result => result,
    }
}

/// What [`serve_as_http11`] found at the end of the request line.
enum HigherMinor {
    /// `HTTP/1.x` (x from 2 to 9) ends the request line: rewritten to `HTTP/1.1`.
    Rewritten,
    /// The buffer ends in `HTTP/1.x` (and maybe a CR) before the request line does.
    LineNotEnded,
    /// Anything else.
    No,
}

/// Rewrites a request line's `HTTP/1.x` (x from 2 to 9) to `HTTP/1.1`.
fn serve_as_http11(buf: &mut [u8]) -> HigherMinor {
    let lead = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let (line_end, ended) = match buf.iter().skip(lead).position(|&b| b == b'\n') {
        Some(lf) => (lead + lf, true),
        None => (buf.len(), false),
    };
    let line_end = if line_end > 0 && buf.get(line_end - 1) == Some(&b'\r') {
        line_end - 1
    } else {
        line_end
    };
    let Some(version) = line_end
        .checked_sub(8)
        .and_then(|start| buf.get_mut(start..line_end))
    else {
        return HigherMinor::No;
    };
    match version {
        [
            b'H',
            b'T',
            b'T',
            b'P',
            b'/',
            b'1',
            b'.',
            minor @ b'2'..=b'9',
        ] => {
            if !ended {
                return HigherMinor::LineNotEnded;
            }
            *minor = b'1';
            HigherMinor::Rewritten
        }
        _ => HigherMinor::No,
    }
}

fn parse_head(
    buf: &[u8],
    limits: &Limits,
    headers: &mut Vec<HeaderSpan>,
) -> Result<Status<RequestHead>, HttpError> {
    parse_head_with(buf, limits, headers, Names::Strict)
}

fn parse_head_with(
    buf: &[u8],
    limits: &Limits,
    headers: &mut Vec<HeaderSpan>,
    names: Names,
) -> Result<Status<RequestHead>, HttpError> {
    headers.clear();
    check_request_line_length(buf, limits.max_request_line)?;

    // Parsing at most max_head bytes bounds the work per call, and a head that does not end
    // inside that window is too large whatever follows.
    let window = buf.get(..limits.max_head).unwrap_or(buf);
    // Uninitialised slots: httparse fills the ones it uses, and zeroing 128 of them (4 KiB)
    // on every parse would cost more than the parse.
    let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADER_SLOTS];
    let slots = slots
        .get_mut(..limits.max_headers.min(MAX_HEADER_SLOTS))
        .unwrap_or_default();
    let mut req = httparse::Request::new(&mut []);
    let mut config = httparse::ParserConfig::default();
    config.ignore_invalid_headers_in_requests(names == Names::DropInvalid);
    let head_len = match config.parse_request_with_uninit_headers(&mut req, window, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head => {
            return Err(HttpError::HeadersTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(Status::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
        Err(err) if names == Names::Strict => return parse_as_nginx(err, buf, limits, headers),
        Err(_) => return Err(classify_request_error(window)),
    };
    // httparse's lenient mode also skips lines nginx refuses (a space before the colon, a
    // folded line, a bad value): those still get their 400.
    if names == Names::DropInvalid && !only_invalid_names_dropped(&window[..head_len], req.headers)
    {
        return Err(classify_request_error(window));
    }

    let method_bytes = req.method.unwrap_or_default().as_bytes();
    // As nginx: a method is upper case. `trace` would pass the TRACE refusal and reach an app
    // that reads it as TRACE; `head` would be framed as a GET by ringway and as a HEAD there.
    if !method_bytes
        .iter()
        .all(|&b| b.is_ascii_uppercase() || b == b'_' || b == b'-')
    {
        return Err(HttpError::BadMethod);
    }
    let target_bytes = req.path.unwrap_or_default().as_bytes();
    let method_span = span_of(buf, method_bytes).ok_or(HttpError::BadSyntax)?;
    let target = span_of(buf, target_bytes).ok_or(HttpError::BadSyntax)?;
    let version = match req.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(HttpError::UnsupportedVersion),
    };
    for h in req.headers.iter() {
        headers.push(HeaderSpan {
            name: span_of(buf, h.name.as_bytes()).ok_or(HttpError::BadSyntax)?,
            value: span_of(buf, h.value).ok_or(HttpError::BadSyntax)?,
        });
    }

    let parts = split_target(target_bytes).ok_or(HttpError::BadSyntax)?;
    let sub = |r: (usize, usize)| Span {
        start: target.start + r.0 as u32,
        end: target.start + r.1 as u32,
    };
    let fields = HeaderFacts::collect(buf, headers);
    if let Some(name) = fields.repeated {
        return Err(HttpError::RepeatedHeader(name));
    }

    let authority = parts.authority.map(sub);
    if let Some(a) = authority
        && !is_valid_host(a.of(buf))
    {
        return Err(HttpError::BadHost);
    }
    let host_header = match (fields.host_count, fields.host) {
        (0, _) if version == Version::Http11 => return Err(HttpError::BadHost),
        (0, _) => None,
        (1, Some(h)) if is_valid_host(h.of(buf)) => Some(h),
        _ => return Err(HttpError::BadHost),
    };
    // RFC 9112 §3.2.2: the authority of an absolute-form target wins over Host.
    let host = authority.or(host_header);

    let body = framing(buf, version, &fields)?;
    let keep_alive = match version {
        Version::Http11 => !fields.close,
        Version::Http10 => fields.keep_alive && !fields.close,
    };

    Ok(Status::Complete(RequestHead {
        head_len,
        method: Method::from_token(method_bytes),
        method_span,
        target,
        path: sub(parts.path),
        query: sub(parts.query),
        version,
        host,
        body,
        keep_alive,
        expect_continue: version == Version::Http11 && fields.expect_continue,
    }))
}

/// A head httparse refused parsed again for what nginx takes: the bytes [`Masked`] names,
/// and header lines whose names nginx drops (`ignore_invalid_headers`, its default).
fn parse_as_nginx(
    err: httparse::Error,
    buf: &[u8],
    limits: &Limits,
    headers: &mut Vec<HeaderSpan>,
) -> Result<Status<RequestHead>, HttpError> {
    use httparse::Error::{HeaderName, HeaderValue, Token};
    let window = buf.get(..limits.max_head).unwrap_or(buf);
    if matches!(err, Token | HeaderValue | HeaderName)
        && let Some(masked) = Masked::of(buf)
    {
        return masked.parse(buf, limits, headers);
    }
    if err == HeaderName && first_bad_name_has_a_visible_char(window, false) {
        return parse_head_with(buf, limits, headers, Names::DropInvalid);
    }
    Err(classify_request_error(window))
}

/// A request head with the bytes nginx takes where httparse refuses them replaced by bytes
/// httparse takes, at the same offsets: any byte above 0x7F in the request line (httparse
/// wants UTF-8 in the target; a client's unencoded Latin-1 query is served by nginx, which
/// passes it on as sent) and a control byte other than NUL, CR and LF after a header line's
/// colon ([`is_passed_control`]).
struct Masked {
    copy: Vec<u8>,
    /// Where the request line ends (its LF, or the end of what came).
    line_end: usize,
    /// The offsets replaced, in order.
    at: Vec<usize>,
}

impl Masked {
    fn of(buf: &[u8]) -> Option<Masked> {
        let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
        let line_end = buf
            .iter()
            .skip(start)
            .position(|&b| b == b'\n')
            .map_or(buf.len(), |lf| start + lf);
        let mut copy = buf.to_vec();
        let mut at = Vec::new();
        let mut in_value = false;
        for (i, b) in copy.iter_mut().enumerate() {
            let replacement = if i < line_end {
                (*b >= 0x80).then_some(b'x')
            } else {
                match *b {
                    b'\n' => in_value = false,
                    b':' => in_value = true,
                    _ => {}
                }
                (in_value && is_passed_control(*b)).then_some(b'!')
            };
            if let Some(r) = replacement {
                *b = r;
                at.push(i);
            }
        }
        (!at.is_empty()).then_some(Masked { copy, line_end, at })
    }

    /// The copy gives the verdict and the spans, which are the same in `buf`, so the bytes
    /// go on as sent. A byte replaced in the request line anywhere but the target (the
    /// method, the version) stays an error, and so does one in the host, which names the
    /// server.
    fn parse(
        &self,
        buf: &[u8],
        limits: &Limits,
        headers: &mut Vec<HeaderSpan>,
    ) -> Result<Status<RequestHead>, HttpError> {
        let parsed = parse_head_with(&self.copy, limits, headers, Names::Strict)?;
        let Status::Complete(head) = &parsed else {
            return Ok(parsed);
        };
        let within = |span: Span, at: usize| (span.start as usize..span.end as usize).contains(&at);
        for &at in self.at.iter().take_while(|&&at| at < head.head_len) {
            if head.host.is_some_and(|host| within(host, at)) {
                return Err(HttpError::BadHost);
            }
            // In the request line, only the target's path, query or fragment takes one, not
            // an absolute-form scheme (found by review: `ht\xe9p://` passed as `htxp://`,
            // which nginx refuses). One after a header's colon is in its value by
            // construction (kept, or dropped with its line's name).
            let in_path_on = within(head.target, at) && at >= head.path.start as usize;
            if at < self.line_end && !in_path_on {
                return Err(classify_request_error(buf));
            }
        }
        Ok(parsed)
    }
}

/// 414 as soon as the request line is known to be longer than the limit, even before it
/// is complete.
fn check_request_line_length(buf: &[u8], max: usize) -> Result<(), HttpError> {
    let lead = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = buf.get(lead..).unwrap_or_default();
    // Looking a little past the limit is enough to decide; no need to scan a huge buffer.
    let probe = line.get(..max.saturating_add(2)).unwrap_or(line);
    let len = match probe.iter().position(|&b| b == b'\n') {
        Some(lf) => {
            let l = probe.get(..lf).unwrap_or_default();
            l.strip_suffix(b"\r").unwrap_or(l).len()
        }
        None => probe.strip_suffix(b"\r").unwrap_or(probe).len(),
    };
    if len > max {
        return Err(HttpError::UriTooLong);
    }
    Ok(())
}

/// Offsets within the target, as `(start, end)` pairs.
struct TargetParts {
    authority: Option<(usize, usize)>,
    path: (usize, usize),
    query: (usize, usize),
}

/// Splits origin-form (`/path?query`) and absolute-form (`scheme://authority/path?query`).
/// Anything else (`*`, authority-form, a relative path) is `None`: nginx answers those with
/// 400 too, and uWSGI apps have no use for them.
fn split_target(target: &[u8]) -> Option<TargetParts> {
    let (authority, path_start) = if target.first() == Some(&b'/') {
        (None, 0)
    } else {
        let colon = target.windows(3).position(|w| w == b"://")?;
        let scheme = target.get(..colon)?;
        let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if !scheme_ok {
            return None;
        }
        let auth_start = colon + 3;
        let rest = target.get(auth_start..)?;
        let auth_len = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?' || b == b'#')
            .unwrap_or(rest.len());
        // Userinfo is deprecated for http(s) (RFC 9110 §4.2.4); nginx refuses it too.
        let authority = rest.get(..auth_len)?;
        if authority.is_empty() || authority.contains(&b'@') || authority.contains(&b'#') {
            return None;
        }
        (
            Some((auth_start, auth_start + auth_len)),
            auth_start + auth_len,
        )
    };
    // A fragment should not be sent; if it is, nginx drops it from $uri and $args (keeping
    // it in $request_uri), and so does ringway.
    let end = target
        .iter()
        .position(|&b| b == b'#')
        .unwrap_or(target.len());
    let rest = target.get(path_start..end)?;
    let (path_end, query) = match rest.iter().position(|&b| b == b'?') {
        Some(q) => (path_start + q, (path_start + q + 1, end)),
        None => (end, (end, end)),
    };
    Some(TargetParts {
        authority,
        path: (path_start, path_end),
        query,
    })
}

/// Headers a request may send once, besides Host, Content-Length and Transfer-Encoding
/// (nginx's "unique" request headers): a second line is refused with 400, as nginx refuses
/// it. Two `Authorization` lines could let an access check read one credential and the app
/// another; two validators, ranges or expectations have no single meaning.
const SENT_ONCE: [&str; 8] = [
    "Authorization",
    "If-Modified-Since",
    "If-Unmodified-Since",
    "If-Match",
    "If-None-Match",
    "If-Range",
    "Content-Range",
    "Expect",
];

/// What the framing, Host and connection rules need from the header list, in one pass.
#[derive(Default)]
struct HeaderFacts {
    host_count: usize,
    host: Option<Span>,
    length_count: usize,
    length: Option<Span>,
    encoding_count: usize,
    encoding: Option<Span>,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
    /// The first of [`SENT_ONCE`] sent twice.
    repeated: Option<&'static str>,
}

impl HeaderFacts {
    fn collect(buf: &[u8], headers: &[HeaderSpan]) -> HeaderFacts {
        let mut f = HeaderFacts::default();
        // Which of SENT_ONCE were seen, a bit each.
        let mut seen = 0u8;
        for h in headers {
            let name = h.name.of(buf);
            let value = h.value.of(buf);
            if name.eq_ignore_ascii_case(b"host") {
                f.host_count += 1;
                f.host = Some(h.value);
            } else if name.eq_ignore_ascii_case(b"content-length") {
                f.length_count += 1;
                f.length = Some(h.value);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                f.encoding_count += 1;
                f.encoding = Some(h.value);
            } else if name.eq_ignore_ascii_case(b"connection") {
                f.close |= list_has(value, b"close");
                f.keep_alive |= list_has(value, b"keep-alive");
            } else if let Some(i) = SENT_ONCE
                .iter()
                .position(|once| name.eq_ignore_ascii_case(once.as_bytes()))
            {
                if seen & (1 << i) != 0 {
                    f.repeated = f.repeated.or(Some(SENT_ONCE[i]));
                }
                seen |= 1 << i;
                f.expect_continue |= name.eq_ignore_ascii_case(b"expect")
                    && trim_ows(value).eq_ignore_ascii_case(b"100-continue");
            }
        }
        f
    }
}

/// RFC 9112 §6.1 and §6.3 for requests, in nginx's order and with its statuses: a
/// Content-Length or Transfer-Encoding sent twice, or a Content-Length that is not one
/// number, is a 400; then a Transfer-Encoding on HTTP/1.0 is a 400, one that is not
/// `chunked` a 501 (whatever else the head says), and `chunked` with a Content-Length a 400
/// (found by review: a second `chunked` was a 501, a coding with a length a 400).
fn framing(buf: &[u8], version: Version, f: &HeaderFacts) -> Result<BodyFraming, HttpError> {
    if f.length_count > 1 {
        return Err(HttpError::BadContentLength);
    }
    if f.encoding_count > 1 {
        return Err(HttpError::RepeatedHeader("Transfer-Encoding"));
    }
    let length = match f.length {
        Some(v) => Some(parse_length(v.of(buf)).ok_or(HttpError::BadContentLength)?),
        None => None,
    };
    let Some(encoding) = f.encoding else {
        return Ok(length.map_or(BodyFraming::None, BodyFraming::Length));
    };
    if version == Version::Http10 {
        // §6.1: a 1.0 message with Transfer-Encoding has faulty framing.
        return Err(HttpError::BadSyntax);
    }
    if !trim_ows(encoding.of(buf)).eq_ignore_ascii_case(b"chunked") {
        return Err(HttpError::UnsupportedEncoding);
    }
    if length.is_some() {
        return Err(HttpError::LengthAndEncoding);
    }
    Ok(BodyFraming::Chunked)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests;
