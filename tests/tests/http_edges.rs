//! HTTP details of ringway's answers: a `Date` on every one, headers the upstream's
//! `Connection` names stay behind, HTTP/1.x minor versions above 1 are served as 1.1, many
//! `Set-Cookie` lines pass whole, a Host with userinfo is refused before the app, TRACE and
//! CONNECT get 405, and with `hosts` set a Host not listed gets 421.

use std::os::unix::net::UnixListener;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringway_tests::checks::check_healthy;
use ringway_tests::client::roundtrip_raw;
use ringway_tests::uwsgi::UwsgiOptions;
use ringway_tests::wait::poll_until;
use ringway_tests::{App, Conn, Req, Response, Ringway, Uwsgi, roundtrip};

const DAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Seconds since the epoch of an IMF-fixdate (RFC 9110 5.6.7:
/// `Sun, 06 Nov 1994 08:49:37 GMT`), or why the text is not one.
fn parse_imf_fixdate(text: &str) -> Result<i64, String> {
    let part = |from: usize, to: usize| text.get(from..to).unwrap_or("");
    let number = |from: usize, to: usize| -> Result<i64, String> {
        let digits = part(from, to);
        if digits.len() == to - from && digits.bytes().all(|b| b.is_ascii_digit()) {
            digits.parse().map_err(|e| format!("{digits:?}: {e}"))
        } else {
            Err(format!("{digits:?} at {from} is not {} digits", to - from))
        }
    };
    if text.len() != 29 {
        return Err(format!("{} characters, not 29", text.len()));
    }
    let separators = [
        (3, ", "),
        (7, " "),
        (11, " "),
        (16, " "),
        (19, ":"),
        (22, ":"),
        (25, " GMT"),
    ];
    for (at, want) in separators {
        if part(at, at + want.len()) != want {
            return Err(format!("no {want:?} at {at}"));
        }
    }
    let day_name = DAY_NAMES
        .iter()
        .position(|d| *d == part(0, 3))
        .ok_or("no day name")?;
    let month = MONTHS
        .iter()
        .position(|m| *m == part(8, 11))
        .ok_or("no month name")?;
    let (day, year) = (number(5, 7)?, number(12, 16)?);
    let (hour, minute, second) = (number(17, 19)?, number(20, 22)?, number(23, 25)?);
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err("a field out of range".into());
    }
    let days = days_from_civil(year, month as i64 + 1, day);
    // 1970-01-01 was a Thursday.
    if (days + 4).rem_euclid(7) != day_name as i64 {
        return Err(format!("that date is not a {}", DAY_NAMES[day_name]));
    }
    Ok(days * 86_400 + hour * 3600 + minute * 60 + second)
}

#[test]
fn the_imf_fixdate_parser_knows_the_rfc_example() {
    assert_eq!(
        parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"),
        Ok(784_111_777)
    );
    assert!(parse_imf_fixdate("Mon, 06 Nov 1994 08:49:37 GMT").is_err());
    assert!(parse_imf_fixdate("Sunday, 06-Nov-94 08:49:37 GMT").is_err());
    assert!(parse_imf_fixdate("Sun, 6 Nov 1994 08:49:37 GMT").is_err());
    assert!(parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 UTC").is_err());
}

/// Asserts `r` has exactly one `Date`, an IMF-fixdate within a minute of the clock.
fn assert_dated(r: &Response, what: &str) {
    let dates = r.header_all("date");
    assert_eq!(
        dates.len(),
        1,
        "{what}: one Date header (RFC 9110 6.6.1): {r:?}"
    );
    let at = parse_imf_fixdate(&dates[0])
        .unwrap_or_else(|e| panic!("{what}: Date {:?} is not an IMF-fixdate: {e}", dates[0]));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    assert!(
        (at - now).abs() <= 60,
        "{what}: Date {:?} is {} s away from now",
        dates[0],
        at - now
    );
}

#[test]
fn every_answer_carries_a_date() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::start(&uwsgi);
    let addr = ringway.addr();
    let proxied = [
        ("GET", "/", 200),
        ("HEAD", "/", 200),
        ("GET", "/stream/1000", 200),
        ("GET", "/status/204", 204),
        ("GET", "/status/304", 304),
        ("GET", "/no/such/route", 404),
        ("GET", "/error", 502), // the app dies: ringway's own 502
    ];
    for (method, target, status) in proxied {
        let r = roundtrip(addr, &Req::new(method, target));
        assert_eq!(r.status, status, "{method} {target}: {r:?}");
        assert_dated(&r, &format!("{method} {target}"));
    }
    let r = roundtrip_raw(addr, b"GARBAGE\r\n\r\n").expect("an answer to garbage");
    assert_eq!(r.status, 400, "{r:?}");
    assert_dated(&r, "ringway's 400 to garbage");
    check_healthy(addr, "garbage");

    // ringway's 502 when uWSGI is down (a socket file nobody listens on).
    let dir = tempfile::tempdir().expect("temp dir");
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).expect("bind"));
    let down = Ringway::builder()
        .upstream(format!("unix:{}", stale.display()))
        .start();
    let r = roundtrip(down.addr(), &Req::get("/"));
    assert_eq!(r.status, 502, "{r:?}");
    assert_dated(&r, "ringway's 502 with uWSGI down");
}

