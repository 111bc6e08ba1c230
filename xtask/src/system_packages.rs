//! The system packages a task needs (Debian names), checked before it runs.
//!
//! On Debian or Ubuntu, dpkg says what is installed; as root the missing packages are
//! installed with apt-get (saying what and why), otherwise xtask stops with the one
//! `apt-get install` command that would install them. Elsewhere each package's tool is
//! looked up instead, and xtask stops naming the missing ones. `.ci/run` goes through
//! here too (`cargo xtask setup test`), so this is the one list.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use clap::ValueEnum;

use crate::procs;

/// A Debian package and why a task needs it.
pub struct Package {
    pub name: &'static str,
    pub why: &'static str,
    /// A program (in `$PATH`, or an absolute path) the package provides: how it is found
    /// on a system without dpkg. `None` for headers and libraries, which are only checked
    /// through dpkg.
    pub probe: Option<&'static str>,
}

const fn pkg(name: &'static str, probe: Option<&'static str>, why: &'static str) -> Package {
    Package { name, why, probe }
}

/// What the venv with the demo app and its servers needs: `cargo xtask run`, and the test
/// and bench tasks too.
const VENV: &[Package] = &[
    pkg(
        "python3-venv",
        None,
        "the venv with uWSGI and the demo app (Debian's python3 needs it for \
         `python3 -m venv`)",
    ),
    pkg(
        "python3-dev",
        None,
        "the Python headers: pip builds uWSGI from source in the venv",
    ),
    pkg(
        "build-essential",
        Some("cc"),
        "a C compiler and libc headers for uWSGI (with libcrypt-dev, pulled in by \
         libc6-dev); its g++ also builds libFuzzer for the fuzz targets",
    ),
];

/// What the end-to-end tests, the parity tests and the eBPF build need.
const TEST: &[Package] = &[
    pkg(
        "nginx",
        Some("/usr/sbin/nginx"),
        "the reference proxy of the parity tests",
    ),
    pkg(
        "wrk",
        Some("wrk"),
        "the load generator of the benchmarks (their smoke test runs it) and of the binary \
         upgrade test (tests/tests/upgrade.rs)",
    ),
    pkg(
        "nghttp2-client",
        Some("h2load"),
        "h2load, the keep-alive TLS load of the benchmarks (their smoke test runs it)",
    ),
    pkg(
        "chromium",
        Some("chromium"),
        "a headless browser: a test loads the live metrics page in it",
    ),
    pkg(
        "iproute2",
        Some("ss"),
        "`ss` (the kernel's view of RTTs, compared with the probes') and `ip netns` (the \
         upgrade test's network namespaces, each with its own tcp_migrate_req)",
    ),
    pkg(
        "util-linux",
        Some("setpriv"),
        "`setpriv` runs ringway unprivileged in a test",
    ),
    pkg(
        "haproxy",
        Some("haproxy"),
        "the load balancer in front of ringway in the real-client-IP tests (PROXY protocol \
         v2 in mode tcp, X-Forwarded-For in mode http)",
    ),
    pkg(
        "curl",
        Some("curl"),
        "a TLS client of the TLS tests (TLS 1.2 and 1.3)",
    ),
    pkg(
        "openssl",
        Some("openssl"),
        "`openssl s_client` and `s_server` in the TLS tests (s_server accepts TLS 1.0/1.1), \
         and the RSA PKCS#1 and SEC1 test keys",
    ),
    pkg(
        "sslscan",
        Some("sslscan"),
        "lists the protocols and suites ringway accepts in the TLS tests",
    ),
    pkg(
        "prometheus",
        Some("promtool"),
        "a real Prometheus scrapes ringway in a test; its promtool checks and unit-tests \
         deploy/prometheus/",
    ),
    pkg(
        "prometheus-nginx-exporter",
        Some("prometheus-nginx-exporter"),
        "the nginx exporter, as its users run it, reads ringway's stub_status page in a test",
    ),
    pkg(
        "systemd",
        Some("systemd-analyze"),
        "`systemd-analyze verify` checks deploy/systemd/ringway.service",
    ),
];

