//! The path normaliser (`uwsgi::normalize_path`) and the route matcher.
//!
//! The input is text lines: the first is a raw request path; the others, if any, are routes
//! (`/prefix/`, `=/exact`, `>/redirect/`, `^/prefix/` for nginx's `^~`, `~N` for a regex
//! route with pattern N of [`PATTERNS`] (a fixed set: compiling a new regex per input would
//! take most of the time); lines the config would refuse are skipped), else a table like
//! the README's is used.
//!
//! Checked: a normalised path starts with `/` and has no empty, `.` or `..` segment and no
//! NUL; normalising is a fixed point (the output, spelled with `%` as `%25`, normalises to
//! itself); other spellings of the same path (percent-escapes, `%2F` separators, `./`,
//! `x/../`, doubled slashes) normalise to it, so reach the same route; and the route found
//! is the one nginx's `location` rules give (exact, then the missing-slash redirect, then
//! the first matching regex unless the longest prefix is `^~`, then the longest prefix).

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ringway::fuzzing::{Found, RouteKind, RouteSpec, Routes};
use ringway::uwsgi::normalize_path;
use ringway_fuzz::{Rng, show};

const DEFAULT_ROUTES: [&str; 11] = [
    "/",
    "/api/",
    "/api/v2/",
    "=/environ",
    ">/old/",
    "/static",
    "=/health",
    "/a/b/c/",
    "^/media/",
    "~1",
    "~2",
];

/// The regex routes' patterns: anchored and not, case-insensitive, alternations, one that
/// matches every path with a dot segment's shape, one no normalised path matches.
const PATTERNS: [&str; 10] = [
    r"\.(css|js)$",
    r"(?i)\.PNG$",
    r"^/api/v[0-9]+/",
    r"^/(api|apx)$",
    r"/\.",
    r"^/static",
    r"a",
    r"^/$",
    r"[^/]$",
    r"//",
];

/// The default table, built once.
static DEFAULT: OnceLock<(Vec<RouteSpec>, Routes)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let raw = lines.next().unwrap_or_default();
    // Each line the config would take alone, minus repeats of a path already there.
    let mut specs: Vec<RouteSpec> = Vec::new();
    for line in lines {
        let Some(spec) = std::str::from_utf8(line).ok().and_then(spec) else {
            continue;
        };
        if !specs
            .iter()
            .any(|s| s.path == spec.path && s.exact == spec.exact && s.regex == spec.regex)
        {
            specs.push(spec);
        }
    }
    let own;
    let (specs, routes) = if specs.is_empty() {
        let (specs, routes) = DEFAULT.get_or_init(|| {
            let specs: Vec<RouteSpec> = DEFAULT_ROUTES.iter().filter_map(|s| spec(s)).collect();
            let routes = Routes::new(&specs).expect("the default routes");
            (specs, routes)
        });
        (&specs[..], routes)
    } else {
        own = Routes::new(&specs).expect("routes the config accepts");
        (&specs[..], &own)
    };

    let mut normal = Vec::new();
    if normalize_path(raw, &mut normal).is_err() {
        return;
    }
    check_shape(raw, &normal);
    let escaped = escape_percent(&normal);
    assert_eq!(
        renormalise(&escaped),
        Some(normal.clone()),
        "not a fixed point: {:?}",
        show(raw)
    );
    if !normal.contains(&b'%') {
        assert_eq!(renormalise(&normal), Some(normal.clone()));
    }

    let found = routes.find(&normal);
    check_match(specs, routes, &normal, found);

    let mut rng = Rng::from_input(data);
    for _ in 0..4 {
        let spelling = respell(&normal, &mut rng);
        let again = renormalise(&spelling).unwrap_or_default();
        assert_eq!(
            again,
            normal,
            "{:?} is another spelling of {:?}",
            show(&spelling),
            show(&normal)
        );
        assert_eq!(
            routes.find(&again),
            found,
            "another spelling, another route"
        );
    }
});

/// A route line: `=/exact`, `>/redirect/`, `^/prefix/` (`^~`), `~pattern`, or a prefix
/// path.
fn spec(line: &str) -> Option<RouteSpec> {
    let (path, exact, kind) = if let Some(p) = line.strip_prefix('=') {
        (p, true, RouteKind::Upstream)
    } else if let Some(p) = line.strip_prefix('>') {
        (p, false, RouteKind::Redirect)
    } else {
        (line, false, RouteKind::Upstream)
    };
    let (path, no_regex) = match path.strip_prefix('^') {
        Some(p) if !exact => (p, true),
        _ => (path, false),
    };
    let (path, regex) = match line.strip_prefix('~') {
        Some(n) => (
            "/",
            Some(PATTERNS.get(n.parse::<usize>().ok()?)?.to_string()),
        ),
        None => (path, None),
    };
    Some(RouteSpec {
        path: path.to_owned(),
        exact,
        regex,
        no_regex,
        kind,
    })
    .filter(|s| Routes::new(std::slice::from_ref(s)).is_ok())
}

fn renormalise(path: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    normalize_path(path, &mut out).ok().map(|()| out)
}

