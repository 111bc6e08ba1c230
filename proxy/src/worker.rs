//! What every connection of one worker thread shares: settings, the upstream group, the stop
//! signal, counters. One per thread and configuration generation, behind an `Rc`
//! (generation.rs): nothing here is shared between workers except through the `Arc`s, which
//! are read-only or atomic.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::access_log::{LogNames, WorkerLog};
use crate::buffer::Budget;
use crate::config::Config;
use crate::conn::IdleConns;
use crate::identity::IdSource;
use crate::limits::Limiters;
use crate::metrics::{ProbeHandle, WorkerStats};
use crate::static_files::FileCache;
use crate::tls::Acceptor;
use crate::upstream::Upstreams;

/// One worker thread's shared context.
pub(crate) struct Worker {
    /// The configuration generation this was built from (generation.rs).
    pub(crate) generation: u64,
    /// Settings.
    pub(crate) config: Arc<Config>,
    /// This worker's view of each upstream group, in the configuration's order.
    pub(crate) upstreams: Vec<Upstreams>,
    /// The port plain requests are redirected to for HTTPS (the first TLS address's), if
    /// TLS is on.
    pub(crate) tls_port: Option<u16>,
    /// The TLS configuration new handshakes use (reloaded on SIGHUP).
    pub(crate) acceptor: Option<Arc<Acceptor>>,
    /// Strict-Transport-Security for TLS answers, if configured.
    pub(crate) hsts: Option<Rc<str>>,
    /// Set when the server starts shutting down.
    pub(crate) stop: Rc<Stop>,
    /// This worker's counters, read by the metrics endpoint.
    pub(crate) stats: Arc<WorkerStats>,
    /// Every worker's counters, this one's too: the status page (`stub_status`) sums them.
    pub(crate) every_worker: Arc<[Arc<WorkerStats>]>,
    /// The eBPF probes (told of each accepted connection).
    pub(crate) probes: ProbeHandle,
    /// The process-wide memory budget for buffered bodies and answers.
    pub(crate) budget: Arc<Budget>,
    /// Files this worker opened lately, for static routes.
    pub(crate) files: FileCache,
    /// The process-wide limits: connections, request rates, upstream slots.
    pub(crate) limits: Arc<Limiters>,
    /// Makes this worker's request IDs (one generator per thread, whatever the generation).
    pub(crate) request_ids: Rc<IdSource>,
    /// This worker's side of the access log, when it is on.
    pub(crate) access_log: Option<Rc<WorkerLog>>,
    /// The route labels and upstream addresses of this generation, as log lines name them.
    pub(crate) log_names: Arc<LogNames>,
    /// Each route's stable metric id, by route index.
    pub(crate) route_ids: Arc<[Option<u16>]>,
    /// This thread's parked keep-alive connections (shared by its generations).
    pub(crate) idle: Rc<IdleConns>,
}

/// A worker thread's stop signal, set once, when its listeners were shut (the server is
/// stopping), and told to whoever waits for it; its waiters for [`Stop::changed`] are also
/// told of each reload. One per thread: reading it, as every answer's `Connection` header
/// does, touches nothing another thread writes (a `watch::Receiver` shared by the workers
/// took a lock on a line both wrote to).
#[derive(Default)]
pub(crate) struct Stop {
    set: Cell<bool>,
    told: Notify,
}

impl Stop {
    /// Sets the signal and wakes its waiters.
    pub(crate) fn begin(&self) {
        if !self.set.replace(true) {
            self.told.notify_waiters();
        }
    }

    /// Whether the signal is set.
    pub(crate) fn is_set(&self) -> bool {
        self.set.get()
    }

    /// A new configuration generation is in use: wakes the waiters of [`Stop::changed`]
    /// (those of [`Stop::wait`] wait on).
    pub(crate) fn reloaded(&self) {
        self.told.notify_waiters();
    }

    /// Resolves once the signal is set. The check and the wait's registration happen in
    /// one poll, and only a task of this thread sets it: no wake-up is missed.
    pub(crate) async fn wait(&self) {
        while !self.set.get() {
            self.told.notified().await;
        }
    }

    /// Resolves once the signal is set, or at the next reload (the caller asks which).
    pub(crate) async fn changed(&self) {
        if !self.set.get() {
            self.told.notified().await;
        }
    }
}

impl Worker {
    /// True once shutdown has begun: finish the current request, take no more.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stop.is_set()
    }

    /// The counts of connections to upstream group `group`.
    pub(crate) fn upstream_conns(&self, group: usize) -> Option<&crate::upstream::ConnCounts> {
        self.upstreams.get(group).map(|g| g.conn_counts())
    }

    /// The metric id of the route at `index` (its label survives reloads that move it).
    pub(crate) fn route_id(&self, index: usize) -> Option<u16> {
        self.route_ids.get(index).copied().flatten()
    }
}
