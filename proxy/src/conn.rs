//! The connection driver: one task per client connection, serving its requests in order.
//!
//! ```text
//! read head ─▶ exchange (dispatch → handler → Outcome) ─▶ record ─▶ keep-alive? ─┐
//!     ▲                                                                           │
//!     └───────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! The protocol decisions live in `http` and `uwsgi`; the client's I/O in `client`; one
//! request's path in `exchange`. This loop only strings requests together and counts them.
//! See docs/ARCHITECTURE.md for the pipeline and its invariants.

use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio_uring::net::TcpStream;

mod idle;

pub(crate) use idle::{IdleConns, leave_the_watcher};

use crate::buffer::Buf;
use crate::client::{Client, ClientStream, Next, Proxied, ReadNow, read_proxy_header};
use crate::clock::Coarse;
use crate::config::Config;
use crate::exchange::{self, Outcome};
use crate::fail::Fail;
use crate::generation;
use crate::http::Method;
use crate::io::Stream;
use crate::limits::{Admission, connection_ip};
use crate::metrics::{self, Phase, TlsOutcome, WorkerStats};
use crate::tls::Handshake;
use crate::worker::Worker;

/// Longest wait for the request head of a connection a limit refused (it gets a 503 and
/// closes).
pub(crate) const REFUSED_HEAD_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves one accepted plain connection until it closes.
// Not an async fn: a wrapper's state would hold a second copy of the arguments for the
// connection's whole life.
pub(crate) fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    worker: Rc<Worker>,
) -> impl Future<Output = ()> {
    let accepted = Live::open(&stream, peer, &worker).into_accepted();
    let admission = worker
        .limits
        .admit(connection_ip(peer, NOT_PROXIED, &worker.config));
    run(
        ClientStream::Plain(stream),
        (peer, NOT_PROXIED),
        local,
        Buf::empty(),
        worker,
        admission,
        accepted,
    )
}

/// Serves one accepted plain connection that starts with a PROXY protocol header
/// (`proxy_protocol`): the header names the client, then the connection goes on as any.
/// The connection limits count the client the header names, not the load balancer.
pub(crate) async fn serve_proxied(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    worker: Rc<Worker>,
) {
    let live = Live::open(&stream, peer, &worker);
    // Counted from the accept: a connection still sending its header holds a socket too.
    let admission = worker.limits.admit_unnamed();
    let Some(Proxied {
        source,
        named,
        rest,
    }) = proxy_header(&stream, peer, &worker, &admission).await
    else {
        return;
    };
    worker.stats.identify(live.key, source);
    let accepted = live.into_accepted();
    let admission = admission.naming(connection_ip(source, named, &worker.config));
    run(
        ClientStream::Plain(stream),
        (source, named),
        local,
        rest,
        worker,
        admission,
        accepted,
    )
    .await;
}

/// Reads the PROXY header `stream` starts with; `None` when the connection is to be closed
/// (reported and counted if it was for want of a valid header). A connection `admission`
/// refused has as long as it would have for its request head.
async fn proxy_header(
    stream: &TcpStream,
    peer: SocketAddr,
    worker: &Worker,
    admission: &Admission,
) -> Option<Proxied> {
    let mut limit = worker.config.client_header_timeout;
    if admission.refused().is_some() {
        limit = limit.min(REFUSED_HEAD_TIMEOUT);
    }
    // Boxed: the header's reads (and the drain's grace around them) live only until the
    // header is in, and must not set the size of the connection's whole task.
    match Box::pin(read_proxy_header(stream, peer, worker, limit)).await {
        Ok(proxied) => proxied.map(|proxied| believed(proxied, peer, &worker.config)),
        Err(fail) => {
            fail.report(peer, &worker.stats);
            Stream::shutdown(stream, Shutdown::Both);
            None
        }
    }
}

