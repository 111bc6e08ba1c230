//! The developer front door of the ringway workspace:
//!
//! - `cargo xtask run`  — the whole stack (ringway → uWSGI → the demo Flask app;
//!   `--app-server granian|gunicorn`: ringway → that HTTP app server)
//! - `cargo xtask test` — the whole test suite, with uWSGI and nginx ready
//! - `cargo xtask lint` — rustfmt and clippy, as CI runs them
//! - `cargo xtask bench` — the side-by-side benchmark against nginx and uWSGI
//!   (`-- --suite buffering`: ringway vs nginx under slow and hostile clients)
//! - `cargo xtask fuzz` — every fuzz target for a bounded time (cargo-fuzz, nightly)
//! - `cargo xtask image` — the container image, `localhost/ringway:latest` (podman);
//!   `--test` runs it for real
//! - `cargo xtask setup test|bench|image|ebpf` — the system packages those tasks need
//!   (`test` and `bench` check them themselves; `.ci/run` calls this first)

mod bench;
mod container_test;
mod demo_cert;
mod fuzz;
mod image;
mod lint;
mod procs;
mod run;
mod system_packages;
mod test_suite;
mod venv;
mod workspace;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use workspace::Workspace;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build, run, test and benchmark ringway"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build ringway and run it in front of uWSGI (or `--app-server granian|gunicorn`) and the
    /// demo Flask app until Ctrl-C.
    Run(run::RunArgs),
    /// Run the whole test suite (`cargo test --workspace`) with uWSGI, nginx and ringway ready.
    Test {
        /// Extra arguments for `cargo test`, after `--`
        /// (e.g. `cargo xtask test -- -p ringway-tests -- --nocapture`).
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Check formatting (rustfmt) and lints (clippy, warnings denied).
    Lint,
    /// Benchmark ringway against nginx, uWSGI's --http router and uWSGI alone (release
    /// build); the report goes to target/bench/.
    Bench {
        /// Arguments for the harness (`cargo xtask bench -- --help` lists them), e.g.
        /// `--rounds 5 --duration 10 --pin --app flask --cases hello,post16k`, or
        /// `--suite buffering` for ringway vs nginx under slow and hostile clients.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        bench_args: Vec<String>,
    },
    /// Run every fuzz target of fuzz/ for a bounded time each (cargo-fuzz and the nightly
    /// toolchain must be installed); a crash fails.
    Fuzz(fuzz::FuzzArgs),
    /// Build the container image `localhost/ringway:latest` with podman (docker/Dockerfile;
    /// local base images are made with debootstrap when the public ones cannot be pulled).
    Image(image::ImageArgs),
    /// Check the system packages the given tasks need; as root on Debian/Ubuntu install the
    /// missing ones, otherwise print the command that would.
    Setup {
        /// The tasks to prepare for.
        #[arg(value_enum, required = true)]
        tasks: Vec<system_packages::Need>,
    },
}

fn main() -> ExitCode {
    match run_task(Cli::parse().task) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_task(task: Task) -> Result<u8> {
    let ws = Workspace::locate()?;
    match task {
        Task::Run(args) => run::run(&ws, &args),
        Task::Test { cargo_args } => test_suite::test(&ws, &cargo_args),
        Task::Lint => lint::lint(&ws),
        Task::Bench { bench_args } => bench::bench(&ws, &bench_args),
        Task::Fuzz(args) => fuzz::fuzz(&ws, &args),
        Task::Image(args) => image::image(&ws, &args),
        Task::Setup { tasks } => system_packages::ensure(&tasks).map(|()| 0),
    }
}

/// `cargo build -p ringway [--release]`.
fn build_ringway(ws: &Workspace, release: bool) -> Result<()> {
    let mut cmd = ws.cargo();
    cmd.args(["build", "-p", "ringway"]);
    if release {
        cmd.arg("--release");
    }
    procs::run_checked(&mut cmd)
}
