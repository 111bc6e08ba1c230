//! Path traversal against a static route: a corpus of request targets that try to reach a
//! file outside the root (dot segments raw, percent-encoded, double-encoded, overlong UTF-8,
//! with backslashes, NUL bytes, absolute paths that a naive `root.join(path)` would follow,
//! symlinks out of the root, absolute-form targets, the internal route), and a corpus of
//! X-Accel-Redirect values an app might pass on from its input.
//!
//! Next to the root lie `secret.txt` and `outside/page.txt`, holding a marker unique to the
//! run; the private dir behind the internal route holds another. Every byte of every answer
//! (head and body) is searched for both markers, and for `/etc/passwd`'s first line. Each
//! attempt is followed by a healthy request that must get the right file at once.
//!
//! The same corpus runs through nginx (`alias`, its defaults): it leaks exactly through the
//! symlinks, which it follows wherever they point (`disable_symlinks off`). That proves the
//! leak detector finds a leak when there is one, and shows where ringway is stricter on
//! purpose.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ringway_tests::static_config::{StaticRoute, config_with, nginx_static_location};
use ringway_tests::static_tree::{self as tree, StaticTree};
use ringway_tests::{App, Nginx, Req, Ringway, Uwsgi, roundtrip};

/// How long one attempt may take, all of it (the request asks for `Connection: close`).
const ATTEMPT_LIMIT: Duration = Duration::from_secs(5);

/// Request targets, sent as they are on the request line.
const TARGETS: &[&str] = &[
    // Dot segments, raw and encoded.
    "/static/../secret.txt",
    "/static/./../secret.txt",
    "/static/%2e%2e/secret.txt",
    "/static/%2E%2E/secret.txt",
    "/static/.%2e/secret.txt",
    "/static/%2e./secret.txt",
    "/static/..%2fsecret.txt",
    "/static/%2e%2e%2fsecret.txt",
    "/static/docs/../../secret.txt",
    "/static/docs/%2e%2e/%2e%2e/secret.txt",
    "/static/hello.txt/../../secret.txt",
    "/static//../secret.txt",
    "/static/../static/../secret.txt",
    "/static/../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/static/..%2f..%2f..%2f..%2fetc%2fpasswd",
    // Backslashes (Windows separators), raw and encoded.
    "/static/..\\secret.txt",
    "/static/\\..\\secret.txt",
    "/static/..%5csecret.txt",
    "/static/%5c..%5csecret.txt",
    "/static/..%5c..%5csecret.txt",
    "/static/%2e%2e%5csecret.txt",
    // Double encoding: decoded once, these are names, not dot segments.
    "/static/%252e%252e/secret.txt",
    "/static/..%252fsecret.txt",
    "/static/..%255csecret.txt",
    // Overlong and odd UTF-8 for `.` and `/`, and IIS's %u.
    "/static/%c0%ae%c0%ae/secret.txt",
    "/static/%C0%AE%C0%AE/secret.txt",
    "/static/%c0%ae%c0%ae%c0%afsecret.txt",
    "/static/%e0%80%ae%e0%80%ae/secret.txt",
    "/static/%c0%2e%c0%2e/secret.txt",
    "/static/..%c0%afsecret.txt",
    "/static/%u002e%u002e/secret.txt",
    // NUL: a C string would end there.
    "/static/hello.txt%00../../secret.txt",
    "/static/..%00/secret.txt",
    "/static/.%00./secret.txt",
    "/static/%00",
    // Absolute paths after the prefix: `Path::join` with an absolute path drops the root.
    "/static//etc/passwd",
    "/static/%2fetc/passwd",
    "/static/%2f%2fetc%2fpasswd",
    "/static///etc/passwd",
    // Odd spellings of `..`.
    "/static/..;/secret.txt",
    "/static/..../secret.txt",
    "/static/.../secret.txt",
    // nginx's classic `location /static { alias .../; }` hole (ours has the slash).
    "/static../secret.txt",
    // Symlinks out of the root (nginx follows them).
    "/static/link-to-secret.txt",
    "/static/link-to-secret-absolute.txt",
    "/static/link-to-outside/page.txt",
    "/static/link-to-outside/",
    "/static/docs/up-and-out.txt",
    "/static/link-to-docs/../../secret.txt",
    "/static/link-to-docs/up-and-out.txt",
    // Absolute-form targets.
    "http://localhost/static/../secret.txt",
    "http://localhost/static/%2e%2e/secret.txt",
    "http://localhost/static/link-to-secret.txt",
    // The internal route, directly and by traversal.
    "/protected/report.pdf",
    "/protected/notes.txt",
    "/protected/",
    "/static/../protected/report.pdf",
    "/static/..%2fprotected%2freport.pdf",
    "/protected/%2e%2e/secret.txt",
    "/protected/link-to-secret.txt",
];

