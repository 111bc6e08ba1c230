//! Errors while building a uwsgi packet (the status each answers with is decided in
//! `crate::fail`).

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
    /// The packet would carry more vars than uWSGI takes (`MAX_VARS`): past that it closes
    /// the connection without answering.
    #[error("uwsgi packet of more than {limit} vars")]
    TooManyVars {
        /// The most vars a packet may carry.
        limit: usize,
    },
    /// The request path is invalid once decoded (bad percent-encoding, NUL, escapes the root).
    #[error("invalid request path")]
    BadPath,
}
