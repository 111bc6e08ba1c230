//! h2load (Debian's `nghttp2-client`) for the keep-alive TLS cases, in HTTP/1.1 (`--h1`),
//! and for the HTTP/2 case in its own mode (ALPN `h2`, [`H2_STREAMS`] streams in flight per
//! connection).
//!
//! Why h2load there and not wrk, which also speaks https: the two load the servers alike
//! (both are OpenSSL epoll clients; on this machine they drove the same req/s at the same
//! client CPU per request), but h2load takes the client's TLS 1.3 suite and groups on its
//! command line and prints what each run negotiated (protocol, cipher, key exchange), so
//! the report can show that ringway and nginx were measured on the same suite. wrk takes
//! no cipher option and says nothing of the session. h2load prints no latency percentiles:
//! its `--log-file` (one line per request: start, status, µs to the end of the answer) gives
//! them. Like wrk it is closed-loop (coordinated omission: read p99 as "under saturation").
//!
//! Both servers offer h2 and http/1.1: `--h1` makes h2load offer http/1.1 only, and without
//! it h2load offers h2 first but falls back to HTTP/1.1 if the server picks that. Every run
//! is therefore checked against the application protocol h2load says it negotiated.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::load::{Case, H2_STREAMS, WrkOutput, run_tool};
use crate::proc;
use crate::tls::{CIPHER_SUITE, GROUP, SERVER_NAME, TlsSeen};

/// How to run h2load.
#[derive(Debug, Clone)]
pub struct H2load {
    pub bin: PathBuf,
    pub threads: usize,
    pub cpus: Option<Vec<usize>>,
}

impl H2load {
    /// The command for one load: `case.connections` keep-alive TLS connections to `addr`
    /// for `duration_s` seconds, one request in flight on each (HTTP/1.1), or
    /// [`H2_STREAMS`] (HTTP/2).
    pub fn command(&self, case: Case, addr: SocketAddr, duration_s: u64, log: &Path) -> Command {
        let threads = self.threads.clamp(1, case.connections.max(1));
        let mut cmd = Command::new(&self.bin);
        if case.kind.is_h2() {
            cmd.arg("-m").arg(H2_STREAMS.to_string());
        } else {
            cmd.arg("--h1");
        }
        cmd.arg("-c")
            .arg(case.connections.to_string())
            .arg("-t")
            .arg(threads.to_string())
            .arg("-D")
            .arg(format!("{duration_s}s"))
            .arg(format!("--tls13-ciphers={CIPHER_SUITE}"))
            .arg(format!("--groups={GROUP}"))
            // The certificate's name for SNI and Host, the address to connect to.
            .arg(format!("--connect-to={addr}"))
            .arg("--log-file")
            .arg(log)
            .arg(format!(
                "https://{SERVER_NAME}:{}{}",
                addr.port(),
                case.kind.path()
            ));
        cmd
    }

    /// Runs one load, bounded by a watchdog; an error if it was not run on the case's
    /// application protocol.
    pub fn run(
        &self,
        case: Case,
        addr: SocketAddr,
        duration_s: u64,
        dir: &Path,
    ) -> Result<(WrkOutput, TlsSeen)> {
        let log = dir.join(format!("h2load-{}.log", case.id()));
        let mut cmd = self.command(case, addr, duration_s, &log);
        let shown = proc::display(&cmd);
        let (out, err) = run_tool("h2load", &mut cmd, self.cpus.clone(), duration_s + 30)?;
        let log_text = fs::read_to_string(&log).unwrap_or_default();
        let _ = fs::remove_file(&log);
        let (output, seen) =
            parse(&out, &log_text).with_context(|| format!("`{shown}` printed:\n{out}{err}"))?;
        if let Some(alpn) = case.kind.alpn() {
            seen.expect_alpn(alpn)
                .with_context(|| format!("`{shown}` printed:\n{out}{err}"))?;
        }
        Ok((output, seen))
    }
}

