//! Opening a file under a static route's root, so that no path can leave the root.
//!
//! The root directory is opened at start-up, and again when its path names another directory
//! (looked at once a second, when a file is opened): a deploy that swaps a `current` symlink
//! or renames a new build into place is served within a second or two, as nginx, which opens
//! the path at every request, serves it. Each file is opened relative to it with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: the kernel itself refuses any
//! resolution that would leave the root (`..`, an absolute symlink, a symlink pointing out),
//! with no window between a check and the open. A symlink that stays inside the root is
//! followed (nginx follows every symlink; ringway is stricter on purpose). Files are opened
//! `O_NONBLOCK`, so a FIFO with no writer cannot hang the open; anything but a regular file
//! or a directory is then refused.
//!
//! Opening can wait on a disk, so it runs on tokio's blocking pool, never on the event loop
//! (see `cache.rs`, which keeps opened files for a second so a busy file is opened about once
//! a second per worker).

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::decision::FileMeta;
use crate::filesystem::Filesystem;
use crate::ratelimit::{BURST, NamedGate, WINDOW};

/// How often the root's path is looked at again for another directory.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// How long the last directory still serves once the root's path names none: a deploy
/// between its `rm` and its `mv`. Then its files are 404s, as nginx (which opens the path at
/// every request) answers at once: a root renamed away is content taken offline (found by
/// review: a moved-away root was served until a restart, new files in it too).
const GONE_GRACE: Duration = Duration::from_secs(2);

/// A static route's root directory: the directory its path names, as last looked at.
pub(crate) struct Root {
    path: PathBuf,
    current: Mutex<Current>,
    /// Opens resolve beneath the directory; not for an exact route's one file that the
    /// configuration names through a link, which may point anywhere, as nginx follows it.
    beneath: bool,
}

/// The directory open as the root, which it is (device and inode), when the path was last
/// looked at, and since when it has named no directory.
struct Current {
    dir: Arc<OwnedFd>,
    id: (u64, u64),
    looked: Instant,
    gone_since: Option<Instant>,
}

impl Current {
    fn gone(&mut self, root: &Path, err: &io::Error) {
        if self.gone_since.is_none() {
            self.gone_since = Some(Instant::now());
            report_unopened_root(root, err);
        }
    }
}

impl fmt::Debug for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Root({})", self.path.display())
    }
}

/// What a path under a root is.
#[derive(Debug)]
pub(crate) enum Opened {
    /// A regular file, open for reading, with its metadata and what tells a change to it.
    File(File, FileMeta, Stamp),
    /// A directory.
    Directory,
    /// Nothing servable: missing, outside the root, or not a regular file.
    NotFound,
    /// The host failed to open it (permission denied, an I/O error): not the client's
    /// doing, so not a 404, and not remembered.
    Failed(io::ErrorKind),
    /// The host is short of file descriptors or memory (a connection flood): as `Failed`,
    /// but what was found before, and is still open, may go on being served.
    Short(io::ErrorKind),
}

