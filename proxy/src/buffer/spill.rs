//! Where buffered bytes go: memory, a temp file, or nowhere yet. Pure decisions, so that
//! every case is a table test; the body reader and the response spool act on them.
//!
//! The rules, for request bodies and answers alike: memory while this request's share stays
//! within its limit (`client_body_buffer_size`, `response_buffer_size`) and the process-wide
//! budget (`max_buffer_memory`) has room; then the temp file, within its limit
//! (`max_temp_file_size` for answers; none for bodies, already bounded by `max_body_size`);
//! then wait for the client to take some. An answer's piece read while nothing is queued is
//! not buffering at all (the client has taken everything before it and is waiting for it):
//! it stays in memory whatever the limits, so a client that keeps up never costs a temp
//! file, and the relay always makes progress.

/// Where the next piece goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// Keep it in memory.
    Memory,
    /// Write it to the temp file.
    File,
    /// Hold it until the client has taken some of what is queued.
    Wait,
}

/// What one request has buffered so far, and may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Queued {
    /// Bytes of memory (buffer capacity) it holds.
    pub(crate) memory: usize,
    /// Its temp file's extent (the write position).
    pub(crate) file: u64,
}

/// Its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Memory it may hold.
    pub(crate) memory: usize,
    /// Temp file extent it may use (0: no temp file).
    pub(crate) file: u64,
}

/// Where a piece of `piece` bytes goes, given what is `queued`, the `limits`, and whether the
/// process-wide memory budget is spent.
pub(crate) fn place(piece: usize, queued: Queued, limits: Limits, budget_spent: bool) -> Place {
    let caught_up = queued.memory == 0 && queued.file == 0;
    if caught_up || (!budget_spent && queued.memory.saturating_add(piece) <= limits.memory) {
        return Place::Memory;
    }
    if queued.file.saturating_add(piece as u64) <= limits.file {
        return Place::File;
    }
    if queued.memory == 0 {
        return Place::Memory;
    }
    Place::Wait
}

/// Where a request body starts: in memory if its declared length (or, for a chunked body,
/// what has arrived so far) fits `memory_limit` and the budget has room, else in a file.
pub(crate) fn body_place(size: u64, memory_limit: usize, budget_spent: bool) -> Place {
    if !budget_spent && size <= memory_limit as u64 {
        Place::Memory
    } else {
        Place::File
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: usize = 1024;

    #[test]
    fn answer_table() {
        let limits = Limits {
            memory: 64 * K,
            file: 1 << 20,
        };
        let q = |memory: usize, file: u64| Queued { memory, file };
        let cases = [
            // piece, queued, budget spent, want
            (16 * K, q(0, 0), false, Place::Memory),
            (16 * K, q(48 * K, 0), false, Place::Memory),
            (16 * K, q(56 * K, 0), false, Place::File),
            (64 * K + 64, q(0, 0), false, Place::Memory), // caught up: no buffering at all
            (16 * K, q(0, 0), true, Place::Memory),       // caught up, even past the budget
            (16 * K, q(16 * K, 0), true, Place::File),    // budget spent: to disk
            (16 * K, q(0, 1 << 20), true, Place::Memory), // nothing in memory: progress
            (16 * K, q(16 * K, 0), true, Place::File),
            (16 * K, q(64 * K, (1 << 20) - 16 * 1024), false, Place::File),
            (16 * K, q(64 * K, (1 << 20) - 1), false, Place::Wait),
            (16 * K, q(64 * K, 1 << 20), true, Place::Wait),
        ];
        for (piece, queued, spent, want) in cases {
            assert_eq!(
                place(piece, queued, limits, spent),
                want,
                "{piece} {queued:?} {spent}"
            );
        }
    }

    #[test]
    fn without_a_temp_file_the_client_sets_the_pace() {
        let limits = Limits {
            memory: 64 * K,
            file: 0,
        };
        let q = |memory| Queued { memory, file: 0 };
        assert_eq!(place(64 * K, q(0), limits, false), Place::Memory);
        assert_eq!(place(1, q(64 * K), limits, false), Place::Wait);
        assert_eq!(place(1, q(K), limits, true), Place::Wait);
    }

    #[test]
    fn body_table() {
        assert_eq!(body_place(0, 64 * K, false), Place::Memory);
        assert_eq!(body_place(64 * 1024, 64 * K, false), Place::Memory);
        assert_eq!(body_place(64 * 1024 + 1, 64 * K, false), Place::File);
        assert_eq!(body_place(10, 64 * K, true), Place::File);
    }
}
