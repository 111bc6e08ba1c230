//! One request, from its parsed head to its last response byte.
//!
//! [`serve`] dispatches the request to its handler (today the upstream exchange; static
//! files and redirects join later) and turns whatever failed before a response began into
//! ringway's own answer, through the one table in `crate::fail`. A handler is a sequence of
//! small steps, each returning `Result<_, Fail>`, ending in an [`Outcome`].

mod relay;
mod upstream;

use std::time::Duration;

use crate::client::{Client, Next};
use crate::fail::Fail;
use crate::http::{Method, RequestHead};
use crate::worker::Worker;

/// How a request ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    /// The status sent (0 when none could be).
    pub(crate) status: u16,
    /// Time the request spent with the upstream: connected → response head received.
    pub(crate) upstream: Option<Duration>,
    /// What the connection does next.
    pub(crate) next: Next,
}

/// The request being served.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request {
    /// Its head (spans into `Client::input`).
    pub(crate) head: RequestHead,
    /// The connection may serve another request after this one (the client allows it and
    /// the server is not stopping).
    pub(crate) keep_alive: bool,
}

/// Serves the request whose head is at the start of `client.input`.
pub(crate) async fn serve(client: &mut Client, head: RequestHead, worker: &Worker) -> Outcome {
    let mut rest = client.take_rest(head.head_len);
    let req = Request {
        head,
        keep_alive: head.keep_alive && !worker.is_stopping(),
    };
    let outcome = match upstream::forward(client, &req, &mut rest, worker).await {
        Ok(outcome) => outcome,
        Err(fail) => answer(client, fail, head.method == Method::Head, worker).await,
    };
    // Whatever followed this request is the start of the next one.
    client.put_back_rest(rest);
    outcome
}

/// Reports `fail` and answers it with its status, if the client can still be answered.
pub(crate) async fn answer(
    client: &Client,
    fail: Fail,
    head_only: bool,
    worker: &Worker,
) -> Outcome {
    fail.report(client.peer, &worker.stats);
    let Some(status) = fail.status() else {
        return Outcome {
            status: 0,
            upstream: None,
            next: Next::Abort,
        };
    };
    let sent = client
        .answer(status, head_only, worker.config.limits.send_timeout)
        .await;
    let next = match (sent, fail.may_linger()) {
        (false, _) => Next::Abort,
        (true, true) => Next::Linger,
        (true, false) => Next::Close,
    };
    Outcome {
        status,
        upstream: None,
        next,
    }
}
