//! A request's access log line: its fields, taken from the request's head while the head's
//! bytes are still in `client.input` (the spans point there), and handed to the worker's
//! log (crate::access_log), which formats and buffers it.

use std::net::IpAddr;
use std::time::Instant;

use super::{Identity, Outcome, Request};
use crate::access_log::{Entry, LogNames, UpstreamFields, WorkerLog};
use crate::client::Client;
use crate::http::RequestHead;
use crate::identity::RequestId;
use crate::worker::Worker;

/// What a logged request had become when it ended.
#[derive(Debug, Clone, Copy)]
pub(super) enum Subject<'a> {
    /// Routed: the request says it all.
    Routed(&'a Request),
    /// Refused before a route was found (none matched, a path that does not normalise):
    /// who it is from and its ID, as its head told.
    Refused(&'a Identity),
    /// A head that failed before a request existed (or a connection over a limit): the
    /// connection's address, and the ID its answer carried.
    Unparsed(&'a RequestId),
}

/// Logs a request whose head could not be read or parsed (400, 408, 414, 431, ...), or that
/// a connection limit refused, answered under `id`: its request line is whatever first line
/// the client sent.
pub(crate) fn log_unparsed(
    worker: &Worker,
    client: &Client,
    outcome: &Outcome,
    started: Instant,
    id: &RequestId,
) {
    if let Some(log) = &worker.access_log
        && outcome.status != 0
    {
        let mut outcome = *outcome;
        outcome.body_bytes = client.body_bytes_sent();
        write(
            log,
            &worker.log_names,
            client,
            None,
            Subject::Unparsed(id),
            &outcome,
            started,
        );
    }
}

/// Logs a request: `head` when it parsed.
pub(super) fn write(
    log: &WorkerLog,
    names: &LogNames,
    client: &Client,
    head: Option<&RequestHead>,
    subject: Subject<'_>,
    outcome: &Outcome,
    started: Instant,
) {
    let input = &client.input[..];
    let (mut referer, mut user_agent, mut authorization) = (None, None, None);
    let mut note = |name: &[u8], value| {
        // The first of each, as nginx 1.22 logs them.
        if referer.is_none() && name.eq_ignore_ascii_case(b"referer") {
            referer = Some(value);
        } else if user_agent.is_none() && name.eq_ignore_ascii_case(b"user-agent") {
            user_agent = Some(value);
        } else if authorization.is_none() && name.eq_ignore_ascii_case(b"authorization") {
            authorization = Some(value);
        }
    };
    let mut slots = [httparse::EMPTY_HEADER; UNPARSED_HEADERS];
    if head.is_some() {
        for h in &client.headers {
            note(h.name.of(input), h.value.of(input));
        }
    } else if let Some(headers) = syntax_only(input, &mut slots) {
        // A head refused after its syntax was read (no Host, a bad Content-Length): its
        // headers are logged as nginx logs them.
        for h in headers {
            note(h.name.as_bytes(), h.value);
        }
    }
    let call = match subject {
        Subject::Routed(req) => req.upstream.get(),
        Subject::Refused(_) | Subject::Unparsed(_) => None,
    };
    let upstream = call.map(|call| UpstreamFields {
        addr: names.upstream_addr(call.group, call.server).unwrap_or("-"),
        connect: call.connect,
        response: call.response.unwrap_or_else(|| call.started.elapsed()),
    });
    let remote_user = authorization.and_then(crate::auth_basic::basic_user);
    let entry = Entry {
        remote_addr: client_ip(client, subject),
        request_line: match head {
            Some(head) => Some(request_line(input, head.method_span.start as usize)),
            None => first_line(input),
        },
        method: head.map(|h| h.method_span.of(input)),
        target: head.map(|h| h.target.of(input)),
        protocol: head.map(|h| h.version.as_str()),
        status: outcome.reported_status(),
        body_bytes: outcome.body_bytes,
        referer,
        user_agent,
        remote_user: remote_user.as_deref(),
        request_time: started.elapsed(),
        upstream,
        route: outcome.route.and_then(|i| names.route_label(i)),
        request_id: Some(request_id(subject)),
    };
    log.record(&entry);
}

/// Header lines looked at in a head that was refused.
const UNPARSED_HEADERS: usize = 32;

/// The headers of a head whose syntax is complete and sound, though ringway refused it;
/// `None` when its syntax is what failed (or it has too many lines to look at).
fn syntax_only<'b>(
    input: &'b [u8],
    slots: &'b mut [httparse::Header<'b>],
) -> Option<&'b [httparse::Header<'b>]> {
    let mut request = httparse::Request::new(slots);
    match request.parse(input) {
        Ok(httparse::Status::Complete(_)) => Some(request.headers),
        _ => None,
    }
}

/// The client's address as the log shows it: the real client IP (behind a trusted proxy,
/// from its X-Forwarded-For) once the head was read, else the connection's (a PROXY protocol
/// header's source, or the TCP peer).
fn client_ip(client: &Client, subject: Subject<'_>) -> IpAddr {
    match subject {
        Subject::Routed(req) => req.client_ip,
        Subject::Refused(refused) => refused.client_ip,
        Subject::Unparsed(_) => client.peer.ip(),
    }
}

/// The request's ID, as its answer's X-Request-ID carried it.
fn request_id(subject: Subject<'_>) -> &str {
    match subject {
        Subject::Routed(req) => req.request_id.as_str(),
        Subject::Refused(refused) => refused.request_id.as_str(),
        Subject::Unparsed(id) => id.as_str(),
    }
}

/// The request line (from the method to the end of the version, as nginx's `$request`):
/// the head's first line from `start`, without its line ending.
fn request_line(input: &[u8], start: usize) -> &[u8] {
    let line = input.get(start..).unwrap_or_default();
    let end = line
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(line.len());
    &line[..end]
}

/// The first line a client sent that did not parse (blank lines before it skipped, as the
/// parser skips them), or `None` if it sent nothing but those.
fn first_line(input: &[u8]) -> Option<&[u8]> {
    let start = input.iter().position(|&b| b != b'\r' && b != b'\n')?;
    Some(request_line(input, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(
            request_line(b"GET / HTTP/1.1\r\nHost: a\r\n", 0),
            b"GET / HTTP/1.1"
        );
        assert_eq!(
            request_line(b"\r\nGET /x HTTP/1.0\n\n", 2),
            b"GET /x HTTP/1.0"
        );
        assert_eq!(
            first_line(b"\r\n\r\nBAD\x01 line\r\n"),
            Some(&b"BAD\x01 line"[..])
        );
        assert_eq!(first_line(b"GET /partial"), Some(&b"GET /partial"[..]));
        assert_eq!(first_line(b"\r\n"), None);
        assert_eq!(first_line(b""), None);
    }
}
