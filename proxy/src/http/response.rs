//! Upstream (uWSGI) response heads: the status line and headers, and how the body is framed.
//!
//! uWSGI is trusted more than a client but its output comes from application code, so the
//! parse is lenient where the output is still unambiguous (spaces around the status code and
//! before a colon, identical repeated Content-Length, control bytes in a value as nginx passes
//! them) and strict where framing is at stake:
//! differing or malformed Content-Length is an error, which the driver answers with 502.
//! Rewriting the head for the client is [`super::write_response_head`]'s job.

use std::mem::MaybeUninit;

use super::invalid_names::{Names, first_bad_name_has_a_visible_char, only_invalid_names_dropped};
use super::validate::{is_passed_control, list_elements, parse_length, span_of, trim_ows};
use super::{HeaderSpan, HttpError, Span, Status, Version};

/// How the upstream delimits the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body (1xx, 204, 304, or a HEAD request).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the upstream closes the connection.
    UntilClose,
}

impl ResponseFraming {
    /// The body's length, when the framing says it.
    pub fn length(self) -> Option<u64> {
        match self {
            ResponseFraming::Length(n) => Some(n),
            _ => None,
        }
    }
}

/// A parsed upstream response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// Bytes of the head including the blank line.
    pub head_len: usize,
    /// Version the upstream spoke.
    pub version: Version,
    /// Status code (100..=999).
    pub status: u16,
    /// Reason phrase as sent.
    pub reason: Span,
    /// Body framing, already taking the request method into account.
    pub framing: ResponseFraming,
    /// The Content-Length it said, whatever the framing (a HEAD answer's is GET's).
    pub content_length: Option<u64>,
    /// The app's `X-Accel-Buffering` (nginx's per-response switch): `Some(false)` for `no`,
    /// relay it at the client's pace; `Some(true)` for `yes`; `None` when it said neither,
    /// and the route decides.
    pub buffering: Option<bool>,
    /// The app's `X-Accel-Limit-Rate`: bytes per second for this answer, over the route's
    /// `limit_rate` (0: none); `None` when it said none, or nothing nginx would read.
    pub limit_rate: Option<u64>,
}

/// An `X-Accel-Limit-Rate` value as nginx reads it (`ngx_atoi`): decimal digits only, up
/// to its signed 64-bit range; anything else leaves the limit as it was.
pub fn accel_limit_rate(value: &[u8]) -> Option<u64> {
    let digits = trim_ows(value);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let rate: i64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    u64::try_from(rate).ok()
}

/// Most header lines an upstream response may have. Apps set many cookies at once; nginx has
/// no count limit (only its buffer size), so this is generous. The slots live on the stack
/// for the duration of one parse (16 KiB, left uninitialised).
pub const MAX_RESPONSE_HEADERS: usize = 512;

/// Largest upstream answer head accepted, interim heads before it included (502 beyond): an
/// app setting many cookies at once fits, where nginx's default buffer takes 4 or 8 KiB, and
/// so does what the configs that raise it ask for (Sentry's and Timesketch's
/// `proxy_buffer_size 128k`). Grown to as an answer's head needs it, not kept per request.
pub const MAX_RESPONSE_HEAD: usize = 128 * 1024;

/// Parses an upstream response head at the start of `buf`. `request_was_head` makes the
/// framing `None` whatever the headers say.
///
/// Framing follows RFC 9112 §6.3: no body for HEAD, 1xx, 204 and 304; Transfer-Encoding
/// `chunked` alone gives `Chunked` (and wins over Content-Length); any other
/// Transfer-Encoding is refused (`UnsupportedEncoding`); then a valid Content-Length gives `Length`; else
/// `UntilClose`. More than [`MAX_RESPONSE_HEADERS`] header lines is `TooManyHeaders`.
pub fn parse_response(
    buf: &[u8],
    request_was_head: bool,
    headers: &mut Vec<HeaderSpan>,
) -> Result<Status<ResponseHead>, HttpError> {
    parse_response_within::<MAX_RESPONSE_HEADERS>(buf, request_was_head, headers)
}

