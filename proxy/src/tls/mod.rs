//! TLS termination with rustls.
//!
//! - Provider: rustls's `aws-lc-rs` backend, for its post-quantum hybrid key exchange
//!   (X25519MLKEM768, offered first) beside X25519, P-256 and P-384; `key_exchange_groups`
//!   narrows the set. Its P-256, X25519 and AES-GCM code is assembly: the key exchange and
//!   signature are about a third of a full handshake's CPU, sealing about a tenth of a large
//!   answer's (much of the rest is the kernel's). See docs/ARCHITECTURE.md, "TLS".
//! - Protocols: TLS 1.3 and 1.2 (or one of them: `protocols`), rustls's default cipher
//!   suites; ALPN `http/1.1` and `http/1.0`, and `h2` first with `http2 = true` (see
//!   `http2/`). Session resumption: a session cache, and tickets unless
//!   `session_tickets = false`.
//! - Client certificates when asked for ([`client_auth`]); what the session agreed and the
//!   client proved is read once after the handshake ([`peer`]).
//! - Certificates: PEM chain and key per name; SNI picks one (SAN names and wildcards), no
//!   SNI or an unknown name gets the first ([`certs`]).
//! - The session is sans-IO ([`stream`]): records go in and out of pooled buffers, the
//!   io_uring socket moves bytes, and the request pipeline reads and writes plaintext
//!   exactly as on a plain connection.
//! - SIGHUP reloads the certificate files (a new [`Acceptor`] in the new configuration
//!   generation): new handshakes use the new ones, sessions already up carry on; a file that
//!   fails to load keeps the old generation whole, with a log line.
//!   (kTLS is not used: the project's kernels are built without it.)

mod certs;
mod client_auth;
mod handshake;
mod peer;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::ServerConfig;
use sha2::Digest as _;

use crate::config::{KeyExchangeGroup, TlsVersion};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;

pub use certs::CertFiles;
pub use client_auth::ClientAuth;
pub(crate) use handshake::{Handshake, accept};
pub(crate) use peer::Peer;
pub use peer::{CertField, ClientCert, HEADER_PREFIX, PeerCert};
pub(crate) use stream::TlsStream;

/// The TLS settings, checked.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Where to accept TLS, at least one address.
    pub listen: Vec<SocketAddr>,
    /// The certificates, the first one the default.
    pub certificates: Vec<CertFiles>,
    /// Answer plain HTTP with a redirect to HTTPS, of this status.
    pub redirect_http: Option<u16>,
    /// The port that redirect names (`None`: the first TLS listener's).
    pub redirect_port: Option<u16>,
    /// Strict-Transport-Security value for TLS answers.
    pub hsts: Option<String>,
    /// Time a client has to complete its handshake.
    pub handshake_timeout: Duration,
    /// Offer HTTP/2 (ALPN `h2`) before HTTP/1.1.
    pub http2: bool,
    /// The versions offered, at least one.
    pub protocols: Vec<TlsVersion>,
    /// Plaintext bytes per record sent (`None`: TLS's maximum, 16 KiB).
    pub record_size: Option<usize>,
    /// Fail the handshake of a client that names no certificate's name (or none), rather
    /// than serve it the first certificate.
    pub reject_unknown_names: bool,
    /// The key exchange groups accepted, at least one usable with each version.
    pub key_exchange_groups: Vec<KeyExchangeGroup>,
    /// Resumption from stateless tickets as well as from the session cache.
    pub session_tickets: bool,
    /// Client certificates, when asked for.
    pub client_auth: Option<ClientAuth>,
}

/// A certificate's name, file and expiry, for the metrics.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertInfo {
    /// Its first DNS name (SAN, else CN).
    pub name: String,
    /// Its certificate file, as configured: two certificates may share a name (an RSA and
    /// an ECDSA one, say), and the file keeps their series apart.
    pub file: String,
    /// notAfter, seconds since the epoch.
    pub not_after: i64,
}

/// The rustls server configuration of one configuration generation. SIGHUP builds a whole
/// new generation, and with it a new `Acceptor`; handshakes started before keep the `Arc` of
/// the old configuration.
#[derive(Debug)]
pub struct Acceptor {
    config: Arc<ServerConfig>,
    certs: Vec<CertInfo>,
    /// Every certificate chain served, in order, and what client certificates are checked
    /// against: a reload that leaves them all alone keeps the session cache and ticket keys
    /// (a resumed session skips the client's certificate check).
    chains: Vec<Vec<CertificateDer<'static>>>,
    clients: Option<Vec<Vec<u8>>>,
    /// Names what client certificates are checked against (0: none are asked for): a
    /// session records it, and a connection whose session was checked under other rules
    /// is closed when it moves to this generation.
    client_rules: u64,
    /// The client's certificate itself goes to the app.
    pass_pem: bool,
}

