//! One server of a group as written, and the addresses it stands for. A host name is
//! resolved when the configuration is read (at start, by `--check-config` and at each
//! reload), as nginx resolves an `upstream` server's name when it loads its
//! configuration: every address the name has becomes a server with the same options.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
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

/// Who is asked for a name's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lookup {
    /// The system's resolver (`/etc/hosts`, then DNS): the daemon's.
    #[default]
    System,
    /// Nobody: `localhost` is 127.0.0.1 and ::1 (as Debian's /etc/hosts has it) and any
    /// other name is not found. For the config fuzzer and tests, whose traffic stays on
    /// this host.
    Offline,
}

impl ServerAt {
    /// The addresses it stands for: itself, or every address its name resolves to, IPv4
    /// ones first, then in address order: a fixed order, so that a reload whose resolver
    /// answers the same addresses in another order (round-robin DNS) changes no server.
    /// (nginx keeps the resolver's order.) The system's resolver blocks: this is called
    /// only where the configuration is read, never on a worker's loop.
    pub fn resolve(&self, lookup: Lookup) -> Result<Vec<UpstreamAddr>, String> {
        let (host, port) = match self {
            ServerAt::Addr(addr) => return Ok(vec![addr.clone()]),
            ServerAt::Name { host, port } => (host.as_str(), *port),
        };
        let mut addrs = match lookup {
            Lookup::System => system_lookup(host, port),
            Lookup::Offline if host == "localhost" => Ok(vec![
                SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
                SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            ]),
            Lookup::Offline => Err("names are not looked up here".to_owned()),
        }
        .map_err(|why| format!("host not found: {host}:{port} ({why})"))?;
        addrs.sort_by_key(|a| (a.is_ipv6(), *a));
        addrs.dedup();
        if addrs.is_empty() {
            return Err(format!("host not found: {host}:{port} (no address)"));
        }
        Ok(addrs.into_iter().map(UpstreamAddr::Tcp).collect())
    }
}

/// `host`'s addresses with `port`, asked as nginx asks (`ngx_inet_resolve_host`):
/// `getaddrinfo` for stream sockets of any family, with `AI_ADDRCONFIG`, so a family the
/// host has no address of (IPv6 in most containers) is left out, `::1` of `localhost`
/// with it.
pub(crate) fn system_lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let name = std::ffi::CString::new(host).map_err(|_| "a NUL byte in the name".to_owned())?;
    // SAFETY: `addrinfo` is a plain C struct, for which all zeroes (null pointers, zero
    // numbers) is the documented way to start the hints.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_STREAM;
    hints.ai_flags = libc::AI_ADDRCONFIG;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: `name` is a NUL-terminated string and `hints` an initialised struct, both
    // alive for the call; on success `list` is set to a list freed below, once.
    let rc = unsafe { libc::getaddrinfo(name.as_ptr(), std::ptr::null(), &hints, &mut list) };
    if rc != 0 {
        if rc == libc::EAI_SYSTEM {
            return Err(std::io::Error::last_os_error().to_string());
        }
        // SAFETY: gai_strerror returns a static NUL-terminated string for any code.
        let why = unsafe { std::ffi::CStr::from_ptr(libc::gai_strerror(rc)) };
        return Err(why.to_string_lossy().into_owned());
    }
    let mut addrs = Vec::new();
    let mut next = list;
    while !next.is_null() {
        // SAFETY: `next` is a node of the list getaddrinfo returned, not freed yet.
        let info = unsafe { &*next };
        let len = info.ai_addrlen as usize;
        let addr = info.ai_addr;
        if !addr.is_null() {
            match info.ai_family {
                libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
                    // SAFETY: an AF_INET address of at least `sockaddr_in`'s size is one.
                    let sin = unsafe { &*addr.cast::<libc::sockaddr_in>() };
                    let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                    addrs.push(SocketAddr::new(ip.into(), port));
                }
                libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
                    // SAFETY: as above, for AF_INET6 and `sockaddr_in6`.
                    let sin6 = unsafe { &*addr.cast::<libc::sockaddr_in6>() };
                    let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                    addrs.push(SocketAddr::V6(SocketAddrV6::new(
                        ip,
                        port,
                        0,
                        sin6.sin6_scope_id,
                    )));
                }
                _ => {}
            }
        }
        next = info.ai_next;
    }
    // SAFETY: `list` came from a successful getaddrinfo and is freed once; nothing read
    // from it is kept.
    unsafe { libc::freeaddrinfo(list) };
    Ok(addrs)
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
        // A path, even a bare `/`, and a `:` after a socket path are URIs in nginx's
        // `proxy_pass` (`http://127.0.0.1:8000/` replaces the location's prefix; in
        // `http://unix:/app.sock:/uri/` the `:` ends the path): taken as part of the
        // address, they would mean something else than they did (found by review).
        let uri = match rest.strip_prefix("unix:") {
            Some(path) => path.find(':').map(|at| &path[at..]),
            None => rest.find('/').map(|at| &rest[at..]),
        };
        if let Some(uri) = uri {
            return Err(format!(
                "invalid upstream {s:?}: a server is an address alone; nginx's proxy_pass \
                 URI ({uri:?}) is the route's upstream_path (`upstream_path = \"/\"` for \
                 proxy_pass http://HOST:PORT/ in a prefix location)"
            ));
        }
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

