//! Mount parity with nginx: an app mounted under `/api` gets the same SCRIPT_NAME, PATH_INFO
//! and the rest of its environ through ringway's `script_name = "/api"` as through nginx
//! mounting it the way its users do:
//!
//! ```nginx
//! location /api/ { include uwsgi_params; uwsgi_param SCRIPT_NAME /api; uwsgi_modifier1 30; ... }
//! ```
//!
//! nginx sends PATH_INFO whole (`/api/x`) and leaves the split to uWSGI. uWSGI's modifier 30
//! handling does not do it under Python 3 (measured on 2.0.31: it only rewrites bytes
//! values, and Python 3 environ values are str; pinned below), so the uWSGI behind nginx
//! runs with `--manage-script-name --mount /api=APP`, the recipe of Flask's docs, which
//! splits PATH_INFO at the mount point. The uWSGI behind ringway runs without it: with it,
//! uWSGI would hide a ringway that forgot the split. So each side has its own uWSGI, serving
//! the same app file with the same options otherwise.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use ringway_tests::nginx::SERVER_NAME;
use ringway_tests::parity::allowed;
use ringway_tests::uwsgi::UwsgiOptions;
use ringway_tests::{App, Nginx, Req, Ringway, Uwsgi, roundtrip};
use serde_json::{Map, Value};

const MOUNT: &str = "/api";

/// (request target, PATH_INFO the app must see under the `/api` mount, QUERY_STRING)
const TABLE: [(&str, &str, &str); 7] = [
    ("/api/", "/", ""),
    ("/api/x", "/x", ""),
    ("/api/x/y?q=1", "/x/y", "q=1"),
    ("/api/a%20b", "/a b", ""),
    ("/api/./x", "/x", ""),
    ("/api/x/../y", "/y", ""),
    ("/api/environ/%C3%BC", "/environ/\u{c3}\u{bc}", ""),
];

/// The environ the app saw for `GET target` (`X-Dump-Environ: 1` makes any path answer it).
fn environ(addr: SocketAddr, target: &str) -> Result<Map<String, Value>, String> {
    let r = roundtrip(addr, &Req::get(target).header("X-Dump-Environ", "1"));
    if r.status != 200 {
        return Err(format!("status {}: {r:?}", r.status));
    }
    match r.json() {
        Value::Object(map) => Ok(map),
        other => Err(format!("not a JSON object: {other}")),
    }
}

/// (SCRIPT_NAME, PATH_INFO, QUERY_STRING) of an environ.
fn split(env: &Map<String, Value>) -> (String, String, String) {
    let var = |k: &str| env.get(k).and_then(Value::as_str).unwrap_or("<absent>");
    (
        var("SCRIPT_NAME").to_owned(),
        var("PATH_INFO").to_owned(),
        var("QUERY_STRING").to_owned(),
    )
}

/// Checks the table against the proxy at `addr`: each request's split is the expected one.
fn table_problems(addr: SocketAddr, side: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (target, path_info, query) in TABLE {
        let want = (MOUNT.to_owned(), path_info.to_owned(), query.to_owned());
        match environ(addr, target) {
            Ok(env) if split(&env) == want => {}
            Ok(env) => problems.push(format!(
                "[{side}] GET {target}: (SCRIPT_NAME, PATH_INFO, QUERY_STRING) {:?}, want {want:?}",
                split(&env)
            )),
            Err(e) => problems.push(format!("[{side}] GET {target}: {e}")),
        }
    }
    problems
}

/// A uWSGI serving `app` that splits PATH_INFO under [`MOUNT`] itself, as nginx's mount needs.
fn managed(app: App) -> UwsgiOptions {
    UwsgiOptions {
        mounts: vec![MOUNT.to_owned()],
        ..UwsgiOptions::new(app)
    }
}

/// ringway with `/api/` mounted (`script_name`) and `/` unmounted, both to `uwsgi`, with
/// nginx's SERVER_NAME so that var compares like any other.
fn ringway_mounting(uwsgi: &Uwsgi) -> Ringway {
    let config = format!(
        r#"[upstreams.app]
servers = ["{}"]

[[routes]]
path = "{MOUNT}/"
upstream = "app"
script_name = "{MOUNT}"

[[routes]]
path = "/"
upstream = "app"
"#,
        uwsgi.upstream()
    );
    Ringway::with_config(config)
        .arg("--server-name", SERVER_NAME)
        .start()
}

