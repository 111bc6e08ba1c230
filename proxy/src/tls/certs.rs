//! Certificates: PEM chains and keys read from files, the names each serves (for SNI), and
//! when each expires (for the metrics).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use rustls::SupportedCipherSuite;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Where a certificate and its key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// PEM chain: the certificate first, then its intermediates.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1; ECDSA or RSA).
    pub key: PathBuf,
}

/// A loaded certificate.
pub(crate) struct Loaded {
    key: Arc<CertifiedKey>,
    /// The DNS names it is valid for (SAN, else CN), lower case; `*.x` for wildcards.
    names: Vec<String>,
    /// The name shown in metrics and logs.
    pub(crate) label: String,
    /// The certificate's file, as configured (metrics: two certificates may share a name).
    pub(crate) file: String,
    /// Its notAfter, seconds since the epoch.
    pub(crate) not_after: i64,
    /// Its serial number, hex (logs).
    pub(crate) serial: String,
}

impl fmt::Debug for Loaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.label, self.names.join(" "))
    }
}

impl Loaded {
    /// Reads and checks one certificate and its key.
    pub(crate) fn load(files: &CertFiles, provider: &CryptoProvider) -> anyhow::Result<Loaded> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
            .with_context(|| format!("reading {}", files.cert.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("parsing {}", files.cert.display()))?;
        let Some(leaf) = chain.first() else {
            bail!("{} holds no certificate", files.cert.display());
        };
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| key_error(files, e))?;
        let (names, label, not_after, serial) = describe(leaf)
            .with_context(|| format!("reading the certificate in {}", files.cert.display()))?;
        if must_staple(leaf) {
            tracing::warn!(
                cert = %files.cert.display(),
                "the certificate asks for a stapled OCSP answer (Must-Staple), which ringway \
                 does not staple: browsers that hold to it (Firefox) refuse it; get one \
                 without the TLS Feature extension"
            );
        }
        let key = CertifiedKey::from_der(chain, key, provider)
            .map_err(|e| anyhow!("{} and {}: {e}", files.cert.display(), files.key.display()))?;
        Ok(Loaded {
            key: Arc::new(key),
            names,
            label,
            file: files.cert.display().to_string(),
            not_after,
            serial,
        })
    }

    /// The certificate chain, leaf first.
    pub(crate) fn chain(&self) -> &[CertificateDer<'static>] {
        &self.key.cert
    }

    /// How this certificate is valid for `host`: by one of its names exactly, or by a
    /// wildcard one label above it; `None`: it is not.
    fn serves(&self, host: &str) -> Option<Fit> {
        if self.names.iter().any(|name| name == host) {
            return Some(Fit::Exact);
        }
        let under = |parent: &str| {
            host.split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == parent)
        };
        self.names
            .iter()
            .any(|name| name.strip_prefix("*.").is_some_and(under))
            .then_some(Fit::Wildcard)
    }

    /// Whether it names the same hosts as `other`, in whatever order.
    fn names_as(&self, other: &Loaded) -> bool {
        self.names.iter().all(|n| other.names.contains(n))
            && other.names.iter().all(|n| self.names.contains(n))
    }
}

/// How a certificate serves a name; an exact one wins over a wildcard, wherever each is
/// listed, as nginx picks its server (`server_name`: exact, then wildcards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fit {
    Exact,
    Wildcard,
}

/// Why a key file could not be read, in the words that tell its owner what to do: the PEM
/// reader skips an encrypted key (nginx's `ssl_password_file`) as if the file held none, and
/// a key certbot keeps is root's alone (found by review).
fn key_error(files: &CertFiles, err: rustls::pki_types::pem::Error) -> anyhow::Error {
    let path = files.key.display();
    if let rustls::pki_types::pem::Error::Io(io) = &err
        && io.kind() == std::io::ErrorKind::PermissionDenied
    {
        // SAFETY: geteuid cannot fail and touches no memory.
        let uid = unsafe { libc::geteuid() };
        return anyhow!(
            "reading the key {path}: permission denied to ringway's user (uid {uid}); a key \
             certbot keeps under /etc/letsencrypt is root's alone: copy it where this user may \
             read it (README, TLS)"
        );
    }
    let text = std::fs::read(&files.key).unwrap_or_default();
    let holds = |marker: &[u8]| text.windows(marker.len()).any(|w| w == marker);
    if holds(b"ENCRYPTED PRIVATE KEY") || holds(b"Proc-Type: 4,ENCRYPTED") {
        return anyhow!(
            "the key {path} is encrypted, and ringway takes no passphrase (nginx's \
             ssl_password_file): write it decrypted, readable by ringway's user alone, with \
             `openssl pkey -in {path} -out DECRYPTED.pem`"
        );
    }
    anyhow::Error::new(err).context(format!("reading the key {path}"))
}

