//! `cargo xtask lint`: formatting and clippy, as CI checks them.

use anyhow::{Context, Result};

use crate::procs;
use crate::workspace::Workspace;

pub fn lint(ws: &Workspace) -> Result<u8> {
    let workspace_fmt = procs::status(ws.cargo().args(["fmt", "--all", "--", "--check"]))
        .context("rustfmt is needed: rustup component add rustfmt")?;
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
    ]))
    .context("clippy is needed: rustup component add clippy")?;
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