fn check_shape(raw: &[u8], normal: &[u8]) {
    assert_eq!(normal.first(), Some(&b'/'), "{:?}", show(raw));
    assert!(!normal.contains(&0), "a NUL from {:?}", show(raw));
    let segments: Vec<&[u8]> = normal[1..].split(|&b| b == b'/').collect();
    let (last, inner) = segments.split_last().expect("one segment at least");
    for segment in inner
        .iter()
        .chain([last].into_iter().filter(|l| !l.is_empty()))
    {
        assert!(
            !segment.is_empty() && *segment != b"." && *segment != b"..",
            "segment {:?} in {:?} from {:?}",
            show(segment),
            show(normal),
            show(raw)
        );
    }
}

fn escape_percent(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        if b == b'%' {
            out.extend_from_slice(b"%25");
        } else {
            out.push(b);
        }
    }
    out
}

/// Another spelling of the normalised `path`: bytes percent-escaped (any case), separators
/// as `%2F` or doubled, and `./` or `name/../` before segments.
fn respell(path: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = vec![b'/'];
    let segments: Vec<&[u8]> = path[1..].split(|&b| b == b'/').collect();
    for (i, segment) in segments.iter().enumerate() {
        for _ in 0..rng.below(3) {
            match rng.below(4) {
                0 => out.extend_from_slice(b"./"),
                1 => out.extend_from_slice(b"%2e/"),
                2 => out.extend_from_slice(b"x/../"),
                _ => out.extend_from_slice(b"ab%2F..%2f"),
            }
        }
        for &b in *segment {
            if b == b'%' || rng.one_in(4) {
                let hex = if rng.one_in(2) {
                    format!("%{b:02X}")
                } else {
                    format!("%{b:02x}")
                };
                out.extend_from_slice(hex.as_bytes());
            } else {
                out.push(b);
            }
        }
        if i + 1 < segments.len() {
            match rng.below(4) {
                0 => out.extend_from_slice(b"%2F"),
                1 => out.extend_from_slice(b"//"),
                _ => out.push(b'/'),
            }
        }
    }
    out
}

/// nginx's `location` rules, stated as properties of the route found.
fn check_match(specs: &[RouteSpec], routes: &Routes, path: &[u8], found: Found) {
    let bytes = |s: &RouteSpec| s.path.as_bytes().to_vec();
    let exact = specs.iter().position(|s| s.exact && bytes(s) == path);
    let prefixes: Vec<usize> = (0..specs.len())
        .filter(|&i| {
            let s = &specs[i];
            !s.exact && s.regex.is_none() && path.starts_with(s.path.as_bytes())
        })
        .collect();
    // The first regex route, in the table's order, whose pattern matches.
    let regex = (0..specs.len()).find(|&i| routes.pattern_matches(i, path));
    let longest = prefixes
        .iter()
        .copied()
        .max_by_key(|&i| specs[i].path.len());
    // A prefix route's path, or an exact upstream route's (nginx's exact proxied location
    // redirects too), that is this path plus a slash.
    let slash_target = |i: usize| {
        let s = &specs[i];
        let redirects = if s.exact {
            matches!(s.kind, RouteKind::Upstream)
        } else {
            !matches!(s.kind, RouteKind::Redirect)
        };
        redirects
            && s.regex.is_none()
            && s.path.len() > 1
            && s.path.strip_suffix('/').map(str::as_bytes) == Some(path)
    };
    let slash = (0..specs.len()).find(|&i| slash_target(i));
    let shown = show(path);
    // A longest prefix for this very path serves it before the slash redirect.
    let slash = slash.filter(|_| longest.is_none_or(|l| bytes(&specs[l]) != path));
    let stops_regexes = longest.is_some_and(|l| specs[l].no_regex);
    match found {
        Found::Route(i) if specs[i].exact => {
            assert_eq!(Some(i), exact, "{shown}: exact route {i}");
        }
        Found::Route(i) if specs[i].regex.is_some() => {
            assert_eq!(exact, None, "{shown}: an exact route was there");
            assert_eq!(slash, None, "{shown}: the slash redirect comes first");
            assert!(!stops_regexes, "{shown}: the longest prefix is ^~");
            assert_eq!(Some(i), regex, "{shown}: not the first regex that matches");
        }
        Found::Route(i) => {
            assert_eq!(exact, None, "{shown}: an exact route was there");
            assert_eq!(Some(i), longest, "{shown}: not the longest prefix");
            assert_eq!(slash, None, "{shown}: the slash redirect");
            assert!(
                stops_regexes || regex.is_none(),
                "{shown}: regex route {regex:?} matches"
            );
        }
        Found::AddSlash(i) => {
            assert_eq!(exact, None, "{shown}: an exact route was there");
            assert!(
                slash_target(i),
                "{shown}: route {i} is not this path plus a slash"
            );
            assert!(
                longest.is_none_or(|l| bytes(&specs[l]) != path),
                "{shown}: a route for it"
            );
        }
        Found::Nothing => {
            assert_eq!(
                (exact, longest, slash, regex),
                (None, None, None, None),
                "{shown}: a route was there"
            );
        }
    }
}
