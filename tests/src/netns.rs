//! A network namespace of the test's own (`ip netns`, root only): its own loopback, and its
//! own copy of the per-namespace sysctls, so a test can set `net.ipv4.tcp_migrate_req`
//! without touching the machine's. Processes are run in it with `ip netns exec`, which execs
//! the program (the pid is the program's, so signals reach it). Unix sockets are files, not
//! namespaced: uWSGI outside is reachable from inside.

use std::process::Command;

/// A named network namespace, deleted on drop.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// A new namespace with its loopback up and `net.ipv4.tcp_migrate_req` set to
    /// `migrate_req`. Panics (saying why) if it cannot be made: it needs root.
    pub fn new(migrate_req: bool) -> NetNs {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("ringway-test-{}-{n}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let ns = NetNs { name };
        run(&["ip", "-n", &ns.name, "link", "set", "lo", "up"]);
        // Written from inside: /proc/sys/net shows the namespace of the process reading it.
        let set = format!(
            "echo {} > /proc/sys/net/ipv4/tcp_migrate_req",
            u8::from(migrate_req)
        );
        let mut sh = ns.command("sh");
        sh.args(["-c", &set]);
        check(sh, &set);
        ns
    }

    /// `program` to be run in this namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// The command line prefix that runs a program in this namespace.
    pub fn prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(args: &[&str]) {
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..]);
    check(cmd, &args.join(" "));
}

fn check(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} (iproute2 is needed)"));
    assert!(
        out.status.success(),
        "{what} failed (a network namespace needs root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
