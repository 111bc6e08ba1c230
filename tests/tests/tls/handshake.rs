//! Handshakes: TLS 1.2 and 1.3 with curl and Python, the key formats, SNI, TLS 1.0/1.1
//! refused, ALPN, session resumption, and sslscan's view of the protocols and suites.

use std::process::Command;
use std::time::Duration;

use ringway_tests::checks::check_echo;
use ringway_tests::tls::{
    Leaf, OpensslKey, Pki, PyOpts, PyTls, SServer, TOOL_LIMIT, curl, curl_target, curl_tls,
    handshakes, metrics, resume, run, s_client, same_serial, sample, served_certificate, tls_toml,
    tool,
};
use ringway_tests::{App, Req, Ringway, Uwsgi, pattern};
use serde_json::json;

use crate::{A_NAMES, A_NOT_AFTER, A_SERIAL, B_NAME, Stack};

/// An AEAD suite, by OpenSSL's name (TLS 1.3 `TLS_AES_128_GCM_SHA256`, TLS 1.2
/// `ECDHE-ECDSA-AES256-GCM-SHA384`, `ECDHE-RSA-CHACHA20-POLY1305`).
fn is_aead(cipher: &str) -> bool {
    cipher.contains("GCM") || cipher.contains("CHACHA20")
}

/// The value of a field of s_client's session summary (`    Protocol  : TLSv1.2`).
fn session_field(out: &str, name: &str) -> Option<String> {
    out.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim().to_owned())
    })
}

/// `GET /` with `Host: name` through `py`, and a 100 kB echo after it on the same
/// connection: both answered.
fn two_requests(py: &PyTls, name: &str, what: &str) {
    let mut conn = py.conn();
    conn.send(&Req::get("/").host(Some(name)).to_bytes())
        .expect("send");
    let r = conn
        .read_response()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Hello, World!"),
        "{what}"
    );
    let body = pattern(100_000);
    conn.send(&Req::post("/echo", &body).host(Some(name)).to_bytes())
        .expect("send");
    let r = conn
        .read_response()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    check_echo(&r, &body, what);
}

#[test]
fn curl_over_tls_1_2_and_1_3_gets_the_body_with_the_version_asked_for() {
    let stack = Stack::with_metrics("");
    let (tls, ca) = (stack.tls(), stack.ca());
    for (flags, version) in [
        (&["--tlsv1.2", "--tls-max", "1.2"][..], "TLSv1.2"),
        (&["--tlsv1.3"][..], "TLSv1.3"),
    ] {
        let [resolve, to, url] = curl_target("a.test", tls, "/");
        let mut args = vec!["-v", "--cacert", &ca, &resolve, &to, &url];
        args.extend(["-w", "|%{http_version}|%{ssl_verify_result}"]);
        args.extend(flags);
        let ran = curl(&args).success();
        assert_eq!(
            ran.out(),
            "Hello, World!|1.1|0",
            "body, HTTP/1.1, verified: {ran:?}"
        );
        let (got, cipher) =
            curl_tls(&ran.stderr).unwrap_or_else(|| panic!("no `SSL connection using`: {ran:?}"));
        assert_eq!(got, version, "{ran:?}");
        assert!(is_aead(&cipher), "{version} suite {cipher}");
    }

    let text = stack.metrics();
    assert_eq!(handshakes(&text, "ok", "TLSv1.2"), 1.0, "{text}");
    assert_eq!(handshakes(&text, "ok", "TLSv1.3"), 1.0, "{text}");
    for result in ["failed", "closed", "timeout", "plain_http"] {
        assert_eq!(handshakes(&text, result, ""), 0.0, "{result}: {text}");
    }
    assert_eq!(
        sample(&text, "ringway_tls_handshake_duration_seconds_count"),
        2.0,
        "each handshake timed: {text}"
    );
    let expiry = |name: &str, leaf: &Leaf| sample(&text, &expiry_series(name, leaf));
    assert_eq!(
        expiry("a.test", &stack.a),
        stack.a.not_after as f64,
        "{text}"
    );
    assert_eq!(expiry(B_NAME, &stack.b), stack.b.not_after as f64, "{text}");
}

