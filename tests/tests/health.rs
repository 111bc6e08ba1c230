//! The health checks on the metrics listener, as a Kubernetes probe or a load balancer sees
//! them: `/healthz` answers 200 while the process serves (a drain included); `/readyz`
//! answers 200 only while every upstream group has a server accepting connections and
//! ringway is not stopping: it follows uWSGI dying and coming back, and turns 503 the
//! moment SIGTERM arrives, while the drain still runs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use ringway_tests::wait::poll_until;
use ringway_tests::{App, Conn, Req, Response, Ringway, Uwsgi, roundtrip};

/// How long a change of state may take to show on `/readyz`: a worker's last connect
/// vouches for a server for 5 s.
const SETTLE: Duration = Duration::from_secs(15);

/// ringway with its metrics endpoint on a free port, and that port.
fn start(builder: ringway_tests::ringway::RingwayBuilder) -> (Ringway, SocketAddr) {
    let ringway = builder
        .arg("--metrics", "127.0.0.1:0")
        .flag("--no-ebpf")
        .start();
    let metrics = ringway.metrics_addr();
    (ringway, metrics)
}

fn readyz(metrics: SocketAddr) -> Response {
    roundtrip(metrics, &Req::get("/readyz"))
}

fn healthz(metrics: SocketAddr) -> Response {
    roundtrip(metrics, &Req::get("/healthz"))
}

/// Polls `/readyz` until it answers `status`; returns that answer, or fails with the last.
fn wait_readyz(metrics: SocketAddr, status: u16, ringway: &Ringway) -> Response {
    let mut last = None;
    let reached = poll_until(SETTLE, || {
        let r = readyz(metrics);
        let done = r.status == status;
        last = Some(r);
        done
    });
    let last = last.unwrap_or_else(|| unreachable!("polled at least once"));
    assert!(
        reached,
        "/readyz never answered {status} within {SETTLE:?}; last: {last:?}\nringway:\n{}",
        ringway.stderr()
    );
    last
}

#[test]
fn readyz_follows_uwsgi_dying_and_coming_back() {
    let mut uwsgi = Uwsgi::start(App::Raw);
    let (ringway, metrics) = start(Ringway::with(&uwsgi));

    // Idle since start: no worker has connected, the endpoint's own connect says ready.
    let r = readyz(metrics);
    assert_eq!((r.status, r.text().as_str()), (200, "ready\n"), "{r:?}");
    let r = healthz(metrics);
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"), "{r:?}");
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(roundtrip(ringway.addr(), &Req::get("/")).status, 200);

    uwsgi.kill();
    // A request that finds nothing listening (502) tells every later /readyz at once.
    let r = roundtrip(ringway.addr(), &Req::get("/"));
    assert_eq!(r.status, 502, "{r:?}");
    let r = readyz(metrics);
    assert_eq!(r.status, 503, "{r:?}");
    let why = r.text();
    assert!(
        why.contains("upstream group \"default\"") && why.contains(&uwsgi.upstream()),
        "says which group and server: {why:?}"
    );
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
    // Still alive: a dead upstream is no reason to restart ringway.
    assert_eq!(healthz(metrics).status, 200);

    uwsgi.restart();
    // Nothing is sent meanwhile: the endpoint's own connect finds uWSGI back.
    wait_readyz(metrics, 200, &ringway);
    let r = roundtrip(ringway.addr(), &Req::get("/"));
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Hello, World!"),
        "{r:?}"
    );
}

#[test]
fn readyz_turns_503_at_sigterm_while_the_drain_runs() {
    let uwsgi = Uwsgi::start(App::Raw);
    let (mut ringway, metrics) = start(Ringway::with(&uwsgi).arg("--shutdown-timeout", "20s"));
    assert_eq!(readyz(metrics).status, 200);

    // A request in flight: its head is in and ringway asks for the body (100 Continue),
    // which the test holds back, so the drain lasts until the test sends it.
    let body = b"the body of a slow upload";
    let mut slow = Conn::open(ringway.addr());
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    slow.send(head.as_bytes()).expect("send the head");
    let go = slow.read_response().expect("100 Continue");
    assert_eq!(go.status, 100, "{go:?}");

    ringway.sigterm();
    let r = wait_readyz(metrics, 503, &ringway);
    assert_eq!(r.text(), "not ready: shutting down\n");
    // The drain is still on: the process serves, the probes are answered.
    assert!(ringway.is_running(), "ringway waits for the upload");
    assert_eq!(healthz(metrics).status, 200);
    let r = roundtrip(metrics, &Req::new("HEAD", "/readyz"));
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(readyz(metrics).status, 503, "and stays so");

    slow.send(body).expect("send the body");
    let r = slow.read_response().expect("the upload's answer");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["length"], body.len());
    let status = ringway
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running after the drain:\n{}", ringway.stderr()));
    assert!(status.success(), "{status}\n{}", ringway.stderr());
}

