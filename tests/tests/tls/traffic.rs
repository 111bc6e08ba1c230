//! Requests over TLS: the redirect from plain HTTP and HSTS, the environ the app sees, a
//! request split across records and pipelined requests, 10 MiB each way.

use std::thread::sleep;
use std::time::Duration;

use ringway_tests::checks::check_echo;
use ringway_tests::tls::{
    Leaf, Pki, PyOpts, PyTls, curl, curl_target, records, send_raw, tls_toml, upload,
};
use ringway_tests::{
    App, Conn, Framing, Req, Ringway, Uwsgi, paths, pattern, roundtrip, sha256_hex,
};

use crate::Stack;

const HSTS: &str = "max-age=63072000; includeSubDomains";

/// ringway in front of `uwsgi` with certificate `a`, plain HTTP redirected and HSTS on, set
/// up by the config file (with a static route beside the app) or by the flags (with a 1 s
/// handshake timeout).
fn redirecting(uwsgi: &Uwsgi, a: &Leaf, by_file: bool) -> Ringway {
    if by_file {
        let routes = format!(
            "[upstreams.app]\nservers = [\"{}\"]\n\n[[routes]]\npath = \"/static/\"\n\
             static = '{}'\n\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n\n",
            uwsgi.upstream(),
            paths::apps_dir().join("static").display()
        );
        let tls = tls_toml(&[a], &format!("redirect_http = true\nhsts = \"{HSTS}\""));
        Ringway::with_config(routes + &tls).start()
    } else {
        Ringway::with(uwsgi)
            .arg("--tls-listen", "127.0.0.1:0")
            .arg("--tls-cert", a.cert.to_str().expect("utf-8"))
            .arg("--tls-key", a.key.to_str().expect("utf-8"))
            .flag("--redirect-http")
            .arg("--hsts", HSTS)
            .arg("--tls-handshake-timeout", "1s")
            .start()
    }
}

/// `--redirect-http 308` (or `redirect_http = 308`): the status Mozilla's generator writes
/// now, which keeps a POST a POST.
#[test]
fn plain_http_may_be_redirected_with_a_308() {
    let pki = Pki::new();
    let a = pki.issue("a", &["a.test"], 0x0A0B, (2031, 1, 1));
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--tls-listen", "127.0.0.1:0")
        .arg("--tls-cert", a.cert.to_str().expect("utf-8"))
        .arg("--tls-key", a.key.to_str().expect("utf-8"))
        .arg("--redirect-http", "308")
        .start();
    let port = ringway.tls_addr().port();
    let r = roundtrip(
        ringway.addr(),
        &Req::post("/form?x=1", b"a=1").host(Some("a.test")),
    );
    assert_eq!(
        (r.status, r.header("location")),
        (308, Some(format!("https://a.test:{port}/form?x=1"))),
        "{r:?}"
    );
}

/// `redirect_port`: TLS reached through a port mapping (a container's listener published
/// as 443) is redirected to the port the clients use, as nginx's `return 301
/// https://$host$request_uri;` names none.
#[test]
fn plain_http_may_be_redirected_to_the_published_port() {
    let pki = Pki::new();
    let a = pki.issue("a", &["a.test"], 0x0A0C, (2031, 1, 1));
    let uwsgi = Uwsgi::start(App::Raw);
    for (port, shown) in [("443", String::new()), ("8443", ":8443".to_owned())] {
        let ringway = Ringway::with(&uwsgi)
            .arg("--tls-listen", "127.0.0.1:0")
            .arg("--tls-cert", a.cert.to_str().expect("utf-8"))
            .arg("--tls-key", a.key.to_str().expect("utf-8"))
            .flag("--redirect-http")
            .arg("--redirect-port", port)
            .start();
        let r = roundtrip(ringway.addr(), &Req::get("/x?y=1").host(Some("a.test")));
        assert_eq!(
            (r.status, r.header("location")),
            (301, Some(format!("https://a.test{shown}/x?y=1"))),
            "{r:?}"
        );
    }
}