#[test]
fn nginx_modifier1_30_alone_leaves_path_info_whole_under_python_3() {
    let uwsgi = Uwsgi::start(App::Raw);
    let nginx = Nginx::start_mounted(uwsgi.socket(), MOUNT, uwsgi.socket());
    let mut problems = Vec::new();
    for (target, path_info, query) in TABLE {
        // nginx's PATH_INFO is its normalised $document_uri, mount prefix included.
        let whole = format!("{MOUNT}{path_info}");
        let want = (MOUNT.to_owned(), whole, query.to_owned());
        match environ(nginx.addr(), target) {
            Ok(env) if split(&env) == want => {}
            Ok(env) => problems.push(format!("GET {target}: {:?}, want {want:?}", split(&env))),
            Err(e) => problems.push(format!("GET {target}: {e}")),
        }
    }
    assert!(
        problems.is_empty(),
        "uWSGI's modifier 30 changed PATH_INFO after all (then the mount tests need no \
         --manage-script-name; see this file's header):\n{}",
        problems.join("\n")
    );
}

#[test]
fn nginx_mounts_split_path_info_once_uwsgi_manages_script_name() {
    for app in App::ALL {
        let (plain, managed) = {
            let mut both = Uwsgi::start_all(vec![UwsgiOptions::new(app), managed(app)]);
            let managed = both.pop().expect("two uWSGIs");
            (both.pop().expect("two uWSGIs"), managed)
        };
        let nginx = Nginx::start_mounted(plain.socket(), MOUNT, managed.socket());
        let problems = table_problems(nginx.addr(), &format!("nginx, {app:?}"));
        assert!(
            problems.is_empty(),
            "{}\nuWSGI log:\n{}",
            problems.join("\n"),
            managed.log()
        );
        // Outside the mount nothing is split.
        let env = environ(nginx.addr(), "/x").unwrap_or_else(|e| panic!("GET /x: {e}"));
        let (script_name, path_info, _) = split(&env);
        assert!(
            matches!(script_name.as_str(), "" | "<absent>") && path_info == "/x",
            "{app:?} /x outside the mount: {env:?}"
        );
        if app == App::Flask {
            let urls = roundtrip(nginx.addr(), &Req::get("/api/urls")).json();
            assert_eq!(urls["relative"], "/api/bytes/7", "{urls}");
            assert_eq!(urls["script_root"], "/api", "{urls}");
        }
    }
}

#[test]
fn ringway_mounts_give_the_app_what_nginx_mounts_give_it() {
    for app in App::ALL {
        let (plain, managed) = {
            let mut both = Uwsgi::start_all(vec![UwsgiOptions::new(app), managed(app)]);
            let managed = both.pop().expect("two uWSGIs");
            (both.pop().expect("two uWSGIs"), managed)
        };
        let nginx = Nginx::start_mounted(plain.socket(), MOUNT, managed.socket());
        let ringway = ringway_mounting(&plain);

        // Both against the expected split, so that agreeing on a wrong one fails too.
        let mut problems = table_problems(ringway.addr(), &format!("ringway, {app:?}"));
        problems.extend(table_problems(nginx.addr(), &format!("nginx, {app:?}")));

        // Then every var, as in the main parity test (only its every-case allowances apply:
        // REMOTE_PORT, SERVER_PORT).
        for (target, _, _) in TABLE {
            let case = format!("mount {target}");
            let (Ok(via_nginx), Ok(via_ringway)) = (
                environ(nginx.addr(), target),
                environ(ringway.addr(), target),
            ) else {
                continue; // already reported by the table
            };
            let keys: BTreeSet<&String> = via_nginx.keys().chain(via_ringway.keys()).collect();
            for key in keys {
                let (n, r) = (via_nginx.get(key), via_ringway.get(key));
                if n != r && allowed(&case, key).is_none() {
                    problems.push(format!(
                        "[{app:?}] GET {target}: {key}: nginx {n:?} vs ringway {r:?}"
                    ));
                }
            }
        }
        // And as Flask sees it: the URLs it builds under the mount.
        if app == App::Flask {
            let urls = |addr| roundtrip(addr, &Req::get("/api/urls")).json();
            let (via_nginx, via_ringway) = (urls(nginx.addr()), urls(ringway.addr()));
            if via_nginx != via_ringway {
                problems.push(format!(
                    "Flask /api/urls: nginx {via_nginx} vs ringway {via_ringway}"
                ));
            }
        }
        assert!(
            problems.is_empty(),
            "{} mount differences:\n{}\nringway stderr:\n{}",
            problems.len(),
            problems.join("\n"),
            ringway.stderr()
        );
    }
}
