//! HAProxy as the load balancer in front of ringway (Debian's `haproxy`): its config in a
//! temp dir, run in the foreground on a free port, killed and reaped on drop. The ways a load
//! balancer tells ringway who the client is: `mode tcp` with `send-proxy-v2` (a PROXY
//! protocol header), and `mode http` with `option forwardfor` (X-Forwarded-For) or setting
//! X-Real-IP.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::tls::tool;
use crate::wait::{poll_until, stop_child};

const START_LIMIT: Duration = Duration::from_secs(10);
/// Tries when another process takes the free port between our probe and HAProxy's bind.
const PORT_TRIES: usize = 3;

/// How HAProxy passes connections on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `mode tcp`, each connection to the server starting with a PROXY v2 header.
    TcpProxyV2,
    /// `mode http` with `option forwardfor`: each request gets the client's address
    /// appended to X-Forwarded-For.
    HttpForwardFor,
    /// `mode http` setting X-Real-IP to the client's address (`http-request set-header`),
    /// replacing any the client sent.
    HttpRealIp,
    /// `mode http` as a TLS-terminating balancer's plain port: X-Forwarded-Proto set to
    /// `http`, replacing any the client sent, and `option forwardfor`.
    HttpPlainPort,
}

/// A running HAProxy.
pub struct Haproxy {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Haproxy {
    /// Starts HAProxy on a free loopback port, passing every connection to `server` as
    /// `mode` says.
    pub fn start(mode: Mode, server: SocketAddr) -> Haproxy {
        let mut last_log = String::new();
        for _ in 0..PORT_TRIES {
            match Haproxy::try_start(mode, server) {
                Ok(haproxy) => return haproxy,
                Err(log) => last_log = log,
            }
        }
        panic!("haproxy did not start after {PORT_TRIES} tries; last log:\n{last_log}");
    }

    fn try_start(mode: Mode, server: SocketAddr) -> Result<Haproxy, String> {
        let dir = tempfile::Builder::new()
            .prefix("ringway-haproxy-")
            .tempdir()
            .expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let conf = dir.path().join("haproxy.cfg");
        fs::write(&conf, config(mode, addr, server)).expect("write haproxy.cfg");
        let log = dir.path().join("haproxy.log");
        let mut child = Command::new(tool("haproxy", "haproxy"))
            .arg("-db")
            .arg("-f")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).expect("haproxy log"))
            .stderr(fs::File::create(dir.path().join("stderr.log")).expect("haproxy log"))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning haproxy: {e}"));
        let mut exited = false;
        // HAProxy binds before it serves: once a connect succeeds it accepts.
        let ready = poll_until(START_LIMIT, || {
            if let Ok(Some(_)) = child.try_wait() {
                exited = true;
                return true;
            }
            TcpStream::connect(addr).is_ok()
        });
        if exited || !ready {
            stop_child(&mut child, libc::SIGKILL, Duration::from_secs(1), true);
            let read = |name: &str| fs::read_to_string(dir.path().join(name)).unwrap_or_default();
            return Err(format!("{}{}", read("haproxy.log"), read("stderr.log")));
        }
        Ok(Haproxy { child, addr, dir })
    }

    /// Where HAProxy listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// HAProxy's output so far (for messages).
    pub fn log(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("haproxy.log"), read("stderr.log"))
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        stop_child(&mut self.child, libc::SIGTERM, Duration::from_secs(5), true);
    }
}

/// haproxy.cfg: one frontend on `addr`, one backend with `server`.
fn config(mode: Mode, addr: SocketAddr, server: SocketAddr) -> String {
    let (mode, forward, send) = match mode {
        Mode::TcpProxyV2 => ("tcp", "", "send-proxy-v2"),
        Mode::HttpForwardFor => ("http", "option forwardfor", ""),
        Mode::HttpRealIp => ("http", "http-request set-header X-Real-IP %[src]", ""),
        Mode::HttpPlainPort => (
            "http",
            "option forwardfor\n    http-request set-header X-Forwarded-Proto http",
            "",
        ),
    };
    format!(
        "global
    maxconn 256

defaults
    mode {mode}
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend fe
    bind {addr}
    {forward}
    default_backend be

backend be
    server ringway {server} {send}
"
    )
}
