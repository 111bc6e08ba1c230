use super::*;

use ProxyHeaderError::*;

fn addr(s: &str) -> Option<SocketAddr> {
    Some(s.parse().unwrap())
}

fn complete(len: usize, source: Option<SocketAddr>) -> Result<Parsed, ProxyHeaderError> {
    Ok(Parsed::Complete { len, source })
}

/// A v2 header: `command` (0 LOCAL, 1 PROXY), `family` byte, then `block` (addresses and
/// TLVs), its length written from the block.
fn v2(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(0x20 | command);
    out.push(family);
    out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
    out.extend_from_slice(block);
    out
}

fn inet4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    [&src[..], &dst, &sport.to_be_bytes(), &dport.to_be_bytes()].concat()
}

fn inet6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16) -> Vec<u8> {
    [
        &src.octets()[..],
        &dst.octets(),
        &sport.to_be_bytes(),
        &dport.to_be_bytes(),
    ]
    .concat()
}

/// Every header here parses to `want`, and every prefix of it (cut at each byte) is
/// incomplete: a header arriving a byte at a time is never refused.
fn assert_parses(wire: &[u8], want: Option<SocketAddr>) {
    let mut with_request = wire.to_vec();
    with_request.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(parse(wire), complete(wire.len(), want), "{wire:?}");
    assert_eq!(
        parse(&with_request),
        complete(wire.len(), want),
        "the bytes after the header are not part of it: {wire:?}"
    );
    for cut in 0..wire.len() {
        assert_eq!(
            parse(&wire[..cut]),
            Ok(Parsed::Incomplete),
            "{wire:?} cut at {cut}"
        );
    }
}

#[test]
fn v1_tcp4_and_tcp6() {
    assert_parses(
        b"PROXY TCP4 192.0.2.7 198.51.100.1 50000 443\r\n",
        addr("192.0.2.7:50000"),
    );
    assert_parses(
        b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 8080\r\n",
        addr("[2001:db8::7]:65535"),
    );
    assert_parses(b"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", addr("0.0.0.0:0"));
    assert_parses(
        b"PROXY TCP6 ::ffff:192.0.2.7 ::1 1 2\r\n",
        addr("[::ffff:192.0.2.7]:1"),
    );
}

#[test]
fn v1_unknown_means_the_tcp_peer() {
    assert_parses(b"PROXY UNKNOWN\r\n", None);
    // Anything after UNKNOWN is ignored, as the spec says.
    assert_parses(
        b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
        None,
    );
}

#[test]
fn v1_the_longest_line_fits_and_one_more_byte_does_not() {
    // 107 bytes with CRLF: the spec's worst case.
    let mut longest = b"PROXY UNKNOWN ".to_vec();
    longest.resize(V1_MAX - 2, b'x');
    longest.extend_from_slice(b"\r\n");
    assert_eq!(longest.len(), V1_MAX);
    assert_parses(&longest, None);

    let mut over = b"PROXY UNKNOWN ".to_vec();
    over.resize(V1_MAX - 1, b'x');
    over.extend_from_slice(b"\r\n");
    assert_eq!(parse(&over), Err(V1TooLong));
    // No line end within 107 bytes is final, whatever follows.
    assert_eq!(parse(&[b'P'; 200][..]), Err(NotProxy));
    let mut endless = b"PROXY TCP4 ".to_vec();
    endless.resize(V1_MAX, b'1');
    assert_eq!(parse(&endless), Err(V1TooLong));
    assert_eq!(parse(&endless[..V1_MAX - 1]), Ok(Parsed::Incomplete));
}