#[test]
fn plain_http_is_redirected_to_https_with_path_and_query_and_hsts_only_over_tls() {
    let pki = Pki::new();
    let a = pki.issue("a", &["a.test"], 0x0A0A, (2031, 1, 1));
    let uwsgi = Uwsgi::start(App::Raw);
    for by_file in [true, false] {
        let form = if by_file { "config file" } else { "flags" };
        let ringway = redirecting(&uwsgi, &a, by_file);
        let (plain, tls) = (ringway.addr(), ringway.tls_addr());
        let port = tls.port();

        let cases = [
            (
                Req::get("/path?q=1").host(Some("example.test")),
                format!("https://example.test:{port}/path?q=1"),
            ),
            (
                Req::get("/a%20b/c?x=%2F&y").host(Some("example.test:8080")),
                format!("https://example.test:{port}/a%20b/c?x=%2F&y"),
            ),
            (
                Req::new("HEAD", "/head").host(Some("example.test")),
                format!("https://example.test:{port}/head"),
            ),
            (
                Req::get("/static/style.css").host(Some("example.test")),
                format!("https://example.test:{port}/static/style.css"),
            ),
            (
                // No Host (HTTP/1.0): the address the client reached.
                Req::get("/old?v=1").http10().host(None),
                format!("https://127.0.0.1:{port}/old?v=1"),
            ),
        ];
        for (req, location) in &cases {
            let r = roundtrip(plain, req);
            assert_eq!(r.status, 301, "{form}: {req:?}: {r:?}");
            assert_eq!(
                r.header("location").as_deref(),
                Some(location.as_str()),
                "{form}: {req:?}"
            );
            assert!(
                r.header("strict-transport-security").is_none(),
                "{form}: no HSTS over plain HTTP: {r:?}"
            );
        }
        // Keep-alive holds across redirects.
        let mut conn = Conn::open(plain);
        for path in ["/one", "/two?x"] {
            conn.send(&Req::get(path).host(Some("k.test")).to_bytes())
                .expect("send");
            let r = conn.read_response().expect("redirect");
            assert_eq!(
                (r.status, r.header("location")),
                (301, Some(format!("https://k.test:{port}{path}"))),
                "{form}: {r:?}"
            );
        }

        // Every TLS answer carries HSTS, once: the app's, and ringway's own.
        let py = PyTls::open(tls, &PyOpts::verified("a.test", pki.ca()));
        let mut conn = py.conn();
        let mut answers = vec![
            (Req::get("/").host(Some("a.test")).to_bytes(), 200),
            (Req::get("/status/404").host(Some("a.test")).to_bytes(), 404),
            (
                b"GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
                    .to_vec(),
                400,
            ),
        ];
        if by_file {
            let css = Req::get("/static/style.css").host(Some("a.test"));
            answers.insert(0, (css.to_bytes(), 200));
        }
        for (bytes, status) in answers {
            conn.send(&bytes).expect("send");
            let r = conn.read_response().expect("answer over TLS");
            assert_eq!(r.status, status, "{form}: {r:?}");
            assert_eq!(
                r.header_all("strict-transport-security"),
                [HSTS],
                "{form}: HSTS once on a TLS {status}: {r:?}"
            );
        }

        if by_file {
            // curl follows the redirect to the TLS port and gets the page.
            let ca = pki.ca().display().to_string();
            let [resolve_tls, to, _] = curl_target("a.test", tls, "/");
            let resolve_plain = format!("a.test:{}:{}", plain.port(), plain.ip());
            let url = format!("http://a.test:{}/bytes/5?x=1", plain.port());
            let ran = curl(&[
                "-L",
                "--cacert",
                &ca,
                &resolve_tls,
                &to,
                "--resolve",
                &resolve_plain,
                &url,
                "-w",
                "|%{url_effective}|%{num_redirects}",
            ])
            .success();
            assert_eq!(
                ran.stdout,
                [
                    &pattern(5)[..],
                    format!("|https://a.test:{port}/bytes/5?x=1|1").as_bytes()
                ]
                .concat(),
                "{ran:?}"
            );
        } else {
            // --tls-handshake-timeout 1s: a silent client is let go after about a second.
            let silent = send_raw(tls, b"", Duration::from_secs(5));
            assert!(
                silent.closed && silent.after >= Duration::from_millis(900),
                "{form}: a silent client closed by the 1 s timeout: {silent:?}"
            );
        }
    }
}

