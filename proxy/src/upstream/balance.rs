//! Which of a group's servers takes a request: nginx's smooth weighted round robin, with its
//! failure accounting (`max_fails`, `fail_timeout`) and its backup servers, as
//! `ngx_http_upstream_round_robin.c` does them, in each worker as in each nginx worker
//! process. The same weights give the same order as nginx (5, 1, 1: a a b a c a a).
//!
//! With `balance = "ip_hash"`, a request goes to the server its client's address hashes to,
//! by nginx's `ngx_http_upstream_get_ip_hash_peer` (the same hash, so a client lands on the
//! server nginx would send it to): a server down, out of turn, full or tried already is
//! passed over by hashing again, and after 21 hashes the turn is round robin's.
//!
//! With `balance = "least_conn"`, a request goes to the server with the fewest requests in
//! flight for its weight, and among servers as loaded, to the one whose turn it is by the
//! weighted round robin: nginx's `ngx_http_upstream_get_least_conn_peer`, over the same
//! tiers (primaries, then backups). A request counts from its connection's making to its
//! end with the server ([`Busy`]); in each worker, as nginx's without a `zone`.
//!
//! A group of one server keeps no failure count, as nginx's `single` peers: that server
//! takes every request it can. With a backup beside it, nginx counts (it clears `single`
//! when there are backups), so a failing primary goes out of turn and the backup takes its
//! requests for `fail_timeout`. One difference: where nginx
//! answers 502 ("no live upstreams") because every server is out of turn after failures,
//! ringway tries those servers still, the primaries first: a server that failed a moment
//! ago may be back.

use std::cell::Cell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::config::{Balance, ServerOptions};

/// One worker's turn-taking state for a group's servers.
pub(super) struct Balancer {
    peers: Vec<Peer>,
    /// One server and no backup: no failure is counted against it (nginx's
    /// `peers->single`).
    single: bool,
    balance: Balance,
    /// The servers' weights together (nginx's `total_weight`), for `ip_hash`.
    total_weight: u64,
}

/// Hashes `ip_hash` makes for a request before it leaves the choice to round robin: nginx
/// gives up once `++tries > 20`, after the 21st.
const IP_HASH_TRIES: u32 = 21;

struct Peer {
    weight: i64,
    max_fails: u32,
    fail_timeout: Duration,
    backup: bool,
    down: bool,
    /// nginx's `current_weight`: where the server stands in the turn.
    current: Cell<i64>,
    /// nginx's `effective_weight`: its weight, lowered by failures and regained a step per
    /// turn.
    effective: Cell<i64>,
    /// Failures counted (nginx's `fails`).
    fails: Cell<u32>,
    /// The last failure (nginx's `accessed`).
    failed_at: Cell<Option<Instant>>,
    /// When its window last began (nginx's `checked`): a failure, or the first turn after a
    /// window ended.
    checked: Cell<Option<Instant>>,
    /// Requests in flight to it (nginx's `conns`): kept for `least_conn` only.
    busy: Rc<Cell<u32>>,
}

/// A request in flight to a server of a `least_conn` group: counted from its connection's
/// making until this is dropped (with the connection, or as it goes back to its pool).
pub(crate) struct Busy(Rc<Cell<u32>>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

impl Peer {
    /// Whether failures keep it out of turn: `max_fails` of them, the window not over.
    fn out_of_turn(&self, now: Instant) -> bool {
        self.max_fails > 0
            && self.fails.get() >= self.max_fails
            && self
                .checked
                .get()
                .is_some_and(|t| now.saturating_duration_since(t) <= self.fail_timeout)
    }
}

/// Which servers a turn is among.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tier {
    /// In turn, not backups.
    Primary,
    /// In turn, backups: when no primary can take the request.
    Backup,
    /// Out of turn after failures (primaries before backups), when nothing else is left.
    OutOfTurn { backup: bool },
}

const TIERS: [Tier; 4] = [
    Tier::Primary,
    Tier::Backup,
    Tier::OutOfTurn { backup: false },
    Tier::OutOfTurn { backup: true },
];

impl Balancer {
    /// Servers with these options, in the configuration's order, chosen as `balance` says.
    pub(super) fn new(options: impl Iterator<Item = ServerOptions>, balance: Balance) -> Balancer {
        let peers = options
            .map(|o| Peer {
                weight: i64::from(o.weight),
                max_fails: o.max_fails,
                fail_timeout: o.fail_timeout,
                backup: o.backup,
                down: o.down,
                current: Cell::new(0),
                effective: Cell::new(i64::from(o.weight)),
                fails: Cell::new(0),
                failed_at: Cell::new(None),
                checked: Cell::new(None),
                busy: Rc::default(),
            })
            .collect::<Vec<Peer>>();
        // nginx clears `single` when there are backups (found by review: a single primary's
        // failures went uncounted, and each request waited for it before the backup).
        let single = peers.len() == 1;
        let total_weight = peers.iter().map(|p| p.weight.unsigned_abs()).sum();
        Balancer {
            peers,
            single,
            balance,
            total_weight,
        }
    }

