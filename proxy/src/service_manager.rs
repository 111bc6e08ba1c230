//! Telling the service manager (systemd's `Type=notify`) what the process is doing, as
//! sd_notify(3) does: `READY=1` once every listener accepts (so `systemctl start` waits for
//! it and fails when the start does, and units ordered after ringway find it serving),
//! `RELOADING=1` then `READY=1` around a reload, `STOPPING=1` when the drain begins. One
//! datagram each to the socket `$NOTIFY_SOCKET` names; nothing when it is unset (not under
//! such a manager), and a failed send changes nothing but a debug line.

use std::ffi::OsStr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The listeners accept.
pub fn ready() {
    send(&format!("READY=1\nMAINPID={}", std::process::id()));
}

/// The start will take up to `more` from now (an `[app]` waited for): the manager's start
/// timeout (systemd's default 90 s) is extended to it, so a slow app does not get ringway
/// killed mid-start (found by review).
pub fn starting_for(more: std::time::Duration) {
    send(&format!("EXTEND_TIMEOUT_USEC={}", more.as_micros()));
}

/// A reload begins (`READY=1` says it ended, taken or refused).
pub fn reloading() {
    // MONOTONIC_USEC: the manager tells this reload from an older one by it
    // (systemd's `Type=notify-reload` requires it).
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000;
    send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
}

/// A reload ended; `refused`: why the configuration was not taken (shown by `systemctl
/// status`).
pub fn reloaded(refused: Option<&str>) {
    match refused {
        None => send("READY=1\nSTATUS=serving"),
        Some(why) => send(&format!(
            "READY=1\nSTATUS=reload refused, the old configuration serves: {}",
            why.replace('\n', " ")
        )),
    }
}

/// The drain began.
pub fn stopping() {
    send("STOPPING=1");
}

fn send(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.as_bytes();
    let addr = match path.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(OsStr::from_bytes(path)),
    };
    let sent = addr.and_then(|addr| {
        let socket = UnixDatagram::unbound()?;
        socket.send_to_addr(state.as_bytes(), &addr)
    });
    if let Err(err) = sent {
        tracing::debug!(error = %err, "telling the service manager failed");
    }
}
