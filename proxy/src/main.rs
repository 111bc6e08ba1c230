//! The `ringway` daemon: parse the configuration, start the workers, wait for a signal.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ringway::config::{Cli, Config, MetricsListen};
use ringway::metrics;
use ringway::server::Server;

fn main() -> ExitCode {
    init_logging();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let config = Config::from_cli(Cli::parse())?;
    // Block the stop signals before any thread exists, so every worker inherits the mask and
    // only the main thread takes them, synchronously.
    let signals = signals::block()?;
    let grace = config.shutdown_timeout;
    let workers = config.workers;
    let upstreams: Vec<String> = config.upstreams.iter().map(ToString::to_string).collect();
    let upstream_addrs = config.upstreams.clone();
    let metrics_listen = config.metrics;
    let ebpf = config.ebpf;
    let server = Server::start(config)?;
    tracing::info!(
        workers,
        upstreams = upstreams.join(" "),
        "listening on http://{}",
        server.local_addr()
    );

    let port = server.local_addr().port();
    if ebpf && metrics_listen != MetricsListen::Off {
        // Loading takes a few hundred milliseconds (BTF, verifier): do it aside, so that
        // this thread is waiting for signals as soon as "listening" is logged.
        let (probes, upstreams) = (server.probes().clone(), upstream_addrs.clone());
        let loader = std::thread::Builder::new().name("ringway-ebpf-load".into());
        if let Err(err) = loader.spawn(move || metrics::load_probes(&probes, port, &upstreams)) {
            tracing::warn!(error = %err, "eBPF probes not loaded: cannot start a thread");
        }
    }
    let sources = metrics::Sources::new(
        server.stats().to_vec(),
        upstream_addrs,
        server.probes().clone(),
        port,
    );
    match metrics_listen {
        MetricsListen::Off => {}
        MetricsListen::Default(addr) | MetricsListen::At(addr) => {
            match metrics::spawn(addr, sources) {
                Ok(local) => tracing::info!(
                    "metrics on http://{local}/ (Prometheus at /metrics, JSON at /stats)"
                ),
                Err(err) if matches!(metrics_listen, MetricsListen::Default(_)) => tracing::warn!(
                    error = %err,
                    "metrics endpoint not started: the default address {addr} is taken; \
                     pass --metrics ADDR (or --metrics off to silence this)"
                ),
                Err(err) => {
                    server.stop(grace);
                    anyhow::bail!("cannot listen for metrics on {addr}: {err}");
                }
            }
        }
    }

    loop {
        if let Some(signal) = signals.wait(Duration::from_millis(500)) {
            tracing::info!(
                signal,
                "stopping: no new connections, finishing requests in flight"
            );
            break;
        }
        if server.any_worker_exited() {
            server.stop(Duration::ZERO);
            anyhow::bail!("a worker thread stopped unexpectedly");
        }
    }
    server.stop(grace);
    tracing::info!("stopped");
    Ok(())
}

fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

mod signals {
    //! SIGINT/SIGTERM taken synchronously with sigtimedwait.

    use std::time::Duration;

    pub struct Blocked(libc::sigset_t);

    pub fn block() -> std::io::Result<Blocked> {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t; the calls only change this thread's mask.
        let rc = unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        Ok(Blocked(set))
    }

    impl Blocked {
        /// Waits up to `limit` for a blocked signal; returns its name.
        pub fn wait(&self, limit: Duration) -> Option<&'static str> {
            let timeout = libc::timespec {
                tv_sec: limit.as_secs() as libc::time_t,
                tv_nsec: limit.subsec_nanos() as libc::c_long,
            };
            // SAFETY: the set is initialised, info may be null, timeout is valid.
            let signal = unsafe { libc::sigtimedwait(&self.0, std::ptr::null_mut(), &timeout) };
            match signal {
                libc::SIGINT => Some("SIGINT"),
                libc::SIGTERM => Some("SIGTERM"),
                _ => None,
            }
        }
    }
}
