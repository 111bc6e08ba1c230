//! Static files, parity with nginx: the same file tree behind nginx and behind ringway, the
//! same request tables (`ringway_tests::static_cases`: file types and names, directories,
//! dotfiles, symlinks, special files, methods, every conditional and range case, gzip
//! siblings, X-Accel-Redirect downloads from the Flask demo app), compared header by header.
//!
//! nginx's side:
//!
//! ```nginx
//! location /static/ { alias ROOT/; expires 30d; max_ranges 1; index index.html; }
//! location /gz/     { alias ROOT/; expires 30d; max_ranges 1; index index.html;
//!                     gzip_static on; gzip_vary on; }
//! location /protected/ { internal; alias PRIVATE/; }
//! location / { uwsgi_pass ...; }      # the Flask demo app
//! ```
//!
//! (plus `include mime.types`, which the harness's nginx.conf lacks). ringway's: the same
//! routes with `static`, `expires = "30d"`, `index` on `/gz/` (`/static/` has the default),
//! `precompressed = ["gzip"]` on `/gz/`,
//! `internal = true`. Brotli is left out: Debian's nginx has `gzip_static` but no brotli
//! module (ringway's brotli cases are in `static_files.rs`).
//!
//! Two lists say where the answers may differ, each entry with its reason:
//! - [`NGINX_DEPARTURES`]: where nginx 1.22 departs from the contract ringway follows. The
//!   nginx test checks that nginx answers every case as the contract says except exactly
//!   these (an entry nginx no longer needs fails too, so the list stays true).
//! - [`CHOICES`]: where the contract allows either of two answers and the two proxies may
//!   pick differently.
//!
//! Everything else must be equal: status, media type, Content-Length, Content-Range,
//! Cache-Control, ETag (nginx's format, exactly), Last-Modified, Content-Encoding, Vary,
//! Accept-Ranges and the bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use ringway_tests::client::Response;
use ringway_tests::data::sha256_hex;
use ringway_tests::static_cases::{
    Case, accel_cases, check_case, conditional_cases, file_cases, gzip_cases, range_cases,
};
use ringway_tests::static_config::{StaticRoute, config_with, nginx_static_location};
use ringway_tests::static_expect::{Expect, Problem, media_type, tokens};
use ringway_tests::static_tree::StaticTree;
use ringway_tests::{App, Conn, Nginx, Ringway, Uwsgi};

/// Which cases an entry covers.
#[derive(Debug, Clone, Copy)]
enum Scope {
    /// Every case.
    Every,
    /// Every case whose expected answer is a 206.
    Partial,
    /// The cases with these names.
    Cases(&'static [&'static str]),
}

/// What nginx answers on the field.
#[derive(Debug, Clone, Copy)]
enum Nginx122 {
    /// This status (and then the rest of the answer is not compared).
    Status(u16),
    /// No such header.
    Absent,
}

/// One known departure of nginx's from the contract.
#[derive(Debug)]
struct Departure {
    scope: Scope,
    /// The [`Problem`] field it explains (`status` covers the whole answer).
    field: &'static str,
    nginx: Nginx122,
    reason: &'static str,
}

const DOTFILE_CASES: &[&str] = &[
    "dotfile",
    "file in a dot-directory",
    "dotfile, dot percent-encoded",
    "dotfile reached through dot segments",
];

const SYMLINK_OUT_CASES: &[&str] = &[
    "relative symlink out of the root",
    "absolute symlink out of the root",
    "file under a symlink to a directory out of the root",
    "symlink climbing out from a subdirectory",
];

const METHOD_CASES: &[&str] = &[
    "POST",
    "PUT",
    "DELETE",
    "PATCH",
    "OPTIONS",
    "PUT to a missing file",
];

