//! A static route's fallback to a path (`try_files $uri $uri/ /app/index.html`): a
//! single-page app's page for every path of its own that has no file, beside nginx.

use std::fs;

use ringway_tests::{App, Nginx, Req, Response, Ringway, Uwsgi, roundtrip};

/// What the comparison looks at: status and body (the types' spellings differ: nginx's
/// mime.types has no charset).
fn seen(r: &Response) -> (u16, Vec<u8>) {
    (r.status, r.body.clone())
}

#[test]
fn every_path_without_a_file_gets_the_apps_page_as_from_nginx() {
    let parent = tempfile::tempdir().expect("temp dir");
    let app = parent.path().join("app");
    fs::create_dir_all(app.join("assets")).expect("dirs");
    let page = b"<!doctype html><title>app</title><div id=root></div>\n";
    fs::write(app.join("index.html"), page).expect("index");
    fs::write(app.join("assets/app.js"), b"console.log(1)\n").expect("script");
    fs::create_dir_all(parent.path().join("cycle")).expect("dir");

    let uwsgi = Uwsgi::start(App::Raw);
    let nginx = Nginx::start_with_locations(
        uwsgi.socket(),
        &format!(
            "location /app/ {{ root {0}; try_files $uri $uri/ /app/index.html; }}
             location /cycle/ {{ root {0}; try_files $uri /cycle/missing.html; }}",
            parent.path().display()
        ),
    );
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n\
         [[routes]]\npath = \"/app/\"\nstatic = '{}'\nindex = \"index.html\"\n\
         fallback = \"/app/index.html\"\n\
         [[routes]]\npath = \"/cycle/\"\nstatic = '{}'\nfallback = \"/cycle/missing.html\"\n",
        uwsgi.upstream(),
        app.display(),
        parent.path().join("cycle").display()
    ))
    .start();

    let cases = [
        (Req::get("/app/"), 200),
        (Req::get("/app/assets/app.js"), 200),
        (Req::get("/app/dashboard/settings?tab=2"), 200),
        (Req::get("/app/assets/missing.js"), 200),
        (Req::new("HEAD", "/app/dashboard"), 200),
        (Req::post("/app/dashboard", b"x"), 405),
        // A fallback to a path that has no file either: a redirect cycle, 500.
        (Req::get("/cycle/x"), 500),
    ];
    for (req, status) in &cases {
        let ours = roundtrip(ringway.addr(), req);
        let theirs = roundtrip(nginx.addr(), req);
        assert_eq!(ours.status, *status, "{req:?}: {ours:?}");
        if *status == 200 {
            assert_eq!(seen(&ours), seen(&theirs), "{req:?}");
        } else {
            assert_eq!(ours.status, theirs.status, "{req:?}: {theirs:?}");
        }
    }
    let r = roundtrip(ringway.addr(), &Req::get("/app/some/route"));
    assert_eq!(r.body, page);
    // Its validators are index.html's: a revalidation gets 304.
    let etag = r.header("etag").expect("an ETag");
    let again = Req::get("/app/other/route").header("If-None-Match", &etag);
    assert_eq!(roundtrip(ringway.addr(), &again).status, 304);
}
