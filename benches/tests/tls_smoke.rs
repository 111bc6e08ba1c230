//! Smoke test of the harness's TLS cases (not a benchmark: nothing here is timed): one
//! round of one second of the handshake cases, tls-hello and tls-h2-hello at
//! ringway and nginx, with 20 idle TLS connections. It checks that both served every
//! connection over TLS 1.3 with the suite the client offers, on the case's application
//! protocol (h2 for tls-h2-hello, http/1.1 for the others), that the resumed case resumed,
//! and that the report has its TLS section and targets.
//!
//! Needs what the other smoke test needs (RINGWAY_BIN, RINGWAY_VENV, nginx; wrk is not used
//! here) and h2load (Debian's nghttp2-client, installed by CI).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use ringway_bench::load::{CaseSpec, Kind};
use ringway_bench::stacks::{App, StackKind};
use ringway_bench::{Config, run};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn from_env(var: &str, fallbacks: &[PathBuf]) -> PathBuf {
    if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return PathBuf::from(v);
    }
    fallbacks
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| fallbacks[0].clone())
}

#[test]
fn ringway_and_nginx_serve_the_tls_cases() {
    let root = root();
    let target = root.join("target");
    let app_file = from_env("RINGWAY_BENCH_APP", &[root.join("tests/apps/raw_wsgi.py")]);
    assert!(
        app_file.exists(),
        "the app {} is missing (RINGWAY_BENCH_APP)",
        app_file.display()
    );
    let h2load = from_env("RINGWAY_H2LOAD", &[PathBuf::from("/usr/bin/h2load")]);
    let mut specs = vec![
        CaseSpec {
            kind: Kind::TlsHandshakeFull,
            connections: None,
        },
        CaseSpec {
            kind: Kind::TlsHandshakeResumed,
            connections: None,
        },
    ];
    assert!(
        h2load.exists(),
        "h2load not found at {} (Debian's nghttp2-client; RINGWAY_H2LOAD)",
        h2load.display()
    );
    specs.push(CaseSpec {
        kind: Kind::TlsHello,
        connections: Some(10),
    });
    specs.push(CaseSpec {
        kind: Kind::TlsH2Hello,
        connections: Some(2),
    });
    let out = std::env::temp_dir().join(format!("ringway-bench-tls-smoke-{}", std::process::id()));
    let config = Config {
        ringway: from_env(
            "RINGWAY_BIN",
            &[target.join("debug/ringway"), target.join("release/ringway")],
        ),
        nginx: from_env("RINGWAY_NGINX", &[PathBuf::from("/usr/sbin/nginx")]),
        venv: from_env("RINGWAY_VENV", &[target.join("venv")]),
        wrk: from_env("RINGWAY_WRK", &[PathBuf::from("/usr/bin/wrk")]),
        h2load,
        app: App {
            file: app_file,
            callable: "application".into(),
        },
        app_name: "raw".into(),
        stacks: StackKind::ALL.to_vec(),
        cases: Config::case_list(&specs, &[10], 10, 2),
        rounds: 1,
        duration_s: 1,
        ringway_workers: 1,
        ringway_probes: false,
        uwsgi_workers: 2,
        wrk_threads: 1,
        pin: false,
        idle_conns: 20,
        settle: std::time::Duration::ZERO,
        out_dir: out.clone(),
        command: "TLS smoke test".into(),
        interrupt: Arc::new(AtomicBool::new(false)),
    };
    let report = run(&config).expect("the harness runs");
    let _ = std::fs::remove_dir_all(&out);

    // uWSGI's stacks take no TLS case: they are neither started nor reported.
    assert_eq!(
        report.runs.len(),
        2 * config.cases.len(),
        "{:?}",
        report.runs
    );
    for r in &report.runs {
        assert!(r.stack.serves_tls(), "{} ran {}", r.stack, r.case);
        assert!(r.requests > 0, "{} {}: nothing completed", r.stack, r.case);
        assert_eq!(r.errors, 0, "{} {}: errors {:?}", r.stack, r.case, r.wrk);
        assert!(
            r.proxy_cpu_us.is_some(),
            "{} {}: no CPU figure",
            r.stack,
            r.case
        );
        let tls = r.tls.as_ref().expect("what the run negotiated");
        assert_eq!(
            (
                tls.protocol.as_str(),
                tls.cipher.as_str(),
                tls.group.as_str()
            ),
            ("TLSv1.3", "TLS_AES_128_GCM_SHA256", "X25519"),
            "{} {}",
            r.stack,
            r.case
        );
        assert_eq!(
            tls.alpn.as_deref(),
            r.kind.alpn(),
            "{} {}: the application protocol",
            r.stack,
            r.case
        );
    }
    for s in &report.summaries {
        assert!(s.unserved.is_none(), "{} did not serve {}", s.stack, s.case);
        let resumed = s.resumed_fraction;
        match s.kind {
            Kind::TlsHandshakeFull => assert_eq!(resumed, Some(0.0), "{}", s.stack),
            Kind::TlsHandshakeResumed => assert!(
                resumed.is_some_and(|f| f > 0.9),
                "{} resumed {resumed:?}",
                s.stack
            ),
            _ => {}
        }
    }
    for kind in [StackKind::Ringway, StackKind::Nginx] {
        let held = report
            .stacks
            .get(&kind)
            .and_then(|i| i.idle_tls_conns.as_ref())
            .map(|c| c.held);
        assert_eq!(held, Some(20), "{kind} holds the idle TLS connections");
    }
    let md = report.markdown();
    assert!(md.contains("### TLS (ringway vs nginx)"), "{md}");
    assert!(
        md.contains("| full TLS handshakes per proxy CPU-second ≥ nginx's, tls-handshake-full |"),
        "{md}"
    );
    assert!(
        md.contains("| proxy CPU per HTTP/2 request, beside nginx's, tls-h2-hello-c2 |"),
        "{md}"
    );
}
