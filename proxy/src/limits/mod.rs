//! Admission limits, process-wide: how many connections may be open (in all, and per client
//! IP), how fast one client may send requests to a route (nginx's leaky bucket), and how many
//! requests may be at each upstream server at once, with a bounded queue for the rest.
//! (Not to be confused with `config::Limits`, the sizes and timeouts of one request.)
//!
//! A client's connections spread over every worker, so all of this is shared between them:
//! atomics, and short locks on sharded tables. [`Limiters`] holds it all, built once from the
//! configuration; workers reach it through an `Arc`. See docs/ARCHITECTURE.md, "Limits".

mod bucket;
mod conns;
mod rate_table;
mod requests;
mod slots;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub(crate) use bucket::RateLimit;
pub(crate) use conns::{Admission, ConnLimit, ConnTicket};
pub(crate) use requests::{Entry, LimitConnStatus, RequestLimit, RequestTicket};
pub(crate) use slots::{GroupSlots, Permit, Slot};

use crate::config::Config;
use crate::metrics::{GroupLimitFigures, LimitFigures, RouteConnFigures, RouteLimitFigures};
use conns::ConnLimiter;
use rate_table::RateTable;
use requests::RequestCounts;

/// The key a client is counted under by `limit_conn_per_ip` and `limit_req`: an IPv4
/// address (written plain or IPv4-mapped) as it is, an IPv6 one by its /64, the smallest
/// block a subscriber is given (RFC 6177), as fail2ban and the CDNs key IPv6. Keyed whole,
/// as nginx's `$binary_remote_addr` is, one client with a /64 would have 2^64 fresh buckets
/// and connection counts, and could push every other client out of the tables (found by
/// review). Two ranges carry IPv4 clients and are keyed by them: NAT64's `64:ff9b::/96`
/// (RFC 6052) in its last 32 bits, Teredo's `2001::/32` (RFC 4380) in its last 32 bits
/// inverted (the rest of a Teredo address is the relay's and the client's to choose).
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    const NAT64: u128 = 0x0064_ff9b_0000_0000_0000_0000;
    const TEREDO: u128 = 0x2001_0000;
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = v6.to_bits();
            if bits >> 32 == NAT64 {
                IpAddr::V4(std::net::Ipv4Addr::from_bits(bits as u32))
            } else if bits >> 96 == TEREDO {
                IpAddr::V4(std::net::Ipv4Addr::from_bits(!(bits as u32)))
            } else {
                IpAddr::V6((bits & !u128::from(u64::MAX)).into())
            }
        }
        v4 => v4,
    }
}

/// The `route` label of the top level's `limit_req` in the metrics.
pub(crate) const SHARED_LABEL: &str = "*";

/// The top level's `limit_req`, as the routes that count in it have it.
fn shared_limit(config: &Config) -> Option<bucket::RateLimit> {
    let route = config.routes.iter().find(|r| r.limit_req_shared)?;
    route.limit_req
}

/// Every limit's shared state, for the whole process.
pub(crate) struct Limiters {
    conns: Arc<ConnLimiter>,
    /// Per route (by index): its `limit_req` buckets, if it has a limit.
    rates: Vec<Option<Arc<RateTable>>>,
    /// The top level's `limit_req` buckets, the same table in `rates` for every route
    /// that has no `limit_req` of its own.
    shared_rates: Option<Arc<RateTable>>,
    /// Per route (by index): its `limit_conn` counts, if it has a limit.
    requests: Vec<Option<Arc<RequestCounts>>>,
    /// Per upstream group (by index): its slots, if its servers have `max_conns`.
    slots: Vec<Option<Arc<GroupSlots>>>,
    /// The routes' labels and the groups' names, for the metrics.
    route_labels: Vec<String>,
    group_names: Vec<String>,
}

