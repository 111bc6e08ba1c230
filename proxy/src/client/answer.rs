//! ringway's own short answers to the client: error statuses and `100 Continue`.

use std::time::Duration;

use super::Client;
use crate::buffer::Buf;
use crate::clock::http_date_now;
use crate::http;
use crate::io::write_all;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl Client {
    /// Sends a complete error answer with `Connection: close` (only its head for a HEAD
    /// request); false if it could not be written.
    pub(crate) async fn answer(&self, status: u16, head_only: bool, limit: Duration) -> bool {
        let mut out = Buf::with_capacity(256);
        http::write_error_response(&mut out, status, false, head_only, &http_date_now());
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
