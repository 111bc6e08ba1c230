//! nginx's leaky bucket (ngx_http_limit_req_module), as pure arithmetic: no clock, no table.
//!
//! A client's bucket holds its `excess` in thousandths of a request and leaks at the route's
//! rate. Each request adds one request's worth (1000) to what is left after the leak since
//! the last accepted request; if that is more than the burst, the request is refused and the
//! bucket is left as it was. A request within the burst is served at once while the excess
//! is at most the route's `delay` (no `delay`: always, nginx's `burst=N nodelay`); past it,
//! it waits until the excess over `delay` has leaked (nginx's default `burst=N`, and its
//! `delay=N`), so that requests reach the app at the rate.

use std::time::Duration;

/// One request, in the bucket's unit (thousandths of a request).
const ONE: u64 = 1000;

/// A route's rate and burst, in nginx's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateLimit {
    /// Thousandths of a request leaked per second (`5r/s` is 5000, `30r/m` is 500).
    rate: u64,
    /// The most excess allowed, in thousandths of a request (`burst = 10` is 10000).
    burst: u64,
    /// The most excess served at once, in thousandths of a request (`delay = 8` is 8000;
    /// `u64::MAX` for none: nginx's `nodelay`).
    delay: u64,
}

/// One client's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bucket {
    /// What the bucket held after the last accepted request, in thousandths of a request.
    excess: u64,
    /// When that request came, in milliseconds on the table's clock.
    last: u64,
}

impl RateLimit {
    /// `rate` in thousandths of a request per second (at least 1), `burst` in requests,
    /// served at once up to `delay` requests of excess (`None`: all of them).
    pub(crate) fn new(rate: u64, burst: u32, delay: Option<u32>) -> RateLimit {
        RateLimit {
            rate: rate.max(1),
            burst: u64::from(burst) * ONE,
            delay: delay.map_or(u64::MAX, |d| u64::from(d) * ONE),
        }
    }

    /// The bucket of a client seen for the first time, whose request at `now` is accepted
    /// (as nginx's new node: excess 0).
    pub(crate) fn first(&self, now: u64) -> Bucket {
        Bucket {
            excess: 0,
            last: now,
        }
    }

    /// One more request at `now` (milliseconds): accepted (the bucket updated) with how
    /// long it waits first, or refused with the seconds until one request's worth has
    /// leaked (the bucket unchanged).
    pub(crate) fn take(&self, bucket: &mut Bucket, now: u64) -> Result<Duration, u32> {
        // nginx: excess = max(0, excess - leaked + 1000). After a long pause the request's
        // own worth leaks away too.
        let excess = (bucket.excess + ONE).saturating_sub(self.leaked(bucket, now));
        if excess > self.burst {
            return Err(self.retry_after(excess));
        }
        *bucket = Bucket { excess, last: now };
        Ok(self.wait(excess))
    }

    /// How long a request that brought the bucket to `excess` waits: nothing up to `delay`,
    /// then the time the excess over it takes to leak (nginx: `(excess - delay) * 1000 /
    /// rate` ms, in whole milliseconds).
    fn wait(&self, excess: u64) -> Duration {
        match excess.checked_sub(self.delay) {
            Some(over) if over > 0 => Duration::from_millis(over.saturating_mul(1000) / self.rate),
            _ => Duration::ZERO,
        }
    }

    /// Thousandths of a request leaked between the bucket's last request and `now` (nothing
    /// if the clock went back).
    fn leaked(&self, bucket: &Bucket, now: u64) -> u64 {
        let elapsed = now.saturating_sub(bucket.last);
        self.rate.saturating_mul(elapsed) / 1000
    }

