//! What the root-only tests of this crate share.

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Skip (or, under CI, fail) a test that cannot run here.
pub fn cannot_run(test: &str, why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: {why} (CI must run these tests as root on a kernel that accepts the probes)"
        );
    }
    eprintln!("SKIP {test}: {why}");
}
