//! The metrics endpoint against the truth: every figure is compared with an independent view
//! of the same thing (the kernel's `ss` and /proc, what the client sent and measured), the
//! Prometheus text goes through a real parser, the live page through a real browser, and an
//! unprivileged ringway says its probes are down. Needs root (CI runs as root).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ringway_tests::tls::{Pki, curl, curl_target};
use ringway_tests::uwsgi::UwsgiOptions;
use ringway_tests::wait::{poll_until, stop_child};
use ringway_tests::{App, Req, Ringway, Uwsgi, command, paths, roundtrip};
use serde_json::Value;

/// Starts ringway with its metrics endpoint on a free port; returns it and that address.
fn start_with_metrics(uwsgi: &Uwsgi) -> (Ringway, SocketAddr) {
    let ringway = Ringway::with(uwsgi).arg("--metrics", "127.0.0.1:0").start();
    let mut metrics = None;
    let found = poll_until(Duration::from_secs(10), || {
        metrics = metrics_addr(&ringway.stderr());
        metrics.is_some()
    });
    assert!(found, "no `metrics on` line:\n{}", ringway.stderr());
    (ringway, metrics.unwrap_or_else(|| unreachable!()))
}

fn metrics_addr(log: &str) -> Option<SocketAddr> {
    let rest = log.split("metrics on http://").nth(1)?;
    rest.split('/').next()?.parse().ok()
}

/// The endpoint on two addresses, an IPv4 and an IPv6 one (a dual-stack pod's probes reach
/// whichever its address is): each answers `/healthz` and `/metrics`.
#[test]
fn the_endpoint_listens_on_every_address_it_is_given() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--metrics", "127.0.0.1:0,[::1]:0")
        .start();
    let mut found = Vec::new();
    poll_until(Duration::from_secs(10), || {
        found = ringway
            .stderr()
            .split("metrics on http://")
            .skip(1)
            .filter_map(|rest| rest.split('/').next()?.parse::<SocketAddr>().ok())
            .collect();
        found.len() == 2
    });
    assert_eq!(
        found.iter().map(SocketAddr::is_ipv6).collect::<Vec<_>>(),
        [false, true],
        "{}",
        ringway.stderr()
    );
    for addr in found {
        assert_eq!(roundtrip(addr, &Req::get("/healthz")).status, 200, "{addr}");
        let metrics = roundtrip(addr, &Req::get("/metrics"));
        assert!(metrics.text().contains("ringway_requests_total"), "{addr}");
    }
}

fn stats(metrics: SocketAddr) -> Value {
    let r = roundtrip(metrics, &Req::get("/stats"));
    assert_eq!(r.status, 200, "/stats: {r:?}");
    r.json()
}

fn prometheus(metrics: SocketAddr) -> String {
    let r = roundtrip(metrics, &Req::get("/metrics"));
    assert_eq!(r.status, 200, "/metrics: {r:?}");
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{r:?}"
    );
    r.text()
}

/// The value of one sample (`name{labels}` exactly as rendered), or 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Waits until every probe is up; fails with the probes' reasons otherwise.
fn wait_for_probes(metrics: SocketAddr) -> Value {
    let mut last = Value::Null;
    let up = poll_until(Duration::from_secs(15), || {
        last = stats(metrics);
        last["ebpf"]["probes"]
            .as_array()
            .is_some_and(|p| !p.is_empty() && p.iter().all(|p| p["up"] == true))
    });
    assert!(
        up,
        "eBPF probes not all up (these tests need root):\n{}",
        last["ebpf"]
    );
    last
}

/// Sends a GET on `stream` and reads exactly its response (Content-Length framing); returns
/// the bytes sent and received.
fn exchange(stream: &mut TcpStream, target: &str) -> (u64, u64) {
    let request = format!("GET {target} HTTP/1.1\r\nHost: metrics.test\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "connection closed mid-response");
        got.extend_from_slice(&buf[..n]);
        let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("a Content-Length");
        if got.len() >= end + 4 + length {
            assert_eq!(got.len(), end + 4 + length, "nothing beyond the response");
            return (request.len() as u64, got.len() as u64);
        }
    }
}