#[test]
fn the_app_is_told_the_true_scheme_and_port_over_tls() {
    let stack = Stack::plain(App::Flask);
    let (plain, tls) = (stack.plain_addr(), stack.tls());
    let host = format!("a.test:{}", tls.port());
    let py = PyTls::open(tls, &PyOpts::verified("a.test", stack.pki.ca()));
    let mut conn = py.conn();
    conn.send(
        &Req::get("/environ")
            .host(Some(&host))
            .header("X-Forwarded-Proto", "http")
            .header("X-Forwarded-Ssl", "off")
            .to_bytes(),
    )
    .expect("send");
    let env = conn.read_response().expect("environ").json();
    assert_eq!(env["HTTPS"], "on", "{env}");
    assert_eq!(env["REQUEST_SCHEME"], "https", "{env}");
    assert_eq!(env["wsgi.url_scheme"], "https", "{env}");
    assert_eq!(env["SERVER_PORT"], tls.port().to_string(), "{env}");
    assert_eq!(env["HTTP_HOST"], host, "{env}");
    // uWSGI would take these for the scheme: a client's never reach it.
    for spoof in ["HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_SSL"] {
        assert!(env.get(spoof).is_none(), "{spoof} is not passed: {env}");
    }
    assert!(
        stack.ringway.stderr().contains("listening on https://"),
        "the TLS listener is logged"
    );

    // Flask builds its external URLs with the scheme and port.
    conn.send(&Req::get("/urls").host(Some(&host)).to_bytes())
        .expect("send");
    let urls = conn.read_response().expect("urls").json();
    assert_eq!(
        urls["external"],
        format!("https://{host}/bytes/7"),
        "{urls}"
    );

    // The plain listener stays plain.
    let env = roundtrip(
        plain,
        &Req::get("/environ").header("X-Forwarded-Proto", "https"),
    )
    .json();
    assert!(env.get("HTTPS").is_none(), "{env}");
    assert_eq!(env["REQUEST_SCHEME"], "http", "{env}");
    assert_eq!(env["wsgi.url_scheme"], "http", "{env}");
    assert_eq!(env["SERVER_PORT"], plain.port().to_string(), "{env}");
}

/// nginx's `listen 80; listen [::]:80;` (and `listen 443 ssl;` twice): every address
/// serves, and the app is told the port its client reached. Two IPv4 addresses here (tests
/// stay on 127.0.0.1); config.rs's unit tests read the IPv4 and IPv6 pair.
#[test]
fn every_listen_address_serves_and_tells_the_app_its_own_port() {
    let two = |b: ringway_tests::ringway::RingwayBuilder| {
        b.arg("--listen", "127.0.0.1:0")
            .arg("--tls-listen", "127.0.0.1:0")
            .arg("--tls-listen", "127.0.0.1:0")
    };
    let stack = Stack::start(App::Flask, "", two);
    let plain = stack.ringway.addrs(2);
    let tls = stack.ringway.tls_addrs(2);
    assert_ne!(plain[0], plain[1]);
    assert_ne!(tls[0], tls[1]);
    for addr in &plain {
        let env = roundtrip(*addr, &Req::get("/environ")).json();
        assert_eq!(env["SERVER_PORT"], addr.port().to_string(), "{addr}: {env}");
        assert_eq!(env["wsgi.url_scheme"], "http", "{addr}: {env}");
    }
    for addr in &tls {
        let py = PyTls::open(*addr, &PyOpts::verified("a.test", stack.pki.ca()));
        let mut conn = py.conn();
        conn.send(&Req::get("/environ").host(Some("a.test")).to_bytes())
            .expect("send");
        let env = conn.read_response().expect("environ").json();
        assert_eq!(env["SERVER_PORT"], addr.port().to_string(), "{addr}: {env}");
        assert_eq!(env["HTTPS"], "on", "{addr}: {env}");
    }

    // A redirect to HTTPS names the first TLS address's port, from any plain address.
    let redirecting = Stack::start(App::Raw, "redirect_http = true", two);
    let tls_port = redirecting.ringway.tls_addrs(2)[0].port();
    for addr in redirecting.ringway.addrs(2) {
        let r = roundtrip(addr, &Req::get("/x?y").host(Some("r.test")));
        assert_eq!(r.status, 301, "{addr}: {r:?}");
        assert_eq!(
            r.header("location"),
            Some(format!("https://r.test:{tls_port}/x?y")),
            "{addr}"
        );
    }
}

