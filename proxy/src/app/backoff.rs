//! How long to wait before starting a dead app again (pure): the wait doubles after each
//! quick death, up to a cap, and starts over once the app ran long enough to count as
//! stable. A crash loop then costs one start and one log line per `MAX` at most.

use std::time::Duration;

/// The wait after the first death, or after one that ended a stable run.
pub const FIRST: Duration = Duration::from_millis(500);
/// The longest wait.
pub const MAX: Duration = Duration::from_secs(30);
/// A run at least this long was a stable one: the next death starts from [`FIRST`] again.
pub const STABLE: Duration = Duration::from_secs(30);

/// The wait before the next start.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: FIRST }
    }
}

impl Backoff {
    /// The wait before starting again an app that died after running for `ran`.
    pub fn after_run(&mut self, ran: Duration) -> Duration {
        if ran >= STABLE {
            self.next = FIRST;
        }
        let wait = self.next;
        self.next = (wait * 2).min(MAX);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_deaths_double_the_wait_up_to_the_cap() {
        let mut backoff = Backoff::default();
        let waits: Vec<u64> = (0..10)
            .map(|_| backoff.after_run(Duration::from_millis(10)).as_millis() as u64)
            .collect();
        assert_eq!(
            waits,
            [
                500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000
            ]
        );
    }

    #[test]
    fn a_stable_run_starts_the_waits_over() {
        let mut backoff = Backoff::default();
        for _ in 0..5 {
            backoff.after_run(Duration::ZERO);
        }
        assert_eq!(backoff.after_run(STABLE), FIRST);
        assert_eq!(backoff.after_run(Duration::ZERO), FIRST * 2);
    }
}
