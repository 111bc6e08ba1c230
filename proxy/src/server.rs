//! The server: one worker thread per core (pinned when there is one per allowed CPU), each
//! with its own io_uring runtime,
//! listener and upstream set. Nothing is shared between workers on the request path; the
//! only cross-thread signals are the stop (the shutdown of every listener: each worker's
//! accept loops end, and it sets its own thread's [`Stop`]) and the configuration
//! generation (generation.rs), which a reload replaces.
//!
//! [`Server::start`] binds and starts serving; [`Server::run_until`] does the housekeeping
//! until told to stop, then drains. `main` drives it with signals; a test can drive it with
//! anything.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::watch;
use tokio_uring::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::access_log::{self, AccessLog, Reopener, WorkerLog};
use crate::buffer::{Budget, prepare_dir, release_idle_buffers};
use crate::config::Config;
use crate::conn::IdleConns;
use crate::generation::{self, Generation};
use crate::identity::IdSource;
use crate::listener::{self, Bound, Scheme};
use crate::metrics::{
    ConfigSource, ConfigView, HealthSource, LimitSource, ProbeHandle, Readiness, RouteNames,
    WorkerStats,
};
use crate::reload::Reloader;
use crate::static_files::FileCache;
use crate::tls::Acceptor;
use crate::upstream::Upstreams;
use crate::worker::{Stop, Worker};
use crate::{conn, fail, memory, ratelimit, uring_error};

/// io_uring submission queue size per worker: big enough to batch a burst of ops per
/// syscall; it does not cap the ops in flight.
const RING_ENTRIES: u32 = 1024;

/// Fewer requests than this per housekeeping window (a few a second) and the server, or a
/// worker, counts as quiet: the time to give memory back.
const QUIET_REQUESTS: u64 = 50;

/// Fewer than this per housekeeping window (less than one a second: health checks) and the
/// server counts as idle: the code its load ran is unmapped. A server serving a trickle of
/// requests keeps it, rather than fault it back in every window.
const IDLE_REQUESTS: u64 = 5;

/// The running worker threads.
pub struct Server {
    threads: Vec<JoinHandle<()>>,
    stats: Vec<Arc<WorkerStats>>,
    probes: ProbeHandle,
    /// Set when stopping, for `/readyz` (the workers learn it from their listeners).
    stop: watch::Sender<bool>,
    /// Set by a second stop signal: the workers end their drain at once.
    cut: watch::Sender<bool>,
    /// The addresses the workers accept plain HTTP on, and TLS.
    locals: Vec<SocketAddr>,
    tls_locals: Vec<SocketAddr>,
    /// The configuration in use; a reload sends the next one to every worker.
    generations: Arc<watch::Sender<Arc<Generation>>>,
    /// The routes' metric ids, across reloads.
    route_names: RouteNames,
    /// Every listening socket (a duplicate of each worker's fd), to close them all at once
    /// when stopping, before any connection is told to close.
    listening: Vec<OwnedFd>,
    /// Set just before the listening sockets are shut down: an accept failing then is the
    /// end of the loop, not an error.
    closing: Arc<AtomicBool>,
    access_log: Option<AccessLog>,
}

/// How long a stopping server waits for the access log's writer to write what is queued.
const ACCESS_LOG_DRAIN: Duration = Duration::from_secs(5);

