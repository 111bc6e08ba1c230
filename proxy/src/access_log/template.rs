//! An operator's own line format, written as nginx's `log_format` writes one:
//! `'$remote_addr - $remote_user [$time_local] "$request" $status rt=$request_time'`.
//! Parsed once with the configuration into text and variables; a line is then a walk over
//! them, each variable's value escaped as nginx escapes it (`escape=default`, `json` or
//! `none`: `access_log_escape`).

use std::io::Write;
use std::time::Duration;

use super::escape::{push_nginx, push_nginx_json};
use super::line::{Entry, push_secs, sent_header};
use super::time::{LogClock, Stamp};
use crate::config::LogEscape;
use crate::tls::PeerCert;

/// The most `$http_NAME` variables one format may hold: their values are looked up in a
/// fixed array per line, nothing allocated.
pub(crate) const MAX_HEADERS: usize = 16;

/// A parsed format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// As written (for `Display`, and to tell one format from another on reload).
    text: String,
    pieces: Vec<Piece>,
    /// The headers its `$http_NAME` (and `$cookie_NAME`) variables name, lower case with
    /// `-` for `_`: a line's `Entry::headers` holds their values in this order.
    headers: Vec<Vec<u8>>,
    /// The names its `$arg_NAME` and `$cookie_NAME` variables look for, lower case.
    names: Vec<Vec<u8>>,
    escape: LogEscape,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Vec<u8>),
    Var(Var),
}

/// The variables a format may use: nginx's names, with nginx's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    RemoteAddr,
    RemoteUser,
    TimeLocal,
    TimeIso8601,
    Msec,
    Request,
    RequestMethod,
    RequestUri,
    ServerProtocol,
    Status,
    BodyBytesSent,
    RequestTime,
    UpstreamAddr,
    UpstreamConnectTime,
    UpstreamResponseTime,
    RequestId,
    Host,
    UpstreamStatus,
    UpstreamHeaderTime,
    /// Bytes read from the upstream for the request.
    UpstreamBytesReceived,
    /// Bytes written to the upstream for the request.
    UpstreamBytesSent,
    /// The body of the upstream's answer, as read.
    UpstreamResponseLength,
    Scheme,
    ServerName,
    ConnectionRequests,
    Https,
    SslProtocol,
    SslCipher,
    SslCurve,
    SslSessionReused,
    SslServerName,
    SslClientVerify,
    SslClientSDn,
    SslClientIDn,
    SslClientSerial,
    SslClientFingerprint,
    BytesSent,
    RequestLength,
    Uri,
    Args,
    IsArgs,
    RemotePort,
    RealipRemoteAddr,
    ServerAddr,
    ServerPort,
    Hostname,
    Pid,
    /// `p` when the request's head came behind the previous one's on its connection
    /// (pipelined), `.` otherwise.
    Pipe,
    /// `OK` when the whole answer went out, empty otherwise.
    RequestCompletion,
    /// A number for the connection: the same on each of its requests, another on every
    /// other connection.
    Connection,
    /// How much the answer shrank, when it was compressed whole.
    GzipRatio,
    /// What the route's `limit_req` did with the request.
    LimitReqStatus,
    /// What the route's `limit_conn` did with the request.
    LimitConnStatus,
    /// `1` when the route's `referers` do not take the request's Referer, else empty.
    InvalidReferer,
    /// The request's body, when it was held in memory.
    RequestBody,
    /// The client's address and port as the PROXY header named them.
    ProxyProtocolAddr,
    ProxyProtocolPort,
    /// The kernel's `TCP_INFO` figures of the client's socket.
    TcpinfoRtt,
    TcpinfoRttvar,
    TcpinfoSndCwnd,
    TcpinfoRcvSpace,
    /// `$http_NAME`: the first such request header (by index into `Template::headers`).
    Header(usize),
    /// `$arg_NAME`: an argument of the query (by index into `Template::names`).
    Arg(usize),
    /// `$cookie_NAME`: a cookie (`name`, into `Template::names`) of the first Cookie
    /// header (`header`, into `Template::headers`).
    Cookie {
        name: usize,
        header: usize,
    },
    /// `$auth_http_NAME`: the first such header of the route's `auth_request` answer (the
    /// header's name, `_` for `-`, into `Template::names`): nginx's `$upstream_http_NAME`
    /// in an `auth_request_set`.
    AuthHeader(usize),
    /// `$upstream_http_NAME`: the first such header of the upstream's answer (the name as
    /// for `AuthHeader`).
    UpstreamHeader(usize),
    /// `$sent_http_NAME`: the first such header of the answer's head as it went out (the
    /// name as for `AuthHeader`).
    SentHeader(usize),
}

impl Var {
    /// Whether only a log line knows its value: the answer's, or the connection's history
    /// (refused in header and param values).
    fn log_only(self) -> bool {
        matches!(
            self,
            Var::Status
                | Var::Pipe
                | Var::RequestCompletion
                | Var::GzipRatio
                | Var::RequestBody
                | Var::BodyBytesSent
                | Var::BytesSent
                | Var::RequestTime
                | Var::RequestLength
                | Var::UpstreamAddr
                | Var::UpstreamConnectTime
                | Var::UpstreamResponseTime
                | Var::UpstreamStatus
                | Var::UpstreamHeaderTime
                | Var::UpstreamBytesReceived
                | Var::UpstreamBytesSent
                | Var::UpstreamResponseLength
                | Var::UpstreamHeader(_)
                | Var::SentHeader(_)
                | Var::ConnectionRequests
        )
    }
}

