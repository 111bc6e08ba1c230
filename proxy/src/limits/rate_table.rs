//! One route's `limit_req` state: a bucket per client IP, process-wide, bounded in memory.
//!
//! A client's requests spread over all workers (SO_REUSEPORT hashes its connections), so the
//! buckets are shared: [`SHARDS`] tables, each behind its own lock, held for a hash lookup
//! and a few additions. Each shard keeps at most [`PER_SHARD`] clients in least recently
//! seen order, as nginx's zone does: a new client first drops up to two of the oldest
//! entries that have been idle a minute and fully leaked (they say nothing a fresh bucket
//! would not); if the shard is still full, the oldest entry goes whatever it held, and is
//! counted (`ringway_limit_req_evicted_total`). A flood of distinct addresses thus costs a
//! bounded table and evicts the clients seen longest ago, never the active ones.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use slab::Slab;

use super::bucket::{Bucket, RateLimit};

/// Locks per table: enough that two workers rarely meet on one.
const SHARDS: usize = 64;
/// Clients per shard: 65,536 per table, under 8 MiB with the index.
const PER_SHARD: usize = 1024;
/// An entry idle this long (ms) and fully leaked may be dropped for a new client (nginx's
/// 60 s).
const IDLE_MS: u64 = 60_000;
/// No link in the recency list.
const NIL: u32 = u32::MAX;

/// A route's buckets and their counters.
pub(crate) struct RateTable {
    limit: RateLimit,
    /// The table's clock starts here; buckets keep milliseconds since.
    epoch: Instant,
    hasher: std::hash::RandomState,
    /// Shared with the table a reload puts in its place when the route's `limit_req`
    /// changed: the clients' buckets go on under the new rate and burst.
    shards: Arc<[Mutex<Shard>]>,
    counts: Arc<RateCounts>,
}

/// A route's refusals, delays and evictions: shared with the table a reload puts in its
/// place, so the counters go on (the old table's late requests included).
#[derive(Debug, Default)]
pub(crate) struct RateCounts {
    /// Requests refused (429).
    rejected: AtomicU64,
    /// Requests made to wait (past the route's `delay`).
    delayed: AtomicU64,
    /// Requests `dry_run` let through that would have been refused.
    dry_rejected: AtomicU64,
    /// Requests `dry_run` let through at once that would have waited.
    dry_delayed: AtomicU64,
    /// Entries dropped for room before they had leaked.
    evicted: AtomicU64,
}

impl RateTable {
    /// An empty table for `limit`.
    pub(crate) fn new(limit: RateLimit) -> RateTable {
        RateTable::with_capacity(limit, PER_SHARD, Arc::default())
    }

    fn with_capacity(limit: RateLimit, per_shard: usize, counts: Arc<RateCounts>) -> RateTable {
        RateTable {
            limit,
            epoch: Instant::now(),
            hasher: std::hash::RandomState::new(),
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard::new(per_shard)))
                .collect(),
            counts,
        }
    }

    /// This table's buckets and counters under `limit`: for a reload that changed the
    /// route's `limit_req`, as nginx keeps a `limit_req_zone` across a reload. A client does
    /// not get a fresh burst from each reload (found by review: twenty reloads during a flood
    /// let ten times the rate through); a bucket fuller than a smaller new burst refuses
    /// until it has leaked below it.
    pub(crate) fn retuned(&self, limit: RateLimit) -> RateTable {
        RateTable {
            limit,
            epoch: self.epoch,
            hasher: self.hasher.clone(),
            shards: Arc::clone(&self.shards),
            counts: Arc::clone(&self.counts),
        }
    }

    /// One request from `ip` now: how long it waits before it is served, or `Err(seconds)`
    /// when it is over the limit (with the Retry-After to answer). Under `dry_run` nothing
    /// is refused nor held, so what the limit would have done is counted apart.
    pub(crate) fn check(&self, ip: IpAddr, dry_run: bool) -> Result<Duration, u32> {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.check_as(ip, now, dry_run)
    }

    #[cfg(test)]
    fn check_at(&self, ip: IpAddr, now: u64) -> Result<Duration, u32> {
        self.check_as(ip, now, false)
    }

    fn check_as(&self, ip: IpAddr, now: u64, dry_run: bool) -> Result<Duration, u32> {
        // One entry per client, whichever way its address is written.
        let ip = super::client_key(ip);
        let shard = &self.shards[self.hasher.hash_one(ip) as usize % SHARDS];
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let checked = shard.take(ip, now, &self.limit, &self.counts.evicted);
        drop(shard);
        let counts = &self.counts;
        let counted = match (checked, dry_run) {
            (Err(_), false) => Some(&counts.rejected),
            (Err(_), true) => Some(&counts.dry_rejected),
            (Ok(wait), false) if !wait.is_zero() => Some(&counts.delayed),
            (Ok(wait), true) if !wait.is_zero() => Some(&counts.dry_delayed),
            (Ok(_), _) => None,
        };
        if let Some(count) = counted {
            count.fetch_add(1, Relaxed);
        }
        checked
    }

    /// Requests refused so far.
    pub(crate) fn rejected(&self) -> u64 {
        self.counts.rejected.load(Relaxed)
    }

    /// Requests made to wait so far.
    pub(crate) fn delayed(&self) -> u64 {
        self.counts.delayed.load(Relaxed)
    }

    /// Requests `dry_run` let through that would have been refused, and held.
    pub(crate) fn dry_run(&self) -> (u64, u64) {
        (
            self.counts.dry_rejected.load(Relaxed),
            self.counts.dry_delayed.load(Relaxed),
        )
    }

    /// Entries evicted so far.
    pub(crate) fn evicted(&self) -> u64 {
        self.counts.evicted.load(Relaxed)
    }

    /// Clients tracked now.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).index.len())
            .sum()
    }
}

