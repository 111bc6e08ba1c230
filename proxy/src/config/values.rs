//! The value types of settings: each parses the same text from a flag and from the TOML file,
//! and writes itself back in a form it parses again (the file and the flags are merged through
//! that form, see [`super::Settings`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::access_log::{SyslogTarget, Template};

/// A size in bytes: `4096`, `16k`, `1m`, `1g` (binary multiples, case-insensitive, optional
/// `b`). In TOML, a number of bytes or such a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl Size {
    /// `n` KiB.
    pub const fn kib(n: u64) -> Size {
        Size(n << 10)
    }

    /// `n` MiB.
    pub const fn mib(n: u64) -> Size {
        Size(n << 20)
    }

    /// The size as a `usize` (sizes are bounded when validated, so this saturates only for
    /// values no check lets through).
    pub fn bytes(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Size, String> {
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
            .map(Size)
            .ok_or_else(|| format!("invalid size {s:?}: expected e.g. 4096, 16k, 1m"))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        d.deserialize_any(NumberOrText {
            expected: "a size: a number of bytes, or text such as \"16k\"",
            number: |n| Ok(Size(n)),
        })
    }
}

/// Reads a setting written either as a TOML integer (handed to `number`) or as text (parsed
/// with `FromStr`), and names what was expected when it is neither: a negative or
/// fractional number gets its own message, not serde's "did not match any variant".
struct NumberOrText<T> {
    expected: &'static str,
    number: fn(u64) -> Result<T, String>,
}

impl<T: FromStr<Err = String>> serde::de::Visitor<'_> for NumberOrText<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected)
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<T, E> {
        (self.number)(n).map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<T, E> {
        match u64::try_from(n) {
            Ok(n) => self.visit_u64(n),
            Err(_) => Err(E::custom(format!(
                "{n} is negative: expected {}",
                self.expected
            ))),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<T, E> {
        Err(E::custom(format!(
            "{n} is not a whole number: expected {}",
            self.expected
        )))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<T, E> {
        s.parse().map_err(E::custom)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// A duration, written as nginx writes its timeouts: `250ms`, `5s`, `2m`, `1h`, `30d`, `2w`,
/// or several in that order (`1h 30m`, `1d12h`); a bare number is seconds. Months and years
/// (`M`, `y`) are refused, as nginx refuses them in a timeout: `"10M"` is a size's spelling,
/// and as 300 days it would end every slow-client protection (found by review). A time that
/// may be that long (`expires`, `fail_timeout`) is read with [`Dur::parse_long`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl Dur {
    /// `n` seconds.
    pub const fn secs(n: u64) -> Dur {
        Dur(Duration::from_secs(n))
    }

    /// A time that may be given in months (`6M`, 30 days each) and years (`1y`, 365 days)
    /// too, as nginx reads its times in seconds (`expires`, `fail_timeout`).
    pub fn parse_long(s: &str) -> Result<Dur, String> {
        parse_time(s, true)
    }
}

/// nginx's time units (`ngx_parse_time`), largest first, in milliseconds: a time names
/// each at most once, in this order.
const TIME_UNITS: [(&str, u64); 8] = [
    ("y", 365 * 86_400_000),
    ("M", 30 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("ms", 1),
    ("m", 60_000),
    ("s", 1000),
];

/// The rank of a unit in the order a time must follow (`ms` comes after `s`, though it is
/// tried before `m` when reading).
fn unit_rank(unit: &str) -> usize {
    ["y", "M", "w", "d", "h", "m", "s", "ms"]
        .iter()
        .position(|u| *u == unit)
        .unwrap_or(usize::MAX)
}

impl FromStr for Dur {
    type Err = String;

    fn from_str(s: &str) -> Result<Dur, String> {
        parse_time(s, false)
    }
}

/// nginx's `ngx_parse_time`: `long` takes months and years too.
fn parse_time(s: &str, long: bool) -> Result<Dur, String> {
    let err = || format!("invalid duration {s:?}: expected e.g. 250ms, 5s, 2m, 1h 30m, 30d");
    let mut rest = s.trim();
    let mut total: u64 = 0;
    let mut last_rank = None;
    if rest.is_empty() {
        return Err(err());
    }
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, after) = rest.split_at(split);
        let n: u64 = digits.parse().map_err(|_| err())?;
        let (unit, ms) = TIME_UNITS
            .iter()
            .find(|(unit, _)| after.starts_with(unit))
            .map_or(("", 1000), |&(unit, ms)| (unit, ms));
        if !long && matches!(unit, "M" | "y") {
            return Err(format!(
                "invalid duration {s:?}: months (M) and years (y) are not taken in a \
                 timeout, as in nginx; minutes are m"
            ));
        }
        let rank = if unit.is_empty() {
            // A bare number ends the time: seconds, after any unit but `s` and `ms`.
            if !after.is_empty() {
                return Err(err());
            }
            unit_rank("s")
        } else {
            unit_rank(unit)
        };
        if last_rank.is_some_and(|last| rank <= last) {
            return Err(err());
        }
        last_rank = Some(rank);
        total = n
            .checked_mul(ms)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(err)?;
        rest = after[unit.len()..].trim_start();
    }
    Ok(Dur(Duration::from_millis(total)))
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        d.deserialize_any(NumberOrText {
            expected: "a duration: a number of seconds, or text such as \"5s\" or \"250ms\"",
            number: |n| {
                n.checked_mul(1000)
                    .map(|ms| Dur(Duration::from_millis(ms)))
                    .ok_or_else(|| format!("{n} seconds is too long"))
            },
        })
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", self.0.as_millis()))
    }
}

/// Implements `Deserialize` and `Serialize` through `FromStr` and `Display`.
macro_rules! serde_as_text {
    ($ty:ty) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                String::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}
pub(super) use serde_as_text;

/// A request rate, written as nginx writes it: `5r/s`, `30r/m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per `unit`.
    pub requests: u32,
    /// Per minute (`r/m`) rather than per second (`r/s`).
    pub per_minute: bool,
}

impl Rate {
    /// The rate in nginx's unit: thousandths of a request per second (`30r/m` is 500).
    pub fn milli_per_second(self) -> u64 {
        let milli = u64::from(self.requests) * 1000;
        if self.per_minute { milli / 60 } else { milli }
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Rate, String> {
        let t = s.trim();
        let (digits, per_minute) = match (t.strip_suffix("r/s"), t.strip_suffix("r/m")) {
            (Some(digits), _) => (digits, false),
            (_, Some(digits)) => (digits, true),
            _ => (t, false),
        };
        match digits.parse::<u32>() {
            Ok(requests) if digits.len() < t.len() => Ok(Rate {
                requests,
                per_minute,
            }),
            _ => Err(format!("invalid rate {s:?}: expected e.g. 5r/s or 30r/m")),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = if self.per_minute { 'm' } else { 's' };
        write!(f, "{}r/{unit}", self.requests)
    }
}

serde_as_text!(Rate);

/// Where a server listens: `unix:/path/app.sock` or `IP:PORT` (a name is resolved into
/// these when the configuration is read: `super::server_addr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAddr {
    /// A unix stream socket (uWSGI `--socket /path`).
    Unix(PathBuf),
    /// A TCP socket (uWSGI `--socket host:port`).
    Tcp(SocketAddr),
}

impl FromStr for UpstreamAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<UpstreamAddr, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            // `unix:///run/app.sock` (the uWSGI tutorial's form): nginx takes the path as it
            // is, and the kernel reads `///run` as `/run`.
            let path = path
                .strip_prefix("//")
                .filter(|p| p.starts_with('/'))
                .unwrap_or(path);
            if path.is_empty() {
                return Err(format!("invalid upstream {s:?}: empty socket path"));
            }
            return Ok(UpstreamAddr::Unix(PathBuf::from(path)));
        }
        s.parse::<SocketAddr>().map(UpstreamAddr::Tcp).map_err(|_| {
            format!(
                "invalid upstream {s:?}: expected unix:/path/app.sock or IP:PORT \
                 (e.g. 127.0.0.1:3031)"
            )
        })
    }
}

