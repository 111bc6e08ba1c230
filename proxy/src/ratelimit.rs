//! Rate-limited log lines for events a client or an upstream can cause once per request (a
//! bad request, an upstream that is down): the first few of each kind in a window are written
//! in full, the rest only counted, and one summary line per window says how many were left
//! out. A flood of bad requests or an upstream outage thus costs a bounded number of lines.
//!
//! The gates are atomics shared by all workers; the summaries are written by whoever calls
//! [`Gate::take_suppressed`] once per [`WINDOW`] (the server's main loop).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
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
}