    /// Whole seconds (rounded up, at least 1) until a bucket at `excess` (the refused
    /// request included) has leaked enough for one more request within the burst.
    fn retry_after(&self, excess: u64) -> u32 {
        let missing = excess - self.burst;
        let millis = (missing * 1000).div_ceil(self.rate);
        u32::try_from(millis.div_ceil(1000))
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// Whether a bucket has fully leaked by `now`: it then says nothing a fresh one would
    /// not, and may be forgotten.
    pub(crate) fn is_empty(&self, bucket: &Bucket, now: u64) -> bool {
        bucket.excess <= self.leaked(bucket, now)
    }
}

impl Bucket {
    /// When its last accepted request came.
    pub(crate) fn last(&self) -> u64 {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Served at once.
    const NOW: Result<Duration, u32> = Ok(Duration::ZERO);

    /// Requests at `times` (ms) against one client's bucket: the wait of those accepted,
    /// and the Retry-After of those refused.
    fn run(limit: RateLimit, times: &[u64]) -> Vec<Result<Duration, u32>> {
        let mut bucket = None;
        times
            .iter()
            .map(|&now| match &mut bucket {
                None => {
                    bucket = Some(limit.first(now));
                    NOW
                }
                Some(b) => limit.take(b, now),
            })
            .collect()
    }

    fn waits(millis: &[u64]) -> Vec<Result<Duration, u32>> {
        millis
            .iter()
            .map(|&m| Ok(Duration::from_millis(m)))
            .collect()
    }

    #[test]
    fn without_nodelay_a_burst_is_spaced_at_the_rate() {
        // nginx's `rate=10r/s burst=5`: six at once wait 0, 100, ... 500 ms, the seventh is
        // refused.
        let limit = RateLimit::new(10_000, 5, Some(0));
        let mut expected = waits(&[0, 100, 200, 300, 400, 500]);
        expected.push(Err(1));
        assert_eq!(run(limit, &[0; 7]), expected);
        // Arriving at the rate, nothing waits.
        assert_eq!(
            run(limit, &[0, 100, 200, 300]),
            waits(&[0, 0, 0, 0]),
            "each arrival finds the last one leaked"
        );
        // Half-way: 150 ms later the bucket holds 0.5 of the first, plus this one.
        assert_eq!(run(limit, &[0, 0, 150]), waits(&[0, 100, 50]));
    }

    #[test]
    fn a_delay_serves_that_many_at_once_then_spaces_the_rest() {
        // nginx's `rate=10r/s burst=6 delay=3`: the first and three more at once, then
        // 100, 200, 300 ms.
        let limit = RateLimit::new(10_000, 6, Some(3));
        let mut expected = waits(&[0, 0, 0, 0, 100, 200, 300]);
        expected.push(Err(1));
        assert_eq!(run(limit, &[0; 8]), expected);
        // A delay at the burst never delays: as `nodelay`.
        let limit = RateLimit::new(10_000, 6, Some(6));
        assert_eq!(run(limit, &[0; 7]), waits(&[0; 7]));
    }

    #[test]
    fn a_burst_is_served_at_once_then_refused() {
        // 5r/s, burst 10 (nodelay): the first request and ten more at the same instant,
        // then no more.
        let limit = RateLimit::new(5000, 10, None);
        let results = run(limit, &[0; 13]);
        assert!(results[..11].iter().all(|r| *r == NOW), "{results:?}");
        // The bucket is full (10000); one request leaks in 200 ms: retry after 1 s.
        assert_eq!(results[11], Err(1));
        assert_eq!(results[12], Err(1));
    }

    #[test]
    fn without_a_burst_one_request_per_interval() {
        // 2r/s, burst 0: one request every 500 ms.
        let limit = RateLimit::new(2000, 0, None);
        let results = run(limit, &[0, 100, 499, 500, 999, 1000]);
        assert_eq!(
            results,
            [NOW, Err(1), Err(1), NOW, Err(1), NOW],
            "as nginx: excess = max(0, excess - leaked + 1000) must not pass the burst"
        );
    }

    #[test]
    fn the_rate_refills_the_burst() {
        let limit = RateLimit::new(5000, 10, None);
        let mut bucket = limit.first(0);
        for _ in 0..10 {
            limit.take(&mut bucket, 0).unwrap();
        }
        assert!(limit.take(&mut bucket, 0).is_err());
        // A refusal leaves the bucket as it was: 199 ms later still nothing.
        assert!(limit.take(&mut bucket, 199).is_err());
        // 200 ms leak one request at 5r/s.
        assert_eq!(limit.take(&mut bucket, 200), NOW);
        assert!(limit.take(&mut bucket, 200).is_err());
        // 2 s later the bucket has leaked its 10 requests: 10 more at once (the first one's
        // worth is still in it, as with nginx).
        for _ in 0..10 {
            assert_eq!(limit.take(&mut bucket, 2200), NOW);
        }
        assert!(limit.take(&mut bucket, 2200).is_err());
        // Long enough for that one to leak too: the whole burst and one more, like a client
        // seen for the first time.
        for _ in 0..11 {
            assert_eq!(limit.take(&mut bucket, 5000), NOW);
        }
        assert!(limit.take(&mut bucket, 5000).is_err());
    }

    #[test]
    fn retry_after_is_the_time_for_one_request_to_leak_rounded_up() {
        // 30r/m (500 thousandths a second), burst 0: one request per 2 s.
        let limit = RateLimit::new(500, 0, None);
        assert_eq!(run(limit, &[0, 0]), [NOW, Err(2)]);
        // 1r/m in nginx's units (16): 1000 / 16 = 62.5 s, so 63.
        let limit = RateLimit::new(16, 0, None);
        assert_eq!(run(limit, &[0, 0]), [NOW, Err(63)]);
        // Half-way through the wait, the rest of it.
        assert_eq!(run(limit, &[0, 31_250]), [NOW, Err(32)]);
        // A fast rate still says at least one second.
        let limit = RateLimit::new(1_000_000, 0, None);
        assert_eq!(run(limit, &[0, 0]), [NOW, Err(1)]);
    }

    #[test]
    fn a_bucket_is_empty_once_it_has_leaked() {
        let limit = RateLimit::new(1000, 5, None);
        let mut bucket = limit.first(0);
        assert!(
            limit.is_empty(&bucket, 0),
            "a first request leaves it empty"
        );
        limit.take(&mut bucket, 0).unwrap();
        limit.take(&mut bucket, 0).unwrap();
        assert!(!limit.is_empty(&bucket, 1999));
        assert!(limit.is_empty(&bucket, 2000));
    }

    #[test]
    fn time_going_backwards_leaks_nothing() {
        let limit = RateLimit::new(1000, 0, None);
        let mut bucket = limit.first(5000);
        assert_eq!(limit.take(&mut bucket, 4000), Err(1));
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let limit = RateLimit::new(1_000_000_000, 1_000_000, None);
        let mut bucket = limit.first(0);
        assert_eq!(limit.take(&mut bucket, u64::MAX), NOW);
        let limit = RateLimit::new(16, 0, None);
        let mut bucket = limit.first(0);
        assert_eq!(limit.take(&mut bucket, u64::MAX), NOW);
    }
}