impl Limiters {
    /// The limits `config` sets, nothing counted yet.
    pub(crate) fn new(config: &Config) -> Limiters {
        let shared_rates = shared_limit(config).map(|limit| Arc::new(RateTable::new(limit)));
        Limiters {
            conns: Arc::new(ConnLimiter::new(config.connections)),
            rates: config
                .routes
                .iter()
                .map(|r| match (&shared_rates, r.limit_req) {
                    (Some(shared), Some(_)) if r.limit_req_shared => Some(Arc::clone(shared)),
                    (_, limit) => limit.map(|limit| Arc::new(RateTable::new(limit))),
                })
                .collect(),
            shared_rates,
            requests: config
                .routes
                .iter()
                .map(|r| r.limit_conn.map(|l| Arc::new(RequestCounts::new(l.per_ip))))
                .collect(),
            slots: config
                .groups
                .iter()
                .map(|g| {
                    g.slots.map(|limits| {
                        Arc::new(GroupSlots::new(limits, g.servers.len(), g.taking_servers()))
                    })
                })
                .collect(),
            route_labels: config.route_labels(),
            group_names: config.groups.iter().map(|g| g.name.clone()).collect(),
        }
    }

    /// The limits `config` sets, for a reload from `previous` (made from `old`): a limit
    /// whose setting did not change keeps its state, so that a reload neither forgets what a
    /// client has used nor lets the requests of both configurations have a limit each (the
    /// connection counts, also when only their values changed; a route's buckets and its
    /// requests in flight by its label, also under a changed rate, burst or `limit_conn`;
    /// a group's slots by its name). A group
    /// whose `max_conns`, `queue` or `queue_timeout` changed starts new slots: until the
    /// requests in flight under the old ones end, its servers may take both counts.
    /// Only for a configuration that will be put in use: it may retune the connection
    /// limits `previous` counts with.
    pub(crate) fn renewed(config: &Config, previous: &Limiters, old: &Config) -> Limiters {
        let mut fresh = Limiters::new(config);
        fresh.conns =
            if config.connections == old.connections || previous.conns.retune(config.connections) {
                Arc::clone(&previous.conns)
            } else {
                let refusals = previous.conns.refusals();
                Arc::new(ConnLimiter::counting_on(config.connections, refusals))
            };
        // The top level's table goes on as a route's does: the same, or retuned.
        if let (Some(previous), Some(limit)) = (&previous.shared_rates, shared_limit(config)) {
            let renewed = match shared_limit(old) {
                Some(before) if before == limit => Arc::clone(previous),
                _ => Arc::new(previous.retuned(limit)),
            };
            for (slot, route) in fresh.rates.iter_mut().zip(config.routes.iter()) {
                if route.limit_req_shared {
                    *slot = Some(Arc::clone(&renewed));
                }
            }
            fresh.shared_rates = Some(renewed);
        }
        // What starts afresh under the same label or name counts on in the old counters
        // (shared: the old generation's last requests count too), so they never go back.
        for (i, route) in config.routes.iter().enumerate() {
            let label = route.label();
            let Some(j) = old.routes.iter().position(|r| r.label() == label) else {
                continue;
            };
            if let (Some(slot @ Some(_)), Some(Some(previous)), Some(limit)) = (
                fresh.requests.get_mut(i),
                previous.requests.get(j),
                route.limit_conn,
            ) {
                previous.retune(limit.per_ip);
                *slot = Some(Arc::clone(previous));
            }
            // A route of the top level's table has it already; one that had it before and
            // now has its own starts afresh (a client's share of the whole server is not
            // its use of this route).
            let had_shared = old.routes.get(j).is_some_and(|r| r.limit_req_shared);
            if route.limit_req_shared || had_shared {
                continue;
            }
            let (Some(slot), Some(Some(previous))) =
                (fresh.rates.get_mut(i), previous.rates.get(j))
            else {
                continue;
            };
            let same = old
                .routes
                .get(j)
                .is_some_and(|r| r.limit_req == route.limit_req);
            *slot = match route.limit_req {
                _ if same => Some(Arc::clone(previous)),
                Some(limit) => Some(Arc::new(previous.retuned(limit))),
                None => None,
            };
        }
        for (i, group) in config.groups.iter().enumerate() {
            let Some(j) = old.groups.iter().position(|g| g.name == group.name) else {
                continue;
            };
            let (Some(slot), Some(previous)) = (fresh.slots.get_mut(i), previous.slots(j)) else {
                continue;
            };
            let kept = &old.groups[j];
            // A server's weight or backup changes nothing for its slots; `down` does.
            let addrs = |g: &'_ crate::config::Group| {
                let servers = g.servers.iter();
                servers
                    .map(|s| (s.addr.clone(), s.options.down))
                    .collect::<Vec<_>>()
            };
            let same = kept.slots == group.slots && addrs(kept) == addrs(group);
            *slot = match group.slots {
                _ if same => Some(previous),
                Some(limits) => Some(Arc::new(GroupSlots::counting_on(
                    limits,
                    group.servers.len(),
                    group.taking_servers(),
                    previous.counts(),
                ))),
                None => None,
            };
        }
        fresh
    }

    /// Decides on a connection just accepted from a client counted under `ip` (see
    /// [`connection_ip`]).
    pub(crate) fn admit(&self, ip: Option<IpAddr>) -> Admission {
        self.conns.admit(ip)
    }

    /// Whether connections counted by `other` are counted by this one too (a reload that
    /// set or unset no connection limit keeps its limiter).
    pub(crate) fn counts_connections_as(&self, other: &Limiters) -> bool {
        Arc::ptr_eq(&self.conns, &other.conns)
    }

    /// Decides on a connection just accepted whose PROXY header will name its client: by
    /// the process-wide count, until [`Admission::naming`] counts the client.
    pub(crate) fn admit_unnamed(&self) -> Admission {
        self.conns.admit_unnamed()
    }

    /// One request from `client_ip` to the route at `route`: how long it waits under the
    /// route's `limit_req` before it is served (zero: at once), or `Err(seconds)` when it
    /// is over it, with the Retry-After to answer.
    pub(crate) fn check_rate(
        &self,
        route: usize,
        client_ip: IpAddr,
        dry_run: bool,
    ) -> Result<Duration, u32> {
        match self.rates.get(route) {
            Some(Some(table)) => table.check(client_ip, dry_run),
            _ => Ok(Duration::ZERO),
        }
    }

    /// One request from `client_ip` to the route at `route`, under the route's
    /// `limit_conn` (`limit`): counted, let through over it by `dry_run`, or refused;
    /// `None` if the route has no counts (not expected: limit and counts come from one
    /// configuration).
    pub(crate) fn enter(
        &self,
        route: usize,
        client_ip: IpAddr,
        limit: RequestLimit,
    ) -> Option<Entry> {
        let counts = self.requests.get(route)?.as_ref()?;
        Some(counts.enter(client_ip, limit.dry_run))
    }

    /// The slots of the group at `group`, if its servers have `max_conns`.
    pub(crate) fn slots(&self, group: usize) -> Option<Arc<GroupSlots>> {
        self.slots.get(group).cloned().flatten()
    }

    /// The counters, for the metrics endpoint.
    pub(crate) fn figures(&self) -> LimitFigures {
        // The top level's table once, under `*`, not once per route counting in it.
        let own = self.rates.iter().zip(&self.route_labels).filter(|(table, _)| {
            !matches!((table, &self.shared_rates), (Some(t), Some(s)) if Arc::ptr_eq(t, s))
        });
        let shared = (self.shared_rates.as_ref()).map(|table| (Some(table), SHARED_LABEL));
        let routes = own
            .map(|(table, label)| (table.as_ref(), label.as_str()))
            .chain(shared)
            .filter_map(|(table, label)| {
                let table = table?;
                Some(RouteLimitFigures {
                    route: label.to_owned(),
                    rejected: table.rejected(),
                    delayed: table.delayed(),
                    dry_run: table.dry_run(),
                    evicted: table.evicted(),
                    clients: table.len() as u64,
                })
            })
            .collect();
        let conn_routes = self
            .requests
            .iter()
            .zip(&self.route_labels)
            .filter_map(|(counts, label)| {
                let counts = counts.as_ref()?;
                Some(RouteConnFigures {
                    route: label.clone(),
                    rejected: counts.rejected(),
                    dry_run: counts.dry_run(),
                    clients: counts.clients() as u64,
                })
            })
            .collect();
        let groups = self
            .slots
            .iter()
            .zip(&self.group_names)
            .filter_map(|(slots, name)| {
                let slots = slots.as_ref()?;
                let (queue_full, queue_timeout) = slots.rejected();
                Some(GroupLimitFigures {
                    upstream: name.clone(),
                    busy: slots.busy() as u64,
                    queue_length: slots.queue_length() as u64,
                    queue_full,
                    queue_timeout,
                    queue_wait: slots.wait_times(),
                })
            })
            .collect();
        LimitFigures {
            max_connections_rejected: self.conns.rejected(ConnLimit::Process),
            conn_per_ip_rejected: self.conns.rejected(ConnLimit::PerIp),
            routes,
            conn_routes,
            groups,
        }
    }
}

