//! HTTP/2 on the TLS listener (`[tls] http2 = true`; ALPN `h2`), as nginx's
//! `listen 443 ssl http2`.
//!
//! The `h2` crate speaks the protocol (frames, HPACK, flow control, stream limits and the
//! defences against reset floods); each stream is then served by the same HTTP/1.1 pipeline
//! as every other request, through an in-memory pipe ([`stream`], [`pipe`]): routes, limits,
//! static files, upstreams, logs and metrics apply to it unchanged and nothing is written
//! twice. That costs a task and two local copies per request; see docs/ARCHITECTURE.md.
//!
//! - The connection: nginx's defaults. At most 128 streams at once
//!   (`http2_max_concurrent_streams`), the head limit (`max_header_size`) checked by the
//!   pipeline as for HTTP/1.1 (the header list's own bound only guards HPACK's memory),
//!   `keepalive_requests` streams per connection, `client_header_timeout` for the first
//!   stream and `keepalive_timeout` with none open after it, `keepalive_time`, then GOAWAY;
//!   a stopping worker sends GOAWAY and lets the open streams finish, and so does a reload
//!   (the connection's settings are the old configuration's).
//! - The session: [`session`], the TLS stream driven by `h2`'s polls.

mod pipe;
mod request;
mod response;
mod session;
mod stream;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

pub(crate) use self::pipe::PipelineEnd;
use self::pipe::StreamEnd;

use crate::io::Counted;
use crate::limits::{Admission, ConnLimit, ConnTicket};
use crate::metrics::Phase;
use crate::ratelimit::{BURST, NamedGate, WINDOW};
use crate::tls::{Peer, TlsStream};
use crate::worker::Worker;

/// The most a stream's header list may decode to before the `h2` crate refuses it (its own
/// bare 431): twice `max_header_size`, and 32 bytes for each field besides (RFC 9113
/// counts a field's name, value and 32), a bound on HPACK's memory alone. Within it the
/// request goes to the pipeline, whose head check decides as for HTTP/1.1: a 431 that is
/// logged and counted (found by review: the crate's answered unseen). A cookie sent as
/// many fields counts 32 bytes each here but reaches the pipeline as one line.
fn header_list_limit(max_header_size: usize) -> u32 {
    const FIELD_OVERHEAD: usize = 32 * 256;
    u32::try_from(
        max_header_size
            .saturating_mul(2)
            .saturating_add(FIELD_OVERHEAD),
    )
    .unwrap_or(u32::MAX)
}

/// Whether the client already reset the stream `respond` answers (or the connection
/// failed), without waiting.
fn reset_already(respond: &mut h2::server::SendResponse<Bytes>) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    respond.poll_reset(&mut cx).is_ready()
}

/// ALPN's name for HTTP/2 over TLS.
pub(crate) const ALPN: &[u8] = b"h2";
/// Streams a client may have open at once (nginx's `http2_max_concurrent_streams`).
const MAX_STREAMS: u32 = 128;
/// A stream's receive window: what one upload may have in flight, so at most this much
/// per round trip (64 KiB, h2's default and nginx's `http2_body_preread_size`, is about
/// 1.3 MB/s at 50 ms; nginx opens it wide once it reads the body).
const STREAM_WINDOW: u32 = 256 * 1024;
/// The connection's receive window: what all its uploads may have in flight together, and
/// so what `h2` may hold for them unread. Eight MiB, what nginx's preread may hold for 128
/// streams: 32 uploads held back (a `limit_req` delay, `auth_request`) do not stall the
/// others (found by review: at 1 MiB, 16 held ones did).
const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;
/// Most bytes `h2` holds for one stream beyond its window.
const SMALL_SEND_BUFFER: usize = crate::buffer::SMALL;
/// How long a new stream past [`MAX_STREAMS`] waits for one served to end (a stream its
/// client reset whose task has yet to end) before it is refused.
const PLACE_WAIT: Duration = Duration::from_millis(100);
/// How long a connection told to go away (GOAWAY) may take to close once idle.
const GOAWAY_GRACE: Duration = Duration::from_secs(2);

