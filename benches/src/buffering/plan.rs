//! How big and how long each scenario is: the full plan of the issue, and anything smaller
//! a smoke test wants.

use std::time::Duration;

use serde::{Serialize, Serializer};

/// Sizes and durations of the three scenarios.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// "full" (the issue's) or "quick" (a setup check), for the report.
    pub label: String,
    // Slow readers: does a normal client stay served?
    /// How long the normal client's sequential GETs run, alone and then beside the readers.
    #[serde(serialize_with = "seconds")]
    pub latency_window: Duration,
    pub slow_readers: usize,
    pub slow_answer_bytes: u64,
    /// Wait between starting the slow readers and measuring the normal client again, so that
    /// their answers are under way (a buffering proxy has pulled them from uWSGI by then).
    #[serde(serialize_with = "seconds")]
    pub readers_head_start: Duration,

    // How every slow reader reads (scenarios 1 and 3).
    /// Bytes read per tick.
    pub read_chunk: usize,
    #[serde(serialize_with = "seconds")]
    pub read_every: Duration,
    /// SO_RCVBUF of a slow reader's socket, set before it connects: a small window, as across
    /// a slow link, instead of the megabytes loopback would otherwise queue in the kernel.
    pub reader_rcvbuf: usize,

    // Trickling uploads.
    pub uploads: usize,
    /// The Content-Length each upload announces.
    pub upload_bytes: usize,
    /// Sent at once after the head; the rest is trickled, then sent whole.
    pub upload_quick_bytes: usize,
    /// One byte every `trickle_every` for `trickle_for`.
    #[serde(serialize_with = "seconds")]
    pub trickle_every: Duration,
    #[serde(serialize_with = "seconds")]
    pub trickle_for: Duration,
    /// How long after the last upload closed the proxy's RSS is read again.
    #[serde(serialize_with = "seconds")]
    pub after_close: Duration,

    // Many slow readers of big answers.
    pub big_readers: usize,
    pub big_answer_bytes: u64,
    #[serde(serialize_with = "seconds")]
    pub big_read_for: Duration,

    /// After slow readers close: time the proxy gets to drop their temp files before they
    /// are counted.
    #[serde(serialize_with = "seconds")]
    pub cleanup_grace: Duration,
}

impl Plan {
    /// The plan: about a minute per stack.
    pub fn full() -> Self {
        Plan {
            label: "full".into(),
            latency_window: Duration::from_secs(5),
            slow_readers: 4,
            slow_answer_bytes: 20_000_000,
            readers_head_start: Duration::from_secs(1),
            read_chunk: 16 * 1024,
            read_every: Duration::from_secs(1),
            reader_rcvbuf: 16 * 1024,
            uploads: 500,
            upload_bytes: 1_000_000,
            upload_quick_bytes: 990_000,
            trickle_every: Duration::from_secs(1),
            trickle_for: Duration::from_secs(10),
            after_close: Duration::from_secs(10),
            big_readers: 100,
            big_answer_bytes: 100_000_000,
            big_read_for: Duration::from_secs(12),
            cleanup_grace: Duration::from_secs(2),
        }
    }

    /// A few seconds per scenario and stack: small answers, short windows, a handful of
    /// clients. To check the setup (and for the smoke test), not to judge anything.
    pub fn quick() -> Self {
        let ms = Duration::from_millis;
        Plan {
            label: "quick".into(),
            latency_window: ms(200),
            slow_readers: 2,
            slow_answer_bytes: 2_000_000,
            readers_head_start: ms(100),
            read_chunk: 16 * 1024,
            read_every: ms(100),
            reader_rcvbuf: 16 * 1024,
            uploads: 5,
            upload_bytes: 200_000,
            upload_quick_bytes: 150_000,
            trickle_every: ms(100),
            trickle_for: ms(200),
            after_close: ms(100),
            big_readers: 3,
            big_answer_bytes: 2_000_000,
            big_read_for: ms(300),
            cleanup_grace: ms(100),
        }
    }

    /// File descriptors the harness needs at once (the uploads are the most clients).
    pub fn max_clients(&self) -> usize {
        self.uploads
            .max(self.big_readers)
            .max(self.slow_readers + 1)
    }
}

fn seconds<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}
