//! The report: medians and spread per case and stack, ratios to nginx, the targets, written
//! as JSON (`results.json`), markdown (`results.md`) and an SVG chart (`chart.svg`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde::Serialize;

use crate::load::{Kind, WrkOutput};
use crate::stacks::{StackKind, Tools};
use crate::tls::TlsSeen;
use crate::{Config, sys};

const MIB: f64 = 1024.0 * 1024.0;

/// One run of one case at one stack.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub case: String,
    pub kind: Kind,
    pub connections: usize,
    pub stack: StackKind,
    pub round: usize,
    pub requests: u64,
    pub rps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub errors: u64,
    /// The load generator's figures (wrk's; h2load's and the handshake client's in the
    /// same shape).
    pub wrk: WrkOutput,
    pub generator: Generator,
    /// What a TLS run negotiated, and its handshakes (the handshake cases).
    pub tls: Option<TlsSeen>,
    /// Proxy CPU time (user + sys, all its processes) per request, µs.
    pub proxy_cpu_us: Option<f64>,
    /// uWSGI (master + workers) CPU time per request, µs.
    pub app_cpu_us: Option<f64>,
    /// Median and maximum of the proxy's RSS sampled during the run, bytes.
    pub rss_load: Option<u64>,
    pub rss_peak: Option<u64>,
}

/// Which load generator drove a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Generator {
    Wrk,
    H2load,
    /// The harness's own rustls client (a connection per request).
    RustlsClient,
}

/// The memory measurement with idle keep-alive connections.
#[derive(Debug, Clone, Serialize)]
pub struct IdleConns {
    pub requested: usize,
    /// Connections still open (each after one complete request) when RSS was read.
    pub held: usize,
    /// VmRSS before and with the connections.
    pub rss_before: u64,
    pub rss_after: u64,
    /// RssAnon before and with the connections.
    pub anon_before: u64,
    pub anon_after: u64,
    /// The growth of anonymous RSS per connection held: what a connection's state takes
    /// (the pages of code its first request ran are not per connection; shared memory,
    /// such as nginx's TLS session cache, is left out too).
    pub bytes_per_conn: Option<f64>,
}

impl IdleConns {
    /// `held` of `requested` connections open between the two readings.
    pub fn measured(requested: usize, held: usize, before: Resident, after: Resident) -> Self {
        let grown = after.anon.saturating_sub(before.anon);
        IdleConns {
            requested,
            held,
            rss_before: before.rss,
            rss_after: after.rss,
            anon_before: before.anon,
            anon_after: after.anon,
            bytes_per_conn: (held > 0).then(|| grown as f64 / held as f64),
        }
    }
}

/// A proxy's resident memory at one moment, bytes, summed over its processes.
#[derive(Debug, Clone, Copy)]
pub struct Resident {
    /// VmRSS.
    pub rss: u64,
    /// RssAnon: without the pages of mapped files.
    pub anon: u64,
}

impl Resident {
    pub fn of(pids: &[u32]) -> Self {
        Resident {
            rss: crate::sys::rss_sum(pids),
            anon: crate::sys::anon_sum(pids),
        }
    }
}

/// Per stack, measured once.
#[derive(Debug, Clone, Serialize)]
pub struct StackInfo {
    pub processes: usize,
    /// The proxy's RSS after start-up, the probes and [`crate::IDLE_AFTER`] without requests,
    /// before any load, bytes.
    pub idle_rss: u64,
    pub idle_conns: Option<IdleConns>,
    /// The same with idle TLS connections, each after a full handshake and one request.
    pub idle_tls_conns: Option<IdleConns>,
    /// The proxy's RSS after the last run (a heap that only grows shows here), bytes.
    pub end_rss: u64,
    /// The proxy's RSS 30 s after the last run, once a quiet proxy has given back what the
    /// load grew, bytes.
    pub settled_rss: Option<u64>,
}

/// Median and range over rounds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// One case at one stack, over the rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub case: String,
    pub kind: Kind,
    pub connections: usize,
    pub stack: StackKind,
    pub rounds: usize,
    pub rps: Option<Spread>,
    pub p50_us: Option<Spread>,
    pub p99_us: Option<Spread>,
    pub p999_us: Option<Spread>,
    pub proxy_cpu_us: Option<Spread>,
    pub app_cpu_us: Option<Spread>,
    pub rss_load: Option<Spread>,
    pub rss_peak: Option<Spread>,
    pub errors: u64,
    /// Ratios of this stack's medians to nginx's (same case, same run).
    pub rps_vs_nginx: Option<f64>,
    pub p99_vs_nginx: Option<f64>,
    pub cpu_vs_nginx: Option<f64>,
    /// Why the stack was not measured on this case (its probe failed).
    pub unserved: Option<String>,
    /// TLS cases: what was negotiated (`TLSv1.3 TLS_AES_128_GCM_SHA256 X25519`; several,
    /// comma-separated, if the rounds differed).
    pub negotiated: Option<String>,
    /// Handshake cases: resumed handshakes over all handshakes, all rounds together.
    pub resumed_fraction: Option<f64>,
}

impl Summary {
    /// Requests (or handshakes) per second of proxy CPU: 1 / CPU per request.
    pub fn per_cpu_second(&self) -> Option<f64> {
        self.proxy_cpu_us
            .filter(|c| c.median > 0.0)
            .map(|c| 1e6 / c.median)
    }
}

/// A target and how ringway did.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub target: String,
    pub measured: String,
    /// `Some(true)` met, `Some(false)` missed, `None` not measured in this run (or, with
    /// `no_target`, a figure reported beside nginx's that has no target).
    pub met: Option<bool>,
    /// A figure reported beside nginx's, judged against nothing.
    pub no_target: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    pub started: String,
    pub finished: String,
    /// /proc/loadavg at the start and at the end: how busy the machine was besides us.
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub command: String,
    pub kernel: String,
    pub cpu: String,
    pub cpus: usize,
    pub versions: BTreeMap<String, String>,
    pub rounds: usize,
    pub duration_s: u64,
    pub app: String,
    pub ringway_workers: usize,
    /// ringway ran with its metrics endpoint and eBPF probes.
    pub ringway_probes: bool,
    pub uwsgi_workers: usize,
    pub wrk_threads: usize,
    pub pinned: bool,
    pub idle_conns: usize,
    /// Client threads of the handshake cases.
    pub handshake_clients: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub meta: Meta,
    pub stacks: BTreeMap<StackKind, StackInfo>,
    pub summaries: Vec<Summary>,
    pub targets: Vec<Target>,
    pub runs: Vec<RunResult>,
}

impl Report {
    pub fn build(
        config: &Config,
        tools: &Tools,
        (started, loadavg_start): (String, String),
        stacks: BTreeMap<StackKind, StackInfo>,
        runs: Vec<RunResult>,
        unserved: BTreeMap<(String, StackKind), String>,
    ) -> Report {
        let (kernel, cpu) = sys::machine();
        let mut versions = BTreeMap::new();
        versions.insert(
            "ringway".to_owned(),
            version(&tools.ringway, &["--version"]),
        );
        versions.insert("nginx".to_owned(), version(&tools.nginx, &["-v"]));
        versions.insert(
            "uwsgi".to_owned(),
            version(&tools.venv.join("bin").join("uwsgi"), &["--version"]),
        );
        if config.stacks.iter().any(|k| k.on_granian()) {
            versions.insert(
                "granian".to_owned(),
                version(&tools.granian(), &["--version"]),
            );
        }
        versions.insert("wrk".to_owned(), version(&config.wrk, &["-v"]));
        if config.has_tls() {
            versions.insert("h2load".to_owned(), version(&config.h2load, &["--version"]));
            versions.insert(
                "rustls".to_owned(),
                "rustls 0.23 (aws-lc-rs) in the harness's handshake client".to_owned(),
            );
        }
        let meta = Meta {
            started,
            finished: now_utc(),
            loadavg_start,
            loadavg_end: sys::loadavg(),
            command: config.command.clone(),
            kernel,
            cpu,
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            versions,
            rounds: config.rounds,
            duration_s: config.duration_s,
            app: config.app_name.clone(),
            ringway_workers: config.ringway_workers,
            ringway_probes: config.ringway_probes,
            uwsgi_workers: config.uwsgi_workers,
            wrk_threads: config.wrk_threads,
            pinned: config.pin,
            idle_conns: config.idle_conns,
            handshake_clients: config
                .cases
                .iter()
                .find(|c| c.kind.is_handshake())
                .map(|c| c.connections),
        };
        let mut summaries = Vec::new();
        for case in &config.cases {
            let id = case.id();
            let mut of_case: Vec<Summary> = config
                .stacks
                .iter()
                .filter(|&&stack| crate::runs_at(case.kind, stack))
                .map(|&stack| {
                    let mut s = summarize(&id, case.kind, case.connections, stack, &runs);
                    s.unserved = unserved.get(&(id.clone(), stack)).cloned();
                    s
                })
                .collect();
            // Each stack over nginx in front of the same app server (uWSGI or Granian).
            let references: Vec<Option<Summary>> = of_case
                .iter()
                .map(|s| {
                    of_case
                        .iter()
                        .find(|n| n.stack == s.stack.reference())
                        .cloned()
                })
                .collect();
            for (s, nginx) in of_case.iter_mut().zip(references) {
                if let Some(nginx) = nginx {
                    s.rps_vs_nginx = ratio(s.rps, nginx.rps);
                    s.p99_vs_nginx = ratio(s.p99_us, nginx.p99_us);
                    s.cpu_vs_nginx = ratio(s.proxy_cpu_us, nginx.proxy_cpu_us);
                }
            }
            summaries.extend(of_case);
        }
        let mut report = Report {
            meta,
            stacks,
            summaries,
            targets: Vec::new(),
            runs,
        };
        report.targets = targets(&report);
        report
    }

