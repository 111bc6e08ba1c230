//! The request header values read one by one after the head parses: HTTP dates, a static
//! file's conditionals and Range, Accept-Encoding and X-Forwarded-For, on any bytes.
//!
//! The input is cut at newlines into header values (a head's values never hold one).
//! Beyond "no panic" (the target builds with overflow checks, so a client's number that
//! overflows is found here): a date read back is one an IMF-fixdate spells and round-trips;
//! a file answer is one the headers present can cause, a 206 lies inside the file, and a
//! client's own copy (its ETag, a range built from the input) gets the answer the RFC gives;
//! Accept-Encoding ignores case; the real client IP and port are the connection's or one of
//! the addresses sent (with its port, if it had one), and several X-Forwarded-For headers
//! read as their comma-joined list.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use ringway::fuzzing::{FileAnswer, FileConditions, accepts_encoding, file_answer, real_client_ip};
use ringway::http::{http_date, parse_http_date};
use ringway_fuzz::{Rng, show};

/// `Fri, 31 Dec 9999 23:59:59 GMT`: the last second an IMF-fixdate spells.
const LAST_HTTP_DATE: u64 = 253_402_300_799;

fuzz_target!(|data: &[u8]| {
    let mut rng = Rng::from_input(data);
    let values: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    for value in &values {
        date(value);
    }
    let stamp = rng.bits() % (LAST_HTTP_DATE + 1);
    assert_eq!(parse_http_date(&http_date(stamp)), Some(stamp), "{stamp}");
    file(&values, &mut rng);
    for value in &values {
        encodings(value);
    }
    forwarded_for(&values, &mut rng);
});

/// A date that parses is one an IMF-fixdate can spell, and spells back to itself.
fn date(value: &[u8]) {
    if let Some(secs) = parse_http_date(value) {
        assert!(secs <= LAST_HTTP_DATE, "{} → {secs}", show(value));
        assert_eq!(
            parse_http_date(&http_date(secs)),
            Some(secs),
            "{}",
            show(value)
        );
    }
}

/// The values, in order, as If-Match, If-None-Match, If-Modified-Since,
/// If-Unmodified-Since, Range and If-Range (an empty value: no such header), for files of
/// sizes and dates drawn from the input.
fn file(values: &[&[u8]], rng: &mut Rng) {
    let field = |i: usize| values.get(i).copied().filter(|v| !v.is_empty());
    let c = FileConditions {
        if_match: field(0),
        if_none_match: field(1),
        if_modified_since: field(2),
        if_unmodified_since: field(3),
        range: field(4),
        if_range: field(5),
        // Now, or an answer that compares no If-Modified-Since with the time.
        now: rng.one_in(2).then(|| rng.bits() % (LAST_HTTP_DATE + 1)),
    };
    let size = match rng.below(4) {
        0 => 0,
        1 => 1 + rng.below(100) as u64,
        2 => 1 << 30,
        _ => rng.bits() >> 1,
    };
    let mtime = match rng.below(3) {
        0 => 784_111_777,
        1 => rng.bits() % (LAST_HTTP_DATE + 1),
        _ => rng.bits(),
    };
    let (answer, etag) = file_answer(&c, size, mtime);
    check_etag(&etag);
    match answer {
        FileAnswer::Full => {}
        FileAnswer::Partial { start, end } => {
            assert!(
                c.range.is_some() && start <= end && end < size,
                "{answer:?} of {size}"
            );
        }
        FileAnswer::Unsatisfiable => assert!(c.range.is_some() && size > 0),
        FileAnswer::NotModified => {
            assert!(c.if_none_match.is_some() || c.if_modified_since.is_some());
        }
        FileAnswer::PreconditionFailed => {
            assert!(c.if_match.is_some() || c.if_unmodified_since.is_some());
        }
    }
    // Whitespace around a value never changes the answer.
    let padded: Vec<Vec<u8>> = values.iter().map(|v| [b" ", *v, b"\t"].concat()).collect();
    let pad = |v: Option<&[u8]>, i: usize| v.map(|_| padded[i].as_slice());
    let c_padded = FileConditions {
        if_match: pad(c.if_match, 0),
        if_none_match: pad(c.if_none_match, 1),
        if_modified_since: pad(c.if_modified_since, 2),
        if_unmodified_since: pad(c.if_unmodified_since, 3),
        range: pad(c.range, 4),
        if_range: pad(c.if_range, 5),
        now: c.now,
    };
    assert_eq!(file_answer(&c_padded, size, mtime).0, answer, "padded");
    // The client's own copy: its ETag in If-None-Match (alone, or after another tag, weak or
    // not) is current; in If-Match it holds.
    for list in [etag.clone(), [b"\"x\", W/", etag.as_slice()].concat()] {
        let copy = FileConditions {
            if_none_match: Some(&list),
            ..FileConditions::default()
        };
        assert_eq!(file_answer(&copy, size, mtime).0, FileAnswer::NotModified);
        let held = FileConditions {
            if_match: Some(&etag),
            if_none_match: Some(b"\"other\""),
            ..FileConditions::default()
        };
        assert_eq!(file_answer(&held, size, mtime).0, FileAnswer::Full);
    }
    // A range built from the input, with an If-Range that holds.
    if size > 0 {
        let start = rng.bits() % size.saturating_add(2);
        let last = start.saturating_add(rng.bits() % 1000);
        let range = format!("bytes={start}-{last}");
        let asked = FileConditions {
            range: Some(range.as_bytes()),
            if_range: Some(&etag),
            ..FileConditions::default()
        };
        let want = if start >= size {
            FileAnswer::Unsatisfiable
        } else {
            FileAnswer::Partial {
                start,
                end: last.min(size - 1),
            }
        };
        assert_eq!(
            file_answer(&asked, size, mtime).0,
            want,
            "{range} of {size}"
        );
    }
}