/// srtt and rttvar in seconds as `ss -tin` shows them for one connection, server side.
fn ss_rtt(server: SocketAddr, client: SocketAddr) -> (f64, f64) {
    let filter = format!("src = {server} and dst = {client}");
    let out = Command::new("ss")
        .args(["-tinH", &filter])
        .output()
        .expect("run ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    let rtt = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rtt:"))
        .unwrap_or_else(|| panic!("no rtt in `ss -tin {filter}`: {text}"));
    let (srtt, var) = rtt.split_once('/').expect("rtt:S/V");
    let ms = |s: &str| s.parse::<f64>().expect("a number") / 1000.0;
    (ms(srtt), ms(var))
}

fn vm_rss(pid: u64) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024.0
}

/// uWSGI's processes found independently of ringway: their command line names the socket.
fn uwsgi_pids_by_cmdline(socket: &str) -> BTreeSet<u64> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            comm.trim() == "uwsgi" && String::from_utf8_lossy(&cmdline).contains(socket)
        })
        .collect()
}

#[test]
fn figures_match_what_the_kernel_and_the_client_saw() {
    let uwsgi = Uwsgi::start(App::Raw);
    let (ringway, metrics) = start_with_metrics(&uwsgi);
    wait_for_probes(metrics);

    // One keep-alive connection with known traffic.
    let mut conn = TcpStream::connect(ringway.addr()).expect("connect");
    let client = conn.local_addr().expect("local addr");
    let (mut sent, mut received) = (0, 0);
    for target in ["/", "/", "/bytes/100000", "/", "/bytes/5000"] {
        let (s, r) = exchange(&mut conn, target);
        sent += s;
        received += r;
    }
    // Let the last ACKs reach the server side; then the connection is idle, so its srtt
    // cannot move between the probe's read and ss's.
    std::thread::sleep(Duration::from_millis(300));
    let snap = stats(metrics);
    let (ss_srtt, ss_rttvar) = ss_rtt(ringway.addr(), client);
    let rows = snap["oldest_connections"]
        .as_array()
        .expect("connection table");
    let row = rows
        .iter()
        .find(|r| r["peer"] == client.to_string())
        .unwrap_or_else(|| panic!("{client} not in the live table: {rows:?}"));
    let kernel = &row["kernel"];
    assert_eq!(
        kernel["bytes_received"], sent,
        "kernel bytes in vs what the client sent"
    );
    assert_eq!(
        kernel["bytes_acked"], received,
        "kernel bytes out vs what the client read"
    );
    assert_eq!(row["bytes_in"], sent, "{row}");
    assert_eq!(row["bytes_out"], received, "{row}");
    assert_eq!(row["requests"], 5, "{row}");
    let srtt = kernel["srtt_seconds"].as_f64().expect("srtt");
    let rttvar = kernel["rttvar_seconds"].as_f64().expect("rttvar");
    eprintln!(
        "compare: srtt {srtt} s vs ss {ss_srtt} s; rttvar {rttvar} s vs ss {ss_rttvar} s; \
         bytes in {} vs sent {sent}; bytes out {} vs read {received}",
        kernel["bytes_received"], kernel["bytes_acked"]
    );
    // ss prints microseconds; the connection was idle between the two reads, so they agree
    // to ss's rounding (1 µs), plus 10% in case a late ACK moved srtt in between.
    assert!(
        (srtt - ss_srtt).abs() <= 1e-6 + 0.1 * ss_srtt,
        "srtt {srtt} vs ss {ss_srtt}"
    );
    assert!(
        (rttvar - ss_rttvar).abs() <= 1e-6 + 0.1 * ss_rttvar,
        "rttvar {rttvar} vs ss {ss_rttvar}"
    );
    drop(conn);

    // The processes: the same uWSGI pids as found by their command line, RSS as /proc says.
    // uWSGI forks its workers after its socket accepts: wait until both are there.
    let socket = uwsgi.socket().to_str().expect("utf-8 path").to_owned();
    let mut expected = BTreeSet::new();
    let mut snap = snap;
    let settled = poll_until(Duration::from_secs(10), || {
        expected = uwsgi_pids_by_cmdline(&socket);
        snap = stats(metrics);
        let shown = snap["processes"].as_array().map_or(0, |p| p.len());
        expected.len() == 3 && shown == 4
    });
    assert!(
        settled,
        "uWSGI master + 2 workers by cmdline {expected:?}; /stats {}",
        snap["processes"]
    );
    let procs = snap["processes"].as_array().expect("processes");
    let found: BTreeSet<u64> = procs
        .iter()
        .filter(|p| p["role"] != "ringway")
        .filter_map(|p| p["pid"].as_u64())
        .collect();
    assert_eq!(found, expected, "uWSGI processes: {procs:?}");
    assert_eq!(
        procs.iter().filter(|p| p["role"] == "uwsgi-worker").count(),
        2,
        "{procs:?}"
    );
    // ringway's and the workers' figures must be the kernel's (rss_source `ebpf` once said
    // so of /proc's too; found by review): each changes its memory while watched (answers
    // of a growing size, two at a time so that both workers serve), and rss_stat reports
    // it. The master may read `proc`: idle, it changes nothing for the tracepoint to see.
    let mut round = 0;
    let from_kernel = poll_until(Duration::from_secs(10), || {
        round += 1;
        let target = format!("/bytes/{}", round << 20);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| assert_eq!(roundtrip(ringway.addr(), &Req::get(&target)).status, 200));
            }
        });
        snap = stats(metrics);
        // All four still there: an empty list would pass the check below unchecked.
        snap["processes"].as_array().is_some_and(|procs| {
            procs.len() == 4
                && procs
                    .iter()
                    .all(|p| p["role"] == "uwsgi-master" || p["rss_source"] == "ebpf")
        })
    });
    assert!(
        from_kernel,
        "RSS from rss_stat for ringway and the workers: {}",
        snap["processes"]
    );
    let procs = snap["processes"].as_array().expect("processes");
    assert_eq!(procs.len(), 4, "{procs:?}");
    for p in procs {
        let pid = p["pid"].as_u64().expect("pid");
        let rss = p["rss_bytes"].as_f64().expect("rss");
        let proc_rss = vm_rss(pid);
        eprintln!(
            "compare: {} {pid} RSS probe {rss} ({}) vs /proc {proc_rss}",
            p["role"], p["rss_source"]
        );
        // The probe copies the mm's counters as the tracepoint prints them: without the
        // per-CPU parts not folded in yet (fewer than max(32, 2 × CPUs) pages per CPU), and
        // memory may change between the two reads.
        let tolerance = 2.0 * 1024.0 * 1024.0 + 0.1 * proc_rss;
        assert!(
            (rss - proc_rss).abs() <= tolerance,
            "pid {pid}: probe {rss} vs /proc {proc_rss}"
        );
    }

    // Request counts and a slow route's latency against what the client did and measured.
    let before = prometheus(metrics);
    let fresh = 20;
    for _ in 0..fresh {
        assert_eq!(roundtrip(ringway.addr(), &Req::get("/")).status, 200);
    }
    let started = Instant::now();
    let slow = roundtrip(ringway.addr(), &Req::get("/slow?ms=50"));
    let client_latency = started.elapsed().as_secs_f64();
    assert_eq!(slow.status, 200);
    // A request is counted just after its last byte is written, so the client may ask a
    // moment before the count lands: wait for it (briefly).
    let mut after = String::new();
    poll_until(Duration::from_secs(2), || {
        after = prometheus(metrics);
        sample(
            &after,
            "ringway_request_duration_seconds_count{route=\"/\",code=\"200\"}",
        ) - sample(
            &before,
            "ringway_request_duration_seconds_count{route=\"/\",code=\"200\"}",
        ) >= f64::from(fresh + 1)
    });
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        delta("ringway_requests_total{route=\"/\",code=\"200\"}"),
        f64::from(fresh + 1)
    );
    assert_eq!(
        delta("ringway_request_duration_seconds_count{route=\"/\",code=\"200\"}"),
        f64::from(fresh + 1)
    );
    let slow_ones = delta("ringway_request_duration_seconds_count{route=\"/\",code=\"200\"}")
        - delta("ringway_request_duration_seconds_bucket{route=\"/\",code=\"200\",le=\"0.05\"}");
    assert_eq!(
        slow_ones, 1.0,
        "exactly the slow request took more than 50 ms"
    );
    let sum = delta("ringway_request_duration_seconds_sum{route=\"/\",code=\"200\"}");
    eprintln!(
        "compare: 2xx +{} for {} requests; duration sum {sum} s, slow request client-side {client_latency} s; accepts +{} for {} connections",
        delta("ringway_requests_total{route=\"/\",code=\"200\"}"),
        fresh + 1,
        delta("ringway_io_uring_op_duration_seconds_count{op=\"ACCEPT\"}"),
        fresh + 1
    );
    // ringway's time is inside the client's: from its head complete to its last byte written.
    assert!(
        sum >= 0.05 && sum <= client_latency + 0.02 * f64::from(fresh),
        "sum {sum}, client {client_latency}"
    );
    // One accept completion per connection the client opened: the endpoint is not on io_uring.
    assert_eq!(
        delta("ringway_io_uring_op_duration_seconds_count{op=\"ACCEPT\"}"),
        f64::from(fresh + 1),
        "io_uring accepts vs connections made"
    );
    // Each request needs at least one client read and one upstream read. Its writes (the
    // uwsgi packet, the small answer) fit in the sockets' buffers: each goes out in one
    // non-blocking send, not an io_uring op.
    assert!(
        delta("ringway_io_uring_op_duration_seconds_count{op=\"READ\"}")
            >= f64::from(2 * (fresh + 1))
    );
    let writes = delta("ringway_io_uring_op_duration_seconds_count{op=\"WRITE\"}");
    assert!(
        writes < f64::from(fresh + 1),
        "{writes} write ops for {} requests",
        fresh + 1
    );
    assert!(delta("ringway_accept_wait_seconds_count") >= f64::from(fresh + 1));
}

