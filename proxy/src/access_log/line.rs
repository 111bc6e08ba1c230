//! One log line, from the fields of a finished request: nginx's `combined` format byte for
//! byte, or one JSON object. Written by hand into the worker's buffer (no allocation, no
//! serializer): a line is a few dozen appends.

use std::borrow::Cow;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::escape::{push_json_string, push_nginx};
use super::time::Stamp;
use crate::gzip::GzipRatio;
use crate::limits::{LimitConnStatus, LimitReqStatus};
use crate::tls::Peer;

/// What a line says about one request. Byte fields are as the client sent them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<'a> {
    /// The client's address.
    pub(crate) remote_addr: IpAddr,
    /// The client's port, when known (`$remote_port`; empty when a trusted proxy named the
    /// client without one).
    pub(crate) remote_port: Option<u16>,
    /// The request line as sent, without its line ending (`None`: no request line could be
    /// read).
    pub(crate) request_line: Option<&'a [u8]>,
    /// The method, the request target and the protocol (`None` when the head did not parse).
    pub(crate) method: Option<&'a [u8]>,
    pub(crate) target: Option<&'a [u8]>,
    pub(crate) protocol: Option<&'static str>,
    /// The status sent.
    pub(crate) status: u16,
    /// Response body bytes sent (the head not counted).
    pub(crate) body_bytes: u64,
    /// Referer and User-Agent (the first of each), if sent.
    pub(crate) referer: Option<&'a [u8]>,
    pub(crate) user_agent: Option<&'a [u8]>,
    /// The user name of a `Basic` Authorization header (nginx's `$remote_user`), whether
    /// or not the route asked for one.
    pub(crate) remote_user: Option<&'a [u8]>,
    /// From the complete head to the last byte written.
    pub(crate) request_time: Duration,
    /// The upstream that served it, if one was connected to.
    pub(crate) upstream: Option<UpstreamFields<'a>>,
    /// The route's label (`None`: no route matched).
    pub(crate) route: Option<&'a str>,
    /// The request ID, if it has one.
    pub(crate) request_id: Option<&'a str>,
    /// The path and query as sent, without an absolute-form target's scheme and authority
    /// (nginx's `$request_uri`).
    pub(crate) uri: Option<&'a [u8]>,
    /// The request's host name (the Host header's, or an absolute-form target's authority),
    /// without its port or a trailing dot, else `server_name` (nginx's `$host`, which is
    /// written in lower case).
    pub(crate) host: Option<&'a [u8]>,
    /// The values of the request headers a custom format names, in its order (the first
    /// of each; see [`super::WorkerLog::template`]).
    pub(crate) headers: &'a [Option<&'a [u8]>],
    /// The TLS session, on a TLS connection (nginx's `$scheme` is `https`; `$ssl_*`).
    pub(crate) tls: Option<&'a Peer>,
    /// Requests on this connection so far, this one included (`$connection_requests`).
    pub(crate) connection_requests: u64,
    /// Its head came behind the previous request's, read with it (`$pipe`).
    pub(crate) pipelined: bool,
    /// The whole answer went out (`$request_completion`).
    pub(crate) completed: bool,
    /// The connection's number (`$connection`: the kernel's cookie of its socket; `None`
    /// when the format does not show it, or the kernel gave none).
    pub(crate) connection: Option<u64>,
    /// `server_name` (nginx's `$server_name`; empty without one).
    pub(crate) server_name: &'a str,
    /// The response's bytes written, head and body (`$bytes_sent`).
    pub(crate) bytes_sent: u64,
    /// The request's bytes read, head and body as sent (`$request_length`).
    pub(crate) request_length: u64,
    /// The normalised path (`$uri`; `None` when the head did not parse).
    pub(crate) path: Option<&'a [u8]>,
    /// The connection's peer (a PROXY protocol header's source, or the TCP peer) and the
    /// address it came in on.
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    /// `$hostname` and `$pid`.
    pub(crate) hostname: &'a str,
    pub(crate) pid: u32,
    /// The headers of the route's `auth_request` answer (`$auth_http_NAME`), if one was
    /// asked.
    pub(crate) auth_headers: &'a ReadHeaders,
    /// The upstream answer's headers a custom format names (`$upstream_http_NAME`).
    pub(crate) upstream_headers: &'a ReadHeaders,
    /// The answer's head as it went out, when a custom format shows `$sent_http_NAME`
    /// (`None`: no head went out).
    pub(crate) sent_head: Option<&'a [u8]>,
    /// How much the answer shrank, when it was compressed whole (`$gzip_ratio`).
    pub(crate) gzip_ratio: Option<GzipRatio>,
    /// What the route's `limit_req` did with the request (`$limit_req_status`).
    pub(crate) limit_req: Option<LimitReqStatus>,
    /// What the route's `limit_conn` did with the request (`$limit_conn_status`).
    pub(crate) limit_conn: Option<LimitConnStatus>,
    /// The request's Referer is one its route's `referers` do not take
    /// (`$invalid_referer`).
    pub(crate) invalid_referer: bool,
    /// The query an internal redirect named (X-Accel-Redirect), for `$args`, `$query_string`
    /// and `$is_args` in place of the request's (empty: none).
    pub(crate) redirected_args: Option<&'a [u8]>,
    /// The request's body, when a custom format shows `$request_body` and it was held in
    /// memory.
    pub(crate) request_body: Option<&'a [u8]>,
    /// `peer` is what the connection's PROXY header named (`$proxy_protocol_addr`).
    pub(crate) proxied: bool,
    /// The kernel's figures of the client's TCP connection, when a custom format shows
    /// `$tcpinfo_*` (`None`: not asked, or no socket of its own).
    pub(crate) tcp_info: Option<TcpFigures>,
}

