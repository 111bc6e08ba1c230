//! Request IDs (nginx's `$request_id`): 128 random bits as 32 lowercase hex digits, or the
//! X-Request-ID a trusted proxy sent, so one ID follows a request through the load
//! balancer, ringway, the app and every log.
//!
//! The random bits come from ChaCha20 (`rand_chacha`), one generator per worker seeded once
//! from the kernel's getrandom at start-up: a request costs a few dozen nanoseconds of
//! arithmetic, no syscall and no lock. ChaCha20 is a CSPRNG, so IDs cannot be predicted from
//! the IDs a client has seen (an app may use them as unguessable tokens, as `$request_id`
//! users do).

use std::cell::RefCell;
use std::fmt;

use anyhow::Context;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// The longest X-Request-ID kept from a trusted proxy.
pub(crate) const MAX_LEN: usize = 200;
/// A made ID's length: 128 bits in hex.
const MADE_LEN: usize = 32;

/// A request's ID, held inline (no allocation per request): `Copy`, 201 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestId {
    len: u8,
    bytes: [u8; MAX_LEN],
}

impl RequestId {
    /// A trusted proxy's X-Request-ID, if it is sane: 1 to 200 visible ASCII characters (no
    /// spaces, no controls, nothing that could split a log line or a header).
    pub(crate) fn from_header(value: &[u8]) -> Option<RequestId> {
        let len = u8::try_from(value.len()).ok()?;
        if value.is_empty() || value.len() > MAX_LEN || !value.iter().all(u8::is_ascii_graphic) {
            return None;
        }
        let mut bytes = [0; MAX_LEN];
        bytes.get_mut(..value.len())?.copy_from_slice(value);
        Some(RequestId { len, bytes })
    }

    /// The ID for these 128 random bits: 32 lowercase hex digits.
    fn from_random(random: [u8; 16]) -> RequestId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut bytes = [0; MAX_LEN];
        for (pair, byte) in bytes.chunks_exact_mut(2).zip(random) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0x0f)];
        }
        RequestId {
            len: MADE_LEN as u8,
            bytes,
        }
    }

    /// The ID's bytes (visible ASCII).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// The ID as text.
    pub(crate) fn as_str(&self) -> &str {
        // Only visible ASCII ever gets in, so this never falls back.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({:?})", self.as_str())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One worker's maker of request IDs.
pub(crate) struct IdSource {
    rng: RefCell<ChaCha20Rng>,
}

impl IdSource {
    /// A generator seeded from the kernel (getrandom); fails only where the kernel has no
    /// randomness to give.
    pub(crate) fn from_os() -> anyhow::Result<IdSource> {
        let rng = ChaCha20Rng::try_from_os_rng().context("seeding the request ID generator")?;
        Ok(IdSource {
            rng: RefCell::new(rng),
        })
    }

    /// A new ID.
    pub(crate) fn next(&self) -> RequestId {
        let mut random = [0; 16];
        self.rng.borrow_mut().fill_bytes(&mut random);
        RequestId::from_random(random)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn made_ids_are_32_lowercase_hex_and_differ() {
        let ids = IdSource::from_os().unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = ids.next();
            assert_eq!(id.as_str().len(), 32, "{id:?}");
            assert!(
                id.as_bytes()
                    .iter()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)),
                "{id:?}"
            );
            assert!(seen.insert(id.to_string()), "repeated {id}");
        }
        // Two workers' generators are seeded apart.
        let other = IdSource::from_os().unwrap();
        assert_ne!(ids.next(), other.next());
    }

    #[test]
    fn hex_of_the_bits() {
        let id = RequestId::from_random([
            0x00, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xff, 0x10, 0x20, 0x30, 0x40,
            0x50, 0x60,
        ]);
        assert_eq!(id.as_str(), "000123456789abcdefff102030405060");
    }

    #[test]
    fn a_given_id_is_kept_only_if_sane() {
        let kept = |v: &[u8]| RequestId::from_header(v).map(|id| id.to_string());
        assert_eq!(kept(b"abc-123").as_deref(), Some("abc-123"));
        assert_eq!(kept(b"x").as_deref(), Some("x"));
        let longest = "a".repeat(MAX_LEN);
        assert_eq!(kept(longest.as_bytes()), Some(longest.clone()));
        assert_eq!(
            kept(b"!~{}[]()<>\"'/\\").as_deref(),
            Some("!~{}[]()<>\"'/\\"),
            "every visible ASCII character"
        );
        for bad in [
            &b""[..],
            &[b'a'; MAX_LEN + 1],
            &[b'a'; 300],
            b"has space",
            b"tab\there",
            b"new\nline",
            b"nul\0",
            b"del\x7f",
            b"caf\xc3\xa9",
            b"\xff",
        ] {
            assert_eq!(kept(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