/// A client whose socket takes a whole 1 MiB answer (4 MiB receive buffer), so that a
/// test thread descheduled for a millisecond on a loaded machine does not fall behind and
/// rightly cost a temp file.
fn keeping_up(addr: SocketAddr) -> ringway_tests::Conn {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let size: libc::c_int = 4 << 20;
    // SAFETY: setsockopt reads `size` for its length; the fd is open. FORCE: over
    // net.core.rmem_max (the tests run as root).
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const size).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
    socket
        .connect_timeout(&addr.into(), Duration::from_secs(5))
        .expect("connect");
    let stream = TcpStream::from(socket);
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    ringway_tests::Conn::new(stream)
}

/// A client that reads as fast as a long answer comes costs no temp file: the relay reads
/// the upstream ahead only once the client side has taken what was queued. The probes count
/// every temp file ringway opens (an io_uring OPENAT; nothing else is opened on this path),
/// and a client that stops reading shows that they do.
#[test]
fn a_client_that_keeps_up_with_a_long_answer_costs_no_temp_file() {
    let uwsgi = Uwsgi::start(App::Raw);
    let (ringway, metrics) = start_with_metrics(&uwsgi);
    wait_for_probes(metrics);
    let opens = || {
        let text = prometheus(metrics);
        sample(
            &text,
            "ringway_io_uring_op_duration_seconds_count{op=\"OPENAT\"}",
        )
    };
    let before = opens();
    for _ in 0..10 {
        let mut conn = keeping_up(ringway.addr());
        conn.send(&Req::get("/bytes/1048576").to_bytes())
            .expect("send");
        let r = conn.read_response().expect("answer");
        assert_eq!((r.status, r.body.len()), (200, 1 << 20), "{r:?}");
    }
    assert_eq!(
        opens(),
        before,
        "temp files opened for clients that kept up"
    );

    // A client that reads nothing of 8 MiB: past 64 KiB in memory, the answer goes to a file.
    let mut paused = TcpStream::connect(ringway.addr()).expect("connect");
    let small: libc::c_int = 16 * 1024;
    // SAFETY: setsockopt reads `small` for its size; the fd is open.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&paused),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const small).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUF");
    paused
        .write_all(&Req::get("/bytes/8388608").to_bytes())
        .expect("send");
    let spilled = poll_until(Duration::from_secs(10), || opens() > before);
    assert!(spilled, "a paused client's answer went to no temp file");
}