/// The connection's client as its PROXY header from `peer` names it, if that is believed:
/// from any peer without `trusted_proxy`; with it, only from a peer it lists, as nginx
/// believes `real_ip_header proxy_protocol` only from `set_real_ip_from` (found by review:
/// a client reaching the port directly could name a trusted proxy's address, and its
/// X-Forwarded-For would then be believed too). From any other peer the header is read
/// and its address left: the connection is the peer's.
fn believed(proxied: Proxied, peer: SocketAddr, config: &Config) -> Proxied {
    if !proxied.named || config.trusted_proxies.is_empty() || config.is_trusted(peer.ip()) {
        return proxied;
    }
    // Once per process: a balancer left out of the list would otherwise be silent.
    static TOLD: AtomicBool = AtomicBool::new(false);
    if !TOLD.swap(true, Relaxed) {
        tracing::warn!(
            %peer,
            named = %proxied.source,
            "a PROXY protocol header from a peer outside trusted_proxy: its connections are \
             taken as the peer's (logged once)"
        );
    }
    Proxied {
        source: peer,
        named: false,
        ..proxied
    }
}

/// Serves one connection accepted on the TLS listener: its handshake, then its requests.
pub(crate) async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    worker: Rc<Worker>,
) {
    let (Some(tls), Some(acceptor)) = (worker.config.tls.as_ref(), worker.acceptor.as_ref()) else {
        return;
    };
    // Counted from the accept: a handshake holds a socket too, and the accept queue's
    // wait ends here, not once the client has said its first word.
    let live = Live::open(&stream, peer, &worker);
    // Counted from the accept, by the process-wide count until the client is known.
    let admission = worker.limits.admit_unnamed();
    // A load balancer in TCP mode sends the PROXY header before the ClientHello.
    let (peer, named, first) = if worker.config.proxy_protocol {
        match proxy_header(&stream, peer, &worker, &admission).await {
            Some(Proxied {
                source,
                named,
                rest,
            }) => {
                worker.stats.identify(live.key, source);
                (source, named, rest)
            }
            None => return,
        }
    } else {
        (peer, NOT_PROXIED, Buf::empty())
    };
    // Decided before the handshake, like a plain connection's at accept (on the client the
    // PROXY header names); a refused one still gets its 503 over TLS after the handshake.
    // Counted through the handshake: it holds a socket too.
    let admission = admission.naming(connection_ip(peer, named, &worker.config));
    let refused = admission.refused().is_some();
    // A refused connection holds no place under the limits: it gets as long for its
    // handshake as a plain one for its head (found by review: the full handshake timeout
    // let one client hold many sockets).
    // Within what is left of `client_header_timeout` too: nginx's one timer from the
    // accept covers the handshake and the first head (found by review: a handshake past
    // it left the head no time, and the connection was closed unanswered).
    let left = worker
        .config
        .client_header_timeout
        .saturating_sub(live.age());
    let handshake_timeout = if refused {
        tls.handshake_timeout.min(REFUSED_HEAD_TIMEOUT)
    } else {
        tls.handshake_timeout
    }
    .min(left);
    match crate::tls::accept(stream, acceptor, handshake_timeout, first).await {
        Handshake::Done(session, took) => {
            worker
                .stats
                .tls_handshake(TlsOutcome::Done(session.version()), took);
            if let Some(group) = session.key_exchange_group() {
                worker.stats.tls_key_exchange(group);
            }
            let accepted = live.into_accepted();
            if session.speaks_h2() {
                // Boxed: every TLS connection's task would otherwise carry its size.
                let http2 = crate::http2::serve(
                    session,
                    (peer, named),
                    local,
                    worker,
                    admission,
                    (accepted.live_key, accepted.age()),
                );
                Box::pin(http2).await;
                return;
            }
            let session = ClientStream::Tls(session);
            let peer = (peer, named);
            run(
                session,
                peer,
                local,
                Buf::empty(),
                worker,
                admission,
                accepted,
            )
            .await;
        }
        Handshake::PlainHttp(stream, first) => {
            worker
                .stats
                .tls_handshake(TlsOutcome::PlainHttp, Duration::ZERO);
            // Its request is read and logged as any, and answered nginx's 400.
            let mut client = Client::new(ClientStream::Plain(stream), peer, local);
            client.input = first;
            client.proxied = named;
            let accepted = live.into_accepted();
            let mut conn = Conn::new(client, worker, admission, accepted);
            Box::pin(conn.serve_one_as(PLAIN_ON_TLS_PORT)).await;
        }
        Handshake::TimedOut => {
            worker
                .stats
                .tls_handshake(TlsOutcome::TimedOut, handshake_timeout);
            tracing::debug!(%peer, "TLS handshake timed out");
        }
        Handshake::Failed(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
            worker
                .stats
                .tls_handshake(TlsOutcome::Closed, Duration::ZERO);
            tracing::debug!(%peer, "client closed the connection during the TLS handshake");
        }
        Handshake::Failed(err) => {
            worker
                .stats
                .tls_handshake(TlsOutcome::Failed, Duration::ZERO);
            tracing::debug!(%peer, error = %err, "TLS handshake failed");
        }
    }
}

