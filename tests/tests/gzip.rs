//! Compressing the app's answers (`[gzip]`) against nginx's gzip module: the same requests
//! through nginx (`gzip on` with the same types, `gzip_vary on`, `gzip_min_length 20`) and
//! through ringway, to one uWSGI serving the Flask demo. Compared per request: status,
//! Content-Encoding, Vary, ETag, Accept-Ranges, and the body once decoded; and for each
//! case what ringway must do (so that two proxies compressing nothing cannot agree).
//! Framing is not compared: nginx sends a compressed answer chunked, ringway sends one that
//! came whole with a Content-Length.

use std::io::Read;
use std::time::Duration;

use ringway_tests::app_server::{AppServer, Listen, Served, Server};
use ringway_tests::client::{Conn, Req, Response, roundtrip};
use ringway_tests::data::pattern;
use ringway_tests::static_config::nginx_static_location;
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
                "{path}: status {}\n{}",
                answer.status,
                ringway.stderr()
            );
            assert_eq!(shape(&answer).body, body, "{path}");
        }
    }
}

/// Files from a static route, compressed as nginx's gzip filter compresses them (`gzip on`
/// in the file's `location`): the same files behind both, the same requests, the same
/// shapes. Ranges give way to compression (nginx's gzip filter runs before its range
/// filter), validators still answer 304, a precompressed sibling wins (`gzip_static`).
#[test]
fn files_are_compressed_as_nginx_compresses_them() {
    let files = tempfile::tempdir().expect("a temp dir");
    let dir = files.path();
    let css: String = (0..3000)
        .map(|i| format!(".c{i} {{ color: red; margin: {i}px }}\n"))
        .collect();
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).expect("write");
    write("big.css", css.as_bytes()); // ~110 KiB: compressed as it is read
    write("small.css", &css.as_bytes()[..5000]); // kept whole with its entry
    write("tiny.css", b"a{}"); // below min_length
    write("empty.css", b"");
    write(
        "app.js",
        "function f(x) { return x + 1; }\n".repeat(100).as_bytes(),
    );
    write("page.html", "<p>hello</p>\n".repeat(200).as_bytes());
    write("b.bin", &pattern(5000)); // a type not listed
    write("pre.css", &css.as_bytes()[..20_000]);
    let mut sibling = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut sibling, &css.as_bytes()[..20_000]).expect("gzip");
    write("pre.css.gz", &sibling.finish().expect("gzip"));

    let uwsgi = Uwsgi::start(App::Flask);
    let gzip = "gzip on; gzip_types text/css application/javascript; gzip_vary on; \
                gzip_min_length 20; expires 30d;";
    let nginx = Nginx::start_with_locations(
        uwsgi.socket(),
        &format!(
            "{}\n{}",
            nginx_static_location("/static/", dir, gzip),
            nginx_static_location("/gz/", dir, &format!("{gzip} gzip_static on;"))
        ),
    );
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n\
         [gzip]\ntypes = [\"text/css\", \"application/javascript\"]\nvary = true\n\
         [[routes]]\npath = \"/static/\"\nstatic = \"{}\"\nexpires = \"30d\"\n\
         [[routes]]\npath = \"/gz/\"\nstatic = \"{}\"\nexpires = \"30d\"\n\
         precompressed = [\"gzip\"]\n",
        uwsgi.upstream(),
        dir.display(),
        dir.display()
    ))
    .start();

    use Expect::*;
    let etag = ringway_tests::static_tree::etag_of(&dir.join("big.css"));
    let weak = format!("W/{etag}");
    let case = |name, req, expect| Case { name, req, expect };
    let cases = [
        case("big", gz(Req::get("/static/big.css")), Compressed),
        case("big-no-accept", Req::get("/static/big.css"), PlainVary),
        case("small", gz(Req::get("/static/small.css")), Compressed),
        case("small-again", gz(Req::get("/static/small.css")), Compressed),
        case("tiny", gz(Req::get("/static/tiny.css")), Plain),
        case("empty", gz(Req::get("/static/empty.css")), Plain),
        case("javascript", gz(Req::get("/static/app.js")), Compressed),
        case("html", gz(Req::get("/static/page.html")), Compressed),
        case("not-listed", gz(Req::get("/static/b.bin")), Plain),
        case(
            "head-big",
            gz(Req::new("HEAD", "/static/big.css")),
            HeadOfCompressed,
        ),
        case(
            "head-small",
            gz(Req::new("HEAD", "/static/small.css")),
            HeadOfCompressed,
        ),
        case(
            "range-gives-way",
            gz(Req::get("/static/big.css")).header("Range", "bytes=0-9"),
            Compressed,
        ),
        case(
            "unsatisfiable-range-gives-way",
            gz(Req::get("/static/big.css")).header("Range", "bytes=999999-"),
            Compressed,
        ),
        case(
            "range-no-accept",
            Req::get("/static/big.css").header("Range", "bytes=0-9"),
            PlainVary,
        ),
        case(
            "stale-if-range",
            gz(Req::get("/static/big.css"))
                .header("Range", "bytes=0-9")
                .header("If-Range", "\"x\""),
            Compressed,
        ),
        case(
            "if-none-match",
            gz(Req::get("/static/big.css")).header("If-None-Match", &etag),
            Plain,
        ),
        case(
            "if-none-match-weak",
            gz(Req::get("/static/big.css")).header("If-None-Match", &weak),
            Plain,
        ),
        case(
            "http10",
            gz(Req::get("/static/big.css").http10()),
            PlainVary,
        ),
        case(
            "via-proxy",
            gz(Req::get("/static/big.css")).header("Via", "1.1 cdn"),
            PlainVary,
        ),
        case(
            "precompressed-sibling",
            gz(Req::get("/gz/pre.css")),
            Compressed,
        ),
        case("no-sibling", gz(Req::get("/gz/big.css")), Compressed),
    ];
    for case in &cases {
        let theirs = roundtrip(nginx.addr(), &case.req);
        let ours = roundtrip(ringway.addr(), &case.req);
        let (mut theirs_shape, ours_shape) = (shape(&theirs), shape(&ours));
        // Where nginx has no Accept-Ranges and ringway does (static_parity.rs lists the
        // first two): its 206s, gzip_static's answers and its 304s. ringway sends it with
        // every file it does not compress.
        let sibling = case.name == "precompressed-sibling";
        if matches!(theirs.status, 206 | 304) || sibling {
            theirs_shape.accept_ranges = ours_shape.accept_ranges;
        }
        assert_eq!(
            (&ours_shape, ours.header("content-range")),
            (&theirs_shape, theirs.header("content-range")),
            "{}: ringway (left) and nginx",
            case.name
        );
        let says_gzip = || {
            assert_eq!(
                ours_shape.encoding.as_deref(),
                Some("gzip"),
                "{}",
                case.name
            );
            assert_eq!(ours_shape.accept_ranges, sibling, "{}", case.name);
        };
        match case.expect {
            Compressed => {
                says_gzip();
                let name = case.req.target().rsplit('/').next().unwrap_or_default();
                let file = std::fs::read(dir.join(name)).expect("the file");
                assert_eq!(ours_shape.body, file, "{}: decoded, the file", case.name);
                assert!(ours.body.len() < file.len() / 2, "{}", case.name);
            }
            HeadOfCompressed => {
                says_gzip();
                assert_eq!(ours.header("content-length"), None, "{}", case.name);
            }
            PlainVary => {
                assert_eq!(ours_shape.encoding, None, "{}", case.name);
                assert!(ours_shape.vary.is_some(), "{}", case.name);
            }
            Plain => assert_eq!(ours_shape.encoding, None, "{}", case.name),
        }
    }

    // Compressed files, whole and chunked, leave a kept connection in step.
    let mut conn = Conn::open(ringway.addr());
    for path in ["/static/big.css", "/static/small.css", "/static/b.bin"] {
        conn.send(&gz(Req::get(path)).to_bytes()).expect("send");
    }
    let answers = conn
        .read_responses(&["GET"; 3])
        .unwrap_or_else(|e| panic!("three answers on one connection: {e}\n{}", ringway.stderr()));
    assert_eq!(shape(&answers[0]).body, css.as_bytes());
    assert_eq!(shape(&answers[1]).body, &css.as_bytes()[..5000]);
    assert_eq!(answers[2].body, pattern(5000));
}

