//! Running the tools a test checks its output with.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::paths;

/// Runs `cmd` to the end: whether it succeeded, and its stdout then stderr as text.
pub fn status_and_output(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs `script` with the test venv's Python, `input` on its stdin; its stdout. A failing
/// script fails the test, with its stderr and the input.
pub fn venv_python(script: &str, input: &str) -> Vec<u8> {
    let mut child = Command::new(paths::venv().join("bin/python"))
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("venv python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python");
    assert!(
        out.status.success(),
        "python failed: {}\n{input}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