/// Whether `worker`'s generation takes the requests of a connection whose TLS session is
/// `tls`: any plain one (`None`), a TLS one checked under the same client certificate
/// rules.
pub(crate) fn admitted_by(worker: &Worker, tls: Option<&crate::tls::Peer>) -> bool {
    match (tls, worker.acceptor.as_ref()) {
        (Some(peer), Some(acceptor)) => acceptor.admits(peer),
        (Some(_), None) | (None, _) => true,
    }
}

/// Serves one HTTP/2 stream's request, written as HTTP/1.1 into the other end of the pipe
/// `stream` ends (http2/): the client is the HTTP/2 connection's; `admission` is the
/// stream's own (the connection limits count each stream, as nginx's `limit_conn` does);
/// the connection's entry in the live table counts its streams.
pub(crate) fn serve_bridged(
    stream: crate::http2::PipelineEnd,
    peer: (SocketAddr, bool),
    local: SocketAddr,
    worker: Rc<Worker>,
    admission: Admission,
) -> impl Future<Output = ()> {
    run(
        ClientStream::Bridged(stream),
        peer,
        local,
        Buf::empty(),
        worker,
        admission,
        Accepted {
            live_key: NOT_LIVE,
            at_ms: Coarse::now().millis(),
        },
    )
}

/// Beside a peer's address, whether a PROXY header named it: here, no (the TCP peer).
const NOT_PROXIED: bool = false;

/// The live-table key of a bridged HTTP/2 stream: its connection has the entry.
const NOT_LIVE: usize = usize::MAX;

/// A connection's entry in the worker's live table from its accept until [`Conn`] takes it
/// over: dropped first (a failed handshake, no PROXY header), it closes the entry itself.
struct Live<'w> {
    stats: &'w WorkerStats,
    key: usize,
    /// When it was accepted, on the coarse clock.
    at_ms: u64,
}

/// What [`Conn`] takes over from [`Live`]: the connection's entry in the live table, and
/// when it was accepted (the first request head's `client_header_timeout` and
/// `keepalive_time` count from there, as nginx's timers from its accept).
#[derive(Debug, Clone, Copy)]
struct Accepted {
    live_key: usize,
    /// [`Coarse::millis`] at the accept.
    at_ms: u64,
}

impl<'w> Live<'w> {
    /// Counts the connection accepted (and tells the probes, which measure its wait in the
    /// accept queue up to now).
    fn open(stream: &TcpStream, peer: SocketAddr, worker: &'w Worker) -> Live<'w> {
        let cookie = metrics::accepted(&worker.probes, || socket_cookie(stream.as_raw_fd()));
        Live {
            stats: &worker.stats,
            key: worker.stats.open(peer, cookie, stream.as_raw_fd()),
            at_ms: Coarse::now().millis(),
        }
    }

    /// The key, for [`Conn`] to close the entry with the connection's totals, and the
    /// accept's moment.
    fn into_accepted(self) -> Accepted {
        let accepted = Accepted {
            live_key: self.key,
            at_ms: self.at_ms,
        };
        std::mem::forget(self);
        accepted
    }
}

impl Live<'_> {
    /// Time since the accept, to the coarse clock's tick.
    fn age(&self) -> Duration {
        age_since(self.at_ms)
    }
}

