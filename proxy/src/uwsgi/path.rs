//! PATH_INFO as nginx computes `$uri`: percent-decoded, dot-segments resolved, slashes merged.

use super::UwsgiError;

/// Appends the normalized form of the raw request path `raw` to `out`.
pub fn normalize_path(raw: &[u8], out: &mut Vec<u8>) -> Result<(), UwsgiError> {
    let _ = (raw, out);
    todo!()
}