/// RFC 9110 7.6.1: the headers an answer's `Connection` header names are for this hop
/// only. (wsgiref.validate forbids a Connection header in a WSGI app: validation is off.)
#[test]
fn headers_named_in_the_upstreams_connection_header_stay_behind() {
    let uwsgi = Uwsgi::start_with(UwsgiOptions {
        validate: false,
        ..UwsgiOptions::new(App::Raw)
    });
    let direct = uwsgi
        .get("/hop-by-hop")
        .expect("GET /hop-by-hop from uWSGI");
    assert_eq!(
        (direct.header("x-secret"), direct.header("connection")),
        (Some("1".into()), Some("X-Secret, X-Also-Secret".into())),
        "the app does send them, so what the client misses, ringway dropped: {direct:?}"
    );
    let ringway = Ringway::start(&uwsgi);
    let mut conn = Conn::open(ringway.addr());
    for round in 0..2 {
        conn.send(&Req::get("/hop-by-hop").to_bytes())
            .expect("send");
        let r = conn.read_response().expect("response");
        assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{r:?}");
        for name in ["X-Secret", "X-Also-Secret"] {
            assert_eq!(
                r.header(name),
                None,
                "round {round}: {name} is named in the upstream's Connection header and must \
                 not reach the client: {r:?}"
            );
        }
        for value in r.header_all("connection") {
            assert!(
                !value.to_ascii_lowercase().contains("secret"),
                "round {round}: the upstream's Connection header reached the client: {r:?}"
            );
        }
        assert_eq!(
            r.header("x-public").as_deref(),
            Some("3"),
            "round {round}: a header nobody named passes: {r:?}"
        );
    }
}

#[test]
fn http_1_2_is_served_as_http_1_1() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::start(&uwsgi);
    let addr = ringway.addr();
    let r = roundtrip_raw(addr, b"GET / HTTP/1.2\r\nHost: localhost\r\n\r\n")
        .expect("an answer to HTTP/1.2");
    assert_eq!(
        (r.status, r.version, r.text().as_str()),
        (200, 1, "Hello, World!"),
        "RFC 9110 2.5: a request with an unknown higher minor version of HTTP/1 is served as \
         HTTP/1.1, not 505: {r:?}"
    );
    check_healthy(addr, "GET / HTTP/1.2");
}

#[test]
fn http_2_and_3_request_lines_get_505() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::start(&uwsgi);
    let addr = ringway.addr();
    for version in ["HTTP/2.0", "HTTP/3.0"] {
        let mut conn = Conn::open(addr);
        conn.send(format!("GET / {version}\r\nHost: localhost\r\n\r\n").as_bytes())
            .expect("send");
        let r = conn
            .read_response()
            .unwrap_or_else(|e| panic!("{version}: no answer ({e})"));
        assert_eq!(r.status, 505, "{version}: {r:?}");
        assert!(
            conn.closed_within(Duration::from_secs(3)),
            "{version}: closed after the 505"
        );
        check_healthy(addr, version);
    }
}

