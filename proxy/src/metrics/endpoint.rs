//! The metrics endpoint: a small blocking HTTP server on its own thread, off the io_uring
//! workers' path. It serves `/metrics` (Prometheus), `/stats` (JSON), `/` (the live page),
//! and the health checks `/healthz` (the process serves) and `/readyz` (send it traffic:
//! see ready.rs). It is for dashboards, probes and people on a trusted network (loopback by
//! default). Each request has a short-lived thread of its own, at most [`MAX_IN_FLIGHT`] at
//! once (a new one pushes out the oldest that has not asked yet, or else the oldest served
//! for over a second), each bounded in time, so clients that connect and say nothing, or
//! read nothing, cannot hold up the health checks a load balancer or the kubelet makes
//! (found by review: one request at a time, an idle connection held `/healthz` for 2 s). The figures are taken under one
//! lock; `/healthz` takes none. Requests are parsed by ringway's own HTTP parser. Off the
//! workers' threads, it keeps answering while they drain.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::accept_queue;
use super::ebpf::{self, ProbeHandle};
use super::procs::{self, ProcessFigures};
use super::prom::{self, Exposition};
use super::ready::Readiness;
use super::reloads::Reloads;
use super::route_names::RouteNames;
use super::snapshot::{AppFigures, LimitFigures, Snapshot};
use super::stats::WorkerStats;
use crate::app::AppStatus;
use crate::config::UpstreamAddr;
use crate::http::{self, Limits, Method, Status};
use crate::ratelimit::NamedGate;
use crate::tls::Acceptor;

/// How long a scraper may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a scraper may take to read its answer (its whole answer, not each piece).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the uWSGI processes are looked for again: a walk of /proc (about a millisecond
/// here), so new workers (a uWSGI start, a respawn, a reload) show up within a second.
const RESCAN_EVERY: Duration = Duration::from_secs(1);

/// Requests served at once; a connection past them takes the place of the oldest (see
/// [`start_request`]).
const MAX_IN_FLIGHT: usize = 32;
/// A request's thread needs little: its 8 KiB buffer and the figures' strings are on the
/// heap.
const REQUEST_STACK: usize = 256 * 1024;

const PAGE: &str = include_str!("page.html");

/// Reads the limits' counters (process-wide atomics) when a scrape asks.
pub type LimitSource = Arc<dyn Fn() -> LimitFigures + Send + Sync>;

/// Reads what the configuration in use says (it changes on reload) when a scrape asks.
pub type ConfigSource = Arc<dyn Fn() -> ConfigView + Send + Sync>;

/// The parts of the configuration in use that the endpoint reads.
pub struct ConfigView {
    /// The upstreams, to find the uWSGI processes behind them.
    pub upstreams: Vec<UpstreamAddr>,
    /// The TLS certificates (their expiry), if TLS is on.
    pub tls: Option<Arc<Acceptor>>,
}

/// What the endpoint reads from.
pub struct Sources {
    /// Every worker's counters.
    pub workers: Vec<Arc<WorkerStats>>,
    /// The upstreams, to find the uWSGI processes behind them.
    pub upstreams: Vec<UpstreamAddr>,
    /// The eBPF probes, if enabled.
    pub probes: ProbeHandle,
    /// The ports ringway listens on, plain and TLS (for the accept queue figures).
    pub ports: Vec<u16>,
    /// The routes' labels, by metric id.
    pub routes: RouteNames,
    /// The TLS certificates (their expiry), if TLS is on.
    pub tls: Option<Arc<Acceptor>>,
    /// The limits' counters, if the server gave them ([`Sources::with_limits`]).
    pub limits: Option<LimitSource>,
    /// What `/readyz` checks; without it, `/readyz` says ready while the process serves.
    pub readiness: Option<Arc<Readiness>>,
    /// Access log lines dropped, if the access log is on.
    pub access_log_dropped: Option<Arc<AtomicU64>>,
    /// The supervised app server, when `[app]` is on.
    pub app: Option<Arc<AppStatus>>,
    /// The configuration in use, when it can change ([`Sources::with_config`]).
    pub config: Option<ConfigSource>,
    /// The configuration reloads, if counted.
    pub reloads: Option<Arc<Reloads>>,
    uwsgi_pids: Vec<u32>,
    scanned: Option<Instant>,
}