/// What nginx's `$tcpinfo_rtt`, `$tcpinfo_rttvar`, `$tcpinfo_snd_cwnd` and
/// `$tcpinfo_rcv_space` show: the kernel's `TCP_INFO` of the client's socket when the line
/// is made (round-trip time and its variance in microseconds, the congestion window in
/// segments, the receive space in bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpFigures {
    pub(crate) rtt: u32,
    pub(crate) rttvar: u32,
    pub(crate) snd_cwnd: u32,
    pub(crate) rcv_space: u32,
}

impl TcpFigures {
    /// The figures of socket `fd`; `None` when the kernel gives none.
    pub(crate) fn of(fd: std::os::fd::RawFd) -> Option<TcpFigures> {
        // SAFETY: tcp_info is plain data; zeroed is a valid value.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: the fd is open while its stream is borrowed by the caller; the pointers
        // are valid for the sizes given.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&raw mut info).cast(),
                &mut len,
            )
        };
        (rc == 0).then_some(TcpFigures {
            rtt: info.tcpi_rtt,
            rttvar: info.tcpi_rttvar,
            snd_cwnd: info.tcpi_snd_cwnd,
            rcv_space: info.tcpi_rcv_space,
        })
    }
}

/// The value of the header called `name` (lower case, `-` for `_`) in `head`, an answer's
/// head as it went out, as nginx 1.22's `$sent_http_NAME` reads it: the first of several,
/// but for `Cache-Control` and `Link`, which it keeps as lists and joins with `, ` (found by
/// review: the first alone); later nginx joins every name so.
pub(crate) fn sent_header<'h>(head: &'h [u8], name: &[u8]) -> Option<Cow<'h, [u8]>> {
    let mut values = head
        .split(|&b| b == b'\n')
        .skip(1)
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            is_read_header_name(&line[..colon], name).then(|| line[colon + 1..].trim_ascii())
        });
    let first = values.next()?;
    if name != b"cache-control" && name != b"link" {
        return Some(Cow::Borrowed(first));
    }
    Some(values.fold(Cow::Borrowed(first), |mut joined, value| {
        let joined_mut = joined.to_mut();
        joined_mut.extend_from_slice(b", ");
        joined_mut.extend_from_slice(value);
        joined
    }))
}

/// Whether `raw`, a header's name as sent, is `name` as [`read_header_name`] writes it.
fn is_read_header_name(raw: &[u8], name: &[u8]) -> bool {
    raw.len() == name.len()
        && raw.iter().zip(name).all(|(&r, &n)| {
            let r = if r == b'_' {
                b'-'
            } else {
                r.to_ascii_lowercase()
            };
            r == n
        })
}

/// Headers of an answer ringway read (an auth request's, an upstream's), in its order,
/// names as [`read_header_name`] writes them.
pub(crate) type ReadHeaders = [(Box<[u8]>, Box<[u8]>)];

/// A header's name as `$upstream_http_NAME` finds it in nginx: lower case, `-` for `_`
/// (`X-User` and `X_User` alike).
pub(crate) fn read_header_name(name: &[u8]) -> Box<[u8]> {
    name.iter()
        .map(|&b| match b {
            b'_' => b'-',
            b => b.to_ascii_lowercase(),
        })
        .collect()
}