    fn find(&self, case: &str, stack: StackKind) -> Option<&Summary> {
        self.summaries
            .iter()
            .find(|s| s.case == case && s.stack == stack)
    }

    /// Writes results.json, results.md and chart.svg into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        crate::write_file(&dir.join("results.json"), &json)?;
        crate::write_file(&dir.join("results.md"), &self.markdown())?;
        crate::write_file(&dir.join("chart.svg"), &self.svg())?;
        Ok(())
    }

    pub fn markdown(&self) -> String {
        let m = &self.meta;
        let mut out = String::new();
        let v = |k: &str| m.versions.get(k).cloned().unwrap_or_default();
        let _ = writeln!(out, "## ringway-bench: ringway vs nginx vs uWSGI\n");
        let _ = writeln!(
            out,
            "Run {} → {} with `{}`: {} round(s) × {} s per case and stack, stacks alternated \
             ({}), app `{}` on {} uWSGI workers (unix socket{}).  ",
            m.started,
            m.finished,
            m.command,
            m.rounds,
            m.duration_s,
            self.stacks
                .keys()
                .map(|k| match k {
                    StackKind::UwsgiHttp => "uWSGI `--http` router",
                    StackKind::Uwsgi => "uWSGI alone",
                    StackKind::RingwayGranian => "ringway → Granian",
                    StackKind::NginxGranian => "nginx → Granian",
                    StackKind::Granian => "Granian alone",
                    other => other.name(),
                })
                .collect::<Vec<_>>()
                .join(", "),
            m.app,
            m.uwsgi_workers,
            if self.stacks.contains_key(&StackKind::Uwsgi) {
                "; uWSGI alone: `--http-socket`, `Connection: close`"
            } else {
                ""
            }
        );
        if self.stacks.keys().any(|k| k.on_granian()) {
            let _ = writeln!(
                out,
                "Granian stacks: {} with {} workers (WSGI interface, the same app), one per \
                 stack; ringway with an HTTP upstream group (`keepalive = {k}`), nginx with \
                 `proxy_pass` to an `upstream` block (`keepalive {k}`, `proxy_http_version \
                 1.1`, `Connection \"\"`, Host/X-Forwarded-For/X-Forwarded-Proto/X-Real-IP); \
                 app CPU there is Granian's.  ",
                v("granian"),
                m.uwsgi_workers,
                k = crate::stacks::UPSTREAM_KEEPALIVE
            );
        }
        let _ = writeln!(
            out,
            "Machine: {} vCPU ({}), Linux {}; {}, {} worker(s), {}; {}, worker_processes auto, \
             worker_cpu_affinity auto, tuned buffers; {}; load: {}{}, {} thread(s); {}.  ",
            m.cpus,
            m.cpu,
            m.kernel,
            v("ringway"),
            m.ringway_workers,
            if m.ringway_probes {
                "metrics and eBPF probes on"
            } else {
                "metrics off"
            },
            v("nginx"),
            v("uwsgi"),
            v("wrk"),
            m.versions
                .get("h2load")
                .map_or(String::new(), |h| format!(" (TLS keep-alive: {h})")),
            m.wrk_threads,
            if m.pinned {
                "pinned: wrk on one CPU, servers on the other(s)"
            } else {
                "not pinned: load generator, proxy and workers share the CPUs"
            }
        );
        let _ = writeln!(
            out,
            "Load average (1/5/15 min) at the start: {}, at the end: {}.\n",
            m.loadavg_start, m.loadavg_end
        );
        if self.summaries.iter().any(|s| s.kind.is_static()) {
            let _ = writeln!(
                out,
                "Static cases (`static1k`, `static64k`, `static1m`: files of 1 KiB, 64 KiB and \
                 1 MiB): served by the proxy itself, ringway with `--static {route}=DIR`, nginx \
                 with `location {route} {{ alias DIR/; }}` and `sendfile on; tcp_nopush on; \
                 open_file_cache max=1000;`; the uWSGI stacks serve no files. `gzipfile16k` and \
                 `gzipfile128k`: stylesheets of 16 and 128 KiB asked for with \
                 `Accept-Encoding: gzip`, compressed by the proxy (ringway `[gzip]` with \
                 `text/css`, nginx `gzip on; gzip_types text/css;` in that location; level 1).\n",
                route = crate::load::STATIC_ROUTE
            );
        }
        let _ = writeln!(
            out,
            "Medians over rounds, (min–max) when rounds > 1. ×nginx: the stack's median over \
             nginx's (for the Granian stacks: over nginx-granian's). Proxy CPU: user + sys of all the proxy's processes over the run / \
             requests. Latency from wrk, for the TLS cases from h2load's per-request log and \
             from the handshake client (connect to the answer's last byte); all closed loop \
             (coordinated omission: read p99 as \
             \"under saturation\"). Proxy RSS: VmRSS summed over its processes, sampled every \
             50 ms (load: median of the samples, peak: their maximum). Memory: idle RSS after \
             start-up, one probe per case and {idle} s without requests (two of ringway's 5 s \
             housekeeping windows and some: an idle ringway gives back freed heap and unmaps \
             the pages of code it ran); per connection: (anonymous RSS (RssAnon) holding N \
             idle keep-alive connections, each after one complete request − before) / N, on \
             a fresh instance that is restarted before the load (code pages are not per \
             connection; the RSS columns are VmRSS).\n",
            idle = crate::IDLE_AFTER.as_secs()
        );
        let _ = writeln!(
            out,
            "| case | stack | req/s | ×nginx | p50 ms | p99 ms | ×nginx | p99.9 ms | proxy CPU µs/req | ×nginx | app CPU µs/req | proxy RSS load/peak MiB | errors |"
        );
        let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for s in &self.summaries {
            if let Some(why) = &s.unserved {
                let why: String = why.chars().take(90).collect();
                let _ = writeln!(
                    out,
                    "| {} | {} | not served: {} | | | | | | | | | | |",
                    s.case,
                    s.stack,
                    why.replace('|', "/")
                );
                continue;
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.case,
                s.stack,
                spread(s.rps, 1.0, 0),
                ratio_text(s.rps_vs_nginx),
                spread(s.p50_us, 1000.0, 2),
                spread(s.p99_us, 1000.0, 2),
                ratio_text(s.p99_vs_nginx),
                spread(s.p999_us, 1000.0, 2),
                spread(s.proxy_cpu_us, 1.0, 1),
                ratio_text(s.cpu_vs_nginx),
                spread(s.app_cpu_us, 1.0, 0),
                match (s.rss_load, s.rss_peak) {
                    (Some(l), Some(p)) => format!("{:.1} / {:.1}", l.median / MIB, p.max / MIB),
                    _ => "–".to_owned(),
                },
                s.errors
            );
        }
        let _ = writeln!(out, "\n### Memory\n");
        let _ = writeln!(
            out,
            "| stack | processes | idle RSS MiB | idle keep-alive conns held | RSS with them MiB | bytes/conn | ×nginx | RSS after all runs MiB | 30 s later MiB |"
        );
        let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|--:|");
        let nginx_per_conn = self
            .stacks
            .get(&StackKind::Nginx)
            .and_then(|i| i.idle_conns.as_ref())
            .and_then(|c| c.bytes_per_conn);
        for (kind, info) in &self.stacks {
            if !kind.has_proxy() {
                let _ = writeln!(
                    out,
                    "| {kind} | – | – (no proxy) | – {}| – | – | – | – | – |",
                    if *kind == StackKind::Uwsgi {
                        "(closes after each answer) "
                    } else {
                        ""
                    }
                );
                continue;
            }
            let (held, with, per, vs) = match &info.idle_conns {
                Some(c) => (
                    format!("{}/{}", c.held, c.requested),
                    format!("{:.1}", c.rss_after as f64 / MIB),
                    c.bytes_per_conn
                        .map_or("–".to_owned(), |b| format!("{b:.0}")),
                    ratio_text(match (c.bytes_per_conn, nginx_per_conn) {
                        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                        _ => None,
                    }),
                ),
                None => ("–".into(), "–".into(), "–".into(), "–".into()),
            };
            let _ = writeln!(
                out,
                "| {kind} | {} | {:.1} | {held} | {with} | {per} | {vs} | {:.1} | {} |",
                info.processes,
                info.idle_rss as f64 / MIB,
                info.end_rss as f64 / MIB,
                info.settled_rss
                    .map_or("–".to_owned(), |b| format!("{:.1}", b as f64 / MIB))
            );
        }
        self.tls_markdown(&mut out);
        let _ = writeln!(out, "\n### Targets (ringway)\n");
        let _ = writeln!(out, "| target | measured | |");
        let _ = writeln!(out, "|---|---|---|");
        for t in &self.targets {
            let verdict = match t.met {
                _ if t.no_target => "reported (no target)",
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "not measured",
            };
            let _ = writeln!(out, "| {} | {} | {verdict} |", t.target, t.measured);
        }
        out
    }

    /// The TLS section: what each stack negotiated, handshakes and requests per proxy
    /// CPU-second, the resumed fraction, and memory per idle TLS connection.
    fn tls_markdown(&self, out: &mut String) {
        let tls: Vec<&Summary> = self
            .summaries
            .iter()
            .filter(|s| s.kind.is_tls() && s.unserved.is_none())
            .collect();
        let idle: Vec<(&StackKind, &IdleConns)> = self
            .stacks
            .iter()
            .filter_map(|(k, i)| Some((k, i.idle_tls_conns.as_ref()?)))
            .collect();
        if tls.is_empty() && idle.is_empty() {
            return;
        }
        let m = &self.meta;
        let v = |k: &str| m.versions.get(k).cloned().unwrap_or_default();
        let _ = writeln!(out, "\n### TLS (ringway vs nginx)\n");
        let _ = writeln!(
            out,
            "Both serve the same ECDSA P-256 certificate, made for the run; ringway with rustls \
             (ring), nginx with OpenSSL (TLS 1.2 and 1.3, shared session cache, tickets on); \
             both offer HTTP/2 (ringway `--http2`, nginx `listen ... ssl http2`). Every client \
             offers TLS 1.3, one suite ({}) and one group ({}); the negotiated column is what \
             the client saw at each stack, the application protocol (ALPN) last. Keep-alive \
             cases: {} `--h1` (ALPN http/1.1 only), one request in flight per connection; \
             the HTTP/2 case (`tls-h2-hello`): h2load in h2 mode, `-m {}` streams in flight \
             per connection on a tenth as many connections (ringway serves each stream \
             through its HTTP/1.1 pipeline over an in-memory pipe). Handshake cases: the \
             harness's rustls client, \
             {} threads each in a loop of connect, handshake, one GET with `Connection: \
             close`, the whole answer, the server's close (full: no session kept; resumed: each \
             thread offers its last session ticket); it checks no certificate or signature, \
             which changes nothing for the server. Per CPU-second: requests (or handshakes) \
             per second of the proxy's CPU, 1 / CPU per request.\n",
            crate::tls::CIPHER_SUITE,
            crate::tls::GROUP,
            v("h2load"),
            crate::load::H2_STREAMS,
            m.handshake_clients
                .map_or("–".to_owned(), |c| c.to_string()),
        );
        let _ = writeln!(
            out,
            "| case | stack | negotiated | req or handshakes/s | ×nginx | p50 ms | p99 ms | proxy CPU µs/req | ×nginx | per proxy CPU-second | ×nginx | resumed |"
        );
        let _ = writeln!(out, "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for s in &tls {
            let nginx_per_cpu = self
                .find(&s.case, StackKind::Nginx)
                .and_then(Summary::per_cpu_second);
            let per_cpu = s.per_cpu_second();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.case,
                s.stack,
                s.negotiated.as_deref().unwrap_or("–"),
                spread(s.rps, 1.0, 0),
                ratio_text(s.rps_vs_nginx),
                spread(s.p50_us, 1000.0, 2),
                spread(s.p99_us, 1000.0, 2),
                spread(s.proxy_cpu_us, 1.0, 1),
                ratio_text(s.cpu_vs_nginx),
                per_cpu.map_or("–".to_owned(), |p| format!("{p:.0}")),
                ratio_text(match (per_cpu, nginx_per_cpu) {
                    (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                    _ => None,
                }),
                s.resumed_fraction
                    .map_or("–".to_owned(), |f| format!("{:.2}%", f * 100.0)),
            );
        }
        if idle.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "\nMemory per idle TLS connection: (anonymous RSS holding N idle TLS connections, \
             each after a full handshake and one complete request − before) / N, on a fresh instance \
             (restarted after the keep-alive measurement, and again before the load). The \
             client keeps only the sockets. The RSS columns are VmRSS; shared memory (nginx's \
             TLS session cache) is not in the anonymous figure.\n"
        );
        let _ = writeln!(
            out,
            "| stack | idle TLS conns held | RSS before MiB | RSS with them MiB | bytes/conn | ×nginx |"
        );
        let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|");
        let nginx = self
            .stacks
            .get(&StackKind::Nginx)
            .and_then(|i| i.idle_tls_conns.as_ref())
            .and_then(|c| c.bytes_per_conn);
        for (kind, c) in idle {
            let _ = writeln!(
                out,
                "| {kind} | {}/{} | {:.1} | {:.1} | {} | {} |",
                c.held,
                c.requested,
                c.rss_before as f64 / MIB,
                c.rss_after as f64 / MIB,
                c.bytes_per_conn
                    .map_or("–".to_owned(), |b| format!("{b:.0}")),
                ratio_text(match (c.bytes_per_conn, nginx) {
                    (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                    _ => None,
                }),
            );
        }
    }

    /// Two panels: requests/s and proxy CPU per request, grouped by case, one bar per stack,
    /// min–max whiskers.
    pub fn svg(&self) -> String {
        let stacks: Vec<StackKind> = {
            let mut v: Vec<StackKind> = self.summaries.iter().map(|s| s.stack).collect();
            v.dedup();
            let mut seen = Vec::new();
            for k in v {
                if !seen.contains(&k) {
                    seen.push(k);
                }
            }
            seen
        };
        let cases: Vec<String> = {
            let mut seen: Vec<String> = Vec::new();
            for s in &self.summaries {
                if !seen.contains(&s.case) {
                    seen.push(s.case.clone());
                }
            }
            seen
        };
        let width = 960.0;
        let panel_h = 260.0;
        let top = 60.0;
        let gap = 70.0;
        let height = top + 2.0 * panel_h + gap + 50.0;
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            svg,
            r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="22" font-size="16" text-anchor="middle">ringway-bench: {} ({} round(s) × {} s, medians, whiskers min–max)</text>"#,
            width / 2.0,
            escape(&self.meta.finished),
            self.meta.rounds,
            self.meta.duration_s
        );
        for (i, stack) in stacks.iter().enumerate() {
            let x = 80.0 + i as f64 * 150.0;
            let _ = writeln!(
                svg,
                r#"<rect x="{x}" y="34" width="12" height="12" fill="{}"/><text x="{}" y="45">{}</text>"#,
                color(*stack),
                x + 16.0,
                stack
            );
        }
        let panels: [(&str, Metric); 2] = [
            ("requests/s", |s| s.rps),
            ("proxy CPU µs per request", |s| s.proxy_cpu_us),
        ];
        for (p, (title, get)) in panels.iter().enumerate() {
            let y0 = top + p as f64 * (panel_h + gap);
            let left = 70.0;
            let plot_w = width - left - 20.0;
            let plot_h = panel_h - 40.0;
            let max = self
                .summaries
                .iter()
                .filter_map(|s| get(s).map(|v| v.max))
                .fold(0.0f64, f64::max);
            let scale_max = nice_ceiling(max);
            let _ = writeln!(
                svg,
                r#"<text x="{left}" y="{}" font-size="14">{}</text>"#,
                y0 + 10.0,
                escape(title)
            );
            let base = y0 + 20.0 + plot_h;
            for t in 0..=4 {
                let value = scale_max * t as f64 / 4.0;
                let y = base - plot_h * t as f64 / 4.0;
                let _ = writeln!(
                    svg,
                    r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                    left + plot_w,
                    left - 6.0,
                    y + 4.0,
                    short_number(value)
                );
            }
            let group_w = plot_w / cases.len().max(1) as f64;
            let bar_w = (group_w * 0.8) / stacks.len().max(1) as f64;
            for (c, case) in cases.iter().enumerate() {
                let gx = left + c as f64 * group_w + group_w * 0.1;
                let _ = writeln!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                    gx + group_w * 0.4,
                    base + 16.0,
                    escape(case)
                );
                for (k, stack) in stacks.iter().enumerate() {
                    let Some(v) = self.find(case, *stack).and_then(get) else {
                        continue;
                    };
                    if scale_max <= 0.0 {
                        continue;
                    }
                    let x = gx + k as f64 * bar_w;
                    let h = plot_h * v.median / scale_max;
                    let _ = writeln!(
                        svg,
                        r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{} {}: {}</title></rect>"#,
                        base - h,
                        bar_w * 0.9,
                        color(*stack),
                        escape(case),
                        stack,
                        short_number(v.median)
                    );
                    let cx = x + bar_w * 0.45;
                    let y_min = base - plot_h * v.min / scale_max;
                    let y_max = base - plot_h * v.max / scale_max;
                    let _ = writeln!(
                        svg,
                        r##"<line x1="{cx:.1}" y1="{y_min:.1}" x2="{cx:.1}" y2="{y_max:.1}" stroke="#222"/>"##
                    );
                }
            }
            let _ = writeln!(
                svg,
                r##"<line x1="{left}" y1="{base:.1}" x2="{}" y2="{base:.1}" stroke="#222"/>"##,
                left + plot_w
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// Picks one figure out of a summary.
type Metric = fn(&Summary) -> Option<Spread>;

fn summarize(
    case: &str,
    kind: Kind,
    connections: usize,
    stack: StackKind,
    runs: &[RunResult],
) -> Summary {
    let mine: Vec<&RunResult> = runs
        .iter()
        .filter(|r| r.case == case && r.stack == stack)
        .collect();
    let of = |f: &dyn Fn(&RunResult) -> Option<f64>| {
        Spread::of(&mine.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
    };
    Summary {
        case: case.to_owned(),
        kind,
        connections,
        stack,
        rounds: mine.len(),
        rps: of(&|r| Some(r.rps)),
        p50_us: of(&|r| Some(r.p50_us as f64)),
        p99_us: of(&|r| Some(r.p99_us as f64)),
        p999_us: of(&|r| Some(r.p999_us as f64)),
        proxy_cpu_us: of(&|r| r.proxy_cpu_us),
        app_cpu_us: of(&|r| r.app_cpu_us),
        rss_load: of(&|r| r.rss_load.map(|v| v as f64)),
        rss_peak: of(&|r| r.rss_peak.map(|v| v as f64)),
        errors: mine.iter().map(|r| r.errors).sum(),
        rps_vs_nginx: None,
        p99_vs_nginx: None,
        cpu_vs_nginx: None,
        unserved: None,
        negotiated: {
            let mut seen: Vec<String> = Vec::new();
            for t in mine.iter().filter_map(|r| r.tls.as_ref()) {
                let n = t.negotiated();
                if !seen.contains(&n) {
                    seen.push(n);
                }
            }
            (!seen.is_empty()).then(|| seen.join(", "))
        },
        resumed_fraction: {
            let (h, r) = mine
                .iter()
                .filter_map(|r| r.tls.as_ref())
                .filter_map(|t| Some((t.handshakes?, t.resumed?)))
                .fold((0u64, 0u64), |(h, r), (a, b)| (h + a, r + b));
            (h > 0).then(|| r as f64 / h as f64)
        },
    }
}

fn ratio(a: Option<Spread>, b: Option<Spread>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b.median > 0.0 => Some(a.median / b.median),
        _ => None,
    }
}

/// The targets of the issue, judged on ringway's medians.
fn targets(report: &Report) -> Vec<Target> {
    let mut out = Vec::new();
    let rw = StackKind::Ringway;
    let nx = StackKind::Nginx;
    let summaries = &report.summaries;
    // The case of a kind to judge a per-kind target on: the most common connection count
    // among the non-hello cases (the default 100), else the first.
    let pick = |kind: Kind| -> Option<&Summary> {
        let of_kind: Vec<&Summary> = summaries
            .iter()
            .filter(|s| s.kind == kind && s.stack == rw)
            .collect();
        let main = summaries
            .iter()
            .find(|s| s.kind != Kind::Hello)
            .map(|s| s.connections);
        of_kind
            .iter()
            .find(|s| Some(s.connections) == main)
            .or(of_kind.first())
            .copied()
    };
    for (kind, limit) in [
        (Kind::Hello, 0.7),
        (Kind::Post16k, 0.7),
        (Kind::Bytes64k, 1.0),
        (Kind::Static1k, 0.8),
        (Kind::Static64k, 1.0),
        (Kind::Static1m, 1.0),
    ] {
        let target = format!("proxy CPU/request ≤ {limit}× nginx's ({})", kind.name());
        if let Some(missed) = pick(kind).and_then(|s| unserved(&target, s)) {
            out.push(missed);
            continue;
        }
        match pick(kind).and_then(|s| {
            let n = report.find(&s.case, nx)?;
            Some((s, n, s.cpu_vs_nginx?))
        }) {
            Some((s, n, r)) => out.push(Target {
                target: format!("{target}, {}", s.case),
                measured: format!(
                    "{:.1} vs {:.1} µs = {r:.2}×{}",
                    s.proxy_cpu_us.map_or(0.0, |v| v.median),
                    n.proxy_cpu_us.map_or(0.0, |v| v.median),
                    errors_note(&[s, n])
                ),
                met: clean(r <= limit, &[s, n]),
                no_target: false,
            }),
            None => out.push(not_measured(target)),
        }
    }
    for kind in [Kind::TlsHello, Kind::Tls64k] {
        let target = format!(
            "proxy CPU per keep-alive TLS request ≤ 1.0× nginx's ({})",
            kind.name()
        );
        if let Some(missed) = pick(kind).and_then(|s| unserved(&target, s)) {
            out.push(missed);
            continue;
        }
        match pick(kind).and_then(|s| {
            let n = report.find(&s.case, nx)?;
            Some((s, n, s.cpu_vs_nginx?))
        }) {
            Some((s, n, r)) => out.push(Target {
                target: format!("{target}, {}", s.case),
                measured: format!(
                    "{:.1} vs {:.1} µs = {r:.2}×{}",
                    s.proxy_cpu_us.map_or(0.0, |v| v.median),
                    n.proxy_cpu_us.map_or(0.0, |v| v.median),
                    errors_note(&[s, n])
                ),
                met: clean(r <= 1.0, &[s, n]),
                no_target: false,
            }),
            None => out.push(not_measured(target)),
        }
    }
    out.push(h2_cpu(report, pick(Kind::TlsH2Hello)));
    let target = "full TLS handshakes per proxy CPU-second ≥ nginx's".to_owned();
    let full = pick(Kind::TlsHandshakeFull).and_then(|s| {
        let n = report.find(&s.case, nx)?;
        Some((s, n, s.per_cpu_second()?, n.per_cpu_second()?))
    });
    match full {
        Some((s, n, a, b)) if b > 0.0 => out.push(Target {
            target: format!("{target}, {}", s.case),
            measured: format!(
                "{a:.0} vs {b:.0} handshakes/CPU-s = {:.2}×{}",
                a / b,
                errors_note(&[s, n])
            ),
            met: clean(a >= b, &[s, n]),
            no_target: false,
        }),
        _ => out.push(not_measured(target)),
    }
    let hello: Vec<&Summary> = summaries
        .iter()
        .filter(|s| s.kind == Kind::Hello && s.stack == rw)
        .collect();
    if hello.is_empty() {
        out.push(not_measured(
            "p99 latency ≤ nginx's at every connection count".into(),
        ));
    }
    for s in &hello {
        out.push(p99_target(report, s));
    }
    // The static files: p99 at each file size (the case at the main connection count);
    // issue 9's targets are for files as they are, not compressed.
    for kind in Kind::STATIC.into_iter().filter(|k| !k.is_compressed()) {
        let Some(s) = pick(kind) else {
            out.push(not_measured(format!(
                "p99 latency ≤ nginx's ({})",
                kind.name()
            )));
            continue;
        };
        out.push(p99_target(report, s));
    }
    // uWSGI alone serves no files and no TLS: the static and TLS cases have no baseline here.
    for s in summaries.iter().filter(|s| {
        s.stack == rw && !s.kind.is_static() && !s.kind.is_tls() && !s.kind.is_compressed()
    }) {
        // uWSGI alone closes every connection (the load reconnects per request), so this is
        // a floor the proxy must not fall under, not a comparison of equals.
        let target = format!(
            "req/s ≥ 0.95× uWSGI alone's (it makes clients reconnect per request), {}",
            s.case
        );
        let alone = report.find(&s.case, StackKind::Uwsgi);
        match (s.rps, alone.and_then(|u| Some((u, u.rps?)))) {
            (Some(a), Some((u, b))) if b.median > 0.0 => {
                let r = a.median / b.median;
                out.push(Target {
                    target,
                    measured: format!(
                        "{:.0} vs {:.0} req/s = {r:.2}×{}",
                        a.median,
                        b.median,
                        errors_note(&[s, u])
                    ),
                    met: clean(r >= 0.95, &[s, u]),
                    no_target: false,
                });
            }
            _ => out.push(not_measured(target)),
        }
    }
    // With the probes loaded, their programs and maps (and what loading them left) count too.
    let (limit_mib, probes) = if report.meta.ringway_probes {
        (8, ", probes loaded")
    } else {
        (4, "")
    };
    let target = format!("idle RSS ≤ {limit_mib} MiB{probes}");
    let info = report.stacks.get(&rw);
    match info {
        Some(i) => out.push(Target {
            target,
            measured: format!("{:.2} MiB", i.idle_rss as f64 / MIB),
            met: Some(i.idle_rss <= limit_mib * 1024 * 1024),
            no_target: false,
        }),
        None => out.push(not_measured(target)),
    }
    let target = "RSS 30 s after the load within 2 MiB of idle".to_owned();
    match info.and_then(|i| Some((i.idle_rss, i.settled_rss?))) {
        Some((idle, settled)) => out.push(Target {
            target,
            measured: format!(
                "{:.2} MiB, idle {:.2} MiB",
                settled as f64 / MIB,
                idle as f64 / MIB
            ),
            met: Some(settled <= idle + 2 * 1024 * 1024),
            no_target: false,
        }),
        None => out.push(not_measured(target)),
    }
    let per_conn = |k: StackKind| {
        report
            .stacks
            .get(&k)
            .and_then(|i| i.idle_conns.as_ref())
            .and_then(|c| c.bytes_per_conn)
    };
    let target = "memory per idle keep-alive connection ≤ nginx's".to_owned();
    match (per_conn(rw), per_conn(nx)) {
        (Some(a), Some(b)) => out.push(Target {
            target,
            measured: format!("{a:.0} vs {b:.0} bytes{}", shown_ratio(a, b)),
            met: Some(a <= b),
            no_target: false,
        }),
        _ => out.push(not_measured(target)),
    }
    let tls_per_conn = |k: StackKind| {
        report
            .stacks
            .get(&k)
            .and_then(|i| i.idle_tls_conns.as_ref())
            .and_then(|c| c.bytes_per_conn)
    };
    let target = "memory per idle TLS connection, beside nginx's".to_owned();
    match (tls_per_conn(rw), tls_per_conn(nx)) {
        (Some(a), Some(b)) => out.push(Target {
            target,
            measured: format!("{a:.0} vs {b:.0} bytes{}", shown_ratio(a, b)),
            met: None,
            no_target: true,
        }),
        _ => out.push(not_measured(target)),
    }
    out.extend(access_log_cost(report));
    out.extend(granian_targets(report));
    let target = "proxy CPU/request at 10 connections within 15% of 100 (hello)".to_owned();
    let cpu_at = |c: usize| {
        let s = hello.iter().find(|s| s.connections == c)?;
        Some((*s, s.proxy_cpu_us?.median))
    };
    match (cpu_at(10), cpu_at(100)) {
        (Some((s10, few)), Some((s100, many))) if many > 0.0 => {
            let off = few / many - 1.0;
            out.push(Target {
                target,
                measured: format!(
                    "c10 {few:.1} vs c100 {many:.1} µs = {:+.0}%{}",
                    off * 100.0,
                    errors_note(&[s10, s100])
                ),
                met: clean(off.abs() <= 0.15, &[s10, s100]),
                no_target: false,
            });
        }
        _ => out.push(not_measured(target)),
    }
    out
}

/// ` = A/B×`, or nothing when `b` is 0 (no ratio to show).
fn shown_ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!(" = {:.2}×", a / b)
    } else {
        String::new()
    }
}

