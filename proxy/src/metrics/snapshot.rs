//! A point-in-time view of everything the endpoint shows, summed over the workers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

use super::ebpf::{ConnKernel, EbpfFigures};
use super::histogram::{HistogramSnapshot, LATENCY_BOUNDS};
use super::procs::ProcessFigures;
use super::route_names::RouteNames;
use super::stats::{
    ConnPhases, LiveConn, ProxyRejection, RouteCode, RouteSeries, TlsOutcome, UpstreamError,
    WorkerStats,
};
use crate::config::KeyExchangeGroup;

/// Live connections listed in `/stats` per table.
pub const TOP_CONNECTIONS: usize = 10;

/// Everything `/metrics` and `/stats` show.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Snapshot {
    /// Seconds since the Unix epoch when taken.
    pub time: f64,
    /// Worker threads.
    pub workers: usize,
    /// Requests by status class, `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub requests: [u64; 5],
    /// Requests and their durations by route and status code.
    pub routes: Vec<RouteRow>,
    /// Connections accepted.
    pub connections_accepted: u64,
    /// Connections open now.
    pub connections_active: u64,
    /// Connections serving requests, by what they are doing (and requests begun).
    pub connection_phases: ConnPhases,
    /// Bytes read from closed client connections.
    pub received_bytes: u64,
    /// Bytes written to closed client connections.
    pub sent_bytes: u64,
    /// The listening sockets' accept queues (`None`: not read).
    pub accept_queue: Option<super::accept_queue::AcceptQueues>,
    /// Upstream failures by kind.
    pub upstream_errors: Vec<(&'static str, u64)>,
    /// Connections to each upstream group: opened, reused, joined after a 101.
    pub upstream_conns: Vec<GroupConnFigures>,
    /// Request duration.
    pub request_duration: HistogramSnapshot,
    /// Upstream connect time.
    pub upstream_connect: HistogramSnapshot,
    /// Time with the Python worker.
    pub upstream_response: HistogramSnapshot,
    /// Time in ringway and on the client.
    pub proxy_duration: HistogramSnapshot,
    /// Requests per closed connection.
    pub requests_per_connection: HistogramSnapshot,
    /// TLS handshakes by outcome (result, version, count).
    pub tls_handshakes: Vec<(&'static str, &'static str, u64)>,
    /// TLS handshakes done by key exchange group (OpenSSL's name, count).
    pub tls_key_exchanges: Vec<(&'static str, u64)>,
    /// Time of the TLS handshakes that were done.
    pub tls_handshake_duration: HistogramSnapshot,
    /// Connections closed for want of a PROXY protocol header, by reason.
    pub proxy_rejected: Vec<(&'static str, u64)>,
    /// The TLS certificates in use: name, file and notAfter (seconds since the epoch).
    pub tls_certificates: Vec<crate::tls::CertInfo>,
    /// Access log lines dropped (0 when the log is off).
    pub access_log_dropped: u64,
    /// Configuration reloads: (accepted, refused, whether the last one was accepted).
    pub config_reloads: (u64, u64, bool),
    /// ringway and the uWSGI processes.
    pub processes: Vec<ProcessFigures>,
    /// The oldest live connections.
    pub oldest_connections: Vec<ConnRow>,
    /// The live connections with the highest RTT (empty without the eBPF probes).
    pub slowest_connections: Vec<ConnRow>,
    /// The live connections that moved the most bytes.
    pub biggest_connections: Vec<ConnRow>,
    /// The eBPF figures, when the probes are loaded.
    pub ebpf: Option<EbpfFigures>,
    /// The limits' counters (connections, request rates, upstream slots and queues).
    pub limits: Option<LimitFigures>,
    /// The supervised app server, when `[app]` is on.
    pub app: Option<AppFigures>,
}

/// The supervised app server's state.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct AppFigures {
    /// Its process is running.
    pub up: bool,
    /// Times it was started again after it exited.
    pub restarts: u64,
}

/// The limits' counters, process-wide.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LimitFigures {
    /// Connections refused at `max_connections`.
    pub max_connections_rejected: u64,
    /// Connections refused at `limit_conn_per_ip`.
    pub conn_per_ip_rejected: u64,
    /// Each route with a `limit_req`.
    pub routes: Vec<RouteLimitFigures>,
    /// Each route with a `limit_conn`.
    pub conn_routes: Vec<RouteConnFigures>,
    /// Each upstream group with `max_conns`.
    pub groups: Vec<GroupLimitFigures>,
}

/// One route's `limit_req` counters.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteLimitFigures {
    /// The route's label.
    pub route: String,
    /// Requests refused (429).
    pub rejected: u64,
    /// Requests made to wait (past the route's `delay`).
    pub delayed: u64,
    /// Requests `dry_run` let through that would have been refused, and held.
    pub dry_run: (u64, u64),
    /// Clients dropped from the full table.
    pub evicted: u64,
    /// Clients tracked now.
    pub clients: u64,
}

