//! ringway-bench: the side-by-side load harness.
//!
//! One uWSGI app server (2 workers on a unix socket, plus an `--http-socket` for the
//! no-proxy baseline) serves every stack: ringway, nginx (`uwsgi_pass`, tuned buffers),
//! uWSGI's own `--http` router, and uWSGI alone. Each case is run at each stack in turn
//! (A B C D A B C D ...) for several rounds; wrk drives the load; the harness reads the
//! proxy's CPU time and RSS from /proc. [`run`] returns the [`report::Report`] and writes
//! it as JSON, markdown and SVG. The [`buffering`] suite is apart: ringway and nginx under
//! slow and hostile clients.

pub mod buffering;
pub mod client;
pub mod load;
pub mod proc;
pub mod report;
pub mod stacks;
pub mod sys;

use std::collections::BTreeMap;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use load::{Case, Kind, Wrk};
use report::{IdleConns, Report, RunResult, StackInfo};
use stacks::{App, AppServer, Stack, StackKind, Tools};

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub ringway: PathBuf,
    pub nginx: PathBuf,
    pub venv: PathBuf,
    pub wrk: PathBuf,
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
    pub wrk_threads: usize,
    /// Load generator on one CPU, servers on the others.
    pub pin: bool,
    /// Idle keep-alive connections opened for the memory measurement (0: skip it).
    pub idle_conns: usize,
    pub out_dir: PathBuf,
    /// The command line, for the report.
    pub command: String,
    /// Set from outside (Ctrl-C) to stop between runs.
    pub interrupt: Arc<AtomicBool>,
}

impl Config {
    /// The cases for `kinds`: hello at each of `sweep`, the others at `connections`.
    pub fn cases(kinds: &[Kind], sweep: &[usize], connections: usize) -> Vec<Case> {
        let mut cases = Vec::new();
        for &kind in kinds {
            if kind == Kind::Hello {
                cases.extend(sweep.iter().map(|&c| Case {
                    kind,
                    connections: c,
                }));
            } else {
                cases.push(Case { kind, connections });
            }
        }
        cases
    }
}