/// What a connection's streams share: who the client is, for the pipeline.
pub(super) struct Bridge {
    worker: Rc<Worker>,
    peer: SocketAddr,
    /// A PROXY header named `peer`.
    proxied: bool,
    local: SocketAddr,
    /// The TLS session's version, cipher and client certificate.
    tls: Peer,
    /// The connection's socket cookie, each stream's `$connection`.
    connection: u64,
    /// The connection was over a connection limit: its streams get the 503, and it goes
    /// away after the first.
    refused: Option<ConnLimit>,
    /// The connection's own admission, which counts its first stream: held while any
    /// stream is served, not only while the connection is (found by review: a request the
    /// app kept serving after its connection closed, `ignore_client_abort`, was counted
    /// nowhere).
    _admission: Admission,
    send_timeout: Duration,
    /// Streams being served.
    open: Cell<usize>,
    /// The connection's own admission counts no open stream now.
    spare: Cell<bool>,
    /// When the last stream ended (the connection's idle time runs from there).
    idle_since: Cell<Instant>,
    /// Told when a stream ends.
    ended: Notify,
    /// The connection counts as waiting (`stub_status`): no stream open, and not closed.
    waiting: Cell<bool>,
    /// The connection is closed (streams may still end after it).
    closed: Cell<bool>,
    /// Bytes its streams carried (requests' and answers' heads and bodies): what the
    /// session's flood check weighs its reads against.
    payload: Rc<Cell<u64>>,
}

impl Bridge {
    /// Whether the connection has a place for one more stream within `wait`.
    async fn place_within(&self, wait: Duration) -> bool {
        let full = || self.open.get() >= MAX_STREAMS as usize;
        if !full() {
            return true;
        }
        let deadline = tokio::time::Instant::now() + wait;
        while full() {
            if tokio::time::timeout_at(deadline, self.ended.notified())
                .await
                .is_err()
            {
                return false;
            }
        }
        true
    }

    /// Counts `bytes` of a request or an answer (a head or a body) as carried.
    fn carried(&self, bytes: usize) {
        self.payload
            .set(self.payload.get().saturating_add(bytes as u64));
    }

    /// A pipe whose request lane starts with `head`, with the pipeline serving its other
    /// end; the stream's end returned. The pipeline holds the stream's place (`open`) too:
    /// a request the app keeps serving after its stream was reset (`ignore_client_abort`)
    /// counts among the connection's streams, and keeps its admission, until it ends
    /// (found by review: the place went with the stream's task, and a client could pile
    /// up such requests past both limits).
    fn open(self: &Rc<Self>, admission: Admission, head: Vec<u8>, open: Rc<Open>) -> StreamEnd {
        let (ours, theirs) = pipe::pipe(self.tls.clone(), self.connection, head);
        let pipeline = crate::conn::serve_bridged(
            theirs,
            (self.peer, self.proxied),
            self.local,
            Rc::clone(&self.worker),
            admission,
        );
        self.worker.idle.tasks().spawn_local(async move {
            pipeline.await;
            drop(open);
        });
        ours
    }

    /// Counts the connection as waiting for a stream, or not, as nginx's `stub_status`
    /// counts an HTTP/2 connection with no stream open (its streams count as requests).
    fn set_waiting(&self, waiting: bool) {
        if self.waiting.replace(waiting) != waiting {
            let (from, to) = if waiting {
                (Phase::Uncounted, Phase::Waiting)
            } else {
                (Phase::Waiting, Phase::Uncounted)
            };
            self.worker.stats.phase_changed(from, to);
        }
    }
}

impl Drop for Bridge {
    /// Leaves the gauges however the connection's task ended (a dropped task included).
    fn drop(&mut self) {
        self.set_waiting(false);
    }
}

/// Counts a stream open for as long as it is served: its task and its pipeline's each hold
/// it.
pub(super) struct Open {
    bridge: Rc<Bridge>,
    /// The stream is counted by the connection's own admission (see [`Open::start`]).
    rides: bool,
    /// The stream's own count under the connection limits, held as long as the stream is
    /// served, its answer waiting for the client's window included (found by review: it
    /// went with the pipeline, and a client that opened no window held 128 streams' buffers
    /// per connection with none counted).
    _ticket: Option<ConnTicket>,
}