impl Accepted {
    /// Time since the accept, to the coarse clock's tick.
    fn age(&self) -> Duration {
        age_since(self.at_ms)
    }
}

/// Time since `at_ms` ([`Coarse::millis`]).
fn age_since(at_ms: u64) -> Duration {
    Duration::from_millis(Coarse::now().millis().saturating_sub(at_ms))
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.stats.close(self.key, 0, 0, 0);
    }
}

/// Serves a connection (its TLS handshake done) from `peer` until it closes; `input` holds
/// what was read of its first request already (after a PROXY header); `accepted` has its
/// entry in the worker's live table.
// The connection is set up before the future is made, so its state holds `Conn` alone and
// not the arguments it was made from as well.
#[allow(clippy::too_many_arguments)]
fn run(
    stream: ClientStream,
    (peer, proxied): (SocketAddr, bool),
    local: SocketAddr,
    input: Buf,
    worker: Rc<Worker>,
    admission: Admission,
    accepted: Accepted,
) -> impl Future<Output = ()> {
    let mut client = Client::new(stream, peer, local);
    client.input = input;
    client.proxied = proxied;
    serve_requests(Conn::new(client, worker, admission, accepted))
}

/// Serves a connection's requests in order until it closes, or until it parks between two
/// (its task then ends; [`resume`] serves it on in a new one).
// Boxed: parking moves a pointer, and the task's state holds no copy of the connection.
async fn serve_requests(mut conn: Box<Conn>) {
    loop {
        if !conn.serve_one().await {
            return;
        }
        // Bytes left behind the request just served are the next one's: it is pipelined.
        conn.client.pipelined = !conn.client.input.is_empty();
        if !conn.client.pipelined {
            if !conn.client.is_tls() && !conn.client.kept_now(&conn.worker) {
                // Served across a reload that changed `proxy_protocol`: closed now, not
                // parked until its next request comes, to be dropped.
                return;
            }
            conn.client.enter(Phase::Waiting, &conn.worker.stats);
            let idle = Rc::clone(&conn.worker.idle);
            conn = match idle.park(conn) {
                idle::Parking::Parked | idle::Parking::Done => return,
                idle::Parking::Busy(conn) => conn,
            };
        }
    }
}

/// Serves a parked connection whose socket turned readable (or whose drain grace ended):
/// the bytes waiting are its next request; none, and it parks again (or, stopping, closes).
async fn resume(mut conn: Box<Conn>) {
    match conn.client.read_now() {
        ReadNow::Bytes { more } => {
            if let Some(key) = conn.idle_key {
                conn.worker.idle.may_have_more(key, more);
            }
            serve_requests(conn).await;
        }
        ReadNow::Nothing if !conn.worker.is_stopping() => {
            let idle = Rc::clone(&conn.worker.idle);
            if let idle::Parking::Busy(conn) = idle.park(conn) {
                serve_requests(conn).await;
            }
        }
        ReadNow::Nothing | ReadNow::Closed => conn.client.ended_idle(),
        // Dropped unfinished: the socket is shut down, as after any failed read.
        ReadNow::Failed(kind) => {
            tracing::debug!(peer = %conn.client.peer, error = ?kind, "idle connection failed")
        }
    }
}

/// Closes a parked connection idle past its keep-alive timeout (no TLS session is parked,
/// so nothing is owed to the client).
fn close_idle(mut conn: Box<Conn>) {
    conn.client.ended_idle();
}

