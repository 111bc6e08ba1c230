//! Configuration: every setting is declared once, in [`Settings`], which serves both the
//! command line (clap) and the TOML file (serde). Flags win over the file, the file over the
//! defaults; [`Settings::validate`] then checks everything once, at start-up, into the
//! [`Config`] that the workers share read-only. An error names the flag, or the key and the
//! file, it comes from.

mod values;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Parser;
use serde::{Deserialize, Serialize};

pub use values::{Cidr, DEFAULT_METRICS, Dur, MetricsListen, Size, UpstreamAddr};

/// ringway: an HTTP/1.1 front end for uWSGI on io_uring.
///
/// Accepts HTTP/1.1 and 1.0 on one SO_REUSEPORT listener per worker thread and passes each
/// request to uWSGI in the uwsgi protocol, like nginx's `uwsgi_pass`. Every flag can also be
/// given in the `--config` file, under the same name in snake_case.
#[derive(Debug, Default, Parser, Deserialize, Serialize)]
#[command(version, about, long_about = None)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to accept HTTP on [default: 127.0.0.1:8080]. Port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// uWSGI socket: `unix:/path/app.sock` or `host:port`. Repeat for several (round robin;
    /// on a connect error the next one is tried).
    #[arg(long, value_name = "SPEC")]
    #[serde(default)]
    pub upstream: Vec<UpstreamAddr>,

    /// Worker threads, one io_uring loop each, pinned to a CPU [default: number of CPUs].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// uWSGI's `buffer-size`: the largest vars block the upstream accepts. Larger requests get
    /// 431 here instead of being dropped by uWSGI [default: 4096].
    #[arg(long, value_name = "BYTES")]
    pub upstream_buffer_size: Option<Size>,

    /// Largest request body accepted (413 beyond) [default: 1m].
    #[arg(long, value_name = "SIZE")]
    pub max_body_size: Option<Size>,

    /// Largest request head: request line plus headers (431 beyond) [default: 16k].
    #[arg(long, value_name = "SIZE")]
    pub max_header_size: Option<Size>,

    /// Request body bytes kept in memory; a larger body goes to a temp file [default: 64k].
    #[arg(long, value_name = "SIZE")]
    pub client_body_buffer_size: Option<Size>,

    /// Response bytes kept in memory ahead of a slow client; beyond, they go to a temp file
    /// [default: 64k].
    #[arg(long, value_name = "SIZE")]
    pub response_buffer_size: Option<Size>,

    /// Largest temp file one response may fill ahead of a slow client; past it the upstream
    /// is read at the client's pace. 0 turns response temp files off [default: 1g].
    #[arg(long, value_name = "SIZE")]
    pub max_temp_file_size: Option<Size>,

    /// Memory all buffered bodies and responses may take together; past it they go to temp
    /// files from their first byte [default: 64m].
    #[arg(long, value_name = "SIZE")]
    pub max_buffer_memory: Option<Size>,

    /// Directory for the temp files (anonymous: nothing is left there, even after a crash)
    /// [default: /var/tmp/ringway-UID, created 0700].
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<PathBuf>,

    /// Time allowed to connect to an upstream (then 504) [default: 5s].
    #[arg(long, value_name = "DURATION")]
    pub upstream_connect_timeout: Option<Dur>,

    /// Time allowed between two reads from, or writes to, the upstream (then 504)
    /// [default: 60s].
    #[arg(long, value_name = "DURATION")]
    pub upstream_read_timeout: Option<Dur>,

    /// Time allowed for a client to send a whole request head (then 408) [default: 60s].
    #[arg(long, value_name = "DURATION")]
    pub client_header_timeout: Option<Dur>,

    /// Time allowed between two reads of a request body (then 408) [default: 60s].
    #[arg(long, value_name = "DURATION")]
    pub client_body_timeout: Option<Dur>,

    /// Time allowed between two writes to a client before it is dropped [default: 60s].
    #[arg(long, value_name = "DURATION")]
    pub send_timeout: Option<Dur>,

    /// How long an idle keep-alive connection stays open [default: 75s].
    #[arg(long, value_name = "DURATION")]
    pub keepalive_timeout: Option<Dur>,

    /// On SIGTERM, SIGINT or SIGQUIT, how long in-flight requests may take to finish
    /// [default: 10s].
    #[arg(long, value_name = "DURATION")]
    pub shutdown_timeout: Option<Dur>,

    /// Peer (IP or CIDR) whose X-Forwarded-Proto / X-Forwarded-Ssl headers are believed.
    /// Repeatable. From anyone else those headers are removed.
    #[arg(long, value_name = "IP[/BITS]")]
    #[serde(default)]
    pub trusted_proxy: Vec<Cidr>,

    /// DOCUMENT_ROOT passed to the app [default: empty].
    #[arg(long, value_name = "PATH")]
    pub document_root: Option<String>,

    /// SERVER_NAME passed to the app [default: the request's Host, without port].
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,

    /// Forward headers whose names contain `_` (dropped by default: `X_Foo` and `X-Foo` both
    /// become HTTP_X_FOO, which lets a client spoof a header set by a proxy in front).
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub allow_underscores_in_headers: Option<bool>,

    /// Address of the metrics endpoint (`/metrics` Prometheus, `/stats` JSON, `/` live page),
    /// or `off` [default: 127.0.0.1:9145; if that port is taken, ringway runs without it].
    #[arg(long, value_name = "ADDR|off")]
    pub metrics: Option<MetricsListen>,

    /// Do not load the eBPF probes (the metrics then show ringway's own figures and /proc).
    /// In the file: `ebpf = false`.
    #[arg(long = "no-ebpf", num_args = 0, default_missing_value = "false")]
    pub ebpf: Option<bool>,

    /// TOML file with the same settings (snake_case keys); flags win over it.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

