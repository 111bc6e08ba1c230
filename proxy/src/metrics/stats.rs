//! What each worker counts, and the live-connection table.
//!
//! A worker is the only writer of its [`WorkerStats`]; the metrics endpoint reads every
//! worker's and sums them. Counters are relaxed atomics: they need no ordering with anything
//! else, only to be eventually visible to the reader.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slab::Slab;

use super::histogram::{Histogram, HistogramSnapshot, LATENCY_BOUNDS};
use crate::clock::Coarse;
use crate::config::KeyExchangeGroup;

/// The labels of a request series: the route's metric id (`None`: no route) and the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteCode {
    /// The route's id in `RouteNames` (stable across reloads, unlike its index).
    pub route: Option<u16>,
    /// Status code.
    pub code: u16,
}

/// One request series: the durations (their count is the number of requests) and the
/// response body bytes sent.
#[derive(Debug, Clone)]
pub struct RouteSeries {
    pub duration: HistogramSnapshot,
    pub body_bytes: u64,
}

impl RouteSeries {
    pub fn empty() -> RouteSeries {
        RouteSeries {
            duration: HistogramSnapshot::empty(LATENCY_BOUNDS),
            body_bytes: 0,
        }
    }

    /// Adds another worker's series.
    pub fn add(&mut self, other: &RouteSeries) {
        self.duration.add(&other.duration);
        self.body_bytes += other.body_bytes;
    }
}

/// How a TLS handshake ended, the labels of `ringway_tls_handshakes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsOutcome {
    /// Done, with this protocol version (`TLSv1.3`, `TLSv1.2`).
    Done(&'static str),
    /// The client never finished in time.
    TimedOut,
    /// A plain HTTP request on the TLS port.
    PlainHttp,
    /// Garbage, an alert, no shared version or cipher.
    Failed,
    /// The client closed the connection before the handshake was done, without a word (a
    /// load balancer's TCP check, a browser's spare connection): apart from `failed`, as
    /// nginx tells "client closed connection while SSL handshaking" from a failure.
    Closed,
}

impl TlsOutcome {
    /// Every (result, version) label pair, in counter order.
    pub const LABELS: [(&'static str, &'static str); 6] = [
        ("ok", "TLSv1.3"),
        ("ok", "TLSv1.2"),
        ("timeout", ""),
        ("plain_http", ""),
        ("failed", ""),
        ("closed", ""),
    ];

    fn index(self) -> usize {
        match self {
            TlsOutcome::Done("TLSv1.3") => 0,
            TlsOutcome::Done(_) => 1,
            TlsOutcome::TimedOut => 2,
            TlsOutcome::PlainHttp => 3,
            TlsOutcome::Failed => 4,
            TlsOutcome::Closed => 5,
        }
    }
}

/// Kinds of upstream failure, a label of `ringway_upstream_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// Connect refused, socket missing, or other connect error.
    Refused,
    /// Listen backlog full.
    Busy,
    /// Connect timed out.
    ConnectTimeout,
    /// Read or write timed out.
    Timeout,
    /// Malformed or oversized response head, or bad chunked body.
    BadResponse,
    /// Closed before the end of the response, or a socket error while talking to it.
    Broken,
}

impl UpstreamError {
    /// Every kind, in label order.
    pub const ALL: [UpstreamError; 6] = [
        UpstreamError::Refused,
        UpstreamError::Busy,
        UpstreamError::ConnectTimeout,
        UpstreamError::Timeout,
        UpstreamError::BadResponse,
        UpstreamError::Broken,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamError::Refused => "refused",
            UpstreamError::Busy => "busy",
            UpstreamError::ConnectTimeout => "connect_timeout",
            UpstreamError::Timeout => "timeout",
            UpstreamError::BadResponse => "bad_response",
            UpstreamError::Broken => "broken",
        }
    }
}

/// Why a connection was closed before its first request for want of a PROXY protocol
/// header: the `reason` label of `ringway_proxy_protocol_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyRejection {
    /// It started with something else, or a malformed header.
    Invalid,
    /// No complete header within `client_header_timeout`.
    Timeout,
}

impl ProxyRejection {
    /// Every reason, in counter order.
    pub const ALL: [ProxyRejection; 2] = [ProxyRejection::Invalid, ProxyRejection::Timeout];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyRejection::Invalid => "invalid",
            ProxyRejection::Timeout => "timeout",
        }
    }
}

/// What a client connection is doing, as nginx's `stub_status` counts connections:
/// waiting for a request (idle, or new), reading a request's head, or serving it (the
/// app's turn and the answer's writing). A connection not yet serving requests (in its
/// TLS handshake, awaiting its PROXY header) is in none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    #[default]
    Uncounted,
    Waiting,
    Reading,
    Writing,
}

impl Phase {
    /// Its gauge in [`WorkerStats::phases`], if it has one.
    fn gauge(self) -> Option<usize> {
        match self {
            Phase::Uncounted => None,
            Phase::Waiting => Some(0),
            Phase::Reading => Some(1),
            Phase::Writing => Some(2),
        }
    }
}

