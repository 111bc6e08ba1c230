//! ringway: an HTTP/1.1 front end for uWSGI on io_uring.
//!
//! `http` and `uwsgi` are the sans-IO protocol core (bytes in, decisions out; public, so
//! they can be fuzzed and documented with examples); [`server::Server`] runs the daemon in
//! process; everything else is the daemon's inside, except for the narrow hidden `fuzzing`
//! door the fuzz targets use. docs/ARCHITECTURE.md draws the whole.

mod buffer;
mod client;
mod clock;
pub mod config;
mod conn;
mod exchange;
mod fail;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
mod io;
mod listener;
pub mod metrics;
mod ratelimit;
mod routes;
pub mod server;
mod static_files;
pub mod tls;
mod upstream;
pub mod uwsgi;
mod worker;
