//! The upstream side: one worker's view of each upstream group's servers (nginx's weighted
//! round robin, `balance.rs`, with failover on connect errors; `exchange/next_upstream.rs`
//! decides when a request a server failed goes on), the connection to one of them, and the
//! exchange on it.
//!
//! uWSGI closes every connection after one response (the uwsgi protocol has no keep-alive),
//! so each request connects anew. Connects go through a non-blocking socket2 socket: a uWSGI
//! whose listen backlog is full answers EAGAIN at once, which ringway turns into 503, where a
//! tokio-uring connect would wait forever and could not be cancelled. A failed connect
//! (refused, timed out, a full backlog) counts against the server, as in nginx
//! (`max_fails`, `fail_timeout`).
//!
//! A group whose servers have `max_conns` first takes a slot (crate::limits), waiting in its
//! queue if every server is full, and connects only to a server with room; the slot goes
//! with the connection and is given back when it closes.

mod balance;
mod health;
pub(crate) mod http;
mod pool;
mod send;
mod stream;
mod uwsgi;

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio_uring::net::{TcpStream, UnixStream};

use balance::Balancer;
pub use health::{ConnCounts, GroupHealth, ServerHealth, UpstreamHealth};
use pool::ServerPool;
pub(crate) use send::{Sent, send_request};
use stream::Pool;
pub(crate) use stream::UpstreamConn;
pub(crate) use uwsgi::read_response_head;

use crate::config::{Group, Protocol, UpstreamAddr};
use crate::fail::Fail;
use crate::limits::{GroupSlots, Permit, Slot};

struct Member {
    addr: UpstreamAddr,
    /// What `/readyz` knows of it, shared by every worker.
    health: Arc<ServerHealth>,
    /// HTTP: its idle connections in this worker.
    pool: Option<Pool>,
}

/// Where a connection may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reuse {
    /// A new connection (uwsgi, or the retry of a request a kept connection failed).
    Fresh,
    /// A kept one if there is one that still looks open (see [`take_kept`]); `peek`: look
    /// at its socket too, for a request that cannot be sent again.
    Kept { peek: bool },
}

/// The servers of a group one request has been to (nginx's `tried` bitmap): it goes to
/// each at most once. A group has at most 64 servers (`MAX_GROUP_SERVERS`); one past them
/// could not be counted, and a request it failed would not go on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tried(u64);

/// Where one request's way through a group stands: the servers it has been to, and when
/// its first connect began. That is after any wait for a slot (`max_conns`): the route's
/// `next_upstream_timeout` counts from there, as nginx's from its first connect, so a
/// request that waited in the queue may still go on (found by review).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Attempts {
    pub(crate) tried: Tried,
    first_connect: Option<Instant>,
    /// The last server whose connect failed, and when it was picked: the request's log
    /// line names it when no other server took the request (nginx's `$upstream_addr`).
    last_refusal: Option<(u32, Instant)>,
}

impl Attempts {
    /// Takes the last server whose connect failed, with when it was picked.
    pub(crate) fn take_last_refusal(&mut self) -> Option<(usize, Instant)> {
        self.last_refusal
            .take()
            .map(|(server, at)| (server as usize, at))
    }

    /// Notes a connect beginning at `at`; when the first one began.
    pub(crate) fn connecting(&mut self, at: Instant) -> Instant {
        *self.first_connect.get_or_insert(at)
    }

    /// When the first connect began (now, if none has).
    pub(crate) fn since(&self) -> Instant {
        self.first_connect.unwrap_or_else(Instant::now)
    }
}

/// How far a request may go on past servers that failed it: a route's
/// `next_upstream_tries` (0: each server once) and `next_upstream_timeout` (from the
/// request's first connect).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failover {
    tries: u32,
    until: Option<Instant>,
}

impl Failover {
    /// At most `tries` servers (0: any), within `timeout` of `since`.
    pub(crate) fn new(tries: u32, timeout: Option<Duration>, since: Instant) -> Failover {
        Failover {
            tries,
            until: timeout.map(|t| since + t),
        }
    }

    /// Whether a request that went to the servers `tried` names may go to no other.
    pub(crate) fn spent(self, tried: Tried) -> bool {
        (self.tries != 0 && tried.count() >= self.tries)
            || self.until.is_some_and(|until| Instant::now() >= until)
    }
}

impl Tried {
    fn has(self, server: usize) -> bool {
        server < 64 && self.0 & (1 << server) != 0
    }

