//! TLS termination end to end (issue 10): real ringway in front of real uWSGI, certificates
//! made in the test, and real clients over real sockets: curl, `openssl s_client`, Python's
//! `ssl`, sslscan. One test binary (`cargo test --test tls`), in these parts:
//!
//! - `handshake`: versions, key formats and chains, SNI, old versions refused, ALPN,
//!   resumption, and sslscan's view of the protocols and suites;
//! - `traffic`: the redirect and HSTS, the environ over TLS, records and pipelining, 10 MiB
//!   each way, close_notify at the end;
//! - `hostile`: the handshake timeout, garbage handshakes, plain HTTP on the TLS port, a bad
//!   record mid-connection;
//! - `client_certs`: client certificates required and optional, revocation lists, what the
//!   app and the access log are told (the same as nginx's `$ssl_client_*`), the versions
//!   offered and session tickets;
//! - `key_exchange`: the key exchange groups (`key_exchange_groups`): a browser gets the
//!   post-quantum hybrid, the classical groups named as nginx's `$ssl_curve` names them, a
//!   group left out of the config refused;
//! - `reload`: broken certificate files refused at start; SIGHUP swaps the certificates,
//!   keeps open connections, survives broken files;
//! - `http2`: HTTP/2 by ALPN (`[tls] http2 = true`, `--http2`) with curl, nghttp and h2load:
//!   what the app and the access log are told, megabytes each way, thousands of streams, the
//!   limits and error answers, GOAWAY after `keepalive_requests` and `keepalive_timeout`,
//!   close_notify at the end, and the same answers as nginx's `listen ... ssl http2`.
//!
//! The Python client is `tests/tools/tls_client.py`; the helpers are in
//! `ringway_tests::tls`.

mod client_certs;
mod handshake;
mod hostile;
mod http2;
mod http2_hostile;
mod key_exchange;
mod reload;
mod traffic;

use std::net::SocketAddr;

use ringway_tests::ringway::RingwayBuilder;
use ringway_tests::tls::{Leaf, Pki, tls_toml};
use ringway_tests::uwsgi::UwsgiOptions;
use ringway_tests::{App, Ringway, Uwsgi};

/// The default certificate's names: the first one configured, served without SNI.
const A_NAMES: [&str; 2] = ["a.test", "www.a.test"];
/// The second certificate's name: a wildcard.
const B_NAME: &str = "*.b.test";
const A_SERIAL: u64 = 0x0A1B_2C3D;
const B_SERIAL: u64 = 0x0B1C_2D3E;
/// notAfter of A and B (distinct, so the expiry metric tells them apart).
const A_NOT_AFTER: (i32, u8, u8) = (2031, 1, 1);
const B_NOT_AFTER: (i32, u8, u8) = (2032, 6, 15);

/// ringway with TLS in front of a uWSGI, and the certificates it serves.
struct Stack {
    pki: Pki,
    /// `a.test` and `www.a.test`: the first certificate (the default).
    a: Leaf,
    /// `*.b.test`.
    b: Leaf,
    ringway: Ringway,
    /// Kept alive for as long as ringway serves it.
    uwsgi: Uwsgi,
}

impl Stack {
    /// Certificates A and B in a `[tls]` config with `extra` lines; `flags` adds command-line
    /// flags. TLS answers get no HSTS unless `extra` says so.
    fn start(app: App, extra: &str, flags: impl FnOnce(RingwayBuilder) -> RingwayBuilder) -> Stack {
        Stack::start_with(UwsgiOptions::new(app), extra, flags)
    }

    /// [`Stack::start`] with uWSGI started with `options`.
    fn start_with(
        options: UwsgiOptions,
        extra: &str,
        flags: impl FnOnce(RingwayBuilder) -> RingwayBuilder,
    ) -> Stack {
        let pki = Pki::new();
        let a = pki.issue("a", &A_NAMES, A_SERIAL, A_NOT_AFTER);
        let b = pki.issue("b", &[B_NAME], B_SERIAL, B_NOT_AFTER);
        let uwsgi = Uwsgi::start_with(options);
        let ringway = flags(Ringway::with(&uwsgi).config(tls_toml(&[&a, &b], extra))).start();
        Stack {
            pki,
            a,
            b,
            ringway,
            uwsgi,
        }
    }

    /// The raw app, certificates A and B, nothing else.
    fn plain(app: App) -> Stack {
        Stack::start(app, "", |b| b)
    }

    /// Also the metrics endpoint (no eBPF probes: only ringway's own counters are read).
    fn with_metrics(extra: &str) -> Stack {
        Stack::start(App::Raw, extra, with_metrics)
    }

    fn tls(&self) -> SocketAddr {
        self.ringway.tls_addr()
    }

    fn plain_addr(&self) -> SocketAddr {
        self.ringway.addr()
    }

    fn metrics(&self) -> String {
        ringway_tests::tls::metrics(self.ringway.metrics_addr())
    }

    /// What the app's uWSGI logged (its request lines among them).
    fn uwsgi_log(&self) -> String {
        self.uwsgi.log()
    }

    fn ca(&self) -> String {
        self.pki.ca().display().to_string()
    }
}

/// `--metrics 127.0.0.1:0 --no-ebpf`.
fn with_metrics(builder: RingwayBuilder) -> RingwayBuilder {
    builder.arg("--metrics", "127.0.0.1:0").flag("--no-ebpf")
}

/// The h2 client (`tests/tools/h2_client.py`) in a scenario that says "ready" and then
/// holds its connection: `across-reload` asks for its path on a new HTTP/2 connection to
/// `addr`, then holds the connection open and idle until [`HeldH2::go`] lets it ask again
/// and report; `stalled-streams` holds streams whose answers it opens no window for. The
/// process is killed on drop.
struct HeldH2 {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl HeldH2 {
    /// Starts `across-reload` (`args`: `--path`, and the scenario's others); its first
    /// answer is not waited for ([`HeldH2::first_answered`] does).
    fn start(addr: SocketAddr, args: &[&std::ffi::OsStr]) -> HeldH2 {
        HeldH2::scenario("across-reload", addr, args)
    }

    /// Starts `scenario` against `addr`, with `args`.
    fn scenario(scenario: &str, addr: SocketAddr, args: &[&std::ffi::OsStr]) -> HeldH2 {
        use std::process::{Command, Stdio};
        let mut child = Command::new(ringway_tests::tls::python())
            .arg(ringway_tests::paths::workspace_root().join("tests/tools/h2_client.py"))
            .arg(scenario)
            .args(["--connect", &addr.to_string()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the h2 client");
        let out = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        HeldH2 { child, out }
    }

    /// Waits for its "ready" (`across-reload`: the first answer came; the connection is
    /// then held, idle).
    fn first_answered(&mut self) {
        use std::io::BufRead;
        let mut ready = String::new();
        self.out.read_line(&mut ready).expect("the first answer");
        assert_eq!(ready.trim(), "ready");
    }

    /// Lets it ask again on the same connection; its report.
    fn go(mut self) -> serde_json::Value {
        use std::io::{Read, Write};
        let mut stdin = self.child.stdin.take().expect("piped stdin");
        writeln!(stdin, "go").expect("tell the client");
        let mut report = String::new();
        self.out.read_to_string(&mut report).expect("the report");
        let _ = self.child.wait();
        serde_json::from_str(report.trim()).expect("JSON")
    }
}

impl Drop for HeldH2 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