const VARS: [(&str, Var); 63] = [
    ("remote_addr", Var::RemoteAddr),
    ("remote_user", Var::RemoteUser),
    ("time_local", Var::TimeLocal),
    ("time_iso8601", Var::TimeIso8601),
    ("msec", Var::Msec),
    ("request", Var::Request),
    ("request_method", Var::RequestMethod),
    ("request_uri", Var::RequestUri),
    ("server_protocol", Var::ServerProtocol),
    ("status", Var::Status),
    ("body_bytes_sent", Var::BodyBytesSent),
    ("request_time", Var::RequestTime),
    ("upstream_addr", Var::UpstreamAddr),
    ("upstream_connect_time", Var::UpstreamConnectTime),
    ("upstream_response_time", Var::UpstreamResponseTime),
    ("request_id", Var::RequestId),
    ("host", Var::Host),
    ("upstream_status", Var::UpstreamStatus),
    ("upstream_header_time", Var::UpstreamHeaderTime),
    ("upstream_bytes_received", Var::UpstreamBytesReceived),
    ("upstream_bytes_sent", Var::UpstreamBytesSent),
    ("upstream_response_length", Var::UpstreamResponseLength),
    ("scheme", Var::Scheme),
    ("server_name", Var::ServerName),
    ("connection_requests", Var::ConnectionRequests),
    ("https", Var::Https),
    ("ssl_protocol", Var::SslProtocol),
    ("ssl_cipher", Var::SslCipher),
    ("ssl_curve", Var::SslCurve),
    ("ssl_session_reused", Var::SslSessionReused),
    ("ssl_server_name", Var::SslServerName),
    ("ssl_client_verify", Var::SslClientVerify),
    ("ssl_client_s_dn", Var::SslClientSDn),
    ("ssl_client_i_dn", Var::SslClientIDn),
    ("ssl_client_serial", Var::SslClientSerial),
    ("ssl_client_fingerprint", Var::SslClientFingerprint),
    ("bytes_sent", Var::BytesSent),
    ("request_length", Var::RequestLength),
    ("uri", Var::Uri),
    ("document_uri", Var::Uri),
    ("args", Var::Args),
    ("query_string", Var::Args),
    ("is_args", Var::IsArgs),
    ("remote_port", Var::RemotePort),
    ("realip_remote_addr", Var::RealipRemoteAddr),
    ("server_addr", Var::ServerAddr),
    ("server_port", Var::ServerPort),
    ("hostname", Var::Hostname),
    ("pid", Var::Pid),
    ("pipe", Var::Pipe),
    ("request_completion", Var::RequestCompletion),
    ("connection", Var::Connection),
    ("gzip_ratio", Var::GzipRatio),
    ("limit_req_status", Var::LimitReqStatus),
    ("limit_conn_status", Var::LimitConnStatus),
    ("invalid_referer", Var::InvalidReferer),
    ("request_body", Var::RequestBody),
    ("proxy_protocol_addr", Var::ProxyProtocolAddr),
    ("proxy_protocol_port", Var::ProxyProtocolPort),
    ("tcpinfo_rtt", Var::TcpinfoRtt),
    ("tcpinfo_rttvar", Var::TcpinfoRttvar),
    ("tcpinfo_snd_cwnd", Var::TcpinfoSndCwnd),
    ("tcpinfo_rcv_space", Var::TcpinfoRcvSpace),
];

/// Variables that are a request header's value under another name.
const HEADER_VARS: [(&str, &str); 2] = [
    ("content_length", "content-length"),
    ("content_type", "content-type"),
];

/// How an error names a piece of the template: as written in a log format; not in a
/// header's or param's value (parsed with [`LogEscape::None`]), which may be a secret that
/// holds a `$` (an API key), and would go to the journal (found by review).
fn shown(escape: LogEscape, piece: &str) -> String {
    match escape {
        LogEscape::None => "(not shown: a value may hold a secret)".to_owned(),
        _ => piece.to_owned(),
    }
}

