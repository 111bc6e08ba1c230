//! The nginx `proxy_pass` parity harness: gunicorn serving `tests/apps/http_echo.py` (an app
//! that answers with what it received) on a free TCP port, and the ringway config that puts
//! an HTTP upstream group with a keep-alive pool in front of it. nginx's side is
//! [`crate::Nginx::start_proxy_pass`].

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::client::{Conn, Req};
use crate::paths;
use crate::wait::{poll_until, stop_child};

/// How long gunicorn may take to load the app and answer.
const START_LIMIT: Duration = Duration::from_secs(30);

/// gunicorn (threaded workers, so it keeps connections alive) serving the echo app; killed
/// with its workers and reaped on drop, temp dir removed.
pub struct EchoServer {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _dir: TempDir,
}

impl EchoServer {
    /// Starts gunicorn with one `gthread` worker of 4 threads on a free port of 127.0.0.1,
    /// keep-alive 75 s (longer than any test), access log off.
    pub fn start() -> EchoServer {
        let dir = tempfile::Builder::new()
            .prefix("ringway-echo-")
            .tempdir()
            .expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = dir.path().join("gunicorn.log");
        let gunicorn = paths::venv().join("bin/gunicorn");
        let mut child = Command::new(&gunicorn)
            .args([
                "--worker-class",
                "gthread",
                "--workers",
                "1",
                "--threads",
                "4",
            ])
            .args(["--keep-alive", "75", "--bind"])
            .arg(addr.to_string())
            .arg("--chdir")
            .arg(paths::apps_dir())
            .arg("http_echo:application")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("gunicorn log"))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", gunicorn.display()));
        let ready = poll_until(START_LIMIT, || {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            Conn::open_or_refused(addr).is_some_and(|mut conn| {
                conn.send(&Req::get("/status/200").to_bytes()).is_ok()
                    && conn.read_response().is_ok_and(|r| r.status == 200)
            })
        });
        let exited = matches!(child.try_wait(), Ok(Some(_)));
        if exited || !ready {
            stop_child(&mut child, libc::SIGKILL, Duration::from_secs(1), true);
            panic!(
                "gunicorn did not serve {addr} within {START_LIMIT:?}; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        EchoServer {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    /// Where gunicorn listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// gunicorn's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// ringway's config for an HTTP upstream group to this server with a pool of 32 idle
    /// connections (nginx's `keepalive 32`), served on `/`.
    pub fn ringway_config(&self) -> String {
        format!(
            "[upstreams.app]
servers = [\"http://{}\"]
keepalive = 32

[[routes]]
path = \"/\"
upstream = \"app\"
",
            self.addr
        )
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        // SIGTERM: gunicorn's graceful stop; then the group is SIGKILLed if a worker lingers.
        stop_child(&mut self.child, libc::SIGTERM, Duration::from_secs(5), true);
    }
}