#[test]
fn python_ssl_over_tls_1_2_and_1_3_gets_the_versions_asked_for() {
    let stack = Stack::plain(App::Raw);
    for version in ["1.2", "1.3"] {
        let opts = PyOpts {
            tls_min: Some(version),
            tls_max: Some(version),
            ..PyOpts::verified("a.test", stack.pki.ca())
        };
        let py = PyTls::open(stack.tls(), &opts);
        assert_eq!(py.version(), format!("TLSv{version}"));
        assert!(is_aead(&py.cipher()), "TLS {version}: {}", py.cipher());
        assert!(py.cert_der() == stack.a.der, "TLS {version}: certificate A");
        two_requests(&py, "a.test", &format!("Python over TLS {version}"));
    }
}

#[test]
fn rsa_pkcs1_and_sec1_keys_and_a_chain_serve_beside_an_rcgen_pkcs8_one() {
    let pki = Pki::new();
    let ec = pki.issue("ec", &["ec.test"], 0x0E0C, (2030, 1, 1));
    let rsa = pki.issue_openssl("rsa", "rsa.test", OpensslKey::RsaPkcs1, 0x05A1);
    let sec1 = pki.issue_openssl("sec1", "sec1.test", OpensslKey::EcSec1, 0x05EC);
    let chained = pki.issue_chained("chain", "chain.test", 0x0C4A);
    let key = std::fs::read_to_string(&ec.key).expect("read key");
    assert!(
        key.starts_with("-----BEGIN PRIVATE KEY-----"),
        "PKCS#8: {key}"
    );

    // The flag form this time: --tls-cert / --tls-key pairs.
    let uwsgi = Uwsgi::start(App::Raw);
    let mut builder = Ringway::with(&uwsgi).arg("--tls-listen", "127.0.0.1:0");
    for leaf in [&ec, &rsa, &sec1, &chained] {
        builder = builder
            .arg("--tls-cert", leaf.cert.to_str().expect("utf-8"))
            .arg("--tls-key", leaf.key.to_str().expect("utf-8"));
    }
    let ringway = builder.start();
    let (tls, ca) = (ringway.tls_addr(), pki.ca().display().to_string());

    for (name, leaf, key_type) in [
        ("ec.test", &ec, "ECDSA"),
        ("rsa.test", &rsa, "RSA"),
        ("sec1.test", &sec1, "ECDSA"),
        // Verified against the root only: the intermediate must be served too.
        ("chain.test", &chained, "ECDSA"),
    ] {
        // A TLS 1.2 suite names the certificate's key type.
        let [resolve, to, url] = curl_target(name, tls, "/");
        let ran = curl(&[
            "-v",
            "--cacert",
            &ca,
            &resolve,
            &to,
            &url,
            "--tlsv1.2",
            "--tls-max",
            "1.2",
        ])
        .success();
        assert_eq!(ran.out(), "Hello, World!", "{name}: {ran:?}");
        let (version, cipher) = curl_tls(&ran.stderr).expect("curl's TLS line");
        assert_eq!(version, "TLSv1.2", "{name}");
        assert!(
            cipher.starts_with(&format!("ECDHE-{key_type}-")) && is_aead(&cipher),
            "{name}: {cipher}"
        );
        // And over TLS 1.3 the very certificate is served.
        let py = PyTls::open(tls, &PyOpts::verified(name, pki.ca()));
        assert!(py.cert_der() == leaf.der, "{name}: its own certificate");
        two_requests(&py, name, name);
    }
    let ran = s_client(
        tls,
        &["-servername", "chain.test", "-showcerts", "-CAfile", &ca],
    );
    let out = ran.out();
    assert_eq!(
        out.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "the leaf and the intermediate are served: {ran:?}"
    );
    assert_eq!(
        session_field(&out, "Verify return code").as_deref(),
        Some("0 (ok)"),
        "{ran:?}"
    );
}

