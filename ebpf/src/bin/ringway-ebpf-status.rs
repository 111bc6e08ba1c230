//! Loads every probe and prints one line per probe: `NAME up` or
//! `NAME down: REASON`. Exits 0 either way (a missing probe is not an error).
//! Usage: ringway-ebpf-status [PORT...]
use ringway_ebpf::{Config, Probes};

fn main() {
    let listen_ports = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let config = Config {
        listen_ports,
        proxy_pids: vec![std::process::id()],
        ..Config::default()
    };
    let probes = Probes::load(&config);
    for s in probes.statuses() {
        match &s.reason {
            None => println!("{} up", s.name),
            Some(r) => println!("{} down: {r}", s.name),
        }
    }
}