/// h2load's summary and per-request log, as wrk's figures and the negotiated session.
pub fn parse(stdout: &str, log: &str) -> Result<(WrkOutput, TlsSeen)> {
    let field = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .map(str::trim)
    };
    let seen = TlsSeen {
        protocol: field("TLS Protocol:").unwrap_or("?").to_owned(),
        cipher: field("Cipher:").unwrap_or("?").to_owned(),
        group: field("Server Temp Key:")
            .and_then(|k| k.split_whitespace().next())
            .unwrap_or("?")
            .to_owned(),
        handshakes: None,
        resumed: None,
        // Application protocol: h2
        alpn: field("Application protocol:").map(str::to_owned),
    };
    // finished in 5.01s, 24450.20 req/s, 3.08MB/s
    let finished = field("finished in").context("h2load printed no `finished in` line")?;
    let duration_us = finished
        .split(',')
        .next()
        .and_then(parse_duration_us)
        .with_context(|| format!("h2load's duration in {finished:?}"))?;
    // requests: 126492 total, 126492 started, 126492 done, 126492 succeeded, 0 failed, 0 errored, 0 timeout
    let requests = field("requests:").context("h2load printed no `requests:` line")?;
    let count = |what: &str| counted(requests, what);
    // status codes: 126492 2xx, 0 3xx, 0 4xx, 0 5xx
    let statuses = field("status codes:").unwrap_or("");
    let bad_status = counted(statuses, "4xx").unwrap_or(0) + counted(statuses, "5xx").unwrap_or(0);
    // traffic: 15.92MB (16696944) total, ...
    let bytes = field("traffic:")
        .and_then(|t| t.split_once('(')?.1.split_once(')')?.0.parse::<u64>().ok())
        .unwrap_or(0);
    let done = count("done").context("h2load's `done` count")?;
    let failed = count("failed").unwrap_or(0);
    let timeout = count("timeout").unwrap_or(0);

    let mut latencies: Vec<u64> = log
        .lines()
        .filter_map(|line| {
            let mut cols = line.split('\t');
            let _start = cols.next()?;
            let status: i32 = cols.next()?.trim().parse().ok()?;
            let us: u64 = cols.next()?.trim().parse().ok()?;
            (status > 0).then_some(us)
        })
        .collect();
    latencies.sort_unstable();
    if done > 0 && latencies.is_empty() {
        bail!("h2load's --log-file has no request in it");
    }
    let pct = |q: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        let rank = (q * (latencies.len() - 1) as f64).round() as usize;
        latencies[rank.min(latencies.len() - 1)]
    };
    let mean_us = if latencies.is_empty() {
        0.0
    } else {
        latencies.iter().sum::<u64>() as f64 / latencies.len() as f64
    };
    let output = WrkOutput {
        requests: done.saturating_sub(failed),
        duration_us,
        bytes,
        connect: 0,
        read: failed.saturating_sub(timeout),
        write: 0,
        status: bad_status,
        timeout,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        p999_us: pct(0.999),
        max_us: latencies.last().copied().unwrap_or(0),
        mean_us,
    };
    Ok((output, seen))
}

/// The number before `what` in h2load's `N what, M other` lists.
fn counted(list: &str, what: &str) -> Option<u64> {
    list.split(',').find_map(|item| {
        let mut words = item.split_whitespace();
        let n = words.next()?.parse().ok()?;
        (words.next()? == what).then_some(n)
    })
}