impl Sources {
    /// Sources for these workers, upstreams and probes.
    pub fn new(
        workers: Vec<Arc<WorkerStats>>,
        upstreams: Vec<UpstreamAddr>,
        probes: ProbeHandle,
        ports: Vec<u16>,
        routes: RouteNames,
        tls: Option<Arc<Acceptor>>,
    ) -> Self {
        Sources {
            workers,
            upstreams,
            probes,
            ports,
            routes,
            tls,
            limits: None,
            readiness: None,
            access_log_dropped: None,
            app: None,
            config: None,
            reloads: None,
            uwsgi_pids: Vec::new(),
            scanned: None,
        }
    }

    /// Adds the limits' counters (`Server::limit_figures`).
    pub fn with_limits(mut self, limits: LimitSource) -> Self {
        self.limits = Some(limits);
        self
    }

    /// These sources, with `/readyz` answering from `readiness`.
    pub fn with_readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = Some(Arc::new(readiness));
        self
    }

    /// Adds the access log's count of dropped lines.
    pub fn with_access_log_dropped(mut self, dropped: Option<Arc<AtomicU64>>) -> Self {
        self.access_log_dropped = dropped;
        self
    }

    /// Adds the supervised app server's state (`App::status`), when `[app]` is on.
    pub fn with_app(mut self, app: Option<Arc<AppStatus>>) -> Self {
        self.app = app;
        self
    }

    /// Reads the upstreams and certificates from the configuration in use (a reload changes
    /// them) rather than from the values given at start.
    pub fn with_config(mut self, config: ConfigSource) -> Self {
        self.config = Some(config);
        self
    }

    /// Adds the configuration reloads' counts.
    pub fn with_reloads(mut self, reloads: Arc<Reloads>) -> Self {
        self.reloads = Some(reloads);
        self
    }

    /// Finds the uWSGI processes again when the list is old or one of them vanished
    /// (uWSGI respawns workers), and keeps the probes watching the current ones.
    fn rescan(&mut self) {
        let vanished = self
            .uwsgi_pids
            .iter()
            .any(|pid| procs::cpu_seconds(*pid).is_none());
        if !vanished && self.scanned.is_some_and(|t| t.elapsed() < RESCAN_EVERY) {
            return;
        }
        let pids = ebpf::upstream_pids(&self.upstreams);
        ebpf::watch_workers(&self.probes, &pids);
        self.uwsgi_pids = pids;
        self.scanned = Some(Instant::now());
    }

    /// Takes a snapshot of everything.
    pub fn snapshot(&mut self) -> Snapshot {
        if let Some(config) = &self.config {
            let view = config();
            if view.upstreams != self.upstreams {
                // A reload changed the upstreams: look for their processes now.
                self.scanned = None;
            }
            self.upstreams = view.upstreams;
            self.tls = view.tls;
        }
        self.rescan();
        // A read lock, like the workers' accept path: a scrape never holds accepts up.
        let slot = self.probes.read().ok();
        let probes = slot.as_ref().and_then(|s| s.as_ref());
        let ebpf = probes.map(ebpf::figures);
        let processes: Vec<ProcessFigures> = procs::figures(&self.uwsgi_pids, probes);
        drop(slot);
        let mut snap = Snapshot::take(&self.workers, &self.routes, processes, ebpf);
        snap.accept_queue = accept_queue::accept_queues(&self.ports);
        if let Some(tls) = &self.tls {
            snap.tls_certificates = tls.certificates().to_vec();
        }
        snap.limits = self.limits.as_ref().map(|figures| figures());
        if let Some(readiness) = &self.readiness {
            snap.upstream_conns = readiness.conn_figures();
        }
        snap.app = self.app.as_ref().map(|app| AppFigures {
            up: app.is_up(),
            restarts: app.restarts(),
        });
        if let Some(dropped) = &self.access_log_dropped {
            snap.access_log_dropped = dropped.load(Relaxed);
        }
        if let Some(reloads) = &self.reloads {
            snap.config_reloads = reloads.figures();
        }
        snap
    }

    /// The Prometheus exposition.
    pub fn prometheus(&mut self) -> String {
        let snap = self.snapshot();
        let mut out = Exposition::default();
        prom::render(&snap, &mut out);
        if let Some(figures) = &snap.ebpf {
            prom::render_ebpf(figures, &mut out);
        }
        out.finish()
    }

    /// The JSON document of `/stats`.
    pub fn json(&mut self) -> String {
        serde_json::to_string(&self.snapshot()).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// Binds the endpoint's address with SO_REUSEPORT: a new process taking over (binary
/// upgrade) serves beside the old one until that one stops, and new scrapes go to it, as on
/// the main listeners. Bound before the server starts, so that an address that cannot be
/// had fails the start before the new process takes any connection.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    crate::listener::bind(addr)
}

