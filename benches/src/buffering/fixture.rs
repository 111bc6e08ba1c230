//! One scenario's setting at one stack: a fresh uWSGI and a fresh proxy in front of it, in a
//! directory of their own, so that uWSGI's log and the proxy's memory belong to that run
//! alone.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::uwsgi_log::UwsgiLog;
use crate::client;
use crate::stacks::{App, AppServer, Stack, StackKind, Tools};
use crate::sys;

/// Checked through the proxy before the scenario: several /lazy pieces and a partial one.
const PROBE_LAZY_BYTES: usize = 200_000;
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Fixture {
    pub stack: Stack,
    app: AppServer,
    dir: PathBuf,
}

impl Fixture {
    /// Starts uWSGI and the proxy under `scratch/<name>-<stack>` and probes them.
    pub fn start(
        tools: &Tools,
        app: &App,
        scratch: &Path,
        name: &str,
        kind: StackKind,
    ) -> Result<Fixture> {
        let dir = scratch.join(format!("{name}-{kind}"));
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let server = AppServer::start(tools, app, &dir)?;
        let stack = Stack::start(kind, tools, app, &server, &dir)?;
        let fixture = Fixture {
            stack,
            app: server,
            dir,
        };
        fixture.probe().with_context(|| {
            format!(
                "{kind} failed its probe; its log:\n{}\nuWSGI's log:\n{}",
                fixture.stack.log_tail(),
                fixture.app.log_tail()
            )
        })?;
        Ok(fixture)
    }

    pub fn addr(&self) -> SocketAddr {
        self.stack.addr
    }

    /// The proxy's processes now (nginx's workers are forked after it listens).
    pub fn proxy_pids(&mut self) -> Result<Vec<u32>> {
        self.stack.refresh_pids()?;
        Ok(self.stack.proxy_pids.clone())
    }

    /// The proxy's RSS now, summed over its processes.
    pub fn rss(&mut self) -> Result<u64> {
        Ok(sys::rss_sum(&self.proxy_pids()?))
    }

    /// Stops the proxy, then uWSGI, and reads uWSGI's log.
    pub fn finish(self) -> UwsgiLog {
        let log = self.app.log_path().to_path_buf();
        drop(self.stack);
        // Its log is unbuffered (written by the workers as they go): nothing is lost.
        if let Err(err) = self.app.kill() {
            eprintln!("bench: stopping uWSGI: {err:#}");
        }
        let counts = UwsgiLog::read(&log);
        // The directory held nginx's temp paths: nothing of it is needed any more.
        let _ = fs::remove_dir_all(&self.dir);
        counts
    }

    fn probe(&self) -> Result<()> {
        let addr = self.addr();
        let mut conn = client::connect(addr, PROBE_TIMEOUT)?;
        let hello = client::exchange(
            &mut conn,
            format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
        )?;
        if hello.status != 200 || hello.body != b"Hello, World!" {
            bail!("GET /: status {}", hello.status);
        }
        let lazy = client::exchange(
            &mut conn,
            format!("GET /lazy/{PROBE_LAZY_BYTES} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
        )?;
        let pattern = (0..PROBE_LAZY_BYTES).map(|i| (i % 251) as u8);
        if lazy.status != 200 || !lazy.body.iter().copied().eq(pattern) {
            bail!(
                "GET /lazy/{PROBE_LAZY_BYTES}: status {}, {} bytes not the app's pattern \
                 (an app without the /lazy route?)",
                lazy.status,
                lazy.body.len()
            );
        }
        Ok(())
    }
}