/// One client's entry, linked in its shard's recency list.
struct Entry {
    ip: IpAddr,
    bucket: Bucket,
    /// Towards the most recently seen.
    newer: u32,
    /// Towards the least recently seen.
    older: u32,
}

/// Part of a table: its clients by address, and in order of their last request.
struct Shard {
    index: HashMap<IpAddr, u32>,
    entries: Slab<Entry>,
    /// Most recently seen.
    newest: u32,
    /// Least recently seen: the first to go.
    oldest: u32,
    capacity: usize,
}

impl Shard {
    fn new(capacity: usize) -> Shard {
        Shard {
            index: HashMap::new(),
            entries: Slab::new(),
            newest: NIL,
            oldest: NIL,
            capacity,
        }
    }

    /// One request from `ip` at `now`, as nginx's lookup: a known client's bucket is
    /// checked (and it becomes the most recently seen, refused or not); a new client is
    /// accepted with an empty bucket, after room is made for it.
    fn take(
        &mut self,
        ip: IpAddr,
        now: u64,
        limit: &RateLimit,
        evicted: &AtomicU64,
    ) -> Result<Duration, u32> {
        if let Some(&key) = self.index.get(&ip) {
            self.unlink(key);
            self.push_newest(key);
            return match self.entries.get_mut(key as usize) {
                Some(entry) => limit.take(&mut entry.bucket, now),
                None => Ok(Duration::ZERO),
            };
        }
        self.expire(now, limit);
        if self.index.len() >= self.capacity {
            self.remove_oldest();
            evicted.fetch_add(1, Relaxed);
        }
        let entry = Entry {
            ip,
            bucket: limit.first(now),
            newer: NIL,
            older: NIL,
        };
        // At most `capacity` entries: the keys fit a u32.
        let key = u32::try_from(self.entries.insert(entry)).unwrap_or(NIL);
        self.index.insert(ip, key);
        self.push_newest(key);
        Ok(Duration::ZERO)
    }

    /// Drops up to two of the oldest entries, if they are idle and empty (nginx drops one
    /// or two per new node, so the table follows the active clients).
    fn expire(&mut self, now: u64, limit: &RateLimit) {
        for _ in 0..2 {
            let Some(entry) = self.entries.get(self.oldest as usize) else {
                return;
            };
            let idle = now.saturating_sub(entry.bucket.last()) >= IDLE_MS;
            if !idle || !limit.is_empty(&entry.bucket, now) {
                return;
            }
            self.remove_oldest();
        }
    }

    fn remove_oldest(&mut self) {
        let key = self.oldest;
        if key == NIL {
            return;
        }
        self.unlink(key);
        if let Some(entry) = self.entries.try_remove(key as usize) {
            self.index.remove(&entry.ip);
        }
    }