impl Server {
    /// Prepares the temp directory, binds the listeners and starts the workers; returns once
    /// every worker accepts.
    pub fn start(config: Config) -> anyhow::Result<Server> {
        prepare_dir(&config.buffering.temp_dir).context("temp_dir")?;
        memory::keep_freed_memory_until_quiet();
        // Each worker's listeners: one on every address.
        let mut listeners: Vec<Vec<Bound>> = (0..config.workers).map(|_| Vec::new()).collect();
        let locals = listener::bind_for_workers(
            &config.listen,
            Scheme::Plain,
            config.listen_deferred,
            &mut listeners,
        )?;
        let route_names = RouteNames::default();
        let first = Arc::new(Generation::first(config, &route_names)?);
        let config = &first.config;
        let tls_locals = match &config.tls {
            Some(tls) => listener::bind_for_workers(
                &tls.listen,
                Scheme::Tls,
                config.listen_deferred,
                &mut listeners,
            )?,
            None => Vec::new(),
        };
        listener::steer_each_address(&listeners);
        // Plain requests redirected to HTTPS go to the first TLS address's port.
        let tls_port = tls_locals.first().map(SocketAddr::port);
        let (access_log, mut worker_logs) = match &config.access_log {
            Some(log) => {
                let (log, workers) = AccessLog::start(log, listeners.len())?;
                (Some(log), workers.into_iter().map(Some).collect())
            }
            None => (None, Vec::new()),
        };
        let budget = Arc::new(Budget::new(config.buffering.max_buffer_memory));
        let (generations, generation_rx) = watch::channel(Arc::clone(&first));
        // One worker per allowed CPU (the default): each is pinned to its own, unless
        // `pin_workers = false`. Fewer (or more) workers than CPUs are left to the scheduler,
        // so that several processes on one host (pods with `workers = 2`, an upgrade's two)
        // do not all crowd the first CPUs. docs/ARCHITECTURE.md, "The pipeline", has what
        // pinning gains and costs.
        let cpus =
            Some(allowed_cpus()).filter(|cpus| config.pin_workers && cpus.len() == listeners.len());
        let (stop, _) = watch::channel(false);
        let (cut, cut_rx) = watch::channel(false);
        let closing = Arc::new(AtomicBool::new(false));
        let listening = listeners
            .iter()
            .flatten()
            .map(|l| l.socket.as_fd().try_clone_to_owned())
            .collect::<std::io::Result<Vec<_>>>()
            .context("duplicating the listening sockets")?;
        let (ready_tx, ready_rx) = mpsc::channel();

        let stats: Vec<Arc<WorkerStats>> = (0..listeners.len()).map(|_| Arc::default()).collect();
        let every_worker: Arc<[Arc<WorkerStats>]> = stats.clone().into();
        let probes = ProbeHandle::default();
        // Seeded before any thread starts, so a failure leaves nothing running.
        let id_sources = (0..listeners.len())
            .map(|_| IdSource::from_os())
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut threads = Vec::with_capacity(listeners.len());
        for ((index, bound), request_ids) in listeners.into_iter().enumerate().zip(id_sources) {
            let worker = ThreadParts {
                tls_port,
                closing: Arc::clone(&closing),
                stats: Arc::clone(&stats[index]),
                every_worker: Arc::clone(&every_worker),
                probes: Arc::clone(&probes),
                budget: Arc::clone(&budget),
                request_ids,
                access_log: worker_logs.get_mut(index).and_then(Option::take),
                generations: generation_rx.clone(),
                cut: cut_rx.clone(),
            };
            let ready = ready_tx.clone();
            let cpu = cpus.as_ref().and_then(|cpus| cpus.get(index).copied());
            let thread = std::thread::Builder::new()
                .name(format!("ringway-w{index}"))
                .spawn(move || run_worker(bound, worker, cpu, ready))
                .context("spawning a worker thread")?;
            threads.push(thread);
        }
        drop(ready_tx);

        let server = Server {
            threads,
            stats,
            probes,
            stop,
            cut,
            locals,
            tls_locals,
            generations: Arc::new(generations),
            route_names,
            listening,
            closing,
            access_log,
        };
        for _ in 0..server.threads.len() {
            match ready_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Ok(())) => {}
                Ok(Err(message)) => {
                    server.shut_down(Duration::from_secs(1));
                    bail!(message);
                }
                Err(_) => {
                    server.shut_down(Duration::from_secs(1));
                    bail!("a worker thread did not start");
                }
            }
        }
        Ok(server)
    }

    /// The probe handle the workers share: fill it to turn the accept-wait figures on.
    pub fn probes(&self) -> &ProbeHandle {
        &self.probes
    }

    /// Every worker's counters.
    pub fn stats(&self) -> &[Arc<WorkerStats>] {
        &self.stats
    }

    /// Reads the limits' counters of the configuration in use, for the metrics endpoint.
    pub fn limit_figures(&self) -> LimitSource {
        let generations = Arc::clone(&self.generations);
        Arc::new(move || generations.borrow().limits.figures())
    }

    /// Reads the upstreams and certificates of the configuration in use, for the metrics
    /// endpoint.
    pub fn config_view(&self) -> ConfigSource {
        let generations = Arc::clone(&self.generations);
        Arc::new(move || {
            let current = generations.borrow();
            ConfigView {
                upstreams: current.config.all_servers(),
                tls: current.acceptor.clone(),
            }
        })
    }

    /// The routes' labels by metric id, for the metrics endpoint.
    pub fn route_names(&self) -> RouteNames {
        self.route_names.clone()
    }

    /// What reloads the configuration (SIGHUP).
    pub fn reloader(&self) -> Reloader {
        Reloader::new(Arc::clone(&self.generations), self.route_names.clone())
    }

    /// The addresses the workers accept plain HTTP on (the real ports when 0 was asked
    /// for), in the configuration's order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.locals
    }

    /// The addresses the workers accept TLS on (none when TLS is off).
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_locals
    }

    /// The TLS configuration in use (certificates), if TLS is on.
    pub fn acceptor(&self) -> Option<Arc<Acceptor>> {
        self.generations.borrow().acceptor.clone()
    }

    /// What `/readyz` reads: the upstreams' health, and whether the server is stopping
    /// (true from the moment [`Server::run_until`]'s `stop` says so, through the drain).
    pub fn readiness(&self) -> Readiness {
        let generations = Arc::clone(&self.generations);
        let health: HealthSource = Arc::new(move || Arc::clone(&generations.borrow().health));
        Readiness::new(health, self.stop.subscribe())
    }

    /// What reopens the access log's file (SIGUSR1), when the log goes to a file.
    pub fn access_log_reopener(&self) -> Option<Reopener> {
        self.access_log.as_ref().and_then(AccessLog::reopener)
    }

    /// The count of access log lines dropped (for the metrics), when the log is on.
    pub fn access_log_dropped(&self) -> Option<Arc<std::sync::atomic::AtomicU64>> {
        self.access_log.as_ref().map(AccessLog::dropped)
    }

    /// Serves until `stop` says so, then drains. `stop` is called in a loop; it waits up to
    /// the duration it is given for a reason to stop and returns it (`None`: carry on).
    /// Between calls the server writes its periodic log lines. Fails if a worker thread ends
    /// on its own (it only does if it crashed).
    pub fn run_until<R>(self, mut stop: impl FnMut(Duration) -> Option<R>) -> anyhow::Result<R> {
        // Start-up is over: the code it ran is not needed again.
        memory::unmap_code_pages();
        let mut summaries_due = Instant::now() + ratelimit::WINDOW;
        let mut requests_seen = self.requests_done();
        loop {
            if let Some(reason) = stop(Duration::from_millis(500)) {
                // The configuration in use says how long, a reload's included (the workers
                // read the same value for their drain). Another stop signal meanwhile
                // ends it at once, as a second Ctrl-C is meant to.
                let grace = self.generations.borrow().config.shutdown_timeout;
                self.shut_down_watching(grace, |wait| stop(wait).is_some());
                return Ok(reason);
            }
            if Instant::now() >= summaries_due {
                fail::log_suppressed();
                ratelimit::log_suppressed();
                if let Some(log) = &self.access_log {
                    log.report_dropped();
                }
                let served = self.requests_done() - requests_seen;
                // Code first: reading smaps allocates, and the trim then frees that too.
                if served < IDLE_REQUESTS {
                    memory::unmap_code_pages();
                }
                if served < QUIET_REQUESTS {
                    memory::release_freed_heap();
                }
                requests_seen += served;
                summaries_due = Instant::now() + ratelimit::WINDOW;
            }
            if self.threads.iter().any(JoinHandle::is_finished) {
                self.shut_down(Duration::ZERO);
                bail!("a worker thread stopped unexpectedly");
            }
        }
    }

    /// Requests answered so far, all workers together.
    fn requests_done(&self) -> u64 {
        self.stats
            .iter()
            .map(|s| s.requests_done.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }

    /// Stops accepting, lets in-flight requests finish within `grace`, and joins the workers.
    pub fn shut_down(self, grace: Duration) {
        self.shut_down_watching(grace, |wait| {
            std::thread::sleep(wait);
            false
        });
    }

    /// [`Server::shut_down`], asking `again` (which waits up to the time it is given)
    /// whether to end the drain at once: the requests still in flight are cut, as nginx's
    /// fast stop cuts them.
    fn shut_down_watching(self, grace: Duration, mut again: impl FnMut(Duration) -> bool) {
        // First no more connections: every listener is shut at once, so nothing new queues
        // on them (a new ringway on the port steers new connections to itself anyway, and
        // takes what is still queued here; without its steering, what is queued is reset
        // unless net.ipv4.tcp_migrate_req moves it). Only then are the
        // connections told to close: a keep-alive client told so reconnects, and must find
        // only a listener that will accept it.
        self.closing.store(true, Ordering::Release);
        for fd in &self.listening {
            // SAFETY: `fd` is a valid descriptor this server owns (a duplicate of a
            // listener's); shutting down a listening socket makes its pending accepts fail.
            unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RD) };
        }
        self.stop.send_replace(true);
        // Workers bound their own drain by `shutdown_timeout`; this is a backstop.
        let deadline = Instant::now() + grace + Duration::from_secs(2);
        for thread in self.threads {
            while !thread.is_finished() && Instant::now() < deadline {
                if again(Duration::from_millis(10)) && !*self.cut.borrow() {
                    tracing::info!("stop signal again: ending the requests in flight now");
                    self.cut.send_replace(true);
                }
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
        // The workers flushed their lines as they ended: the writer writes what is queued.
        if let Some(log) = self.access_log {
            log.finish(ACCESS_LOG_DRAIN);
        }
        fail::log_suppressed();
        ratelimit::log_suppressed();
    }
}