/// ringway's proxy CPU per HTTP/2 request beside nginx's, on `s`'s case: a figure, no target
/// yet (ringway serves each stream through its HTTP/1.1 pipeline over an in-memory pipe).
fn h2_cpu(report: &Report, s: Option<&Summary>) -> Target {
    let target = "proxy CPU per HTTP/2 request, beside nginx's".to_owned();
    let measured = s.and_then(|s| {
        let n = report.find(&s.case, StackKind::Nginx)?;
        Some((s, s.proxy_cpu_us?.median, n.proxy_cpu_us?.median))
    });
    match measured {
        Some((s, a, b)) => Target {
            target: format!("{target}, {}", s.case),
            measured: format!("{a:.1} vs {b:.1} µs{}", shown_ratio(a, b)),
            met: None,
            no_target: true,
        },
        None => not_measured(target),
    }
}

/// What the access log costs: ringway's CPU per request with the log on (`ringway-log`)
/// beside the same case without it, for every case both ran. A figure, not a target.
fn access_log_cost(report: &Report) -> Vec<Target> {
    report
        .summaries
        .iter()
        .filter(|s| s.stack == StackKind::RingwayLog)
        .filter_map(|with_log| {
            let without = report.find(&with_log.case, StackKind::Ringway)?;
            let (a, b) = (with_log.proxy_cpu_us?.median, without.proxy_cpu_us?.median);
            Some(Target {
                target: format!(
                    "access log cost: proxy CPU/request, log on vs off, {}",
                    with_log.case
                ),
                measured: format!(
                    "{a:.1} vs {b:.1} µs{}",
                    if b > 0.0 {
                        format!(" = {:+.1}%", (a / b - 1.0) * 100.0)
                    } else {
                        String::new()
                    }
                ),
                met: None,
                no_target: true,
            })
        })
        .collect()
}

