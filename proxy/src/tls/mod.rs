//! TLS termination with rustls.
//!
//! - Provider: rustls's `ring` backend. It builds with a C compiler alone (the `aws-lc-rs`
//!   default needs more of a toolchain), and its P-256, X25519 and AES-GCM code is assembly,
//!   which is what the handshake and bulk costs come down to.
//! - Protocols: TLS 1.3 and 1.2 only, rustls's default cipher suites; ALPN `http/1.1` (no h2:
//!   ringway does not speak HTTP/2 yet). Session resumption: a session cache and tickets.
//! - Certificates: PEM chain and key per name; SNI picks one (SAN names and wildcards), no
//!   SNI or an unknown name gets the first ([`certs`]).
//! - The session is sans-IO ([`stream`]): records go in and out of pooled buffers, the
//!   io_uring socket moves bytes, and the request pipeline reads and writes plaintext
//!   exactly as on a plain connection.
//! - SIGHUP reloads the certificate files: new handshakes use the new ones, sessions already
//!   up carry on; a file that fails to load keeps the old certificates, with a log line.
//!   (kTLS is not used: the project's kernels are built without it.)

mod certs;
mod handshake;
mod stream;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;

pub use certs::CertFiles;
pub(crate) use handshake::{Handshake, accept};
pub(crate) use stream::TlsStream;

/// The TLS settings, checked.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Where to accept TLS.
    pub listen: SocketAddr,
    /// The certificates, the first one the default.
    pub certificates: Vec<CertFiles>,
    /// Answer plain HTTP with a redirect to HTTPS.
    pub redirect_http: bool,
    /// Strict-Transport-Security value for TLS answers.
    pub hsts: Option<String>,
    /// Time a client has to complete its handshake.
    pub handshake_timeout: Duration,
}

/// A certificate's name and expiry, for the metrics.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// Its first DNS name.
    pub name: String,
    /// notAfter, seconds since the epoch.
    pub not_after: i64,
}

/// The rustls server configuration, swapped whole when the certificates are reloaded.
#[derive(Debug)]
pub struct Acceptor {
    files: Vec<CertFiles>,
    current: RwLock<Current>,
}

#[derive(Debug)]
struct Current {
    config: Arc<ServerConfig>,
    certs: Vec<CertInfo>,
}

impl Acceptor {
    /// Loads the certificates and builds the configuration.
    pub fn new(tls: &TlsConfig) -> anyhow::Result<Acceptor> {
        let current = build(&tls.certificates)?;
        Ok(Acceptor {
            files: tls.certificates.clone(),
            current: RwLock::new(current),
        })
    }

    /// The configuration new handshakes use.
    pub(crate) fn config(&self) -> Option<Arc<ServerConfig>> {
        self.current.read().ok().map(|c| Arc::clone(&c.config))
    }

    /// The certificates in use.
    pub fn certificates(&self) -> Vec<CertInfo> {
        self.current
            .read()
            .map(|c| c.certs.clone())
            .unwrap_or_default()
    }

    /// Reads the certificate files again; on failure the old ones stay.
    pub fn reload(&self) -> anyhow::Result<Vec<CertInfo>> {
        let fresh = build(&self.files)?;
        let certs = fresh.certs.clone();
        if let Ok(mut current) = self.current.write() {
            *current = fresh;
        }
        Ok(certs)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build(files: &[CertFiles]) -> anyhow::Result<Current> {
    let provider = provider();
    let resolver = certs::load_all(files, &provider)?;
    let infos = resolver
        .certs()
        .iter()
        .map(|c| CertInfo {
            name: c.label.clone(),
            not_after: c.not_after,
        })
        .collect();
    for cert in resolver.certs() {
        tracing::info!(name = %cert.label, serial = %cert.serial, "TLS certificate loaded");
    }
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    config.ticketer = rustls::crypto::ring::Ticketer::new().context("TLS session tickets")?;
    Ok(Current {
        config: Arc::new(config),
        certs: infos,
    })
}
