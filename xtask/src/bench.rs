//! `cargo xtask bench`: the side-by-side benchmark (ringway vs nginx vs uWSGI's `--http`
//! router vs uWSGI alone; ringway vs nginx in front of Granian vs Granian alone). Builds ringway and the harness in release mode, makes sure the
//! venv exists, and runs `ringway-bench` with the arguments given after `bench`
//! (`--suite buffering` picks the buffering suite). h2load (the keep-alive TLS cases) is
//! passed on when found; without it the harness stops if those cases are asked for, saying
//! what to install.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::procs;
use crate::system_packages::{self, Need};
use crate::venv;
use crate::workspace::Workspace;

pub fn bench(ws: &Workspace, bench_args: &[String]) -> Result<u8> {
    system_packages::ensure(&[Need::Bench])?;
    crate::build_ringway(ws, true)?;
    procs::run_checked(
        ws.cargo()
            .args(["build", "--release", "-p", "ringway-bench"]),
    )?;
    let venv = venv::ensure(ws)?;
    let wrk = find_tool("wrk", "RINGWAY_WRK", "/usr/bin/wrk", "apt-get install wrk")?;
    let nginx = find_tool(
        "nginx",
        "RINGWAY_NGINX",
        "/usr/sbin/nginx",
        "apt-get install nginx",
    )?;

    let mut shown = String::from("cargo xtask bench");
    for arg in bench_args {
        shown.push(' ');
        shown.push_str(arg);
    }
    let mut cmd = std::process::Command::new(ws.target.join("release").join("ringway-bench"));
    cmd.current_dir(&ws.root)
        .args(["--ringway"])
        .arg(ws.ringway_bin(true))
        .arg("--venv")
        .arg(&venv.dir)
        .arg("--nginx")
        .arg(&nginx)
        .arg("--wrk")
        .arg(&wrk);
    match find_tool(
        "h2load",
        "RINGWAY_H2LOAD",
        "/usr/bin/h2load",
        "apt-get install nghttp2-client",
    ) {
        Ok(h2load) => {
            cmd.arg("--h2load").arg(h2load);
        }
        Err(err) => eprintln!("bench: {err:#}; the keep-alive TLS cases cannot run"),
    }
    cmd.arg("--out")
        .arg(ws.target.join("bench"))
        .arg("--shown-command")
        .arg(&shown)
        .args(bench_args);
    let status = procs::status(&mut cmd)?;
    Ok(procs::exit_code(status))
}

/// A tool from `$VAR`, else `$PATH`, else its Debian location.
fn find_tool(name: &str, var: &str, debian: &str, install: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if procs::is_executable(&path) {
            return Ok(path);
        }
        bail!("{var}={} is not an executable file", path.display());
    }
    if let Some(path) = procs::which(name) {
        return Ok(path);
    }
    let path = PathBuf::from(debian);
    if procs::is_executable(&path) {
        return Ok(path);
    }
    bail!("{name} not found (the benchmark runs it): `{install}`, or set {var}")
}
