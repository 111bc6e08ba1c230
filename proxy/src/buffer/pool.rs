//! Per-thread pool of byte buffers, so the steady state allocates nothing per request.
//!
//! Buffers are plain `Vec<u8>` because tokio-uring takes buffers by value and hands them
//! back: a buffer is taken from the pool, lent to the kernel, and given back when the
//! connection is done with it. A buffer that is never given back (an error path that drops
//! it) is simply freed: the pool only loses a reuse, nothing leaks.
//!
//! Three size classes keep a small need from pinning a large buffer: [`TINY`] for the read
//! an idle keep-alive connection waits in, [`SMALL`] for heads, packets and answers,
//! [`LARGE`] for body relays. Each class keeps at most [`MAX_IDLE`] buffers, so idle memory
//! stays bounded after a burst.

use std::cell::RefCell;

/// Capacity of a tiny buffer: enough for most request heads.
pub const TINY: usize = 1024;
/// Capacity of a small buffer.
pub const SMALL: usize = 16 * 1024;
/// Least capacity of a large buffer.
pub const LARGE: usize = 64 * 1024 + 64;
/// Most buffers kept idle per class and thread.
const MAX_IDLE: usize = 128;
/// Buffers larger than this are not kept: one huge body must not pin memory forever.
const MAX_KEPT: usize = 256 * 1024;

thread_local! {
    static TINY_FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static SMALL_FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static LARGE_FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for at least `capacity` bytes.
pub fn take(capacity: usize) -> Vec<u8> {
    let (free, class) = match capacity {
        c if c <= TINY => (&TINY_FREE, TINY),
        c if c <= SMALL => (&SMALL_FREE, SMALL),
        _ => (&LARGE_FREE, LARGE),
    };
    let reused = free.with_borrow_mut(|list| match list.last() {
        Some(buf) if buf.capacity() >= capacity => list.pop(),
        _ => None,
    });
    reused.unwrap_or_else(|| Vec::with_capacity(capacity.max(class)))
}

/// Returns a buffer to this thread's pool.
pub fn give(mut buf: Vec<u8>) {
    let free = match buf.capacity() {
        c if !(TINY..=MAX_KEPT).contains(&c) => return,
        c if c >= LARGE => &LARGE_FREE,
        c if c >= SMALL => &SMALL_FREE,
        _ => &TINY_FREE,
    };
    buf.clear();
    free.with_borrow_mut(|list| {
        if list.len() < MAX_IDLE {
            list.push(buf);
        }
    });
}

/// Buffers idle in this thread's pool (for tests and metrics).
pub fn idle() -> usize {
    TINY_FREE.with_borrow(Vec::len)
        + SMALL_FREE.with_borrow(Vec::len)
        + LARGE_FREE.with_borrow(Vec::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_and_clears() {
        let mut a = take(2048);
        assert!(a.capacity() >= SMALL);
        a.extend_from_slice(b"hello");
        let ptr = a.as_ptr();
        give(a);
        let b = take(1500);
        assert_eq!(b.as_ptr(), ptr, "an idle buffer of the class is reused");
        assert!(b.is_empty());
        give(b);
    }

    #[test]
    fn classes_do_not_mix() {
        give(Vec::with_capacity(LARGE));
        let small = take(100);
        assert!(
            small.capacity() < LARGE,
            "a small request does not pin a large buffer"
        );
        let large = take(LARGE);
        assert!(large.capacity() >= LARGE);
        let huge = take(MAX_KEPT);
        assert!(huge.capacity() >= MAX_KEPT);
    }

    #[test]
    fn bounded() {
        for _ in 0..MAX_IDLE + 10 {
            give(Vec::with_capacity(SMALL));
        }
        let before = idle();
        give(Vec::with_capacity(SMALL));
        give(Vec::with_capacity(MAX_KEPT + 1));
        give(Vec::with_capacity(10));
        assert_eq!(idle(), before);
        let tiny = take(100);
        assert!(
            tiny.capacity() >= TINY && tiny.capacity() < SMALL,
            "an idle read pins 1 KiB"
        );
    }
}