/// `reject_unknown_names` (nginx's `ssl_reject_handshake on` in the default server): a
/// client naming a certificate's name is served as ever; one naming another, or none, gets
/// an alert and no certificate.
#[test]
fn unknown_names_get_no_certificate_when_told_so() {
    let stack = Stack::with_metrics("reject_unknown_names = true");
    let (tls, ca) = (stack.tls(), stack.ca());
    for (sni, leaf) in [("www.a.test", &stack.a), ("x.b.test", &stack.b)] {
        let opts = PyOpts {
            server_name: Some(sni.to_owned()),
            cafile: Some(stack.pki.ca().to_path_buf()),
            ..PyOpts::default()
        };
        let py = PyTls::open(tls, &opts);
        assert!(py.cert_der() == leaf.der, "{sni}: its certificate");
    }
    for args in [
        &["-servername", "unknown.test"][..],
        &["-servername", "b.test"][..],
        &["-noservername"][..],
    ] {
        let mut all = args.to_vec();
        all.extend(["-showcerts", "-CAfile", &ca]);
        let ran = s_client(tls, &all);
        let out = ran.all();
        assert!(
            !out.contains("BEGIN CERTIFICATE"),
            "{args:?}: no certificate: {ran:?}"
        );
        assert!(
            out.contains("alert access denied"),
            "{args:?}: refused with an alert: {ran:?}"
        );
    }
    let text = stack.metrics();
    assert_eq!(handshakes(&text, "failed", ""), 3.0, "{text}");
    assert_eq!(handshakes(&text, "ok", "TLSv1.3"), 2.0, "{text}");
}

#[test]
fn sni_picks_the_certificate_by_name_or_wildcard_else_the_first() {
    let stack = Stack::plain(App::Raw);
    let (tls, ca) = (stack.tls(), stack.ca());
    let (a, b) = (&stack.a, &stack.b);
    let cases: [(Option<&str>, &Leaf, &str); 8] = [
        (Some("a.test"), a, "the first name of A"),
        (Some("www.a.test"), a, "the second name of A"),
        (Some("x.b.test"), b, "under B's wildcard"),
        (Some("X.B.Test"), b, "case does not matter"),
        (
            Some("b.test"),
            a,
            "a wildcard does not cover its parent: the default",
        ),
        (
            Some("deep.x.b.test"),
            a,
            "a wildcard covers one label: the default",
        ),
        (Some("unknown.test"), a, "an unknown name: the default"),
        (None, a, "no SNI: the default"),
    ];
    for (sni, leaf, what) in cases {
        let opts = PyOpts {
            server_name: sni.map(str::to_owned),
            cafile: Some(stack.pki.ca().to_path_buf()),
            no_check_hostname: true,
            ..PyOpts::default()
        };
        let py = PyTls::open(tls, &opts);
        assert!(py.cert_der() == leaf.der, "SNI {sni:?}: {what}");
    }

    // openssl s_client's view: the serial and subject of the certificate served.
    for (args, leaf, subject) in [
        (&["-servername", "x.b.test"][..], b, "CN = *.b.test"),
        (&["-servername", "www.a.test"][..], a, "CN = a.test"),
        (&["-servername", "unknown.test"][..], a, "CN = a.test"),
        (&["-noservername"][..], a, "CN = a.test"),
    ] {
        let mut all = args.to_vec();
        all.extend(["-showcerts", "-CAfile", &ca]);
        let ran = s_client(tls, &all);
        let out = ran.out();
        assert_eq!(
            session_field(&out, "Verify return code").as_deref(),
            Some("0 (ok)"),
            "{args:?}: the chain verifies: {ran:?}"
        );
        let (serial, got_subject) = served_certificate(&out);
        assert!(
            same_serial(&serial, &leaf.serial),
            "{args:?}: serial {serial}, want {}",
            leaf.serial
        );
        assert_eq!(got_subject, subject, "{args:?}");
    }

    // curl checks the name: the wildcard certificate passes for a name under it, and the
    // default one served for an unknown name fails the check.
    let [resolve, to, url] = curl_target("x.b.test", tls, "/");
    let ran = curl(&["--cacert", &ca, &resolve, &to, &url]).success();
    assert_eq!(ran.out(), "Hello, World!");
    let [resolve, to, url] = curl_target("b.test", tls, "/");
    let ran = curl(&["--cacert", &ca, &resolve, &to, &url]);
    assert_eq!(
        ran.status.code(),
        Some(60),
        "b.test gets A, which is not valid for it: {ran:?}"
    );
}

