//! Kernel probes for ringway: what every client connection, io_uring
//! operation and process costs, measured by eBPF programs written in C
//! (`bpf/*.bpf.c`, CO-RE) and loaded with aya.
//!
//! What is measured, and how:
//!
//! - **TCP, per connection** (keyed by socket cookie, never by pid: io_uring
//!   work runs in kernel threads). A `sock_ops` program on the cgroup v2
//!   root sees each connection accepted on a watched port when its handshake
//!   completes (`PASSIVE_ESTABLISHED_CB`: the moment it enters the accept
//!   queue) and turns on the RTT, retransmit and state callbacks for it; each
//!   callback refreshes srtt, rttvar, retransmits, bytes acked/received and
//!   the socket's buffer memory from the `tcp_sock`. The state callback to
//!   `TCP_CLOSE` takes the final figures (like bcc's tcplife), feeds the
//!   lifetime, bytes and RTT histograms and sends the record to a ring
//!   buffer. `tp_btf/inet_sock_set_state` does the birth and the close when
//!   sock_ops is not attached.
//!   See [`Probes::conn_stats`], [`Probes::closed_conns`].
//! - **Accept wait**: handshake-complete time (from the kernel) to the moment
//!   ringway reports the accepted socket's cookie ([`Probes::accepted`]);
//!   and the accept queue's depth against its limit, polled from the kernel's
//!   socket diagnostics ([`listen_backlog`], no probe needed).
//! - **io_uring latency by opcode** for ringway's processes:
//!   `tp_btf/io_uring_submit_req` → `tp_btf/io_uring_complete`, matched by the
//!   kernel's request pointer ([`Probes::uring_latency_by_opcode`]).
//! - **Resident memory** of ringway and the uWSGI workers: `tp_btf/rss_stat`
//!   copies the mm's counters on every change ([`Probes::rss`]). The workers
//!   are found from the upstream socket's owner and its descendants
//!   ([`upstream_pids`]).
//! - **On-CPU time** of the same processes: `tp_btf/sched_switch`
//!   ([`Probes::oncpu_ns`]).
//!
//! - **Steering, not a probe**: [`steer_to`] attaches a `sk_reuseport`
//!   program to a listen address's SO_REUSEPORT group that sends its new
//!   connections to this process's listeners, so that an older process on
//!   the port (a binary upgrade) closes idle listeners ([`steer`]).
//!
//! The io_uring, memory and CPU probes match processes by tgid, as the initial pid
//! namespace numbers them: in a pid namespace of its own (a container) the caller's pids
//! are not those, and [`Probes::load`] leaves these probes down, saying why.
//!
//! All tracing programs are `tp_btf`, so no tracefs mount is needed. Nothing
//! here stops the proxy: without privileges, or when the kernel refuses a
//! program, [`Probes::load`] still returns, with every missing probe in
//! [`Probes::statuses`] (export them as `ringway_ebpf_up{probe="…"}`) and one
//! warning per missing probe in the log.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod backlog;
pub mod discover;
pub mod maps;
pub mod mount;
pub mod probes;
pub mod steer;
pub mod types;

pub use backlog::{ListenBacklog, listen_backlog};
pub use discover::{Upstream, upstream_pids};
pub use maps::{ConnStats, Histogram, Rss, RssSource, UringOpLatency, monotonic_ns, rss_from_proc};
pub use probes::{ALL_PROBES, Config, ProbeError, ProbeStatus, Probes, Role, figures_of};
pub use steer::{SteerError, steer_to};