/// Connections by [`Phase`], and requests begun: nginx's `stub_status` figures beside the
/// connections accepted and open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConnPhases {
    pub waiting: u64,
    pub reading: u64,
    pub writing: u64,
    /// Requests whose head began to arrive (nginx's `requests`: the ones being read and
    /// served count too).
    pub requests: u64,
}

impl ConnPhases {
    /// The sum over `workers`.
    pub fn of(workers: &[Arc<WorkerStats>]) -> ConnPhases {
        let mut sum = ConnPhases::default();
        for w in workers {
            let [waiting, reading, writing] = &w.phases;
            // Each worker's gauges move in its own order, so a reader can see a connection
            // left one phase and not yet in the next: never a negative count.
            sum.waiting += waiting.load(Relaxed);
            sum.reading += reading.load(Relaxed);
            sum.writing += writing.load(Relaxed);
            sum.requests += w.requests_begun.load(Relaxed);
        }
        sum
    }
}

/// One worker's counters and histograms.
#[derive(Debug)]
pub struct WorkerStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections closed.
    pub closed: AtomicU64,
    /// Requests answered (how busy the worker is, for housekeeping).
    pub requests_done: AtomicU64,
    /// Requests answered, their durations (head received → response written) and body
    /// bytes, by route and status code. A lock taken once per request, by this worker only,
    /// except while a scrape copies it.
    pub by_route: Mutex<HashMap<RouteCode, RouteSeries>>,
    /// Bytes read from clients.
    pub received_bytes: AtomicU64,
    /// Bytes written to clients.
    pub sent_bytes: AtomicU64,
    /// Upstream failures by kind (index of [`UpstreamError::ALL`]).
    pub upstream_errors: [AtomicU64; 6],
    /// Time to connect to an upstream.
    pub upstream_connect: Histogram,
    /// Connected → response head received: the time the request spent with the Python
    /// worker (sending it the request included).
    pub upstream_response: Histogram,
    /// Request duration minus the upstream's share: time spent in ringway and on the client.
    pub proxy_duration: Histogram,
    /// Requests served per closed connection.
    pub requests_per_connection: Histogram,
    /// TLS handshakes by outcome (index of [`TlsOutcome::LABELS`]).
    pub tls_handshakes: [AtomicU64; TlsOutcome::LABELS.len()],
    /// TLS handshakes done, by key exchange group (index of [`KeyExchangeGroup::ALL`]).
    pub tls_key_exchanges: [AtomicU64; KeyExchangeGroup::ALL.len()],
    /// Time of the TLS handshakes that were done.
    pub tls_handshake_duration: Histogram,
    /// Connections closed for want of a PROXY header (index of [`ProxyRejection::ALL`]).
    pub proxy_rejected: [AtomicU64; 2],
    /// Live connections of this worker.
    pub live: Mutex<Slab<LiveConn>>,
    /// Connections waiting, reading and writing (by [`Phase::gauge`]).
    phases: [AtomicU64; 3],
    /// Requests whose head began to arrive.
    requests_begun: AtomicU64,
    /// When the worker's event loop last beat, once a second ([`Coarse::millis`]): a loop
    /// that stopped turning shows here.
    heartbeat: AtomicU64,
}

/// Bounds for `requests_per_connection` (a count, not seconds).
const COUNT_BOUNDS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0, 10000.0];

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            accepted: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            requests_done: AtomicU64::new(0),
            by_route: Mutex::new(HashMap::new()),
            received_bytes: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
            upstream_errors: Default::default(),
            upstream_connect: Histogram::new(LATENCY_BOUNDS),
            upstream_response: Histogram::new(LATENCY_BOUNDS),
            proxy_duration: Histogram::new(LATENCY_BOUNDS),
            requests_per_connection: Histogram::new(COUNT_BOUNDS),
            tls_handshakes: Default::default(),
            tls_key_exchanges: Default::default(),
            tls_handshake_duration: Histogram::new(LATENCY_BOUNDS),
            proxy_rejected: Default::default(),
            live: Mutex::new(Slab::new()),
            phases: Default::default(),
            requests_begun: AtomicU64::new(0),
            heartbeat: AtomicU64::new(Coarse::now().millis()),
        }
    }
}

impl WorkerStats {
    /// The worker's event loop turns: called by a task of its own, once a second.
    pub fn beat(&self) {
        self.heartbeat.store(Coarse::now().millis(), Relaxed);
    }

    /// How long since the worker's event loop last turned.
    pub fn since_beat(&self) -> Duration {
        let millis = Coarse::now()
            .millis()
            .saturating_sub(self.heartbeat.load(Relaxed));
        Duration::from_millis(millis)
    }

    /// Counts one answered request, served by `route` (its metric id; `None`: no route).
    pub fn request_done(
        &self,
        route: Option<u16>,
        status: u16,
        total: Duration,
        upstream: Option<Duration>,
        body_bytes: u64,
    ) {
        self.requests_done.fetch_add(1, Relaxed);
        let key = RouteCode {
            route,
            code: status,
        };
        if let Ok(mut by_route) = self.by_route.lock() {
            let series = by_route.entry(key).or_insert_with(RouteSeries::empty);
            series.duration.record(total);
            series.body_bytes += body_bytes;
        }
        if let Some(upstream) = upstream {
            self.upstream_response.observe(upstream);
            self.proxy_duration.observe(total.saturating_sub(upstream));
        }
    }

