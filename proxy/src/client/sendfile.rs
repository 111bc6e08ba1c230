//! Zero-copy file bodies on plain connections: sendfile(2) from the page cache straight into
//! the socket, as nginx's `sendfile on`, without a pass through a user-space buffer.
//!
//! Two rules keep it off the event loop's critical path:
//! - only pages already in the page cache are sent this way: `cachestat(2)` says so without
//!   touching the disk (`mincore(2)` on overlayfs, where cachestat counts none), and a range
//!   that is not cached is read through io_uring by the caller (which brings it into the
//!   cache), so a cold file never blocks the thread;
//! - the socket is non-blocking while the body goes out this way, so a full send buffer is
//!   an `EAGAIN` and a readiness wait, never a blocked thread. It is set before the first
//!   sendfile and put back before an io_uring op may run on the socket (a chunk copied
//!   through a buffer) and when the sender is dropped, so a 1 MiB file costs two `fcntl`s
//!   however many sendfile calls it takes. io_uring ops are never in flight on the socket
//!   meanwhile (the caller sends the body and does nothing else).
//!
//! Kernels without cachestat (before 6.5) or a seccomp filter that refuses it: file bodies are
//! copied through io_uring as before.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::Client;
use crate::filesystem::Filesystem;
use crate::io::IoError;

/// `cachestat(2)`'s number: the same on every architecture (syscalls added since 5.x share
/// one table).
const SYS_CACHESTAT: libc::c_long = 451;
/// Most bytes one sendfile call is offered (nginx's `sendfile_max_chunk`, 2m), and most
/// checked for residency at once.
const CHUNK: u64 = 2 * 1024 * 1024;
/// Where a whole chunk is not cached, the window checked instead: a page missing far ahead
/// must not send the bytes before it through copies.
const NEAR: u64 = 512 * 1024;

/// What one attempt did.
pub(crate) enum Step {
    /// This many bytes went out (0: the file ended early).
    Sent(u64),
    /// The socket's send buffer is full: wait until it drains.
    Full,
    /// The next bytes are not in the page cache: copy them through io_uring instead.
    NotCached,
    /// sendfile cannot be used for this file or socket: copy the rest.
    Unsupported,
}

/// Where a zero-copy send stands: the range known to be cached, and the readiness waiter.
pub(crate) struct ZeroCopy {
    fd: RawFd,
    flags: libc::c_int,
    /// O_NONBLOCK is set on the socket now (`flags` are its flags without it).
    nonblocking: bool,
    /// Offsets below this were found in the page cache.
    cached_to: u64,
    waiter: Option<AsyncFd<Borrowed>>,
}

/// The client's fd, borrowed for a readiness wait (the `Client` owns it and outlives this).
struct Borrowed(RawFd);

impl AsRawFd for Borrowed {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl Client {
    /// A zero-copy sender for this connection, if it can have one: a plain socket, and a
    /// kernel that answers cachestat.
    pub(crate) fn zero_copy(&self) -> Option<ZeroCopy> {
        if self.is_tls() || !cachestat_works() {
            return None;
        }
        let fd = self.stream.get_ref().socket()?;
        // SAFETY: F_GETFL reads the flags of an fd this client owns.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        (flags >= 0).then_some(ZeroCopy {
            fd,
            flags,
            nonblocking: false,
            cached_to: 0,
            waiter: None,
        })
    }
}

impl ZeroCopy {
    /// Sends as much of `head` as the socket takes at once, marked as followed by more (the
    /// file), so the head and the first bytes of the body leave in one segment.
    pub(crate) fn send_head(&self, head: &[u8]) -> usize {
        // SAFETY: send reads `head.len()` bytes from a live slice; the fd is open (owned by the
        // client this sender was made from, which the caller borrows).
        let n = unsafe {
            crate::io::sys_send(
                self.fd,
                head.as_ptr(),
                head.len(),
                libc::MSG_MORE | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        usize::try_from(n).unwrap_or(0)
    }

    /// Sends what it can of `file[at..end]` now (`file` is on `filesystem`, a local one).
    pub(crate) fn send(
        &mut self,
        file: RawFd,
        filesystem: Filesystem,
        at: u64,
        end: u64,
    ) -> io::Result<Step> {
        let want = (end - at).min(CHUNK);
        let overlay = filesystem.is_overlayfs();
        if at >= self.cached_to {
            match cached(file, at, want, overlay) {
                Some(true) => self.cached_to = at + want,
                Some(false) if want > NEAR && cached(file, at, NEAR, overlay) == Some(true) => {
                    self.cached_to = at + NEAR;
                }
                Some(false) => return Ok(Step::NotCached),
                None => return Ok(Step::Unsupported),
            }
        }
        let count = usize::try_from(want.min(self.cached_to - at)).unwrap_or(usize::MAX);
        let Ok(mut offset) = libc::off_t::try_from(at) else {
            return Ok(Step::Unsupported);
        };
        if !self.nonblocking {
            // SAFETY: F_SETFL on an fd the client owns; the flags are put back before any
            // io_uring op can run on the socket again (`before_ops`, or the drop).
            if unsafe { libc::fcntl(self.fd, libc::F_SETFL, self.flags | libc::O_NONBLOCK) } < 0 {
                return Ok(Step::Unsupported);
            }
            self.nonblocking = true;
        }
        // SAFETY: both fds are open for the call (the file is held by the caller, the socket
        // by the client); `offset` is a valid out-pointer.
        let sent = unsafe { libc::sendfile(self.fd, file, &mut offset, count) };
        let sent = if sent < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(sent)
        };
        match sent {
            Ok(n) => Ok(Step::Sent(n.unsigned_abs() as u64)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Step::Full),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                Ok(Step::Unsupported)
            }
            Err(e) => Err(e),
        }
    }

