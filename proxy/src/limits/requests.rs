//! Requests at once per client on one route (a route's `limit_conn`, nginx's `limit_conn`
//! in a `location`: one download at a time per address).
//!
//! As nginx counts it, a request counts from when its route is known (after `limit_req`)
//! until it has been answered, body and all; an HTTP/2 stream is a request of its own, and
//! an internal redirect (X-Accel-Redirect, a fallback) counts on the route it lands on only
//! if no route counted the request before. The client is the request's real one
//! (`trusted_proxy`), keyed as `limit_req` keys it ([`super::client_key`]). A client's
//! requests reach every worker, so the counts are shared: small maps behind locks held for
//! one lookup, an entry removed when its count returns to 0, so the maps hold only clients
//! with a request in flight.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Locks of the per-client counts.
const SHARDS: usize = 16;

/// A route's `limit_conn`, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestLimit {
    /// Requests at once per client.
    pub(crate) per_ip: usize,
    /// The refusal's status (nginx's `limit_conn_status`).
    pub(crate) status: u16,
    /// Over the limit is counted and logged, not refused (nginx's `limit_conn_dry_run`).
    pub(crate) dry_run: bool,
}

/// What a route's `limit_conn` did with a request (nginx's `$limit_conn_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitConnStatus {
    Passed,
    Rejected,
    /// Over the limit, let through by `dry_run`.
    RejectedDryRun,
}

impl LimitConnStatus {
    /// As nginx writes it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            LimitConnStatus::Passed => "PASSED",
            LimitConnStatus::Rejected => "REJECTED",
            LimitConnStatus::RejectedDryRun => "REJECTED_DRY_RUN",
        }
    }
}

/// One route's counts of requests in flight, per client.
pub(crate) struct RequestCounts {
    /// The limit, which a reload may change: the requests in flight stay counted.
    per_ip: AtomicUsize,
    hasher: std::hash::RandomState,
    by_ip: Box<[Mutex<HashMap<IpAddr, usize>>]>,
    rejected: AtomicU64,
    /// Requests `dry_run` let through over the limit.
    dry_run: AtomicU64,
}

/// A request counted under its client: dropping it uncounts it.
pub(crate) struct RequestTicket {
    counts: Arc<RequestCounts>,
    ip: IpAddr,
}

/// Whether a request is served under its route's `limit_conn`.
pub(crate) enum Entry {
    /// Counted until the ticket drops.
    Counted(RequestTicket),
    /// Over the limit under `dry_run`: served, not counted (as nginx's).
    OverDryRun,
    /// Over the limit: refused.
    Refused,
}

impl RequestCounts {
    pub(crate) fn new(per_ip: usize) -> RequestCounts {
        RequestCounts {
            per_ip: AtomicUsize::new(per_ip),
            hasher: std::hash::RandomState::new(),
            by_ip: (0..SHARDS).map(|_| Mutex::default()).collect(),
            rejected: AtomicU64::new(0),
            dry_run: AtomicU64::new(0),
        }
    }

    /// Counts a request from `client`, unless that client has as many in flight as allowed.
    pub(crate) fn enter(self: &Arc<Self>, client: IpAddr, dry_run: bool) -> Entry {
        let ip = super::client_key(client);
        let per_ip = self.per_ip.load(Relaxed);
        let mut shard = self.shard(ip);
        let count = shard.entry(ip).or_insert(0);
        if *count >= per_ip {
            // Only a client with requests in flight can be over: its entry stays.
            drop(shard);
            return if dry_run {
                self.dry_run.fetch_add(1, Relaxed);
                Entry::OverDryRun
            } else {
                self.rejected.fetch_add(1, Relaxed);
                Entry::Refused
            };
        }
        *count += 1;
        Entry::Counted(RequestTicket {
            counts: Arc::clone(self),
            ip,
        })
    }

    /// A reload's new limit: the requests in flight stay counted against it.
    pub(crate) fn retune(&self, per_ip: usize) {
        self.per_ip.store(per_ip, Relaxed);
    }

    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Relaxed)
    }

    pub(crate) fn dry_run(&self) -> u64 {
        self.dry_run.load(Relaxed)
    }

    /// Clients with a request counted now.
    pub(crate) fn clients(&self) -> usize {
        self.by_ip
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    fn shard(&self, ip: IpAddr) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        let shard = &self.by_ip[self.hasher.hash_one(ip) as usize % SHARDS];
        shard.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for RequestTicket {
    fn drop(&mut self) {
        let mut shard = self.counts.shard(self.ip);
        if let Some(count) = shard.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                shard.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn counted(entry: Entry) -> RequestTicket {
        match entry {
            Entry::Counted(ticket) => ticket,
            Entry::OverDryRun | Entry::Refused => panic!("not counted"),
        }
    }

    #[test]
    fn a_client_has_its_limit_at_once_and_gets_its_place_back_when_one_ends() {
        let counts = Arc::new(RequestCounts::new(2));
        let a = ip("192.0.2.1");
        let first = counted(counts.enter(a, false));
        let second = counted(counts.enter(a, false));
        assert!(matches!(counts.enter(a, false), Entry::Refused));
        // Another client is counted apart.
        let other = counted(counts.enter(ip("192.0.2.2"), false));
        assert_eq!(counts.clients(), 2);
        drop(first);
        let third = counted(counts.enter(a, false));
        assert!(matches!(counts.enter(a, false), Entry::Refused));
        assert_eq!(counts.rejected(), 2);
        drop((second, third, other));
        // Nothing in flight, nothing kept.
        assert_eq!(counts.clients(), 0);
    }

    #[test]
    fn a_dry_run_lets_the_request_over_through_uncounted() {
        let counts = Arc::new(RequestCounts::new(1));
        let a = ip("2001:db8::1");
        let first = counted(counts.enter(a, true));
        // The same /64 is the same client.
        assert!(matches!(
            counts.enter(ip("2001:db8::2"), true),
            Entry::OverDryRun
        ));
        assert_eq!((counts.dry_run(), counts.rejected()), (1, 0));
        drop(first);
        assert_eq!(counts.clients(), 0);
    }

    #[test]
    fn a_lower_limit_from_a_reload_holds_at_once() {
        let counts = Arc::new(RequestCounts::new(3));
        let a = ip("198.51.100.7");
        let held = [
            counted(counts.enter(a, false)),
            counted(counts.enter(a, false)),
        ];
        counts.retune(1);
        assert!(matches!(counts.enter(a, false), Entry::Refused));
        drop(held);
        let _back = counted(counts.enter(a, false));
    }
}