    /// How many servers it counts.
    pub(crate) fn count(self) -> u32 {
        self.0.count_ones()
    }

    /// Counts `server` as tried; false for a server past the 64th, which cannot be.
    pub(crate) fn add(&mut self, server: usize) -> bool {
        if server >= 64 {
            return false;
        }
        self.0 |= 1 << server;
        true
    }
}

/// One worker's view of an upstream group (not shared between threads).
pub(crate) struct Upstreams {
    members: Vec<Member>,
    balancer: Balancer,
    buffer_size: usize,
    /// The group's slots, shared by every worker (`None`: no `max_conns`).
    slots: Option<Arc<GroupSlots>>,
    protocol: Protocol,
    /// Connections opened and reused, shared by every worker.
    conns: Arc<ConnCounts>,
}

impl Upstreams {
    /// Builds the group's set from its configuration and its shared slots, recording
    /// connects in `health`.
    pub(crate) fn new(group: &Group, slots: Option<Arc<GroupSlots>>, health: &GroupHealth) -> Self {
        let members = group
            .servers
            .iter()
            .zip(&health.servers)
            .map(|(server, health)| Member {
                addr: server.addr.clone(),
                health: Arc::clone(health),
                pool: (group.protocol == Protocol::Http)
                    .then(|| Rc::new(ServerPool::new(group.keepalive))),
            })
            .collect();
        Upstreams {
            members,
            balancer: Balancer::new(group.servers.iter().map(|s| s.options), group.balance),
            buffer_size: group.buffer_size,
            slots,
            protocol: group.protocol,
            conns: Arc::clone(&health.conns),
        }
    }

    /// The group's connection counts (shared by every worker).
    pub(crate) fn conn_counts(&self) -> &ConnCounts {
        &self.conns
    }

    /// What the group's servers speak.
    pub(crate) fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Whether connections are kept for another request (an HTTP group with `keepalive`).
    pub(crate) fn keeps_connections(&self) -> bool {
        self.members
            .iter()
            .any(|m| m.pool.as_ref().is_some_and(|p| p.keeps()))
    }

    /// Closes the group's kept connections for good: a reload replaced its generation.
    pub(crate) fn retire_pools(&self) {
        for pool in self.members.iter().filter_map(|m| m.pool.as_ref()) {
            pool.retire();
        }
    }

    /// Closes the connections idle past `keepalive_timeout`, and a burst's surplus beyond
    /// `keepalive` that no request took; returns how long until the next sweep is due
    /// (`None`: the group keeps none).
    pub(crate) fn sweep(&self, now: Instant) -> Option<Duration> {
        let mut period: Option<Duration> = None;
        for pool in self.members.iter().filter_map(|m| m.pool.as_ref()) {
            if pool.keeps() {
                pool.sweep(now);
                let p = pool.sweep_period();
                period = Some(period.map_or(p, |q| q.min(p)));
            }
        }
        period
    }

    /// The group's uWSGI buffer-size: the largest vars block its servers take.
    pub(crate) fn buffer_size(&self) -> usize {
        self.buffer_size
    }

    /// A slot at the group's servers, when they have `max_conns` (`None`: no limit): at once
    /// if one is free, else after waiting in the group's queue; `QueueFull` or
    /// `QueueTimeout` if not.
    pub(crate) async fn slot(&self) -> Result<Option<Permit>, Fail> {
        let Some(slots) = &self.slots else {
            return Ok(None);
        };
        match slots.try_now() {
            Some(permit) => Ok(Some(permit)),
            // Boxed: waiting is the rare case; its state stays out of every request's future.
            None => Box::pin(slots.wait()).await.map(Some),
        }
    }

    /// Server `server`'s address.
    pub(crate) fn server_addr(&self, server: usize) -> Option<&UpstreamAddr> {
        self.members.get(server).map(|m| &m.addr)
    }

    /// Whether a server `tried` leaves out remains for the request, with room for it under
    /// `max_conns` (found by review: a request passed on to full servers got 503 at once,
    /// past the queue; it keeps the answer it had instead).
    pub(crate) fn has_untried(&self, tried: Tried) -> bool {
        (0..self.members.len().min(64))
            .any(|i| !tried.has(i) && self.balancer.takes_requests(i) && self.has_room(i))
    }

    fn has_room(&self, server: usize) -> bool {
        self.slots
            .as_ref()
            .is_none_or(|slots| slots.has_room(server))
    }

