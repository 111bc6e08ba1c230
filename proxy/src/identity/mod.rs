//! Who a request is from, and what it is called: the real client IP (from a trusted proxy's
//! X-Forwarded-For or `real_ip_header`, else the connection's own address) and the request ID (a trusted proxy's
//! X-Request-ID, else one made here). Both are decided once per request, from its head, and
//! kept on `exchange::Request`; the vars, the allow lists, the answers and the logs read them
//! from there.
//!
//! The connection's address itself (a PROXY protocol header's source, or the TCP peer) is
//! decided when the connection starts (`crate::proxy_protocol`, `conn.rs`).

mod real_ip;
mod request_id;

pub(crate) use real_ip::{RealClient, real_client_ip};
pub(crate) use request_id::{IdSource, RequestId};

use std::net::SocketAddr;

use crate::config::{Config, RealIpHeader};
use crate::http::HeaderSpan;

/// The values of the request headers named `name` (lower case), in the order sent.
pub(crate) fn header_values<'b>(
    buf: &'b [u8],
    headers: &'b [HeaderSpan],
    name: &'b [u8],
) -> impl DoubleEndedIterator<Item = &'b [u8]> + 'b {
    headers
        .iter()
        .filter(move |h| h.name.of(buf).eq_ignore_ascii_case(name))
        .map(move |h| h.value.of(buf))
}

/// Claims about the client's URL beside X-Forwarded-Proto that apps and app servers
/// believe from their trusted proxy (uWSGI's scheme from X-Forwarded-Ssl; Werkzeug's
/// ProxyFix `x_port` and `x_prefix`; X-Forwarded-Protocol, X-Forwarded-Scheme, X-Scheme
/// and Front-End-Https, which frameworks and the old Flask `ReverseProxied` snippet read as
/// the scheme, and X-Script-Name, which that snippet reads as the mount point (found by
/// review: a client's moved the app's links anywhere); RFC 7239's Forwarded, whose `for`,
/// `proto` and `host` say all of it at once): passed on, by either protocol, only from a
/// proxy ringway trusts in turn.
const URL_CLAIMS: [&[u8]; 9] = [
    b"x-forwarded-ssl",
    b"x-forwarded-protocol",
    b"x-forwarded-scheme",
    b"x-scheme",
    b"front-end-https",
    b"x-forwarded-port",
    b"x-forwarded-prefix",
    b"x-script-name",
    b"forwarded",
];

/// Whether header `name` is one of the [`URL_CLAIMS`], matched as the app reads a name
/// (`X_Forwarded_Ssl` too).
pub(crate) fn is_url_claim(name: &[u8]) -> bool {
    URL_CLAIMS
        .iter()
        .any(|c| crate::http::names_header(name, c))
}

/// Whether a claim header named `name` passes to the app: sent by a trusted proxy, and
/// spelled with dashes. An underscore spelling never passes: a trusted proxy may pass on
/// its own client's `X_Forwarded_Proto` beside the `X-Forwarded-Proto` it writes, and the
/// app reads both as one name (found by review).
pub(crate) fn vouched(name: &[u8], trusted_peer: bool) -> bool {
    trusted_peer && !name.contains(&b'_')
}

/// The scheme a trusted proxy says the client used: its last X-Forwarded-Proto (a proxy
/// that adds its own beside its client's puts it last; uWSGI behind nginx takes the last
/// too), when that says `http` or `https` (`None`: it says neither, or `trusted` is false).
pub(crate) fn forwarded_scheme(
    buf: &[u8],
    headers: &[HeaderSpan],
    trusted: bool,
) -> Option<&'static [u8]> {
    if !trusted {
        return None;
    }
    let claimed = header_values(buf, headers, b"x-forwarded-proto")
        .next_back()?
        .trim_ascii();
    if claimed.eq_ignore_ascii_case(b"https") {
        Some(b"https")
    } else if claimed.eq_ignore_ascii_case(b"http") {
        Some(b"http")
    } else {
        None
    }
}

/// The real client and the ID of the request whose head is in `buf`, on a connection from
/// `conn`, whose word is believed if `trusted` (see `Client::vouched_for`).
pub(crate) fn identify(
    buf: &[u8],
    headers: &[HeaderSpan],
    (conn, trusted): (SocketAddr, bool),
    config: &Config,
    ids: &IdSource,
) -> (RealClient, RequestId) {
    if !trusted {
        // Nothing the client says about itself counts: no header is even looked at.
        return (conn.into(), ids.next());
    }
    let is_trusted = |ip| config.is_trusted(ip);
    let recursive = config.real_ip_recursive;
    let mut named = header_values(buf, headers, config.real_ip_header.name().as_bytes());
    let client = match config.real_ip_header {
        RealIpHeader::ForwardedFor => real_client_ip(conn, named, is_trusted, recursive),
        // The first such header, as nginx's realip module reads any but X-Forwarded-For.
        RealIpHeader::Named(_) => {
            real_client_ip(conn, named.next().into_iter(), is_trusted, recursive)
        }
    };
    let mut given = header_values(buf, headers, b"x-request-id");
    // One sane X-Request-ID is kept; none, several or an odd one and ringway makes its own.
    let id = match (given.next(), given.next()) {
        (Some(value), None) => RequestId::from_header(value),
        _ => None,
    };
    (client, id.unwrap_or_else(|| ids.next()))
}
