//! Worker threads and CPUs, read from the kernel (`/proc/PID/task/*/status`): one worker
//! per allowed CPU is pinned to its own (the default); `--no-pin-workers` (`pin_workers =
//! false`) leaves them to the scheduler, as nginx's workers without `worker_cpu_affinity`;
//! another count is never pinned.

use std::fs;

use ringway_tests::Ringway;

/// The CPUs a `Cpus_allowed_list` line names (`0-3,6`).
fn cpu_list(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let (from, to) = part.split_once('-').unwrap_or((part, part));
        let from: usize = from.parse().expect("a CPU number");
        let to: usize = to.parse().expect("a CPU number");
        cpus.extend(from..=to);
    }
    cpus
}

/// The CPUs the `status` file at `path` allows.
fn allowed_in(path: &str) -> Vec<usize> {
    let status = fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or_else(|| panic!("no Cpus_allowed_list in {path}"));
    cpu_list(line)
}

/// Each worker thread's allowed CPUs, in the workers' order (`ringway-w0`, `ringway-w1`...).
fn worker_cpus(pid: u32) -> Vec<Vec<usize>> {
    let mut workers = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task")).expect("the process's threads") {
        let dir = task.expect("a thread").path();
        let comm = fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if let Some(index) = comm.trim().strip_prefix("ringway-w") {
            let index: usize = index.parse().expect("a worker number");
            workers.push((index, allowed_in(&dir.join("status").to_string_lossy())));
        }
    }
    workers.sort();
    workers.into_iter().map(|(_, cpus)| cpus).collect()
}

/// ringway with a static route (no upstream needed), `workers` workers and `flags`.
fn started(dir: &tempfile::TempDir, workers: usize, flags: &[&str]) -> Ringway {
    let mut builder = Ringway::with_config(format!(
        "[[routes]]\npath = \"/f/\"\nstatic = '{}'\n",
        dir.path().display()
    ))
    .workers(workers as u32);
    for flag in flags {
        builder = builder.flag(flag);
    }
    builder.start()
}

#[test]
fn one_worker_per_cpu_is_pinned_unless_told_not_to() {
    let cpus = allowed_in("/proc/self/status");
    // On one CPU pinned and not look the same: nothing would be checked.
    assert!(cpus.len() >= 2, "needs two CPUs or more: {cpus:?}");
    let dir = tempfile::tempdir().expect("temp dir");

    let pinned = started(&dir, cpus.len(), &[]);
    let each = worker_cpus(pinned.pid());
    assert_eq!(each.len(), cpus.len(), "one worker per CPU: {each:?}");
    let mut own: Vec<usize> = each
        .iter()
        .map(|set| {
            assert_eq!(set.len(), 1, "a worker pinned to one CPU: {each:?}");
            set[0]
        })
        .collect();
    own.sort_unstable();
    assert_eq!(own, cpus, "each CPU has its own worker: {each:?}");
    drop(pinned);

    let free = started(&dir, cpus.len(), &["--no-pin-workers"]);
    let each = worker_cpus(free.pid());
    assert_eq!(each.len(), cpus.len(), "one worker per CPU: {each:?}");
    assert!(
        each.iter().all(|set| *set == cpus),
        "--no-pin-workers: every worker may run on any allowed CPU {cpus:?}: {each:?}"
    );
}

#[test]
fn another_worker_count_is_left_to_the_scheduler() {
    let cpus = allowed_in("/proc/self/status");
    assert!(cpus.len() >= 2, "needs two CPUs or more: {cpus:?}");
    let dir = tempfile::tempdir().expect("temp dir");
    let more = started(&dir, cpus.len() + 1, &[]);
    let each = worker_cpus(more.pid());
    assert_eq!(each.len(), cpus.len() + 1, "{each:?}");
    assert!(
        each.iter().all(|set| *set == cpus),
        "workers not one per CPU are not pinned (allowed {cpus:?}): {each:?}"
    );
}

#[test]
fn cpu_lists_are_read_as_the_kernel_writes_them() {
    assert_eq!(cpu_list("0-1\n"), [0, 1]);
    assert_eq!(cpu_list("0,2-3,6"), [0, 2, 3, 6]);
    assert_eq!(cpu_list("5"), [5]);
}