/// The gzip answers that send the sibling whole.
const GZIP_SIBLING_CASES: &[&str] = &[
    "gzip accepted",
    "gzip;q=0.5 accepted",
    "a browser's Accept-Encoding",
    "GZIP in capitals",
    "another file with a gzip sibling",
    "HEAD of the sibling",
    "If-None-Match: the plain file's ETag, sibling sent",
];

/// Where nginx 1.22 (Debian, the config above) departs from the contract. Measured; each
/// entry is checked to be still true.
const NGINX_DEPARTURES: &[Departure] = &[
    Departure {
        scope: Scope::Every,
        field: "charset",
        nginx: Nginx122::Absent,
        reason: "nginx adds a charset only with `charset utf-8;` (and then only for its \
                 charset_types); ringway puts charset=utf-8 on every text type, so that a \
                 browser never guesses",
    },
    Departure {
        scope: Scope::Partial,
        field: "accept-ranges",
        nginx: Nginx122::Absent,
        reason: "nginx's range filter drops Accept-Ranges from its 206s; the contract sends \
                 it on every file answer (RFC 9110 §14.3 allows both)",
    },
    Departure {
        scope: Scope::Cases(GZIP_SIBLING_CASES),
        field: "accept-ranges",
        nginx: Nginx122::Absent,
        reason: "nginx's gzip_static answers carry no Accept-Ranges (it does not serve ranges \
                 of the sibling, below); ringway serves the sibling like any file",
    },
    Departure {
        scope: Scope::Cases(&["a range of the sibling"]),
        field: "status",
        nginx: Nginx122::Status(200),
        reason: "nginx ignores Range on a gzip_static answer and sends the whole .gz; \
                 ringway serves a range of the file it sends, as for any file",
    },
    Departure {
        scope: Scope::Cases(&["no sibling: the plain file, still with Vary"]),
        field: "vary",
        nginx: Nginx122::Absent,
        reason: "with gzip_vary on, nginx adds Vary only where a .gz sibling exists; ringway \
                 on every answer of a precompressed route, so that a cache never keeps one \
                 variant for everyone if a sibling appears later",
    },
    Departure {
        scope: Scope::Cases(&["If-Modified-Since: later"]),
        field: "status",
        nginx: Nginx122::Status(200),
        reason: "nginx's default `if_modified_since exact` answers 304 only for the exact \
                 Last-Modified date; RFC 9110 §13.1.3 wants 304 for any date not earlier \
                 than it (nginx's `if_modified_since before`)",
    },
    Departure {
        scope: Scope::Cases(&[
            "If-None-Match the ETag + If-Modified-Since earlier: If-None-Match wins",
        ]),
        field: "status",
        nginx: Nginx122::Status(200),
        reason: "nginx wants both If-None-Match and If-Modified-Since to say \"not \
                 modified\"; RFC 9110 §13.2.2 ignores If-Modified-Since when If-None-Match \
                 is present",
    },
    Departure {
        scope: Scope::Cases(&["If-Match the ETag + If-Unmodified-Since earlier: If-Match wins"]),
        field: "status",
        nginx: Nginx122::Status(412),
        reason: "nginx evaluates If-Unmodified-Since even when If-Match is present; RFC 9110 \
                 §13.2.2 step 2 applies it only without If-Match",
    },
    Departure {
        scope: Scope::Cases(&["If-Unmodified-Since: not a date (ignored)"]),
        field: "status",
        nginx: Nginx122::Status(412),
        reason: "nginx fails an If-Unmodified-Since it cannot parse; RFC 9110 §13.1.4: a \
                 recipient MUST ignore it if the date is invalid",
    },
    Departure {
        scope: Scope::Cases(DOTFILE_CASES),
        field: "status",
        nginx: Nginx122::Status(200),
        reason: "nginx serves dotfiles unless a `location ~ /\\.` denies them; ringway hides \
                 them unless the route says `dotfiles = true` (.env, .git/ left in a static \
                 dir are a classic leak)",
    },
    Departure {
        scope: Scope::Cases(&[
            "dot-directory",
            "directory without index",
            "the root without index",
        ]),
        field: "status",
        nginx: Nginx122::Status(403),
        reason: "nginx answers 403 for a directory without index when autoindex is off; \
                 ringway 404: no listing, and no hint that the directory exists",
    },
    Departure {
        scope: Scope::Cases(SYMLINK_OUT_CASES),
        field: "status",
        nginx: Nginx122::Status(200),
        reason: "nginx follows symlinks wherever they point (`disable_symlinks off` is its \
                 default); ringway refuses a file that resolves outside the root, on purpose",
    },
    Departure {
        scope: Scope::Cases(&["symlink loop"]),
        field: "status",
        nginx: Nginx122::Status(403),
        reason: "nginx answers ELOOP with 403; ringway 404, as for any path with no file",
    },
    Departure {
        scope: Scope::Cases(&["unix socket"]),
        field: "status",
        nginx: Nginx122::Status(500),
        reason: "nginx tries to open the socket file, gets ENXIO and answers 500; ringway \
                 serves regular files only and answers 404 for anything else",
    },
    Departure {
        scope: Scope::Cases(METHOD_CASES),
        field: "allow",
        nginx: Nginx122::Absent,
        reason: "nginx's 405 carries no Allow header; RFC 9110 §15.5.6 requires one",
    },
];

