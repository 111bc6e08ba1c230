//! Which filesystem an open file is on, by its `fstatfs` magic number: what decides how a
//! file may be looked at without the event loop waiting (static_files::open) and whether its
//! cached pages can be counted (client::sendfile).

use std::os::fd::RawFd;

/// overlayfs (`OVERLAYFS_SUPER_MAGIC`): a container image's files.
pub(crate) const OVERLAYFS: u64 = 0x794C_7630;

/// Filesystems whose inodes are local, so that an fstat answers from memory: ext2/3/4, XFS,
/// Btrfs, F2FS, ZFS, tmpfs, ramfs, overlayfs, SquashFS, EROFS.
const LOCAL: [u64; 10] = [
    0xEF53,      // ext2/3/4
    0x5846_5342, // XFS
    0x9123_683E, // Btrfs
    0xF2F5_2010, // F2FS
    0x2FC1_2FC1, // ZFS
    0x0102_1994, // tmpfs
    0x8584_58F6, // ramfs
    OVERLAYFS,
    0x7371_7368, // SquashFS
    0xE0F5_E1E2, // EROFS
];

/// The magic number of the filesystem the open `fd` is on; `None` if fstatfs fails.
pub(crate) fn kind(fd: RawFd) -> Option<u64> {
    let mut fs = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: fstatfs writes a whole `statfs` through the valid pointer for an open fd.
    if unsafe { libc::fstatfs(fd, fs.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstatfs returned 0, so it filled `fs`.
    let fs = unsafe { fs.assume_init() };
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between architectures
    Some(fs.f_type as u64)
}

/// Whether the open `fd` is on a filesystem that answers an fstat from memory (see
/// [`LOCAL`]).
pub(crate) fn answers_from_memory(fd: RawFd) -> bool {
    kind(fd).is_some_and(|kind| LOCAL.contains(&kind))
}
