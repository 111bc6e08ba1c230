//! Waiting for the app's sockets: ringway accepts only once every upstream accepts
//! connections, so the first request after start is not answered 502.

use std::time::Duration;

use crate::config::UpstreamAddr;
use crate::metrics::connect_upstream;

/// Time between two rounds of connects while waiting.
pub const POLL: Duration = Duration::from_millis(50);

/// The upstreams that have not accepted a connection yet: each as its addresses, one of
/// which accepting is enough (a name's several: the app may listen on 127.0.0.1 alone
/// while `localhost` is also `::1`).
pub struct Waiting {
    left: Vec<Vec<UpstreamAddr>>,
}

impl Waiting {
    pub fn new(upstreams: &[Vec<UpstreamAddr>]) -> Waiting {
        Waiting {
            left: upstreams.to_vec(),
        }
    }

    /// Tries each upstream not yet seen accepting; an upstream that accepted once is done.
    pub fn poll(&mut self) {
        self.left
            .retain(|addrs| addrs.iter().all(|addr| connect_upstream(addr).is_err()));
    }

    pub fn is_done(&self) -> bool {
        self.left.is_empty()
    }

    /// The upstreams still waited for, for a log line.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self
            .left
            .iter()
            .map(|addrs| {
                let each: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                each.join(" or ")
            })
            .collect();
        names.join(" ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    #[test]
    fn one_address_of_a_name_accepting_is_enough() {
        let listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = UpstreamAddr::Tcp(listening.local_addr().unwrap());
        let closed = {
            let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            UpstreamAddr::Tcp(gone.local_addr().unwrap())
        };
        let mut waiting = Waiting::new(&[vec![closed.clone(), open], vec![closed.clone()]]);
        waiting.poll();
        assert!(!waiting.is_done());
        assert_eq!(waiting.describe(), closed.to_string());
        let mut both = Waiting::new(&[vec![closed.clone(), closed.clone()]]);
        both.poll();
        assert_eq!(both.describe(), format!("{closed} or {closed}"));
    }
}