#[test]
fn prometheus_text_parses_with_the_reference_parser() {
    let uwsgi = Uwsgi::start(App::Raw);
    let (ringway, metrics) = start_with_metrics(&uwsgi);
    wait_for_probes(metrics);
    for _ in 0..5 {
        roundtrip(ringway.addr(), &Req::get("/"));
    }
    let text = prometheus(metrics);
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    out[family.name] = {"type": family.type, "labels": sorted({k for s in family.samples for k in s.labels})}
print(json.dumps(out))
"#;
    let families: Value =
        serde_json::from_slice(&command::venv_python(script, &text)).expect("json");
    for (name, kind) in [
        ("ringway_requests", "counter"),
        ("ringway_request_duration_seconds", "histogram"),
        ("ringway_upstream_connect_duration_seconds", "histogram"),
        ("ringway_upstream_response_duration_seconds", "histogram"),
        ("ringway_proxy_duration_seconds", "histogram"),
        ("ringway_upstream_errors", "counter"),
        ("ringway_upstream_connect_failures", "counter"),
        ("ringway_limit_rejected", "counter"),
        ("ringway_proxy_protocol_rejected", "counter"),
        ("ringway_connections_accepted", "counter"),
        ("ringway_connections_active", "gauge"),
        ("ringway_connections_by_state", "gauge"),
        ("ringway_received_bytes", "counter"),
        ("ringway_sent_bytes", "counter"),
        ("ringway_access_log_dropped", "counter"),
        ("ringway_process_resident_memory_bytes", "gauge"),
        ("ringway_process_cpu_seconds", "counter"),
        ("ringway_process_oncpu_seconds", "counter"),
        ("ringway_ebpf_up", "gauge"),
        ("ringway_tcp_rtt_seconds", "histogram"),
        ("ringway_connection_duration_seconds", "histogram"),
        ("ringway_accept_wait_seconds", "histogram"),
        ("ringway_accept_queue_length", "gauge"),
        ("ringway_io_uring_op_duration_seconds", "histogram"),
        ("ringway_socket_memory_bytes", "gauge"),
    ] {
        assert_eq!(families[name]["type"], kind, "{name}: {}", families[name]);
    }
    // Low cardinality: nothing per connection becomes a label.
    for (name, family) in families.as_object().expect("families") {
        for label in family["labels"].as_array().expect("labels") {
            let label = label.as_str().unwrap_or_default();
            assert!(
                !["peer", "cookie", "client", "remote"].contains(&label),
                "{name} has label {label}"
            );
        }
    }
}