#[test]
fn tls_1_0_and_1_1_are_refused_to_a_client_that_offers_them() {
    let stack = Stack::with_metrics("");
    for (flag, version) in [("-tls1_1", "TLSv1.1"), ("-tls1", "TLSv1")] {
        let args = [flag, "-cipher", "DEFAULT:@SECLEVEL=0"];
        // The client does offer the old version: a server that allows it completes the
        // handshake in it.
        let reference = SServer::start(&stack.a, &args);
        let ran = s_client(reference.addr(), &args);
        assert!(
            ran.status.success(),
            "{version} with openssl s_server: {ran:?}\ns_server: {}",
            reference.output()
        );
        let out = ran.out();
        assert_eq!(session_field(&out, "Protocol").as_deref(), Some(version));
        let cipher = session_field(&out, "Cipher").unwrap_or_default();
        assert!(cipher != "0000" && !cipher.is_empty(), "{ran:?}");

        // ringway refuses it, with an alert.
        let ran = s_client(stack.tls(), &args);
        assert!(!ran.status.success(), "{version} against ringway: {ran:?}");
        let all = ran.all();
        assert!(
            all.contains("alert"),
            "{version}: refused with an alert: {ran:?}"
        );
        assert_eq!(
            session_field(&all, "Cipher").as_deref(),
            Some("0000"),
            "{version}: no suite agreed: {ran:?}"
        );
    }
    let text = stack.metrics();
    assert_eq!(handshakes(&text, "failed", ""), 2.0, "{text}");
    assert_eq!(handshakes(&text, "ok", "TLSv1.2"), 0.0, "{text}");
    assert_eq!(handshakes(&text, "ok", "TLSv1.3"), 0.0, "{text}");

    let [resolve, to, url] = curl_target("a.test", stack.tls(), "/");
    let ran = curl(&["--cacert", &stack.ca(), &resolve, &to, &url]).success();
    assert_eq!(ran.out(), "Hello, World!", "served after the refusals");
}

