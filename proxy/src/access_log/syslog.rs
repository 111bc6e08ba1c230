//! Access log lines sent to a syslog server, as nginx's `access_log syslog:...` sends them:
//! one datagram per line, `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG: ` (RFC 3164's header) before
//! the line and no newline after it, over UDP or a unix datagram socket (`/dev/log`).
//!
//! A worker writes the header with the line (so the time is the request's, as nginx's), and
//! frames each line with its length, so that a line holding a newline stays one message.
//! The writer thread sends the frames from a non-blocking socket, a worker's batch at once:
//! a full socket (a daemon's queue, 10 datagrams by default outside the host's network
//! namespace) is waited on for [`SEND_BUDGET`] per batch at most, then the rest of the batch
//! is lost (counted), so a stuck server holds up the files the same thread writes only that
//! long.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

/// nginx's names, in the order of their codes (RFC 3164 §4.1.1).
const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "intern", "lpr", "news", "uucp", "clock", "authpriv",
    "ftp", "ntp", "audit", "alert", "cron", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];
/// nginx's names (`error` and `warn`, as in its configuration, not `err` and `warning`).
const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug",
];
const LOCAL7: u8 = 23;
const INFO: u8 = 6;
const DEFAULT_PORT: u16 = 514;
/// RFC 3164's bound on a tag, which nginx enforces.
const MAX_TAG: usize = 32;
/// The bytes before each framed line: its length.
const FRAME_HEAD: usize = 4;
/// How long a batch may wait for room in a full socket.
const SEND_BUDGET: Duration = Duration::from_millis(200);
/// A unix socket's path fits `sun_path` with its NUL.
const MAX_UNIX_PATH: usize = 107;

/// `syslog:server=ADDRESS[,facility=F][,severity=S][,tag=T][,nohostname]`, nginx's syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTarget {
    pub server: SyslogServer,
    pub facility: u8,
    pub severity: u8,
    pub tag: String,
    /// The machine's name in each header (nginx's default; `nohostname` leaves it out).
    pub hostname: bool,
}

/// Where a syslog server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogServer {
    /// `host[:port]` or `[v6]:port` (514 by default): UDP, resolved at start.
    Inet { host: String, port: u16 },
    /// `unix:/dev/log`: a unix datagram socket.
    Unix(PathBuf),
}

/// A server's address, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogAddr {
    Inet(SocketAddr),
    Unix(PathBuf),
}

impl FromStr for SyslogTarget {
    type Err = String;

    /// Parses what follows `syslog:`.
    fn from_str(params: &str) -> Result<SyslogTarget, String> {
        let (mut server, mut facility, mut severity, mut tag) = (None, None, None, None);
        let mut hostname = true;
        for param in params.split(',') {
            let duplicate = |name: &str| format!("syslog: {name} given twice");
            if let Some(address) = param.strip_prefix("server=") {
                if server.replace(parse_server(address)?).is_some() {
                    return Err(duplicate("server"));
                }
            } else if let Some(name) = param.strip_prefix("facility=") {
                if facility
                    .replace(code_of("facility", &FACILITIES, name)?)
                    .is_some()
                {
                    return Err(duplicate("facility"));
                }
            } else if let Some(name) = param.strip_prefix("severity=") {
                if severity
                    .replace(code_of("severity", &SEVERITIES, name)?)
                    .is_some()
                {
                    return Err(duplicate("severity"));
                }
            } else if let Some(name) = param.strip_prefix("tag=") {
                check_tag(name)?;
                if tag.replace(name.to_owned()).is_some() {
                    return Err(duplicate("tag"));
                }
            } else if param == "nohostname" {
                hostname = false;
            } else {
                return Err(format!(
                    "syslog: unknown parameter {param:?} (server=, facility=, severity=, tag=, \
                     nohostname)"
                ));
            }
        }
        Ok(SyslogTarget {
            server: server
                .ok_or("syslog: no server= given (server=127.0.0.1 or server=unix:/dev/log)")?,
            facility: facility.unwrap_or(LOCAL7),
            severity: severity.unwrap_or(INFO),
            tag: tag.unwrap_or_else(|| "nginx".to_owned()),
            hostname,
        })
    }
}