impl Template {
    /// Parses `text`: `$name` or `${name}` for a variable (a name of letters, digits and
    /// `_`), anything else as it is. An unknown name is refused, named.
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        let mut template = Template::parse_text(text, LogEscape::Default)?;
        if let Some(Piece::Text(last)) = template.pieces.last_mut() {
            last.push(b'\n');
        }
        Ok(template)
    }

    /// Parses a header or param value (nginx's `proxy_set_header X $var`, `uwsgi_param`):
    /// the variables known before the upstream is asked, values written as they are.
    pub(crate) fn parse_value(text: &str) -> Result<Template, String> {
        // Values as they are: the escape also marks the template as a value's.
        let template = Template::parse_text(text, LogEscape::None)?;
        let late = template.pieces.iter().find_map(|p| match p {
            Piece::Var(Var::UpstreamHeader(_)) => Some("upstream_http_NAME"),
            Piece::Var(Var::SentHeader(_)) => Some("sent_http_NAME"),
            Piece::Var(var) if var.log_only() => {
                VARS.iter().find(|(_, v)| v == var).map(|(n, _)| *n)
            }
            _ => None,
        });
        match late {
            Some(name) => Err(format!(
                "`${name}` is for log lines only (a header or param is written before \
                 the answer, and before what the connection's log keeps is known)"
            )),
            None => Ok(template),
        }
    }

    /// Whether it names a header of the upstream's answer (`$upstream_http_NAME`).
    pub(crate) fn names_upstream_headers(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Var(Var::UpstreamHeader(_))))
    }

    /// Whether `name` (lower case, `-` for `_`) is a header of the upstream's answer it
    /// names.
    pub(crate) fn names_upstream_header(&self, name: &[u8]) -> bool {
        self.pieces.iter().any(|p| match p {
            Piece::Var(Var::UpstreamHeader(i)) => self.names.get(*i).is_some_and(|n| n == name),
            _ => false,
        })
    }

    /// Its text, when it holds no variable (only `$$`, a `$` itself).
    pub(crate) fn literal(&self) -> Option<Vec<u8>> {
        let mut text = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(bytes) => text.extend_from_slice(bytes),
                Piece::Var(_) => return None,
            }
        }
        Some(text)
    }

    /// Appends `e`'s value of this header or param template (see [`Template::parse_value`]).
    pub(crate) fn write_value(&self, out: &mut Vec<u8>, e: &Entry<'_>) {
        thread_local! {
            static CLOCK: std::cell::RefCell<LogClock> = std::cell::RefCell::new(LogClock::new());
        }
        CLOCK.with(|clock| {
            let mut clock = clock.borrow_mut();
            let stamp = clock.at(std::time::SystemTime::now());
            self.write(out, e, &stamp);
        });
    }

    fn parse_text(text: &str, escape: LogEscape) -> Result<Template, String> {
        let mut template = Template {
            text: text.to_owned(),
            pieces: Vec::new(),
            headers: Vec::new(),
            names: Vec::new(),
            escape,
        };
        let mut literal = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            literal.extend_from_slice(&rest.as_bytes()[..at]);
            let after = &rest[at + 1..];
            // `$$`: a `$` itself (nginx has no way to write one; a header value may need it).
            if let Some(next) = after.strip_prefix('$') {
                literal.push(b'$');
                rest = next;
                continue;
            }
            let (name, next) = match after.strip_prefix('{') {
                Some(braced) => {
                    let end = braced
                        .find('}')
                        .ok_or_else(|| "`${` without `}`".to_owned())?;
                    let name = &braced[..end];
                    // As nginx: a name is letters, digits and `_`, braced or not.
                    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                        let shown = shown(escape, &format!("`${{{name}}}`"));
                        return Err(format!(
                            "{shown}: a variable's name is letters, digits and `_`"
                        ));
                    }
                    (name, &braced[end + 1..])
                }
                None => {
                    let end = after
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            if name.is_empty() {
                return Err(
                    "a `$` without a variable name (a `$` itself is written `$$`)".to_owned(),
                );
            }
            if !literal.is_empty() {
                template
                    .pieces
                    .push(Piece::Text(std::mem::take(&mut literal)));
            }
            let var = template.var(name)?;
            template.pieces.push(Piece::Var(var));
            rest = next;
        }
        literal.extend_from_slice(rest.as_bytes());
        template.pieces.push(Piece::Text(literal));
        Ok(template)
    }

    fn var(&mut self, name: &str) -> Result<Var, String> {
        if let Some(&(_, var)) = VARS.iter().find(|(n, _)| *n == name) {
            return Ok(var);
        }
        if let Some(arg) = name.strip_prefix("arg_").filter(|a| !a.is_empty()) {
            return Ok(Var::Arg(self.name(arg)));
        }
        if let Some(header) = name.strip_prefix("auth_http_").filter(|h| !h.is_empty()) {
            return Ok(Var::AuthHeader(self.name(&header.replace('_', "-"))));
        }
        if let Some(header) = name
            .strip_prefix("upstream_http_")
            .filter(|h| !h.is_empty())
        {
            return Ok(Var::UpstreamHeader(self.name(&header.replace('_', "-"))));
        }
        if let Some(header) = name.strip_prefix("sent_http_").filter(|h| !h.is_empty()) {
            return Ok(Var::SentHeader(self.name(&header.replace('_', "-"))));
        }
        if let Some(cookie) = name.strip_prefix("cookie_").filter(|c| !c.is_empty()) {
            let header = self.header("cookie")?;
            return Ok(Var::Cookie {
                name: self.name(cookie),
                header,
            });
        }
        let aliased = HEADER_VARS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, header)| *header);
        let Some(header) = aliased.or_else(|| name.strip_prefix("http_").filter(|h| !h.is_empty()))
        else {
            let known: Vec<&str> = VARS
                .iter()
                .filter(|(_, var)| !(self.escape == LogEscape::None && var.log_only()))
                .map(|(n, _)| *n)
                .chain(HEADER_VARS.iter().map(|(n, _)| *n))
                .collect();
            let shown = shown(self.escape, &format!("`${name}`"));
            return Err(format!(
                "unknown variable {shown} (a `$` itself is written `$$`); known: \
                 ${}, and $http_NAME for a request header, $arg_NAME for an argument of the \
                 query, $cookie_NAME for a cookie, $auth_http_NAME for a header of the \
                 auth_request's answer, $upstream_http_NAME (log lines only) for one of the \
                 upstream's answer, $sent_http_NAME (log lines only) for one of the answer \
                 sent",
                known.join(", $")
            ));
        };
        self.header(header).map(Var::Header)
    }

    /// The index of the request header a `$http_NAME` names (`NAME`, `_` for `-`, any
    /// case) in `headers`, added if new.
    fn header(&mut self, name: &str) -> Result<usize, String> {
        let header: Vec<u8> = name
            .bytes()
            .map(|b| {
                if b == b'_' {
                    b'-'
                } else {
                    b.to_ascii_lowercase()
                }
            })
            .collect();
        if let Some(i) = self.headers.iter().position(|h| *h == header) {
            return Ok(i);
        }
        if self.headers.len() == MAX_HEADERS {
            return Err(format!("more than {MAX_HEADERS} request headers named"));
        }
        self.headers.push(header);
        Ok(self.headers.len() - 1)
    }

    /// The index of `name` (an argument's or a cookie's) in `names`, added if new.
    fn name(&mut self, name: &str) -> usize {
        let name = name.to_ascii_lowercase().into_bytes();
        match self.names.iter().position(|n| *n == name) {
            Some(i) => i,
            None => {
                self.names.push(name);
                self.names.len() - 1
            }
        }
    }

    /// The same format, its values escaped as `escape` says.
    pub(crate) fn escaped(mut self, escape: LogEscape) -> Template {
        self.escape = escape;
        self
    }

    /// The format as written.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Whether it shows `$sent_http_NAME`: the answers' heads are then kept for its lines.
    pub(crate) fn names_sent_headers(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Var(Var::SentHeader(_))))
    }

    /// Whether it shows `$request_body`: bodies held in memory are then kept for its
    /// lines.
    pub(crate) fn shows_request_body(&self) -> bool {
        self.pieces.contains(&Piece::Var(Var::RequestBody))
    }

    /// Whether it shows the bytes to and from the upstream.
    pub(crate) fn shows_upstream_bytes(&self) -> bool {
        self.pieces.iter().any(|p| {
            matches!(
                p,
                Piece::Var(
                    Var::UpstreamBytesReceived
                        | Var::UpstreamBytesSent
                        | Var::UpstreamResponseLength
                )
            )
        })
    }

    /// Whether it shows `$server_addr`: on a listener on every address, the address reached
    /// is then asked of the socket.
    pub(crate) fn shows_server_addr(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Var(Var::ServerAddr)))
    }

    /// Whether it shows a `$tcpinfo_*` figure.
    pub(crate) fn shows_tcp_info(&self) -> bool {
        self.pieces.iter().any(|p| {
            matches!(
                p,
                Piece::Var(
                    Var::TcpinfoRtt
                        | Var::TcpinfoRttvar
                        | Var::TcpinfoSndCwnd
                        | Var::TcpinfoRcvSpace
                )
            )
        })
    }

    /// Whether it shows `$connection`.
    pub(crate) fn shows_connection(&self) -> bool {
        self.pieces.contains(&Piece::Var(Var::Connection))
    }

    /// Whether it shows `$uri`.
    pub(crate) fn shows_uri(&self) -> bool {
        self.pieces.contains(&Piece::Var(Var::Uri))
    }

    /// The request headers its `$http_NAME` (and `$cookie_NAME`: `cookie`) variables name
    /// (lower case, `-` for `_`).
    pub(crate) fn headers(&self) -> &[Vec<u8>] {
        &self.headers
    }

    /// Appends `e`'s line, and a newline.
    pub(crate) fn write(&self, out: &mut Vec<u8>, e: &Entry<'_>, time: &Stamp<'_>) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.extend_from_slice(text),
                Piece::Var(var) => push_var(out, *var, e, time, self.escape, &self.names),
            }
        }
    }
}

