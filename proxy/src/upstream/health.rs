//! What the process knows of each upstream server's health, for `/readyz`: when a worker
//! last connected to it, and when one was last refused. Every worker writes the same
//! process-wide atomics on its connect path (one relaxed store per connect, nothing read);
//! the metrics endpoint reads them, and probes a server itself when they say nothing recent
//! (`metrics/ready.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::{Group, UpstreamAddr};

/// Every group's servers, in the configuration's order.
#[derive(Debug)]
pub struct UpstreamHealth {
    groups: Vec<GroupHealth>,
}

/// One upstream group's servers.
#[derive(Debug)]
pub struct GroupHealth {
    /// The group's name.
    pub name: String,
    /// A route sends requests to it: `/readyz` waits for it (a group no route names, left
    /// in the file, must not keep every instance out of rotation; found by review).
    pub routed: bool,
    /// Its servers, in the configuration's order.
    pub servers: Vec<Arc<ServerHealth>>,
    /// Connections to them opened and reused, by every worker.
    pub conns: Arc<ConnCounts>,
}

/// Connections a group's servers were given: new ones, and kept ones used again (HTTP).
#[derive(Debug, Default)]
pub struct ConnCounts {
    /// Connections opened.
    pub opened: AtomicU64,
    /// Kept connections given another request.
    pub reused: AtomicU64,
    /// Connections joined to a client's after a protocol switch (101).
    pub upgraded: AtomicU64,
    /// Connects that failed, whether another server then took the request or not.
    pub connect_failed: AtomicU64,
    /// Requests sent on to another server after one failed them (`next_upstream`).
    pub passed_on: AtomicU64,
}

/// One server of a group. Times are kept as milliseconds since `epoch`, plus one (0:
/// never), so that they fit an atomic.
#[derive(Debug)]
pub struct ServerHealth {
    /// Its address.
    pub addr: UpstreamAddr,
    /// Marked `down`: it takes no requests, and says nothing of the group's readiness.
    pub down: bool,
    epoch: Instant,
    connected: AtomicU64,
    refused: AtomicU64,
}

impl UpstreamHealth {
    /// Nothing known yet of these groups' servers. A group named as one of `previous`'s (the
    /// configuration a reload replaces) counts on in that group's connection counters, so
    /// the `_total` series never go back, and the old configuration's last requests still
    /// count.
    pub fn new(
        groups: &[Group],
        routed: impl Fn(usize) -> bool,
        previous: Option<&UpstreamHealth>,
    ) -> Self {
        let epoch = Instant::now();
        let groups = groups
            .iter()
            .enumerate()
            .map(|(index, group)| GroupHealth {
                name: group.name.clone(),
                routed: routed(index),
                servers: group
                    .servers
                    .iter()
                    .map(|server| {
                        Arc::new(ServerHealth {
                            addr: server.addr.clone(),
                            down: server.options.down,
                            epoch,
                            connected: AtomicU64::new(0),
                            refused: AtomicU64::new(0),
                        })
                    })
                    .collect(),
                conns: previous
                    .and_then(|p| p.groups.iter().find(|g| g.name == group.name))
                    .map(|g| Arc::clone(&g.conns))
                    .unwrap_or_default(),
            })
            .collect();
        UpstreamHealth { groups }
    }

    /// The groups, in the configuration's order.
    pub fn groups(&self) -> &[GroupHealth] {
        &self.groups
    }
}

impl ServerHealth {
    /// A connection to it, started at `at`, was accepted. Stored only when the millisecond
    /// changed: every worker writes here for each request it sends, and a line that only
    /// one writes now and then is not bounced between their caches.
    pub fn connected(&self, at: Instant) {
        let stamp = self.stamp(at);
        if self.connected.load(Ordering::Relaxed) != stamp {
            self.connected.store(stamp, Ordering::Relaxed);
        }
    }

    /// A connection to it, started at `at`, was refused: nothing listens there.
    pub fn refused(&self, at: Instant) {
        self.refused.store(self.stamp(at), Ordering::Relaxed);
    }

    /// Whether it accepted a connection within `window` before `now`, and was not refused
    /// one since.
    pub fn accepted_within(&self, window: Duration, now: Instant) -> bool {
        let connected = self.connected.load(Ordering::Relaxed);
        let refused = self.refused.load(Ordering::Relaxed);
        connected != 0 && connected >= refused && connected + ms(window) >= self.stamp(now)
    }

    fn stamp(&self, at: Instant) -> u64 {
        ms(at.saturating_duration_since(self.epoch)) + 1
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn group(name: &str) -> Group {
        Group {
            name: name.into(),
            servers: vec![crate::config::GroupServer {
                addr: UpstreamAddr::Unix("/run/app.sock".into()),
                name: None,
                options: crate::config::ServerOptions::default(),
            }],
            protocol: crate::config::Protocol::Uwsgi,
            buffer_size: 4096,
            keepalive: crate::config::KeepAlive {
                idle: 0,
                timeout: Duration::from_secs(60),
                requests: 1000,
                time: Duration::from_secs(3600),
            },
            slots: None,
            balance: Default::default(),
        }
    }

    fn one_server() -> UpstreamHealth {
        UpstreamHealth::new(&[group("app")], |_| true, None)
    }

    #[test]
    fn a_reload_keeps_counting_a_group_of_the_same_name() {
        let old = UpstreamHealth::new(&[group("app"), group("gone")], |_| true, None);
        old.groups()[0].conns.opened.fetch_add(3, Ordering::Relaxed);
        let new = UpstreamHealth::new(&[group("new"), group("app")], |_| true, Some(&old));
        // The old configuration's last request still counts where the new one reads.
        old.groups()[0].conns.opened.fetch_add(1, Ordering::Relaxed);
        let opened =
            |h: &UpstreamHealth, i: usize| h.groups()[i].conns.opened.load(Ordering::Relaxed);
        assert_eq!(opened(&new, 1), 4);
        assert_eq!(opened(&new, 0), 0, "a new group starts at 0");
    }

    #[test]
    fn a_recent_accept_counts_until_a_refusal_or_the_window_passes() {
        let health = one_server();
        let server = &health.groups()[0].servers[0];
        let window = Duration::from_secs(5);
        let t0 = Instant::now();
        assert!(!server.accepted_within(window, t0), "nothing known yet");

        server.connected(t0);
        assert!(server.accepted_within(window, t0));
        assert!(server.accepted_within(window, t0 + Duration::from_secs(5)));
        assert!(!server.accepted_within(window, t0 + Duration::from_millis(5001)));

        server.refused(t0 + Duration::from_secs(1));
        assert!(!server.accepted_within(window, t0 + Duration::from_secs(1)));
        server.connected(t0 + Duration::from_secs(2));
        assert!(server.accepted_within(window, t0 + Duration::from_secs(2)));
    }
}
