//! A tiny raw HTTP/1.1 client over a blocking stream: sends arbitrary bytes, reads responses
//! with exact framing (Content-Length, chunked, until close, no body for HEAD/1xx/204/304),
//! several pipelined ones in order, and tells whether the peer closed. Every read has a
//! timeout and every response an overall deadline, so a test never hangs.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Timeout of one socket read.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline for reading one whole response (10 MiB through a debug build fits easily).
const RESPONSE_DEADLINE: Duration = Duration::from_secs(30);
/// Largest response head accepted.
const MAX_HEAD: usize = 256 * 1024;
/// Most header lines in a response head (httparse needs a slot for each).
const MAX_HEADERS: usize = 256;

/// How a response body was delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body by rule (HEAD, 1xx, 204, 304).
    NoBody,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Read until the server closed the connection.
    UntilClose,
}

/// One parsed response.
#[derive(Clone)]
pub struct Response {
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// How the body was delimited.
    pub framing: Framing,
}

impl std::fmt::Debug for Response {
    /// Text headers and at most 300 bytes of body, so assertion messages stay readable.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HTTP/1.{} {} {} [",
            self.version, self.status, self.reason
        )?;
        for (name, value) in &self.headers {
            write!(f, "{name}: {}; ", String::from_utf8_lossy(value))?;
        }
        let shown = &self.body[..self.body.len().min(300)];
        write!(
            f,
            "] {:?} body {} bytes {:?}",
            self.framing,
            self.body.len(),
            String::from_utf8_lossy(shown)
        )
    }
}

impl Response {
    /// The first value of header `name` (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// Whether the response carries `Connection: close`.
    pub fn says_close(&self) -> bool {
        self.header_all("connection")
            .iter()
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response {} body is not JSON ({e}): {:?}",
                self.status,
                self.text()
            )
        })
    }
}

/// A client connection: the stream plus bytes read but not yet consumed (pipelining).
pub struct Conn<S = TcpStream> {
    stream: S,
    buf: Vec<u8>,
    eof: bool,
}

impl Conn<TcpStream> {
    /// Connects to `addr` with the default read timeout; panics if the connect fails.
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("set read timeout");
        stream
            .set_write_timeout(Some(READ_TIMEOUT))
            .expect("set write timeout");
        stream.set_nodelay(true).expect("nodelay");
        Conn::new(stream)
    }

    /// Like [`Conn::open`], from the local address `source` (a loopback alias such as
    /// 127.0.0.2, so a proxy in between can be told from the client).
    pub fn open_from(source: IpAddr, addr: SocketAddr) -> Conn {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).expect("socket");
        socket
            .bind(&SocketAddr::new(source, 0).into())
            .unwrap_or_else(|e| panic!("bind to {source}: {e}"));
        socket
            .connect_timeout(&addr.into(), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect from {source} to {addr}: {e}"));
        let stream = TcpStream::from(socket);
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("set read timeout");
        stream
            .set_write_timeout(Some(READ_TIMEOUT))
            .expect("set write timeout");
        stream.set_nodelay(true).expect("nodelay");
        Conn::new(stream)
    }

    /// The local address of the connection (its port is the app's REMOTE_PORT when nothing
    /// stands in between).
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local address")
    }

    /// Like [`Conn::open`], but `None` when the connection is refused.
    pub fn open_or_refused(addr: SocketAddr) -> Option<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
        stream.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
        stream.set_write_timeout(Some(READ_TIMEOUT)).ok()?;
        Some(Conn::new(stream))
    }

    /// Changes the timeout of each read (capped at [`READ_TIMEOUT`]).
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.stream
            .set_read_timeout(Some(timeout.min(READ_TIMEOUT)))
            .expect("set read timeout");
    }

    /// Half-closes the write side (the server sees EOF).
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Waits up to `limit` for the server to close the connection (EOF or reset), discarding
    /// whatever it sends meanwhile; returns whether it closed.
    /// Sends a byte every half second, as a client trickling a body, until the server
    /// closes the connection: how long that took, or `None` if it was still open after
    /// `limit`.
    pub fn trickle_until_closed(&mut self, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        loop {
            if self.send(b"x").is_err() || started.elapsed() > limit {
                let closed = self.closed_within(Duration::from_millis(100));
                return closed.then(|| started.elapsed());
            }
            if self.closed_within(Duration::from_millis(500)) {
                return Some(started.elapsed());
            }
        }
    }

    pub fn closed_within(&mut self, limit: Duration) -> bool {
        if self.eof {
            return true;
        }
        let deadline = Instant::now() + limit;
        let mut scratch = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.set_read_timeout(left.max(Duration::from_millis(1)));
            match self.stream.read(&mut scratch) {
                Ok(0) => {
                    self.eof = true;
                    return true;
                }
                Ok(_) => continue,
                Err(e) if is_timeout(&e) => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.eof = true;
                    return true;
                }
            }
        }
    }
}

