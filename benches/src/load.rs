//! The load: wrk (Debian's, 4.1) driven by a generated Lua script per case, and the cases.
//!
//! Why wrk and not an in-tree generator: it is a mature, efficient epoll C client that keeps
//! 1000 connections busy from one thread without stealing much of a 2-core machine from the
//! servers, and it is already on every machine of the project (CI installs it). Its limits,
//! which the report states: it is closed-loop, so its latency percentiles suffer from
//! coordinated omission (a stall delays the requests that would have been sent, and they are
//! never measured: read its p99 as "under saturation", comparable between stacks run the same
//! way, not as a service-level figure); and chunked bodies need a script (here the script
//! replaces `wrk.format`, so the request is still built once and sent as static bytes).

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::proc;

/// What a case asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// GET / → 13 bytes.
    Hello,
    /// GET /bytes/65536 → 64 KiB.
    Bytes64k,
    /// POST /echo with a 16 KiB Content-Length body.
    Post16k,
    /// POST /echo with a 16 KiB chunked body (4 chunks of 4 KiB).
    Chunked,
    /// GET /bytes/65536 with `Accept-Encoding: gzip` → 64 KiB compressed by the proxy
    /// (both proxies with gzip on, level 1, for the app's `application/octet-stream`).
    Gzip64k,
    /// GET /files/1k.bin → a 1 KiB file, served by the proxy itself.
    Static1k,
    /// GET /files/16k.css with `Accept-Encoding: gzip` → a 16 KiB stylesheet compressed by
    /// the proxy (both with gzip on for `text/css`, level 1).
    GzipFile16k,
    /// GET /files/128k.css, compressed: a stylesheet too large for ringway to keep.
    GzipFile128k,
    /// GET /files/64k.bin → a 64 KiB file.
    Static64k,
    /// GET /files/1m.bin → a 1 MiB file.
    Static1m,
    /// GET / over keep-alive TLS connections (h2load).
    TlsHello,
    /// GET /bytes/65536 over keep-alive TLS connections (h2load).
    Tls64k,
    /// GET / over HTTP/2 on keep-alive TLS connections (h2load in h2 mode, ALPN `h2`),
    /// [`H2_STREAMS`] streams in flight on each.
    TlsH2Hello,
    /// A new TLS connection per request, full handshakes (the harness's rustls client).
    TlsHandshakeFull,
    /// A new TLS connection per request, resumed with a session ticket.
    TlsHandshakeResumed,
}

/// The route the proxies serve the static files on (ringway `--static /files/=DIR`, nginx
/// `location /files/ { alias DIR/; }`).
pub const STATIC_ROUTE: &str = "/files/";

/// Requests in flight on each connection of the HTTP/2 case (h2load `-m`): with a tenth of
/// the other cases' connections, as many requests in flight as they have (10 × 10 for the
/// c100 cases), and the per-connection work (TLS records, HPACK, flow control) spread over
/// several streams, as a browser's page load spreads it.
pub const H2_STREAMS: usize = 10;

impl Kind {
    pub const ALL: [Kind; 15] = [
        Kind::Hello,
        Kind::Bytes64k,
        Kind::Post16k,
        Kind::Chunked,
        Kind::Gzip64k,
        Kind::GzipFile16k,
        Kind::GzipFile128k,
        Kind::Static1k,
        Kind::Static64k,
        Kind::Static1m,
        Kind::TlsHello,
        Kind::Tls64k,
        Kind::TlsH2Hello,
        Kind::TlsHandshakeFull,
        Kind::TlsHandshakeResumed,
    ];

    /// The static-file kinds.
    pub const STATIC: [Kind; 5] = [
        Kind::Static1k,
        Kind::Static64k,
        Kind::Static1m,
        Kind::GzipFile16k,
        Kind::GzipFile128k,
    ];

