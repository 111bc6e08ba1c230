//! Open client connections, counted process-wide: all of them (`max_connections`) and per
//! client IP (`limit_conn_per_ip`).
//!
//! A client's connections land on any worker (SO_REUSEPORT hashes them), so the counts are
//! shared: one atomic for the total, and per-IP counts in [`SHARDS`] small maps, each behind
//! a lock held for one hash lookup. An IP's entry goes when its count returns to 0, so the
//! maps hold only clients with a connection open. A connection is counted from the moment it
//! is admitted until its [`ConnTicket`] drops, however the connection ends.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::ConnLimits;

/// Locks of the per-IP counts.
const SHARDS: usize = 64;

/// Which limit a connection was refused by (the `kind` label of its rejection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnLimit {
    /// `max_connections`: the process has as many connections open as allowed.
    Process,
    /// `limit_conn_per_ip`: this client has as many open as allowed.
    PerIp,
}

/// The process-wide connection counts.
pub(crate) struct ConnLimiter {
    /// Which limits are set decides what is counted, for the limiter's whole life.
    counted: ConnLimits,
    /// The limits' values, which a reload may change (see [`ConnLimiter::retune`]).
    max_connections: AtomicUsize,
    per_ip: AtomicUsize,
    open: AtomicUsize,
    hasher: std::hash::RandomState,
    by_ip: Box<[Mutex<HashMap<IpAddr, usize>>]>,
    /// Connections refused, by [`ConnLimit`] (`Process`, `PerIp`): shared with a limiter a
    /// reload puts in its place, so the counters go on.
    rejected: Arc<Refusals>,
}

/// Connections refused, by [`ConnLimit`].
pub(crate) type Refusals = [AtomicU64; 2];

/// Whether a new connection may be served.
pub(crate) enum Admission {
    /// Served; counted until the ticket drops (`None`: no limit is set, nothing counted).
    Admitted(#[allow(dead_code, reason = "held for its Drop")] Option<ConnTicket>),
    /// Over a limit: its first request gets 503, then it closes.
    Refused(ConnLimit),
}

/// A counted connection: dropping it uncounts it.
pub(crate) struct ConnTicket {
    limiter: Arc<ConnLimiter>,
    /// The address counted per IP (`None` without `limit_conn_per_ip`).
    ip: Option<IpAddr>,
}

impl ConnLimiter {
    /// Counts for these limits, none open.
    pub(crate) fn new(limits: ConnLimits) -> ConnLimiter {
        ConnLimiter::counting_on(limits, Arc::default())
    }

    /// Counts for these limits, none open, refusals counted into `rejected` (an old
    /// limiter's).
    pub(crate) fn counting_on(limits: ConnLimits, rejected: Arc<Refusals>) -> ConnLimiter {
        ConnLimiter {
            counted: limits,
            max_connections: AtomicUsize::new(limits.max_connections.unwrap_or(usize::MAX)),
            per_ip: AtomicUsize::new(limits.per_ip.unwrap_or(usize::MAX)),
            open: AtomicUsize::new(0),
            hasher: std::hash::RandomState::new(),
            by_ip: (0..SHARDS).map(|_| Mutex::default()).collect(),
            rejected,
        }
    }

    /// Decides on a connection from `ip` (none: under no client's count) just accepted:
    /// counts it, or says which limit it is over (and counts the refusal).
    pub(crate) fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Admission {
        self.admit_unnamed().naming(ip)
    }

    /// Decides on a connection just accepted whose client is not known yet (its PROXY
    /// header will name it) by the process-wide count alone, which holds it from the
    /// accept on, as nginx's `worker_connections` does; [`Admission::naming`] adds the
    /// client's count once it is known.
    pub(crate) fn admit_unnamed(self: &Arc<Self>) -> Admission {
        if self.counted == ConnLimits::default() {
            return Admission::Admitted(None);
        }
        if self.counted.max_connections.is_some() {
            let max = self.max_connections.load(Ordering::Relaxed);
            // Counted first, checked after: two workers admitting at once cannot both take
            // the last place.
            if self.open.fetch_add(1, Ordering::AcqRel) >= max {
                self.open.fetch_sub(1, Ordering::AcqRel);
                return self.refuse(ConnLimit::Process);
            }
        }
        Admission::Admitted(Some(ConnTicket {
            limiter: Arc::clone(self),
            ip: None,
        }))
    }