    /// Connections accepted and not closed yet.
    pub fn open_connections(&self) -> u64 {
        let accepted = self.accepted.load(Relaxed);
        accepted.saturating_sub(self.closed.load(Relaxed))
    }

    /// A connection went from phase `from` to `to`; one that begins reading a head begins a
    /// request.
    pub fn phase_changed(&self, from: Phase, to: Phase) {
        if from == to {
            return;
        }
        if let Some(i) = from.gauge() {
            self.phases[i].fetch_sub(1, Relaxed);
        }
        if let Some(i) = to.gauge() {
            self.phases[i].fetch_add(1, Relaxed);
        }
        if to == Phase::Reading {
            self.requests_begun.fetch_add(1, Relaxed);
        }
    }

    /// Counts the key exchange of a TLS handshake done.
    pub fn tls_key_exchange(&self, group: KeyExchangeGroup) {
        if let Some(i) = KeyExchangeGroup::ALL.iter().position(|&g| g == group) {
            self.tls_key_exchanges[i].fetch_add(1, Relaxed);
        }
    }

    /// Counts one TLS handshake (its duration when it was done).
    pub fn tls_handshake(&self, outcome: TlsOutcome, took: Duration) {
        self.tls_handshakes[outcome.index()].fetch_add(1, Relaxed);
        if matches!(outcome, TlsOutcome::Done(_)) {
            self.tls_handshake_duration.observe(took);
        }
    }

    /// Counts one connection closed for want of a PROXY header.
    pub fn proxy_rejected(&self, reason: ProxyRejection) {
        self.proxy_rejected[reason as usize].fetch_add(1, Relaxed);
    }

    /// Counts one upstream failure.
    pub fn upstream_error(&self, kind: UpstreamError) {
        let i = UpstreamError::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        self.upstream_errors[i].fetch_add(1, Relaxed);
    }

    /// Registers a new connection on socket `fd`; returns its key in the live table.
    pub fn open(&self, peer: SocketAddr, cookie: u64, fd: RawFd) -> usize {
        self.accepted.fetch_add(1, Relaxed);
        let entry = LiveConn {
            peer,
            cookie,
            fd,
            opened_ms: crate::clock::Coarse::now().millis(),
            ..LiveConn::default()
        };
        self.live
            .lock()
            .map_or(usize::MAX, |mut live| live.insert(entry))
    }

    /// Names the client of a live connection once a PROXY header told who it is.
    pub fn identify(&self, key: usize, peer: SocketAddr) {
        if let Ok(mut live) = self.live.lock()
            && let Some(conn) = live.get_mut(key)
        {
            conn.peer = peer;
        }
    }

    /// Updates a live connection after a request: bytes so far and requests served.
    pub fn progress(&self, key: usize, requests: u64, bytes_in: u64, bytes_out: u64) {
        if let Ok(mut live) = self.live.lock()
            && let Some(conn) = live.get_mut(key)
        {
            conn.requests = requests;
            conn.bytes_in = bytes_in;
            conn.bytes_out = bytes_out;
        }
    }

    /// The sockets of the connections still open: a drain whose grace ran out shuts them
    /// down. Each stays open while it is listed: a connection leaves the table before
    /// its socket is closed.
    pub fn live_sockets(&self) -> Vec<RawFd> {
        self.live
            .lock()
            .map(|live| live.iter().map(|(_, conn)| conn.fd).collect())
            .unwrap_or_default()
    }

    /// Removes a closed connection and counts its totals.
    pub fn close(&self, key: usize, requests: u64, bytes_in: u64, bytes_out: u64) {
        self.closed.fetch_add(1, Relaxed);
        self.received_bytes.fetch_add(bytes_in, Relaxed);
        self.sent_bytes.fetch_add(bytes_out, Relaxed);
        self.requests_per_connection.observe_count(requests);
        if let Ok(mut live) = self.live.lock() {
            live.try_remove(key);
        }
    }
}

/// A live client connection, as the `/stats` table shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveConn {
    /// Client address.
    pub peer: SocketAddr,
    /// Kernel socket cookie: the key of the eBPF per-connection figures.
    pub cookie: u64,
    /// Its socket.
    #[serde(skip)]
    pub fd: RawFd,
    /// When it was accepted ([`crate::clock::Coarse::millis`]: monotonic, so that a step of
    /// the wall clock neither zeroes nor inflates ages; found by review).
    #[serde(skip)]
    pub opened_ms: u64,
    /// Requests completed on it.
    pub requests: u64,
    /// Bytes read from the client so far (updated after each request).
    pub bytes_in: u64,
    /// Bytes written to the client so far (updated after each request).
    pub bytes_out: u64,
}

impl Default for LiveConn {
    fn default() -> Self {
        LiveConn {
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            cookie: 0,
            fd: -1,
            opened_ms: 0,
            requests: 0,
            bytes_in: 0,
            bytes_out: 0,
        }
    }
}
