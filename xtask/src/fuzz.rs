//! `cargo xtask fuzz`: every fuzz target in fuzz/ (cargo-fuzz, libFuzzer) for a bounded time
//! each, as CI runs them; a crash, a timeout or a leak fails the run.
//!
//! The targets are built once (one crate build, shared by all), then each runs for
//! `--seconds` from its committed seeds (fuzz/corpus/NAME, only read) and what earlier runs
//! found (target/fuzz-corpus/NAME, where new inputs go, so the seeds stay small). Nothing is
//! installed here: cargo-fuzz and the nightly toolchain are checked for, and what is missing
//! is named with the command that installs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::procs;
use crate::workspace::Workspace;

/// How the targets are built (`cargo fuzz build` and `run` must agree, or `run` rebuilds):
/// optimised, with debug assertions and overflow checks (an overflow is a finding), and
/// AddressSanitizer (cargo-fuzz's default).
const BUILD_FLAGS: [&str; 2] = ["--release", "--debug-assertions"];

/// libFuzzer options for every run: a unit slower than this many seconds is a finding
/// (a hang), and the run ends with its statistics.
const RUN_FLAGS: [&str; 2] = ["-timeout=10", "-print_final_stats=1"];

#[derive(Args)]
pub struct FuzzArgs {
    /// Seconds each target runs.
    #[arg(long, default_value_t = 30, value_name = "N")]
    seconds: u64,
    /// Run only this target (repeatable); `cargo fuzz list` names them all.
    #[arg(long = "target", value_name = "NAME")]
    targets: Vec<String>,
    /// More libFuzzer options, after `--` (e.g. `-- -max_len=65536`).
    #[arg(last = true)]
    libfuzzer_args: Vec<String>,
}

/// What one target's run did.
struct Run {
    target: String,
    ok: bool,
    execs: Option<u64>,
    per_second: Option<u64>,
}

pub fn fuzz(ws: &Workspace, args: &FuzzArgs) -> Result<u8> {
    check_tools()?;
    let all = list_targets(ws)?;
    let chosen: Vec<String> = if args.targets.is_empty() {
        all.clone()
    } else {
        for name in &args.targets {
            if !all.contains(name) {
                bail!("no fuzz target {name:?}; there are: {}", all.join(", "));
            }
        }
        args.targets.clone()
    };

    let started = Instant::now();
    let mut build = fuzz_cargo(ws);
    build.arg("build").args(BUILD_FLAGS);
    procs::run_checked(&mut build)?;
    eprintln!(
        "fuzz: targets built in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let mut runs = Vec::new();
    for target in &chosen {
        runs.push(run_target(ws, target, args)?);
    }

    eprintln!("\nfuzz: {} s per target", args.seconds);
    eprintln!("{:<16} {:>12} {:>10}  result", "target", "execs", "execs/s");
    for run in &runs {
        let number = |n: Option<u64>| n.map_or_else(|| "?".to_owned(), |n| n.to_string());
        eprintln!(
            "{:<16} {:>12} {:>10}  {}",
            run.target,
            number(run.execs),
            number(run.per_second),
            if run.ok { "ok" } else { "FAILED" }
        );
    }
    let failed: Vec<&str> = runs
        .iter()
        .filter(|r| !r.ok)
        .map(|r| r.target.as_str())
        .collect();
    if failed.is_empty() {
        return Ok(0);
    }
    eprintln!(
        "fuzz: {} failed; the input is in fuzz/artifacts/TARGET/, and \
         `cargo +nightly fuzz run {} TARGET FILE` reproduces it (README, \"Fuzzing\")",
        failed.join(", "),
        BUILD_FLAGS.join(" ")
    );
    Ok(1)
}

/// `cargo +nightly fuzz ...` in the workspace root. It goes through rustup's `cargo` proxy
/// (the one in `$PATH`, not the stable cargo running xtask), which `+nightly` picks a
/// toolchain with.
///
/// The package variables `cargo run` gave xtask (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`,
/// ...) are left out: some build scripts rebuild when they change, and with them
/// every target would rebuild between `cargo xtask fuzz` and `cargo fuzz` typed by hand.
fn fuzz_cargo(ws: &Workspace) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&ws.root).env_remove("RUSTUP_TOOLCHAIN");
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let from_cargo_run = name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || matches!(
                &*name,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
            );
        if from_cargo_run {
            cmd.env_remove(&*name);
        }
    }
    cmd.args(["+nightly", "fuzz"]);
    cmd
}

