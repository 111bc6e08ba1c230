//! One thread of another process held still with ptrace (`PTRACE_SEIZE` and
//! `PTRACE_INTERRUPT`: the thread stops, its process runs on), as a deadlock or a system call
//! that never returns would hold it. Root only. ptrace's tracer is a thread: the value must
//! be dropped on the thread that made it.

/// A held thread, let go on drop.
pub struct HeldThread {
    tid: libc::pid_t,
}

impl HeldThread {
    /// Holds the thread of `pid` named `name` (its `comm`). Panics, saying why, if there is
    /// none or it cannot be held.
    pub fn hold(pid: u32, name: &str) -> HeldThread {
        let tid = thread_named(pid, name)
            .unwrap_or_else(|| panic!("no thread named {name} in process {pid}"));
        // SAFETY: ptrace requests on a thread id, with no pointers passed.
        let seized = unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0) };
        assert_eq!(
            seized,
            0,
            "PTRACE_SEIZE {tid}: {}",
            std::io::Error::last_os_error()
        );
        let held = HeldThread { tid };
        // SAFETY: as above.
        let interrupted = unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) };
        assert_eq!(
            interrupted,
            0,
            "PTRACE_INTERRUPT: {}",
            std::io::Error::last_os_error()
        );
        let mut status = 0;
        // SAFETY: waits for the traced thread's stop; `status` is a valid out pointer.
        let waited = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
        assert_eq!(waited, tid, "waitpid: {}", std::io::Error::last_os_error());
        held
    }
}

impl Drop for HeldThread {
    fn drop(&mut self) {
        // SAFETY: detaching a thread this thread traces; it runs on.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, self.tid, 0, 0) };
    }
}

/// The id of `pid`'s thread whose `comm` is `name`.
fn thread_named(pid: u32, name: &str) -> Option<libc::pid_t> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .filter_map(Result::ok)
        .find(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == name)
        })
        .and_then(|task| task.file_name().to_str()?.parse().ok())
}
