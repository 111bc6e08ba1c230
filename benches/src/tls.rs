//! TLS for the benchmark: the certificate both proxies serve, the rustls client of the
//! handshake cases and of the idle-TLS-connection memory measurement, and what a TLS run saw.
//!
//! - The certificate: ECDSA P-256 (rcgen), made once per run in the scratch directory, for
//!   `localhost` and `127.0.0.1`; ringway and nginx serve the same files.
//! - Every client of the harness offers TLS 1.3 only, one cipher suite
//!   ([`CIPHER_SUITE`], what browsers pick on AES-NI hardware) and X25519: both servers
//!   follow the client's preference, so both end up on the same protocol, suite and group,
//!   and the report shows what was negotiated with each.
//! - The handshake client checks nothing about the server's certificate (nor its
//!   CertificateVerify signature), like h2load: the server's work is the same either way,
//!   and the client's CPU, which shares the machine with the servers, stays low.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, StreamOwned};
use serde::{Deserialize, Serialize};

use crate::client::{self, Answer};

/// The one TLS 1.3 suite the harness's clients offer (h2load `--tls13-ciphers` too).
pub const CIPHER_SUITE: &str = "TLS_AES_128_GCM_SHA256";
/// The one key exchange group they offer (h2load `--groups` too).
pub const GROUP: &str = "X25519";
/// The name the clients ask for (SNI); the certificate has it.
pub const SERVER_NAME: &str = "localhost";

/// A certificate chain and its key on disk.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Makes an ECDSA P-256 self-signed certificate for `localhost` and `127.0.0.1` in `dir`.
pub fn make_certificate(dir: &Path) -> Result<CertFiles> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("generate an ECDSA P-256 key")?;
    let params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_owned(), "127.0.0.1".into()])
        .context("certificate parameters")?;
    let cert = params
        .self_signed(&key)
        .context("self-sign the certificate")?;
    let files = CertFiles {
        cert: dir.join("bench-tls.pem"),
        key: dir.join("bench-tls.key"),
    };
    fs::write(&files.key, key.serialize_pem())
        .with_context(|| format!("write {}", files.key.display()))?;
    fs::set_permissions(&files.key, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restrict {}", files.key.display()))?;
    fs::write(&files.cert, cert.pem())
        .with_context(|| format!("write {}", files.cert.display()))?;
    Ok(files)
}

/// What a TLS run negotiated and how its handshakes went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsSeen {
    /// `TLSv1.3`.
    pub protocol: String,
    /// `TLS_AES_128_GCM_SHA256`.
    pub cipher: String,
    /// `X25519`.
    pub group: String,
    /// Handshakes the client completed (the handshake cases; `None` for keep-alive loads).
    pub handshakes: Option<u64>,
    /// Of them, resumed ones (a TLS 1.3 PSK from a session ticket).
    pub resumed: Option<u64>,
    /// The application protocol the server picked (ALPN): `http/1.1`, `h2`; `None` if it
    /// picked none (or the client did not say). Both servers offer h2, so this is what tells
    /// an HTTP/2 run from an HTTP/1.1 one.
    #[serde(default)]
    pub alpn: Option<String>,
}

impl TlsSeen {
    /// `TLSv1.3 TLS_AES_128_GCM_SHA256 X25519 http/1.1` (the application protocol last, when
    /// known).
    pub fn negotiated(&self) -> String {
        let mut text = format!("{} {} {}", self.protocol, self.cipher, self.group);
        if let Some(alpn) = &self.alpn {
            text.push(' ');
            text.push_str(alpn);
        }
        text
    }

    /// An error unless the server picked `alpn` (the application protocol the case is
    /// about): with h2 offered by both servers, a case measured on the other protocol would
    /// be reported under the wrong name.
    pub fn expect_alpn(&self, alpn: &str) -> Result<()> {
        match self.alpn.as_deref() {
            Some(got) if got == alpn => Ok(()),
            got => bail!(
                "negotiated the application protocol {} instead of {alpn}",
                got.unwrap_or("(none)")
            ),
        }
    }

    /// Resumed handshakes over all handshakes.
    pub fn resumed_fraction(&self) -> Option<f64> {
        match (self.handshakes, self.resumed) {
            (Some(h), Some(r)) if h > 0 => Some(r as f64 / h as f64),
            _ => None,
        }
    }
}

/// The client's rustls configuration: TLS 1.3, [`CIPHER_SUITE`], [`GROUP`], ALPN http/1.1,
/// any certificate accepted; with `resume`, session tickets kept and offered.
pub fn client_config(resume: bool) -> Result<Arc<ClientConfig>> {
    config_offering(resume, vec![b"http/1.1".to_vec()])
}

/// The configuration of the HTTP/2 probe: as [`client_config`] without resumption, offering
/// `h2` before `http/1.1` as h2load and browsers do, so that the server's choice is tested.
pub fn h2_client_config() -> Result<Arc<ClientConfig>> {
    config_offering(false, vec![b"h2".to_vec(), b"http/1.1".to_vec()])
}