    /// `server` failed a request after its connect (closed, timed out, a bad head, or a
    /// status `next_upstream` lists): a failure counted against it, as a refused connect.
    pub(crate) fn failed(&self, server: usize) {
        self.count_failure(server, Instant::now());
    }

    /// `server` answered a request: see [`Balancer::answered`].
    pub(crate) fn answered(&self, server: usize) {
        self.balancer.answered(server);
    }

    fn count_failure(&self, server: usize, now: Instant) {
        if self.balancer.failed(server, now)
            && let Some(member) = self.members.get(server)
        {
            // As nginx's "upstream server temporarily disabled": once a window, however many
            // requests it fails as the last resort meanwhile.
            tracing::warn!(upstream = %member.addr, "upstream server out of turn after failures");
        }
    }

    /// Connects to the server whose turn it is, trying the others on failure, except those
    /// `attempts` has tried (see [`Balancer::pick`] for the order); the servers whose connect
    /// failed join them, so a request passed on later does not go back to them (found
    /// by review: it did, and the refusal replaced the answer in hand), and the last of them
    /// is noted for the log ([`Attempts::take_last_refusal`]). The failure reported is the
    /// most telling one: busy or timed out says more than refused. With a `permit` (from
    /// [`Upstreams::slot`]) only servers with room are tried, and the connection keeps the
    /// server's slot. A kept HTTP connection is taken first when `reuse` allows. No server
    /// is tried once `bound` is spent by the servers tried. `client` is the request's
    /// real client, which `ip_hash` chooses by. With the connection comes the moment its
    /// server was picked: the time before it went to servers that failed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn connect(
        &self,
        mut permit: Option<Permit>,
        limit: Duration,
        reuse: Reuse,
        attempts: &mut Attempts,
        bound: Failover,
        client: IpAddr,
    ) -> Result<(UpstreamConn, Instant), Fail> {
        let tried = &mut attempts.tried;
        let mut worst = Fail::UpstreamRefused;
        let mut tried_any = false;
        // A permit guarantees a server with room, but a scan can miss it while other
        // workers take and give back slots: look again if every server seemed full.
        for _ in 0..SCANS {
            let mut passed = *tried;
            let with_room = permit.is_some();
            loop {
                // Each pick at its own time: a connect before it may have taken seconds.
                let now = Instant::now();
                let eligible = |i| !passed.has(i) && (!with_room || self.has_room(i));
                let Some(i) = self.balancer.pick(now, client, eligible) else {
                    break;
                };
                if !passed.add(i) {
                    break;
                }
                let slot = match permit.take().map(|p| p.at_server(i)) {
                    None => None,
                    Some(Ok(slot)) => Some(slot),
                    Some(Err(full)) => {
                        permit = Some(full);
                        continue;
                    }
                };
                tried_any = true;
                // Counted from the pick, as nginx's `conns`: a request connecting is one
                // the next pick sees.
                let busy = self.balancer.engage(i);
                let member = &self.members[i];
                if let (Reuse::Kept { peek }, Some(pool)) = (reuse, &member.pool)
                    && let Some(socket) = take_kept(pool, now, peek)
                {
                    self.conns.reused.fetch_add(1, Relaxed);
                    let mut conn = UpstreamConn::new(socket).kept_in(Rc::clone(pool), true);
                    conn.hold(slot, busy);
                    return Ok((conn.at_server(i), now));
                }
                match connect_one(&member.addr, limit).await {
                    Ok(mut conn) => {
                        member.health.connected(now);
                        self.conns.opened.fetch_add(1, Relaxed);
                        if let Some(pool) = &member.pool {
                            conn = conn.kept_in(Rc::clone(pool), false);
                        }
                        conn.hold(slot, busy);
                        return Ok((conn.at_server(i), now));
                    }
                    Err(err) => {
                        if let Some(errno) = local_shortage(&err) {
                            // Ours, not the server's: nothing counted against it, and no
                            // other server would fare better (nginx answers 500 too).
                            return Err(Fail::NoSocket(errno));
                        }
                        // Keep the group's slot for the next server.
                        permit = slot.map(Slot::leave_server);
                        self.conns.connect_failed.fetch_add(1, Relaxed);
                        tracing::debug!(upstream = %member.addr, error = %err, "upstream connect failed");
                        // Every failed connect counts, as in nginx: refused, timed out, or a
                        // full backlog (EAGAIN on a unix socket).
                        self.count_failure(i, Instant::now());
                        tried.add(i);
                        attempts.last_refusal = u32::try_from(i).ok().map(|i| (i, now));
                        let fail = classify(&err);
                        if fail == Fail::UpstreamRefused {
                            member.health.refused(now);
                        } else {
                            worst = fail;
                        }
                        // As nginx: a failed connect is a try (found by review: with every
                        // server dropping connects, each request waited out every one).
                        if bound.spent(*tried) {
                            return Err(worst);
                        }
                    }
                }
            }
            if tried_any || permit.is_none() {
                break;
            }
            tokio::task::yield_now().await;
        }
        if !tried_any && permit.is_some() {
            // Every server stayed full through the scans: as busy as a full backlog.
            return Err(Fail::UpstreamBusy);
        }
        Err(worst)
    }
}

