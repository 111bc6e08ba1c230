//! Keep-alive connections between requests, parked: no task, no buffer and no timer each.
//!
//! Most of the connections a busy server holds are waiting for their next request. Waiting
//! in an io_uring read would hold a read buffer and a task sized for the busiest request;
//! so a plain connection with nothing unread hands its state to its thread's [`IdleConns`]
//! and its task ends. Its socket is registered once, edge-triggered, with an epoll instance
//! of the thread's own, which Tokio's reactor watches like any other fd; when the socket
//! turns readable, the watcher reads the request with one non-blocking `recv` (the bytes
//! are there) and serves it in its own poll; only a request that must wait gets a task of
//! its own. One sweep closes the connections idle past their `keepalive_timeout`, and when
//! the server stops, those still idle after the drain's grace. See docs/ARCHITECTURE.md,
//! "Idle connections".

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use slab::Slab;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;

use super::Conn;
use crate::client::{DRAIN_IDLE_GRACE, ReadNow};
use crate::clock::Coarse;
use crate::worker::Stop;

/// How often parked connections are checked against their deadlines: a connection closes
/// at most this long after its keep-alive timeout.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// Events taken from the epoll instance per `epoll_wait`.
const EVENTS: usize = 256;

/// A connection's place in its thread's [`IdleConns`], held from its first park until it
/// closes. The stamp tells its users apart when the place is reused: an event still queued
/// for a connection gone is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct IdleKey {
    index: u32,
    stamp: u32,
}

impl IdleKey {
    fn token(self) -> u64 {
        (u64::from(self.stamp) << 32) | u64::from(self.index)
    }

    fn from_token(token: u64) -> IdleKey {
        IdleKey {
            index: token as u32,
            stamp: (token >> 32) as u32,
        }
    }
}

/// What became of a connection offered to [`IdleConns::park`].
pub(super) enum Parking {
    /// Parked: the caller's task is done with it.
    Parked,
    /// Not parked (bytes may be waiting, or parking is not possible): serve it on.
    Busy(Box<Conn>),
    /// The client closed it (or its socket failed) meanwhile: it is gone.
    Done,
}

/// One thread's parked keep-alive connections.
pub(crate) struct IdleConns {
    /// The epoll instance the parked sockets are registered with (each once, for its life).
    epoll: OwnedFd,
    places: RefCell<Slab<Place>>,
    /// Connections parked now.
    parked: Cell<usize>,
    /// Increments per registration, so that a reused place gets a new stamp.
    stamps: Cell<u32>,
    /// Set while the watcher runs: without it, nothing would wake a parked connection.
    watching: Cell<bool>,
    /// Once the server stops: parked connections have until then to send a request.
    drain_deadline: Cell<Option<Coarse>>,
    /// Tells the watcher the first connection has parked (it sweeps only while some are).
    first_parked: Notify,
    /// Tracks the tasks of resumed connections, so the drain waits for them.
    tracker: TaskTracker,
}

/// A registered connection's place.
struct Place {
    stamp: u32,
    /// The connection while parked, with its deadline.
    parked: Option<(Box<Conn>, Coarse)>,
    /// Bytes may be waiting that no new edge will announce: an edge was taken while the
    /// connection was busy, or its last read filled its buffer. Its next park reads first.
    ready: bool,
}