/// What `cargo xtask bench` runs besides ringway.
const BENCH: &[Package] = &[
    pkg(
        "nginx",
        Some("/usr/sbin/nginx"),
        "the stack ringway is compared with",
    ),
    pkg("wrk", Some("wrk"), "the load generator"),
    pkg(
        "nghttp2-client",
        Some("h2load"),
        "h2load, the keep-alive TLS load",
    ),
];

/// What `cargo xtask image` needs to build and run the container image without a
/// registry.
const IMAGE: &[Package] = &[
    pkg(
        "podman",
        Some("podman"),
        "runs the image and the compose stack",
    ),
    pkg(
        "buildah",
        Some("buildah"),
        "builds the image from docker/Dockerfile",
    ),
    pkg(
        "runc",
        Some("runc"),
        "the OCI runtime podman uses here (crun refuses the hybrid cgroup layout)",
    ),
    pkg(
        "debootstrap",
        Some("debootstrap"),
        "makes the Debian base images locally (no image can be pulled)",
    ),
    pkg(
        "debian-archive-keyring",
        None,
        "the keys debootstrap checks Debian's archive with (Ubuntu lacks them)",
    ),
    pkg(
        "podman-compose",
        Some("podman-compose"),
        "brings docker/compose.yaml up in `cargo xtask image --test`",
    ),
    pkg(
        "curl",
        Some("curl"),
        "asks the composed stack for its first page in `cargo xtask image --test`",
    ),
];

/// What rebuilding the eBPF objects needs (`cargo xtask setup ebpf`): no build and no test
/// does, as the objects are committed.
const EBPF: &[Package] = &[
    pkg(
        "clang-19",
        Some("clang-19"),
        "rebuilds the committed eBPF objects (ebpf/build-objects.sh) after a change under \
         ebpf/bpf/; a cargo build needs no clang",
    ),
    pkg(
        "libbpf-dev",
        None,
        "the helper headers ebpf/build-objects.sh compiles the probes with",
    ),
    pkg(
        "bpftool",
        Some("bpftool"),
        "dumps the kernel's BTF, to look up a structure the probes read (ebpf/README.md)",
    ),
];

/// A task whose system packages are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Need {
    /// `cargo xtask run`
    Run,
    /// `cargo xtask test`
    Test,
    /// `cargo xtask bench`
    Bench,
    /// `cargo xtask image`
    Image,
    /// `ebpf/build-objects.sh`, after a change to the probes' C sources
    Ebpf,
}

impl Need {
    pub fn packages(self) -> impl Iterator<Item = &'static Package> {
        let lists: &[&'static [Package]] = match self {
            Need::Run => &[VENV],
            Need::Test => &[VENV, TEST],
            Need::Bench => &[VENV, BENCH],
            Need::Image => &[IMAGE],
            Need::Ebpf => &[EBPF],
        };
        lists.iter().flat_map(|list| list.iter())
    }
}

/// The packages of `needs`, each once, in the order first listed.
fn wanted(needs: &[Need]) -> Vec<&'static Package> {
    let mut seen = BTreeSet::new();
    needs
        .iter()
        .flat_map(|need| need.packages())
        .filter(|p| seen.insert(p.name))
        .collect()
}

/// Makes sure the packages `needs` list are there: installs the missing ones as root on
/// Debian/Ubuntu, otherwise stops saying how to install them.
pub fn ensure(needs: &[Need]) -> Result<()> {
    let wanted = wanted(needs);
    if !is_debian_like() {
        return check_by_probe(&wanted);
    }
    let installed = dpkg_installed(&wanted)?;
    let missing: Vec<&Package> = wanted
        .into_iter()
        .filter(|p| !installed.contains(p.name))
        .collect();
    if missing.is_empty() {
        eprintln!("system packages: all there");
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|p| p.name).collect();
    if !is_root() {
        bail!(
            "missing system packages: {}\n{}\ninstall them with:\n    sudo {}",
            names.join(" "),
            reasons(&missing),
            install_command(&names)
        );
    }
    eprintln!("system packages: installing {}", names.join(" "));
    eprintln!("{}", reasons(&missing));
    apt_get(&["update", "-q"])?;
    let mut args = vec![
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        // Wait for another apt (an unattended upgrade, a colleague's install) to finish
        // instead of failing at once.
        "-o",
        "DPkg::Lock::Timeout=600",
    ];
    args.extend(&names);
    apt_get(&args)?;
    let installed = dpkg_installed(&missing)?;
    let still: Vec<&str> = names
        .into_iter()
        .filter(|n| !installed.contains(*n))
        .collect();
    if !still.is_empty() {
        bail!(
            "apt-get finished but these are not installed: {}",
            still.join(" ")
        );
    }
    Ok(())
}

