//! Configuration: command-line flags (clap) and an optional TOML file saying the same.
//!
//! A flag given on the command line wins over the file; the file wins over the defaults.
//! Everything is resolved once, at start-up, into a [`Config`] that the workers share
//! read-only.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use serde::Deserialize;

/// ringway: an HTTP/1.1 front end for uWSGI on io_uring.
///
/// Accepts HTTP/1.1 and 1.0 on one SO_REUSEPORT listener per worker thread and passes each
/// request to uWSGI in the uwsgi protocol, like nginx's `uwsgi_pass`.
#[derive(Debug, Parser, Default)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// Address to accept HTTP on [default: 127.0.0.1:8080]. Port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// uWSGI socket: `unix:/path/app.sock` or `host:port`. Repeat for several (round robin;
    /// on a connect error the next one is tried).
    #[arg(long = "upstream", value_name = "SPEC")]
    pub upstreams: Vec<String>,

    /// Worker threads, one io_uring loop each, pinned to a CPU [default: number of CPUs].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// uWSGI's `buffer-size`: the largest vars block the upstream accepts. Larger requests get
    /// 431 here instead of being dropped by uWSGI [default: 4096].
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub upstream_buffer_size: Option<u64>,

    /// Largest request body accepted (413 beyond) [default: 1m].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_body_size: Option<u64>,

    /// Largest request head: request line plus headers (431 beyond) [default: 16k].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_header_size: Option<u64>,

    /// Upstream response bytes buffered ahead of a slow client, so the Python worker is freed
    /// early [default: 1m].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub response_buffer_size: Option<u64>,

    /// Time allowed to connect to an upstream (then 504) [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub upstream_connect_timeout: Option<Duration>,

    /// Time allowed between two reads from, or writes to, the upstream (then 504)
    /// [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub upstream_read_timeout: Option<Duration>,

    /// Time allowed for a client to send a whole request head (then 408) [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub client_header_timeout: Option<Duration>,

    /// Time allowed between two reads of a request body (then 408) [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub client_body_timeout: Option<Duration>,

    /// Time allowed between two writes to a client before it is dropped [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub send_timeout: Option<Duration>,

    /// How long an idle keep-alive connection stays open [default: 75s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub keepalive_timeout: Option<Duration>,

    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown_timeout: Option<Duration>,

    /// Peer (IP or CIDR) whose X-Forwarded-Proto / X-Forwarded-Ssl headers are believed.
    /// Repeatable. From anyone else those headers are removed.
    #[arg(long = "trusted-proxy", value_name = "IP[/BITS]", value_parser = parse_cidr)]
    pub trusted_proxies: Vec<Cidr>,

    /// DOCUMENT_ROOT passed to the app [default: empty].
    #[arg(long, value_name = "PATH")]
    pub document_root: Option<String>,

    /// SERVER_NAME passed to the app [default: the request's Host, without port].
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,

    /// Forward headers whose names contain `_` (dropped by default: `X_Foo` and `X-Foo` both
    /// become HTTP_X_FOO, which lets a client spoof a header set by a proxy in front).
    #[arg(long)]
    pub allow_underscores_in_headers: bool,

    /// Address of the metrics endpoint (`/metrics` Prometheus, `/stats` JSON, `/` live page),
    /// or `off` [default: 127.0.0.1:9145; if that port is taken, ringway runs without it].
    #[arg(long, value_name = "ADDR|off", value_parser = parse_metrics)]
    pub metrics: Option<MetricsListen>,

    /// Do not load the eBPF probes (the metrics then show ringway's own figures and /proc).
    #[arg(long)]
    pub no_ebpf: bool,

    /// TOML file with the same settings (snake_case keys); flags win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The TOML file: every key optional, same meaning as the flag of the same name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    upstream: Option<Vec<String>>,
    workers: Option<usize>,
    upstream_buffer_size: Option<SizeValue>,
    max_body_size: Option<SizeValue>,
    max_header_size: Option<SizeValue>,
    response_buffer_size: Option<SizeValue>,
    upstream_connect_timeout: Option<String>,
    upstream_read_timeout: Option<String>,
    client_header_timeout: Option<String>,
    client_body_timeout: Option<String>,
    send_timeout: Option<String>,
    keepalive_timeout: Option<String>,
    shutdown_timeout: Option<String>,
    trusted_proxy: Option<Vec<String>>,
    document_root: Option<String>,
    server_name: Option<String>,
    allow_underscores_in_headers: Option<bool>,
    metrics: Option<String>,
    ebpf: Option<bool>,
}

