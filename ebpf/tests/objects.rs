//! The committed eBPF objects must be built from the committed sources.
//! Runs without root and without clang.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::Path;
use std::process::Command;

/// obj/SOURCES.sha256 is written by build-objects.sh next to the objects it
/// built; it must list exactly the current files under bpf/ with their
/// current hashes. (Content hashes, not mtimes: a git checkout sets every
/// mtime to the checkout time.)
#[test]
fn objects_are_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bpf = root.join("bpf");
    let mut names: Vec<String> = std::fs::read_dir(&bpf)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let out = Command::new("sha256sum")
        .args(&names)
        .current_dir(&bpf)
        .env("LC_ALL", "C")
        .output()
        .expect("sha256sum (coreutils) must be installed");
    assert!(out.status.success());
    let now = String::from_utf8(out.stdout).unwrap();
    let recorded = std::fs::read_to_string(root.join("obj/SOURCES.sha256")).unwrap_or_default();
    assert_eq!(
        recorded, now,
        "ebpf/obj/*.bpf.o are older than ebpf/bpf/: run ebpf/build-objects.sh (needs clang-19) and commit obj/"
    );
    for name in names.iter().filter(|n| n.ends_with(".bpf.c")) {
        let obj = root.join("obj").join(name.replace(".bpf.c", ".bpf.o"));
        let len = std::fs::metadata(&obj).map(|m| m.len()).unwrap_or(0);
        assert!(
            len > 0,
            "{} is missing or empty: run ebpf/build-objects.sh",
            obj.display()
        );
    }
}
