//! The demo's self-signed certificate for `cargo xtask run --tls`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A certificate and its key on disk.
pub struct DemoCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// An ECDSA P-256 certificate for `localhost` and `127.0.0.1` in `dir`, made on first use
/// and kept after, so a browser exception or a `curl --cacert` keeps working across runs.
pub fn ensure(dir: &Path) -> Result<DemoCert> {
    let cert = dir.join("localhost.pem");
    let key = dir.join("localhost.key");
    if cert.is_file() && key.is_file() {
        return Ok(DemoCert { cert, key });
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let made = rcgen::generate_simple_self_signed(names).context("generating a certificate")?;
    fs::write(&key, made.signing_key.serialize_pem())
        .with_context(|| format!("cannot write {}", key.display()))?;
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", key.display()))?;
    fs::write(&cert, made.cert.pem())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    Ok(DemoCert { cert, key })
}