/// Resolved settings, shared read-only by all workers.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address (port may be 0 until bound).
    pub listen: SocketAddr,
    /// Upstreams, tried round robin.
    pub upstreams: Vec<UpstreamAddr>,
    /// Worker threads.
    pub workers: usize,
    /// Largest uwsgi vars block.
    pub upstream_buffer_size: usize,
    /// Largest request head.
    pub max_header_size: usize,
    /// Request head timeout.
    pub client_header_timeout: Duration,
    /// Idle keep-alive timeout.
    pub keepalive_timeout: Duration,
    /// Drain deadline on shutdown.
    pub shutdown_timeout: Duration,
    /// What one request may use and how long it may take.
    pub limits: Limits,
    /// Memory budget and temp files, process-wide.
    pub buffering: Buffering,
    /// Peers whose X-Forwarded-Proto/Ssl are kept.
    pub trusted_proxies: Vec<Cidr>,
    /// DOCUMENT_ROOT.
    pub document_root: String,
    /// SERVER_NAME override.
    pub server_name: Option<String>,
    /// Keep headers with `_` in their names.
    pub allow_underscores_in_headers: bool,
    /// The metrics endpoint.
    pub metrics: MetricsListen,
    /// Load the eBPF probes (with the metrics endpoint on).
    pub ebpf: bool,
}

/// The limits and timeouts of one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body.
    pub max_body_size: u64,
    /// Request body bytes kept in memory before a temp file takes over.
    pub client_body_buffer_size: usize,
    /// Response bytes kept in memory ahead of the client.
    pub response_buffer_size: usize,
    /// Largest response temp file (0: none).
    pub max_temp_file_size: u64,
    /// Upstream connect timeout.
    pub upstream_connect_timeout: Duration,
    /// Upstream read/write timeout.
    pub upstream_read_timeout: Duration,
    /// Request body read timeout.
    pub client_body_timeout: Duration,
    /// Client write timeout.
    pub send_timeout: Duration,
}

/// Where buffered bytes may go, process-wide.
#[derive(Debug, Clone)]
pub struct Buffering {
    /// Memory all buffered bodies and responses may take together.
    pub max_buffer_memory: usize,
    /// Directory of the anonymous temp files.
    pub temp_dir: PathBuf,
}

impl Config {
    /// Reads the command line (and the file it names) into a checked configuration.
    pub fn from_args<I, T>(args: I) -> anyhow::Result<Config>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Settings::try_parse_from(args)
            .map_err(|e| anyhow!(e.to_string()))?
            .resolve()?
            .validate()
    }

    /// True if X-Forwarded-Proto/Ssl from `peer` may be passed on.
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(peer))
    }
}

/// Settings after flags were laid over the file, remembering where each came from.
pub struct Resolved {
    settings: Settings,
    from_flags: BTreeSet<String>,
    file: Option<PathBuf>,
}

