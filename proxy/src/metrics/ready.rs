//! `/readyz`: whether this ringway should be sent traffic. Not while it is stopping (from
//! the moment a stop signal arrives, through the drain), and not while an upstream group
//! has no server accepting connections, since all its requests would get 502.
//!
//! A server counts as accepting when a worker connected to it within [`RECENT`] and was not
//! refused since (`upstream/health.rs`, written on the workers' connect path). When that
//! says nothing, because the server is idle or was refused last, the endpoint thread tries
//! a connect itself, bounded by [`PROBE_TIMEOUT`]: an idle but healthy upstream reads ready,
//! a dead one does not. A probe that connects counts like a worker's connect, so an idle
//! upstream is probed at most once per [`RECENT`].

use std::io;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};
use tokio::sync::watch;

use super::snapshot::GroupConnFigures;
use crate::config::UpstreamAddr;
use crate::upstream::{GroupHealth, ServerHealth, UpstreamHealth};

/// How long a connect by any worker vouches for a server.
pub const RECENT: Duration = Duration::from_secs(5);
/// How long the endpoint waits for a probe's TCP connect (a unix connect answers at once).
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Reads the health of the upstreams in use (a reload changes them).
pub type HealthSource = Arc<dyn Fn() -> Arc<UpstreamHealth> + Send + Sync>;

/// What `/readyz` reads: the upstreams' health and the server's stop signal.
pub struct Readiness {
    health: HealthSource,
    stopping: watch::Receiver<bool>,
}

impl Readiness {
    /// Readiness from these servers' health and this stop signal.
    pub fn new(health: HealthSource, stopping: watch::Receiver<bool>) -> Self {
        Readiness { health, stopping }
    }

    /// The connections each group's servers were given (HTTP groups reuse theirs).
    pub fn conn_figures(&self) -> Vec<GroupConnFigures> {
        (self.health)()
            .groups()
            .iter()
            .map(|g| GroupConnFigures {
                upstream: g.name.clone(),
                opened: g.conns.opened.load(Ordering::Relaxed),
                reused: g.conns.reused.load(Ordering::Relaxed),
                upgraded: g.conns.upgraded.load(Ordering::Relaxed),
                connect_failed: g.conns.connect_failed.load(Ordering::Relaxed),
                passed_on: g.conns.passed_on.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Whether a stop signal came (the drain is under way).
    pub fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// `Ok` when ready; otherwise why not, as one line for the answer's body.
    pub fn check(&self) -> Result<(), String> {
        if self.stopping() {
            return Err("not ready: shutting down".to_owned());
        }
        let health = (self.health)();
        for group in health.groups().iter().filter(|g| g.routed) {
            group_accepts(group)?;
        }
        Ok(())
    }
}

/// `Ok` if one of the group's servers (those not marked `down`) accepts connections;
/// otherwise what each said.
fn group_accepts(group: &GroupHealth) -> Result<(), String> {
    let now = Instant::now();
    let servers = group.servers.iter().filter(|s| !s.down);
    if servers.clone().any(|s| s.accepted_within(RECENT, now)) {
        return Ok(());
    }
    // Every server at once, and the first that accepts answers: one after another, a few
    // that take no connection (500 ms each) would put the answer past the kubelet's 1 s
    // (found by review). A server no thread could be made for is probed here.
    let (tx, rx) = mpsc::channel();
    let mut pending = 0;
    for server in servers {
        let (mine, told) = (Arc::clone(server), tx.clone());
        let spawned = std::thread::Builder::new()
            .name("ringway-readyz".into())
            .spawn(move || {
                let res = probe(&mine);
                let _ = told.send((mine, res));
            });
        if spawned.is_err() {
            let _ = tx.send((Arc::clone(server), probe(server)));
        }
        pending += 1;
    }
    drop(tx);
    let mut failures = Vec::with_capacity(pending);
    for (server, res) in rx.iter().take(pending) {
        match res {
            Ok(()) => return Ok(()),
            Err(err) => failures.push(format!("{}: {err}", server.addr)),
        }
    }
    if failures.is_empty() {
        failures.push("every server is marked down".to_owned());
    }
    Err(format!(
        "not ready: upstream group {:?} has no server accepting connections ({})",
        group.name,
        failures.join("; ")
    ))
}

/// Tries a connect to `server` and closes it at once; records what it learnt.
fn probe(server: &ServerHealth) -> io::Result<()> {
    let started = Instant::now();
    match connect(&server.addr) {
        Ok(()) => {
            server.connected(started);
            Ok(())
        }
        Err(err) => {
            if err.kind() == io::ErrorKind::ConnectionRefused {
                server.refused(started);
            }
            Err(err)
        }
    }
}

/// Connects to `addr` once and closes: does anything accept there? A full backlog counts
/// as accepting. Also used to wait for the app at start (`app/ready.rs`).
pub(crate) fn connect(addr: &UpstreamAddr) -> io::Result<()> {
    match addr {
        UpstreamAddr::Unix(path) => {
            // Non-blocking, as the workers connect: a blocking connect to a full backlog
            // would wait for a slot and hold up the endpoint.
            let socket = Socket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)?;
            match socket.connect(&SockAddr::unix(path)?) {
                Ok(()) => Ok(()),
                // The backlog is full: uWSGI is there, and busy. Under a load spike, every
                // ringway reading unready at once would turn overload into an outage.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(()),
                Err(err) => Err(err),
            }
        }
        UpstreamAddr::Tcp(sa) => TcpStream::connect_timeout(sa, PROBE_TIMEOUT).map(drop),
    }
}
