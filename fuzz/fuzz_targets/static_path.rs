//! The static path resolver: which file a request path opens under a static route's root
//! (normalise, route, the part under the root, the dotfile rule, `openat2` beneath the
//! root, the index), through `ringway::fuzzing::Routes::lookup_file`.
//!
//! The input is a raw request path. The tree, made once per process in the temp directory,
//! has a secret beside the root, a sibling directory whose name extends the root's, and
//! symlinks inside the root pointing in, out, up and to an absolute path. Checked: a file
//! opened is always one of the regular files under the root (by device and inode, whatever
//! symlinks lead to it), never the secret nor the sibling's; a route that hides dotfiles
//! never opens a path with a dot segment; the part under the root is relative.

#![no_main]

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ringway::fuzzing::{FileLookup, RouteKind, RouteSpec, Routes};
use ringway_fuzz::show;

struct Site {
    routes: Routes,
    /// (device, inode) of every regular file under the root.
    inside: HashSet<(u64, u64)>,
    /// Routes that serve dotfiles.
    dotfiles: Vec<usize>,
}

static SITE: OnceLock<Site> = OnceLock::new();
/// The tree's directory, removed when the fuzzer exits.
static BASE: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_tree() {
    if let Some(base) = BASE.get() {
        let _ = fs::remove_dir_all(base);
    }
}

fuzz_target!(|data: &[u8]| {
    let site = SITE.get_or_init(build);
    let FileLookup::File { route, rel, file } = site.routes.lookup_file(data) else {
        return;
    };
    let meta = file.metadata().expect("fstat of an open file");
    assert!(meta.is_file(), "{:?} is not a regular file", show(&rel));
    assert!(
        site.inside.contains(&(meta.dev(), meta.ino())),
        "{:?} (under the root: {:?}) opened a file outside the root",
        show(data),
        show(&rel)
    );
    assert!(
        !rel.starts_with(b"/"),
        "an absolute path under the root: {:?}",
        show(&rel)
    );
    if !site.dotfiles.contains(&route) {
        let dot = rel.split(|&b| b == b'/').any(|s| s.first() == Some(&b'.'));
        assert!(
            !dot,
            "{:?} opened a dotfile on a route that hides them",
            show(data)
        );
    }
});

fn build() -> Site {
    let base = std::env::temp_dir().join(format!("ringway-fuzz-static-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    BASE.get_or_init(|| base.clone());
    // SAFETY: registers a plain function with no arguments, run once at exit.
    unsafe { libc::atexit(remove_tree) };
    let root = base.join("root");
    let file = |rel: &str, text: &str| {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    };
    file("index.html", "index");
    file("a.txt", "a");
    file(".env", "dotfile");
    file(".git/config", "dot-directory");
    file("sub/index.html", "sub index");
    file("sub/b.txt", "b");
    file("sub/.hidden", "hidden");
    file("noindex/c.txt", "c");
    fs::write(base.join("secret.txt"), "secret").expect("write");
    fs::create_dir_all(base.join("root-evil")).expect("mkdir");
    fs::write(base.join("root-evil/x.txt"), "sibling").expect("write");
    let link = |target: &Path, name: &str| symlink(target, root.join(name)).expect("symlink");
    link(Path::new("a.txt"), "in");
    link(Path::new("../secret.txt"), "out");
    link(&base.join("secret.txt"), "abs");
    link(Path::new(".."), "up");
    link(Path::new(".."), "sub/up");
    link(Path::new("../root-evil"), "evil");
    link(Path::new("sub"), "sublink");
    link(Path::new(".env"), "visible");
    let fifo = std::ffi::CString::new(root.join("fifo").into_os_string().into_encoded_bytes())
        .expect("a path without NUL");
    // SAFETY: a valid C string; mkfifo only creates a node.
    let made = unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) };
    assert_eq!(made, 0, "mkfifo");

    let dir = |index: &[&str], dotfiles: bool| RouteKind::Static {
        dir: root.clone(),
        index: index.iter().map(|&name| name.to_owned()).collect(),
        dotfiles,
    };
    let route = |path: &str, exact: bool, kind: RouteKind| RouteSpec {
        path: path.to_owned(),
        exact,
        regex: None,
        no_regex: false,
        kind,
    };
    let specs = vec![
        route("/", false, RouteKind::Upstream),
        route("/static/", false, dir(&["index.htm", "index.html"], false)),
        // No trailing slash: `/files..` continues the route's path (nginx's alias trap).
        route("/files", false, dir(&[], true)),
        route("/dot/", false, dir(&["index.html"], true)),
        route("/exact", true, dir(&[], false)),
        route("/static/sub/", false, dir(&[], false)),
    ];
    let dotfiles = vec![2, 3];
    let routes = Routes::new(&specs).expect("the site's routes");

    let mut inside = HashSet::new();
    walk(&root, &mut inside);
    for outside in [base.join("secret.txt"), base.join("root-evil/x.txt")] {
        let meta = fs::metadata(outside).expect("stat");
        assert!(!inside.contains(&(meta.dev(), meta.ino())));
    }
    Site {
        routes,
        inside,
        dotfiles,
    }
}

/// The regular files under `dir`, not following symlinks.
fn walk(dir: &PathBuf, found: &mut HashSet<(u64, u64)>) {
    for entry in fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("dir entry");
        let meta = entry.metadata().expect("lstat");
        if meta.is_dir() {
            walk(&entry.path(), found);
        } else if meta.is_file() {
            found.insert((meta.dev(), meta.ino()));
        }
    }
}