/// One route's `limit_conn`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteConnFigures {
    /// The route's label.
    pub route: String,
    /// Requests refused (503, or the route's `limit_conn.status`).
    pub rejected: u64,
    /// Requests `dry_run` let through that would have been refused.
    pub dry_run: u64,
    /// Clients with a request in flight on the route now.
    pub clients: u64,
}

/// Connections to one upstream group's servers, by every worker.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupConnFigures {
    /// The group's name.
    pub upstream: String,
    /// Connections opened.
    pub opened: u64,
    /// Kept connections given another request (HTTP groups).
    pub reused: u64,
    /// Connections joined to a client's after a 101.
    pub upgraded: u64,
    /// Connects that failed (another server may have taken the request).
    pub connect_failed: u64,
    /// Requests sent on to another server after one failed them.
    pub passed_on: u64,
}

/// One upstream group's slots and queue.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupLimitFigures {
    /// The group's name.
    pub upstream: String,
    /// Requests at its servers now.
    pub busy: u64,
    /// Requests waiting for a slot now.
    pub queue_length: u64,
    /// Requests refused because the queue was full.
    pub queue_full: u64,
    /// Requests refused after waiting `queue_timeout`.
    pub queue_timeout: u64,
    /// How long queued requests waited.
    pub queue_wait: HistogramSnapshot,
}

/// Requests of one route with one status.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteRow {
    /// The route's label (its path, `=path` for an exact route; empty: no route).
    pub route: String,
    /// Status code.
    pub code: u16,
    /// Their durations (the count is the number of requests).
    pub duration: HistogramSnapshot,
    /// Response body bytes sent to their clients (nginx's `$body_bytes_sent`, summed).
    pub body_bytes: u64,
}

/// One row of a live-connection table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnRow {
    /// Client address.
    pub peer: String,
    /// Kernel socket cookie.
    pub cookie: u64,
    /// Seconds since accepted.
    pub age_seconds: f64,
    /// Requests completed.
    pub requests: u64,
    /// Bytes in, after the last completed request.
    pub bytes_in: u64,
    /// Bytes out, after the last completed request.
    pub bytes_out: u64,
    /// The kernel's view (RTT, socket buffers), when the eBPF probes see the connection.
    pub kernel: Option<ConnKernel>,
}