impl<S: Read + Write> Conn<S> {
    /// Wraps a stream (its timeouts are the caller's business).
    pub fn new(stream: S) -> Conn<S> {
        Conn {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Reads one response to a request whose method was not HEAD.
    pub fn read_response(&mut self) -> io::Result<Response> {
        self.read_response_to("GET")
    }

    /// Reads one response to a request with `method` (HEAD responses have no body).
    pub fn read_response_to(&mut self, method: &str) -> io::Result<Response> {
        let deadline = Instant::now() + RESPONSE_DEADLINE;
        let (mut response, head_len) = self.read_head(deadline)?;
        self.buf.drain(..head_len);
        let no_body = method.eq_ignore_ascii_case("HEAD")
            || (100..200).contains(&response.status)
            || response.status == 204
            || response.status == 304;
        let chunked = response.header_all("transfer-encoding").iter().any(|v| {
            v.rsplit(',')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"))
        });
        let length = response.header("content-length");
        if no_body {
            response.framing = Framing::NoBody;
        } else if chunked {
            response.framing = Framing::Chunked;
            response.body = self.read_chunked(deadline)?;
        } else if let Some(length) = length {
            let n: u64 = length.trim().parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("Content-Length {length:?}"),
                )
            })?;
            response.framing = Framing::Length(n);
            let n = usize::try_from(n).expect("length fits usize");
            self.fill_to(n, deadline)?;
            response.body = self.buf.drain(..n).collect();
        } else {
            response.framing = Framing::UntilClose;
            while self.fill(deadline)? > 0 {}
            response.body = std::mem::take(&mut self.buf);
        }
        Ok(response)
    }

    /// Reads `methods.len()` responses in order (pipelining).
    pub fn read_responses(&mut self, methods: &[&str]) -> io::Result<Vec<Response>> {
        methods.iter().map(|m| self.read_response_to(m)).collect()
    }

    /// Reads until at least `n` bytes are buffered, consuming none: a client that has taken
    /// in part of a response and then pauses. A later [`Conn::read_response`] starts from
    /// them.
    pub fn read_at_least(&mut self, n: usize) -> io::Result<()> {
        self.fill_to(n, Instant::now() + RESPONSE_DEADLINE)
    }

    /// Bytes received but not consumed by any response so far.
    pub fn leftover(&self) -> &[u8] {
        &self.buf
    }

    fn read_head(&mut self, deadline: Instant) -> io::Result<(Response, usize)> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut headers);
            match parsed.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let response = Response {
                        version: parsed.version.unwrap_or(1),
                        status: parsed.code.unwrap_or(0),
                        reason: parsed.reason.unwrap_or("").to_owned(),
                        headers: parsed
                            .headers
                            .iter()
                            .map(|h| (h.name.to_owned(), h.value.to_vec()))
                            .collect(),
                        body: Vec::new(),
                        framing: Framing::NoBody,
                    };
                    return Ok((response, len));
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "bad response head ({e}): {:?}",
                            String::from_utf8_lossy(&self.buf[..self.buf.len().min(512)])
                        ),
                    ));
                }
            }
            if self.buf.len() > MAX_HEAD {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "response head over 256 KiB",
                ));
            }
            if self.fill(deadline)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before a full response head (got {:?})",
                        String::from_utf8_lossy(&self.buf)
                    ),
                ));
            }
        }
    }

    fn read_chunked(&mut self, deadline: Instant) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line(deadline)?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, format!("chunk size {line:?}"))
            })?;
            if size == 0 {
                // Trailer section, ended by an empty line.
                while !self.read_line(deadline)?.is_empty() {}
                return Ok(body);
            }
            self.fill_to(size + 2, deadline)?;
            if &self.buf[size..size + 2] != b"\r\n" {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "chunk data not followed by CRLF",
                ));
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }

    /// One CRLF-terminated line, without the CRLF.
    fn read_line(&mut self, deadline: Instant) -> io::Result<String> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
                self.buf.drain(..pos + 2);
                return Ok(line);
            }
            if self.fill(deadline)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a chunked body",
                ));
            }
        }
    }

    fn fill_to(&mut self, n: usize, deadline: Instant) -> io::Result<()> {
        while self.buf.len() < n {
            if self.fill(deadline)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed after {} of {n} body bytes",
                        self.buf.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Reads once more into the buffer; 0 at EOF. Fails past the deadline.
    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "response not complete within the deadline",
            ));
        }
        let mut scratch = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut scratch) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(0);
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&scratch[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    self.eof = true;
                    return Ok(0);
                }
                Err(e) if is_timeout(&e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "read timed out; so far {:?}",
                            String::from_utf8_lossy(&self.buf[..self.buf.len().min(512)])
                        ),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Whether `e` is a read or write that ran out of time (not a close or a reset).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A request to serialize: HTTP/1.1 with `Host: localhost` unless told otherwise.
