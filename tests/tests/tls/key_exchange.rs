//! Key exchange groups (`key_exchange_groups`, nginx's `ssl_ecdh_curve`): a browser of today
//! agrees on the post-quantum hybrid X25519MLKEM768, clients of the classical groups get
//! theirs, a group the config leaves out is refused, and the group is named as nginx's
//! `$ssl_curve` names it, for the same clients, and counted by name in the metrics.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ringway_tests::browser;
use ringway_tests::nginx::TlsServer;
use ringway_tests::static_config::toml_string;
use ringway_tests::tls::{Leaf, Pki, Ran, curl, curl_target, metrics, sample, tls_toml};
use ringway_tests::{App, Nginx, Ringway, Uwsgi};
use serde_json::Value;

use crate::{A_NAMES, A_NOT_AFTER, A_SERIAL};

/// The groups curl's OpenSSL offers (`--curves`, its key share for the first), and the name
/// nginx's `$ssl_curve` gives the one agreed. P-256 is in each list: nginx's OpenSSL refuses
/// a client that cannot use its certificate's curve, where rustls does not mind.
const CLASSICAL: [(&str, &str); 3] = [
    ("X25519:P-256", "X25519"),
    ("P-256", "prime256v1"),
    ("P-384:P-256", "secp384r1"),
];

/// ringway in front of `uwsgi` with the certificate `a` and `tls` lines in `[tls]`: the app
/// is told the group (`SSL_CURVE`), the access log names it, the metrics count it.
fn ringway(uwsgi: &Uwsgi, a: &Leaf, tls: &str) -> Ringway {
    let top = "access_log = \"stderr\"\naccess_log_format = 'curve=$ssl_curve $request_uri'";
    Ringway::with_config(format!(
        "{top}\n[upstreams.app]\nservers = [{}]\n\n[[routes]]\npath = \"/\"\n\
         upstream = \"app\"\nparams = {{ SSL_CURVE = \"$ssl_curve\" }}\n\n{}",
        toml_string(&format!("unix:{}", uwsgi.socket().display())),
        tls_toml(&[a], tls)
    ))
    .arg("--metrics", "127.0.0.1:0")
    .flag("--no-ebpf")
    .start()
}

/// `ringway_tls_key_exchanges_total{group=GROUP}` of `server`.
fn key_exchanges(server: &Ringway, group: &str) -> f64 {
    let text = metrics(server.metrics_addr());
    sample(
        &text,
        &format!("ringway_tls_key_exchanges_total{{group=\"{group}\"}}"),
    )
}

/// curl offering only `curve`, for `/environ` of `a.test` at `addr`.
fn curl_with(a_ca: &Path, addr: SocketAddr, curve: &str) -> Ran {
    let target = curl_target("a.test", addr, "/environ");
    let ca = a_ca.display().to_string();
    curl(&[
        "--cacert", &ca, "--curves", curve, &target[0], &target[1], &target[2],
    ])
}

/// The group the app was told of, for a request curl made offering only `curve`.
fn told(a_ca: &Path, addr: SocketAddr, curve: &str) -> String {
    let ran = curl_with(a_ca, addr, curve);
    assert!(ran.status.success(), "{curve}: {ran:?}");
    let env: Value = serde_json::from_str(&ran.out()).unwrap_or_else(|e| panic!("{e}: {ran:?}"));
    env["SSL_CURVE"].as_str().unwrap_or_default().to_owned()
}

/// What headless Chromium shows of `https://a.test:PORT/PATH` at `addr` (its DOM), trusting
/// any certificate: a browser's own TLS stack and key shares.
fn chromium(addr: SocketAddr, path: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let resolve = format!("--host-resolver-rules=MAP a.test {}", addr.ip());
    browser::chromium(
        profile.path(),
        &["--ignore-certificate-errors", &resolve, "--dump-dom"],
        &format!("https://a.test:{}{path}", addr.port()),
    )
}

#[test]
fn browsers_get_the_post_quantum_hybrid_and_the_groups_are_named_as_nginx_names_them() {
    let pki = Pki::new();
    let a = pki.issue("a", &A_NAMES, A_SERIAL, A_NOT_AFTER);
    let uwsgi = Uwsgi::start(App::Raw);
    let nginx = Nginx::start_tls(
        uwsgi.socket(),
        &TlsServer {
            cert: &a.cert,
            key: &a.key,
            listen: "ssl",
            directives: "",
            locations: "",
            params: "uwsgi_param SSL_CURVE $ssl_curve;",
        },
    );
    let server = ringway(&uwsgi, &a, "");

    // Each classical group, alone: agreed, and named as nginx names it.
    for (curve, name) in CLASSICAL {
        let ours = told(pki.ca(), server.tls_addr(), curve);
        assert_eq!(ours, name, "{curve} at ringway");
        assert_eq!(
            ours,
            told(pki.ca(), nginx.addr(), curve),
            "{curve}: ringway against nginx"
        );
    }

    // A browser offers the hybrid first (and X25519 beside it): it gets the hybrid, with
    // no extra round trip, and the log says so.
    let dom = chromium(server.tls_addr(), "/environ?browser");
    assert!(
        dom.contains("\"SSL_CURVE\": \"X25519MLKEM768\"")
            || dom.contains("\"SSL_CURVE\":\"X25519MLKEM768\""),
        "the app was told of the hybrid: {dom}"
    );
    let line = "curve=X25519MLKEM768 /environ?browser";
    assert!(
        server.wait_for_log(line, Duration::from_secs(5)),
        "{line} in {}",
        server.stderr()
    );
    // Each handshake counted under its group: one per curl, the browser's one or more.
    assert!(key_exchanges(&server, "X25519MLKEM768") >= 1.0);
    for (group, handshakes) in [
        ("X25519", 1.0),
        ("prime256v1", 1.0),
        ("secp384r1", 1.0),
        ("SecP256r1MLKEM768", 0.0),
    ] {
        assert_eq!(key_exchanges(&server, group), handshakes, "{group}");
    }
}

#[test]
fn the_config_s_groups_are_the_only_ones_agreed() {
    let pki = Pki::new();
    let a = pki.issue("a", &A_NAMES, A_SERIAL, A_NOT_AFTER);
    let uwsgi = Uwsgi::start(App::Raw);
    // Mozilla's old `ssl_ecdh_curve X25519:prime256v1:secp384r1;`: no hybrid.
    let classical = ringway(
        &uwsgi,
        &a,
        "key_exchange_groups = [\"X25519\", \"prime256v1\"]",
    );
    let dom = chromium(classical.tls_addr(), "/environ?classical");
    assert!(
        dom.contains("X25519") && !dom.contains("X25519MLKEM768"),
        "the browser falls back to X25519: {dom}"
    );
    assert!(classical.wait_for_log("curve=X25519 /environ?classical", Duration::from_secs(5)));
    assert_eq!(told(pki.ca(), classical.tls_addr(), "P-256"), "prime256v1");
    let refused = curl_with(pki.ca(), classical.tls_addr(), "P-384");
    assert!(
        !refused.status.success() && !refused.out().contains("REQUEST_METHOD"),
        "P-384 is not in the list: {refused:?}"
    );
}
