//! The certificate files: a broken TLS configuration is refused at start; SIGHUP re-reads
//! the files (with the whole configuration): new handshakes get the new certificate,
//! sessions already up carry on, and a broken or missing file makes the reload refused,
//! the old certificate kept, with a log line saying why. A reload that leaves the
//! certificates alone keeps session resumption; a new certificate starts fresh sessions.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ringway_tests::tls::{
    Leaf, Pki, PyOpts, PyTls, metrics, run, s_client, same_serial, sample, served_certificate, tool,
};
use ringway_tests::wait::poll_until;
use ringway_tests::{App, Conn, Req, Ringway, Uwsgi};

const NAME: &str = "site.test";
const RELOADED: &str = "SIGHUP: configuration reloaded";
const KEPT: &str = "SIGHUP: configuration refused, the old one stays";

/// Waits until `needle` appears `n` times in ringway's log.
fn wait_count(ringway: &Ringway, needle: &str, n: usize) {
    let seen = poll_until(Duration::from_secs(10), || {
        ringway.stderr().matches(needle).count() >= n
    });
    assert!(
        seen,
        "`{needle}` {n} times in the log:\n{}",
        ringway.stderr()
    );
}

/// The log from the last occurrence of `needle` to the end of that line.
fn last_line_with(ringway: &Ringway, needle: &str) -> String {
    let log = ringway.stderr();
    log.lines()
        .rev()
        .find(|l| l.contains(needle))
        .unwrap_or_default()
        .to_owned()
}

/// The serial `openssl s_client` is served for SNI `site.test`.
fn served_serial(ringway: &Ringway, pki: &Pki) -> String {
    let ca = pki.ca().display().to_string();
    let ran = s_client(
        ringway.tls_addr(),
        &["-servername", NAME, "-showcerts", "-CAfile", &ca],
    );
    served_certificate(&ran.out()).0
}

/// The expiry metric of the certificate `leaf` (its name, its file).
fn expiry(ringway: &Ringway, leaf: &Leaf) -> f64 {
    sample(
        &metrics(ringway.metrics_addr()),
        &format!(
            "ringway_tls_certificate_expiry_timestamp_seconds{{name=\"{NAME}\",file=\"{}\"}}",
            leaf.cert.display()
        ),
    )
}

fn assert_serves(conn: &mut Conn, what: &str) {
    conn.send(&Req::get("/").host(Some(NAME)).to_bytes())
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let r = conn
        .read_response()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Hello, World!"),
        "{what}"
    );
}

/// Now serving `leaf`: s_client sees its serial, Python its very DER.
fn assert_serving(ringway: &Ringway, pki: &Pki, leaf: &Leaf, what: &str) {
    let serial = served_serial(ringway, pki);
    assert!(
        same_serial(&serial, &leaf.serial),
        "{what}: s_client is served serial {serial}, want {}",
        leaf.serial
    );
    let py = PyTls::open(ringway.tls_addr(), &PyOpts::verified(NAME, pki.ca()));
    assert!(py.cert_der() == leaf.der, "{what}: the DER served");
    assert_serves(&mut py.conn(), what);
}

