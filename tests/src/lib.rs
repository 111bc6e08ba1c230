//! ringway-tests: the end-to-end harness.
//!
//! It starts real processes (uWSGI serving the apps under `tests/apps`, nginx as the reference
//! proxy, HAProxy as a load balancer in front, Prometheus scraping, the ringway binary), each owned by a guard that kills and reaps it on `Drop` and
//! removes its temp dir, and talks to them with a tiny raw HTTP/1.1 client ([`client`]) that
//! sends arbitrary bytes and reads responses with exact framing. Nothing is mocked and no port
//! is fixed: nginx gets a free port from `127.0.0.1:0`, ringway picks its own and logs it.
//!
//! Where things are comes from the environment ([`paths`]): `RINGWAY_BIN`, `RINGWAY_VENV`,
//! `RINGWAY_NGINX`. A missing piece fails the test with what to run (`cargo xtask test` sets
//! everything up); nothing is skipped.

pub mod app_server;
pub mod browser;
pub mod checks;
pub mod client;
pub mod command;
pub mod data;
pub mod haproxy;
pub mod held_thread;
pub mod log_lines;
pub mod netns;
pub mod nginx;
pub mod parity;
pub mod paths;
pub mod proc_limits;
pub mod prometheus;
pub mod ringway;
pub mod static_cases;
pub mod static_config;
pub mod static_expect;
pub mod static_tree;
pub mod tls;
pub mod uwsgi;
pub mod wait;
pub mod websocket;

pub use client::{Conn, Framing, Req, Response, roundtrip};
pub use data::{pattern, sha256_hex};
pub use nginx::Nginx;
pub use paths::App;
pub use ringway::Ringway;
pub use uwsgi::Uwsgi;