#[test]
fn live_page_renders_and_its_charts_get_data() {
    let uwsgi = Uwsgi::start(App::Raw);
    let (ringway, metrics) = start_with_metrics(&uwsgi);
    wait_for_probes(metrics);
    let addr = ringway.addr();
    // Closed connections feed the RTT histogram; ongoing traffic feeds the rate charts.
    for _ in 0..10 {
        roundtrip(addr, &Req::get("/"));
    }
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let traffic = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while stop_rx.try_recv().is_err() && Instant::now() < deadline {
            roundtrip(addr, &Req::get("/"));
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let artifacts = paths::workspace_root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    let profile = tempfile::tempdir().expect("profile dir");
    let url = format!("http://{metrics}/");
    let chromium = |extra: &[&str]| {
        let page = [
            "--window-size=1400,1000",
            // Timers run on virtual time: about 8 polls of /stats happen before the dump.
            "--virtual-time-budget=8000",
        ];
        ringway_tests::browser::chromium(profile.path(), &[&page[..], extra].concat(), &url)
    };
    let workers_shown = poll_until(Duration::from_secs(10), || {
        stats(metrics)["processes"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["role"] == "uwsgi-worker"))
    });
    assert!(workers_shown, "the uWSGI workers appear in /stats");
    let dom = chromium(&["--dump-dom"]);
    let shot = artifacts.join("live-page.png");
    chromium(&[&format!("--screenshot={}", shot.display())]);
    let _ = stop_tx.send(());
    let _ = traffic.join();

    let points = |testid: &str| -> u64 {
        let at = dom
            .find(&format!("data-testid=\"{testid}\""))
            .unwrap_or_else(|| panic!("no {testid} in the page"));
        let tag_end = dom[at..].find('>').map_or(dom.len(), |e| at + e);
        dom[at..tag_end]
            .split("data-points=\"")
            .nth(1)
            .and_then(|v| v.split('"').next()?.parse().ok())
            .unwrap_or(0)
    };
    for chart in ["chart-rate", "chart-latency", "chart-memory", "chart-rtt"] {
        assert!(points(chart) > 0, "{chart} got no data");
    }
    assert!(
        dom.contains("uwsgi-worker"),
        "the processes table lists the workers"
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot at {}",
        shot.display()
    );
}

