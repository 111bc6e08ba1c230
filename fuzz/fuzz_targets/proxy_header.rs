//! The PROXY protocol header parser (`proxy_protocol::parse`) on any bytes, as a load
//! balancer (or anyone reaching a `proxy_protocol` listener) may send them. A whole header
//! is found at the same length whatever follows it, every shorter prefix of it is
//! `Incomplete`, its length stays within the protocol's bounds, and an error stays an error
//! when more bytes arrive. Then headers built from the input's bits (v1 and v2, IPv4 and
//! IPv6, with TLVs) parse back to the address they carry.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use ringway::proxy_protocol::{Parsed, parse};
use ringway_fuzz::{Rng, prefix_lengths};

/// The longest v1 line, and the most a v2 header may carry after its fixed 16 bytes.
const V1_MAX: usize = 107;
const V2_MAX: usize = 16 + 1024;

fuzz_target!(|data: &[u8]| {
    let mut rng = Rng::from_input(data);
    match parse(data) {
        Ok(Parsed::Complete { len, source }) => {
            assert!(len <= data.len() && len <= V1_MAX.max(V2_MAX), "len {len}");
            // The header alone, and the header with other bytes after it: the same.
            assert_eq!(parse(&data[..len]), Ok(Parsed::Complete { len, source }));
            let mut more = data[..len].to_vec();
            more.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            assert_eq!(parse(&more), Ok(Parsed::Complete { len, source }));
            // Every shorter prefix waits for more.
            for cut in prefix_lengths(data, len, &mut rng) {
                assert_eq!(parse(&data[..cut]), Ok(Parsed::Incomplete), "cut at {cut}");
            }
        }
        Ok(Parsed::Incomplete) => {
            // Waiting is bounded: the longest header either side could still become.
            assert!(data.len() < V2_MAX, "incomplete after {} bytes", data.len());
        }
        Err(err) => {
            // Final: nothing a client sends next turns it into a header.
            let mut more = data.to_vec();
            more.extend_from_slice(b"\r\n");
            assert!(parse(&more).is_err(), "{err} became valid");
        }
    }
    round_trip(&mut rng);
});

/// A header made from the input's bits parses back to its source address.
fn round_trip(rng: &mut Rng) {
    let source = address(rng);
    let destination = address(rng);
    let header = if rng.one_in(2) {
        v1(source, destination)
    } else {
        v2(source, destination, rng)
    };
    let Some(header) = header else { return };
    let Ok(Parsed::Complete { len, source: got }) = parse(&header) else {
        panic!("{header:?} did not parse");
    };
    assert_eq!(len, header.len());
    assert_eq!(got, Some(source));
}

fn address(rng: &mut Rng) -> SocketAddr {
    let port = rng.bits() as u16;
    let ip = if rng.one_in(2) {
        IpAddr::V4(Ipv4Addr::from(rng.bits() as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(
            (u128::from(rng.bits()) << 64) | u128::from(rng.bits()),
        ))
    };
    SocketAddr::new(ip, port)
}

/// A v1 line, when both addresses are of one family (the protocol has no mixed line).
fn v1(source: SocketAddr, destination: SocketAddr) -> Option<Vec<u8>> {
    let family = match (source, destination) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) => "TCP4",
        (SocketAddr::V6(_), SocketAddr::V6(_)) => "TCP6",
        _ => return None,
    };
    // An unspecified source means "no address" to the parser: not a round trip.
    if source.ip().is_unspecified() {
        return None;
    }
    Some(
        format!(
            "PROXY {family} {} {} {} {}\r\n",
            source.ip(),
            destination.ip(),
            source.port(),
            destination.port()
        )
        .into_bytes(),
    )
}

/// A v2 PROXY header over TCP, with a few TLVs after the addresses.
fn v2(source: SocketAddr, destination: SocketAddr, rng: &mut Rng) -> Option<Vec<u8>> {
    if source.ip().is_unspecified() {
        return None;
    }
    let mut addresses = Vec::new();
    let family = match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            addresses.extend_from_slice(&s.ip().octets());
            addresses.extend_from_slice(&d.ip().octets());
            0x11
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            addresses.extend_from_slice(&s.ip().octets());
            addresses.extend_from_slice(&d.ip().octets());
            0x21
        }
        _ => return None,
    };
    addresses.extend_from_slice(&source.port().to_be_bytes());
    addresses.extend_from_slice(&destination.port().to_be_bytes());
    for _ in 0..rng.below(4) {
        let value_len = rng.below(64);
        addresses.push(rng.bits() as u8);
        addresses.extend_from_slice(&(value_len as u16).to_be_bytes());
        addresses.extend((0..value_len).map(|_| rng.bits() as u8));
    }
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.push(0x21); // version 2, PROXY
    header.push(family);
    header.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    header.extend_from_slice(&addresses);
    Some(header)
}
