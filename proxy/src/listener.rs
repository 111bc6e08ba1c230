//! The listening sockets: one per worker on each address, all bound with SO_REUSEPORT, so
//! the kernel spreads connections over the workers and no accept is shared.

use std::io;
use std::net::{SocketAddr, TcpListener};

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};

/// Accept queue length asked of the kernel (capped by `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// What the connections accepted on a listener speak first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// Plain HTTP (after a PROXY header, with `proxy_protocol`).
    Plain,
    /// TLS.
    Tls,
}

/// One worker's listening socket on one address.
pub(crate) struct Bound {
    pub(crate) socket: TcpListener,
    /// The address it is bound to (the real port when 0 was asked for).
    pub(crate) local: SocketAddr,
    pub(crate) scheme: Scheme,
}

/// Binds one listener per worker on each of `addrs` and deals them out: each worker's list
/// gets one on every address. With port 0 the first picks a free port and the others join
/// it. Returns the addresses bound.
pub(crate) fn bind_for_workers(
    addrs: &[SocketAddr],
    scheme: Scheme,
    workers: &mut [Vec<Bound>],
) -> anyhow::Result<Vec<SocketAddr>> {
    let for_tls = if scheme == Scheme::Tls {
        " for TLS"
    } else {
        ""
    };
    let mut bound = Vec::with_capacity(addrs.len());
    for &asked in addrs {
        let mut local = asked;
        for list in workers.iter_mut() {
            let socket = bind(local).with_context(|| format!("binding {asked}{for_tls}"))?;
            local = socket.local_addr()?;
            list.push(Bound {
                socket,
                local,
                scheme,
            });
        }
        bound.push(local);
    }
    Ok(bound)
}

/// Binds one listener on `addr` with SO_REUSEPORT (the metrics endpoint's too: during a
/// binary upgrade the new process binds beside the old one, as its workers' listeners do).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        // `[::]:80` beside `0.0.0.0:80`, as nginx binds them: IPv4 clients reach the latter.
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    // Blocking mode on purpose: some kernels answer io_uring ops on O_NONBLOCK sockets with
    // EAGAIN instead of waiting (docs/ARCHITECTURE.md, "tokio-uring").
    Ok(socket.into())
}
