//! Smoke test of the harness (not a benchmark: nothing here is timed): one round of one
//! second, hello and the 1 KiB static file, 10 connections, 20 idle connections, against
//! every stack (those in front of uWSGI, and those in front of Granian over HTTP). It checks
//! that every stack answered with 200s (the probes check status and body, the file's bytes
//! exactly, and wrk counted no errors), that the uWSGI and Granian stacks are reported as not
//! serving the file, and that the report was written.
//!
//! It needs what `cargo xtask test` provides: RINGWAY_BIN (else target/{release,debug}/ringway),
//! RINGWAY_VENV (else target/venv), nginx, wrk. The app is tests/apps/raw_wsgi.py, or
//! RINGWAY_BENCH_APP; a missing app file fails the test.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use ringway_bench::load::Kind;
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
fn every_stack_answers_and_the_report_is_written() {
    let root = root();
    let target = root.join("target");
    let app_file = from_env("RINGWAY_BENCH_APP", &[root.join("tests/apps/raw_wsgi.py")]);
    assert!(
        app_file.exists(),
        "the app {} is missing (RINGWAY_BENCH_APP)",
        app_file.display()
    );
    let out = std::env::temp_dir().join(format!("ringway-bench-smoke-{}", std::process::id()));
    let config = Config {
        ringway: from_env(
            "RINGWAY_BIN",
            &[target.join("debug/ringway"), target.join("release/ringway")],
        ),
        nginx: from_env("RINGWAY_NGINX", &[PathBuf::from("/usr/sbin/nginx")]),
        venv: from_env("RINGWAY_VENV", &[target.join("venv")]),
        wrk: from_env("RINGWAY_WRK", &[PathBuf::from("/usr/bin/wrk")]),
        h2load: from_env("RINGWAY_H2LOAD", &[PathBuf::from("/usr/bin/h2load")]),
        app: App {
            file: app_file,
            callable: "application".into(),
        },
        app_name: "raw".into(),
        stacks: StackKind::ALL.to_vec(),
        cases: Config::cases(&[Kind::Hello, Kind::Static1k], &[10], 10),
        rounds: 1,
        duration_s: 1,
        ringway_workers: 1,
        ringway_probes: false,
        uwsgi_workers: 2,
        wrk_threads: 1,
        pin: false,
        idle_conns: 20,
        // The settled RSS is read at once: the smoke test checks the harness, not the figure.
        settle: std::time::Duration::ZERO,
        out_dir: out.clone(),
        command: "smoke test".into(),
        interrupt: Arc::new(AtomicBool::new(false)),
    };
    let report = run(&config).expect("the harness runs");
    for file in ["results.json", "results.md", "chart.svg"] {
        assert!(out.join(file).is_file(), "{file} was not written");
    }
    let _ = std::fs::remove_dir_all(&out);

    let file_stacks = StackKind::ALL.iter().filter(|k| k.serves_files()).count();
    assert_eq!(
        report.runs.len(),
        StackKind::ALL.len() + file_stacks,
        "one hello run per stack, one static run per stack that serves files"
    );
    for r in &report.runs {
        assert!(r.requests > 0, "{}: no requests completed", r.stack);
        assert_eq!(r.wrk.status, 0, "{}: non-2xx/3xx answers", r.stack);
        assert_eq!(r.errors, 0, "{}: wrk errors {:?}", r.stack, r.wrk);
        if r.stack.has_proxy() {
            assert!(r.proxy_cpu_us.is_some(), "{}: no CPU figure", r.stack);
            assert!(r.rss_peak.is_some_and(|v| v > 0), "{}: no RSS", r.stack);
        }
    }
    for s in &report.summaries {
        let served = !s.kind.is_static() || s.stack.serves_files();
        assert_eq!(
            s.unserved.is_none(),
            served,
            "{} on {}: {:?}",
            s.stack,
            s.case,
            s.unserved
        );
    }
    let held = report
        .stacks
        .get(&StackKind::Ringway)
        .and_then(|i| i.idle_conns.as_ref())
        .map(|c| c.held);
    assert_eq!(
        held,
        Some(20),
        "ringway holds the idle keep-alive connections"
    );
    let md = report.markdown();
    assert!(md.contains("| hello-c10 | ringway |"), "{md}");
    assert!(md.contains("| static1k-c10 | nginx |"), "{md}");
    assert!(md.contains("| static1k-c10 | uwsgi | not served"), "{md}");
    assert!(md.contains("| hello-c10 | ringway-granian |"), "{md}");
    assert!(md.contains("| static1k-c10 | granian | not served"), "{md}");
    assert!(
        md.contains("| Granian: req/s ≥ 1.2× nginx's, hello-c10 |"),
        "the HTTP-upstream targets: {md}"
    );
    assert!(md.contains("### Targets"), "{md}");
    assert!(report.svg().starts_with("<svg"));
}