#[test]
fn unprivileged_ringway_serves_and_says_its_probes_are_down() {
    // Over TCP, so that `nobody` can reach uWSGI without touching the temp dir's modes.
    let mut opts = UwsgiOptions::new(App::Raw);
    opts.tcp = true;
    let uwsgi = Uwsgi::start_with(opts);
    let mut child: Child = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(paths::ringway_bin())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--metrics",
            "127.0.0.1:0",
        ])
        .args(["--upstream", &uwsgi.upstream()])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("run setpriv (util-linux)");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log.push_str(&line);
            log.push('\n');
            let _ = tx.send(log.clone());
        }
    });
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let (mut addr, mut metrics) = (None, None);
    while (addr.is_none() || metrics.is_none()) && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            log = l;
            addr = log
                .split("listening on http://")
                .nth(1)
                .and_then(|r| r.split_whitespace().next()?.parse::<SocketAddr>().ok());
            metrics = metrics_addr(&log);
        }
    }
    let (Some(addr), Some(metrics)) = (addr, metrics) else {
        stop_child(&mut child, libc::SIGKILL, Duration::from_secs(1), true);
        panic!("unprivileged ringway did not start:\n{log}");
    };
    assert_eq!(
        roundtrip(addr, &Req::get("/")).status,
        200,
        "it serves traffic"
    );
    // The probe loader runs aside: give it time to fail.
    let mut text = String::new();
    let reported = poll_until(Duration::from_secs(10), || {
        text = prometheus(metrics);
        text.contains("ringway_ebpf_up{")
    });
    assert!(reported, "no ringway_ebpf_up in:\n{text}");
    for probe in ["tcp_rtt", "tcp_life", "uring_latency", "rss", "oncpu"] {
        assert_eq!(
            sample(&text, &format!("ringway_ebpf_up{{probe=\"{probe}\"}}")),
            0.0,
            "{probe} down"
        );
        assert!(
            text.contains(&format!("ringway_ebpf_up{{probe=\"{probe}\"}} 0")),
            "{probe} reported"
        );
    }
    // The proxy's own figures are still there.
    assert_eq!(
        sample(&text, "ringway_requests_total{route=\"/\",code=\"200\"}"),
        1.0
    );
    stop_child(&mut child, libc::SIGTERM, Duration::from_secs(10), true);
    let _ = reader.join();
    while let Ok(l) = rx.try_recv() {
        log = l;
    }
    assert!(
        log.contains("needs root or CAP_BPF"),
        "says why, once:\n{log}"
    );
}