fn push_var(
    out: &mut Vec<u8>,
    var: Var,
    e: &Entry<'_>,
    time: &Stamp<'_>,
    escape: LogEscape,
    names: &[Vec<u8>],
) {
    let text = |out: &mut Vec<u8>, value: Option<&[u8]>| push_value(out, value, escape);
    // An upstream's status or time it has none of: nginx writes a `-` of its own in the
    // value when the request went to an upstream (so `"-"` under `escape=json` too), and
    // finds no value only when it went to none (found by review: `""` under json).
    let upstream_none = |out: &mut Vec<u8>| match e.upstream {
        Some(_) => out.push(b'-'),
        None => push_value(out, None, escape),
    };
    let seconds = |out: &mut Vec<u8>, value: Option<Duration>| match value {
        Some(d) => push_secs(out, d),
        None => upstream_none(out),
    };
    match var {
        Var::RemoteAddr => {
            let _ = write!(out, "{}", e.remote_addr);
        }
        Var::RemoteUser => text(out, e.remote_user),
        Var::TimeLocal => time.push_local(out),
        Var::TimeIso8601 => time.push_iso8601(out),
        Var::Msec => time.push_msec(out),
        Var::Request => text(out, e.request_line),
        Var::RequestMethod => text(out, e.method),
        Var::RequestUri => text(out, e.uri),
        Var::ServerProtocol => text(out, e.protocol.map(str::as_bytes)),
        Var::Status => {
            let _ = write!(out, "{:03}", e.status);
        }
        Var::BodyBytesSent => {
            let _ = write!(out, "{}", e.body_bytes);
        }
        Var::RequestTime => push_secs(out, e.request_time),
        Var::UpstreamAddr => text(out, e.upstream.map(|u| u.addr.as_bytes())),
        Var::UpstreamConnectTime => seconds(out, e.upstream.and_then(|u| u.connect)),
        Var::UpstreamResponseTime => seconds(out, e.upstream.map(|u| u.response)),
        Var::RequestId => text(out, e.request_id.map(str::as_bytes)),
        Var::Host => push_host(out, e.host, escape),
        Var::UpstreamStatus => match e.upstream.and_then(|u| u.status) {
            Some(status) => {
                let _ = write!(out, "{status:03}");
            }
            None => upstream_none(out),
        },
        Var::UpstreamHeaderTime => seconds(out, e.upstream.and_then(|u| u.header)),
        Var::UpstreamBytesReceived | Var::UpstreamBytesSent | Var::UpstreamResponseLength => {
            match e.upstream.and_then(|u| u.bytes) {
                Some(bytes) => {
                    let n = match var {
                        Var::UpstreamBytesReceived => bytes.received,
                        Var::UpstreamBytesSent => bytes.sent,
                        _ => bytes.body,
                    };
                    let _ = write!(out, "{n}");
                }
                None => push_value(out, None, escape),
            }
        }
        Var::Scheme => out.extend_from_slice(if e.tls.is_some() { b"https" } else { b"http" }),
        // nginx: "on" over TLS, an empty value (not a missing one) otherwise.
        Var::Https => text(out, Some(if e.tls.is_some() { b"on" } else { b"" })),
        Var::SslProtocol => text(out, e.tls.map(|t| t.protocol.as_bytes())),
        Var::SslCipher => text(out, e.tls.map(|t| t.cipher.as_bytes())),
        // nginx's TLS variables are missing (`-`) when empty: no group, no SNI.
        Var::SslCurve => text(
            out,
            e.tls
                .and_then(|t| t.group)
                .map(|group| group.name().as_bytes()),
        ),
        // nginx: `r` for a resumed session, `.` for a full handshake.
        Var::SslSessionReused => text(out, e.tls.map(|t| if t.resumed { &b"r"[..] } else { b"." })),
        Var::SslServerName => text(
            out,
            e.tls
                .and_then(|t| t.server_name.as_deref())
                .filter(|name| !name.is_empty())
                .map(str::as_bytes),
        ),
        Var::SslClientVerify => text(
            out,
            e.tls.map(|t| match t.cert {
                Some(_) => &b"SUCCESS"[..],
                None => b"NONE",
            }),
        ),
        Var::SslClientSDn => text(out, cert(e).map(|c| c.subject.as_bytes())),
        Var::SslClientIDn => text(out, cert(e).map(|c| c.issuer.as_bytes())),
        Var::SslClientSerial => text(out, cert(e).map(|c| c.serial.as_bytes())),
        Var::SslClientFingerprint => text(out, cert(e).map(|c| c.fingerprint.as_bytes())),
        Var::BytesSent => {
            let _ = write!(out, "{}", e.bytes_sent);
        }
        Var::RequestLength => {
            let _ = write!(out, "{}", e.request_length);
        }
        Var::Uri => text(out, e.path),
        // nginx: missing without a `?`, empty after a bare one.
        Var::Args => text(out, args(e)),
        Var::IsArgs => {
            let has = args(e).is_some_and(|q| !q.is_empty());
            text(out, Some(if has { b"?" } else { b"" }));
        }
        // Unknown when a trusted proxy named the client without a port: empty, as nginx's
        // realip leaves it.
        Var::RemotePort => match e.remote_port {
            Some(port) => {
                let _ = write!(out, "{port}");
            }
            None => push_value(out, Some(b""), escape),
        },
        Var::RealipRemoteAddr => {
            let _ = write!(out, "{}", e.peer.ip());
        }
        Var::ServerAddr => {
            let _ = write!(out, "{}", e.local.ip());
        }
        Var::ServerPort => {
            let _ = write!(out, "{}", e.local.port());
        }
        Var::Hostname => text(out, Some(e.hostname.as_bytes())),
        Var::Pid => {
            let _ = write!(out, "{}", e.pid);
        }
        Var::ServerName => text(out, Some(e.server_name.as_bytes())),
        Var::Pipe => out.push(if e.pipelined { b'p' } else { b'.' }),
        Var::RequestCompletion => text(out, Some(if e.completed { b"OK" } else { b"" })),
        Var::RequestBody => text(out, e.request_body),
        Var::ProxyProtocolAddr if e.proxied => {
            let _ = write!(out, "{}", e.peer.ip());
        }
        Var::ProxyProtocolPort if e.proxied => {
            let _ = write!(out, "{}", e.peer.port());
        }
        Var::ProxyProtocolAddr | Var::ProxyProtocolPort => push_value(out, None, escape),
        Var::TcpinfoRtt | Var::TcpinfoRttvar | Var::TcpinfoSndCwnd | Var::TcpinfoRcvSpace => {
            match e.tcp_info {
                Some(t) => {
                    let figure = match var {
                        Var::TcpinfoRtt => t.rtt,
                        Var::TcpinfoRttvar => t.rttvar,
                        Var::TcpinfoSndCwnd => t.snd_cwnd,
                        _ => t.rcv_space,
                    };
                    let _ = write!(out, "{figure}");
                }
                None => push_value(out, None, escape),
            }
        }
        Var::LimitReqStatus => push_value(
            out,
            e.limit_req.map(|status| status.name().as_bytes()),
            escape,
        ),
        Var::LimitConnStatus => push_value(
            out,
            e.limit_conn.map(|status| status.name().as_bytes()),
            escape,
        ),
        // nginx's: `1` or the empty string (not `-`: a value, though empty).
        Var::InvalidReferer => {
            if e.invalid_referer {
                out.push(b'1');
            }
        }
        Var::GzipRatio => match e.gzip_ratio {
            Some(ratio) => {
                let _ = write!(out, "{ratio}");
            }
            None => push_value(out, None, escape),
        },
        Var::Connection => match e.connection {
            Some(n) => {
                let _ = write!(out, "{n}");
            }
            None => push_value(out, None, escape),
        },
        Var::ConnectionRequests => {
            let _ = write!(out, "{}", e.connection_requests);
        }
        Var::Header(i) => text(out, e.headers.get(i).copied().flatten()),
        Var::Arg(name) => text(out, query(e).and_then(|q| arg(q, &names[name]))),
        Var::Cookie { name, header } => {
            let cookies = e.headers.get(header).copied().flatten();
            text(out, cookies.and_then(|c| cookie(c, &names[name])));
        }
        Var::AuthHeader(name) => {
            let value = e.auth_headers.iter().find(|(n, _)| **n == *names[name]);
            text(out, value.map(|(_, v)| &v[..]));
        }
        Var::UpstreamHeader(name) => {
            let value = e.upstream_headers.iter().find(|(n, _)| **n == *names[name]);
            text(out, value.map(|(_, v)| &v[..]));
        }
        Var::SentHeader(name) => {
            let value = e.sent_head.and_then(|head| sent_header(head, &names[name]));
            text(out, value.as_deref());
        }
    }
}

