//! Sans-IO PROXY protocol: the header a load balancer (HAProxy `send-proxy`, `send-proxy-v2`,
//! cloud load balancers) puts in front of a connection's first byte to say whom the
//! connection is from. Version 1 is a line of text, version 2 a binary block; both as
//! HAProxy's `proxy-protocol.txt` defines them.
//!
//! [`parse`] takes the bytes read so far and says: more needed, a complete header (its length
//! and the client's address), or not a valid header. Every size is bounded: a v1 line is at
//! most [`V1_MAX`] bytes, a v2 block at most [`V2_MAX`], so a reader never holds more than
//! that while it waits. The bytes after the header belong to the connection's protocol (an
//! HTTP request, a TLS handshake) and are the caller's to keep.
//!
//! ```
//! use ringway::proxy_protocol::{Parsed, parse};
//!
//! let wire = b"PROXY TCP4 192.0.2.7 198.51.100.1 50000 443\r\nGET / HTTP/1.1\r\n";
//! let Ok(Parsed::Complete { len, source }) = parse(wire) else { panic!() };
//! assert_eq!(source, Some("192.0.2.7:50000".parse().unwrap()));
//! assert_eq!(&wire[len..], b"GET / HTTP/1.1\r\n");
//! assert_eq!(parse(&wire[..20]), Ok(Parsed::Incomplete));
//! ```
#![deny(missing_docs)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// The longest v1 line, CRLF included (the spec's bound: `PROXY UNKNOWN` with two full IPv6
/// addresses and ports).
pub const V1_MAX: usize = 107;
/// The v2 signature, its first 12 bytes.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A v2 header's fixed part: signature, version and command, family, length.
const V2_FIXED: usize = 16;
/// The most a v2 header may carry after its fixed part (addresses and TLVs). The spec allows
/// 65535; what load balancers send (addresses, an SSL summary, a unique ID, a cloud endpoint
/// ID) is a few hundred bytes, and a reader must not be made to hold 64 KiB per connection.
pub const V2_MAX_PAYLOAD: usize = 1024;
/// The longest v2 header ringway accepts.
pub const V2_MAX: usize = V2_FIXED + V2_MAX_PAYLOAD;
/// The most bytes any header takes: a reader that holds this many and still has no complete
/// header has been sent something else.
pub const MAX_HEADER: usize = V2_MAX;

/// v1's first bytes.
const V1_PREFIX: &[u8] = b"PROXY ";
/// Address block sizes of v2 (RFC-less, from the spec): IPv4, IPv6, unix.
const V2_INET_LEN: usize = 12;
const V2_INET6_LEN: usize = 36;
const V2_UNIX_LEN: usize = 216;

/// What the bytes read so far hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A valid start: read more.
    Incomplete,
    /// A whole header.
    Complete {
        /// Its length: the connection's own bytes start here.
        len: usize,
        /// The client's address, or `None` when the connection speaks for itself (v2
        /// `LOCAL`, v1 `UNKNOWN`, an unspecified or unix family: a load balancer's own health
        /// check), so its TCP peer is the client.
        source: Option<SocketAddr>,
    },
}

/// Why bytes are not a PROXY header. `Copy`, allocation-free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// Neither signature: the connection did not start with a PROXY header at all.
    #[error("no PROXY protocol signature")]
    NotProxy,
    /// A v1 line longer than 107 bytes.
    #[error("v1 line longer than 107 bytes")]
    V1TooLong,
    /// A v1 line not ended by CRLF, or with fields missing, empty or extra.
    #[error("malformed v1 line")]
    V1Syntax,
    /// A v1 protocol other than TCP4, TCP6 or UNKNOWN.
    #[error("v1 protocol not TCP4, TCP6 or UNKNOWN")]
    V1Protocol,
    /// A v1 address that is not an address of the protocol's family.
    #[error("bad v1 address")]
    V1Address,
    /// A v1 port that is not a number up to 65535.
    #[error("bad v1 port")]
    V1Port,
    /// A v2 version other than 2.
    #[error("v2 header of another version")]
    V2Version,
    /// A v2 command other than LOCAL or PROXY.
    #[error("v2 command not LOCAL or PROXY")]
    V2Command,
    /// A v2 address family or transport that is unknown, or a datagram one (ringway serves
    /// TCP).
    #[error("v2 address family or transport unknown or not a stream")]
    V2Family,
    /// A v2 length too short for the addresses of its family.
    #[error("v2 length too short for its addresses")]
    V2Length,
    /// A v2 length over [`V2_MAX_PAYLOAD`].
    #[error("v2 header longer than ringway accepts")]
    V2TooLong,
    /// The connection ended inside the header.
    #[error("connection closed inside the header")]
    Truncated,
}

/// Parses the PROXY header at the start of `input`.
///
/// A prefix of a valid header is [`Parsed::Incomplete`], never an error; an error is final
/// (more bytes cannot mend it).
pub fn parse(input: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    match input.first() {
        None => Ok(Parsed::Incomplete),
        Some(b'P') => parse_v1(input),
        Some(b'\r') => parse_v2(input),
        Some(_) => Err(ProxyHeaderError::NotProxy),
    }
}

