//! Sans-IO uwsgi: turns a parsed HTTP request into the uwsgi packet uWSGI reads.
//!
//! The packet is `modifier1 (0) | datasize (u16 LE) | modifier2 (0)` then the vars block,
//! each var `u16 LE key length, key, u16 LE value length, value`; the request body follows on
//! the same connection. uWSGI answers in plain HTTP, which [`crate::http::parse_response`]
//! reads, so this module has no response side.
#![deny(missing_docs)]

mod error;
mod packet;
mod path;
mod vars;

pub use error::UwsgiError;
pub use packet::PacketWriter;
pub use path::normalize_path;
pub use vars::{RequestEnv, encode_request};
