//! The process's allocator: glibc's malloc, with blocks of 1 to 16 KiB (and over-aligned
//! ones up to that) kept for reuse by the worker thread that freed them.
//!
//! glibc serves blocks up to 1032 bytes from a per-thread cache (tcache), without a lock;
//! larger ones, and over-aligned ones of any size, come from the arena, under its lock, and
//! every thread shares one arena (`M_ARENA_MAX` 1, see `server.rs`). A request allocates a
//! few such blocks again and again: its future's box, a task (aligned to 128 bytes).
//! Taken from glibc each time, they were about a tenth of a worker's CPU under load, some of
//! it waiting for the arena's lock. So each worker thread keeps the blocks it frees, by exact
//! size and alignment, in a few bounded free lists, and hands them out again for the same
//! layout. A kept block is still glibc's (allocated with that very layout), so whoever frees
//! or reallocates it later, on any thread, does so through glibc as usual. See
//! docs/ARCHITECTURE.md, "Buffering".

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr;

/// glibc's malloc with per-worker reuse of mid-sized blocks; `#[global_allocator]` of the
/// `ringway` binary.
pub struct BlockCache;

/// Blocks of these sizes are kept: above the largest request tcache serves (1032 bytes),
/// up to a small buffer.
const SIZES: std::ops::RangeInclusive<usize> = 1033..=16 * 1024;
/// Distinct layouts a thread keeps blocks of; a request's hot ones are a handful.
const LISTS: usize = 8;
/// Most blocks kept per layout.
const MAX_BLOCKS: usize = 64;
/// Most bytes kept per layout: 8 lists hold 2 MiB at most per thread, given back when the
/// worker is quiet ([`release_kept_blocks`]).
const MAX_LIST_BYTES: usize = 256 * 1024;

/// The alignment every glibc block has on 64-bit targets; a layout asking for more goes
/// through `posix_memalign`.
const MALLOC_ALIGN: usize = 2 * size_of::<usize>();

/// Whether blocks of `layout` are kept: those of [`SIZES`], and smaller ones aligned beyond
/// [`MALLOC_ALIGN`]. glibc 2.36 serves an over-aligned block through memalign's arena
/// path, never from tcache, and Tokio aligns each task to 128 bytes: a connection's task
/// took the arena's lock at its spawn and again at its end.
fn is_kept(layout: Layout) -> bool {
    let size = layout.size();
    SIZES.contains(&size)
        || (layout.align() > MALLOC_ALIGN && (size_of::<usize>()..=*SIZES.end()).contains(&size))
}

/// Freed blocks of one layout, linked through their first bytes.
struct FreeList {
    size: Cell<usize>,
    align: Cell<usize>,
    head: Cell<*mut u8>,
    len: Cell<usize>,
}

impl FreeList {
    const fn empty() -> FreeList {
        FreeList {
            size: Cell::new(0),
            align: Cell::new(0),
            head: Cell::new(ptr::null_mut()),
            len: Cell::new(0),
        }
    }

    fn holds(&self, layout: Layout) -> bool {
        self.size.get() == layout.size() && self.align.get() == layout.align()
    }

    fn limit(&self) -> usize {
        MAX_BLOCKS.min(MAX_LIST_BYTES / self.size.get().max(1))
    }

    fn pop(&self) -> Option<*mut u8> {
        let block = self.head.get();
        if block.is_null() {
            return None;
        }
        // SAFETY: `block` is a freed block this list owns, with room for an address at least
        // (`is_kept`); its first bytes hold the next block's address, written by `push`.
        let next = unsafe { block.cast::<*mut u8>().read_unaligned() };
        self.head.set(next);
        self.len.set(self.len.get() - 1);
        Some(block)
    }

    /// # Safety
    /// `block` was allocated by `System` with this list's layout and is no longer used.
    unsafe fn push(&self, block: *mut u8) {
        // SAFETY: the block has room for an address (`is_kept`) and is ours now (the
        // caller's contract).
        unsafe { block.cast::<*mut u8>().write_unaligned(self.head.get()) };
        self.head.set(block);
        self.len.set(self.len.get() + 1);
    }
}

/// One thread's kept blocks; only worker threads keep any.
struct Kept {
    on: Cell<bool>,
    lists: [FreeList; LISTS],
}

