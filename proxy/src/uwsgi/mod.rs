//! Sans-IO uwsgi: turns a parsed HTTP request into the uwsgi packet uWSGI reads.
//!
//! The packet is `modifier1 (0) | datasize (u16 LE) | modifier2 (0)` then the vars block,
//! each var `u16 LE key length, key, u16 LE value length, value`; the request body follows on
//! the same connection. uWSGI answers in plain HTTP, which [`crate::http::parse_response`]
//! reads, so this module has no response side.
//!
//! ```
//! use ringway::http::{Limits, Status, parse_request};
//! use ringway::uwsgi::{RequestEnv, encode_request, normalize_path};
//!
//! let buf = b"GET /a/../b?x=1 HTTP/1.1\r\nHost: example.com\r\nUWSGI-FILE: /tmp/evil.py\r\n\r\n";
//! let mut headers = Vec::new();
//! let Ok(Status::Complete(head)) = parse_request(&mut buf.to_vec(), &Limits::default(), &mut headers)
//! else {
//!     panic!("a valid head")
//! };
//! // PATH_INFO is the normalised path (routes match the same bytes).
//! let mut path_info = Vec::new();
//! normalize_path(head.path.of(buf), &mut path_info)?;
//! let env = RequestEnv {
//!     path_info: &path_info,
//!     method: None,
//!     query: None,
//!     script_name: None,
//!     params: &[],
//!     client_ip: "192.0.2.7".parse().unwrap(),
//!     client_port: Some(50000),
//!     request_id: b"3f2a0c9d1e8b4a6f9c0d2e1f3a4b5c6d",
//!     local: "192.0.2.1:80".parse().unwrap(),
//!     https: false,
//!     http2: false,
//!     client_cert: Default::default(),
//!     document_root: "/srv/www",
//!     server_name: None,
//!     trusted_peer: false,
//!     real_ip_header: b"x-forwarded-for",
//!     forwarded_host: None,
//!     allow_underscores: false,
//!     upgrading: false,
//! };
//! let mut packet = Vec::new();
//! let len = encode_request(buf, &head, &headers, &env, None, 4096, &mut packet)?;
//! assert_eq!(len, packet.len());
//! assert_eq!(usize::from(u16::from_le_bytes([packet[1], packet[2]])), len - 4);
//! let has = |needle: &[u8]| packet.windows(needle.len()).any(|w| w == needle);
//! assert!(has(b"\x09\x00PATH_INFO\x02\x00/b"));
//! // A client header can only ever become an HTTP_ var.
//! assert!(has(b"HTTP_UWSGI_FILE"));
//! # Ok::<(), ringway::uwsgi::UwsgiError>(())
//! ```
#![deny(missing_docs)]

mod error;
mod packet;
mod path;
mod vars;

pub use error::UwsgiError;
pub use packet::{MAX_VARS, PacketWriter};
pub use path::normalize_path;
pub use vars::{HTTP2, RequestEnv, encode_request};
