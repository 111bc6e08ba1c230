//! The steering program (`bpf/steer.bpf.c`) against real listeners: two "old" ones
//! and two "new" ones on one port, as during a binary upgrade. Each test runs on a
//! thread in a network namespace of its own, where `net.ipv4.tcp_migrate_req` is 0,
//! as on a host nobody tuned: what moves a queued connection there is the program.
//!
//! Needs root (CI runs as root): see `common::cannot_run`.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::Command;

use socket2::{Domain, Socket, Type};

mod common;
use common::{cannot_run, is_root};

/// Runs `test` on a thread of its own in a new network namespace (loopback up).
fn in_own_netns(name: &str, test: impl FnOnce() + Send) {
    if !is_root() {
        cannot_run(
            name,
            "needs root (a network namespace, CAP_BPF, CAP_NET_ADMIN)",
        );
        return;
    }
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: unshare has no memory preconditions; CLONE_NEWNET moves only
                // this thread, which nothing else uses.
                assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
                let up = Command::new("ip")
                    .args(["link", "set", "lo", "up"])
                    .status();
                assert!(up.unwrap().success(), "ip link set lo up");
                let sysctl = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req");
                assert_eq!(sysctl.unwrap().trim(), "0", "a fresh namespace's default");
                test();
            })
            .join()
            .unwrap();
    });
}

/// A listener on `addr` with SO_REUSEPORT, as ringway binds them; non-blocking, so
/// that the test can count what is queued on it.
fn listener(addr: SocketAddr) -> TcpListener {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_reuse_port(true).unwrap();
    socket.bind(&addr.into()).unwrap();
    socket.listen(128).unwrap();
    socket.set_nonblocking(true).unwrap();
    socket.into()
}

/// Accepts whatever is queued on `listener`.
fn accept_all(listener: &TcpListener) -> Vec<TcpStream> {
    let mut accepted = Vec::new();
    loop {
        match listener.accept() {
            Ok((stream, _)) => accepted.push(stream),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return accepted,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

fn connect(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n).map(|_| TcpStream::connect(addr).unwrap()).collect()
}

#[test]
fn new_connections_go_to_the_steered_listeners_only() {
    in_own_netns("steer_new", || {
        let first = listener("127.0.0.1:0".parse().unwrap());
        let addr = first.local_addr().unwrap();
        let old = [first, listener(addr)];
        let new = [listener(addr), listener(addr)];
        // Unsteered, the kernel spreads over all four.
        let _clients = connect(addr, 64);
        let before: Vec<usize> = old
            .iter()
            .chain(&new)
            .map(|l| accept_all(l).len())
            .collect();
        assert!(before[0] + before[1] > 0, "without the program: {before:?}");

        ringway_ebpf::steer_to(&[new[0].as_fd(), new[1].as_fd()]).unwrap();
        let _clients = connect(addr, 64);
        let old_got: usize = old.iter().map(|l| accept_all(l).len()).sum();
        let new_got: Vec<usize> = new.iter().map(|l| accept_all(l).len()).collect();
        assert_eq!(old_got, 0, "the old listeners get nothing new");
        assert_eq!(new_got.iter().sum::<usize>(), 64);
        assert!(
            new_got.iter().all(|&n| n > 0),
            "spread by hash: {new_got:?}"
        );

        // Once the steered listeners are gone, the others serve again.
        drop(new);
        let _clients = connect(addr, 16);
        let old_got: usize = old.iter().map(|l| accept_all(l).len()).sum();
        assert_eq!(old_got, 16, "the kernel picks by hash again");
    });
}

#[test]
fn connections_queued_on_a_listener_that_closes_move_to_the_steered_one() {
    in_own_netns("steer_migrate", || {
        let old = listener("127.0.0.1:0".parse().unwrap());
        let addr = old.local_addr().unwrap();
        let mut clients = connect(addr, 16); // queued on the only listener
        let new = listener(addr);
        ringway_ebpf::steer_to(&[new.as_fd()]).unwrap();
        drop(old);
        let accepted = accept_all(&new);
        assert_eq!(accepted.len(), 16, "every queued connection moved");
        // Each one works both ways: none was reset.
        for (client, mut server) in clients.iter_mut().zip(accepted) {
            client.write_all(b"x").unwrap();
            server.set_nonblocking(false).unwrap();
            let mut byte = [0u8; 1];
            server.read_exact(&mut byte).unwrap();
            server.write_all(b"y").unwrap();
            client.read_exact(&mut byte).unwrap();
            assert_eq!(&byte, b"y");
        }
    });
}