/// What a route's `limit_req` did with a request (nginx's `$limit_req_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitReqStatus {
    /// Served at once.
    Passed,
    /// Held until the rate let it through.
    Delayed,
    /// Refused (429, or the route's `limit_req.status`).
    Rejected,
    /// Let through past the limit by `dry_run`, where it would have been held.
    DelayedDryRun,
    /// Let through past the limit by `dry_run`, where it would have been refused.
    RejectedDryRun,
}

impl LimitReqStatus {
    /// As nginx writes it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            LimitReqStatus::Passed => "PASSED",
            LimitReqStatus::Delayed => "DELAYED",
            LimitReqStatus::Rejected => "REJECTED",
            LimitReqStatus::DelayedDryRun => "DELAYED_DRY_RUN",
            LimitReqStatus::RejectedDryRun => "REJECTED_DRY_RUN",
        }
    }
}

/// The address a connection counts under for `limit_conn_per_ip`: its client's, the one a
/// PROXY header named (`named`) or else the peer's; none for a peer in `trusted_proxy`
/// without `proxy_protocol`, a load balancer whose connections carry many clients (their
/// addresses come per request, in X-Forwarded-For): one count would refuse them all
/// together (found by review: behind a balancer, the third client's connection got 503
/// with `limit_conn_per_ip = 2`). With `proxy_protocol`, a balancer's connection whose
/// header named no client counts under the balancer: its X-Forwarded-For is not believed
/// (`Client::vouched_for`), so no one else counts it. `limit_req` keys on the request's real
/// client.
pub(crate) fn connection_ip(peer: SocketAddr, named: bool, config: &Config) -> Option<IpAddr> {
    let ip = peer.ip();
    (named || config.proxy_protocol || !config.is_trusted(ip)).then_some(ip)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::Limiters;
    use crate::config::Config;

    fn config(text: &str) -> Config {
        Config::from_file_text(text, std::path::Path::new("test.toml"))
            .expect("a valid configuration")
    }

    const GROUP: &str = "[upstreams.app]\nservers = [\"unix:/a.sock\"]\nmax_conns = 4\n";
    const ROUTE: &str =
        "[[routes]]\npath = \"/\"\nupstream = \"app\"\nlimit_req = { rate = \"5r/s\" }\n";

    /// The top level's `limit_req` is one table for every route without its own: a
    /// client's requests to either fill one bucket, the figures show it once (`*`), and a
    /// reload keeps it, or retunes it with the buckets kept.
    #[test]
    fn the_top_level_limit_req_is_one_table_for_the_routes_without_their_own() {
        let text = "limit_req = { rate = \"1r/m\", burst = 1 }\n\
            [upstreams.app]\nservers = [\"unix:/a.sock\"]\n\
            [[routes]]\npath = \"/a/\"\nupstream = \"app\"\n\
            [[routes]]\npath = \"/own/\"\nupstream = \"app\"\n\
            limit_req = { rate = \"1r/m\" }\n\
            [[routes]]\npath = \"/b/\"\nupstream = \"app\"\n";
        let old = config(text);
        let limiters = Limiters::new(&old);
        let ip = "192.0.2.1".parse().unwrap_or_else(|_| unreachable!());
        let table = |l: &Limiters, i: usize| Arc::clone(l.rates[i].as_ref().expect("a table"));
        assert!(Arc::ptr_eq(&table(&limiters, 0), &table(&limiters, 2)));
        assert!(!Arc::ptr_eq(&table(&limiters, 0), &table(&limiters, 1)));
        assert!(limiters.check_rate(0, ip, false).is_ok());
        assert!(limiters.check_rate(2, ip, false).is_ok(), "the burst");
        assert!(limiters.check_rate(0, ip, false).is_err(), "one bucket");
        assert!(limiters.check_rate(1, ip, false).is_ok(), "its own");
        let figures = limiters.figures();
        let labels: Vec<(&str, u64)> = (figures.routes.iter())
            .map(|r| (r.route.as_str(), r.rejected))
            .collect();
        assert_eq!(labels, [("/own/", 0), ("*", 1)]);

        let same = Limiters::renewed(&old, &limiters, &old);
        assert!(Arc::ptr_eq(&table(&same, 2), &table(&limiters, 2)));
        let retuned = config(&text.replace("burst = 1 }", "burst = 5 }"));
        let renewed = Limiters::renewed(&retuned, &limiters, &old);
        assert!(!Arc::ptr_eq(&table(&renewed, 0), &table(&limiters, 0)));
        assert!(Arc::ptr_eq(&table(&renewed, 0), &table(&renewed, 2)));
        assert_eq!(renewed.figures().routes[1].rejected, 1, "counted on");
        assert!(
            renewed.check_rate(2, ip, false).is_ok(),
            "the bucket, under the new burst"
        );
    }

    /// A reload keeps the state of the limits whose setting did not change (the connection
    /// counts also when only their values did), and starts the others afresh.
    #[test]
    fn a_reload_carries_over_what_did_not_change() {
        let old = config(&format!("max_connections = 10\n{GROUP}{ROUTE}"));
        let previous = Limiters::new(&old);
        let same = Limiters::renewed(&old, &previous, &old);
        assert!(Arc::ptr_eq(&same.conns, &previous.conns));
        let (a, b) = (same.rates[0].as_ref(), previous.rates[0].as_ref());
        assert!(Arc::ptr_eq(a.expect("a table"), b.expect("a table")));
        let (a, b) = (same.slots(0), previous.slots(0));
        assert!(Arc::ptr_eq(&a.expect("slots"), &b.expect("slots")));

        let changed = config(&format!(
            "max_connections = 20\n{}{}",
            GROUP.replace("max_conns = 4", "max_conns = 8"),
            ROUTE.replace("5r/s", "9r/s")
        ));
        let fresh = Limiters::renewed(&changed, &previous, &old);
        // The connections open stay counted, against the new value.
        assert!(Arc::ptr_eq(&fresh.conns, &previous.conns));
        let per_ip = config(&format!(
            "max_connections = 20
limit_conn_per_ip = 5
{GROUP}"
        ));
        let counted_anew = Limiters::renewed(&per_ip, &previous, &old);
        assert!(!Arc::ptr_eq(&counted_anew.conns, &previous.conns));
        let (a, b) = (fresh.rates[0].as_ref(), previous.rates[0].as_ref());
        assert!(!Arc::ptr_eq(a.expect("a table"), b.expect("a table")));
        let (a, b) = (fresh.slots(0), previous.slots(0));
        assert!(!Arc::ptr_eq(&a.expect("slots"), &b.expect("slots")));
    }

    /// What a reload starts afresh keeps counting from the old figures: Prometheus counters
    /// (a burst changed read 8 rejected before the reload and 0 after).
    #[test]
    fn a_reload_never_takes_a_refusal_counter_back() {
        let old = config(&format!(
            "limit_conn_per_ip = 1
{GROUP}{ROUTE}"
        ));
        let previous = Limiters::new(&old);
        let client = "192.0.2.7".parse().expect("an IP");
        let _held = previous.conns.admit(Some(client));
        let refused = previous.conns.admit(Some(client));
        assert!(refused.refused().is_some());
        let over_rate = (0..20)
            .filter(|_| previous.check_rate(0, client, false).is_err())
            .count() as u64;
        assert!(over_rate > 0);
        let before = previous.figures();

        let changed = config(&format!(
            "max_connections = 50
{GROUP}{}",
            ROUTE.replace("5r/s", "9r/s")
        ));
        let renewed = Limiters::renewed(&changed, &previous, &old);
        let after = renewed.figures();
        assert_eq!(after.conn_per_ip_rejected, before.conn_per_ip_rejected);
        assert_eq!(after.conn_per_ip_rejected, 1);
        assert_eq!(after.routes[0].rejected, over_rate);
        assert_eq!(after.routes[0].rejected, before.routes[0].rejected);
        // The old generation's last requests still count, in the one series.
        assert!(previous.check_rate(0, client, false).is_err());
        assert!(previous.conns.admit(Some(client)).refused().is_some());
        let later = renewed.figures();
        assert_eq!(later.routes[0].rejected, over_rate + 1);
        assert_eq!(later.conn_per_ip_rejected, 2);
    }

    /// Behind a trusted balancer that names no client, connections count under no client
    /// (they carry many); one a PROXY header names counts under it; any other under its
    /// peer.
    #[test]
    fn a_trusted_peer_that_names_no_client_is_counted_under_none() {
        let config = config(&format!(
            "limit_conn_per_ip = 1\ntrusted_proxy = [\"10.0.0.0/8\"]\n{GROUP}{ROUTE}"
        ));
        let balancer: std::net::SocketAddr = "10.0.0.5:4000".parse().unwrap();
        let client: std::net::SocketAddr = "203.0.113.7:4000".parse().unwrap();
        assert_eq!(super::connection_ip(balancer, false, &config), None);
        assert_eq!(
            super::connection_ip(balancer, true, &config),
            Some(balancer.ip())
        );
        assert_eq!(
            super::connection_ip(client, false, &config),
            Some(client.ip())
        );
        let limits = Limiters::new(&config);
        let held: Vec<_> = (0..3)
            .map(|_| limits.admit(super::connection_ip(balancer, false, &config)))
            .collect();
        assert!(held.iter().all(|a| a.refused().is_none()));
        let _first = limits.admit(Some(client.ip()));
        assert!(limits.admit(Some(client.ip())).refused().is_some());
        // With proxy_protocol, a header naming no client leaves the balancer's address,
        // which counts: that connection's X-Forwarded-For names no one.
        let proxied = self::config(&format!(
            "limit_conn_per_ip = 1\ntrusted_proxy = [\"10.0.0.0/8\"]\nproxy_protocol = true\n\
             {GROUP}{ROUTE}"
        ));
        assert_eq!(
            super::connection_ip(balancer, false, &proxied),
            Some(balancer.ip())
        );
    }

    /// A route's requests in flight stay counted through a reload that keeps its
    /// `limit_conn` (a new value holds at once), and not under a route that dropped it.
    #[test]
    fn a_reload_keeps_the_requests_in_flight_counted() {
        use super::Entry;
        let limited = |per_ip: usize| {
            config(&format!(
                "{GROUP}[[routes]]\npath = \"/d/\"\nupstream = \"app\"\n\
                 limit_conn = {{ per_ip = {per_ip} }}\n"
            ))
        };
        let old = limited(2);
        let previous = Limiters::new(&old);
        let limit = old
            .routes
            .iter()
            .next()
            .and_then(|r| r.limit_conn)
            .expect("a limit");
        let ip: std::net::IpAddr = "192.0.2.9".parse().unwrap();
        let Some(Entry::Counted(_held)) = previous.enter(0, ip, limit) else {
            panic!("the first request is counted");
        };
        let tighter = limited(1);
        let renewed = Limiters::renewed(&tighter, &previous, &old);
        let limit = tighter
            .routes
            .iter()
            .next()
            .and_then(|r| r.limit_conn)
            .expect("a limit");
        assert!(matches!(renewed.enter(0, ip, limit), Some(Entry::Refused)));
        let unlimited = config(&format!(
            "{GROUP}[[routes]]\npath = \"/d/\"\nupstream = \"app\"\n"
        ));
        let dropped = Limiters::renewed(&unlimited, &previous, &old);
        assert!(dropped.requests.iter().all(Option::is_none));
        assert_eq!(dropped.requests.len(), 1);
    }
}