    /// Puts the socket back in blocking mode, before an io_uring op runs on it.
    pub(crate) fn before_ops(&mut self) {
        if self.nonblocking {
            // SAFETY: F_SETFL on an fd the client owns, with the flags it had.
            unsafe { libc::fcntl(self.fd, libc::F_SETFL, self.flags) };
            self.nonblocking = false;
        }
    }

    /// Waits until the socket can take more bytes, up to `limit`. `Ok(false)`: it cannot be
    /// waited on here (the caller copies the next bytes through io_uring, which waits).
    pub(crate) async fn writable(&mut self, limit: Duration) -> Result<bool, IoError> {
        if self.waiter.is_none() {
            // SAFETY: the fd stays open and the same socket for the AsyncFd's whole life: the
            // client owns it and outlives this sender, which the caller drops first.
            let registered =
                unsafe { AsyncFd::register_with_interest(Borrowed(self.fd), Interest::WRITABLE) };
            match registered {
                Ok(waiter) => self.waiter = Some(waiter),
                // Already registered (the client-gone watch of an X-Accel-Redirect answer).
                Err(_) => return Ok(false),
            }
        }
        let Some(waiter) = &self.waiter else {
            return Ok(false);
        };
        let waited = tokio::time::timeout(limit, waiter.writable()).await;
        // Pages found cached before a wait may have been evicted during it.
        self.cached_to = 0;
        match waited {
            Ok(Ok(mut ready)) => {
                ready.clear_ready();
                Ok(true)
            }
            Ok(Err(e)) => Err(IoError::Failed(e.kind())),
            Err(_) => Err(IoError::Timeout),
        }
    }
}

impl Drop for ZeroCopy {
    /// The socket leaves blocking mode only while this sender lives.
    fn drop(&mut self) {
        self.before_ops();
    }
}

/// Whether cachestat works here, asked once per process: 0 unknown, 1 yes, 2 no.
static CACHESTAT: AtomicU8 = AtomicU8::new(0);

fn cachestat_works() -> bool {
    CACHESTAT.load(Ordering::Relaxed) != 2
}

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Whether every page of `file[at..at + len]` is in the page cache; `None` when the kernel
/// cannot say (remembered for the process). On overlayfs (a container image's files) its
/// pages are cached under the file beneath, and cachestat on it counts none (found by
/// review: they were never sent with sendfile): mincore is asked then.
fn cached(file: RawFd, at: u64, len: u64, overlay: bool) -> Option<bool> {
    let range = CachestatRange { off: at, len };
    let mut stat = Cachestat::default();
    // SAFETY: cachestat reads `range` and writes `stat`, both live and of the kernel's
    // layout; the file is open (held by the caller). flags must be 0.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file,
            &raw const range,
            &raw mut stat,
            0 as libc::c_uint,
        )
    };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if matches!(err.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) {
            CACHESTAT.store(2, Ordering::Relaxed);
            tracing::info!(
                "cachestat(2) is not available ({err}): static files are copied, not sent \
                 with sendfile"
            );
        }
        return None;
    }
    CACHESTAT.store(1, Ordering::Relaxed);
    let page = crate::memory::page_size();
    let pages = (at + len).div_ceil(page) - at / page;
    if stat.nr_cache == 0 && pages > 0 && overlay {
        return Some(resident(file, at, len));
    }
    Some(stat.nr_cache >= pages)
}