/// The HTTP-upstream targets, per app case the Granian stacks ran: ringway → Granian's CPU
/// per request ≤ 0.7× nginx → Granian's and its req/s ≥ 1.2× nginx's; then how far each
/// proxy is from Granian alone (req/s, a figure without a target).
fn granian_targets(report: &Report) -> Vec<Target> {
    let (rw, nx) = (StackKind::RingwayGranian, StackKind::NginxGranian);
    let mut out = Vec::new();
    for s in report.summaries.iter().filter(|s| s.stack == rw) {
        let n = report.find(&s.case, nx);
        if let Some(missed) = unserved("Granian: proxy CPU/request ≤ 0.7× nginx's", s) {
            out.push(missed);
            out.extend(unserved("Granian: req/s ≥ 1.2× nginx's", s));
            continue;
        }
        let target = format!("Granian: proxy CPU/request ≤ 0.7× nginx's, {}", s.case);
        match (s.cpu_vs_nginx, n) {
            (Some(r), Some(n)) => out.push(Target {
                target,
                measured: format!(
                    "{:.1} vs {:.1} µs = {r:.2}×{}",
                    s.proxy_cpu_us.map_or(0.0, |v| v.median),
                    n.proxy_cpu_us.map_or(0.0, |v| v.median),
                    errors_note(&[s, n])
                ),
                met: clean(r <= 0.7, &[s, n]),
                no_target: false,
            }),
            _ => out.push(not_measured(target)),
        }
        let target = format!("Granian: req/s ≥ 1.2× nginx's, {}", s.case);
        match (s.rps_vs_nginx, n) {
            (Some(r), Some(n)) => out.push(Target {
                target,
                measured: format!(
                    "{:.0} vs {:.0} req/s = {r:.2}×{}",
                    s.rps.map_or(0.0, |v| v.median),
                    n.rps.map_or(0.0, |v| v.median),
                    errors_note(&[s, n])
                ),
                met: clean(r >= 1.2, &[s, n]),
                no_target: false,
            }),
            _ => out.push(not_measured(target)),
        }
    }
    let alone_cases = report
        .summaries
        .iter()
        .filter(|s| s.stack == StackKind::Granian && s.rps.is_some());
    for alone in alone_cases {
        let Some(limit) = alone.rps.map(|v| v.median).filter(|v| *v > 0.0) else {
            continue;
        };
        let figures: Vec<String> = [rw, nx]
            .into_iter()
            .filter_map(|k| {
                let rps = report.find(&alone.case, k)?.rps?.median;
                Some(format!("{k} {rps:.0} ({:.2}×)", rps / limit))
            })
            .collect();
        if figures.is_empty() {
            continue;
        }
        out.push(Target {
            target: format!("req/s beside Granian alone, {}", alone.case),
            measured: format!("{}; Granian alone {limit:.0}", figures.join(", ")),
            met: None,
            no_target: true,
        });
    }
    out
}

