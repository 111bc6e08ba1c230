//! One server of a group as written, and the addresses it stands for. A host name is
//! resolved when the configuration is read (at start, by `--check-config` and at each
//! reload), as nginx resolves an `upstream` server's name when it loads its
//! configuration: every address the name has becomes a server with the same options,
//! IPv4 ones first.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::server_options::ServerOptions;
use super::values::{UpstreamAddr, serde_as_text};

/// The protocol an upstream group speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// uwsgi (uWSGI's binary protocol): one connection per request.
    Uwsgi,
    /// HTTP/1.1, with connections kept alive in a pool (gunicorn, Granian, uvicorn).
    Http,
}

/// One server of a group as written: `unix:/path`, `IP:PORT` or `NAME:PORT` (uwsgi), or
/// the same after `http://` (HTTP/1.1, where the port may be left out for 80):
/// `http://127.0.0.1:8000`, `http://[::1]:8000`, `http://web:8000`,
/// `http://unix:/run/gunicorn.sock`; then, as in nginx's `server` line, its options:
/// `"unix:/run/a.sock weight=3 backup"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    /// The protocol its scheme (or the lack of one) names.
    pub protocol: Protocol,
    /// Where it listens.
    pub at: ServerAt,
    /// Its weight, failure accounting, backup or down.
    pub options: ServerOptions,
}

/// Where a server listens, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAt {
    /// A socket address or path.
    Addr(UpstreamAddr),
    /// A host name (a container's service name, `localhost`) and a port.
    Name { host: String, port: u16 },
}

impl ServerAt {
    /// The addresses it stands for: itself, or every address its name resolves to (IPv4
    /// first, as nginx orders them). Asks the system's resolver: this blocks, and is called
    /// only where the configuration is read, never on a worker's loop.
    pub fn resolve(&self) -> Result<Vec<UpstreamAddr>, String> {
        let (host, port) = match self {
            ServerAt::Addr(addr) => return Ok(vec![addr.clone()]),
            ServerAt::Name { host, port } => (host.as_str(), *port),
        };
        let found = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("host not found: {host}:{port} ({e})"))?;
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for addr in found {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        if addrs.is_empty() {
            return Err(format!("host not found: {host}:{port} (no address)"));
        }
        addrs.sort_by_key(|a| a.is_ipv6());
        Ok(addrs.into_iter().map(UpstreamAddr::Tcp).collect())
    }
}

impl fmt::Display for ServerAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerAt::Addr(addr) => write!(f, "{addr}"),
            ServerAt::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl FromStr for ServerAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<ServerAddr, String> {
        let mut words = s.split_whitespace();
        let first = words.next().unwrap_or_default();
        let (protocol, at) = server_at(first)?;
        Ok(ServerAddr {
            protocol,
            at,
            options: ServerOptions::parse(first, words)?,
        })
    }
}

/// A server's place, and the protocol its scheme names.
fn server_at(s: &str) -> Result<(Protocol, ServerAt), String> {
    if let Some(rest) = s.strip_prefix("http://") {
        // A trailing slash is how URLs are often written; a path is not something an
        // upstream address can carry.
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let at = place(rest, Some(80)).map_err(|_| {
            format!(
                "invalid upstream {s:?}: expected http://HOST:PORT or http://unix:/path.sock \
                 (e.g. http://127.0.0.1:8000, http://web:8000)"
            )
        })?;
        return Ok((Protocol::Http, at));
    }
    if s.contains("://") && !s.starts_with("unix:") {
        return Err(format!(
            "invalid upstream {s:?}: the schemes are http:// (HTTP/1.1) or none (uwsgi)"
        ));
    }
    let at = place(s, None).map_err(|_| {
        format!(
            "invalid upstream {s:?}: expected unix:/path/app.sock, IP:PORT or NAME:PORT \
             (e.g. 127.0.0.1:3031, app:3031)"
        )
    })?;
    Ok((Protocol::Uwsgi, at))
}

