//! ringway: an HTTP/1.1 front end for uWSGI on io_uring.
//!
//! `http`, `uwsgi` and `proxy_protocol` are the sans-IO protocol core (bytes in, decisions
//! out; public, so they can be fuzzed and documented with examples); [`server::Server`] runs
//! the daemon in process; everything else is the daemon's inside, except for the narrow
//! hidden `fuzzing` door the fuzz targets use. docs/ARCHITECTURE.md draws the whole.

pub mod access_log;
pub mod alloc;
pub mod app;
mod auth_basic;
mod blocking;
mod buffer;
mod client;
mod clock;
mod closing;
pub mod config;
mod conn;
pub mod error_pages;
mod exchange;
mod fail;
mod filesystem;
#[doc(hidden)]
pub mod fuzzing;
mod generation;
mod gzip;
pub mod http;
mod http2;
mod identity;
mod io;
mod limits;
mod listener;
mod memory;
pub mod metrics;
pub mod open_files;
pub mod proxy_protocol;
mod ratelimit;
mod referers;
pub mod reload;
mod routes;
pub mod server;
pub mod service_manager;
mod small_file;
mod static_files;
pub mod tls;
mod upstream;
mod uring_error;
pub mod uwsgi;
mod worker;

pub use blocking::limit_caught_panic_messages;