/// Fails naming every missing tool and how to install it.
fn check_tools() -> Result<()> {
    let quiet = |cmd: &mut Command| {
        cmd.env_remove("RUSTUP_TOOLCHAIN")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut missing = Vec::new();
    if !quiet(Command::new("cargo").args(["+nightly", "--version"])) {
        missing.push(
            "the nightly toolchain (libFuzzer's sanitizer flags need it): \
             `rustup toolchain install nightly --profile minimal`",
        );
    }
    if procs::which("cargo-fuzz").is_none() {
        missing.push("cargo-fuzz: `cargo install --locked cargo-fuzz --version '^0.13'`");
    }
    if !missing.is_empty() {
        bail!("fuzzing needs {}", missing.join("; and "));
    }
    Ok(())
}

/// The targets fuzz/Cargo.toml declares.
fn list_targets(ws: &Workspace) -> Result<Vec<String>> {
    let mut cmd = fuzz_cargo(ws);
    cmd.arg("list");
    let out = cmd.output().map_err(|e| procs::spawn_error(&cmd, e))?;
    if !out.status.success() {
        bail!(
            "`{}` {}: {}",
            procs::display(&cmd),
            procs::describe(out.status),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        bail!("`cargo fuzz list` names no target");
    }
    Ok(names)
}

/// Runs one target for `args.seconds`, passing libFuzzer's report through without its
/// progress lines, and reads its final statistics.
fn run_target(ws: &Workspace, target: &str, args: &FuzzArgs) -> Result<Run> {
    let found = ws.target.join("fuzz-corpus").join(target);
    std::fs::create_dir_all(&found)
        .with_context(|| format!("cannot create {}", found.display()))?;
    let seeds = ws.root.join("fuzz").join("corpus").join(target);
    let mut cmd = fuzz_cargo(ws);
    cmd.arg("run").args(BUILD_FLAGS).arg(target).arg(&found);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={}", args.seconds))
        .args(RUN_FLAGS)
        .args(&args.libfuzzer_args)
        .stderr(Stdio::piped());
    eprintln!("\n$ {}", procs::display(&cmd));
    let mut child = cmd.spawn().map_err(|e| procs::spawn_error(&cmd, e))?;
    let mut run = Run {
        target: target.to_owned(),
        ok: false,
        execs: None,
        per_second: None,
    };
    if let Some(stderr) = child.stderr.take() {
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            if let Some(n) = stat(text, "stat::number_of_executed_units:") {
                run.execs = Some(n);
            }
            if let Some(n) = stat(text, "stat::average_exec_per_sec:") {
                run.per_second = Some(n);
            }
            if shown(text) {
                eprintln!("{text}");
            }
            line.clear();
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for the {target} run"))?;
    run.ok = status.success();
    if !run.ok {
        eprintln!("fuzz: {target} {}", procs::describe(status));
    }
    Ok(run)
}

/// libFuzzer's progress lines (`#1234 NEW ...`, `REDUCE`, `pulse`) are left out, but for
/// the first and the last; everything else (a crash report above all) is shown.
fn shown(line: &str) -> bool {
    !line.starts_with('#') || line.contains("INITED") || line.contains("DONE")
}

fn stat(line: &str, name: &str) -> Option<u64> {
    line.strip_prefix(name)?.trim().parse().ok()
}