/// `unix:/path`, `IP:PORT`, `[IPv6]:PORT` or `NAME:PORT`; with a `default_port`, the port
/// may be left out.
fn place(s: &str, default_port: Option<u16>) -> Result<ServerAt, ()> {
    if s.starts_with("unix:") {
        return s.parse().map(ServerAt::Addr).map_err(drop);
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(ServerAt::Addr(UpstreamAddr::Tcp(addr)));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((host, port)) if !s.ends_with(']') => (host, port.parse::<u16>().map_err(drop)?),
        _ => (s, default_port.ok_or(())?),
    };
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    if let Ok(ip) = bare.unwrap_or(host).parse::<IpAddr>() {
        return Ok(ServerAt::Addr(UpstreamAddr::Tcp(SocketAddr::new(ip, port))));
    }
    if port == 0 || !is_host_name(host) {
        return Err(());
    }
    Ok(ServerAt::Name {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// Letters, digits, `-`, `_` (container service names have them) and dots between labels.
fn is_host_name(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.protocol {
            Protocol::Uwsgi => write!(f, "{}{}", self.at, self.options),
            Protocol::Http => write!(f, "http://{}{}", self.at, self.options),
        }
    }
}

serde_as_text!(ServerAddr);

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Result<(Protocol, ServerAt), String> {
        s.parse::<ServerAddr>().map(|a| (a.protocol, a.at))
    }

    fn name(host: &str, port: u16) -> ServerAt {
        ServerAt::Name {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn names_addresses_and_paths_parse_as_nginx_writes_them() {
        let tcp = |s: &str| ServerAt::Addr(UpstreamAddr::Tcp(s.parse().unwrap()));
        let cases = [
            ("web:8000", Protocol::Uwsgi, name("web", 8000)),
            (
                "App_1.internal:3031",
                Protocol::Uwsgi,
                name("app_1.internal", 3031),
            ),
            ("127.0.0.1:3031", Protocol::Uwsgi, tcp("127.0.0.1:3031")),
            (
                "http://localhost:8000",
                Protocol::Http,
                name("localhost", 8000),
            ),
            ("http://web:8000/", Protocol::Http, name("web", 8000)),
            (
                "http://backend.internal",
                Protocol::Http,
                name("backend.internal", 80),
            ),
            ("http://10.0.0.2", Protocol::Http, tcp("10.0.0.2:80")),
            ("http://[::1]", Protocol::Http, tcp("[::1]:80")),
            ("http://[::1]:8000", Protocol::Http, tcp("[::1]:8000")),
        ];
        for (text, protocol, place) in cases {
            assert_eq!(at(text), Ok((protocol, place)), "{text}");
        }
    }

    #[test]
    fn the_tutorials_unix_triple_slash_names_the_same_socket() {
        let unix = |p: &str| ServerAt::Addr(UpstreamAddr::Unix(p.into()));
        assert_eq!(
            at("unix:///run/uwsgi/app.sock"),
            Ok((Protocol::Uwsgi, unix("/run/uwsgi/app.sock")))
        );
        assert_eq!(
            at("http://unix:///run/gunicorn.sock"),
            Ok((Protocol::Http, unix("/run/gunicorn.sock")))
        );
        assert_eq!(
            at("unix:/run/app.sock"),
            Ok((Protocol::Uwsgi, unix("/run/app.sock")))
        );
    }

    #[test]
    fn what_is_no_server_is_refused() {
        for text in [
            "web",
            "web:",
            "web:0",
            "web:99999",
            "-web:80",
            "we b:80",
            "web..x:80",
            "https://web:443",
            "uwsgi://web:3031",
            "http://web:80/app",
            "unix:",
            "http://",
        ] {
            assert!(at(text).is_err(), "{text} was taken");
        }
    }

    #[test]
    fn a_name_resolves_to_each_of_its_addresses_ipv4_first() {
        // `localhost` is in every /etc/hosts; whether it also has ::1 depends on the host.
        let addrs = name("localhost", 3031).resolve().unwrap();
        assert_eq!(
            addrs.first(),
            Some(&UpstreamAddr::Tcp("127.0.0.1:3031".parse().unwrap()))
        );
        assert!(addrs.iter().all(|a| matches!(a, UpstreamAddr::Tcp(sa)
            if sa.port() == 3031 && sa.ip().is_loopback())));
        let err = name("no-such-host.invalid", 80).resolve().unwrap_err();
        assert!(
            err.starts_with("host not found: no-such-host.invalid:80"),
            "{err}"
        );
    }

    #[test]
    fn written_back_it_parses_to_the_same() {
        for text in [
            "web:8000 weight=2",
            "http://localhost:8000",
            "unix:/a backup",
        ] {
            let addr: ServerAddr = text.parse().unwrap();
            assert_eq!(addr.to_string().parse::<ServerAddr>(), Ok(addr));
        }
    }
}