#[test]
fn alpn_is_http_1_1_or_1_0_and_never_h2() {
    let stack = Stack::plain(App::Raw);
    let (tls, ca) = (stack.tls(), stack.ca());
    let base = ["-servername", "a.test", "-CAfile", ca.as_str()];

    for offer in ["h2,http/1.1", "http/1.1"] {
        let mut args = base.to_vec();
        args.extend(["-alpn", offer]);
        let ran = s_client(tls, &args);
        assert!(ran.status.success(), "ALPN {offer}: {ran:?}");
        assert!(
            ran.out().contains("ALPN protocol: http/1.1"),
            "ALPN {offer}: {ran:?}"
        );
    }
    let ran = s_client(tls, &base);
    assert!(ran.status.success(), "no ALPN offered: {ran:?}");
    assert!(ran.out().contains("No ALPN negotiated"), "{ran:?}");

    // Only h2 offered: rustls has no protocol in common and aborts the handshake with
    // no_application_protocol (RFC 7301 3.2); h2 is never chosen.
    let mut args = base.to_vec();
    args.extend(["-alpn", "h2"]);
    let ran = s_client(tls, &args);
    let all = ran.all();
    assert!(!ran.status.success(), "only h2 offered: {ran:?}");
    assert!(
        all.contains("alert no application protocol"),
        "aborted with no_application_protocol: {ran:?}"
    );
    assert!(!all.contains("ALPN protocol: h2"), "{ran:?}");
    let refused = PyTls::connect(
        tls,
        &PyOpts {
            alpn: Some("h2"),
            ..PyOpts::verified("a.test", stack.pki.ca())
        },
    )
    .err()
    .expect("Python offering only h2 gets no session");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("no application protocol")),
        "{refused}"
    );
    let py = PyTls::open(
        tls,
        &PyOpts {
            alpn: Some("h2,http/1.1"),
            ..PyOpts::verified("a.test", stack.pki.ca())
        },
    );
    assert_eq!(py.alpn().as_deref(), Some("http/1.1"));

    // curl offers h2 by default, and with --http2; it gets HTTP/1.1 either way.
    for flags in [&[][..], &["--http2"][..], &["--http1.1"][..]] {
        let [resolve, to, url] = curl_target("a.test", tls, "/");
        let mut args = vec!["-v", "--cacert", &ca, &resolve, &to, &url];
        args.extend(["-w", "|%{http_version}"]);
        args.extend(flags);
        let ran = curl(&args).success();
        assert_eq!(ran.out(), "Hello, World!|1.1", "{flags:?}: {ran:?}");
        assert!(
            ran.stderr.contains("ALPN: server accepted http/1.1"),
            "{flags:?}: {ran:?}"
        );
    }
    // curl --http1.0 offers http/1.0 alone: accepted, as nginx accepts it.
    let [resolve, to, url] = curl_target("a.test", tls, "/");
    let args = [
        "-v",
        "--http1.0",
        "--cacert",
        &ca,
        &resolve,
        &to,
        &url,
        "-w",
        "|%{http_version}",
    ];
    let ran = curl(&args).success();
    assert_eq!(
        ran.out(),
        "Hello, World!|1.1",
        "answered as nginx does: {ran:?}"
    );
    assert!(
        ran.stderr.contains("ALPN: server accepted http/1.0")
            && ran.stderr.contains("> GET / HTTP/1.0"),
        "{ran:?}"
    );
}

#[test]
fn sessions_resume_over_tls_1_2_and_1_3() {
    let stack = Stack::start(App::Raw, "", |b| {
        b.arg("--access-log", "stderr").arg(
            "--access-log-format",
            "reused=$ssl_session_reused sni=$ssl_server_name curve=$ssl_curve $ssl_protocol.",
        )
    });
    // The access log says which handshake was resumed, the name asked for and the group:
    // a TLS 1.3 resumption makes a key exchange (psk_dhe_ke), a TLS 1.2 one none (`-`, as
    // nginx writes a TLS variable with no value).
    let logged = [("1.2", "X25519", "-"), ("1.3", "X25519", "X25519")];
    for (version, full_curve, resumed_curve) in logged {
        let opts = PyOpts {
            tls_min: Some(version),
            tls_max: Some(version),
            ..PyOpts::verified("a.test", stack.pki.ca())
        };
        let got = resume(stack.tls(), &opts);
        let tag = format!("TLSv{version}");
        assert_eq!(got["version"], json!([tag, tag]), "{got}");
        assert_eq!(
            got["reused"],
            json!([false, true]),
            "the second connection resumes the first's session: {got}"
        );
        assert_eq!(
            got["status"],
            json!(["HTTP/1.1 200 OK", "HTTP/1.1 200 OK"]),
            "{got}"
        );
        for line in [
            format!("reused=. sni=a.test curve={full_curve} {tag}."),
            format!("reused=r sni=a.test curve={resumed_curve} {tag}."),
        ] {
            assert!(
                stack.ringway.wait_for_log(&line, Duration::from_secs(5)),
                "{line} in {}",
                stack.ringway.stderr()
            );
        }
    }
    // No SNI: `-`, as nginx writes a TLS variable with no value (found by review: empty).
    let opts = PyOpts {
        server_name: None,
        cafile: Some(stack.pki.ca().to_path_buf()),
        no_check_hostname: true,
        ..PyOpts::default()
    };
    let py = PyTls::open(stack.tls(), &opts);
    let mut conn = py.conn();
    conn.send(&Req::get("/").host(Some("a.test")).to_bytes())
        .expect("send");
    assert_eq!(conn.read_response().expect("answer").status, 200);
    assert!(
        stack
            .ringway
            .wait_for_log("reused=. sni=- curve=", Duration::from_secs(5)),
        "{}",
        stack.ringway.stderr()
    );
}