/// nginx's `ngx_http_arg`: the value of the first argument called `name` (in any case) in
/// `query`, as sent (not decoded), up to the next `&`.
fn arg<'q>(query: &'q [u8], name: &[u8]) -> Option<&'q [u8]> {
    query.split(|&b| b == b'&').find_map(|pair| {
        let value = pair.get(name.len()..)?.strip_prefix(b"=")?;
        pair[..name.len()]
            .eq_ignore_ascii_case(name)
            .then_some(value)
    })
}

/// nginx's cookie lookup (`ngx_http_parse_multi_header_lines_internal` with `;`, nginx
/// 1.29.6 and later; older ones also split at `,`), step by step: at each pair, the name
/// in any case, spaces, then `=`, spaces, and the value up to the next `;`. As nginx, the
/// byte after a matching name (and its spaces) is stepped over before a pair that is not
/// `name=...` is skipped, so `lang; lang=fr` has no `lang`. nginx reads each Cookie line
/// on its own; here several lines come joined with `; ` (as `$http_cookie` shows them),
/// which differs only after a line that ends in a valueless `name`.
fn cookie<'c>(header: &'c [u8], name: &[u8]) -> Option<&'c [u8]> {
    let end = header.len();
    let at = |i: usize| header.get(i).copied();
    let mut start = 0;
    while start < end {
        let named = header
            .get(start..start + name.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(name));
        if named {
            start += name.len();
            while at(start) == Some(b' ') {
                start += 1;
            }
            let equals = at(start) == Some(b'=');
            if start < end {
                start += 1;
            }
            if equals {
                while at(start) == Some(b' ') {
                    start += 1;
                }
                let rest = header.get(start..).unwrap_or_default();
                let len = rest.iter().position(|&b| b == b';').unwrap_or(rest.len());
                return rest.get(..len);
            }
        }
        while let Some(b) = at(start) {
            start += 1;
            if b == b';' {
                break;
            }
        }
        while at(start) == Some(b' ') {
            start += 1;
        }
    }
    None
}

