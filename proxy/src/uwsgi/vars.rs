//! The vars block: nginx's `uwsgi_params` set plus `HTTP_*` for each request header, with the
//! security rules of docs/ARCHITECTURE.md (no client data in non-`HTTP_` names, underscore headers and
//! untrusted X-Forwarded-Proto/Ssl dropped, Content-Length/Type never as `HTTP_`).
//!
//! Where ringway differs from nginx 1.22 with the stock params, on purpose: repeated headers
//! are joined into one var (nginx sends several and uWSGI keeps the last); REQUEST_URI for
//! an absolute-form target is its path and query with an empty path written as `/` (nginx
//! writes `?q` alone); HTTP_HOST is the authority of an absolute-form target when there is
//! one (as Debian's `HTTP_HOST $host` does, but keeping the port); SERVER_NAME falls back to
//! the Host's host part rather than nginx's `server_name` (often empty or `_`);
//! Transfer-Encoding is not sent (ringway has decoded the body).
//!
//! The client's identity is ringway's to say, never the client's: REMOTE_ADDR and
//! HTTP_X_REAL_IP are the real client IP, HTTP_X_FORWARDED_FOR is the client's
//! X-Forwarded-For with the real client IP appended (nginx's
//! `$proxy_add_x_forwarded_for` under realip), HTTP_X_REQUEST_ID is the request's ID; the client's own
//! X-Real-IP and X-Request-ID headers are not passed on.

use std::net::{IpAddr, SocketAddr};

use super::{PacketWriter, UwsgiError};
use crate::http::ascii::{push_ip, push_u64};
use crate::http::{HeaderSpan, RequestHead, host_without_port};
use crate::tls::ClientCert;

/// The protocol name of a request that came as an HTTP/2 stream, as nginx names it.
pub const HTTP2: &str = "HTTP/2.0";

/// What the vars need to know beyond the request itself.
#[derive(Debug, Clone, Copy)]
pub struct RequestEnv<'a> {
    /// PATH_INFO: the normalised path ([`super::normalize_path`]), without the mount point.
    pub path_info: &'a [u8],
    /// REQUEST_METHOD in place of the request's, if any (`GET` after an X-Accel-Redirect,
    /// as nginx makes it).
    pub method: Option<&'a [u8]>,
    /// QUERY_STRING in place of the request's, if any (after an X-Accel-Redirect, the
    /// query it named, as nginx makes it).
    pub query: Option<&'a [u8]>,
    /// SCRIPT_NAME: the mount point, when the app is mounted below `/`.
    pub script_name: Option<&'a [u8]>,
    /// Vars set by the operator (nginx `uwsgi_param`): written last, they replace ringway's
    /// own vars of the same name and any `HTTP_` var a client header would make.
    pub params: &'a [(String, String)],
    /// The real client IP (REMOTE_ADDR, HTTP_X_REAL_IP, appended to HTTP_X_FORWARDED_FOR):
    /// the connection's (a PROXY protocol header's source, or the TCP peer), or a trusted
    /// proxy's word.
    pub client_ip: IpAddr,
    /// The real client's port (REMOTE_PORT): the connection's, the port a trusted proxy's word gave,
    /// or `None` (REMOTE_PORT empty) when that word gave none, as nginx's realip module
    /// leaves it.
    pub client_port: Option<u16>,
    /// The request's ID (HTTP_X_REQUEST_ID; not sent when empty).
    pub request_id: &'a [u8],
    /// Local address the request came in on (SERVER_PORT; SERVER_NAME fallback).
    pub local: SocketAddr,
    /// Whether the client connection is TLS (REQUEST_SCHEME, HTTPS).
    pub https: bool,
    /// The client's certificate: SSL_CLIENT_VERIFY and the SSL_CLIENT_* vars of a verified
    /// one; while certificates are asked for, a client's X-SSL-Client-* headers are dropped.
    pub client_cert: ClientCert<'a>,
    /// Whether the request came as an HTTP/2 stream: SERVER_PROTOCOL is `HTTP/2.0`, as
    /// nginx's `$server_protocol` (the head ringway parsed is its HTTP/1.1 rendering).
    pub http2: bool,
    /// DOCUMENT_ROOT.
    pub document_root: &'a str,
    /// Configured SERVER_NAME; when `None`, the Host's host part (without port), else the
    /// local IP.
    pub server_name: Option<&'a str>,
    /// The peer is a trusted proxy: keep its X-Forwarded-Proto / X-Forwarded-Ssl.
    pub trusted_peer: bool,
    /// The header a trusted proxy names the client in (`real_ip_header`, lower case): from
    /// any other peer it is dropped, as X-Real-IP is.
    pub real_ip_header: &'a [u8],
    /// The host a trusted proxy says the client asked for, when this server serves it
    /// (`exchange::forwarded_host`): sent as HTTP_X_FORWARDED_HOST; a client's own
    /// X-Forwarded-Host never is.
    pub forwarded_host: Option<&'a [u8]>,
    /// Forward headers whose names contain `_` (off by default: spoofing).
    pub allow_underscores: bool,
    /// The request asks to switch protocols (a WebSocket handshake): its Upgrade and
    /// Sec-WebSocket-* headers go to the app, which may answer 101; another request's are
    /// dropped.
    pub upgrading: bool,
}