/// One `<protocol>` or `<cipher>` element of sslscan's XML: its attributes.
fn xml_elements(xml: &str, element: &str) -> Vec<Vec<(String, String)>> {
    let open = format!("<{element} ");
    xml.lines()
        .filter_map(|line| line.trim().strip_prefix(&open))
        .map(|rest| {
            let mut attrs = Vec::new();
            let mut rest = rest;
            while let Some((name, after)) = rest.split_once("=\"") {
                let Some((value, tail)) = after.split_once('"') else {
                    break;
                };
                attrs.push((name.trim().to_owned(), value.to_owned()));
                rest = tail;
            }
            attrs
        })
        .collect()
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> &'a str {
    attrs
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

/// sslscan's findings: (protocol, enabled), (version, suite, strength) of each accepted
/// suite, and (version, name, bits) of each key exchange group.
struct Scan {
    protocols: Vec<(String, bool)>,
    ciphers: Vec<(String, String, String)>,
    groups: Vec<(String, String, u32)>,
    xml: String,
}

impl Scan {
    fn of(addr: std::net::SocketAddr, sni: &str) -> Scan {
        let ran = run(
            Command::new(tool("sslscan", "sslscan")).args([
                "--no-colour",
                "--xml=-",
                &format!("--sni-name={sni}"),
                &addr.to_string(),
            ]),
            b"",
            TOOL_LIMIT + Duration::from_secs(60),
        )
        .success();
        let xml = ran.out();
        let protocols = xml_elements(&xml, "protocol")
            .iter()
            .map(|p| {
                let name = match (attr(p, "type"), attr(p, "version")) {
                    ("ssl", v) => format!("SSLv{v}"),
                    (_, v) => format!("TLSv{v}"),
                };
                (name, attr(p, "enabled") == "1")
            })
            .collect();
        let ciphers = xml_elements(&xml, "cipher")
            .iter()
            .map(|c| {
                (
                    attr(c, "sslversion").to_owned(),
                    attr(c, "cipher").to_owned(),
                    attr(c, "strength").to_owned(),
                )
            })
            .collect();
        let groups = xml_elements(&xml, "group")
            .iter()
            .map(|g| {
                (
                    attr(g, "sslversion").to_owned(),
                    attr(g, "name").to_owned(),
                    attr(g, "bits").parse().unwrap_or(0),
                )
            })
            .collect();
        Scan {
            protocols,
            ciphers,
            groups,
            xml,
        }
    }

    fn enabled(&self) -> Vec<&str> {
        self.protocols
            .iter()
            .filter(|(_, on)| *on)
            .map(|(p, _)| p.as_str())
            .collect()
    }

    fn summary(&self) -> String {
        let mut out = format!("protocols enabled: {}\n", self.enabled().join(" "));
        for (version, cipher, strength) in &self.ciphers {
            out.push_str(&format!("  {version} {cipher} ({strength})\n"));
        }
        for (version, group, bits) in &self.groups {
            out.push_str(&format!("  {version} key exchange {group} ({bits} bits)\n"));
        }
        out
    }
}

#[test]
fn sslscan_sees_only_tls_1_2_and_1_3_and_aead_suites() {
    let pki = Pki::new();
    let ec = pki.issue("ec", &["ec.test"], 0x0E0C, (2030, 1, 1));
    let rsa = pki.issue_openssl("rsa", "rsa.test", OpensslKey::RsaPkcs1, 0x05A1);
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .config(tls_toml(&[&ec, &rsa], ""))
        .start();

    // The scanner finds what it is meant to find: against openssl s_server allowing
    // everything, it reports TLS 1.0 and 1.1 and CBC and anonymous suites.
    let lax = SServer::start(&ec, &["-cipher", "ALL:@SECLEVEL=0"]);
    let control = Scan::of(lax.addr(), "ec.test");
    assert!(
        control.enabled().contains(&"TLSv1.0") && control.enabled().contains(&"TLSv1.1"),
        "control scan: {}",
        control.summary()
    );
    assert!(
        control.ciphers.iter().any(|(_, c, _)| !is_aead(c)),
        "control scan sees CBC suites: {}",
        control.summary()
    );
    assert!(
        control.ciphers.iter().any(|(_, _, s)| s == "anonymous"),
        "control scan sees anonymous suites: {}",
        control.summary()
    );

    for (sni, key_type) in [("ec.test", "ECDSA"), ("rsa.test", "RSA")] {
        let scan = Scan::of(ringway.tls_addr(), sni);
        println!(
            "sslscan of ringway, {key_type} certificate:\n{}",
            scan.summary()
        );
        let all: Vec<&str> = scan.protocols.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            all,
            ["SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"],
            "every protocol was tried:\n{}",
            scan.xml
        );
        assert_eq!(scan.enabled(), ["TLSv1.2", "TLSv1.3"], "{}", scan.summary());
        for version in ["TLSv1.2", "TLSv1.3"] {
            assert!(
                scan.ciphers.iter().any(|(v, _, _)| v == version),
                "{sni}: suites found for {version}: {}",
                scan.summary()
            );
        }
        for (version, cipher, strength) in &scan.ciphers {
            assert!(
                version == "TLSv1.2" || version == "TLSv1.3",
                "{sni}: a suite of {version}: {cipher}"
            );
            assert!(
                is_aead(cipher),
                "{sni}: only AEAD suites (no CBC, RC4, 3DES, NULL, EXPORT): {cipher}"
            );
            assert!(
                version == "TLSv1.3" || cipher.starts_with(&format!("ECDHE-{key_type}-")),
                "{sni}: TLS 1.2 suites are ECDHE (forward secret) with the {key_type} key: \
                 {cipher}"
            );
            assert!(
                strength == "strong" || strength == "acceptable",
                "{sni}: sslscan rates {cipher} {strength}"
            );
        }
        assert!(
            !scan.groups.is_empty(),
            "{sni}: groups found:\n{}",
            scan.xml
        );
        for (_, group, bits) in &scan.groups {
            assert!(*bits >= 128, "{sni}: a weak key exchange group {group}");
        }
        assert!(
            scan.xml.contains("<renegotiation supported=\"0\""),
            "{sni}: no renegotiation:\n{}",
            scan.xml
        );
        assert!(
            !scan.xml.contains("vulnerable=\"1\""),
            "{sni}: heartbleed:\n{}",
            scan.xml
        );
    }
}

