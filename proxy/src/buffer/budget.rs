//! The process-wide memory budget for buffered bodies and answers (`max_buffer_memory`).
//!
//! Workers charge a buffer's capacity when they keep bytes in memory for later (a request
//! body waiting for uWSGI, an answer waiting for a slow client) and release it when the
//! buffer is dropped. Past the limit, bytes go to temp files instead: memory stays bounded
//! whatever the number of slow clients. One relaxed atomic add per buffered piece; transient
//! buffers (a read on its way to a socket) are not charged.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Bytes of buffer memory in use, against a limit.
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub(crate) fn new(limit: usize) -> Budget {
        Budget {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    /// Takes `bytes` from the budget; false (and nothing taken) if that would pass the limit.
    pub(crate) fn try_reserve(&self, bytes: usize) -> bool {
        let before = self.used.fetch_add(bytes, Relaxed);
        if before.saturating_add(bytes) <= self.limit {
            return true;
        }
        self.used.fetch_sub(bytes, Relaxed);
        false
    }

    /// Gives back `bytes` taken earlier.
    pub(crate) fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Relaxed);
    }

    /// True when nothing more can be taken.
    pub(crate) fn is_spent(&self) -> bool {
        self.used() >= self.limit
    }

    /// Bytes in use now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Relaxed)
    }
}
