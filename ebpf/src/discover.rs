//! Finding the uWSGI processes behind an upstream address, from /proc.
//!
//! The owner of the upstream's listening socket is the uWSGI master; its
//! workers inherit that socket (and are its children). So: the listening
//! socket's inode (/proc/net/unix, /proc/net/tcp, /proc/net/tcp6), every
//! process holding an fd on it, and all their descendants. Call again after a
//! reload or a worker respawn and feed the difference to
//! [`crate::Probes::watch_pid`] / [`crate::Probes::unwatch_pid`].

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// Where ringway sends requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// A unix stream socket path.
    Unix(PathBuf),
    /// A TCP address (matched by port; any local address).
    Tcp(SocketAddr),
}

/// Processes owning the upstream's listening socket, and all their
/// descendants, sorted. Processes that vanish meanwhile are skipped;
/// /proc entries of other users are unreadable without privileges.
pub fn upstream_pids(upstream: &Upstream) -> io::Result<Vec<u32>> {
    let inodes = match upstream {
        Upstream::Unix(path) => unix_listen_inodes(path)?,
        Upstream::Tcp(addr) => tcp_listen_inodes(*addr)?,
    };
    let owners = pids_holding(&inodes)?;
    Ok(with_descendants(&owners)?.into_iter().collect())
}

fn unix_listen_inodes(path: &Path) -> io::Result<BTreeSet<u64>> {
    let text = std::fs::read_to_string("/proc/net/unix")?;
    let want = path.to_string_lossy();
    // Num RefCount Protocol Flags Type St Inode Path; listening: Flags has __SO_ACCEPTCON (0x10000).
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
            (f.get(7) == Some(&want.as_ref()) && flags & 0x10000 != 0).then(|| f[6].parse().ok())?
        })
        .collect())
}

/// The listening sockets `addr` reaches on this host: on its port, bound to its address or
/// to all of them. A remote upstream has none here, however many local listeners share its
/// port (found by review: any local listener on the port was taken for it).
fn tcp_listen_inodes(addr: SocketAddr) -> io::Result<BTreeSet<u64>> {
    let mut out = BTreeSet::new();
    let want = canonical(addr.ip());
    if !is_local(want) {
        return Ok(out);
    }
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        // sl local_address rem_address st ... inode (field 9)
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (Some(local), Some(st), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let Some((ip, port)) = local.split_once(':') else {
                continue;
            };
            let lport = u16::from_str_radix(port, 16).ok();
            let reaches = proc_net_ip(ip)
                .map(canonical)
                .is_some_and(|ip| ip == want || ip.is_unspecified());
            if *st == "0A"
                && lport == Some(addr.port())
                && reaches
                && let Ok(i) = inode.parse()
            {
                out.insert(i);
            }
        }
    }
    Ok(out)
}

/// An IPv4-mapped IPv6 address as the IPv4 one it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is one of this host's addresses (a socket can be bound to it).
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// An address as /proc/net/tcp{,6} prints it: the bytes of each 32-bit word in host order.
fn proc_net_ip(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let text = hex.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(text, 16).ok()?.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

fn all_pids() -> io::Result<Vec<u32>> {
    Ok(std::fs::read_dir("/proc")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect())
}

fn pids_holding(inodes: &BTreeSet<u64>) -> io::Result<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    if inodes.is_empty() {
        return Ok(out);
    }
    for pid in all_pids()? {
        if is_service_manager(pid) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            if let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']'))
                && inode.parse().is_ok_and(|i: u64| inodes.contains(&i))
            {
                out.insert(pid);
                break;
            }
        }
    }
    Ok(out)
}

/// Whether `pid` is a service manager (init, or a `systemd --user`): under socket activation
/// it holds the app's listening socket to hand it on, and all the host's processes descend
/// from it, so it is no app process (found by review: every process was taken for a uWSGI
/// worker).
fn is_service_manager(pid: u32) -> bool {
    pid == 1 || std::fs::read(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm == b"systemd\n")
}