    /// Whether server `i` can ever take a request (it is not marked `down`).
    pub(super) fn takes_requests(&self, i: usize) -> bool {
        self.peers.get(i).is_some_and(|p| !p.down)
    }

    /// The server for a request from `client` among those `eligible` allows (its untried
    /// servers with room), taking the turn; `None` if none is left.
    pub(super) fn pick(
        &self,
        now: Instant,
        client: IpAddr,
        eligible: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        if self.balance == Balance::IpHash
            && !self.single
            && let Some(i) = self.hashed(now, client, &eligible)
        {
            return Some(i);
        }
        self.round_robin(now, eligible)
    }

    /// nginx's `ngx_http_upstream_get_ip_hash_peer`: the address's bytes (an IPv4 one's
    /// first three, an IPv6 one's sixteen) hashed, the hash taken modulo the total weight
    /// walks the servers by weight; one that cannot take the request is passed over by
    /// hashing again, up to [`IP_HASH_TRIES`] times.
    fn hashed(
        &self,
        now: Instant,
        client: IpAddr,
        eligible: &impl Fn(usize) -> bool,
    ) -> Option<usize> {
        if self.total_weight == 0 {
            return None;
        }
        // As nginx, by the address family it has: a v4-mapped IPv6 address is hashed whole.
        let (v4, v6);
        let bytes: &[u8] = match client {
            IpAddr::V4(ip) => {
                v4 = ip.octets();
                &v4[..3]
            }
            IpAddr::V6(ip) => {
                v6 = ip.octets();
                &v6
            }
        };
        let mut hash: u64 = 89;
        for _ in 0..IP_HASH_TRIES {
            for &b in bytes {
                hash = (hash * 113 + u64::from(b)) % 6271;
            }
            let mut w = hash % self.total_weight;
            let (i, peer) = self.peers.iter().enumerate().find(|(_, p)| {
                let weight = p.weight.unsigned_abs();
                let here = w < weight;
                w = w.saturating_sub(weight);
                here
            })?;
            if !peer.down && !peer.out_of_turn(now) && eligible(i) {
                if peer
                    .checked
                    .get()
                    .is_none_or(|t| now.saturating_duration_since(t) > peer.fail_timeout)
                {
                    peer.checked.set(Some(now));
                }
                return Some(i);
            }
        }
        None
    }

    /// The weighted round robin's turn among the servers `eligible` allows (for
    /// `least_conn`, among the least busy of them), tier by tier.
    fn round_robin(&self, now: Instant, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        TIERS.iter().find_map(|&tier| {
            let candidate = |i, peer: &Peer| {
                let in_tier = match tier {
                    Tier::Primary => !peer.backup && !peer.out_of_turn(now),
                    Tier::Backup => peer.backup && !peer.out_of_turn(now),
                    Tier::OutOfTurn { backup } => peer.backup == backup && peer.out_of_turn(now),
                };
                in_tier && !peer.down && eligible(i)
            };
            if self.balance != Balance::LeastConn {
                return self.smooth_turn(now, candidate);
            }
            // nginx compares `conns / weight` as `a.conns * b.weight < b.conns * a.weight`.
            let load = |peer: &Peer, other: &Peer| {
                u64::from(peer.busy.get()) * other.weight.unsigned_abs()
            };
            let least = self
                .peers
                .iter()
                .enumerate()
                .filter(|&(i, peer)| candidate(i, peer))
                .map(|(_, peer)| peer)
                .reduce(|best, peer| {
                    if load(peer, best) < load(best, peer) {
                        peer
                    } else {
                        best
                    }
                })?;
            self.smooth_turn(now, |i, peer| {
                candidate(i, peer) && load(peer, least) == load(least, peer)
            })
        })
    }

    /// Counts a request going to server `i` until the [`Busy`] returned is dropped; `None`
    /// when the group does not balance by it.
    pub(super) fn engage(&self, i: usize) -> Option<Busy> {
        if self.balance != Balance::LeastConn {
            return None;
        }
        let peer = self.peers.get(i)?;
        peer.busy.set(peer.busy.get().saturating_add(1));
        Some(Busy(Rc::clone(&peer.busy)))
    }