/// The code of `name` among `names` (a facility's, a severity's), as nginx spells them.
fn code_of(kind: &str, names: &[&str], name: &str) -> Result<u8, String> {
    let index = names.iter().position(|n| *n == name);
    index.and_then(|i| u8::try_from(i).ok()).ok_or_else(|| {
        format!(
            "syslog: unknown {kind} {name:?} (one of {})",
            names.join(", ")
        )
    })
}

/// RFC 3164: at most 32 alphanumeric characters (nginx takes `_` too).
fn check_tag(tag: &str) -> Result<(), String> {
    if tag.len() > MAX_TAG {
        return Err(format!(
            "syslog: tag {tag:?} is longer than {MAX_TAG} characters"
        ));
    }
    if !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!(
            "syslog: tag {tag:?} may hold letters, digits and _ only"
        ));
    }
    Ok(())
}

fn parse_server(address: &str) -> Result<SyslogServer, String> {
    if let Some(path) = address.strip_prefix("unix:") {
        let path = PathBuf::from(path);
        if !path.is_absolute() {
            return Err(format!(
                "syslog: server=unix:{} is not an absolute path",
                path.display()
            ));
        }
        if path.as_os_str().len() > MAX_UNIX_PATH {
            return Err(format!(
                "syslog: server=unix:{} is longer than a socket path may be ({MAX_UNIX_PATH} \
                 bytes)",
                path.display()
            ));
        }
        return Ok(SyslogServer::Unix(path));
    }
    let bad = || format!("syslog: server={address:?} is not host, host:port or [IPv6]:port");
    let (host, port) = match address.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
            }
        }
        None => match address.rsplit_once(':') {
            // A bare IPv6 address, as nginx takes it only in brackets.
            Some((host, _)) if host.contains(':') => return Err(bad()),
            Some((host, port)) => (host, Some(port)),
            None => (address, None),
        },
    };
    let port = match port {
        None => DEFAULT_PORT,
        // Digits only, as nginx's: `+514` is not a port.
        Some(port) if port.bytes().all(|b| b.is_ascii_digit()) => port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(bad)?,
        Some(_) => return Err(bad()),
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(bad());
    }
    Ok(SyslogServer::Inet {
        host: host.to_owned(),
        port,
    })
}

impl SyslogTarget {
    /// The server's address: a name resolved now (when the configuration is read), its
    /// first address taken, as nginx's (`AI_ADDRCONFIG`: `localhost` is 127.0.0.1 on a
    /// host without IPv6).
    pub fn resolve(&self) -> io::Result<SyslogAddr> {
        match &self.server {
            SyslogServer::Unix(path) => Ok(SyslogAddr::Unix(path.clone())),
            SyslogServer::Inet { host, port } => crate::config::system_lookup(host, *port)
                .map_err(io::Error::other)?
                .into_iter()
                .next()
                .map(SyslogAddr::Inet)
                .ok_or_else(|| io::Error::other(format!("{host} has no address"))),
        }
    }

    /// `<PRI>`, the part of the header before the time.
    fn priority(&self) -> Vec<u8> {
        format!(
            "<{}>",
            u16::from(self.facility) * 8 + u16::from(self.severity)
        )
        .into_bytes()
    }
}

