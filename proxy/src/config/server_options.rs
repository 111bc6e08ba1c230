//! What follows a server's address in a group, as nginx's `server` line writes it:
//! `"unix:/run/a.sock weight=3 max_fails=2 fail_timeout=30s"`, `"127.0.0.1:3032 backup"`.
//! The balancer that reads them is `upstream/balance.rs`.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::values::Dur;

/// How a group's balancer treats one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// Its share of the requests against the others' (nginx's `weight`, 1 by default).
    pub weight: u32,
    /// Failures within `fail_timeout` that take it out of turn for `fail_timeout` (0: never).
    pub max_fails: u32,
    /// The window failures are counted in, and how long the server is out of turn after.
    pub fail_timeout: Duration,
    /// Takes requests only when no other server can (nginx's `backup`).
    pub backup: bool,
    /// Takes no requests at all (nginx's `down`): a server kept in the list while away.
    pub down: bool,
}

impl Default for ServerOptions {
    /// nginx's: `weight=1 max_fails=1 fail_timeout=10s`.
    fn default() -> Self {
        ServerOptions {
            weight: 1,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            backup: false,
            down: false,
        }
    }
}

const WEIGHTS: RangeInclusive<u32> = 1..=100_000;
const MAX_FAILS: RangeInclusive<u32> = 0..=100_000;

impl ServerOptions {
    /// The options written after `addr` (the words of `words`, separated by spaces).
    pub(super) fn parse<'a>(
        addr: &str,
        words: impl Iterator<Item = &'a str>,
    ) -> Result<ServerOptions, String> {
        let mut options = ServerOptions::default();
        let mut seen: Vec<&str> = Vec::new();
        for word in words {
            let (key, value) = match word.split_once('=') {
                Some((key, value)) => (key, Some(value)),
                None => (word, None),
            };
            if seen.contains(&key) {
                return Err(format!("upstream {addr:?}: `{key}` given twice"));
            }
            seen.push(key);
            let bad = |expected: &str| format!("upstream {addr:?}: `{word}`: expected {expected}");
            match (key, value) {
                ("weight", Some(v)) => options.weight = count(v, WEIGHTS).map_err(|e| bad(&e))?,
                ("max_fails", Some(v)) => {
                    options.max_fails = count(v, MAX_FAILS).map_err(|e| bad(&e))?
                }
                ("fail_timeout", Some(v)) => {
                    // nginx counts it in whole seconds, and with `0` (gunicorn's example
                    // config) a failed server sits out the rest of the current second: a
                    // second here. Under one, a window would end as it began and every
                    // failure would be logged as one that took the server out.
                    options.fail_timeout = match Dur::parse_long(v) {
                        Ok(Dur(d)) if d.is_zero() => Duration::from_secs(1),
                        Ok(Dur(d)) if d >= Duration::from_secs(1) => d,
                        _ => return Err(bad("0, or a duration of 1s or more")),
                    };
                }
                ("backup", None) => options.backup = true,
                ("down", None) => options.down = true,
                ("max_conns", _) => {
                    return Err(format!(
                        "upstream {addr:?}: `max_conns` is the group's key here \
                         (`max_conns = N` under [upstreams.NAME]), the same for each server"
                    ));
                }
                _ => {
                    return Err(format!(
                        "upstream {addr:?}: unknown option `{word}`; a server takes \
                         weight=N, max_fails=N, fail_timeout=DURATION, backup and down, after \
                         the address and a space (so a socket path cannot hold a space)"
                    ));
                }
            }
        }
        if options.backup && options.down {
            // Harmless in nginx, but one of the two is a mistake.
            return Err(format!(
                "upstream {addr:?}: `backup` and `down` together: a down server takes nothing"
            ));
        }
        Ok(options)
    }
}

fn count(value: &str, range: RangeInclusive<u32>) -> Result<u32, String> {
    value
        .parse::<u32>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| format!("a whole number from {} to {}", range.start(), range.end()))
}

impl fmt::Display for ServerOptions {
    /// The options that are not nginx's defaults, each after a space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let default = ServerOptions::default();
        if self.weight != default.weight {
            write!(f, " weight={}", self.weight)?;
        }
        if self.max_fails != default.max_fails {
            write!(f, " max_fails={}", self.max_fails)?;
        }
        if self.fail_timeout != default.fail_timeout {
            write!(f, " fail_timeout={}ms", self.fail_timeout.as_millis())?;
        }
        if self.backup {
            f.write_str(" backup")?;
        }
        if self.down {
            f.write_str(" down")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &str) -> Result<ServerOptions, String> {
        ServerOptions::parse("unix:/a", words.split_whitespace())
    }

    #[test]
    fn nginx_server_parameters_parse_and_print_back() {
        let options = parse("weight=3 max_fails=0 fail_timeout=30s backup").unwrap();
        assert_eq!(
            options,
            ServerOptions {
                weight: 3,
                max_fails: 0,
                fail_timeout: Duration::from_secs(30),
                backup: true,
                down: false,
            }
        );
        let printed = options.to_string();
        assert_eq!(printed, " weight=3 max_fails=0 fail_timeout=30000ms backup");
        assert_eq!(parse(&printed), Ok(options));
        assert_eq!(parse(""), Ok(ServerOptions::default()));
        assert_eq!(ServerOptions::default().to_string(), "");
        assert!(parse("down").unwrap().down);
    }

    #[test]
    fn gunicorns_fail_timeout_0_sits_a_failed_server_out_for_a_second() {
        let options = parse("fail_timeout=0").unwrap();
        assert_eq!(options.fail_timeout, Duration::from_secs(1));
        assert_eq!(parse("fail_timeout=0s"), Ok(options));
    }

    #[test]
    fn a_wrong_parameter_is_named() {
        for (words, says) in [
            ("weight=0", "weight=0"),
            ("weight=x", "a whole number"),
            ("weight=1 weight=2", "given twice"),
            ("fail_timeout=soon", "a duration"),
            ("fail_timeout=500ms", "1s or more"),
            ("backup=yes", "unknown option `backup=yes`"),
            ("slow_start=30s", "unknown option"),
            ("max_conns=10", "the group's key"),
            ("backup down", "together"),
        ] {
            let err = parse(words).unwrap_err();
            assert!(err.contains(says), "{words}: {err}");
        }
    }
}