    /// nginx's `ngx_http_upstream_get_peer`: each candidate gains its effective weight, the
    /// one standing highest (the first of equals) takes the turn and gives back the total.
    fn smooth_turn(&self, now: Instant, candidate: impl Fn(usize, &Peer) -> bool) -> Option<usize> {
        let mut best: Option<(usize, &Peer)> = None;
        let mut total = 0;
        for (i, peer) in self.peers.iter().enumerate() {
            if !candidate(i, peer) {
                continue;
            }
            let effective = peer.effective.get();
            peer.current.set(peer.current.get() + effective);
            total += effective;
            if effective < peer.weight {
                peer.effective.set(effective + 1);
            }
            if best.is_none_or(|(_, b)| peer.current.get() > b.current.get()) {
                best = Some((i, peer));
            }
        }
        let (i, peer) = best?;
        peer.current.set(peer.current.get() - total);
        if peer
            .checked
            .get()
            .is_none_or(|t| now.saturating_duration_since(t) > peer.fail_timeout)
        {
            peer.checked.set(Some(now));
        }
        Some(i)
    }

    /// Server `i` failed a request (refused it, broke, timed out, or answered with a
    /// status `next_upstream` counts): one more failure in its window, and a lower weight
    /// until it regains it. Returns whether this failure took it out of turn (one that
    /// fails again while out of turn, as the last resort, is not taken out anew).
    pub(super) fn failed(&self, i: usize, now: Instant) -> bool {
        let Some(peer) = self.peers.get(i) else {
            return false;
        };
        if self.single && !peer.backup {
            return false;
        }
        let was_out = peer.out_of_turn(now);
        peer.fails.set(peer.fails.get().saturating_add(1));
        peer.failed_at.set(Some(now));
        peer.checked.set(Some(now));
        if peer.max_fails > 0 {
            let lowered = peer.effective.get() - peer.weight / i64::from(peer.max_fails);
            peer.effective.set(lowered.max(0));
        }
        !was_out && peer.out_of_turn(now)
    }