impl fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            UpstreamAddr::Tcp(a) => write!(f, "{a}"),
        }
    }
}

serde_as_text!(UpstreamAddr);

/// `redirect_http`, `redirect_forwarded_http`: off, or the status of the redirect to
/// HTTPS. `true` is 301 (nginx's `return 301 https://$host$request_uri;`); a status says
/// itself: `308`, as Mozilla's generator writes the line now (a browser keeps a POST's
/// method and body through a 307 or 308, turns it into a GET after a 301). In TOML `true`,
/// `false` or the number; on the command line the flag alone, or with the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToHttps(pub Option<u16>);

/// The statuses a redirect may have (to HTTPS, or a route's `redirect`); a route's
/// `respond` may have none of them.
pub(crate) const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// What a wrong redirect to HTTPS is told.
const TO_HTTPS_EXPECTED: &str = "true, false, or a redirect status: 301, 302, 303, 307 or 308";

impl ToHttps {
    fn of_status(status: u64) -> Result<ToHttps, String> {
        match u16::try_from(status) {
            Ok(s) if REDIRECT_STATUSES.contains(&s) => Ok(ToHttps(Some(s))),
            _ => Err(format!("{status}: expected {TO_HTTPS_EXPECTED}")),
        }
    }
}

impl FromStr for ToHttps {
    type Err = String;

    fn from_str(s: &str) -> Result<ToHttps, String> {
        match s.trim() {
            "true" => Ok(ToHttps(Some(301))),
            "false" => Ok(ToHttps(None)),
            t => match t.parse::<u64>() {
                Ok(n) => ToHttps::of_status(n),
                Err(_) => Err(format!("{s:?}: expected {TO_HTTPS_EXPECTED}")),
            },
        }
    }
}

impl<'de> Deserialize<'de> for ToHttps {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ToHttps, D::Error> {
        struct Written;
        impl serde::de::Visitor<'_> for Written {
            type Value = ToHttps;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(TO_HTTPS_EXPECTED)
            }

            fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<ToHttps, E> {
                Ok(ToHttps(on.then_some(301)))
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<ToHttps, E> {
                ToHttps::of_status(n).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<ToHttps, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::invalid_value(serde::de::Unexpected::Signed(n), &self)),
                }
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ToHttps, E> {
                text.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Written)
    }
}

impl Serialize for ToHttps {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_bool(false),
            Some(301) => s.serialize_bool(true),
            Some(status) => s.serialize_u16(status),
        }
    }
}

/// A static route given on the command line: `/static/=/srv/app/static`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticDir {
    /// The route's path.
    pub path: String,
    /// The directory it serves.
    pub dir: PathBuf,
}

impl FromStr for StaticDir {
    type Err = String;

    fn from_str(s: &str) -> Result<StaticDir, String> {
        match s.split_once('=') {
            Some((path, dir)) if path.starts_with('/') && !dir.is_empty() => Ok(StaticDir {
                path: path.to_owned(),
                dir: PathBuf::from(dir),
            }),
            _ => Err(format!(
                "invalid static directory {s:?}: expected PATH=DIR, e.g. /static/=/srv/app/static"
            )),
        }
    }
}

impl fmt::Display for StaticDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.path, self.dir.display())
    }
}

serde_as_text!(StaticDir);

/// Where the metrics endpoint listens: an address, several (`["0.0.0.0:9145",
/// "[::]:9145"]`: an IPv6 socket takes IPv6 only, so a dual-stack host lists both), or
/// `off`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsListen {
    /// No endpoint.
    Off,
    /// The default address: if it is taken, run without the endpoint (and say so).
    Default(SocketAddr),
    /// Addresses asked for, at least one: failing to bind one is an error.
    At(Vec<SocketAddr>),
}

/// The default metrics address (loopback: the figures are not for the internet).
pub const DEFAULT_METRICS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9145);

impl FromStr for MetricsListen {
    type Err = String;

    /// `off`, or addresses separated by commas (`--metrics 0.0.0.0:9145,[::]:9145`).
    fn from_str(s: &str) -> Result<MetricsListen, String> {
        if is_off(s) {
            return Ok(MetricsListen::Off);
        }
        s.split(',')
            .map(|one| {
                one.trim().parse().map_err(|_| {
                    format!(
                        "invalid metrics address {one:?}: expected IP:PORT (or several, or off)"
                    )
                })
            })
            .collect::<Result<_, _>>()
            .map(MetricsListen::At)
    }
}

