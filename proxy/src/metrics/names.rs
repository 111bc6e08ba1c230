//! Every metric name ringway exports, with its help text.
//!
//! To add a metric: add a constant here (`ringway_` prefix, base units — seconds, bytes —
//! and `_total` on counters; labels only of low cardinality, never one per connection),
//! fill it in `Snapshot`, render it in `prom.rs`, and check it in the Prometheus parser test.

/// A metric's name and help line.
pub struct Name {
    /// Metric name.
    pub name: &'static str,
    /// HELP text.
    pub help: &'static str,
}

macro_rules! names {
    ($($id:ident = $name:literal, $help:literal;)*) => {
        $(
            #[doc = $help]
            pub const $id: Name = Name { name: $name, help: $help };
        )*
    };
}

names! {
    REQUESTS = "ringway_requests_total", "Requests answered, by route and status code.";
    RESPONSE_BODY_BYTES = "ringway_response_body_bytes_total", "Response body bytes sent to clients (nginx's $body_bytes_sent, summed), by route and status code.";
    REQUEST_DURATION = "ringway_request_duration_seconds", "Time from a request's complete head to its last response byte written, by route and status code.";
    UPSTREAM_CONNECT = "ringway_upstream_connect_duration_seconds", "Time to connect to an upstream.";
    UPSTREAM_RESPONSE = "ringway_upstream_response_duration_seconds", "Time a request spent with the Python worker: connected to response head received.";
    PROXY_DURATION = "ringway_proxy_duration_seconds", "Request duration minus the upstream's share: time in ringway and on the client side.";
    UPSTREAM_ERRORS = "ringway_upstream_errors_total", "Upstream failures, by kind.";
    UPSTREAM_OPENED = "ringway_upstream_connections_opened_total", "Connections opened to an upstream group's servers, by group.";
    UPSTREAM_REUSED = "ringway_upstream_connections_reused_total", "Kept connections to an HTTP upstream group's servers given another request, by group.";
    UPSTREAM_CONNECT_FAILURES = "ringway_upstream_connect_failures_total", "Connects to an upstream group's servers that failed (refused, timed out, backlog full), by group: another server may have taken the request, so ringway_upstream_errors_total does not count them.";
    UPSTREAM_PASSED_ON = "ringway_upstream_requests_passed_on_total", "Requests sent on to another of the group's servers after one failed them (closed, timed out, or answered a status `next_upstream` lists), by group.";
    UPSTREAM_UPGRADES = "ringway_upstream_upgrades_total", "Client and upstream connections joined after a protocol switch (101, WebSocket), by group.";
    CONNECTIONS_ACCEPTED = "ringway_connections_accepted_total", "Client connections accepted.";
    CONNECTIONS_ACTIVE = "ringway_connections_active", "Client connections open now.";
    CONNECTIONS_BY_STATE = "ringway_connections_by_state", "Client connections serving requests, by what they are doing: waiting for a request, reading its head, or serving it (nginx's stub_status Waiting, Reading and Writing).";
    REQUESTS_PER_CONNECTION = "ringway_requests_per_connection", "Requests served per closed client connection.";
    RECEIVED_BYTES = "ringway_received_bytes_total", "Bytes read from clients (counted when a connection closes).";
    SENT_BYTES = "ringway_sent_bytes_total", "Bytes written to clients (counted when a connection closes).";
    PROCESS_RESIDENT = "ringway_process_resident_memory_bytes", "Resident memory of ringway and of each uWSGI process.";
    PROCESS_CPU = "ringway_process_cpu_seconds_total", "CPU time (user + system) of ringway and of each uWSGI process.";
    WORKERS = "ringway_workers", "Worker threads (io_uring event loops).";
    EBPF_UP = "ringway_ebpf_up", "1 if the eBPF probe is loaded and attached, 0 if not (see the log for why).";
    PROCESS_ONCPU = "ringway_process_oncpu_seconds_total", "On-CPU time of ringway and of each uWSGI process since the eBPF probe started watching it (sched_switch).";
    TCP_RTT = "ringway_tcp_rtt_seconds", "Smoothed RTT of client connections, at close (eBPF sock_ops).";
    CONNECTION_DURATION = "ringway_connection_duration_seconds", "Lifetime of client connections (eBPF).";
    CONNECTION_RECEIVED_BYTES = "ringway_connection_received_bytes", "Bytes received per client connection, at close (eBPF; the kernel's count, in which the client's FIN counts one).";
    CONNECTION_SENT_BYTES = "ringway_connection_sent_bytes", "Bytes sent and acknowledged per client connection, at close (eBPF; the kernel's count, in which ringway's FIN counts one).";
    ACCEPT_WAIT = "ringway_accept_wait_seconds", "Time from handshake complete to accepted by ringway (eBPF).";
    ACCEPT_QUEUE_LENGTH = "ringway_accept_queue_length", "Connections waiting in the listening sockets' accept queues.";
    ACCEPT_QUEUE_LIMIT = "ringway_accept_queue_limit", "Capacity of the listening sockets' accept queues.";
    ACCEPT_QUEUE_FULLEST = "ringway_accept_queue_fullest_ratio", "The fullest listening socket's accept queue length over its capacity (one per worker: a stalled worker's full queue refuses its share of new connections while the sums look low).";
    URING_OP_DURATION = "ringway_io_uring_op_duration_seconds", "io_uring operation latency, submit to complete, by opcode (eBPF).";
    SOCKET_MEMORY = "ringway_socket_memory_bytes", "Socket buffer memory of live client connections, by queue (eBPF).";
    TLS_HANDSHAKES = "ringway_tls_handshakes_total", "TLS handshakes, by result (ok, failed, closed, timeout, plain_http) and protocol version.";
    TLS_KEY_EXCHANGES = "ringway_tls_key_exchanges_total", "TLS handshakes done, by the key exchange group agreed (OpenSSL's name: X25519MLKEM768 is the post-quantum hybrid); a TLS 1.2 resumption makes none.";
    TLS_HANDSHAKE_DURATION = "ringway_tls_handshake_duration_seconds", "Time of the TLS handshakes that were done, accept to finished.";
    TLS_CERT_EXPIRY = "ringway_tls_certificate_expiry_timestamp_seconds", "When each TLS certificate in use expires (notAfter), seconds since the epoch.";
    LIMIT_REJECTED = "ringway_limit_rejected_total", "Connections and requests refused by a limit, by kind: max_connections and conn_per_ip (503 on the connection's first request, then closed), req (429, by route), conn (a route's limit_conn: 503, by route), queue_full and queue_timeout (503, by upstream group).";
    LIMIT_REQ_DELAYED = "ringway_limit_req_delayed_total", "Requests a route's limit_req made wait before they were served (past its delay), by route.";
    LIMIT_REQ_DRY_RUN = "ringway_limit_req_dry_run_total", "Requests a route's limit_req with dry_run let through, by route and what the limit would have done (would: refuse, delay); not counted as refused or delayed.";
    LIMIT_REQ_EVICTED = "ringway_limit_req_evicted_total", "Clients dropped from a route's full limit_req table to make room for new ones, by route.";
    LIMIT_REQ_CLIENTS = "ringway_limit_req_clients", "Clients a route's limit_req table tracks now, by route.";
    LIMIT_CONN_DRY_RUN = "ringway_limit_conn_dry_run_total", "Requests a route's limit_conn with dry_run let through over the limit, by route; not counted as refused.";
    LIMIT_CONN_CLIENTS = "ringway_limit_conn_clients", "Clients with a request in flight on a route with limit_conn now, by route.";
    UPSTREAM_BUSY = "ringway_upstream_busy_slots", "Requests at the servers of an upstream group with max_conns now, by group.";
    UPSTREAM_QUEUE_LENGTH = "ringway_upstream_queue_length", "Requests waiting for a free slot at an upstream group's servers (max_conns), by group.";
    UPSTREAM_QUEUE_WAIT = "ringway_upstream_queue_wait_seconds", "Time the requests that queued for an upstream slot waited, until they got one or queue_timeout, by group.";
    PROXY_REJECTED = "ringway_proxy_protocol_rejected_total", "Connections closed before their first request for want of a valid PROXY protocol header (proxy_protocol), by reason (invalid, timeout).";
    ACCESS_LOG_DROPPED = "ringway_access_log_dropped_total", "Access log lines dropped: the writer was behind (a slow or stuck file) or a write failed (a full disk).";
    APP_UP = "ringway_app_up", "1 while the app server ringway supervises ([app]) is running, 0 while it is down (between a death and its restart, or for good).";
    APP_RESTARTS = "ringway_app_restarts_total", "Times ringway started the app server ([app]) again after it exited.";
    CONFIG_RELOADS = "ringway_config_reloads_total", "Configuration reloads (SIGHUP), by result: ok (in use now), refused (the configuration did not validate; the one before stays).";
    CONFIG_LAST_RELOAD_OK = "ringway_config_last_reload_successful", "1 if the last configuration reload was accepted (or none was tried), 0 if it was refused.";
    CLOSED_DROPPED = "ringway_ebpf_closed_records_dropped_total", "Closed-connection records the probes dropped because the ring buffer was full.";
}
