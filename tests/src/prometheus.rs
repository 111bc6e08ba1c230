//! A real Prometheus (Debian's `prometheus`) scraping one target every second, with the rules
//! of `deploy/prometheus/` loaded: its config and storage in a temp dir, on a free port,
//! killed and reaped on drop. Queries go through its HTTP API.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::client::{Conn, Req, Response};
use crate::paths;
use crate::tls::tool;
use crate::wait::{poll_until, stop_child};

const START_LIMIT: Duration = Duration::from_secs(30);
/// Tries when another process takes the free port between our probe and Prometheus's bind.
const PORT_TRIES: usize = 3;
/// The job name the scrape config gives the target (the alerts select `job=~".*ringway.*"`).
pub const JOB: &str = "ringway";

/// A running Prometheus.
pub struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

/// `deploy/prometheus/`.
pub fn rules_dir() -> PathBuf {
    paths::workspace_root().join("deploy").join("prometheus")
}

impl Prometheus {
    /// Starts Prometheus scraping `target`'s `/metrics` every second, evaluating the rules of
    /// `deploy/prometheus/ringway.rules.yaml` every second.
    pub fn start(target: SocketAddr) -> Prometheus {
        let mut last_log = String::new();
        for _ in 0..PORT_TRIES {
            match Prometheus::try_start(target) {
                Ok(prometheus) => return prometheus,
                Err(log) => last_log = log,
            }
        }
        panic!("prometheus did not start after {PORT_TRIES} tries; last log:\n{last_log}");
    }

    fn try_start(target: SocketAddr) -> Result<Prometheus, String> {
        let dir = tempfile::Builder::new()
            .prefix("ringway-prometheus-")
            .tempdir()
            .expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let conf = dir.path().join("prometheus.yml");
        let rules = rules_dir().join("ringway.rules.yaml");
        fs::write(
            &conf,
            format!(
                "global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}
scrape_configs:
  - job_name: {JOB}
    static_configs:
      - targets: ['{target}']
",
                rules = rules.display()
            ),
        )
        .expect("write prometheus.yml");
        let log = dir.path().join("prometheus.log");
        let mut child = Command::new(tool("prometheus", "prometheus"))
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("prometheus log"))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning prometheus: {e}"));
        let mut exited = false;
        let ready = poll_until(START_LIMIT, || {
            if let Ok(Some(_)) = child.try_wait() {
                exited = true;
                return true;
            }
            get(addr, "/-/ready").is_ok_and(|r| r.status == 200)
        });
        if exited || !ready {
            stop_child(&mut child, libc::SIGKILL, Duration::from_secs(1), true);
            return Err(fs::read_to_string(&log).unwrap_or_default());
        }
        Ok(Prometheus { child, addr, dir })
    }

    /// An instant query through `/api/v1/query`: the `data` of the answer, or the error
    /// Prometheus gave.
    pub fn query(&self, promql: &str) -> Result<Value, String> {
        let target = format!("/api/v1/query?query={}", percent_encode(promql));
        let r = get(self.addr, &target).map_err(|e| format!("query {promql:?}: {e}"))?;
        let answer = r.json();
        if r.status != 200 || answer["status"] != "success" {
            return Err(format!(
                "query {promql:?}: {} {}",
                r.status,
                answer["error"].as_str().unwrap_or(&r.text())
            ));
        }
        Ok(answer["data"].clone())
    }

    /// The scrape targets' health, as `/api/v1/targets` lists them.
    pub fn targets(&self) -> Value {
        let r = get(self.addr, "/api/v1/targets").expect("GET /api/v1/targets");
        r.json()
    }

    /// Prometheus's log so far (for messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        stop_child(&mut self.child, libc::SIGTERM, Duration::from_secs(5), true);
    }
}

/// A GET to Prometheus; an error (not a panic) while nothing listens yet.
fn get(addr: SocketAddr, target: &str) -> io::Result<Response> {
    let mut conn = Conn::new(TcpStream::connect(addr)?);
    conn.send(&Req::get(target).to_bytes())?;
    conn.read_response()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The samples of a query's `data` that hold a number (not NaN, not ±Inf): instant vectors
/// and scalars alike.
pub fn finite_values(data: &Value) -> Vec<f64> {
    let number = |pair: &Value| pair.get(1)?.as_str()?.parse::<f64>().ok();
    let values: Vec<f64> = match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .map(|r| r.iter().filter_map(|s| number(&s["value"])).collect())
            .unwrap_or_default(),
        Some("scalar") => number(&data["result"]).into_iter().collect(),
        _ => Vec::new(),
    };
    values.into_iter().filter(|v| v.is_finite()).collect()
}
