//! Anonymous temp files for bodies and answers that do not fit in memory.
//!
//! Each file is opened with `O_TMPFILE` in the temp directory: it has no name, so nothing is
//! ever left behind, not even after a crash or a SIGKILL (the kernel frees it with the last
//! fd), and no other process can open it. Opening, reading and writing go through io_uring,
//! so a slow disk delays only the request that uses it, never the event loop; and the last
//! close, where the kernel frees the file's blocks (a quarter of a second for 1 GiB written
//! back, found by review), is made on a blocking-pool thread (`crate::closing`).

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use tokio_uring::buf::BoundedBuf;
use tokio_uring::fs::{File, OpenOptions};

use super::Buf;

/// An open anonymous temp file.
pub(crate) struct TempFile {
    file: ManuallyDrop<File>,
    /// A second descriptor of it, closed last, off the event loop (see Drop).
    last: Option<OwnedFd>,
}

impl TempFile {
    fn new(file: File) -> TempFile {
        // SAFETY: the descriptor is open for as long as `file`, which outlives this borrow.
        let open = unsafe { BorrowedFd::borrow_raw(file.as_raw_fd()) };
        let last = open.try_clone_to_owned().ok();
        TempFile {
            file: ManuallyDrop::new(file),
            last,
        }
    }
}

impl Drop for TempFile {
    /// Hands the io_uring file and the last descriptor to [`crate::closing`]: the io_uring
    /// one is closed once no operation holds it (one still in flight, its future dropped as
    /// the request ended, would otherwise close it on the worker after the last one, and
    /// free the blocks there; found by review), then the last one on a blocking-pool
    /// thread, where freeing the blocks stalls no connection.
    fn drop(&mut self) {
        // SAFETY: `file` is taken once, here, and never used after.
        let file = unsafe { ManuallyDrop::take(&mut self.file) };
        crate::closing::later(file, self.last.take());
    }
}

impl TempFile {
    /// Opens a new anonymous file in `dir`.
    pub(crate) async fn create(dir: &Path) -> io::Result<TempFile> {
        let dir = dir.to_path_buf();
        // In a task of its own, which a caller dropped mid-open (a request that ended
        // meanwhile) does not cancel: tokio-uring discards the result of an op nobody waits
        // for, so an open dropped in flight would leak its fd. The task's file, unclaimed,
        // is closed when the task ends.
        let open = tokio_uring::spawn(async move {
            OpenOptions::new()
                .read(true)
                .write(true)
                .mode(0o600)
                // O_EXCL: the file can never be given a name (linkat), even by us.
                .custom_flags(libc::O_TMPFILE | libc::O_EXCL)
                .open(&dir)
                .await
        });
        match open.await {
            Ok(opened) => opened.map(TempFile::new),
            Err(task) => Err(io::Error::other(task)),
        }
    }

    /// Writes all of `buf[from..]` at offset `at`.
    pub(crate) async fn write_all_at(
        &self,
        buf: Buf,
        from: usize,
        at: u64,
    ) -> (io::Result<()>, Buf) {
        let end = buf.len();
        if from >= end {
            return (Ok(()), buf);
        }
        let (res, slice) = self.file.write_all_at(buf.slice(from..end), at).await;
        (res, slice.into_inner())
    }

    /// Reads up to `len` bytes at offset `at` into `buf` (appending); returns how many.
    pub(crate) async fn read_at(&self, buf: Buf, len: usize, at: u64) -> (io::Result<usize>, Buf) {
        read_at(&self.file, buf, len, at).await
    }
}

/// Reads up to `len` bytes of `file` at offset `at` into `buf` (appending, growing it if
/// needed); returns how many.
pub(crate) async fn read_at(
    file: &File,
    mut buf: Buf,
    len: usize,
    at: u64,
) -> (io::Result<usize>, Buf) {
    if len == 0 {
        return (Ok(0), buf);
    }
    buf.reserve(len);
    let start = buf.len();
    let (res, slice) = file.read_at(buf.slice(start..start + len), at).await;
    (res, slice.into_inner())
}

/// Makes sure `dir` can hold ringway's temp files: creates it (0700) if missing; refuses one
/// that is not a directory, not ours, or writable by others (its files have no names, so
/// reading the directory shows nothing, but one that others can change invites games);
/// checks that `O_TMPFILE` works there.
pub(crate) fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    vet_dir(dir, true)
}

/// What [`prepare_dir`] would refuse, creating nothing (`--check-config`): a missing
/// directory needs a directory to be made in. Run as root, the check cannot know the
/// service's user, so it leaves the owner alone then.
pub(crate) fn check_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(_) => {
            // SAFETY: geteuid has no preconditions and cannot fail.
            let as_root = unsafe { libc::geteuid() } == 0;
            vet_dir(dir, !as_root)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            check_creatable(dir).with_context(|| format!("{} cannot be created", dir.display()))
        }
        Err(e) => Err(e).with_context(|| format!("{}", dir.display())),
    }
}