/// nginx's `$gzip_ratio` (`ngx_http_gzip_ratio_variable`): the plain bytes over the gzip
/// member's (zlib's `total_out`, header and trailer included: nginx has zlib write them),
/// two decimals, the second rounded on the third.
fn nginx_ratio(plain: usize, member: usize) -> String {
    let (zin, zout) = (plain as u64, member as u64);
    let (mut whole, mut hundredths) = (zin / zout, zin * 100 / zout % 100);
    if zin * 1000 / zout % 10 > 4 {
        hundredths += 1;
        if hundredths > 99 {
            whole += 1;
            hundredths = 0;
        }
    }
    format!("{whole}.{hundredths:02}")
}

#[test]
fn the_gzip_ratio_is_logged_as_nginx_logs_it() {
    let files = tempfile::tempdir().expect("a temp dir");
    let css: String = (0..3000)
        .map(|i| format!(".c{i} {{ color: red; margin: {i}px }}\n"))
        .collect();
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(files.path().join(name), bytes).expect("write");
    };
    write("big.css", css.as_bytes()); // compressed as it is read, in pieces
    write("small.css", &css.as_bytes()[..5000]); // compressed whole, kept with its entry
    let logs = tempfile::tempdir().expect("a temp dir");
    let (nginx_log, ringway_log) = (logs.path().join("nginx"), logs.path().join("ringway"));
    let uwsgi = Uwsgi::start(App::Raw);
    let gzip = "gzip on; gzip_types text/css application/octet-stream; gzip_min_length 20;";
    let nginx = Nginx::start_with_http_directives(
        uwsgi.socket(),
        "log_format ratio '$http_x_case $gzip_ratio';",
        &format!(
            "access_log {} ratio; {gzip} {}",
            nginx_log.display(),
            nginx_static_location("/static/", files.path(), "")
        ),
    );
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\naccess_log = {:?}\naccess_log_format = '$http_x_case $gzip_ratio'\n\
         [gzip]\ntypes = [\"text/css\", \"application/octet-stream\"]\n\
         [[routes]]\npath = \"/static/\"\nstatic = '{}'\n",
        uwsgi.upstream(),
        ringway_log.display().to_string(),
        files.path().display()
    ))
    .start();
    let cases = [
        ("/bytes/20000", true), // the app's, whole
        ("/static/small.css", true),
        ("/static/big.css", true),
        ("/bytes/20000", false), // not asked for: not compressed, no ratio
    ];
    for (addr, log) in [(nginx.addr(), &nginx_log), (ringway.addr(), &ringway_log)] {
        let mut expected = Vec::new();
        for (i, (path, gzipped)) in cases.iter().enumerate() {
            let mut req = Req::get(path).header("X-Case", &i.to_string());
            if *gzipped {
                req = gz(req);
            }
            let r = roundtrip(addr, &req);
            assert_eq!(r.status, 200, "{path}: {r:?}");
            let ratio = match r.header("content-encoding").as_deref() {
                Some("gzip") => nginx_ratio(gunzip(&r.body).len(), r.body.len()),
                _ => "-".to_owned(),
            };
            assert_eq!(ratio == "-", !gzipped, "{path} at {addr}");
            expected.push(format!("{i} {ratio}"));
        }
        let complete = ringway_tests::wait::poll_until(std::time::Duration::from_secs(10), || {
            std::fs::read_to_string(log).is_ok_and(|t| t.lines().count() >= cases.len())
        });
        assert!(complete, "{} lines at {addr}", log.display());
        let text = std::fs::read_to_string(log).expect("the log");
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort();
        assert_eq!(lines, expected, "at {addr}");
    }
}

