//! `cargo xtask image --test`: the images, run as a user runs them.
//!
//! 1. docker/compose.yaml comes up with podman-compose (the demo app under uWSGI, ringway
//!    with the shipped seccomp profile, the socket in a shared volume), on a free port;
//!    a request through ringway must reach Flask (status and body checked).
//! 2. The ringway image run under podman's default seccomp profile must fail at start,
//!    with an error that names seccomp and the profile (not "no io_uring in this kernel").
//!
//! The stack is torn down (containers, volume, network) however the test ends.

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::image::{RINGWAY_IMAGE, ULIMITS, podman};
use crate::procs;
use crate::workspace::Workspace;

/// How long the stack gets to answer its first request (uWSGI loading Flask).
const STACK_READY: Duration = Duration::from_secs(90);
/// How long ringway gets to fail without the profile (it fails at start).
const FAIL_WITHIN: Duration = Duration::from_secs(60);
/// What demo_flask.py's `/` answers.
const HELLO: &str = "Hello, World!";
/// The words of the start-up error that name the cause and the fix.
const SECCOMP_WORDS: [&str; 2] = [
    "a seccomp filter blocks io_uring",
    "--security-opt seccomp=docker/seccomp-io_uring.json",
];

pub fn run(ws: &Workspace) -> Result<()> {
    let port = free_port()?;
    let stack = Stack {
        ws,
        project: format!("ringway-image-test-{}", std::process::id()),
        port,
    };
    stack.compose(&["up", "-d", "--no-build"])?;
    let answer = stack.wait_for_answer();
    stack.show_logs();
    let (status, body) = answer?;
    ensure!(
        status == "200" && body == HELLO,
        "GET / through ringway answered {status} {body:?}, not 200 {HELLO:?}"
    );
    eprintln!("xtask: ok: GET / through ringway's container answered 200 {body:?}");
    drop(stack);

    fails_without_profile()?;
    Ok(())
}

/// The compose project, brought down with its volume when dropped.
struct Stack<'a> {
    ws: &'a Workspace,
    project: String,
    port: u16,
}

impl Stack<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("podman-compose");
        cmd.current_dir(&self.ws.root)
            .arg("--podman-args=--runtime runc --cgroup-manager cgroupfs")
            .arg(format!("--podman-run-args={}", ULIMITS.join(" ")))
            .args(["-p", &self.project, "-f", "docker/compose.yaml"])
            .args(args)
            .env("RINGWAY_PORT", self.port.to_string());
        cmd
    }

    fn compose(&self, args: &[&str]) -> Result<()> {
        procs::run_checked(&mut self.command(args))
    }

    /// Polls GET / until it answers 200 (uWSGI may still be loading the app: ringway
    /// answers 502 until its socket is there), or the time is up; returns the last answer.
    fn wait_for_answer(&self) -> Result<(String, String)> {
        let url = format!("http://127.0.0.1:{}/", self.port);
        eprintln!("xtask: waiting for {url} to answer 200");
        let deadline = Instant::now() + STACK_READY;
        loop {
            let answer = curl(&url);
            match &answer {
                Ok((status, _)) if status == "200" => return answer,
                _ if Instant::now() >= deadline => {
                    return answer.with_context(|| format!("{url} never answered 200"));
                }
                _ => thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    fn show_logs(&self) {
        let _ = procs::status(&mut self.command(&["logs"]));
    }
}

impl Drop for Stack<'_> {
    fn drop(&mut self) {
        if let Err(err) = self.compose(&["down", "-v"]) {
            eprintln!("xtask: {err:#}");
        }
        // podman-compose's `down` leaves the project's network behind.
        let network = format!("{}_default", self.project);
        let _ = podman()
            .args(["network", "rm", "--force", &network])
            .stdout(Stdio::null())
            .status();
    }
}

/// `curl URL` → (status code, body).
fn curl(url: &str) -> Result<(String, String)> {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "5"])
        .args(["--write-out", "\n%{http_code}", url])
        .output()
        .context("cannot run curl (install it: apt-get install curl)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "curl {url} {}: {}",
            procs::describe(output.status),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((status.to_owned(), body.to_owned()))
}

/// ringway's image under podman's default seccomp profile: it must exit non-zero at once,
/// saying seccomp blocks io_uring and how to allow it.
fn fails_without_profile() -> Result<()> {
    let name = format!("ringway-image-test-noprofile-{}", std::process::id());
    let mut cmd = podman();
    cmd.args(["run", "--rm", "--name", &name])
        .args(ULIMITS)
        .arg(RINGWAY_IMAGE)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!("$ {}", procs::display(&cmd));
    let mut child = cmd.spawn().map_err(|err| procs::spawn_error(&cmd, err))?;
    let deadline = Instant::now() + FAIL_WITHIN;
    while child.try_wait()?.is_none() {
        if Instant::now() >= deadline {
            let _ = podman().args(["rm", "--force", &name]).status();
            let _ = child.wait();
            bail!(
                "ringway still ran {FAIL_WITHIN:?} after starting under the default seccomp \
                 profile: it was expected to fail (does that profile allow io_uring now?)"
            );
        }
        thread::sleep(procs::POLL);
    }
    let output: Output = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{}", stderr.trim_end());
    ensure!(
        !output.status.success(),
        "ringway under the default seccomp profile {}: it was expected to fail",
        procs::describe(output.status)
    );
    for words in SECCOMP_WORDS {
        ensure!(
            stderr.contains(words),
            "ringway's error under the default seccomp profile does not say {words:?}"
        );
    }
    eprintln!(
        "xtask: ok: without the profile the image {} and names seccomp and the profile",
        procs::describe(output.status)
    );
    Ok(())
}

/// A port free right now on 127.0.0.1 (podman publishes the stack on it).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}