fn config_offering(resume: bool, alpn: Vec<Vec<u8>>) -> Result<Arc<ClientConfig>> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites =
        vec![rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256];
    provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
    let provider = Arc::new(provider);
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn;
    config.resumption = if resume {
        Resumption::in_memory_sessions(16)
    } else {
        Resumption::disabled()
    };
    Ok(Arc::new(config))
}

/// Accepts any server certificate and signature (see the module doc).
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS connection of the harness's client.
pub type TlsConn = StreamOwned<ClientConnection, TcpStream>;

/// Connects and completes the handshake.
pub fn connect(addr: SocketAddr, config: &Arc<ClientConfig>, timeout: Duration) -> Result<TlsConn> {
    let tcp = client::connect(addr, timeout)?;
    let name = ServerName::try_from(SERVER_NAME).context("server name")?;
    let conn = ClientConnection::new(Arc::clone(config), name).context("TLS client")?;
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .with_context(|| format!("TLS handshake with {addr}"))?;
    }
    Ok(tls)
}

/// What the connection negotiated.
pub fn seen(conn: &ClientConnection) -> TlsSeen {
    TlsSeen {
        protocol: conn
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .replace("TLSv1_", "TLSv1."),
        cipher: conn
            .negotiated_cipher_suite()
            .map_or("?".to_owned(), |s| suite_name(s.suite())),
        group: conn
            .negotiated_key_exchange_group()
            .map_or("?".to_owned(), |g| format!("{:?}", g.name())),
        handshakes: None,
        resumed: None,
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
    }
}

/// A suite by its IANA (and OpenSSL, h2load) name: rustls says `TLS13_AES_128_GCM_SHA256`
/// for `TLS_AES_128_GCM_SHA256`.
fn suite_name(suite: rustls::CipherSuite) -> String {
    let name = suite.as_str().map_or(format!("{suite:?}"), str::to_owned);
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// Sends `request` on a TLS connection and reads one answer.
pub fn exchange(tls: &mut TlsConn, request: &[u8]) -> Result<Answer> {
    tls.write_all(request).context("write request")?;
    tls.flush().context("flush request")?;
    client::read_answer(tls)
}

/// One request on a new connection, for a probe: the answer and what was negotiated.
pub fn probe(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    request: &[u8],
    timeout: Duration,
) -> Result<(Answer, TlsSeen)> {
    let mut tls = connect(addr, config, timeout)?;
    let answer = exchange(&mut tls, request)?;
    let mut seen = seen(&tls.conn);
    seen.handshakes = Some(1);
    seen.resumed = Some(u64::from(
        tls.conn.handshake_kind() == Some(HandshakeKind::Resumed),
    ));
    Ok((answer, seen))
}

/// The figures of a handshake load.
#[derive(Debug, Clone, Default)]
pub struct HandshakeOutput {
    /// Connections that completed: handshake, request, whole answer.
    pub completed: u64,
    pub resumed: u64,
    /// Connections that failed (connect, handshake, a non-200 answer, a timeout).
    pub errors: u64,
    /// Non-200 answers among the errors.
    pub bad_status: u64,
    pub duration: Duration,
    /// Per connection, from connect() to the answer's last byte, sorted, µs.
    pub latencies_us: Vec<u64>,
    /// What the first completed connection negotiated.
    pub seen: Option<TlsSeen>,
    /// The first error, for the log.
    pub first_error: Option<String>,
}

impl HandshakeOutput {
    /// The `q` quantile (0..=1) of the latencies, µs.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let rank = (q * (self.latencies_us.len() - 1) as f64).round() as usize;
        self.latencies_us[rank.min(self.latencies_us.len() - 1)]
    }
}

/// A connection-per-request load: `clients` threads, each in a loop of connect →
/// handshake → one GET with `Connection: close` → the whole answer → the server's close.
/// With `resume`, each thread keeps its own session tickets (a shared store would run dry
/// with more clients than tickets it holds) and has already made one connection, so that
/// every measured handshake can resume.
pub struct HandshakeLoad {
    addr: SocketAddr,
    request: Arc<Vec<u8>>,
    configs: Vec<Arc<ClientConfig>>,
    /// The load generator's CPUs (`--pin`): each client thread restricts itself to them.
    cpus: Option<Vec<usize>>,
}

/// Time allowed for one connection.
const CONN_TIMEOUT: Duration = Duration::from_secs(10);

impl HandshakeLoad {
    /// Prepares the clients (with `resume`: one unmeasured connection each, for a ticket).
    pub fn new(
        addr: SocketAddr,
        clients: usize,
        resume: bool,
        request: Vec<u8>,
        cpus: Option<Vec<usize>>,
    ) -> Result<Self> {
        let request = Arc::new(request);
        let mut configs = Vec::with_capacity(clients);
        for _ in 0..clients.max(1) {
            let config = client_config(resume)?;
            if resume {
                one_connection(addr, &config, &request).context("warm-up connection")?;
            }
            configs.push(config);
        }
        Ok(Self {
            addr,
            request,
            configs,
            cpus,
        })
    }

