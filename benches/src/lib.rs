//! ringway-bench: the side-by-side load harness.
//!
//! One uWSGI app server (2 workers on a unix socket, plus an `--http-socket` for the
//! no-proxy baseline) serves every stack: ringway, nginx (`uwsgi_pass`, tuned buffers),
//! uWSGI's own `--http` router, and uWSGI alone. Each case is run at each stack in turn
//! (A B C D A B C D ...) for several rounds; wrk drives the load; the harness reads the
//! proxy's CPU time and RSS from /proc. The static cases are files ringway and nginx serve
//! themselves (the uWSGI stacks serve none). The TLS cases (ringway and nginx only, the same
//! ECDSA P-256 certificate made for the run) are driven by h2load for keep-alive requests
//! and by the harness's own rustls client for a handshake per request ([`tls`]).
//! [`run`] returns the [`report::Report`] and writes it as JSON, markdown and SVG. The
//! [`buffering`] suite is apart: ringway and nginx under slow and hostile clients.

pub mod buffering;
pub mod client;
pub mod h2load;
pub mod http2;
pub mod load;
pub mod proc;
pub mod report;
pub mod stacks;
pub mod sys;
pub mod tls;

use std::collections::BTreeMap;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use h2load::H2load;
use load::{Case, CaseSpec, Kind, Wrk, WrkOutput};
use report::{Generator, IdleConns, Report, Resident, RunResult, StackInfo};
use stacks::{App, AppServer, Stack, StackKind, Tools};
use tls::HandshakeLoad;

/// How long the stacks are left without requests before their idle RSS is read: two of
/// ringway's 5 s housekeeping windows and some, so that one whole window without requests
/// has ended (a quiet ringway gives memory back then: its workers' pooled buffers, freed
/// heap pages, the mapped pages of code the probes ran) and the heap its workers freed in
/// that window was trimmed at the next.
pub const IDLE_AFTER: Duration = Duration::from_secs(12);

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub ringway: PathBuf,
    pub nginx: PathBuf,
    pub venv: PathBuf,
    pub wrk: PathBuf,
    /// h2load, for the keep-alive TLS cases.
    pub h2load: PathBuf,
    pub app: App,
    /// "raw" or "flask" (for the report).
    pub app_name: String,
    pub stacks: Vec<StackKind>,
    pub cases: Vec<Case>,
    pub rounds: usize,
    /// Seconds per run (wrk takes whole seconds).
    pub duration_s: u64,
    pub ringway_workers: usize,
    /// ringway with its metrics endpoint and eBPF probes.
    pub ringway_probes: bool,
    pub uwsgi_workers: usize,
    /// Threads of wrk and of h2load.
    pub wrk_threads: usize,
    /// Load generator on one CPU, servers on the others.
    pub pin: bool,
    /// Idle keep-alive connections opened for the memory measurement (0: skip it).
    pub idle_conns: usize,
    /// How long after the last run the proxies' RSS is read again (it should be back near
    /// idle by then).
    pub settle: Duration,
    pub out_dir: PathBuf,
    /// The command line, for the report.
    pub command: String,
    /// Set from outside (Ctrl-C) to stop between runs.
    pub interrupt: Arc<AtomicBool>,
}

impl Config {
    /// The cases for `kinds`: hello at each of `sweep`, the others at `connections`, the
    /// handshake cases with [`DEFAULT_HANDSHAKE_CLIENTS`] client threads.
    pub fn cases(kinds: &[Kind], sweep: &[usize], connections: usize) -> Vec<Case> {
        let specs: Vec<CaseSpec> = kinds
            .iter()
            .map(|&kind| CaseSpec {
                kind,
                connections: None,
            })
            .collect();
        Config::case_list(&specs, sweep, connections, DEFAULT_HANDSHAKE_CLIENTS)
    }

