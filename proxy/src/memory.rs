//! Memory given back to the system when the server is quiet: the heap pages glibc holds
//! free, and the mapped pages of code and read-only data. See docs/ARCHITECTURE.md,
//! "Buffering".
//!
//! Most of an idle ringway's resident memory is not its own data (about half a MiB) but
//! pages of the binary and of libc, mapped by the code that ran at start-up (argument and
//! configuration parsing, logging set-up, certificate loading), which an idle server never
//! runs again: each page fault on a file maps the 64 KiB around it (the kernel's
//! fault-around), and start-up touches most of the binary's 5 MB that way. Those pages are
//! clean copies of files in the page cache; unmapping them loses nothing, and the few the
//! running code needs are mapped again by its next use, from the page cache.

use std::fs;

/// Tells glibc to keep freed heap pages (no trimming in `free`, no mmap for buffer-sized
/// blocks): under load the same buffers are freed and allocated again and again, and giving
/// their pages back each time costs a page fault per reuse. They go back in one go, when
/// the server is quiet ([`release_freed_heap`]).
///
/// One arena for every thread: `malloc_trim` gives back the free pages inside an arena, but
/// the free space at the top of a thread's own arena only goes back from `free`, past the
/// trim threshold set high here. With an arena per worker, a load run left about 5 MiB free
/// but resident in each for good; with one, the quiet trim returns it. Small blocks still
/// come from each thread's own cache (tcache) without the arena's lock; buffers come from
/// the per-thread pools.
pub(crate) fn keep_freed_memory_until_quiet() {
    // SAFETY: mallopt only changes allocator parameters (under glibc's own lock); any value
    // is valid for these. It runs before the worker threads start, so none has an arena of
    // its own yet.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Gives the heap pages freed since the last call back to the system, once the server is
/// quiet: after a burst (many slow uploads, many answers held for slow clients) RSS settles
/// back near idle. `malloc_trim` walks the arenas' free lists, a fraction of a millisecond.
pub(crate) fn release_freed_heap() {
    // SAFETY: malloc_trim only releases free heap pages; no allocation is touched.
    unsafe { libc::malloc_trim(0) };
}

/// Unmaps the resident pages of the loaded objects' code and read-only data (the binary,
/// libc, ld.so): after start-up, and when the server is idle (`server.rs`). About a
/// millisecond (the kernel writes `/proc/self/smaps`); the running code maps the pages it
/// needs again on their next use, a minor fault each, from the page cache.
pub(crate) fn unmap_code_pages() {
    let Ok(smaps) = fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let clean = clean_file_ranges(&smaps);
    drop(smaps);
    // The segments of the loaded objects, listed under the loader's lock: none of them is
    // being mapped, relocated or unloaded meanwhile, so a range checked clean above is
    // still that object's segment (ringway unloads nothing).
    let mut target = Target {
        clean,
        page: page_size(),
    };
    // SAFETY: the callback gets `data` as the `Target` passed here, which outlives the call;
    // it only reads `info` and its program headers, valid during the callback.
    unsafe {
        libc::dl_iterate_phdr(
            Some(unmap_segments),
            (&raw mut target).cast::<libc::c_void>(),
        );
    }
}

/// What [`unmap_segments`] is given.
struct Target {
    /// The clean mappings ([`clean_file_ranges`]).
    clean: Vec<Range>,
    page: u64,
}

/// The system's page size (4 KiB if it cannot be read: then a larger page is never split
/// here, and `madvise` refuses an unaligned range).
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf reads a system value; no memory is passed.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

/// `dl_iterate_phdr`'s callback: unmaps each non-writable loadable segment of one object
/// that lies within a clean mapping (`data`: the [`Target`]).
unsafe extern "C" fn unmap_segments(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the `Target` `unmap_code_pages` passed, alive and not mutated
    // during the iteration; `info` and its `dlpi_phnum` headers are the loader's, valid now.
    let (target, info) = unsafe { (&*data.cast::<Target>(), &*info) };
    let phdrs = if info.dlpi_phdr.is_null() {
        &[][..]
    } else {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
    };
    for phdr in phdrs {
        if phdr.p_type != libc::PT_LOAD || phdr.p_flags & libc::PF_W != 0 {
            continue;
        }
        let start = info.dlpi_addr.checked_add(phdr.p_vaddr);
        let Some(segment) = start.and_then(|s| whole_pages(s, phdr.p_memsz, target.page)) else {
            continue;
        };
        if target
            .clean
            .iter()
            .any(|r| r.start <= segment.start && segment.end <= r.end)
        {
            unmap_pages(segment);
        }
    }
    0
}

/// The pages of `page` bytes wholly inside a segment loaded at `start` for `size` bytes: a
/// page it shares with a neighbouring (writable) segment is left out.
fn whole_pages(start: u64, size: u64, page: u64) -> Option<Range> {
    let end = start.checked_add(size)?;
    let (start, end) = (start.checked_next_multiple_of(page)?, end / page * page);
    (start < end).then_some(Range {
        start: usize::try_from(start).ok()?,
        end: usize::try_from(end).ok()?,
    })
}

/// An address range of this process, `[start, end)`.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Range {
    start: usize,
    end: usize,
}