/// Encodes the uwsgi packet header and vars for `head` (parsed from `buf`, with `headers`)
/// into `out` (cleared first). `content_length` is the body length ringway will send
/// (the decoded length for chunked bodies; `None` when there is no body, sent as empty like
/// nginx). `max_vars` is the upstream's buffer size. Returns the packet length.
pub fn encode_request(
    buf: &[u8],
    head: &RequestHead,
    headers: &[HeaderSpan],
    env: &RequestEnv<'_>,
    content_length: Option<u64>,
    max_vars: usize,
    out: &mut Vec<u8>,
) -> Result<usize, UwsgiError> {
    let mut packet = PacketWriter::begin(out, max_vars);
    let mut w = Vars {
        packet: &mut packet,
        params: env.params,
    };
    let path = head.path.of(buf);

    w.var(b"QUERY_STRING", env.query.unwrap_or(head.query.of(buf)))?;
    let method = env.method.unwrap_or(head.method_span.of(buf));
    w.var(b"REQUEST_METHOD", method)?;
    let content_type = headers
        .iter()
        .find(|h| h.name.of(buf).eq_ignore_ascii_case(b"content-type"))
        .map(|h| h.value.of(buf))
        .unwrap_or_default();
    w.var(b"CONTENT_TYPE", content_type)?;
    w.var_with(b"CONTENT_LENGTH", |o| {
        if let Some(n) = content_length {
            push_u64(o, n);
        }
        Ok(())
    })?;
    // Path and query as sent, without an absolute-form target's scheme and authority.
    let uri = buf
        .get(head.path.start as usize..head.target.end as usize)
        .unwrap_or_default();
    w.var_with(b"REQUEST_URI", |o| {
        if path.is_empty() {
            o.push(b'/');
        }
        o.extend_from_slice(uri);
        Ok(())
    })?;
    w.var(b"PATH_INFO", env.path_info)?;
    if let Some(mount) = env.script_name {
        w.var(b"SCRIPT_NAME", mount)?;
    }
    w.var(b"DOCUMENT_ROOT", env.document_root.as_bytes())?;
    let protocol = if env.http2 {
        HTTP2
    } else {
        head.version.as_str()
    };
    w.var(b"SERVER_PROTOCOL", protocol.as_bytes())?;
    w.var(
        b"REQUEST_SCHEME",
        if env.https { b"https" } else { b"http" },
    )?;
    if env.https {
        w.var(b"HTTPS", b"on")?;
    }
    // Most servers ask for no certificates: not even an empty iterator for them.
    if env.client_cert.drops_claims() {
        for (field, value) in env.client_cert.fields() {
            w.var(field.var.as_bytes(), value.as_bytes())?;
        }
    }
    w.var_with(b"REMOTE_ADDR", |o| {
        push_ip(o, env.client_ip);
        Ok(())
    })?;
    w.var_with(b"REMOTE_PORT", |o| {
        if let Some(port) = env.client_port {
            push_u64(o, port.into());
        }
        Ok(())
    })?;
    w.var_with(b"SERVER_PORT", |o| {
        push_u64(o, env.local.port().into());
        Ok(())
    })?;
    w.var_with(b"SERVER_NAME", |o| {
        match (env.server_name, head.host) {
            (Some(name), _) => o.extend_from_slice(name.as_bytes()),
            (None, Some(host)) => {
                let name = host_without_port(host.of(buf));
                let name = name.strip_suffix(b".").unwrap_or(name);
                o.extend(name.iter().map(u8::to_ascii_lowercase));
            }
            // The address reached, as a host: an IPv6 one in brackets, which an app
            // joining SERVER_NAME and SERVER_PORT into a URL needs.
            (None, None) => match env.local.ip().to_canonical() {
                ip @ IpAddr::V4(_) => push_ip(o, ip),
                ip @ IpAddr::V6(_) => {
                    o.push(b'[');
                    push_ip(o, ip);
                    o.push(b']');
                }
            },
        }
        Ok(())
    })?;

    for (i, h) in headers.iter().enumerate() {
        let name = h.name.of(buf);
        if !forwarded(name, env) || w.replaces_header(name) {
            continue;
        }
        let same = |other: &HeaderSpan| other.name.of(buf).eq_ignore_ascii_case(name);
        // A repeated header was written, joined, at its first occurrence.
        if headers.get(..i).unwrap_or_default().iter().any(same) {
            continue;
        }
        let is_host = name.eq_ignore_ascii_case(b"host");
        // uWSGI reads HTTPS from it with a prefix compare: joined, a client's `on` that a
        // trusted proxy appended its own to would come first. The proxy's, last, alone (as
        // X-Forwarded-Proto's).
        let last_only = name.eq_ignore_ascii_case(b"x-forwarded-ssl");
        let separator: &[u8] = if name.eq_ignore_ascii_case(b"cookie") {
            b"; "
        } else {
            b", "
        };
        w.packet.var_with_key(
            |o| {
                // Always behind the HTTP_ prefix: no header name can become a uWSGI magic
                // var (UWSGI_FILE, UWSGI_SETENV, ...).
                o.extend_from_slice(b"HTTP_");
                o.extend(name.iter().map(|&b| match b {
                    b'-' => b'_',
                    b => b.to_ascii_uppercase(),
                }));
            },
            |o| {
                if is_host {
                    // The authority of an absolute-form target wins over Host (RFC 9112
                    // §3.2.2), so the app sees the host the request was routed by.
                    o.extend_from_slice(head.host.unwrap_or(h.value).of(buf));
                    return Ok(());
                }
                let mut first = true;
                let all = headers
                    .get(i..)
                    .unwrap_or_default()
                    .iter()
                    .filter(|o| same(o));
                let last = all.clone().next_back().map(|h| h.value.of(buf));
                if let (true, Some(value)) = (last_only, last) {
                    o.extend_from_slice(value);
                    return Ok(());
                }
                for other in all {
                    if !first {
                        o.extend_from_slice(separator);
                    }
                    first = false;
                    o.extend_from_slice(other.value.of(buf));
                }
                Ok(())
            },
        )?;
    }
    identity_vars(&mut w, buf, headers, env)?;
    for (name, value) in env.params {
        w.packet.var(name.as_bytes(), value.as_bytes())?;
    }
    packet.finish()
}

