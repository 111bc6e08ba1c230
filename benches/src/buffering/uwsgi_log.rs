//! What uWSGI's log says about its workers and the proxy in front: a worker that gives up
//! writing an answer to a proxy that does not read it logs a write timeout.

use std::fs;
use std::path::Path;

use serde::Serialize;

/// Counts of the log lines that matter to buffering.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UwsgiLog {
    /// `uwsgi_response_write_body_do() TIMEOUT !!!` and its siblings (writev, headers,
    /// sendfile), or any `write timeout`: a worker blocked on its peer for `socket-timeout`.
    pub write_timeouts: usize,
    /// `[uwsgi-body-read] Timeout reading ...`: a worker waited for a request body.
    pub read_timeouts: usize,
    /// `write error` / `SIGPIPE`: the peer went away mid-answer (a client closed early).
    pub write_errors: usize,
    /// The first write-timeout line, to show what was counted.
    pub first_write_timeout: Option<String>,
}

impl UwsgiLog {
    /// Reads the log at `path` (an unreadable log counts nothing).
    pub fn read(path: &Path) -> UwsgiLog {
        fs::read_to_string(path)
            .map(|text| UwsgiLog::count(&text))
            .unwrap_or_default()
    }

    pub fn count(text: &str) -> UwsgiLog {
        let mut log = UwsgiLog::default();
        for line in text.lines() {
            let lower = line.to_ascii_lowercase();
            if line.contains("TIMEOUT !!!") || lower.contains("write timeout") {
                log.write_timeouts += 1;
                if log.first_write_timeout.is_none() {
                    log.first_write_timeout = Some(line.trim().to_owned());
                }
            } else if line.contains("[uwsgi-body-read] Timeout") {
                log.read_timeouts += 1;
            } else if lower.contains("write error") || line.contains("SIGPIPE") {
                log.write_errors += 1;
            }
        }
        log
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_kind_once_per_line() {
        let text = "\
*** Operational MODE: preforking ***
uwsgi_response_write_body_do() TIMEOUT !!!
OSError: write error
uwsgi_response_writev_headers_and_body_do() TIMEOUT !!!
[uwsgi-body-read] Timeout reading 4096 bytes. Content-Length: 1000000 consumed: 0 left: 1000000
SIGPIPE: writing to a closed pipe/socket/fd (probably the client disconnected) on request /lazy/1
IOError: write timeout
";
        let log = UwsgiLog::count(text);
        assert_eq!(
            (log.write_timeouts, log.read_timeouts, log.write_errors),
            (3, 1, 2)
        );
        assert_eq!(
            log.first_write_timeout.as_deref(),
            Some("uwsgi_response_write_body_do() TIMEOUT !!!")
        );
    }
}