/// A size in TOML: a number of bytes or a string with a k/m/g suffix.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Bytes(u64),
    Text(String),
}

impl SizeValue {
    fn bytes(&self) -> anyhow::Result<u64> {
        match self {
            SizeValue::Bytes(n) => Ok(*n),
            SizeValue::Text(s) => parse_size(s).map_err(anyhow::Error::msg),
        }
    }
}

/// Where a uWSGI listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAddr {
    /// A unix stream socket (uWSGI `--socket /path`).
    Unix(PathBuf),
    /// A TCP socket (uWSGI `--socket host:port`).
    Tcp(SocketAddr),
}

impl std::fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            UpstreamAddr::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// Where the metrics endpoint listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsListen {
    /// No endpoint.
    Off,
    /// The default address: if it is taken, run without the endpoint (and say so).
    Default(SocketAddr),
    /// An address asked for: failing to bind it is an error.
    At(SocketAddr),
}

/// The default metrics address (loopback: the figures are not for the internet).
pub const DEFAULT_METRICS: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9145);

/// Parses `off` or an address.
pub fn parse_metrics(s: &str) -> Result<MetricsListen, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(MetricsListen::Off);
    }
    s.parse()
        .map(MetricsListen::At)
        .map_err(|_| format!("invalid metrics address {s:?}: expected IP:PORT or off"))
}

/// An address range, for `--trusted-proxy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    /// True if `ip` lies in this range (IPv4-mapped IPv6 peers match IPv4 ranges).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[full] & mask == b[full] & mask
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
    /// Largest request body.
    pub max_body_size: u64,
    /// Largest request head.
    pub max_header_size: usize,
    /// Upstream response bytes buffered ahead of the client.
    pub response_buffer_size: usize,
    /// Upstream connect timeout.
    pub upstream_connect_timeout: Duration,
    /// Upstream read/write timeout.
    pub upstream_read_timeout: Duration,
    /// Request head timeout.
    pub client_header_timeout: Duration,
    /// Request body read timeout.
    pub client_body_timeout: Duration,
    /// Client write timeout.
    pub send_timeout: Duration,
    /// Idle keep-alive timeout.
    pub keepalive_timeout: Duration,
    /// Drain deadline on shutdown.
    pub shutdown_timeout: Duration,
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

