//! Low-level packet writer: the 4-byte header and length-prefixed vars.
//!
//! It owns the wire layout and the size rule: uWSGI drops a packet whose vars block is larger
//! than its `buffer-size`, and the header's datasize field is a u16, so the block may be at
//! most `min(limit, 65535)` bytes (measured with uWSGI 2.0.31 and `buffer-size` 4096: a
//! 4096-byte block is served, 4097 is skipped with "invalid request block size"). Writing stops at the first var that would cross that
//! bound, so a hostile request costs at most one buffer's worth of work.
//!
//! uWSGI also takes at most [`MAX_VARS`] vars, whatever their size: a packet of more is
//! closed without an answer ("max vec size reached"), which a proxy would take for a failed
//! server. Such a request is refused here too.

use super::UwsgiError;

/// Header size: modifier1, datasize (u16 LE), modifier2.
const HEADER_LEN: usize = 4;
/// Largest vars block the u16 datasize (and each u16 key/value length) can describe.
const MAX_FIELD: usize = u16::MAX as usize;

/// The most vars uWSGI reads from a packet with its default `max-vars` (64): its iovec array
/// has `4 * max-vars + 5` slots and keeps 5 free, two per var (`uwsgi_parse_vars` in
/// `core/protocol.c`).
pub const MAX_VARS: usize = 128;

/// Writes one uwsgi packet into a reused buffer: call [`PacketWriter::begin`], add vars, then
/// [`PacketWriter::finish`], which patches the header's datasize.
pub struct PacketWriter<'o> {
    out: &'o mut Vec<u8>,
    limit: usize,
    vars: usize,
}

impl<'o> PacketWriter<'o> {
    /// Clears `out` and reserves the 4-byte header. `limit` is the largest vars block allowed
    /// (capped at 65535; errors report the capped value as their `limit`).
    pub fn begin(out: &'o mut Vec<u8>, limit: usize) -> Self {
        out.clear();
        // modifier1 = 0 (WSGI), datasize patched by finish(), modifier2 = 0.
        out.extend_from_slice(&[0, 0, 0, 0]);
        PacketWriter {
            out,
            limit: limit.min(MAX_FIELD),
            vars: 0,
        }
    }

    /// Appends one var. Keys and values over 65535 bytes are an error (VarsTooLarge).
    pub fn var(&mut self, key: &[u8], value: &[u8]) -> Result<(), UwsgiError> {
        self.var_with_key(
            |o| o.extend_from_slice(key),
            |o| {
                o.extend_from_slice(value);
                Ok(())
            },
        )
    }