#[derive(Debug, Clone)]
pub struct Req {
    method: String,
    target: String,
    version: &'static str,
    host: Option<String>,
    headers: Vec<(String, String)>,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Length(Vec<u8>),
    Chunked(Vec<Vec<u8>>),
}

impl Req {
    /// `METHOD target HTTP/1.1` with `Host: localhost`.
    pub fn new(method: &str, target: &str) -> Req {
        Req {
            method: method.to_owned(),
            target: target.to_owned(),
            version: "HTTP/1.1",
            host: Some("localhost".to_owned()),
            headers: Vec::new(),
            body: Body::None,
        }
    }

    /// A GET.
    pub fn get(target: &str) -> Req {
        Req::new("GET", target)
    }

    /// A POST with `body` and its Content-Length.
    pub fn post(target: &str, body: &[u8]) -> Req {
        Req::new("POST", target).body(body)
    }

    /// Sends `HTTP/1.0` on the request line.
    pub fn http10(mut self) -> Req {
        self.version = "HTTP/1.0";
        self
    }

    /// Sets the Host header's value, or leaves it out with `None`.
    pub fn host(mut self, host: Option<&str>) -> Req {
        self.host = host.map(str::to_owned);
        self
    }

    /// Adds a header line (after Host, in order).
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A body sent with `Content-Length`.
    pub fn body(mut self, body: &[u8]) -> Req {
        self.body = Body::Length(body.to_vec());
        self
    }

