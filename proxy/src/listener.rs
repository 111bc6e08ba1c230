//! The listening sockets: one per worker, all bound to the same address with SO_REUSEPORT,
//! so the kernel spreads connections over the workers and no accept is shared.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Accept queue length asked of the kernel (capped by `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// Binds `count` listeners on `addr`. With port 0 the first picks a free port and the others
/// join it.
pub fn bind_all(addr: SocketAddr, count: usize) -> io::Result<Vec<TcpListener>> {
    let first = bind(addr)?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..count {
        listeners.push(bind(addr)?);
    }
    Ok(listeners)
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
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    // Blocking mode on purpose: some kernels answer io_uring ops on O_NONBLOCK sockets with
    // EAGAIN instead of waiting (docs/ARCHITECTURE.md, "tokio-uring").
    Ok(socket.into())
}