impl Open {
    /// A stream taken, and its admission: each stream holds what a connection does (a
    /// task, its buffers) and is counted as one, as nginx's `limit_conn` counts HTTP/2
    /// streams; the connection's own count stands for one of them, so N open streams count
    /// N.
    fn start(bridge: &Rc<Bridge>) -> (Open, Admission) {
        bridge.open.set(bridge.open.get() + 1);
        bridge.set_waiting(false);
        let rides = bridge.spare.replace(false);
        let admission = match bridge.refused {
            Some(limit) => Admission::Refused(limit),
            None if rides => Admission::Admitted(None),
            None => {
                let config = &bridge.worker.config;
                let ip = crate::limits::connection_ip(bridge.peer, bridge.proxied, config);
                bridge.worker.limits.admit(ip)
            }
        };
        // The pipeline is told whether it is admitted; the count stays with the stream.
        let (admission, ticket) = match admission {
            Admission::Admitted(ticket) => (Admission::Admitted(None), ticket),
            refused => (refused, None),
        };
        let open = Open {
            bridge: Rc::clone(bridge),
            rides,
            _ticket: ticket,
        };
        (open, admission)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let bridge = &self.bridge;
        if self.rides {
            bridge.spare.set(true);
        }
        let open = bridge.open.get().saturating_sub(1);
        bridge.open.set(open);
        if open == 0 && !bridge.closed.get() {
            bridge.set_waiting(true);
        }
        bridge.idle_since.set(Instant::now());
        // The connection may take a stream again, or start its idle time.
        bridge.ended.notify_one();
    }
}