/// The targets nginx serves a marker for: the symlinks, which nginx follows by default.
const NGINX_LEAKS: &[&str] = &[
    "/static/link-to-secret.txt",
    "/static/link-to-secret-absolute.txt",
    "/static/link-to-outside/page.txt",
    "/static/docs/up-and-out.txt",
    "/static/link-to-docs/up-and-out.txt",
    "http://localhost/static/link-to-secret.txt",
];

/// X-Accel-Redirect values the raw app's `/accel?to=` sends back as they are: an app that
/// builds the value from user input. None names a file the internal route may serve.
const ACCEL_VALUES: &[&str] = &[
    "/protected/../secret.txt",
    "/protected/../../secret.txt",
    "/protected/%2e%2e/secret.txt",
    "/protected/..%2fsecret.txt",
    "/protected/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/protected/..\\secret.txt",
    "/protected/..%5csecret.txt",
    "/protected//etc/passwd",
    "/protected/%2fetc%2fpasswd",
    "/protected/%00../secret.txt",
    "/protected/link-to-secret.txt",
    "/protected/../root/link-to-secret.txt",
    "/static/link-to-secret.txt",
    "/static/../secret.txt",
];

/// The X-Accel-Redirect values nginx serves a marker for (symlinks again).
const NGINX_ACCEL_LEAKS: &[&str] = &[
    "/protected/link-to-secret.txt",
    "/static/link-to-secret.txt",
];

/// What one attempt got.
struct Outcome {
    /// The request target (or `X-Accel-Redirect: value`).
    what: String,
    /// The status, if a response head came.
    status: Option<u16>,
    /// Which markers the raw bytes held.
    leaked: Vec<&'static str>,
    /// The first bytes, for messages.
    start: String,
}

/// The texts no answer may hold: the markers of the files outside the root and in the
/// private dir, and `/etc/passwd`'s first line.
fn forbidden(tree: &StaticTree) -> Vec<(&'static str, Vec<u8>)> {
    let mut texts = vec![
        ("outside marker", tree.marker().as_bytes().to_vec()),
        ("private marker", tree.private_marker().as_bytes().to_vec()),
    ];
    if let Ok(passwd) = std::fs::read("/etc/passwd")
        && let Some(first) = passwd.split(|&b| b == b'\n').next().filter(|l| l.len() > 8)
    {
        texts.push(("/etc/passwd", first.to_vec()));
    }
    texts
}

/// Sends `GET target` with `Connection: close` on a new connection and reads every byte
/// until the server closes or [`ATTEMPT_LIMIT`] passes.
fn raw_exchange(addr: SocketAddr, target: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let wire = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(wire.as_bytes()).expect("send");
    let deadline = Instant::now() + ATTEMPT_LIMIT;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
    bytes
}

fn status_of(bytes: &[u8]) -> Option<u16> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    response.parse(bytes).ok()?;
    response.code
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// One attempt: the raw answer, searched for every forbidden text.
fn attempt(
    addr: SocketAddr,
    target: &str,
    what: String,
    forbidden: &[(&'static str, Vec<u8>)],
) -> Outcome {
    let bytes = raw_exchange(addr, target);
    Outcome {
        what,
        status: status_of(&bytes),
        leaked: forbidden
            .iter()
            .filter(|(_, text)| contains(&bytes, text))
            .map(|(name, _)| *name)
            .collect(),
        start: String::from_utf8_lossy(&bytes[..bytes.len().min(160)]).into_owned(),
    }
}

/// The healthy request after each attempt: the plain file, whole, at once.
fn assert_healthy(addr: SocketAddr, after: &str) {
    let started = Instant::now();
    let r = roundtrip(addr, &Req::get("/static/hello.txt"));
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, tree::TEXT_BODY),
        "healthy GET /static/hello.txt after {after}: {r:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the healthy request after {after} took {:?}",
        started.elapsed()
    );
}

/// `/accel?to=VALUE`, every byte but the unreserved ones percent-encoded (the app decodes
/// the query once, so `%2e` in VALUE arrives as `%2e`).
fn accel_target(value: &str) -> String {
    let mut target = String::from("/accel?to=");
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            target.push(char::from(b));
        } else {
            target.push_str(&format!("%{b:02X}"));
        }
    }
    target
}

