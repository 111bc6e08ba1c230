//! Per-thread pool of byte vectors, so the steady state allocates nothing per request.
//!
//! Three size classes keep a small need from pinning a large vector: [`TINY`] for the read an
//! idle keep-alive connection waits in, [`SMALL`] for heads, packets and answers, [`LARGE`]
//! for body relays. Each class keeps a bounded number of idle vectors, each under twice the
//! class's capacity, so memory goes back to the allocator after a burst.

use std::cell::RefCell;
use std::thread::LocalKey;

/// Capacity of a tiny buffer: enough for most request heads.
pub(crate) const TINY: usize = 1024;
/// Capacity of a small buffer.
pub(crate) const SMALL: usize = 16 * 1024;
/// Least capacity of a large buffer: a 64 KiB read plus room for chunk framing around it,
/// or an answer's head (up to 2 KiB) with 64 KiB of body behind it, sent in one write.
pub(crate) const LARGE: usize = 66 * 1024;

type FreeList = RefCell<Vec<Vec<u8>>>;

thread_local! {
    static TINY_FREE: FreeList = const { RefCell::new(Vec::new()) };
    static SMALL_FREE: FreeList = const { RefCell::new(Vec::new()) };
    static LARGE_FREE: FreeList = const { RefCell::new(Vec::new()) };
}

/// Idle vectors kept per class and thread, each under twice its class's capacity (see
/// [`give`]): under 1 MiB, 8 MiB and 8 MiB (62 large ones of under 132 KiB), enough for a
/// busy worker's requests in flight to take their buffers from the pool (a miss is a
/// malloc and a free). A worker that goes quiet gives them all back (`release_idle`).
fn max_idle(class: usize) -> usize {
    match class {
        TINY => 512,
        SMALL => 256,
        _ => 62,
    }
}

/// The free list and capacity class serving a need of `capacity` bytes.
fn class_of(capacity: usize) -> (&'static LocalKey<FreeList>, usize) {
    match capacity {
        c if c <= TINY => (&TINY_FREE, TINY),
        c if c <= SMALL => (&SMALL_FREE, SMALL),
        _ => (&LARGE_FREE, LARGE),
    }
}

/// An empty vector with room for at least `capacity` bytes.
pub(super) fn take(capacity: usize) -> Vec<u8> {
    let (free, class) = class_of(capacity);
    let reused = free
        .try_with(|list| {
            let mut list = list.borrow_mut();
            match list.last() {
                Some(buf) if buf.capacity() >= capacity => list.pop(),
                _ => None,
            }
        })
        .ok()
        .flatten();
    reused.unwrap_or_else(|| Vec::with_capacity(capacity.max(class)))
}

/// Keeps `buf` for reuse by this thread, if its class has room.
pub(super) fn give(mut buf: Vec<u8>) {
    if buf.capacity() < TINY {
        return;
    }
    // A vector serves the largest class whose least capacity it has; one grown to twice
    // that or more (a head or a body that grew) is freed, so that a class's idle vectors
    // stay within its bound.
    let class = match buf.capacity() {
        c if c >= LARGE => LARGE,
        c if c >= SMALL => SMALL,
        _ => TINY,
    };
    if buf.capacity() >= 2 * class {
        return;
    }
    let (free, _) = class_of(class);
    buf.clear();
    // During thread exit the free list may already be gone: the vector is then just freed.
    let _ = free.try_with(|list| {
        let mut list = list.borrow_mut();
        if list.len() < max_idle(class) {
            list.push(buf);
        }
    });
}

/// Frees this thread's idle vectors (a quiet worker gives its pools back; the next burst
/// allocates anew).
pub(super) fn release_idle() {
    for free in [&TINY_FREE, &SMALL_FREE, &LARGE_FREE] {
        let _ = free.try_with(|list| list.borrow_mut().clear());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle() -> usize {
        [&TINY_FREE, &SMALL_FREE, &LARGE_FREE]
            .iter()
            .map(|free| free.with_borrow(Vec::len))
            .sum()
    }

    #[test]
    fn classes_do_not_mix() {
        give(Vec::with_capacity(LARGE));
        let small = take(100);
        assert!(
            small.capacity() < LARGE,
            "a small need does not pin a large buffer"
        );
        let large = take(LARGE);
        assert!(large.capacity() >= LARGE);
        let huge = take(4 * LARGE);
        assert!(huge.capacity() >= 4 * LARGE);
    }

    #[test]
    fn bounded() {
        for _ in 0..max_idle(SMALL) + 10 {
            give(Vec::with_capacity(SMALL));
        }
        let before = idle();
        give(Vec::with_capacity(SMALL));
        give(Vec::with_capacity(10));
        assert_eq!(idle(), before);
        // A vector grown to twice its class or more is not kept: the bound holds in bytes.
        release_idle();
        for grown in [2 * TINY, 2 * SMALL, 2 * LARGE, 256 * 1024 + 1] {
            give(Vec::with_capacity(grown));
        }
        assert_eq!(idle(), 0);
        give(Vec::with_capacity(2 * LARGE - 1));
        assert_eq!(idle(), 1);
        let tiny = take(100);
        assert!(
            tiny.capacity() >= TINY && tiny.capacity() < SMALL,
            "an idle read pins 1 KiB"
        );
    }
}