    /// Takes `key` out of the recency list.
    fn unlink(&mut self, key: u32) {
        let Some(entry) = self.entries.get_mut(key as usize) else {
            return;
        };
        let (newer, older) = (entry.newer, entry.older);
        entry.newer = NIL;
        entry.older = NIL;
        match self.entries.get_mut(newer as usize) {
            Some(n) => n.older = older,
            None => self.newest = older,
        }
        match self.entries.get_mut(older as usize) {
            Some(o) => o.newer = newer,
            None => self.oldest = newer,
        }
    }

    /// Puts `key` (unlinked) at the newest end of the recency list.
    fn push_newest(&mut self, key: u32) {
        let old_newest = self.newest;
        if let Some(entry) = self.entries.get_mut(key as usize) {
            entry.older = old_newest;
            entry.newer = NIL;
        }
        match self.entries.get_mut(old_newest as usize) {
            Some(n) => n.newer = key,
            None => self.oldest = key,
        }
        self.newest = key;
    }

    /// The addresses from oldest to newest (tests: the list and the index agree).
    #[cfg(test)]
    fn oldest_first(&self) -> Vec<IpAddr> {
        let mut out = Vec::new();
        let mut at = self.oldest;
        while let Some(entry) = self.entries.get(at as usize) {
            out.push(entry.ip);
            at = entry.newer;
        }
        assert_eq!(out.len(), self.index.len(), "list and index agree");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    /// 1r/s, burst 1: two requests at once, the third refused.
    fn limit() -> RateLimit {
        RateLimit::new(1000, 1, None)
    }

    #[test]
    fn each_client_has_its_own_bucket() {
        let table = RateTable::new(limit());
        for n in 0..3 {
            assert_eq!(table.check_at(ip(n), 0), Ok(Duration::ZERO));
            assert_eq!(table.check_at(ip(n), 0), Ok(Duration::ZERO));
            assert_eq!(table.check_at(ip(n), 0), Err(1));
        }
        assert_eq!(table.rejected(), 3);
        assert_eq!(table.len(), 3);
        // Another second: one more each.
        assert_eq!(table.check_at(ip(1), 1000), Ok(Duration::ZERO));
        assert_eq!(table.check_at(ip(1), 1000), Err(1));
    }

    #[test]
    fn a_retuned_table_keeps_its_clients_buckets() {
        let table = RateTable::new(limit());
        assert_eq!(table.check_at(ip(1), 0), Ok(Duration::ZERO));
        assert_eq!(table.check_at(ip(1), 0), Ok(Duration::ZERO));
        assert_eq!(table.check_at(ip(1), 0), Err(1));
        // A larger burst: room for the difference only, not a fresh burst.
        let wider = table.retuned(RateLimit::new(1000, 3, None));
        assert_eq!(wider.check_at(ip(1), 0), Ok(Duration::ZERO));
        assert_eq!(wider.check_at(ip(1), 0), Ok(Duration::ZERO));
        assert_eq!(wider.check_at(ip(1), 0), Err(1));
        // A smaller one: refused until the bucket has leaked below it.
        let narrow = wider.retuned(RateLimit::new(1000, 0, None));
        assert_eq!(narrow.check_at(ip(1), 1000), Err(3));
        assert_eq!(narrow.check_at(ip(1), 5000), Ok(Duration::ZERO));
        assert_eq!(narrow.rejected(), 3, "one count for the three tables");
    }

    #[test]
    fn an_ipv4_client_is_one_client_however_written() {
        let table = RateTable::new(limit());
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(table.check_at(v4, 0), Ok(Duration::ZERO));
        assert_eq!(table.check_at(mapped, 0), Ok(Duration::ZERO));
        assert_eq!(table.check_at(v4, 0), Err(1));
        assert_eq!(table.len(), 1);
    }

    /// An IPv6 client is its /64: another address of its block takes no fresh burst (found
    /// by review: every address of a /64 had one).
    #[test]
    fn an_ipv6_client_is_its_64_block() {
        let table = RateTable::new(limit());
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_block: IpAddr = "2001:db8:1:2:ffff:1234:5678:9abc".parse().unwrap();
        let next_block: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(table.check_at(one, 0), Ok(Duration::ZERO));
        assert_eq!(table.check_at(same_block, 0), Ok(Duration::ZERO));
        assert_eq!(table.check_at(same_block, 0), Err(1));
        assert_eq!(table.check_at(next_block, 0), Ok(Duration::ZERO));
        assert_eq!(table.len(), 2);
        // NAT64 and Teredo carry IPv4 clients, each its own.
        for (a, b) in [
            ("64:ff9b::192.0.2.1", "64:ff9b::192.0.2.2"),
            (
                "2001:0:4136:e378:8000:63bf:3fff:fdd2",
                "2001:0:4136:e378:8000:63bf:3fff:fdd3",
            ),
        ] {
            let (a, b): (IpAddr, IpAddr) = (a.parse().unwrap(), b.parse().unwrap());
            assert_eq!(table.check_at(a, 0), Ok(Duration::ZERO));
            assert_eq!(table.check_at(a, 0), Ok(Duration::ZERO));
            assert_eq!(
                table.check_at(b, 0),
                Ok(Duration::ZERO),
                "{b} apart from {a}"
            );
        }
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            table.check_at(v4, 0),
            Err(1),
            "the NAT64 client is 192.0.2.1"
        );
        // Teredo's client 192.0.2.45 (inverted: 3fff:fdd2), whatever the relay and flags.
        let other_relay: IpAddr = "2001:0:aaaa:bbbb:0:cccc:3fff:fdd2".parse().unwrap();
        assert_eq!(
            table.check_at(other_relay, 0),
            Err(1),
            "the same Teredo client"
        );
    }