/// Whether every page of `file[at..at + len]` is in memory, asked of mincore(2) on a
/// mapping of the range, which touches none of them (no fault, no read, no SIGBUS).
fn resident(file: RawFd, at: u64, len: u64) -> bool {
    let page = crate::memory::page_size();
    let start = at - at % page;
    let (Ok(map_len), Ok(offset)) = (usize::try_from(at + len - start), i64::try_from(start))
    else {
        return false;
    };
    // One byte per page of a chunk ([`CHUNK`] of 4 KiB pages at most).
    let mut pages = [0u8; (CHUNK / 4096) as usize];
    let Some(pages) = pages.get_mut(..map_len.div_ceil(page as usize)) else {
        return false;
    };
    // SAFETY: a new private read-only mapping of an open file; nothing else uses it, and it
    // is unmapped below whatever mincore says.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file,
            offset,
        )
    };
    if addr == libc::MAP_FAILED {
        return false;
    }
    // SAFETY: `addr..addr + map_len` is the mapping just made; `pages` holds one byte per
    // page of it.
    let rc = unsafe { libc::mincore(addr, map_len, pages.as_mut_ptr()) };
    // SAFETY: the mapping made above, unmapped once.
    unsafe { libc::munmap(addr, map_len) };
    rc == 0 && pages.iter().all(|&p| p & 1 == 1)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_file_just_written_is_in_the_page_cache() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&vec![7u8; 256 * 1024]).unwrap();
        // A kernel without cachestat says so (None); this one (6.5 and later) answers.
        assert_eq!(
            super::cached(file.as_raw_fd(), 0, 256 * 1024, false),
            Some(true)
        );
        assert_eq!(
            super::cached(file.as_raw_fd(), 4000, 10_000, false),
            Some(true)
        );
    }

    /// A file of a container image's layer: overlayfs caches its pages under the file
    /// beneath, and cachestat on it counts none; mincore sees them. Mounts an overlay, as
    /// the project's tests run as root.
    #[test]
    fn a_cached_file_on_overlayfs_counts_as_cached() {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        struct Mounted(CString);
        impl Drop for Mounted {
            fn drop(&mut self) {
                // SAFETY: a valid C path; a lazy unmount of the test's own mount.
                unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
            }
        }
        let top = tempfile::tempdir_in("/var/tmp").unwrap();
        let dir = |name: &str| {
            let path = top.path().join(name);
            std::fs::create_dir(&path).unwrap();
            path
        };
        let (lower, upper, work, merged) = (dir("lower"), dir("upper"), dir("work"), dir("merged"));
        std::fs::write(lower.join("layer.bin"), vec![7u8; 256 * 1024]).unwrap();
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        let target = CString::new(merged.as_os_str().as_bytes()).unwrap();
        let (kind, options) = (
            CString::new("overlay").unwrap(),
            CString::new(options).unwrap(),
        );
        // SAFETY: valid C strings; mounts an overlay on the test's own directory.
        let rc = unsafe {
            libc::mount(
                kind.as_ptr(),
                target.as_ptr(),
                kind.as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        assert_eq!(rc, 0, "mount overlay: {}", std::io::Error::last_os_error());
        let _mounted = Mounted(target);
        let mut file = std::fs::File::open(merged.join("layer.bin")).unwrap();
        let filesystem = crate::filesystem::Filesystem::of(file.as_raw_fd());
        assert!(filesystem.is_overlayfs() && filesystem.is_local());
        std::io::Read::read_to_end(&mut file, &mut Vec::new()).unwrap();
        assert_eq!(
            super::cached(file.as_raw_fd(), 0, 256 * 1024, true),
            Some(true)
        );
        assert_eq!(
            super::cached(file.as_raw_fd(), 5000, 100_000, true),
            Some(true)
        );
    }

    #[test]
    fn the_socket_is_non_blocking_only_while_the_sender_sends() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_theirs, _) = listener.accept().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&[7u8; 4096]).unwrap();
        let fd = ours.as_raw_fd();
        // SAFETY: F_GETFL on an open fd.
        let flags = || unsafe { libc::fcntl(fd, libc::F_GETFL) };
        let blocking = flags();
        assert_eq!(blocking & libc::O_NONBLOCK, 0);
        let mut sender = super::ZeroCopy {
            fd,
            flags: blocking,
            nonblocking: false,
            cached_to: 0,
            waiter: None,
        };
        let local = crate::filesystem::Filesystem::of(file.as_raw_fd());
        let sent = sender.send(file.as_raw_fd(), local, 0, 4096).unwrap();
        assert!(matches!(sent, super::Step::Sent(4096)));
        assert_ne!(flags() & libc::O_NONBLOCK, 0, "between two sendfile calls");
        sender.before_ops();
        assert_eq!(flags(), blocking, "before an io_uring op");
        let sent = sender.send(file.as_raw_fd(), local, 1024, 4096).unwrap();
        assert!(matches!(sent, super::Step::Sent(3072)));
        drop(sender);
        assert_eq!(flags(), blocking, "once the sender is gone");
    }

    #[test]
    fn pages_dropped_from_the_cache_are_not_cached() {
        // On disk: tmpfs pages cannot be dropped.
        let mut file = tempfile::tempfile_in("/var/tmp").unwrap();
        file.write_all(&vec![7u8; 64 * 1024]).unwrap();
        file.sync_all().unwrap();
        // SAFETY: advice on an open fd.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0);
        assert_eq!(
            super::cached(file.as_raw_fd(), 0, 64 * 1024, false),
            Some(false)
        );
    }
}
