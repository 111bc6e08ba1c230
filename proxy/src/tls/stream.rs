//! A TLS connection over an io_uring socket. rustls is sans-IO: records read go in from
//! pooled buffers; sealed records go out straight from rustls's buffers while the socket
//! takes them, and what it does not take goes through a pooled buffer and a write op, as a
//! plain connection's rest does. The rest of ringway reads and writes plaintext through
//! [`Stream`].

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use tokio::time::Instant;

use rustls::ServerConnection;
use tokio::sync::Notify;
use tokio_uring::BufResult;
use tokio_uring::net::TcpStream;

use super::peer::Peer;
use crate::buffer::{Buf, LARGE, SMALL, TINY};
use crate::io::{Progress, Stream, send_vectored_now};

/// Ciphertext read at a time for bulk data: a pool class (rustls keeps the part of a record
/// a read cut off, so a record need not fit in one read).
const BULK_READ: usize = SMALL;
/// Time the close_notify alert may take to go out.
const GOODBYE: Duration = Duration::from_secs(1);

/// A TLS session on a TCP socket.
pub(crate) struct TlsStream {
    tcp: TcpStream,
    /// Borrowed only between awaits: a read and a write of the same connection never hold
    /// it at once.
    conn: RefCell<ServerConnection>,
    /// A write of records is in flight (a read may flush what the session owes the peer,
    /// while a joined WebSocket's other direction writes): one at a time on the socket.
    flushing: Cell<bool>,
    /// Wakes a flush waiting for the one in flight to end.
    flushed: Notify,
    /// Ciphertext read from the socket that rustls has not taken yet: it takes no more while
    /// a record's plaintext waits to be read (see [`TlsStream::absorb`]).
    unread: RefCell<Vec<u8>>,
    /// What the handshake agreed and the client proved (set once it is done).
    peer: Peer,
    /// When ciphertext last came off the socket ([`Stream::last_arrival`]).
    arrived: Cell<Option<Instant>>,
}

impl TlsStream {
    pub(super) fn new(tcp: TcpStream, conn: ServerConnection) -> TlsStream {
        TlsStream {
            tcp,
            conn: RefCell::new(conn),
            flushing: Cell::new(false),
            flushed: Notify::new(),
            unread: RefCell::new(Vec::new()),
            peer: Peer::default(),
            arrived: Cell::new(None),
        }
    }

    /// Notes what the handshake, now done under `acceptor`, agreed.
    /// See [`super::peer::resumed_past_validity`].
    pub(super) fn resumed_past_validity(&self) -> bool {
        super::peer::resumed_past_validity(&self.conn.borrow())
    }

    pub(super) fn learn_peer(&mut self, acceptor: &super::Acceptor) {
        self.peer = Peer::of(self.conn.get_mut(), acceptor);
    }

