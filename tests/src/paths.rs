//! Where the binaries and apps are: from `RINGWAY_BIN`, `RINGWAY_VENV`, `RINGWAY_NGINX`, with
//! defaults under the workspace. A missing one panics with what to run, so a half-set-up
//! machine fails loudly instead of skipping.

use std::env;
use std::path::{Path, PathBuf};

const SETUP_HINT: &str = "run `cargo xtask test`, which builds ringway, creates target/venv \
     from tests/apps/requirements.txt and sets RINGWAY_BIN / RINGWAY_VENV / RINGWAY_NGINX";

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `tests/apps`.
pub fn apps_dir() -> PathBuf {
    workspace_root().join("tests").join("apps")
}

/// The document root both nginx (`root`) and ringway (`--document-root`) get, so that
/// DOCUMENT_ROOT is equal on both sides of the parity test.
pub fn document_root() -> PathBuf {
    apps_dir().join("htdocs")
}

fn from_env_or(var: &str, default: PathBuf) -> PathBuf {
    match env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => default,
    }
}

/// The ringway binary: `RINGWAY_BIN`, else `<workspace>/target/debug/ringway`.
pub fn ringway_bin() -> PathBuf {
    let path = from_env_or("RINGWAY_BIN", workspace_root().join("target/debug/ringway"));
    assert!(
        path.is_file(),
        "ringway binary not found at {} (RINGWAY_BIN): {SETUP_HINT}, \
         or `cargo build -p ringway`",
        path.display()
    );
    path
}

/// The Python venv holding uWSGI and Flask: `RINGWAY_VENV`, else `<workspace>/target/venv`.
pub fn venv() -> PathBuf {
    let path = from_env_or("RINGWAY_VENV", workspace_root().join("target/venv"));
    assert!(
        path.join("bin/uwsgi").is_file(),
        "no uwsgi in the venv at {} (RINGWAY_VENV): {SETUP_HINT}, or \
         `python3 -m venv target/venv && target/venv/bin/pip install -r \
         tests/apps/requirements.txt`",
        path.display()
    );
    path
}

/// `$RINGWAY_VENV/bin/uwsgi`.
pub fn uwsgi_bin() -> PathBuf {
    venv().join("bin/uwsgi")
}

/// nginx: `RINGWAY_NGINX`, else `nginx` on PATH, else `/usr/sbin/nginx`.
pub fn nginx_bin() -> PathBuf {
    if let Some(v) = env::var_os("RINGWAY_NGINX").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(v);
        assert!(
            path.is_file(),
            "RINGWAY_NGINX={} is not a file: {SETUP_HINT}",
            path.display()
        );
        return path;
    }
    let on_path = env::var_os("PATH")
        .map(|p| {
            env::split_paths(&p)
                .map(|d| d.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("nginx not found on PATH nor at /usr/sbin/nginx: `apt-get install nginx` or set RINGWAY_NGINX; {SETUP_HINT}")
        })
}

/// The WSGI apps under `tests/apps`; both serve the same routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    /// `raw_wsgi.py`: framework-free WSGI.
    Raw,
    /// `demo_flask.py`: the Flask demo.
    Flask,
}

impl App {
    /// Both apps, for tests that run every case against each.
    pub const ALL: [App; 2] = [App::Raw, App::Flask];

    /// The app's file, given to uWSGI's `--wsgi-file`.
    pub fn file(self) -> PathBuf {
        apps_dir().join(match self {
            App::Raw => "raw_wsgi.py",
            App::Flask => "demo_flask.py",
        })
    }
}