    fn refuse(&self, limit: ConnLimit) -> Admission {
        self.rejected[limit as usize].fetch_add(1, Ordering::Relaxed);
        Admission::Refused(limit)
    }

    fn shard(&self, ip: IpAddr) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        let shard = &self.by_ip[self.hasher.hash_one(ip) as usize % SHARDS];
        shard.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a reload's `limits` if they set the same limits as this one counts (values
    /// may differ): the connections open stay counted against the new values, so that
    /// tightening a limit during an incident holds at once. False if another limit is
    /// set or unset: what is counted differs, and a new limiter must start.
    pub(crate) fn retune(&self, limits: ConnLimits) -> bool {
        let same_set = limits.max_connections.is_some() == self.counted.max_connections.is_some()
            && limits.per_ip.is_some() == self.counted.per_ip.is_some();
        if same_set {
            let max = limits.max_connections.unwrap_or(usize::MAX);
            self.max_connections.store(max, Ordering::Relaxed);
            let per_ip = limits.per_ip.unwrap_or(usize::MAX);
            self.per_ip.store(per_ip, Ordering::Relaxed);
        }
        same_set
    }

    /// Its refusal counters, for a limiter that replaces it to count on in.
    pub(crate) fn refusals(&self) -> Arc<Refusals> {
        Arc::clone(&self.rejected)
    }

    /// Connections refused by `limit` so far.
    pub(crate) fn rejected(&self, limit: ConnLimit) -> u64 {
        self.rejected[limit as usize].load(Ordering::Relaxed)
    }