/// The upstream part of a line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpstreamFields<'a> {
    /// The server connected to, or whose connect failed, as configured
    /// (`unix:/run/app.sock`, `10.0.0.2:3031`).
    pub(crate) addr: &'a str,
    /// Time to connect (`None`: the connect failed, which nginx logs as `-`).
    pub(crate) connect: Option<Duration>,
    /// From the start of the connect to the upstream's last byte (nginx's
    /// `$upstream_response_time`).
    pub(crate) response: Duration,
    /// The status it answered (for an exchange that failed after the connect, the status
    /// ringway answered, 502 or 504, as nginx's `$upstream_status`; `None`: the client
    /// left before an answer head came, which nginx logs as `-`).
    pub(crate) status: Option<u16>,
    /// From the start of the connect to its answer's head (`None`: no head came).
    pub(crate) header: Option<Duration>,
    /// Bytes read from it, bytes written to it, and its answer's body as read (nginx's
    /// `$upstream_bytes_received`, `$upstream_bytes_sent`, `$upstream_response_length`;
    /// `None`: the answer was not read to its end).
    pub(crate) bytes: Option<UpstreamBytes>,
}

/// What went to and came from an upstream for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UpstreamBytes {
    pub(crate) received: u64,
    pub(crate) sent: u64,
    /// What came after the answer's head.
    pub(crate) body: u64,
}

/// Appends nginx's `combined` line:
/// `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
/// "$http_referer" "$http_user_agent"`, escaped as nginx escapes (`-` for what is missing).
pub(crate) fn combined(out: &mut Vec<u8>, e: &Entry<'_>, time: &Stamp<'_>) {
    let _ = write!(out, "{} - ", e.remote_addr);
    push_nginx(out, e.remote_user);
    out.extend_from_slice(b" [");
    time.push_local(out);
    out.extend_from_slice(b"] \"");
    push_nginx(out, e.request_line);
    let _ = write!(out, "\" {:03} {} \"", e.status, e.body_bytes);
    push_nginx(out, e.referer);
    out.extend_from_slice(b"\" \"");
    push_nginx(out, e.user_agent);
    out.extend_from_slice(b"\"\n");
}

/// Appends one JSON object and a newline. Absent values are `null`; times are seconds with
/// millisecond precision.
pub(crate) fn json(out: &mut Vec<u8>, e: &Entry<'_>, time: &Stamp<'_>) {
    out.extend_from_slice(b"{\"time\":\"");
    time.push_rfc3339(out);
    let _ = write!(out, "\",\"remote_addr\":\"{}\"", e.remote_addr);
    push_field(out, b"method", e.method);
    push_field(out, b"path", e.target);
    push_field(out, b"protocol", e.protocol.map(str::as_bytes));
    let _ = write!(
        out,
        ",\"status\":{},\"body_bytes_sent\":{}",
        e.status, e.body_bytes
    );
    push_field(out, b"referer", e.referer);
    push_field(out, b"user_agent", e.user_agent);
    push_field(out, b"remote_user", e.remote_user);
    out.extend_from_slice(b",\"request_time\":");
    push_seconds(out, Some(e.request_time));
    out.extend_from_slice(b",\"upstream_connect_time\":");
    push_seconds(out, e.upstream.and_then(|u| u.connect));
    out.extend_from_slice(b",\"upstream_response_time\":");
    push_seconds(out, e.upstream.map(|u| u.response));
    push_field(out, b"upstream_addr", e.upstream.map(|u| u.addr.as_bytes()));
    push_field(out, b"route", e.route.map(str::as_bytes));
    push_field(out, b"request_id", e.request_id.map(str::as_bytes));
    out.extend_from_slice(b"}\n");
}