impl MetricsListen {
    /// The addresses served on (none: off), however they were given.
    pub fn addresses(&self) -> &[SocketAddr] {
        match self {
            MetricsListen::Off => &[],
            MetricsListen::Default(a) => std::slice::from_ref(a),
            MetricsListen::At(all) => all,
        }
    }
}

impl fmt::Display for MetricsListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsListen::Off => f.write_str("off"),
            listen => {
                let all: Vec<String> = listen.addresses().iter().map(ToString::to_string).collect();
                f.write_str(&all.join(","))
            }
        }
    }
}

impl<'de> Deserialize<'de> for MetricsListen {
    /// A string as [`MetricsListen::from_str`] reads it, or a list of addresses.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MetricsListen, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = MetricsListen;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address (\"IP:PORT\"), a list of them, or \"off\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<MetricsListen, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<MetricsListen, A::Error> {
                let all = Addresses.visit_seq(seq)?;
                if all.is_empty() {
                    return Err(serde::de::Error::custom(
                        "an empty list: write \"off\" for no metrics endpoint",
                    ));
                }
                Ok(MetricsListen::At(all))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Serialize for MetricsListen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Reads listening addresses written as one (`listen = "0.0.0.0:80"`) or as a list (`listen =
/// ["0.0.0.0:80", "[::]:80"]`, nginx's two `listen` lines).
pub(crate) fn addresses<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    d.deserialize_any(Addresses)
}

/// [`addresses`] for a key whose absence differs from an empty list.
pub(crate) fn optional_addresses<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<SocketAddr>>, D::Error> {
    struct Listed(Vec<SocketAddr>);
    impl<'de> Deserialize<'de> for Listed {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            addresses(d).map(Listed)
        }
    }
    Ok(Option::<Listed>::deserialize(d)?.map(|listed| listed.0))
}

struct Addresses;

impl<'de> serde::de::Visitor<'de> for Addresses {
    type Value = Vec<SocketAddr>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an address (\"IP:PORT\") or a list of them")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(vec![parse_address(s).map_err(E::custom)?])
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut all = Vec::new();
        while let Some(text) = seq.next_element::<String>()? {
            all.push(parse_address(&text).map_err(serde::de::Error::custom)?);
        }
        Ok(all)
    }
}

fn parse_address(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("invalid address {s:?}: expected IP:PORT (\"0.0.0.0:80\", \"[::]:80\")")
    })
}

/// Where the access log goes: a file (appended to), `stderr`, or `off`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// No access log.
    Off,
    /// Lines to stderr, between ringway's own log lines.
    Stderr,
    /// Lines appended to this file.
    File(PathBuf),
    /// Lines sent to a syslog server, written as nginx's `syslog:server=...`.
    Syslog(SyslogTarget),
}

impl FromStr for LogTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<LogTarget, String> {
        // nginx's prefix (without this, its line named a file called `syslog:server=...`).
        if let Some(params) = s.strip_prefix("syslog:") {
            return params.parse().map(LogTarget::Syslog);
        }
        // Any case, as `metrics = "OFF"`: a file called `Off` is surely not what was meant
        // (`./off` still names one).
        match s {
            _ if is_off(s) => Ok(LogTarget::Off),
            _ if s.eq_ignore_ascii_case("stderr") => Ok(LogTarget::Stderr),
            "" => Err("expected a file path, syslog:server=..., stderr or off".into()),
            // nginx's `access_log PATH FORMAT;` copied whole would name a file
            // `access.log combined` that no log rotation knows (found by review). The file's
            // name only: its directory may have a space (a relative path is joined to the
            // config file's directory).
            path if Path::new(path)
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.contains(char::is_whitespace)) =>
            {
                Err(format!(
                    "{path:?}: one file path, without spaces; the format goes in \
                 access_log_format (nginx's `access_log PATH FORMAT;` is two settings here)"
                ))
            }
            path => Ok(LogTarget::File(PathBuf::from(path))),
        }
    }
}

impl fmt::Display for LogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogTarget::Off => f.write_str("off"),
            LogTarget::Stderr => f.write_str("stderr"),
            LogTarget::File(path) => write!(f, "{}", path.display()),
            LogTarget::Syslog(target) => target.fmt(f),
        }
    }
}

serde_as_text!(LogTarget);

/// An access log line's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFormat {
    /// nginx's `combined`, byte for byte.
    Combined,
    /// One JSON object per line.
    Json,
    /// The operator's own, as nginx's `log_format` writes one (`$remote_addr ...`).
    Custom(Arc<Template>),
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s {
            "combined" => Ok(LogFormat::Combined),
            "json" => Ok(LogFormat::Json),
            _ if s.contains('$') => Ok(LogFormat::Custom(Arc::new(Template::parse(s)?))),
            _ => Err(format!(
                "invalid log format {s:?}: expected combined, json, or a format with nginx's \
                 variables ('$remote_addr - $remote_user [$time_local] \"$request\" ...')"
            )),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Combined => "combined",
            LogFormat::Json => "json",
            LogFormat::Custom(template) => template.text(),
        })
    }
}

serde_as_text!(LogFormat);

/// How a custom format's values are escaped: nginx's `log_format ... escape=`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogEscape {
    /// `"`, `\`, control bytes and bytes from 0x7f up as `\xHH`; `-` for a missing value.
    #[default]
    Default,
    /// What a JSON string needs (`\"`, `\\`, `\n`, `\u00XX`...); nothing for a missing value.
    Json,
    /// As sent; nothing for a missing value.
    None,
}

impl FromStr for LogEscape {
    type Err = String;

    fn from_str(s: &str) -> Result<LogEscape, String> {
        match s {
            "default" => Ok(LogEscape::Default),
            "json" => Ok(LogEscape::Json),
            "none" => Ok(LogEscape::None),
            _ => Err(format!(
                "invalid log escape {s:?}: expected default, json or none"
            )),
        }
    }
}

impl fmt::Display for LogEscape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogEscape::Default => "default",
            LogEscape::Json => "json",
            LogEscape::None => "none",
        })
    }
}

serde_as_text!(LogEscape);