    /// The version, cipher and client certificate of the session.
    pub(crate) fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The socket.
    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The negotiated protocol version, `TLSv1.3` or `TLSv1.2`.
    pub(crate) fn version(&self) -> &'static str {
        self.peer.protocol
    }

    /// The key exchange group agreed (none for a TLS 1.2 resumption).
    pub(crate) fn key_exchange_group(&self) -> Option<crate::config::KeyExchangeGroup> {
        self.peer.group
    }

    /// Whether the client's bytes wait in the session, read from the socket but not taken:
    /// plaintext decrypted, or records held for the next read (a pipelined request that
    /// came in one segment with the last).
    pub(crate) fn has_buffered(&self) -> bool {
        if !self.unread.borrow().is_empty() {
            return true;
        }
        let mut conn = self.conn.borrow_mut();
        matches!(conn.reader().fill_buf(), Ok(data) if !data.is_empty())
    }

    /// Whether the client and ringway agreed on HTTP/2 (ALPN `h2`).
    pub(crate) fn speaks_h2(&self) -> bool {
        self.conn.borrow().alpn_protocol() == Some(crate::http2::ALPN)
    }

    pub(super) fn is_handshaking(&self) -> bool {
        self.conn.borrow().is_handshaking()
    }

    /// Sends every record rustls has ready.
    pub(super) async fn flush(&self) -> io::Result<()> {
        self.flush_noting(&Progress::default()).await
    }

    /// Sends every record rustls has ready, noting in `progress` each op that moved bytes.
    async fn flush_noting(&self, progress: &Progress) -> io::Result<()> {
        // Records of two writes at once could interleave on the socket. (A read does not
        // wait here: it skips its flush while one is in flight, which sends its records too.)
        while self.flushing.get() {
            self.flushed.notified().await;
        }
        let mut wrote = false;
        loop {
            let out = {
                let mut conn = self.conn.borrow_mut();
                if !conn.wants_write() {
                    return Ok(());
                }
                // A batch went out and more follow: progress, noted only then, so that a
                // flush done in one batch reads no clock.
                if wrote {
                    progress.made();
                }
                // What the socket takes at once goes straight from rustls's buffers: no
                // copy, no op. Only the rest is copied out for a write op.
                let sent = send_records_now(self.tcp.as_raw_fd(), &mut conn)?;
                if !conn.wants_write() {
                    return Ok(());
                }
                if sent > 0 {
                    progress.made();
                }
                let mut out = Buf::with_capacity(LARGE);
                while conn.wants_write() && out.len() < LARGE / 2 {
                    conn.write_tls(&mut RecordSink(&mut out))?;
                }
                out
            };
            let in_flight = Flushing::start(self);
            let (res, _) = self.tcp.write_from(out, 0, progress).await;
            in_flight.finish();
            res?;
            wrote = true;
        }
    }

    /// Reads the next ciphertext from the socket into the session, sized for `want` bytes of
    /// plaintext: a tiny buffer for a request head (an idle keep-alive session waits with
    /// 1 KiB, not a record's worth), a 16 KiB one for bodies. `Ok(false)` when the peer
    /// closed the socket.
    pub(super) async fn fill(&self, want: usize) -> io::Result<bool> {
        let unread = std::mem::take(&mut *self.unread.borrow_mut());
        if !unread.is_empty() {
            self.absorb(&unread)?;
            return Ok(true);
        }
        let size = if want <= TINY { TINY } else { BULK_READ };
        let (res, buf) = self.tcp.read_append(Buf::with_capacity(size), size).await;
        if res? == 0 {
            return Ok(false);
        }
        self.arrived.set(Some(Instant::now()));
        // On an error rustls has queued an alert for the peer; the caller's flush sends it.
        self.absorb(&buf)?;
        Ok(true)
    }

    /// Feeds ciphertext read from the socket (the handshake's first bytes, or a fill's) into
    /// the session, up to the first record that yields plaintext: rustls refuses more input
    /// while over 16 KiB of plaintext waits (an error that would end the connection), and
    /// one 16 KiB read can complete two full records. The rest waits in `unread` for the
    /// next fill, after the reader has taken that plaintext.
    pub(super) fn absorb(&self, mut records: &[u8]) -> io::Result<()> {
        let mut conn = self.conn.borrow_mut();
        while !records.is_empty() {
            // After the peer's close_notify rustls takes nothing more (`Ok(0)`): what follows
            // is not part of the session, and trying again would spin the worker.
            if conn.read_tls(&mut records)? == 0 {
                break;
            }
            let state = conn
                .process_new_packets()
                .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
            if state.plaintext_bytes_to_read() > 0 && !records.is_empty() {
                self.unread.borrow_mut().extend_from_slice(records);
                break;
            }
        }
        Ok(())
    }

    /// The socket back, the session dropped (a plain request on the TLS port).
    pub(super) fn into_tcp(self) -> TcpStream {
        self.tcp
    }

    /// Says goodbye the TLS way (a close_notify alert) before the socket closes, so the
    /// client can tell the end from a cut. Best effort: a client gone already changes nothing.
    pub(crate) async fn close_notify(&self) {
        self.conn.borrow_mut().send_close_notify();
        self.flush_briefly().await;
    }

    /// Sends what the session has queued (an alert, a close_notify) for at most
    /// [`GOODBYE`]: a peer that reads nothing must not hold the connection.
    pub(super) async fn flush_briefly(&self) {
        if tokio::time::timeout(GOODBYE, self.flush()).await.is_err() {
            // The write in flight ends with the socket (a dropped op is not cancelled).
            Stream::shutdown(self, Shutdown::Both);
        }
    }
}