impl Config {
    /// Resolves flags over the optional file over defaults.
    pub fn from_cli(cli: Cli) -> anyhow::Result<Config> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let size = |flag: Option<u64>, file: &Option<SizeValue>, default: u64, name: &str| match (
            flag, file,
        ) {
            (Some(v), _) => Ok(v),
            (None, Some(v)) => v.bytes().with_context(|| format!("config key {name}")),
            (None, None) => Ok(default),
        };
        let duration =
            |flag: Option<Duration>, file: &Option<String>, default: u64, name: &str| match (
                flag, file,
            ) {
                (Some(v), _) => Ok(v),
                (None, Some(v)) => parse_duration(v)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("config key {name}")),
                (None, None) => Ok(Duration::from_secs(default)),
            };

        let upstream_specs = if cli.upstreams.is_empty() {
            file.upstream.clone().unwrap_or_default()
        } else {
            cli.upstreams.clone()
        };
        if upstream_specs.is_empty() {
            bail!("no upstream given: pass --upstream unix:/path/app.sock (or host:port)");
        }
        let upstreams = upstream_specs
            .iter()
            .map(|s| parse_upstream(s).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?;

        let trusted_proxies = if cli.trusted_proxies.is_empty() {
            file.trusted_proxy
                .iter()
                .flatten()
                .map(|s| parse_cidr(s).map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<Vec<_>>>()?
        } else {
            cli.trusted_proxies.clone()
        };

        let workers = cli
            .workers
            .or(file.workers)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if workers == 0 {
            bail!("--workers must be at least 1");
        }

        let upstream_buffer_size = size(
            cli.upstream_buffer_size,
            &file.upstream_buffer_size,
            4096,
            "upstream_buffer_size",
        )?;
        if !(4..=65535).contains(&upstream_buffer_size) {
            bail!("--upstream-buffer-size must be between 4 and 65535 (uWSGI's own maximum)");
        }
        let max_header_size = size(
            cli.max_header_size,
            &file.max_header_size,
            16 * 1024,
            "max_header_size",
        )?;
        if !(1024..=1024 * 1024).contains(&max_header_size) {
            bail!("--max-header-size must be between 1k and 1m");
        }
        let response_buffer_size = size(
            cli.response_buffer_size,
            &file.response_buffer_size,
            1024 * 1024,
            "response_buffer_size",
        )?;
        if response_buffer_size < 4096 {
            bail!("--response-buffer-size must be at least 4k");
        }

        Ok(Config {
            listen: cli
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            upstreams,
            workers,
            upstream_buffer_size: upstream_buffer_size as usize,
            max_body_size: size(
                cli.max_body_size,
                &file.max_body_size,
                1024 * 1024,
                "max_body_size",
            )?,
            max_header_size: max_header_size as usize,
            response_buffer_size: usize::try_from(response_buffer_size)
                .context("--response-buffer-size too large")?,
            upstream_connect_timeout: duration(
                cli.upstream_connect_timeout,
                &file.upstream_connect_timeout,
                5,
                "upstream_connect_timeout",
            )?,
            upstream_read_timeout: duration(
                cli.upstream_read_timeout,
                &file.upstream_read_timeout,
                60,
                "upstream_read_timeout",
            )?,
            client_header_timeout: duration(
                cli.client_header_timeout,
                &file.client_header_timeout,
                60,
                "client_header_timeout",
            )?,
            client_body_timeout: duration(
                cli.client_body_timeout,
                &file.client_body_timeout,
                60,
                "client_body_timeout",
            )?,
            send_timeout: duration(cli.send_timeout, &file.send_timeout, 60, "send_timeout")?,
            keepalive_timeout: duration(
                cli.keepalive_timeout,
                &file.keepalive_timeout,
                75,
                "keepalive_timeout",
            )?,
            shutdown_timeout: duration(
                cli.shutdown_timeout,
                &file.shutdown_timeout,
                10,
                "shutdown_timeout",
            )?,
            trusted_proxies,
            document_root: cli.document_root.or(file.document_root).unwrap_or_default(),
            server_name: cli.server_name.or(file.server_name),
            allow_underscores_in_headers: cli.allow_underscores_in_headers
                || file.allow_underscores_in_headers.unwrap_or(false),
            metrics: match (cli.metrics, file.metrics.as_deref()) {
                (Some(m), _) => m,
                (None, Some(m)) => parse_metrics(m).map_err(anyhow::Error::msg)?,
                (None, None) => MetricsListen::Default(DEFAULT_METRICS),
            },
            ebpf: !cli.no_ebpf && file.ebpf.unwrap_or(true),
        })
    }

    /// True if X-Forwarded-Proto/Ssl from `peer` may be passed on.
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(peer))
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

/// Parses `4096`, `16k`, `1m`, `1g` (binary multiples, case-insensitive, optional `b`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (digits, mult) = match t.as_bytes().last() {
        Some(b'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some(b'm') => (&t[..t.len() - 1], 1 << 20),
        Some(b'g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("invalid size {s:?}: expected e.g. 4096, 16k, 1m"))
}

/// Parses `250ms`, `5s`, `2m`, `1h`; a bare number is seconds (as in nginx).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let err = || format!("invalid duration {s:?}: expected e.g. 250ms, 5s, 2m");
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| err())?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    };
    ms.map(Duration::from_millis).ok_or_else(err)
}

/// Parses `unix:/path` or `host:port` (an IP address; names are not resolved).
pub fn parse_upstream(s: &str) -> Result<UpstreamAddr, String> {
    if let Some(path) = s.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(format!("invalid upstream {s:?}: empty socket path"));
        }
        return Ok(UpstreamAddr::Unix(PathBuf::from(path)));
    }
    s.parse::<SocketAddr>().map(UpstreamAddr::Tcp).map_err(|_| {
        format!(
            "invalid upstream {s:?}: expected unix:/path/app.sock or IP:PORT (e.g. 127.0.0.1:3031)"
        )
    })
}