const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Why a uWSGI stack is not measured on the static cases.
const NO_FILES: &str = "static files: this stack runs the app only (no static route)";
/// How often RSS is sampled during a run.
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
    let wrk = Wrk {
        bin: config.wrk.clone(),
        threads: config.wrk_threads,
        cpus: wrk_cpus,
    };
    let started = (report::now_utc(), sys::loadavg());
    let dir = sys::TempDir::new("ringway-bench")?;
    eprintln!("bench: scratch dir {}", dir.path().display());
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
    };

    let app = AppServer::start(&tools, &config.app, dir.path())?;
    let mut running: Vec<Stack> = Vec::new();
    for &kind in &config.stacks {
        running.push(Stack::start(kind, &tools, &config.app, &app, dir.path())?);
        eprintln!("bench: {kind} is up on {}", running[running.len() - 1].addr);
    }

    // Probes: each stack must answer each case right before it is measured. A stack that
    // cannot serve a case (uWSGI's router and a chunked body; the uWSGI stacks and the
    // static files, which only the proxies serve) is reported, not measured.
    let mut unserved: BTreeMap<(String, StackKind), String> = BTreeMap::new();
    for stack in &running {
        for case in &config.cases {
            if case.kind.is_static() && !stack.kind.serves_files() {
                unserved.insert((case.id(), stack.kind), NO_FILES.to_owned());
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
    // connections grew must not count as RSS under load.
    let mut infos: BTreeMap<StackKind, StackInfo> = BTreeMap::new();
    thread::sleep(Duration::from_millis(300));
    for i in 0..running.len() {
        let stack = &mut running[i];
        let kind = stack.kind;
        stack.refresh_pids()?;
        let idle_rss = sys::rss_sum(&stack.proxy_pids);
        let idle = if kind.has_proxy() && config.idle_conns > 0 {
            Some(idle_connections(stack, config.idle_conns)?)
        } else {
            None
        };
        infos.insert(
            kind,
            StackInfo {
                processes: stack.proxy_pids.len(),
                idle_rss,
                idle_conns: idle,
                end_rss: 0,
            },
        );
        if kind.has_proxy() && config.idle_conns > 0 {
            // Stopped, then started afresh: the heap the idle connections grew must not
            // count as RSS under load.
            drop(running.remove(i));
            let fresh = Stack::start(kind, &tools, &config.app, &app, dir.path())?;
            for case in &config.cases {
                if !unserved.contains_key(&(case.id(), kind)) {
                    probe(&fresh, case.kind)
                        .with_context(|| format!("{kind} restarted: {} probe", case.id()))?;
                }
            }
            running.insert(i, fresh);
        }
    }

    let mut results = Vec::new();
    let total = config.rounds * config.cases.len() * running.len();
    let mut done = 0;
    for round in 1..=config.rounds {
        for case in &config.cases {
            for stack in &mut running {
                if config.interrupt.load(Ordering::SeqCst) {
                    bail!("interrupted");
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
                let result = measure(stack, &app, *case, round, &wrk, config, dir.path())?;
                eprintln!(
                    "bench:     {:.0} req/s  p99 {:.2} ms  proxy {} µs/req  errors {}",
                    result.rps,
                    result.p99_us as f64 / 1000.0,
                    result
                        .proxy_cpu_us
                        .map_or("-".to_owned(), |v| format!("{v:.1}")),
                    result.errors
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

/// Sends a case's request to a stack and checks the answer.
fn probe(stack: &Stack, kind: Kind) -> Result<()> {
    let close = stack.kind == StackKind::Uwsgi;
    let mut conn = client::connect(stack.addr, IO_TIMEOUT)?;
    let answer = client::exchange(&mut conn, &load::raw_request(kind, stack.addr, close))?;
    if answer.status != 200 {
        bail!(
            "status {} ({})",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    let expected = kind.expected_body();
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
    let ok = match kind {
        Kind::Hello | Kind::Bytes64k | Kind::Static1k | Kind::Static64k | Kind::Static1m => {
            answer.body == expected
        }
        Kind::Post16k | Kind::Chunked => answer
            .body
            .windows(expected.len())
            .any(|w| w == expected.as_slice()),
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

/// Opens `n` keep-alive connections, each after one complete request, and measures the
/// proxy's RSS before and after.
fn idle_connections(stack: &mut Stack, n: usize) -> Result<IdleConns> {
    let request = load::raw_request(Kind::Hello, stack.addr, false);
    stack.refresh_pids()?;
    let rss_before = sys::rss_sum(&stack.proxy_pids);
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
    let rss_after = sys::rss_sum(&stack.proxy_pids);
    let still_open = conns.iter().filter(|c| client::still_open(c)).count();
    let took = started.elapsed();
    drop(conns);
    thread::sleep(Duration::from_millis(300));
    let per_conn = if still_open > 0 {
        Some(rss_after.saturating_sub(rss_before) as f64 / still_open as f64)
    } else {
        None
    };
    eprintln!(
        "bench: {}: {still_open}/{n} idle keep-alive connections held ({} refused or closed), \
         RSS {:.1} → {:.1} MiB, {} bytes/connection ({:.1}s)",
        stack.kind,
        failures,
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0,
        per_conn.map_or("-".to_owned(), |v| format!("{v:.0}")),
        took.as_secs_f64()
    );
    Ok(IdleConns {
        requested: n,
        held: still_open,
        rss_before,
        rss_after,
        bytes_per_conn: per_conn,
    })
}

/// One run of one case at one stack.
fn measure(
    stack: &mut Stack,
    app: &AppServer,
    case: Case,
    round: usize,
    wrk: &Wrk,
    config: &Config,
    dir: &std::path::Path,
) -> Result<RunResult> {
    stack.refresh_pids()?;
    let proxy_pids = stack.proxy_pids.clone();
    let app_pids = stack.app_pids(app)?;
    let close = stack.kind == StackKind::Uwsgi;
    let addr: SocketAddr = stack.addr;

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
    let proxy_before = sys::cpu_ticks(&proxy_pids);
    let app_before = sys::cpu_ticks(&app_pids);
    let output = wrk.run(case, addr, close, config.duration_s, dir);
    let proxy_after = sys::cpu_ticks(&proxy_pids);
    let app_after = sys::cpu_ticks(&app_pids);
    stop.store(true, Ordering::SeqCst);
    let samples = sampler.join().unwrap_or_default();
    let output = output.with_context(|| format!("load on {}: {}", stack.kind, stack.log_tail()))?;
    if let Some((name, len)) = case.kind.file()
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
        per_req(proxy_after.saturating_sub(proxy_before))
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
        proxy_cpu_us,
        app_cpu_us,
        rss_load,
        rss_peak,
    })
}

/// Writes `text` to `path`, creating the directory.
pub(crate) fn write_file(path: &std::path::Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    fs::write(path, text).with_context(|| format!("write {}", path.display()))
}
