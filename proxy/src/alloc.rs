//! The process's allocator: glibc's malloc, with the blocks a worker thread frees kept for
//! its next allocations: small ones by size class, those of 1 to 16 KiB (and over-aligned
//! ones up to that) by exact layout.
//!
//! glibc serves blocks up to 1032 bytes from a per-thread cache (tcache), without a lock,
//! but keeps only 7 free blocks per size there; beyond that, and for larger or over-aligned
//! blocks, it goes to the arena, under its lock, and every thread shares one arena
//! (`M_ARENA_MAX` 1, set in `memory.rs`, which `server.rs` calls at start). A request
//! allocates a few mid-sized blocks again and again (its future's box, a task aligned to
//! 128 bytes), and an HTTP/2 stream dozens of small ones, with many streams in flight at
//! once. Taken from glibc each time, they were about a tenth of a worker's CPU under load,
//! some of it waiting for the arena's lock. So each worker thread keeps the blocks it frees
//! in bounded free lists and hands them out again. A kept block is still glibc's, so whoever frees or reallocates it later, on any
//! thread, does so through glibc as usual. See docs/ARCHITECTURE.md, "Buffering".

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

/// Small blocks are kept by size class, each class a usable size glibc hands out on 64-bit
/// targets (24 + 16k bytes: a chunk of 32 + 16k less its 8-byte header), from its smallest
/// block up to tcache's largest. A freed block goes to the largest class its usable size
/// (`malloc_usable_size`, whatever malloc is loaded) covers, and an allocation takes a block
/// of the smallest class not below it; a fresh one is allocated with the class's size, so
/// that it comes back to the same class.
const SMALL_MIN: usize = 24;
const SMALL_STEP: usize = 16;
const SMALL_MAX: usize = 1032;
const SMALL_CLASSES: usize = (SMALL_MAX - SMALL_MIN) / SMALL_STEP + 1;
/// Most blocks kept per small class: about what a worker frees in a burst of HTTP/2
/// streams (glibc's own cache keeps 7; past those each free took the arena's path, under
/// its lock).
const MAX_SMALL_BLOCKS: usize = 128;
/// Most bytes kept per small class: 64 classes hold 1.5 MiB at most per thread, given back
/// with the other kept blocks when the worker is quiet.
const MAX_SMALL_CLASS_BYTES: usize = 32 * 1024;

/// Whether blocks of `layout` are kept by size class.
fn is_small(layout: Layout) -> bool {
    layout.align() <= MALLOC_ALIGN && layout.size() <= SMALL_MAX
}

/// The class whose blocks serve an allocation of `layout`, if it is small.
fn small_class_for_alloc(layout: Layout) -> Option<usize> {
    is_small(layout).then(|| layout.size().saturating_sub(SMALL_MIN).div_ceil(SMALL_STEP))
}

/// The class a freed block belongs to: the largest its usable size covers.
///
/// # Safety
/// `block` is a live block of the process's malloc.
unsafe fn small_class_of(block: *mut u8) -> Option<usize> {
    // SAFETY: the caller's contract.
    let usable = unsafe { libc::malloc_usable_size(block.cast()) };
    let class = usable.checked_sub(SMALL_MIN)? / SMALL_STEP;
    Some(class.min(SMALL_CLASSES - 1))
}

/// The layout glibc allocates a fresh block of small class `class` with.
fn small_layout(class: usize, align: usize) -> Option<Layout> {
    Layout::from_size_align(SMALL_MIN + class * SMALL_STEP, align).ok()
}

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
    /// Small blocks, by class (their lists' layouts unused).
    small: [FreeList; SMALL_CLASSES],
}