/// One client connection's state across requests.
struct Conn {
    client: Client,
    worker: Rc<Worker>,
    /// Requests completed on this connection.
    requests: u32,
    /// When it was accepted ([`Coarse::millis`]): its first head's time and `keepalive_time`
    /// count from there.
    accepted_ms: u64,
    /// This connection's key in the worker's live-connection table.
    live_key: usize,
    /// Counted against the connection limits until the connection drops (its ticket goes
    /// with it, however the task ends), or refused by one.
    admission: Admission,
    /// Its place among the thread's idle connections, from its first park.
    idle_key: Option<idle::IdleKey>,
}

/// [`Conn::follow_reload`]'s word for a request to serve: a connection limit a reload set
/// counts it again (a request that failed, whose connection closes, is not counted).
const READMIT: bool = true;

/// [`Conn::serve_one_as`]'s word for a plain HTTP connection on the TLS port.
const PLAIN_ON_TLS_PORT: bool = true;

impl Conn {
    /// A connection of `client`'s, waiting for its first request.
    fn new(
        mut client: Client,
        worker: Rc<Worker>,
        admission: Admission,
        accepted: Accepted,
    ) -> Box<Conn> {
        client.enter(Phase::Waiting, &worker.stats);
        Box::new(Conn {
            client,
            worker,
            requests: 0,
            accepted_ms: accepted.at_ms,
            live_key: accepted.live_key,
            admission,
            idle_key: None,
        })
    }

    /// Time since the accept, to the coarse clock's tick.
    fn age(&self) -> Duration {
        age_since(self.accepted_ms)
    }

    /// After a reload, a request whose head came in since uses the new configuration (its
    /// head was read within the old one's limits); the old configuration is freed once no
    /// request or connection holds it. False when the connection must close: a TLS session
    /// checked under other client certificate rules (a revoked client must handshake
    /// again; nginx closes its connections on reload), or one accepted under the other
    /// `proxy_protocol`.
    fn follow_reload(&mut self, readmit: bool) -> bool {
        let Some(newer) = generation::newer_than(&self.worker) else {
            return true;
        };
        if !admitted_by(&newer, self.client.stream.get_ref().tls()) {
            tracing::debug!(peer = %self.client.peer, "client certificate rules changed: connection closed");
            return false;
        }
        if newer.config.proxy_protocol != self.worker.config.proxy_protocol {
            // Accepted with a PROXY header or without: what that said of its client is
            // judged by the rules it came under (found by review: a balancer's connection
            // whose header named no client had its X-Forwarded-For believed after a
            // reload turned proxy_protocol off).
            tracing::debug!(peer = %self.client.peer, "proxy_protocol changed: connection closed");
            return false;
        }
        if readmit && !newer.limits.counts_connections_as(&self.worker.limits) {
            // A reload set or unset a connection limit: the connection is counted anew
            // under it, and over it gets its 503 (found by review: a limit added during
            // an attack left the open connections uncounted; nginx counts each request).
            let ip = connection_ip(self.client.peer, self.client.proxied, &newer.config);
            self.admission = newer.limits.admit(ip);
        }
        self.worker = newer;
        true
    }