/// `5.01s`, `850.12ms`, `12us` as µs.
fn parse_duration_us(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    let value: f64 = number.trim().parse().ok()?;
    Some((value * scale).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Kind;

    const OUT: &str = "starting benchmark...
spawning thread #0: 100 total client(s). Timing-based test with 0s of warm-up time and 5s of main duration for measurements.
TLS Protocol: TLSv1.3
Cipher: TLS_AES_128_GCM_SHA256
Server Temp Key: X25519 253 bits
Application protocol: http/1.1
Main benchmark duration is started for thread #0.
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 5.01s, 24450.20 req/s, 3.08MB/s
requests: 122251 total, 122351 started, 122251 done, 122250 succeeded, 1 failed, 1 errored, 0 timeout
status codes: 122250 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 15.38MB (16131245) total, 11.78MB (12350000) headers (space savings 0.00%), 1.83MB (1914000) data
                     min         max         mean         sd        +/- sd
time for request:      448us     80.21ms      4.04ms      2.31ms    87.73%
";

    #[test]
    fn reads_the_summary_and_the_log() -> Result<()> {
        let log = "1796156203618240\t200\t4000\n1796156203618235\t200\t1000\n\
                   1796156203618229\t-1\t9000\n1796156203618230\t200\t2000\n";
        let (w, seen) = parse(OUT, log)?;
        assert_eq!(
            seen.negotiated(),
            "TLSv1.3 TLS_AES_128_GCM_SHA256 X25519 http/1.1"
        );
        assert!(seen.expect_alpn("http/1.1").is_ok());
        let err = seen
            .expect_alpn("h2")
            .expect_err("an HTTP/1.1 run is no h2 run");
        assert!(err.to_string().contains("http/1.1 instead of h2"), "{err}");
        assert_eq!(
            (w.requests, w.errors(), w.duration_us),
            (122250, 1, 5_010_000)
        );
        assert_eq!(w.bytes, 16131245);
        assert_eq!((w.p50_us, w.max_us), (2000, 4000));
        Ok(())
    }

    #[test]
    fn asks_for_one_suite_and_the_certificate_name() {
        let h = H2load {
            bin: PathBuf::from("/usr/bin/h2load"),
            threads: 1,
            cpus: None,
        };
        let case = Case {
            kind: Kind::Tls64k,
            connections: 100,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], 8443));
        let shown = proc::display(&h.command(case, addr, 5, Path::new("/tmp/l")));
        for part in [
            "--h1",
            "-c 100",
            "-D 5s",
            "--tls13-ciphers=TLS_AES_128_GCM_SHA256",
            "--groups=X25519",
            "--connect-to=127.0.0.1:8443",
            "https://localhost:8443/bytes/65536",
        ] {
            assert!(shown.contains(part), "{part} missing from {shown}");
        }
        assert_eq!(parse_duration_us("850.5ms"), Some(850_500));
    }

    /// The HTTP/2 case: h2load's own mode (no `--h1`), streams in flight on each connection.
    #[test]
    fn the_h2_case_runs_h2_with_streams_in_flight() {
        let h = H2load {
            bin: PathBuf::from("/usr/bin/h2load"),
            threads: 1,
            cpus: None,
        };
        let case = Case {
            kind: Kind::TlsH2Hello,
            connections: 10,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], 8443));
        let shown = proc::display(&h.command(case, addr, 5, Path::new("/tmp/l")));
        assert!(!shown.contains("--h1"), "{shown}");
        for part in [
            "-m 10",
            "-c 10",
            "--tls13-ciphers=TLS_AES_128_GCM_SHA256",
            "--groups=X25519",
            "https://localhost:8443/",
        ] {
            assert!(shown.contains(part), "{part} missing from {shown}");
        }
        let out = OUT.replace("Application protocol: http/1.1", "Application protocol: h2");
        let log = "1796156203618240\t200\t4000\n";
        let seen = parse(&out, log).map(|(_, seen)| seen);
        assert!(seen.is_ok_and(|s| s.expect_alpn("h2").is_ok()));
        let none = OUT.replace("Application protocol: http/1.1\n", "");
        let seen = parse(&none, log).map(|(_, seen)| seen);
        assert!(seen.is_ok_and(|s| s.alpn.is_none() && s.expect_alpn("h2").is_err()));
    }
}