/// A kept connection from `pool` that still looks open, if one is left (the others are
/// closed on the way): a connection the server closed meanwhile, or one holding bytes past
/// its last answer (a stray body that came late), must not carry the next request; nginx
/// closes a kept connection the moment it turns readable. One that turned readable is
/// peeked at (`recv(MSG_PEEK)`); with `peek`, every one is.
fn take_kept(
    pool: &ServerPool<stream::Socket>,
    now: Instant,
    peek: bool,
) -> Option<stream::Socket> {
    while let Some(socket) = pool.take(now) {
        if socket.looks_open(peek) {
            return Some(socket);
        }
    }
    None
}

/// Scans of a group's servers for one with room, with a slot in hand.
const SCANS: usize = 4;

/// The errno of a failure that is ringway's own shortage (file descriptors, kernel memory
/// for a socket), not the server's: `socket()` and `connect()` fail so when ringway is out.
fn local_shortage(err: &io::Error) -> Option<i32> {
    err.raw_os_error()
        .filter(|e| [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM].contains(e))
}

fn classify(err: &io::Error) -> Fail {
    match err.kind() {
        io::ErrorKind::WouldBlock => Fail::UpstreamBusy,
        io::ErrorKind::TimedOut => Fail::UpstreamConnectTimeout,
        _ => Fail::UpstreamRefused,
    }
}

/// Clears `O_NONBLOCK` on a connected socket (io_uring reads on a non-blocking socket may
/// fail with EAGAIN instead of waiting): one `ioctl(FIONBIO)`, where socket2's
/// `set_nonblocking` reads the flags and writes them back, two calls on each connect.
fn make_blocking(socket: &Socket) -> io::Result<()> {
    let off: libc::c_int = 0;
    // SAFETY: the fd is the socket's, open; FIONBIO reads one int from the pointer.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::FIONBIO, &off) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

async fn connect_one(addr: &UpstreamAddr, limit: Duration) -> io::Result<UpstreamConn> {
    match addr {
        UpstreamAddr::Unix(path) => {
            let socket = Socket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)?;
            // A unix connect completes or fails at once; EAGAIN means the backlog is full.
            socket.connect(&SockAddr::unix(path)?)?;
            make_blocking(&socket)?;
            Ok(UpstreamConn::unix(UnixStream::from_std(socket.into())))
        }
        UpstreamAddr::Tcp(sa) => {
            let kind = Type::STREAM.nonblocking().cloexec();
            let socket = Socket::new(Domain::for_address(*sa), kind, None)?;
            socket.set_nodelay(true)?;
            match socket.connect(&SockAddr::from(*sa)) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                    // Wait for writability on tokio's reactor: dropping that wait is safe,
                    // unlike dropping an io_uring connect.
                    // SAFETY: the socket owns its fd and is neither closed nor replaced
                    // while registered; `into_inner` deregisters it before it is used again.
                    let fd = unsafe { AsyncFd::register(socket)? };
                    match tokio::time::timeout(limit, fd.writable()).await {
                        Ok(ready) => drop(ready?),
                        Err(_) => return Err(io::ErrorKind::TimedOut.into()),
                    }
                    let socket = fd.into_inner();
                    if let Some(e) = socket.take_error()? {
                        return Err(e);
                    }
                    make_blocking(&socket)?;
                    return Ok(UpstreamConn::tcp(TcpStream::from_std(socket.into())));
                }
                Err(e) => return Err(e),
            }
            make_blocking(&socket)?;
            Ok(UpstreamConn::tcp(TcpStream::from_std(socket.into())))
        }
    }
}