/// What a worker thread is started with (all `Send`); it builds its [`Worker`]s from them
/// and each configuration generation.
struct ThreadParts {
    tls_port: Option<u16>,
    closing: Arc<AtomicBool>,
    stats: Arc<WorkerStats>,
    every_worker: Arc<[Arc<WorkerStats>]>,
    probes: ProbeHandle,
    budget: Arc<Budget>,
    request_ids: IdSource,
    access_log: Option<WorkerLog>,
    generations: watch::Receiver<Arc<Generation>>,
    cut: watch::Receiver<bool>,
}

/// What stays with a worker thread whatever the configuration generation.
struct ThreadState {
    tls_port: Option<u16>,
    /// Set once this thread's listeners were shut.
    stop: Rc<Stop>,
    closing: Arc<AtomicBool>,
    stats: Arc<WorkerStats>,
    every_worker: Arc<[Arc<WorkerStats>]>,
    probes: ProbeHandle,
    budget: Arc<Budget>,
    request_ids: Rc<IdSource>,
    access_log: Option<Rc<WorkerLog>>,
    /// Every connection task of this thread, so the drain can wait for them.
    tracker: TaskTracker,
    idle: Rc<IdleConns>,
    /// Set by a second stop signal: the drain ends at once.
    cut: watch::Receiver<bool>,
}

