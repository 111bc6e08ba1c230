//! The binary upgrade (README, "Reload and upgrade"): under wrk's load, a new ringway starts
//! on the address of the running one (SO_REUSEPORT), then the old one gets SIGTERM and
//! drains. Not one request may fail: wrk must report no non-2xx answer and no socket error.
//!
//! Two loads: keep-alive connections (what browsers and load balancers hold: each gets
//! `Connection: close` on its next answer from the draining ringway, and reconnects to the
//! new one), and a new connection per request (`Connection: close`), which keeps handshakes
//! coming the moment the old listeners close. The new ringway steers every new connection
//! to its own listeners (an eBPF program on the port's SO_REUSEPORT group), so the old
//! ones have nothing queued or half-open when they close. Without the steering, a
//! connection per request lost 11 to 25 connections per switch (reset, wrk's read errors)
//! with `net.ipv4.tcp_migrate_req` at 0, and with it at 1 a CI run still lost one (a
//! handshake completing as its listener closed: wrk's write error). So each test runs in a
//! network namespace of its own (root only), where that sysctl is 0 as on an untuned host.
//! Both ringways take the same metrics address, and the new one's answers once the old one
//! is gone.

use std::net::SocketAddr;
use std::thread::sleep;
use std::time::Duration;

use ringway_tests::netns::NetNs;
use ringway_tests::uwsgi::UwsgiOptions;
use ringway_tests::{App, Ringway, Uwsgi};

/// The metrics address both ringways are given (inside the test's network namespace).
const METRICS: &str = "127.0.0.1:9145";

/// What wrk reported.
#[derive(Debug, Default)]
struct WrkReport {
    requests: u64,
    non_2xx: u64,
    /// connect, read, write, timeout.
    socket_errors: [u64; 4],
    text: String,
}

fn wrk(ns: &NetNs, addr: SocketAddr, connections: u32, seconds: u32, extra: &[&str]) -> WrkReport {
    let wrk = std::env::var("RINGWAY_WRK").unwrap_or_else(|_| "/usr/bin/wrk".to_owned());
    let out = ns
        .command(&wrk)
        .args(["-t", "2", "-c", &connections.to_string()])
        .args(["-d", &format!("{seconds}s"), "--timeout", "5s"])
        .args(extra)
        .arg(format!("http://{addr}/"))
        .output()
        .unwrap_or_else(|e| panic!("running {wrk} (apt-get install wrk): {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "wrk failed: {text}");
    parse_wrk(&text)
}

/// Reads wrk's summary: `N requests in`, `Non-2xx or 3xx responses: N`, `Socket errors:
/// connect N, read N, write N, timeout N` (the last two only when not zero).
fn parse_wrk(text: &str) -> WrkReport {
    let mut report = WrkReport {
        text: text.to_owned(),
        ..WrkReport::default()
    };
    for line in text.lines().map(str::trim) {
        if let Some((n, _)) = line.split_once(" requests in ") {
            report.requests = n.trim().parse().expect("wrk's request count");
        } else if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            report.non_2xx = n.trim().parse().expect("wrk's non-2xx count");
        } else if let Some(errors) = line.strip_prefix("Socket errors:") {
            for (i, part) in errors.split(',').enumerate().take(4) {
                let n = part.split_whitespace().last().expect("a count");
                report.socket_errors[i] = n.parse().expect("wrk's error count");
            }
        }
    }
    report
}

#[test]
fn wrk_summaries_are_read() {
    let text = "  Thread Stats   Avg\n  120 requests in 6.00s, 1.2MB read\n  Socket errors: \
                connect 1, read 2, write 3, timeout 4\n  Non-2xx or 3xx responses: 5\n";
    let report = parse_wrk(text);
    assert_eq!(
        (report.requests, report.non_2xx, report.socket_errors),
        (120, 5, [1, 2, 3, 4])
    );
}

/// Runs wrk against an old ringway for 6 s; 2 s in, starts a new ringway on its address,
/// then SIGTERMs the old one. All in a network namespace with `tcp_migrate_req` at 0.
/// Returns wrk's report once both ringways are checked.
fn upgrade_under_load(extra: &[&str]) -> WrkReport {
    let ns = std::sync::Arc::new(NetNs::new(false));
    let uwsgi = Uwsgi::start_with(UwsgiOptions {
        workers: 4,
        listen: Some(1024),
        ..UwsgiOptions::new(App::Raw)
    });
    // The namespace has a port space of its own: both take the same fixed metrics address,
    // as two processes of one configuration file do.
    let metrics =
        |b: ringway_tests::ringway::RingwayBuilder| b.arg("--metrics", METRICS).flag("--no-ebpf");
    let mut old = metrics(Ringway::with(&uwsgi).workers(2).in_netns(&ns)).start();
    let addr = old.addr();
    let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    let load_ns = std::sync::Arc::clone(&ns);
    let load = std::thread::spawn(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        wrk(&load_ns, addr, 50, 6, &extra)
    });
    sleep(Duration::from_secs(2)); // under load
    let new = metrics(Ringway::with(&uwsgi).workers(2).listen(addr).in_netns(&ns)).start();
    assert_eq!(new.addr(), addr);
    sleep(Duration::from_millis(500)); // both serve
    old.sigterm();
    let status = old
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the old ringway still runs:\n{}", old.stderr()));
    assert!(status.success(), "{status}:\n{}", old.stderr());
    let report = load.join().expect("wrk's thread");
    assert!(report.requests > 100, "wrk ran: {}", report.text);
    // The new one serves on after the old one is gone.
    let after = wrk(&ns, addr, 4, 1, &[]);
    assert!(after.requests > 0, "the new ringway serves: {}", after.text);
    assert_no_failure(&after, "after the upgrade");
    let health = ns
        .command("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            &format!("http://{METRICS}/healthz"),
        ])
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&health.stdout),
        "ok\n",
        "the new ringway's metrics endpoint answers:\n{}",
        new.stderr()
    );
    drop(new);
    report
}

fn assert_no_failure(report: &WrkReport, what: &str) {
    assert_eq!(
        (report.non_2xx, report.socket_errors),
        (0, [0; 4]),
        "{what}: no request fails across the upgrade; wrk said:\n{}",
        report.text
    );
}

#[test]
fn a_binary_upgrade_under_keep_alive_load_fails_no_request() {
    let report = upgrade_under_load(&[]);
    assert_no_failure(&report, "keep-alive");
}

#[test]
fn a_binary_upgrade_under_a_connection_per_request_fails_no_request() {
    let report = upgrade_under_load(&["-H", "Connection: close"]);
    assert_no_failure(&report, "a connection per request");
}