#[test]
fn sighup_swaps_the_certificate_keeps_sessions_and_survives_broken_files() {
    let pki = Pki::new();
    let first = pki.issue("site", &[NAME], 0x5A5A_0001, (2031, 1, 1));
    let uwsgi = Uwsgi::start(App::Raw);
    let mut ringway = Ringway::with(&uwsgi)
        .arg("--tls-listen", "127.0.0.1:0")
        .arg("--tls-cert", first.cert.to_str().expect("utf-8"))
        .arg("--tls-key", first.key.to_str().expect("utf-8"))
        .arg("--metrics", "127.0.0.1:0")
        .flag("--no-ebpf")
        .start();
    assert_serving(&ringway, &pki, &first, "at start");
    assert_eq!(expiry(&ringway, &first), first.not_after as f64);

    // A keep-alive session made with the first certificate.
    let old = PyTls::open(ringway.tls_addr(), &PyOpts::verified(NAME, pki.ca()));
    assert!(old.cert_der() == first.der);
    let mut old_conn = old.conn();
    assert_serves(&mut old_conn, "the old session");

    // Renewal: the same files, a new certificate and key.
    let second = pki.issue("site", &[NAME], 0x5B5B_0002, (2033, 3, 3));
    assert_eq!(second.cert, first.cert, "the same file");
    ringway.signal(libc::SIGHUP);
    wait_count(&ringway, RELOADED, 1);
    assert_serving(&ringway, &pki, &second, "after the reload");
    assert_serves(&mut old_conn, "the session from before the reload");
    assert_eq!(expiry(&ringway, &second), second.not_after as f64);
    assert!(
        ringway.wait_for_log("serial=5b5b0002", Duration::from_secs(5)),
        "the new serial is logged:\n{}",
        ringway.stderr()
    );

    // Broken files: each reload is refused, the second certificate stays, the log says why.
    let good_cert = std::fs::read(&second.cert).expect("read cert");
    let good_key = std::fs::read(&second.key).expect("read key");
    let stranger = pki.issue("stranger", &[NAME], 0x5C5C_0003, (2034, 4, 4));
    let cert_path = second.cert.display().to_string();
    let key_path = second.key.display().to_string();
    let breakages: [(&str, &dyn Fn(), &str); 4] = [
        (
            "a certificate file of garbage",
            &|| std::fs::write(&second.cert, "not a certificate\n").expect("write"),
            &cert_path,
        ),
        (
            "a missing certificate file",
            &|| std::fs::remove_file(&second.cert).expect("remove"),
            &cert_path,
        ),
        (
            "a missing key file",
            &|| std::fs::remove_file(&second.key).expect("remove"),
            &key_path,
        ),
        (
            "a key that is not the certificate's",
            &|| {
                std::fs::copy(&stranger.key, &second.key)
                    .map(drop)
                    .expect("copy")
            },
            &key_path,
        ),
    ];
    for (n, (what, break_it, named)) in breakages.iter().enumerate() {
        std::fs::write(&second.cert, &good_cert).expect("restore cert");
        std::fs::write(&second.key, &good_key).expect("restore key");
        break_it();
        ringway.signal(libc::SIGHUP);
        wait_count(&ringway, KEPT, n + 1);
        let line = last_line_with(&ringway, KEPT);
        assert!(
            line.contains(named),
            "{what}: the log names {named}: {line}"
        );
        assert!(ringway.is_running(), "{what}: ringway runs on");
        assert_serving(&ringway, &pki, &second, &format!("after {what}"));
        assert_eq!(expiry(&ringway, &second), second.not_after as f64, "{what}");
        assert_serves(&mut old_conn, &format!("the old session after {what}"));
    }

    // Mended: the next SIGHUP loads what is there now.
    let third = pki.issue("site", &[NAME], 0x5D5D_0004, (2035, 5, 5));
    ringway.signal(libc::SIGHUP);
    wait_count(&ringway, RELOADED, 2);
    assert_serving(&ringway, &pki, &third, "after the files were mended");
    assert_eq!(expiry(&ringway, &third), third.not_after as f64);
    assert_serves(&mut old_conn, "the first session, to the end");
}

#[test]
fn a_broken_tls_configuration_is_refused_at_start() {
    let pki = Pki::new();
    let good = pki.issue("good", &[NAME], 0x6060, (2031, 1, 1));
    let other = pki.issue("other", &["other.test"], 0x6161, (2031, 1, 1));
    let missing = pki.dir().join("missing.pem");
    let pair = |cert: &std::path::Path, key: &std::path::Path| {
        format!(
            "[tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [ {{ cert = '{}', key = '{}' }} ]\n",
            cert.display(),
            key.display()
        )
    };
    let missing_text = missing.display().to_string();
    let other_key = other.key.display().to_string();
    let cases: [(&str, String, &str); 5] = [
        (
            "a certificate file that does not exist",
            pair(&missing, &good.key),
            &missing_text,
        ),
        (
            "a key that is not the certificate's",
            pair(&good.cert, &other.key),
            &other_key,
        ),
        (
            "a certificate where the key should be",
            pair(&good.cert, &good.cert),
            "key",
        ),
        (
            "certificates and no TLS address",
            format!(
                "[tls]\ncertificates = [ {{ cert = '{}', key = '{}' }} ]\n",
                good.cert.display(),
                good.key.display()
            ),
            "tls.listen",
        ),
        (
            "a TLS address and no certificate",
            "[tls]\nlisten = \"127.0.0.1:0\"\n".to_owned(),
            "certificate",
        ),
    ];
    for (what, toml, said) in &cases {
        let refused = Ringway::builder()
            .upstream("unix:/nonexistent/ringway-test.sock")
            .config(toml.clone())
            .start_refused();
        assert!(!refused.status.success(), "{what}: {refused:?}");
        assert!(
            refused.stderr.contains(said),
            "{what}: the error says {said:?}:\n{}",
            refused.stderr
        );
    }
    // --tls-cert without its --tls-key.
    let refused = Ringway::builder()
        .upstream("unix:/nonexistent/ringway-test.sock")
        .arg("--tls-listen", "127.0.0.1:0")
        .arg("--tls-cert", good.cert.to_str().expect("utf-8"))
        .start_refused();
    assert!(!refused.status.success(), "{refused:?}");
    assert!(refused.stderr.contains("pairs"), "{}", refused.stderr);
}