    #[test]
    fn a_full_shard_evicts_the_least_recently_seen() {
        let mut shard = Shard::new(3);
        let evicted = AtomicU64::new(0);
        let l = limit();
        for n in 0..3 {
            shard.take(ip(n), 0, &l, &evicted).unwrap();
        }
        // 0 is seen again (and fills its bucket): 1 is now the oldest.
        shard.take(ip(0), 10, &l, &evicted).unwrap();
        assert_eq!(shard.oldest_first(), [ip(1), ip(2), ip(0)]);
        shard.take(ip(3), 20, &l, &evicted).unwrap();
        assert_eq!(shard.oldest_first(), [ip(2), ip(0), ip(3)]);
        assert_eq!(evicted.load(Relaxed), 1);
        // The active client kept its state: still refused.
        assert_eq!(shard.take(ip(0), 30, &l, &evicted), Err(1));
        // A flood of new addresses keeps the shard at its size.
        for n in 100..200 {
            shard.take(ip(n), 40, &l, &evicted).unwrap();
        }
        assert_eq!(shard.index.len(), 3);
        assert_eq!(shard.entries.len(), 3);
        assert_eq!(shard.oldest_first(), [ip(197), ip(198), ip(199)]);
        assert_eq!(evicted.load(Relaxed), 101);
    }

    #[test]
    fn idle_leaked_entries_make_room_without_counting_as_evicted() {
        let mut shard = Shard::new(3);
        let evicted = AtomicU64::new(0);
        let l = limit();
        shard.take(ip(0), 0, &l, &evicted).unwrap();
        shard.take(ip(0), 0, &l, &evicted).unwrap(); // its bucket holds one request
        shard.take(ip(1), 0, &l, &evicted).unwrap();
        shard.take(ip(2), 30_000, &l, &evicted).unwrap();
        // A minute on, 0 and 1 are idle and leaked: both go for the newcomer, uncounted; 2
        // is not idle long enough and stays.
        shard.take(ip(3), 61_000, &l, &evicted).unwrap();
        assert_eq!(shard.oldest_first(), [ip(2), ip(3)]);
        assert_eq!(evicted.load(Relaxed), 0);
    }

    #[test]
    fn an_idle_entry_that_has_not_leaked_stays() {
        // 1r/m, burst 5: a full bucket takes 6 minutes to leak.
        let l = RateLimit::new(16, 5, None);
        let mut shard = Shard::new(2);
        let evicted = AtomicU64::new(0);
        for _ in 0..6 {
            shard.take(ip(0), 0, &l, &evicted).unwrap();
        }
        shard.take(ip(1), 0, &l, &evicted).unwrap();
        // Two minutes idle, not leaked: not expired. The shard is full, so the oldest is
        // evicted anyway, and counted.
        shard.take(ip(2), 120_000, &l, &evicted).unwrap();
        assert_eq!(shard.oldest_first(), [ip(1), ip(2)]);
        assert_eq!(evicted.load(Relaxed), 1);
    }

    #[test]
    fn the_table_is_bounded() {
        let table = RateTable::with_capacity(limit(), 4, Arc::default());
        for n in 0..10_000 {
            table.check_at(ip(n), 0).unwrap();
        }
        assert!(table.len() <= 4 * SHARDS, "{}", table.len());
        assert_eq!(table.evicted(), 10_000 - table.len() as u64);
    }
}
