//! Rate-limited log lines for events a client or an upstream can cause once per request (a
//! bad request, an upstream that is down): the first few of each kind in a window are written
//! in full, the rest only counted, and one summary line per window says how many were left
//! out. A flood of bad requests or an upstream outage thus costs a bounded number of lines.
//!
//! The gates are atomics shared by all workers; the summaries are written by whoever calls
//! [`Gate::take_suppressed`] once per [`WINDOW`] (the server's main loop): `fail.rs` for
//! the failures of requests, [`log_suppressed`] for the [`NamedGate`]s declared where their
//! lines are written.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

/// Length of a rate-limiting window.
pub(crate) const WINDOW: Duration = Duration::from_secs(5);
/// Lines of one kind written in full per window.
pub(crate) const BURST: u32 = 5;

/// One kind of log line's allowance.
#[derive(Debug)]
pub(crate) struct Gate {
    /// The window the `passed` count belongs to (seconds since the epoch / WINDOW).
    window: AtomicU64,
    passed: AtomicU32,
    suppressed: AtomicU64,
}

impl Gate {
    /// A gate that has let nothing through yet.
    pub(crate) const fn new() -> Gate {
        Gate {
            window: AtomicU64::new(0),
            passed: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// True if a line of this kind may be written now; otherwise it is counted as suppressed.
    pub(crate) fn allow(&self) -> bool {
        self.allow_at(current_window())
    }

    fn allow_at(&self, window: u64) -> bool {
        let seen = self.window.load(Relaxed);
        if seen != window
            && self
                .window
                .compare_exchange(seen, window, Relaxed, Relaxed)
                .is_ok()
        {
            // Two workers may both reset: at worst a few extra lines, never a lost count.
            self.passed.store(0, Relaxed);
        }
        if self.passed.fetch_add(1, Relaxed) < BURST {
            return true;
        }
        self.suppressed.fetch_add(1, Relaxed);
        false
    }

    /// Lines suppressed since the last call (for the summary line).
    pub(crate) fn take_suppressed(&self) -> u64 {
        self.suppressed.swap(0, Relaxed)
    }
}

/// A gate for one kind of line, declared as a `static` beside the line it lets through;
/// its summary is written by [`log_suppressed`], which learns of it the first time it
/// suppresses a line.
#[derive(Debug)]
pub(crate) struct NamedGate {
    gate: Gate,
    /// What its summary line calls the lines (a few words of them).
    name: &'static str,
    /// Whether its lines are warnings (else informational), as is their summary.
    warn: bool,
    listed: AtomicBool,
}

/// The named gates that have suppressed a line: a handful, listed once each.
static LISTED: Mutex<Vec<&'static NamedGate>> = Mutex::new(Vec::new());

impl NamedGate {
    /// A gate for informational lines.
    pub(crate) const fn info(name: &'static str) -> NamedGate {
        NamedGate::new(name, false)
    }

    /// A gate for warnings.
    pub(crate) const fn warn(name: &'static str) -> NamedGate {
        NamedGate::new(name, true)
    }

    const fn new(name: &'static str, warn: bool) -> NamedGate {
        NamedGate {
            gate: Gate::new(),
            name,
            warn,
            listed: AtomicBool::new(false),
        }
    }

    /// True if a line of this kind may be written now; otherwise it is counted for the
    /// summary.
    pub(crate) fn allow(&'static self) -> bool {
        if self.gate.allow() {
            return true;
        }
        if !self.listed.swap(true, Relaxed)
            && let Ok(mut listed) = LISTED.lock()
        {
            listed.push(self);
        }
        false
    }
}

/// Writes one summary line per named gate that suppressed lines since the last call; call
/// once per [`WINDOW`].
pub(crate) fn log_suppressed() {
    // Copied out: a worker listing a gate never waits on a summary being written.
    let listed = LISTED.lock().map(|l| l.clone()).unwrap_or_default();
    let secs = WINDOW.as_secs();
    for gate in listed {
        let n = gate.gate.take_suppressed();
        let name = gate.name;
        match (n, gate.warn) {
            (0, _) => {}
            (_, true) => {
                tracing::warn!(
                    suppressed = n,
                    "suppressed {n} log lines like \"{name}\" in {secs}s"
                )
            }
            (_, false) => {
                tracing::info!(
                    suppressed = n,
                    "suppressed {n} log lines like \"{name}\" in {secs}s"
                )
            }
        }
    }
}

fn current_window() -> u64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_secs() / WINDOW.as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_per_window_then_counted() {
        let gate = Gate::new();
        let passed = (0..100).filter(|_| gate.allow_at(7)).count();
        assert_eq!(passed, BURST as usize);
        assert_eq!(gate.take_suppressed(), 100 - u64::from(BURST));
        assert_eq!(gate.take_suppressed(), 0);
        // A new window lets a new burst through.
        let passed = (0..10).filter(|_| gate.allow_at(8)).count();
        assert_eq!(passed, BURST as usize);
        assert_eq!(gate.take_suppressed(), 10 - u64::from(BURST));
    }

    /// A named gate is listed for its summary once, when it first suppresses a line, and
    /// the summary takes its count (found by review: seven gates whose floods were never
    /// summed up).
    #[test]
    fn a_named_gate_is_listed_once_it_suppresses() {
        static GATE: NamedGate = NamedGate::info("a test's line");
        let listed = || {
            LISTED
                .lock()
                .unwrap()
                .iter()
                .filter(|g| std::ptr::eq(**g, &GATE))
                .count()
        };
        let passed = (0..3 * BURST).filter(|_| GATE.allow()).count();
        assert!(passed >= BURST as usize, "a burst passed");
        assert_eq!(listed(), 1);
        assert!(GATE.gate.suppressed.load(Relaxed) > 0);
        log_suppressed();
        assert_eq!(GATE.gate.suppressed.load(Relaxed), 0, "summed up");
        assert_eq!(listed(), 1, "still listed, once");
    }
}
