//! The TLS handshake of an accepted connection, bounded by `handshake_timeout`.

use std::io;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use rustls::ServerConnection;
use tokio_uring::net::TcpStream;

use super::Acceptor;
use super::stream::{FIRST_READ, FirstBytes, TlsStream, classify};
use crate::buffer::Buf;
use crate::io::Stream;

/// How a handshake ended.
pub(crate) enum Handshake {
    /// The session is up.
    Done(Box<TlsStream>, Duration),
    /// The client sent a plain HTTP request on the TLS port (nginx answers it with 400):
    /// the socket, and the bytes read from it.
    PlainHttp(TcpStream, Buf),
    /// The client was silent or slow for the whole `handshake_timeout`.
    TimedOut,
    /// The client closed, sent garbage, or the handshake failed (bad version, no shared
    /// cipher, a bad record); the reason is for a debug log line.
    Failed(io::Error),
}

/// Runs the server side of a handshake on `tcp` with `acceptor`'s configuration. `first`
/// holds the connection's first bytes when some were read already (after a PROXY protocol
/// header); usually it is empty.
pub(crate) async fn accept(
    tcp: TcpStream,
    acceptor: &Acceptor,
    limit: Duration,
    first: Buf,
) -> Handshake {
    let started = Instant::now();
    let conn = match ServerConnection::new(acceptor.config()) {
        Ok(conn) => conn,
        Err(e) => return Handshake::Failed(io::Error::other(e)),
    };
    let tls = TlsStream::new(tcp, conn);
    let outcome = tokio::time::timeout(limit, drive(&tls, first)).await;
    match outcome {
        Ok(Ok(Progress::Up)) if tls.resumed_past_validity() => {
            Stream::shutdown(&tls, Shutdown::Both);
            Handshake::Failed(io::Error::other(
                "a resumed session's client certificate is past its validity",
            ))
        }
        Ok(Ok(Progress::Up)) => {
            let mut tls = tls;
            tls.learn_peer(acceptor);
            Handshake::Done(Box::new(tls), started.elapsed())
        }
        Ok(Ok(Progress::PlainHttp(first))) => Handshake::PlainHttp(tls.into_tcp(), first),
        Ok(Err(e)) => {
            // Whatever alert rustls queued, the peer gets it before the close (if it reads).
            tls.flush_briefly().await;
            Stream::shutdown(&tls, Shutdown::Both);
            Handshake::Failed(e)
        }
        Err(_) => {
            // The read in flight was dropped with the future: shutting the socket down
            // completes it (a tokio-uring op is not cancelled by a drop).
            Stream::shutdown(&tls, Shutdown::Both);
            Handshake::TimedOut
        }
    }
}

enum Progress {
    Up,
    /// What the client sent so far, the start of its plain request.
    PlainHttp(Buf),
}

async fn drive(tls: &TlsStream, first: Buf) -> io::Result<Progress> {
    // The first bytes say what the client speaks; a plain HTTP request gets an answer it
    // can read, as from nginx.
    let first = if first.is_empty() {
        let (res, first) = tls
            .tcp()
            .read_append(Buf::with_capacity(FIRST_READ), FIRST_READ)
            .await;
        if res? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        first
    } else {
        first
    };
    match classify(&first) {
        FirstBytes::Tls => {}
        FirstBytes::PlainHttp => return Ok(Progress::PlainHttp(first)),
        FirstBytes::Garbage => return Err(io::ErrorKind::InvalidData.into()),
    }
    tls.absorb(&first)?;
    while tls.is_handshaking() {
        tls.flush().await?;
        if !tls.is_handshaking() {
            break;
        }
        if !tls.fill(FIRST_READ).await? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    tls.flush().await?;
    Ok(Progress::Up)
}