fn reasons(packages: &[&Package]) -> String {
    packages
        .iter()
        .map(|p| format!("  {}: {}", p.name, p.why))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The command a person would type (as root) to install `names`.
fn install_command(names: &[&str]) -> String {
    format!(
        "apt-get install -y --no-install-recommends {}",
        names.join(" ")
    )
}

fn is_debian_like() -> bool {
    Path::new("/etc/debian_version").is_file()
        && procs::which("dpkg-query").is_some()
        && procs::which("apt-get").is_some()
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The names among `packages` that dpkg lists as installed.
fn dpkg_installed(packages: &[&Package]) -> Result<BTreeSet<String>> {
    let mut cmd = Command::new("dpkg-query");
    cmd.args(["-W", "-f", "${Package} ${db:Status-Status}\\n"])
        .args(packages.iter().map(|p| p.name));
    // dpkg-query exits 1 when some name is unknown to it (never installed): its output
    // still lists the others, so only the output counts.
    let out = cmd.output().map_err(|err| procs::spawn_error(&cmd, err))?;
    Ok(parse_dpkg_status(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_dpkg_status(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| {
            let (name, status) = line.split_once(' ')?;
            (status.trim() == "installed").then(|| name.to_owned())
        })
        .collect()
}

fn apt_get(args: &[&str]) -> Result<()> {
    let mut last = None;
    for attempt in 1..=3u64 {
        let mut cmd = Command::new("apt-get");
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        match procs::run_checked(&mut cmd) {
            Ok(()) => return Ok(()),
            Err(err) => {
                // Package mirrors hiccup: try again a little later.
                eprintln!("system packages: attempt {attempt} of 3 failed: {err:#}");
                last = Some(err);
                thread::sleep(Duration::from_secs(attempt * 5));
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("apt-get never ran")))
}

/// Without dpkg: each package's tool has to be found; headers and libraries are trusted.
fn check_by_probe(wanted: &[&Package]) -> Result<()> {
    let missing: Vec<&Package> = wanted
        .iter()
        .copied()
        .filter(|p| p.probe.is_some_and(|probe| !probe_found(probe)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    bail!(
        "missing tools, from these Debian packages (install their equivalents with your \
         system's package manager):\n{}",
        reasons(&missing)
    )
}

fn probe_found(probe: &str) -> bool {
    if probe.starts_with('/') {
        procs::is_executable(Path::new(probe))
    } else {
        procs::which(probe).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_counts_only_installed() {
        let text = "nginx installed\nwrk config-files\ncurl not-installed\nchromium installed\n";
        let got = parse_dpkg_status(text);
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec!["chromium".to_owned(), "nginx".to_owned()]
        );
    }

    #[test]
    fn a_package_is_wanted_once() {
        let names: Vec<&str> = wanted(&[Need::Test, Need::Bench, Need::Image, Need::Ebpf])
            .iter()
            .map(|p| p.name)
            .collect();
        let unique: BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(names.len(), unique.len(), "{names:?}");
        assert!(names.contains(&"prometheus") && names.contains(&"debootstrap"));
    }

    #[test]
    fn the_command_names_every_package() {
        assert_eq!(
            install_command(&["wrk", "nginx"]),
            "apt-get install -y --no-install-recommends wrk nginx"
        );
    }
}
