//! The real client IP behind trusted proxies: nginx's `real_ip_header X-Forwarded-For;
//! real_ip_recursive on;` with `set_real_ip_from` = `trusted_proxy` (or, with
//! `real_ip_recursive = false`, nginx's default `off`). Another header
//! (`real_ip_header = "X-Real-IP"`) is read the same way, as nginx reads it.
//!
//! Each proxy appends the address it got the connection from, so X-Forwarded-For reads left
//! (oldest) to right (nearest). Walking it from the right, every address a trusted proxy
//! wrote is believed; the first address that is not a trusted proxy is the client, since
//! whatever lies left of it was written by the client itself (or by proxies nobody vouches
//! for). Not walking, the rightmost address is the client: the one the trusted proxy
//! wrote. A connection from anyone but a trusted proxy is its own client, whatever it
//! sends.

use std::net::{IpAddr, SocketAddr};

/// Who a request is from: the real client's IP, and its port when that is known (REMOTE_PORT,
/// `$remote_port`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RealClient {
    pub(crate) ip: IpAddr,
    pub(crate) port: Option<u16>,
}

impl From<SocketAddr> for RealClient {
    /// Port 0 (a PROXY header's, say) is no port, as nginx's `$remote_port` shows it.
    fn from(addr: SocketAddr) -> Self {
        RealClient {
            ip: addr.ip(),
            port: Some(addr.port()).filter(|&port| port != 0),
        }
    }
}

impl std::fmt::Display for RealClient {
    /// As a socket address is written (`[v6]:port`), or the address alone without a port.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => std::net::SocketAddr::new(self.ip, port).fmt(f),
            None => self.ip.fmt(f),
        }
    }
}

/// The real client of a request on a connection from `conn`, given its X-Forwarded-For
/// header values in the order sent (several headers are one comma-joined list) and which
/// addresses are trusted proxies.
///
/// - `conn` not trusted: `conn`, whatever X-Forwarded-For says.
/// - Not `recursive`: the rightmost entry of the last header, trusted or not.
/// - Else the rightmost entry that is not trusted; all trusted: the leftmost.
/// - An entry that is not an address (`unknown`, garbage) ends the walk: the address to its
///   right (a trusted proxy, or the connection) is the most that is known, as in nginx.
///   Entries are separated by commas or spaces, as nginx splits them; empty ones (`a,,b`, a
///   trailing comma) are skipped.
///
/// The port is the connection's while the client is the connection, else the chosen entry's
/// (`1.2.3.4:5678`, `[2001:db8::1]:443`), or unknown when the entry has none: as nginx's
/// realip module sets `$remote_port`.
pub(crate) fn real_client_ip<'v>(
    conn: SocketAddr,
    forwarded_for: impl DoubleEndedIterator<Item = &'v [u8]>,
    is_trusted: impl Fn(IpAddr) -> bool,
    recursive: bool,
) -> RealClient {
    let mut client = RealClient::from(conn);
    if !is_trusted(conn.ip()) {
        return client;
    }
    for value in forwarded_for.rev() {
        for entry in value.rsplit(|&b| b == b',' || b == b' ') {
            let entry = entry.trim_ascii();
            if entry.is_empty() {
                continue;
            }
            let Some(named) = parse_entry(entry) else {
                return client;
            };
            client = named;
            if !recursive || !is_trusted(named.ip) {
                return named;
            }
        }
        if !recursive {
            break;
        }
    }
    client
}

