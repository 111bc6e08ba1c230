//! Reading a file the configuration names (an error page, an htpasswd file) when it is
//! loaded: a regular file only, opened so that a FIFO put in its place cannot hang the
//! load, and read up to a bound, so that `/dev/zero` cannot either.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The whole of `file`, if it is a regular file of at most `max` bytes; `Err` says why not
/// (for the configuration's error).
pub(crate) fn read_small_file(file: &Path, max: u64) -> Result<Vec<u8>, String> {
    let mut opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(file)
        .map_err(|e| format!("cannot read it: {e}"))?;
    let meta = opened
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    let mut bytes = Vec::new();
    (&mut opened)
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!("larger than {max} bytes, the most it may have"));
    }
    Ok(bytes)
}
