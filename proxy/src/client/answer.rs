//! ringway's own short answers to the client: errors, refusals, redirects, and
//! `100 Continue`.

use std::time::Duration;

use super::Client;
use crate::buffer::Buf;
use crate::clock::http_date_now;
use crate::http::{self, OwnResponse};
use crate::identity::RequestId;
use crate::io::write_all;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// One of ringway's own answers.
pub(crate) struct Own<'a> {
    pub(crate) status: u16,
    /// The connection stays open after it.
    pub(crate) keep_alive: bool,
    /// A HEAD request: the head alone.
    pub(crate) head_only: bool,
    /// Headers beside the ones every answer has.
    pub(crate) headers: &'a [(&'a [u8], &'a [u8])],
    /// The request's ID, sent as `X-Request-ID`.
    pub(crate) id: &'a RequestId,
    /// The operator's error page for the body (its Content-Type and bytes), if any.
    pub(crate) page: Option<(&'a str, &'a [u8])>,
    /// Strict-Transport-Security, on a TLS connection when configured
    /// ([`Client::hsts`]).
    pub(crate) hsts: Option<&'a str>,
}

impl Client {
    /// Sends a complete answer of ringway's own (only its head for a HEAD request); false if
    /// it could not be written.
    pub(crate) async fn answer(&self, own: Own<'_>, limit: Duration) -> bool {
        let Own {
            status,
            keep_alive,
            head_only,
            headers,
            id,
            page,
            hsts,
        } = own;
        let body_len = page.map_or(0, |(_, body)| body.len());
        // The page is copied into the pooled answer buffer: one memcpy, no file I/O.
        let mut out = Buf::with_capacity(256 + if head_only { 0 } else { body_len });
        let with_hsts: Vec<(&[u8], &[u8])>;
        // An operator's own Strict-Transport-Security (`response_headers`) is not doubled.
        let own_sts = headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(b"strict-transport-security"));
        let headers = match hsts.filter(|_| !own_sts) {
            Some(hsts) => {
                with_hsts = headers
                    .iter()
                    .copied()
                    .chain([(&b"Strict-Transport-Security"[..], hsts.as_bytes())])
                    .collect();
                &with_hsts[..]
            }
            None => headers,
        };
        let response = OwnResponse {
            status,
            keep_alive,
            head_only,
            date: &http_date_now(),
            headers,
            request_id: id.as_bytes(),
        };
        let head_len = match page {
            Some((content_type, body)) => {
                http::write_own_response_with_body(&mut out, &response, content_type, body)
            }
            None => http::write_own_response(&mut out, &response),
        };
        self.head_goes_out(&out[..head_len]);
        write_all(&self.stream, out, 0, limit).await.is_ok()
    }

    /// Tells a client waiting for it (`Expect: 100-continue`) to send its body; false if it
    /// could not be written.
    pub(crate) async fn send_continue(&self, limit: Duration) -> bool {
        write_all(&self.stream, Buf::copy_of(CONTINUE), 0, limit)
            .await
            .is_ok()
    }
}