/// `roots` and every process descending from one of them (by ppid).
pub fn with_descendants(roots: &BTreeSet<u32>) -> io::Result<BTreeSet<u32>> {
    let parents: Vec<(u32, u32)> = all_pids()?
        .into_iter()
        .filter_map(|pid| Some((pid, ppid(pid)?)))
        .collect();
    let mut out = roots.clone();
    // Bounded: each pass adds at least one pid or stops.
    for _ in 0..parents.len() + 1 {
        let before = out.len();
        for (pid, parent) in &parents {
            if out.contains(parent) {
                out.insert(*pid);
            }
        }
        if out.len() == before {
            break;
        }
    }
    Ok(out)
}

fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The comm may hold spaces and parentheses: fields start after the last ')'.
    stat.get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::process::Command;

    #[test]
    fn finds_the_owner_of_a_unix_socket_and_its_children() {
        let path =
            std::env::temp_dir().join(format!("ringway-discover-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let mut child = Command::new("sleep").arg("10").spawn().unwrap();
        let pids = upstream_pids(&Upstream::Unix(path.clone())).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        drop(listener);
        let _ = std::fs::remove_file(&path);
        assert!(pids.contains(&std::process::id()), "{pids:?}");
        assert!(pids.contains(&child.id()), "{pids:?}");
    }

    /// A process holding the socket under the name `systemd` (as a socket-activating
    /// service manager holds it), with a child: neither is taken for the app. The same
    /// process under another name is.
    #[test]
    fn a_service_manager_holding_the_socket_is_not_the_app() {
        for (name, counted) in [("systemd", false), ("uwsgi", true)] {
            let path = std::env::temp_dir().join(format!(
                "ringway-discover-{name}-{}.sock",
                std::process::id()
            ));
            let _ = std::fs::remove_file(&path);
            let script = "import ctypes, socket, subprocess, sys\n\
                s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen()\n\
                ctypes.CDLL(None).prctl(15, sys.argv[2].encode(), 0, 0, 0)\n\
                child = subprocess.Popen(['sleep', '30'])\n\
                print(child.pid, flush=True)\n\
                sys.stdin.read()\n\
                child.kill()\n";
            let mut holder = Command::new("python3")
                .args(["-c", script])
                .arg(&path)
                .arg(name)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
                &mut line,
            )
            .unwrap();
            let child: u32 = line.trim().parse().unwrap();
            let pids = upstream_pids(&Upstream::Unix(path.clone())).unwrap();
            drop(holder.stdin.take());
            holder.wait().unwrap();
            let _ = std::fs::remove_file(&path);
            assert_eq!(pids.contains(&holder.id()), counted, "{name}: {pids:?}");
            assert_eq!(pids.contains(&child), counted, "{name}'s child: {pids:?}");
        }
    }

    #[test]
    fn finds_the_owner_of_a_tcp_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let pids = upstream_pids(&Upstream::Tcp(addr)).unwrap();
        assert!(pids.contains(&std::process::id()), "{pids:?}");
    }

    /// A listener is the upstream's only on its address or on all of them; a remote
    /// upstream on the same port is nothing here.
    #[test]
    fn a_tcp_listener_is_matched_by_address_too() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let me = std::process::id();
        let found = |ip: &str| {
            let addr = SocketAddr::new(ip.parse().unwrap(), port);
            upstream_pids(&Upstream::Tcp(addr)).unwrap().contains(&me)
        };
        assert!(found("127.0.0.1"));
        assert!(!found("127.0.0.2"), "another loopback address");
        assert!(!found("192.0.2.1"), "a remote upstream");
        let any = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let addr = SocketAddr::new(
            "127.0.0.1".parse().unwrap(),
            any.local_addr().unwrap().port(),
        );
        assert!(
            upstream_pids(&Upstream::Tcp(addr)).unwrap().contains(&me),
            "all addresses"
        );
        assert_eq!(proc_net_ip("0100007F"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(
            proc_net_ip("0000000000000000FFFF00000100007F").map(canonical),
            Some("127.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn ppid_survives_odd_comm() {
        assert_eq!(
            ppid(std::process::id()),
            Some(std::os::unix::process::parent_id())
        );
    }
}