impl ThreadParts {
    fn into_state(self) -> std::io::Result<(ThreadState, watch::Receiver<Arc<Generation>>)> {
        let tracker = TaskTracker::new();
        let idle = Rc::new(IdleConns::new(tracker.clone())?);
        let state = ThreadState {
            tls_port: self.tls_port,
            stop: Rc::default(),
            closing: self.closing,
            stats: self.stats,
            every_worker: self.every_worker,
            probes: self.probes,
            budget: self.budget,
            request_ids: Rc::new(self.request_ids),
            access_log: self.access_log.map(Rc::new),
            tracker,
            idle,
            cut: self.cut,
        };
        Ok((state, self.generations))
    }
}

impl ThreadState {
    /// This thread's `Worker` for `generation`.
    fn worker(&self, generation: &Generation) -> Worker {
        let config = &generation.config;
        let hsts = config.tls.as_ref().and_then(|t| t.hsts.as_deref());
        let groups = config.groups.iter().zip(generation.health.groups());
        if let (Some(log), Some(settings)) = (&self.access_log, &config.access_log) {
            log.set_format(settings.format.clone());
        }
        Worker {
            generation: generation.number,
            upstreams: groups
                .enumerate()
                .map(|(i, (group, health))| {
                    Upstreams::new(group, generation.limits.slots(i), health)
                })
                .collect(),
            hsts: hsts.map(Rc::from),
            config: Arc::clone(config),
            tls_port: self.tls_port,
            acceptor: generation.acceptor.clone(),
            stop: Rc::clone(&self.stop),
            stats: Arc::clone(&self.stats),
            every_worker: Arc::clone(&self.every_worker),
            probes: Arc::clone(&self.probes),
            budget: Arc::clone(&self.budget),
            files: FileCache::default(),
            limits: Arc::clone(&generation.limits),
            request_ids: Rc::clone(&self.request_ids),
            access_log: self.access_log.clone(),
            log_names: Arc::clone(&generation.log_names),
            route_ids: Arc::clone(&generation.route_ids),
            idle: Rc::clone(&self.idle),
        }
    }
}