impl fmt::Display for SyslogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.server {
            SyslogServer::Unix(path) => write!(f, "syslog:server=unix:{}", path.display())?,
            SyslogServer::Inet { host, port } if host.contains(':') => {
                write!(f, "syslog:server=[{host}]:{port}")?;
            }
            SyslogServer::Inet { host, port } => write!(f, "syslog:server={host}:{port}")?,
        }
        let names = |list: &[&'static str], code: u8| list.get(usize::from(code)).copied();
        if let Some(name) = names(&FACILITIES, self.facility).filter(|_| self.facility != LOCAL7) {
            write!(f, ",facility={name}")?;
        }
        if let Some(name) = names(&SEVERITIES, self.severity).filter(|_| self.severity != INFO) {
            write!(f, ",severity={name}")?;
        }
        if self.tag != "nginx" {
            write!(f, ",tag={}", self.tag)?;
        }
        if !self.hostname {
            f.write_str(",nohostname")?;
        }
        Ok(())
    }
}

impl fmt::Display for SyslogAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyslogAddr::Inet(addr) => write!(f, "syslog {addr}"),
            SyslogAddr::Unix(path) => write!(f, "syslog unix:{}", path.display()),
        }
    }
}

/// The fixed parts of a place's header, made once: a worker adds the time between them.
#[derive(Debug, Clone)]
pub(super) struct SyslogHeader {
    /// `<190>`.
    priority: Vec<u8>,
    /// ` web-1 nginx: ` (or ` nginx: ` without the host name).
    after_time: Vec<u8>,
}

impl SyslogHeader {
    pub(super) fn new(target: &SyslogTarget, hostname: &str) -> SyslogHeader {
        let mut after_time = Vec::with_capacity(hostname.len() + target.tag.len() + 4);
        after_time.push(b' ');
        if target.hostname {
            after_time.extend_from_slice(hostname.as_bytes());
            after_time.push(b' ');
        }
        after_time.extend_from_slice(target.tag.as_bytes());
        after_time.extend_from_slice(b": ");
        SyslogHeader {
            priority: target.priority(),
            after_time,
        }
    }

    /// Starts a framed line in `buf`: room for its length, then the header with `time`
    /// (`Dec  8 00:56:02`). Returns where the frame starts, for [`end_frame`].
    pub(super) fn begin_frame(&self, buf: &mut Vec<u8>, time: &[u8]) -> usize {
        let start = buf.len();
        buf.extend_from_slice(&[0; FRAME_HEAD]);
        buf.extend_from_slice(&self.priority);
        buf.extend_from_slice(time);
        buf.extend_from_slice(&self.after_time);
        start
    }
}

/// Ends the frame begun at `start`: the line's newline goes (a datagram is one message),
/// its length is written before it. A line too long for a datagram is cut to fit.
pub(super) fn end_frame(buf: &mut Vec<u8>, start: usize) {
    if buf.last() == Some(&b'\n') {
        buf.pop();
    }
    let body = start + FRAME_HEAD;
    if buf.len() - body > MAX_DATAGRAM {
        buf.truncate(body + MAX_DATAGRAM);
    }
    let len = u32::try_from(buf.len() - body).unwrap_or(0);
    if let Some(head) = buf.get_mut(start..body) {
        head.copy_from_slice(&len.to_le_bytes());
    }
}

/// The largest UDP payload over IPv6 or IPv4 (65535 less the headers).
const MAX_DATAGRAM: usize = 65_507;

/// The framed lines of a batch, in order.
fn frames(mut buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (head, rest) = buf.split_first_chunk::<FRAME_HEAD>()?;
        let len = usize::try_from(u32::from_le_bytes(*head)).ok()?;
        let (frame, rest) = rest.split_at_checked(len)?;
        buf = rest;
        Some(frame)
    })
}

/// The writer's socket to one server, connected when first used and again after a
/// failure (a syslog daemon restarted makes a new `/dev/log`), as nginx's.
pub(super) struct SyslogSocket {
    addr: SyslogAddr,
    socket: Option<Socket>,
    /// How long a batch may wait for room ([`SEND_BUDGET`]).
    budget: Duration,
}

/// What became of a batch sent to syslog.
pub(super) struct Sent {
    /// Lines lost (not sent whole).
    pub(super) dropped: u64,
    /// The first failure, if any.
    pub(super) error: Option<io::Error>,
}