/// Marks a write of records in flight until it finishes or its future is dropped midway
/// (a timeout). A write dropped midway leaves its op in flight with records half sent:
/// the socket's writing side is shut down then, which ends the op at once and fails every
/// later write, so that nothing sent after can overtake those records or land in the
/// middle of one. The reading side is left: a tunnel whose server ended goes on carrying
/// what the client sends after its `close_notify`'s flush ran out of time (found by
/// review: the whole socket was shut, and the client's further bytes read as its end).
struct Flushing<'s> {
    tls: &'s TlsStream,
    finished: bool,
}

impl<'s> Flushing<'s> {
    fn start(tls: &'s TlsStream) -> Flushing<'s> {
        tls.flushing.set(true);
        Flushing {
            tls,
            finished: false,
        }
    }

    /// The write op completed (well or not).
    fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Flushing<'_> {
    fn drop(&mut self) {
        if !self.finished {
            Stream::shutdown(&self.tls.tcp, Shutdown::Write);
        }
        self.tls.flushing.set(false);
        self.tls.flushed.notify_waiters();
    }
}

/// Sends the sealed records the socket takes without waiting, in one `sendmsg` per batch
/// rustls hands over; the bytes that went. Called only while no write op is in flight on
/// the socket (records would reorder), which [`TlsStream::flush_noting`] makes sure of.
fn send_records_now(fd: RawFd, conn: &mut ServerConnection) -> io::Result<usize> {
    let mut socket = SendNow { fd, full: false };
    let mut sent = 0;
    while conn.wants_write() && !socket.full {
        match conn.write_tls(&mut socket) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

/// The socket as rustls's record sink, written without waiting: `WouldBlock` when its send
/// buffer is full, so that rustls keeps what did not go.
struct SendNow {
    fd: RawFd,
    /// The socket took less than it was offered: the next send would take nothing.
    full: bool,
}

impl Write for SendNow {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(data)])
    }

    fn write_vectored(&mut self, records: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let offered: usize = records.iter().map(|r| r.len()).sum();
        let n = send_vectored_now(self.fd, records)?;
        self.full = n < offered;
        if n == 0 && offered > 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Appends records to a buffer.
struct RecordSink<'b>(&'b mut Buf);

impl Write for RecordSink<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for TlsStream {
    async fn read_append(&self, mut buf: Buf, max: usize) -> BufResult<usize, Buf> {
        loop {
            let ready = {
                let mut conn = self.conn.borrow_mut();
                let mut reader = conn.reader();
                match reader.fill_buf() {
                    Ok(data) => {
                        // Empty: the peer said close_notify, a clean end of stream.
                        let n = data.len().min(max);
                        buf.extend_from_slice(&data[..n]);
                        reader.consume(n);
                        Some(Ok(n))
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                    Err(e) => Some(Err(e)),
                }
            };
            if let Some(read) = ready {
                return (read, buf);
            }
            // Answer what the peer may be waiting for (a key update, an alert) first, unless
            // a write is in flight (a joined WebSocket writes while it reads): two writes at
            // once could interleave records, and that one's loop sends these too.
            if !self.flushing.get()
                && let Err(e) = self.flush().await
            {
                return (Err(e), buf);
            }
            match self.fill(max).await {
                Ok(true) => {}
                Ok(false) => return (Ok(0), buf),
                Err(e) => {
                    if !self.flushing.get() {
                        let _ = self.flush().await;
                    }
                    return (Err(e), buf);
                }
            }
        }
    }

    async fn write_from(&self, buf: Buf, from: usize, progress: &Progress) -> BufResult<(), Buf> {
        let mut at = from;
        while at < buf.len() {
            let taken = self.conn.borrow_mut().writer().write(&buf[at..]);
            match taken {
                Ok(n) => at += n,
                Err(e) => return (Err(e), buf),
            }
            // rustls holds a bounded amount of sealed records: send them before sealing more.
            if let Err(e) = self.flush_noting(progress).await {
                return (Err(e), buf);
            }
            if at < buf.len() {
                progress.made();
            }
        }
        // Records the socket took at once needed no op: a task whose every write goes so
        // must still let the loop's other tasks run, as a plain stream's (`io::write_all`).
        tokio::task::consume_budget().await;
        (Ok(()), buf)
    }

    async fn finish_writing(&self) {
        self.conn.borrow_mut().send_close_notify();
        // Within [`GOODBYE`], as any goodbye; past it only the writing side goes (its write
        // in flight fails then), the reading side kept for the peer's bytes still to come
        // (found by review: `close_notify`'s flush shut both).
        let _ = tokio::time::timeout(GOODBYE, self.flush()).await;
        Stream::shutdown(self, Shutdown::Write);
    }

    fn shutdown(&self, how: Shutdown) {
        // A read that timed out may be waiting on a flush of records: that write must end too.
        let how = if how == Shutdown::Read && self.flushing.get() {
            Shutdown::Both
        } else {
            how
        };
        Stream::shutdown(&self.tcp, how);
    }
}

/// What a handshake's first bytes look like.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum FirstBytes {
    /// A TLS handshake record.
    Tls,
    /// An HTTP request line (`GET /`, `POST `...): a plain request on the TLS port.
    PlainHttp,
    /// Anything else.
    Garbage,
}

/// Classifies the first bytes a client sent on the TLS port; empty lines before a request
/// line are skipped, as the request parser skips them (RFC 9112 §2.2; nginx too).
pub(super) fn classify(first: &[u8]) -> FirstBytes {
    if first.first() == Some(&0x16) {
        return FirstBytes::Tls;
    }
    match first.iter().find(|&&b| b != b'\r' && b != b'\n') {
        Some(b) if b.is_ascii_uppercase() => FirstBytes::PlainHttp,
        _ => FirstBytes::Garbage,
    }
}

/// Read size for the first bytes of a connection on the TLS port.
pub(super) const FIRST_READ: usize = SMALL;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::{FirstBytes, classify};

