//! Prometheus text exposition format 0.0.4, written by hand: it is a few lines of
//! formatting, and a real parser checks the output in the tests.

use std::fmt::Write;

use super::ebpf::EbpfFigures;
use super::histogram::HistogramSnapshot;
use super::names::{self, Name};
use super::snapshot::{AppFigures, GroupConnFigures, LimitFigures, Snapshot};
use crate::tls::CertInfo;

/// Accumulates one exposition.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

/// A metric family's type.
#[derive(Clone, Copy)]
pub enum Kind {
    /// Monotonic counter.
    Counter,
    /// Gauge.
    Gauge,
    /// Histogram.
    Histogram,
}

impl Exposition {
    /// Starts a family: HELP and TYPE lines.
    pub fn family(&mut self, name: &Name, kind: Kind) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(self.out, "# HELP {} {}", name.name, name.help);
        let _ = writeln!(self.out, "# TYPE {} {kind}", name.name);
    }

    /// One sample of a counter or gauge.
    pub fn sample(&mut self, name: &Name, labels: &[(&str, &str)], value: f64) {
        self.line(name.name, "", labels, None, value);
    }

    /// The series of one histogram (buckets cumulative, then sum and count).
    pub fn histogram(&mut self, name: &Name, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let mut cumulative = 0u64;
        for (i, count) in h.counts.iter().enumerate() {
            cumulative += count;
            let le = h
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| format_float(*b));
            self.line(name.name, "_bucket", labels, Some(&le), cumulative as f64);
        }
        self.line(name.name, "_sum", labels, None, h.sum);
        self.line(name.name, "_count", labels, None, cumulative as f64);
    }

    fn line(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &[(&str, &str)],
        le: Option<&str>,
        value: f64,
    ) {
        self.out.push_str(name);
        self.out.push_str(suffix);
        if !labels.is_empty() || le.is_some() {
            self.out.push('{');
            let mut first = true;
            for (k, v) in labels
                .iter()
                .map(|(k, v)| (*k, *v))
                .chain(le.map(|le| ("le", le)))
            {
                if !first {
                    self.out.push(',');
                }
                first = false;
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", format_float(value));
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.out
    }
}

fn format_float(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the proxy's own figures.
pub fn render(snap: &Snapshot, out: &mut Exposition) {
    use Kind::*;
    out.family(&names::WORKERS, Gauge);
    out.sample(&names::WORKERS, &[], snap.workers as f64);
    if let Some(q) = snap.accept_queue {
        out.family(&names::ACCEPT_QUEUE_LENGTH, Gauge);
        out.sample(&names::ACCEPT_QUEUE_LENGTH, &[], q.depth as f64);
        out.family(&names::ACCEPT_QUEUE_LIMIT, Gauge);
        out.sample(&names::ACCEPT_QUEUE_LIMIT, &[], q.limit as f64);
        out.family(&names::ACCEPT_QUEUE_FULLEST, Gauge);
        out.sample(&names::ACCEPT_QUEUE_FULLEST, &[], q.fullest);
    }

    out.family(&names::REQUESTS, Counter);
    for row in &snap.routes {
        let code = row.code.to_string();
        let labels = [("route", row.route.as_str()), ("code", code.as_str())];
        out.sample(&names::REQUESTS, &labels, row.duration.count() as f64);
    }
    out.family(&names::RESPONSE_BODY_BYTES, Counter);
    for row in &snap.routes {
        let code = row.code.to_string();
        let labels = [("route", row.route.as_str()), ("code", code.as_str())];
        out.sample(&names::RESPONSE_BODY_BYTES, &labels, row.body_bytes as f64);
    }
    out.family(&names::REQUEST_DURATION, Histogram);
    for row in &snap.routes {
        let code = row.code.to_string();
        let labels = [("route", row.route.as_str()), ("code", code.as_str())];
        out.histogram(&names::REQUEST_DURATION, &labels, &row.duration);
    }
    for (name, h) in [
        (&names::UPSTREAM_CONNECT, &snap.upstream_connect),
        (&names::UPSTREAM_RESPONSE, &snap.upstream_response),
        (&names::PROXY_DURATION, &snap.proxy_duration),
        (
            &names::REQUESTS_PER_CONNECTION,
            &snap.requests_per_connection,
        ),
    ] {
        out.family(name, Histogram);
        out.histogram(name, &[], h);
    }
    out.family(&names::TLS_HANDSHAKES, Counter);
    for (result, version, count) in &snap.tls_handshakes {
        let labels = [("result", *result), ("version", *version)];
        out.sample(&names::TLS_HANDSHAKES, &labels, *count as f64);
    }
    out.family(&names::TLS_KEY_EXCHANGES, Counter);
    for (group, count) in &snap.tls_key_exchanges {
        out.sample(
            &names::TLS_KEY_EXCHANGES,
            &[("group", group)],
            *count as f64,
        );
    }
    out.family(&names::TLS_HANDSHAKE_DURATION, Histogram);
    out.histogram(
        &names::TLS_HANDSHAKE_DURATION,
        &[],
        &snap.tls_handshake_duration,
    );
    render_certificates(&snap.tls_certificates, out);
    out.family(&names::UPSTREAM_ERRORS, Counter);
    for (kind, count) in &snap.upstream_errors {
        out.sample(&names::UPSTREAM_ERRORS, &[("kind", kind)], *count as f64);
    }
    for (name, count) in [
        (
            &names::UPSTREAM_OPENED,
            (|g: &GroupConnFigures| g.opened) as fn(&_) -> u64,
        ),
        (&names::UPSTREAM_REUSED, |g| g.reused),
        (&names::UPSTREAM_UPGRADES, |g| g.upgraded),
        (&names::UPSTREAM_CONNECT_FAILURES, |g| g.connect_failed),
        (&names::UPSTREAM_PASSED_ON, |g| g.passed_on),
    ] {
        out.family(name, Counter);
        for g in &snap.upstream_conns {
            out.sample(name, &[("upstream", g.upstream.as_str())], count(g) as f64);
        }
    }
    out.family(&names::PROXY_REJECTED, Counter);
    for (reason, count) in &snap.proxy_rejected {
        out.sample(&names::PROXY_REJECTED, &[("reason", reason)], *count as f64);
    }
    out.family(&names::CONNECTIONS_ACCEPTED, Counter);
    out.sample(
        &names::CONNECTIONS_ACCEPTED,
        &[],
        snap.connections_accepted as f64,
    );
    out.family(&names::CONNECTIONS_ACTIVE, Gauge);
    out.sample(
        &names::CONNECTIONS_ACTIVE,
        &[],
        snap.connections_active as f64,
    );
    out.family(&names::CONNECTIONS_BY_STATE, Gauge);
    let phases = &snap.connection_phases;
    for (state, count) in [
        ("waiting", phases.waiting),
        ("reading", phases.reading),
        ("writing", phases.writing),
    ] {
        out.sample(
            &names::CONNECTIONS_BY_STATE,
            &[("state", state)],
            count as f64,
        );
    }
    out.family(&names::ACCESS_LOG_DROPPED, Counter);
    out.sample(
        &names::ACCESS_LOG_DROPPED,
        &[],
        snap.access_log_dropped as f64,
    );
    if let Some(app) = &snap.app {
        render_app(app, out);
    }
    let (accepted, refused, last_successful) = snap.config_reloads;
    out.family(&names::CONFIG_RELOADS, Counter);
    out.sample(&names::CONFIG_RELOADS, &[("result", "ok")], accepted as f64);
    out.sample(
        &names::CONFIG_RELOADS,
        &[("result", "refused")],
        refused as f64,
    );
    out.family(&names::CONFIG_LAST_RELOAD_OK, Gauge);
    out.sample(
        &names::CONFIG_LAST_RELOAD_OK,
        &[],
        f64::from(u8::from(last_successful)),
    );
    out.family(&names::RECEIVED_BYTES, Counter);
    out.sample(&names::RECEIVED_BYTES, &[], snap.received_bytes as f64);
    out.family(&names::SENT_BYTES, Counter);
    out.sample(&names::SENT_BYTES, &[], snap.sent_bytes as f64);

    out.family(&names::PROCESS_RESIDENT, Gauge);
    for p in &snap.processes {
        let pid = p.pid.to_string();
        out.sample(
            &names::PROCESS_RESIDENT,
            &[("process", p.role), ("pid", &pid)],
            p.rss_bytes as f64,
        );
    }
    out.family(&names::PROCESS_CPU, Counter);
    for p in &snap.processes {
        let pid = p.pid.to_string();
        out.sample(
            &names::PROCESS_CPU,
            &[("process", p.role), ("pid", &pid)],
            p.cpu_seconds,
        );
    }
    render_oncpu(snap, out);
    if let Some(limits) = &snap.limits {
        render_limits(limits, out);
    }
}

/// Renders the limits' counters: the connection limits always (0 without a limit), the
/// route and group series for the routes and groups that have a limit.
pub fn render_limits(l: &LimitFigures, out: &mut Exposition) {
    use Kind::*;
    out.family(&names::LIMIT_REJECTED, Counter);
    out.sample(
        &names::LIMIT_REJECTED,
        &[("kind", "max_connections")],
        l.max_connections_rejected as f64,
    );
    out.sample(
        &names::LIMIT_REJECTED,
        &[("kind", "conn_per_ip")],
        l.conn_per_ip_rejected as f64,
    );
    for r in &l.routes {
        let labels = [("kind", "req"), ("route", r.route.as_str())];
        out.sample(&names::LIMIT_REJECTED, &labels, r.rejected as f64);
    }
    for r in &l.conn_routes {
        let labels = [("kind", "conn"), ("route", r.route.as_str())];
        out.sample(&names::LIMIT_REJECTED, &labels, r.rejected as f64);
    }
    for g in &l.groups {
        for (kind, count) in [
            ("queue_full", g.queue_full),
            ("queue_timeout", g.queue_timeout),
        ] {
            let labels = [("kind", kind), ("upstream", g.upstream.as_str())];
            out.sample(&names::LIMIT_REJECTED, &labels, count as f64);
        }
    }
    if !l.routes.is_empty() {
        out.family(&names::LIMIT_REQ_DELAYED, Counter);
        for r in &l.routes {
            let labels = [("route", r.route.as_str())];
            out.sample(&names::LIMIT_REQ_DELAYED, &labels, r.delayed as f64);
        }
        out.family(&names::LIMIT_REQ_DRY_RUN, Counter);
        for r in &l.routes {
            let (refused, held) = r.dry_run;
            for (would, count) in [("refuse", refused), ("delay", held)] {
                let labels = [("route", r.route.as_str()), ("would", would)];
                out.sample(&names::LIMIT_REQ_DRY_RUN, &labels, count as f64);
            }
        }
        out.family(&names::LIMIT_REQ_EVICTED, Counter);
        for r in &l.routes {
            let labels = [("route", r.route.as_str())];
            out.sample(&names::LIMIT_REQ_EVICTED, &labels, r.evicted as f64);
        }
        out.family(&names::LIMIT_REQ_CLIENTS, Gauge);
        for r in &l.routes {
            let labels = [("route", r.route.as_str())];
            out.sample(&names::LIMIT_REQ_CLIENTS, &labels, r.clients as f64);
        }
    }
    if !l.conn_routes.is_empty() {
        out.family(&names::LIMIT_CONN_DRY_RUN, Counter);
        for r in &l.conn_routes {
            let labels = [("route", r.route.as_str())];
            out.sample(&names::LIMIT_CONN_DRY_RUN, &labels, r.dry_run as f64);
        }
        out.family(&names::LIMIT_CONN_CLIENTS, Gauge);
        for r in &l.conn_routes {
            let labels = [("route", r.route.as_str())];
            out.sample(&names::LIMIT_CONN_CLIENTS, &labels, r.clients as f64);
        }
    }
    if !l.groups.is_empty() {
        out.family(&names::UPSTREAM_BUSY, Gauge);
        for g in &l.groups {
            let labels = [("upstream", g.upstream.as_str())];
            out.sample(&names::UPSTREAM_BUSY, &labels, g.busy as f64);
        }
        out.family(&names::UPSTREAM_QUEUE_LENGTH, Gauge);
        for g in &l.groups {
            let labels = [("upstream", g.upstream.as_str())];
            out.sample(
                &names::UPSTREAM_QUEUE_LENGTH,
                &labels,
                g.queue_length as f64,
            );
        }
        out.family(&names::UPSTREAM_QUEUE_WAIT, Histogram);
        for g in &l.groups {
            let labels = [("upstream", g.upstream.as_str())];
            out.histogram(&names::UPSTREAM_QUEUE_WAIT, &labels, &g.queue_wait);
        }
    }
}

/// Renders the eBPF figures.
pub fn render_ebpf(e: &EbpfFigures, out: &mut Exposition) {
    use Kind::*;
    out.family(&names::EBPF_UP, Gauge);
    for p in &e.probes {
        out.sample(
            &names::EBPF_UP,
            &[("probe", p.name)],
            if p.up { 1.0 } else { 0.0 },
        );
    }
    for (name, h) in [
        (&names::TCP_RTT, &e.rtt),
        (&names::CONNECTION_DURATION, &e.lifetime),
        (&names::CONNECTION_RECEIVED_BYTES, &e.bytes_in),
        (&names::CONNECTION_SENT_BYTES, &e.bytes_out),
        (&names::ACCEPT_WAIT, &e.accept_wait),
    ] {
        if let Some(h) = h {
            out.family(name, Histogram);
            out.histogram(name, &[], h);
        }
    }
    if !e.uring.is_empty() {
        out.family(&names::URING_OP_DURATION, Histogram);
        for row in &e.uring {
            out.histogram(&names::URING_OP_DURATION, &[("op", &row.op)], &row.latency);
        }
    }
    out.family(&names::SOCKET_MEMORY, Gauge);
    out.sample(
        &names::SOCKET_MEMORY,
        &[("queue", "send")],
        e.socket_memory.0 as f64,
    );
    out.sample(
        &names::SOCKET_MEMORY,
        &[("queue", "receive")],
        e.socket_memory.1 as f64,
    );
    out.family(&names::CLOSED_DROPPED, Counter);
    out.sample(&names::CLOSED_DROPPED, &[], e.closed_dropped as f64);
}

/// Renders the on-CPU time the probes measured, for the processes that have it.
fn render_oncpu(snap: &Snapshot, out: &mut Exposition) {
    let measured: Vec<_> = snap
        .processes
        .iter()
        .filter(|p| p.oncpu_seconds.is_some())
        .collect();
    if measured.is_empty() {
        return;
    }
    out.family(&names::PROCESS_ONCPU, Kind::Counter);
    for p in measured {
        let pid = p.pid.to_string();
        let seconds = p.oncpu_seconds.unwrap_or_default();
        out.sample(
            &names::PROCESS_ONCPU,
            &[("process", p.role), ("pid", &pid)],
            seconds,
        );
    }
}

/// The supervised app server's series (only with `[app]`, so that an alert on
/// `ringway_app_up == 0` never fires for a ringway without one).
fn render_app(app: &AppFigures, out: &mut Exposition) {
    out.family(&names::APP_UP, Kind::Gauge);
    out.sample(&names::APP_UP, &[], if app.up { 1.0 } else { 0.0 });
    out.family(&names::APP_RESTARTS, Kind::Counter);
    out.sample(&names::APP_RESTARTS, &[], app.restarts as f64);
}

/// Each certificate's expiry, labelled by its name and its file: two certificates may
/// share a name, and a repeated series would make Prometheus refuse the whole scrape.
fn render_certificates(certificates: &[CertInfo], out: &mut Exposition) {
    if certificates.is_empty() {
        return;
    }
    out.family(&names::TLS_CERT_EXPIRY, Kind::Gauge);
    for cert in certificates {
        out.sample(
            &names::TLS_CERT_EXPIRY,
            &[("name", &cert.name), ("file", &cert.file)],
            cert.not_after as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_certificates_of_one_name_are_two_series() {
        let cert = |file: &str, not_after| CertInfo {
            name: "example.com".into(),
            file: file.into(),
            not_after,
        };
        let mut e = Exposition::default();
        render_certificates(
            &[
                cert("/etc/tls/ecdsa.pem", 1000),
                cert("/etc/tls/rsa.pem", 2000),
            ],
            &mut e,
        );
        let text = e.finish();
        let series: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            series,
            [
                "ringway_tls_certificate_expiry_timestamp_seconds{name=\"example.com\",file=\"/etc/tls/ecdsa.pem\"} 1000",
                "ringway_tls_certificate_expiry_timestamp_seconds{name=\"example.com\",file=\"/etc/tls/rsa.pem\"} 2000",
            ],
            "{text}"
        );
    }

    #[test]
    fn histogram_lines() {
        let h = HistogramSnapshot {
            bounds: vec![0.1, 1.0],
            counts: vec![1, 2, 3],
            sum: 7.5,
        };
        let mut e = Exposition::default();
        e.family(&names::REQUEST_DURATION, Kind::Histogram);
        e.histogram(&names::REQUEST_DURATION, &[("op", "read")], &h);
        let text = e.finish();
        assert!(text.contains("# TYPE ringway_request_duration_seconds histogram\n"));
        assert!(
            text.contains("ringway_request_duration_seconds_bucket{op=\"read\",le=\"0.1\"} 1\n")
        );
        assert!(text.contains("ringway_request_duration_seconds_bucket{op=\"read\",le=\"1\"} 3\n"));
        assert!(
            text.contains("ringway_request_duration_seconds_bucket{op=\"read\",le=\"+Inf\"} 6\n")
        );
        assert!(text.contains("ringway_request_duration_seconds_sum{op=\"read\"} 7.5\n"));
        assert!(text.contains("ringway_request_duration_seconds_count{op=\"read\"} 6\n"));
    }

    #[test]
    fn limit_series_carry_their_route_or_group() {
        use crate::metrics::{GroupLimitFigures, RouteConnFigures, RouteLimitFigures};
        let figures = LimitFigures {
            max_connections_rejected: 1,
            conn_per_ip_rejected: 2,
            routes: vec![RouteLimitFigures {
                route: "/login".into(),
                rejected: 3,
                delayed: 10,
                dry_run: (11, 12),
                evicted: 4,
                clients: 5,
            }],
            conn_routes: vec![RouteConnFigures {
                route: "/download/".into(),
                rejected: 13,
                dry_run: 14,
                clients: 15,
            }],
            groups: vec![GroupLimitFigures {
                upstream: "app".into(),
                busy: 6,
                queue_length: 7,
                queue_full: 8,
                queue_timeout: 9,
                queue_wait: HistogramSnapshot::empty(&[1.0]),
            }],
        };
        let mut e = Exposition::default();
        render_limits(&figures, &mut e);
        let text = e.finish();
        for line in [
            "ringway_limit_rejected_total{kind=\"max_connections\"} 1",
            "ringway_limit_rejected_total{kind=\"conn_per_ip\"} 2",
            "ringway_limit_rejected_total{kind=\"req\",route=\"/login\"} 3",
            "ringway_limit_req_dry_run_total{route=\"/login\",would=\"refuse\"} 11",
            "ringway_limit_req_dry_run_total{route=\"/login\",would=\"delay\"} 12",
            "ringway_limit_rejected_total{kind=\"queue_full\",upstream=\"app\"} 8",
            "ringway_limit_rejected_total{kind=\"queue_timeout\",upstream=\"app\"} 9",
            "ringway_limit_req_delayed_total{route=\"/login\"} 10",
            "ringway_limit_req_evicted_total{route=\"/login\"} 4",
            "ringway_limit_req_clients{route=\"/login\"} 5",
            "ringway_limit_rejected_total{kind=\"conn\",route=\"/download/\"} 13",
            "ringway_limit_conn_dry_run_total{route=\"/download/\"} 14",
            "ringway_limit_conn_clients{route=\"/download/\"} 15",
            "ringway_upstream_busy_slots{upstream=\"app\"} 6",
            "ringway_upstream_queue_length{upstream=\"app\"} 7",
            "ringway_upstream_queue_wait_seconds_count{upstream=\"app\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}:\n{text}");
        }
        // Without limited routes or groups, only the connection kinds.
        let mut e = Exposition::default();
        render_limits(&LimitFigures::default(), &mut e);
        let text = e.finish();
        assert_eq!(
            text.lines().filter(|l| !l.starts_with('#')).count(),
            2,
            "{text}"
        );
    }

    #[test]
    fn app_series() {
        let mut e = Exposition::default();
        render_app(
            &AppFigures {
                up: true,
                restarts: 3,
            },
            &mut e,
        );
        let text = e.finish();
        assert!(
            text.contains("# TYPE ringway_app_up gauge\nringway_app_up 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "# TYPE ringway_app_restarts_total counter\nringway_app_restarts_total 3\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn escapes_label_values() {
        let mut e = Exposition::default();
        e.sample(&names::WORKERS, &[("x", "a\"b\\c\nd")], 1.0);
        assert_eq!(e.finish(), "ringway_workers{x=\"a\\\"b\\\\c\\nd\"} 1\n");
    }
}
