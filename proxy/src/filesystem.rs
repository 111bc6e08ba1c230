//! Which filesystem an open file is on, by its `fstatfs` magic number, asked once when the
//! file is opened (off the event loop): what decides how a file may be looked at, sent and
//! closed without the event loop waiting (static_files::open, client::sendfile,
//! crate::closing) and whether its cached pages can be counted.

use std::os::fd::RawFd;

/// overlayfs (`OVERLAYFS_SUPER_MAGIC`): a container image's files.
const OVERLAYFS: u64 = 0x794C_7630;

/// Filesystems whose inodes are local, so that an fstat answers from memory: ext2/3/4, XFS,
/// Btrfs, F2FS, ZFS, bcachefs, tmpfs, ramfs, overlayfs, SquashFS, EROFS, FAT, exFAT, NTFS.
/// Any other (NFS, CIFS, FUSE, 9p, Ceph, one not known) counts as remote.
const LOCAL: [u64; 15] = [
    0xEF53,      // ext2/3/4
    0x5846_5342, // XFS
    0x9123_683E, // Btrfs
    0xF2F5_2010, // F2FS
    0x2FC1_2FC1, // ZFS
    0xCA45_1A4E, // bcachefs
    0x0102_1994, // tmpfs
    0x8584_58F6, // ramfs
    OVERLAYFS,
    0x7371_7368, // SquashFS
    0xE0F5_E1E2, // EROFS
    0x4D44,      // FAT (vfat, msdos)
    0x2011_BAB0, // exFAT
    0x5346_544E, // NTFS (the old in-kernel driver)
    0x7366_746E, // NTFS (ntfs3)
];

/// The filesystem of an open file: its magic number, `None` if fstatfs failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Filesystem(Option<u64>);

impl Filesystem {
    /// The filesystem the open `fd` is on. A system call that may wait on a network
    /// filesystem (NFS asks its server): made where the open was.
    pub(crate) fn of(fd: RawFd) -> Filesystem {
        let mut fs = std::mem::MaybeUninit::<libc::statfs>::uninit();
        // SAFETY: fstatfs writes a whole `statfs` through the valid pointer for an open fd.
        if unsafe { libc::fstatfs(fd, fs.as_mut_ptr()) } != 0 {
            return Filesystem(None);
        }
        // SAFETY: fstatfs returned 0, so it filled `fs`.
        let fs = unsafe { fs.assume_init() };
        #[allow(clippy::unnecessary_cast)] // f_type's width differs between architectures
        Filesystem(Some(fs.f_type as u64))
    }

    /// Whether it is local (see [`LOCAL`]): an fstat, a sendfile and a close answer from
    /// memory. Elsewhere (NFS, FUSE, an unknown one) each may wait on a server or a daemon.
    pub(crate) fn is_local(self) -> bool {
        self.0.is_some_and(|kind| LOCAL.contains(&kind))
    }

    /// Whether it is overlayfs, whose cached pages are counted under the file beneath.
    pub(crate) fn is_overlayfs(self) -> bool {
        self.0 == Some(OVERLAYFS)
    }

    /// One fstatfs could not name, taken for a remote one.
    #[cfg(test)]
    pub(crate) const UNKNOWN: Filesystem = Filesystem(None);
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::Filesystem;

    #[test]
    fn disks_and_tmpfs_are_local_and_procfs_is_not() {
        let disk = tempfile::tempfile_in("/var/tmp").unwrap();
        assert!(Filesystem::of(disk.as_raw_fd()).is_local());
        let tmpfs = tempfile::tempfile_in("/dev/shm").unwrap();
        assert!(Filesystem::of(tmpfs.as_raw_fd()).is_local());
        let proc = std::fs::File::open("/proc/self/status").unwrap();
        assert!(!Filesystem::of(proc.as_raw_fd()).is_local());
        assert!(!Filesystem::UNKNOWN.is_local());
    }
}