/// Where the contract allows a choice, and the proxies may choose differently: the field is
/// not compared between them (each side is still checked against the contract).
const CHOICES: &[(&str, &str, &str)] = &[
    (
        "js",
        "content-type",
        "RFC 9239 made text/javascript the type of .js; nginx 1.22's mime.types still says \
         application/javascript; both are accepted",
    ),
    (
        "another file with a gzip sibling",
        "content-type",
        "the file is a .js: text/javascript (RFC 9239) or application/javascript (nginx 1.22)",
    ),
    (
        "bytes=5-3 (malformed)",
        "status",
        "a malformed Range may be ignored (200) or refused (416, nginx)",
    ),
    (
        "bytes=abc (malformed)",
        "status",
        "a malformed Range may be ignored (200) or refused (416, nginx)",
    ),
    (
        "bytes=- (malformed)",
        "status",
        "a malformed Range may be ignored (200) or refused (416, nginx)",
    ),
    (
        "a range of the empty file",
        "status",
        "no range of an empty file is satisfiable (416), but a server may ignore Range \
         (200, nginx)",
    ),
];

fn in_scope(scope: Scope, case: &Case) -> bool {
    match scope {
        Scope::Every => true,
        Scope::Partial => case.expect.status() == 206,
        Scope::Cases(names) => names.contains(&case.name),
    }
}

/// The departures that apply to `case`.
fn departures(case: &Case) -> Vec<&'static Departure> {
    NGINX_DEPARTURES
        .iter()
        .filter(|d| in_scope(d.scope, case))
        .collect()
}

/// Whether nginx's answer `r` is what `d` says nginx does.
fn departure_holds(d: &Departure, r: &Response) -> bool {
    match d.nginx {
        Nginx122::Status(status) => r.status == status,
        Nginx122::Absent => r.header(d.field).is_none(),
    }
}

/// Every table the parity test runs (brotli aside).
fn all_cases(tree: &StaticTree) -> Vec<Case> {
    [
        file_cases(tree),
        conditional_cases(tree),
        range_cases(tree),
        gzip_cases(tree),
        accel_cases(tree),
    ]
    .concat()
}

/// Sends `case` on a new connection and reads the answer.
fn ask(addr: SocketAddr, case: &Case) -> Result<Response, String> {
    let mut conn = Conn::open(addr);
    conn.send(&case.req.to_bytes())
        .map_err(|e| format!("send: {e}"))?;
    conn.read_response_to(case.method())
        .map_err(|e| format!("no answer: {e}"))
}

