//! Low-level packet writer: the 4-byte header and length-prefixed vars.

use super::UwsgiError;

/// Writes one uwsgi packet into a reused buffer: call [`PacketWriter::begin`], add vars, then
/// [`PacketWriter::finish`], which patches the header's datasize.
pub struct PacketWriter<'o> {
    out: &'o mut Vec<u8>,
    limit: usize,
}

impl<'o> PacketWriter<'o> {
    /// Clears `out` and reserves the 4-byte header. `limit` is the largest vars block allowed.
    pub fn begin(out: &'o mut Vec<u8>, limit: usize) -> Self {
        let _ = (&out, limit);
        todo!()
    }

    /// Appends one var. Keys and values over 65535 bytes are an error (VarsTooLarge).
    pub fn var(&mut self, key: &[u8], value: &[u8]) -> Result<(), UwsgiError> {
        let _ = (key, value, &self.out, self.limit);
        todo!()
    }

    /// Appends one var whose value is built by `write` directly into the packet (used for
    /// joined repeated headers and the decoded path, to avoid temporary buffers).
    pub fn var_with(
        &mut self,
        key: &[u8],
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), UwsgiError>,
    ) -> Result<(), UwsgiError> {
        let _ = (key, write);
        todo!()
    }

    /// Patches datasize into the header and checks the limit; returns the packet length.
    pub fn finish(self) -> Result<usize, UwsgiError> {
        todo!()
    }
}