impl Acceptor {
    /// Loads the certificates and builds the configuration. If `previous` (the generation
    /// before) served the very same certificate chains, its session cache and ticket keys
    /// carry over, so a reload that does not touch TLS costs no client a full handshake; a
    /// changed certificate starts fresh ones.
    pub fn new(tls: &TlsConfig, previous: Option<&Acceptor>) -> anyhow::Result<Acceptor> {
        let provider = provider(&tls.key_exchange_groups);
        let resolver = Arc::new(certs::load_all(
            &tls.certificates,
            &provider,
            tls.reject_unknown_names,
        )?);
        let certs = resolver
            .certs()
            .iter()
            .map(|c| CertInfo {
                name: c.label.clone(),
                file: c.file.clone(),
                not_after: c.not_after,
            })
            .collect();
        let chains: Vec<_> = resolver
            .certs()
            .iter()
            .map(|c| c.chain().to_vec())
            .collect();
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = tls
            .protocols
            .iter()
            .map(|v| match v {
                TlsVersion::Tls12 => &rustls::version::TLS12,
                TlsVersion::Tls13 => &rustls::version::TLS13,
            })
            .collect();
        let verifier = tls
            .client_auth
            .as_ref()
            .map(|auth| auth.load(&provider))
            .transpose()?;
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions)
            .context("TLS protocol versions")?;
        let (builder, clients) = match verifier {
            Some(v) => (
                builder.with_client_cert_verifier(v.verifier),
                Some(v.material),
            ),
            None => (builder.with_no_client_auth(), None),
        };
        let mut config = builder.with_cert_resolver(Arc::clone(&resolver) as _);
        // rustls counts the record's 5-byte header in; nginx's `ssl_buffer_size` does not.
        config.max_fragment_size = tls.record_size.map(|plain| plain + RECORD_HEADER);
        // `http/1.0` as nginx offers it: a client that offers only that (`curl --http1.0`)
        // fails the handshake otherwise (rustls ends it when nothing offered is known).
        let http1 = [b"http/1.1".to_vec(), b"http/1.0".to_vec()];
        config.alpn_protocols = if tls.http2 {
            std::iter::once(crate::http2::ALPN.to_vec())
                .chain(http1)
                .collect()
        } else {
            http1.to_vec()
        };
        let same = previous.filter(|p| p.chains == chains && p.clients == clients);
        config.session_storage = match same {
            Some(same) => Arc::clone(&same.config.session_storage),
            None => rustls::server::ServerSessionMemoryCache::new(4096),
        };
        // Without tickets, rustls's default: none issued, TLS 1.3 resumes from the cache.
        if tls.session_tickets {
            config.ticketer = match same.filter(|s| s.config.ticketer.enabled()) {
                Some(same) => Arc::clone(&same.config.ticketer),
                None => {
                    rustls::crypto::aws_lc_rs::Ticketer::new().context("TLS session tickets")?
                }
            };
        }
        let pass_pem = tls.client_auth.as_ref().is_some_and(|a| a.pass_pem);
        let client_rules = clients.as_ref().map_or(0, |material| {
            let mut digest = sha2::Sha256::new();
            for part in material {
                digest.update((part.len() as u64).to_be_bytes());
                digest.update(part);
            }
            // A session's certificate is written out for the app (or not) at its
            // handshake: one made under the other `pass_client_certificate` handshakes
            // again (found by review: it kept sending, or withholding, it after a reload).
            digest.update([u8::from(pass_pem)]);
            let digest = digest.finalize();
            let mut first = [0u8; 8];
            first.copy_from_slice(&digest[..8]);
            // Never 0, which stands for no rules.
            u64::from_be_bytes(first).max(1)
        });
        // Said once nothing else can fail: a reload refused for its client CA file must not
        // first announce certificates it never put in use (found by review).
        for cert in resolver.certs() {
            tracing::info!(name = %cert.label, serial = %cert.serial, "TLS certificate loaded");
        }
        Ok(Acceptor {
            config: Arc::new(config),
            certs,
            chains,
            clients,
            client_rules,
            pass_pem,
        })
    }

    /// The configuration new handshakes use.
    pub(crate) fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }

    /// What client certificates are checked against, as a session records it (0: none
    /// asked for).
    pub(crate) fn client_rules(&self) -> u64 {
        self.client_rules
    }

    /// Whether the client's certificate itself goes to the app.
    pub(crate) fn passes_pem(&self) -> bool {
        self.pass_pem
    }

    /// Whether a TLS connection whose session was made under `peer`'s rules may go on
    /// under this generation's: not when the CAs, the revocation lists, whether
    /// certificates are asked for or whether they go to the app changed (a revoked client
    /// must handshake again).
    pub(crate) fn admits(&self, peer: &Peer) -> bool {
        peer.client_rules == self.client_rules
    }

    /// The certificates in use.
    pub fn certificates(&self) -> &[CertInfo] {
        &self.certs
    }
}