/// HTTP_X_FORWARDED_FOR, HTTP_X_REAL_IP, HTTP_X_REQUEST_ID, HTTP_X_FORWARDED_HOST and
/// HTTP_X_FORWARDED_PROTO, as ringway sets them.
fn identity_vars(
    w: &mut Vars<'_, '_>,
    buf: &[u8],
    headers: &[HeaderSpan],
    env: &RequestEnv<'_>,
) -> Result<(), UwsgiError> {
    w.var_with(b"HTTP_X_FORWARDED_FOR", |o| {
        // Several headers are one list, joined in the order sent.
        for h in headers {
            let value = h.value.of(buf).trim_ascii();
            if h.name.of(buf).eq_ignore_ascii_case(b"x-forwarded-for") && !value.is_empty() {
                o.extend_from_slice(value);
                o.extend_from_slice(b", ");
            }
        }
        // The real client, as nginx's $proxy_add_x_forwarded_for appends its realip
        // $remote_addr: an app trusting one proxy (Werkzeug's `ProxyFix(x_for=1)`) reads
        // the client there, not the balancer in front (found by review).
        push_ip(o, env.client_ip);
        Ok(())
    })?;
    w.var_with(b"HTTP_X_REAL_IP", |o| {
        push_ip(o, env.client_ip);
        Ok(())
    })?;
    if !env.request_id.is_empty() {
        w.var(b"HTTP_X_REQUEST_ID", env.request_id)?;
    }
    if let Some(host) = env.forwarded_host {
        w.var(b"HTTP_X_FORWARDED_HOST", host)?;
    }
    // The scheme a trusted proxy named, as ringway read it, once: uWSGI takes this var's
    // value whole for wsgi.url_scheme, so two headers joined (`https, https`) would be a
    // scheme no app knows.
    if let Some(scheme) = crate::identity::forwarded_scheme(buf, headers, env.trusted_peer) {
        w.var(b"HTTP_X_FORWARDED_PROTO", scheme)?;
    }
    Ok(())
}

