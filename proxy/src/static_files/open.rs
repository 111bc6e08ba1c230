//! Opening a file under a static route's root, so that no path can leave the root.
//!
//! The root directory is opened once, at start-up. Each file is opened relative to it with
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

use super::decision::FileMeta;
use crate::ratelimit::{BURST, Gate, WINDOW};

/// A static route's root directory, open for the route's life.
pub(crate) struct Root {
    dir: OwnedFd,
    path: PathBuf,
}

impl fmt::Debug for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Root({})", self.path.display())
    }
}

/// What a path under a root is.
#[derive(Debug)]
pub(crate) enum Opened {
    /// A regular file, open for reading, with its metadata.
    File(File, FileMeta),
    /// A directory.
    Directory,
    /// Nothing servable: missing, outside the root, or not a regular file.
    NotFound,
    /// The host failed to open it (no file descriptor left, permission denied, an I/O
    /// error): not the client's doing, so not a 404, and not remembered.
    Failed(io::ErrorKind),
}

impl Root {
    /// Opens `path` as a root (at start-up).
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        let dir = File::options()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(path)?;
        if !dir.metadata()?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        Ok(Root {
            dir: dir.into(),
            path: path.to_owned(),
        })
    }

    /// Opens `rel` (a normalised path relative to the root, without a leading `/`; empty
    /// for the root itself). Blocking: call it off the event loop.
    pub(crate) fn open_beneath(&self, rel: &[u8]) -> Opened {
        let rel = if rel.is_empty() { &b"."[..] } else { rel };
        let Ok(c_rel) = CString::new(rel) else {
            return Opened::NotFound;
        };
        // SAFETY: open_how is plain data; all-zero is its "nothing asked" value.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY) as u64;
        how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: the dir fd is open while `self` lives; `c_rel` is a valid C string and
        // `how` a valid open_how of the size passed; the result is a new fd or -1.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.dir.as_raw_fd(),
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
        let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
        Opened::File(
            file,
            FileMeta {
                size: meta.len(),
                mtime,
            },
        )
    }
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

/// Open failures that are the host's doing: logged, a few lines per window.
fn report_open_error(root: &Path, rel: &[u8], err: &io::Error) {
    static GATE: Gate = Gate::new();
    if !GATE.allow() {
        return;
    }
    tracing::warn!(
        root = %root.display(),
        // Escaped: the path is the client's, and must not forge log lines.
        path = %rel.escape_ascii(),
        error = %err,
        "opening a static file failed (403 for a permission denied, else 500, or the route's \
         fallback; at most {BURST} such lines per {}s)",
        WINDOW.as_secs()
    );
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
            Opened::File(_, meta) => meta.size == size,
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
        assert!(matches!(root.open_beneath(b"sub"), Opened::Directory));
        assert!(matches!(root.open_beneath(b""), Opened::Directory));
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
