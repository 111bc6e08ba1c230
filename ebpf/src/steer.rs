//! Steering a listen address's new connections to this process's listeners
//! (`bpf/steer.bpf.c`), so that another process on the same SO_REUSEPORT
//! port, an old ringway during a binary upgrade, stops getting handshakes the
//! moment this one listens, and has none in flight when it closes its
//! listeners.
//!
//! Why: with plain SO_REUSEPORT hashing, the old process's listeners take
//! new handshakes until they close. Connections queued on them then are
//! reset unless `net.ipv4.tcp_migrate_req` is 1, and even with it, a
//! handshake whose last ACK the kernel is processing as the listener closes
//! is reset (the child is made, then dropped because its listener is no
//! longer listening). Steering leaves the old listeners idle instead.

use std::os::fd::BorrowedFd;

use aya::EbpfLoader;
use aya::maps::ReusePortSockArray;
use aya::programs::SkReuseport;

static STEER_OBJ: &[u8] = aya::include_bytes_aligned!("../obj/steer.bpf.o");

/// Why the steering could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SteerError {
    /// The object did not load (no CAP_BPF/CAP_NET_ADMIN, seccomp, an old kernel).
    #[error("loading the steering program")]
    Load(#[from] aya::EbpfError),
    /// A listener could not be put in the map.
    #[error("listing a listener for the steering program")]
    Map(#[from] aya::maps::MapError),
    /// The program was refused or could not be attached to the group.
    #[error("attaching the steering program")]
    Program(#[from] aya::programs::ProgramError),
    /// The committed object lacks a part this code names.
    #[error("the steering object has no {0} (rebuild with ebpf/build-objects.sh)")]
    Missing(&'static str),
}

/// Sends every new connection to `listeners` from now on: they must be all
/// of this process's listening sockets on one address, bound with
/// SO_REUSEPORT (one reuseport group). Connections are spread over them by
/// flow hash, as without a program. The program stays attached to the group
/// after this returns (the kernel holds it); a later process's replaces it.
pub fn steer_to(listeners: &[BorrowedFd<'_>]) -> Result<(), SteerError> {
    attach(listeners)
}

impl SteerError {
    /// The error with every cause under it (aya's errors name the step, their
    /// source says why: `Operation not permitted`).
    pub fn with_causes(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(err) = cause {
            // aya repeats a step's words at two levels: each is said once.
            let said = err.to_string();
            if !text.contains(&said) {
                text.push_str(": ");
                text.push_str(&said);
            }
            cause = err.source();
        }
        text
    }
}

fn attach(listeners: &[BorrowedFd<'_>]) -> Result<(), SteerError> {
    let (Some(first), Ok(count)) = (listeners.first(), u32::try_from(listeners.len())) else {
        return Ok(());
    };
    let mut ebpf = EbpfLoader::new()
        .override_global("listener_count", &count, true)
        .map_max_entries("listeners", count)
        .load(STEER_OBJ)?;
    let mut map: ReusePortSockArray<_> = ebpf
        .take_map("listeners")
        .ok_or(SteerError::Missing("map `listeners`"))?
        .try_into()?;
    for (index, fd) in (0..count).zip(listeners) {
        map.set(index, fd, 0)?;
    }
    let program: &mut SkReuseport = ebpf
        .program_mut("steer")
        .ok_or(SteerError::Missing("program `steer`"))?
        .try_into()?;
    program.load()?;
    program.attach(first)?;
    Ok(())
}
