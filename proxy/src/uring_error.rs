//! Why io_uring could not be set up, in words that name the fix.
//!
//! `io_uring_setup` fails with the same two errnos for very different reasons: ENOSYS from a
//! kernel without io_uring and from a seccomp filter (podman's default profile), EPERM from
//! the `kernel.io_uring_disabled` sysctl and from a filter too (Docker's default profile).
//! The facts that tell them apart (the kernel's version, the sysctl, whether this process
//! runs under a seccomp filter) are read once, after the failure, and `diagnose` decides from
//! them alone, so the decision is tested without the kernel's cooperation.

use std::io;

/// The oldest kernel ringway supports (the io_uring features tokio-uring relies on).
const MIN_KERNEL: KernelVersion = KernelVersion(5, 10);
/// io_uring appeared in Linux 5.1: before it, ENOSYS is the kernel's own answer.
const FIRST_URING_KERNEL: KernelVersion = KernelVersion(5, 1);

/// A kernel release's major and minor numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion(pub u32, pub u32);

/// What the host says about io_uring, each fact `None` when it could not be read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// From uname(2).
    pub kernel: Option<KernelVersion>,
    /// `/proc/sys/kernel/io_uring_disabled` (Linux 6.6+): 0 allowed, 1 only for the
    /// io_uring group, 2 nobody.
    pub io_uring_disabled: Option<u8>,
    /// `/proc/self/status` `Seccomp:` is 2: a seccomp filter is on this process.
    pub seccomp_filter: Option<bool>,
}

/// The cause `diagnose` settles on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The sysctl forbids io_uring (to everyone, or to users outside its group).
    Sysctl(u8),
    /// The kernel predates io_uring, or ringway's minimum.
    OldKernel(KernelVersion),
    /// A seccomp filter blocks the io_uring system calls.
    Seccomp,
    /// ENOSYS from a recent kernel with no filter: built without CONFIG_IO_URING.
    NotBuiltIn,
    /// EPERM with no sysctl or filter to blame: a security module, most likely.
    Forbidden,
    /// The rings need more locked memory than RLIMIT_MEMLOCK allows (kernels before 5.12).
    LockedMemory,
    Other,
}

/// Decides why `io_uring_setup` failed with `errno`, given what the host says.
pub fn diagnose(errno: Option<i32>, host: &HostFacts) -> Cause {
    match errno {
        Some(libc::ENOMEM) => return Cause::LockedMemory,
        Some(libc::ENOSYS | libc::EPERM) => {}
        _ => return Cause::Other,
    }
    // Mode 2 answers EPERM to everyone, mode 1 to everyone outside the group; a filter could
    // be there too, but lifting it would not help.
    if let Some(mode @ (1 | 2)) = host.io_uring_disabled
        && errno == Some(libc::EPERM)
    {
        return Cause::Sysctl(mode);
    }
    if let Some(kernel) = host.kernel.filter(|kernel| *kernel < FIRST_URING_KERNEL) {
        return Cause::OldKernel(kernel);
    }
    if host.seccomp_filter == Some(true) {
        return Cause::Seccomp;
    }
    if let Some(kernel) = host.kernel.filter(|kernel| *kernel < MIN_KERNEL) {
        return Cause::OldKernel(kernel);
    }
    if errno == Some(libc::ENOSYS) {
        Cause::NotBuiltIn
    } else {
        Cause::Forbidden
    }
}

/// The start-up error for a failed io_uring set-up: the error, its cause, and the fix.
pub fn explain(err: &io::Error) -> String {
    let host = HostFacts::read();
    let hint = describe(diagnose(err.raw_os_error(), &host), &host);
    format!("cannot start an io_uring event loop ({err}): {hint}")
}

fn describe(cause: Cause, host: &HostFacts) -> String {
    let kernel = host.kernel.map_or_else(
        || "this kernel".to_owned(),
        |k| format!("Linux {}.{}", k.0, k.1),
    );
    match cause {
        Cause::Sysctl(2) => "io_uring is disabled on this host (`sysctl kernel.io_uring_disabled` \
             is 2): set it to 0"
            .to_owned(),
        Cause::Sysctl(_) => "io_uring is disabled for this user (`sysctl \
             kernel.io_uring_disabled` is 1): set it to 0, or add ringway's user to the group \
             named by kernel.io_uring_group"
            .to_owned(),
        Cause::OldKernel(_) => {
            format!("{kernel} is too old: ringway needs io_uring from Linux 5.10 or later")
        }
        Cause::Seccomp => format!(
            "a seccomp filter blocks io_uring's system calls ({kernel} has io_uring, but this \
             process runs under a filter: /proc/self/status says Seccomp: 2). Container \
             runtimes' default profiles block io_uring; run with the profile ringway ships, \
             which is Docker's default plus io_uring_setup, io_uring_enter and \
             io_uring_register: `--security-opt seccomp=docker/seccomp-io_uring.json`"
        ),
        Cause::NotBuiltIn => {
            format!("{kernel} was built without io_uring (CONFIG_IO_URING is off)")
        }
        Cause::Forbidden => "io_uring is forbidden here, though neither \
             kernel.io_uring_disabled nor a seccomp filter forbids it: check the security \
             module's policy (SELinux, AppArmor)"
            .to_owned(),
        Cause::LockedMemory => {
            "not enough locked memory for the io_uring rings: raise RLIMIT_MEMLOCK (ulimit -l)"
                .to_owned()
        }
        Cause::Other => "io_uring could not be set up".to_owned(),
    }
}