    /// Reads and serves one request; false when the connection is done.
    fn serve_one(&mut self) -> impl Future<Output = bool> + '_ {
        self.serve_one_as(!PLAIN_ON_TLS_PORT)
    }

    /// [`Conn::serve_one`]; a connection speaking plain HTTP on the TLS port has its
    /// request read, logged and answered nginx's 400, then closes.
    async fn serve_one_as(&mut self, plain_on_tls_port: bool) -> bool {
        if self.requests > 0 && !self.client.kept_now(&self.worker) {
            // Its last request was served across a reload that changed the client
            // certificate rules or `proxy_protocol`: it closes now, before its next request
            // is read (which could then only be dropped).
            Box::pin(self.client.stream.get_ref().close_notify()).await;
            return false;
        }
        let mut head_timeout = self.worker.config.client_header_timeout;
        if self.requests == 0 {
            // One timer from the accept for the PROXY header, the TLS handshake and the
            // first head, as nginx's: a client must not get a full timeout for each.
            head_timeout = head_timeout.saturating_sub(self.age());
        }
        if self.admission.refused().is_some() {
            // Only its 503 is owed: a refused connection that sends nothing must not hold a
            // socket for the whole header timeout, or one client could open thousands.
            head_timeout = head_timeout.min(REFUSED_HEAD_TIMEOUT);
        }
        let read = match self
            .client
            .read_head(&self.worker, self.requests > 0, head_timeout)
            .await
        {
            // nginx's answer to a plain request on its TLS port, once it has read it.
            Ok(Some(head)) if plain_on_tls_port => {
                Err((Fail::PlainHttpOnTls, head.method == Method::Head))
            }
            // Its configuration first: a reload may have set a connection limit.
            Ok(Some(_)) if !self.follow_reload(READMIT) => return false,
            Ok(Some(head)) => match self.admission.refused() {
                None => Ok(head),
                // Over a connection limit: the first request gets 503 with
                // `Connection: close`, and the connection ends (a body left unread is
                // drained first).
                Some(limit) => Err((Fail::TooManyConnections(limit), head.method == Method::Head)),
            },
            Ok(None) => return false,
            Err(fail) => Err((fail, false)),
        };
        if !self.follow_reload(!READMIT) {
            return false;
        }
        // A request's time runs from its first byte, as nginx's $request_time does (found
        // by review: it ran from the complete head, so a 408 logged 0.000): an idle
        // keep-alive wait is not request time, a slow head is.
        let arrival = exchange::Arrival {
            started: self.client.head_began,
            served: self.requests,
            aged: self.age() > self.worker.config.keepalive_time,
        };
        self.client.enter(Phase::Writing, &self.worker.stats);
        let head = match read {
            Ok(head) => head,
            Err((fail, head_only)) => {
                // A bool, not the failure, is kept across the answer's await: the
                // connection's task stays its size.
                let refused = self.admission.refused().is_some();
                // Boxed, like the exchange: a cold path's state must not grow every
                // connection's task.
                let (client, worker) = (&self.client, &self.worker);
                let outcome = Box::pin(async move {
                    // No request ID was taken from this head (too broken to read, or
                    // refused by a connection limit): it gets a new one, which its log
                    // line carries too.
                    let id = worker.request_ids.next();
                    client.response_starts(exchange::keeps_sent_head(worker));
                    let scope = exchange::OwnAnswers::of_server(worker);
                    let mut outcome = exchange::answer(
                        client,
                        client.peer.into(),
                        fail,
                        head_only,
                        false,
                        &id,
                        scope,
                        worker,
                    )
                    .await;
                    // Its page's bytes, for the log line and the route's byte count alike
                    // (found by review: the count got 0).
                    outcome.body_bytes = client.body_bytes_sent();
                    exchange::log_unparsed(worker, client, &outcome, arrival, &id);
                    outcome
                })
                .await;
                // A connection that closed before a byte of a request is no request (a
                // head cut short is: nginx's 400).
                if outcome.status != 0 {
                    self.record(&outcome, arrival.started);
                }
                let next = match outcome.next {
                    Next::Linger | Next::Close if refused => Next::LingerBriefly,
                    next => next,
                };
                self.client
                    .finish(next, self.worker.config.reset_timedout_connection)
                    .await;
                return false;
            }
        };
        // Boxed: the request's state (body, packet, relay pumps) lives only while a
        // request does, so a connection's task stays small.
        let served = exchange::serve(&mut self.client, head, &self.worker, arrival);
        let outcome = Box::pin(served).await;
        self.record(&outcome, arrival.started);
        match outcome.next {
            // Even when the server began stopping after this answer's head went out
            // without `Connection: close`: the client may be sending its next request
            // already, which the head read serves (with `Connection: close`) if it comes
            // within the drain's grace.
            Next::KeepAlive => true,
            next => {
                self.client
                    .finish(next, self.worker.config.reset_timedout_connection)
                    .await;
                false
            }
        }
    }

    /// Counts the request just ended in the worker's stats, under the status it is logged
    /// with (499 when the client left before its answer).
    fn record(&mut self, outcome: &Outcome, started: Instant) {
        self.requests = self.requests.saturating_add(1);
        let stats = &self.worker.stats;
        // A switched connection's request ends at its 101, for the latency metrics: the
        // tunnel's life (hours, for a WebSocket) is no request's latency (found by review: one
        // observation of hours per WebSocket tripped the p99 alert). The access log keeps
        // nginx's `$request_time`, the whole life.
        let took = match outcome.status {
            101 => outcome.upstream.unwrap_or_default(),
            _ => started.elapsed(),
        };
        stats.request_done(
            outcome.route.and_then(|i| self.worker.route_id(i)),
            outcome.reported_status(),
            took,
            outcome.upstream,
            outcome.body_bytes,
        );
        if self.live_key == NOT_LIVE {
            return;
        }
        let stream = &self.client.stream;
        let (bytes_in, bytes_out) = (stream.bytes_read(), stream.bytes_written());
        stats.progress(self.live_key, u64::from(self.requests), bytes_in, bytes_out);
    }
}