impl SyslogSocket {
    pub(super) fn new(addr: SyslogAddr) -> SyslogSocket {
        SyslogSocket {
            addr,
            socket: None,
            budget: SEND_BUDGET,
        }
    }

    /// Sends each framed line of `batch` as a datagram. A full socket is waited on for
    /// room, within [`SEND_BUDGET`] for the whole batch; a failed send is tried once more on
    /// a new socket (a UDP server's ICMP error from an earlier line, a daemon restarted with
    /// a new `/dev/log`). Past either, the rest of the batch is lost with the line: a server
    /// that is down costs a connect or two per batch, not per line.
    pub(super) fn send(&mut self, batch: &[u8]) -> Sent {
        let deadline = Instant::now() + self.budget;
        let mut sent = Sent {
            dropped: 0,
            error: None,
        };
        let mut lines = frames(batch);
        for line in lines.by_ref() {
            if let Err(err) = self.send_line(line, deadline) {
                sent.dropped += 1;
                sent.error = Some(err);
                break;
            }
        }
        sent.dropped += lines.count() as u64;
        sent
    }

    fn send_line(&mut self, line: &[u8], deadline: Instant) -> io::Result<()> {
        let mut retried = false;
        loop {
            let socket = match self.socket.as_ref() {
                Some(socket) => socket,
                None => self.socket.insert(connect(&self.addr)?),
            };
            // A datagram goes whole or not at all.
            let err = match socket.send(line) {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            match err.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => {
                    if !writable_before(socket, deadline) {
                        return Err(err);
                    }
                }
                _ if retried => {
                    self.socket = None;
                    return Err(err);
                }
                _ => {
                    self.socket = None;
                    retried = true;
                }
            }
        }
    }

    pub(super) fn addr(&self) -> &SyslogAddr {
        &self.addr
    }
}

/// Waits until `socket` has room for a datagram, or `deadline` passes.
fn writable_before(socket: &Socket, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut poll = libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // Rounded up: poll's milliseconds would otherwise end the wait before the deadline.
        let millis = left.as_micros().div_ceil(1000);
        let millis = libc::c_int::try_from(millis).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd, for the duration of the call; the fd is the socket's.
        match unsafe { libc::poll(&mut poll, 1, millis) } {
            n if n > 0 => return true,
            // Timed out: the loop looks at the deadline again.
            0 => {}
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return false,
        }
    }
}