/// One `GET /` through `openssl s_client` with `version` (`-tls1_2`, `-tls1_3`), offering
/// the session saved in `session` if there is one and saving the one it ends with there.
/// True if the handshake resumed (s_client's `Reused`), false for a full one (`New`).
fn resumed(ringway: &Ringway, pki: &Pki, version: &str, session: &Path) -> bool {
    let ca = pki.ca().display().to_string();
    let file = session.display().to_string();
    let addr = ringway.tls_addr().to_string();
    let mut cmd = Command::new(tool("openssl", "openssl"));
    cmd.args([
        "s_client",
        "-connect",
        &addr,
        "-servername",
        NAME,
        "-CAfile",
        &ca,
    ])
    .args([version, "-ign_eof", "-sess_out", &file]);
    if session.exists() {
        cmd.args(["-sess_in", &file]);
    }
    let request = format!("GET / HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n");
    let ran = run(&mut cmd, request.as_bytes(), Duration::from_secs(20));
    let out = ran.out();
    assert!(
        out.contains("Hello, World!"),
        "{version}: the answer: {ran:?}"
    );
    match (out.contains("\nReused, "), out.contains("\nNew, ")) {
        (true, false) => true,
        (false, true) => false,
        _ => panic!("{version}: neither New nor Reused once: {ran:?}"),
    }
}

#[test]
fn a_reload_keeps_sessions_resuming_until_a_certificate_changes() {
    let pki = Pki::new();
    let first = pki.issue("site", &[NAME], 0x7070_0001, (2031, 1, 1));
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--tls-listen", "127.0.0.1:0")
        .arg("--tls-cert", first.cert.to_str().expect("utf-8"))
        .arg("--tls-key", first.key.to_str().expect("utf-8"))
        .flag("--no-ebpf")
        .start();
    let sessions = tempfile::tempdir().expect("temp dir");
    let versions = ["-tls1_2", "-tls1_3"];
    let session = |version: &str| sessions.path().join(format!("{version}.pem"));
    for version in versions {
        assert!(
            !resumed(&ringway, &pki, version, &session(version)),
            "{version}: the first connection is a full handshake"
        );
        assert!(
            resumed(&ringway, &pki, version, &session(version)),
            "{version}: the second resumes (the control)"
        );
    }

    // A reload that changes nothing: the session cache and ticket keys carry over.
    ringway.signal(libc::SIGHUP);
    wait_count(&ringway, RELOADED, 1);
    for version in versions {
        assert!(
            resumed(&ringway, &pki, version, &session(version)),
            "{version}: a session from before a reload that left TLS alone resumes"
        );
    }

    // A renewed certificate in the same files: fresh sessions, a full handshake each.
    let second = pki.issue("site", &[NAME], 0x7171_0002, (2033, 3, 3));
    ringway.signal(libc::SIGHUP);
    wait_count(&ringway, RELOADED, 2);
    assert_serving(&ringway, &pki, &second, "after the renewal");
    for version in versions {
        assert!(
            !resumed(&ringway, &pki, version, &session(version)),
            "{version}: a session from before the renewal does not resume"
        );
        assert!(
            resumed(&ringway, &pki, version, &session(version)),
            "{version}: the next one resumes again"
        );
    }
}

/// HSTS follows a reload on connections already open, as every per-request setting does:
/// the next answer on a kept-alive TLS connection carries the new value.
#[test]
fn a_reload_s_hsts_reaches_connections_already_open() {
    let pki = Pki::new();
    let leaf = pki.issue("site", &[NAME], 0x7070, (2031, 1, 1));
    let uwsgi = Uwsgi::start(App::Raw);
    let config = |hsts: &str| {
        format!(
            "upstream = [\"{}\"]\n[tls]\nlisten = \"127.0.0.1:0\"\nhsts = \"{hsts}\"\n\
             certificates = [ {{ cert = '{}', key = '{}' }} ]\n",
            uwsgi.upstream(),
            leaf.cert.display(),
            leaf.key.display()
        )
    };
    let ringway = Ringway::with_config(config("max-age=100")).start();
    let session = PyTls::open(ringway.tls_addr(), &PyOpts::verified(NAME, pki.ca()));
    let mut conn = session.conn();
    let hsts = |conn: &mut Conn| {
        conn.send(&Req::get("/").host(Some(NAME)).to_bytes())
            .expect("send");
        let r = conn.read_response().expect("an answer");
        assert_eq!(r.status, 200, "{r:?}");
        r.header("strict-transport-security")
    };
    assert_eq!(hsts(&mut conn).as_deref(), Some("max-age=100"));
    let said = ringway.reload(&config("max-age=200"));
    assert!(said.contains(RELOADED), "{said}");
    assert_eq!(
        hsts(&mut conn).as_deref(),
        Some("max-age=200"),
        "the same connection, after the reload"
    );
}
