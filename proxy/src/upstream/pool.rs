//! Idle HTTP upstream connections, kept for the next request: one pool per worker and per
//! server (nginx's `keepalive` in an `upstream` block).
//!
//! An idle connection is its socket and the time it went idle, nothing else: no buffer, no
//! task. The newest is reused first (the one least likely to have been closed by the
//! server meanwhile). One sweep per worker ([`ServerPool::sweep`]) closes those idle longer
//! than `keepalive_timeout`, and those beyond `keepalive` left unused for a whole sweep
//! period; a connection the server closed before that is found out when reused (the retry
//! rule of the exchange). A connection that has carried `keepalive_requests` requests, or
//! been open for `keepalive_time`, is closed after its answer instead of kept, as nginx does.
//!
//! nginx closes a connection beyond `keepalive` the moment it goes idle. Under load the
//! number of requests at the server swings by more than that: answers come back in bursts
//! and the next requests come in bursts too, so closing at once opened a new connection for
//! 7% of requests at 100 clients with 32 kept (29% at 1000), and a connect with its
//! handshake and close cost more CPU than the rest of the request. A burst's surplus is kept
//! until a sweep finds it unused for a sweep period (a second; two at most); a worker never
//! holds more than it had busy at once since the last sweep. See docs/ARCHITECTURE.md,
//! "HTTP upstreams" (the pool).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::KeepAlive;

/// One server's idle connections (`T`: a socket; anything in the unit tests).
pub(crate) struct ServerPool<T> {
    idle: RefCell<VecDeque<Idle<T>>>,
    /// Idle connections kept past a sweep, however long unused (up to `timeout`).
    max: usize,
    /// Longest idle time.
    timeout: Duration,
    /// Requests one connection carries.
    requests: u64,
    /// Longest use of one connection.
    time: Duration,
    /// Its configuration generation was replaced: nothing will take from it again.
    retired: Cell<bool>,
}

struct Idle<T> {
    conn: T,
    since: Instant,
}

impl<T> ServerPool<T> {
    /// An empty pool keeping connections as `keepalive` says.
    pub(crate) fn new(keepalive: KeepAlive) -> Self {
        ServerPool {
            idle: RefCell::new(VecDeque::with_capacity(keepalive.idle.min(64))),
            max: keepalive.idle,
            timeout: keepalive.timeout,
            requests: keepalive.requests,
            time: keepalive.time,
            retired: Cell::new(false),
        }
    }

    /// Whether connections are kept at all (`keepalive` above 0).
    pub(crate) fn keeps(&self) -> bool {
        self.max > 0
    }

    /// The most recently idled connection still within its timeout, if any; older ones
    /// found on the way are closed.
    pub(crate) fn take(&self, now: Instant) -> Option<T> {
        let mut idle = self.idle.borrow_mut();
        while let Some(entry) = idle.pop_back() {
            if now.saturating_duration_since(entry.since) < self.timeout {
                return Some(entry.conn);
            }
            // Expired: everything older is too.
            idle.clear();
        }
        None
    }

    /// Whether a connection that has carried `requests` requests and been open for
    /// `open_for` may carry another (nginx's `keepalive_requests` and `keepalive_time`,
    /// looked at as nginx does once its answer has been read).
    pub(crate) fn keeps_after(&self, requests: u32, open_for: Duration) -> bool {
        u64::from(requests) < self.requests && open_for <= self.time
    }

    /// Keeps `conn` for a later request (beyond `max`, until the next sweep finds it unused).
    pub(crate) fn put(&self, conn: T, now: Instant) {
        if self.max == 0 || self.retired.get() {
            return;
        }
        self.idle.borrow_mut().push_back(Idle { conn, since: now });
    }

    /// Closes every idle connection, and those given back later: a reload replaced the
    /// configuration this pool belongs to, and no request will take from it again (its
    /// requests in flight still give their connections back here).
    pub(crate) fn retire(&self) {
        self.retired.set(true);
        self.idle.borrow_mut().clear();
    }

    /// Closes the connections idle for `keepalive_timeout` or longer, and the oldest beyond
    /// `max` that stayed unused for a sweep period (the newest are taken first, so the
    /// oldest are the ones no request needed).
    pub(crate) fn sweep(&self, now: Instant) {
        let mut idle = self.idle.borrow_mut();
        let surplus_after = self.sweep_period();
        while let Some(oldest) = idle.front() {
            let age = now.saturating_duration_since(oldest.since);
            if age >= self.timeout || (idle.len() > self.max && age >= surplus_after) {
                idle.pop_front();
            } else {
                break;
            }
        }
        // A burst of a thousand connections grew the queue; it need not stay that long.
        if idle.capacity() > 64 && idle.len() < idle.capacity() / 4 {
            let keep = idle.len().max(self.max.min(64));
            idle.shrink_to(keep);
        }
    }

