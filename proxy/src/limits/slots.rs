//! An upstream group's slots: at most `max_conns` requests at each server at once, across
//! all workers, and a bounded queue of requests waiting for one.
//!
//! uWSGI has a few workers and a listen backlog (100 by default) whose overflow is a refused
//! connect: the classic nginx + uWSGI 502. With slots, the requests beyond what the workers
//! can take wait in ringway instead, where waiting costs a connection's memory, and a request
//! that would wait too long (or find the queue full) gets 503 at once.
//!
//! One `tokio::sync::Semaphore` per group holds the group's free slots (the servers'
//! `max_conns` summed); it is fair, so waiting requests are served in order, and it works
//! across the workers' runtimes. A request first takes a [`Permit`] from it, then a slot at
//! one server (an atomic in-flight count per server, which a permit guarantees has room
//! somewhere); the [`Slot`] goes with the upstream connection and is given back when that
//! connection is closed or dropped. Slots are released before permits, so a permit always
//! finds a server with room.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::Semaphore;

use crate::config::SlotLimits;
use crate::fail::Fail;
use crate::metrics::{Histogram, HistogramSnapshot, LATENCY_BOUNDS};

/// One group's slots, queue and figures, shared by every worker.
pub(crate) struct GroupSlots {
    limits: SlotLimits,
    /// Requests at each server now.
    in_flight: Box<[AtomicUsize]>,
    /// Free slots of the whole group.
    free: Semaphore,
    /// Requests waiting for a slot now.
    waiting: AtomicUsize,
    counts: Arc<SlotCounts>,
}

/// A group's queue refusals and waits: shared with the slots a reload puts in their place,
/// so the counters go on (the old slots' queued requests included).
pub(crate) struct SlotCounts {
    /// Refused at once: the queue was full.
    queue_full: AtomicU64,
    /// Refused after `queue_timeout`.
    queue_timeouts: AtomicU64,
    /// How long the requests that queued waited (for a slot, or until refused).
    wait: Histogram,
}

impl Default for SlotCounts {
    fn default() -> Self {
        SlotCounts {
            queue_full: AtomicU64::new(0),
            queue_timeouts: AtomicU64::new(0),
            wait: Histogram::new(LATENCY_BOUNDS),
        }
    }
}

/// A free slot somewhere in the group, not yet tied to a server. Dropped, it is given back.
pub(crate) struct Permit {
    slots: Option<Arc<GroupSlots>>,
}

/// A slot at one server: held by an upstream connection until it closes.
pub(crate) struct Slot {
    slots: Option<Arc<GroupSlots>>,
    server: usize,
}

impl GroupSlots {
    /// Slots for a group of `servers` servers, `taking` of which take requests (not
    /// marked `down`: their slots would be promised and never found).
    pub(crate) fn new(limits: SlotLimits, servers: usize, taking: usize) -> GroupSlots {
        GroupSlots::counting_on(limits, servers, taking, Arc::default())
    }

    /// As [`GroupSlots::new`], counting into `counts` (old slots').
    pub(crate) fn counting_on(
        limits: SlotLimits,
        servers: usize,
        taking: usize,
        counts: Arc<SlotCounts>,
    ) -> GroupSlots {
        let total = limits
            .max_conns
            .saturating_mul(taking)
            .min(Semaphore::MAX_PERMITS);
        GroupSlots {
            limits,
            in_flight: (0..servers).map(|_| AtomicUsize::new(0)).collect(),
            free: Semaphore::new(total),
            waiting: AtomicUsize::new(0),
            counts,
        }
    }

    /// A free slot now, if there is one and nobody is waiting for it (the semaphore gives
    /// freed slots to the waiting first).
    pub(crate) fn try_now(self: &Arc<Self>) -> Option<Permit> {
        let permit = self.free.try_acquire().ok()?;
        permit.forget();
        Some(Permit {
            slots: Some(Arc::clone(self)),
        })
    }

