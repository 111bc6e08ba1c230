//! Errors while building a uwsgi packet.

/// Why a request could not be turned into a uwsgi packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UwsgiError {
    /// The vars block is larger than the upstream's buffer size (`--upstream-buffer-size`).
    #[error("uwsgi vars block of {size} bytes exceeds the upstream buffer size of {limit} bytes")]
    VarsTooLarge {
        /// Size the vars block would have had (at least; encoding stops early).
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The request path is invalid once decoded (bad percent-encoding, NUL, escapes the root).
    #[error("invalid request path")]
    BadPath,
}

impl UwsgiError {
    /// Status ringway answers with: 431 for vars too large, 400 for a bad path.
    pub fn status(self) -> u16 {
        match self {
            UwsgiError::VarsTooLarge { .. } => 431,
            UwsgiError::BadPath => 400,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (STYLE.md)
mod tests {
    use super::UwsgiError;

    #[test]
    fn statuses() {
        let big = UwsgiError::VarsTooLarge {
            size: 5000,
            limit: 4096,
        };
        assert_eq!(big.status(), 431);
        assert_eq!(UwsgiError::BadPath.status(), 400);
    }
}
