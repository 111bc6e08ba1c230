//! The vars block: nginx's `uwsgi_params` set plus `HTTP_*` for each request header, with the
//! security rules of DESIGN.md (no client data in non-`HTTP_` names, underscore headers and
//! untrusted X-Forwarded-Proto/Ssl dropped, Content-Length/Type never as `HTTP_`).

use std::net::SocketAddr;

use super::UwsgiError;
use crate::http::{HeaderSpan, RequestHead};

/// What the vars need to know beyond the request itself.
#[derive(Debug, Clone, Copy)]
pub struct RequestEnv<'a> {
    /// Client address (REMOTE_ADDR, REMOTE_PORT).
    pub peer: SocketAddr,
    /// Local address the request came in on (SERVER_PORT; SERVER_NAME fallback).
    pub local: SocketAddr,
    /// Whether the client connection is TLS (REQUEST_SCHEME, HTTPS).
    pub https: bool,
    /// DOCUMENT_ROOT.
    pub document_root: &'a str,
    /// Configured SERVER_NAME; when `None`, the Host's host part (without port), else the
    /// local IP.
    pub server_name: Option<&'a str>,
    /// The peer is a trusted proxy: keep its X-Forwarded-Proto / X-Forwarded-Ssl.
    pub trusted_peer: bool,
    /// Forward headers whose names contain `_` (off by default: spoofing).
    pub allow_underscores: bool,
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
    let _ = (buf, head, headers, env, content_length, max_vars, out);
    todo!()
}