/// ringway's p99 at most nginx's, on `s`'s case.
fn p99_target(report: &Report, s: &Summary) -> Target {
    if let Some(missed) = unserved("p99 latency ≤ nginx's", s) {
        return missed;
    }
    let target = format!("p99 latency ≤ nginx's, {}", s.case);
    match (s.p99_vs_nginx, report.find(&s.case, StackKind::Nginx)) {
        (Some(r), Some(n)) => Target {
            target,
            measured: format!(
                "{:.2} vs {:.2} ms = {r:.2}×{}",
                s.p99_us.map_or(0.0, |v| v.median) / 1000.0,
                n.p99_us.map_or(0.0, |v| v.median) / 1000.0,
                errors_note(&[s, n])
            ),
            met: clean(r <= 1.0, &[s, n]),
            no_target: false,
        },
        _ => not_measured(target),
    }
}

/// A verdict on figures of runs that must have had no errors: a run with failed
/// connections, timeouts or answers other than 2xx and 3xx counted them as requests (and
/// left timed-out ones out of its latencies), so its figures meet nothing.
fn clean(met: bool, runs: &[&Summary]) -> Option<bool> {
    Some(met && runs.iter().all(|s| s.errors == 0))
}

/// ` (N errors in STACK's runs)` for each of `runs` that had some.
fn errors_note(runs: &[&Summary]) -> String {
    runs.iter()
        .filter(|s| s.errors > 0)
        .map(|s| format!(" ({} errors in {}'s runs)", s.errors, s.stack))
        .collect()
}

