//! A request's access log line: its fields, taken from the request's head while the head's
//! bytes are still in `client.input` (the spans point there), and handed to the worker's
//! log (crate::access_log), which formats and buffers it.

use std::time::Instant;

use super::upstream::Redirected;
use super::{Identity, Outcome, Request};
use crate::access_log::{
    Entry, LogNames, MAX_HEADERS, TcpFigures, Template, UpstreamFields, WorkerLog,
};
use crate::client::{Client, Next, SentHead};
use crate::config::MAIN_LOG;
use crate::http::RequestHead;
use crate::identity::{RealClient, RequestId};
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

/// Where a request stands on its connection, for its log line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    /// When its first byte was read.
    pub(crate) started: Instant,
    /// The connection's requests before it.
    pub(crate) served: u32,
    /// The connection has served past `keepalive_time`: this request is its last.
    pub(crate) aged: bool,
}

/// Whether the answers' heads are kept for the access log: its format shows
/// `$sent_http_NAME`.
pub(crate) fn keeps_sent_head(worker: &Worker) -> bool {
    worker.access_log.as_ref().is_some_and(|log| {
        log.template()
            .is_some_and(|template| template.names_sent_headers())
    })
}

/// Logs a request whose head could not be read or parsed (400, 408, 414, 431, ...), or that
/// a connection limit refused, answered under `id`: its request line is whatever first line
/// the client sent.
pub(crate) fn log_unparsed(
    worker: &Worker,
    client: &Client,
    outcome: &Outcome,
    arrival: Arrival,
    id: &RequestId,
) {
    if let Some(log) = &worker.access_log
        && outcome.status != 0
        && log.writes_to(MAIN_LOG)
        && logs_status(worker, outcome.reported_status())
    {
        write(
            log,
            &worker.log_names,
            client,
            None,
            Subject::Unparsed(id),
            outcome,
            arrival,
            MAIN_LOG,
        );
    }
}

/// Whether the access log writes a line for a request answered `status`
/// (`access_log_statuses`).
pub(crate) fn logs_status(worker: &Worker, status: u16) -> bool {
    worker
        .config
        .access_log
        .as_ref()
        .is_none_or(|log| log.statuses.contains(status))
}

/// Logs a request to `sink`: `head` when it parsed.
#[allow(clippy::too_many_arguments)] // the log, what the line is made of, where it goes
pub(super) fn write(
    log: &WorkerLog,
    names: &LogNames,
    client: &Client,
    head: Option<&RequestHead>,
    subject: Subject<'_>,
    outcome: &Outcome,
    arrival: Arrival,
    sink: usize,
) {
    let template = log.template();
    let seen = Seen {
        names,
        client,
        head,
        subject,
        outcome,
        arrival,
    };
    seen.with_entry(template.as_deref(), |entry| log.record(entry, sink));
}

/// The value of an operator's header or param with variables (`upstream_headers = {
/// "X-Forwarded-Port" = "$server_port" }`) for a request about to go upstream: the same
/// variables, the same values, as its log line's; for a `fallback` app asked after an
/// internal redirect (`redirected`), `$uri`, `$args` and `$request_method` are what the
/// redirect made of the request, as nginx works them out after its internal redirect
/// (`$request_uri` and `$request` stay the client's).
pub(crate) fn set_value(
    worker: &Worker,
    client: &Client,
    req: &Request,
    redirected: Option<&Redirected<'_>>,
    template: &Template,
    out: &mut Vec<u8>,
) {
    let outcome = Outcome::new(0, Next::Close);
    let seen = Seen {
        names: &worker.log_names,
        client,
        head: Some(&req.head),
        subject: Subject::Routed(req),
        outcome: &outcome,
        // Only what comes before the answer is asked of it (`Template::parse_value`).
        arrival: Arrival {
            started: Instant::now(),
            served: 0,
            aged: false,
        },
    };
    seen.with_entry(Some(template), |entry| match redirected {
        None => template.write_value(out, entry),
        Some(r) => {
            let entry = Entry {
                path: Some(r.path),
                method: r.method_sent(req.head.method).or(entry.method),
                redirected_args: r.by_app,
                ..*entry
            };
            template.write_value(out, &entry);
        }
    });
}

/// What a line is made from.
struct Seen<'a> {
    names: &'a LogNames,
    client: &'a Client,
    head: Option<&'a RequestHead>,
    subject: Subject<'a>,
    outcome: &'a Outcome,
    arrival: Arrival,
}

