//! Deterministic payloads shared with the WSGI apps, and digests.

use sha2::{Digest, Sha256};

/// The first `n` bytes of the pattern the apps serve on `/bytes/<n>`, `/stream/<n>` and
/// `/lazy/<n>`: byte `i` is `i % 251` (a prime period, so a shifted or repeated piece never
/// matches).
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Lower-case hex SHA-256, as the apps' `/echo` reports it.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