impl IdleConns {
    /// The thread's connection tasks, which the drain waits for: a task serving requests
    /// (an HTTP/2 stream's) is spawned under it.
    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.tracker
    }

    /// A thread's idle set; connections resumed from it run under `tracker`.
    pub(crate) fn new(tracker: TaskTracker) -> io::Result<IdleConns> {
        // SAFETY: epoll_create1 takes no pointer; a valid fd it returns is ours to own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(IdleConns {
            // SAFETY: `fd` was just returned by epoll_create1 and nothing else owns it.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            places: RefCell::new(Slab::new()),
            parked: Cell::new(0),
            stamps: Cell::new(0),
            watching: Cell::new(false),
            drain_deadline: Cell::new(None),
            first_parked: Notify::new(),
            tracker,
        })
    }

    /// Connections parked now.
    pub(crate) fn parked(&self) -> usize {
        self.parked.get()
    }

    /// Parks `conn` until its socket turns readable or its keep-alive timeout passes. Only
    /// a plain connection with nothing unread parks, and only while the watcher runs and
    /// the server is not stopping (the head read's own drain logic serves those).
    pub(super) fn park(&self, mut conn: Box<Conn>) -> Parking {
        if !self.watching.get()
            || self.drain_deadline.get().is_some()
            || conn.client.is_tls()
            || !conn.client.input.is_empty()
        {
            return Parking::Busy(conn);
        }
        let Some(fd) = conn.client.stream.get_ref().socket() else {
            return Parking::Busy(conn);
        };
        let key = match conn.idle_key {
            Some(key) => key,
            None => match self.register(fd) {
                Ok(key) => {
                    conn.idle_key = Some(key);
                    key
                }
                Err(err) => {
                    tracing::debug!(error = %err, "epoll registration failed: not parking");
                    return Parking::Busy(conn);
                }
            },
        };
        let was_ready = match self.places.borrow_mut().get_mut(key.index as usize) {
            Some(place) => std::mem::take(&mut place.ready),
            None => return Parking::Busy(conn),
        };
        if was_ready {
            // An edge was taken without the socket being read empty since: bytes may wait.
            match conn.client.read_now() {
                ReadNow::Nothing => {}
                ReadNow::Bytes { more } => {
                    self.may_have_more(key, more);
                    return Parking::Busy(conn);
                }
                ReadNow::Closed => {
                    conn.client.ended_idle();
                    return Parking::Done;
                }
                // Dropped unfinished: its socket is shut down.
                ReadNow::Failed(_) => return Parking::Done,
            }
        }
        // The current configuration's timeout: the connection moves to it at its next
        // request, and a reload may have come since its last (found by review).
        let timeout =
            crate::generation::keepalive_timeout().unwrap_or(conn.worker.config.keepalive_timeout);
        let deadline = Coarse::now() + timeout;
        let mut places = self.places.borrow_mut();
        let Some(place) = places.get_mut(key.index as usize) else {
            return Parking::Busy(conn);
        };
        conn.client.shed_request_state();
        place.parked = Some((conn, deadline));
        drop(places);
        self.parked.set(self.parked.get() + 1);
        if self.parked.get() == 1 {
            self.first_parked.notify_one();
        }
        Parking::Parked
    }

    /// Registers `fd` (edge-triggered, for its life) and gives it a place.
    fn register(&self, fd: RawFd) -> io::Result<IdleKey> {
        let stamp = self.stamps.get().wrapping_add(1);
        self.stamps.set(stamp);
        let index = {
            let mut places = self.places.borrow_mut();
            let entry = places.vacant_entry();
            let index = entry.key();
            entry.insert(Place {
                stamp,
                parked: None,
                ready: false,
            });
            index
        };
        let key = IdleKey {
            index: u32::try_from(index).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?,
            stamp,
        };
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: key.token(),
        };
        // SAFETY: both fds are open (the socket's owner is the caller's connection) and the
        // event is a valid epoll_event for the call's duration.
        let rc =
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            self.places.borrow_mut().try_remove(index);
            return Err(err);
        }
        Ok(key)
    }

    /// After a read that did not wait: `more` says it filled its buffer, so the socket may
    /// hold more bytes that no new edge will announce; the next park reads once more first.
    pub(super) fn may_have_more(&self, key: IdleKey, more: bool) {
        if let Some(place) = self.places.borrow_mut().get_mut(key.index as usize)
            && place.stamp == key.stamp
        {
            place.ready = more;
        }
    }

    /// Frees a closing connection's place. Its socket leaves the epoll instance when it is
    /// closed; an event still queued for it finds the place gone or stamped anew.
    pub(super) fn release(&self, key: IdleKey) {
        // A connection is dropped only outside a borrow of the places (taken out first), so
        // this cannot fail; if it ever did, the place would only be leaked.
        if let Ok(mut places) = self.places.try_borrow_mut()
            && places
                .get(key.index as usize)
                .is_some_and(|p| p.stamp == key.stamp)
        {
            places.remove(key.index as usize);
        }
    }

    /// Wakes parked connections whose sockets turned readable, and notes readiness for the
    /// busy ones. Returns how many events `epoll_wait` gave.
    fn take_events(&self, cx: &mut Context<'_>) -> usize {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        // SAFETY: the buffer holds EVENTS entries; a zero timeout does not block.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                EVENTS as libc::c_int,
                0,
            )
        };
        let Ok(n) = usize::try_from(n) else {
            return 0;
        };
        for event in &events[..n] {
            let key = IdleKey::from_token(event.u64);
            let woken = {
                let mut places = self.places.borrow_mut();
                match places.get_mut(key.index as usize) {
                    Some(place) if place.stamp == key.stamp => match place.parked.take() {
                        Some((conn, _)) => Some(conn),
                        None => {
                            place.ready = true;
                            None
                        }
                    },
                    _ => None,
                }
            };
            if let Some(conn) = woken {
                self.parked.set(self.parked.get() - 1);
                self.resume_here(conn, cx);
            }
        }
        n
    }

    /// Serves a woken connection in the watcher's own poll first: a request that needs no
    /// wait (a cached file; anything whose reads and writes the socket takes at once) is
    /// served, and its connection parked again, with no task made for it. One that waits
    /// goes on in a task of its own, which polls it again with its own waker; a wake the
    /// watcher gets meanwhile is spurious. This relies on every future of a request's path
    /// keeping the waker of its latest poll, as Tokio's and tokio-uring's do: a hand-written
    /// one that kept its first would leave its connection hanging.
    // In `perf`, a task per resumed connection came to about 4% of a worker's CPU serving
    // 1 KiB files.
    fn resume_here(&self, conn: Box<Conn>, cx: &mut Context<'_>) {
        let mut resumed = Box::pin(super::resume(conn));
        // As a task's would, a panic ends this connection alone, not the watcher: the
        // connection is dropped with the future (its socket is shut down).
        SERVING_IN_WATCHER.set(true);
        let polled = panic::catch_unwind(AssertUnwindSafe(|| resumed.as_mut().poll(cx)));
        SERVING_IN_WATCHER.set(false);
        match polled {
            Ok(Poll::Ready(())) => {}
            Ok(Poll::Pending) => drop(self.tracker.spawn_local(resumed)),
            Err(_) => tracing::error!("a resumed connection panicked; it is closed"),
        }
    }

    /// Closes the parked connections past their deadline (their keep-alive timeout, or the
    /// drain's grace). While draining, one with bytes waiting is served instead.
    fn sweep(&self, now: Coarse) {
        let drain = self.drain_deadline.get();
        let expired: Vec<Box<Conn>> = {
            let mut places = self.places.borrow_mut();
            places
                .iter_mut()
                .filter_map(|(_, place)| {
                    let (_, deadline) = place.parked.as_ref()?;
                    let deadline = drain.map_or(*deadline, |d| d.min(*deadline));
                    if deadline > now {
                        return None;
                    }
                    place.parked.take().map(|(conn, _)| conn)
                })
                .collect()
        };
        self.parked.set(self.parked.get() - expired.len());
        for conn in expired {
            if drain.is_some() {
                // The last moment's bytes are a request to serve still (with
                // `Connection: close`); none, and the connection is done.
                self.tracker.spawn_local(super::resume(conn));
            } else {
                super::close_idle(conn);
            }
        }
    }

    /// A reload set `keepalive_timeout`: no parked connection waits longer than that from
    /// now (nginx closes its idle connections at a reload; found by review: a timeout
    /// lowered, or keep-alive turned off, left the parked ones their old deadline). One
    /// accepted under the other `proxy_protocol` is not kept at all: its next request
    /// could only be dropped. The next sweep closes those past their deadline.
    pub(crate) fn retune(&self, next: &crate::config::Config) {
        let now = Coarse::now();
        let latest = now + next.keepalive_timeout;
        for (_, place) in self.places.borrow_mut().iter_mut() {
            if let Some((conn, deadline)) = place.parked.as_mut() {
                *deadline = match conn.worker.config.proxy_protocol == next.proxy_protocol {
                    true => (*deadline).min(latest),
                    false => now,
                };
            }
        }
    }

    /// Closes every connection still parked: the worker is done (its drain may have ended
    /// before the grace did), and a parked connection holds its worker, which holds this.
    pub(crate) fn close_all(&self) {
        let parked: Vec<Box<Conn>> = self
            .places
            .borrow_mut()
            .iter_mut()
            .filter_map(|(_, place)| place.parked.take().map(|(conn, _)| conn))
            .collect();
        self.parked.set(0);
        parked.into_iter().for_each(super::close_idle);
    }

    /// Runs for the worker's life: wakes parked connections, closes the ones idle too long,
    /// and once `stop` is set, gives the parked ones the drain's grace and ends when none
    /// is left.
    pub(crate) async fn watch(self: Rc<Self>, stop: Rc<Stop>) {
        let fd = EpollFd(self.epoll.as_raw_fd());
        // SAFETY: the epoll fd is owned by `self`, which this task holds: it stays open, and
        // is not replaced, until the registration is dropped at the end of this function.
        let epoll = match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
            Ok(epoll) => epoll,
            Err(err) => {
                tracing::warn!(error = %err, "idle keep-alive connections will wait in reads");
                return;
            }
        };
        self.watching.set(true);
        // One wait for the whole loop: made anew at each wake-up, it would register and
        // unregister with the signal each time.
        let stopped = stop.wait();
        tokio::pin!(stopped);
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = self.drain_deadline.get().is_some();
            if stopping && self.parked() == 0 {
                break;
            }
            tokio::select! {
                ready = epoll.readable() => match ready {
                    Ok(mut guard) => {
                        let taken = poll_fn(|cx| Poll::Ready(self.take_events(cx))).await;
                        if taken < EVENTS {
                            guard.clear_ready();
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "idle connections' epoll failed");
                        break;
                    }
                },
                _ = sweep.tick(), if self.parked() > 0 => self.sweep(Coarse::now()),
                // Nothing parked: no need to tick until something is.
                () = self.first_parked.notified(), if self.parked() == 0 => {}
                // Not polled again once done: `stopping` holds from here on.
                () = &mut stopped, if !stopping => {
                    self.drain_deadline.set(Some(Coarse::now() + DRAIN_IDLE_GRACE));
                }
            }
        }
        self.watching.set(false);
        // Whatever is still parked (the epoll failed) gets its last read now.
        let now = Coarse::now();
        self.drain_deadline.set(Some(now));
        self.sweep(now);
    }
}