/// A strong ETag as nginx writes one: `"<hex>-<hex>"`.
fn check_etag(etag: &[u8]) {
    let inner = etag
        .strip_prefix(b"\"")
        .and_then(|e| e.strip_suffix(b"\""))
        .unwrap_or_else(|| panic!("ETag {}", show(etag)));
    let parts: Vec<&[u8]> = inner.split(|&b| b == b'-').collect();
    assert!(
        parts.len() == 2
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.iter().all(u8::is_ascii_hexdigit)),
        "ETag {}",
        show(etag)
    );
}

/// Accept-Encoding names codings case-insensitively, `q=` included.
fn encodings(value: &[u8]) {
    for coding in ["gzip", "br"] {
        let accepted = accepts_encoding(value, coding);
        assert_eq!(
            accepts_encoding(&value.to_ascii_uppercase(), coding),
            accepted,
            "{coding} in {}",
            show(value)
        );
        assert_eq!(
            accepts_encoding(&value.to_ascii_lowercase(), coding),
            accepted,
            "{coding} in {}",
            show(value)
        );
    }
}

/// The values as X-Forwarded-For headers, on connections from a trusted proxy and from
/// elsewhere, with 10.0.0.0/8 and 127.0.0.1 trusted.
fn forwarded_for(values: &[&[u8]], rng: &mut Rng) {
    let trusted = |ip: IpAddr| {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 10 || v4 == Ipv4Addr::LOCALHOST)
    };
    let peers: [IpAddr; 3] = [
        Ipv4Addr::LOCALHOST.into(),
        Ipv4Addr::new(10, 1, 2, 3).into(),
        Ipv4Addr::new(203, 0, 113, 9).into(),
    ];
    let peer = SocketAddr::new(peers[rng.below(peers.len())], 40000);
    let recursive = rng.below(2) == 0;
    let client = real_client_ip(peer, values, trusted, recursive);
    if !trusted(peer.ip()) {
        assert_eq!(
            client,
            (peer.ip(), Some(peer.port())),
            "an untrusted peer is its own client"
        );
    }
    if client != (peer.ip(), Some(peer.port())) {
        let (ip, port) = client;
        let sent = values.iter().any(|v| contains_address(v, ip, port));
        assert!(sent, "{ip} port {port:?} was not sent");
    }
    // Walked, several headers are one list; not walked, only the last one counts.
    let joined = values.join(&b","[..]);
    if recursive {
        assert_eq!(
            real_client_ip(peer, &[&joined], trusted, true),
            client,
            "joined"
        );
    } else if let Some(last) = values.last() {
        assert_eq!(
            real_client_ip(peer, &[*last], trusted, false),
            client,
            "the last"
        );
    }
}

/// Whether the X-Forwarded-For value holds an entry naming `ip` (bare when `port` is
/// `None`, else with that port).
fn contains_address(value: &[u8], ip: IpAddr, port: Option<u16>) -> bool {
    value.split(|&b| b == b',' || b == b' ').any(|entry| {
        // ASCII whitespace, as the daemon trims (the head parser has refused CR and LF).
        let Ok(entry) = std::str::from_utf8(entry.trim_ascii()) else {
            return false;
        };
        let Some(port) = port else {
            return entry.parse::<IpAddr>().ok() == Some(ip);
        };
        entry.parse::<SocketAddr>().ok() == Some(SocketAddr::new(ip, port))
    })
}
