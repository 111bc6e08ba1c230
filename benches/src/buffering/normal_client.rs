//! The normal client of the slow-readers scenario: one keep-alive connection doing `GET /`
//! back to back, each request timed, for a window of time.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client;

/// Long enough to see a request wait for a uWSGI worker that is stuck on a slow reader
/// (uWSGI gives up after its 4 s socket-timeout, and the request may queue behind several).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the normal client saw in one window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latencies {
    pub requests: usize,
    /// Failed requests (not a 200 "Hello, World!"; the connection is opened again).
    pub errors: usize,
    pub first_error: Option<String>,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub max_us: Option<u64>,
    /// How long the window really lasted (the last request may end after it).
    pub elapsed_s: f64,
}

/// Sequential keep-alive `GET /` to `addr` for `window`.
pub fn sequential_gets(addr: SocketAddr, window: Duration) -> Latencies {
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes();
    let started = Instant::now();
    let mut samples: Vec<u64> = Vec::new();
    let mut out = Latencies::default();
    let mut conn: Option<TcpStream> = None;
    while started.elapsed() < window {
        let sent = Instant::now();
        let answer = match conn.take() {
            Some(stream) => Ok(stream),
            None => client::connect(addr, REQUEST_TIMEOUT),
        }
        .and_then(|mut stream| {
            let answer = client::exchange(&mut stream, &request)?;
            Ok((stream, answer))
        });
        match answer {
            Ok((stream, answer)) if answer.status == 200 && answer.body == b"Hello, World!" => {
                samples.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                if !answer.closes {
                    conn = Some(stream);
                }
            }
            Ok((_, answer)) => {
                out.errors += 1;
                out.first_error
                    .get_or_insert_with(|| format!("status {}", answer.status));
            }
            Err(err) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| format!("{err:#}"));
            }
        }
    }
    out.elapsed_s = started.elapsed().as_secs_f64();
    out.requests = samples.len();
    samples.sort_unstable();
    out.p50_us = percentile(&samples, 50.0);
    out.p99_us = percentile(&samples, 99.0);
    out.max_us = samples.last().copied();
    out
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[1, 2], 50.0), Some(1));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
