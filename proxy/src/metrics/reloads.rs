//! Configuration reloads (SIGHUP), counted for `ringway_config_reloads_total{result}` and
//! `ringway_config_last_reload_successful` (1 until a reload is refused, as Prometheus's own
//! `prometheus_config_last_reload_successful`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// The reloads so far. Written by the main thread, read by the endpoint.
#[derive(Debug)]
pub struct Reloads {
    ok: AtomicU64,
    refused: AtomicU64,
    last_successful: AtomicBool,
}

impl Default for Reloads {
    fn default() -> Self {
        Reloads {
            ok: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            // The configuration in use at start was accepted.
            last_successful: AtomicBool::new(true),
        }
    }
}

impl Reloads {
    /// Counts a reload that took effect.
    pub fn accepted(&self) {
        self.ok.fetch_add(1, Relaxed);
        self.last_successful.store(true, Relaxed);
    }

    /// Counts a reload that was refused (the old configuration stays).
    pub fn refused(&self) {
        self.refused.fetch_add(1, Relaxed);
        self.last_successful.store(false, Relaxed);
    }

    /// (accepted, refused, whether the last one was accepted).
    pub fn figures(&self) -> (u64, u64, bool) {
        (
            self.ok.load(Relaxed),
            self.refused.load(Relaxed),
            self.last_successful.load(Relaxed),
        )
    }
}