/// `,"name":"value"` or `,"name":null`.
fn push_field(out: &mut Vec<u8>, name: &[u8], value: Option<&[u8]>) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name);
    out.extend_from_slice(b"\":");
    match value {
        Some(value) => push_json_string(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

/// `1.234` (seconds, milliseconds kept, as nginx prints times) or `null`.
fn push_seconds(out: &mut Vec<u8>, value: Option<Duration>) {
    match value {
        Some(d) => push_secs(out, d),
        None => out.extend_from_slice(b"null"),
    }
}

/// `1.234`: seconds, milliseconds kept, as nginx prints times.
pub(super) fn push_secs(out: &mut Vec<u8>, d: Duration) {
    let ms = d.as_millis();
    let _ = write!(out, "{}.{:03}", ms / 1000, ms % 1000);
}

/// A line's fields for tests: `GET /` from 192.0.2.7, 200, nothing else to tell.
#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
pub(crate) fn sample() -> Entry<'static> {
    Entry {
        remote_addr: "192.0.2.7".parse().unwrap(),
        remote_port: Some(50000),
        request_line: Some(b"GET / HTTP/1.1"),
        method: Some(b"GET"),
        target: Some(b"/"),
        protocol: Some("HTTP/1.1"),
        status: 200,
        body_bytes: 0,
        referer: None,
        user_agent: None,
        remote_user: None,
        request_time: Duration::ZERO,
        upstream: None,
        route: None,
        request_id: None,
        uri: Some(b"/"),
        host: None,
        headers: &[],
        tls: None,
        connection_requests: 1,
        pipelined: false,
        completed: true,
        connection: None,
        server_name: "",
        bytes_sent: 0,
        request_length: 0,
        path: None,
        peer: "192.0.2.7:50000".parse().unwrap(),
        local: "127.0.0.1:80".parse().unwrap(),
        hostname: "",
        pid: 1,
        auth_headers: &[],
        upstream_headers: &[],
        sent_head: None,
        gzip_ratio: None,
        limit_req: None,
        limit_conn: None,
        invalid_referer: false,
        redirected_args: None,
        request_body: None,
        proxied: false,
        tcp_info: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::time::LogClock;
    use std::time::SystemTime;

    fn entry() -> Entry<'static> {
        Entry {
            request_line: Some(b"GET /a\"b?x=\xff HTTP/1.1"),
            target: Some(b"/a\"b?x=\xff"),
            body_bytes: 13,
            user_agent: Some(b"say \"hi\"\\"),
            request_time: Duration::from_micros(12_345),
            upstream: Some(UpstreamFields {
                addr: "unix:/run/app.sock",
                connect: Some(Duration::from_micros(120)),
                response: Duration::from_micros(10_999),
                status: Some(200),
                header: Some(Duration::from_micros(10_500)),
                bytes: None,
            }),
            route: Some("/"),
            uri: Some(b"/a\"b?x=\xff"),
            ..sample()
        }
    }

    /// The epoch's time in the local or the RFC 3339 form.
    fn stamp_text(local: bool) -> String {
        let mut clock = LogClock::new();
        let stamp = clock.at(SystemTime::UNIX_EPOCH);
        let mut out = Vec::new();
        if local {
            stamp.push_local(&mut out);
        } else {
            stamp.push_rfc3339(&mut out);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_combined_line() {
        let mut clock = LogClock::new();
        let stamp = clock.at(SystemTime::UNIX_EPOCH);
        let mut out = Vec::new();
        combined(&mut out, &entry(), &stamp);
        let time = stamp_text(true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "192.0.2.7 - - [{time}] \"GET /a\\x22b?x=\\xFF HTTP/1.1\" 200 13 \"-\" \
                 \"say \\x22hi\\x22\\x5C\"\n"
            )
        );
    }

    #[test]
    fn a_combined_line_names_the_basic_user_escaped() {
        let mut clock = LogClock::new();
        let stamp = clock.at(SystemTime::UNIX_EPOCH);
        let e = Entry {
            remote_user: Some(b"a\"b"),
            ..entry()
        };
        let mut out = Vec::new();
        combined(&mut out, &e, &stamp);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("192.0.2.7 - a\\x22b ["), "{text}");
    }

    #[test]
    fn a_combined_line_for_a_head_that_did_not_parse() {
        let mut clock = LogClock::new();
        let stamp = clock.at(SystemTime::UNIX_EPOCH);
        let e = Entry {
            request_line: None,
            method: None,
            target: None,
            protocol: None,
            status: 400,
            body_bytes: 16,
            user_agent: None,
            upstream: None,
            route: None,
            ..entry()
        };
        let mut out = Vec::new();
        combined(&mut out, &e, &stamp);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("] \"-\" 400 16 \"-\" \"-\"\n"), "{text}");
    }

    #[test]
    fn a_json_line_parses_back_to_its_fields() {
        let mut clock = LogClock::new();
        let stamp = clock.at(SystemTime::UNIX_EPOCH);
        let mut out = Vec::new();
        json(&mut out, &entry(), &stamp);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let time = stamp_text(false);
        assert_eq!(v["time"], time.as_str());
        assert_eq!(v["remote_addr"], "192.0.2.7");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/a\"b?x=\u{ff}");
        assert_eq!(v["protocol"], "HTTP/1.1");
        assert_eq!(v["status"], 200);
        assert_eq!(v["body_bytes_sent"], 13);
        assert!(v["referer"].is_null());
        assert_eq!(v["user_agent"], "say \"hi\"\\");
        assert_eq!(v["request_time"], 0.012);
        assert_eq!(v["upstream_connect_time"], 0.0);
        assert_eq!(v["upstream_response_time"], 0.010);
        assert_eq!(v["upstream_addr"], "unix:/run/app.sock");
        assert_eq!(v["route"], "/");
        assert!(v["request_id"].is_null());
        assert!(v["remote_user"].is_null());
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 16, "{keys:?}");

        let mut out = Vec::new();
        let e = Entry {
            upstream: None,
            ..entry()
        };
        json(&mut out, &e, &stamp);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        for key in [
            "upstream_connect_time",
            "upstream_response_time",
            "upstream_addr",
        ] {
            assert!(v[key].is_null(), "{key}: {v}");
        }
    }
}