    /// Runs for `duration`; connections under way at the end are finished and counted.
    pub fn run(&self, duration: Duration) -> HandshakeOutput {
        let started = Instant::now();
        let deadline = started + duration;
        let failed_fast = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = self
            .configs
            .iter()
            .map(|config| {
                let (config, request, addr) =
                    (Arc::clone(config), Arc::clone(&self.request), self.addr);
                let failed_fast = Arc::clone(&failed_fast);
                let cpus = self.cpus.clone();
                thread::spawn(move || {
                    let mut out = HandshakeOutput::default();
                    let pinned = cpus.as_deref().map_or(Ok(()), crate::sys::set_affinity);
                    if let Err(err) = pinned {
                        out.errors += 1;
                        out.first_error = Some(format!("pin the client to {cpus:?}: {err}"));
                        return out;
                    }
                    while Instant::now() < deadline && !failed_fast.load(Ordering::Relaxed) {
                        match one_connection(addr, &config, &request) {
                            Ok(done) => {
                                out.completed += 1;
                                out.resumed += u64::from(done.resumed);
                                out.latencies_us.push(done.latency.as_micros() as u64);
                                out.seen.get_or_insert(done.seen);
                            }
                            Err(err) => {
                                out.errors += 1;
                                if err.to_string().starts_with("status ") {
                                    out.bad_status += 1;
                                }
                                out.first_error.get_or_insert(format!("{err:#}"));
                                // A server that refuses everything: stop instead of spinning.
                                if out.completed == 0 && out.errors >= 100 {
                                    failed_fast.store(true, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                    out
                })
            })
            .collect();
        let mut total = HandshakeOutput::default();
        for worker in workers {
            let Ok(out) = worker.join() else {
                total.errors += 1;
                total
                    .first_error
                    .get_or_insert_with(|| "a client thread panicked".into());
                continue;
            };
            total.completed += out.completed;
            total.resumed += out.resumed;
            total.errors += out.errors;
            total.bad_status += out.bad_status;
            total.latencies_us.extend(out.latencies_us);
            if total.seen.is_none() {
                total.seen = out.seen;
            }
            if total.first_error.is_none() {
                total.first_error = out.first_error;
            }
        }
        total.duration = started.elapsed();
        total.latencies_us.sort_unstable();
        if let Some(seen) = &mut total.seen {
            seen.handshakes = Some(total.completed);
            seen.resumed = Some(total.resumed);
        }
        total
    }
}

struct Done {
    latency: Duration,
    resumed: bool,
    seen: TlsSeen,
}

/// One connection of the handshake load.
fn one_connection(addr: SocketAddr, config: &Arc<ClientConfig>, request: &[u8]) -> Result<Done> {
    let started = Instant::now();
    let mut tls = connect(addr, config, CONN_TIMEOUT)?;
    let answer = exchange(&mut tls, request)?;
    let latency = started.elapsed();
    if answer.status != 200 {
        bail!("status {}", answer.status);
    }
    let resumed = tls.conn.handshake_kind() == Some(HandshakeKind::Resumed);
    let seen = seen(&tls.conn);
    // The server closes after the answer (`Connection: close`): wait for it, so that the
    // TIME_WAIT is the server's and the client's ports stay free. A close without
    // close_notify is no error here: the answer was complete.
    let mut sink = [0u8; 512];
    loop {
        match tls.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    Ok(Done {
        latency,
        resumed,
        seen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_offers_one_suite_and_one_group() -> Result<()> {
        let config = client_config(false)?;
        let suites: Vec<_> = config
            .crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| suite_name(s.suite()))
            .collect();
        assert_eq!(suites, [CIPHER_SUITE]);
        let groups: Vec<_> = config
            .crypto_provider()
            .kx_groups
            .iter()
            .map(|g| format!("{:?}", g.name()))
            .collect();
        assert_eq!(groups, [GROUP]);
        Ok(())
    }

    #[test]
    fn makes_a_p256_certificate() -> Result<()> {
        let dir = crate::sys::TempDir::new("ringway-bench-cert")?;
        let files = make_certificate(dir.path())?;
        let key = fs::read_to_string(&files.key)?;
        assert!(key.contains("BEGIN PRIVATE KEY"));
        let pair = rcgen::KeyPair::from_pem(&key)?;
        assert!(pair.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256));
        assert!(fs::read_to_string(&files.cert)?.contains("BEGIN CERTIFICATE"));
        Ok(())
    }

    #[test]
    fn percentiles_of_sorted_latencies() {
        let out = HandshakeOutput {
            latencies_us: (1..=100).collect(),
            ..HandshakeOutput::default()
        };
        assert_eq!(out.percentile(0.5), 51);
        assert_eq!(out.percentile(0.99), 99);
        assert_eq!(out.percentile(1.0), 100);
    }
}