thread_local! {
    /// Set while the watcher serves a resumed connection in its own poll.
    static SERVING_IN_WATCHER: Cell<bool> = const { Cell::new(false) };
}

/// Moves a request the watcher is serving in its own poll to a task of its own, from this
/// point on; elsewhere, does nothing. For work that waits anyway (an upstream's connect and
/// exchange): done in the watcher, every woken request's connect and packet went out before
/// any other task ran, ahead of the answers already under way, and ringway's user CPU per
/// request through uWSGI rose to 9.7 µs from 9.0 with a task per request; leaving here, it
/// is 8.5 µs (hello, `wrk -c100`, four alternating runs of each build).
pub(crate) async fn leave_the_watcher() {
    // Pending with no wake-up: `resume_here` spawns a task for any pending request, and a
    // new task is polled; there, this is ready at once.
    poll_fn(|_| {
        if SERVING_IN_WATCHER.get() {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await
}

/// The epoll instance's fd as Tokio's reactor sees it (owned by [`IdleConns`], which outlives
/// the watcher's registration).
struct EpollFd(RawFd);

impl AsRawFd for EpollFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::{IdleKey, Place};

    /// A parked connection's place in the idle set, beside its boxed state.
    #[test]
    fn a_place_is_small() {
        // Measured 32 bytes: the stamp, the boxed connection and its deadline, the flag.
        let size = size_of::<Place>();
        assert!(size <= 32, "a place is {size} bytes");
    }

    #[test]
    fn a_key_survives_its_token() {
        let key = IdleKey {
            index: 7,
            stamp: u32::MAX,
        };
        assert_eq!(IdleKey::from_token(key.token()), key);
    }
}