/// Serves an HTTP/2 connection (its TLS handshake done, `h2` agreed) until it closes;
/// `live` is its entry in the worker's live table, closed here with its totals, and the
/// time since its accept (its first stream's `client_header_timeout` and its
/// `keepalive_time` count from the accept, as nginx's timers).
pub(crate) async fn serve(
    session: Box<TlsStream>,
    (peer, proxied): (SocketAddr, bool),
    local: SocketAddr,
    worker: Rc<Worker>,
    admission: Admission,
    (live, age): (usize, Duration),
) {
    let refused = admission.refused();
    let tls_peer = session.peer().clone();
    // Asked once for the connection, where its streams' requests may show it.
    let local = crate::client::reached_on(std::os::fd::AsRawFd::as_raw_fd(session.tcp()), local);
    let tls = Rc::new(Counted::new(*session));
    let mut entry = LiveEntry {
        worker: Rc::clone(&worker),
        key: live,
        tls: Rc::clone(&tls),
        streams: 0,
    };
    let config = &worker.config;
    let payload = Rc::new(Cell::new(0));
    let io = session::SessionIo::new(
        Rc::clone(&tls),
        config.limits.send_timeout,
        Rc::clone(&payload),
    );
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(header_list_limit(config.max_header_size))
        // A stream's window opens again as the pipeline takes its bytes.
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        // One stream's answer waits for its window in its own 16 KiB read, not in h2.
        .max_send_buffer_size(SMALL_SEND_BUFFER);
    let (mut head_timeout, mut keepalive_timeout, keepalive_requests) = (
        config.client_header_timeout,
        config.keepalive_timeout,
        config.keepalive_requests,
    );
    let keepalive_time = config.keepalive_time;
    let mut send_timeout = config.limits.send_timeout;
    if refused.is_some() {
        // Only its first stream's 503 is owed (as a refused HTTP/1.1 connection's): such a
        // connection must not hold a socket for the full timeouts, nor its streams' 503s
        // wait that long for a window (found by review: 60 s each).
        head_timeout = head_timeout.min(crate::conn::REFUSED_HEAD_TIMEOUT);
        keepalive_timeout = keepalive_timeout.min(crate::conn::REFUSED_HEAD_TIMEOUT);
        send_timeout = send_timeout.min(crate::conn::REFUSED_HEAD_TIMEOUT);
    }
    // One `client_header_timeout` for the preface and the first stream together, as
    // nginx's one timer from the accept, which `keepalive_time` counts from too.
    let now = Instant::now();
    let began = now.checked_sub(age).unwrap_or(now);
    let handshake = builder.handshake::<_, Bytes>(io);
    let preface_limit = head_timeout.saturating_sub(began.elapsed());
    let mut conn = match tokio::time::timeout(preface_limit, handshake).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(err)) => {
            tracing::debug!(%peer, error = %err, "HTTP/2 preface failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "HTTP/2 preface timed out");
            return;
        }
    };
    let bridge = Rc::new(Bridge {
        tls: tls_peer,
        connection: crate::conn::socket_cookie(std::os::fd::AsRawFd::as_raw_fd(
            tls.get_ref().tcp(),
        )),
        send_timeout,
        worker: Rc::clone(&worker),
        peer,
        proxied,
        local,
        refused,
        _admission: admission,
        open: Cell::new(0),
        spare: Cell::new(true),
        idle_since: Cell::new(began),
        ended: Notify::new(),
        waiting: Cell::new(false),
        closed: Cell::new(false),
        payload,
    });
    bridge.set_waiting(true);
    let stop = Rc::clone(&worker.stop);
    let (mut streams, mut going_away) = (0u64, None::<Instant>);
    // Whether the `streams`th stream is the connection's last: `keepalive_requests`, or
    // `keepalive_timeout = 0`, which serves one stream, as nginx does (its GOAWAY goes with
    // the first HEADERS, not before them); so does a connection past `keepalive_time`
    // (nginx: the first HEADERS after it), or one a limit refused.
    let is_last = |streams: u64| {
        streams >= keepalive_requests
            || refused.is_some()
            || keepalive_timeout.is_zero()
            || began.elapsed() > keepalive_time
    };
    loop {
        // A stop or a reload told while this task was not waiting in the select below (a
        // new stream's wait for a place) is seen here (found by review: a reload then went
        // unseen, and the connection served on under the old configuration for its life).
        if going_away.is_none()
            && (stop.is_set() || crate::generation::newer_than(&worker).is_some())
        {
            conn.graceful_shutdown();
            going_away = Some(Instant::now());
        }
        let idle = bridge.open.get() == 0;
        // Before its first stream a connection has `client_header_timeout` to send one,
        // after it `keepalive_timeout` between streams, as in nginx.
        let idle_limit = if streams == 0 {
            head_timeout
        } else {
            keepalive_timeout
        };
        let wake = match going_away {
            Some(since) => since + GOAWAY_GRACE,
            None => bridge.idle_since.get() + idle_limit,
        };
        let next = std::future::poll_fn(|cx| conn.poll_accept(cx));
        tokio::select! {
            accepted = next => match accepted {
                Some(Ok((_, mut respond))) if past_goaway(going_away, streams, keepalive_requests) => {
                    // A client that never acknowledges the GOAWAY's ping would otherwise
                    // go on opening streams: refused, safe to retry elsewhere.
                    respond.send_reset(h2::Reason::REFUSED_STREAM);
                }
                Some(Ok((_, mut respond))) if !admitted(&worker, &bridge.tls) => {
                    // A reload changed the client certificate rules the session was
                    // checked under: the client handshakes again on a new connection.
                    respond.send_reset(h2::Reason::REFUSED_STREAM);
                    if going_away.is_none() {
                        tracing::debug!(%peer, "client certificate rules changed: GOAWAY");
                        conn.graceful_shutdown();
                        going_away = Some(Instant::now());
                    }
                }
                Some(Ok((request, mut respond))) => {
                    if reset_already(&mut respond) {
                        // Reset by the client in the same read as its HEADERS (the rapid
                        // reset attack): nothing starts for it, as in nginx, and it counts
                        // toward `keepalive_requests`, which bounds such streams per
                        // connection (found by review: each went to the app).
                        streams += 1;
                        if going_away.is_none() && is_last(streams) {
                            conn.graceful_shutdown();
                            going_away = Some(Instant::now());
                        }
                        continue;
                    }
                    // A stream the client reset leaves h2's count at once and ringway's
                    // when its task ends, or later, while the app still serves it
                    // (`ignore_client_abort`): past the limit a new one is given a moment
                    // for a place, then refused, safe to retry, as nginx refuses it (found
                    // by review: it waited, unseen, for the app).
                    if !bridge.place_within(PLACE_WAIT).await {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        report_streams_exceeded(peer);
                        continue;
                    }
                    streams += 1;
                    // The live page's figures move as an HTTP/1.1 connection's do.
                    let (bytes_in, bytes_out) = (tls.bytes_read(), tls.bytes_written());
                    worker.stats.progress(live, streams, bytes_in, bytes_out);
                    let (open, admission) = Open::start(&bridge);
                    let bridge = Rc::clone(&bridge);
                    let stream = stream::serve(request, respond, bridge, admission, Rc::new(open));
                    worker.idle.tasks().spawn_local(stream);
                    if going_away.is_none() && is_last(streams) {
                        conn.graceful_shutdown();
                        going_away = Some(Instant::now());
                    }
                }
                Some(Err(err)) => {
                    report_connection_error(peer, &err);
                    break;
                }
                None => break,
            },
            // Stopping, or a reload: the connection's settings are the old configuration's,
            // so it ends (its open streams finish), as nginx sends every HTTP/2
            // connection its GOAWAY at a reload (found by review).
            () = stop.changed(), if going_away.is_none() => {
                if stop.is_set() || crate::generation::newer_than(&worker).is_some() {
                    conn.graceful_shutdown();
                    going_away = Some(Instant::now());
                }
            }
            // A stream ended: the limit may take one again, or the idle time starts.
            () = bridge.ended.notified(), if !idle => {}
            () = tokio::time::sleep_until(wake.into()), if idle => {
                if going_away.is_some() {
                    break;
                }
                if bridge.idle_since.get().elapsed() >= idle_limit {
                    conn.graceful_shutdown();
                    going_away = Some(Instant::now());
                }
            }
        }
    }
    // The TLS way to say the end, as an HTTP/1.1 session's (bounded: a client that reads
    // nothing does not hold the connection); the read still in flight ends with the socket.
    bridge.closed.set(true);
    bridge.set_waiting(false);
    tls.get_ref().close_notify().await;
    drop(conn);
    entry.streams = streams;
}