    /// Appends one var whose value is built by `write` directly into the packet (used for
    /// joined repeated headers and the decoded path, to avoid temporary buffers).
    pub fn var_with(
        &mut self,
        key: &[u8],
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), UwsgiError>,
    ) -> Result<(), UwsgiError> {
        self.var_with_key(|o| o.extend_from_slice(key), write)
    }

    /// Appends one var whose key and value are both written in place by the closures (used
    /// for `HTTP_*` keys, built from header names without a temporary).
    pub fn var_with_key(
        &mut self,
        key: impl FnOnce(&mut Vec<u8>),
        value: impl FnOnce(&mut Vec<u8>) -> Result<(), UwsgiError>,
    ) -> Result<(), UwsgiError> {
        if self.vars == MAX_VARS {
            return Err(UwsgiError::TooManyVars { limit: MAX_VARS });
        }
        self.vars += 1;
        self.field(|o| {
            key(o);
            Ok(())
        })?;
        self.field(value)?;
        Ok(())
    }

    /// One length-prefixed field: reserve the length, let `write` append, patch the length.
    fn field(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), UwsgiError>,
    ) -> Result<(), UwsgiError> {
        let len_at = self.out.len();
        self.out.extend_from_slice(&[0, 0]);
        write(self.out)?;
        let len = self.out.len() - len_at - 2;
        let block = self.out.len() - HEADER_LEN;
        if len > MAX_FIELD || block > self.limit {
            return Err(UwsgiError::VarsTooLarge {
                size: block,
                limit: self.limit,
            });
        }
        let le = (len as u16).to_le_bytes();
        if let Some(slot) = self.out.get_mut(len_at..len_at + 2) {
            slot.copy_from_slice(&le);
        }
        Ok(())
    }

    /// Patches datasize into the header and checks the limit; returns the packet length.
    pub fn finish(self) -> Result<usize, UwsgiError> {
        let block = self.out.len().saturating_sub(HEADER_LEN);
        if block > self.limit {
            return Err(UwsgiError::VarsTooLarge {
                size: block,
                limit: self.limit,
            });
        }
        let le = (block as u16).to_le_bytes();
        if let Some(slot) = self.out.get_mut(1..3) {
            slot.copy_from_slice(&le);
        }
        Ok(self.out.len())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn empty_packet_is_a_bare_header() {
        let mut out = vec![9; 10];
        let w = PacketWriter::begin(&mut out, 4096);
        assert_eq!(w.finish(), Ok(4));
        assert_eq!(out, [0, 0, 0, 0]);
    }

    #[test]
    fn vars_are_length_prefixed_little_endian() {
        let mut out = Vec::new();
        let mut w = PacketWriter::begin(&mut out, 4096);
        w.var(b"AB", b"xyz").unwrap();
        w.var_with(b"K", |o| {
            o.extend_from_slice(b"v1, v2");
            Ok(())
        })
        .unwrap();
        w.var(b"E", b"").unwrap();
        assert_eq!(w.finish(), Ok(4 + 9 + 11 + 5));
        let expected: &[u8] = &[
            0, 25, 0, 0, // header: datasize 25
            2, 0, b'A', b'B', 3, 0, b'x', b'y', b'z', //
            1, 0, b'K', 6, 0, b'v', b'1', b',', b' ', b'v', b'2', //
            1, 0, b'E', 0, 0,
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn block_exactly_at_the_limit_fits_one_more_byte_does_not() {
        // One var: 2 + 1 + 2 + n bytes.
        let limit = 100;
        let value = vec![b'v'; limit - 5];
        let mut out = Vec::new();
        let mut w = PacketWriter::begin(&mut out, limit);
        w.var(b"K", &value).unwrap();
        assert_eq!(w.finish(), Ok(4 + limit));
        assert_eq!(out.get(1..3), Some(&[100u8, 0][..]));

        let value = vec![b'v'; limit - 4];
        let mut w = PacketWriter::begin(&mut out, limit);
        assert_eq!(
            w.var(b"K", &value),
            Err(UwsgiError::VarsTooLarge {
                size: 101,
                limit: 100
            })
        );
    }

    #[test]
    fn datasize_never_exceeds_u16() {
        let mut out = Vec::new();
        let big = vec![b'v'; 40_000];
        let mut w = PacketWriter::begin(&mut out, 1 << 20);
        w.var(b"A", &big).unwrap();
        let err = w.var(b"B", &big).unwrap_err();
        assert_eq!(
            err,
            UwsgiError::VarsTooLarge {
                size: 80_010,
                limit: 65_535
            }
        );

        let mut w = PacketWriter::begin(&mut out, 1 << 20);
        let huge = vec![b'v'; 70_000];
        assert!(matches!(
            w.var(b"A", &huge),
            Err(UwsgiError::VarsTooLarge { .. })
        ));
        let mut w = PacketWriter::begin(&mut out, 1 << 20);
        assert!(matches!(
            w.var(&huge, b""),
            Err(UwsgiError::VarsTooLarge { .. })
        ));
    }

    #[test]
    fn no_more_vars_than_uwsgi_takes() {
        let mut out = Vec::new();
        let mut w = PacketWriter::begin(&mut out, 65_535);
        for _ in 0..MAX_VARS {
            w.var(b"K", b"v").unwrap();
        }
        assert_eq!(
            w.var(b"K", b"v"),
            Err(UwsgiError::TooManyVars { limit: MAX_VARS })
        );
    }

    #[test]
    fn closure_errors_propagate() {
        let mut out = Vec::new();
        let mut w = PacketWriter::begin(&mut out, 4096);
        assert_eq!(
            w.var_with(b"K", |_| Err(UwsgiError::BadPath)),
            Err(UwsgiError::BadPath)
        );
    }
}
