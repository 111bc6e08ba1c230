//! Per-thread pool of byte buffers, so the steady state allocates nothing per request.
//!
//! Buffers are plain `Vec<u8>` because tokio-uring takes buffers by value and hands them
//! back: a buffer is taken from the pool, lent to the kernel, and given back when the
//! connection is done with it. A buffer that is never given back (an error path that drops
//! it) is simply freed: the pool only loses a reuse, nothing leaks. The pool keeps at most
//! [`MAX_IDLE`] buffers so idle memory stays bounded after a burst.

use std::cell::RefCell;

/// Most buffers kept idle per thread.
const MAX_IDLE: usize = 256;

/// Buffers larger than this are not kept: one huge request must not pin memory forever.
const MAX_KEPT_CAPACITY: usize = 256 * 1024;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with at least `capacity` bytes of room.
pub fn take(capacity: usize) -> Vec<u8> {
    let reused = FREE.with_borrow_mut(|free| {
        // Most callers ask for one of two sizes; the last buffer that fits is good enough.
        let i = free.iter().rposition(|b| b.capacity() >= capacity)?;
        Some(free.swap_remove(i))
    });
    match reused {
        Some(mut buf) => {
            buf.clear();
            buf
        }
        None => Vec::with_capacity(capacity),
    }
}

/// Returns a buffer to this thread's pool.
pub fn give(buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > MAX_KEPT_CAPACITY {
        return;
    }
    FREE.with_borrow_mut(|free| {
        if free.len() < MAX_IDLE {
            free.push(buf);
        }
    });
}

/// Buffers idle in this thread's pool (for tests and metrics).
pub fn idle() -> usize {
    FREE.with_borrow(Vec::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_and_clears() {
        let mut a = take(1024);
        a.extend_from_slice(b"hello");
        let ptr = a.as_ptr();
        give(a);
        let b = take(512);
        assert_eq!(b.as_ptr(), ptr, "a fitting idle buffer is reused");
        assert!(b.is_empty());
        give(b);
        let c = take(4096);
        assert!(c.capacity() >= 4096, "too small a buffer is not handed out");
    }

    #[test]
    fn bounded() {
        for _ in 0..MAX_IDLE + 10 {
            give(Vec::with_capacity(64));
        }
        assert_eq!(idle(), MAX_IDLE);
        give(Vec::with_capacity(MAX_KEPT_CAPACITY + 1));
        assert_eq!(idle(), MAX_IDLE);
    }
}