#[test]
fn a_request_split_across_records_and_pipelined_requests_are_answered_in_order() {
    let stack = Stack::plain(App::Raw);
    let py = PyTls::open(stack.tls(), &PyOpts::verified("a.test", stack.pki.ca()));
    let mut conn = py.conn();

    // One request in 8 records, 100 ms apart, cut inside the request line, a header name,
    // the blank line and the body.
    let body = pattern(3000);
    let request = Req::post("/echo", &body)
        .host(Some("a.test"))
        .header("X-Pad", "split")
        .to_bytes();
    let cuts = [3, 17, 30, 45, 70, 80, 1500];
    let mut pieces = Vec::new();
    let mut from = 0;
    for cut in cuts.into_iter().chain([request.len()]) {
        pieces.push(&request[from..cut]);
        from = cut;
    }
    for piece in &pieces {
        conn.send(piece).expect("send a piece");
        sleep(Duration::from_millis(100));
    }
    let r = conn.read_response().expect("answer to the split request");
    check_echo(&r, &body, "a request split across 8 records");
    let writes = py.writes();
    assert_eq!(
        writes,
        pieces.iter().map(|p| p.len() as u64).collect::<Vec<_>>(),
        "each piece went out as a TLS write of its own"
    );

    // Five requests in one record; the answers come back in order.
    let echo = pattern(2000);
    let requests = [
        Req::get("/bytes/10").host(Some("a.test")),
        Req::post("/echo", &echo).host(Some("a.test")),
        Req::get("/environ?n=3").host(Some("a.test")),
        Req::get("/stream/70000").host(Some("a.test")),
        Req::new("HEAD", "/").host(Some("a.test")),
        Req::get("/").host(Some("a.test")),
    ];
    let all: Vec<u8> = requests.iter().flat_map(Req::to_bytes).collect();
    assert!(all.len() < 16 * 1024, "fits one record");
    conn.send(&all).expect("send the pipeline");
    let methods: Vec<&str> = requests.iter().map(Req::method).collect();
    let answers = conn.read_responses(&methods).expect("pipelined answers");
    assert_eq!(answers[0].body, pattern(10), "{:?}", answers[0]);
    check_echo(&answers[1], &echo, "pipelined echo");
    assert_eq!(answers[2].json()["QUERY_STRING"], "n=3", "{:?}", answers[2]);
    assert_eq!(answers[3].framing, Framing::Chunked, "{:?}", answers[3]);
    assert!(answers[3].body == pattern(70000), "pipelined stream body");
    assert_eq!(
        (answers[4].status, answers[4].body.len()),
        (200, 0),
        "{:?}",
        answers[4]
    );
    assert_eq!(answers[5].text(), "Hello, World!", "{:?}", answers[5]);
    assert_eq!(
        py.writes().last().copied(),
        Some(all.len() as u64),
        "the pipeline went out as one TLS write"
    );
}