/// Whether a DER certificate carries the TLS Feature extension (RFC 7633, "Must-Staple":
/// the client is to refuse it without a stapled OCSP answer, nginx's `ssl_stapling`), found
/// by review to load silently.
fn must_staple(der: &CertificateDer<'_>) -> bool {
    const TLS_FEATURE: &str = "1.3.6.1.5.5.7.1.24";
    x509_parser::parse_x509_certificate(der.as_ref()).is_ok_and(|(_, cert)| {
        cert.extensions()
            .iter()
            .any(|e| e.oid.to_id_string() == TLS_FEATURE)
    })
}

/// The names, label, expiry and serial of a DER certificate.
fn describe(der: &CertificateDer<'_>) -> anyhow::Result<(Vec<String>, String, i64, String)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| anyhow!("not an X.509 certificate: {e}"))?;
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_ascii_lowercase);
    if names.is_empty()
        && let Some(cn) = &common_name
    {
        names.push(cn.clone());
    }
    let label = names
        .first()
        .cloned()
        .or(common_name)
        .unwrap_or_else(|| "unnamed".to_owned());
    let not_after = cert.validity().not_after.timestamp();
    let serial = cert.raw_serial_as_string().replace(':', "");
    Ok((names, label, not_after, serial))
}

/// Picks the certificate for a handshake by its SNI name (one naming it exactly before one
/// whose wildcard covers it) and, among those serving the name, the first the client can
/// take (an RSA and an ECDSA one for one name, as nginx's two
/// `ssl_certificate` lines: a client that signs or agrees only RSA suites gets the RSA one);
/// no name, or one no certificate serves, gets the first, or with `reject_unknown` none
/// (the handshake fails).
#[derive(Debug)]
pub(crate) struct Resolver {
    certs: Vec<Loaded>,
    reject_unknown: bool,
    /// The provider's cipher suites: which a TLS 1.2 client's offer allows each key type.
    suites: Vec<SupportedCipherSuite>,
}

impl Resolver {
    /// A resolver over `certs` (at least one); `reject_unknown`: a name no certificate
    /// serves, or none, gets no certificate.
    pub(crate) fn new(
        certs: Vec<Loaded>,
        reject_unknown: bool,
        provider: &CryptoProvider,
    ) -> anyhow::Result<Resolver> {
        if certs.is_empty() {
            bail!("no certificate given");
        }
        for (name, shadowed, first) in shadowed_names(&certs) {
            tracing::warn!(
                name,
                "two certificates of one key type name {name}: SNI picks the first listed \
                 ({first}), so {shadowed} is never chosen for it"
            );
        }
        Ok(Resolver {
            certs,
            reject_unknown,
            suites: provider.cipher_suites.clone(),
        })
    }

    /// The certificates, in configuration order.
    pub(crate) fn certs(&self) -> &[Loaded] {
        &self.certs
    }

    fn pick(&self, sni: Option<&str>, takes: impl Fn(&Loaded) -> bool) -> Option<&Loaded> {
        let by_name = sni.map(str::to_ascii_lowercase).and_then(|host| {
            let host = host.trim_end_matches('.').to_owned();
            let best = self.certs.iter().filter_map(|c| c.serves(&host)).min()?;
            let mut serving = self.certs.iter().filter(|c| c.serves(&host) == Some(best));
            let first = serving.next()?;
            Some(
                std::iter::once(first)
                    .chain(serving)
                    .find(|c| takes(c))
                    .unwrap_or(first),
            )
        });
        if self.reject_unknown {
            return by_name;
        }
        by_name.or_else(|| {
            // The default: the first, or one for the same names the client can take (an
            // RSA one beside it, for an old client that sends no name).
            let first = self.certs.first()?;
            let twins = self.certs.iter().filter(|c| c.names_as(first));
            Some(twins.clone().find(|c| takes(c)).unwrap_or(first))
        })
    }