    /// The TLS cases (`--cases tls`).
    pub const TLS: [Kind; 5] = [
        Kind::TlsHello,
        Kind::Tls64k,
        Kind::TlsH2Hello,
        Kind::TlsHandshakeFull,
        Kind::TlsHandshakeResumed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Hello => "hello",
            Kind::Bytes64k => "64k",
            Kind::Post16k => "post16k",
            Kind::Chunked => "chunked",
            Kind::Gzip64k => "gzip64k",
            Kind::GzipFile16k => "gzipfile16k",
            Kind::GzipFile128k => "gzipfile128k",
            Kind::Static1k => "static1k",
            Kind::Static64k => "static64k",
            Kind::Static1m => "static1m",
            Kind::TlsHello => "tls-hello",
            Kind::Tls64k => "tls-64k",
            Kind::TlsH2Hello => "tls-h2-hello",
            Kind::TlsHandshakeFull => "tls-handshake-full",
            Kind::TlsHandshakeResumed => "tls-handshake-resumed",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .with_context(|| {
                let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown case {name:?} ({}, or tls for the five TLS ones)",
                    names.join(", ")
                )
            })
    }

    /// An answer the proxy compresses.
    pub fn is_compressed(self) -> bool {
        matches!(self, Kind::Gzip64k | Kind::GzipFile16k | Kind::GzipFile128k)
    }

    /// A file the proxy serves from disk, not an answer from the app.
    pub fn is_static(self) -> bool {
        Kind::STATIC.contains(&self)
    }

    /// The static file's name and size.
    pub fn file(self) -> Option<(&'static str, usize)> {
        match self {
            Kind::Static1k => Some(("1k.bin", 1024)),
            Kind::Static64k => Some(("64k.bin", 64 * 1024)),
            Kind::Static1m => Some(("1m.bin", 1024 * 1024)),
            Kind::GzipFile16k => Some(("16k.css", 16 * 1024)),
            Kind::GzipFile128k => Some(("128k.css", 128 * 1024)),
            _ => None,
        }
    }

    /// Served over TLS (ringway and nginx only).
    pub fn is_tls(self) -> bool {
        Kind::TLS.contains(&self)
    }

    /// A new connection and handshake per request.
    pub fn is_handshake(self) -> bool {
        matches!(self, Kind::TlsHandshakeFull | Kind::TlsHandshakeResumed)
    }

    /// Served over HTTP/2.
    pub fn is_h2(self) -> bool {
        self == Kind::TlsH2Hello
    }

    /// The application protocol a TLS case must have negotiated (ALPN): both servers offer
    /// `h2` before `http/1.1`, so a case measured on the wrong one would be mislabelled.
    /// `None` for the plain-HTTP cases.
    pub fn alpn(self) -> Option<&'static str> {
        match self {
            _ if !self.is_tls() => None,
            _ if self.is_h2() => Some("h2"),
            _ => Some("http/1.1"),
        }
    }

    /// The plain-HTTP case whose request and answer a TLS case carries.
    pub fn plain(self) -> Kind {
        match self {
            Kind::TlsHello
            | Kind::TlsH2Hello
            | Kind::TlsHandshakeFull
            | Kind::TlsHandshakeResumed => Kind::Hello,
            Kind::Tls64k => Kind::Bytes64k,
            other => other,
        }
    }

    pub fn path(self) -> &'static str {
        match self.plain() {
            Kind::Bytes64k | Kind::Gzip64k => "/bytes/65536",
            Kind::Post16k | Kind::Chunked => "/echo",
            Kind::Static1k => "/files/1k.bin",
            Kind::Static64k => "/files/64k.bin",
            Kind::Static1m => "/files/1m.bin",
            Kind::GzipFile16k => "/files/16k.css",
            Kind::GzipFile128k => "/files/128k.css",
            _ => "/",
        }
    }

    /// The body the app (or the file) answers with, to check a probe against (decoded,
    /// for a compressed case).
    pub fn expected_body(self) -> Vec<u8> {
        match self.plain() {
            Kind::Bytes64k | Kind::Gzip64k => pattern(65536),
            Kind::Post16k | Kind::Chunked => {
                // JSON with the length; the sha256 is the app's business.
                b"\"length\": 16384".to_vec()
            }
            Kind::Static1k | Kind::Static64k | Kind::Static1m => {
                file_bytes(self.file().map_or(0, |(_, len)| len))
            }
            Kind::GzipFile16k | Kind::GzipFile128k => {
                stylesheet(self.file().map_or(0, |(_, len)| len))
            }
            _ => b"Hello, World!".to_vec(),
        }
    }
}