/// The packet writer, minus the vars the operator's params replace.
struct Vars<'w, 'o> {
    packet: &'w mut PacketWriter<'o>,
    params: &'w [(String, String)],
}

impl Vars<'_, '_> {
    fn is_ours(&self, key: &[u8]) -> bool {
        !self.params.iter().any(|(k, _)| k.as_bytes() == key)
    }

    fn var(&mut self, key: &[u8], value: &[u8]) -> Result<(), UwsgiError> {
        if !self.is_ours(key) {
            return Ok(());
        }
        self.packet.var(key, value)
    }

    fn var_with(
        &mut self,
        key: &[u8],
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), UwsgiError>,
    ) -> Result<(), UwsgiError> {
        if !self.is_ours(key) {
            return Ok(());
        }
        self.packet.var_with(key, write)
    }

    /// Whether a param replaces the `HTTP_` var of the header `name`.
    fn replaces_header(&self, name: &[u8]) -> bool {
        self.params.iter().any(|(k, _)| {
            k.as_bytes().strip_prefix(b"HTTP_").is_some_and(|rest| {
                rest.len() == name.len()
                    && rest.iter().zip(name).all(|(&r, &n)| {
                        r == if n == b'-' {
                            b'_'
                        } else {
                            n.to_ascii_uppercase()
                        }
                    })
            })
        })
    }
}

/// Whether a request header with this name becomes an `HTTP_` var. Each name below is
/// matched as the app would see it (`X_Real_IP` too, where underscores are allowed).
fn forwarded(name: &[u8], env: &RequestEnv<'_>) -> bool {
    // X-Foo and X_Foo would both be HTTP_X_FOO: one could spoof the other; and names with
    // other characters are dropped, as nginx's `ignore_invalid_headers`.
    if !crate::http::is_forwardable_name(name, env.allow_underscores) {
        return false;
    }
    let is = |lower: &[u8]| crate::http::names_header(name, lower);
    // PEP 3333: these two are CONTENT_LENGTH / CONTENT_TYPE only.
    // ringway decodes a chunked body and sends CONTENT_LENGTH; a leftover
    // HTTP_TRANSFER_ENCODING would make Werkzeug ignore CONTENT_LENGTH and see no body.
    // httpoxy: HTTP_PROXY looks like the proxy setting many HTTP libraries read from the
    // environment, so a client could route the app's outgoing requests.
    // ringway writes X-Forwarded-For, X-Real-IP and X-Request-ID itself (identity_vars):
    // the client's say nothing.
    if [
        &b"content-length"[..],
        b"content-type",
        b"transfer-encoding",
        b"proxy",
        b"x-forwarded-for",
        b"x-real-ip",
        b"x-request-id",
        b"x-forwarded-host",
        b"x-forwarded-proto",
    ]
    .iter()
    .any(|lower| is(lower))
    {
        return false;
    }
    // uWSGI derives wsgi.url_scheme from X-Forwarded-Ssl (X-Forwarded-Proto is ringway's
    // own, above), Werkzeug's ProxyFix and Django the port and mount point from others:
    // only a trusted proxy may set them (the same list as for an HTTP upstream).
    // The app reads ringway's word on the client's certificate from SSL_CLIENT_*; one that
    // also reads the X-SSL-Client-* headers an HTTP upstream gets must not read a client's.
    if env.client_cert.refuses_claim(name, env.trusted_peer) {
        return false;
    }
    if (crate::identity::is_url_claim(name) || is(env.real_ip_header))
        && !crate::identity::vouched(name, env.trusted_peer)
    {
        return false;
    }
    // Only a request that asks to switch protocols (HTTP/1.1, `Connection: upgrade`, not
    // to h2c) carries a WebSocket handshake to the app: another one's key would have the app
    // answer a 101 its client did not ask for.
    if !env.upgrading
        && (is(b"upgrade") || crate::http::names_header_prefix(name, b"sec-websocket-"))
    {
        return false;
    }
    // An HTTP/2 stream's `Connection: close` is ringway's own, for its pipeline: the
    // client sent none (nginx sends no HTTP_CONNECTION for HTTP/2).
    if env.http2 && is(b"connection") {
        return false;
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests;