    /// Connections counted now (0 without `max_connections`).
    #[cfg(test)]
    fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Client IPs with a connection counted now.
    #[cfg(test)]
    fn ips(&self) -> usize {
        self.by_ip
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }
}

impl Drop for ConnTicket {
    fn drop(&mut self) {
        let limiter = &self.limiter;
        if let Some(ip) = self.ip {
            let mut shard = limiter.shard(ip);
            if let Some(count) = shard.get_mut(&ip) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    shard.remove(&ip);
                }
            }
        }
        if limiter.counted.max_connections.is_some() {
            limiter.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Admission {
    /// This admission, with the connection counted under its client `ip` too
    /// (`limit_conn_per_ip`), by the limiter that admitted it: refused if the client has as
    /// many open as allowed. `None` counts it under no client.
    pub(crate) fn naming(self, ip: Option<IpAddr>) -> Admission {
        let Some(ip) = ip else {
            return self;
        };
        let Admission::Admitted(Some(mut ticket)) = self else {
            return self;
        };
        let limiter = Arc::clone(&ticket.limiter);
        if limiter.counted.per_ip.is_none() || ticket.ip.is_some() {
            return Admission::Admitted(Some(ticket));
        }
        let per_ip = limiter.per_ip.load(Ordering::Relaxed);
        let ip = super::client_key(ip);
        let mut shard = limiter.shard(ip);
        let count = shard.entry(ip).or_insert(0);
        if *count >= per_ip {
            drop(shard);
            // The ticket (counted in `open` only) uncounts itself as it drops.
            drop(ticket);
            return limiter.refuse(ConnLimit::PerIp);
        }
        *count += 1;
        ticket.ip = Some(ip);
        Admission::Admitted(Some(ticket))
    }

    /// The limit the connection is over, if it was refused.
    pub(crate) fn refused(&self) -> Option<ConnLimit> {
        match self {
            Admission::Refused(limit) => Some(*limit),
            Admission::Admitted(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max_connections: Option<usize>, per_ip: Option<usize>) -> Arc<ConnLimiter> {
        Arc::new(ConnLimiter::new(ConnLimits {
            max_connections,
            per_ip,
        }))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn no_limit_counts_nothing() {
        let l = limiter(None, None);
        assert!(matches!(
            l.admit(Some(ip("10.0.0.1"))),
            Admission::Admitted(None)
        ));
        assert_eq!(l.open(), 0);
    }

    #[test]
    fn the_process_limit_refuses_the_one_too_many_and_frees_on_drop() {
        let l = limiter(Some(2), None);
        let a = l.admit(Some(ip("10.0.0.1")));
        let b = l.admit(Some(ip("10.0.0.2")));
        assert!(a.refused().is_none() && b.refused().is_none());
        assert_eq!(
            l.admit(Some(ip("10.0.0.3"))).refused(),
            Some(ConnLimit::Process)
        );
        assert_eq!(l.open(), 2);
        drop(a);
        assert_eq!(l.open(), 1);
        assert!(l.admit(Some(ip("10.0.0.3"))).refused().is_none());
        assert_eq!(l.rejected(ConnLimit::Process), 1);
        assert_eq!(l.rejected(ConnLimit::PerIp), 0);
    }

    #[test]
    fn the_per_ip_limit_counts_each_client_apart() {
        let l = limiter(Some(10), Some(2));
        let held: Vec<Admission> = (0..2).map(|_| l.admit(Some(ip("10.0.0.1")))).collect();
        assert_eq!(
            l.admit(Some(ip("10.0.0.1"))).refused(),
            Some(ConnLimit::PerIp)
        );
        // The same client written as an IPv4-mapped IPv6 address is the same client.
        assert_eq!(
            l.admit(Some(ip("::ffff:10.0.0.1"))).refused(),
            Some(ConnLimit::PerIp)
        );
        let other = l.admit(Some(ip("10.0.0.2")));
        assert!(other.refused().is_none());
        // An IPv6 client is its /64, whichever of its addresses it comes from.
        let v6: Vec<Admission> = ["2001:db8::1", "2001:db8::2:3"]
            .map(|a| l.admit(Some(ip(a))))
            .into();
        assert!(v6.iter().all(|a| a.refused().is_none()));
        assert_eq!(
            l.admit(Some(ip("2001:db8::ffff"))).refused(),
            Some(ConnLimit::PerIp)
        );
        drop(v6);
        // Refused connections are not left counted in the total.
        assert_eq!(l.open(), 3);
        assert_eq!(l.ips(), 2);
        drop(held);
        drop(other);
        assert_eq!(l.open(), 0);
        assert_eq!(l.ips(), 0, "an entry goes when its count reaches 0");
        assert_eq!(l.rejected(ConnLimit::PerIp), 3);
    }

    /// Found by review: a connection still sending its PROXY header was not counted, so
    /// `max_connections` did not bound connections that never sent one.
    #[test]
    fn a_connection_is_counted_from_the_accept_and_under_its_client_once_named() {
        let l = limiter(Some(2), Some(1));
        let waiting = l.admit_unnamed();
        assert!(waiting.refused().is_none());
        assert_eq!((l.open(), l.ips()), (1, 0));
        let named = waiting.naming(Some(ip("10.0.0.1")));
        assert!(named.refused().is_none());
        assert_eq!((l.open(), l.ips()), (1, 1));
        // The second from that client is over its limit once named, and uncounted.
        let second = l.admit_unnamed().naming(Some(ip("10.0.0.1")));
        assert_eq!(second.refused(), Some(ConnLimit::PerIp));
        assert_eq!(l.open(), 1);
        // Two waiting for their headers fill the process.
        let held = l.admit_unnamed();
        assert_eq!(l.admit_unnamed().refused(), Some(ConnLimit::Process));
        // A refusal stays one when named.
        assert_eq!(
            l.admit_unnamed().naming(Some(ip("10.0.0.2"))).refused(),
            Some(ConnLimit::Process)
        );
        drop((named, held));
        assert_eq!((l.open(), l.ips()), (0, 0));
    }

    #[test]
    fn a_reload_that_changes_only_values_keeps_counting_open_connections() {
        let l = limiter(Some(10), Some(5));
        let held: Vec<Admission> = (0..3).map(|_| l.admit(Some(ip("10.0.0.1")))).collect();
        // Tightened during an incident: the three open count against the new 2.
        let tighter = ConnLimits {
            max_connections: Some(10),
            per_ip: Some(2),
        };
        assert!(l.retune(tighter));
        assert_eq!(
            l.admit(Some(ip("10.0.0.1"))).refused(),
            Some(ConnLimit::PerIp)
        );
        drop(held);
        assert!(l.admit(Some(ip("10.0.0.1"))).refused().is_none());
        // Setting another limit is a new limiter (what is counted differs).
        let unset = ConnLimits {
            max_connections: Some(10),
            per_ip: None,
        };
        assert!(!l.retune(unset));
    }

    #[test]
    fn counts_hold_across_threads() {
        let l = limiter(Some(1000), Some(1000));
        std::thread::scope(|s| {
            for _ in 0..4 {
                let l = Arc::clone(&l);
                s.spawn(move || {
                    for _ in 0..1000 {
                        let a = l.admit(Some(ip("10.0.0.1")));
                        assert!(a.refused().is_none());
                    }
                });
            }
        });
        assert_eq!(l.open(), 0);
        assert_eq!(l.ips(), 0);
    }
}
