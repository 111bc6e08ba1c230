//! `limit_rate`: an answer held to a number of bytes per second, as nginx's write filter
//! holds it. Past `limit_rate_after` bytes, the answer may have sent one step at once and
//! `rate` more each second since it started; a write waits for the bytes it carries to be
//! allowed. A step is an eighth of a second's worth (at most 64 KiB), so a slow rate goes
//! out smoothly, a step at a time. nginx, after each send, waits as long as the bytes it
//! sent take at the rate: the same pace from the first byte (a 768 KiB file at `256k`
//! takes 2.88 s from either).

use std::num::NonZeroU64;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::either::Either;

use super::ClientStream;
use crate::buffer::Buf;
use crate::io::{Counted, IoError, write_all};

/// Steps a second's worth goes out in.
const STEPS_PER_SECOND: u64 = 8;

/// Most bytes one step carries: a fast rate needs no finer steps than a relayed piece.
const MAX_STEP: u64 = 64 * 1024;

/// One answer's pace.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    /// Bytes per second.
    rate: NonZeroU64,
    /// Bytes sent before the rate applies.
    after: u64,
    /// The stream's count of bytes written when the answer started.
    base: u64,
    /// When the answer started.
    start: Instant,
}

impl Pace {
    /// The pace of an answer about to start on `stream` (its head not yet written: the head
    /// counts, as in nginx); `None` when `rate` is 0, no limit. Boxed: a request's future
    /// holds it across its writes, and most answers have none.
    pub(crate) fn starting(
        stream: &Counted<ClientStream>,
        rate: u64,
        after: u64,
    ) -> Option<Box<Pace>> {
        Some(Box::new(Pace {
            rate: NonZeroU64::new(rate)?,
            after,
            base: stream.bytes_written(),
            start: Instant::now(),
        }))
    }

    /// Waits until some of `want` more bytes may go, and says how many may (at most
    /// `want`; at least a step's worth, or all of `want` when it is less).
    pub(crate) async fn allow(&self, stream: &Counted<ClientStream>, want: u64) -> u64 {
        let sent = stream.bytes_written().saturating_sub(self.base);
        let least = want.min(self.step());
        let target = sent.saturating_add(least);
        if self.allowed(Instant::now()) < target {
            tokio::time::sleep_until(self.when(target)).await;
        }
        self.allowed(Instant::now())
            .saturating_sub(sent)
            .clamp(least, want)
    }

    /// Bytes the answer may have sent by `now`.
    fn allowed(&self, now: Instant) -> u64 {
        let ms = now.saturating_duration_since(self.start).as_millis();
        let paced = u128::from(self.rate.get()) * ms / 1000;
        self.after
            .saturating_add(self.step())
            .saturating_add(u64::try_from(paced).unwrap_or(u64::MAX))
    }

    /// When `total` bytes may have been sent.
    fn when(&self, total: u64) -> Instant {
        let first = self.after.saturating_add(self.step());
        let paced = u128::from(total.saturating_sub(first));
        let ms = (paced * 1000).div_ceil(u128::from(self.rate.get()));
        let wait = Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX));
        // Only a step's worth is ever waited for: at most a second at the slowest rate.
        self.start
            .checked_add(wait)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1))
    }

    fn step(&self) -> u64 {
        (self.rate.get() / STEPS_PER_SECOND).clamp(1, MAX_STEP)
    }
}

/// [`write_all`] held to `pace` (none: at once): `buf[from..]` goes in the steps it
/// allows, a step short of the rest copied out to go on its own. Not an async fn: without
/// a pace it is `write_all`'s future itself, and a paced write's state is boxed, so the
/// futures of requests, which hold one, do not grow for a setting most answers lack.
pub(crate) fn write_paced<'a>(
    stream: &'a Counted<ClientStream>,
    buf: Buf,
    from: usize,
    limit: Duration,
    pace: Option<&'a Pace>,
) -> impl Future<Output = Result<Buf, IoError>> + 'a {
    match pace {
        None => Either::Left(write_all(stream, buf, from, limit)),
        Some(pace) => Either::Right(Box::pin(write_in_steps(stream, buf, from, limit, pace))),
    }
}

async fn write_in_steps(
    stream: &Counted<ClientStream>,
    buf: Buf,
    mut from: usize,
    limit: Duration,
    pace: &Pace,
) -> Result<Buf, IoError> {
    while from < buf.len() {
        let rest = buf.len() - from;
        let may = usize::try_from(pace.allow(stream, rest as u64).await).unwrap_or(rest);
        if may >= rest {
            return write_all(stream, buf, from, limit).await;
        }
        write_all(stream, Buf::copy_of(&buf[from..from + may]), 0, limit).await?;
        from += may;
    }
    Ok(buf)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn pace(rate: u64, after: u64) -> Pace {
        Pace {
            rate: NonZeroU64::new(rate).unwrap(),
            after,
            base: 0,
            start: Instant::now(),
        }
    }

    #[test]
    fn a_step_goes_at_once_then_the_rate() {
        let p = pace(8000, 0);
        assert_eq!(p.allowed(p.start), 1000);
        assert_eq!(p.allowed(p.start + Duration::from_millis(500)), 5000);
        assert_eq!(p.allowed(p.start + Duration::from_secs(3)), 25_000);
        // Past what goes at once, the bytes wait for their time, and not a millisecond less.
        assert_eq!(p.when(1000), p.start);
        assert_eq!(p.when(5000), p.start + Duration::from_millis(500));
        assert_eq!(p.when(5001), p.start + Duration::from_millis(501));
        assert!(p.allowed(p.when(43_210)) >= 43_210);
    }

    #[test]
    fn limit_rate_after_goes_first_at_once() {
        let p = pace(800, 10_000);
        assert_eq!(p.allowed(p.start), 10_100);
        assert_eq!(p.when(10_000), p.start);
        assert_eq!(p.when(11_700), p.start + Duration::from_secs(2));
    }

    #[test]
    fn steps_are_an_eighth_of_a_second_s_worth_within_bounds() {
        assert_eq!(pace(8000, 0).step(), 1000);
        assert_eq!(pace(3, 0).step(), 1);
        assert_eq!(pace(1 << 30, 0).step(), MAX_STEP);
    }

    #[test]
    fn huge_values_saturate_instead_of_overflowing() {
        let p = pace(u64::MAX, u64::MAX);
        assert_eq!(p.allowed(p.start + Duration::from_secs(1 << 40)), u64::MAX);
        let p = pace(1, 0);
        let far = p.when(u64::MAX);
        assert!(far > p.start);
    }
}
