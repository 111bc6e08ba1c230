//! `ringway-bench`: runs the side-by-side benchmark (or the buffering suite) and prints the
//! markdown table. Usually started by `cargo xtask bench`, which builds ringway and readies
//! the venv first.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::Parser;

use ringway_bench::buffering::{self, BufferingConfig, Plan, Scenario};
use ringway_bench::load::CaseSpec;
use ringway_bench::stacks::{App, StackKind};
use ringway_bench::{Config, run};

/// Side-by-side benchmark: ringway vs nginx vs uWSGI's --http router vs uWSGI alone, all in
/// front of the same uWSGI workers; ringway vs nginx in front of Granian (HTTP upstreams with
/// keep-alive) vs Granian alone; static files served by ringway and nginx themselves; and
/// ringway vs nginx over TLS. Results go to OUT/results.{json,md} and OUT/chart.svg.
/// With `--suite buffering`: ringway vs nginx under slow and hostile clients, to
/// OUT/buffering.{json,md}.
#[derive(Parser, Debug)]
#[command(name = "ringway-bench")]
struct Args {
    /// load: wrk's cases at every stack. buffering: ringway vs nginx under slow readers,
    /// trickling uploads and slow readers of big answers (--scenarios and --quick are its
    /// own; it also takes --stacks, --app, --app-file, --ringway-workers, --uwsgi-workers,
    /// the binaries and --out; the other options are the load suite's).
    #[arg(long, default_value = "load", value_parser = ["load", "buffering"])]
    suite: String,
    /// Buffering suite: the scenarios, comma-separated, in the order they are run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "slow-readers,trickle-uploads,big-answers"
    )]
    scenarios: Vec<String>,
    /// Buffering suite: a few seconds per scenario (small answers, few clients, short
    /// windows), to check the setup; its figures judge nothing.
    #[arg(long)]
    quick: bool,
    /// Rounds: each case runs once per stack per round, stacks alternated.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds per run (whole seconds: wrk's unit).
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Cases, comma-separated: hello, 64k, post16k, chunked (answers from the app); gzip64k
    /// (the 64 KiB answer compressed by the proxy: ringway and nginx only); gzipfile16k,
    /// gzipfile128k (stylesheets served and compressed by the proxy); static1k,
    /// static64k, static1m (files of 1 KiB, 64 KiB, 1 MiB served by the proxy itself; the
    /// uWSGI stacks serve none); and over TLS (ringway and nginx only): tls-hello, tls-64k
    /// (keep-alive HTTP/1.1, h2load), tls-h2-hello (HTTP/2, h2load, 10 streams in flight on
    /// each of a tenth of --connections), tls-handshake-full, tls-handshake-resumed (a
    /// connection per request); `tls` for those five. A name with `-cN` runs at N connections
    /// only (hello-c10, static1k-c100, tls-hello-c100, tls-h2-hello-c10).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "hello,64k,post16k,chunked,gzip64k,gzipfile16k,gzipfile128k,static1k,static64k,static1m,tls-hello,tls-64k,tls-h2-hello,tls-handshake-full,tls-handshake-resumed"
    )]
    cases: Vec<String>,
    /// Connection counts of the hello sweep.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    sweep: Vec<usize>,
    /// Keep-alive connections for the other cases.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Client threads of the TLS handshake cases, each opening one connection after another.
    #[arg(long, default_value_t = ringway_bench::DEFAULT_HANDSHAKE_CLIENTS)]
    handshake_clients: usize,
    /// Stacks, comma-separated, in the order they are run: ringway, nginx, uwsgi-http, uwsgi
    /// (in front of uWSGI); ringway-granian, nginx-granian, granian (in front of Granian over
    /// keep-alive HTTP, and Granian alone; the app cases only); and ringway-log (ringway
    /// with its access log on, to a file: run it beside ringway to see what the log costs per
    /// request) [default: all but ringway-log; the buffering suite: ringway,nginx, the only
    /// two it takes].
    #[arg(long, value_delimiter = ',')]
    stacks: Option<Vec<String>>,
    /// The app: raw (tests/apps/raw_wsgi.py) or flask (tests/apps/demo_flask.py).
    #[arg(long, default_value = "raw")]
    app: String,
    /// App file instead of tests/apps/<app> (callable `application` for raw, `app` for flask).
    #[arg(long, env = "RINGWAY_BENCH_APP")]
    app_file: Option<PathBuf>,
    /// Put wrk on the first CPU and the servers (proxies and uWSGI) on the others.
    #[arg(long)]
    pin: bool,
    /// Idle keep-alive connections opened for the memory-per-connection figure, and as many
    /// idle TLS connections when the run has TLS cases (0: skip both).
    #[arg(long, default_value_t = 5000)]
    idle_conns: usize,
    /// Seconds after the last run at which the proxies' RSS is read again (the "30 s
    /// later" column and its target).
    #[arg(long, default_value_t = 30)]
    settle: u64,
    /// Run ringway with its metrics endpoint and eBPF probes (off by default: nginx, the
    /// reference, measures nothing; the probes' own cost is measured apart).
    #[arg(long)]
    with_probes: bool,
    /// ringway worker threads [default: number of CPUs, like nginx's worker_processes auto].
    #[arg(long)]
    ringway_workers: Option<usize>,
    /// uWSGI workers.
    #[arg(long, default_value_t = 2)]
    uwsgi_workers: usize,
    /// wrk threads (and h2load's).
    #[arg(long, default_value_t = 1)]
    wrk_threads: usize,
    /// The ringway binary.
    #[arg(long, env = "RINGWAY_BIN")]
    ringway: Option<PathBuf>,
    /// The venv with uWSGI.
    #[arg(long, env = "RINGWAY_VENV")]
    venv: Option<PathBuf>,
    /// nginx.
    #[arg(long, env = "RINGWAY_NGINX", default_value = "/usr/sbin/nginx")]
    nginx: PathBuf,
    /// wrk.
    #[arg(long, env = "RINGWAY_WRK", default_value = "/usr/bin/wrk")]
    wrk: PathBuf,
    /// h2load (Debian's nghttp2-client), for the keep-alive TLS cases.
    #[arg(long, env = "RINGWAY_H2LOAD", default_value = "/usr/bin/h2load")]
    h2load: PathBuf,
    /// Where the report goes [default: <workspace>/target/bench].
    #[arg(long)]
    out: Option<PathBuf>,
    /// The command line shown in the report [default: this one].
    #[arg(long, hide = true)]
    shown_command: Option<String>,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ringway-bench: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn real_main() -> Result<()> {
    let args = Args::parse();
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"));
    let mut specs = Vec::new();
    for c in &args.cases {
        specs.extend(CaseSpec::parse(c.trim())?);
    }
    let buffering_suite = args.suite == "buffering";
    let stacks = match &args.stacks {
        Some(names) => names
            .iter()
            .map(|s| StackKind::parse(s.trim()))
            .collect::<Result<Vec<_>>>()?,
        None if buffering_suite => vec![StackKind::Ringway, StackKind::Nginx],
        None => StackKind::ALL.to_vec(),
    };
    if args.rounds == 0 || args.duration == 0 || args.handshake_clients == 0 {
        bail!("--rounds, --duration and --handshake-clients must be at least 1");
    }
    let app = match args.app.as_str() {
        "raw" => App {
            file: root.join("tests/apps/raw_wsgi.py"),
            callable: "application".into(),
        },
        "flask" => App {
            file: root.join("tests/apps/demo_flask.py"),
            callable: "app".into(),
        },
        other => bail!("unknown --app {other:?} (raw, flask)"),
    };
    let app = App {
        file: args.app_file.clone().unwrap_or(app.file),
        ..app
    };
    let interrupt = Arc::new(AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupt);
        ctrlc::set_handler(move || {
            eprintln!("ringway-bench: interrupted: stopping after this run");
            flag.store(true, Ordering::SeqCst);
        })
        .context("install the Ctrl-C handler")?;
    }
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let command = args.shown_command.clone().unwrap_or_else(|| {
        std::env::args()
            .map(|a| {
                Path::new(&a)
                    .file_name()
                    .filter(|_| a.contains('/') && a.ends_with("ringway-bench"))
                    .map_or(a.clone(), |n| n.to_string_lossy().into_owned())
            })
            .collect::<Vec<_>>()
            .join(" ")
    });
    let ringway = args
        .ringway
        .clone()
        .unwrap_or_else(|| target.join("release/ringway"));
    let venv = args.venv.clone().unwrap_or_else(|| target.join("venv"));
    let out_dir = args.out.clone().unwrap_or_else(|| target.join("bench"));
    let ringway_workers = args.ringway_workers.unwrap_or(cpus);
    if buffering_suite {
        let config = BufferingConfig {
            ringway,
            nginx: args.nginx.clone(),
            venv,
            app,
            stacks,
            scenarios: args
                .scenarios
                .iter()
                .map(|s| Scenario::parse(s.trim()))
                .collect::<Result<Vec<_>>>()?,
            plan: if args.quick {
                Plan::quick()
            } else {
                Plan::full()
            },
            ringway_workers,
            uwsgi_workers: args.uwsgi_workers,
            out_dir,
            command,
            interrupt,
        };
        let report = buffering::run(&config)?;
        println!("{}", report.markdown());
        eprintln!(
            "ringway-bench: wrote {0}/buffering.json, {0}/buffering.md",
            config.out_dir.display()
        );
        return Ok(());
    }
    let config = Config {
        ringway,
        nginx: args.nginx.clone(),
        venv,
        wrk: args.wrk.clone(),
        h2load: args.h2load.clone(),
        app,
        app_name: args.app.clone(),
        stacks,
        cases: Config::case_list(
            &specs,
            &args.sweep,
            args.connections,
            args.handshake_clients,
        ),
        rounds: args.rounds,
        duration_s: args.duration,
        ringway_workers,
        ringway_probes: args.with_probes,
        uwsgi_workers: args.uwsgi_workers,
        wrk_threads: args.wrk_threads,
        pin: args.pin,
        idle_conns: args.idle_conns,
        settle: std::time::Duration::from_secs(args.settle),
        out_dir,
        command,
        interrupt,
    };
    let report = run(&config)?;
    println!("{}", report.markdown());
    eprintln!(
        "ringway-bench: wrote {0}/results.json, {0}/results.md, {0}/chart.svg",
        config.out_dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringway_bench::load::Kind;

    #[test]
    fn the_default_run_has_the_app_static_and_tls_cases() -> Result<()> {
        let args = Args::try_parse_from(["ringway-bench"])?;
        let mut kinds = Vec::new();
        for c in &args.cases {
            kinds.extend(CaseSpec::parse(c)?.into_iter().map(|s| s.kind));
        }
        assert_eq!(kinds, Kind::ALL);
        let args = Args::try_parse_from(["ringway-bench", "--cases", "static1k-c10,tls"])?;
        let mut specs = Vec::new();
        for c in &args.cases {
            specs.extend(CaseSpec::parse(c)?);
        }
        assert_eq!(specs.len(), 6);
        assert_eq!(
            (specs[0].kind, specs[0].connections),
            (Kind::Static1k, Some(10))
        );
        Ok(())
    }
}