/// The request's arguments: the query an internal redirect named (none when it named
/// none, as nginx's), else its target's.
fn args<'e>(e: &Entry<'e>) -> Option<&'e [u8]> {
    match e.redirected_args {
        Some(named) => (!named.is_empty()).then_some(named),
        None => query(e),
    }
}

/// The query of the request's target (after its `?`), if it has one.
fn query<'e>(e: &Entry<'e>) -> Option<&'e [u8]> {
    let uri = e.uri?;
    let at = uri.iter().position(|&b| b == b'?')?;
    uri.get(at + 1..)
}

/// The client's verified certificate, if it gave one.
fn cert<'e>(e: &Entry<'e>) -> Option<&'e PeerCert> {
    e.tls.and_then(|t| t.cert.as_deref())
}

/// A value as `escape` writes it; a missing one as nginx writes it there (`-` by default,
/// nothing with `json` or `none`).
fn push_value(out: &mut Vec<u8>, value: Option<&[u8]>, escape: LogEscape) {
    match (escape, value) {
        (LogEscape::Default, value) => push_nginx(out, value),
        (LogEscape::Json, Some(value)) => push_nginx_json(out, value),
        (LogEscape::None, Some(value)) => out.extend_from_slice(value),
        (LogEscape::Json | LogEscape::None, None) => {}
    }
}

