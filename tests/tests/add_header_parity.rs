//! `response_headers` with variables against nginx's `add_header` with variables (a CORS
//! origin echoed back, the client's address, a query argument, the file's path), on an
//! app's answers, a fixed answer, a file and an error answer marked `always`: the same
//! headers with the same values, and none where the value comes out empty (nginx adds no
//! header with an empty value).

use ringway_tests::client::{Req, Response, roundtrip};
use ringway_tests::nginx::uwsgi_pass;
use ringway_tests::{App, Nginx, Ringway, Uwsgi};

/// The headers the routes add.
const ADDED: [&str; 6] = [
    "access-control-allow-origin",
    "x-served-for",
    "x-nothing",
    "x-q",
    "x-path",
    "x-empty",
];

/// Headers and their values, as a case wants them.
type Added = &'static [(&'static str, &'static str)];

#[test]
fn variables_in_added_headers_come_out_as_nginx_s() {
    let uwsgi = Uwsgi::start(App::Flask);
    let files = tempfile::tempdir().expect("a temp dir");
    std::fs::write(files.path().join("a.txt"), b"some text").expect("write a file");
    let pass = uwsgi_pass(uwsgi.socket());
    let nginx = Nginx::start_with_locations(
        uwsgi.socket(),
        &format!(
            "location /environ {{
                add_header Access-Control-Allow-Origin $http_origin always;
                add_header X-Served-For $remote_addr;
                add_header X-Nothing $http_x_nothing;
                {pass}
            }}
            location /status/ {{
                add_header Access-Control-Allow-Origin $http_origin always;
                add_header X-Served-For $remote_addr;
                {pass}
            }}
            location = /fixed {{
                return 200 \"fixed\";
                add_header X-Q $arg_q;
                add_header X-Empty \"\";
            }}
            location /files/ {{
                alias {}/;
                add_header X-Path $uri;
                add_header Access-Control-Allow-Origin $http_origin always;
            }}",
            files.path().display()
        ),
    );
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n\
         [[routes]]\npath = \"/environ\"\nupstream = \"default\"\n\
         response_headers = {{ \"Access-Control-Allow-Origin\" = {{ value = \"$http_origin\", \
         always = true }}, \"X-Served-For\" = \"$remote_addr\", \
         \"X-Nothing\" = \"$http_x_nothing\" }}\n\
         [[routes]]\npath = \"/status/\"\nupstream = \"default\"\n\
         response_headers = {{ \"Access-Control-Allow-Origin\" = {{ value = \"$http_origin\", \
         always = true }}, \"X-Served-For\" = \"$remote_addr\" }}\n\
         [[routes]]\npath = \"/fixed\"\nexact = true\nrespond = {{ status = 200, body = \"fixed\" }}\n\
         response_headers = {{ \"X-Q\" = \"$arg_q\", \"X-Empty\" = \"\" }}\n\
         [[routes]]\npath = \"/files/\"\nstatic = \"{}\"\n\
         response_headers = {{ \"X-Path\" = \"$uri\", \"Access-Control-Allow-Origin\" = \
         {{ value = \"$http_origin\", always = true }} }}\n",
        uwsgi.upstream(),
        files.path().display()
    ))
    .start();

    let origin = |req: Req| req.header("Origin", "https://app.example");
    let cases: Vec<(&str, Req, u16, Added)> = vec![
        (
            "an app's answer, an origin",
            origin(Req::get("/environ")),
            200,
            &[
                ("access-control-allow-origin", "https://app.example"),
                ("x-served-for", "127.0.0.1"),
            ],
        ),
        (
            "an app's answer, no origin: no header",
            Req::get("/environ"),
            200,
            &[("x-served-for", "127.0.0.1")],
        ),
        (
            "an app's error, an origin: the `always` one only",
            origin(Req::get("/status/500")),
            500,
            &[("access-control-allow-origin", "https://app.example")],
        ),
        (
            "a fixed answer, an argument",
            Req::get("/fixed?q=a%20b&r=2"),
            200,
            &[("x-q", "a%20b")],
        ),
        (
            "a fixed answer, no argument: no header",
            Req::get("/fixed?r=2"),
            200,
            &[],
        ),
        (
            "a file, its path decoded",
            origin(Req::get("/files/%61.txt")),
            200,
            &[
                ("x-path", "/files/a.txt"),
                ("access-control-allow-origin", "https://app.example"),
            ],
        ),
        (
            "no such file, an origin: the `always` one only",
            origin(Req::get("/files/none.txt")),
            404,
            &[("access-control-allow-origin", "https://app.example")],
        ),
    ];
    let added = |r: &Response| -> Vec<(String, Vec<String>)> {
        ADDED
            .iter()
            .map(|name| ((*name).to_owned(), r.header_all(name)))
            .filter(|(_, values)| !values.is_empty())
            .collect()
    };
    for (name, req, status, want) in cases {
        let theirs = roundtrip(nginx.addr(), &req);
        let ours = roundtrip(ringway.addr(), &req);
        assert_eq!(
            (ours.status, added(&ours)),
            (theirs.status, added(&theirs)),
            "{name}: ringway (left) and nginx\n{}",
            ringway.stderr()
        );
        let want: Vec<(String, Vec<String>)> = want
            .iter()
            .map(|(n, v)| ((*n).to_owned(), vec![(*v).to_owned()]))
            .collect();
        let mut got = added(&ours);
        got.sort();
        let mut want = want;
        want.sort();
        assert_eq!((ours.status, got), (status, want), "{name}");
    }
}