impl Snapshot {
    /// Sums the workers' stats; `processes` are read by the caller; `routes` names the
    /// routes by id.
    pub fn take(
        workers: &[Arc<WorkerStats>],
        routes: &RouteNames,
        processes: Vec<ProcessFigures>,
        ebpf: Option<EbpfFigures>,
    ) -> Snapshot {
        let now = SystemTime::now();
        let first = workers.first();
        let empty = |f: fn(&WorkerStats) -> &super::histogram::Histogram| {
            first.map_or_else(|| HistogramSnapshot::empty(&[]), |w| f(w).empty_snapshot())
        };
        let mut snap = Snapshot {
            time: now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            workers: workers.len(),
            requests: [0; 5],
            routes: Vec::new(),
            connections_accepted: 0,
            connections_active: 0,
            connection_phases: ConnPhases::of(workers),
            received_bytes: 0,
            sent_bytes: 0,
            accept_queue: None,
            upstream_errors: UpstreamError::ALL.iter().map(|k| (k.as_str(), 0)).collect(),
            request_duration: HistogramSnapshot::empty(LATENCY_BOUNDS),
            upstream_connect: empty(|w| &w.upstream_connect),
            upstream_response: empty(|w| &w.upstream_response),
            proxy_duration: empty(|w| &w.proxy_duration),
            requests_per_connection: empty(|w| &w.requests_per_connection),
            tls_handshakes: TlsOutcome::LABELS
                .iter()
                .map(|(r, v)| (*r, *v, 0))
                .collect(),
            tls_key_exchanges: KeyExchangeGroup::ALL
                .iter()
                .map(|g| (g.name(), 0))
                .collect(),
            tls_handshake_duration: empty(|w| &w.tls_handshake_duration),
            proxy_rejected: ProxyRejection::ALL
                .iter()
                .map(|r| (r.as_str(), 0))
                .collect(),
            tls_certificates: Vec::new(),
            access_log_dropped: 0,
            config_reloads: (0, 0, true),
            processes,
            oldest_connections: Vec::new(),
            slowest_connections: Vec::new(),
            biggest_connections: Vec::new(),
            ebpf,
            limits: None,
            app: None,
            upstream_conns: Vec::new(),
        };
        let mut live: Vec<LiveConn> = Vec::new();
        let mut by_route: BTreeMap<RouteCode, RouteSeries> = BTreeMap::new();
        for w in workers {
            if let Ok(series) = w.by_route.lock() {
                for (key, h) in series.iter() {
                    by_route
                        .entry(*key)
                        .or_insert_with(RouteSeries::empty)
                        .add(h);
                }
            }
            snap.connections_accepted += w.accepted.load(Relaxed);
            snap.connections_active += w.open_connections();
            snap.received_bytes += w.received_bytes.load(Relaxed);
            snap.sent_bytes += w.sent_bytes.load(Relaxed);
            for (total, count) in snap.upstream_errors.iter_mut().zip(&w.upstream_errors) {
                total.1 += count.load(Relaxed);
            }
            w.upstream_connect.add_to(&mut snap.upstream_connect);
            w.upstream_response.add_to(&mut snap.upstream_response);
            w.proxy_duration.add_to(&mut snap.proxy_duration);
            w.requests_per_connection
                .add_to(&mut snap.requests_per_connection);
            for (total, count) in snap.tls_handshakes.iter_mut().zip(&w.tls_handshakes) {
                total.2 += count.load(Relaxed);
            }
            for (total, count) in snap.tls_key_exchanges.iter_mut().zip(&w.tls_key_exchanges) {
                total.1 += count.load(Relaxed);
            }
            w.tls_handshake_duration
                .add_to(&mut snap.tls_handshake_duration);
            for (total, count) in snap.proxy_rejected.iter_mut().zip(&w.proxy_rejected) {
                total.1 += count.load(Relaxed);
            }
            if let Ok(table) = w.live.lock() {
                live.extend(table.iter().map(|(_, c)| c.clone()));
            }
        }
        // Read after the workers' counts: a reload names a route before it serves, so every
        // id counted above has its label now. Read before, a route a reload added meanwhile
        // would be counted unlabelled for one scrape, and that row would fall back on the
        // next: a counter going down, a reset to Prometheus (found by review).
        let routes = routes.labels();
        for (key, series) in by_route {
            let h = series.duration;
            let class = usize::from(key.code / 100).clamp(1, 5) - 1;
            snap.requests[class] += h.count();
            snap.request_duration.add(&h);
            let route = key
                .route
                .and_then(|r| routes.get(usize::from(r)))
                .cloned()
                .unwrap_or_default();
            // A route past the 65536th label has no id: its counts join the unlabelled row
            // of that status, never a second series of the same labels (Prometheus refuses
            // a whole scrape that repeats one; found by review). Labelled rows are unique
            // (the config refuses two routes of one label), so only an unlabelled one is
            // looked for.
            if route.is_empty()
                && let Some(row) = snap
                    .routes
                    .iter_mut()
                    .find(|row| row.route.is_empty() && row.code == key.code)
            {
                row.duration.add(&h);
                row.body_bytes += series.body_bytes;
                continue;
            }
            snap.routes.push(RouteRow {
                route,
                code: key.code,
                duration: h,
                body_bytes: series.body_bytes,
            });
        }
        let now_ms = crate::clock::Coarse::now().millis();
        let kernel = |cookie| {
            snap.ebpf
                .as_ref()
                .and_then(|e| e.conns.get(&cookie))
                .copied()
        };
        let mut rows: Vec<ConnRow> = live
            .iter()
            .map(|c| {
                let kernel = kernel(c.cookie);
                ConnRow {
                    peer: c.peer.to_string(),
                    cookie: c.cookie,
                    age_seconds: Duration::from_millis(now_ms.saturating_sub(c.opened_ms))
                        .as_secs_f64(),
                    requests: c.requests,
                    // The kernel's counts are as of the connection's last sock_ops event
                    // (an ACK of ringway's bytes, an RTT sample: during a long upload the
                    // received count waits for ringway's answer); ringway's are updated per
                    // request. The larger is the later.
                    bytes_in: kernel.map_or(c.bytes_in, |k| k.bytes_received.max(c.bytes_in)),
                    bytes_out: kernel.map_or(c.bytes_out, |k| k.bytes_acked.max(c.bytes_out)),
                    kernel,
                }
            })
            .collect();
        let top = |rows: &[ConnRow]| rows.iter().take(TOP_CONNECTIONS).cloned().collect();
        rows.sort_by(|a, b| b.age_seconds.total_cmp(&a.age_seconds));
        snap.oldest_connections = top(&rows);
        rows.sort_by_key(|r| std::cmp::Reverse(r.bytes_in + r.bytes_out));
        snap.biggest_connections = top(&rows);
        rows.retain(|r| r.kernel.is_some());
        rows.sort_by(|a, b| {
            let rtt = |r: &ConnRow| r.kernel.map_or(0.0, |k| k.srtt_seconds);
            rtt(b).total_cmp(&rtt(a))
        });
        snap.slowest_connections = top(&rows);
        snap
    }
}