/// The mappings whose every page is a clean page of a file: private, never writable,
/// mapped from a file, with no private (anonymous) copy of a page, in memory or swapped
/// out, not locked and not hugetlb. A read-only mapping cannot come to hold a private copy
/// without being made writable first; a loaded object's relocated part (RELRO) holds its
/// copies before it turns read-only, and a debugger's or a uprobe's breakpoint is such a
/// copy: both are left alone.
fn clean_file_ranges(smaps: &str) -> Vec<Range> {
    let mut ranges = Vec::new();
    let mut mapping: Option<Range> = None;
    let mut private_copies = false;
    for line in smaps.lines() {
        if let Some(header) = mapping_header(line) {
            mapping = header;
            private_copies = false;
        } else if let Some(kb) = line
            .strip_prefix("Anonymous:")
            .or_else(|| line.strip_prefix("Swap:"))
        {
            private_copies |= kb.trim() != "0 kB";
        } else if let Some(flags) = line.strip_prefix("VmFlags:") {
            // The last line of a mapping's entry.
            let pinned = flags
                .split_ascii_whitespace()
                .any(|f| f == "lo" || f == "ht");
            if let Some(range) = mapping.take()
                && !private_copies
                && !pinned
            {
                ranges.push(range);
            }
        }
    }
    ranges
}

/// A mapping's header line (`start-end perms offset dev inode path`): `Some(Some(range))`
/// for a read-only private mapping of a file, `Some(None)` for any other mapping, `None`
/// for a line that is not a header (the header's fields come first, `Key:` lines after).
fn mapping_header(line: &str) -> Option<Option<Range>> {
    let mut fields = line.split_ascii_whitespace();
    let (span, perms) = (fields.next()?, fields.next()?);
    let (start, end) = span.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let (_offset, _dev, inode) = (fields.next()?, fields.next()?, fields.next()?);
    let path = fields.next().unwrap_or("");
    let perms = perms.as_bytes();
    let read_only_private = perms.len() == 4 && perms[1] == b'-' && perms[3] == b'p';
    let of_a_file = inode != "0" && path.starts_with('/');
    Some((read_only_private && of_a_file && start < end).then_some(Range { start, end }))
}