/// A connection that ended in an error: one ringway's side found (the client broke the
/// protocol, and every stream on the connection was cut) is logged, a few lines per
/// window; a socket error or the client's own GOAWAY is its business.
fn report_connection_error(peer: SocketAddr, err: &h2::Error) {
    static GATE: NamedGate = NamedGate::info("HTTP/2 client broke the protocol");
    let ours = !err.is_io() && !err.is_remote();
    if ours && GATE.allow() {
        tracing::info!(
            %peer,
            error = %err,
            "HTTP/2 client broke the protocol: its connection closed with its streams (at \
             most {BURST} such lines per {}s)",
            WINDOW.as_secs()
        );
    } else {
        tracing::debug!(%peer, error = %err, "HTTP/2 connection failed");
    }
}

/// A stream refused because the connection has its most streams served: logged, a few
/// lines per window.
fn report_streams_exceeded(peer: SocketAddr) {
    static GATE: NamedGate = NamedGate::info("HTTP/2 stream refused");
    if GATE.allow() {
        tracing::info!(
            %peer,
            "HTTP/2 stream refused: {MAX_STREAMS} streams of the connection are still served \
             (at most {BURST} such lines per {}s)",
            WINDOW.as_secs()
        );
    }
}

/// Whether the newest configuration takes requests from a session made under `tls`'s
/// client certificate rules.
fn admitted(worker: &Worker, tls: &Peer) -> bool {
    crate::generation::newer_than(worker)
        .is_none_or(|newer| crate::conn::admitted_by(&newer, Some(tls)))
}

/// Whether a new stream comes past the connection's end: `keepalive_requests` taken, or
/// the GOAWAY sent longer ago than [`GOAWAY_GRACE`].
fn past_goaway(going_away: Option<Instant>, taken: u64, keepalive_requests: u64) -> bool {
    taken >= keepalive_requests || going_away.is_some_and(|since| since.elapsed() > GOAWAY_GRACE)
}

/// A connection's entry in the worker's live table, closed with its totals (its streams as
/// its requests, the TLS session's plaintext bytes) however the connection's task ends, a
/// panic included, as an HTTP/1.1 connection's `Conn` closes its own (found by review: a
/// panic left it counted active for good).
struct LiveEntry {
    worker: Rc<Worker>,
    key: usize,
    tls: Rc<Counted<TlsStream>>,
    streams: u64,
}

impl Drop for LiveEntry {
    fn drop(&mut self) {
        let (bytes_in, bytes_out) = (self.tls.bytes_read(), self.tls.bytes_written());
        self.worker
            .stats
            .close(self.key, self.streams, bytes_in, bytes_out);
    }
}