    /// Whether the client of `hello` can take `cert`: it offers a signature scheme its key
    /// signs with, and a TLS 1.3 suite or a TLS 1.2 one made for that key type.
    fn client_takes(&self, hello: &ClientHello<'_>, cert: &Loaded) -> bool {
        let key = &cert.key.key;
        if key.choose_scheme(hello.signature_schemes()).is_none() {
            return false;
        }
        let algorithm = key.algorithm();
        hello.cipher_suites().iter().any(|offered| {
            self.suites
                .iter()
                .filter(|known| known.suite() == *offered)
                .any(|known| known.usable_for_signature_algorithm(algorithm))
        })
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name(), |c| self.client_takes(&hello, c))
            .map(|c| Arc::clone(&c.key))
    }
}

/// Each name a certificate shares with one of the same key type listed before it: (the
/// name, the later certificate's file, the earlier one's), the later one never picked for
/// that name.
fn shadowed_names(certs: &[Loaded]) -> Vec<(&str, &str, &str)> {
    let mut shadowed = Vec::new();
    for (i, cert) in certs.iter().enumerate() {
        let algorithm = cert.key.key.algorithm();
        for name in &cert.names {
            if let Some(first) = certs[..i]
                .iter()
                .find(|c| c.names.contains(name) && c.key.key.algorithm() == algorithm)
            {
                shadowed.push((name.as_str(), cert.file.as_str(), first.file.as_str()));
            }
        }
    }
    shadowed
}