thread_local! {
    // No destructor and a constant start: reading it never allocates, as an allocator must.
    static KEPT: Kept = const {
        Kept {
            on: Cell::new(false),
            lists: [const { FreeList::empty() }; LISTS],
        }
    };
}

impl Kept {
    fn take(&self, layout: Layout) -> Option<*mut u8> {
        if !self.on.get() {
            return None;
        }
        self.lists
            .iter()
            .find(|list| list.holds(layout))
            .and_then(FreeList::pop)
    }

    /// Keeps `block` if its layout has a list with room (or an empty list to take over).
    ///
    /// # Safety
    /// `block` was allocated by `System` with `layout` and is no longer used.
    unsafe fn keep(&self, block: *mut u8, layout: Layout) -> bool {
        if !self.on.get() {
            return false;
        }
        let list = match self.lists.iter().find(|list| list.holds(layout)) {
            Some(list) => list,
            None => match self.lists.iter().find(|list| list.len.get() == 0) {
                Some(list) => {
                    list.size.set(layout.size());
                    list.align.set(layout.align());
                    list
                }
                None => return false,
            },
        };
        if list.len.get() >= list.limit() {
            return false;
        }
        // SAFETY: the caller's contract, and the list holds this layout.
        unsafe { list.push(block) };
        true
    }

    fn release(&self) {
        for list in &self.lists {
            while let Some(block) = list.pop() {
                let layout = Layout::from_size_align(list.size.get(), list.align.get());
                if let Ok(layout) = layout {
                    // SAFETY: every block in the list was allocated by `System` with this
                    // layout (`keep`'s contract) and is unused.
                    unsafe { System.dealloc(block, layout) };
                }
            }
        }
    }
}

/// From now on, this thread keeps the mid-sized blocks it frees (a worker, at its start).
pub fn keep_blocks_on_this_thread() {
    let _ = KEPT.try_with(|kept| kept.on.set(true));
}

/// This thread stops keeping blocks and gives back those it kept (a worker, at its end).
pub fn stop_keeping_blocks_on_this_thread() {
    let _ = KEPT.try_with(|kept| {
        kept.on.set(false);
        kept.release();
    });
}

/// Gives this thread's kept blocks back to glibc (a quiet worker, before the heap is trimmed).
pub fn release_kept_blocks() {
    let _ = KEPT.try_with(Kept::release);
}