/// How long a route's answers may be kept by caches, as nginx's `expires` writes it:
/// `30d` (or any duration, `0` too), `-1h` (already stale), `epoch`, `max`, `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expires {
    /// `Cache-Control: max-age=N`, `Expires` N seconds from now.
    For(u64),
    /// `Cache-Control: no-cache`, `Expires` N seconds before now (a negative time).
    Stale(u64),
    /// `Cache-Control: no-cache`, `Expires: Thu, 01 Jan 1970 00:00:01 GMT`.
    Epoch,
    /// `Cache-Control: max-age=315360000`, `Expires: Thu, 31 Dec 2037 23:55:55 GMT`.
    Max,
    /// Nothing added (nginx's default).
    Off,
}

impl Expires {
    /// nginx's `expires max`: ten years, and its fixed date.
    const MAX_AGE: u64 = 315_360_000;
    const MAX_DATE: u64 = 2_145_916_555;

    /// The `Cache-Control` directives and the `Expires` time (seconds since the epoch) at
    /// `now`; `None` for `off`.
    pub fn at(self, now: u64) -> Option<(CacheFor, u64)> {
        match self {
            Expires::For(secs) => Some((CacheFor::MaxAge(secs), now.saturating_add(secs))),
            Expires::Stale(secs) => Some((CacheFor::NoCache, now.saturating_sub(secs))),
            Expires::Epoch => Some((CacheFor::NoCache, 1)),
            Expires::Max => Some((CacheFor::MaxAge(Self::MAX_AGE), Self::MAX_DATE)),
            Expires::Off => None,
        }
    }
}

/// The `Cache-Control` an `expires` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheFor {
    /// `max-age=N`.
    MaxAge(u64),
    /// `no-cache`.
    NoCache,
}

/// Whether a setting's word is `off`, in any case: one rule for every setting that takes
/// it (as nginx's `on`/`off` flags take any case).
pub(crate) fn is_off(word: &str) -> bool {
    word.eq_ignore_ascii_case("off")
}

impl FromStr for Expires {
    type Err = String;

    fn from_str(s: &str) -> Result<Expires, String> {
        match s.trim() {
            s if is_off(s) => Ok(Expires::Off),
            "epoch" => Ok(Expires::Epoch),
            "max" => Ok(Expires::Max),
            t => {
                let (stale, time) = match t.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => (false, t.strip_prefix('+').unwrap_or(t)),
                };
                let secs = Dur::parse_long(time)
                    .map_err(|_| {
                        format!(
                            "invalid expires {s:?}: expected a time (30d, 12h, 0, -1), \
                             epoch, max or off"
                        )
                    })?
                    .0
                    .as_secs();
                Ok(if stale {
                    Expires::Stale(secs)
                } else {
                    Expires::For(secs)
                })
            }
        }
    }
}

impl fmt::Display for Expires {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expires::For(secs) => write!(f, "{secs}s"),
            Expires::Stale(secs) => write!(f, "-{secs}s"),
            Expires::Epoch => f.write_str("epoch"),
            Expires::Max => f.write_str("max"),
            Expires::Off => f.write_str("off"),
        }
    }
}

impl<'de> Deserialize<'de> for Expires {
    /// Text, or a TOML integer of seconds as `Dur` takes it (negative: already stale).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Expires, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Expires;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a time (30d, 12h, 0, -1, or seconds), epoch, max or off")
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Expires, E> {
                Ok(Expires::For(n))
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Expires, E> {
                Ok(match u64::try_from(n) {
                    Ok(n) => Expires::For(n),
                    Err(_) => Expires::Stale(n.unsigned_abs()),
                })
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Expires, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Serialize for Expires {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A TLS version a client may use (nginx's `ssl_protocols`): `TLSv1.2` or `TLSv1.3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl FromStr for TlsVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<TlsVersion, String> {
        match s {
            "TLSv1.2" => Ok(TlsVersion::Tls12),
            "TLSv1.3" => Ok(TlsVersion::Tls13),
            // nginx configs still list these; they are broken protocols, not an option.
            "SSLv2" | "SSLv3" | "TLSv1" | "TLSv1.1" => Err(format!(
                "{s} is not offered (TLSv1.2 and TLSv1.3 only): leave it out of the list"
            )),
            _ => Err(format!(
                "unknown TLS version {s:?}: expected TLSv1.2 or TLSv1.3"
            )),
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        })
    }
}

serde_as_text!(TlsVersion);

/// A TLS key exchange group (nginx's `ssl_ecdh_curve`), named as OpenSSL names it:
/// `X25519MLKEM768`, `SecP256r1MLKEM768`, `X25519`, `prime256v1`, `secp384r1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyExchangeGroup {
    /// X25519 and ML-KEM-768 together (post-quantum hybrid; TLS 1.3 only).
    X25519Mlkem768,
    /// P-256 and ML-KEM-768 together (post-quantum hybrid; TLS 1.3 only).
    Secp256r1Mlkem768,
    /// X25519.
    X25519,
    /// NIST P-256.
    Secp256r1,
    /// NIST P-384.
    Secp384r1,
}

impl KeyExchangeGroup {
    /// Every group ringway can offer.
    pub const ALL: [KeyExchangeGroup; 5] = [
        KeyExchangeGroup::X25519Mlkem768,
        KeyExchangeGroup::Secp256r1Mlkem768,
        KeyExchangeGroup::X25519,
        KeyExchangeGroup::Secp256r1,
        KeyExchangeGroup::Secp384r1,
    ];

    /// What a server offers unless told otherwise: OpenSSL 3.5's choice (the hybrid first,
    /// then the classical groups browsers offer).
    pub const DEFAULT: [KeyExchangeGroup; 4] = [
        KeyExchangeGroup::X25519Mlkem768,
        KeyExchangeGroup::X25519,
        KeyExchangeGroup::Secp256r1,
        KeyExchangeGroup::Secp384r1,
    ];

    /// OpenSSL's name, as the config takes it and nginx's `$ssl_curve` writes it.
    pub fn name(self) -> &'static str {
        match self {
            KeyExchangeGroup::X25519Mlkem768 => "X25519MLKEM768",
            KeyExchangeGroup::Secp256r1Mlkem768 => "SecP256r1MLKEM768",
            KeyExchangeGroup::X25519 => "X25519",
            KeyExchangeGroup::Secp256r1 => "prime256v1",
            KeyExchangeGroup::Secp384r1 => "secp384r1",
        }
    }

    /// Whether TLS 1.2 can use it (the hybrids are TLS 1.3 only).
    pub fn usable_with_tls12(self) -> bool {
        !matches!(
            self,
            KeyExchangeGroup::X25519Mlkem768 | KeyExchangeGroup::Secp256r1Mlkem768
        )
    }
}

