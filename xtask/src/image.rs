//! `cargo xtask image`: builds `localhost/ringway:latest` from docker/Dockerfile with podman.
//!
//! The Dockerfile takes its base images as build arguments. The public ones (rust, debian,
//! python) are used when podman has them or can pull them; otherwise local ones are made
//! from Debian packages (`debootstrap --variant=minbase bookworm` from the machine's apt
//! mirror, imported with `podman import`), once: later runs find them by name. The build
//! image also carries this machine's Rust toolchain (Debian's rustc predates edition 2024).
//!
//! `--test` then checks the image for real (see `container_test`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::container_test;
use crate::procs;
use crate::system_packages::{self, Need};
use crate::workspace::Workspace;

/// What `cargo xtask image` builds.
pub const RINGWAY_IMAGE: &str = "localhost/ringway:latest";
/// The demo app under uWSGI, for docker/compose.yaml (built by `--test`).
pub const APP_IMAGE: &str = "localhost/ringway-demo-app:latest";

/// Podman's global flags on these machines: crun refuses the hybrid cgroup layout.
const PODMAN_GLOBAL: [&str; 4] = ["--runtime", "runc", "--cgroup-manager", "cgroupfs"];
/// Flags for every container podman starts (build steps included): raising rlimits is not
/// permitted here, and podman would raise them to its defaults.
pub const ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

const SUITE: &str = "bookworm";
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(clap::Args)]
pub struct ImageArgs {
    /// Also build the demo app's image, bring up docker/compose.yaml with podman-compose,
    /// check a request through ringway, and check that without the seccomp profile the
    /// image fails with the message naming it.
    #[arg(long)]
    pub test: bool,
    /// Use (and if need be make) local base images without trying the public ones.
    #[arg(long)]
    pub local_bases: bool,
}

/// One base image: the public name, and the local one made when that is not available.
struct Base {
    /// The Dockerfile's build argument.
    arg: &'static str,
    public: &'static str,
    local: String,
    /// Debian packages beyond minbase.
    packages: &'static [&'static str],
    /// Whether the host's Rust toolchain goes in.
    rust: bool,
    /// Environment of the image (`ENV` lines).
    env: &'static [&'static str],
}

pub fn image(ws: &Workspace, args: &ImageArgs) -> Result<u8> {
    system_packages::ensure(&[Need::Image])?;
    let started = std::time::Instant::now();
    build_image(
        ws,
        "docker/Dockerfile",
        RINGWAY_IMAGE,
        &[build_base()?, run_base()],
        Layers::Discard,
        args.local_bases,
    )?;
    eprintln!("xtask: built {RINGWAY_IMAGE} in {:.0?}", started.elapsed());
    if !args.test {
        return Ok(0);
    }
    build_image(
        ws,
        "docker/app.Dockerfile",
        APP_IMAGE,
        &[app_base()],
        Layers::Keep,
        args.local_bases,
    )?;
    container_test::run(ws)?;
    eprintln!("xtask: image built and tested in {:.0?}", started.elapsed());
    Ok(0)
}

/// A `podman` command with this machine's global flags.
pub fn podman() -> Command {
    let mut cmd = Command::new("podman");
    cmd.args(PODMAN_GLOBAL);
    cmd
}

fn build_base() -> Result<Base> {
    let version = host_rustc_version()?;
    Ok(Base {
        arg: "BUILD_IMAGE",
        public: "docker.io/library/rust:1-bookworm",
        local: format!("localhost/ringway-base-rust:{SUITE}-{version}"),
        // The linker and libc for rustc, a C compiler for AWS-LC (rustls's crypto), CA
        // certificates for cargo.
        packages: &["gcc", "libc6-dev", "ca-certificates"],
        rust: true,
        env: &[
            "CARGO_HOME=/usr/local/cargo",
            "PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:\
             /usr/sbin:/usr/bin:/sbin:/bin",
        ],
    })
}

fn run_base() -> Base {
    Base {
        arg: "RUN_IMAGE",
        public: "docker.io/library/debian:bookworm-slim",
        local: format!("localhost/ringway-base-debian:{SUITE}"),
        packages: &[],
        rust: false,
        env: &[],
    }
}

fn app_base() -> Base {
    Base {
        arg: "APP_IMAGE",
        public: "docker.io/library/python:3.11-slim-bookworm",
        local: format!("localhost/ringway-base-python:{SUITE}"),
        // uWSGI is built from source by pip.
        packages: &[
            "python3",
            "python3-venv",
            "python3-dev",
            "gcc",
            "libc6-dev",
            "ca-certificates",
        ],
        rust: false,
        // pip trusts its own CA bundle unless told to use the system's.
        env: &["PIP_CERT=/etc/ssl/certs/ca-certificates.crt"],
    }
}

/// Whether podman keeps a build's intermediate images as its cache.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layers {
    /// The app image: its slow step (pip building uWSGI) rarely changes.
    Keep,
    /// ringway's: its sources change with every commit, and each kept builder stage would
    /// be a gigabyte; the cargo caches (mounts) make its build incremental anyway.
    Discard,
}