/// An answer the app sends slowly gives its zlib state back while the app is silent: held
/// for the answer's whole life, 200 KiB each of the shared memory budget, a few of them
/// stopped compression for every other answer (found by review for event streams sent with
/// `X-Accel-Buffering: no`, then again for buffered answers, a slow export's).
#[test]
fn a_silent_answer_holds_no_compression_state() {
    for streamed in [true, false] {
        a_silent_answer_beside_another(streamed);
    }
}

/// An app that streams more often than once a second, buffered: what zlib holds of it goes
/// to the client a second after it came at most, as the README says (found by review: the
/// rest waited for a whole second of silence, which such an app never gives, so the client
/// got the gzip header alone until zlib filled a block).
#[test]
fn a_trickling_answer_reaches_the_client_within_a_second() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n[gzip]\ntypes = [\"text/html\"]\n",
        uwsgi.upstream()
    ))
    .start();
    let mut conn = Conn::open(ringway.addr());
    conn.send(&gz(Req::get("/ticks?n=20&ms=300")).to_bytes())
        .expect("send");
    // The first tick came at once; 1.6 s later it must be through, at most a second after.
    std::thread::sleep(Duration::from_millis(1600));
    conn.set_read_timeout(Duration::from_millis(200));
    let _ = conn.read_at_least(usize::MAX);
    let got = conn.leftover().to_vec();
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(got.len(), |i| i + 4);
    let mut gzipped = Vec::new();
    let mut rest = &got[head_end..];
    // The chunks that came whole.
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .unwrap_or(0);
        let Some(data) = rest.get(line_end + 2..line_end + 2 + size) else {
            break;
        };
        gzipped.extend_from_slice(data);
        rest = &rest[line_end + 2 + size..];
        rest = rest.strip_prefix(b"\r\n").unwrap_or(rest);
    }
    let mut plain = Vec::new();
    // A stream cut short: what it decodes to so far.
    let _ = flate2::read::GzDecoder::new(&gzipped[..]).read_to_end(&mut plain);
    let plain = String::from_utf8_lossy(&plain);
    assert!(
        plain.starts_with("<p>tick 0</p>\n<p>tick 1</p>\n"),
        "{plain:?} from {:?}",
        String::from_utf8_lossy(&got[..head_end])
    );
}

