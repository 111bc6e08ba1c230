//! Loads every probe and prints one line per probe: `NAME up` or
//! `NAME down: REASON`. Exits 0 either way (a missing probe is not an error).
//!
//! Usage: ringway-ebpf-status [PORT...]
//!        ringway-ebpf-status --ensure-tracefs   (mounts tracefs if needed, prints its events dir)
use ringway_ebpf::{Config, Probes};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--ensure-tracefs") {
        match ringway_ebpf::mount::ensure_tracefs() {
            Ok(root) => println!("{}", root.join("events").display()),
            Err(e) => {
                eprintln!("ensure_tracefs: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let listen_ports = args.iter().filter_map(|a| a.parse().ok()).collect();
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
