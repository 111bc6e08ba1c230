//! `cargo xtask lint`: formatting and clippy, as CI checks them.

use anyhow::{Context, Result};

use crate::procs;
use crate::workspace::Workspace;

pub fn lint(ws: &Workspace) -> Result<u8> {
    let fmt = procs::status(ws.cargo().args(["fmt", "--all", "--", "--check"]))
        .context("rustfmt is needed: rustup component add rustfmt")?;
    if !fmt.success() {
        eprintln!("lint: formatting differs (`cargo fmt --all` fixes it)");
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
    if fmt.success() && clippy.success() {
        eprintln!("lint: clean");
        Ok(0)
    } else {
        Ok(1)
    }
}