impl FromStr for KeyExchangeGroup {
    type Err = String;

    /// OpenSSL's names, and the aliases it takes for the NIST curves; without case, as
    /// OpenSSL compares them.
    fn from_str(s: &str) -> Result<KeyExchangeGroup, String> {
        match s.to_ascii_lowercase().as_str() {
            "x25519mlkem768" => Ok(KeyExchangeGroup::X25519Mlkem768),
            "secp256r1mlkem768" => Ok(KeyExchangeGroup::Secp256r1Mlkem768),
            "x25519" => Ok(KeyExchangeGroup::X25519),
            "prime256v1" | "secp256r1" | "p-256" => Ok(KeyExchangeGroup::Secp256r1),
            "secp384r1" | "p-384" => Ok(KeyExchangeGroup::Secp384r1),
            "auto" => Err(
                "auto is not a group: leave the setting out for the default \
                 (X25519MLKEM768, X25519, prime256v1, secp384r1)"
                    .to_owned(),
            ),
            _ => Err(format!(
                "key exchange group {s:?} is not offered: expected X25519MLKEM768, \
                 SecP256r1MLKEM768, X25519, prime256v1 or secp384r1"
            )),
        }
    }
}

impl fmt::Display for KeyExchangeGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

serde_as_text!(KeyExchangeGroup);

/// Whether TLS clients are asked for a certificate (nginx's `ssl_verify_client`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VerifyClient {
    /// Not asked.
    #[default]
    Off,
    /// Asked, and required: a handshake without a valid one fails.
    On,
    /// Asked: none is accepted, an invalid one fails the handshake.
    Optional,
}

impl FromStr for VerifyClient {
    type Err = String;

    fn from_str(s: &str) -> Result<VerifyClient, String> {
        match s {
            s if is_off(s) => Ok(VerifyClient::Off),
            "on" => Ok(VerifyClient::On),
            "optional" => Ok(VerifyClient::Optional),
            "optional_no_ca" => Err(
                "optional_no_ca is not offered: a certificate is verified against \
                 client_certificate or refused (use optional)"
                    .to_owned(),
            ),
            _ => Err(format!(
                "invalid verify_client {s:?}: expected on, optional or off"
            )),
        }
    }
}

impl fmt::Display for VerifyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VerifyClient::Off => "off",
            VerifyClient::On => "on",
            VerifyClient::Optional => "optional",
        })
    }
}

serde_as_text!(VerifyClient);

/// A Host a server answers for, as nginx's `server_name` writes it: `app.example.com`,
/// `*.example.com` (any name under it) or `.example.com` (the name and any under it); or an
/// IP address (`192.0.2.1`, `[2001:db8::1]`). Compared without case, port or trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostName {
    /// This name only.
    Exact(String),
    /// Names under this suffix (`.example.com`), not the suffix's own name.
    Under(String),
    /// This name and the names under it (`example.com`).
    AndUnder(String),
}

/// How closely a [`HostName`] names a Host, as nginx ranks the `server_name`s that match
/// one: an exact name before any wildcard, a longer wildcard before a shorter one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HostMatch {
    /// Under a suffix this long (the dot included).
    Wildcard(usize),
    /// The name itself.
    Exact,
}

impl HostName {
    /// Whether some Host is named both by this and by `other`: if any is, one of the
    /// narrower's [`samples`](HostName::samples) is.
    pub fn overlaps(&self, other: &HostName) -> bool {
        self.samples().iter().any(|s| other.matches(s.as_bytes()))
            || other.samples().iter().any(|s| self.matches(s.as_bytes()))
    }

    /// A name this names: the name itself, or a made-up label under a wildcard.
    pub fn sample(&self) -> String {
        match self {
            HostName::Exact(name) | HostName::AndUnder(name) => name.clone(),
            HostName::Under(suffix) => format!("ringway-check{suffix}"),
        }
    }

    /// A name for each way this names Hosts: [`sample`](HostName::sample), and for
    /// `.example.com` a name under it too.
    pub fn samples(&self) -> Vec<String> {
        match self {
            HostName::AndUnder(name) => vec![name.clone(), format!("ringway-check.{name}")],
            _ => vec![self.sample()],
        }
    }

    /// Whether a request's Host (or absolute-form authority) names this.
    pub fn matches(&self, host: &[u8]) -> bool {
        self.how_named(host).is_some()
    }

    /// How this names a request's Host (or absolute-form authority), if it does.
    pub fn how_named(&self, host: &[u8]) -> Option<HostMatch> {
        let host = crate::http::host_without_port(host);
        let host = host.strip_suffix(b".").unwrap_or(host);
        // `host` ends with `suffix` (ASCII, any case) and has more before it.
        let under = |suffix: &str| {
            host.len() > suffix.len()
                && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
        };
        // An IPv6 address is the same however it is written (`[2001:db8:0::1]`, as a client
        // may send it, is `[2001:db8::1]`; found by review: only the short form matched).
        let exact = |name: &str| {
            host.eq_ignore_ascii_case(name.as_bytes())
                || v6_literal(host).is_some_and(|ip| v6_literal(name.as_bytes()) == Some(ip))
        };
        match self {
            HostName::Exact(name) => exact(name).then_some(HostMatch::Exact),
            HostName::Under(suffix) => under(suffix).then_some(HostMatch::Wildcard(suffix.len())),
            HostName::AndUnder(name) if exact(name) => Some(HostMatch::Exact),
            HostName::AndUnder(name) => (under(name) && host[host.len() - name.len() - 1] == b'.')
                .then_some(HostMatch::Wildcard(name.len() + 1)),
        }
    }
}

/// The IPv6 address a bracketed Host (without its port) names.
fn v6_literal(host: &[u8]) -> Option<std::net::Ipv6Addr> {
    let inside = host.strip_prefix(b"[")?.strip_suffix(b"]")?;
    std::str::from_utf8(inside).ok()?.parse().ok()
}

impl FromStr for HostName {
    type Err = String;