impl Seen<'_> {
    /// Calls `f` with the request's entry, holding what `template` (a custom format, or a
    /// header value's; `None`: a fixed format) shows.
    fn with_entry<R>(&self, template: Option<&Template>, f: impl FnOnce(&Entry<'_>) -> R) -> R {
        let Seen {
            names,
            client,
            head,
            subject,
            outcome,
            arrival,
        } = *self;
        let input = &client.input[..];
        let wanted = template.map_or(&[][..], |t| t.headers());
        let mut shown = Shown::default();
        let mut slots = [httparse::EMPTY_HEADER; UNPARSED_HEADERS];
        let mut parts = head.map(|h| RequestParts {
            method: h.method_span.of(input),
            target: h.target.of(input),
            uri: input
                .get(h.path.start as usize..h.target.end as usize)
                .unwrap_or_default(),
            protocol: if client.is_http2() {
                crate::uwsgi::HTTP2
            } else {
                h.version.as_str()
            },
        });
        if head.is_some() {
            for h in &client.headers {
                shown.note(wanted, h.name.of(input), h.value.of(input));
            }
        } else if let Some((refused, headers)) = syntax_only(input, &mut slots) {
            // A head refused after its syntax was read (no Host, a bad Content-Length): its
            // request line and headers are logged as nginx logs them.
            parts = refused;
            for h in headers {
                shown.note(wanted, h.name.as_bytes(), h.value);
            }
        }
        let call = match subject {
            Subject::Routed(req) => req.upstream.get(),
            Subject::Refused(_) | Subject::Unparsed(_) => None,
        };
        let (auth, for_log) = match subject {
            Subject::Routed(req) => (req.auth.take(), req.for_log.take()),
            Subject::Refused(_) | Subject::Unparsed(_) => (None, None),
        };
        let upstream = call.map(|call| UpstreamFields {
            addr: names
                .upstream_addr(call.group as usize, call.server as usize)
                .unwrap_or("-"),
            connect: call.connect,
            response: call.response.unwrap_or_else(|| call.started.elapsed()),
            status: match (call.head_status, outcome.status) {
                // The client left first: nginx never sets the upstream's status then.
                (0, 0) => None,
                (0, answered) => Some(answered),
                (status, _) => Some(status),
            },
            header: (call.head_status != 0)
                .then(|| std::time::Duration::from_micros(u64::from(call.head_micros))),
            bytes: for_log.as_ref().and_then(|kept| kept.upstream_bytes),
        });
        let remote_user = shown.authorization.and_then(crate::auth_basic::basic_user);
        // nginx's `$host`: the routed head's name; for a head refused before that (a bad or
        // missing Host), the server's name, as nginx's.
        let host = match head.and_then(|h| h.host) {
            Some(host) => {
                let name = crate::http::host_without_port(host.of(input));
                name.strip_suffix(b".").unwrap_or(name)
            }
            None => names.server_name.as_deref().unwrap_or_default().as_bytes(),
        };
        let named;
        let headers: &[Option<&[u8]>] = match template {
            Some(_) => {
                named = shown.named();
                named.get(..wanted.len()).unwrap_or_default()
            }
            None => &[],
        };
        let mut line = match head {
            Some(head) => Some(request_line(input, head.method_span.start as usize)),
            None => first_line(input),
        };
        // An HTTP/2 stream's head was written as HTTP/1.1 for the pipeline: its line names the
        // protocol the client spoke, as nginx's `$request` does.
        let http2_line;
        if client.is_http2()
            && let Some(http11) = line.and_then(|l| l.strip_suffix(b"HTTP/1.1"))
        {
            http2_line = [http11, crate::uwsgi::HTTP2.as_bytes()].concat();
            line = Some(&http2_line);
        }
        let mut refused_path = Vec::new();
        let shows_uri = template.is_some_and(|t| t.shows_uri());
        let sent_head = client.take_sent_head();
        let real = real_client(client, subject);
        let entry = Entry {
            remote_addr: real.ip,
            remote_port: real.port,
            request_line: line,
            method: parts.map(|p| p.method),
            target: parts.map(|p| p.target),
            protocol: parts.map(|p| p.protocol),
            status: outcome.reported_status(),
            body_bytes: outcome.body_bytes,
            referer: shown.referer,
            user_agent: shown.user_agent,
            remote_user: remote_user.as_deref(),
            request_time: arrival.started.elapsed(),
            upstream,
            route: outcome.route.and_then(|i| names.route_label(i)),
            request_id: Some(request_id(subject)),
            uri: parts.map(|p| p.uri),
            host: Some(host),
            headers,
            tls: client.stream.get_ref().tls(),
            connection_requests: u64::from(arrival.served) + 1,
            pipelined: client.pipelined,
            // A timed-out request is not complete, even with its 408 sent (nginx sends none).
            completed: outcome.status != 0
                && outcome.next != Next::Abort
                && !client.stream.timed_out(),
            connection: template
                .filter(|t| t.shows_connection())
                .and_then(|_| client.stream.get_ref().connection_number()),
            server_name: names.server_name.as_deref().unwrap_or_default(),
            bytes_sent: client.bytes_sent(),
            request_length: request_length(client, head, subject),
            path: match subject {
                Subject::Routed(req) => Some(&req.path[..]),
                // A head refused before routing: its path normalised here, as nginx has its
                // `$uri` once the request line parsed.
                Subject::Refused(_) | Subject::Unparsed(_) if shows_uri => parts.and_then(|p| {
                    let path = p.uri.split(|&b| b == b'?').next().unwrap_or_default();
                    crate::uwsgi::normalize_path(path, &mut refused_path).ok()?;
                    Some(&refused_path[..])
                }),
                Subject::Refused(_) | Subject::Unparsed(_) => None,
            },
            peer: client.peer,
            local: if template.is_some_and(Template::shows_server_addr) {
                client.reached()
            } else {
                client.local
            },
            hostname: &names.hostname,
            pid: names.pid,
            auth_headers: auth.as_ref().map_or(&[], |answer| &answer.headers),
            upstream_headers: for_log
                .as_ref()
                .map_or(&[], |kept| &kept.upstream_headers[..]),
            // An empty body is none, as nginx has no buffer for it (`-`).
            request_body: for_log
                .as_ref()
                .and_then(|kept| kept.request_body.as_deref())
                .map(Vec::as_slice)
                .filter(|body| !body.is_empty()),
            proxied: client.proxied,
            tcp_info: template
                .filter(|t| t.shows_tcp_info())
                .and_then(|_| client.stream.get_ref().socket())
                .and_then(TcpFigures::of),
            sent_head: sent_head.as_deref().map(SentHead::bytes),
            gzip_ratio: match subject {
                Subject::Routed(req) => req.gzip_ratio.get(),
                Subject::Refused(_) | Subject::Unparsed(_) => None,
            },
            limit_req: match subject {
                Subject::Routed(req) => req.limit_req.get(),
                Subject::Refused(_) | Subject::Unparsed(_) => None,
            },
            limit_conn: match subject {
                Subject::Routed(req) => req.limit_conn.get(),
                Subject::Refused(_) | Subject::Unparsed(_) => None,
            },
            invalid_referer: match subject {
                Subject::Routed(req) => req.invalid_referer.get() == Some(true),
                Subject::Refused(_) | Subject::Unparsed(_) => false,
            },
            redirected_args: None,
        };
        let result = f(&entry);
        client.put_back_sent_head(sent_head);
        // Put back for the request's next look (a header value's, then its log line's).
        if let Subject::Routed(req) = subject {
            req.auth.set(auth);
            req.for_log.set(for_log);
        }
        result
    }
}