/// Serves the endpoint on `listeners` ([`bind`]), a thread accepting on each; returns
/// their addresses.
pub fn spawn(
    listeners: Vec<std::net::TcpListener>,
    sources: Sources,
) -> std::io::Result<Vec<SocketAddr>> {
    let shared = Arc::new(Shared {
        readiness: sources.readiness.clone(),
        workers: sources.workers.clone(),
        sources: Mutex::new(sources),
        places: Arc::default(),
    });
    let mut locals = Vec::with_capacity(listeners.len());
    for listener in listeners {
        let local = listener.local_addr()?;
        crate::listener::steer_here(local, &[std::os::fd::AsFd::as_fd(&listener)]);
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("ringway-metrics".into())
            .spawn(move || accept(&listener, &shared))?;
        locals.push(local);
    }
    Ok(locals)
}

/// Takes the endpoint's connections on `listener`, for ever.
fn accept(listener: &std::net::TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => start_request(stream, shared),
            Err(err) => {
                // Out of descriptors, say: a few lines per window, not ten a second.
                static GATE: NamedGate = NamedGate::warn("metrics accept failed");
                if GATE.allow() {
                    tracing::warn!(error = %err, "metrics accept failed");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// What the endpoint's request threads share.
struct Shared {
    sources: Mutex<Sources>,
    /// `/readyz`'s, out of the lock: its probes may take a while, and must not hold up a
    /// scrape (nor a scrape them).
    readiness: Option<Arc<Readiness>>,
    /// Every worker's counters, for `/healthz`, out of the lock too.
    workers: Vec<Arc<WorkerStats>>,
    places: Arc<Places>,
}

/// The requests being served, for [`InFlight::take`].
#[derive(Default)]
struct Places {
    /// Requests being served (their threads, until each ends).
    in_flight: AtomicUsize,
    /// The connections being served, oldest first.
    open: Mutex<VecDeque<Served>>,
    next_id: AtomicU64,
}

/// A connection being served, as [`InFlight::take`] sees it.
struct Served {
    id: u64,
    /// A second handle, to shut it down when it is pushed out.
    handle: TcpStream,
    /// Its request is still awaited.
    awaited: Arc<AtomicBool>,
    /// It was pushed out.
    pushed: Arc<AtomicBool>,
    accepted: Instant,
}

/// How long a connection's request and answer together may take before a new connection
/// may push it out (a probe or a scrape on a working network takes milliseconds).
const PUSH_OUT_AFTER: Duration = Duration::from_secs(1);

/// Serves `stream` on a thread of its own. When [`MAX_IN_FLIGHT`] are served, the oldest
/// still waiting for its request is shut down to make room, or else the oldest being
/// answered for over [`PUSH_OUT_AFTER`]: a probe (which asks at once and is answered in a
/// millisecond) is then never the one left out, where refusing the newest let 32
/// connections that said nothing, or that asked and read nothing of the answer, fail every
/// `/healthz` (found by review, twice). When none may be pushed out, or past twice the limit
/// (the pushed-out threads not ended yet), the new one is closed.
fn start_request(stream: TcpStream, shared: &Arc<Shared>) {
    let Some(place) = InFlight::take(&shared.places, &stream, Instant::now()) else {
        tracing::debug!("metrics endpoint busy: connection closed");
        return;
    };
    let shared = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("ringway-metrics-req".into())
        .stack_size(REQUEST_STACK)
        .spawn(move || {
            if let Err(err) = serve(stream, &shared, &place) {
                tracing::debug!(error = %err, "metrics request failed");
            }
        });
    if let Err(err) = spawned {
        tracing::debug!(error = %err, "metrics request thread not started");
    }
}

/// A request's place among [`MAX_IN_FLIGHT`], given back however its thread ends (or when
/// it never started: the closure holding it is dropped).
struct InFlight {
    places: Arc<Places>,
    id: u64,
    /// Its request is still awaited (it may be pushed out).
    awaited: Arc<AtomicBool>,
    /// It was pushed out: its client is gone.
    pushed: Arc<AtomicBool>,
}

impl InFlight {
    /// A place for `stream`, accepted `now`.
    fn take(places: &Arc<Places>, stream: &TcpStream, now: Instant) -> Option<InFlight> {
        let taken = places.in_flight.fetch_add(1, Relaxed);
        let id = places.next_id.fetch_add(1, Relaxed);
        let place = InFlight {
            places: Arc::clone(places),
            id,
            awaited: Arc::new(AtomicBool::new(true)),
            pushed: Arc::new(AtomicBool::new(false)),
        };
        if taken >= 2 * MAX_IN_FLIGHT {
            return None;
        }
        let mut open = places.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.len() >= MAX_IN_FLIGHT {
            let slow = |s: &Served| now.saturating_duration_since(s.accepted) > PUSH_OUT_AFTER;
            let pushed = open
                .iter()
                .position(|s| s.awaited.load(Relaxed))
                .or_else(|| open.front().filter(|s| slow(s)).map(|_| 0))?;
            if let Some(oldest) = open.remove(pushed) {
                oldest.pushed.store(true, Relaxed);
                let _ = oldest.handle.shutdown(Shutdown::Both);
            }
        }
        if let Ok(handle) = stream.try_clone() {
            open.push_back(Served {
                id,
                handle,
                awaited: Arc::clone(&place.awaited),
                pushed: Arc::clone(&place.pushed),
                accepted: now,
            });
        }
        Some(place)
    }

    /// Its request has come: it is being answered, and is pushed out only once it has
    /// taken over [`PUSH_OUT_AFTER`].
    fn answering(&self) {
        self.awaited.store(false, Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut open = self
            .places
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = open.iter().position(|s| s.id == self.id) {
            open.remove(at);
        }
        drop(open);
        self.places.in_flight.fetch_sub(1, Relaxed);
    }
}

fn serve(mut stream: TcpStream, shared: &Shared, place: &InFlight) -> std::io::Result<()> {
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    let mut headers = Vec::new();
    let limits = Limits {
        max_request_line: 4096,
        max_head: 8192,
        max_headers: 64,
    };
    let head = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if len == buf.len() {
            return respond(&mut stream, 431, "text/plain", b"request too large\n");
        }
        let too_slow =
            |stream: &mut TcpStream| respond(stream, 408, "text/plain", b"request too slow\n");
        if left.is_zero() {
            return too_slow(&mut stream);
        }
        // Each read gets what is left of the request's time, not the whole of it again.
        stream.set_read_timeout(Some(left))?;
        let n = match stream.read(&mut buf[len..]) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return too_slow(&mut stream);
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(());
        }
        len += n;
        match http::parse_request(&mut buf[..len], &limits, &mut headers) {
            Ok(Status::Complete(head)) => {
                place.answering();
                break head;
            }
            Ok(Status::Partial) => {}
            // A scraper, not a browser on the internet: one status is precise enough.
            Err(_) => return respond(&mut stream, 400, "text/plain", b"bad request\n"),
        }
    };
    if !matches!(head.method, Method::Get | Method::Head) {
        return respond(&mut stream, 405, "text/plain", b"GET only\n");
    }
    // HEAD gets the head GET would (a load balancer's health check may send HEAD).
    let mut answer = Answer {
        stream: &mut stream,
        head_only: head.method == Method::Head,
    };
    // A panic while the figures were taken leaves them as they were: still worth serving.
    // A request pushed out while it waited for the lock (its client gone) takes no figures:
    // the threads of a crowd of slow scrapes would each build them in turn.
    let figures = |render: fn(&mut Sources) -> String| {
        let mut sources = shared
            .sources
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (!place.pushed.load(Relaxed)).then(|| render(&mut sources))
    };
    match head.path.of(&buf) {
        b"/metrics" => {
            let Some(body) = figures(Sources::prometheus) else {
                return Ok(());
            };
            answer.send(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                body.as_bytes(),
            )
        }
        b"/stats" => {
            let Some(body) = figures(Sources::json) else {
                return Ok(());
            };
            answer.send(200, "application/json", body.as_bytes())
        }
        b"/" | b"/index.html" => answer.send(200, "text/html; charset=utf-8", PAGE.as_bytes()),
        b"/healthz" => match live(shared) {
            Ok(()) => answer.send(200, "text/plain", b"ok\n"),
            Err(why) => answer.send(503, "text/plain", format!("{why}\n").as_bytes()),
        },
        b"/readyz" => match shared.readiness.as_deref().map_or(Ok(()), Readiness::check) {
            Ok(()) => answer.send(200, "text/plain", b"ready\n"),
            Err(why) => answer.send(503, "text/plain", format!("{why}\n").as_bytes()),
        },
        _ => answer.send(
            404,
            "text/plain",
            b"not found: try /, /metrics, /stats, /healthz or /readyz\n",
        ),
    }
}

/// How long a worker's event loop may go without turning (it beats every second) before
/// `/healthz` says the process is stuck.
const STALL: Duration = Duration::from_secs(10);

/// `/healthz`: `Ok` while every worker's event loop turns; otherwise which one stopped, for
/// the answer's body. This thread answering shows only that the process runs: a worker
/// stuck (a deadlock, a call that never returns) left its share of the connections
/// unserved and the process looking alive (found by review). A drain is no reason to be
/// restarted: stopping, it is always `Ok`.
fn live(shared: &Shared) -> Result<(), String> {
    if shared.readiness.as_deref().is_some_and(Readiness::stopping) {
        return Ok(());
    }
    for (index, worker) in shared.workers.iter().enumerate() {
        let since = worker.since_beat();
        if since > STALL {
            let why = format!(
                "not live: worker {index}'s event loop has not turned for {}s",
                since.as_secs()
            );
            static GATE: NamedGate =
                NamedGate::warn("not live: a worker's event loop has not turned");
            if GATE.allow() {
                tracing::warn!("{why}");
            }
            return Err(why);
        }
    }
    Ok(())
}

/// The client of one request, and whether it asked for the head only.
struct Answer<'s> {
    stream: &'s mut TcpStream,
    head_only: bool,
}

impl Answer<'_> {
    fn send(&mut self, status: u16, content_type: &str, body: &[u8]) -> std::io::Result<()> {
        let body_len = body.len();
        let body = if self.head_only { &[][..] } else { body };
        respond_with_length(self.stream, status, content_type, body_len, body)
    }
}

fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    respond_with_length(stream, status, content_type, body.len(), body)
}

/// Writes a response announcing `length` body bytes and sending `body` (empty for HEAD).
fn respond_with_length(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    length: usize,
    body: &[u8],
) -> std::io::Result<()> {
    let reason = http::reason_phrase(status).unwrap_or("");
    // RFC 9110 §15.5.6: a 405 says what is allowed.
    let allow = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\
         {allow}Cache-Control: no-store\r\nConnection: close\r\n\r\n"
    );
    // One deadline for the whole answer: a socket write timeout alone bounds each send,
    // and a reader taking a byte now and then would hold the endpoint's one thread (and
    // /healthz with it) for as long as it liked.
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    write_all_by(stream, head.as_bytes(), deadline)?;
    write_all_by(stream, body, deadline)?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// Writes all of `bytes` by `deadline`, or fails with `TimedOut`.
fn write_all_by(
    stream: &mut TcpStream,
    mut bytes: &[u8],
    deadline: Instant,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Past [`MAX_IN_FLIGHT`] requests all being answered, a new connection waits for none:
    /// it is closed while they are young, and pushes the oldest out once that one has taken
    /// over [`PUSH_OUT_AFTER`] (a reader that reads nothing of a long answer).
    #[test]
    fn a_new_connection_pushes_out_the_oldest_answer_once_it_is_slow() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let places = Arc::new(Places::default());
        let t0 = Instant::now();
        let mut clients = Vec::new();
        let mut served = Vec::new();
        for _ in 0..MAX_IN_FLIGHT {
            clients.push(TcpStream::connect(listener.local_addr().unwrap()).unwrap());
            let (stream, _) = listener.accept().unwrap();
            let place = InFlight::take(&places, &stream, t0).unwrap();
            place.answering();
            served.push((stream, place));
        }
        let _late = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (late, _) = listener.accept().unwrap();
        let young = t0 + PUSH_OUT_AFTER / 2;
        assert!(InFlight::take(&places, &late, young).is_none());
        let slow = t0 + PUSH_OUT_AFTER + Duration::from_millis(1);
        let place = InFlight::take(&places, &late, slow);
        assert!(place.is_some(), "the oldest is pushed out once slow");
        // The oldest's client sees its connection end.
        clients[0]
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(clients[0].read(&mut [0; 16]).unwrap(), 0);
        assert!(
            served[0].1.pushed.load(Relaxed),
            "told, so it takes no figures"
        );
        assert!(!served[1].1.pushed.load(Relaxed));
        let open = places.open.lock().unwrap();
        assert_eq!(open.len(), MAX_IN_FLIGHT);
        assert_eq!(open.front().map(|s| s.id), Some(1));
    }

    #[test]
    fn a_reader_taking_a_little_now_and_then_cannot_stretch_an_answer_past_its_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut reader = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = Arc::clone(&done);
        let (mut writer, _) = listener.accept().unwrap();
        // A trickle: 100 bytes every 20 ms, each read well inside any per-send timeout,
        // until the write is over.
        let trickle = std::thread::spawn(move || {
            let mut buf = [0u8; 100];
            while !stop.load(Relaxed) {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        // Made before the clock starts: on a busy host, filling 64 MiB could use up the
        // deadline before a byte went, and the reader would wait for one forever.
        let answer = vec![b'x'; 64 << 20];
        let started = Instant::now();
        let sent = write_all_by(&mut writer, &answer, started + Duration::from_millis(300));
        let took = started.elapsed();
        // The reader sees the end even if it has read all that went (found hung in a run on
        // a loaded host).
        drop(writer);
        assert_eq!(
            sent.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::TimedOut)
        );
        assert!(took < Duration::from_secs(2), "took {took:?}");
        done.store(true, Relaxed);
        trickle.join().unwrap();
    }
}