    /// The cases for `specs`: a pinned connection count as given, else hello at each of
    /// `sweep`, the handshake cases with `handshake_clients` client threads, the HTTP/2 case
    /// at `connections` / [`load::H2_STREAMS`] (as many requests in flight as the others),
    /// the others at `connections`. A case given twice is run once.
    pub fn case_list(
        specs: &[CaseSpec],
        sweep: &[usize],
        connections: usize,
        handshake_clients: usize,
    ) -> Vec<Case> {
        let mut cases: Vec<Case> = Vec::new();
        for spec in specs {
            let counts: Vec<usize> = match spec.connections {
                Some(c) => vec![c],
                None if spec.kind == Kind::Hello => sweep.to_vec(),
                None if spec.kind.is_handshake() => vec![handshake_clients],
                None if spec.kind.is_h2() => vec![connections.div_ceil(load::H2_STREAMS)],
                None => vec![connections],
            };
            for connections in counts {
                let case = Case {
                    kind: spec.kind,
                    connections,
                };
                if !cases.contains(&case) {
                    cases.push(case);
                }
            }
        }
        cases
    }

    /// Whether any case is served over TLS.
    pub fn has_tls(&self) -> bool {
        self.cases.iter().any(|c| c.kind.is_tls())
    }
}

/// Client threads of the handshake cases, each in a connect–handshake–request–close loop:
/// enough to keep both servers' workers busy on 2 CPUs, few enough that the client (which
/// shares the machine) does not starve them.
pub const DEFAULT_HANDSHAKE_CLIENTS: usize = 16;

/// Whether `kind` is run at `stack`: the TLS cases compare ringway and nginx only.
pub fn runs_at(kind: Kind, stack: StackKind) -> bool {
    !kind.is_tls() || stack.serves_tls()
}

const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Why a uWSGI stack is not measured on the static cases.
const NO_FILES: &str = "static files: this stack runs the app only (no static route)";
/// Why a stack is not measured on the compressed case.
const NO_GZIP: &str = "compression: this stack sends the app's answers as they are";
/// How often RSS is sampled during a run.
/// The wait after the load the RSS target is set for ("RSS 30 s after the load").
const SETTLE_TARGET: Duration = Duration::from_secs(30);
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// Idle connections are opened in batches of this many concurrent requests (uWSGI's two
/// workers behind a 1024 backlog).
const IDLE_BATCH: usize = 32;