fn build_image(
    ws: &Workspace,
    dockerfile: &str,
    tag: &str,
    bases: &[Base],
    layers: Layers,
    local_only: bool,
) -> Result<()> {
    let mut cmd = podman();
    cmd.current_dir(&ws.root)
        .args(["build", "--network", "host"])
        .arg(format!("--layers={}", layers == Layers::Keep))
        .args(ULIMITS)
        .args(["-f", dockerfile])
        .arg("--ignorefile")
        .arg(format!("{dockerfile}.dockerignore"))
        .args(["-t", tag]);
    for base in bases {
        let image = base_image(ws, base, local_only)?;
        cmd.arg("--build-arg").arg(format!("{}={image}", base.arg));
    }
    let previous = image_id(tag);
    procs::run_checked(cmd.arg("."))?;
    // The image the tag named before is left untagged: remove it rather than let every
    // build leave one behind (podman refuses if a container still uses it).
    if let Some(previous) = previous
        && image_id(tag).as_ref() != Some(&previous)
    {
        let _ = podman()
            .args(["rmi", &previous])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    Ok(())
}

/// The ID of the image a name points at, if any.
fn image_id(name: &str) -> Option<String> {
    let output = podman()
        .args(["image", "inspect", "--format", "{{.Id}}", name])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !id.is_empty()).then_some(id)
}

/// The public image if podman has it, else the local one if it was made earlier, else the
/// public one if it can be pulled, else the local one, made now. A machine that cannot pull
/// tries once, not on every build.
fn base_image(ws: &Workspace, base: &Base, local_only: bool) -> Result<String> {
    if !local_only && image_exists(base.public)? {
        return Ok(base.public.to_owned());
    }
    if image_exists(&base.local)? {
        return Ok(base.local.clone());
    }
    if !local_only {
        eprintln!("xtask: trying to pull {}", base.public);
        let pulled = podman()
            .args(["pull", "--quiet", base.public])
            .stdout(Stdio::null())
            .status()
            .context("cannot run podman")?;
        if pulled.success() {
            return Ok(base.public.to_owned());
        }
        eprintln!(
            "xtask: {} is not available: using a local base image",
            base.public
        );
    }
    if !image_exists(&base.local)? {
        make_local_base(ws, base)?;
    }
    Ok(base.local.clone())
}

fn image_exists(name: &str) -> Result<bool> {
    let status = podman()
        .args(["image", "exists", name])
        .status()
        .context("cannot run podman (install it: apt-get install podman)")?;
    Ok(status.success())
}

/// debootstrap a minimal bookworm with the base's packages (and the host's Rust
/// toolchain), and import it as the base's local image.
fn make_local_base(ws: &Workspace, base: &Base) -> Result<()> {
    let rootfs = ws.target.join("image").join(
        base.local
            .rsplit('/')
            .next()
            .unwrap_or("base")
            .replace(':', "-"),
    );
    if rootfs.exists() {
        fs::remove_dir_all(&rootfs)
            .with_context(|| format!("cannot remove {}", rootfs.display()))?;
    }
    fs::create_dir_all(&rootfs).with_context(|| format!("cannot create {}", rootfs.display()))?;
    let mirror = apt_mirror();
    eprintln!(
        "xtask: making {} with debootstrap from {mirror} (once; later runs reuse it)",
        base.local
    );
    let mut debootstrap = Command::new("debootstrap");
    debootstrap.args(["--variant=minbase"]);
    if !base.packages.is_empty() {
        debootstrap.arg(format!("--include={}", base.packages.join(",")));
    }
    debootstrap.arg(SUITE).arg(&rootfs).arg(&mirror);
    procs::run_checked(&mut debootstrap)?;

    if base.packages.contains(&"ca-certificates") {
        trust_host_cas(&rootfs)?;
    }
    if base.rust {
        copy_toolchain(&rootfs)?;
    }
    let mut changes = vec!["ENV=LANG=C.UTF-8".to_owned(), "CMD=[\"bash\"]".to_owned()];
    changes.extend(base.env.iter().map(|env| format!("ENV={env}")));
    import(&rootfs, &base.local, &changes)?;
    fs::remove_dir_all(&rootfs).with_context(|| format!("cannot remove {}", rootfs.display()))
}

/// The image trusts what this machine trusts: its CA bundle replaces Debian's (the same
/// certificates, plus any the machine added, such as a TLS-inspecting proxy's, without
/// which cargo and pip could not reach their registries from here).
fn trust_host_cas(rootfs: &Path) -> Result<()> {
    let host_bundle = Path::new(HOST_CA_BUNDLE);
    if !host_bundle.exists() {
        return Ok(());
    }
    let dest = rootfs.join(HOST_CA_BUNDLE.trim_start_matches('/'));
    fs::copy(host_bundle, &dest)
        .with_context(|| format!("cannot copy {HOST_CA_BUNDLE} to {}", dest.display()))?;
    Ok(())
}