/// The tree, the Flask app, and both proxies in front of them.
struct Sides {
    tree: StaticTree,
    _uwsgi: Uwsgi,
    nginx: Nginx,
    ringway: Option<Ringway>,
}

fn nginx_locations(tree: &StaticTree) -> String {
    let common = "expires 30d; max_ranges 1;";
    [
        nginx_static_location("/static/", &tree.root(), common),
        nginx_static_location(
            "/gz/",
            &tree.root(),
            &format!("{common} gzip_static on; gzip_vary on;"),
        ),
        format!(
            "location /protected/ {{ internal; alias {}/; \
             include /etc/nginx/mime.types; default_type application/octet-stream; }}",
            tree.private().display()
        ),
    ]
    .join("\n        ")
}

fn ringway_config(uwsgi: &Uwsgi, tree: &StaticTree) -> String {
    config_with(
        uwsgi,
        &[
            // No `index`: nginx's default, `index.html`, as the location's.
            StaticRoute::new("/static/", &tree.root()).expires("30d"),
            StaticRoute::new("/gz/", &tree.root())
                .expires("30d")
                .index("index.html")
                .precompressed(&["gzip"]),
            StaticRoute::new("/protected/", &tree.private()).internal(),
        ],
    )
}

fn start(with_ringway: bool) -> Sides {
    let tree = StaticTree::build();
    let uwsgi = Uwsgi::start(App::Flask);
    let nginx = Nginx::start_with_locations(uwsgi.socket(), &nginx_locations(&tree));
    let ringway = with_ringway.then(|| Ringway::with_config(ringway_config(&uwsgi, &tree)).start());
    Sides {
        tree,
        _uwsgi: uwsgi,
        nginx,
        ringway,
    }
}