/// Runs the whole benchmark and writes the report under `config.out_dir`.
pub fn run(config: &Config) -> Result<Report> {
    let nofile = sys::raise_nofile()?;
    let needed = config.idle_conns
        + 2 * config
            .cases
            .iter()
            .map(|c| c.connections)
            .max()
            .unwrap_or(0)
        + 256;
    if (nofile as usize) < needed {
        bail!(
            "RLIMIT_NOFILE is {nofile}: {needed} file descriptors are needed; raise the hard limit \
             (ulimit -Hn) or use fewer --idle-conns / connections"
        );
    }
    let (server_cpus, wrk_cpus) = pinning(config.pin)?;
    let dir = sys::TempDir::new("ringway-bench")?;
    eprintln!("bench: scratch dir {}", dir.path().display());
    // One ECDSA P-256 certificate for the run, served by ringway and nginx alike.
    let cert = if config.has_tls() {
        Some(tls::make_certificate(dir.path())?)
    } else {
        None
    };
    // The static files: served by ringway and nginx whatever the cases, so that the stacks
    // are set up the same in every run.
    let files = dir.path().join("files");
    load::write_static_files(&files)?;
    let tools = Tools {
        ringway: config.ringway.clone(),
        nginx: config.nginx.clone(),
        venv: config.venv.clone(),
        ringway_workers: config.ringway_workers,
        ringway_probes: config.ringway_probes,
        uwsgi_workers: config.uwsgi_workers,
        server_cpus: server_cpus.clone(),
        nofile,
        max_body_size: None,
        static_dir: Some(files),
        tls: cert,
    };
    let keepalive_tls = config
        .cases
        .iter()
        .any(|c| c.kind.is_tls() && !c.kind.is_handshake());
    if keepalive_tls && !config.h2load.exists() {
        bail!(
            "h2load not found at {} (the keep-alive TLS cases run it): `apt-get install \
             nghttp2-client`, or set RINGWAY_H2LOAD, or leave the tls-hello, tls-64k and \
             tls-h2-hello cases out",
            config.h2load.display()
        );
    }
    for (what, path) in [
        ("ringway", &config.ringway),
        ("nginx", &config.nginx),
        ("wrk", &config.wrk),
        ("the app", &config.app.file),
    ] {
        if !path.exists() {
            bail!("{what} not found at {}", path.display());
        }
    }
    let uwsgi = config.venv.join("bin").join("uwsgi");
    if !uwsgi.exists() {
        bail!("uWSGI not found at {} (RINGWAY_VENV)", uwsgi.display());
    }
    if config.stacks.iter().any(|k| k.on_granian()) && !tools.granian().exists() {
        bail!(
            "Granian not found at {} (RINGWAY_VENV; tests/apps/requirements.txt lists it)",
            tools.granian().display()
        );
    }
    let generators = Generators {
        wrk: Wrk {
            bin: config.wrk.clone(),
            threads: config.wrk_threads,
            cpus: wrk_cpus.clone(),
        },
        h2load: H2load {
            bin: config.h2load.clone(),
            threads: config.wrk_threads,
            cpus: wrk_cpus,
        },
    };
    let started = (report::now_utc(), sys::loadavg());

    let app = AppServer::start(&tools, &config.app, dir.path())?;
    let mut running: Vec<Stack> = Vec::new();
    for &kind in &config.stacks {
        // A stack no case runs at (uWSGI's in a TLS-only run) is not started.
        if !config.cases.iter().any(|c| runs_at(c.kind, kind)) {
            continue;
        }
        running.push(Stack::start(kind, &tools, &config.app, &app, dir.path())?);
        eprintln!("bench: {kind} is up on {}", running[running.len() - 1].addr);
    }

    // Probes: each stack must answer each case right before it is measured. A stack that
    // cannot serve a case (uWSGI's router and a chunked body; the uWSGI stacks and the
    // static files, which only the proxies serve) is reported, not measured.
    let mut unserved: BTreeMap<(String, StackKind), String> = BTreeMap::new();
    for stack in &running {
        for case in &config.cases {
            if !runs_at(case.kind, stack.kind) {
                continue;
            }
            if case.kind.is_static() && !stack.kind.serves_files() {
                unserved.insert((case.id(), stack.kind), NO_FILES.to_owned());
                continue;
            }
            if case.kind.is_compressed() && !stack.kind.compresses() {
                unserved.insert((case.id(), stack.kind), NO_GZIP.to_owned());
                continue;
            }
            if let Err(err) = probe(stack, case.kind) {
                // Every stack serves a plain GET: if one does not, the setup is broken.
                if case.kind == Kind::Hello {
                    return Err(err).with_context(|| {
                        format!(
                            "{} failed the hello probe; its log:\n{}\nuWSGI's log:\n{}",
                            stack.kind,
                            stack.log_tail(),
                            app.log_tail()
                        )
                    });
                }
                eprintln!(
                    "bench: {} does not serve {}: {err:#}",
                    stack.kind,
                    case.kind.name()
                );
                unserved.insert((case.id(), stack.kind), format!("{err:#}"));
            }
        }
    }
    // Idle RSS and the idle keep-alive connections, then a fresh start: the heap the 5000
    // connections grew must not count as RSS under load. The idle TLS connections are
    // measured on a fresh instance too: memory the plain ones freed would otherwise be
    // reused and hide what the TLS ones cost.
    let mut infos: BTreeMap<StackKind, StackInfo> = BTreeMap::new();
    thread::sleep(IDLE_AFTER);
    let restart = |running: &mut Vec<Stack>, i: usize| -> Result<()> {
        let kind = running[i].kind;
        drop(running.remove(i));
        let fresh = Stack::start(kind, &tools, &config.app, &app, dir.path())?;
        for case in &config.cases {
            if runs_at(case.kind, kind) && !unserved.contains_key(&(case.id(), kind)) {
                probe(&fresh, case.kind)
                    .with_context(|| format!("{kind} restarted: {} probe", case.id()))?;
            }
        }
        running.insert(i, fresh);
        thread::sleep(Duration::from_millis(300));
        Ok(())
    };
    for i in 0..running.len() {
        let kind = running[i].kind;
        running[i].refresh_pids()?;
        let processes = running[i].proxy_pids.len();
        let idle_rss = sys::rss_sum(&running[i].proxy_pids);
        let mut info = StackInfo {
            processes,
            idle_rss,
            idle_conns: None,
            idle_tls_conns: None,
            end_rss: 0,
            settled_rss: None,
        };
        if kind.has_proxy() && config.idle_conns > 0 {
            info.idle_conns = Some(idle_connections(&mut running[i], config.idle_conns)?);
            restart(&mut running, i)?;
        }
        if config.has_tls() && kind.serves_tls() && config.idle_conns > 0 {
            info.idle_tls_conns = Some(idle_tls_connections(&mut running[i], config.idle_conns)?);
            restart(&mut running, i)?;
        }
        infos.insert(kind, info);
    }

    let mut results = Vec::new();
    let per_round = config
        .cases
        .iter()
        .map(|c| running.iter().filter(|s| runs_at(c.kind, s.kind)).count())
        .sum::<usize>();
    let total = config.rounds * per_round;
    let mut done = 0;
    let stacks = running.len();
    for round in 1..=config.rounds {
        for case in &config.cases {
            // Each round starts with another stack: none is always the first on a cold
            // machine, or always the one after another's heavy run.
            for k in 0..stacks {
                let stack = &mut running[(k + round - 1) % stacks];
                if config.interrupt.load(Ordering::SeqCst) {
                    bail!("interrupted");
                }
                if !runs_at(case.kind, stack.kind) {
                    continue;
                }
                done += 1;
                if unserved.contains_key(&(case.id(), stack.kind)) {
                    continue;
                }
                eprintln!(
                    "bench: [{done}/{total}] round {round} {} {}",
                    case.id(),
                    stack.kind
                );
                let result = measure(stack, &app, *case, round, &generators, config, dir.path())?;
                eprintln!(
                    "bench:     {:.0} req/s  p99 {:.2} ms  proxy {} µs/req  errors {}{}",
                    result.rps,
                    result.p99_us as f64 / 1000.0,
                    result
                        .proxy_cpu_us
                        .map_or("-".to_owned(), |v| format!("{v:.1}")),
                    result.errors,
                    result.tls.as_ref().map_or(String::new(), |t| format!(
                        "  {}{}",
                        t.negotiated(),
                        t.resumed_fraction()
                            .map_or(String::new(), |f| format!(", {:.1}% resumed", f * 100.0))
                    ))
                );
                results.push(result);
                thread::sleep(Duration::from_millis(200));
            }
        }
    }
    for stack in &mut running {
        stack.refresh_pids()?;
        if let Some(info) = infos.get_mut(&stack.kind) {
            info.end_rss = sys::rss_sum(&stack.proxy_pids);
        }
    }
    // Once the load is over, a quiet proxy gives back what the load grew (pools, heap). The
    // target is for 30 s after: a shorter settle measures nothing it can be judged on.
    if running.iter().any(|s| s.kind.has_proxy())
        && !results.is_empty()
        && config.settle >= SETTLE_TARGET
    {
        eprintln!(
            "bench: RSS again in {}s, once the load has settled",
            config.settle.as_secs()
        );
        thread::sleep(config.settle);
        for stack in &mut running {
            stack.refresh_pids()?;
            if let Some(info) = infos.get_mut(&stack.kind) {
                info.settled_rss = Some(sys::rss_sum(&stack.proxy_pids));
            }
        }
    }
    drop(running);
    drop(app);

    let report = Report::build(config, &tools, started, infos, results, unserved);
    report.write(&config.out_dir)?;
    Ok(report)
}

