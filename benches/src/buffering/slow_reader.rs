//! A slow reader: asks for a big answer on a socket with a small receive buffer, then reads
//! a few KiB per tick until told to stop, and closes. What it saw is summed over all readers.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use socket2::{Domain, Socket, Type};

/// Longest wait inside one read, so that a stop request is seen promptly.
const POLL: Duration = Duration::from_millis(100);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a slow reader reads.
#[derive(Debug, Clone)]
pub struct ReadPace {
    pub chunk: usize,
    pub every: Duration,
    pub rcvbuf: usize,
}

/// One reader's view of its answer.
#[derive(Debug, Clone, Default)]
pub struct SlowRead {
    /// The answer's status, once its head arrived.
    pub status: Option<u16>,
    pub content_length: Option<u64>,
    pub body_bytes: u64,
    /// The connection ended before Content-Length bytes (the proxy cut the answer).
    pub cut_short: bool,
    pub complete: bool,
    pub error: Option<String>,
}

/// What all the readers of a scenario saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Readers {
    pub clients: usize,
    /// Readers that got a `200` head before they stopped.
    pub heads_200: usize,
    /// Readers that got another status.
    pub heads_other: usize,
    pub body_bytes: u64,
    pub complete: usize,
    pub cut_short: usize,
    pub errors: usize,
    pub first_error: Option<String>,
}

impl Readers {
    pub fn sum(reads: &[SlowRead]) -> Readers {
        let mut out = Readers {
            clients: reads.len(),
            ..Readers::default()
        };
        for r in reads {
            match r.status {
                Some(200) => out.heads_200 += 1,
                Some(_) => out.heads_other += 1,
                None => {}
            }
            out.body_bytes += r.body_bytes;
            out.complete += usize::from(r.complete);
            out.cut_short += usize::from(r.cut_short);
            if let Some(err) = &r.error {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| err.clone());
            }
        }
        out
    }
}

/// Starts a reader of `GET path` that stops (and closes) when `stop` is set.
pub fn spawn(
    addr: SocketAddr,
    path: String,
    pace: ReadPace,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<SlowRead>> {
    thread::Builder::new()
        .name("slow-reader".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let mut read = SlowRead::default();
            if let Err(err) = read_slowly(addr, &path, &pace, &stop, &mut read) {
                read.error = Some(format!("{err:#}"));
            }
            read
        })
        .context("spawn a slow reader")
}

/// Joins readers; one that panicked counts as an error.
pub fn join(readers: Vec<JoinHandle<SlowRead>>) -> Vec<SlowRead> {
    readers
        .into_iter()
        .map(|h| {
            h.join().unwrap_or_else(|_| SlowRead {
                error: Some("reader thread panicked".into()),
                ..SlowRead::default()
            })
        })
        .collect()
}

/// A TCP connection whose receive buffer is `rcvbuf` (set before connecting, so the window
/// the proxy sees is small from the start).
pub fn connect_small_window(addr: SocketAddr, rcvbuf: usize) -> Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
        .context("create a client socket")?;
    socket
        .set_recv_buffer_size(rcvbuf)
        .context("set SO_RCVBUF")?;
    socket
        .connect_timeout(&addr.into(), CONNECT_TIMEOUT)
        .with_context(|| format!("connect {addr}"))?;
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
    Ok(stream)
}

fn read_slowly(
    addr: SocketAddr,
    path: &str,
    pace: &ReadPace,
    stop: &AtomicBool,
    read: &mut SlowRead,
) -> Result<()> {
    let mut stream = connect_small_window(addr, pace.rcvbuf)?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .context("write request")?;
    let mut head = Head::default();
    let mut buf = vec![0u8; pace.chunk.max(1)];
    let mut tick_end = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        tick_end += pace.every;
        let mut budget = pace.chunk.max(1);
        // This tick's budget, or less if the tick ends first.
        while budget > 0 && !stop.load(Ordering::SeqCst) {
            let left = tick_end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            stream.set_read_timeout(Some(left.min(POLL)))?;
            match stream.read(&mut buf[..budget]) {
                Ok(0) => {
                    read.cut_short = read
                        .content_length
                        .is_none_or(|length| read.body_bytes < length);
                    return Ok(());
                }
                Ok(n) => {
                    budget -= n;
                    head.feed(&buf[..n], read)?;
                    if read.content_length == Some(read.body_bytes) {
                        read.complete = true;
                        return Ok(());
                    }
                }
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(err) => return Err(err).context("read the answer"),
            }
        }
        // Budget spent: idle until the tick ends.
        while !stop.load(Ordering::SeqCst) {
            let left = tick_end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            thread::sleep(left.min(POLL));
        }
    }
    Ok(())
}

/// The answer's head, gathered until its blank line, then body bytes counted.
#[derive(Default)]
struct Head {
    bytes: Vec<u8>,
    done: bool,
}

impl Head {
    fn feed(&mut self, data: &[u8], read: &mut SlowRead) -> Result<()> {
        if self.done {
            read.body_bytes += data.len() as u64;
            return Ok(());
        }
        self.bytes.extend_from_slice(data);
        let Some(end) = self.bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
            anyhow::ensure!(self.bytes.len() <= 64 * 1024, "answer head over 64 KiB");
            return Ok(());
        };
        self.done = true;
        let text = String::from_utf8_lossy(&self.bytes[..end]);
        let mut lines = text.split("\r\n");
        read.status = lines
            .next()
            .and_then(|status| status.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok());
        read.content_length = lines.find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())
                .flatten()
        });
        read.body_bytes += (self.bytes.len() - end - 4) as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_then_body_bytes() -> Result<()> {
        let mut head = Head::default();
        let mut read = SlowRead::default();
        head.feed(b"HTTP/1.1 200 OK\r\nContent-Len", &mut read)?;
        assert_eq!(read.status, None);
        head.feed(b"gth: 10\r\n\r\nabc", &mut read)?;
        head.feed(b"defg", &mut read)?;
        assert_eq!(
            (read.status, read.content_length, read.body_bytes),
            (Some(200), Some(10), 7)
        );
        let sum = Readers::sum(&[
            read,
            SlowRead {
                error: Some("boom".into()),
                ..SlowRead::default()
            },
        ]);
        assert_eq!((sum.clients, sum.heads_200, sum.errors), (2, 1, 1));
        Ok(())
    }
}