/// The worker's runtime, its ring set up with `IORING_SETUP_COOP_TASKRUN` where the kernel
/// has it (5.19; `coop_taskrun`). Without it, task work queued while the worker runs on
/// its CPU is forced through with an IPI (in a VM usually an exit); with it the work runs
/// at the worker's next return to user space, from any system call, fault or interrupt,
/// and a worker asleep in `epoll_wait` is woken as before (docs/ARCHITECTURE.md,
/// "tokio-uring", with the measurements).
fn uring_runtime() -> std::io::Result<tokio_uring::Runtime> {
    let mut builder = tokio_uring::builder();
    builder.entries(RING_ENTRIES);
    if coop_taskrun() {
        let mut ring = tokio_uring::uring_builder();
        ring.setup_coop_taskrun();
        builder.uring_builder(&ring);
    }
    tokio_uring::Runtime::new(&builder)
}

/// Whether this kernel takes `IORING_SETUP_COOP_TASKRUN`: asked once, with a ring of two
/// entries made and dropped. (Asked by building the runtime instead, a refusal would leak
/// the Tokio runtime tokio-uring builds before its ring.) Any other failure is left for
/// the runtime's own ring to report.
fn coop_taskrun() -> bool {
    static TAKEN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TAKEN.get_or_init(
        || match tokio_uring::uring_builder().setup_coop_taskrun().build(2) {
            Ok(_) => true,
            Err(err) => {
                if err.raw_os_error() == Some(libc::EINVAL) {
                    tracing::info!(
                        "io_uring: IORING_SETUP_COOP_TASKRUN not available (a kernel before \
                         5.19); rings without it"
                    );
                }
                false
            }
        },
    )
}

fn run_worker(
    listeners: Vec<Bound>,
    parts: ThreadParts,
    cpu: Option<usize>,
    ready: mpsc::Sender<Result<(), String>>,
) {
    if let Some(cpu) = cpu {
        pin_to_cpu(cpu);
    }
    crate::alloc::keep_blocks_on_this_thread();
    let runtime = match uring_runtime() {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ = ready.send(Err(uring_error::explain(&err)));
            return;
        }
    };
    let (state, generations) = match parts.into_state() {
        Ok(state) => state,
        Err(err) => {
            let _ = ready.send(Err(format!("epoll_create1: {err}")));
            return;
        }
    };
    let first = Arc::clone(&generations.borrow());
    generation::install(Rc::new(state.worker(&first)));
    drop(first);
    runtime.block_on(serve(listeners, Rc::new(state), generations, ready));
    // What the runtime and the connections free from here on goes straight back to glibc.
    crate::alloc::stop_keeping_blocks_on_this_thread();
}

/// Builds this thread's `Worker` for each new configuration generation and makes it the
/// current one (the old one lives on with the requests that hold it).
async fn follow_generations(
    state: Rc<ThreadState>,
    mut generations: watch::Receiver<Arc<Generation>>,
) {
    while generations.changed().await.is_ok() {
        let next = Arc::clone(&generations.borrow_and_update());
        // The old generation's kept upstream connections and open files would otherwise
        // stay open as long as anything holds it (a long download, a WebSocket).
        if let Some(old) = generation::current() {
            old.upstreams.iter().for_each(Upstreams::retire_pools);
            old.files.clear();
        }
        state.idle.retune(&next.config);
        generation::install(Rc::new(state.worker(&next)));
        // Connections waiting idle outside the parked set (TLS, HTTP/2) look again.
        state.stop.reloaded();
    }
}

