//! Metrics: what the workers count, and the endpoint that shows it.
//!
//! Workers write only their own [`WorkerStats`] (relaxed atomics, no sharing on the hot
//! path); the endpoint thread reads all of them, sums them, adds process memory and the eBPF
//! figures, and renders Prometheus text, JSON or the live page.

mod ebpf;
mod endpoint;
mod histogram;
pub mod names;
mod procs;
mod prom;
mod snapshot;
mod stats;

pub use ebpf::{ProbeHandle, accepted, load as load_probes, upstream_pids};
pub use endpoint::{Sources, spawn};
pub use histogram::{Histogram, HistogramSnapshot, LATENCY_BOUNDS};
pub use procs::{ProcessFigures, cpu_seconds};
pub use prom::{Exposition, Kind};
pub use snapshot::{ConnRow, Snapshot};
pub use stats::{LiveConn, UpstreamError, WorkerStats};