#[test]
fn v1_refusals_name_the_field() {
    let cases: &[(&[u8], ProxyHeaderError)] = &[
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", V1Protocol),
        (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", V1Protocol),
        (b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", V1Protocol),
        (b"PROXY \r\n", V1Protocol),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", V1Syntax),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", V1Syntax),
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", V1Syntax),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", V1Syntax),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", V1Syntax),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", V1Syntax),
        (b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", V1Syntax),
        (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", V1Address),
        (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", V1Address),
        (b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n", V1Address),
        (b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", V1Address),
        (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", V1Address),
        (b"PROXY TCP4 host 5.6.7.8 1 2\r\n", V1Address),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", V1Port),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", V1Port),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", V1Port),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 100000 2\r\n", V1Port),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \xff\r\n", V1Port),
        (b"PROXY TCP4 1.2.3.\xff 5.6.7.8 1 2\r\n", V1Address),
        (b"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", NotProxy),
        (b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", NotProxy),
        (b"GET / HTTP/1.1\r\n", NotProxy),
        (b"\x16\x03\x01\x02\x00", NotProxy),
        (b"\x00", NotProxy),
    ];
    for (wire, want) in cases {
        assert_eq!(
            parse(wire),
            Err(*want),
            "{:?}",
            String::from_utf8_lossy(wire)
        );
    }
    // A wrong byte is refused as soon as it arrives, not after 107 bytes.
    assert_eq!(parse(b"PRX"), Err(NotProxy));
    assert_eq!(parse(b"G"), Err(NotProxy));
}

#[test]
fn v2_proxy_inet_and_inet6() {
    let block = inet4([192, 0, 2, 7], [198, 51, 100, 1], 50000, 443);
    assert_parses(&v2(1, 0x11, &block), addr("192.0.2.7:50000"));
    let (src, dst) = (
        "2001:db8::7".parse().unwrap(),
        "2001:db8::1".parse().unwrap(),
    );
    let block = inet6(src, dst, 65535, 8443);
    assert_parses(&v2(1, 0x21, &block), addr("[2001:db8::7]:65535"));
}

#[test]
fn v2_tlvs_are_skipped() {
    let mut block = inet4([10, 1, 2, 3], [10, 0, 0, 1], 1234, 80);
    // PP2_TYPE_ALPN "h2", PP2_TYPE_UNIQUE_ID, and a TLV of a type nobody knows.
    block.extend_from_slice(b"\x01\x00\x02h2");
    block.extend_from_slice(b"\x05\x00\x04abcd");
    block.extend_from_slice(b"\xee\x00\x00");
    assert_parses(&v2(1, 0x11, &block), addr("10.1.2.3:1234"));
    // The largest block accepted.
    block.resize(V2_MAX_PAYLOAD, 0);
    let wire = v2(1, 0x11, &block);
    assert_eq!(wire.len(), V2_MAX);
    assert_parses(&wire, addr("10.1.2.3:1234"));
    // One byte more is refused as soon as the length is read.
    block.push(0);
    let wire = v2(1, 0x11, &block);
    assert_eq!(parse(&wire), Err(V2TooLong));
    assert_eq!(parse(&wire[..16]), Err(V2TooLong));
}

#[test]
fn v2_local_and_address_less_families_mean_the_tcp_peer() {
    // LOCAL: a load balancer's health check; its family and block are ignored, even
    // nonsense ones.
    assert_parses(&v2(0, 0x00, &[]), None);
    assert_parses(&v2(0, 0x11, &inet4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), None);
    assert_parses(&v2(0, 0xff, b"xyz"), None);
    // PROXY over AF_UNSPEC, an unspecified transport, or a unix socket: no IP to take.
    assert_parses(&v2(1, 0x00, &[]), None);
    assert_parses(&v2(1, 0x00, b"tlvs"), None);
    assert_parses(&v2(1, 0x10, &[]), None);
    assert_parses(&v2(1, 0x20, &[]), None);
    assert_parses(&v2(1, 0x31, &[0; V2_UNIX_LEN]), None);
    assert_parses(&v2(1, 0x32, &[0; V2_UNIX_LEN]), None);
}

#[test]
fn v2_refusals_name_the_field() {
    let inet = inet4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2);
    // Version: the high nibble of byte 12.
    for version in [0x00, 0x10, 0x30, 0xf0] {
        let mut wire = v2(1, 0x11, &inet);
        wire[12] = version | 1;
        assert_eq!(parse(&wire), Err(V2Version), "version byte {:#x}", wire[12]);
    }
    // Command: the low nibble.
    for command in 2..=0x0f {
        assert_eq!(parse(&v2(command, 0x11, &inet)), Err(V2Command));
    }
    // Family and transport.
    for family in [0x12, 0x22, 0x13, 0x23, 0x03, 0x41, 0xf1] {
        assert_eq!(
            parse(&v2(1, family, &inet)),
            Err(V2Family),
            "family {family:#x}"
        );
    }
    // A length too short for the family's addresses.
    assert_eq!(parse(&v2(1, 0x11, &inet[..11])), Err(V2Length));
    assert_eq!(parse(&v2(1, 0x21, &[0; 35])), Err(V2Length));
    assert_eq!(parse(&v2(1, 0x31, &[0; 215])), Err(V2Length));
    assert_eq!(parse(&v2(1, 0x11, &[])), Err(V2Length));
    // A broken signature, wherever the break.
    for at in 0..12 {
        let mut wire = v2(1, 0x11, &inet);
        wire[at] ^= 0x40;
        let got = parse(&wire);
        assert!(got.is_err(), "signature broken at {at}: {got:?}");
        assert_eq!(parse(&wire[..=at]), Err(NotProxy), "broken at {at}");
    }
}

#[test]
fn errors_are_final() {
    // Whatever follows a refused prefix, it stays refused.
    for wire in [
        &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n"[..],
        &v2(3, 0x11, &[0; 12]),
        b"HEAD / HTTP/1.0\r\n\r\n",
    ] {
        let err = parse(wire);
        assert!(err.is_err());
        let mut longer = wire.to_vec();
        longer.extend_from_slice(&[b'\n'; 300]);
        assert_eq!(parse(&longer), err);
    }
}

#[test]
fn nothing_in_is_incomplete() {
    assert_eq!(parse(b""), Ok(Parsed::Incomplete));
    assert_eq!(parse(b"\r"), Ok(Parsed::Incomplete));
    assert_eq!(parse(b"P"), Ok(Parsed::Incomplete));
}