    /// Server `i` answered a request: its failures are forgotten once a window began after
    /// the last of them (nginx's "mark peer live if check passed").
    pub(super) fn answered(&self, i: usize) {
        if let Some(peer) = self.peers.get(i)
            && let (Some(failed), Some(checked)) = (peer.failed_at.get(), peer.checked.get())
            && failed < checked
        {
            peer.fails.set(0);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn balancer(servers: &[&str]) -> Balancer {
        balancing(servers, Balance::RoundRobin)
    }

    fn balancing(servers: &[&str], balance: Balance) -> Balancer {
        let options = servers.iter().map(|s| {
            let addr = format!("unix:/{s}");
            let s: crate::config::ServerAddr = addr.parse().unwrap();
            s.options
        });
        Balancer::new(options, balance)
    }

    /// Any client: round robin does not look.
    const ANY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn turns(b: &Balancer, now: Instant, n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| b.pick(now, ANY, |_| true).unwrap())
            .collect()
    }

    fn least_conn(servers: &[&str]) -> Balancer {
        balancing(servers, Balance::LeastConn)
    }

    #[test]
    fn least_conn_goes_to_the_least_busy_for_its_weight_and_takes_turns_among_equals() {
        let now = Instant::now();
        let b = least_conn(&["a", "b", "c"]);
        // Nothing in flight: the weighted round robin's turns.
        assert_eq!(turns(&b, now, 3), [0, 1, 2]);
        // a and b busy: c, and again c while they stay so.
        let (_a, _b) = (b.engage(0), b.engage(1));
        assert_eq!(turns(&b, now, 2), [2, 2]);
        let _c = b.engage(2);
        drop(_a);
        assert_eq!(turns(&b, now, 1), [0]);
        // Ended requests are counted off: all equal again, turns again.
        drop((_b, _c));
        assert_eq!(turns(&b, now, 3), [0, 1, 2]);
        assert_eq!(b.peers.iter().map(|p| p.busy.get()).sum::<u32>(), 0);

        // By weight: one in flight on a weight=2 server weighs half one on b.
        let b = least_conn(&["a weight=2", "b"]);
        let _a = b.engage(0);
        assert_eq!(b.pick(now, ANY, |_| true), Some(1));
        let _b = b.engage(1);
        assert_eq!(b.pick(now, ANY, |_| true), Some(0));
        // Not a server the request may not go to, however idle.
        assert_eq!(b.pick(now, ANY, |i| i == 0), Some(0));
        // Round robin keeps no count.
        assert!(balancer(&["a", "b"]).engage(0).is_none());
    }

    #[test]
    fn least_conn_takes_backups_only_when_no_primary_can() {
        let now = Instant::now();
        let b = least_conn(&["a", "b backup"]);
        let _busy: Vec<_> = (0..5).map(|_| b.engage(0)).collect();
        assert_eq!(
            turns(&b, now, 2),
            [0, 0],
            "a busy primary still before a backup"
        );
        assert_eq!(b.pick(now, ANY, |i| i != 0), Some(1));
    }

    #[test]
    fn weights_take_turns_smoothly_as_in_nginx() {
        let b = balancer(&["a weight=5", "b", "c"]);
        let now = Instant::now();
        // nginx's order for 5, 1, 1 (the integration test holds the two side by side).
        assert_eq!(
            turns(&b, now, 14),
            [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]
        );
        let equal = balancer(&["a", "b", "c"]);
        assert_eq!(turns(&equal, now, 6), [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn backups_and_down_servers_wait() {
        let b = balancer(&["a", "b backup", "c down"]);
        let now = Instant::now();
        assert_eq!(turns(&b, now, 3), [0, 0, 0]);
        assert_eq!(b.pick(now, ANY, |i| i != 0), Some(1), "a tried: the backup");
        assert_eq!(b.pick(now, ANY, |i| i == 2), None, "down takes nothing");
        assert!(!b.takes_requests(2));
    }

    #[test]
    fn max_fails_within_fail_timeout_take_a_server_out_of_turn() {
        let b = balancer(&["a max_fails=2 fail_timeout=10s", "b"]);
        let t0 = Instant::now();
        assert_eq!(b.pick(t0, ANY, |_| true), Some(0));
        assert!(!b.failed(0, t0), "one failure of two");
        assert!(b.failed(0, t0), "two");
        assert_eq!(turns(&b, t0, 3), [1, 1, 1]);
        // Out of turn, it is still the last resort; failing there, it is not taken out
        // anew (nothing more to log).
        assert_eq!(b.pick(t0, ANY, |i| i == 0), Some(0));
        assert!(!b.failed(0, t0));
        // The window over, it takes turns again; an answer forgets its failures.
        let later = t0 + Duration::from_secs(11);
        assert!(turns(&b, later, 4).contains(&0));
        b.answered(0);
        assert!(!b.failed(0, later), "counting starts again");
    }

    #[test]
    fn a_single_server_keeps_no_count() {
        let b = balancer(&["a"]);
        let now = Instant::now();
        for _ in 0..3 {
            assert!(!b.failed(0, now));
        }
        assert_eq!(turns(&b, now, 2), [0, 0], "never out of turn");
    }

    #[test]
    fn a_single_primary_with_a_backup_counts_and_yields_to_it() {
        let b = balancer(&["a", "b backup"]);
        let now = Instant::now();
        assert!(b.failed(0, now), "max_fails = 1: out of turn");
        assert_eq!(turns(&b, now, 2), [1, 1], "the backup takes its turns");
        // After fail_timeout, one request tries it again; an answer puts it back in turn.
        let later = now + Duration::from_secs(11);
        assert_eq!(turns(&b, later, 2), [0, 1], "one request tries it again");
        b.answered(0);
        assert_eq!(turns(&b, later, 2), [0, 0], "back in turn");
        assert!(b.failed(1, now), "a backup's failures count");
    }

    #[test]
    fn ip_hash_hashes_the_first_three_bytes_as_nginx() {
        let b = balancing(&["a", "b", "c"], Balance::IpHash);
        let now = Instant::now();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // 192.0.2: 89 → 3978 → 4273 → 6255 (x113 + byte, mod 6271); 6255 mod 3 = 0.
        assert_eq!(b.pick(now, ip("192.0.2.7"), |_| true), Some(0));
        // The last byte does not count.
        assert_eq!(b.pick(now, ip("192.0.2.200"), |_| true), Some(0));
        // Passed over (tried, or no room): hashed again, 6255 → 4655 → 5522 → 3157 (mod 3:
        // 1), the same for every client of that network.
        assert_eq!(b.pick(now, ip("192.0.2.7"), |i| i != 0), Some(1));
        // Nothing left to hash to: round robin's turn, which finds none either.
        assert_eq!(b.pick(now, ip("192.0.2.7"), |_| false), None);
    }

    #[test]
    fn max_fails_0_never_takes_a_server_out() {
        let b = balancer(&["a max_fails=0", "b"]);
        let now = Instant::now();
        for _ in 0..5 {
            assert!(!b.failed(0, now));
        }
        assert_eq!(turns(&b, now, 4), [0, 1, 0, 1]);
    }
}