/// A `--cases` entry: a case name, optionally pinned to a connection count
/// (`hello-c10`, `tls-hello-c100`), or `tls` for the five TLS cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseSpec {
    pub kind: Kind,
    pub connections: Option<usize>,
}

impl CaseSpec {
    /// Parses one entry; `tls` gives several.
    pub fn parse(text: &str) -> Result<Vec<CaseSpec>> {
        if text == "tls" {
            return Ok(Kind::TLS
                .into_iter()
                .map(|kind| CaseSpec {
                    kind,
                    connections: None,
                })
                .collect());
        }
        if let Ok(kind) = Kind::parse(text) {
            return Ok(vec![CaseSpec {
                kind,
                connections: None,
            }]);
        }
        let pinned = text.rsplit_once("-c").and_then(|(name, count)| {
            Some((Kind::parse(name).ok()?, count.parse::<usize>().ok()?))
        });
        let Some((kind, connections)) = pinned else {
            // Not a name with a count either: the error names the known cases.
            return Kind::parse(text).map(|kind| {
                vec![CaseSpec {
                    kind,
                    connections: None,
                }]
            });
        };
        if connections == 0 || kind.is_handshake() {
            bail!(
                "case {text:?}: a connection count must be at least 1, and the handshake \
                 cases take theirs from --handshake-clients"
            );
        }
        Ok(vec![CaseSpec {
            kind,
            connections: Some(connections),
        }])
    }
}

/// `len` bytes of the app's pattern: byte i is i % 251.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A static file's bytes: a pattern of period 253 (prime, unlike the app's 251) started at the
/// file's size, so that no file's bytes are another's or an app answer's, and a shifted or
/// truncated piece of a file does not match.
pub fn file_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i + len) % 253) as u8).collect()
}

/// A stylesheet of `len` bytes that compresses as real ones do (to about a fifth at level
/// 1): rules with pseudo-random names, colours and sizes.
pub fn stylesheet(len: usize) -> Vec<u8> {
    let mut text = String::with_capacity(len + 128);
    let mut x: u32 = 2_463_534_242;
    let mut next = || {
        // xorshift32: the same text at every run.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    while text.len() < len {
        let (name, colour, size) = (next() % 5000, next() & 0xff_ffff, next() % 64);
        let _ = writeln!(
            text,
            ".item-{name} {{ color: #{colour:06x}; margin: {size}px {}px; display: block; }}",
            size / 2
        );
    }
    text.truncate(len);
    text.into_bytes()
}

/// Writes the static files of every static kind into `dir` (created), for both proxies to
/// serve.
pub fn write_static_files(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    for kind in Kind::STATIC {
        if let Some((name, _)) = kind.file() {
            let path = dir.join(name);
            fs::write(&path, kind.expected_body())
                .with_context(|| format!("write {}", path.display()))?;
        }
    }
    Ok(())
}

pub const BODY_LEN: usize = 16 * 1024;
const CHUNK_LEN: usize = 4 * 1024;

/// One case: a kind at a number of connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Case {
    pub kind: Kind,
    pub connections: usize,
}

impl Case {
    /// `hello-c100`; the handshake cases go by their name alone (their concurrency is the
    /// number of client threads, the same at every stack).
    pub fn id(&self) -> String {
        if self.kind.is_handshake() {
            self.kind.name().to_owned()
        } else {
            format!("{}-c{}", self.kind.name(), self.connections)
        }
    }
}

