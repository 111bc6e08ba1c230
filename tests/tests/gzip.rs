//! Compressing the app's answers (`[gzip]`) against nginx's gzip module: the same requests
//! through nginx (`gzip on` with the same types, `gzip_vary on`, `gzip_min_length 20`) and
//! through ringway, to one uWSGI serving the Flask demo. Compared per request: status,
//! Content-Encoding, Vary, ETag, Accept-Ranges, and the body once decoded; and for each
//! case what ringway must do (so that two proxies compressing nothing cannot agree).
//! Framing is not compared: nginx sends a compressed answer chunked, ringway sends one that
//! came whole with a Content-Length.

use std::io::Read;

use ringway_tests::app_server::{AppServer, Listen, Served, Server};
use ringway_tests::client::{Conn, Req, Response, roundtrip};
use ringway_tests::data::pattern;
use ringway_tests::{App, Nginx, Ringway, Uwsgi};

const TYPES: &str = "application/json application/octet-stream";

/// What the comparison looks at.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    status: u16,
    encoding: Option<String>,
    vary: Option<String>,
    etag: Option<String>,
    accept_ranges: bool,
    /// The body, decoded when it came compressed.
    body: Vec<u8>,
}

fn shape(r: &Response) -> Shape {
    let encoding = r.header("content-encoding");
    // A HEAD answer says what GET's would, with no body.
    let body = if encoding.as_deref() == Some("gzip") && !r.body.is_empty() {
        gunzip(&r.body)
    } else {
        r.body.clone()
    };
    Shape {
        status: r.status,
        encoding,
        vary: r.header("vary"),
        etag: r.header("etag"),
        accept_ranges: r.header("accept-ranges").is_some(),
        body,
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut plain)
        .unwrap_or_else(|e| panic!("not one valid gzip stream ({e}): {} bytes", bytes.len()));
    plain
}

/// What ringway must have done with a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Compressed,
    /// A HEAD: GET's headers (compressed), no body and no length, as nginx answers it.
    HeadOfCompressed,
    /// Sent as it came, with `Vary: Accept-Encoding` (it could have been compressed).
    PlainVary,
    /// Sent as it came, no Vary (it could not have been).
    Plain,
}

struct Case {
    name: &'static str,
    req: Req,
    expect: Expect,
}

fn gz(req: Req) -> Req {
    req.header("Accept-Encoding", "gzip, deflate, br")
}

fn cases() -> Vec<Case> {
    use Expect::*;
    let case = |name, req, expect| Case { name, req, expect };
    vec![
        case("html", gz(Req::get("/page/5000")), Compressed),
        case("html-no-accept", Req::get("/page/5000"), PlainVary),
        case(
            "html-q0",
            Req::get("/page/5000").header("Accept-Encoding", "gzip;q=0"),
            PlainVary,
        ),
        case(
            "html-uppercase",
            Req::get("/page/5000").header("Accept-Encoding", "GZIP"),
            Compressed,
        ),
        case("html-below-min-length", gz(Req::get("/page/19")), Plain),
        case("html-at-min-length", gz(Req::get("/page/20")), Compressed),
        case("head", gz(Req::new("HEAD", "/page/5000")), HeadOfCompressed),
        case("http10", gz(Req::get("/page/5000").http10()), PlainVary),
        case(
            "via-proxy",
            gz(Req::get("/page/5000")).header("Via", "1.1 cdn"),
            PlainVary,
        ),
        case("json", gz(Req::get("/environ")), Compressed),
        case("text-plain-not-listed", gz(Req::get("/header/100")), Plain),
        case("chunked-300k", gz(Req::get("/stream/300000")), Compressed),
        case(
            "length-200k-in-pieces",
            gz(Req::get("/lazy/200000")),
            Compressed,
        ),
        case("unbuffered", gz(Req::get("/unbuffered/100000")), Compressed),
        case("already-encoded", gz(Req::get("/encoded")), Plain),
        case("404", gz(Req::get("/status/404")), Plain), // text/plain: not listed
        case("empty", gz(Req::get("/bytes/0")), Plain),
    ]
}