/// CPUs a child is restricted to; `None`: inherited.
type CpuSet = Option<Vec<usize>>;

/// With `pin`: the load generator on the first allowed CPU, servers on the others.
fn pinning(pin: bool) -> Result<(CpuSet, CpuSet)> {
    if !pin {
        return Ok((None, None));
    }
    let cpus = sys::allowed_cpus();
    if cpus.len() < 2 {
        bail!("--pin needs at least 2 CPUs, this process may use {cpus:?}");
    }
    Ok((Some(cpus[1..].to_vec()), Some(vec![cpus[0]])))
}

/// The load generators.
struct Generators {
    wrk: Wrk,
    h2load: H2load,
}

/// Sends a case's request to a stack and checks the answer. A TLS case is probed over TLS
/// with the harness's client ([`tls_probe`]).
fn probe(stack: &Stack, kind: Kind) -> Result<()> {
    let close = stack.kind == StackKind::Uwsgi;
    let answer = if kind.is_tls() {
        tls_probe(stack, kind)?
    } else {
        let mut conn = client::connect(stack.addr, IO_TIMEOUT)?;
        client::exchange(&mut conn, &load::raw_request(kind, stack.addr, close))?
    };
    if answer.status != 200 {
        bail!(
            "status {} ({})",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    let expected = kind.expected_body();
    if kind.is_compressed() {
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(answer.body.as_slice()),
            &mut plain,
        )
        .with_context(|| format!("not a gzip stream: {} bytes", answer.body.len()))?;
        if plain != expected {
            bail!(
                "the decoded answer is not the app's {} bytes",
                expected.len()
            );
        }
        return Ok(());
    }
    if matches!(kind, Kind::Post16k | Kind::Chunked) {
        let text = String::from_utf8_lossy(&answer.body);
        if let Some(got) = text
            .split("\"length\":")
            .nth(1)
            .and_then(|rest| rest.trim_start().split([',', '}']).next())
            .and_then(|n| n.trim().parse::<usize>().ok())
            .filter(|&n| n != load::BODY_LEN)
        {
            bail!(
                "the app received {got} of the {} body bytes",
                load::BODY_LEN
            );
        }
    }
    let ok = match kind.plain() {
        Kind::Post16k | Kind::Chunked => answer
            .body
            .windows(expected.len())
            .any(|w| w == expected.as_slice()),
        _ => answer.body == expected,
    };
    if !ok && kind.is_static() {
        let first_difference = answer
            .body
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(answer.body.len().min(expected.len()));
        bail!(
            "not the file's bytes: {} bytes where the file has {}, first difference at byte \
             {first_difference}",
            answer.body.len(),
            expected.len()
        );
    }
    if !ok {
        bail!(
            "unexpected body ({} bytes): {}",
            answer.body.len(),
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
        );
    }
    Ok(())
}

/// A TLS case's request over TLS, with the harness's rustls client: the resumed case's on a
/// second connection, which must resume; the HTTP/2 case's over HTTP/2 ([`http2`]). The
/// session must be TLS 1.3 with [`tls::CIPHER_SUITE`], on the case's application protocol.
fn tls_probe(stack: &Stack, kind: Kind) -> Result<client::Answer> {
    let addr = stack
        .tls_addr
        .with_context(|| format!("{} does not listen for TLS", stack.kind))?;
    let (answer, seen) = if kind.is_h2() {
        let config = tls::h2_client_config()?;
        let mut conn = tls::connect(addr, &config, IO_TIMEOUT)?;
        let seen = tls::seen(&conn.conn);
        // Checked before a word of HTTP/2 is sent: a server on HTTP/1.1 would not parse it.
        seen.expect_alpn("h2")?;
        let authority = format!("{}:{}", tls::SERVER_NAME, addr.port());
        (http2::get(&mut conn, &authority, kind.path())?, seen)
    } else {
        let request = load::raw_request(kind, addr, false);
        let resume = kind == Kind::TlsHandshakeResumed;
        let config = tls::client_config(resume)?;
        let (mut answer, seen) = tls::probe(addr, &config, &request, IO_TIMEOUT)?;
        if resume && answer.status == 200 {
            let (again, seen) = tls::probe(addr, &config, &request, IO_TIMEOUT)?;
            if seen.resumed != Some(1) {
                bail!("a second connection with the first one's session ticket did not resume");
            }
            answer = again;
        }
        (answer, seen)
    };
    if seen.cipher != tls::CIPHER_SUITE || seen.protocol != "TLSv1.3" {
        bail!(
            "negotiated {} instead of TLSv1.3 {}",
            seen.negotiated(),
            tls::CIPHER_SUITE
        );
    }
    if let Some(alpn) = kind.alpn() {
        seen.expect_alpn(alpn)?;
    }
    Ok(answer)
}

/// Opens `n` keep-alive connections, each after one complete request, and measures the
/// proxy's RSS before and after.
fn idle_connections(stack: &mut Stack, n: usize) -> Result<IdleConns> {
    let request = load::raw_request(Kind::Hello, stack.addr, false);
    stack.refresh_pids()?;
    let before = Resident::of(&stack.proxy_pids);
    let started = Instant::now();
    let mut conns: Vec<TcpStream> = Vec::with_capacity(n);
    let mut failures = 0usize;
    while conns.len() + failures < n {
        let batch = IDLE_BATCH.min(n - conns.len() - failures);
        let mut pending = Vec::with_capacity(batch);
        for _ in 0..batch {
            let mut s = client::connect(stack.addr, IO_TIMEOUT)
                .with_context(|| format!("idle connection {} to {}", conns.len(), stack.kind))?;
            use std::io::Write as _;
            s.write_all(&request).context("write request")?;
            pending.push(s);
        }
        for mut s in pending {
            match client::read_answer(&mut s) {
                Ok(a) if a.status == 200 && !a.closes => conns.push(s),
                _ => failures += 1,
            }
        }
    }
    thread::sleep(Duration::from_millis(500));
    stack.refresh_pids()?;
    let after = Resident::of(&stack.proxy_pids);
    let still_open = conns.iter().filter(|c| client::still_open(c)).count();
    let took = started.elapsed();
    drop(conns);
    thread::sleep(Duration::from_millis(300));
    let held = IdleConns::measured(n, still_open, before, after);
    eprintln!(
        "bench: {}: {still_open}/{n} idle keep-alive connections held ({} refused or closed), \
         RSS {:.1} → {:.1} MiB, {} bytes/connection ({:.1}s)",
        stack.kind,
        failures,
        before.rss as f64 / 1048576.0,
        after.rss as f64 / 1048576.0,
        held.bytes_per_conn
            .map_or("-".to_owned(), |v| format!("{v:.0}")),
        took.as_secs_f64()
    );
    Ok(held)
}

/// Opens `n` TLS connections, each after a full handshake and one complete request, and
/// measures the proxy's RSS before and after. The client keeps only the sockets (the
/// server cannot tell): its own TLS state would only cost the harness memory.
fn idle_tls_connections(stack: &mut Stack, n: usize) -> Result<IdleConns> {
    let addr = stack
        .tls_addr
        .with_context(|| format!("{} does not listen for TLS", stack.kind))?;
    let request = Arc::new(load::raw_request(Kind::TlsHello, addr, false));
    let config = tls::client_config(false)?;
    stack.refresh_pids()?;
    let before = Resident::of(&stack.proxy_pids);
    let started = Instant::now();
    // A handshake costs the client CPU: a few threads open them.
    let threads = 4.min(n.max(1));
    let openers: Vec<_> = (0..threads)
        .map(|t| {
            let (config, request) = (Arc::clone(&config), Arc::clone(&request));
            let share = n / threads + usize::from(t < n % threads);
            thread::spawn(move || {
                let mut held = Vec::with_capacity(share);
                let mut failures = 0usize;
                for _ in 0..share {
                    let opened = tls::connect(addr, &config, IO_TIMEOUT).and_then(|mut c| {
                        let answer = tls::exchange(&mut c, &request)?;
                        Ok((answer, c))
                    });
                    match opened {
                        Ok((a, c)) if a.status == 200 && !a.closes => {
                            held.push(c.into_parts().1);
                        }
                        _ => failures += 1,
                    }
                }
                (held, failures)
            })
        })
        .collect();
    let mut conns: Vec<TcpStream> = Vec::with_capacity(n);
    let mut failures = 0usize;
    for opener in openers {
        let (held, failed) = opener
            .join()
            .map_err(|_| anyhow::anyhow!("a TLS connection opener panicked"))?;
        conns.extend(held);
        failures += failed;
    }
    thread::sleep(Duration::from_millis(500));
    stack.refresh_pids()?;
    let after = Resident::of(&stack.proxy_pids);
    let still_open = conns.iter().filter(|c| client::still_open(c)).count();
    let took = started.elapsed();
    drop(conns);
    thread::sleep(Duration::from_millis(300));
    let held = IdleConns::measured(n, still_open, before, after);
    eprintln!(
        "bench: {}: {still_open}/{n} idle TLS connections held ({} refused or closed), \
         RSS {:.1} → {:.1} MiB, {} bytes/connection ({:.1}s)",
        stack.kind,
        failures,
        before.rss as f64 / 1048576.0,
        after.rss as f64 / 1048576.0,
        held.bytes_per_conn
            .map_or("-".to_owned(), |v| format!("{v:.0}")),
        took.as_secs_f64()
    );
    Ok(held)
}

/// One run of one case at one stack.
fn measure(
    stack: &mut Stack,
    app: &AppServer,
    case: Case,
    round: usize,
    generators: &Generators,
    config: &Config,
    dir: &std::path::Path,
) -> Result<RunResult> {
    stack.refresh_pids()?;
    let proxy_pids = stack.proxy_pids.clone();
    let app_pids = stack.app_pids(app)?;
    let close = stack.kind == StackKind::Uwsgi;
    let addr: SocketAddr = if case.kind.is_tls() {
        stack
            .tls_addr
            .with_context(|| format!("{} does not listen for TLS", stack.kind))?
    } else {
        stack.addr
    };
    // The handshake clients are made (and, to resume, given a ticket each) before the
    // CPU figures are read.
    let handshakes = if case.kind.is_handshake() {
        let mut request = load::raw_request(case.kind, addr, true);
        request.shrink_to_fit();
        Some(HandshakeLoad::new(
            addr,
            case.connections,
            case.kind == Kind::TlsHandshakeResumed,
            request,
            generators.wrk.cpus.clone(),
        )?)
    } else {
        None
    };

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = Arc::clone(&stop);
        let pids = proxy_pids.clone();
        thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                if !pids.is_empty() {
                    samples.push(sys::rss_sum(&pids));
                }
                thread::sleep(SAMPLE_EVERY);
            }
            samples
        })
    };
    let proxy_before = sys::cpu_ticks_of_all(&proxy_pids);
    let app_before = sys::cpu_ticks(&app_pids);
    let (output, generator, tls_seen) = match &handshakes {
        Some(load) => {
            let out = load.run(Duration::from_secs(config.duration_s));
            if let Some(err) = &out.first_error {
                eprintln!(
                    "bench:     {} of {} connections failed; the first: {err}",
                    out.errors,
                    out.errors + out.completed
                );
            }
            (
                Ok(handshake_figures(&out)),
                Generator::RustlsClient,
                out.seen,
            )
        }
        None if case.kind.is_tls() => {
            match generators.h2load.run(case, addr, config.duration_s, dir) {
                Ok((out, seen)) => (Ok(out), Generator::H2load, Some(seen)),
                Err(err) => (Err(err), Generator::H2load, None),
            }
        }
        None => (
            generators
                .wrk
                .run(case, addr, close, config.duration_s, dir),
            Generator::Wrk,
            None,
        ),
    };
    let proxy_after = sys::cpu_ticks_of_all(&proxy_pids);
    let app_after = sys::cpu_ticks(&app_pids);
    stop.store(true, Ordering::SeqCst);
    let samples = sampler.join().unwrap_or_default();
    let output = output.with_context(|| format!("load on {}: {}", stack.kind, stack.log_tail()))?;
    if let Some((name, len)) = case.kind.file()
        && !case.kind.is_compressed()
        && output.requests > 0
        && output.bytes / output.requests < len as u64
    {
        // wrk counts every byte read, heads included: fewer than the file per answer means
        // answers were cut short.
        eprintln!(
            "bench:     warning: {} read {} bytes per answer, less than {name} ({len} bytes)",
            stack.kind,
            output.bytes / output.requests
        );
    }
    let plain_len = case.kind.expected_body().len() as u64;
    if case.kind.is_compressed()
        && output.requests > 0
        && output.bytes / output.requests >= plain_len
    {
        // The body compresses to a fraction of itself: as many bytes as the plain body per
        // answer means the load's answers were not compressed.
        eprintln!(
            "bench:     warning: {} read {} bytes per answer for {}, at least the {plain_len} \
             bytes uncompressed",
            stack.kind,
            output.bytes / output.requests,
            case.id()
        );
    }
    stack
        .refresh_pids()
        .with_context(|| format!("{} after {}", stack.kind, case.id()))?;

    let per_req = |ticks: u64| {
        if output.requests == 0 {
            None
        } else {
            Some(ticks as f64 / sys::clock_ticks() * 1e6 / output.requests as f64)
        }
    };
    let proxy_cpu_us = if stack.kind.has_proxy() {
        // A proxy process that ended during the run (a crashed nginx worker its master
        // replaced) took its CPU time with it: no figure, rather than a low one.
        let (Some(before), Some(after)) = (proxy_before, proxy_after) else {
            bail!(
                "a process of {} ended during {}: {}",
                stack.kind,
                case.id(),
                stack.log_tail()
            );
        };
        per_req(after.saturating_sub(before))
    } else {
        None
    };
    let app_cpu_us = per_req(app_after.saturating_sub(app_before));
    let (rss_load, rss_peak) = if samples.is_empty() {
        (None, None)
    } else {
        let mut sorted = samples.clone();
        sorted.sort_unstable();
        (Some(sorted[sorted.len() / 2]), sorted.last().copied())
    };
    Ok(RunResult {
        case: case.id(),
        kind: case.kind,
        connections: case.connections,
        stack: stack.kind,
        round,
        requests: output.requests,
        rps: output.rps(),
        p50_us: output.p50_us,
        p99_us: output.p99_us,
        p999_us: output.p999_us,
        max_us: output.max_us,
        errors: output.errors(),
        wrk: output,
        generator,
        tls: tls_seen,
        proxy_cpu_us,
        app_cpu_us,
        rss_load,
        rss_peak,
    })
}