/// Runs both corpora through the proxy at `addr`, each attempt followed by a healthy request.
fn run_corpus(addr: SocketAddr, tree: &StaticTree) -> Vec<Outcome> {
    let forbidden = forbidden(tree);
    let mut outcomes = Vec::new();
    for target in TARGETS {
        outcomes.push(attempt(addr, target, (*target).to_owned(), &forbidden));
        assert_healthy(addr, target);
    }
    for value in ACCEL_VALUES {
        let what = format!("X-Accel-Redirect: {value}");
        outcomes.push(attempt(
            addr,
            &accel_target(value),
            what.clone(),
            &forbidden,
        ));
        assert_healthy(addr, &what);
    }
    outcomes
}

fn describe(o: &Outcome) -> String {
    format!(
        "{:<55} status {:?} leaked {:?}: {:?}",
        o.what, o.status, o.leaked, o.start
    )
}

/// The traversal config: the static root, the internal route on the private dir, and the
/// raw app on `/` (for `/accel` and whatever normalises out of `/static/`).
fn ringway_config(uwsgi: &Uwsgi, tree: &StaticTree) -> String {
    config_with(
        uwsgi,
        &[
            StaticRoute::new("/static/", &tree.root()),
            StaticRoute::new("/protected/", &tree.private()).internal(),
        ],
    )
}

#[test]
fn the_corpus_is_large_enough_and_names_its_nginx_leaks() {
    assert!(TARGETS.len() >= 30, "{} targets", TARGETS.len());
    for leak in NGINX_LEAKS {
        assert!(TARGETS.contains(leak), "{leak} is not in the corpus");
    }
    for leak in NGINX_ACCEL_LEAKS {
        assert!(ACCEL_VALUES.contains(leak), "{leak} is not in the corpus");
    }
    assert_eq!(accel_target("/p/%2e\\ x"), "/accel?to=%2Fp%2F%252e%5C%20x");
}

#[test]
fn no_traversal_reaches_a_file_outside_the_root_through_ringway() {
    let tree = StaticTree::build();
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with_config(ringway_config(&uwsgi, &tree)).start();
    let outcomes = run_corpus(ringway.addr(), &tree);
    let mut wrong = Vec::new();
    for o in &outcomes {
        let request_target = !o.what.starts_with("X-Accel-Redirect");
        // A request target that names no file inside the root is refused (400) or not found
        // (404); an X-Accel-Redirect value that does not resolve inside its route's root is
        // an app bug, so any error will do, but never a success.
        let status_ok = match o.status {
            Some(400 | 404) => true,
            Some(status) => !request_target && !(200..300).contains(&status),
            None => false,
        };
        if !o.leaked.is_empty() || !status_ok {
            wrong.push(describe(o));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} attempts leaked or got an unexpected answer (requests: 400 or 404; \
         X-Accel-Redirect: no 2xx):\n{}\n\nringway's log:\n{}",
        wrong.len(),
        outcomes.len(),
        wrong.join("\n"),
        ringway.stderr()
    );
}

#[test]
fn nginx_refuses_the_same_corpus_but_follows_symlinks_out_of_the_root() {
    let tree = StaticTree::build();
    let uwsgi = Uwsgi::start(App::Raw);
    let locations = format!(
        "{}\n        location /protected/ {{ internal; alias {}/; }}",
        nginx_static_location("/static/", &tree.root(), ""),
        tree.private().display()
    );
    let nginx = Nginx::start_with_locations(uwsgi.socket(), &locations);
    let outcomes = run_corpus(nginx.addr(), &tree);
    let mut wrong = Vec::new();
    for o in &outcomes {
        let accel = o.what.strip_prefix("X-Accel-Redirect: ");
        let should_leak = match accel {
            Some(value) => NGINX_ACCEL_LEAKS.contains(&value),
            None => NGINX_LEAKS.contains(&o.what.as_str()),
        };
        let leaked = !o.leaked.is_empty();
        // Measured with nginx 1.22: 400 for `..` above the root, NUL and `%u`; 403 for the
        // directory behind a symlink (no index, no listing); 404 for the rest, the unsafe
        // X-Accel-Redirect values included.
        let refused = matches!(o.status, Some(400 | 403 | 404));
        let ok = if should_leak {
            leaked && o.status == Some(200)
        } else {
            !leaked && refused
        };
        if !ok {
            wrong.push(format!("(leak expected: {should_leak}) {}", describe(o)));
        }
    }
    assert!(
        wrong.is_empty(),
        "nginx did not answer the corpus as measured:\n{}\n\nall:\n{}\n\nerror log:\n{}",
        wrong.join("\n"),
        outcomes.iter().map(describe).collect::<Vec<_>>().join("\n"),
        nginx.error_log()
    );
}