/// Many cookies are ordinary (one per consent flag, A/B test and tracker): 150 Set-Cookie
/// lines pass whole and in order, not 502.
#[test]
fn a_hundred_and_fifty_set_cookie_lines_pass_in_order() {
    let n = 150;
    let expected: Vec<String> = (0..n).map(|i| format!("c{i}={i}; Path=/")).collect();
    let target = format!("/cookies/{n}");
    for app in App::ALL {
        let uwsgi = Uwsgi::start(app);
        let direct = uwsgi.get(&target).expect("GET /cookies from uWSGI");
        assert_eq!(
            direct.header_all("set-cookie"),
            expected,
            "{app:?}: the app itself sends them"
        );
        let ringway = Ringway::start(&uwsgi);
        let r = roundtrip(ringway.addr(), &Req::get(&target));
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "ok"),
            "{app:?}: an answer with {n} Set-Cookie lines is relayed: {r:?}"
        );
        assert_eq!(
            r.header_all("set-cookie"),
            expected,
            "{app:?}: every Set-Cookie line, in order"
        );
        check_healthy(ringway.addr(), &format!("{app:?} {target}"));
    }
}

/// A Host with userinfo (`user@host`) is not a valid Host (RFC 9110 7.2, 4.2.4): 400, and
/// the request never reaches the app; the same userinfo in an absolute-form target is
/// refused too.
#[test]
fn userinfo_in_the_host_gets_400_before_the_app() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::start(&uwsgi);
    let addr = ringway.addr();
    // Each carries a probe in its query string, to look for in uWSGI's request log.
    let cases: [(&str, &str, &[u8]); 3] = [
        (
            "userinfo in Host",
            "probe=host-user",
            b"GET /environ?probe=host-user HTTP/1.1\r\nHost: user@evil.example\r\n\r\n",
        ),
        (
            "user and password in Host",
            "probe=host-password",
            b"GET /environ?probe=host-password HTTP/1.1\r\nHost: user:secret@localhost\r\n\r\n",
        ),
        (
            "userinfo in an absolute-form target",
            "probe=target-user",
            b"GET http://user@localhost/environ?probe=target-user HTTP/1.1\r\n\
              Host: localhost\r\n\r\n",
        ),
    ];
    for (name, _, wire) in cases {
        let r = roundtrip_raw(addr, wire).unwrap_or_else(|e| panic!("{name}: no answer ({e})"));
        assert_eq!(r.status, 400, "{name}: {r:?}");
        check_healthy(addr, name);
    }
    // uWSGI logs each request it serves: a control request shows up there, the probes must
    // not.
    let r = roundtrip(addr, &Req::get("/environ?probe=control"));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        poll_until(Duration::from_secs(5), || uwsgi
            .log()
            .contains("probe=control")),
        "uWSGI logs the requests it serves (the check below needs it); log:\n{}",
        uwsgi.log()
    );
    for (name, probe, _) in cases {
        assert!(
            !uwsgi.log().contains(probe),
            "{name}: the request reached the app; uWSGI log:\n{}",
            uwsgi.log()
        );
    }
}

#[test]
fn trace_and_connect_get_405_before_the_app_and_the_connection_goes_on() {
    // As nginx: TRACE would echo the request (cookies included) back, CONNECT asks for a
    // tunnel. Both are answered by ringway; the app never sees them.
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::start(&uwsgi);
    let mut conn = Conn::open(ringway.addr());
    for method in ["TRACE", "CONNECT"] {
        conn.send(&Req::new(method, "/environ").to_bytes())
            .expect("send");
        let r = conn.read_response().expect("an answer");
        assert_eq!(r.status, 405, "{method}: {r:?}");
        assert_eq!(
            r.header("allow").as_deref(),
            Some("GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"),
            "{method}: {r:?}"
        );
        assert!(!r.says_close(), "{method}: the connection stays: {r:?}");
    }
    // OPTIONS and the others still reach the app, on the same connection.
    conn.send(&Req::new("OPTIONS", "/environ").to_bytes())
        .expect("send");
    let r = conn.read_response().expect("an answer");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["REQUEST_METHOD"], "OPTIONS");
}