    fn from_str(s: &str) -> Result<HostName, String> {
        let err = || {
            format!(
                "invalid host {s:?}: expected a name (app.example.com), *.example.com, \
                 .example.com or an IP address"
            )
        };
        let lower = s.trim().to_ascii_lowercase();
        let bracketed = lower.strip_prefix('[').and_then(|v| v.strip_suffix(']'));
        // An IPv6 address is named in brackets, as a Host carries it (found by review:
        // written bare, it was taken and never matched).
        if let Ok(v6) = bracketed.unwrap_or(&lower).parse::<std::net::Ipv6Addr>() {
            return Ok(HostName::Exact(format!("[{v6}]")));
        }
        if lower.parse::<IpAddr>().is_ok() {
            return Ok(HostName::Exact(lower));
        }
        let (make, name): (fn(String) -> HostName, &str) =
            if let Some(rest) = lower.strip_prefix("*.") {
                (|n| HostName::Under(format!(".{n}")), rest)
            } else if let Some(rest) = lower.strip_prefix('.') {
                (HostName::AndUnder, rest)
            } else {
                (HostName::Exact, lower.as_str())
            };
        // `_` as a request's Host may have it (a docker-compose service name, `my_app`),
        // and as nginx takes it in `server_name` (found by review).
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() || !name.split('.').all(label_ok) {
            return Err(err());
        }
        Ok(make(name.to_owned()))
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostName::Exact(name) => f.write_str(name),
            HostName::Under(suffix) => write!(f, "*{suffix}"),
            HostName::AndUnder(name) => write!(f, ".{name}"),
        }
    }
}

serde_as_text!(HostName);

/// An address range: `10.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    /// True for `0.0.0.0/0` and `::/0`.
    pub fn holds_everyone(&self) -> bool {
        self.bits == 0
    }

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

/// `addr` with every bit past the first `bits` cleared.
fn network_of(addr: IpAddr, bits: u8) -> IpAddr {
    fn masked<const N: usize>(mut octets: [u8; N], bits: u8) -> [u8; N] {
        for (i, octet) in octets.iter_mut().enumerate() {
            let kept = usize::from(bits).saturating_sub(i * 8).min(8);
            *octet &= !(0xffu16 >> kept) as u8;
        }
        octets
    }
    match addr {
        IpAddr::V4(v4) => IpAddr::from(masked(v4.octets(), bits)),
        IpAddr::V6(v6) => IpAddr::from(masked(v6.octets(), bits)),
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

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
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
        if let IpAddr::V6(v6) = addr
            && let Some(v4) = v6.to_ipv4_mapped()
            && bits >= 96
        {
            // Peers in that form are matched as the IPv4 addresses they are, as nginx's
            // ngx_cidr_match does: the range could never match anyone.
            return Err(format!(
                "{s:?} is an IPv4-mapped range, which no peer is matched as: write {v4}/{}",
                bits - 96
            ));
        }
        // nginx warns that such bits are meaningless and takes the range; a range written
        // with a host's address is as likely meant as that host alone (found by review:
        // `192.168.1.10/24` was read as the whole /24 without a word).
        let network = Cidr {
            addr: network_of(addr, bits),
            bits,
        };
        if network.addr != addr {
            return Err(format!(
                "{s:?} has address bits set past its /{bits} prefix: write {} for the range, \
                 or {addr} for the one address",
                network
            ));
        }
        Ok(network)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.bits)
    }
}

serde_as_text!(Cidr);

/// An entry of a route's `allow` or `deny`: an address range, or `all` (nginx's `allow
/// all;`, `deny all;`), every client of either family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRange {
    /// `all`.
    Everyone,
    /// A range.
    Range(Cidr),
}

impl ClientRange {
    /// True if `ip` lies in this range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match self {
            ClientRange::Everyone => true,
            ClientRange::Range(cidr) => cidr.contains(ip),
        }
    }

    /// Its prefix length: between two entries that hold one client, the larger is the
    /// narrower (both then have that client's family; `all` is as broad as a `/0`).
    pub fn prefix_len(&self) -> u8 {
        match self {
            ClientRange::Everyone => 0,
            ClientRange::Range(cidr) => cidr.bits,
        }
    }
}

impl FromStr for ClientRange {
    type Err = String;

    fn from_str(s: &str) -> Result<ClientRange, String> {
        match s {
            "all" => Ok(ClientRange::Everyone),
            _ => s
                .parse()
                .map(ClientRange::Range)
                .map_err(|e| format!("{e}, or all")),
        }
    }
}

impl fmt::Display for ClientRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientRange::Everyone => f.write_str("all"),
            ClientRange::Range(cidr) => cidr.fmt(f),
        }
    }
}

serde_as_text!(ClientRange);

/// The header a trusted proxy names the client in (nginx's `real_ip_header`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RealIpHeader {
    /// X-Forwarded-For: every such header, one list (the default).
    #[default]
    ForwardedFor,
    /// Another header (`X-Real-IP`, `CF-Connecting-IP`): the first one, as nginx reads
    /// it. Its name in lower case.
    Named(String),
}

impl RealIpHeader {
    /// The header's name in lower case.
    pub fn name(&self) -> &str {
        match self {
            RealIpHeader::ForwardedFor => "x-forwarded-for",
            RealIpHeader::Named(name) => name,
        }
    }
}

impl FromStr for RealIpHeader {
    type Err = String;

    fn from_str(s: &str) -> Result<RealIpHeader, String> {
        if s == "proxy_protocol" {
            return Err(
                "the PROXY protocol is not a header: set proxy_protocol = true, \
                 whose source address is then the connection's"
                    .into(),
            );
        }
        if s.is_empty() || !s.bytes().all(crate::http::is_token) {
            return Err(format!(
                "{s:?} is not a header name (letters, digits and !#$%&'*+-.^_`|~)"
            ));
        }
        let name = s.to_ascii_lowercase();
        // Its entries are `for=192.0.2.7;proto=https`, never a bare address: read as a
        // list of addresses it would name no client, silently (found by review), as in
        // nginx, whose real_ip module does not parse it either.
        if name == "forwarded" {
            return Err(
                "the Forwarded header (RFC 7239) is not read: have the balancer send \
                        X-Forwarded-For (HAProxy: `option forwardfor`), the default"
                    .into(),
            );
        }
        Ok(if name == "x-forwarded-for" {
            RealIpHeader::ForwardedFor
        } else {
            RealIpHeader::Named(name)
        })
    }
}

impl fmt::Display for RealIpHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

serde_as_text!(RealIpHeader);