/// The expiry series of the certificate `name` in `leaf`'s file, as rendered.
fn expiry_series(name: &str, leaf: &Leaf) -> String {
    format!(
        "ringway_tls_certificate_expiry_timestamp_seconds{{name=\"{name}\",file=\"{}\"}}",
        leaf.cert.display()
    )
}

#[test]
fn two_certificates_of_one_name_are_two_expiry_series() {
    let pki = Pki::new();
    let ecdsa = pki.issue("same-ecdsa", &["same.test"], 0x5A01, (2030, 1, 1));
    let rsa = pki.issue_openssl("same-rsa", "same.test", OpensslKey::RsaPkcs1, 0x5A02);
    assert_ne!(ecdsa.not_after, rsa.not_after, "two expiries to tell apart");
    let uwsgi = Uwsgi::start(App::Raw);
    let mut builder = Ringway::with(&uwsgi)
        .arg("--tls-listen", "127.0.0.1:0")
        .arg("--metrics", "127.0.0.1:0")
        .flag("--no-ebpf");
    for leaf in [&ecdsa, &rsa] {
        builder = builder
            .arg("--tls-cert", leaf.cert.to_str().expect("utf-8"))
            .arg("--tls-key", leaf.key.to_str().expect("utf-8"));
    }
    let ringway = builder.start();
    let text = metrics(ringway.metrics_addr());
    for leaf in [&ecdsa, &rsa] {
        let series = expiry_series("same.test", leaf);
        assert_eq!(sample(&text, &series), leaf.not_after as f64, "{text}");
    }
    // Prometheus refuses a whole scrape that repeats a series.
    let mut seen = std::collections::BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let series = line.rsplit_once(' ').map_or(line, |(series, _)| series);
        assert!(seen.insert(series), "{series} twice:\n{text}");
    }
    // Each client gets the one it can take, as from nginx's two `ssl_certificate` lines:
    // a TLS 1.2 client offering RSA suites only, and a TLS 1.3 one signing RSA only, the
    // RSA one; others the first listed.
    let (tls, ca) = (ringway.tls_addr(), pki.ca().display().to_string());
    for (offer, key_type) in [
        (
            &["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"][..],
            "RSA",
        ),
        (&["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"][..], "RSA"),
        (
            &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"][..],
            "ECDSA",
        ),
        (&["-tls1_3"][..], "ECDSA"),
    ] {
        let mut args = vec!["-servername", "same.test", "-CAfile", &ca];
        args.extend(offer);
        let ran = s_client(tls, &args);
        assert!(ran.status.success(), "{offer:?}: {ran:?}");
        let bits = if key_type == "RSA" { 2048 } else { 256 };
        assert!(
            ran.out()
                .contains(&format!("Server public key is {bits} bit")),
            "{offer:?}: the {key_type} certificate: {ran:?}"
        );
    }
}