#[test]
fn with_hosts_listed_any_other_host_gets_421_before_the_app() {
    // As nginx's server_name with a default server that refuses: the app never sees a Host
    // it does not serve, so it cannot build links on one (Host header poisoning).
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--host", "app.example.com")
        .arg("--host", "*.cdn.example.com")
        .start();
    let addr = ringway.addr();
    for host in [
        "app.example.com",
        "APP.Example.com:8080",
        "app.example.com.",
        "a.cdn.example.com",
    ] {
        let r = roundtrip(addr, &Req::get("/environ").host(Some(host)));
        assert_eq!(r.status, 200, "{host}: {r:?}");
        assert_eq!(r.json()["HTTP_HOST"], host, "{host}");
    }
    let mut conn = Conn::open(addr);
    for host in [
        "evil.example",
        "example.com",
        "cdn.example.com",
        "app.example.com.evil",
    ] {
        conn.send(&Req::get("/environ").host(Some(host)).to_bytes())
            .expect("send");
        let r = conn.read_response().expect("an answer");
        assert_eq!(r.status, 421, "{host}: {r:?}");
        assert!(!r.says_close(), "{host}: the connection goes on");
    }
    // The authority of an absolute-form target is the Host; none at all is no Host served.
    let absolute = b"GET http://evil.example/environ HTTP/1.1\r\nHost: app.example.com\r\n\r\n";
    assert_eq!(roundtrip_raw(addr, absolute).expect("answer").status, 421);
    let no_host = Req::get("/environ").http10().host(None);
    assert_eq!(roundtrip(addr, &no_host).status, 421);
    // Without `hosts`, every Host reaches the app, as before.
    let open = Ringway::start(&uwsgi);
    let r = roundtrip(
        open.addr(),
        &Req::get("/environ").host(Some("evil.example")),
    );
    assert_eq!(r.status, 200, "{r:?}");
}

/// `max_header_size` four times nginx's `large_client_header_buffers` size gives nginx's
/// longest request line: one buffer (found by review: the line stayed at 8 KiB whatever
/// the head, and a 9 KiB URL nginx took got 414).
#[test]
fn the_longest_request_line_is_nginx_s_one_buffer_of_four() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--max-header-size", "40k")
        .start();
    let nginx = ringway_tests::Nginx::start_with_server_directives(
        uwsgi.socket(),
        "large_client_header_buffers 4 10k;",
    );
    for (line_kib, refused) in [(9, false), (11, true)] {
        // The request line's length, its method and version included.
        let target = format!("/{}", "a".repeat(line_kib * 1024 - "GET / HTTP/1.1".len()));
        let wire = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        for (stack, addr) in [("ringway", ringway.addr()), ("nginx", nginx.addr())] {
            let r = roundtrip_raw(addr, wire.as_bytes()).expect("an answer");
            assert_eq!(
                r.status == 414,
                refused,
                "{stack}, a {line_kib} KiB request line: {}",
                r.status
            );
        }
    }
}

/// With no setting, a head takes what nginx's default `large_client_header_buffers 4 8k`
/// takes: a 20 KiB head of cookies passes both (found by review: ringway's default was
/// 16 KiB, so such a head got 431 after a migration), and one past 32 KiB neither.
#[test]
fn the_default_head_size_is_nginx_s() {
    // uWSGI's buffer raised for both, so that the head's own limit is what is seen.
    let uwsgi = Uwsgi::start_with(UwsgiOptions {
        buffer_size: Some(65535),
        ..UwsgiOptions::new(App::Raw)
    });
    let ringway = Ringway::with(&uwsgi)
        .arg("--upstream-buffer-size", "65535")
        .start();
    let nginx = ringway_tests::Nginx::start(uwsgi.socket());
    // Cookie lines of 6 KiB each: within nginx's 8 KiB line.
    let cookies = |lines: usize| {
        (0..lines)
            .map(|i| format!("Cookie: c{i}={}\r\n", "v".repeat(6 * 1024)))
            .collect::<String>()
    };
    for (lines, taken) in [(3, true), (6, false)] {
        let wire = format!(
            "GET / HTTP/1.1\r\nHost: localhost\r\n{}Connection: close\r\n\r\n",
            cookies(lines)
        );
        for (stack, addr) in [("ringway", ringway.addr()), ("nginx", nginx.addr())] {
            let r = roundtrip_raw(addr, wire.as_bytes()).expect("an answer");
            assert_eq!(
                r.status == 200,
                taken,
                "{stack}, {lines} cookie lines of 6 KiB: {}",
                r.status
            );
        }
    }
}