/// A target missed because ringway's stack `s` failed its probe for the case: a case it
/// cannot serve is no case left out (one its kind of stack is not made for, files in front
/// of Granian, is).
fn unserved(target: &str, s: &Summary) -> Option<Target> {
    let why = s.unserved.as_ref()?;
    if (s.kind.is_static() && !s.stack.serves_files())
        || (s.kind.is_compressed() && !s.stack.compresses())
    {
        return None;
    }
    Some(Target {
        target: format!("{target}, {}", s.case),
        measured: format!("{} did not serve it: {why}", s.stack),
        met: Some(false),
        no_target: false,
    })
}

fn not_measured(target: String) -> Target {
    Target {
        target,
        measured: "not measured in this run".into(),
        met: None,
        no_target: false,
    }
}

fn spread(s: Option<Spread>, div: f64, decimals: usize) -> String {
    match s {
        None => "–".to_owned(),
        Some(s) if (s.max - s.min).abs() < f64::EPSILON => {
            format!("{:.*}", decimals, s.median / div)
        }
        Some(s) => format!(
            "{:.*} ({:.*}–{:.*})",
            decimals,
            s.median / div,
            decimals,
            s.min / div,
            decimals,
            s.max / div
        ),
    }
}

fn ratio_text(r: Option<f64>) -> String {
    r.map_or("–".to_owned(), |r| format!("{r:.2}"))
}

fn color(stack: StackKind) -> &'static str {
    match stack {
        StackKind::Ringway => "#d9480f",
        StackKind::RingwayLog => "#f59f00",
        StackKind::Nginx => "#2b8a3e",
        StackKind::UwsgiHttp => "#1c7ed6",
        StackKind::Uwsgi => "#868e96",
        StackKind::RingwayGranian => "#e8590c",
        StackKind::NginxGranian => "#5c940d",
        StackKind::Granian => "#495057",
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// 1, 2 or 5 times a power of ten, at least `v`.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * p)
}

