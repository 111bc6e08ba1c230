//! Where buffered bytes go: memory, a temp file, or nowhere yet. Pure decisions, so that
//! every case is a table test; the body reader and the response spool act on them.
//!
//! The rules, for request bodies and answers alike: memory while this request's share stays
//! within its limit (`client_body_buffer_size`, `response_buffer_size`) and the process-wide
//! budget (`max_buffer_memory`) has room; then the temp file, within its limit
//! (`max_temp_file_size` for answers; none for bodies: `max_body_size` bounds them, unless
//! it is 0, nginx's "no limit");
//! then wait for the client to take some. An answer's piece read while nothing is queued and
//! the client side waits for it is not buffering at all: it goes straight out, in memory
//! whatever the limits, so a client that keeps up never costs a temp file, and the relay
//! always makes progress. While the budget has room the same holds when the client side is
//! still writing the piece before (today's fast path, with no temp file for a client just
//! behind by one read); once the budget is spent, such a piece goes to the temp file if one is
//! allowed, so that a slow answer holds one piece in memory (the one in flight), not two.

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

/// Where a piece of `piece` bytes goes, given what is `queued`, the `limits`, whether the
/// process-wide memory budget is spent, and whether the client side waits for a piece (it has
/// taken everything queued and is not writing one to the client).
pub(crate) fn place(
    piece: usize,
    queued: Queued,
    limits: Limits,
    budget_spent: bool,
    client_waiting: bool,
) -> Place {
    let caught_up = queued.memory == 0 && queued.file == 0;
    if caught_up && (client_waiting || !budget_spent) {
        return Place::Memory;
    }
    if !budget_spent && queued.memory.saturating_add(piece) <= limits.memory {
        return Place::Memory;
    }
    if queued.file.saturating_add(piece as u64) <= limits.file {
        return Place::File;
    }
    // Nothing in memory and no room in a file: queue it rather than stall a client that may
    // be about to wait for it (the relay always progresses).
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
        let (spent, room) = (true, false);
        let (waiting, writing) = (true, false);
        let cases = [
            // piece, queued, budget, client side, want
            (16 * K, q(0, 0), room, waiting, Place::Memory),
            (16 * K, q(48 * K, 0), room, writing, Place::Memory),
            (16 * K, q(56 * K, 0), room, writing, Place::File),
            (64 * K + 64, q(0, 0), room, waiting, Place::Memory), // no buffering at all
            // Just behind by one read while the budget has room: memory, never a temp file.
            (64 * K + 64, q(0, 0), room, writing, Place::Memory),
            (16 * K, q(0, 0), room, writing, Place::Memory),
            (16 * K, q(0, 0), spent, waiting, Place::Memory), // goes straight out
            // Budget spent and the client side busy with the piece before: to disk.
            (16 * K, q(0, 0), spent, writing, Place::File),
            (64 * K + 64, q(0, 0), spent, writing, Place::File),
            (16 * K, q(16 * K, 0), spent, writing, Place::File),
            (16 * K, q(16 * K, 0), spent, waiting, Place::File),
            (16 * K, q(0, 1 << 20), spent, writing, Place::Memory), // file full: progress
            (
                16 * K,
                q(64 * K, (1 << 20) - 16 * 1024),
                room,
                writing,
                Place::File,
            ),
            (16 * K, q(64 * K, (1 << 20) - 1), room, writing, Place::Wait),
            (16 * K, q(64 * K, 1 << 20), spent, writing, Place::Wait),
        ];
        for (piece, queued, spent, waiting, want) in cases {
            assert_eq!(
                place(piece, queued, limits, spent, waiting),
                want,
                "{piece} {queued:?} spent {spent} waiting {waiting}"
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
        assert_eq!(place(64 * K, q(0), limits, false, true), Place::Memory);
        assert_eq!(place(64 * K, q(0), limits, false, false), Place::Memory);
        assert_eq!(place(1, q(64 * K), limits, false, false), Place::Wait);
        assert_eq!(place(1, q(K), limits, true, false), Place::Wait);
        // Budget spent, the client side writing, no file: one piece waits in memory.
        assert_eq!(place(K, q(0), limits, true, false), Place::Memory);
    }

    #[test]
    fn body_table() {
        assert_eq!(body_place(0, 64 * K, false), Place::Memory);
        assert_eq!(body_place(64 * 1024, 64 * K, false), Place::Memory);
        assert_eq!(body_place(64 * 1024 + 1, 64 * K, false), Place::File);
        assert_eq!(body_place(10, 64 * K, true), Place::File);
    }
}