impl Root {
    /// Opens `path` as a root (at start-up).
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        Root::opened(path, true)
    }

    /// Opens `path` as the directory of an exact route's one file, whose name is the
    /// configuration's, never a client's: followed wherever its link points when
    /// `follow_link` (it was a link at load), else opened beneath the directory as any.
    pub(crate) fn open_for_one_file(path: &Path, follow_link: bool) -> io::Result<Root> {
        Root::opened(path, !follow_link)
    }

    fn opened(path: &Path, beneath: bool) -> io::Result<Root> {
        let (dir, id) = open_dir(path)?;
        Ok(Root {
            beneath,
            path: path.to_owned(),
            current: Mutex::new(Current {
                dir: Arc::new(dir),
                id,
                looked: Instant::now(),
                gone_since: None,
            }),
        })
    }

    /// The directory to open files in: the one the path names now, if it was time to look
    /// and it names another (blocking: a `stat`, and maybe an open). While the path names
    /// nothing that opens as a directory, the last one serves for [`GONE_GRACE`], then none.
    fn dir(&self) -> Option<Arc<OwnedFd>> {
        // Nothing panics while holding it; a poisoned lock still holds a usable directory.
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.looked.elapsed() >= LOOK_EVERY {
            current.looked = Instant::now();
            match std::fs::metadata(&self.path).map(|m| (m.dev(), m.ino())) {
                Ok(id) if id == current.id => current.gone_since = None,
                Ok(_) => match open_dir(&self.path) {
                    Ok((dir, id)) => {
                        tracing::info!(root = %self.path.display(), "static root replaced: files come from the new directory");
                        current.dir = Arc::new(dir);
                        current.id = id;
                        current.gone_since = None;
                    }
                    // Out of fds, the new directory cannot be opened yet: the one open
                    // goes on serving, not a site of 404s (found by review), until a
                    // later look can open it.
                    Err(err) if short_of_resources(&err) => {
                        report_root_not_reopened(&self.path, &err);
                    }
                    Err(err) => current.gone(&self.path, &err),
                },
                Err(err) => current.gone(&self.path, &err),
            }
        }
        let serving = current
            .gone_since
            .is_none_or(|since| since.elapsed() < GONE_GRACE);
        serving.then(|| Arc::clone(&current.dir))
    }

    /// Opens `rel` (a normalised path relative to the root, without a leading `/`; empty
    /// for the root itself). Blocking: call it off the event loop.
    pub(crate) fn open_beneath(&self, rel: &[u8]) -> Opened {
        let Some(dir) = self.dir() else {
            return Opened::NotFound;
        };
        let rel = if rel.is_empty() { &b"."[..] } else { rel };
        let Ok(c_rel) = CString::new(rel) else {
            return Opened::NotFound;
        };
        // SAFETY: open_how is plain data; all-zero is its "nothing asked" value.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY) as u64;
        how.resolve = if self.beneath {
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS
        } else {
            libc::RESOLVE_NO_MAGICLINKS
        };
        // SAFETY: the dir fd is open while `dir` lives; `c_rel` is a valid C string and
        // `how` a valid open_how of the size passed; the result is a new fd or -1.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c_rel.as_ptr(),
                &how,
                size_of::<libc::open_how>(),
            )
        };
        let Ok(fd) = i32::try_from(fd) else {
            return Opened::NotFound;
        };
        if fd < 0 {
            let err = io::Error::last_os_error();
            if not_there(&err) {
                return Opened::NotFound;
            }
            report_open_error(&self.path, rel, &err);
            if short_of_resources(&err) {
                return Opened::Short(err.kind());
            }
            return Opened::Failed(err.kind());
        }
        // SAFETY: openat2 returned a new fd that nothing else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        let meta = match file.metadata() {
            Ok(meta) => meta,
            Err(err) => {
                report_open_error(&self.path, rel, &err);
                return Opened::Failed(err.kind());
            }
        };
        if meta.is_dir() {
            return Opened::Directory;
        }
        if !meta.is_file() {
            return Opened::NotFound;
        }
        // O_NONBLOCK was for the open (a FIFO without a writer); the file's reads go through
        // io_uring, which on some kernels (5.x) ends a read of pages not yet in memory with
        // EAGAIN on an O_NONBLOCK file instead of waiting for the disk (found by review).
        // SAFETY: `file` owns a valid fd; F_SETFL with plain flags touches nothing else.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, 0) } != 0 {
            let err = io::Error::last_os_error();
            report_open_error(&self.path, rel, &err);
            return Opened::Failed(err.kind());
        }
        let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
        let stamp = Stamp {
            size: meta.len(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
            filesystem: Filesystem::of(file.as_raw_fd()),
        };
        Opened::File(
            file,
            FileMeta {
                size: meta.len(),
                mtime,
            },
            stamp,
        )
    }
}

/// What tells that an open file was written to since it was opened: its size and its times
/// to the nanosecond (the change time moves with every write, even one that keeps the size
/// and sets the modification time back).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
    filesystem: Filesystem,
}

impl Stamp {
    /// The filesystem of the file it was taken of.
    pub(crate) fn filesystem(&self) -> Filesystem {
        self.filesystem
    }

    /// Whether `file` (the file this stamp was taken of) is as it was, as far as can be
    /// told without a wait: an fstat where its filesystem answers from memory; elsewhere
    /// (NFS may ask its server, a FUSE daemon may never answer) it is trusted, as any entry
    /// is for its second. A statx on the ring instead cost 7 µs of a 64 KiB file's 26 µs (a
    /// thread hop, measured), and one on a hung mount would hold its request for ever.
    pub(crate) fn unchanged(&self, file: &impl AsRawFd) -> bool {
        if !self.filesystem.is_local() {
            return true;
        }
        let mut now = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat writes a whole `stat` through the valid pointer; the fd is open
        // while `file` lives.
        if unsafe { libc::fstat(file.as_raw_fd(), now.as_mut_ptr()) } != 0 {
            return false;
        }
        // SAFETY: fstat returned 0, so it filled `now`.
        let now = unsafe { now.assume_init() };
        let size = u64::try_from(now.st_size).unwrap_or(u64::MAX);
        let modified = (now.st_mtime, now.st_mtime_nsec);
        let changed = (now.st_ctime, now.st_ctime_nsec);
        (self.size, self.modified, self.changed) == (size, modified, changed)
    }
}