// SAFETY: every block handed out is `System`'s, allocated with the very layout asked for
// (fresh, or kept from a `dealloc` of that layout); `dealloc` either keeps a block (it is
// then handed out at most once more) or gives it to `System`.
unsafe impl GlobalAlloc for BlockCache {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_kept(layout)
            && let Ok(Some(block)) = KEPT.try_with(|kept| kept.take(layout))
        {
            return block;
        }
        // SAFETY: the caller's contract (a non-zero size) is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_kept(layout)
            && let Ok(Some(block)) = KEPT.try_with(|kept| kept.take(layout))
        {
            // SAFETY: the block has `layout.size()` bytes, all ours.
            unsafe { block.write_bytes(0, layout.size()) };
            return block;
        }
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let keep = |kept: &Kept| {
            // SAFETY: `block` came from `alloc` with `layout`, so it is `System`'s with that
            // layout, and the caller is done with it.
            unsafe { kept.keep(block, layout) }
        };
        if is_kept(layout) && KEPT.try_with(keep) == Ok(true) {
            return;
        }
        // SAFETY: as above.
        unsafe { System.dealloc(block, layout) }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: every block is `System`'s with `layout` (kept ones too), so `System`
        // resizes it as its own.
        unsafe { System.realloc(block, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> usize {
        KEPT.with(|kept| kept.lists.iter().map(|list| list.len.get()).sum())
    }

    /// Each test runs on its own thread, with its own kept blocks.
    fn on_a_worker(test: impl FnOnce() + Send + 'static) {
        std::thread::spawn(move || {
            keep_blocks_on_this_thread();
            test();
            stop_keeping_blocks_on_this_thread();
            assert_eq!(kept(), 0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_freed_block_serves_the_next_allocation_of_its_layout() {
        on_a_worker(|| {
            let layout = Layout::from_size_align(3000, 16).unwrap();
            // SAFETY: a non-zero layout; each block is freed once, with its layout.
            unsafe {
                let a = BlockCache.alloc(layout);
                BlockCache.dealloc(a, layout);
                assert_eq!(kept(), 1);
                let b = BlockCache.alloc(layout);
                assert_eq!(a, b, "the kept block is reused");
                let other = Layout::from_size_align(3000, 128).unwrap();
                let c = BlockCache.alloc(other);
                assert_ne!(c, b, "another alignment is another layout");
                assert_eq!(c as usize % 128, 0);
                BlockCache.dealloc(c, other);
                BlockCache.dealloc(b, layout);
                assert_eq!(kept(), 2);
            }
            release_kept_blocks();
            assert_eq!(kept(), 0);
        });
    }

    #[test]
    fn small_over_aligned_blocks_are_kept() {
        on_a_worker(|| {
            // A Tokio task's layout: a few hundred bytes aligned to 128.
            let task = Layout::from_size_align(256, 128).unwrap();
            // SAFETY: as above.
            unsafe {
                let a = BlockCache.alloc(task);
                assert_eq!(a as usize % 128, 0);
                BlockCache.dealloc(a, task);
                assert_eq!(kept(), 1);
                assert_eq!(BlockCache.alloc(task), a, "the kept block is reused");
                BlockCache.dealloc(a, task);
                let huge = Layout::from_size_align(16 * 1024 + 128, 128).unwrap();
                BlockCache.dealloc(BlockCache.alloc(huge), huge);
            }
            assert_eq!(kept(), 1, "over 16 KiB, none is kept, aligned or not");
        });
    }

    #[test]
    fn small_and_large_blocks_and_other_threads_keep_nothing() {
        on_a_worker(|| {
            for size in [64, 1032, 16 * 1024 + 1, 1 << 20] {
                let layout = Layout::from_size_align(size, 8).unwrap();
                // SAFETY: as above.
                unsafe { BlockCache.dealloc(BlockCache.alloc(layout), layout) };
            }
            assert_eq!(kept(), 0);
        });
        std::thread::spawn(|| {
            let layout = Layout::from_size_align(2000, 8).unwrap();
            // SAFETY: as above.
            unsafe { BlockCache.dealloc(BlockCache.alloc(layout), layout) };
            assert_eq!(kept(), 0, "not a worker");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn kept_blocks_are_bounded_per_layout_and_in_layouts() {
        on_a_worker(|| {
            let big = Layout::from_size_align(16 * 1024, 8).unwrap();
            // SAFETY: as above.
            let blocks: Vec<_> = (0..40).map(|_| unsafe { BlockCache.alloc(big) }).collect();
            for &block in &blocks {
                // SAFETY: as above.
                unsafe { BlockCache.dealloc(block, big) };
            }
            assert_eq!(
                kept(),
                MAX_LIST_BYTES / (16 * 1024),
                "256 KiB of 16 KiB blocks"
            );
            release_kept_blocks();
            for size in 2000..2000 + LISTS + 4 {
                let layout = Layout::from_size_align(size, 8).unwrap();
                // SAFETY: as above.
                unsafe { BlockCache.dealloc(BlockCache.alloc(layout), layout) };
            }
            assert_eq!(kept(), LISTS, "one block in each list, the rest freed");
        });
    }

    #[test]
    fn zeroed_and_resized_blocks_are_right() {
        on_a_worker(|| {
            let layout = Layout::from_size_align(4096, 8).unwrap();
            // SAFETY: as above; the realloc'd block is freed with its new layout.
            unsafe {
                let a = BlockCache.alloc(layout);
                a.write_bytes(0xAB, 4096);
                BlockCache.dealloc(a, layout);
                let z = BlockCache.alloc_zeroed(layout);
                assert_eq!(z, a);
                assert!(std::slice::from_raw_parts(z, 4096).iter().all(|&b| b == 0));
                z.write_bytes(7, 4096);
                let r = BlockCache.realloc(z, layout, 8192);
                assert!(std::slice::from_raw_parts(r, 4096).iter().all(|&b| b == 7));
                BlockCache.dealloc(r, Layout::from_size_align(8192, 8).unwrap());
            }
        });
    }
}
