//! Byte buffers for the data path: pooled, returned by `Drop`, charged to a process-wide
//! memory budget when they hold buffered bodies or answers, and spilled to anonymous temp
//! files when memory is not the place for them.
//!
//! A [`Buf`] is a `Vec<u8>` taken from this thread's [`pool`]; tokio-uring takes buffers by
//! value and hands them back, so a `Buf` can be lent to the kernel like a `Vec`. When it is
//! dropped, however that happens (a finished request, an error path, an io_uring op that
//! completes after its future was dropped), the vector goes back to the pool and any budget
//! charge is released. No code gives buffers back by hand.

mod body;
mod budget;
mod pool;
mod spill;
mod spool;
mod tempfile;

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use tokio_uring::buf::{IoBuf, IoBufMut};

pub(crate) use body::Body;
pub(crate) use budget::Budget;
pub(crate) use pool::{LARGE, SMALL, TINY};
pub(crate) use spill::{Place, body_place};
pub(crate) use spool::Spool;
pub(crate) use tempfile::{TempFile, check_creatable, check_dir, prepare_dir, read_at};

/// Frees the calling thread's idle pooled buffers: a worker that has gone quiet gives them
/// back, so that memory returns to the system after a burst.
pub(crate) fn release_idle_buffers() {
    pool::release_idle();
    crate::gzip::release_idle();
    crate::alloc::release_kept_blocks();
}

/// A pooled byte buffer: a `Vec<u8>` that goes back to its thread's pool when dropped.
#[derive(Debug)]
pub(crate) struct Buf {
    vec: Vec<u8>,
    /// The budget this buffer's capacity is charged to, and how much it holds of it.
    charge: Option<(Arc<Budget>, usize)>,
}

impl Buf {
    /// An empty buffer with room for at least `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Buf {
        Buf {
            vec: pool::take(capacity),
            charge: None,
        }
    }

    /// An empty buffer with room for at least `capacity` bytes, charged to `budget`, or
    /// `None` when the budget has no room for it: asked before the memory is taken, so a
    /// size a client declares costs no allocation the budget would refuse.
    pub(crate) fn charged(capacity: usize, budget: &Arc<Budget>) -> Option<Buf> {
        if !budget.try_reserve(capacity) {
            return None;
        }
        let mut buf = Buf {
            vec: pool::take(capacity),
            charge: Some((Arc::clone(budget), capacity)),
        };
        // A pooled vector may be larger than asked: the rest is charged too.
        buf.charge(budget).then_some(buf)
    }

    /// A buffer with no memory behind it (nothing to give back).
    pub(crate) fn empty() -> Buf {
        Buf {
            vec: Vec::new(),
            charge: None,
        }
    }

    /// A buffer holding a copy of `bytes`.
    pub(crate) fn copy_of(bytes: &[u8]) -> Buf {
        let mut buf = Buf::with_capacity(bytes.len());
        buf.extend_from_slice(bytes);
        buf
    }

    /// Charges this buffer's capacity to `budget` (topping up an earlier charge after
    /// growth). False when the budget is spent: then nothing more is charged, and the caller
    /// should put the bytes on disk instead.
    pub(crate) fn charge(&mut self, budget: &Arc<Budget>) -> bool {
        let held = self.charge.as_ref().map_or(0, |(_, n)| *n);
        let more = self.vec.capacity().saturating_sub(held);
        if more > 0 && !budget.try_reserve(more) {
            return false;
        }
        self.charge = Some((Arc::clone(budget), held + more));
        true
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if let Some((budget, held)) = self.charge.take() {
            budget.release(held);
        }
        pool::give(std::mem::take(&mut self.vec));
    }
}

impl Deref for Buf {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.vec
    }
}

impl DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.vec
    }
}

// SAFETY: the pointer and lengths are the Vec's own; the Vec's heap memory does not move while
// the Buf is owned by an io_uring op (the op holds the Buf by value and nothing can reach the
// Vec to grow it), and `bytes_init <= bytes_total` holds for a Vec.
unsafe impl IoBuf for Buf {
    fn stable_ptr(&self) -> *const u8 {
        self.vec.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.vec.len()
    }

    fn bytes_total(&self) -> usize {
        self.vec.capacity()
    }
}

// SAFETY: as above; `set_init` is called by tokio-uring only with a position up to which the
// kernel has written, within the capacity, so those bytes are initialised.
unsafe impl IoBufMut for Buf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.vec.as_mut_ptr()
    }

    unsafe fn set_init(&mut self, pos: usize) {
        if self.vec.len() < pos {
            // SAFETY: the caller guarantees bytes up to `pos` are initialised, and pos is
            // within the capacity.
            unsafe { self.vec.set_len(pos) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_returns_the_vector_to_the_pool() {
        let mut a = Buf::with_capacity(2048);
        a.extend_from_slice(b"hello");
        let ptr = a.as_ptr();
        drop(a);
        let b = Buf::with_capacity(1500);
        assert_eq!(b.as_ptr(), ptr, "the dropped buffer is reused");
        assert!(b.is_empty());
    }

    #[test]
    fn a_charge_is_released_on_drop_and_follows_growth() {
        let budget = Arc::new(Budget::new(8 * SMALL));
        let mut a = Buf::with_capacity(SMALL);
        assert!(a.charge(&budget));
        assert_eq!(budget.used(), a.capacity());
        a.reserve(4 * SMALL);
        assert!(a.charge(&budget));
        assert_eq!(budget.used(), a.capacity());
        let mut b = Buf::with_capacity(8 * SMALL);
        assert!(!b.charge(&budget), "over the limit");
        drop(a);
        assert_eq!(budget.used(), 0);
        assert!(b.charge(&budget));
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    /// A charged buffer is asked of the budget before its memory is taken: over the limit,
    /// nothing is allocated and nothing stays charged.
    #[test]
    fn a_buffer_charged_up_front_is_refused_before_it_is_allocated() {
        let budget = Arc::new(Budget::new(8 * SMALL));
        assert!(
            Buf::charged(1 << 40, &budget).is_none(),
            "a terabyte, never taken"
        );
        assert_eq!(budget.used(), 0);
        let a = Buf::charged(2 * SMALL, &budget).expect("room for it");
        assert!(a.capacity() >= 2 * SMALL);
        assert_eq!(budget.used(), a.capacity());
        assert!(Buf::charged(7 * SMALL, &budget).is_none());
        assert_eq!(budget.used(), a.capacity());
        drop(a);
        assert_eq!(budget.used(), 0);
    }
}