fn short_number(v: f64) -> String {
    if v == 0.0 {
        "0".to_owned()
    } else if v >= 10_000.0 && (v / 1000.0).fract() == 0.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 10_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The first line a tool prints for its version (stdout or stderr).
pub(crate) fn version(bin: &Path, args: &[&str]) -> String {
    Command::new(bin)
        .args(args)
        .output()
        .ok()
        .and_then(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines().find(|l| !l.trim().is_empty()).map(|l| {
                let l = l.trim().trim_start_matches("nginx version: ");
                // wrk: "wrk debian/4.1.0-3+b2 [epoll] Copyright ..."
                l.split(" [").next().unwrap_or(l).to_owned()
            })
        })
        .map(|v| {
            if v.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                let name = bin
                    .file_name()
                    .map_or(String::new(), |n| n.to_string_lossy().into_owned());
                let name = if name == "uwsgi" {
                    "uWSGI".to_owned()
                } else {
                    name
                };
                format!("{name} {v}")
            } else {
                v
            }
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Now, as `YYYY-MM-DD HH:MM UTC`.
pub fn now_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(
        case: &str,
        kind: Kind,
        c: usize,
        stack: StackKind,
        rps: f64,
        p99: f64,
        cpu: f64,
    ) -> Summary {
        let one = |v: f64| {
            Some(Spread {
                median: v,
                min: v,
                max: v,
            })
        };
        Summary {
            case: case.into(),
            kind,
            connections: c,
            stack,
            rounds: 1,
            rps: one(rps),
            p50_us: one(p99 / 2.0),
            p99_us: one(p99),
            p999_us: one(p99 * 2.0),
            proxy_cpu_us: if stack.has_proxy() { one(cpu) } else { None },
            app_cpu_us: one(30.0),
            rss_load: one(5.0 * MIB),
            rss_peak: one(6.0 * MIB),
            errors: 0,
            rps_vs_nginx: None,
            p99_vs_nginx: None,
            cpu_vs_nginx: None,
            unserved: None,
            negotiated: None,
            resumed_fraction: None,
        }
    }

    fn test_meta() -> Meta {
        Meta {
            started: String::new(),
            finished: String::new(),
            loadavg_start: String::new(),
            loadavg_end: String::new(),
            command: "test".into(),
            kernel: String::new(),
            cpu: String::new(),
            cpus: 2,
            versions: BTreeMap::new(),
            rounds: 1,
            duration_s: 1,
            app: "raw".into(),
            ringway_workers: 2,
            ringway_probes: false,
            uwsgi_workers: 2,
            wrk_threads: 1,
            pinned: false,
            idle_conns: 10,
            handshake_clients: None,
        }
    }

    /// Fills the ×nginx ratios as [`Report::build`] does.
    fn with_ratios(mut summaries: Vec<Summary>) -> Vec<Summary> {
        for i in 0..summaries.len() {
            let reference = summaries[i].stack.reference();
            let nginx = summaries
                .iter()
                .find(|n| n.case == summaries[i].case && n.stack == reference)
                .cloned()
                .expect("nginx row");
            summaries[i].rps_vs_nginx = ratio(summaries[i].rps, nginx.rps);
            summaries[i].p99_vs_nginx = ratio(summaries[i].p99_us, nginx.p99_us);
            summaries[i].cpu_vs_nginx = ratio(summaries[i].proxy_cpu_us, nginx.proxy_cpu_us);
        }
        summaries
    }

    #[test]
    fn granian_targets_compare_with_nginx_in_front_of_granian() {
        use StackKind::{Granian, NginxGranian, RingwayGranian};
        let summaries = with_ratios(vec![
            summary(
                "hello-c100",
                Kind::Hello,
                100,
                RingwayGranian,
                60000.0,
                2000.0,
                12.0,
            ),
            summary(
                "hello-c100",
                Kind::Hello,
                100,
                NginxGranian,
                40000.0,
                3000.0,
                20.0,
            ),
            summary(
                "hello-c100",
                Kind::Hello,
                100,
                Granian,
                80000.0,
                1500.0,
                0.0,
            ),
            summary(
                "64k-c100",
                Kind::Bytes64k,
                100,
                RingwayGranian,
                30000.0,
                4000.0,
                30.0,
            ),
            summary(
                "64k-c100",
                Kind::Bytes64k,
                100,
                NginxGranian,
                28000.0,
                4000.0,
                35.0,
            ),
        ]);
        let report = Report {
            meta: test_meta(),
            stacks: BTreeMap::new(),
            summaries,
            targets: Vec::new(),
            runs: Vec::new(),
        };
        let targets = granian_targets(&report);
        let find = |name: &str| {
            targets
                .iter()
                .find(|t| t.target == name)
                .unwrap_or_else(|| panic!("no target {name:?} in {targets:?}"))
        };
        let cpu = find("Granian: proxy CPU/request ≤ 0.7× nginx's, hello-c100");
        assert_eq!(cpu.met, Some(true), "12 / 20 = 0.6");
        assert_eq!(cpu.measured, "12.0 vs 20.0 µs = 0.60×");
        let rps = find("Granian: req/s ≥ 1.2× nginx's, hello-c100");
        assert_eq!(rps.met, Some(true), "60k / 40k = 1.5");
        assert_eq!(
            find("Granian: proxy CPU/request ≤ 0.7× nginx's, 64k-c100").met,
            Some(false),
            "30 / 35 = 0.86"
        );
        assert_eq!(
            find("Granian: req/s ≥ 1.2× nginx's, 64k-c100").met,
            Some(false)
        );
        let alone = find("req/s beside Granian alone, hello-c100");
        assert!(alone.no_target);
        assert_eq!(
            alone.measured,
            "ringway-granian 60000 (0.75×), nginx-granian 40000 (0.50×); Granian alone 80000"
        );
        assert!(
            targets
                .iter()
                .all(|t| !t.target.contains("Granian alone, 64k")),
            "no Granian-alone row without Granian alone's figure"
        );
    }

    #[test]
    fn tls_targets_and_the_tls_section() {
        use StackKind::{Nginx, Ringway};
        let tls = |case: &str, kind: Kind, stack: StackKind, cpu: f64| {
            let c = match kind {
                _ if kind.is_handshake() => 16,
                Kind::TlsH2Hello => 10,
                _ => 100,
            };
            let mut s = summary(case, kind, c, stack, 1000.0, 1000.0, cpu);
            let alpn = kind.alpn().unwrap_or("?");
            s.negotiated = Some(format!("TLSv1.3 TLS_AES_128_GCM_SHA256 X25519 {alpn}"));
            if kind.is_handshake() {
                let resumed = kind == Kind::TlsHandshakeResumed;
                s.resumed_fraction = Some(if resumed { 1.0 } else { 0.0 });
            }
            s
        };
        let full = "tls-handshake-full";
        let resumed = "tls-handshake-resumed";
        let summaries = with_ratios(vec![
            tls("tls-hello-c100", Kind::TlsHello, Ringway, 30.0),
            tls("tls-hello-c100", Kind::TlsHello, Nginx, 40.0),
            tls("tls-64k-c100", Kind::Tls64k, Ringway, 120.0),
            tls("tls-64k-c100", Kind::Tls64k, Nginx, 100.0),
            tls("tls-h2-hello-c10", Kind::TlsH2Hello, Ringway, 45.0),
            tls("tls-h2-hello-c10", Kind::TlsH2Hello, Nginx, 30.0),
            tls(full, Kind::TlsHandshakeFull, Ringway, 400.0),
            tls(full, Kind::TlsHandshakeFull, Nginx, 800.0),
            tls(resumed, Kind::TlsHandshakeResumed, Ringway, 300.0),
            tls(resumed, Kind::TlsHandshakeResumed, Nginx, 600.0),
        ]);
        let info = |per: f64| StackInfo {
            processes: 1,
            idle_rss: 0,
            idle_conns: None,
            idle_tls_conns: Some(IdleConns {
                requested: 10,
                held: 10,
                rss_before: 0,
                rss_after: 0,
                anon_before: 0,
                anon_after: 0,
                bytes_per_conn: Some(per),
            }),
            end_rss: 0,
            settled_rss: None,
        };
        let mut stacks = BTreeMap::new();
        stacks.insert(Ringway, info(14000.0));
        stacks.insert(Nginx, info(16000.0));
        let mut report = Report {
            meta: test_meta(),
            stacks,
            summaries,
            targets: Vec::new(),
            runs: Vec::new(),
        };
        let targets = targets(&report);
        report.targets = targets.clone();
        let find = |prefix: &str| {
            targets
                .iter()
                .find(|t| t.target.starts_with(prefix))
                .unwrap_or_else(|| panic!("no target {prefix}: {targets:?}"))
        };
        let hello = find("proxy CPU per keep-alive TLS request ≤ 1.0× nginx's (tls-hello)");
        assert_eq!(hello.met, Some(true));
        assert!(hello.target.ends_with("tls-hello-c100"), "{}", hello.target);
        let big = find("proxy CPU per keep-alive TLS request ≤ 1.0× nginx's (tls-64k)");
        assert_eq!(big.met, Some(false));
        let h2 = find("proxy CPU per HTTP/2 request, beside nginx's");
        assert_eq!(
            (h2.target.as_str(), h2.measured.as_str()),
            (
                "proxy CPU per HTTP/2 request, beside nginx's, tls-h2-hello-c10",
                "45.0 vs 30.0 µs = 1.50×"
            )
        );
        assert_eq!((h2.met, h2.no_target), (None, true));
        let handshakes = find("full TLS handshakes per proxy CPU-second");
        assert_eq!(handshakes.met, Some(true));
        assert_eq!(handshakes.measured, "2500 vs 1250 handshakes/CPU-s = 2.00×");
        let memory = find("memory per idle TLS connection");
        assert_eq!((memory.met, memory.no_target), (None, true));
        assert!(
            targets.iter().all(|t| !t.target.starts_with(
                "req/s ≥ 0.95× uWSGI alone's (it makes clients reconnect per request), tls"
            )),
            "TLS cases have no uWSGI-alone baseline"
        );
        let md = report.markdown();
        assert!(md.contains("### TLS (ringway vs nginx)"), "{md}");
        let row =
            "| tls-handshake-resumed | ringway | TLSv1.3 TLS_AES_128_GCM_SHA256 X25519 http/1.1 |";
        assert!(md.contains(row), "{md}");
        let row = "| tls-h2-hello-c10 | nginx | TLSv1.3 TLS_AES_128_GCM_SHA256 X25519 h2 | 1000 |";
        assert!(md.contains(row), "{md}");
        assert!(
            md.contains("| proxy CPU per HTTP/2 request, beside nginx's, tls-h2-hello-c10 | 45.0 vs 30.0 µs = 1.50× | reported (no target) |"),
            "{md}"
        );
        assert!(md.contains("| 100.00% |"), "{md}");
        assert!(md.contains("| ringway | 10/10 |"), "{md}");
        assert!(md.contains("reported (no target)"), "{md}");
    }

    #[test]
    fn targets_are_judged_on_the_medians() {
        use StackKind::{Nginx, Ringway, RingwayLog, Uwsgi};
        let mut summaries = vec![
            summary("hello-c10", Kind::Hello, 10, Ringway, 990.0, 900.0, 20.0),
            summary("hello-c10", Kind::Hello, 10, RingwayLog, 980.0, 910.0, 22.0),
            summary("hello-c10", Kind::Hello, 10, Nginx, 900.0, 1000.0, 50.0),
            summary("hello-c10", Kind::Hello, 10, Uwsgi, 1000.0, 800.0, 0.0),
            summary(
                "hello-c1000",
                Kind::Hello,
                1000,
                Ringway,
                900.0,
                2000.0,
                30.0,
            ),
            summary("hello-c1000", Kind::Hello, 1000, Nginx, 900.0, 1000.0, 50.0),
            summary(
                "post16k-c100",
                Kind::Post16k,
                100,
                Ringway,
                500.0,
                900.0,
                40.0,
            ),
            summary(
                "post16k-c100",
                Kind::Post16k,
                100,
                Nginx,
                500.0,
                1000.0,
                50.0,
            ),
            summary(
                "static1k-c100",
                Kind::Static1k,
                100,
                Ringway,
                900.0,
                900.0,
                35.0,
            ),
            summary(
                "static1k-c100",
                Kind::Static1k,
                100,
                Nginx,
                800.0,
                1000.0,
                50.0,
            ),
            summary(
                "static64k-c100",
                Kind::Static64k,
                100,
                Ringway,
                700.0,
                1100.0,
                55.0,
            ),
            summary(
                "static64k-c100",
                Kind::Static64k,
                100,
                Nginx,
                800.0,
                1000.0,
                50.0,
            ),
        ];
        let mut unserved = summary("static1k-c100", Kind::Static1k, 100, Uwsgi, 0.0, 0.0, 0.0);
        unserved.rps = None;
        unserved.unserved = Some("static files: this stack runs the app only".into());
        summaries.push(unserved);
        for i in 0..summaries.len() {
            let nginx = summaries
                .iter()
                .find(|n| n.case == summaries[i].case && n.stack == Nginx)
                .cloned()
                .expect("nginx row");
            summaries[i].p99_vs_nginx = ratio(summaries[i].p99_us, nginx.p99_us);
            summaries[i].cpu_vs_nginx = ratio(summaries[i].proxy_cpu_us, nginx.proxy_cpu_us);
        }
        let info = |idle_rss: u64, per: f64| StackInfo {
            processes: 1,
            idle_rss,
            idle_conns: Some(IdleConns {
                requested: 10,
                held: 10,
                rss_before: 0,
                rss_after: 0,
                anon_before: 0,
                anon_after: 0,
                bytes_per_conn: Some(per),
            }),
            idle_tls_conns: None,
            end_rss: 0,
            // 1.5 MiB over idle.
            settled_rss: Some(idle_rss + 3 * 512 * 1024),
        };
        let mut stacks = BTreeMap::new();
        stacks.insert(Ringway, info(3 * 1024 * 1024, 500.0));
        stacks.insert(Nginx, info(20 * 1024 * 1024, 700.0));
        let report = Report {
            meta: test_meta(),
            stacks,
            summaries,
            targets: Vec::new(),
            runs: Vec::new(),
        };
        let verdicts: Vec<(String, Option<bool>)> = targets(&report)
            .into_iter()
            .map(|t| (t.target, t.met))
            .collect();
        let log_cost: Vec<Target> = targets(&report)
            .into_iter()
            .filter(|t| t.target.starts_with("access log cost"))
            .collect();
        assert_eq!(log_cost.len(), 1, "one case ran with and without the log");
        assert_eq!(
            log_cost[0].target,
            "access log cost: proxy CPU/request, log on vs off, hello-c10"
        );
        assert_eq!(log_cost[0].measured, "22.0 vs 20.0 µs = +10.0%");
        assert!(log_cost[0].no_target && log_cost[0].met.is_none());
        let verdict = |prefix: &str| {
            verdicts
                .iter()
                .find(|(t, _)| t.starts_with(prefix))
                .map(|(_, m)| *m)
                .unwrap_or_else(|| panic!("no target {prefix}: {verdicts:?}"))
        };
        assert_eq!(
            verdict("proxy CPU/request ≤ 0.7× nginx's (hello)"),
            Some(true)
        );
        // 40 / 50 = 0.8×.
        assert_eq!(
            verdict("proxy CPU/request ≤ 0.7× nginx's (post16k)"),
            Some(false)
        );
        assert_eq!(verdict("proxy CPU/request ≤ 1× nginx's (64k)"), None);
        assert_eq!(verdict("p99 latency ≤ nginx's, hello-c10"), Some(true));
        assert_eq!(verdict("p99 latency ≤ nginx's, hello-c1000"), Some(false));
        assert_eq!(
            verdict(
                "req/s ≥ 0.95× uWSGI alone's (it makes clients reconnect per request), hello-c10"
            ),
            Some(true)
        );
        assert_eq!(
            verdict(
                "req/s ≥ 0.95× uWSGI alone's (it makes clients reconnect per request), hello-c1000"
            ),
            None
        );
        assert_eq!(verdict("idle RSS ≤ 4 MiB"), Some(true));
        assert_eq!(verdict("RSS 30 s after the load"), Some(true));
        assert_eq!(verdict("memory per idle"), Some(true));
        // No hello case ran at 100 connections.
        assert_eq!(
            verdict("proxy CPU/request at 10 connections within 15% of 100"),
            None
        );
        // 35 / 50 = 0.7× ≤ 0.8×; 55 / 50 = 1.1× > 1×.
        assert_eq!(
            verdict("proxy CPU/request ≤ 0.8× nginx's (static1k), static1k-c100"),
            Some(true)
        );
        assert_eq!(
            verdict("proxy CPU/request ≤ 1× nginx's (static64k), static64k-c100"),
            Some(false)
        );
        assert_eq!(verdict("proxy CPU/request ≤ 1× nginx's (static1m)"), None);
        assert_eq!(verdict("p99 latency ≤ nginx's, static1k-c100"), Some(true));
        assert_eq!(
            verdict("p99 latency ≤ nginx's, static64k-c100"),
            Some(false)
        );
        assert_eq!(verdict("p99 latency ≤ nginx's (static1m)"), None);
        assert!(
            !verdicts.iter().any(|(t, _)| t.starts_with(
                "req/s ≥ 0.95× uWSGI alone's (it makes clients reconnect per request), static"
            )),
            "{verdicts:?}"
        );
        let md = report.markdown();
        assert!(md.contains("| hello-c10 | ringway | 990 |"), "{md}");
        assert!(
            md.contains("| static1k-c100 | uwsgi | not served: static files"),
            "{md}"
        );
        assert!(md.contains("sendfile on; tcp_nopush on;"), "{md}");
    }

    /// A run with errors meets nothing, and a case ringway failed to serve is a target
    /// missed, not one left out.
    #[test]
    fn runs_with_errors_and_cases_ringway_cannot_serve_miss_their_targets() {
        use StackKind::{Nginx, Ringway};
        let mut with_errors = summary("hello-c100", Kind::Hello, 100, Ringway, 990.0, 900.0, 20.0);
        with_errors.errors = 12;
        let nginx = summary("hello-c100", Kind::Hello, 100, Nginx, 900.0, 1000.0, 50.0);
        with_errors.p99_vs_nginx = ratio(with_errors.p99_us, nginx.p99_us);
        with_errors.cpu_vs_nginx = ratio(with_errors.proxy_cpu_us, nginx.proxy_cpu_us);
        let mut failed = summary("static1k-c100", Kind::Static1k, 100, Ringway, 0.0, 0.0, 0.0);
        failed.rps = None;
        failed.proxy_cpu_us = None;
        failed.unserved = Some("connection refused".into());
        let static_nginx = summary(
            "static1k-c100",
            Kind::Static1k,
            100,
            Nginx,
            800.0,
            1000.0,
            50.0,
        );
        let report = Report {
            meta: test_meta(),
            stacks: BTreeMap::new(),
            summaries: vec![with_errors, nginx, failed, static_nginx],
            targets: Vec::new(),
            runs: Vec::new(),
        };
        let all = targets(&report);
        let find = |prefix: &str| {
            all.iter()
                .find(|t| t.target.starts_with(prefix))
                .unwrap_or_else(|| panic!("no target {prefix}: {all:?}"))
        };
        // 20 / 50 = 0.4× would meet 0.7×, but 12 of the requests failed.
        let cpu = find("proxy CPU/request ≤ 0.7× nginx's (hello)");
        assert_eq!(cpu.met, Some(false), "{cpu:?}");
        assert!(
            cpu.measured.ends_with("(12 errors in ringway's runs)"),
            "{cpu:?}"
        );
        assert_eq!(find("p99 latency ≤ nginx's, hello-c100").met, Some(false));
        let cpu = find("proxy CPU/request ≤ 0.8× nginx's (static1k), static1k-c100");
        assert_eq!(cpu.met, Some(false), "{cpu:?}");
        assert!(cpu.measured.contains("connection refused"), "{cpu:?}");
        let p99 = find("p99 latency ≤ nginx's, static1k-c100");
        assert_eq!(p99.met, Some(false), "{p99:?}");
        // A case the kind of stack is not made for (files in front of Granian) is no
        // failure to serve.
        let mut granian = summary(
            "static1k-c100",
            Kind::Static1k,
            100,
            StackKind::RingwayGranian,
            0.0,
            0.0,
            0.0,
        );
        granian.unserved = Some("static files: this stack runs the app only".into());
        assert!(unserved("Granian: req/s ≥ 1.2× nginx's", &granian).is_none());
    }

    #[test]
    fn spread_and_scale() {
        let s = Spread::of(&[3.0, 1.0, 2.0, 10.0]).expect("spread");
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 10.0));
        assert!(Spread::of(&[]).is_none());
        assert_eq!(nice_ceiling(7300.0), 10000.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert!(now_utc().ends_with("UTC"));
    }
}