/// Closes this worker's kept upstream connections once idle past their group's
/// `keepalive_timeout` (one timer per worker, none per connection). A generation replaced by
/// a reload has its pools retired (`follow_generations`).
async fn sweep_idle_upstreams() {
    loop {
        let now = std::time::Instant::now();
        let next = generation::current()
            .and_then(|w| w.upstreams.iter().filter_map(|g| g.sweep(now)).min())
            .unwrap_or(IDLE_SWEEP_CHECK);
        tokio::time::sleep(next).await;
    }
}

/// How often a worker's event loop says it turns (`WorkerStats::beat`).
const HEARTBEAT: Duration = Duration::from_secs(1);

/// How often a worker looks for kept upstream connections to sweep when it keeps none.
const IDLE_SWEEP_CHECK: Duration = Duration::from_secs(1);

/// One worker's accept loops (one per listening address), then its drain.
async fn serve(
    listeners: Vec<Bound>,
    state: Rc<ThreadState>,
    generations: watch::Receiver<Arc<Generation>>,
    ready: mpsc::Sender<Result<(), String>>,
) {
    let tracker = state.tracker.clone();
    tracker.spawn_local(Rc::clone(&state.idle).watch(Rc::clone(&state.stop)));
    let accept_loops: Vec<_> = listeners
        .into_iter()
        .map(|bound| {
            let (closing, tracker) = (Arc::clone(&state.closing), tracker.clone());
            tokio_uring::spawn(async move { accept_loop(bound, &closing, &tracker).await })
        })
        .collect();
    tokio_uring::spawn(follow_generations(Rc::clone(&state), generations));
    tokio_uring::spawn(crate::closing::closer());
    // The event loop turns: `/healthz` reads it (a task of its own, so that its beat is
    // every second whatever else runs on the housekeeping's 5 s).
    let stats = Arc::clone(&state.stats);
    tokio_uring::spawn(async move {
        loop {
            tokio::time::sleep(HEARTBEAT).await;
            stats.beat();
        }
    });
    // A quiet worker gives its pooled buffers back (the main thread then returns the pages).
    let stats = Arc::clone(&state.stats);
    tokio_uring::spawn(async move {
        let mut seen = 0;
        loop {
            tokio::time::sleep(ratelimit::WINDOW).await;
            let done = stats
                .requests_done
                .load(std::sync::atomic::Ordering::Relaxed);
            if done - seen < QUIET_REQUESTS {
                release_idle_buffers();
            }
            seen = done;
        }
    });
    // Access log lines go to the writer at least once a second.
    if let Some(log) = &state.access_log {
        tokio_uring::spawn(access_log::flush_periodically(Rc::clone(log)));
    }
    tokio_uring::spawn(sweep_idle_upstreams());
    let _ = ready.send(Ok(()));

    for accept_loop in accept_loops {
        let _ = accept_loop.await;
    }
    // The listeners were shut ([`Server::shut_down`]): the server is stopping.
    state.stop.begin();
    tracker.close();
    // The drain is bounded by the configuration in use when it started.
    let grace = generation::current().map_or(Duration::ZERO, |w| w.config.shutdown_timeout);
    let mut cut = state.cut.clone();
    let cut = async move {
        // A sender gone (the server dropped mid-start) is no word to cut.
        if cut.wait_for(|cut| *cut).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let drained = tokio::select! {
        drained = tokio::time::timeout(grace, tracker.wait()) => {
            if drained.is_err() {
                tracing::warn!(
                    left = tracker.len(),
                    "shutdown timeout reached with requests in flight"
                );
            }
            drained.is_ok()
        }
        () = cut => {
            tracing::warn!(
                left = tracker.len(),
                "stopped at once, by a second stop signal, with requests in flight"
            );
            false
        }
    };
    if !drained {
        end_in_flight(&state.stats, &tracker).await;
    }
    state.idle.close_all();
    if let Some(log) = &state.access_log {
        log.flush_at_exit().await;
    }
    generation::clear();
    // Returning drops the runtime, which cancels whatever ops are left.
}

/// How long the requests still in flight when a drain is cut short get to end once their
/// connections are shut down: enough to log them, not to wait for their apps.
const CUT_GRACE: Duration = Duration::from_secs(1);

/// Ends the requests still in flight when the drain's grace ran out (or a second stop
/// signal came): every client connection is shut down, so each request ends as if its
/// client had gone (499 while at its app, an answer cut midway, a WebSocket ended) and
/// is logged and counted, as nginx's `worker_shutdown_timeout` closes its connections
/// and finalizes their requests (found by review: the runtime's end dropped them, with
/// no log line and no count). One still running after [`CUT_GRACE`] is dropped with the
/// runtime: a request kept at its app by `ignore_client_abort`.
async fn end_in_flight(stats: &WorkerStats, tracker: &TaskTracker) {
    for fd in stats.live_sockets() {
        // SAFETY: shutdown(2) on a descriptor number, no memory involved. Each is a live
        // connection's socket, left open until the connection leaves the table; were one
        // closed and its number reused meanwhile, what is shut down belongs to a process
        // that is stopping.
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    }
    if tokio::time::timeout(CUT_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            left = tracker.len(),
            "requests still in flight after their connections were shut down; dropped"
        );
    }
}