#[test]
fn ten_mib_up_and_ten_mib_down_over_tls() {
    const SIZE: usize = 10 * 1024 * 1024;
    let stack = Stack::start(App::Raw, "", |b| b.arg("--max-body-size", "16m"));
    let (tls, ca) = (stack.tls(), stack.ca());
    let data = pattern(SIZE);
    let dir = tempfile::tempdir().expect("temp dir");
    let upload = dir.path().join("upload.bin");
    std::fs::write(&upload, &data).expect("write the upload");

    // Up, curl over TLS 1.3.
    let [resolve, to, url] = curl_target("a.test", tls, "/echo");
    let at_file = format!("@{}", upload.display());
    let ran = curl(&[
        "--tlsv1.3",
        "--cacert",
        &ca,
        &resolve,
        &to,
        &url,
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &at_file,
    ])
    .success();
    let echo: serde_json::Value = serde_json::from_slice(&ran.stdout).expect("echo JSON");
    assert_eq!(echo["length"], SIZE, "{echo}");
    assert_eq!(echo["sha256"], sha256_hex(&data), "{echo}");

    // Down, curl over TLS 1.2 (Content-Length).
    let download = dir.path().join("download.bin");
    let [resolve, to, url] = curl_target("a.test", tls, &format!("/bytes/{SIZE}"));
    let ran = curl(&[
        "--tlsv1.2",
        "--tls-max",
        "1.2",
        "--cacert",
        &ca,
        &resolve,
        &to,
        &url,
        "-o",
        download.to_str().expect("utf-8"),
        "-w",
        "%{http_code} %{size_download}",
    ])
    .success();
    assert_eq!(ran.out(), format!("200 {SIZE}"), "{ran:?}");
    let got = std::fs::read(&download).expect("read the download");
    assert_eq!(sha256_hex(&got), sha256_hex(&data), "the download's digest");

    // Down, Python over TLS 1.3 (chunked), read only after a pause: ringway meanwhile
    // holds what the client cannot take, and sends the rest when it reads again.
    let py = PyTls::open(tls, &PyOpts::verified("a.test", stack.pki.ca()));
    let mut conn = py.conn();
    conn.send(
        &Req::get(&format!("/stream/{SIZE}"))
            .host(Some("a.test"))
            .to_bytes(),
    )
    .expect("send");
    sleep(Duration::from_secs(1));
    let r = conn.read_response().expect("10 MiB chunked answer");
    assert_eq!((r.status, r.framing), (200, Framing::Chunked), "{r:?}");
    assert_eq!(
        sha256_hex(&r.body),
        sha256_hex(&data),
        "the stream's digest"
    );
}