/// The TCP sockets `pid` listens on, by their local ports (from `/proc/net/tcp{,6}`).
fn listening_ports(pid: u32) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).expect("tcp table");
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(&state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if state == "0A" && inodes.iter().any(|i| i == inode) {
                ports.extend(port);
            }
        }
    }
    ports
}

#[test]
fn listen_given_as_an_empty_list_serves_tls_and_no_plain_http() {
    let pki = Pki::new();
    let a = pki.issue("a", &crate::A_NAMES, crate::A_SERIAL, crate::A_NOT_AFTER);
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .config(format!("listen = []\n{}", tls_toml(&[&a], "")))
        .tls_only()
        .start();
    let tls = ringway.tls_addr();
    assert_eq!(ringway.addr(), tls, "ready at its TLS line");
    let ca = pki.ca().display().to_string();
    let [resolve, to, url] = curl_target("a.test", tls, "/");
    let ran = curl(&["--cacert", &ca, &resolve, &to, &url]).success();
    assert_eq!(ran.out(), "Hello, World!", "{ran:?}");
    let log = ringway.stderr();
    assert!(!log.contains("listening on http://"), "{log}");
    assert_eq!(listening_ports(ringway.pid()), [tls.port()], "{log}");
}

/// A reload that lowers `keepalive_timeout` holds an idle TLS keep-alive connection to it,
/// as a plain one, where nginx closes its idle connections at a reload (found by review:
/// a TLS connection kept the old timeout, never being parked).
#[test]
fn a_reload_holds_an_idle_tls_connection_to_the_new_keepalive_timeout() {
    let pki = Pki::new();
    let a = pki.issue("a", &A_NAMES, A_SERIAL, A_NOT_AFTER);
    let uwsgi = Uwsgi::start(App::Raw);
    let config =
        |timeout: &str| format!("keepalive_timeout = \"{timeout}\"\n{}", tls_toml(&[&a], ""));
    let ringway = Ringway::with(&uwsgi).config(config("75s")).start();
    let py = PyTls::open(ringway.tls_addr(), &PyOpts::verified("a.test", pki.ca()));
    let mut conn = py.conn();
    conn.send(&Req::get("/").host(Some("a.test")).to_bytes())
        .expect("send");
    assert_eq!(conn.read_response().expect("an answer").status, 200);
    std::thread::sleep(Duration::from_millis(300));
    let line = ringway.reload(&config("1s"));
    assert!(line.contains("reloaded"), "{line}");
    let reloaded = std::time::Instant::now();
    assert!(
        conn.closed_within(Duration::from_secs(10)),
        "the idle TLS connection stayed open"
    );
    let took = reloaded.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "closed {took:?} after the reload, not within the new 1 s"
    );
}