/// Statuses an access log line is written for, one entry of `access_log_statuses`: a class
/// (`4xx`) or a status (`499`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoggedStatus {
    /// Every status from `N00` to `N99`.
    Class(u16),
    /// One status.
    Code(u16),
}

impl LoggedStatus {
    /// The statuses it stands for.
    pub fn range(self) -> std::ops::RangeInclusive<u16> {
        match self {
            LoggedStatus::Class(n) => n * 100..=n * 100 + 99,
            LoggedStatus::Code(code) => code..=code,
        }
    }
}

impl FromStr for LoggedStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<LoggedStatus, String> {
        let bad = || {
            format!(
                "{s:?} is not a status: expected a class (1xx to 5xx) or a status from 100 to \
                 599 (499: the client left before its answer)"
            )
        };
        let lower = s.to_ascii_lowercase();
        if let Some(class) = lower.strip_suffix("xx") {
            return match class.parse::<u16>() {
                Ok(n) if (1..=5).contains(&n) && class.len() == 1 => Ok(LoggedStatus::Class(n)),
                _ => Err(bad()),
            };
        }
        match s.parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) && s.len() == 3 => Ok(LoggedStatus::Code(code)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for LoggedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoggedStatus::Class(n) => write!(f, "{n}xx"),
            LoggedStatus::Code(code) => write!(f, "{code}"),
        }
    }
}

serde_as_text!(LoggedStatus);

/// The statuses the access log writes lines for (all, unless `access_log_statuses` says):
/// one bit for each of 0 to 1023, an app's answer being any from 100 to 999 (found by
/// review: those past 639 had no bit, and no line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoggedStatuses([u64; 16]);

impl LoggedStatuses {
    /// Every status.
    pub const ALL: LoggedStatuses = LoggedStatuses([u64::MAX; 16]);

    /// Those of `list`.
    pub fn of(list: &[LoggedStatus]) -> LoggedStatuses {
        let mut bits = [0; 16];
        for status in list.iter().flat_map(|s| s.range()) {
            bits[usize::from(status / 64)] |= 1 << (status % 64);
        }
        LoggedStatuses(bits)
    }