/// The directory at `path`, open, and which it is (device and inode).
fn open_dir(path: &Path) -> io::Result<(OwnedFd, (u64, u64))> {
    let dir = File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(path)?;
    let meta = dir.metadata()?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        ));
    }
    Ok((dir.into(), (meta.dev(), meta.ino())))
}

/// Whether an open failed because of the path the client asked for (no such file, an
/// escape the kernel refused): a 404. Anything else is the host's doing (nginx answers 403
/// for a permission denied, 500 for the rest, and so does ringway; found by review: these
/// were 404s, remembered for a second, which a CDN could keep).
fn not_there(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(
            libc::ENOENT
                | libc::ENOTDIR
                | libc::ELOOP
                | libc::EXDEV
                | libc::ENAMETOOLONG
                | libc::EINVAL
                | libc::ENXIO
        )
    )
}

/// Whether an open failed for want of file descriptors or memory, which passes: nginx's
/// open file cache goes on serving the descriptors it holds then, and so does ringway.
fn short_of_resources(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM)
    )
}

/// Open failures that are the host's doing: logged, a few lines per window.
fn report_open_error(root: &Path, rel: &[u8], err: &io::Error) {
    static GATE: NamedGate = NamedGate::warn("opening a static file failed");
    if !GATE.allow() {
        return;
    }
    tracing::warn!(
        root = %root.display(),
        // Escaped: the path is the client's, and must not forge log lines.
        path = %rel.escape_ascii(),
        error = %err,
        "opening a static file failed (403 for a permission denied; out of file descriptors \
         or memory, the file opened before is served meanwhile if there is one; else 500, or \
         the route's fallback; at most {BURST} such lines per {}s)",
        WINDOW.as_secs()
    );
}

/// A root path that names something other than a directory now: logged, a few lines per
/// window (it is looked at once a second while files are asked for).
fn report_unopened_root(root: &Path, err: &io::Error) {
    static GATE: NamedGate = NamedGate::warn("a static root names no directory");
    if GATE.allow() {
        tracing::warn!(
            root = %root.display(),
            error = %err,
            "a static root names no directory that opens now: the one it named before serves \
             for {}s, then its files are 404s until the path names a directory again",
            GONE_GRACE.as_secs()
        );
    }
}

/// A root path that names a new directory which cannot be opened for want of file
/// descriptors: logged, a few lines per window.
fn report_root_not_reopened(root: &Path, err: &io::Error) {
    static GATE: NamedGate = NamedGate::warn("a replaced static root could not be opened");
    if GATE.allow() {
        tracing::warn!(
            root = %root.display(),
            error = %err,
            "a static root names a new directory that cannot be opened now: the one opened \
             before goes on serving until it can"
        );
    }
}

/// The index file of the directory `rel` (relative to the root, empty for the root itself).
pub(crate) fn index_rel(rel: &[u8], index: &str) -> Vec<u8> {
    let mut path = Vec::with_capacity(rel.len() + 1 + index.len());
    path.extend_from_slice(rel);
    if !path.is_empty() && !path.ends_with(b"/") {
        path.push(b'/');
    }
    path.extend_from_slice(index.as_bytes());
    path
}

