//! Accept-queue depth against its limit, per listener, from the kernel's
//! socket diagnostics (NETLINK_SOCK_DIAG, what `ss -lnt` shows as
//! Recv-Q/Send-Q): for a listening TCP socket `idiag_rqueue` is
//! `sk_ack_backlog` (connections waiting to be accepted) and `idiag_wqueue`
//! is `sk_max_ack_backlog` (the limit: min(listen backlog, somaxconn)).
//!
//! Polled from userspace: one netlink round trip per call, no probe needed,
//! works without privileges for the caller's own network namespace.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One listening socket's accept queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenBacklog {
    /// The listener's address.
    pub local: SocketAddr,
    /// Connections that completed the handshake and wait for accept().
    pub depth: u32,
    /// The most the queue holds before SYNs are dropped.
    pub limit: u32,
}

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const TCP_LISTEN: u32 = 10;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct NlMsgHdr {
    len: u32,
    kind: u16,
    flags: u16,
    seq: u32,
    pid: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct InetDiagSockId {
    sport: [u8; 2],
    dport: [u8; 2],
    src: [u8; 16],
    dst: [u8; 16],
    ifindex: u32,
    cookie: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct InetDiagReqV2 {
    family: u8,
    protocol: u8,
    ext: u8,
    pad: u8,
    states: u32,
    id: InetDiagSockId,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct InetDiagMsg {
    family: u8,
    state: u8,
    timer: u8,
    retrans: u8,
    id: InetDiagSockId,
    expires: u32,
    rqueue: u32,
    wqueue: u32,
    uid: u32,
    inode: u32,
}

#[repr(C)]
struct Request {
    hdr: NlMsgHdr,
    req: InetDiagReqV2,
}

/// Listening TCP sockets (IPv4 and IPv6) on `port`, with their accept queues.
pub fn listen_backlog(port: u16) -> io::Result<Vec<ListenBacklog>> {
    let mut out = Vec::new();
    for family in [libc::AF_INET, libc::AF_INET6] {
        out.extend(
            dump(family as u8)?
                .into_iter()
                .filter(|b| b.local.port() == port),
        );
    }
    Ok(out)
}

fn dump(family: u8) -> io::Result<Vec<ListenBacklog>> {
    // SAFETY: plain socket(2) call; the fd is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh, valid fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let request = Request {
        hdr: NlMsgHdr {
            len: std::mem::size_of::<Request>() as u32,
            kind: SOCK_DIAG_BY_FAMILY,
            flags: (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
            seq: 1,
            pid: 0,
        },
        req: InetDiagReqV2 {
            family,
            protocol: libc::IPPROTO_TCP as u8,
            states: 1 << TCP_LISTEN,
            ..InetDiagReqV2::default()
        },
    };
    // SAFETY: sends size_of::<Request>() bytes from a live #[repr(C)] value.
    let sent = unsafe {
        libc::send(
            fd.as_raw_fd(),
            (&raw const request).cast(),
            std::mem::size_of::<Request>(),
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    // Bounded: a dump ends with NLMSG_DONE; 10k datagrams is far beyond any real listener count.
    for _ in 0..10_000 {
        // SAFETY: receives into an owned buffer of buf.len() bytes.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut msgs = &buf[..n as usize];
        while msgs.len() >= std::mem::size_of::<NlMsgHdr>() {
            let hdr: NlMsgHdr = read(msgs);
            let len = hdr.len as usize;
            if len < std::mem::size_of::<NlMsgHdr>() || len > msgs.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "truncated netlink message",
                ));
            }
            match hdr.kind as libc::c_int {
                libc::NLMSG_DONE => return Ok(out),
                libc::NLMSG_ERROR => {
                    let errno: i32 = read(&msgs[std::mem::size_of::<NlMsgHdr>()..len]);
                    return Err(io::Error::from_raw_os_error(-errno));
                }
                _ => {
                    let body = &msgs[std::mem::size_of::<NlMsgHdr>()..len];
                    if body.len() >= std::mem::size_of::<InetDiagMsg>() {
                        out.push(to_backlog(&read::<InetDiagMsg>(body)));
                    }
                }
            }
            // Messages are 4-byte aligned.
            let next = (len + 3) & !3;
            msgs = msgs.get(next..).unwrap_or(&[]);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "sock_diag dump did not end",
    ))
}

/// Copies a #[repr(C)] value out of the front of a byte slice.
fn read<T: Copy + Default>(bytes: &[u8]) -> T {
    let mut v = T::default();
    let n = std::mem::size_of::<T>().min(bytes.len());
    // SAFETY: copies at most size_of::<T>() bytes into a T made of integers,
    // for which every bit pattern is valid; the source has n readable bytes.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), (&raw mut v).cast::<u8>(), n) };
    v
}

fn to_backlog(m: &InetDiagMsg) -> ListenBacklog {
    let ip = if m.family == libc::AF_INET6 as u8 {
        IpAddr::V6(Ipv6Addr::from(m.id.src))
    } else {
        IpAddr::V4(Ipv4Addr::new(
            m.id.src[0],
            m.id.src[1],
            m.id.src[2],
            m.id.src[3],
        ))
    };
    ListenBacklog {
        local: SocketAddr::new(ip, u16::from_be_bytes(m.id.sport)),
        depth: m.rqueue,
        limit: m.wqueue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_linux_inet_diag_h() {
        assert_eq!(std::mem::size_of::<InetDiagSockId>(), 48);
        assert_eq!(std::mem::size_of::<InetDiagReqV2>(), 56);
        assert_eq!(std::mem::size_of::<InetDiagMsg>(), 72);
        assert_eq!(std::mem::size_of::<Request>(), 72);
    }
}
