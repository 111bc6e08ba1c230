//! Headless Chromium, the real browser of the tests: its own TLS stack and key shares, its
//! own rendering of a page and its scripts.

use std::path::Path;
use std::process::{Command, Stdio};

/// Runs headless Chromium on `url` with `extra` flags (`--dump-dom`, `--screenshot=FILE`,
/// ...) in the profile directory `profile`, and returns what it printed (the DOM, for
/// `--dump-dom`). Nothing of the machine's own browser state is used, no update or sync
/// traffic leaves the host, and QUIC is off (the servers speak TCP).
pub fn chromium(profile: &Path, extra: &[&str], url: &str) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .expect("run chromium (Debian package `chromium`; .ci/run installs it)");
    assert!(out.status.success(), "chromium failed on {url}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
