//! The status page: ringway's connection and request counts in the format of nginx's
//! `stub_status`, so that the monitoring agents reading nginx's page (the Prometheus nginx
//! exporter, Datadog's, Zabbix's, Netdata's) read ringway's unchanged.

use std::sync::atomic::Ordering::Relaxed;

use super::{Outcome, Request, respond};
use crate::client::Client;
use crate::fail::{Allowed, Fail};
use crate::http::Method;
use crate::metrics::ConnPhases;
use crate::routes::Route;
use crate::worker::Worker;

/// What the page shows, summed over the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Figures {
    /// Connections open, whatever they are doing (a TLS handshake's too).
    active: u64,
    /// Connections accepted. nginx's `handled` is the same figure: it falls behind only
    /// when nginx closes a connection unanswered at `worker_connections`, and ringway
    /// answers one over `max_connections` with a 503.
    accepted: u64,
    phases: ConnPhases,
}

impl Figures {
    fn of(worker: &Worker) -> Figures {
        let workers = worker.every_worker.iter();
        Figures {
            active: workers.clone().map(|w| w.open_connections()).sum(),
            accepted: workers.map(|w| w.accepted.load(Relaxed)).sum(),
            phases: ConnPhases::of(&worker.every_worker),
        }
    }

    /// nginx's page, byte for byte (a space ends each line of figures).
    fn page(&self) -> String {
        let Figures {
            active, accepted, ..
        } = self;
        let ConnPhases {
            waiting,
            reading,
            writing,
            requests,
        } = self.phases;
        format!(
            "Active connections: {active} \nserver accepts handled requests\n \
             {accepted} {accepted} {requests} \nReading: {reading} Writing: {writing} \
             Waiting: {waiting} \n"
        )
    }
}

/// Answers a GET or HEAD with the page (`text/plain`, as nginx's); any other method gets
/// 405, as from nginx.
pub(super) async fn answer(
    client: &Client,
    req: &Request,
    route: &Route,
    worker: &Worker,
) -> Result<Outcome, Fail> {
    if !matches!(req.head.method, Method::Get | Method::Head) {
        return Err(Fail::MethodNotAllowed(Allowed::Status));
    }
    let page = Figures::of(worker).page();
    let page = Some(("text/plain", page.as_bytes()));
    Ok(respond::send(client, req, route, (200, None), page, worker).await)
}

#[cfg(test)]
mod tests {
    use super::{ConnPhases, Figures};

    #[test]
    fn the_page_is_nginx_s() {
        let figures = Figures {
            active: 291,
            accepted: 16630948,
            phases: ConnPhases {
                waiting: 106,
                reading: 6,
                writing: 179,
                requests: 31070465,
            },
        };
        // nginx's documentation's example.
        assert_eq!(
            figures.page(),
            "Active connections: 291 \nserver accepts handled requests\n 16630948 16630948 \
             31070465 \nReading: 6 Writing: 179 Waiting: 106 \n"
        );
    }
}