    /// A body sent with `Transfer-Encoding: chunked`, one chunk per piece.
    pub fn chunked(mut self, pieces: &[&[u8]]) -> Req {
        self.body = Body::Chunked(pieces.iter().map(|p| p.to_vec()).collect());
        self
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The request head and body as bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} {}\r\n", self.method, self.target, self.version).into_bytes();
        if let Some(host) = &self.host {
            out.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        match &self.body {
            Body::None => out.extend_from_slice(b"\r\n"),
            Body::Length(body) => {
                out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
                out.extend_from_slice(body);
            }
            Body::Chunked(pieces) => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                for piece in pieces.iter().filter(|p| !p.is_empty()) {
                    out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    out.extend_from_slice(piece);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
        }
        out
    }
}

/// Opens a connection to `addr`, sends `req`, reads its response; panics on I/O errors.
pub fn roundtrip(addr: SocketAddr, req: &Req) -> Response {
    let mut conn = Conn::open(addr);
    conn.send(&req.to_bytes())
        .unwrap_or_else(|e| panic!("sending {} {}: {e}", req.method, req.target));
    conn.read_response_to(&req.method)
        .unwrap_or_else(|e| panic!("response to {} {} via {addr}: {e}", req.method, req.target))
}

/// Opens a connection, sends raw `bytes`, reads one response (for requests that are not
/// well-formed enough for [`Req`]).
pub fn roundtrip_raw(addr: SocketAddr, bytes: &[u8]) -> io::Result<Response> {
    let mut conn = Conn::open(addr);
    conn.send(bytes)?;
    conn.read_response()
}

/// A TCP address that takes no connection: a listener whose backlog (0) one connection
/// nobody accepts fills, so a connect waits until its timeout. Kept open with the listener.
pub fn blackhole() -> (
    std::net::TcpListener,
    std::net::TcpStream,
    std::net::SocketAddr,
) {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("address");
    socket.bind(&any.into()).expect("bind");
    socket.listen(0).expect("listen");
    let listener = std::net::TcpListener::from(socket);
    let addr = listener.local_addr().expect("address");
    let filler = std::net::TcpStream::connect(addr).expect("the one the backlog takes");
    (listener, filler, addr)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A fake stream: reads come from a script, writes are discarded.
    struct Script(Cursor<Vec<u8>>);
    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            // One byte at a time: every parser path must cope with split input.
            let n = buf.len().min(1);
            self.0.read(&mut buf[..n])
        }
    }
    impl Write for Script {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn conn(bytes: &[u8]) -> Conn<Script> {
        Conn::new(Script(Cursor::new(bytes.to_vec())))
    }

    #[test]
    fn reads_pipelined_responses_with_every_framing() {
        let mut c = conn(
            b"HTTP/1.1 100 Continue\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc\
              HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n\
              HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nhe\r\n3\r\nllo\r\n0\r\nT: 1\r\n\r\n\
              HTTP/1.1 204 No Content\r\n\r\n\
              HTTP/1.0 200 OK\r\n\r\nuntil close",
        );
        let r = c.read_response().unwrap();
        assert_eq!((r.status, r.framing), (100, Framing::NoBody));
        let r = c.read_response().unwrap();
        assert_eq!(
            (r.body.as_slice(), r.framing),
            (&b"abc"[..], Framing::Length(3))
        );
        let r = c.read_response_to("HEAD").unwrap();
        assert_eq!(
            (r.body.len(), r.header("content-length")),
            (0, Some("5".into()))
        );
        let r = c.read_response().unwrap();
        assert_eq!(
            (r.body.as_slice(), r.framing),
            (&b"hello"[..], Framing::Chunked)
        );
        let r = c.read_response().unwrap();
        assert_eq!(r.status, 204);
        let r = c.read_response().unwrap();
        assert_eq!((r.version, r.body.as_slice()), (0, &b"until close"[..]));
        assert_eq!(r.framing, Framing::UntilClose);
    }

    #[test]
    fn a_short_body_is_an_error() {
        let mut c = conn(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc");
        assert_eq!(
            c.read_response().unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn serializes_requests() {
        let bytes = Req::post("/echo", b"hi").header("X-A", "1").to_bytes();
        assert_eq!(
            bytes,
            b"POST /echo HTTP/1.1\r\nHost: localhost\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nhi"
        );
        let bytes = Req::new("PUT", "/x")
            .host(None)
            .http10()
            .chunked(&[b"ab", b"", b"c"])
            .to_bytes();
        assert_eq!(
            bytes,
            b"PUT /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"
        );
    }
}
