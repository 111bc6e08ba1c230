//! Metrics: what the workers count, and the endpoint that shows it.
//!
//! Workers write only their own [`WorkerStats`] (relaxed atomics, no sharing on the hot
//! path); the endpoint thread reads all of them, sums them, adds process memory and the eBPF
//! figures, and renders Prometheus text, JSON or the live page.

mod accept_queue;
mod ebpf;
mod endpoint;
mod histogram;
mod names;
mod procs;
mod prom;
mod ready;
mod reloads;
mod route_names;
mod snapshot;
mod stats;

pub(crate) use ebpf::accepted;
pub use ebpf::{ProbeHandle, load as load_probes};
pub use endpoint::{ConfigSource, ConfigView, LimitSource, Sources, bind, spawn};
pub use histogram::HistogramSnapshot;
pub(crate) use histogram::{Histogram, LATENCY_BOUNDS};
pub(crate) use ready::connect as connect_upstream;
pub use ready::{HealthSource, Readiness};
pub use reloads::Reloads;
pub use route_names::RouteNames;
pub use snapshot::{
    GroupConnFigures, GroupLimitFigures, LimitFigures, RouteConnFigures, RouteLimitFigures,
};
pub use stats::{ConnPhases, Phase, TlsOutcome, WorkerStats};
pub(crate) use stats::{ProxyRejection, UpstreamError};
