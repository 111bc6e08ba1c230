//! Smoke test of the buffering suite (not a benchmark: nothing here is judged): every
//! scenario on a tiny plan, at ringway and nginx. It checks that each run produced figures
//! and that the report was written; the verdicts are whatever they are.
//!
//! It needs what `cargo xtask test` provides: RINGWAY_BIN (else target/{debug,release}/ringway),
//! RINGWAY_VENV (else target/venv), nginx.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use ringway_bench::buffering::{self, BufferingConfig, Outcome, Plan, Scenario};
use ringway_bench::stacks::{App, StackKind};

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
fn every_scenario_runs_and_the_report_is_written() {
    let root = root();
    let target = root.join("target");
    let out = std::env::temp_dir().join(format!(
        "ringway-bench-buffering-smoke-{}",
        std::process::id()
    ));
    let config = BufferingConfig {
        ringway: from_env(
            "RINGWAY_BIN",
            &[target.join("debug/ringway"), target.join("release/ringway")],
        ),
        nginx: from_env("RINGWAY_NGINX", &[PathBuf::from("/usr/sbin/nginx")]),
        venv: from_env("RINGWAY_VENV", &[target.join("venv")]),
        app: App {
            file: root.join("tests/apps/raw_wsgi.py"),
            callable: "application".into(),
        },
        stacks: vec![StackKind::Ringway, StackKind::Nginx],
        scenarios: Scenario::ALL.to_vec(),
        plan: Plan::quick(),
        ringway_workers: 1,
        uwsgi_workers: 2,
        out_dir: out.clone(),
        command: "smoke test".into(),
        interrupt: Arc::new(AtomicBool::new(false)),
    };
    let report = buffering::run(&config).expect("the suite runs");
    for file in ["buffering.json", "buffering.md"] {
        assert!(out.join(file).is_file(), "{file} was not written");
    }
    let _ = std::fs::remove_dir_all(&out);

    assert_eq!(report.runs.len(), 6, "one run per scenario and stack");
    for run in &report.runs {
        match &run.outcome {
            Outcome::Failed(why) => panic!("{} at {}: {why}", run.scenario, run.stack),
            Outcome::SlowReaders(r) => {
                assert!(r.alone.requests > 0, "{}: no normal request", run.stack);
                assert_eq!(r.readers.clients, 2);
            }
            Outcome::TrickleUploads(r) => {
                assert_eq!(r.uploads.clients, 5);
                assert!(r.peaks.rss > 0, "{}: no RSS", run.stack);
            }
            Outcome::BigAnswers(r) => assert!(r.peaks.samples > 0),
        }
    }
    let md = report.markdown();
    assert!(md.contains("| slow-readers | normal client p50"), "{md}");
    assert!(md.contains("| big-answers | proxy RSS growth"), "{md}");
}
