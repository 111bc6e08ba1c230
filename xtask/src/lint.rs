//! `cargo xtask lint`: formatting and clippy, as CI checks them.

use std::process::Stdio;

use anyhow::{Result, bail};

use crate::procs;
use crate::workspace::Workspace;

pub fn lint(ws: &Workspace) -> Result<u8> {
    // A missing tool fails as its check would: said apart, not as a lint finding.
    for (tool, component) in [("fmt", "rustfmt"), ("clippy", "clippy")] {
        let there = ws
            .cargo()
            .args([tool, "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !there {
            bail!("`cargo {tool}` is not installed: rustup component add {component}");
        }
    }
    let workspace_fmt = procs::status(ws.cargo().args(["fmt", "--all", "--", "--check"]))?;
    // The fuzz targets are a workspace of their own (built by cargo-fuzz on nightly): their
    // formatting is checked here, their build by `cargo xtask fuzz`.
    let fuzz_fmt = procs::status(ws.cargo().args([
        "fmt",
        "--manifest-path",
        "fuzz/Cargo.toml",
        "--",
        "--check",
    ]))?;
    let fmt_ok = workspace_fmt.success() && fuzz_fmt.success();
    if !fmt_ok {
        eprintln!(
            "lint: formatting differs (`cargo fmt --all` and \
             `cargo fmt --manifest-path fuzz/Cargo.toml` fix it)"
        );
    }
    let clippy = procs::status(ws.cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    if !clippy.success() {
        eprintln!("lint: clippy found problems");
    }
    if fmt_ok && clippy.success() {
        eprintln!("lint: clean");
        Ok(0)
    } else {
        Ok(1)
    }
}