#[test]
fn head_gets_the_head_of_both() {
    let uwsgi = Uwsgi::start(App::Raw);
    let (_ringway, metrics) = start(Ringway::with(&uwsgi));
    for (path, length) in [("/healthz", 3), ("/readyz", 6)] {
        // Read to the close: whatever follows the head would show.
        let mut stream = TcpStream::connect(metrics).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream
            .write_all(&Req::new("HEAD", path).to_bytes())
            .expect("send");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read to the close");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n"),
            "{path}: {answer:?}"
        );
        assert!(
            answer.contains(&format!("\r\nContent-Length: {length}\r\n")),
            "{path}: the length GET would have: {answer:?}"
        );
        assert!(answer.ends_with("\r\n\r\n"), "{path}: no body: {answer:?}");
    }
}

#[test]
fn every_group_needs_a_server_that_accepts() {
    let uwsgi = Uwsgi::start(App::Raw);
    // A TCP port nothing listens on, and a unix socket that does not exist.
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let dead_dir = tempfile::tempdir().expect("temp dir");
    let dead_socket = dead_dir.path().join("gone.sock");
    let live = uwsgi.upstream();
    let config = format!(
        "[upstreams.app]\nservers = [\"{closed}\", \"{live}\"]\n\
         [upstreams.reports]\nservers = [\"unix:{}\"]\n\
         [[routes]]\npath = \"/\"\nupstream = \"app\"\n\
         [[routes]]\npath = \"/reports/\"\nupstream = \"reports\"\n",
        dead_socket.display()
    );
    let (ringway, metrics) = start(Ringway::with_config(config));

    // `app` has one live server of two: enough. `reports` has none, with no traffic yet.
    let r = readyz(metrics);
    assert_eq!(r.status, 503, "{r:?}");
    let why = r.text();
    assert!(
        why.contains("upstream group \"reports\"") && !why.contains("\"app\""),
        "{why:?}"
    );
    assert!(why.contains(&dead_socket.display().to_string()), "{why:?}");
    assert_eq!(
        roundtrip(ringway.addr(), &Req::get("/")).status,
        200,
        "`app` serves"
    );
}

/// Connections to the metrics port that say nothing (or trickle) do not hold the health
/// checks up: each request is served on its own, so `/healthz` and `/readyz` answer at once
/// beside them, and a scrape too (before, one request at a time, each idle connection held
/// the endpoint for up to 2 s, and the kubelet's 1 s probe failed behind a few).
#[test]
fn idle_connections_to_the_metrics_port_do_not_hold_up_the_health_checks() {
    let uwsgi = Uwsgi::start(App::Raw);
    let (_ringway, metrics) = start(Ringway::with(&uwsgi));
    let mut idle: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(metrics).expect("connect"))
        .collect();
    // One trickles a request line a byte at a time.
    idle[0].write_all(b"G").expect("a byte");
    std::thread::sleep(Duration::from_millis(200));
    for path in ["/healthz", "/readyz", "/metrics"] {
        let started = std::time::Instant::now();
        let r = roundtrip(metrics, &Req::get(path));
        assert_eq!(r.status, 200, "{path}: {r:?}");
        // Held up behind them, it would take their 2 s.
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{path} took {:?} beside idle connections",
            started.elapsed()
        );
    }
    // The idle ones are closed when their 2 s are up, the one that began too.
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    idle[0]
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let closed = idle[0].read_to_end(&mut answer);
    assert!(
        closed.is_ok() && started.elapsed() < Duration::from_secs(5),
        "{closed:?} after {:?}: {answer:?}",
        started.elapsed()
    );
    // It was told why: too slow (408), not too large.
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    // More silent connections than the endpoint serves at once: each new one pushes out
    // the oldest, so a probe still gets its answer (found by review: past 32, every
    // `/healthz` was refused).
    let crowd: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(metrics).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..3 {
        let r = roundtrip(metrics, &Req::get("/healthz"));
        assert_eq!(
            r.status,
            200,
            "beside {} silent connections: {r:?}",
            crowd.len()
        );
    }
    // Another method than GET or HEAD: 405, saying which are allowed.
    let r = roundtrip(metrics, &Req::post("/metrics", b"x"));
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.header("allow").as_deref(), Some("GET, HEAD"), "{r:?}");
}

