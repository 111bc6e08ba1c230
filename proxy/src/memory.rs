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
/// the server is quiet ([`give_back`]).
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

/// Gives back the heap pages freed since the last call and unmaps the file pages of code
/// and read-only data: after start-up, and whenever the server is quiet, so that RSS settles
/// back near idle after a burst (many slow uploads, many answers held for slow clients).
/// About a millisecond: `malloc_trim` walks the arenas' free lists, and the kernel writes
/// `/proc/self/smaps`.
pub(crate) fn give_back() {
    // SAFETY: malloc_trim only releases free heap pages; no allocation is touched.
    unsafe { libc::malloc_trim(0) };
    if let Ok(smaps) = fs::read_to_string("/proc/self/smaps") {
        for range in clean_file_ranges(&smaps) {
            unmap_pages(range);
        }
    }
}

/// An address range of this process, `[start, end)`.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Range {
    start: usize,
    end: usize,
}

/// The mappings whose every resident page is a clean page of a file: private, never
/// writable, mapped from a file, and holding no private (anonymous) copy of a page. Such a
/// mapping cannot come to hold one without first being made writable, which ringway never
/// does; a loaded library's relocated part holds its copies before it turns read-only, and
/// a debugger's or a uprobe's breakpoint is such a copy too: both are left alone.
fn clean_file_ranges(smaps: &str) -> Vec<Range> {
    let mut ranges = Vec::new();
    let mut candidate: Option<Range> = None;
    for line in smaps.lines() {
        if let Some(range) = mapping_header(line) {
            candidate = range;
        } else if let Some(kb) = line.strip_prefix("Anonymous:") {
            if let Some(range) = candidate.take()
                && kb.trim() == "0 kB"
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
/// cache (private file mappings read the file's contents again: `MADV_DONTNEED`).
fn unmap_pages(range: Range) {
    // SAFETY: `range` is a whole mapping of this process, private, not writable and with
    // no private copy of any page (`clean_file_ranges`): dropping its pages changes no
    // byte any thread can read, only whether the next read faults.
    let rc = unsafe {
        libc::madvise(
            range.start as *mut libc::c_void,
            range.end - range.start,
            libc::MADV_DONTNEED,
        )
    };
    // A locked mapping (mlockall) refuses: its pages stay, which is what locking asks.
    let _ = rc;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    const SMAPS: &str = "\
55f263502000-55f2639c4000 r-xp 00177000 fe:01 1234 /usr/bin/ringway
Size:               4872 kB
Rss:                3752 kB
Anonymous:             0 kB
55f2639c4000-55f2639f4000 r--p 00639000 fe:01 1234 /usr/bin/ringway
Size:                192 kB
Anonymous:           192 kB
55f2639f4000-55f2639f8000 rw-p 00669000 fe:01 1234 /usr/bin/ringway
Anonymous:            16 kB
55f286fdb000-55f287003000 rw-p 00000000 00:00 0 [heap]
Anonymous:           156 kB
7f595f593000-7f595f5a3000 rw-s 00000000 00:0e 2051 anon_inode:[io_uring]
Anonymous:             0 kB
7f595f9c6000-7f595f9ec000 r--p 00000000 fe:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7f595fa00000-7f595fa10000 r--s 00000000 fe:01 77 /var/cache/shared.db
Anonymous:             0 kB
7ffc4b0e0000-7ffc4b0e2000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
";

    #[test]
    fn only_clean_read_only_private_file_mappings_are_unmapped() {
        assert_eq!(
            clean_file_ranges(SMAPS),
            vec![
                // The binary's code; its relocated read-only part (anonymous copies), its
                // data, the heap, the io_uring rings, a shared mapping and the vdso stay.
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
1000-2000 r-xp 00000000 fe:01 5 /opt/my app/lib.so
Anonymous:             0 kB
not a header at all
3000-2000 r--p 00000000 fe:01 6 /backwards
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
    fn this_process_keeps_running_after_giving_its_code_pages_back() {
        let before = file_pages_kb();
        give_back();
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