/// Unmaps the resident pages of `range`; the next access maps them again from the page
/// cache (a private file mapping reads the file's contents again: `MADV_DONTNEED`).
fn unmap_pages(range: Range) {
    // SAFETY: `range` is within a loaded object's non-writable segment, in a mapping that
    // is private, of a file and with no private copy of any page (`unmap_code_pages`):
    // dropping its pages changes no byte any thread can read, only whether a read faults.
    // A locked mapping refuses (EINVAL), which is what locking asks; nothing to report.
    unsafe {
        libc::madvise(
            range.start as *mut libc::c_void,
            range.end - range.start,
            libc::MADV_DONTNEED,
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    /// Each entry as the kernel writes it, trimmed to the lines read here.
    const SMAPS: &str = "\
55f263502000-55f2639c4000 r-xp 00177000 fe:01 1234 /usr/bin/ringway
Size:               4872 kB
Rss:                3752 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me sd
55f2639c4000-55f2639f4000 r--p 00639000 fe:01 1234 /usr/bin/ringway
Anonymous:           192 kB
Swap:                  0 kB
VmFlags: rd mr mw me ac sd
55f2639f4000-55f2639f8000 rw-p 00669000 fe:01 1234 /usr/bin/ringway
Anonymous:            16 kB
Swap:                  0 kB
VmFlags: rd wr mr mw me ac sd
55f286fdb000-55f287003000 rw-p 00000000 00:00 0 [heap]
Anonymous:           156 kB
Swap:                  0 kB
VmFlags: rd wr mr mw me ac sd
7f595f593000-7f595f5a3000 rw-s 00000000 00:0e 2051 anon_inode:[io_uring]
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd wr sh mr mw me ms sd
7f595f9c6000-7f595f9ec000 r--p 00000000 fe:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd mr mw me sd
7f595f9ec000-7f595fb42000 r--p 00026000 fe:01 99 /usr/lib/x86_64-linux-gnu/libm.so.6
Anonymous:             0 kB
Swap:                 12 kB
VmFlags: rd mr mw me ac sd
7f595fb42000-7f595fb95000 r-xp 00000000 fe:01 98 /usr/lib/x86_64-linux-gnu/libgcc_s.so.1
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me lo sd
7f595fa00000-7f595fa10000 r--s 00000000 fe:01 77 /var/cache/shared.db
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd sh mr mw me sd
7ffc4b0e0000-7ffc4b0e2000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me de sd
";

    #[test]
    fn only_clean_read_only_private_file_mappings_are_unmapped() {
        assert_eq!(
            clean_file_ranges(SMAPS),
            vec![
                // The binary's code and libc's read-only data. Left alone: the binary's
                // relocated read-only part (anonymous copies), its data, the heap, the
                // io_uring rings, a mapping with swapped-out copies, a locked one, a
                // shared one and the vdso.
                Range {
                    start: 0x55f2_6350_2000,
                    end: 0x55f2_639c_4000
                },
                Range {
                    start: 0x7f59_5f9c_6000,
                    end: 0x7f59_5f9e_c000
                },
            ]
        );
    }

    #[test]
    fn a_path_with_spaces_and_odd_lines_are_read_safely() {
        let smaps = "\
1000-2000 r-xp 00000000 fe:01 5 /opt/my app/lib.so (deleted)
Anonymous:             0 kB
not a header at all
VmFlags: rd ex
3000-2000 r--p 00000000 fe:01 6 /backwards
Anonymous:             0 kB
VmFlags: rd
5000-6000 r--p 00000000 fe:01 7 /no/flags/line
Anonymous:             0 kB
";
        assert_eq!(
            clean_file_ranges(smaps),
            vec![Range {
                start: 0x1000,
                end: 0x2000
            }]
        );
    }

    #[test]
    fn a_segment_keeps_only_its_whole_pages() {
        assert_eq!(
            whole_pages(0x7000_1800, 0x3000, 4096),
            Some(Range {
                start: 0x7000_2000,
                end: 0x7000_4000
            })
        );
        assert_eq!(whole_pages(0x7000_1800, 0x100, 4096), None);
        assert_eq!(whole_pages(u64::MAX - 1, 1, 4096), None);
        assert_eq!(whole_pages(0x7000_1800, 0x3000, 65536), None);
    }

    #[test]
    fn this_process_keeps_running_after_unmapping_its_code_pages() {
        let before = file_pages_kb();
        unmap_code_pages();
        // The code runs on: its pages come back from the page cache.
        let doubled: Vec<u64> = (0..1000u64).map(|i| i * 2).collect();
        assert_eq!(doubled.iter().sum::<u64>(), 999_000);
        let after = file_pages_kb();
        assert!(after < before, "{before} kB of file pages then {after} kB");
    }

    /// Resident pages of mapped files (other tests' allocations run alongside).
    fn file_pages_kb() -> u64 {
        let status = fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssFile:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}