    /// Idle connections now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.idle.borrow().len()
    }

    /// How often the sweep should run: once a second (one timer per worker, a look at the
    /// oldest connection of each pool), so that none outlives its timeout by more than that;
    /// as often as the timeout if it is shorter.
    pub(crate) fn sweep_period(&self) -> Duration {
        // Not more often than 10 times a second, however short the timeout: a connection
        // past it is never reused anyway (`take` looks at its age).
        self.timeout
            .clamp(Duration::from_millis(100), Duration::from_secs(1))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    /// `idle` connections for `timeout`, with nginx's request and time limits.
    fn keeping(idle: usize, timeout: Duration) -> KeepAlive {
        KeepAlive {
            idle,
            timeout,
            requests: 1000,
            time: Duration::from_secs(3600),
        }
    }

    #[test]
    fn a_connection_is_kept_for_keepalive_requests_within_keepalive_time() {
        let pool = ServerPool::<u8>::new(KeepAlive {
            requests: 3,
            time: MINUTE,
            ..keeping(4, MINUTE)
        });
        assert!(pool.keeps_after(1, Duration::ZERO));
        assert!(pool.keeps_after(2, MINUTE), "a minute, not past it");
        assert!(
            !pool.keeps_after(3, Duration::ZERO),
            "its third answer was its last"
        );
        assert!(!pool.keeps_after(1, MINUTE + Duration::from_millis(1)));
    }

    #[test]
    fn the_newest_idle_connection_is_reused_first() {
        let pool = ServerPool::new(keeping(4, MINUTE));
        let t = Instant::now();
        pool.put(1, t);
        pool.put(2, t + Duration::from_secs(1));
        assert_eq!(pool.take(t + Duration::from_secs(2)), Some(2));
        assert_eq!(pool.take(t + Duration::from_secs(2)), Some(1));
        assert_eq!(pool.take(t + Duration::from_secs(2)), None);
    }

    #[test]
    fn a_burst_beyond_keepalive_is_kept_until_a_sweep_finds_it_unused() {
        let pool = ServerPool::new(keeping(2, MINUTE));
        let t = Instant::now();
        for conn in 1..=4 {
            pool.put(conn, t);
        }
        // The next burst of requests finds them all.
        assert_eq!(pool.len(), 4);
        pool.sweep(t + Duration::from_millis(500));
        assert_eq!(pool.len(), 4, "idle for less than a sweep period");
        // One is taken and given back: it is the newest again.
        assert_eq!(pool.take(t), Some(4));
        pool.put(4, t + Duration::from_secs(1));
        pool.sweep(t + Duration::from_secs(1));
        assert_eq!(
            pool.len(),
            2,
            "the oldest beyond keepalive, unused for a second"
        );
        assert_eq!(pool.take(t + Duration::from_secs(1)), Some(4));
        assert_eq!(pool.take(t + Duration::from_secs(1)), Some(3));
        assert_eq!(pool.take(t + Duration::from_secs(1)), None);
    }

    #[test]
    fn the_sweep_keeps_keepalive_connections_however_long_unused_within_the_timeout() {
        let pool = ServerPool::new(keeping(2, MINUTE));
        let t = Instant::now();
        for conn in 1..=3 {
            pool.put(conn, t);
        }
        pool.sweep(t + Duration::from_secs(30));
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.take(t + Duration::from_secs(30)), Some(3));
    }

    #[test]
    fn a_retired_pool_keeps_nothing() {
        let pool = ServerPool::new(keeping(4, MINUTE));
        let t = Instant::now();
        pool.put(1, t);
        pool.retire();
        pool.put(2, t);
        assert_eq!(pool.take(t), None);
    }

    #[test]
    fn keepalive_0_keeps_nothing() {
        let pool = ServerPool::new(keeping(0, MINUTE));
        let t = Instant::now();
        pool.put(1, t);
        assert!(!pool.keeps());
        assert_eq!(pool.take(t), None);
    }

    #[test]
    fn connections_idle_past_the_timeout_are_never_reused() {
        let pool = ServerPool::new(keeping(4, MINUTE));
        let t = Instant::now();
        pool.put(1, t);
        pool.put(2, t + Duration::from_secs(30));
        // 1 expired, 2 not: the sweep closes 1 only.
        pool.sweep(t + MINUTE);
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.take(t + MINUTE), Some(2));
        pool.put(3, t);
        assert_eq!(pool.take(t + MINUTE * 2), None);
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn the_sweep_runs_once_a_second_or_at_a_shorter_timeout() {
        let second = Duration::from_secs(1);
        assert_eq!(
            ServerPool::<u8>::new(keeping(1, MINUTE)).sweep_period(),
            second
        );
        let short = ServerPool::<u8>::new(keeping(1, Duration::from_millis(500)));
        assert_eq!(short.sweep_period(), Duration::from_millis(500));
    }
}
