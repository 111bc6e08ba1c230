//! The listening sockets: one per worker on each address, all bound with SO_REUSEPORT, so
//! the kernel spreads connections over the workers and no accept is shared; and each
//! address's new connections steered to this process's listeners, away from an older
//! process's on the same port (a binary upgrade: docs/ARCHITECTURE.md, "Reload and upgrade").

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

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
    deferred: bool,
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
            if deferred {
                defer_accept(&socket).with_context(|| format!("deferring accepts on {asked}"))?;
            }
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

/// Steers the new connections on each address to this process's listeners there, one
/// per worker (each worker's list holds one listener per address, in the same order).
pub(crate) fn steer_each_address(workers: &[Vec<Bound>]) {
    let Some(first) = workers.first() else {
        return;
    };
    for (index, bound) in first.iter().enumerate() {
        let fds: Vec<BorrowedFd<'_>> = workers
            .iter()
            .filter_map(|list| list.get(index))
            .map(|b| b.socket.as_fd())
            .collect();
        if !steer_here(bound.local, &fds) {
            return;
        }
    }
}

/// Whether steering was refused once already: said once, not per address.
static STEERING_REFUSED: AtomicBool = AtomicBool::new(false);

/// Steers the new connections on `addr` to `listeners` (all of this process's there).
/// Without it (no CAP_BPF and CAP_NET_ADMIN, seccomp, a kernel before 5.14) ringway serves
/// as well, and says once what an upgrade then needs. Returns whether it is in place.
pub(crate) fn steer_here(addr: SocketAddr, listeners: &[BorrowedFd<'_>]) -> bool {
    if STEERING_REFUSED.load(Ordering::Relaxed) {
        return false;
    }
    match ringway_ebpf::steer_to(listeners) {
        Ok(()) => {
            tracing::debug!(%addr, "new connections steered to this process");
            true
        }
        Err(err) => {
            STEERING_REFUSED.store(true, Ordering::Relaxed);
            tracing::info!(
                %addr,
                "new connections are not steered to this process ({}): a binary upgrade \
                 then needs net.ipv4.tcp_migrate_req=1 (README, \"Reload and upgrade\")",
                err.with_causes()
            );
            false
        }
    }
}

/// How long the kernel holds a connection that has sent nothing before handing it over
/// anyway, in seconds: nginx's `deferred` asks for 1 (the kernel rounds it to its first
/// SYN-ACK retransmission, about a second).
const DEFER_ACCEPT_SECS: libc::c_int = 1;

/// Makes `listener` hand over a connection only once its first bytes arrived
/// (`TCP_DEFER_ACCEPT`, nginx's `listen ... deferred`). HTTP, TLS and PROXY clients all
/// speak first, so none waits for it; a connection that sends nothing wakes no worker for
/// its first second.
fn defer_accept(listener: &TcpListener) -> io::Result<()> {
    let secs = DEFER_ACCEPT_SECS;
    // SAFETY: the fd is open while `listener` is borrowed; the value is a c_int of the size
    // given.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&raw const secs).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
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
