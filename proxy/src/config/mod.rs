//! Configuration: every setting is declared once, in [`Settings`] (settings.rs), which serves
//! both the command line (clap) and the TOML file (serde). Flags win over the file, the file
//! over the defaults; validate.rs then checks everything once, at start-up, into the
//! [`Config`] that the workers share read-only. An error names the flag, or the key and the
//! file, it comes from.

mod settings;
mod validate;
mod values;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use clap::Parser;

pub use settings::{
    GroupSettings, LimitSettings, RedirectSettings, Resolved, RouteSettings, Settings,
};
pub(crate) use validate::is_normal_path;
pub use values::{Cidr, DEFAULT_METRICS, Dur, MetricsListen, Size, StaticDir, UpstreamAddr};

use crate::routes::RouteTable;
use crate::tls::TlsConfig;

/// Resolved settings, shared read-only by all workers.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address (port may be 0 until bound).
    pub listen: SocketAddr,
    /// Worker threads.
    pub workers: usize,
    /// Upstream groups (routes refer to them by index).
    pub groups: Vec<Group>,
    /// The routes.
    pub(crate) routes: RouteTable,
    /// The global limits and timeouts: routes start from them; requests that fail before a
    /// route is known (a bad head) are answered within them.
    pub limits: Limits,
    /// Largest request head.
    pub max_header_size: usize,
    /// Request head timeout.
    pub client_header_timeout: Duration,
    /// Idle keep-alive timeout.
    pub keepalive_timeout: Duration,
    /// Drain deadline on shutdown.
    pub shutdown_timeout: Duration,
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
    /// TLS termination, when `tls.listen` is set.
    pub tls: Option<TlsConfig>,
}

/// An upstream group.
#[derive(Debug, Clone)]
pub struct Group {
    /// Its name (`default` for the `--upstream` flags).
    pub name: String,
    /// Its uWSGI sockets.
    pub servers: Vec<UpstreamAddr>,
    /// Their uWSGI buffer-size: the largest vars block.
    pub buffer_size: usize,
}

/// The limits and timeouts of one request (per route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Reads these flags (and the file they name) into a checked configuration.
    pub fn from_settings(flags: Settings) -> anyhow::Result<Config> {
        flags.resolve()?.validate()
    }

    /// Reads a command line (and the file it names) into a checked configuration.
    pub fn from_args<I, T>(args: I) -> anyhow::Result<Config>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let flags = Settings::try_parse_from(args).map_err(|e| anyhow!(e.to_string()))?;
        Config::from_settings(flags)
    }

    /// Reads a config file's text, as `--config FILE` with no other flag would (`file`
    /// names it in errors).
    pub(crate) fn from_file_text(text: &str, file: &std::path::Path) -> anyhow::Result<Config> {
        let from_file = settings::parse_file(text, file)?;
        Settings::default()
            .resolve_over(from_file, Some(file.to_owned()))?
            .validate()
    }

    /// True if X-Forwarded-Proto/Ssl from `peer` may be passed on.
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(peer))
    }

    /// The routes' metric labels, by index: the path, `=path` for an exact route.
    pub fn route_labels(&self) -> Vec<String> {
        self.routes.iter().map(|r| r.label()).collect()
    }

    /// Every upstream socket of every group (to find the uWSGI processes behind them).
    pub fn all_servers(&self) -> Vec<UpstreamAddr> {
        let mut all: Vec<UpstreamAddr> = Vec::new();
        for server in self.groups.iter().flat_map(|g| &g.servers) {
            if !all.contains(server) {
                all.push(server.clone());
            }
        }
        all
    }
}

#[cfg(test)]
mod tests;
