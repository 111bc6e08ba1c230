//! Closing files off the event loop, whose close may wait: a static file on FUSE (its close
//! sends FLUSH to the daemon and waits for the answer; NFS may ask its server at a last
//! close), whose last reference goes on the event loop (its cache entry replaced, evicted,
//! or cleared by a reload); and a temp file, whose last close frees its blocks (a quarter of
//! a second per GiB written back) and which an io_uring op still in flight may hold until
//! after the request let it go. Both found by review. Such a file is handed to the worker's
//! closer task ([`closer`]), which closes it at once by an io_uring op that waits for the
//! file's ops to end (the kernel runs a close that may wait on its own threads), then drops
//! a second descriptor kept for the last close on the blocking pool. (Handed over, not
//! closed in a task spawned by the drop: a drop may come where no task can be spawned, as
//! the runtime ends.)

use std::cell::RefCell;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use tokio::sync::Notify;

use tokio_uring::fs::File;

use crate::filesystem::Filesystem;

thread_local! {
    /// Files handed over since the worker last closed them, each with the descriptor to
    /// close last, if any.
    static DROPPED: RefCell<Vec<(File, Option<OwnedFd>)>> = const { RefCell::new(Vec::new()) };
    /// Wakes the worker's [`closer`].
    static HANDED: Rc<Notify> = Rc::new(Notify::new());
}

/// Closes `file` off the event loop, then `last` (another descriptor of the same file) on
/// the blocking pool. At the worker's end, here.
pub(crate) fn later(file: File, last: Option<OwnedFd>) {
    let _ = DROPPED.try_with(|dropped| dropped.borrow_mut().push((file, last)));
    let _ = HANDED.try_with(|handed| handed.notify_one());
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
        if !self.filesystem.is_local() {
            later(file, None);
        }
    }
}

/// The worker's closer: closes the files handed to [`later`] on this thread as they come,
/// each in a task of its own (one waiting for a file's ops holds up no other). Runs for
/// the worker's life.
pub(crate) async fn closer() {
    let handed = HANDED.with(Rc::clone);
    loop {
        handed.notified().await;
        let files = DROPPED.with(|dropped| std::mem::take(&mut *dropped.borrow_mut()));
        for (file, last) in files {
            tokio_uring::spawn(async move {
                if let Err(err) = file.close().await {
                    tracing::debug!(error = %err, "closing a file failed");
                }
                if let Some(last) = last {
                    crate::blocking::drop_off_loop(last);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::path::PathBuf;

    use super::{OpenFile, closer};
    use crate::filesystem::Filesystem;

    /// What the process's descriptor `fd` names, if it is open.
    fn named(fd: i32) -> Option<PathBuf> {
        std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()
    }

    #[test]
    fn a_local_file_closes_at_once_and_another_by_the_closer() {
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
            assert_eq!(
                named(fd).as_ref(),
                Some(&path),
                "handed over, not closed here"
            );
            tokio_uring::spawn(closer());
            for _ in 0..100 {
                if named(fd).as_ref() != Some(&path) {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            panic!("not closed by the closer");
        });
    }
}