/// Parses `10.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`.
pub fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let err = || format!("invalid address range {s:?}: expected IP or IP/BITS");
    let (ip, bits) = match s.split_once('/') {
        Some((ip, bits)) => (ip, Some(bits.parse::<u8>().map_err(|_| err())?)),
        None => (s, None),
    };
    let addr: IpAddr = ip.trim().parse().map_err(|_| err())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    if bits > max {
        return Err(err());
    }
    Ok(Cidr { addr, bits })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("16k"), Ok(16384));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("8kb"), Ok(8192));
        assert!(parse_size("").is_err());
        assert!(parse_size("k").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999g").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn upstreams() {
        assert_eq!(
            parse_upstream("unix:/run/app.sock"),
            Ok(UpstreamAddr::Unix("/run/app.sock".into()))
        );
        assert_eq!(
            parse_upstream("127.0.0.1:3031"),
            Ok(UpstreamAddr::Tcp("127.0.0.1:3031".parse().unwrap()))
        );
        assert!(parse_upstream("unix:").is_err());
        assert!(parse_upstream("localhost:3031").is_err());
    }

    #[test]
    fn cidrs() {
        let net = parse_cidr("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one = parse_cidr("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let odd = parse_cidr("192.168.0.0/23").unwrap();
        assert!(odd.contains("192.168.1.200".parse().unwrap()));
        assert!(!odd.contains("192.168.2.1".parse().unwrap()));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("nope").is_err());
    }

    #[test]
    fn file_then_flags() {
        let dir = std::env::temp_dir().join(format!("ringway-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ringway.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nupstream = [\"unix:/tmp/a.sock\"]\n\
             max_body_size = \"2m\"\nupstream_buffer_size = 8192\nkeepalive_timeout = \"5s\"\n",
        )
        .unwrap();
        let cli = Cli::parse_from([
            "ringway",
            "--config",
            path.to_str().unwrap(),
            "--max-body-size",
            "10k",
        ]);
        let config = Config::from_cli(cli).unwrap();
        assert_eq!(config.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(
            config.upstreams,
            vec![UpstreamAddr::Unix("/tmp/a.sock".into())]
        );
        assert_eq!(config.max_body_size, 10 * 1024);
        assert_eq!(config.upstream_buffer_size, 8192);
        assert_eq!(config.keepalive_timeout, Duration::from_secs(5));
        assert_eq!(config.client_header_timeout, Duration::from_secs(60));
        assert_eq!(config.metrics, MetricsListen::Default(DEFAULT_METRICS));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_file_key_is_an_error() {
        let dir = std::env::temp_dir().join(format!("ringway-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ringway.toml");
        std::fs::write(&path, "upstreams = [\"unix:/a\"]\n").unwrap();
        let cli = Cli::parse_from(["ringway", "--config", path.to_str().unwrap()]);
        assert!(Config::from_cli(cli).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn readme_example_parses() {
        let readme = include_str!("../../README.md");
        let start = readme.find("```toml\n").expect("README has a toml block") + 8;
        let len = readme[start..].find("```").expect("toml block ends");
        let file: FileConfig = toml::from_str(&readme[start..start + len]).unwrap();
        assert_eq!(
            file.upstream.as_deref(),
            Some(&["unix:/run/app.sock".to_string()][..])
        );
        assert_eq!(file.send_timeout.as_deref(), Some("60s"));
    }

    #[test]
    fn metrics_flag() {
        assert_eq!(parse_metrics("off"), Ok(MetricsListen::Off));
        assert_eq!(
            parse_metrics("127.0.0.1:9200"),
            Ok(MetricsListen::At("127.0.0.1:9200".parse().unwrap()))
        );
        assert!(parse_metrics("9200").is_err());
    }

    #[test]
    fn upstream_required() {
        let cli = Cli::parse_from(["ringway"]);
        assert!(Config::from_cli(cli).is_err());
    }
}