/// Checks that `path` could be made, creating nothing: its parent (`.` for a bare name)
/// must be a directory this process may make an entry in (write and search permission; a
/// read-only mount says no too). Run as root, only a read-only mount says no: `access(2)`
/// lets root past the permission bits, as the creation itself would.
pub(crate) fn check_creatable(path: &Path) -> io::Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match std::fs::metadata(parent) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", parent.display()),
            ));
        }
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("{}: {e}", parent.display()),
            ));
        }
    }
    let c_dir = std::ffi::CString::new(parent.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c_dir` is a valid NUL-terminated string for the call's duration.
    if unsafe { libc::access(c_dir.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("ringway may not write to {}: {e}", parent.display()),
        ));
    }
    Ok(())
}

/// Refuses `dir` unless it is a directory (ours, when `owner` says to look) that only its
/// owner may change, where anonymous files can be made.
fn vet_dir(dir: &Path, owner: bool) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(dir).with_context(|| format!("{}", dir.display()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if !meta.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    if owner && meta.uid() != uid {
        bail!(
            "{} belongs to uid {}, not to ringway's uid {uid}",
            dir.display(),
            meta.uid()
        );
    }
    if meta.permissions().mode() & 0o022 != 0 {
        bail!(
            "{} is writable by other users (mode {:o}); make it 0700",
            dir.display(),
            meta.permissions().mode() & 0o777
        );
    }
    let probe = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_EXCL)
        .open(dir);
    probe
        .map(drop)
        .with_context(|| format!("{} cannot hold anonymous (O_TMPFILE) files", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepares_a_private_directory_and_refuses_a_shared_one() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("spool");
        prepare_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        prepare_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
        let err = prepare_dir(&dir).unwrap_err();
        assert!(
            format!("{err:#}").contains("writable by other users"),
            "{err:#}"
        );
        let file = parent.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(prepare_dir(&file).is_err());
    }

    #[test]
    fn a_missing_entry_needs_a_directory_it_may_be_made_in() {
        let parent = tempfile::tempdir().unwrap();
        check_creatable(&parent.path().join("new")).unwrap();
        let file = parent.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = check_creatable(&file.join("new")).unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
        let err = check_creatable(&parent.path().join("missing/new")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        let err = check_dir(&parent.path().join("missing/spool")).unwrap_err();
        assert!(
            format!("{err:#}").contains("spool cannot be created: "),
            "{err:#}"
        );
        // Root may write anywhere but on a read-only mount, so only another user sees this.
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            let locked = parent.path().join("locked");
            std::fs::create_dir(&locked).unwrap();
            std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
            let err = check_creatable(&locked.join("new")).unwrap_err();
            assert!(
                err.to_string().contains("ringway may not write to"),
                "{err}"
            );
        }
    }

    #[test]
    fn files_have_no_name_and_keep_what_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        tokio_uring::start(async move {
            let file = TempFile::create(&path).await.unwrap();
            let (res, _) = file.write_all_at(Buf::copy_of(b"xxhello"), 2, 10).await;
            res.unwrap();
            let (res, buf) = file.read_at(Buf::copy_of(b">"), 5, 10).await;
            assert_eq!(res.unwrap(), 5);
            assert_eq!(&buf[..], b">hello");
            assert_eq!(std::fs::read_dir(&path).unwrap().count(), 0, "no name");
        });
    }

    /// Both descriptors close by the worker's closer after the drop, the last one on a
    /// blocking-pool thread: none is left open (the file's blocks would stay
    /// taken).
    #[test]
    fn a_dropped_file_leaves_no_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let holders = |dev_ino: (u64, u64)| {
            std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .filter_map(|fd| std::fs::metadata(fd.ok()?.path()).ok())
                .filter(|m| (m.dev(), m.ino()) == dev_ino)
                .count()
        };
        tokio_uring::start(async move {
            let file = TempFile::create(&path).await.unwrap();
            let meta = std::fs::metadata(format!("/proc/self/fd/{}", file.file.as_raw_fd()));
            let meta = meta.unwrap();
            let dev_ino = (meta.dev(), meta.ino());
            assert_eq!(holders(dev_ino), 2, "the io_uring file and the last one");
            drop(file);
            tokio_uring::spawn(crate::closing::closer());
            for _ in 0..200 {
                if holders(dev_ino) == 0 {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!("{} descriptors left", holders(dev_ino));
        });
    }
}