/// Accepts on `bound` until the server stops, serving each connection with the
/// configuration generation current when it was accepted. An accept op cannot be dropped
/// safely (tokio-uring #129), so stopping shuts the listening socket down instead
/// ([`Server::shut_down`], after setting `closing`): the pending accept then fails and the
/// loop ends.
async fn accept_loop(bound: Bound, closing: &AtomicBool, tracker: &TaskTracker) {
    let Bound {
        socket,
        local,
        scheme,
    } = bound;
    let listener = TcpListener::from_std(socket);
    let mut last_warning = None;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let Some(worker) = generation::current() else {
                    break;
                };
                match scheme {
                    Scheme::Tls => {
                        tracker.spawn_local(conn::serve_tls(stream, peer, local, worker))
                    }
                    // Chosen per connection: a plain connection without the PROXY protocol
                    // pays nothing for it.
                    Scheme::Plain if worker.config.proxy_protocol => {
                        tracker.spawn_local(conn::serve_proxied(stream, peer, local, worker))
                    }
                    Scheme::Plain => tracker.spawn_local(conn::serve(stream, peer, local, worker)),
                };
            }
            Err(_) if closing.load(Ordering::Acquire) => break,
            Err(err) => {
                // EMFILE and friends: back off instead of spinning (connections wait in the
                // backlog meanwhile), and say so once a second, not once a try.
                if last_warning.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(error = %err, "accept failed; retrying");
                    last_warning = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    // SAFETY: CPU_ISSET reads the set within its bounds (i < CPU_SETSIZE).
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

fn pin_to_cpu(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` comes from sched_getaffinity, so it is below CPU_SETSIZE; the call only
    // affects the calling thread (pid 0).
    let rc = unsafe {
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        tracing::debug!(cpu, "could not pin worker thread");
    }
}

/// A worker for unit tests of the driver, outside any server.
#[cfg(test)]
pub(crate) fn test_worker(config: Config) -> Rc<Worker> {
    let budget = Arc::new(Budget::new(config.buffering.max_buffer_memory));
    let generation =
        Generation::first(config, &RouteNames::default()).expect("a test configuration");
    let stats = Arc::<WorkerStats>::default();
    let state = ThreadState {
        tls_port: None,
        stop: Rc::default(),
        closing: Arc::default(),
        every_worker: Arc::new([Arc::clone(&stats)]),
        stats,
        probes: ProbeHandle::default(),
        budget,
        request_ids: Rc::new(IdSource::from_os().expect("seeding the request IDs")),
        access_log: None,
        tracker: TaskTracker::new(),
        idle: Rc::new(IdleConns::new(TaskTracker::new()).expect("an epoll instance")),
        cut: watch::channel(false).1,
    };
    Rc::new(state.worker(&generation))
}