/// One X-Forwarded-For entry as nginx's `ngx_parse_addr_port` reads it: an IP, or an
/// address with a port from 1 to 65535 (an IPv6 one in brackets; some proxies add the
/// port). A bracketed IPv6 address without a port is garbage, as for nginx, and so is a
/// zone (`[fe80::1%2]:80`, which Rust's parser would take and nginx's does not; found by
/// fuzzing).
fn parse_entry(entry: &[u8]) -> Option<RealClient> {
    let text = std::str::from_utf8(entry).ok()?;
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(RealClient { ip, port: None });
    }
    let addr = text
        .parse::<SocketAddr>()
        .ok()
        .filter(|a| a.port() != 0 && !text.contains('%'))?;
    Some(addr.into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;
    use crate::config::Cidr;

    /// The real IP for a connection from `conn` with these X-Forwarded-For values, the
    /// trusted ranges given.
    fn real(conn: &str, xff: &[&str], trusted: &[&str]) -> String {
        let client = real_client(conn, xff, trusted);
        client.ip.to_string()
    }

    /// The same with the port, `conn` on port 40000.
    fn real_client(conn: &str, xff: &[&str], trusted: &[&str]) -> RealClient {
        walked(conn, xff, trusted, true)
    }

    /// The same, walking past trusted entries or not.
    fn walked(conn: &str, xff: &[&str], trusted: &[&str], recursive: bool) -> RealClient {
        let trusted: Vec<Cidr> = trusted.iter().map(|c| c.parse().unwrap()).collect();
        let values = xff.iter().map(|v| v.as_bytes());
        let conn = SocketAddr::new(conn.parse().unwrap(), 40000);
        let is_trusted = |ip| trusted.iter().any(|c: &Cidr| c.contains(ip));
        real_client_ip(conn, values, is_trusted, recursive)
    }

    #[test]
    fn without_recursion_the_rightmost_entry_of_the_last_header_is_the_client() {
        let real =
            |xff: &[&str], trusted: &[&str]| walked("10.0.0.1", xff, trusted, false).ip.to_string();
        // Trusting every address, the balancer's entry, not the client's own.
        let everyone = &["0.0.0.0/0"];
        assert_eq!(real(&["6.6.6.6, 1.2.3.4"], everyone), "1.2.3.4");
        // Trusted or not, the rightmost entry, as nginx's `real_ip_recursive off`.
        assert_eq!(real(&["1.2.3.4, 10.0.0.2"], LB), "10.0.0.2");
        assert_eq!(real(&["1.2.3.4", "5.6.7.8, 9.9.9.9"], LB), "9.9.9.9");
        assert_eq!(real(&["1.2.3.4", "unknown"], LB), "10.0.0.1");
        assert_eq!(real(&["1.2.3.4, "], LB), "1.2.3.4");
        assert_eq!(
            walked("203.0.113.9", &["1.2.3.4"], LB, false)
                .ip
                .to_string(),
            "203.0.113.9"
        );
    }

    #[test]
    fn entries_may_be_separated_by_spaces_alone_as_nginx_splits_them() {
        assert_eq!(
            real("10.0.0.1", &["6.6.6.6 1.2.3.4 10.0.0.2"], LB),
            "1.2.3.4"
        );
        assert_eq!(real("10.0.0.1", &["1.2.3.4  ,10.0.0.2"], LB), "1.2.3.4");
    }

    const LB: &[&str] = &["10.0.0.0/8", "127.0.0.1"];

    #[test]
    fn an_untrusted_peer_is_its_own_client() {
        assert_eq!(real("203.0.113.9", &["1.2.3.4"], LB), "203.0.113.9");
        assert_eq!(real("203.0.113.9", &["10.0.0.1"], LB), "203.0.113.9");
        assert_eq!(real("203.0.113.9", &[], LB), "203.0.113.9");
        // With no trusted proxy at all, nothing is.
        assert_eq!(real("127.0.0.1", &["1.2.3.4"], &[]), "127.0.0.1");
    }

    #[test]
    fn the_rightmost_untrusted_entry_is_the_client() {
        assert_eq!(real("10.0.0.1", &["1.2.3.4"], LB), "1.2.3.4");
        // The client wrote "6.6.6.6" itself: only what the trusted proxies appended counts.
        assert_eq!(real("10.0.0.1", &["6.6.6.6, 1.2.3.4"], LB), "1.2.3.4");
        assert_eq!(
            real("10.0.0.1", &["6.6.6.6, 1.2.3.4, 10.9.9.9"], LB),
            "1.2.3.4"
        );
        assert_eq!(
            real("127.0.0.1", &["6.6.6.6,1.2.3.4,10.0.0.2,10.0.0.3"], LB),
            "1.2.3.4"
        );
    }

    #[test]
    fn all_trusted_gives_the_leftmost() {
        assert_eq!(real("10.0.0.1", &["10.0.0.2, 10.0.0.3"], LB), "10.0.0.2");
        // No X-Forwarded-For at all: the connection.
        assert_eq!(real("10.0.0.1", &[], LB), "10.0.0.1");
        assert_eq!(real("10.0.0.1", &[""], LB), "10.0.0.1");
    }

    #[test]
    fn several_headers_are_one_list() {
        assert_eq!(
            real("10.0.0.1", &["6.6.6.6", "1.2.3.4", "10.0.0.5"], LB),
            "1.2.3.4"
        );
        assert_eq!(
            real("10.0.0.1", &["1.2.3.4", "10.0.0.5, 10.0.0.6"], LB),
            "1.2.3.4"
        );
        assert_eq!(real("10.0.0.1", &["10.0.0.7", "10.0.0.5"], LB), "10.0.0.7");
    }

    #[test]
    fn entries_with_ports_brackets_spaces_and_ipv6() {
        assert_eq!(real("10.0.0.1", &["1.2.3.4:5678"], LB), "1.2.3.4");
        assert_eq!(real("10.0.0.1", &["[2001:db8::1]:443"], LB), "2001:db8::1");
        assert_eq!(real("10.0.0.1", &["2001:db8::1"], LB), "2001:db8::1");
        assert_eq!(real("10.0.0.1", &[" \t1.2.3.4 \t, "], LB), "1.2.3.4");
        assert_eq!(real("10.0.0.1", &["1.2.3.4,,, ,"], LB), "1.2.3.4");
        // An IPv4-mapped peer matches an IPv4 range.
        assert_eq!(real("::ffff:10.0.0.1", &["1.2.3.4"], LB), "1.2.3.4");
        let v6 = &["fd00::/8"];
        assert_eq!(real("fd00::1", &["1.2.3.4, fd00::2"], v6), "1.2.3.4");
    }

    #[test]
    fn garbage_ends_the_walk_at_what_is_known() {
        // "unknown" right after the trusted peer: the peer is all that is known.
        assert_eq!(real("10.0.0.1", &["1.2.3.4, unknown"], LB), "10.0.0.1");
        // Garbage left of a trusted proxy's entry: that proxy's address.
        assert_eq!(real("10.0.0.1", &["x, 10.0.0.2"], LB), "10.0.0.2");
        // Garbage left of the client is never reached.
        assert_eq!(real("10.0.0.1", &["x, 1.2.3.4"], LB), "1.2.3.4");
        assert_eq!(real("10.0.0.1", &["1.2.3.4:99999"], LB), "10.0.0.1");
        assert_eq!(real("10.0.0.1", &["1.2.3.4:0"], LB), "10.0.0.1");
        assert_eq!(real("10.0.0.1", &["[1.2.3.4]"], LB), "10.0.0.1");
        // nginx's parser takes brackets only before a port, and no zone.
        assert_eq!(real("10.0.0.1", &["[2001:db8::1]"], LB), "10.0.0.1");
        assert_eq!(real("10.0.0.1", &["[2001:db8::%1]:4438"], LB), "10.0.0.1");
        assert_eq!(real("10.0.0.1", &["1.2.3.4\u{e9}"], LB), "10.0.0.1");
    }

    #[test]
    fn the_port_is_the_connections_or_the_chosen_entrys() {
        let port = |conn, xff: &[&str]| real_client(conn, xff, LB).port;
        // The connection is the client: its own port.
        assert_eq!(port("192.0.2.1", &["1.2.3.4:5678"]), Some(40000));
        assert_eq!(port("10.0.0.1", &["unknown"]), Some(40000));
        // An entry named the client: its port, or none known.
        assert_eq!(port("10.0.0.1", &["1.2.3.4:5678"]), Some(5678));
        assert_eq!(port("10.0.0.1", &["[2001:db8::1]:443"]), Some(443));
        assert_eq!(port("10.0.0.1", &["1.2.3.4"]), None);
        assert_eq!(port("10.0.0.1", &["1.2.3.4:5678, 10.0.0.2"]), Some(5678));
        // Garbage left of a trusted proxy's entry: that entry, and its port (none here).
        assert_eq!(port("10.0.0.1", &["x, 10.0.0.2"]), None);
        assert_eq!(port("10.0.0.1", &["x, 10.0.0.2:81"]), Some(81));
    }
}