/// Copies the host's active Rust toolchain (its sysroot, without the documentation) to
/// /usr/local/rust: rustc finds its libraries relative to its own binary.
fn copy_toolchain(rootfs: &Path) -> Result<()> {
    let output = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .context("cannot run rustc")?;
    if !output.status.success() {
        bail!("`rustc --print sysroot` {}", procs::describe(output.status));
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let dest = rootfs.join("usr/local/rust");
    fs::create_dir_all(&dest).with_context(|| format!("cannot create {}", dest.display()))?;
    for part in ["bin", "lib", "libexec", "etc"] {
        let source = sysroot.join(part);
        if source.exists() {
            procs::run_checked(Command::new("cp").arg("-a").arg(&source).arg(&dest))?;
        }
    }
    Ok(())
}

/// `tar -C ROOTFS -c . | podman import --change ... - NAME`.
fn import(rootfs: &Path, name: &str, changes: &[String]) -> Result<()> {
    let mut tar = Command::new("tar");
    tar.arg("-C").arg(rootfs).args(["-c", "."]);
    let mut tar_child = tar
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|err| procs::spawn_error(&tar, err))?;
    let tar_out = tar_child
        .stdout
        .take()
        .context("tar's output pipe is missing")?;
    let mut import = podman();
    import.arg("import");
    for change in changes {
        import.arg("--change").arg(change);
    }
    import
        .args(["-", name])
        .stdin(tar_out)
        .stdout(Stdio::null());
    eprintln!(
        "$ tar -C {} -c . | {}",
        rootfs.display(),
        procs::display(&import)
    );
    let imported = import
        .status()
        .map_err(|err| procs::spawn_error(&import, err))?;
    let tarred = tar_child.wait().context("cannot wait for tar")?;
    if !tarred.success() {
        bail!("tar {}", procs::describe(tarred));
    }
    if !imported.success() {
        bail!("podman import {}", procs::describe(imported));
    }
    Ok(())
}

fn host_rustc_version() -> Result<String> {
    let output = Command::new("rustc")
        .arg("--version")
        .output()
        .context("cannot run rustc")?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "rustc 1.95.0 (hash date)" → "1.95.0"
    text.split_whitespace()
        .nth(1)
        .map(str::to_owned)
        .with_context(|| format!("unexpected `rustc --version`: {text}"))
}

/// The Debian mirror apt uses on this machine, else deb.debian.org.
fn apt_mirror() -> String {
    let mut texts = Vec::new();
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
        paths.sort();
        texts.extend(
            paths
                .iter()
                .filter(|path| {
                    path.extension()
                        .is_some_and(|ext| ext == "sources" || ext == "list")
                })
                .filter_map(|path| fs::read_to_string(path).ok()),
        );
    }
    texts.extend(fs::read_to_string("/etc/apt/sources.list").ok());
    texts
        .iter()
        .find_map(|text| mirror_in(text))
        .unwrap_or_else(|| DEFAULT_MIRROR.to_owned())
}

/// The first mirror serving the bookworm suite in an apt sources text, deb822 (`URIs:` and
/// `Suites:` in one stanza) or one-line (`deb URI bookworm main`).
fn mirror_in(text: &str) -> Option<String> {
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .map(str::trim)
        };
        if let (Some(uris), Some(suites)) = (field("URIs:"), field("Suites:"))
            && suites.split_whitespace().any(|suite| suite == SUITE)
            && let Some(uri) = uris.split_whitespace().next()
        {
            return Some(uri.to_owned());
        }
    }
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next() != Some("deb") {
            return None;
        }
        let mut uri = words.next()?;
        if uri.starts_with('[') {
            // options: `deb [arch=amd64 signed-by=...] URI suite`
            if !uri.ends_with(']') {
                words.find(|word| word.ends_with(']'))?;
            }
            uri = words.next()?;
        }
        (words.next() == Some(SUITE)).then(|| uri.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::mirror_in;

    #[test]
    fn the_mirror_comes_from_the_bookworm_stanza() {
        let deb822 = "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
                      URIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n\
                      Components: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\n\
                      Suites: bookworm-security\n";
        assert_eq!(
            mirror_in(deb822).as_deref(),
            Some("http://deb.debian.org/debian")
        );
        let security_first = "Types: deb\nURIs: http://security.example/debian-security\n\
                              Suites: bookworm-security\n\nTypes: deb\n\
                              URIs: http://mirror.example/debian\nSuites: bookworm\n";
        assert_eq!(
            mirror_in(security_first).as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn one_line_sources_are_read_too() {
        let list = "# comment\ndeb http://security.debian.org/ bookworm-security main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n";
        assert_eq!(
            mirror_in(list).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            mirror_in("deb [arch=amd64] http://m/debian bookworm main\n").as_deref(),
            Some("http://m/debian")
        );
        assert_eq!(mirror_in("deb http://x/ubuntu jammy main\n"), None);
    }
}