impl Drop for Conn {
    /// The connection leaves the live table however its task ends, a panic included.
    fn drop(&mut self) {
        self.client.leave_phases(&self.worker.stats);
        let stream = &self.client.stream;
        let (bytes_in, bytes_out) = (stream.bytes_read(), stream.bytes_written());
        if self.live_key != NOT_LIVE {
            self.worker
                .stats
                .close(self.live_key, u64::from(self.requests), bytes_in, bytes_out);
        }
        if let Some(key) = self.idle_key {
            self.worker.idle.release(key);
        }
    }
}

/// The kernel's socket cookie, the key the eBPF probes file this connection under (0 when
/// the kernel gives none).
pub(crate) fn socket_cookie(fd: std::os::fd::RawFd) -> u64 {
    let mut cookie: u64 = 0;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: the fd is open for the duration of the call (its stream is borrowed by the
    // caller) and the out-pointers are valid for the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            (&raw mut cookie).cast(),
            &mut len,
        )
    };
    if rc == 0 { cookie } else { 0 }
}

#[cfg(test)]
mod tests {
    /// An idle keep-alive connection is parked (conn/idle.rs): it keeps its boxed `Conn`, its
    /// place in the thread's idle set and its socket: no task, no read buffer, no timer,
    /// its header span lists freed. nginx keeps about 700 bytes per idle connection.
    #[test]
    fn an_idle_connection_keeps_little() {
        let size = size_of::<super::Conn>();
        // Measured 288 bytes: the socket, its byte counts and timed-out mark (for
        // `reset_timedout_connection`), both addresses, the empty input and span lists, the
        // slot for the answer's head (`$sent_http_NAME`, empty while idle), the worker, the
        // live-table key, the connection limits' ticket, the idle key. (The HSTS header
        // comes from the worker since: 16 bytes fewer.) 304 with the time of the next
        // request's first byte (nginx's `$request_time` starts there; a field of the
        // connection's costs less than a local kept across the head read's waits, which
        // made every connection's task 88 bytes larger).
        assert!(size <= 304, "an idle connection keeps {size} bytes");
    }

    /// Runs `measure` in a worker of a ringway started with `args`, with an accepted-side
    /// stream of a loopback connection: what the size tests below need.
    fn in_a_worker(
        args: &[&str],
        measure: impl FnOnce(
            tokio_uring::net::TcpStream,
            std::net::SocketAddr,
            std::rc::Rc<crate::worker::Worker>,
        ) + 'static,
    ) {
        let config = crate::config::Config::from_args(args.iter().copied()).unwrap();
        tokio_uring::start(async move {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let local = listener.local_addr().unwrap();
            let client = std::net::TcpStream::connect(local).unwrap();
            let worker = crate::server::test_worker(config);
            measure(tokio_uring::net::TcpStream::from_std(client), local, worker);
        });
    }