impl Settings {
    /// Reads the file named by `--config` (if any) and lays these flags over it.
    pub fn resolve(self) -> anyhow::Result<Resolved> {
        let file = self.config.clone();
        let from_file = match &file {
            Some(path) => read_file(path)?,
            None => Settings::default(),
        };
        // Both sides go through their serde form: a flag given replaces the file's key, and
        // the struct above stays the only list of settings.
        let flags = serde_json::to_value(&self).context("encoding the flags")?;
        let mut merged = serde_json::to_value(&from_file).context("encoding the file")?;
        let mut from_flags = BTreeSet::new();
        if let (Some(flags), Some(merged)) = (flags.as_object(), merged.as_object_mut()) {
            for (key, value) in flags {
                let given = !(value.is_null() || value.as_array().is_some_and(Vec::is_empty));
                if given {
                    merged.insert(key.clone(), value.clone());
                    from_flags.insert(key.clone());
                }
            }
        }
        let settings = serde_json::from_value(merged).context("merging flags and file")?;
        Ok(Resolved {
            settings,
            from_flags,
            file,
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<Settings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("in config file {}", path.display()))
}

impl Resolved {
    /// An error about `key`, naming the flag or the file it came from.
    fn invalid(&self, key: &str, message: &str) -> anyhow::Error {
        match &self.file {
            Some(file) if !self.from_flags.contains(key) => {
                anyhow!("{key} in {}: {message}", file.display())
            }
            _ => anyhow!("--{}: {message}", key.replace('_', "-")),
        }
    }

    /// Checks every setting and fills in the defaults.
    pub fn validate(self) -> anyhow::Result<Config> {
        let s = &self.settings;
        let within = |key: &str, value: Size, range: std::ops::RangeInclusive<u64>, text: &str| {
            if range.contains(&value.0) {
                Ok(value.bytes())
            } else {
                Err(self.invalid(key, &format!("{} is out of range: {text}", value.0)))
            }
        };
        if s.upstream.is_empty() {
            return Err(anyhow!(
                "no upstream given: pass --upstream unix:/path/app.sock (or host:port), \
                 or `upstream = [...]` in the config file"
            ));
        }
        let workers = s
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if workers == 0 {
            return Err(self.invalid("workers", "must be at least 1"));
        }
        let upstream_buffer_size = within(
            "upstream_buffer_size",
            s.upstream_buffer_size.unwrap_or(Size(4096)),
            4..=65535,
            "must be between 4 and 65535 (uWSGI's own maximum)",
        )?;
        let max_header_size = within(
            "max_header_size",
            s.max_header_size.unwrap_or(Size::kib(16)),
            1024..=1 << 20,
            "must be between 1k and 1m",
        )?;
        let client_body_buffer_size = within(
            "client_body_buffer_size",
            s.client_body_buffer_size.unwrap_or(Size::kib(64)),
            1024..=1 << 30,
            "must be between 1k and 1g",
        )?;
        let response_buffer_size = within(
            "response_buffer_size",
            s.response_buffer_size.unwrap_or(Size::kib(64)),
            4096..=1 << 30,
            "must be between 4k and 1g",
        )?;
        let max_buffer_memory = within(
            "max_buffer_memory",
            s.max_buffer_memory.unwrap_or(Size::mib(64)),
            0..=1 << 40,
            "must be at most 1t",
        )?;
        let dur = |d: Option<Dur>, default: u64| d.unwrap_or(Dur::secs(default)).0;
        Ok(Config {
            listen: s
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            upstreams: s.upstream.clone(),
            workers,
            upstream_buffer_size,
            max_header_size,
            client_header_timeout: dur(s.client_header_timeout, 60),
            keepalive_timeout: dur(s.keepalive_timeout, 75),
            shutdown_timeout: dur(s.shutdown_timeout, 10),
            limits: Limits {
                max_body_size: s.max_body_size.unwrap_or(Size::mib(1)).0,
                client_body_buffer_size,
                response_buffer_size,
                max_temp_file_size: s.max_temp_file_size.unwrap_or(Size(1 << 30)).0,
                upstream_connect_timeout: dur(s.upstream_connect_timeout, 5),
                upstream_read_timeout: dur(s.upstream_read_timeout, 60),
                client_body_timeout: dur(s.client_body_timeout, 60),
                send_timeout: dur(s.send_timeout, 60),
            },
            buffering: Buffering {
                max_buffer_memory,
                temp_dir: s.temp_dir.clone().unwrap_or_else(default_temp_dir),
            },
            trusted_proxies: s.trusted_proxy.clone(),
            document_root: s.document_root.clone().unwrap_or_default(),
            server_name: s.server_name.clone(),
            allow_underscores_in_headers: s.allow_underscores_in_headers.unwrap_or(false),
            metrics: s.metrics.unwrap_or(MetricsListen::Default(DEFAULT_METRICS)),
            ebpf: s.ebpf.unwrap_or(true),
        })
    }
}

/// `/var/tmp/ringway-UID`: /var/tmp survives reboots but is meant for such files, and the
/// uid keeps two users' ringways apart.
fn default_temp_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    PathBuf::from(format!("/var/tmp/ringway-{uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config file holding `text`, in a directory removed on drop.
    fn temp_file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringway.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn file_then_flags() {
        let (_dir, path) = temp_file(
            "listen = \"127.0.0.1:9000\"\nupstream = [\"unix:/tmp/a.sock\"]\n\
             max_body_size = \"2m\"\nupstream_buffer_size = 8192\nkeepalive_timeout = \"5s\"\n\
             ebpf = false\n",
        );
        let config = Config::from_args([
            "ringway",
            "--config",
            path.to_str().unwrap(),
            "--max-body-size",
            "10k",
        ])
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(
            config.upstreams,
            vec![UpstreamAddr::Unix("/tmp/a.sock".into())]
        );
        assert_eq!(config.limits.max_body_size, 10 * 1024);
        assert_eq!(config.upstream_buffer_size, 8192);
        assert_eq!(config.keepalive_timeout, Duration::from_secs(5));
        assert_eq!(config.client_header_timeout, Duration::from_secs(60));
        assert_eq!(config.metrics, MetricsListen::Default(DEFAULT_METRICS));
        assert!(!config.ebpf);
    }

    #[test]
    fn boolean_flags_override_the_file_only_when_given() {
        let (_dir, path) =
            temp_file("upstream = [\"unix:/a\"]\nallow_underscores_in_headers = true\n");
        let path = path.to_str().unwrap();
        let config = Config::from_args(["ringway", "--config", path]).unwrap();
        assert!(config.allow_underscores_in_headers);
        assert!(config.ebpf);
        let config = Config::from_args(["ringway", "--config", path, "--no-ebpf"]).unwrap();
        assert!(!config.ebpf);
        let config = Config::from_args([
            "ringway",
            "--upstream",
            "unix:/a",
            "--allow-underscores-in-headers",
        ])
        .unwrap();
        assert!(config.allow_underscores_in_headers);
    }

    #[test]
    fn flags_replace_lists_from_the_file() {
        let (_dir, path) = temp_file("upstream = [\"unix:/a\", \"unix:/b\"]\n");
        let path = path.to_str().unwrap();
        let config = Config::from_args(["ringway", "--config", path]).unwrap();
        assert_eq!(config.upstreams.len(), 2);
        let config =
            Config::from_args(["ringway", "--config", path, "--upstream", "127.0.0.1:3031"])
                .unwrap();
        assert_eq!(config.upstreams, vec!["127.0.0.1:3031".parse().unwrap()]);
    }

    #[test]
    fn errors_name_the_key_and_where_it_came_from() {
        let (_dir, path) = temp_file("upstream = [\"unix:/a\"]\nmax_header_size = 10\n");
        let path = path.to_str().unwrap();
        let err = Config::from_args(["ringway", "--config", path]).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.starts_with("max_header_size in "), "{text}");
        assert!(text.contains(path), "{text}");
        let err =
            Config::from_args(["ringway", "--config", path, "--max-header-size", "1"]).unwrap_err();
        assert!(
            format!("{err:#}").starts_with("--max-header-size: "),
            "{err:#}"
        );
    }

    #[test]
    fn unknown_or_malformed_file_keys_are_errors() {
        let (_dir, path) = temp_file("upstreams = [\"unix:/a\"]\n");
        let err = Config::from_args(["ringway", "--config", path.to_str().unwrap()]).unwrap_err();
        assert!(format!("{err:#}").contains("upstreams"), "{err:#}");
        let (_dir, path) = temp_file("upstream = [\"unix:/a\"]\nsend_timeout = \"5x\"\n");
        let err = Config::from_args(["ringway", "--config", path.to_str().unwrap()]).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("send_timeout") && text.contains("5x"),
            "{text}"
        );
    }

    #[test]
    fn readme_example_parses() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("```toml\n").expect("README has a toml block") + 8;
        let len = readme[start..].find("```").expect("toml block ends");
        let file: Settings = toml::from_str(&readme[start..start + len]).unwrap();
        assert_eq!(file.upstream, vec!["unix:/run/app.sock".parse().unwrap()]);
        assert_eq!(file.send_timeout, Some(Dur::secs(60)));
    }

    #[test]
    fn upstream_required() {
        assert!(Config::from_args(["ringway"]).is_err());
    }

    #[test]
    fn defaults() {
        let config = Config::from_args(["ringway", "--upstream", "unix:/a"]).unwrap();
        assert_eq!(config.limits.client_body_buffer_size, 64 * 1024);
        assert_eq!(config.limits.response_buffer_size, 64 * 1024);
        assert_eq!(config.limits.max_temp_file_size, 1 << 30);
        assert_eq!(config.buffering.max_buffer_memory, 64 << 20);
        assert!(config.buffering.temp_dir.starts_with("/var/tmp"));
    }
}
