//! Client certificates (nginx's `ssl_verify_client`, `ssl_client_certificate`, `ssl_crl`):
//! the CAs a client's certificate must chain to, and the revocation lists checked on the
//! way. Verification is rustls's (webpki): a certificate that does not chain, has expired,
//! is revoked or is not for client authentication fails the handshake with an alert that
//! says so, where nginx completes the handshake and answers 400; either way the app never
//! sees the request.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

/// Which client certificates are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// PEM file of the CA certificates a client's must chain to.
    pub authorities: PathBuf,
    /// PEM file of certificate revocation lists, checked for every certificate of the chain.
    pub revoked: Option<PathBuf>,
    /// A client without a certificate fails the handshake (`on`), or is served (`optional`).
    pub required: bool,
    /// The certificate itself goes to the app (PEM), not only its description.
    pub pass_pem: bool,
}

/// The verifier of one configuration generation, and what it was built from (a reload
/// that changes it must not let an old session resume under the new rules).
pub(super) struct Verifier {
    pub(super) verifier: Arc<dyn ClientCertVerifier>,
    pub(super) material: Vec<Vec<u8>>,
}

impl ClientAuth {
    /// Reads the files and builds the verifier.
    pub(super) fn load(&self, provider: &Arc<CryptoProvider>) -> anyhow::Result<Verifier> {
        let mut roots = RootCertStore::empty();
        let mut material = Vec::new();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.authorities)
            .with_context(|| format!("reading {}", self.authorities.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("parsing {}", self.authorities.display()))?;
        if certs.is_empty() {
            bail!(
                "{} holds no CA certificate for client certificates",
                self.authorities.display()
            );
        }
        for cert in certs {
            material.push(cert.to_vec());
            roots.add(cert).map_err(|e| {
                anyhow!(
                    "{}: a CA certificate rustls cannot use: {e}",
                    self.authorities.display()
                )
            })?;
        }
        let mut crls = Vec::new();
        if let Some(file) = &self.revoked {
            crls = CertificateRevocationListDer::pem_file_iter(file)
                .with_context(|| format!("reading {}", file.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("parsing {}", file.display()))?;
            if crls.is_empty() {
                bail!("{} holds no certificate revocation list", file.display());
            }
            material.extend(crls.iter().map(|crl| crl.to_vec()));
        }
        material.push(vec![u8::from(self.required)]);
        // A list past its nextUpdate fails the check, as OpenSSL's (nginx's) does: a
        // refresh job that stopped must not leave an old list quietly in force.
        let mut builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
                .with_crls(crls)
                .enforce_revocation_expiration();
        if !self.required {
            builder = builder.allow_unauthenticated();
        }
        let verifier = builder
            .build()
            .map_err(|e| anyhow!("client certificate verification: {e}"))?;
        Ok(Verifier { verifier, material })
    }
}