/// The fields compared between the two proxies, where the statuses are equal.
fn facts(case: &Case, r: &Response) -> BTreeMap<&'static str, String> {
    let mut facts = BTreeMap::new();
    let header = |name: &str| r.header_all(name).join(" | ");
    facts.insert("status", r.status.to_string());
    let file_answer = matches!(r.status, 200 | 206);
    let validated = matches!(r.status, 200 | 206 | 304);
    if file_answer {
        let media = r.header("content-type").map(|v| media_type(&v).0);
        facts.insert("content-type", format!("{media:?}"));
        facts.insert("content-length", header("content-length"));
        facts.insert("last-modified", header("last-modified"));
        facts.insert("accept-ranges", header("accept-ranges"));
        if case.method() != "HEAD" {
            facts.insert("body", sha256_hex(&r.body));
        }
    }
    if validated {
        facts.insert("etag", header("etag"));
        facts.insert("cache-control", tokens(r, "cache-control").join(", "));
        facts.insert("content-encoding", header("content-encoding"));
        let varies = tokens(r, "vary").iter().any(|t| t == "accept-encoding");
        facts.insert("vary", varies.to_string());
    }
    facts.insert("content-range", header("content-range"));
    facts
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn nginx_answers_the_tables_as_the_contract_says_but_for_its_known_departures() {
    let sides = start(false);
    let cases = all_cases(&sides.tree);
    let mut wrong = Vec::new();
    let mut used: BTreeSet<usize> = BTreeSet::new();
    for case in &cases {
        let r = match ask(sides.nginx.addr(), case) {
            Ok(r) => r,
            Err(e) => {
                wrong.push(format!("[{}] {e}", case.name));
                continue;
            }
        };
        let known = departures(case);
        let mut unexplained = Vec::new();
        // A departure in status explains the whole answer.
        if let Some(d) = known.iter().find(|d| d.field == "status") {
            if departure_holds(d, &r) {
                used.insert(index_of(d));
            } else {
                unexplained.push(format!(
                    "status {}, the departure list says {:?}",
                    r.status, d.nginx
                ));
            }
        } else {
            for problem in check_case(case, &r) {
                match known.iter().find(|d| d.field == problem.field) {
                    Some(d) if departure_holds(d, &r) => {
                        used.insert(index_of(d));
                    }
                    _ => unexplained.push(problem.to_string()),
                }
            }
        }
        if !unexplained.is_empty() {
            wrong.push(format!(
                "[{}] {}\n    {r:?}",
                case.name,
                unexplained.join("; ")
            ));
        }
    }
    // Every departure listed must still be one.
    for (i, d) in NGINX_DEPARTURES.iter().enumerate() {
        if !used.contains(&i) {
            wrong.push(format!(
                "departure no longer seen ({:?} {:?}): {}",
                d.scope, d.field, d.reason
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "nginx vs the contract, {} problem(s) not in NGINX_DEPARTURES:\n{}\n\nerror log:\n{}",
        wrong.len(),
        wrong.join("\n"),
        sides.nginx.error_log()
    );
}

fn index_of(d: &Departure) -> usize {
    NGINX_DEPARTURES
        .iter()
        .position(|e| std::ptr::eq(e, d))
        .expect("a listed departure")
}

#[test]
fn ringway_answers_the_tables_as_nginx_does_but_where_the_contract_says_otherwise() {
    let sides = start(true);
    let ringway = sides.ringway.as_ref().expect("ringway started");
    let cases = all_cases(&sides.tree);
    let mut wrong = Vec::new();
    for case in &cases {
        let (ours, theirs) = match (ask(ringway.addr(), case), ask(sides.nginx.addr(), case)) {
            (Ok(ours), Ok(theirs)) => (ours, theirs),
            (ours, theirs) => {
                wrong.push(format!(
                    "[{}] ringway: {:?} / nginx: {:?}",
                    case.name,
                    ours.err(),
                    theirs.err()
                ));
                continue;
            }
        };
        // ringway follows the contract, whatever nginx does.
        let problems = check_case(case, &ours);
        if !problems.is_empty() {
            wrong.push(format!(
                "[{}] ringway vs the contract: {}\n    {ours:?}",
                case.name,
                list(&problems)
            ));
            continue;
        }
        let known = departures(case);
        let chosen = |field: &str| {
            CHOICES
                .iter()
                .any(|(name, f, _)| *name == case.name && *f == field)
        };
        if known.iter().any(|d| d.field == "status") || chosen("status") {
            continue;
        }
        let (a, b) = (facts(case, &ours), facts(case, &theirs));
        for (field, value) in &a {
            let skip = known.iter().any(|d| d.field == *field) || chosen(field);
            let other = b.get(field).map_or("<not compared>", String::as_str);
            if !skip && value != other {
                wrong.push(format!(
                    "[{}] {field}: ringway {value:?}, nginx {other:?}",
                    case.name
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} difference(s) between ringway and nginx not explained by NGINX_DEPARTURES or \
         CHOICES:\n{}\n\nringway's log:\n{}",
        wrong.len(),
        wrong.join("\n"),
        ringway.stderr()
    );
}

#[test]
fn the_lists_name_real_cases() {
    let tree = StaticTree::build();
    let names: Vec<&str> = all_cases(&tree).iter().map(|c| c.name).collect();
    for d in NGINX_DEPARTURES {
        if let Scope::Cases(scoped) = d.scope {
            for name in scoped {
                assert!(
                    names.contains(name),
                    "NGINX_DEPARTURES names unknown case {name:?}"
                );
            }
        }
    }
    for (name, _, _) in CHOICES {
        assert!(names.contains(name), "CHOICES names unknown case {name:?}");
    }
    // A case the contract answers with a choice is listed as one.
    for case in all_cases(&tree) {
        if matches!(case.expect, Expect::WholeOrUnsatisfiable(_)) {
            assert!(
                CHOICES
                    .iter()
                    .any(|(n, f, _)| *n == case.name && *f == "status"),
                "{:?} allows two statuses but is not in CHOICES",
                case.name
            );
        }
    }
}