thread_local! {
    // No destructor and a constant start: reading it never allocates, as an allocator must.
    static KEPT: Kept = const {
        Kept {
            on: Cell::new(false),
            lists: [const { FreeList::empty() }; LISTS],
            small: [const { FreeList::empty() }; SMALL_CLASSES],
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

    fn take_small(&self, class: usize) -> Option<*mut u8> {
        if !self.on.get() {
            return None;
        }
        self.small.get(class).and_then(FreeList::pop)
    }

    /// Keeps `block` in its small class if the class has room.
    ///
    /// # Safety
    /// `block` came from `System` and is no longer used.
    unsafe fn keep_small(&self, block: *mut u8) -> bool {
        if !self.on.get() {
            return false;
        }
        // SAFETY: the caller's contract: malloc's, not yet freed.
        let Some(class) = (unsafe { small_class_of(block) }) else {
            return false;
        };
        let Some(list) = self.small.get(class) else {
            return false;
        };
        let size = SMALL_MIN + class * SMALL_STEP;
        if list.len.get() >= MAX_SMALL_BLOCKS.min(MAX_SMALL_CLASS_BYTES / size) {
            return false;
        }
        // SAFETY: the caller's contract; the block holds the class's size, an address at
        // least.
        unsafe { list.push(block) };
        true
    }

    fn release(&self) {
        for (class, list) in self.small.iter().enumerate() {
            while let Some(block) = list.pop() {
                if let Some(layout) = small_layout(class, 1) {
                    // SAFETY: every block in the list is `System`'s and unused; glibc frees
                    // it whatever layout it came with (`free` takes no size).
                    unsafe { System.dealloc(block, layout) };
                }
            }
        }
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
        if let Some(class) = small_class_for_alloc(layout) {
            if let Ok(Some(block)) = KEPT.try_with(|kept| kept.take_small(class)) {
                return block;
            }
            // The whole class (the same glibc chunk as `layout.size()` would get), so that
            // the block serves any allocation of its class once freed.
            if let Some(whole) = small_layout(class, layout.align()) {
                // SAFETY: a non-zero size.
                return unsafe { System.alloc(whole) };
            }
        }
        if is_kept(layout)
            && let Ok(Some(block)) = KEPT.try_with(|kept| kept.take(layout))
        {
            return block;
        }
        // SAFETY: the caller's contract (a non-zero size) is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if let Some(class) = small_class_for_alloc(layout) {
            if let Ok(Some(block)) = KEPT.try_with(|kept| kept.take_small(class)) {
                // SAFETY: the block holds at least `layout.size()` bytes, all ours.
                unsafe { block.write_bytes(0, layout.size()) };
                return block;
            }
            if let Some(whole) = small_layout(class, layout.align()) {
                // SAFETY: a non-zero size.
                return unsafe { System.alloc_zeroed(whole) };
            }
        }
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
        if is_small(layout) {
            // SAFETY: `block` came from `alloc`, so it is `System`'s, and the caller is done
            // with it.
            let keep = |kept: &Kept| unsafe { kept.keep_small(block) };
            if KEPT.try_with(keep) == Ok(true) {
                return;
            }
            // SAFETY: as above.
            return unsafe { System.dealloc(block, layout) };
        }
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

    fn kept_small() -> usize {
        KEPT.with(|kept| kept.small.iter().map(|list| list.len.get()).sum())
    }

    fn usable_size(block: *mut u8) -> usize {
        // SAFETY: the tests ask only of live blocks.
        unsafe { libc::malloc_usable_size(block.cast()) }
    }

    /// Each test runs on its own thread, with its own kept blocks.
    fn on_a_worker(test: impl FnOnce() + Send + 'static) {
        std::thread::spawn(move || {
            keep_blocks_on_this_thread();
            test();
            stop_keeping_blocks_on_this_thread();
            assert_eq!(kept(), 0);
            assert_eq!(kept_small(), 0);
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
    fn small_blocks_are_kept_by_class_and_always_hold_what_is_asked() {
        on_a_worker(|| {
            // SAFETY: non-zero layouts; each block is freed once, with its layout.
            unsafe {
                let forty = Layout::from_size_align(40, 8).unwrap();
                let a = BlockCache.alloc(forty);
                BlockCache.dealloc(a, forty);
                assert_eq!(kept_small(), 1);
                let b = BlockCache.alloc(Layout::from_size_align(33, 1).unwrap());
                assert_eq!(a, b, "33 bytes are of the 40-byte class");
                // Freed with a smaller layout, the block keeps its class: its usable size.
                BlockCache.dealloc(b, Layout::from_size_align(30, 1).unwrap());
                let c = BlockCache.alloc(forty);
                assert_eq!(c, b);
                // One that glibc made bigger (a shrunk realloc) serves its own class.
                let grown = BlockCache.realloc(c, forty, 1000);
                let shrunk =
                    BlockCache.realloc(grown, Layout::from_size_align(1000, 8).unwrap(), 900);
                let usable = usable_size(shrunk);
                BlockCache.dealloc(shrunk, Layout::from_size_align(900, 8).unwrap());
                let again = BlockCache.alloc(Layout::from_size_align(usable, 8).unwrap());
                assert_eq!(again, shrunk);
                BlockCache.dealloc(again, Layout::from_size_align(usable, 8).unwrap());
                // Whatever the sizes, a block handed out holds what was asked for.
                let mut held = Vec::new();
                for size in (1..=SMALL_MAX).step_by(7) {
                    let layout = Layout::from_size_align(size, 8).unwrap();
                    let block = BlockCache.alloc(layout);
                    assert!(usable_size(block) >= size);
                    held.push((block, layout));
                }
                for (block, layout) in held.drain(..) {
                    BlockCache.dealloc(block, layout);
                }
                for size in (1..=SMALL_MAX).rev().step_by(5) {
                    let layout = Layout::from_size_align(size, 8).unwrap();
                    let block = BlockCache.alloc(layout);
                    assert!(usable_size(block) >= size, "{size} bytes");
                    held.push((block, layout));
                }
                for (block, layout) in held {
                    BlockCache.dealloc(block, layout);
                }
            }
            assert!(kept_small() > 0);
            release_kept_blocks();
            assert_eq!(kept_small(), 0);
        });
    }

    #[test]
    fn small_blocks_are_bounded_per_class() {
        on_a_worker(|| {
            let tiny = Layout::from_size_align(8, 8).unwrap();
            let big = Layout::from_size_align(SMALL_MAX, 8).unwrap();
            for layout in [tiny, big] {
                // SAFETY: as above.
                let blocks: Vec<_> = (0..300)
                    .map(|_| unsafe { BlockCache.alloc(layout) })
                    .collect();
                for block in blocks {
                    // SAFETY: as above.
                    unsafe { BlockCache.dealloc(block, layout) };
                }
            }
            // Per class: the thread's own blocks (a spawned thread's handle, dropped by
            // whichever of it and its parent ends last) may land in other classes.
            let kept_in = |layout| {
                let class = small_class_for_alloc(layout).unwrap();
                KEPT.with(|kept| kept.small[class].len.get())
            };
            assert_eq!(
                (kept_in(tiny), kept_in(big)),
                (MAX_SMALL_BLOCKS, MAX_SMALL_CLASS_BYTES / SMALL_MAX),
                "a class of small blocks holds 128 at most, of large ones 32 KiB"
            );
        });
    }

    #[test]
    fn large_blocks_and_other_threads_keep_nothing() {
        on_a_worker(|| {
            for size in [16 * 1024 + 1, 1 << 20] {
                let layout = Layout::from_size_align(size, 8).unwrap();
                // SAFETY: as above.
                unsafe { BlockCache.dealloc(BlockCache.alloc(layout), layout) };
            }
            assert_eq!(kept() + kept_small(), 0);
        });
        std::thread::spawn(|| {
            for size in [64, 2000] {
                let layout = Layout::from_size_align(size, 8).unwrap();
                // SAFETY: as above.
                unsafe { BlockCache.dealloc(BlockCache.alloc(layout), layout) };
            }
            assert_eq!(kept() + kept_small(), 0, "not a worker");
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