#[test]
fn uploads_in_records_of_any_size_arrive_whole() {
    // A 16 KiB read of ciphertext can complete a record begun in the read before and
    // another whole one: more plaintext at once than rustls takes before it is read.
    // Records of 10000 and 20000 bytes (Python's ssl writes one per call) hit that often.
    let stack = Stack::plain(App::Raw);
    let opts = PyOpts::verified("a.test", stack.pki.ca());
    let size = 100_000;
    let digest = sha256_hex(&(0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    for piece in [1000, 10_000, 16_384, 20_000] {
        let got = upload(stack.tls(), &opts, size, piece, 10);
        assert_eq!(got["ok"], true, "records of {piece} bytes: {got}");
        let answers = got["answers"].as_array().expect("answers");
        assert_eq!(answers.len(), 10, "{got}");
        for answer in answers {
            let text = answer.as_str().unwrap_or_default();
            assert!(
                text.starts_with("HTTP/1.1 200 ")
                    && text.contains(&format!("\"length\": {size}"))
                    && text.contains(&digest),
                "records of {piece} bytes: {text}"
            );
        }
    }
}

/// `record_size` (nginx's `ssl_buffer_size`): a 64 KiB answer goes out in records of at most
/// that much plaintext; by default, in records of TLS's maximum, 16 KiB.
#[test]
fn answers_go_out_in_records_of_the_configured_size() {
    // On the wire, a TLS 1.3 record of N plaintext bytes is N + 17 long: its content type
    // byte and the AEAD tag.
    const OVERHEAD: u64 = 17;
    for (extra, plain) in [("", 16_384), ("record_size = \"4k\"", 4096)] {
        let stack = Stack::start(App::Raw, extra, |b| b);
        let opts = PyOpts::verified("a.test", stack.pki.ca());
        let got = records(stack.tls(), &opts, "/bytes/65536");
        assert_eq!(got["status"], "HTTP/1.1 200 OK", "{got}");
        assert_eq!(got["body"], 65536, "{got}");
        let lengths: Vec<u64> = got["records"]
            .as_array()
            .expect("records")
            .iter()
            .filter_map(serde_json::Value::as_u64)
            .collect();
        let full = lengths.iter().filter(|&&l| l == plain + OVERHEAD).count();
        assert!(
            lengths.iter().all(|&l| l <= plain + OVERHEAD),
            "{extra:?}: no record over {plain} bytes: {lengths:?}"
        );
        assert!(
            full as u64 >= 65536 / plain - 1,
            "{extra:?}: the body in full records of {plain} bytes: {lengths:?}"
        );
    }
}

/// Sends `req` over a fresh Python TLS session, reads its answer (of `framing`), and
/// asserts that ringway then ends the session with close_notify, not a bare TCP close.
fn assert_ends_with_close_notify(stack: &Stack, req: &Req, framing: Framing) {
    let py = PyTls::open(stack.tls(), &PyOpts::verified("a.test", stack.pki.ca()));
    let mut conn = py.conn();
    conn.send(&req.to_bytes()).expect("send");
    let r = conn.read_response().expect("answer");
    assert_eq!((r.status, r.framing), (200, framing), "{req:?}: {r:?}");
    let end = py
        .wait_event("tls_closed", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{req:?}: ringway ends the session"));
    assert!(
        end["error"].is_null(),
        "{req:?}: a clean end (close_notify), not a cut: {end}"
    );
}

#[test]
fn the_end_of_an_answer_that_closes_the_connection_is_a_close_notify() {
    let stack = Stack::plain(App::Raw);
    // HTTP/1.0 and no length: the answer ends where the connection does, so only
    // close_notify tells its end from a cut.
    let until_close = Req::get("/stream/100000").http10().host(Some("a.test"));
    assert_ends_with_close_notify(&stack, &until_close, Framing::UntilClose);
    let close = Req::get("/bytes/1000")
        .host(Some("a.test"))
        .header("Connection", "close");
    assert_ends_with_close_notify(&stack, &close, Framing::Length(1000));
}

/// A tunnel (after a 101) whose server ends its side ends the client's side of a TLS
/// session with close_notify, so the client tells that end from a cut (found by review: a
/// bare TCP half-close, which TLS clients report as an unexpected end).
#[test]
fn the_end_of_a_tunnel_over_tls_is_a_close_notify() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if std::io::Read::read_exact(&mut stream, &mut byte).is_err() {
                return;
            }
            head.push(byte[0]);
        }
        let answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                       Connection: Upgrade\r\n\r\nbye";
        let _ = std::io::Write::write_all(&mut stream, answer);
        // Then the server's end: dropped, closed.
    });
    let pki = Pki::new();
    let a = pki.issue("a", &["a.test"], 41, (2030, 1, 1));
    let ringway = Ringway::builder()
        .config(format!(
            "{}[upstreams.web]\nservers = [\"http://{upstream}\"]\n\
             [[routes]]\npath = \"/\"\nupstream = \"web\"\n",
            tls_toml(&[&a], "")
        ))
        .start();
    let py = PyTls::open(ringway.tls_addr(), &PyOpts::verified("a.test", pki.ca()));
    let mut conn = py.conn();
    conn.send(
        b"GET /feed HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    )
    .expect("send");
    let end = py
        .wait_event("tls_closed", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("ringway ends the session\n{}", ringway.stderr()));
    assert!(
        end["error"].is_null(),
        "a clean end (close_notify), not a cut: {end}"
    );
    // All that came before the end.
    let mut n = 1;
    while conn.read_at_least(n).is_ok() {
        n = conn.leftover().len() + 1;
    }
    let got = String::from_utf8_lossy(conn.leftover());
    assert!(
        got.starts_with("HTTP/1.1 101") && got.ends_with("\r\n\r\nbye"),
        "{got}"
    );
}