/// [`parse_response`] with room for `SLOTS` header lines: a head ringway wrote itself holds
/// the upstream's lines and its own.
pub fn parse_response_within<const SLOTS: usize>(
    buf: &[u8],
    request_was_head: bool,
    headers: &mut Vec<HeaderSpan>,
) -> Result<Status<ResponseHead>, HttpError> {
    parse_head::<SLOTS>(buf, request_was_head, headers, Names::Strict)
}

fn parse_head<const SLOTS: usize>(
    buf: &[u8],
    request_was_head: bool,
    headers: &mut Vec<HeaderSpan>,
    names: Names,
) -> Result<Status<ResponseHead>, HttpError> {
    headers.clear();
    // Uninitialised slots: zeroing 512 of them (16 KiB) on every parse would cost more than
    // the parse; httparse fills the ones it uses.
    let mut slots = [const { MaybeUninit::uninit() }; SLOTS];
    let mut res = httparse::Response::new(&mut []);
    let head_len = match httparse::ParserConfig::default()
        .allow_spaces_after_header_name_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .ignore_invalid_headers_in_responses(names == Names::DropInvalid)
        .parse_response_with_uninit_headers(&mut res, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Status::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
        // nginx passes such a line on; ringway leaves it out, rather than a 502 that counts
        // against the server (found by review: any client who could make an app echo a
        // name could take servers out of turn). Control bytes in a value are masked first,
        // as they pass (the lenient parse would skip their lines).
        Err(httparse::Error::HeaderName)
            if names == Names::Strict && first_bad_name_has_a_visible_char(buf, true) =>
        {
            if has_control_bytes(buf) {
                return parse_with_controls_in_values::<SLOTS>(buf, request_was_head, headers);
            }
            return parse_head::<SLOTS>(buf, request_was_head, headers, Names::DropInvalid);
        }
        // A reason phrase holding them fails as the status line.
        Err(httparse::Error::HeaderValue | httparse::Error::Status) if has_control_bytes(buf) => {
            return parse_with_controls_in_values::<SLOTS>(buf, request_was_head, headers);
        }
        Err(_) => return Err(HttpError::BadSyntax),
    };
    let head = buf.get(..head_len).unwrap_or(buf);
    if names == Names::DropInvalid && !only_invalid_names_dropped(head, res.headers) {
        return Err(HttpError::BadSyntax);
    }
    let version = match res.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(HttpError::UnsupportedVersion),
    };
    let status = res.code.unwrap_or_default();
    if !(100..=999).contains(&status) {
        return Err(HttpError::BadSyntax);
    }
    // httparse substitutes a static "" for a reason with obs-text; that is no span of `buf`,
    // and the writer puts the standard phrase in its place.
    let reason = span_of(buf, res.reason.unwrap_or_default().as_bytes())
        .filter(|s| !s.is_empty())
        .unwrap_or_default();

    let mut length: Option<u64> = None;
    let mut buffering = None;
    let mut limit_rate = None;
    // Transfer codings listed over all Transfer-Encoding lines, and whether all are chunked.
    let (mut codings, mut only_chunked) = (0usize, true);
    for h in res.headers.iter() {
        let name = h.name.as_bytes();
        headers.push(HeaderSpan {
            name: span_of(buf, name).ok_or(HttpError::BadSyntax)?,
            value: span_of(buf, h.value).ok_or(HttpError::BadSyntax)?,
        });
        if name.eq_ignore_ascii_case(b"content-length") {
            length = Some(merge_lengths(length, h.value)?);
        } else if name.eq_ignore_ascii_case(b"x-accel-buffering") {
            let value = trim_ows(h.value);
            if value.eq_ignore_ascii_case(b"no") {
                buffering = Some(false);
            } else if value.eq_ignore_ascii_case(b"yes") {
                buffering = Some(true);
            }
        } else if name.eq_ignore_ascii_case(b"x-accel-limit-rate") {
            limit_rate = accel_limit_rate(h.value).or(limit_rate);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Several TE lines form one list (RFC 9110 §5.3).
            let mut any = false;
            for coding in list_elements(h.value) {
                any = true;
                codings += 1;
                only_chunked &= coding.eq_ignore_ascii_case(b"chunked");
            }
            if !any {
                codings += 1;
                only_chunked = false;
            }
        }
    }

    // Framed twice: where the server meant its answer to end is a guess (a smuggling
    // vector at an upstream shared with others), so the head is refused whatever its
    // status, as nginx refuses it (found by review: it was read as chunked).
    if codings > 0 && length.is_some() {
        return Err(HttpError::LengthAndEncoding);
    }
    let framing = if request_was_head || status < 200 || status == 204 || status == 304 {
        ResponseFraming::None
    } else {
        match (codings, length) {
            (1, _) if only_chunked => ResponseFraming::Chunked,
            // Any other coding (gzip, ...) ringway would pass on undecoded while dropping the
            // header that names it (Transfer-Encoding is hop-by-hop): refuse it, as newer
            // nginx does.
            (1.., _) => return Err(HttpError::UnsupportedEncoding),
            (0, Some(n)) => ResponseFraming::Length(n),
            (0, None) => ResponseFraming::UntilClose,
        }
    };
    Ok(Status::Complete(ResponseHead {
        head_len,
        version,
        status,
        reason,
        framing,
        content_length: length,
        buffering,
        limit_rate,
    }))
}