/// The request line's parts.
#[derive(Clone, Copy)]
struct RequestParts<'b> {
    method: &'b [u8],
    target: &'b [u8],
    /// The path and query as sent (the target without an absolute form's scheme and
    /// authority).
    uri: &'b [u8],
    protocol: &'static str,
}

/// The request headers a line shows: the first of each, as nginx 1.22 logs them, and those
/// a custom format names.
#[derive(Default)]
struct Shown<'b> {
    referer: Option<&'b [u8]>,
    user_agent: Option<&'b [u8]>,
    authorization: Option<&'b [u8]>,
    /// The values of the headers a custom format names, in its order.
    named: [Option<&'b [u8]>; MAX_HEADERS],
    /// Those sent on several lines that nginx joins (by index in `named`): nothing is
    /// allocated unless a request does that.
    joined: Vec<(usize, Vec<u8>)>,
}

impl<'b> Shown<'b> {
    fn note(&mut self, wanted: &[Vec<u8>], name: &[u8], value: &'b [u8]) {
        let first = |slot: &mut Option<&'b [u8]>, of: &[u8]| {
            if slot.is_none() && name.eq_ignore_ascii_case(of) {
                *slot = Some(value);
            }
        };
        first(&mut self.referer, b"referer");
        first(&mut self.user_agent, b"user-agent");
        first(&mut self.authorization, b"authorization");
        for (i, wanted) in wanted.iter().enumerate() {
            if !name.eq_ignore_ascii_case(wanted) {
                continue;
            }
            let Some(slot) = self.named.get_mut(i) else {
                continue;
            };
            match (*slot, joined_by(wanted)) {
                (None, _) => *slot = Some(value),
                (Some(earlier), Some(separator)) => {
                    let at = match self.joined.iter().position(|(j, _)| *j == i) {
                        Some(at) => at,
                        None => {
                            self.joined.push((i, earlier.to_vec()));
                            self.joined.len() - 1
                        }
                    };
                    if let Some((_, text)) = self.joined.get_mut(at) {
                        text.extend_from_slice(separator);
                        text.extend_from_slice(value);
                    }
                }
                (Some(_), None) => {}
            }
        }
    }

    /// The named headers' values, joined ones included.
    fn named(&self) -> [Option<&[u8]>; MAX_HEADERS] {
        let mut named = self.named;
        for (i, text) in &self.joined {
            if let Some(slot) = named.get_mut(*i) {
                *slot = Some(text);
            }
        }
        named
    }
}