/// `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n`, or `PROXY UNKNOWN[ anything]\r\n`.
fn parse_v1(input: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let seen = input.len().min(V1_PREFIX.len());
    if input.get(..seen) != V1_PREFIX.get(..seen) {
        return Err(ProxyHeaderError::NotProxy);
    }
    let window = input.get(..V1_MAX).unwrap_or(input);
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if input.len() >= V1_MAX {
            Err(ProxyHeaderError::V1TooLong)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let line = match window.get(..lf).and_then(|l| l.strip_suffix(b"\r")) {
        Some(line) if !line.contains(&b'\r') => line,
        _ => return Err(ProxyHeaderError::V1Syntax),
    };
    let len = lf + 1;
    let fields = line.get(V1_PREFIX.len()..).unwrap_or_default();
    let mut fields = fields.split(|&b| b == b' ');
    let v6 = match fields.next() {
        // The sender could not tell (or will not): the receiver ignores the rest.
        Some(b"UNKNOWN") => return Ok(Parsed::Complete { len, source: None }),
        Some(b"TCP4") => false,
        Some(b"TCP6") => true,
        _ => return Err(ProxyHeaderError::V1Protocol),
    };
    let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(ProxyHeaderError::V1Syntax);
    };
    let src = v1_address(src, v6)?;
    v1_address(dst, v6)?;
    let sport = v1_port(sport)?;
    v1_port(dport)?;
    Ok(Parsed::Complete {
        len,
        source: Some(SocketAddr::new(src, sport)),
    })
}

fn v1_address(field: &[u8], v6: bool) -> Result<std::net::IpAddr, ProxyHeaderError> {
    let text = std::str::from_utf8(field).map_err(|_| ProxyHeaderError::V1Address)?;
    let ip = if v6 {
        text.parse::<Ipv6Addr>().map(Into::into)
    } else {
        text.parse::<Ipv4Addr>().map(Into::into)
    };
    ip.map_err(|_| ProxyHeaderError::V1Address)
}

/// 1 to 5 decimal digits, at most 65535 (no sign, no spaces).
fn v1_port(field: &[u8]) -> Result<u16, ProxyHeaderError> {
    if field.is_empty() || field.len() > 5 || !field.iter().all(u8::is_ascii_digit) {
        return Err(ProxyHeaderError::V1Port);
    }
    let value = field
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    u16::try_from(value).map_err(|_| ProxyHeaderError::V1Port)
}

/// The signature, `0x2C` (version 2, command), `family << 4 | transport`, a big-endian
/// length, then that many bytes: the addresses, then TLVs (skipped).
fn parse_v2(input: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let seen = input.len().min(V2_SIGNATURE.len());
    if input.get(..seen) != V2_SIGNATURE.get(..seen) {
        return Err(ProxyHeaderError::NotProxy);
    }
    let [version_command, family, len_hi, len_lo] = match input.get(12..V2_FIXED) {
        Some(&[a, b, c, d]) => [a, b, c, d],
        _ => return Ok(Parsed::Incomplete),
    };
    if version_command >> 4 != 2 {
        return Err(ProxyHeaderError::V2Version);
    }
    let local = match version_command & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(ProxyHeaderError::V2Command),
    };
    let payload = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    if payload > V2_MAX_PAYLOAD {
        return Err(ProxyHeaderError::V2TooLong);
    }
    // A LOCAL header's family and addresses mean nothing: the receiver ignores them.
    let needed = if local { 0 } else { v2_address_len(family)? };
    if payload < needed {
        return Err(ProxyHeaderError::V2Length);
    }
    let len = V2_FIXED + payload;
    let Some(block) = input.get(V2_FIXED..len) else {
        return Ok(Parsed::Incomplete);
    };
    let source = if local {
        None
    } else {
        v2_source(family, block)
    };
    Ok(Parsed::Complete { len, source })
}

/// The address block's size for a PROXY command's family byte; an error for a family or
/// transport that is unknown, or a datagram one.
fn v2_address_len(family: u8) -> Result<usize, ProxyHeaderError> {
    let (af, transport) = (family >> 4, family & 0x0f);
    match (af, transport) {
        (_, 3..) | (4.., _) => Err(ProxyHeaderError::V2Family),
        // AF_UNSPEC, or an unspecified transport: the sender says nothing usable.
        (0, _) | (_, 0) => Ok(0),
        (1 | 2, 2) => Err(ProxyHeaderError::V2Family),
        (1, _) => Ok(V2_INET_LEN),
        (2, _) => Ok(V2_INET6_LEN),
        _ => Ok(V2_UNIX_LEN),
    }
}

/// The source address in a PROXY command's block (its length already checked), or `None`
/// for the families that carry no IP address.
fn v2_source(family: u8, block: &[u8]) -> Option<SocketAddr> {
    match family {
        // TCP over IPv4: src(4) dst(4) sport(2) dport(2).
        0x11 => {
            let ip: [u8; 4] = block.get(0..4)?.try_into().ok()?;
            let port: [u8; 2] = block.get(8..10)?.try_into().ok()?;
            let addr = SocketAddrV4::new(ip.into(), u16::from_be_bytes(port));
            Some(addr.into())
        }
        // TCP over IPv6: src(16) dst(16) sport(2) dport(2).
        0x21 => {
            let ip: [u8; 16] = block.get(0..16)?.try_into().ok()?;
            let port: [u8; 2] = block.get(32..34)?.try_into().ok()?;
            let addr = SocketAddrV6::new(ip.into(), u16::from_be_bytes(port), 0, 0);
            Some(addr.into())
        }
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests;