/// A handshake load's figures in wrk's shape: a request per connection.
fn handshake_figures(out: &tls::HandshakeOutput) -> WrkOutput {
    let mean_us = if out.latencies_us.is_empty() {
        0.0
    } else {
        out.latencies_us.iter().sum::<u64>() as f64 / out.latencies_us.len() as f64
    };
    WrkOutput {
        requests: out.completed,
        duration_us: out.duration.as_micros() as u64,
        bytes: 0,
        connect: out.errors - out.bad_status,
        read: 0,
        write: 0,
        status: out.bad_status,
        timeout: 0,
        p50_us: out.percentile(0.50),
        p99_us: out.percentile(0.99),
        p999_us: out.percentile(0.999),
        max_us: out.latencies_us.last().copied().unwrap_or(0),
        mean_us,
    }
}

/// Writes `text` to `path`, creating the directory.
pub(crate) fn write_file(path: &std::path::Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cases_include_the_tls_ones() -> Result<()> {
        let mut specs = Vec::new();
        for name in [
            "hello",
            "64k",
            "tls",
            "hello-c10",
            "tls-hello-c10",
            "tls-hello",
        ] {
            specs.extend(CaseSpec::parse(name)?);
        }
        let ids: Vec<String> = Config::case_list(&specs, &[10, 100], 100, 8)
            .iter()
            .map(Case::id)
            .collect();
        assert_eq!(
            ids,
            [
                "hello-c10",
                "hello-c100",
                "64k-c100",
                "tls-hello-c100",
                "tls-64k-c100",
                "tls-h2-hello-c10",
                "tls-handshake-full",
                "tls-handshake-resumed",
                "tls-hello-c10",
            ]
        );
        let handshake = Config::case_list(&specs, &[10], 100, 8)
            .into_iter()
            .find(|c| c.kind == Kind::TlsHandshakeFull)
            .map(|c| c.connections);
        assert_eq!(handshake, Some(8));
        // The HTTP/2 case: a tenth of the connections, as many requests in flight.
        let h2 = |connections| {
            Config::case_list(&CaseSpec::parse("tls-h2-hello")?, &[10], connections, 8)
                .first()
                .map(Case::id)
                .context("a case")
        };
        assert_eq!(h2(100)?, "tls-h2-hello-c10");
        assert_eq!(h2(1000)?, "tls-h2-hello-c100");
        assert_eq!(h2(5)?, "tls-h2-hello-c1");
        assert!(runs_at(Kind::TlsHello, StackKind::Nginx));
        assert!(!runs_at(Kind::TlsHello, StackKind::UwsgiHttp));
        assert!(runs_at(Kind::Hello, StackKind::Uwsgi));
        Ok(())
    }
}
