//! Configuration generations: what a reload (SIGHUP) swaps.
//!
//! A [`Generation`] is one checked configuration and the process-wide state made from it
//! (certificates, limits, upstream health, metric ids). The main thread makes one at start
//! and one per accepted reload, and publishes it on a watch channel; each worker thread
//! builds its own [`Worker`] from it and makes that its *current* one (a thread-local `Rc`).
//!
//! A connection takes the current `Worker` when it is accepted, and again before each of its
//! requests (a keep-alive connection moves to the new configuration at its next request);
//! a request in flight keeps the `Worker` it started with. An old generation is freed when
//! its last request or idle connection lets go of it: nothing waits for it, nothing tracks it.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::Context;

use crate::access_log::LogNames;
use crate::config::Config;
use crate::limits::Limiters;
use crate::metrics::RouteNames;
use crate::tls::Acceptor;
use crate::upstream::UpstreamHealth;
use crate::worker::Worker;

/// One configuration's worth of what every worker shares (all `Send + Sync`).
pub(crate) struct Generation {
    /// Counts from 1 (the start); each accepted reload adds one.
    pub(crate) number: u64,
    /// The checked configuration.
    pub(crate) config: Arc<Config>,
    /// The certificates new handshakes use, if TLS is on.
    pub(crate) acceptor: Option<Arc<Acceptor>>,
    /// The limits' shared state (carried over from the previous generation where unchanged).
    pub(crate) limits: Arc<Limiters>,
    /// What the upstream servers last said to a connect.
    pub(crate) health: Arc<UpstreamHealth>,
    /// Each route's stable metric id, by route index (see `metrics::RouteNames`).
    pub(crate) route_ids: Arc<[Option<u16>]>,
    /// The route labels and upstream addresses access log lines name.
    pub(crate) log_names: Arc<LogNames>,
}

impl Generation {
    /// The generation a server starts with (the certificates are loaded here).
    pub(crate) fn first(config: Config, names: &RouteNames) -> anyhow::Result<Generation> {
        let routed = |group| config.routes.sends_to(group);
        let health = Arc::new(UpstreamHealth::new(&config.groups, routed, None));
        Generation::made(1, config, Limiters::new, health, names, None)
    }

    /// The generation after this one, from the configuration a reload read; fails (nothing
    /// changed) if its certificates cannot be loaded.
    pub(crate) fn next(&self, config: Config, names: &RouteNames) -> anyhow::Result<Generation> {
        let limits = |config: &Config| Limiters::renewed(config, &self.limits, &self.config);
        let acceptor = self.acceptor.as_deref();
        let routed = |group| config.routes.sends_to(group);
        let health = Arc::new(UpstreamHealth::new(
            &config.groups,
            routed,
            Some(&self.health),
        ));
        Generation::made(self.number + 1, config, limits, health, names, acceptor)
    }

    fn made(
        number: u64,
        config: Config,
        limits: impl FnOnce(&Config) -> Limiters,
        health: Arc<UpstreamHealth>,
        names: &RouteNames,
        previous: Option<&Acceptor>,
    ) -> anyhow::Result<Generation> {
        let acceptor = match &config.tls {
            Some(tls) => Some(Arc::new(Acceptor::new(tls, previous).context("TLS")?)),
            None => None,
        };
        // After the last step that can fail: a reload may retune the limits in use, which
        // a refused one must not.
        let limits = Arc::new(limits(&config));
        let labels = config.route_labels();
        let log_names = LogNames {
            upstreams: config
                .groups
                .iter()
                .map(|g| g.servers.iter().map(|s| s.addr.to_string()).collect())
                .collect(),
            routes: labels.clone(),
            server_name: config.server_name.clone(),
            hostname: crate::access_log::hostname(),
            pid: std::process::id(),
        };
        Ok(Generation {
            number,
            acceptor,
            limits,
            health,
            route_ids: names.ids(&labels).into(),
            log_names: Arc::new(log_names),
            config: Arc::new(config),
        })
    }
}

thread_local! {
    /// This worker thread's current `Worker` (none outside a worker thread).
    static CURRENT: RefCell<Option<Rc<Worker>>> = const { RefCell::new(None) };
}

/// Makes `worker` what this thread's new connections and requests use.
pub(crate) fn install(worker: Rc<Worker>) {
    CURRENT.with(|current| *current.borrow_mut() = Some(worker));
}

/// This thread's current `Worker`, if one was installed.
pub(crate) fn current() -> Option<Rc<Worker>> {
    CURRENT.with(|current| current.borrow().clone())
}

/// The current configuration's `keepalive_timeout` (`None` outside a worker thread): what
/// a connection idle now is held to, whichever generation it last served under.
pub(crate) fn keepalive_timeout() -> Option<std::time::Duration> {
    CURRENT.with(|current| {
        current
            .borrow()
            .as_ref()
            .map(|w| w.config.keepalive_timeout)
    })
}

/// The current `Worker` if it belongs to a newer generation than `worker`'s.
pub(crate) fn newer_than(worker: &Worker) -> Option<Rc<Worker>> {
    CURRENT.with(|current| {
        current
            .borrow()
            .as_ref()
            .filter(|w| w.generation != worker.generation)
            .cloned()
    })
}

/// Forgets this thread's current `Worker` (at the end of the drain, so that what it holds,
/// the access log's queue among it, is dropped before the thread ends).
pub(crate) fn clear() {
    CURRENT.with(|current| current.borrow_mut().take());
}