/// `unix:/path`, `IPv4:PORT`, `[IPv6]:PORT` or `NAME:PORT`; with a `default_port`, the
/// port may be left out. As nginx reads them: an IPv6 address only in brackets (so
/// `::1:80` is not `[::1]:80`), a port of digits from 1 to 65535.
fn place(s: &str, default_port: Option<u16>) -> Result<ServerAt, ()> {
    if s.starts_with("unix:") {
        return s.parse().map(ServerAt::Addr).map_err(drop);
    }
    let tcp = |ip: IpAddr, port| Ok(ServerAt::Addr(UpstreamAddr::Tcp(SocketAddr::new(ip, port))));
    if let Some(bracketed) = s.strip_prefix('[') {
        let (ip, port) = match bracketed.split_once(']').ok_or(())? {
            (ip, "") => (ip, default_port.ok_or(())?),
            (ip, rest) => (ip, port_of(rest.strip_prefix(':').ok_or(())?)?),
        };
        return tcp(ip.parse::<Ipv6Addr>().map_err(drop)?.into(), port);
    }
    let (host, port) = match s.split_once(':') {
        Some((host, port)) => (host, port_of(port)?),
        None => (s, default_port.ok_or(())?),
    };
    if let Some(ip) = ipv4_as_nginx_reads_it(host) {
        return tcp(ip.into(), port);
    }
    // Digits and dots that are no address (`1.2.3`, `1.2.3.256`) are no name either: the
    // system's resolver would read some of them as an address of its own making.
    if !is_host_name(host) || host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(());
    }
    Ok(ServerAt::Name {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// An IPv4 address as nginx's `ngx_inet_addr` reads one: four decimal parts of at most
/// 255, leading zeros allowed (`0127.0.0.1` is 127.0.0.1, where the system's resolver
/// would read octal).
fn ipv4_as_nginx_reads_it(text: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = u8::try_from(part.parse::<u32>().ok()?).ok()?;
    }
    parts.next().is_none().then(|| Ipv4Addr::from(octets))
}

/// A port as nginx takes one: digits only, 1 to 65535.
fn port_of(text: &str) -> Result<u16, ()> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    text.parse::<u16>().ok().filter(|p| *p != 0).ok_or(())
}

/// Letters, digits, `-`, `_` (container service names have them) and dots between labels;
/// a final dot (a fully qualified name) is taken.
fn is_host_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
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
            (
                "http://backend.internal",
                Protocol::Http,
                name("backend.internal", 80),
            ),
            ("http://10.0.0.2", Protocol::Http, tcp("10.0.0.2:80")),
            ("http://[::1]", Protocol::Http, tcp("[::1]:80")),
            ("http://[::1]:8000", Protocol::Http, tcp("[::1]:8000")),
            ("[fd00::1]:3031", Protocol::Uwsgi, tcp("[fd00::1]:3031")),
            (
                "app.internal.:8000",
                Protocol::Uwsgi,
                name("app.internal.", 8000),
            ),
            ("0127.0.0.001:3031", Protocol::Uwsgi, tcp("127.0.0.1:3031")),
            ("http://010.0.0.2", Protocol::Http, tcp("10.0.0.2:80")),
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
            // nginx's proxy_pass URIs: the route's upstream_path instead (found by review).
            "http://web:8000/",
            "http://unix:/run/gunicorn.sock:",
            "http://unix:/tmp/app.sock:/uri/",
            "unix:",
            "http://",
            // As nginx reads them: IPv6 only in brackets, IPv4 never, a port of digits.
            "::1:80",
            "http://fd00::1:2",
            "[127.0.0.1]:80",
            "localhost:+80",
            "127.0.0.1:0",
            "[::1]:0",
            "[::1]x",
            "http://[::1]x",
            "http://[::1]8000",
            "http://[::1]/app",
            "1.2.3.256:80",
            "1.2.3:80",
            "web:80:81",
        ] {
            assert!(at(text).is_err(), "{text} was taken");
        }
    }

    #[test]
    fn a_name_resolves_to_its_addresses_without_asking_dns_here() {
        // `localhost` is in every /etc/hosts, so the system's resolver asks no DNS server
        // for it; no other name is asked of the system in tests.
        let addrs = name("localhost", 3031).resolve(Lookup::System).unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| matches!(a, UpstreamAddr::Tcp(sa)
            if sa.port() == 3031 && sa.ip().is_loopback())));
        let v4_first = addrs
            .iter()
            .map(|a| matches!(a, UpstreamAddr::Tcp(sa) if sa.is_ipv6()));
        assert!(v4_first.clone().is_sorted(), "{addrs:?}");
        let unix = UpstreamAddr::Unix("/run/app.sock".into());
        assert_eq!(
            ServerAt::Addr(unix.clone()).resolve(Lookup::System),
            Ok(vec![unix])
        );
        assert_eq!(
            name("localhost", 80).resolve(Lookup::Offline),
            Ok(vec![
                UpstreamAddr::Tcp("127.0.0.1:80".parse().unwrap()),
                UpstreamAddr::Tcp("[::1]:80".parse().unwrap()),
            ])
        );
        let err = name("web", 80).resolve(Lookup::Offline).unwrap_err();
        assert!(err.starts_with("host not found: web:80"), "{err}");
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