/// The probes watch the TLS listener's connections as they watch the plain one's.
#[test]
fn tls_connections_are_measured_by_the_probes() {
    let uwsgi = Uwsgi::start(App::Raw);
    let pki = Pki::new();
    let leaf = pki.issue("m", &["m.test"], 0x4D01, (2031, 1, 1));
    let ringway = Ringway::with(&uwsgi)
        .arg("--metrics", "127.0.0.1:0")
        .arg("--tls-listen", "127.0.0.1:0")
        .arg("--tls-cert", leaf.cert.to_str().expect("utf-8 path"))
        .arg("--tls-key", leaf.key.to_str().expect("utf-8 path"))
        .start();
    let metrics = ringway.metrics_addr();
    wait_for_probes(metrics);
    let before = prometheus(metrics);
    const CONNECTIONS: u32 = 5;
    let ca = pki.ca().to_str().expect("utf-8 path").to_owned();
    for _ in 0..CONNECTIONS {
        let [resolve, pin, url] = curl_target("m.test", ringway.tls_addr(), "/bytes/20000");
        curl(&["--cacert", &ca, "-o", "/dev/null", &resolve, &pin, &url]).success();
    }
    let series = [
        "ringway_connection_duration_seconds_count",
        "ringway_tcp_rtt_seconds_count",
        "ringway_connection_sent_bytes_count",
    ];
    let mut after = String::new();
    let counted = poll_until(Duration::from_secs(5), || {
        after = prometheus(metrics);
        series
            .iter()
            .all(|s| sample(&after, s) - sample(&before, s) >= f64::from(CONNECTIONS))
    });
    let deltas: Vec<(&str, f64)> = series
        .iter()
        .map(|s| (*s, sample(&after, s) - sample(&before, s)))
        .collect();
    assert!(
        counted,
        "{CONNECTIONS} TLS connections closed; the probes counted {deltas:?}"
    );
    // Each sent its 20000-byte body and more (the handshake, the head): at least that much
    // was acknowledged per connection.
    let sent = sample(&after, "ringway_connection_sent_bytes_sum")
        - sample(&before, "ringway_connection_sent_bytes_sum");
    assert!(
        sent >= f64::from(CONNECTIONS * 20_000),
        "bytes sent over {CONNECTIONS} TLS connections: {sent}"
    );
    // The lifetimes are bucketed up to days: in nanoseconds the largest finite bound was
    // 275 s, and every keep-alive or WebSocket connection landed in +Inf (found by review).
    let bounds: Vec<f64> = after
        .lines()
        .filter_map(|l| {
            let le = l.strip_prefix("ringway_connection_duration_seconds_bucket{le=\"")?;
            le.split('"').next()?.parse().ok()
        })
        .filter(|le: &f64| le.is_finite())
        .collect();
    let largest = bounds.iter().copied().fold(0.0, f64::max);
    assert!(
        largest > 72.0 * 3600.0,
        "largest finite bound {largest} s of {bounds:?}"
    );
    // The closes are in seconds still: five short connections, well under a second each.
    let lived = sample(&after, "ringway_connection_duration_seconds_sum")
        - sample(&before, "ringway_connection_duration_seconds_sum");
    assert!(
        lived > 0.0 && lived < f64::from(CONNECTIONS),
        "{lived} s over {CONNECTIONS} connections"
    );
}

/// A request whose client leaves before its answer is logged 499, as nginx logs it: the
/// metrics count it under the same status (they counted nothing at all).
#[test]
fn a_request_its_client_abandons_is_counted_as_499() {
    let uwsgi = Uwsgi::start(App::Raw);
    let (ringway, metrics) = start_with_metrics(&uwsgi);
    for _ in 0..3 {
        let mut s = TcpStream::connect(ringway.addr()).expect("connect");
        s.write_all(b"GET /slow?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("send");
        std::thread::sleep(Duration::from_millis(200));
    }
    let series = "ringway_requests_total{route=\"/\",code=\"499\"}";
    let mut text = String::new();
    let counted = poll_until(Duration::from_secs(10), || {
        text = prometheus(metrics);
        sample(&text, series) == 3.0
    });
    assert!(counted, "{series} is not 3:\n{text}");
}

/// A request refused before it was routed (a head that does not parse) counts its error
/// page's bytes, as its log line does.
#[test]
fn a_request_refused_unrouted_counts_its_pages_bytes() {
    let uwsgi = Uwsgi::start(App::Raw);
    let (ringway, metrics) = start_with_metrics(&uwsgi);
    let mut page_bytes = 0;
    for _ in 0..2 {
        let r =
            ringway_tests::client::roundtrip_raw(ringway.addr(), b"GET / HTTP/1.1\r\nHost\r\n\r\n")
                .expect("an answer");
        assert_eq!(r.status, 400, "{r:?}");
        page_bytes += r.body.len();
    }
    assert!(page_bytes > 0);
    let series = "ringway_response_body_bytes_total{route=\"\",code=\"400\"}";
    let mut text = String::new();
    let counted = poll_until(Duration::from_secs(10), || {
        text = prometheus(metrics);
        sample(&text, series) == page_bytes as f64
    });
    assert!(counted, "{series} is not {page_bytes}:\n{text}");
}

/// A server whose connect timed out before another took the request: the connect time
/// measured is the one that succeeded, not the dead server's second on top of it.
#[test]
fn the_connect_time_is_the_server_that_took_the_requests() {
    let uwsgi = Uwsgi::start(App::Raw);
    let hole = ringway_tests::client::blackhole();
    let ringway = Ringway::with_config(format!(
        "upstream_connect_timeout = \"1s\"\n[upstreams.app]\nservers = [\"{}\", \"{}\"]\n\
         [[routes]]\npath = \"/\"\nupstream = \"app\"\n",
        hole.2,
        uwsgi.upstream()
    ))
    .arg("--metrics", "127.0.0.1:0")
    .workers(1)
    .start();
    let mut metrics = None;
    assert!(poll_until(Duration::from_secs(10), || {
        metrics = metrics_addr(&ringway.stderr());
        metrics.is_some()
    }));
    let metrics = metrics.unwrap_or_else(|| unreachable!());
    let started = Instant::now();
    let r = roundtrip(ringway.addr(), &Req::get("/"));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the dead server came first"
    );
    let text = prometheus(metrics);
    let count = sample(&text, "ringway_upstream_connect_duration_seconds_count");
    let sum = sample(&text, "ringway_upstream_connect_duration_seconds_sum");
    assert_eq!(count, 1.0, "{text}");
    assert!(
        sum < 0.5,
        "connect time {sum} s: the dead server's timeout counted\n{text}"
    );
}