/// `$host`: lower case (as nginx keeps it), then escaped; copied through a small buffer,
/// so nothing is allocated.
fn push_host(out: &mut Vec<u8>, host: Option<&[u8]>, escape: LogEscape) {
    let Some(host) = host else {
        return push_value(out, None, escape);
    };
    let mut lower = [0u8; 64];
    for piece in host.chunks(lower.len()) {
        let lower = &mut lower[..piece.len()];
        lower.copy_from_slice(piece);
        lower.make_ascii_lowercase();
        push_value(out, Some(lower), escape);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    /// The lines `t` writes for `entries`, at the epoch.
    fn lines(t: &Template, entries: &[Entry<'_>]) -> String {
        let mut clock = crate::access_log::time::LogClock::new();
        let stamp = clock.at(std::time::SystemTime::UNIX_EPOCH);
        let mut out = Vec::new();
        for entry in entries {
            t.write(&mut out, entry, &stamp);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn variables_and_text_are_told_apart() {
        let t = Template::parse(
            "$remote_addr ${status}x \"$http_x_forwarded_for\" $http_X_Forwarded_For",
        )
        .unwrap();
        assert_eq!(t.headers(), [b"x-forwarded-for".to_vec()]);
        assert_eq!(
            t.pieces,
            [
                Piece::Var(Var::RemoteAddr),
                Piece::Text(b" ".to_vec()),
                Piece::Var(Var::Status),
                Piece::Text(b"x \"".to_vec()),
                Piece::Var(Var::Header(0)),
                Piece::Text(b"\" ".to_vec()),
                Piece::Var(Var::Header(0)),
                Piece::Text(b"\n".to_vec()),
            ]
        );
    }

    #[test]
    fn a_line_shows_each_value_as_nginx_does() {
        use crate::access_log::UpstreamFields;
        use crate::access_log::time::LogClock;
        let t = Template::parse(
            "$remote_addr $request_method $status $body_bytes_sent $request_time \
             $upstream_addr $upstream_response_time $request_id $host \"$http_a\" $http_b",
        )
        .unwrap();
        let entry = |upstream| Entry {
            status: 204,
            request_time: Duration::from_micros(1_234_567),
            upstream,
            request_id: Some("abc"),
            host: Some(b"App.Example"),
            headers: &[Some(b"x\"y"), None],
            ..crate::access_log::line::sample()
        };
        let mut clock = LogClock::new();
        let stamp = clock.at(std::time::SystemTime::UNIX_EPOCH);
        let mut out = Vec::new();
        t.write(&mut out, &entry(None), &stamp);
        let upstream = UpstreamFields {
            addr: "unix:/a.sock",
            connect: Some(Duration::ZERO),
            response: Duration::from_millis(5),
            status: Some(204),
            header: Some(Duration::from_millis(4)),
            bytes: None,
        };
        t.write(&mut out, &entry(Some(upstream)), &stamp);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "192.0.2.7 GET 204 0 1.234 - - abc app.example \"x\\x22y\" -\n\
             192.0.2.7 GET 204 0 1.234 unix:/a.sock 0.005 abc app.example \"x\\x22y\" -\n"
        );
    }

    /// nginx writes `-` itself for an upstream's missing status or time (a request that went
    /// to an upstream and got no answer), whatever the escaping; a request that went to none
    /// has no value, which JSON writes empty.
    #[test]
    fn an_upstream_without_an_answer_is_a_dash_under_every_escape() {
        use crate::access_log::UpstreamFields;
        let no_answer = UpstreamFields {
            addr: "unix:/a.sock",
            connect: None,
            response: Duration::from_millis(5),
            status: None,
            header: None,
            bytes: None,
        };
        let format = "\"$upstream_status\" \"$upstream_connect_time\" \"$upstream_header_time\"";
        for escape in [LogEscape::Default, LogEscape::Json, LogEscape::None] {
            let t = Template::parse(format).unwrap().escaped(escape);
            let entries = [
                Entry {
                    upstream: Some(no_answer),
                    ..crate::access_log::line::sample()
                },
                crate::access_log::line::sample(),
            ];
            let none = if escape == LogEscape::Default {
                "-"
            } else {
                ""
            };
            assert_eq!(
                lines(&t, &entries),
                format!("\"-\" \"-\" \"-\"\n\"{none}\" \"{none}\" \"{none}\"\n"),
                "{escape:?}"
            );
        }
    }

    #[test]
    fn upstream_byte_counts() {
        use crate::access_log::line::{UpstreamBytes, UpstreamFields};
        use crate::access_log::time::LogClock;
        let t = Template::parse(
            "$upstream_bytes_received $upstream_bytes_sent $upstream_response_length",
        )
        .unwrap();
        let mut clock = LogClock::new();
        let stamp = clock.at(std::time::SystemTime::UNIX_EPOCH);
        let line = |bytes| {
            let upstream = UpstreamFields {
                addr: "unix:/a.sock",
                connect: Some(Duration::ZERO),
                response: Duration::from_millis(5),
                status: Some(200),
                header: Some(Duration::from_millis(4)),
                bytes,
            };
            let entry = Entry {
                upstream: Some(upstream),
                ..crate::access_log::line::sample()
            };
            let mut out = Vec::new();
            t.write(&mut out, &entry, &stamp);
            String::from_utf8(out).unwrap()
        };
        let bytes = UpstreamBytes {
            received: 1234,
            sent: 567,
            body: 1000,
        };
        assert_eq!(line(Some(bytes)), "1234 567 1000\n");
        assert_eq!(line(None), "- - -\n", "an answer not read to its end");
    }

    #[test]
    fn connection_and_size_variables() {
        use crate::access_log::time::LogClock;
        let t = Template::parse(
            "$bytes_sent $request_length $remote_port $realip_remote_addr $server_addr \
             $server_port $pid $hostname $uri $args$is_args|$query_string|$https",
        )
        .unwrap();
        let entry = |remote_addr: &str, remote_port, uri: &'static [u8]| Entry {
            remote_addr: remote_addr.parse().unwrap(),
            remote_port,
            request_line: None,
            method: None,
            target: None,
            protocol: None,
            body_bytes: 10,
            uri: Some(uri),
            bytes_sent: 130,
            request_length: 77,
            path: Some(b"/a b"),
            local: "127.0.0.1:8080".parse().unwrap(),
            hostname: "web-1",
            pid: 4242,
            ..crate::access_log::line::sample()
        };
        let mut clock = LogClock::new();
        let stamp = clock.at(std::time::SystemTime::UNIX_EPOCH);
        let mut out = Vec::new();
        t.write(
            &mut out,
            &entry("192.0.2.7", Some(50000), b"/a%20b?x=1"),
            &stamp,
        );
        // A trusted proxy named the client without its port; a bare `?` is empty args.
        t.write(&mut out, &entry("203.0.113.9", None, b"/a%20b?"), &stamp);
        t.write(
            &mut out,
            &entry("192.0.2.7", Some(50000), b"/a%20b"),
            &stamp,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "130 77 50000 192.0.2.7 127.0.0.1 8080 4242 web-1 /a b x=1?|x=1|\n\
             130 77  192.0.2.7 127.0.0.1 8080 4242 web-1 /a b ||\n\
             130 77 50000 192.0.2.7 127.0.0.1 8080 4242 web-1 /a b -|-|\n"
        );
    }

    #[test]
    fn pipelining_completion_and_the_connection_show_as_nginx_shows_them() {
        let t = Template::parse("$pipe \"$request_completion\" $connection").unwrap();
        assert!(t.shows_connection());
        let sample = crate::access_log::line::sample;
        let entries = [
            Entry {
                connection: Some(8193),
                ..sample()
            },
            Entry {
                pipelined: true,
                completed: false,
                ..sample()
            },
        ];
        assert_eq!(lines(&t, &entries), ". \"OK\" 8193\np \"\" -\n");
        assert!(!Template::parse("$status").unwrap().shows_connection());
        // Known before the answer: a header may carry the connection's number; not what only
        // the log line knows.
        assert!(Template::parse_value("$connection").is_ok());
        for late in ["$pipe", "$request_completion"] {
            let err = Template::parse_value(late).unwrap_err();
            assert!(err.contains("for log lines only"), "{err}");
        }
    }

    #[test]
    fn sent_header_variables_read_the_answer_s_head_as_it_went_out() {
        let t = Template::parse(
            "$sent_http_content_type|$sent_http_X_Instance|$sent_http_set_cookie|$sent_http_none|\
             $sent_http_cache_control|$sent_http_link",
        )
        .unwrap();
        assert!(t.names_sent_headers());
        assert!(
            !Template::parse("$upstream_http_a")
                .unwrap()
                .names_sent_headers()
        );
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
                     x-instance:  a1 \r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\
                     Cache-Control: private\r\nLink: </a.css>\r\nCache-Control: max-age=60\r\n\r\n";
        let sample = crate::access_log::line::sample;
        let entries = [Some(&head[..]), None].map(|sent_head| Entry {
            sent_head,
            ..sample()
        });
        // The first of several, as nginx 1.22, but Cache-Control and Link joined, as it
        // keeps them; none sent, or no answer at all: missing.
        assert_eq!(
            lines(&t, &entries),
            "text/plain; charset=utf-8|a1|a=1|-|private, max-age=60|</a.css>\n-|-|-|-|-|-\n"
        );
        let err = Template::parse_value("$sent_http_location").unwrap_err();
        assert!(err.contains("for log lines only"), "{err}");
    }

    #[test]
    fn the_request_body_shows_escaped_when_kept() {
        let t = Template::parse("\"$request_body\"").unwrap();
        assert!(t.shows_request_body());
        let sample = crate::access_log::line::sample;
        let entries = [Some(&b"a=1&b=\"x\"\n"[..]), None].map(|request_body| Entry {
            request_body,
            ..sample()
        });
        // As nginx escapes it; not kept (in a temp file, or none): missing.
        assert_eq!(lines(&t, &entries), "\"a=1&b=\\x22x\\x22\\x0A\"\n\"-\"\n");
        assert!(Template::parse_value("$request_body").is_err());
    }

    #[test]
    fn a_wrong_format_is_named() {
        for (text, says) in [
            (
                "$upstream_cache_status",
                "unknown variable `$upstream_cache_status`",
            ),
            ("$ x", "without a variable name"),
            ("${status", "without `}`"),
            ("$http_", "unknown variable `$http_`"),
            ("$arg_", "unknown variable `$arg_`"),
            ("$cookie_", "unknown variable `$cookie_`"),
            ("${arg_a=b}", "letters, digits and `_`"),
        ] {
            let err = Template::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("$http_h{i} ")).collect();
        assert!(Template::parse(&many).unwrap_err().contains("more than 16"));
    }

    #[test]
    fn arguments_are_found_as_nginx_finds_them() {
        let query = b"x=1&Q=a%20b&q=2&empty=&flag&qq=3";
        for (name, value) in [
            (&b"q"[..], Some(&b"a%20b"[..])),
            (b"x", Some(b"1")),
            (b"empty", Some(b"")),
            (b"flag", None),
            (b"qq", Some(b"3")),
            (b"z", None),
        ] {
            assert_eq!(arg(query, name), value, "{}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn a_valueless_cookie_hides_the_next_pair_as_in_nginx() {
        // Compared with nginx 1.22's `$cookie_lang` for the same lines: `-` each time.
        for header in [
            &b"lang ;lang=fr"[..],
            b"lang;lang=fr",
            b"sid=1; lang; lang=fr",
        ] {
            assert_eq!(
                cookie(header, b"lang"),
                None,
                "{}",
                String::from_utf8_lossy(header)
            );
        }
        assert_eq!(cookie(b"lang", b"lang"), None);
        assert_eq!(cookie(b"la", b"lang"), None);
        assert_eq!(cookie(b"lang=", b"lang"), Some(&b""[..]));
    }

    #[test]
    fn cookies_are_found_as_nginx_finds_them() {
        let header = b"a=1; SID = s1 ;sidx=2; lang=fr, x=2;e=";
        for (name, value) in [
            (&b"a"[..], Some(&b"1"[..])),
            (b"sid", Some(b"s1 ")),
            (b"sidx", Some(b"2")),
            (b"lang", Some(b"fr, x=2")),
            (b"x", None),
            (b"e", Some(b"")),
            (b"b", None),
        ] {
            assert_eq!(
                cookie(header, name),
                value,
                "{}",
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn argument_and_cookie_variables_share_the_cookie_header() {
        use crate::access_log::time::LogClock;
        let t = Template::parse("$arg_Q $cookie_sid|$http_cookie|$cookie_none $arg_none").unwrap();
        assert_eq!(t.headers(), [b"cookie".to_vec()]);
        let entry = Entry {
            uri: Some(b"/p?q=1&r=2"),
            headers: &[Some(b"sid=abc; o=1")],
            ..crate::access_log::line::sample()
        };
        let mut clock = LogClock::new();
        let stamp = clock.at(std::time::SystemTime::UNIX_EPOCH);
        let mut out = Vec::new();
        t.write(&mut out, &entry, &stamp);
        assert_eq!(String::from_utf8(out).unwrap(), "1 abc|sid=abc; o=1|- -\n");
    }

    #[test]
    fn upstream_header_variables_are_for_log_lines() {
        let t = Template::parse("$upstream_http_content_type|${upstream_http_X_Id}").unwrap();
        assert!(t.names_upstream_headers());
        assert!(t.names_upstream_header(b"x-id"));
        assert!(!t.names_upstream_header(b"x-other"));
        let answer: &crate::access_log::ReadHeaders = &[
            (b"x-id".as_slice().into(), b"7".as_slice().into()),
            (
                b"content-type".as_slice().into(),
                b"text/html".as_slice().into(),
            ),
        ];
        let entry = Entry {
            upstream_headers: answer,
            ..crate::access_log::line::sample()
        };
        let mut clock = crate::access_log::time::LogClock::new();
        let stamp = clock.at(std::time::SystemTime::UNIX_EPOCH);
        let mut out = Vec::new();
        t.write(&mut out, &entry, &stamp);
        assert_eq!(String::from_utf8(out).unwrap(), "text/html|7\n");
        let err = Template::parse_value("$upstream_http_x_id").unwrap_err();
        assert!(err.contains("for log lines only"), "{err}");
    }

    #[test]
    fn auth_header_variables_show_the_auth_answer_s_first_header_of_the_name() {
        let t = Template::parse_value("u=$auth_http_X_Auth_User;$auth_http_none").unwrap();
        assert!(t.headers().is_empty(), "no request header is named");
        let answer: &crate::access_log::ReadHeaders = &[
            (b"x-auth-user".as_slice().into(), b"alice".as_slice().into()),
            (b"x-auth-user".as_slice().into(), b"bob".as_slice().into()),
        ];
        let entry = Entry {
            auth_headers: answer,
            ..crate::access_log::line::sample()
        };
        let mut out = Vec::new();
        t.write_value(&mut out, &entry);
        assert_eq!(String::from_utf8(out).unwrap(), "u=alice;");
        let mut out = Vec::new();
        t.write_value(&mut out, &crate::access_log::line::sample());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "u=;",
            "no auth request asked"
        );
    }
}