/// The raw request for `kind` (for probes; wrk's script builds the same bytes).
pub fn raw_request(kind: Kind, addr: SocketAddr, close: bool) -> Vec<u8> {
    let kind = kind.plain();
    let mut head = String::new();
    let method = match kind {
        Kind::Post16k | Kind::Chunked => "POST",
        _ => "GET",
    };
    let _ = write!(
        head,
        "{method} {} HTTP/1.1\r\nHost: {addr}\r\n",
        kind.path()
    );
    if close {
        head.push_str("Connection: close\r\n");
    }
    if kind.is_compressed() {
        head.push_str("Accept-Encoding: gzip\r\n");
    }
    let mut body = Vec::new();
    match kind {
        Kind::Post16k => {
            head.push_str("Content-Type: application/octet-stream\r\n");
            let _ = write!(head, "Content-Length: {BODY_LEN}\r\n");
            body = vec![b'x'; BODY_LEN];
        }
        Kind::Chunked => {
            head.push_str("Content-Type: application/octet-stream\r\n");
            head.push_str("Transfer-Encoding: chunked\r\n");
            for _ in 0..BODY_LEN / CHUNK_LEN {
                body.extend_from_slice(format!("{CHUNK_LEN:x}\r\n").as_bytes());
                body.extend(std::iter::repeat_n(b'x', CHUNK_LEN));
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"0\r\n\r\n");
        }
        _ => {}
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The wrk Lua script for a case: the request is built once (wrk.format is replaced, so
/// wrk still treats it as static) and `done` prints the figures as one JSON line.
pub fn script(kind: Kind, addr: SocketAddr, close: bool) -> String {
    let mut lua = String::new();
    let connection = if close { "Connection: close\\r\\n" } else { "" };
    let kind = kind.plain();
    let (method, extra, body) = match kind {
        Kind::Post16k => (
            "POST",
            format!("Content-Type: application/octet-stream\\r\\nContent-Length: {BODY_LEN}\\r\\n"),
            format!("string.rep(\"x\", {BODY_LEN})"),
        ),
        Kind::Chunked => (
            "POST",
            "Content-Type: application/octet-stream\\r\\nTransfer-Encoding: chunked\\r\\n"
                .to_owned(),
            format!(
                "string.rep(\"{CHUNK_LEN:x}\\r\\n\" .. string.rep(\"x\", {CHUNK_LEN}) .. \"\\r\\n\", {}) .. \"0\\r\\n\\r\\n\"",
                BODY_LEN / CHUNK_LEN
            ),
        ),
        _ if kind.is_compressed() => (
            "GET",
            "Accept-Encoding: gzip\\r\\n".to_owned(),
            "\"\"".to_owned(),
        ),
        _ => ("GET", String::new(), "\"\"".to_owned()),
    };
    let _ = writeln!(
        lua,
        "local raw = \"{method} {path} HTTP/1.1\\r\\nHost: {addr}\\r\\n{connection}{extra}\\r\\n\" .. {body}",
        path = kind.path()
    );
    lua.push_str(
        r#"wrk.format = function() return raw end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RINGWAY_BENCH {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d,\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d,\"p50_us\":%d,\"p99_us\":%d,\"p999_us\":%d,\"max_us\":%d,\"mean_us\":%.1f}\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
"#,
    );
    lua
}

/// What wrk measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WrkOutput {
    pub requests: u64,
    pub duration_us: u64,
    pub bytes: u64,
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub status: u64,
    pub timeout: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl WrkOutput {
    pub fn errors(&self) -> u64 {
        self.connect + self.read + self.write + self.status + self.timeout
    }

    pub fn rps(&self) -> f64 {
        if self.duration_us == 0 {
            0.0
        } else {
            self.requests as f64 / (self.duration_us as f64 / 1e6)
        }
    }
}

pub fn parse_output(stdout: &str) -> Result<WrkOutput> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RINGWAY_BENCH "))
        .context("wrk printed no RINGWAY_BENCH line")?;
    serde_json::from_str(line).with_context(|| format!("parse wrk's figures {line:?}"))
}

/// How to run wrk.
#[derive(Debug, Clone)]
pub struct Wrk {
    pub bin: PathBuf,
    pub threads: usize,
    pub cpus: Option<Vec<usize>>,
}

impl Wrk {
    /// Runs one load: `duration_s` seconds (wrk takes whole seconds), bounded by a watchdog.
    pub fn run(
        &self,
        case: Case,
        addr: SocketAddr,
        close: bool,
        duration_s: u64,
        dir: &Path,
    ) -> Result<WrkOutput> {
        let script_path = dir.join(format!(
            "{}{}.lua",
            case.kind.name(),
            if close { "-close" } else { "" }
        ));
        fs::write(&script_path, script(case.kind, addr, close))
            .with_context(|| format!("write {}", script_path.display()))?;
        let threads = self.threads.clamp(1, case.connections.max(1));
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-t")
            .arg(threads.to_string())
            .arg("-c")
            .arg(case.connections.to_string())
            .arg("-d")
            .arg(format!("{duration_s}s"))
            .args(["--timeout", "10s"])
            .arg("-s")
            .arg(&script_path)
            .arg(format!("http://{addr}{}", case.kind.path()));
        let (out, err) = run_tool("wrk", &mut cmd, self.cpus.clone(), duration_s + 30)?;
        let shown = proc::display(&cmd);
        parse_output(&out).with_context(|| format!("`{shown}` printed:\n{out}{err}"))
    }
}

/// Runs a load generator to its end (killed after `limit_s` seconds), its stdout and stderr
/// collected; a failure exit is an error carrying both.
pub(crate) fn run_tool(
    name: &str,
    cmd: &mut Command,
    cpus: Option<Vec<usize>>,
    limit_s: u64,
) -> Result<(String, String)> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let shown = proc::display(cmd);
    let mut guard = proc::Guard::spawn(name, cmd, cpus)?;
    let mut stdout = guard
        .child_mut()
        .stdout
        .take()
        .with_context(|| format!("{name} stdout"))?;
    let mut stderr = guard
        .child_mut()
        .stderr
        .take()
        .with_context(|| format!("{name} stderr"))?;
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(limit_s);
    let status = loop {
        if let Some(status) = guard.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            drop(guard);
            bail!("`{shown}` did not finish in time: killed");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        bail!("`{shown}` failed ({status}):\n{out}{err}");
    }
    Ok((out, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_done_line() -> Result<()> {
        let out = "Running 1s test\nRINGWAY_BENCH {\"requests\":10,\"duration_us\":1000000,\
                   \"bytes\":100,\"connect\":0,\"read\":1,\"write\":0,\"status\":0,\"timeout\":0,\
                   \"p50_us\":100,\"p99_us\":200,\"p999_us\":300,\"max_us\":400,\"mean_us\":120.5}\n";
        let w = parse_output(out)?;
        assert_eq!((w.requests, w.errors(), w.p999_us), (10, 1, 300));
        assert!((w.rps() - 10.0).abs() < 1e-9);
        Ok(())
    }

    #[test]
    fn case_specs_name_kinds_counts_and_the_tls_group() -> Result<()> {
        let one = |t: &str| CaseSpec::parse(t);
        assert_eq!(
            one("tls")?.iter().map(|s| s.kind).collect::<Vec<_>>(),
            Kind::TLS.to_vec()
        );
        assert_eq!(
            one("hello-c10")?,
            [CaseSpec {
                kind: Kind::Hello,
                connections: Some(10)
            }]
        );
        assert_eq!(
            one("tls-hello-c100")?,
            [CaseSpec {
                kind: Kind::TlsHello,
                connections: Some(100)
            }]
        );
        assert_eq!(
            one("tls-handshake-full")?,
            [CaseSpec {
                kind: Kind::TlsHandshakeFull,
                connections: None
            }]
        );
        assert_eq!(
            one("tls-h2-hello-c10")?,
            [CaseSpec {
                kind: Kind::TlsH2Hello,
                connections: Some(10)
            }]
        );
        assert!(one("tls-handshake-full-c4").is_err());
        assert!(one("hello-c0").is_err());
        let err = one("nope").expect_err("unknown case").to_string();
        assert!(err.contains("tls-handshake-resumed"), "{err}");
        Ok(())
    }

    #[test]
    fn tls_cases_carry_the_plain_requests() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        assert_eq!(
            raw_request(Kind::Tls64k, addr, false),
            raw_request(Kind::Bytes64k, addr, false)
        );
        assert_eq!(Kind::TlsHandshakeResumed.path(), "/");
        assert_eq!(Kind::TlsHello.expected_body(), b"Hello, World!");
        let case = Case {
            kind: Kind::TlsHandshakeFull,
            connections: 16,
        };
        assert_eq!(case.id(), "tls-handshake-full");
        let case = Case {
            kind: Kind::TlsHello,
            connections: 100,
        };
        assert_eq!(case.id(), "tls-hello-c100");
        let case = Case {
            kind: Kind::TlsH2Hello,
            connections: 10,
        };
        assert_eq!(case.id(), "tls-h2-hello-c10");
        assert_eq!(Kind::TlsH2Hello.path(), "/");
        assert_eq!(Kind::TlsH2Hello.expected_body(), b"Hello, World!");
    }

    /// Only the HTTP/2 case is on h2; every other TLS case must stay on HTTP/1.1 now that
    /// both servers offer h2.
    #[test]
    fn each_tls_case_names_its_application_protocol() {
        for kind in Kind::ALL {
            let want = match kind {
                Kind::TlsH2Hello => Some("h2"),
                _ if kind.is_tls() => Some("http/1.1"),
                _ => None,
            };
            assert_eq!(kind.alpn(), want, "{}", kind.name());
            assert_eq!(kind.is_h2(), kind == Kind::TlsH2Hello);
        }
        assert!(Kind::TLS.contains(&Kind::TlsH2Hello));
    }

    #[test]
    fn chunked_request_is_well_formed() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let raw = raw_request(Kind::Chunked, addr, false);
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("Transfer-Encoding: chunked\r\n\r\n1000\r\n"));
        assert!(text.ends_with("\r\n0\r\n\r\n"));
        assert!(!text.contains("Content-Length"));
        assert!(script(Kind::Chunked, addr, true).contains("Connection: close"));
    }

    /// wrk asks for what the probe checked: a compressed case's load accepts gzip too (a
    /// load without it measured uncompressed answers), and no other case's does.
    #[test]
    fn compressed_cases_accept_gzip_in_the_load_too() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        for kind in Kind::ALL {
            let asks = |text: &str| text.contains("Accept-Encoding: gzip");
            let raw = String::from_utf8_lossy(&raw_request(kind, addr, false)).into_owned();
            let lua = script(kind, addr, false).replace("\\r\\n", "\r\n");
            assert_eq!(asks(&raw), kind.is_compressed(), "{}: probe", kind.name());
            assert_eq!(asks(&lua), kind.is_compressed(), "{}: wrk", kind.name());
        }
    }

    #[test]
    fn static_files_are_distinct_and_on_the_route() -> Result<()> {
        let dir = crate::sys::TempDir::new("ringway-bench-load-test")?;
        write_static_files(dir.path())?;
        let mut bodies = vec![Kind::Bytes64k.expected_body()];
        for kind in Kind::STATIC {
            let (name, len) = kind.file().expect("a static kind has a file");
            assert_eq!(kind.path(), format!("{STATIC_ROUTE}{name}"));
            let body = kind.expected_body();
            assert_eq!(body.len(), len);
            assert_eq!(fs::read(dir.path().join(name))?, body, "{name}");
            assert!(!bodies.contains(&body), "{name} repeats another body");
            bodies.push(body);
            let raw = raw_request(kind, SocketAddr::from(([127, 0, 0, 1], 1)), false);
            assert!(raw.starts_with(format!("GET {} HTTP/1.1\r\n", kind.path()).as_bytes()));
            assert_eq!(Kind::parse(kind.name())?, kind);
        }
        assert!(!Kind::Bytes64k.is_static() && Kind::Static1m.is_static());
        Ok(())
    }
}