    /// What [`Flushing`](super::Flushing) relies on: a write op stuck on a peer that reads
    /// nothing ends once the socket's writing side is shut down, and the socket still reads
    /// what the peer sends after.
    #[test]
    fn a_half_close_ends_a_stuck_write_and_leaves_reading() {
        use std::io::Write;
        use std::time::Duration;
        tokio_uring::start(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let mut theirs = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let ours = tokio_uring::net::TcpStream::from_std(listener.accept().unwrap().0);
            // Writes until one waits: the peer's and our buffers are full.
            let stuck = loop {
                let mut write = Box::pin(ours.write(vec![7u8; 1 << 20]).submit());
                let done = tokio::time::timeout(Duration::from_millis(200), &mut write).await;
                match done {
                    Ok((Ok(n), _)) if n > 0 => continue,
                    Ok((result, _)) => panic!("a write failed before the half-close: {result:?}"),
                    Err(_) => break write,
                }
            };
            let fd = std::os::fd::AsRawFd::as_raw_fd(&ours);
            // SAFETY: a plain shutdown(2) on the open socket's fd.
            assert_eq!(unsafe { libc::shutdown(fd, libc::SHUT_WR) }, 0);
            let ended = tokio::time::timeout(Duration::from_secs(2), stuck).await;
            assert!(ended.is_ok(), "the stuck write ended");
            theirs.write_all(b"more").unwrap();
            let (read, buf) = ours.read(vec![0u8; 16]).await;
            assert_eq!(&buf[..read.unwrap()], b"more", "still read");
        });
    }

    #[test]
    fn the_first_byte_tells_tls_from_plain_http() {
        assert_eq!(classify(&[0x16, 0x03, 0x01]), FirstBytes::Tls);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), FirstBytes::PlainHttp);
        assert_eq!(classify(b"POST /x HTTP/1.0\r\n"), FirstBytes::PlainHttp);
        assert_eq!(classify(b"\x00\x01garbage"), FirstBytes::Garbage);
        assert_eq!(classify(b"get / HTTP/1.1\r\n"), FirstBytes::Garbage);
        assert_eq!(classify(b"\r\nGET / HTTP/1.1\r\n"), FirstBytes::PlainHttp);
        assert_eq!(classify(b"\r\n"), FirstBytes::Garbage);
        assert_eq!(
            classify(b"\r\n\x16\x03\x01"),
            FirstBytes::Garbage,
            "no TLS after them"
        );
        assert_eq!(classify(b""), FirstBytes::Garbage);
    }
}
