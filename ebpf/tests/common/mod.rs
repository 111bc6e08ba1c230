//! What the root-only tests of this crate share.

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Fails a test that cannot run here: a skip that passes would count as checked what
/// was not. Only `RINGWAY_SKIP_UNRUNNABLE=1` (a developer without root, outside CI) turns
/// it into a `SKIP` line and a pass.
pub fn cannot_run(test: &str, why: &str) {
    let allowed = std::env::var_os("RINGWAY_SKIP_UNRUNNABLE").is_some_and(|v| v == "1")
        && std::env::var_os("CI").is_none();
    if !allowed {
        panic!(
            "{test}: {why} (these tests run as root on a kernel that accepts the probes; \
             RINGWAY_SKIP_UNRUNNABLE=1 skips them outside CI)"
        );
    }
    eprintln!("SKIP {test}: {why}");
}
