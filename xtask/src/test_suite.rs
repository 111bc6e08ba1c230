//! `cargo xtask test`: the whole suite, with the venv, nginx and the ringway binary ready.

use std::env;
use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::procs;
use crate::system_packages::{self, Need};
use crate::venv;
use crate::workspace::Workspace;

pub fn test(ws: &Workspace, cargo_args: &[String]) -> Result<u8> {
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "xtask: not root: the tests that load eBPF probes, make device nodes (mknod), use \
             network namespaces, force socket buffer sizes or switch users will fail (CI runs \
             as root)"
        );
    }
    system_packages::ensure(&[Need::Test])?;
    let venv = venv::ensure(ws)?;
    let nginx = find_nginx()?;
    eprintln!("nginx: {}", nginx.display());
    crate::build_ringway(ws, false)?;

    let mut cmd = ws.cargo();
    cmd.arg("test");
    // Every test binary, past a failing one: a run shows all that fails.
    if !cargo_args
        .iter()
        .take_while(|arg| *arg != "--")
        .any(|arg| arg == "--no-fail-fast")
    {
        cmd.arg("--no-fail-fast");
    }
    if !selects_packages(cargo_args) {
        cmd.arg("--workspace");
    }
    cmd.args(cargo_args)
        .env("RINGWAY_BIN", ws.ringway_bin(false))
        .env("RINGWAY_VENV", &venv.dir)
        .env("RINGWAY_NGINX", &nginx);
    eprintln!(
        "RINGWAY_BIN={} RINGWAY_VENV={} RINGWAY_NGINX={}",
        ws.ringway_bin(false).display(),
        venv.dir.display(),
        nginx.display()
    );
    let status = procs::status_ending_orphans(&mut cmd)?;
    Ok(procs::exit_code(status))
}

/// Whether the extra arguments pick packages themselves (`-p NAME`, `--package NAME`), in
/// which case `--workspace` would override them.
fn selects_packages(cargo_args: &[String]) -> bool {
    cargo_args
        .iter()
        .take_while(|arg| *arg != "--")
        .any(|arg| arg.starts_with("-p") || arg == "--package" || arg.starts_with("--package="))
}

/// nginx for the parity tests: `$RINGWAY_NGINX`, else `nginx` in `$PATH`, else Debian's
/// /usr/sbin/nginx (not in a normal user's `$PATH`).
fn find_nginx() -> Result<PathBuf> {
    if let Some(path) = env::var_os("RINGWAY_NGINX").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if procs::is_executable(&path) {
            return Ok(path);
        }
        bail!("RINGWAY_NGINX={} is not an executable file", path.display());
    }
    if let Some(path) = procs::which("nginx") {
        return Ok(path);
    }
    let debian = PathBuf::from("/usr/sbin/nginx");
    if procs::is_executable(&debian) {
        return Ok(debian);
    }
    bail!(
        "nginx not found (the parity tests run it): install it with `apt-get install nginx` \
         (.ci/run does it), or point RINGWAY_NGINX at an nginx binary"
    )
}

#[cfg(test)]
mod tests {
    use super::selects_packages;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn package_selection_replaces_workspace() {
        assert!(!selects_packages(&args(&[])));
        assert!(!selects_packages(&args(&[
            "--release",
            "--",
            "--nocapture"
        ])));
        assert!(!selects_packages(&args(&["--", "-p"])));
        assert!(selects_packages(&args(&["-p", "ringway-tests"])));
        assert!(selects_packages(&args(&["-pringway"])));
        assert!(selects_packages(&args(&["--package", "ringway"])));
        assert!(selects_packages(&args(&["--package=ringway", "--", "x"])));
    }
}
