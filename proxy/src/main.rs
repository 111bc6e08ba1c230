//! The `ringway` daemon: read the configuration, start the server, serve until a stop signal.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use ringway::app::App;
use ringway::config::{Config, MetricsListen, Settings};
use ringway::metrics;
use ringway::open_files;
use ringway::reload::Reloader;
use ringway::server::Server;
use ringway::service_manager;

#[global_allocator]
static ALLOCATOR: ringway::alloc::BlockCache = ringway::alloc::BlockCache;

fn main() -> ExitCode {
    init_logging();
    ringway::limit_caught_panic_messages();
    // clap prints --help and --version, and usage errors, and exits.
    let settings = Settings::parse();
    if settings.check_config {
        return check_config(settings);
    }
    match run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--check-config`: what a start would check, with nothing bound or started; says which
/// configuration is ok or why it is not, as `nginx -t` does.
fn check_config(settings: Settings) -> ExitCode {
    let what = match &settings.config {
        Some(file) => format!("configuration {}", file.display()),
        None => "configuration (command-line flags, no --config file)".to_owned(),
    };
    let checked = Config::check(settings).and_then(|config| {
        // The certificates and keys are read and matched as a start reads them.
        if let Some(tls) = &config.tls {
            ringway::tls::Acceptor::new(tls, None)?;
        }
        Ok(())
    });
    match checked {
        Ok(()) => {
            eprintln!("ringway: {what} is ok");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("ringway: {what} is not valid: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft limit of open files to the hard one (before the app is started, which
/// gets the limit back), and says so; warns when `max_connections` cannot be reached under
/// the limit, each connection holding a descriptor at least.
fn raise_open_files(max_connections: Option<usize>) {
    let limit = match open_files::raise() {
        Ok(open_files::Raised { before, after }) => {
            if after > before {
                tracing::info!(
                    "open files: soft limit raised from {before} to {after} (the hard limit)"
                );
            }
            after
        }
        Err(err) => {
            tracing::warn!(error = %err, "open files: soft limit not raised");
            return;
        }
    };
    if let Some(max) = max_connections
        && u64::try_from(max).is_ok_and(|max| max > limit)
    {
        tracing::warn!(
            "max_connections = {max} is above the limit of open files ({limit}): past it new \
             connections wait unaccepted; raise the hard limit (LimitNOFILE= in the systemd \
             unit, ulimit -Hn, or a container's --ulimit nofile=)"
        );
    }
}

fn run(settings: Settings) -> anyhow::Result<()> {
    // Block the signals before any thread exists, so every worker inherits the mask and only
    // this thread takes them, synchronously; and before the configuration is read, so that
    // a logrotate's SIGUSR1 or a SIGHUP during a start never kills the process.
    let signals = signals::block()?;
    let config = Config::from_settings(settings)?;
    raise_open_files(config.connections.max_connections);
    let workers = config.workers;
    let upstream_addrs = config.all_servers();
    let upstreams: Vec<String> = upstream_addrs.iter().map(ToString::to_string).collect();
    let metrics_listen = config.metrics.clone();
    let shutdown_timeout = config.shutdown_timeout;
    let ebpf = config.ebpf;
    // Started, and its sockets accepting, before ringway accepts; stopped after the drain
    // (or when `run` returns early, by its drop).
    if let Some(app) = &config.app {
        // The app's wait, and some more for ringway's own start.
        service_manager::starting_for(app.ready_timeout + std::time::Duration::from_secs(30));
    }
    let app = config
        .app
        .as_ref()
        .map(|app| App::start(app, &config.servers_as_written()))
        .transpose()?;
    if app.is_some() && ringway::app::stop_requested() {
        // Asked to stop while the app started: nothing is bound, and the app stops as `app`
        // drops.
        tracing::info!("stopped before serving");
        return Ok(());
    }
    // Bound before the server takes connections: a metrics address that cannot be had
    // fails the start while nothing is lost (found by review: it failed after, and during
    // a binary upgrade the requests the new process had taken were cut).
    let metrics_listeners = match &metrics_listen {
        MetricsListen::Off => Vec::new(),
        MetricsListen::Default(addr) => match metrics::bind(*addr) {
            Ok(listener) => vec![listener],
            Err(err) => {
                tracing::warn!(
                    error = %err,
                    "metrics endpoint not started: the default address {addr} is taken; \
                     pass --metrics ADDR (or --metrics off to silence this)"
                );
                Vec::new()
            }
        },
        MetricsListen::At(addrs) => addrs
            .iter()
            .map(|&addr| {
                metrics::bind(addr)
                    .map_err(|err| anyhow::anyhow!("cannot listen for metrics on {addr}: {err}"))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let server = Server::start(config)?;
    let reloader = server.reloader();

    // TLS connections are measured like plain ones.
    let mut ports: Vec<u16> = server
        .local_addrs()
        .iter()
        .chain(server.tls_addrs())
        .map(SocketAddr::port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    if ebpf && metrics_listen != MetricsListen::Off {
        // Loading takes a few hundred milliseconds (BTF, verifier): do it aside, so that
        // this thread is waiting for signals as soon as "listening" is logged.
        let (probes, upstreams, ports) = (
            server.probes().clone(),
            upstream_addrs.clone(),
            ports.clone(),
        );
        let loader = std::thread::Builder::new().name("ringway-ebpf-load".into());
        if let Err(err) = loader.spawn(move || metrics::load_probes(&probes, &ports, &upstreams)) {
            tracing::warn!(error = %err, "eBPF probes not loaded: cannot start a thread");
        }
    }
    let sources = metrics::Sources::new(
        server.stats().to_vec(),
        upstream_addrs,
        server.probes().clone(),
        ports,
        server.route_names(),
        server.acceptor(),
    )
    .with_config(server.config_view())
    .with_reloads(reloader.reloads())
    .with_limits(server.limit_figures())
    .with_readiness(server.readiness())
    .with_access_log_dropped(server.access_log_dropped())
    .with_app(app.as_ref().map(App::status));
    if !metrics_listeners.is_empty() {
        match metrics::spawn(metrics_listeners, sources) {
            Ok(locals) => {
                for local in locals {
                    tracing::info!(
                        "metrics on http://{local}/ (Prometheus at /metrics, JSON at /stats)"
                    );
                }
            }
            Err(err) => {
                // A thread that cannot be started: the requests taken meanwhile finish.
                server.shut_down(shutdown_timeout);
                anyhow::bail!("cannot serve metrics: {err}");
            }
        }
    }
    // Last of the start: "listening" tells an operator (and a binary upgrade's script)
    // that this process is up, so nothing may fail after it.
    for tls in server.tls_addrs() {
        tracing::info!("listening on https://{tls}");
    }
    for local in server.local_addrs() {
        tracing::info!(
            workers,
            upstreams = upstreams.join(" "),
            "listening on http://{local}"
        );
    }

    service_manager::ready();

    let access_log = server.access_log_reopener();
    let mut stopping = false;
    let stopped_by = server.run_until(|wait| match signals.wait(wait)? {
        signal @ ("SIGINT" | "SIGTERM" | "SIGQUIT") => {
            if !stopping {
                tracing::info!(
                    signal,
                    "stopping: no new connections, finishing requests in flight (a second \
                     stop signal ends them now)"
                );
                service_manager::stopping();
            }
            stopping = true;
            Some(signal)
        }
        "SIGHUP" if stopping => {
            tracing::info!("SIGHUP while stopping: no reload");
            None
        }
        "SIGHUP" => {
            reload(&reloader);
            None
        }
        "SIGUSR1" => {
            match &access_log {
                Some(log) => {
                    tracing::info!("SIGUSR1: reopening the access log file");
                    log.reopen();
                }
                None => tracing::info!(
                    "SIGUSR1 received: no access log file to reopen (access_log is off, \
                     stderr or syslog); nothing changed"
                ),
            }
            None
        }
        "SIGUSR2" => {
            tracing::info!(
                "SIGUSR2 received: nothing changed (a binary upgrade is a new ringway on the \
                 same address, then SIGTERM to this one: README, \"Reload and upgrade\")"
            );
            None
        }
        signal => {
            tracing::info!(signal, "{signal} received: nothing to do; nothing changed");
            None
        }
    })?;
    if let Some(app) = app {
        app.stop();
    }
    tracing::info!(signal = stopped_by, "stopped");
    Ok(())
}

/// Reads the configuration again, as at start (the same flags, the file they name), and
/// puts it in use, or refuses it with one line saying why (the old one stays).
fn reload(reloader: &Reloader) {
    let read = || {
        let flags = Settings::try_parse().map_err(|e| anyhow::anyhow!(e.to_string()))?;
        Config::from_settings(flags)
    };
    service_manager::reloading();
    match reloader.reload(read) {
        Ok(reloaded) => {
            service_manager::reloaded(None);
            if !reloaded.kept.is_empty() {
                tracing::warn!(
                    "SIGHUP: {} changed but kept as they were: only a new process can change \
                     them (start the new ringway beside this one, then SIGTERM this one: \
                     README, \"Reload and upgrade\")",
                    reloaded.kept.join(", ")
                );
            }
            tracing::info!(
                generation = reloaded.generation,
                upstreams = reloaded.upstreams.as_deref().unwrap_or("unchanged"),
                "SIGHUP: configuration reloaded: new requests use it, requests in flight \
                 finish on the old one"
            );
        }
        Err(err) => {
            let why = one_line(&format!("{err:#}"));
            service_manager::reloaded(Some(&why));
            tracing::error!("SIGHUP: configuration refused, the old one stays: {why}");
        }
    }
}

/// `text` on one line (a TOML error shows the line it points at, over several).
fn one_line(text: &str) -> String {
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    parts.join(" ")
}

fn init_logging() {
    use std::io::IsTerminal;
    // The h2 crate logs a client's protocol mistakes at WARN, a line each (20000 stray PING
    // acknowledgements: 20000 lines), and rustls would too if a build enabled its `logging`
    // feature (an IP address as SNI, a stray handshake message): off unless RUST_LOG names
    // them. ringway reports what matters of a connection itself (debug lines, rate-limited
    // warnings).
    const QUIET: [&str; 2] = ["h2", "rustls"];
    let own = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let named = |target: &str| {
        own.split(',')
            .any(|directive| directive.trim().split(['=', '[']).next() == Some(target))
    };
    let mut directives = own.clone();
    for target in QUIET.into_iter().filter(|target| !named(target)) {
        directives.push_str(&format!(",{target}=off"));
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,h2=off,rustls=off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

mod signals {
    //! The signals ringway acts on, taken synchronously with sigtimedwait: SIGINT, SIGTERM
    //! and SIGQUIT stop it gracefully; SIGHUP reloads the configuration; SIGUSR1 reopens the
    //! access log file (after logrotate renamed it); SIGUSR2 is logged and ignored. SIGPIPE is
    //! ignored (Rust's runtime sets that up before `main`): a client that goes away makes a
    //! write fail, never kills the process.

    use std::time::Duration;

    /// The signals taken. SIGUSR2 only to say it does nothing: its default action would end
    /// the process at once, and it is nginx's binary upgrade signal, which an nginx
    /// operator may well send.
    const TAKEN: [(libc::c_int, &str); 6] = [
        (libc::SIGINT, "SIGINT"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
    ];

    pub struct Blocked(libc::sigset_t);

    pub fn block() -> std::io::Result<Blocked> {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t; the calls only change this thread's mask.
        let rc = unsafe {
            libc::sigemptyset(&mut set);
            for (signal, _) in TAKEN {
                libc::sigaddset(&mut set, signal);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        // A SIGCHLD ignored where ringway was started makes the kernel reap its children
        // itself: the app's exit would never be seen (found by review: read as status 255,
        // and a clean exit restarted).
        // SAFETY: setting a signal's disposition to its default touches no memory.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
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
            TAKEN
                .iter()
                .find(|(number, _)| *number == signal)
                .map(|(_, name)| *name)
        }
    }
}