/// Bytes of a TLS record's header (type, version, length).
const RECORD_HEADER: usize = 5;

/// aws-lc's provider, accepting `groups` alone.
fn provider(groups: &[KeyExchangeGroup]) -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = groups.iter().map(|&group| kx_group(group)).collect();
    Arc::new(provider)
}

/// aws-lc's implementation of `group`.
fn kx_group(group: KeyExchangeGroup) -> &'static dyn rustls::crypto::SupportedKxGroup {
    use rustls::crypto::aws_lc_rs::kx_group;
    match group {
        KeyExchangeGroup::X25519Mlkem768 => kx_group::X25519MLKEM768,
        KeyExchangeGroup::Secp256r1Mlkem768 => kx_group::SECP256R1MLKEM768,
        KeyExchangeGroup::X25519 => kx_group::X25519,
        KeyExchangeGroup::Secp256r1 => kx_group::SECP256R1,
        KeyExchangeGroup::Secp384r1 => kx_group::SECP384R1,
    }
}

/// The configured group a session agreed on, by its TLS name (the server agrees only on
/// groups its configuration accepts).
fn configured_group(name: rustls::NamedGroup) -> Option<KeyExchangeGroup> {
    KeyExchangeGroup::ALL
        .into_iter()
        .find(|&group| kx_group(group).name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `name`, written to `dir` (the same files each time).
    fn issue(dir: &std::path::Path, name: &str) -> TlsConfig {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let files = CertFiles {
            cert: dir.join("c.pem"),
            key: dir.join("k.pem"),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        TlsConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            certificates: vec![files],
            redirect_http: None,
            redirect_port: None,
            hsts: None,
            handshake_timeout: Duration::from_secs(10),
            http2: false,
            protocols: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            key_exchange_groups: KeyExchangeGroup::DEFAULT.to_vec(),
            reject_unknown_names: false,
            record_size: None,
            session_tickets: true,
            client_auth: None,
        }
    }

    fn same_sessions(a: &Acceptor, b: &Acceptor) -> bool {
        let (a, b) = (&a.config, &b.config);
        Arc::ptr_eq(&a.session_storage, &b.session_storage) && Arc::ptr_eq(&a.ticketer, &b.ticketer)
    }

    /// Trusts any server: the handshakes below are about the key exchange.
    #[derive(Debug)]
    struct AnyServer(Arc<CryptoProvider>);

    impl rustls::client::danger::ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }

        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// The group a client offering `offered` (in its order) agrees on with `acceptor`, as
    /// `$ssl_curve` writes it; `None` when the handshake fails.
    fn agreed(acceptor: &Acceptor, offered: &[KeyExchangeGroup]) -> Option<&'static str> {
        let client_provider = provider(offered);
        let client = rustls::ClientConfig::builder_with_provider(Arc::clone(&client_provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(client_provider)))
            .with_no_client_auth();
        let name = "a.test".try_into().unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
        let mut server = rustls::ServerConnection::new(acceptor.config()).unwrap();
        while client.is_handshaking() || server.is_handshaking() {
            let mut flight = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut flight).unwrap();
            }
            let mut from_client = &flight[..];
            while !from_client.is_empty() {
                server.read_tls(&mut from_client).unwrap();
                server.process_new_packets().ok()?;
            }
            let mut flight = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut flight).unwrap();
            }
            let mut from_server = &flight[..];
            while !from_server.is_empty() {
                client.read_tls(&mut from_server).unwrap();
                client.process_new_packets().ok()?;
            }
        }
        Some(
            Peer::of(&server, acceptor)
                .group
                .map_or("", KeyExchangeGroup::name),
        )
    }

    #[test]
    fn the_post_quantum_hybrid_is_agreed_when_offered_and_the_groups_follow_the_config() {
        use KeyExchangeGroup::*;
        let dir = tempfile::tempdir().unwrap();
        let mut tls = issue(dir.path(), "a.test");
        let default = Acceptor::new(&tls, None).unwrap();
        // A client of today (Chrome, Firefox): the hybrid first, X25519 beside it.
        assert_eq!(
            agreed(&default, &[X25519Mlkem768, X25519]),
            Some("X25519MLKEM768")
        );
        assert_eq!(agreed(&default, &[X25519]), Some("X25519"));
        assert_eq!(agreed(&default, &[Secp256r1]), Some("prime256v1"));
        assert_eq!(agreed(&default, &[Secp384r1]), Some("secp384r1"));
        // Not in the default set: a client offering it alone fails.
        assert_eq!(agreed(&default, &[Secp256r1Mlkem768]), None);

        tls.key_exchange_groups = vec![X25519];
        let classical = Acceptor::new(&tls, None).unwrap();
        assert_eq!(
            agreed(&classical, &[X25519Mlkem768, X25519]),
            Some("X25519")
        );
        assert_eq!(agreed(&classical, &[Secp256r1]), None);
        tls.key_exchange_groups = vec![Secp256r1Mlkem768, Secp256r1];
        let p256 = Acceptor::new(&tls, None).unwrap();
        assert_eq!(
            agreed(&p256, &[Secp256r1Mlkem768, Secp256r1]),
            Some("SecP256r1MLKEM768")
        );
        // The client's share was for X25519, which this server does not take: it asks
        // for another (HelloRetryRequest) and gets P-256.
        assert_eq!(agreed(&p256, &[X25519, Secp256r1]), Some("prime256v1"));
    }

    #[test]
    fn a_reload_keeps_the_sessions_unless_a_certificate_changed() {
        let dir = tempfile::tempdir().unwrap();
        let tls = issue(dir.path(), "a.test");
        let first = Acceptor::new(&tls, None).unwrap();
        let same = Acceptor::new(&tls, Some(&first)).unwrap();
        assert!(same_sessions(&first, &same), "the same certificate: kept");
        let fresh = Acceptor::new(&tls, None).unwrap();
        assert!(!same_sessions(&first, &fresh), "no previous generation");
        let renewed = issue(dir.path(), "a.test");
        let after = Acceptor::new(&renewed, Some(&same)).unwrap();
        assert!(
            !same_sessions(&same, &after),
            "a new certificate in the same files: fresh sessions"
        );
        assert_eq!(after.certificates()[0].name, "a.test");
    }

    #[test]
    fn a_reload_that_changes_the_client_cas_or_tickets_starts_fresh_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let authorities = dir.path().join("clients.pem");
        std::fs::write(&authorities, ca.self_signed(&ca_key).unwrap().pem()).unwrap();
        let mut tls = issue(dir.path(), "a.test");
        let plain = Acceptor::new(&tls, None).unwrap();
        tls.client_auth = Some(ClientAuth {
            authorities: authorities.clone(),
            revoked: None,
            required: true,
            pass_pem: false,
        });
        let asking = Acceptor::new(&tls, Some(&plain)).unwrap();
        assert!(
            !same_sessions(&plain, &asking),
            "certificates now asked for"
        );
        let again = Acceptor::new(&tls, Some(&asking)).unwrap();
        assert!(same_sessions(&asking, &again), "the same CAs: kept");
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&authorities, ca.self_signed(&other).unwrap().pem()).unwrap();
        let renewed = Acceptor::new(&tls, Some(&again)).unwrap();
        assert!(!same_sessions(&again, &renewed), "another CA in the file");
        tls.session_tickets = false;
        let no_tickets = Acceptor::new(&tls, Some(&renewed)).unwrap();
        assert!(!no_tickets.config.ticketer.enabled());
        assert!(Arc::ptr_eq(
            &renewed.config.session_storage,
            &no_tickets.config.session_storage
        ));
        std::fs::write(&authorities, "no PEM here").unwrap();
        let err = Acceptor::new(&tls, Some(&no_tickets)).unwrap_err();
        assert!(
            format!("{err:#}").contains("holds no CA certificate"),
            "{err:#}"
        );
    }
}
