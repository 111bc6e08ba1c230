//! A small blocking HTTP/1.1 client: probes each stack before it is loaded (status and body
//! checked), and holds the idle keep-alive connections of the memory measurement. Answers
//! are read from any stream: a socket, or a TLS session over one ([`crate::tls`]).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// One answer as the client saw it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// The server said `Connection: close`.
    pub closes: bool,
}

pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
    let stream =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends `request` (raw bytes) and reads one answer framed by Content-Length, chunked, or
/// the end of the connection.
pub fn exchange(stream: &mut TcpStream, request: &[u8]) -> Result<Answer> {
    stream.write_all(request).context("write request")?;
    read_answer(stream)
}

/// Reads one answer from a plain or a TLS stream.
pub fn read_answer<S: Read>(stream: &mut S) -> Result<Answer> {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > 64 * 1024 {
            bail!("response head over 64 KiB");
        }
        read_more(stream, &mut buf)?;
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().context("empty response")?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    let mut closes = status_line.starts_with("HTTP/1.0");
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = Some(value.parse::<usize>().context("Content-Length")?),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => closes = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut rest = buf.split_off(head_end);
    let body = if chunked {
        read_chunked(stream, rest)?
    } else if let Some(length) = length {
        while rest.len() < length {
            read_more(stream, &mut rest)?;
        }
        rest.truncate(length);
        rest
    } else {
        stream.read_to_end(&mut rest).context("read body to EOF")?;
        closes = true;
        rest
    };
    Ok(Answer {
        status,
        body,
        closes,
    })
}

fn read_chunked<S: Read>(stream: &mut S, mut buf: Vec<u8>) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let line_end = loop {
            if let Some(i) = find(&buf[pos..], b"\r\n") {
                break pos + i;
            }
            read_more(stream, &mut buf)?;
        };
        let size_text = std::str::from_utf8(&buf[pos..line_end]).context("chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).context("chunk size")?;
        pos = line_end + 2;
        while buf.len() < pos + size + 2 {
            read_more(stream, &mut buf)?;
        }
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

fn read_more<S: Read>(stream: &mut S, buf: &mut Vec<u8>) -> Result<()> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).context("read response")?;
    if n == 0 {
        bail!("connection closed mid-response");
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether the peer still holds the connection open (nothing to read, no EOF).
pub fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let open = matches!(stream.peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    let _ = stream.set_nonblocking(false);
    open
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    fn serve(reply: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(reply);
            }
        });
        addr
    }

    #[test]
    fn reads_length_and_chunked_answers() -> Result<()> {
        let addr = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        let mut s = connect(addr, Duration::from_secs(2))?;
        let a = exchange(&mut s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
        assert_eq!(
            (a.status, a.body.as_slice(), a.closes),
            (200, &b"hello"[..], false)
        );

        let addr = serve(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
              3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        );
        let mut s = connect(addr, Duration::from_secs(2))?;
        let a = exchange(&mut s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
        assert_eq!(
            (a.status, a.body.as_slice(), a.closes),
            (201, &b"abcde"[..], true)
        );
        Ok(())
    }
}