/// A connection counts from its accept, not from its first request: while its PROXY header
/// is awaited it is open (and holds a socket), and its wait in the accept queue ends at the
/// accept (it read 2 s for a header sent 2 s late).
#[test]
fn a_connection_counts_from_its_accept_while_its_proxy_header_is_awaited() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--metrics", "127.0.0.1:0")
        .flag("--proxy-protocol")
        .start();
    let metrics = ringway.metrics_addr();
    wait_for_probes(metrics);
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(ringway.addr()).expect("connect"))
        .collect();
    let mut text = String::new();
    let open = poll_until(Duration::from_secs(5), || {
        text = prometheus(metrics);
        sample(&text, "ringway_connections_active") == 3.0
    });
    assert!(
        open,
        "3 connections awaiting their PROXY header are open:\n{text}"
    );
    std::thread::sleep(Duration::from_secs(1));
    for s in &mut held {
        s.write_all(
            b"PROXY TCP4 192.0.2.1 127.0.0.1 1000 80\r\n\
              GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .expect("send");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let closed = poll_until(Duration::from_secs(5), || {
        text = prometheus(metrics);
        sample(&text, "ringway_connections_active") == 0.0
    });
    assert!(closed, "{text}");
    assert_eq!(
        sample(&text, "ringway_accept_wait_seconds_count"),
        3.0,
        "{text}"
    );
    let waited = sample(&text, "ringway_accept_wait_seconds_sum");
    assert!(
        waited < 0.5,
        "accept wait {waited} s: the header's wait is not in it"
    );
}

/// A metrics address that cannot be had fails the start: exit 1, the address named, and no
/// "listening" line. (It is bound before the server takes connections, so that during a
/// binary upgrade no request the new process took is cut: found by review.)
#[test]
fn a_metrics_address_that_cannot_be_had_fails_the_start() {
    let out = Command::new(paths::ringway_bin())
        .args(["--listen", "127.0.0.1:0", "--workers", "1"])
        .args(["--metrics", "192.0.2.1:9145"])
        .args(["--upstream", "unix:/nonexistent.sock"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run ringway");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot listen for metrics on 192.0.2.1:9145"),
        "{err}"
    );
    assert!(!err.contains("listening on"), "{err}");
}

/// The accept queues are read over netlink, with no probe: shown with the eBPF probes off
/// too (found by review: only with them loaded), with the fullest listener's ratio beside
/// the sums (one stalled worker's full queue refuses its share while the sums look low).
#[test]
fn accept_queues_are_shown_without_the_probes() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--metrics", "127.0.0.1:0")
        .flag("--no-ebpf")
        .start();
    let text = roundtrip(ringway.metrics_addr(), &Req::get("/metrics")).text();
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    let limit = value("ringway_accept_queue_limit").unwrap_or_default();
    assert!(limit > 0.0, "{text}");
    assert_eq!(value("ringway_accept_queue_length"), Some(0.0), "{text}");
    assert_eq!(
        value("ringway_accept_queue_fullest_ratio"),
        Some(0.0),
        "{text}"
    );
    assert!(
        !text.contains("ringway_tcp_rtt_seconds"),
        "no probes: {text}"
    );
}
