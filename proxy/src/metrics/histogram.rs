//! A fixed-bucket histogram that one thread writes and another reads, without locks.
//!
//! Each worker owns its histograms and only it writes them (relaxed atomic adds on memory no
//! other core writes, so they cost about as much as plain adds); the metrics endpoint sums
//! the workers' histograms when it is read.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) for request-scale latencies: 100 µs to 30 s.
pub const LATENCY_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Counts of observations per bucket, plus their sum, for one writer thread.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One count per bound, plus the overflow bucket (+Inf).
    counts: Box<[AtomicU64]>,
    /// The observations' sum in millionths of the base unit (microseconds of a duration):
    /// a 64-bit sum of nanoseconds wrapped after 584 years of summed time, which long
    /// requests at a thousand a second sum in a week, and a count (requests per connection)
    /// recorded as seconds in about 10^10 of them (found by review).
    sum_micros: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending upper bounds, in seconds).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        // Rounded to the nearest microsecond: truncating would bias short observations.
        let micros = (d.as_nanos() + 500) / 1000;
        self.record(d.as_secs_f64(), u64::try_from(micros).unwrap_or(u64::MAX));
    }

    /// Records one count (a histogram of counts, such as requests per connection).
    pub fn observe_count(&self, n: u64) {
        self.record(n as f64, n.saturating_mul(1_000_000));
    }

    fn record(&self, value: f64, micros: u64) {
        let i = self.bounds.partition_point(|&b| b < value);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(micros, Relaxed);
    }

    /// Adds this histogram's counts into `into` (which must have the same bounds).
    pub fn add_to(&self, into: &mut HistogramSnapshot) {
        for (total, count) in into.counts.iter_mut().zip(self.counts.iter()) {
            *total += count.load(Relaxed);
        }
        into.sum += self.sum_micros.load(Relaxed) as f64 / 1e6;
    }

    /// An empty snapshot with this histogram's bounds.
    pub fn empty_snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot::empty(self.bounds)
    }
}

/// A histogram's state summed over workers, in base units.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HistogramSnapshot {
    /// Upper bounds of the finite buckets.
    pub bounds: Vec<f64>,
    /// Non-cumulative counts, one per bound plus the +Inf bucket.
    pub counts: Vec<u64>,
    /// Sum of all observations.
    pub sum: f64,
}

impl HistogramSnapshot {
    /// An empty snapshot over `bounds`.
    pub fn empty(bounds: &[f64]) -> Self {
        HistogramSnapshot {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    /// Records one duration (for a histogram kept under a lock rather than in atomics).
    pub fn record(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self.bounds.partition_point(|&b| b < secs);
        if let Some(count) = self.counts.get_mut(i) {
            *count += 1;
        }
        self.sum += secs;
    }

    /// Adds `other`'s counts (same bounds) into this one.
    pub fn add(&mut self, other: &HistogramSnapshot) {
        for (total, count) in self.counts.iter_mut().zip(&other.counts) {
            *total += count;
        }
        self.sum += other.sum;
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q` quantile (0..=1), interpolated linearly inside its bucket; `None` when empty.
    /// The +Inf bucket reports the last finite bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0u64;
        for (i, &count) in self.counts.iter().enumerate() {
            if count > 0 && (seen + count) as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { self.bounds[i - 1] };
                let Some(&upper) = self.bounds.get(i) else {
                    return self.bounds.last().copied();
                };
                let within = (rank - seen as f64) / count as f64;
                return Some(lower + (upper - lower) * within.clamp(0.0, 1.0));
            }
            seen += count;
        }
        self.bounds.last().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_by_upper_bound() {
        let h = Histogram::new(&[0.001, 0.01, 0.1]);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(1)); // on the bound: le="0.001"
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_secs(1));
        let mut s = h.empty_snapshot();
        h.add_to(&mut s);
        assert_eq!(s.counts, vec![2, 1, 0, 1]);
        assert_eq!(s.count(), 4);
        assert!((s.sum - 1.0065).abs() < 1e-9);
    }

    /// Found by review: the sum was kept in nanoseconds, and a count recorded as seconds
    /// wrapped it after about 1.8 × 10^10 requests on one worker.
    #[test]
    fn sums_neither_wrap_nor_drift() {
        let counts = Histogram::new(&[1.0, 10.0]);
        for _ in 0..4 {
            counts.observe_count(5_000_000_000);
        }
        counts.observe_count(3);
        let mut s = counts.empty_snapshot();
        counts.add_to(&mut s);
        assert_eq!(s.counts, vec![0, 1, 4]);
        assert_eq!(s.sum, 20_000_000_003.0);
        // Short durations are rounded, not truncated: no bias downwards.
        let short = Histogram::new(LATENCY_BOUNDS);
        for _ in 0..1000 {
            short.observe(Duration::from_nanos(1_700));
        }
        let mut s = short.empty_snapshot();
        short.add_to(&mut s);
        assert!((s.sum - 0.002).abs() < 1e-9, "{}", s.sum);
    }

    #[test]
    fn sums_across_writers() {
        let a = Histogram::new(LATENCY_BOUNDS);
        let b = Histogram::new(LATENCY_BOUNDS);
        a.observe(Duration::from_millis(3));
        b.observe(Duration::from_millis(3));
        let mut s = a.empty_snapshot();
        a.add_to(&mut s);
        b.add_to(&mut s);
        assert_eq!(s.count(), 2);
    }

    #[test]
    fn quantiles() {
        let h = Histogram::new(&[0.01, 0.02, 0.05]);
        for _ in 0..90 {
            h.observe(Duration::from_millis(5));
        }
        for _ in 0..10 {
            h.observe(Duration::from_millis(40));
        }
        let mut s = h.empty_snapshot();
        h.add_to(&mut s);
        let p50 = s.quantile(0.5).unwrap();
        assert!(p50 > 0.0 && p50 <= 0.01, "{p50}");
        let p99 = s.quantile(0.99).unwrap();
        assert!(p99 > 0.02 && p99 <= 0.05, "{p99}");
        assert_eq!(HistogramSnapshot::empty(&[1.0]).quantile(0.5), None);
    }
}
