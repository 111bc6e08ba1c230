//! ringway: an HTTP/1.1 front end for uWSGI on io_uring.
//!
//! `http` and `uwsgi` are the sans-IO protocol core (bytes in, decisions out); `conn` drives
//! one client connection over tokio-uring; `server` runs one pinned worker thread per core.

pub mod bufpool;
pub mod config;
pub mod conn;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod server;
pub mod upstream;
pub mod uwsgi;
