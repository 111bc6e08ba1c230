//! Waiting for the app's sockets: ringway accepts only once every upstream accepts
//! connections, so the first request after start is not answered 502.

use std::time::Duration;

use crate::config::UpstreamAddr;
use crate::metrics::connect_upstream;

/// Time between two rounds of connects while waiting.
pub const POLL: Duration = Duration::from_millis(50);

/// The upstreams that have not accepted a connection yet.
pub struct Waiting {
    left: Vec<UpstreamAddr>,
}

impl Waiting {
    pub fn new(upstreams: &[UpstreamAddr]) -> Waiting {
        Waiting {
            left: upstreams.to_vec(),
        }
    }

    /// Tries each upstream not yet seen accepting; an upstream that accepted once is done.
    pub fn poll(&mut self) {
        self.left.retain(|addr| connect_upstream(addr).is_err());
    }

    pub fn is_done(&self) -> bool {
        self.left.is_empty()
    }

    /// The upstreams still waited for, for a log line.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self.left.iter().map(ToString::to_string).collect();
        names.join(" ")
    }
}
