//! A process's resource limits, as `/proc/PID/limits` shows them.

/// `(soft, hard)` of its `Max open files`.
pub fn open_files(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/limits: {e}"));
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_else(|| panic!("no open files line:\n{limits}"));
    let mut figures = line["Max open files".len()..]
        .split_whitespace()
        .map(|f| f.parse().unwrap_or_else(|_| panic!("{line}")));
    let (Some(soft), Some(hard)) = (figures.next(), figures.next()) else {
        panic!("{line}")
    };
    (soft, hard)
}