fn a_silent_answer_beside_another(streamed: bool) {
    let uwsgi = Uwsgi::start_with(ringway_tests::uwsgi::UwsgiOptions {
        workers: 4,
        ..ringway_tests::uwsgi::UwsgiOptions::new(App::Raw)
    });
    // 800 KiB: the two answers' zlib states (320 KiB each) fit, and a third answer's
    // (224 KiB) only if they gave theirs back.
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\nmax_buffer_memory = \"800k\"\n\
         [[routes]]\npath = \"/paced\"\nexact = true\nupstream = \"default\"\nbuffering = {}\n\
         [[routes]]\npath = \"/\"\nupstream = \"default\"\n\
         [gzip]\ntypes = [\"*\"]\n",
        uwsgi.upstream(),
        !streamed,
    ))
    .start();
    let gates = tempfile::tempdir().expect("temp dir");
    let mut streams: Vec<(Conn, std::path::PathBuf)> = (0..2)
        .map(|i| {
            let gate = gates.path().join(format!("gate{i}"));
            let mut conn = Conn::open(ringway.addr());
            let req = gz(Req::get(&format!("/paced?gate={}", gate.display())));
            conn.send(&req.to_bytes()).expect("send");
            // Its head and first event: the stream compresses (a buffered one holds its
            // first event in zlib, and sends its head alone).
            conn.read_at_least(if streamed { 200 } else { 100 })
                .expect("the answer began");
            (conn, gate)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let r = roundtrip(ringway.addr(), &gz(Req::get("/bytes/5000")));
    assert_eq!(
        r.header("content-encoding").as_deref(),
        Some("gzip"),
        "beside two silent answers (streamed: {streamed}): {r:?}"
    );
    for (conn, gate) in &mut streams {
        std::fs::write(&*gate, b"").expect("open the gate");
        let r = conn.read_response().expect("the rest of the stream");
        assert_eq!(
            r.header("content-encoding").as_deref(),
            Some("gzip"),
            "{r:?}"
        );
        assert_eq!(
            gunzip(&r.body),
            b"data: first\n\ndata: second\n\n",
            "one gzip stream across the rest: {r:?}"
        );
    }
}