    /// Whether a request answered `status` (499: none) gets a line.
    pub fn contains(&self, status: u16) -> bool {
        self.0
            .get(usize::from(status / 64))
            .is_some_and(|bits| bits & (1 << (status % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let size = |s: &str| s.parse::<Size>().map(|s| s.0);
        assert_eq!(size("4096"), Ok(4096));
        assert_eq!(size("16k"), Ok(16384));
        assert_eq!(size("1M"), Ok(1 << 20));
        assert_eq!(size("2g"), Ok(2 << 30));
        assert_eq!(size("8kb"), Ok(8192));
        assert!(size("").is_err());
        assert!(size("k").is_err());
        assert!(size("-1").is_err());
        assert!(size("99999999999999999999g").is_err());
    }

    #[test]
    fn durations() {
        let dur = |s: &str| s.parse::<Dur>().map(|d| d.0);
        assert_eq!(dur("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(dur("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(dur("5"), Ok(Duration::from_secs(5)));
        assert_eq!(dur("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(dur("30d"), Ok(Duration::from_secs(2_592_000)));
        assert!(dur("5x").is_err());
        assert!(dur("s").is_err());
        assert!(dur("").is_err());
        // nginx's other units and compound times; months and years only where nginx takes
        // them (expires, fail_timeout), not in a timeout, where "10M" is a slip for a size.
        let long = |s: &str| Dur::parse_long(s).map(|d| d.0);
        assert_eq!(long("1y"), Ok(Duration::from_secs(31_536_000)));
        assert_eq!(long("6M"), Ok(Duration::from_secs(6 * 2_592_000)));
        assert_eq!(long("1M 2d"), Ok(Duration::from_secs(32 * 86_400)));
        assert!(dur("1y").unwrap_err().contains("minutes are m"));
        assert!(dur("10M").is_err());
        assert!(dur("1M 2d").is_err());
        assert_eq!(dur("52w"), Ok(Duration::from_secs(52 * 604_800)));
        assert_eq!(dur("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(dur("1h 30m 5"), Ok(Duration::from_secs(5405)));
        assert_eq!(dur("1d 12h"), Ok(Duration::from_secs(129_600)));
        assert_eq!(dur("1s500ms"), Ok(Duration::from_millis(1500)));
        // Each unit once, largest first, as nginx refuses the rest.
        assert!(dur("30m1h").is_err());
        assert!(dur("1m1m").is_err());
        assert!(dur("1h 30x").is_err());
        assert!(long("99999999999y").is_err());
    }

    #[test]
    fn values_write_what_they_read() {
        assert_eq!(json(&Size(16384)), "16384");
        assert_eq!(json(&Dur(Duration::from_millis(1500))), "\"1500ms\"");
        assert_eq!(
            json(&"unix:/run/a.sock".parse::<UpstreamAddr>().unwrap()),
            "\"unix:/run/a.sock\""
        );
        assert_eq!(
            json(&"10.1.0.0/16".parse::<Cidr>().unwrap()),
            "\"10.1.0.0/16\""
        );
        assert_eq!(json(&MetricsListen::Off), "\"off\"");
        let back: Dur = serde_json::from_str("\"1500ms\"").unwrap();
        assert_eq!(back, Dur(Duration::from_millis(1500)));
        let back: Cidr = serde_json::from_str("\"10.1.0.0/16\"").unwrap();
        assert_eq!(back, "10.1.0.0/16".parse().unwrap());
    }

    fn json<T: Serialize>(value: &T) -> String {
        serde_json::to_string(value).unwrap()
    }

    #[test]
    fn upstreams() {
        let up = |s: &str| s.parse::<UpstreamAddr>();
        assert_eq!(
            up("unix:/run/app.sock"),
            Ok(UpstreamAddr::Unix("/run/app.sock".into()))
        );
        assert_eq!(
            up("127.0.0.1:3031"),
            Ok(UpstreamAddr::Tcp("127.0.0.1:3031".parse().unwrap()))
        );
        assert!(up("unix:").is_err());
        assert!(up("localhost:3031").is_err());
    }

    #[test]
    fn cidrs() {
        let cidr = |s: &str| s.parse::<Cidr>().unwrap();
        let net = cidr("10.1.0.0/16");
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one = cidr("127.0.0.1");
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let odd = cidr("192.168.0.0/23");
        assert!(odd.contains("192.168.1.200".parse().unwrap()));
        assert!(!odd.contains("192.168.2.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
    }

    #[test]
    fn rates() {
        let rate = |s: &str| s.parse::<Rate>().map(Rate::milli_per_second);
        assert_eq!(rate("5r/s"), Ok(5000));
        assert_eq!(rate("30r/m"), Ok(500));
        assert_eq!(rate("1r/m"), Ok(16), "nginx's arithmetic: 1000 / 60");
        assert_eq!(
            " 10r/s ".parse::<Rate>().map(|r| r.to_string()),
            Ok("10r/s".into())
        );
        for bad in ["5", "r/s", "5r/h", "-1r/s", "5 r/s", "1.5r/s", ""] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?}");
        }
        assert_eq!(json(&"30r/m".parse::<Rate>().unwrap()), "\"30r/m\"");
    }

    #[test]
    fn host_names_match_as_nginx_server_name_does() {
        let name = |s: &str| s.parse::<HostName>().unwrap();
        let exact = name("App.Example.com");
        for host in [
            "app.example.com",
            "APP.example.com:8080",
            "app.example.com.",
        ] {
            assert!(exact.matches(host.as_bytes()), "{host}");
        }
        for host in [
            "example.com",
            "x.app.example.com",
            "app.example.com.evil",
            "",
        ] {
            assert!(!exact.matches(host.as_bytes()), "{host}");
        }
        // An IPv6 address however it is written (found by review).
        let v6 = name("[2001:db8:0::1]");
        for host in [
            "[2001:db8::1]",
            "[2001:DB8:0:0::1]:8080",
            "[2001:0db8::0001]",
        ] {
            assert!(v6.matches(host.as_bytes()), "{host}");
        }
        assert!(!v6.matches(b"[2001:db8::2]") && !v6.matches(b"2001:db8::1"));
        let under = name("*.example.com");
        assert!(under.matches(b"a.example.com") && under.matches(b"a.b.example.com:80"));
        assert!(!under.matches(b"example.com") && !under.matches(b"badexample.com"));
        let and_under = name(".example.com");
        assert!(and_under.matches(b"example.com") && and_under.matches(b"a.example.com"));
        assert!(!and_under.matches(b"badexample.com"));
        assert!(name("[::1]").matches(b"[::1]:8080"));
        assert!(name("::1").matches(b"[::1]:8080"));
        assert!(name("2001:DB8:0::1").matches(b"[2001:db8::1]"));
        assert!(name("192.0.2.1").matches(b"192.0.2.1:80"));
        for bad in [
            "", "*.", "a..b", "-a.com", "a b.com", "a.com/x", "*.*.com", "http://a",
        ] {
            assert!(bad.parse::<HostName>().is_err(), "{bad:?}");
        }
        assert_eq!(name("*.Example.com").to_string(), "*.example.com");
    }

    #[test]
    fn log_targets_off_and_stderr_in_any_case() {
        for off in ["off", "Off", "OFF"] {
            assert_eq!(off.parse(), Ok(LogTarget::Off));
        }
        assert_eq!("Stderr".parse(), Ok(LogTarget::Stderr));
        assert_eq!("./off".parse(), Ok(LogTarget::File(PathBuf::from("./off"))));
    }

    /// nginx's `syslog:` line names a server, not a file called `syslog:server=...`.
    #[test]
    fn log_targets_syslog_as_nginx_writes_them() {
        let line = "syslog:server=127.0.0.1:5514,facility=local0,tag=web";
        let Ok(LogTarget::Syslog(target)) = line.parse::<LogTarget>() else {
            panic!("{line} is not a syslog target");
        };
        assert_eq!((target.facility, target.tag.as_str()), (16, "web"));
        assert_eq!(LogTarget::Syslog(target).to_string(), line);
        assert!("syslog:".parse::<LogTarget>().is_err());
        assert!("syslog:tag=web".parse::<LogTarget>().is_err());
    }

    #[test]
    fn metrics_listen() {
        assert_eq!("off".parse(), Ok(MetricsListen::Off));
        assert_eq!(
            "127.0.0.1:9200".parse(),
            Ok(MetricsListen::At(vec!["127.0.0.1:9200".parse().unwrap()]))
        );
        let both: MetricsListen = "0.0.0.0:9145, [::]:9145".parse().unwrap();
        assert_eq!(
            both.addresses(),
            [
                "0.0.0.0:9145".parse().unwrap(),
                "[::]:9145".parse().unwrap()
            ]
        );
        assert_eq!(both.to_string(), "0.0.0.0:9145,[::]:9145");
        assert!("9200".parse::<MetricsListen>().is_err());
        assert!("127.0.0.1:9200,".parse::<MetricsListen>().is_err());
        // In the file, a list too; an empty one is refused (`off` says none).
        let file = |text: &str| toml::from_str::<crate::config::Settings>(text).map(|s| s.metrics);
        assert_eq!(
            file("metrics = [\"0.0.0.0:9145\", \"[::]:9145\"]").unwrap(),
            Some(both)
        );
        assert!(file("metrics = []").is_err());
        assert_eq!(file("metrics = \"off\"").unwrap(), Some(MetricsListen::Off));
    }

    #[test]
    fn logged_statuses_are_classes_and_codes() {
        let list: Vec<LoggedStatus> = ["1xx", "4XX", "5xx", "304"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let logged = LoggedStatuses::of(&list);
        for (status, is) in [
            (101, true),
            (200, false),
            (299, false),
            (304, true),
            (301, false),
            (400, true),
            (499, true),
            (503, true),
            (599, true),
        ] {
            assert_eq!(logged.contains(status), is, "{status}");
        }
        assert!(LoggedStatuses::ALL.contains(200) && LoggedStatuses::ALL.contains(499));
        // An app may answer any status up to 999 (found by review: past 639, no line).
        for status in [640, 799, 999] {
            assert!(LoggedStatuses::ALL.contains(status), "{status}");
        }
        for bad in [
            "6xx", "0xx", "xx", "4x", "44xx", "99", "600", "2000", "abc", "+404", "",
        ] {
            assert!(bad.parse::<LoggedStatus>().is_err(), "{bad:?}");
        }
        assert_eq!("4xx".parse::<LoggedStatus>().unwrap().to_string(), "4xx");
    }
}
