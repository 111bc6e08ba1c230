//! Noticing that a client went away while its request is with the upstream, or held back
//! by its route's `limit_req`.
//!
//! nginx aborts the upstream request when the client closes (`uwsgi_ignore_client_abort
//! off`): the Python worker is not left producing an answer nobody will read, and ringway
//! does not spool it to disk, and the request is logged 499, not with the status it wrote
//! to nobody. ringway watches the client only once the upstream has taken a while
//! ([`WATCH_AFTER`]), so a quick request costs no epoll registration. A route with
//! `ignore_client_abort` (nginx's `uwsgi_ignore_client_abort on`) does not watch: the app
//! answers, and writing the answer finds the client gone.

use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::{Client, ClientStream};
use crate::io::{Peeked, peek};

/// How long a request is with the upstream before its client is watched: longer than the
/// answers of a busy site take (their requests pay no registration), short enough that a
/// client giving up on a slow one is seen as nginx sees it (found by review: at a second, a
/// client gone after 200 ms of a 700 ms request was logged with the app's 200).
const WATCH_AFTER: Duration = Duration::from_millis(100);

/// When a watch starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WatchFrom {
    Now,
    /// After [`WATCH_AFTER`].
    AWhile,
    /// Never: the watch never resolves.
    Never,
}

/// The client's fd, borrowed for a readiness wait (the `Client` owns it and outlives this).
struct Borrowed(RawFd);

impl AsRawFd for Borrowed {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl Client {
    /// Resolves once the client has closed its side of the connection (or its socket
    /// failed), watching from [`WATCH_AFTER`] on, whatever it sent before (a pipelined
    /// request does not keep a client that closed). Never resolves while it only sends
    /// data, if it cannot be watched, or when `ignore_abort` (the route's
    /// `ignore_client_abort`) says the request outlives it.
    pub(crate) fn gone(&self, ignore_abort: bool) -> impl Future<Output = ()> + '_ {
        // Requests kept running stay bounded: until its exchange ends, a connection (or an
        // HTTP/2 stream, reset or not) keeps its admission and its place among its
        // connection's 128 streams, as nginx keeps a request it ignores the abort of.
        self.watch(if ignore_abort {
            WatchFrom::Never
        } else {
            WatchFrom::AWhile
        })
    }

    /// Whether the client is known to be gone without a wait, where [`Client::gone`] would
    /// resolve at once: an HTTP/2 stream it reset. (A socket is only known gone by watching
    /// it.) False when `ignore_abort` says the request outlives the client.
    pub(crate) fn known_gone(&self, ignore_abort: bool) -> bool {
        !ignore_abort
            && matches!(self.stream.get_ref(), ClientStream::Bridged(pipe) if pipe.is_gone())
    }

    /// As [`Client::gone`], watching at once: for a request ringway itself holds back (a
    /// `limit_req` delay), which nothing else would see the client leave.
    pub(crate) fn gone_at_once(&self) -> impl Future<Output = ()> + '_ {
        self.watch(WatchFrom::Now)
    }

    /// Watches from `from` on. One future for both ways, not one awaiting the other: a
    /// request's future holds it beside the upstream's, and stays its size.
    async fn watch(&self, from: WatchFrom) {
        if from == WatchFrom::Never {
            return std::future::pending().await;
        }
        // An HTTP/2 stream's pipe costs nothing to watch: at once (a client resetting
        // streams must not keep their upstream requests running for the delay).
        let stream = self.stream.get_ref();
        if let ClientStream::Bridged(pipe) = stream {
            return pipe.gone().await;
        }
        if from == WatchFrom::AWhile {
            tokio::time::sleep(WATCH_AFTER).await;
        }
        let Some(fd) = stream.socket() else {
            return std::future::pending().await;
        };
        // SAFETY: the fd stays open and the same socket for the AsyncFd's whole life: it
        // lives in this future, which borrows `self` (the fd's owner), and is dropped first.
        let registered =
            unsafe { AsyncFd::register_with_interest(Borrowed(fd), Interest::READABLE) };
        let Ok(watch) = registered else {
            return std::future::pending().await;
        };
        loop {
            let Ok(mut ready) = watch.readable().await else {
                return std::future::pending().await;
            };
            // The client's end of stream behind bytes it sent too (a TLS close_notify, a
            // pipelined request): nginx's EPOLLRDHUP check (found by review: a TLS client
            // that closed cleanly was never seen to leave).
            if ready.ready().is_read_closed() {
                return;
            }
            match peek(fd) {
                Peeked::Closed | Peeked::Failed => return,
                // Bytes without an end (a pipelined request): the client is still there;
                // the next event is more bytes or the end.
                Peeked::Bytes | Peeked::Nothing => ready.clear_ready(),
            }
        }
    }
}
