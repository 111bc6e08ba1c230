//! Finding and mounting the filesystems the probes may need.
//!
//! The cgroup v2 hierarchy (for the sock_ops program) is found from
//! /proc/mounts, never assumed: on hybrid systems it lives at
//! /sys/fs/cgroup/unified, on unified ones at /sys/fs/cgroup.
//!
//! The tracing programs are `tp_btf` (BTF-typed raw tracepoints), which need
//! no tracefs, so [`crate::Probes::load`] never mounts anything.
//! [`ensure_tracefs`] and [`ensure_bpffs`] are here for tools that want the
//! text tracepoints or pinned maps.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

/// Mount points of the given filesystem type, in /proc/mounts order.
pub fn mounts_of_type(fstype: &str) -> io::Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string("/proc/mounts")?;
    Ok(parse_mounts(&text, fstype))
}

fn parse_mounts(text: &str, fstype: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _dev = fields.next()?;
            let mountpoint = fields.next()?;
            (fields.next()? == fstype).then(|| PathBuf::from(unescape_octal(mountpoint)))
        })
        .collect()
}

/// /proc/mounts writes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The root of the cgroup v2 hierarchy (the first cgroup2 mount).
pub fn cgroup2_root() -> io::Result<PathBuf> {
    mounts_of_type("cgroup2")?
        .into_iter()
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no cgroup2 filesystem in /proc/mounts",
            )
        })
}

/// Mounts tracefs at /sys/kernel/tracing unless its `events` directory is
/// already there. Returns the tracefs root.
pub fn ensure_tracefs() -> io::Result<PathBuf> {
    let root = Path::new("/sys/kernel/tracing");
    if !root.join("events").is_dir() {
        mount("tracefs", root, "tracefs")?;
    }
    Ok(root.to_path_buf())
}

/// Mounts bpffs at /sys/fs/bpf unless a bpf filesystem is mounted there.
pub fn ensure_bpffs() -> io::Result<PathBuf> {
    let root = Path::new("/sys/fs/bpf");
    if !mounts_of_type("bpf")?.iter().any(|m| m == root) {
        mount("bpf", root, "bpf")?;
    }
    Ok(root.to_path_buf())
}

fn mount(source: &str, target: &Path, fstype: &str) -> io::Result<()> {
    let c = |s: &str| CString::new(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e));
    let source = c(source)?;
    let fstype = c(fstype)?;
    let target = c(&target.to_string_lossy())?;
    // SAFETY: all three pointers are NUL-terminated CStrings that outlive the
    // call; data is NULL, which mount(2) accepts.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_on_a_hybrid_system() {
        let text = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
                    cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n\
                    cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        assert_eq!(
            parse_mounts(text, "cgroup2"),
            vec![PathBuf::from("/sys/fs/cgroup/unified")]
        );
        assert!(parse_mounts(text, "tracefs").is_empty());
    }

    #[test]
    fn unescapes_spaces_in_mount_points() {
        assert_eq!(unescape_octal("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_octal("/plain"), "/plain");
    }

    #[test]
    fn this_machine_has_a_cgroup2_mount() {
        let root = cgroup2_root().unwrap();
        assert!(root.join("cgroup.procs").exists(), "{root:?}");
    }
}
