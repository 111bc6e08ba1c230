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

impl Client {
    /// Sends a complete answer of ringway's own (only its head for a HEAD request), with
    /// `headers` and the request's ID added; false if it could not be written.
    pub(crate) async fn answer(
        &self,
        status: u16,
        keep_alive: bool,
        head_only: bool,
        headers: &[(&[u8], &[u8])],
        id: &RequestId,
        limit: Duration,
    ) -> bool {
        let mut out = Buf::with_capacity(256);
        let with_hsts: Vec<(&[u8], &[u8])>;
        let headers = match &self.hsts {
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
        http::write_own_response(&mut out, &response);
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
