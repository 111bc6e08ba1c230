//! The upstream exchange: the request goes to uWSGI as a uwsgi packet, its answer goes to
//! the client. Read top to bottom, it is the whole data path of a proxied request.

use std::time::Instant;

use super::{Outcome, Request, relay};
use crate::buffer::Buf;
use crate::client::Client;
use crate::fail::Fail;
use crate::http::{BodyFraming, Method};
use crate::upstream::{read_response_head, send_request};
use crate::uwsgi::{self, RequestEnv};
use crate::worker::Worker;

/// uwsgi packet header: modifier1, datasize (u16), modifier2.
const PACKET_HEADER: usize = 4;

/// Proxies one request to an upstream and relays its answer.
pub(super) async fn forward(
    client: &mut Client,
    req: &Request,
    rest: &mut Buf,
    worker: &Worker,
) -> Result<Outcome, Fail> {
    let config = &worker.config;
    let limits = &config.limits;
    let packet_room = PACKET_HEADER + config.upstream_buffer_size;

    // With a declared length the vars are known before the body: a request they refuse is
    // refused before its body is read. A chunked body's length is known only at its end.
    let declared = match req.head.body {
        BodyFraming::None => Some(None),
        BodyFraming::Length(n) => Some(Some(n)),
        BodyFraming::Chunked => None,
    };
    if let Some(Some(n)) = declared {
        check_body_size(n, limits.max_body_size)?;
    }
    let early_vars = match declared {
        Some(length) => Some(encode_vars(client, req, length, worker)?),
        None => None,
    };
    // The whole body before the upstream: a slow upload must hold ringway, not a Python
    // worker.
    let body = client
        .receive_body(&req.head, rest, worker, packet_room)
        .await?;
    let vars = match early_vars {
        Some(vars) => vars,
        None => encode_vars(client, req, body.len(), worker)?,
    };

    let connecting = Instant::now();
    let upstream = worker
        .upstreams
        .connect(limits.upstream_connect_timeout)
        .await?;
    let connected = Instant::now();
    worker
        .stats
        .upstream_connect
        .observe(connected - connecting);

    send_request(&upstream, vars, body, limits.upstream_read_timeout).await?;
    let is_head = req.head.method == Method::Head;
    let (head, buf) = read_response_head(
        &upstream,
        is_head,
        &mut client.response_headers,
        limits.upstream_read_timeout,
    )
    .await?;
    let upstream_time = connected.elapsed();

    let mut outcome = relay::respond(client, req, upstream, head, buf, worker).await?;
    outcome.upstream = Some(upstream_time);
    Ok(outcome)
}

/// 413 for a declared body over the limit.
fn check_body_size(declared: u64, limit: u64) -> Result<(), Fail> {
    if declared > limit {
        return Err(Fail::BodyTooLarge {
            declared: Some(declared),
            limit,
        });
    }
    Ok(())
}

/// The packet's header and vars block, for a body of `body_len` bytes (`None`: no body).
fn encode_vars(
    client: &Client,
    req: &Request,
    body_len: Option<u64>,
    worker: &Worker,
) -> Result<Buf, Fail> {
    let config = &worker.config;
    let env = RequestEnv {
        peer: client.peer,
        local: worker.local,
        https: false,
        document_root: &config.document_root,
        server_name: config.server_name.as_deref(),
        trusted_peer: config.is_trusted(client.peer.ip()),
        allow_underscores: config.allow_underscores_in_headers,
    };
    let mut vars = Buf::with_capacity(PACKET_HEADER + config.upstream_buffer_size);
    uwsgi::encode_request(
        &client.input,
        &req.head,
        &client.headers,
        &env,
        body_len,
        config.upstream_buffer_size,
        &mut vars,
    )
    .map_err(Fail::Packet)?;
    Ok(vars)
}
