//! deploy/prometheus/ and deploy/grafana/ against the real tools: promtool checks and
//! unit-tests the rules, and a real Prometheus scrapes a real ringway (uWSGI behind it, traffic
//! with errors) while every query of the Grafana dashboard is evaluated through its HTTP API
//! and has to return numbers.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use ringway_tests::command::status_and_output;
use ringway_tests::prometheus::{JOB, Prometheus, finite_values, rules_dir};
use ringway_tests::tls::tool;
use ringway_tests::wait::poll_until;
use ringway_tests::{App, Req, Ringway, Uwsgi, paths, roundtrip};
use serde_json::Value;

/// How long a query may take to return data: a few scrapes and rule evaluations.
const DATA_LIMIT: Duration = Duration::from_secs(60);
/// What the dashboard's `$__rate_interval` stands for here: several 1 s scrapes.
const RATE_INTERVAL: &str = "10s";

fn promtool(args: &[&str]) -> (bool, String) {
    status_and_output(
        Command::new(tool("promtool", "prometheus"))
            .args(args)
            .current_dir(rules_dir()),
    )
}

#[test]
fn rules_pass_promtool_check() {
    let (ok, out) = promtool(&["check", "rules", "ringway.rules.yaml"]);
    assert!(ok, "promtool check rules:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn rules_pass_their_unit_tests() {
    let (ok, out) = promtool(&["test", "rules", "ringway.rules.test.yaml"]);
    assert!(ok, "promtool test rules:\n{out}");
}

/// Every `expr` of the dashboard's panels (rows' nested panels included), with its panel's
/// title.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?").to_owned();
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((title.clone(), expr.to_owned()));
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// A dashboard query as Grafana would send it with every instance selected.
fn as_grafana_sends(expr: &str) -> String {
    expr.replace("$__rate_interval", RATE_INTERVAL)
        .replace("$instance", ".*")
}

/// Sends requests until stopped: answers from the app, its errors, ringway's 404, a 502
/// from a route whose upstream is gone, and two at once to a route whose `limit_req` holds
/// the second a few milliseconds.
fn traffic(ringway: SocketAddr, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            for target in [
                "/",
                "/bytes/2000",
                "/error",
                "/status/503",
                "/gone/x",
                "/limited/x",
                "/limited/y",
            ] {
                roundtrip(ringway, &Req::get(target));
            }
            thread::sleep(Duration::from_millis(50));
        }
    })
}

#[test]
fn every_dashboard_query_returns_data_from_a_live_prometheus() {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(paths::workspace_root().join("deploy/grafana/ringway.json"))
            .expect("read deploy/grafana/ringway.json"),
    )
    .expect("the dashboard is JSON");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 10, "too few queries found: {queries:?}");

    let uwsgi = Uwsgi::start(App::Flask);
    let ringway = Ringway::with_config(format!(
        r#"
[upstreams.app]
servers = ["{app}"]

[upstreams.gone]
servers = ["unix:/nonexistent/ringway-test-gone.sock"]

[[routes]]
path = "/gone/"
upstream = "gone"

# The limits panels: a few of each burst held, none refused.
[[routes]]
path = "/limited/"
upstream = "app"
limit_req = {{ rate = "100r/s", burst = 20, delay = 0 }}

[[routes]]
path = "/"
upstream = "app"
"#,
        app = uwsgi.upstream()
    ))
    .arg("--metrics", "127.0.0.1:0")
    .start();
    let prometheus = Prometheus::start(ringway.metrics_addr());
    let stop = Arc::new(AtomicBool::new(false));
    let sender = traffic(ringway.addr(), Arc::clone(&stop));

    let up = poll_until(DATA_LIMIT, || {
        prometheus
            .query(&format!("up{{job=\"{JOB}\"}} == 1"))
            .is_ok_and(|d| !finite_values(&d).is_empty())
    });
    assert!(
        up,
        "Prometheus never scraped ringway: {}\n{}",
        prometheus.targets(),
        prometheus.log()
    );

    // The dashboard's queries, and the recording rules (which run on the same live data).
    let mut pending: BTreeSet<(String, String)> = queries
        .iter()
        .map(|(title, expr)| (title.clone(), as_grafana_sends(expr)))
        .collect();
    for rule in [
        "route_code:ringway_requests:rate5m",
        "instance:ringway_requests_5xx:ratio_rate5m",
        "instance:ringway_request_duration_seconds:p99_5m",
        "upstream:ringway_upstream_connections:rate5m",
        "upstream:ringway_upstream_connect_failures:rate5m",
        "result:ringway_config_reloads:increase1h",
    ] {
        pending.insert(("recording rule".to_owned(), rule.to_owned()));
    }
    let mut errors = Vec::new();
    poll_until(DATA_LIMIT, || {
        pending.retain(|(_, expr)| match prometheus.query(expr) {
            Ok(data) => finite_values(&data).is_empty(),
            Err(err) => {
                errors.push(err);
                false
            }
        });
        pending.is_empty()
    });
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("the traffic thread");

    assert!(
        errors.is_empty(),
        "Prometheus refused queries:\n{errors:#?}"
    );
    assert!(
        pending.is_empty(),
        "no numbers after {DATA_LIMIT:?} from:\n{pending:#?}\nringway's /metrics:\n{}",
        roundtrip(ringway.metrics_addr(), &Req::get("/metrics")).text()
    );

    // The errors panel saw the errors that were sent, by route and code.
    let by_code = prometheus
        .query(&as_grafana_sends(
            "sum by (route, code) (increase(ringway_requests_total[1m]))",
        ))
        .expect("query requests by code");
    let series: BTreeSet<(String, String)> = by_code["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let label = |k: &str| s["metric"][k].as_str().unwrap_or("").to_owned();
            (label("route"), label("code"))
        })
        .collect();
    for code in ["200", "500", "503", "502"] {
        assert!(
            series.iter().any(|(_, c)| c == code),
            "no {code} among {series:?}"
        );
    }
}