impl HostFacts {
    /// Reads the facts from uname(2) and /proc. Called once, on a failed start.
    fn read() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        Self {
            kernel: kernel_release().as_deref().and_then(parse_kernel_release),
            io_uring_disabled: read("/proc/sys/kernel/io_uring_disabled")
                .and_then(|text| text.trim().parse().ok()),
            seccomp_filter: read("/proc/self/status").and_then(|text| seccomp_filter(&text)),
        }
    }
}

fn kernel_release() -> Option<String> {
    // SAFETY: utsname is plain data (arrays of c_char); zeroed is a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname(2) fills the struct we own and touches nothing else.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return None;
    }
    let release: Vec<u8> = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8(release).ok()
}

/// "6.1.0-18-amd64" → 6.1.
fn parse_kernel_release(release: &str) -> Option<KernelVersion> {
    let mut numbers = release.split(|c: char| !c.is_ascii_digit());
    let major = numbers.next()?.parse().ok()?;
    let minor = numbers.next()?.parse().ok()?;
    Some(KernelVersion(major, minor))
}

/// Whether `/proc/self/status` says a seccomp filter is on (mode 2).
fn seccomp_filter(status: &str) -> Option<bool> {
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix("Seccomp:"))?;
    Some(value.trim() == "2")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECENT: HostFacts = HostFacts {
        kernel: Some(KernelVersion(6, 1)),
        io_uring_disabled: Some(0),
        seccomp_filter: Some(false),
    };

    #[test]
    fn a_filter_on_a_recent_kernel_is_seccomp_not_an_old_kernel() {
        let host = HostFacts {
            seccomp_filter: Some(true),
            ..RECENT
        };
        // podman's default profile answers ENOSYS, Docker's EPERM.
        assert_eq!(diagnose(Some(libc::ENOSYS), &host), Cause::Seccomp);
        assert_eq!(diagnose(Some(libc::EPERM), &host), Cause::Seccomp);
        let unknown_kernel = HostFacts {
            kernel: None,
            io_uring_disabled: None,
            seccomp_filter: Some(true),
        };
        assert_eq!(
            diagnose(Some(libc::ENOSYS), &unknown_kernel),
            Cause::Seccomp
        );
    }

    #[test]
    fn the_message_names_seccomp_and_the_shipped_profile() {
        let host = HostFacts {
            seccomp_filter: Some(true),
            ..RECENT
        };
        let text = describe(Cause::Seccomp, &host);
        assert!(text.contains("seccomp filter"), "{text}");
        assert!(text.contains("Linux 6.1 has io_uring"), "{text}");
        assert!(
            text.contains("--security-opt seccomp=docker/seccomp-io_uring.json"),
            "{text}"
        );
        assert!(!text.contains("too old"), "{text}");
    }

    #[test]
    fn enosys_without_a_filter_is_the_kernel() {
        let old = HostFacts {
            kernel: Some(KernelVersion(4, 19)),
            io_uring_disabled: None,
            seccomp_filter: Some(true),
        };
        // Before 5.1 the kernel has no io_uring at all, filter or not.
        assert_eq!(
            diagnose(Some(libc::ENOSYS), &old),
            Cause::OldKernel(KernelVersion(4, 19))
        );
        let between = HostFacts {
            kernel: Some(KernelVersion(5, 4)),
            seccomp_filter: Some(false),
            ..RECENT
        };
        assert_eq!(
            diagnose(Some(libc::ENOSYS), &between),
            Cause::OldKernel(KernelVersion(5, 4))
        );
        assert_eq!(diagnose(Some(libc::ENOSYS), &RECENT), Cause::NotBuiltIn);
    }

    #[test]
    fn the_sysctl_explains_eperm() {
        for mode in [1, 2] {
            let host = HostFacts {
                io_uring_disabled: Some(mode),
                seccomp_filter: Some(true),
                ..RECENT
            };
            assert_eq!(diagnose(Some(libc::EPERM), &host), Cause::Sysctl(mode));
        }
        assert_eq!(diagnose(Some(libc::EPERM), &RECENT), Cause::Forbidden);
    }

    #[test]
    fn other_errors_keep_their_own_meaning() {
        let host = HostFacts {
            seccomp_filter: Some(true),
            ..RECENT
        };
        assert_eq!(diagnose(Some(libc::ENOMEM), &host), Cause::LockedMemory);
        assert_eq!(diagnose(Some(libc::EINVAL), &host), Cause::Other);
        assert_eq!(diagnose(None, &host), Cause::Other);
    }

    #[test]
    fn kernel_releases_parse() {
        assert_eq!(
            parse_kernel_release("6.1.0-18-amd64"),
            Some(KernelVersion(6, 1))
        );
        assert_eq!(parse_kernel_release("5.10.0"), Some(KernelVersion(5, 10)));
        assert_eq!(
            parse_kernel_release("6.18.44-fc-v1045"),
            Some(KernelVersion(6, 18))
        );
        assert_eq!(parse_kernel_release("6"), None);
        assert_eq!(parse_kernel_release(""), None);
    }

    #[test]
    fn seccomp_mode_is_read_from_proc_status() {
        let status = "Name:\tringway\nSeccomp:\t2\nSeccomp_filters:\t1\n";
        assert_eq!(seccomp_filter(status), Some(true));
        assert_eq!(seccomp_filter("Seccomp:\t0\n"), Some(false));
        assert_eq!(seccomp_filter("Name:\tx\n"), None);
    }
}
