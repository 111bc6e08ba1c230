//! Closing static files whose close may wait. On FUSE a close sends FLUSH to the daemon and
//! waits for its answer (and NFS may ask its server at a last close), while a cached file's
//! last reference goes on the event loop: its entry replaced, evicted, or cleared by a
//! reload (found by review). Such a file is closed by an io_uring op instead, which the
//! kernel hands to its own worker threads for a file that has a flush method; a file on a
//! local filesystem closes at once, as before.

use std::cell::RefCell;
use std::mem::ManuallyDrop;
use std::ops::Deref;

use tokio_uring::fs::File;

use crate::filesystem::Filesystem;

thread_local! {
    /// Files on non-local filesystems dropped since the worker last closed them.
    static DROPPED: RefCell<Vec<File>> = const { RefCell::new(Vec::new()) };
}

/// An open static file, closed off the event loop when its filesystem is not local.
pub(crate) struct OpenFile {
    file: ManuallyDrop<File>,
    filesystem: Filesystem,
}

impl OpenFile {
    /// `file`, on `filesystem`.
    pub(crate) fn new(file: File, filesystem: Filesystem) -> OpenFile {
        OpenFile {
            file: ManuallyDrop::new(file),
            filesystem,
        }
    }
}

impl Deref for OpenFile {
    type Target = File;

    fn deref(&self) -> &File {
        &self.file
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        // SAFETY: taken once, here, and `self.file` is never used again.
        let file = unsafe { ManuallyDrop::take(&mut self.file) };
        if self.filesystem.is_local() {
            return;
        }
        // At the thread's end (no list left) it closes here: the worker is gone anyway.
        let _ = DROPPED.try_with(|dropped| dropped.borrow_mut().push(file));
    }
}

/// Closes this worker's dropped files on non-local filesystems, each by an io_uring op in
/// a task of its own: called by the worker's housekeeping, once a second.
pub(crate) fn close_dropped() {
    let files = DROPPED.with(|dropped| std::mem::take(&mut *dropped.borrow_mut()));
    for file in files {
        tokio_uring::spawn(async move {
            if let Err(err) = file.close().await {
                tracing::debug!(error = %err, "closing a static file failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::path::PathBuf;

    use super::{OpenFile, close_dropped};
    use crate::filesystem::Filesystem;

    /// What the process's descriptor `fd` names, if it is open.
    fn named(fd: i32) -> Option<PathBuf> {
        std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()
    }

    #[test]
    fn a_local_file_closes_at_once_and_another_by_the_next_round() {
        tokio_uring::start(async {
            let open = |dir: &std::path::Path, name: &str| {
                let path = dir.join(name);
                std::fs::write(&path, b"x").unwrap();
                let file = std::fs::File::open(&path).unwrap();
                let filesystem = Filesystem::of(file.as_raw_fd());
                (tokio_uring::fs::File::from_std(file), filesystem, path)
            };
            let dir = tempfile::tempdir_in("/var/tmp").unwrap();
            let (file, filesystem, path) = open(dir.path(), "local");
            let fd = file.as_raw_fd();
            drop(OpenFile::new(file, filesystem));
            assert_ne!(named(fd), Some(path), "closed when dropped");
            let (file, _, path) = open(dir.path(), "remote");
            let fd = file.as_raw_fd();
            drop(OpenFile::new(file, Filesystem::UNKNOWN));
            assert_eq!(named(fd).as_ref(), Some(&path), "kept until the round");
            close_dropped();
            for _ in 0..100 {
                if named(fd).as_ref() != Some(&path) {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            panic!("not closed by the round");
        });
    }
}