/// Whether `rel` has a segment starting with `.` (a dotfile or dot-directory: `.env`,
/// `.git/config`), which is not served unless the route allows it.
pub(crate) fn has_dot_segment(rel: &[u8]) -> bool {
    rel.split(|&b| b == b'/')
        .any(|segment| segment.first() == Some(&b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_write_in_place_is_seen_on_a_local_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        std::fs::write(&path, vec![1u8; 100]).unwrap();
        let root = Root::open(dir.path()).unwrap();
        let Opened::File(file, _, stamp) = root.open_beneath(b"a.bin") else {
            panic!("a.bin opens")
        };
        assert!(
            stamp.filesystem.is_local(),
            "the temp dir is on a local filesystem here"
        );
        assert!(stamp.unchanged(&file));
        // Rewritten in place: the same length and bytes; the change time moves.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, vec![1u8; 100]).unwrap();
        assert!(!stamp.unchanged(&file));
        // Elsewhere (NFS, FUSE) nothing is asked: the entry's second is trusted.
        let remote = Stamp {
            filesystem: Filesystem::UNKNOWN,
            ..stamp
        };
        assert!(remote.unchanged(&file));
    }

    #[test]
    fn opens_beneath_the_root_only() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        let root_dir = outside.path().join("root");
        std::fs::create_dir_all(root_dir.join("sub")).unwrap();
        std::fs::write(root_dir.join("a.txt"), b"hello").unwrap();
        symlink("a.txt", root_dir.join("inside")).unwrap();
        symlink("../secret", root_dir.join("out")).unwrap();
        symlink(outside.path().join("secret"), root_dir.join("absolute")).unwrap();
        symlink("..", root_dir.join("sub/up")).unwrap();
        let fifo = CString::new(root_dir.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

        let root = Root::open(&root_dir).unwrap();
        let is_file = |rel: &[u8], size: u64| match root.open_beneath(rel) {
            Opened::File(_, meta, _) => meta.size == size,
            _ => false,
        };
        assert!(is_file(b"a.txt", 5));
        assert!(
            is_file(b"inside", 5),
            "a symlink inside the root is followed"
        );
        assert!(
            is_file(b"sub/up/a.txt", 5),
            "a symlink to a parent inside the root"
        );
        for rel in [
            &b"out"[..],
            b"absolute",
            b"../secret",
            b"sub/../../secret",
            b"missing",
            b"fifo",
        ] {
            assert!(
                matches!(root.open_beneath(rel), Opened::NotFound),
                "{:?}",
                String::from_utf8_lossy(rel)
            );
        }
        let Opened::File(file, ..) = root.open_beneath(b"a.txt") else {
            panic!("a.txt opens")
        };
        // SAFETY: F_GETFL on an fd `file` owns.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(flags & libc::O_NONBLOCK, 0, "reads of the file may wait");
        assert!(matches!(root.open_beneath(b"sub"), Opened::Directory));
        assert!(matches!(root.open_beneath(b""), Opened::Directory));
    }

    #[test]
    fn a_root_path_that_names_another_directory_is_followed_within_a_second() {
        let top = tempfile::tempdir().unwrap();
        for (release, body) in [("a", &b"old"[..]), ("b", b"new, longer")] {
            std::fs::create_dir(top.path().join(release)).unwrap();
            std::fs::write(top.path().join(release).join("app.js"), body).unwrap();
        }
        let current = top.path().join("current");
        symlink("a", &current).unwrap();
        let root = Root::open(&current).unwrap();
        let size = |root: &Root| match root.open_beneath(b"app.js") {
            Opened::File(_, meta, _) => Some(meta.size),
            _ => None,
        };
        assert_eq!(size(&root), Some(3));
        // `ln -sfn b current`, as a deploy swaps it: a new link renamed over the old.
        symlink("b", top.path().join("next")).unwrap();
        std::fs::rename(top.path().join("next"), &current).unwrap();
        assert_eq!(
            size(&root),
            Some(3),
            "looked at once a second, not at every open"
        );
        std::thread::sleep(LOOK_EVERY + Duration::from_millis(50));
        assert_eq!(size(&root), Some(11), "the new release");
        // Gone, then not a directory: the last one serves for a moment (a deploy between
        // its `rm` and its `mv`), then nothing does, until the path names a directory.
        std::fs::remove_file(&current).unwrap();
        std::thread::sleep(LOOK_EVERY + Duration::from_millis(50));
        assert_eq!(size(&root), Some(11));
        std::fs::write(&current, b"a file").unwrap();
        std::thread::sleep(GONE_GRACE + Duration::from_millis(50));
        assert_eq!(
            size(&root),
            None,
            "a root renamed away is content taken offline"
        );
        std::fs::remove_file(&current).unwrap();
        symlink("a", &current).unwrap();
        std::thread::sleep(LOOK_EVERY + Duration::from_millis(50));
        assert_eq!(size(&root), Some(3));
    }

    #[test]
    fn index_of_a_directory() {
        assert_eq!(index_rel(b"", "index.html"), b"index.html");
        assert_eq!(index_rel(b"docs", "index.html"), b"docs/index.html");
        assert_eq!(index_rel(b"docs/", "index.html"), b"docs/index.html");
    }

    #[test]
    fn dot_segments() {
        assert!(has_dot_segment(b".env"));
        assert!(has_dot_segment(b"a/.git/config"));
        assert!(!has_dot_segment(b"a/b.c/d"));
        assert!(!has_dot_segment(b""));
    }
}