/// How nginx 1.22 joins a header sent on several lines, for the few it joins (its
/// `$http_x_forwarded_for` and `$http_cookie`); the others show their first line.
fn joined_by(header: &[u8]) -> Option<&'static [u8]> {
    match header {
        b"x-forwarded-for" => Some(b", "),
        b"cookie" => Some(b"; "),
        _ => None,
    }
}

/// The path and query of a request target: an absolute form's scheme and authority left
/// out (`http://a/x?q` → `/x?q`).
fn uri_of(target: &[u8]) -> &[u8] {
    if target.first() == Some(&b'/') {
        return target;
    }
    let Some(at) = target.windows(3).position(|w| w == b"://") else {
        return target;
    };
    let after = target.get(at + 3..).unwrap_or_default();
    let path = after.iter().position(|&b| b == b'/').unwrap_or(after.len());
    after.get(path..).unwrap_or_default()
}

/// Header lines looked at in a head that was refused.
const UNPARSED_HEADERS: usize = 32;

/// The request line and headers of a head whose syntax is complete and sound, though
/// ringway refused it; `None` when its syntax is what failed (or it has too many lines to
/// look at).
fn syntax_only<'b>(
    input: &'b [u8],
    slots: &'b mut [httparse::Header<'b>],
) -> Option<(Option<RequestParts<'b>>, &'b [httparse::Header<'b>])> {
    let mut request = httparse::Request::new(slots);
    match request.parse(input) {
        Ok(httparse::Status::Complete(_)) => {
            let protocol = match request.version {
                Some(0) => Some("HTTP/1.0"),
                Some(1) => Some("HTTP/1.1"),
                _ => None,
            };
            let parts = match (request.method, request.path, protocol) {
                (Some(method), Some(target), Some(protocol)) => Some(RequestParts {
                    method: method.as_bytes(),
                    target: target.as_bytes(),
                    uri: uri_of(target.as_bytes()),
                    protocol,
                }),
                _ => None,
            };
            Some((parts, request.headers))
        }
        _ => None,
    }
}

/// The client as the log shows it: the real client (behind a trusted proxy, from its
/// X-Forwarded-For) once the head was read, else the connection's address (a PROXY protocol
/// header's source, or the TCP peer).
fn real_client(client: &Client, subject: Subject<'_>) -> RealClient {
    match subject {
        Subject::Routed(req) => req.from,
        Subject::Refused(refused) => refused.from,
        Subject::Unparsed(_) => client.peer.into(),
    }
}

/// nginx's `$request_length`: the head as read (for an HTTP/2 stream, its HTTP/1.1
/// rendering) and the body's bytes as sent; a head that did not parse counts what was read
/// of it.
fn request_length(client: &Client, head: Option<&RequestHead>, subject: Subject<'_>) -> u64 {
    let body = match subject {
        Subject::Routed(req) => req.body_taken.get(),
        Subject::Refused(_) | Subject::Unparsed(_) => 0,
    };
    let head = match head {
        Some(_) => client.input.len(),
        None => first_head_len(&client.input),
    };
    (head as u64).saturating_add(body)
}

/// The length of the head a client sent up to its blank line, or all that was read of it.
fn first_head_len(input: &[u8]) -> usize {
    input
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(input.len(), |at| at + 4)
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
    fn request_uri_is_the_targets_path_and_query() {
        assert_eq!(uri_of(b"/a?to=http://x/"), b"/a?to=http://x/");
        assert_eq!(uri_of(b"http://app.example/x?q"), b"/x?q");
        assert_eq!(uri_of(b"http://app.example"), b"");
        assert_eq!(uri_of(b"*"), b"*");
    }

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
