//! The Python side: a virtualenv with uWSGI, gunicorn, Granian and Flask from
//! tests/apps/requirements.txt.
//!
//! Created with `python3 -m venv` when missing; `pip install -r` runs again only when
//! requirements.txt is newer than the stamp left by the last successful install.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

use crate::procs;
use crate::workspace::Workspace;

const STAMP: &str = ".ringway-requirements.stamp";

/// A ready virtualenv.
pub struct Venv {
    pub dir: PathBuf,
    /// xtask's own (`target/venv`), not one given with RINGWAY_VENV: it may be made again.
    pub ours: bool,
}

impl Venv {
    pub fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }

    pub fn uwsgi(&self) -> PathBuf {
        self.bin("uwsgi")
    }

    /// A program the venv installed (uwsgi, granian, gunicorn).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }
}

/// What has to be done to bring the venv up to date.
#[derive(Debug, PartialEq, Eq)]
enum Todo {
    Nothing,
    Create,
    Install(&'static str),
}

/// Makes sure the venv exists and holds what requirements.txt asks for.
pub fn ensure(ws: &Workspace) -> Result<Venv> {
    let venv = Venv {
        dir: ws.venv_dir(),
        ours: ws.venv_is_ours(),
    };
    let requirements = ws.requirements();
    if !requirements.is_file() {
        bail!("{} is missing", requirements.display());
    }
    // Two first runs at once (`run` in one terminal, `test` in another) would each
    // `--clear` the venv under the other's pip: one at a time, the second then finds it made.
    let lock_path = ws.target.join("venv.lock");
    fs::create_dir_all(&ws.target)
        .with_context(|| format!("cannot create {}", ws.target.display()))?;
    let lock = fs::File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&lock);
    // SAFETY: flock(2) on a descriptor `lock` owns; the lock goes when it is closed.
    if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } == -1 {
        eprintln!(
            "venv: another xtask is preparing {}: waiting",
            venv.dir.display()
        );
        // SAFETY: as above.
        if unsafe { libc::flock(fd, libc::LOCK_EX) } == -1 {
            bail!(
                "cannot lock {}: {}",
                lock_path.display(),
                std::io::Error::last_os_error()
            );
        }
    }
    let stamp = venv.dir.join(STAMP);
    let todo = todo(&venv, &requirements, &stamp)?;
    match todo {
        Todo::Nothing => {
            eprintln!("venv: {} is up to date", venv.dir.display());
            return Ok(venv);
        }
        Todo::Create => {
            eprintln!(
                "venv: creating {} and installing {} (uWSGI builds from source: \
                 this takes a minute or two)",
                venv.dir.display(),
                requirements.display()
            );
            create(&venv)?;
        }
        Todo::Install(why) => {
            eprintln!(
                "venv: {why}: installing {} into {}",
                requirements.display(),
                venv.dir.display()
            );
        }
    }
    install(&venv, &requirements)?;
    fs::write(&stamp, fs::read(&requirements)?)
        .with_context(|| format!("cannot write {}", stamp.display()))?;
    for tool in [venv.python(), venv.uwsgi()] {
        if !procs::is_executable(&tool) {
            bail!("{} is missing after pip install", tool.display());
        }
    }
    eprintln!("venv: ready at {}", venv.dir.display());
    Ok(venv)
}

fn todo(venv: &Venv, requirements: &Path, stamp: &Path) -> Result<Todo> {
    if !procs::is_executable(&venv.python()) {
        return Ok(Todo::Create);
    }
    // Without pip the venv is half made (`python -m venv` without Debian's python3-venv
    // writes bin/python, then fails at ensurepip): ours is made again; one given with
    // RINGWAY_VENV (made by another tool, perhaps) is the user's, left as it is.
    if !procs::is_executable(&venv.bin("pip")) {
        if venv.ours {
            return Ok(Todo::Create);
        }
        bail!(
            "{} has no pip, which xtask installs with: make it with `python3 -m venv`",
            venv.dir.display()
        );
    }
    if !procs::is_executable(&venv.uwsgi()) {
        return Ok(Todo::Install("bin/uwsgi is missing"));
    }
    let Some(stamp_time) = mtime(stamp)? else {
        return Ok(Todo::Install("no record of a finished install"));
    };
    let requirements_time =
        mtime(requirements)?.with_context(|| format!("{} is missing", requirements.display()))?;
    if requirements_time > stamp_time {
        return Ok(Todo::Install(
            "requirements.txt changed since the last install",
        ));
    }
    Ok(Todo::Nothing)
}

fn mtime(path: &Path) -> Result<Option<SystemTime>> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Some(meta.modified()?)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("cannot stat {}", path.display())),
    }
}

/// The interpreter that creates the venv: `$RINGWAY_PYTHON`, else `python3`.
fn base_python() -> String {
    env::var("RINGWAY_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_owned())
}

fn create(venv: &Venv) -> Result<()> {
    let python = base_python();
    if let Some(parent) = venv.dir.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut cmd = Command::new(&python);
    cmd.arg("-m").arg("venv").arg(&venv.dir);
    if venv.ours {
        // A half-made venv from an earlier failure is started over.
        cmd.arg("--clear");
    }
    procs::run_checked(&mut cmd).with_context(|| {
        format!(
            "cannot create the venv with `{python} -m venv`: Python 3 with the venv module is \
             needed (Debian: apt-get install python3-venv python3-dev)"
        )
    })
}

fn install(venv: &Venv, requirements: &Path) -> Result<()> {
    let mut cmd = Command::new(venv.python());
    cmd.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "-r",
    ])
    .arg(requirements);
    procs::run_checked(&mut cmd).context(
        "pip install failed. uWSGI is built from source: it needs a C compiler and the \
         Python headers (Debian: apt-get install build-essential python3-dev), and PyPI \
         must be reachable",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = env::temp_dir().join(format!("xtask-venv-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("venv/bin")).expect("scratch dir");
        dir
    }

    fn executable(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        fs::write(path, "#!/bin/sh\n").expect("write");
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    #[test]
    fn decides_what_to_do() -> Result<()> {
        let dir = scratch("todo");
        let venv = Venv {
            dir: dir.join("venv"),
            ours: true,
        };
        let requirements = dir.join("requirements.txt");
        let stamp = venv.dir.join(STAMP);
        fs::write(&requirements, "Flask\n")?;
        assert_eq!(todo(&venv, &requirements, &stamp)?, Todo::Create);

        executable(&venv.python());
        assert_eq!(
            todo(&venv, &requirements, &stamp)?,
            Todo::Create,
            "python without pip: half made"
        );
        executable(&venv.bin("pip"));
        assert!(matches!(
            todo(&venv, &requirements, &stamp)?,
            Todo::Install(_)
        ));

        executable(&venv.uwsgi());
        assert!(matches!(
            todo(&venv, &requirements, &stamp)?,
            Todo::Install(_)
        ));

        fs::write(&stamp, "")?;
        let now = SystemTime::now();
        fs::File::open(&requirements)?.set_modified(now - std::time::Duration::from_secs(60))?;
        fs::File::options()
            .write(true)
            .open(&stamp)?
            .set_modified(now)?;
        assert_eq!(todo(&venv, &requirements, &stamp)?, Todo::Nothing);

        fs::File::options()
            .write(true)
            .open(&requirements)?
            .set_modified(now + std::time::Duration::from_secs(60))?;
        assert!(matches!(
            todo(&venv, &requirements, &stamp)?,
            Todo::Install(_)
        ));
        fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
