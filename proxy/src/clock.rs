//! The current time as the `Date` header says it, formatted once per second per thread; and
//! a cheap coarse monotonic clock for deadlines that need no precision.

use std::cell::Cell;
use std::time::{Duration, SystemTime};

use crate::http::{HTTP_DATE_LEN, http_date};

thread_local! {
    static CACHED: Cell<(u64, [u8; HTTP_DATE_LEN])> = const { Cell::new((u64::MAX, [0; HTTP_DATE_LEN])) };
}

/// Now, as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn http_date_now() -> [u8; HTTP_DATE_LEN] {
    http_date_at(unix_now())
}

/// Now, in seconds since the epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `secs` as an IMF-fixdate, formatted only when the second changed since the last call on
/// this thread (a Date header is asked for many times a second).
pub(crate) fn http_date_at(secs: u64) -> [u8; HTTP_DATE_LEN] {
    CACHED.with(|cached| {
        let (at, date) = cached.get();
        if at == secs {
            return date;
        }
        let date = http_date(secs);
        cached.set((secs, date));
        date
    })
}

/// A moment on the kernel's coarse monotonic clock (`CLOCK_MONOTONIC_COARSE`), for deadlines
/// and ages that need no finer grain than its tick (1 to 10 ms, by the kernel's HZ):
/// keep-alive timeouts, the file cache's ages. Reading it costs a few nanoseconds, where an
/// [`std::time::Instant`] reads the TSC (clock reads were 3% of a worker's CPU serving 1 KiB
/// files, in `perf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Coarse(Duration);

impl Coarse {
    /// `ago` before now (an age for tests).
    #[cfg(test)]
    pub(crate) fn ago(ago: Duration) -> Coarse {
        Coarse(Coarse::now().0.saturating_sub(ago))
    }

    /// Now, to the clock's last tick.
    pub(crate) fn now() -> Coarse {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // The coarse clock exists since Linux 2.6.32; should a sandbox refuse it, the
        // precise one is read, so that time still moves.
        // SAFETY: `ts` is a valid timespec for the call to fill.
        if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) } != 0 {
            // SAFETY: as above.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        }
        let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
        let nanos = u32::try_from(ts.tv_nsec).unwrap_or(0);
        Coarse(Duration::new(secs, nanos))
    }

    /// Milliseconds since the clock's start (boot), never 0: a moment in 8 bytes.
    pub(crate) fn millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// Time since `self` (zero if `self` is later).
    pub(crate) fn elapsed(self) -> Duration {
        Coarse::now().0.saturating_sub(self.0)
    }
}

impl std::ops::Add<Duration> for Coarse {
    type Output = Coarse;

    fn add(self, d: Duration) -> Coarse {
        Coarse(self.0.saturating_add(d))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Coarse;

    #[test]
    fn the_coarse_clock_moves_forward_by_ticks() {
        let start = Coarse::now();
        std::thread::sleep(Duration::from_millis(20));
        let waited = start.elapsed();
        // Its tick is at most 10 ms (HZ=100, the coarsest kernel build).
        assert!(
            waited >= Duration::from_millis(10) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        assert!(start + Duration::from_secs(1) > Coarse::now());
        assert_eq!((start + Duration::from_secs(1)).elapsed(), Duration::ZERO);
    }
}