    /// A connection's task lives while it serves requests (an idle connection has none):
    /// the request machinery (body, relay pumps and all) is boxed per request, so it must
    /// not creep back.
    #[test]
    fn a_connection_task_is_small() {
        in_a_worker(
            &["ringway", "--upstream", "unix:/none"],
            |stream, local, worker| {
                let task = super::serve(stream, local, local, worker);
                let size = std::mem::size_of_val(&task);
                // Measured 1136 bytes before the pipeline was reshaped, up to 1480 with TLS, the
                // connection limits, the access log and the drain's grace; 1224 once the
                // connection's state was boxed (it parks between requests); 1288 with what
                // a head read waits for kept across its wait (a reload holds a keep-alive
                // wait to the new keepalive_timeout).
                assert!(size <= 1288, "the connection future is {size} bytes");
            },
        );
    }

    /// With `proxy_protocol` the connection's task is the header read, then the same loop:
    /// a connection behind a load balancer costs little more than a direct one.
    #[test]
    fn a_proxied_connection_task_is_small() {
        let args = ["ringway", "--upstream", "unix:/none", "--proxy-protocol"];
        in_a_worker(&args, |stream, local, worker| {
            let task = super::serve_proxied(stream, local, local, worker);
            let size = std::mem::size_of_val(&task);
            // Measured 1504 bytes (a direct connection's: 1432), 1528 with the access log (a
            // direct connection's: 1456), 1552 with the drain's grace for idle connections (a
            // direct connection's: 1480).
            assert!(
                size <= 1568,
                "the proxied connection future is {size} bytes"
            );
        });
    }

    /// A request's future is moved into a box once per request: what rare paths need (a
    /// body, a file, a long answer's spool) is boxed apart, so it stays small.
    #[test]
    fn a_request_future_is_small() {
        in_a_worker(
            &["ringway", "--upstream", "unix:/none"],
            |stream, local, worker| {
                let stream = crate::client::ClientStream::Plain(stream);
                let mut client = crate::client::Client::new(stream, local, local);
                let mut buf = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
                let parsed = crate::http::parse_request(
                    &mut buf,
                    &crate::http::Limits::default(),
                    &mut Vec::new(),
                );
                let Ok(crate::http::Status::Complete(head)) = parsed else {
                    panic!("{parsed:?}")
                };
                let arrival = crate::exchange::Arrival {
                    started: std::time::Instant::now(),
                    served: 0,
                    aged: false,
                };
                let request = crate::exchange::serve(&mut client, head, &worker, arrival);
                let size = std::mem::size_of_val(&request);
                // Measured 2472 bytes (3856 before the rare paths were boxed), 2672 with the
                // upstream slot, the real client IP and the inline request ID, 2784 with the
                // access log (the upstream call kept for its line, the head's start time),
                // 3056 with the send's watch for an early answer (upstream/send.rs), 3080
                // with the first connect's time (next_upstream_timeout) and the answer
                // head's status and time (the log's $upstream_status, $upstream_header_time),
                // 3088 with the auth_request answer's place, 3096 with the upstream headers
                // a log format names, 3104 with what limit_req did ($limit_req_status), 3176
                // with an upstream connection's byte counts ($upstream_bytes_received and
                // _sent: 16 bytes, in each of the places the future holds one), 3240 with
                // a kept connection's requests and age (keepalive_requests, keepalive_time),
                // 3272 with an upstream connection's `least_conn` count (8 bytes in each of
                // the places the future holds one), 3312 with the drop of a body an answer
                // left unread (the outcome held across it), 3280 with the route's cookie
                // flags in the answer head's description, dropped before the relay waits,
                // 3288 with the request's place under its route's limit_conn (a box), 3296
                // with what an internal redirect asks a fallback app for (a thin pointer),
                // 3304 with the route's judgement of its Referer ($invalid_referer).
                assert!(size <= 3304, "a request's future is {size} bytes");
            },
        );
    }
}