    /// Waits in the queue for a free slot: `QueueFull` at once when `queue` requests wait
    /// already, `QueueTimeout` after `queue_timeout`. Dropping the future leaves the queue.
    pub(crate) async fn wait(self: &Arc<Self>) -> Result<Permit, Fail> {
        let mut queued = Queued::join(self);
        if queued.position >= self.limits.queue {
            self.counts.queue_full.fetch_add(1, Ordering::Relaxed);
            return Err(Fail::QueueFull);
        }
        queued.waiting_since = Some(Instant::now());
        let acquired = tokio::time::timeout(self.limits.queue_timeout, self.free.acquire()).await;
        // Its wait is observed as it leaves the queue, here or when its client goes.
        drop(queued);
        match acquired {
            Ok(Ok(permit)) => {
                permit.forget();
                Ok(Permit {
                    slots: Some(Arc::clone(self)),
                })
            }
            // The semaphore is never closed; if it were, no slot would ever come.
            Ok(Err(_)) | Err(_) => {
                self.counts.queue_timeouts.fetch_add(1, Ordering::Relaxed);
                Err(Fail::QueueTimeout)
            }
        }
    }

    /// Takes a slot at `server` if it has one free.
    fn reserve(&self, server: usize) -> bool {
        let Some(count) = self.in_flight.get(server) else {
            return false;
        };
        let max = self.limits.max_conns;
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Whether `server` has a free slot now.
    pub(crate) fn has_room(&self, server: usize) -> bool {
        self.in_flight
            .get(server)
            .is_some_and(|count| count.load(Ordering::Acquire) < self.limits.max_conns)
    }

    fn release(&self, server: usize) {
        if let Some(count) = self.in_flight.get(server) {
            count.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Requests waiting now.
    pub(crate) fn queue_length(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Requests refused because the queue was full, and because they waited too long.
    pub(crate) fn rejected(&self) -> (u64, u64) {
        (
            self.counts.queue_full.load(Ordering::Relaxed),
            self.counts.queue_timeouts.load(Ordering::Relaxed),
        )
    }

    /// Its counters, for slots that replace these to count on in.
    pub(crate) fn counts(&self) -> Arc<SlotCounts> {
        Arc::clone(&self.counts)
    }

    /// The waits so far.
    pub(crate) fn wait_times(&self) -> HistogramSnapshot {
        let mut snapshot = self.counts.wait.empty_snapshot();
        self.counts.wait.add_to(&mut snapshot);
        snapshot
    }

    /// Requests at the servers now.
    pub(crate) fn busy(&self) -> usize {
        self.in_flight
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

/// A place in the queue, left on drop (a request whose client went away leaves too), its
/// wait observed then: the longest waits are often those of clients that gave up (found by
/// review: they went unobserved).
struct Queued<'a> {
    slots: &'a GroupSlots,
    /// How many were waiting before this one.
    position: usize,
    /// Since when it waits for a slot (not set for a request refused at once).
    waiting_since: Option<Instant>,
}

impl<'a> Queued<'a> {
    fn join(slots: &'a GroupSlots) -> Queued<'a> {
        let position = slots.waiting.fetch_add(1, Ordering::AcqRel);
        Queued {
            slots,
            position,
            waiting_since: None,
        }
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.slots.waiting.fetch_sub(1, Ordering::AcqRel);
        if let Some(since) = self.waiting_since {
            self.slots.counts.wait.observe(since.elapsed());
        }
    }
}

impl Permit {
    /// A slot at `server`, this permit going with it; the permit back if that server is
    /// full.
    pub(crate) fn at_server(mut self, server: usize) -> Result<Slot, Permit> {
        match self.slots.take() {
            Some(slots) if slots.reserve(server) => Ok(Slot {
                slots: Some(slots),
                server,
            }),
            slots => {
                self.slots = slots;
                Err(self)
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(slots) = self.slots.take() {
            slots.free.add_permits(1);
        }
    }
}

impl Slot {
    /// Gives the server's slot back but keeps the group's (its connect failed: another
    /// server is tried with it).
    pub(crate) fn leave_server(mut self) -> Permit {
        let slots = self.slots.take();
        if let Some(slots) = &slots {
            slots.release(self.server);
        }
        Permit { slots }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(slots) = self.slots.take() {
            // The server's count first: whoever gets the permit next must find room.
            slots.release(self.server);
            slots.free.add_permits(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn slots(max_conns: usize, servers: usize, queue: usize, timeout_ms: u64) -> Arc<GroupSlots> {
        Arc::new(GroupSlots::new(
            SlotLimits {
                max_conns,
                queue,
                queue_timeout: Duration::from_millis(timeout_ms),
            },
            servers,
            servers,
        ))
    }

    fn run<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn each_server_takes_at_most_max_conns() {
        let g = slots(2, 2, 0, 10);
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(g.try_now().unwrap().at_server(0).ok().unwrap());
        }
        // Server 0 is full; the permit comes back and finds room at server 1.
        let permit = g.try_now().unwrap();
        let permit = permit.at_server(0).err().unwrap();
        held.push(permit.at_server(1).ok().unwrap());
        held.push(g.try_now().unwrap().at_server(1).ok().unwrap());
        assert!(g.try_now().is_none(), "4 slots in all");
        assert_eq!(g.busy(), 4);
        drop(held.pop());
        assert_eq!(g.busy(), 3);
        assert!(g.try_now().is_some());
    }

    #[test]
    fn a_failed_server_gives_its_slot_back_and_the_permit_moves_on() {
        let g = slots(1, 2, 0, 10);
        let slot = g.try_now().unwrap().at_server(0).ok().unwrap();
        let permit = slot.leave_server();
        assert_eq!(g.busy(), 0);
        let slot = permit.at_server(1).ok().unwrap();
        assert_eq!(g.busy(), 1);
        drop(slot);
        assert_eq!(g.busy(), 0);
        assert_eq!(g.free.available_permits(), 2);
    }

    #[test]
    fn a_full_queue_refuses_at_once() {
        let g = slots(1, 1, 0, 1000);
        let _held = g.try_now().unwrap();
        let started = Instant::now();
        assert!(matches!(run(g.wait()), Err(Fail::QueueFull)));
        assert!(started.elapsed() < Duration::from_millis(500));
        assert_eq!(g.rejected(), (1, 0));
        assert_eq!(g.queue_length(), 0);
    }

    #[test]
    fn a_queued_request_times_out_or_gets_the_freed_slot() {
        let g = slots(1, 1, 1, 50);
        let _held = g.try_now().unwrap().at_server(0).ok().unwrap();
        assert!(matches!(run(g.wait()), Err(Fail::QueueTimeout)));
        assert_eq!(g.rejected(), (0, 1));
        assert_eq!(g.wait_times().count(), 1);
        assert_eq!(g.queue_length(), 0);
        // A slot freed on another thread (as by another worker) goes to the one waiting.
        let g = slots(1, 1, 1, 10_000);
        let held = g.try_now().unwrap().at_server(0).ok().unwrap();
        let freer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(held);
        });
        let permit = run(g.wait());
        freer.join().unwrap();
        assert!(permit.is_ok_and(|p| p.at_server(0).is_ok()));
        assert_eq!(g.rejected(), (0, 0));
        assert_eq!(g.wait_times().count(), 1);
    }

    #[test]
    fn the_queue_holds_queue_requests() {
        let g = slots(1, 1, 2, 10_000);
        let held = g.try_now().unwrap();
        run(async {
            let first = g.wait();
            let second = g.wait();
            let third = g.wait();
            tokio::pin!(first, second, third);
            // Two wait; the third finds the queue full.
            assert!(poll_once(&mut first).is_none());
            assert!(poll_once(&mut second).is_none());
            assert_eq!(g.queue_length(), 2);
            assert!(matches!(third.await, Err(Fail::QueueFull)));
            drop(held);
            let served = first.await;
            assert!(served.is_ok(), "first come, first served");
            assert!(poll_once(&mut second).is_none(), "one slot, taken");
            drop(served);
            assert!(second.await.is_ok());
        });
        assert_eq!(g.queue_length(), 0);
        assert_eq!(g.free.available_permits(), 1, "every permit came back");
    }

    #[test]
    fn a_waiter_dropped_leaves_the_queue() {
        let g = slots(1, 1, 1, 10_000);
        let _held = g.try_now().unwrap();
        run(async {
            let waiting = g.wait();
            tokio::pin!(waiting);
            assert!(poll_once(&mut waiting).is_none());
            assert_eq!(g.queue_length(), 1);
        });
        assert_eq!(g.queue_length(), 0);
    }

    /// Polls a future once.
    fn poll_once<F: Future + Unpin>(f: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match std::pin::Pin::new(f).poll(&mut cx) {
            std::task::Poll::Ready(out) => Some(out),
            std::task::Poll::Pending => None,
        }
    }
}