/// A worker whose event loop stops turning (here: its thread held by ptrace, as a deadlock
/// or a call that never returns would hold it) makes `/healthz` answer 503 within the
/// 10 s it is allowed, naming it, so the kubelet restarts a process that only looks alive
/// (found by review: the metrics thread answered 200 while a worker's connections hung);
/// once it turns again, 200.
#[test]
fn a_stuck_worker_fails_the_liveness_check() {
    let uwsgi = Uwsgi::start(App::Raw);
    let (ringway, metrics) = start(Ringway::with(&uwsgi).workers(2));
    assert_eq!(roundtrip(metrics, &Req::get("/healthz")).status, 200);
    let held = ringway_tests::held_thread::HeldThread::hold(ringway.pid(), "ringway-w1");
    let mut last = None;
    let failed = poll_until(Duration::from_secs(20), || {
        let r = roundtrip(metrics, &Req::get("/healthz"));
        let failed = r.status == 503;
        last = Some(r);
        failed
    });
    assert!(failed, "{last:?}");
    let body = String::from_utf8_lossy(&last.as_ref().map(|r| r.body.clone()).unwrap_or_default())
        .into_owned();
    assert!(body.contains("worker 1's event loop"), "{body}");
    drop(held);
    let live = poll_until(Duration::from_secs(5), || {
        roundtrip(metrics, &Req::get("/healthz")).status == 200
    });
    assert!(live, "live again once the worker turns");
    assert!(
        ringway.stderr().contains("not live: worker 1"),
        "{}",
        ringway.stderr()
    );
}

/// A group no route sends requests to (left in the file, say) does not hold `/readyz`:
/// it takes no request, and every instance out of rotation for it would be an outage
/// (found by review: any group down made every instance unready). A routed one does.
#[test]
fn a_group_no_route_names_does_not_hold_readiness() {
    let uwsgi = Uwsgi::start(App::Raw);
    let dir = tempfile::tempdir().expect("temp dir");
    let dead = dir.path().join("nobody.sock");
    let config = |routed_to: &str| {
        format!(
            "[upstreams.app]\nservers = [\"{}\"]\n\n[upstreams.spare]\n\
             servers = [\"unix:{}\"]\n\n[[routes]]\npath = \"/\"\nupstream = \"{routed_to}\"\n",
            uwsgi.upstream(),
            dead.display()
        )
    };
    let (ringway, metrics) = start(Ringway::with_config(config("app")));
    wait_readyz(metrics, 200, &ringway);
    let (ringway, metrics) = start(Ringway::with_config(config("spare")));
    let r = wait_readyz(metrics, 503, &ringway);
    assert!(r.text().contains("spare"), "{r:?}");
}

/// `/readyz` probes a group's servers at once: two that take no connection (500 ms each)
/// before the one that accepts, one after the other, would take the answer past the
/// kubelet's default 1 s timeout, and the pod would read unready (found by review).
#[test]
fn readyz_probes_servers_at_once_and_answers_within_the_kubelets_second() {
    let uwsgi = Uwsgi::start_with(ringway_tests::uwsgi::UwsgiOptions {
        tcp: true,
        ..ringway_tests::uwsgi::UwsgiOptions::new(App::Raw)
    });
    let holes = [
        ringway_tests::client::blackhole(),
        ringway_tests::client::blackhole(),
    ];
    let (_ringway, metrics) = start(Ringway::with_config(format!(
        "upstream = [\"{}\", \"{}\", \"{}\"]\n",
        holes[0].2,
        holes[1].2,
        uwsgi.upstream()
    )));
    let started = std::time::Instant::now();
    let r = roundtrip(metrics, &Req::get("/readyz"));
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        took < Duration::from_secs(1),
        "answered in {took:?}, past the kubelet's timeout"
    );
}