#[test]
fn an_idle_keep_alive_session_ends_with_a_close_notify() {
    // Kept alive, then idle past the keep-alive timeout: ringway ends the session, and
    // says so (nginx sends close_notify there too; docs/ARCHITECTURE.md: "The end of a TLS
    // connection sends close_notify").
    let stack = Stack::start(App::Raw, "", |b| b.arg("--keepalive-timeout", "1s"));
    let kept = Req::get("/bytes/1000").host(Some("a.test"));
    assert_ends_with_close_notify(&stack, &kept, Framing::Length(1000));
}

#[test]
fn an_idle_session_ends_with_a_close_notify_when_ringway_stops() {
    // SIGTERM closes the connections that are between requests at once: a TLS one says so.
    let stack = Stack::plain(App::Raw);
    let py = PyTls::open(stack.tls(), &PyOpts::verified("a.test", stack.pki.ca()));
    let mut conn = py.conn();
    let req = Req::get("/bytes/1000").host(Some("a.test"));
    conn.send(&req.to_bytes()).expect("send");
    let r = conn.read_response().expect("answer");
    assert_eq!(r.status, 200, "{r:?}");
    stack.ringway.sigterm();
    let end = py
        .wait_event("tls_closed", Duration::from_secs(5))
        .expect("ringway ends the idle session when it stops");
    assert!(
        end["error"].is_null(),
        "a clean end (close_notify), not a cut: {end}"
    );
}

#[test]
fn acme_challenges_stay_on_plain_http_while_everything_else_is_redirected() {
    let pki = Pki::new();
    let a = pki.issue("a", &["a.test"], 0x0A0B, (2031, 1, 1));
    let uwsgi = Uwsgi::start(App::Raw);
    let webroot = tempfile::tempdir().expect("a webroot");
    std::fs::write(webroot.path().join("tok-123"), b"tok-123.key-auth").expect("a token");
    let routes = format!(
        "[upstreams.app]\nservers = [\"{}\"]\n\n[[routes]]\n\
         path = \"/.well-known/acme-challenge/\"\nstatic = '{}'\n\n\
         [[routes]]\npath = \"/\"\nupstream = \"app\"\n\n",
        uwsgi.upstream(),
        webroot.path().display()
    );
    let tls = tls_toml(&[&a], "redirect_http = true");
    let ringway = Ringway::with_config(routes.clone() + &tls).start();
    let (plain, port) = (ringway.addr(), ringway.tls_addr().port());

    // The certificate authority's fetch is served over plain HTTP, from the static route.
    let r = roundtrip(
        plain,
        &Req::get("/.well-known/acme-challenge/tok-123").host(Some("a.test")),
    );
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, b"tok-123.key-auth".as_slice()),
        "{r:?}"
    );
    // Not a way around the redirect: the exemption is decided on the normalised path, and
    // the Location keeps the target as sent (nginx's $request_uri).
    for target in [
        "/.well-known/acme-challenge/../../admin",
        "/.well-known/acme-challenge",
        "/.well-known/other",
        "/",
    ] {
        let r = roundtrip(plain, &Req::get(target).host(Some("a.test")));
        assert_eq!(r.status, 301, "{target}: {r:?}");
        assert_eq!(
            r.header("location"),
            Some(format!("https://a.test:{port}{target}")),
            "{target}"
        );
    }

    // A Host the server does not serve gets its 421, not a redirect to that host (found by
    // review: the redirect came first).
    let served_hosts = format!("hosts = [\"a.test\"]\n{routes}");
    let ringway = Ringway::with_config(served_hosts + &tls).start();
    let r = roundtrip(ringway.addr(), &Req::get("/").host(Some("evil.example")));
    assert_eq!(r.status, 421, "{r:?}");
    assert_eq!(r.header("location"), None);
    let r = roundtrip(ringway.addr(), &Req::get("/").host(Some("a.test")));
    assert_eq!(r.status, 301, "{r:?}");
}