/// Reads every certificate of `files`; `reject_unknown` as for [`Resolver::new`].
pub(crate) fn load_all(
    files: &[CertFiles],
    provider: &CryptoProvider,
    reject_unknown: bool,
) -> anyhow::Result<Resolver> {
    let certs = files
        .iter()
        .map(|f| Loaded::load(f, provider))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Resolver::new(certs, reject_unknown, provider)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(names: &[&str]) -> Loaded {
        loaded_with(names, rcgen::KeyPair::generate().unwrap())
    }

    fn loaded_with(names: &[&str], key: rcgen::KeyPair) -> Loaded {
        let params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = CertFiles {
            cert: dir.path().join("c.pem"),
            key: dir.path().join("k.pem"),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        Loaded::load(&files, &rustls::crypto::aws_lc_rs::default_provider()).unwrap()
    }

    fn provider() -> CryptoProvider {
        rustls::crypto::aws_lc_rs::default_provider()
    }

    fn ed25519() -> rcgen::KeyPair {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap()
    }

    /// Found by review: the PEM reader skips an encrypted key, and the error said only that
    /// the file held no key.
    #[test]
    fn an_encrypted_key_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let files = CertFiles {
            cert: dir.path().join("c.pem"),
            key: dir.path().join("k.pem"),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        for encrypted in [
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
             DEK-Info: AES-256-CBC,00\n\nMIIB\n-----END RSA PRIVATE KEY-----\n",
        ] {
            std::fs::write(&files.key, encrypted).unwrap();
            let err = Loaded::load(&files, &provider()).unwrap_err().to_string();
            assert!(
                err.contains("is encrypted") && err.contains("openssl pkey"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_must_staple_certificate_is_told_apart() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_owned()]).unwrap();
        let plain = params.self_signed(&key).unwrap();
        // TLS Feature: SEQUENCE { INTEGER 5 (status_request) }.
        params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 5, 5, 7, 1, 24],
            vec![0x30, 0x03, 0x02, 0x01, 0x05],
        )];
        let stapled = params.self_signed(&key).unwrap();
        assert!(!must_staple(plain.der()));
        assert!(must_staple(stapled.der()));
    }

    #[test]
    fn a_name_served_twice_is_found_with_both_files() {
        let certs = vec![
            loaded(&["example.com", "www.example.com"]),
            loaded(&["other.org"]),
            loaded(&["www.example.com"]),
            // Another key type for one name is a choice, not a shadow.
            loaded_with(&["other.org"], ed25519()),
        ];
        let shadowed = shadowed_names(&certs);
        assert_eq!(shadowed.len(), 1, "{shadowed:?}");
        let (name, later, first) = shadowed[0];
        assert_eq!(name, "www.example.com");
        assert_eq!((later, first), (&*certs[2].file, &*certs[0].file));
    }

    #[test]
    fn sni_picks_by_name_and_wildcard_else_the_first() {
        let certs = || {
            vec![
                loaded(&["example.com", "www.example.com"]),
                loaded(&["*.other.org"]),
            ]
        };
        let strict = Resolver::new(certs(), true, &provider()).unwrap();
        let pick = |sni: Option<&str>| strict.pick(sni, |_| true).map(|c| c.label.clone());
        assert_eq!(pick(Some("A.Other.Org.")).as_deref(), Some("*.other.org"));
        assert_eq!(pick(Some("example.com")).as_deref(), Some("example.com"));
        for unknown in [Some("other.org"), Some("192.0.2.1"), None] {
            assert_eq!(pick(unknown), None, "{unknown:?}: rejected");
        }

        let resolver = Resolver::new(certs(), false, &provider()).unwrap();
        let pick = |sni: Option<&str>| resolver.pick(sni, |_| true).map(|c| c.label.clone());
        assert_eq!(
            pick(Some("www.example.com")).as_deref(),
            Some("example.com")
        );
        assert_eq!(pick(Some("A.Other.Org.")).as_deref(), Some("*.other.org"));
        assert_eq!(
            pick(Some("other.org")).as_deref(),
            Some("example.com"),
            "no match: first"
        );
        assert_eq!(
            pick(Some("a.b.other.org")).as_deref(),
            Some("example.com"),
            "one label only"
        );
        assert_eq!(pick(None).as_deref(), Some("example.com"));
        assert!(resolver.certs()[0].not_after > 0);
    }

    /// Found by review: a wildcard listed first hid a certificate for one of its names.
    #[test]
    fn a_certificate_naming_the_host_wins_over_a_wildcard_listed_first() {
        let resolver = Resolver::new(
            vec![loaded(&["*.a.test"]), loaded(&["api.a.test"])],
            true,
            &provider(),
        )
        .unwrap();
        let pick = |sni| resolver.pick(Some(sni), |_| true).map(|c| c.label.clone());
        assert_eq!(pick("api.a.test").as_deref(), Some("api.a.test"));
        assert_eq!(pick("www.a.test").as_deref(), Some("*.a.test"));
    }

    /// The default's twin is one for the same names, whatever their order in each.
    #[test]
    fn the_default_twin_names_the_same_hosts_in_any_order() {
        let resolver = Resolver::new(
            vec![
                loaded(&["a.test", "www.a.test"]),
                loaded_with(&["www.a.test", "a.test"], ed25519()),
            ],
            false,
            &provider(),
        )
        .unwrap();
        let ecdsa = |c: &Loaded| c.key.key.algorithm() == rustls::SignatureAlgorithm::ECDSA;
        let chosen = resolver
            .pick(None, |c| !ecdsa(c))
            .map(|c| c.key.key.algorithm());
        assert_eq!(chosen, Some(rustls::SignatureAlgorithm::ED25519));
    }

    #[test]
    fn of_the_certificates_for_a_name_the_first_the_client_takes() {
        let resolver = Resolver::new(
            vec![
                loaded(&["a.test"]),
                loaded_with(&["a.test"], ed25519()),
                loaded(&["b.test"]),
            ],
            false,
            &provider(),
        )
        .unwrap();
        let ecdsa = |c: &Loaded| c.key.key.algorithm() == rustls::SignatureAlgorithm::ECDSA;
        let chosen = |sni, takes: &dyn Fn(&Loaded) -> bool| {
            resolver
                .pick(Some(sni), takes)
                .map(|c| c.key.key.algorithm())
        };
        use rustls::SignatureAlgorithm::{ECDSA, ED25519};
        assert_eq!(chosen("a.test", &|_| true), Some(ECDSA), "the first listed");
        assert_eq!(chosen("a.test", &|c| !ecdsa(c)), Some(ED25519));
        // None taken: the first for the name still (the handshake says why it fails).
        assert_eq!(chosen("a.test", &|_| false), Some(ECDSA));
        assert_eq!(
            resolver
                .pick(Some("b.test"), |c| !ecdsa(c))
                .map(|c| c.file.clone()),
            Some(resolver.certs()[2].file.clone()),
            "never a certificate of another name"
        );
        // No name, or an unknown one: the default's twin the client can take.
        for sni in [None, Some("unknown.test")] {
            let chosen = resolver
                .pick(sni, |c| !ecdsa(c))
                .map(|c| c.key.key.algorithm());
            assert_eq!(chosen, Some(ED25519), "{sni:?}");
        }
    }
}