fn connect(addr: &SyslogAddr) -> io::Result<Socket> {
    let (domain, to) = match addr {
        SyslogAddr::Inet(addr) => (Domain::for_address(*addr), SockAddr::from(*addr)),
        SyslogAddr::Unix(path) => (Domain::UNIX, SockAddr::unix(path)?),
    };
    let socket = Socket::new(domain, Type::DGRAM.cloexec(), None)?;
    socket.set_nonblocking(true)?;
    socket.connect(&to)?;
    Ok(socket)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::unix::net::UnixDatagram;

    fn target(s: &str) -> SyslogTarget {
        s.parse().unwrap()
    }

    #[test]
    fn nginx_s_parameters_and_defaults() {
        let t = target("server=127.0.0.1");
        assert_eq!(
            t.server,
            SyslogServer::Inet {
                host: "127.0.0.1".into(),
                port: 514
            }
        );
        assert_eq!(
            (t.facility, t.severity, t.tag.as_str(), t.hostname),
            (23, 6, "nginx", true)
        );
        assert_eq!(t.priority(), b"<190>");
        let t = target("server=[::1]:5514,facility=local0,severity=notice,tag=web_1,nohostname");
        assert_eq!(
            t.server,
            SyslogServer::Inet {
                host: "::1".into(),
                port: 5514
            }
        );
        assert_eq!(
            (t.facility, t.severity, t.tag.as_str(), t.hostname),
            (16, 5, "web_1", false)
        );
        assert_eq!(t.priority(), b"<133>");
        assert_eq!(
            target("server=unix:/dev/log").server,
            SyslogServer::Unix("/dev/log".into())
        );
        assert_eq!(
            target("tag=x,server=logs.internal:1514").to_string(),
            "syslog:server=logs.internal:1514,tag=x"
        );
        let t = target("server=[::1]:514,facility=kern,severity=emerg,nohostname");
        assert_eq!(
            t.to_string(),
            "syslog:server=[::1]:514,facility=kern,severity=emerg,nohostname"
        );
        assert_eq!(t.priority(), b"<0>");
    }

    #[test]
    fn what_nginx_refuses_is_refused() {
        for bad in [
            "",
            "facility=local7",
            "server=127.0.0.1,server=127.0.0.2",
            "server=127.0.0.1,facility=local8",
            "server=127.0.0.1,facility=LOCAL7",
            "server=127.0.0.1,severity=warning",
            "server=127.0.0.1,tag=a-b",
            "server=127.0.0.1,tag=a23456789012345678901234567890123",
            "server=127.0.0.1,tag=x,tag=y",
            "server=127.0.0.1,bogus",
            "server=127.0.0.1:0",
            "server=127.0.0.1:65536",
            "server=::1",
            "server=[::1",
            "server=[::1]x",
            "server=unix:dev/log",
            "server=127.0.0.1:+514",
            "server=",
        ] {
            assert!(bad.parse::<SyslogTarget>().is_err(), "{bad:?} was taken");
        }
        assert!(
            "server=127.0.0.1,tag=a2345678901234567890123456789012"
                .parse::<SyslogTarget>()
                .is_ok()
        );
    }

    #[test]
    fn a_framed_line_is_its_header_and_line_without_the_newline() {
        let header = SyslogHeader::new(&target("server=127.0.0.1,tag=app"), "web-1");
        let mut buf = Vec::new();
        let start = header.begin_frame(&mut buf, b"Dec  8 00:56:02");
        buf.extend_from_slice(b"GET / 200\n");
        end_frame(&mut buf, start);
        let start = header.begin_frame(&mut buf, b"Dec  8 00:56:03");
        buf.extend_from_slice(b"two\nlines\n");
        end_frame(&mut buf, start);
        let got: Vec<&[u8]> = frames(&buf).collect();
        assert_eq!(
            got,
            [
                &b"<190>Dec  8 00:56:02 web-1 app: GET / 200"[..],
                b"<190>Dec  8 00:56:03 web-1 app: two\nlines"
            ]
        );
        let header = SyslogHeader::new(&target("server=127.0.0.1,nohostname"), "web-1");
        let mut buf = Vec::new();
        let start = header.begin_frame(&mut buf, b"Dec  8 00:56:02");
        end_frame(&mut buf, start);
        assert_eq!(
            frames(&buf).collect::<Vec<_>>(),
            [b"<190>Dec  8 00:56:02 nginx: "]
        );
    }

    #[test]
    fn a_line_too_long_for_a_datagram_is_cut_to_fit() {
        let header = SyslogHeader::new(&target("server=127.0.0.1"), "h");
        let mut buf = Vec::new();
        let start = header.begin_frame(&mut buf, b"Dec  8 00:56:02");
        buf.resize(buf.len() + 70_000, b'a');
        end_frame(&mut buf, start);
        let got: Vec<&[u8]> = frames(&buf).collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len(), MAX_DATAGRAM);
    }

    fn batch(lines: &[&str]) -> Vec<u8> {
        let header = SyslogHeader::new(&target("server=127.0.0.1"), "h");
        let mut buf = Vec::new();
        for line in lines {
            let start = header.begin_frame(&mut buf, b"Dec  8 00:56:02");
            buf.extend_from_slice(line.as_bytes());
            end_frame(&mut buf, start);
        }
        buf
    }

    #[test]
    fn each_line_is_one_datagram_over_udp_and_unix_sockets() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut socket = SyslogSocket::new(SyslogAddr::Inet(server.local_addr().unwrap()));
        let sent = socket.send(&batch(&["one\n", "two\n"]));
        assert_eq!((sent.dropped, sent.error.is_none()), (0, true));
        let mut got = [0u8; 128];
        for want in [
            "<190>Dec  8 00:56:02 h nginx: one",
            "<190>Dec  8 00:56:02 h nginx: two",
        ] {
            let n = server.recv(&mut got).unwrap();
            assert_eq!(std::str::from_utf8(&got[..n]).unwrap(), want);
        }

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let mut socket = SyslogSocket::new(SyslogAddr::Unix(path.clone()));
        assert_eq!(socket.send(&batch(&["one\n"])).dropped, 0);
        let n = server.recv(&mut got).unwrap();
        assert_eq!(&got[..n], b"<190>Dec  8 00:56:02 h nginx: one");
        // The daemon restarts: the old socket is gone, a new one takes its path.
        drop(server);
        std::fs::remove_file(&path).unwrap();
        let sent = socket.send(&batch(&["lost\n", "lost too\n"]));
        assert_eq!(sent.dropped, 2);
        assert!(sent.error.is_some());
        let server = UnixDatagram::bind(&path).unwrap();
        assert_eq!(socket.send(&batch(&["back\n"])).dropped, 0);
        let n = server.recv(&mut got).unwrap();
        assert_eq!(&got[..n], b"<190>Dec  8 00:56:02 h nginx: back");
    }

    /// A burst bigger than the daemon's queue (10 datagrams by default) waits for it to
    /// read, within the budget (found by review: the lines past the queue were lost);
    /// a daemon that reads nothing costs the batch's rest once the budget is spent.
    #[test]
    fn a_burst_waits_for_a_daemon_that_reads_and_not_for_one_that_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let lines: Vec<String> = (0..1000).map(|i| format!("line {i}\n")).collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let reader = std::thread::spawn(move || {
            let mut got = [0u8; 128];
            (0..1000).all(|i| {
                let n = server.recv(&mut got).unwrap();
                got[..n].ends_with(format!(": line {i}").as_bytes())
            })
        });
        let mut socket = SyslogSocket::new(SyslogAddr::Unix(path.clone()));
        // Room to wait in, for a reader that a loaded machine schedules late.
        socket.budget = Duration::from_secs(30);
        let sent = socket.send(&batch(&lines));
        assert_eq!(sent.dropped, 0, "{:?}", sent.error);
        assert!(reader.join().unwrap(), "every line, in order");

        let path = dir.path().join("deaf");
        let _deaf = UnixDatagram::bind(&path).unwrap();
        let mut socket = SyslogSocket::new(SyslogAddr::Unix(path));
        let started = Instant::now();
        let sent = socket.send(&batch(&lines));
        let took = started.elapsed();
        assert!(sent.dropped > 0 && sent.dropped < 1000, "{}", sent.dropped);
        assert_eq!(
            sent.error.map(|e| e.kind()),
            Some(io::ErrorKind::WouldBlock)
        );
        assert!(
            took >= SEND_BUDGET && took < Duration::from_secs(5),
            "{took:?}"
        );
    }

    #[test]
    fn a_socket_path_longer_than_sun_path_is_refused() {
        let long = format!("server=unix:/{}", "a".repeat(MAX_UNIX_PATH));
        assert!(long.parse::<SyslogTarget>().is_err());
        let fits = format!("server=unix:/{}", "a".repeat(MAX_UNIX_PATH - 1));
        assert!(fits.parse::<SyslogTarget>().is_ok());
    }

    #[test]
    fn a_server_that_is_not_there_loses_the_batch_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut socket = SyslogSocket::new(SyslogAddr::Unix(dir.path().join("none")));
        let sent = socket.send(&batch(&["a\n", "b\n", "c\n"]));
        assert_eq!(sent.dropped, 3);
        assert_eq!(sent.error.map(|e| e.kind()), Some(io::ErrorKind::NotFound));
    }
}