#[test]
fn ringway_compresses_what_nginx_compresses() {
    let uwsgi = Uwsgi::start(App::Flask);
    let nginx = Nginx::start_with_server_directives(
        uwsgi.socket(),
        &format!("gzip on; gzip_types {TYPES}; gzip_vary on; gzip_min_length 20;"),
    );
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n[gzip]\ntypes = [\"application/json\", \
         \"application/octet-stream\"]\nvary = true\n",
        uwsgi.upstream()
    ))
    .start();
    for case in cases() {
        let theirs = roundtrip(nginx.addr(), &case.req);
        let ours = roundtrip(ringway.addr(), &case.req);
        let theirs_len = theirs.body.len();
        let (theirs, ours_shape) = (shape(&theirs), shape(&ours));
        // The environ names each proxy's own port and address: its shape only.
        if case.name == "json" {
            assert_eq!(
                (theirs.status, &theirs.encoding, &theirs.vary),
                (ours_shape.status, &ours_shape.encoding, &ours_shape.vary),
                "{}",
                case.name
            );
        } else {
            assert_eq!(
                ours_shape, theirs,
                "{}: ringway (left) and nginx",
                case.name
            );
        }
        let vary = Some("Accept-Encoding".to_owned());
        let says_gzip = || {
            let got = (ours_shape.encoding.as_deref(), &ours_shape.vary);
            assert_eq!(got, (Some("gzip"), &vary), "{}", case.name);
        };
        match case.expect {
            Expect::Compressed => {
                says_gzip();
                // 20 bytes gain nothing (gzip's own header and trailer are 18), as in nginx.
                if ours_shape.body.len() > 1000 {
                    assert!(ours.body.len() < ours_shape.body.len() / 2, "{}", case.name);
                    // As small as nginx's at the same level (zlib-rs against zlib).
                    assert!(
                        ours.body.len() * 10 <= theirs_len * 11,
                        "{}: {} bytes compressed, nginx {theirs_len}",
                        case.name,
                        ours.body.len()
                    );
                }
                assert!(!ours_shape.accept_ranges, "{}", case.name);
            }
            Expect::HeadOfCompressed => {
                says_gzip();
                assert_eq!(ours.header("content-length"), None, "{}", case.name);
            }
            Expect::PlainVary => {
                assert_eq!(ours_shape.encoding, None, "{}", case.name);
                assert_eq!(ours_shape.vary, vary, "{}", case.name);
            }
            Expect::Plain => {
                let apps_own = case.name == "already-encoded";
                assert_eq!(ours_shape.encoding.is_some(), apps_own, "{}", case.name);
                assert_eq!(ours_shape.vary, None, "{}", case.name);
            }
        }
    }
    // The bodies decoded are the app's: the pattern the app streams, byte for byte.
    let streamed = shape(&roundtrip(ringway.addr(), &gz(Req::get("/stream/300000"))));
    assert_eq!(streamed.body, pattern(300_000));
    let page = roundtrip(ringway.addr(), &gz(Req::get("/page/5000")));
    assert!(
        page.header("etag").is_some_and(|e| e.starts_with("W/\"")),
        "weak ETag"
    );
    assert_eq!(
        page.header("content-length"),
        Some(page.body.len().to_string()),
        "whole: a length"
    );
}

/// Compressed answers, whole and chunked, leave the connection in step for the next ones.
#[test]
fn compressed_answers_keep_the_connection() {
    let uwsgi = Uwsgi::start(App::Flask);
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n[gzip]\ntypes = [\"*\"]\nlevel = 9\n",
        uwsgi.upstream()
    ))
    .start();
    let mut conn = Conn::open(ringway.addr());
    let reqs = [
        gz(Req::get("/stream/100000")),
        gz(Req::get("/page/3000")),
        Req::get("/page/3000"),
        gz(Req::get("/lazy/70000")),
        gz(Req::get("/bytes/50")),
    ];
    for req in &reqs {
        conn.send(&req.to_bytes()).expect("send");
    }
    let answers = conn
        .read_responses(&["GET"; 5])
        .unwrap_or_else(|e| panic!("five answers on one connection: {e}\n{}", ringway.stderr()));
    let bodies: Vec<Vec<u8>> = answers.iter().map(|r| shape(r).body).collect();
    assert_eq!(bodies[0], pattern(100_000));
    assert_eq!(bodies[1], bodies[2], "the same page, compressed or not");
    assert_eq!(answers[2].header("content-encoding"), None);
    assert_eq!(bodies[3], pattern(70_000));
    assert_eq!(bodies[4], pattern(50));
    assert!(answers.iter().all(|r| !r.says_close()));
}

/// A static route's fallback answers come from the app: compressed as the route says.
#[test]
fn a_static_routes_fallback_answers_are_compressed() {
    let uwsgi = Uwsgi::start(App::Flask);
    let files = tempfile::tempdir().expect("a temp dir");
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n[gzip]\n\
         [[routes]]\npath = \"/files/\"\nstatic = \"{}\"\nfallback = \"default\"\n\
         [[routes]]\npath = \"/plain/\"\nstatic = \"{}\"\nfallback = \"default\"\ngzip = false\n",
        uwsgi.upstream(),
        files.path().display(),
        files.path().display()
    ))
    .start();
    // No such file: the app answers, with Flask's 404 page (text/html, 200-odd bytes).
    let answer = roundtrip(ringway.addr(), &gz(Req::get("/files/missing")));
    assert_eq!(answer.status, 404);
    assert_eq!(answer.header("content-encoding").as_deref(), Some("gzip"));
    assert!(
        shape(&answer).body.starts_with(b"<!doctype html>"),
        "Flask's page"
    );
    let answer = roundtrip(ringway.addr(), &gz(Req::get("/plain/missing")));
    assert_eq!(answer.status, 404);
    assert_eq!(answer.header("content-encoding"), None, "gzip = false");
}

/// Behind an HTTP app server (Granian: lengths for whole answers, chunks for streamed
/// ones, connections kept) the same compression, on kept upstream connections.
#[test]
fn answers_from_granian_are_compressed_too() {
    let server = AppServer::start(Server::Granian, Served::Wsgi(App::Flask), Listen::Tcp, 1);
    let ringway = Ringway::with_config(format!(
        "[upstreams.web]\nservers = [\"{}\"]\nkeepalive = 4\n[gzip]\ntypes = [\"*\"]\n\
         [[routes]]\npath = \"/\"\nupstream = \"web\"\n",
        server.upstream()
    ))
    .start();
    let mut conn = Conn::open(ringway.addr());
    for _ in 0..3 {
        for (path, body) in [
            ("/stream/300000", pattern(300_000)),
            ("/lazy/70000", pattern(70_000)),
            ("/bytes/5000", pattern(5000)),
        ] {
            conn.send(&gz(Req::get(path)).to_bytes()).expect("send");
            let answer = conn
                .read_response()
                .unwrap_or_else(|e| panic!("{path}: {e}\n{}", ringway.stderr()));
            assert_eq!(
                answer.header("content-encoding").as_deref(),
                Some("gzip"),
                "{path}"
            );
            assert_eq!(shape(&answer).body, body, "{path}");
        }
    }
}