fn has_control_bytes(buf: &[u8]) -> bool {
    buf.iter().copied().any(is_passed_control)
}

/// Parses a head whose header values or reason phrase hold control bytes: a copy with each
/// replaced by a visible byte gives the spans, which are the same in `buf`, so the values go
/// on as sent (the writer puts the standard phrase in place of such a reason), as nginx
/// passes them. A control byte anywhere else (a header name) stays an error.
fn parse_with_controls_in_values<const SLOTS: usize>(
    buf: &[u8],
    request_was_head: bool,
    headers: &mut Vec<HeaderSpan>,
) -> Result<Status<ResponseHead>, HttpError> {
    let masked: Vec<u8> = buf
        .iter()
        .map(|&b| if is_passed_control(b) { b'!' } else { b })
        .collect();
    let parsed = parse_response_within::<SLOTS>(&masked, request_was_head, headers)?;
    if let Status::Complete(head) = &parsed {
        // Values come in buffer order, after the reason: one walk over both.
        let mut values = std::iter::once(head.reason)
            .chain(headers.iter().map(|h| h.value))
            .peekable();
        let controls_outside_values = buf
            .get(..head.head_len)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter(|(_, b)| is_passed_control(**b))
            .any(|(at, _)| {
                while values.next_if(|v| v.end as usize <= at).is_some() {}
                values.peek().is_none_or(|v| v.start as usize > at)
            });
        if controls_outside_values {
            return Err(HttpError::BadSyntax);
        }
    }
    Ok(parsed)
}

/// Folds one Content-Length line (possibly a list like `5, 5`) into what was seen so far:
/// every value must be valid and all must agree (RFC 9112 §6.3 item 5).
fn merge_lengths(seen: Option<u64>, value: &[u8]) -> Result<u64, HttpError> {
    let mut acc = seen;
    let mut any = false;
    for element in value.split(|&b| b == b',') {
        let n = parse_length(trim_ows(element)).ok_or(HttpError::BadContentLength)?;
        if acc.is_some_and(|a| a != n) {
            return Err(HttpError::BadContentLength);
        }
        acc = Some(n);
        any = true;
    }
    match (any, acc) {
        (true, Some(n)) => Ok(n),
        _ => Err(HttpError::BadContentLength),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests;
