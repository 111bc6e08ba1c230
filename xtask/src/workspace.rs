//! Where things are: the workspace root, its target directory, the cargo that runs us.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

/// The ringway workspace this xtask belongs to.
pub struct Workspace {
    pub root: PathBuf,
    pub target: PathBuf,
    cargo: OsString,
}

impl Workspace {
    /// Finds the workspace from xtask's own manifest directory (set by `cargo run` at run
    /// time, and baked in at build time as a fallback).
    pub fn locate() -> Result<Self> {
        let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        let root = manifest_dir
            .parent()
            .with_context(|| {
                format!(
                    "xtask manifest dir {} has no parent",
                    manifest_dir.display()
                )
            })?
            .to_path_buf();
        let target = match env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => absolute_in(&root, PathBuf::from(dir)),
            None => root.join("target"),
        };
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        Ok(Self {
            root,
            target,
            cargo,
        })
    }

    /// A `cargo` command running in the workspace root.
    pub fn cargo(&self) -> Command {
        let mut cmd = Command::new(&self.cargo);
        cmd.current_dir(&self.root);
        cmd
    }

    /// The ringway binary that `cargo build -p ringway [--release]` produces.
    pub fn ringway_bin(&self, release: bool) -> PathBuf {
        let profile = if release { "release" } else { "debug" };
        self.target.join(profile).join("ringway")
    }

    /// The Python environment with uWSGI and Flask: `$RINGWAY_VENV`, else `target/venv`.
    pub fn venv_dir(&self) -> PathBuf {
        match env::var_os("RINGWAY_VENV") {
            Some(dir) if !dir.is_empty() => absolute_in(&self.root, PathBuf::from(dir)),
            _ => self.target.join("venv"),
        }
    }

    /// Whether the venv is xtask's own, not one given with RINGWAY_VENV.
    pub fn venv_is_ours(&self) -> bool {
        env::var_os("RINGWAY_VENV").is_none_or(|dir| dir.is_empty())
    }

    /// Scratch space for `cargo xtask run`: sockets of the running stack.
    pub fn run_dir(&self) -> PathBuf {
        self.target.join("run")
    }

    pub fn apps_dir(&self) -> PathBuf {
        self.root.join("tests").join("apps")
    }

    pub fn requirements(&self) -> PathBuf {
        self.apps_dir().join("requirements.txt")
    }
}

fn absolute_in(root: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        root.join(path)
    }
}
