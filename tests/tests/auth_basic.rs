//! HTTP Basic authentication (`auth_basic`) against nginx's: one htpasswd file with a user in
//! each scheme both take, nginx with `auth_basic` + `auth_basic_user_file` in its server
//! block (and `auth_basic off` in one location), ringway with the same at the top of its
//! file (and `"off"` on one route), both in front of one uWSGI serving the Flask demo.
//! Compared per request: the status and `WWW-Authenticate`; and for each case what ringway
//! must answer, so two proxies letting everyone in cannot agree.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ringway_tests::client::{Conn, Req, Response, roundtrip};
use ringway_tests::nginx::uwsgi_pass;
use ringway_tests::wait::poll_until;
use ringway_tests::{App, Nginx, Ringway, Uwsgi};

/// Every user's password is "secret" (made by `openssl passwd` and libxcrypt's crypt(3);
/// bcrypt at cost 5; yescrypt with Debian's default parameters, as `mkpasswd` makes it).
const USERS: &str = "\
# one user per scheme
plain:{PLAIN}secret
sha:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=
ssha:{SSHA}gVK8WC9YyFT1gMsQHTGCgT3sSv5zYWx0
apr1:$apr1$lZL6V/ci$PR6QJXkRFUzdUuaYcwrI//
md5:$1$saltsalt$9xy1btjgzLYfb7hivXtC//
sha256:$5$abcdefgh$gruCpC7VkOTspMQTTSAR8mtlO9Upms.fwqE5y16JVM.
sha512:$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG.
bcrypt:$2y$05$KkHXfcCOE.uQ9hwydT.zb.RhMJ2tNqrkqjVBRMlZ8btZ7/zo.8P7C:a comment
yescrypt:$y$j9T$abcdefghijklmnop$3dL1LkYnZM.OVXuVdnnaKVDlLYT92dRwOzDZ5XiVCe.
";

const SCHEMES: [&str; 9] = [
    "plain", "sha", "ssha", "apr1", "md5", "sha256", "sha512", "bcrypt", "yescrypt",
];

fn basic(credentials: &str) -> String {
    format!("Basic {}", STANDARD.encode(credentials))
}

/// Sends `req` to both; their status and `WWW-Authenticate` must be equal, and the status
/// `want`. Returns ringway's answer.
fn same_answer(nginx: &Nginx, ringway: &Ringway, name: &str, req: &Req, want: u16) -> Response {
    let theirs = roundtrip(nginx.addr(), req);
    let ours = roundtrip(ringway.addr(), req);
    assert_eq!(
        (ours.status, ours.header("www-authenticate")),
        (theirs.status, theirs.header("www-authenticate")),
        "{name}: ringway (left) and nginx\n{}",
        ringway.stderr()
    );
    assert_eq!(ours.status, want, "{name}");
    ours
}

#[test]
fn ringway_lets_in_whom_nginx_lets_in() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, USERS).expect("write the users");
    let private = dir.path().join("private");
    std::fs::create_dir(&private).expect("mkdir");
    std::fs::write(private.join("report.pdf"), b"%PDF the report").expect("write the file");
    let uwsgi = Uwsgi::start(App::Flask);
    let nginx = Nginx::start_with_server_directives(
        uwsgi.socket(),
        &format!(
            "auth_basic \"Staff only\"; auth_basic_user_file {};
            location /page/ {{ auth_basic off; {pass} }}
            location /report/ {{ auth_basic off; {pass} }}
            location /protected/ {{ internal; alias {}/; }}
            location = /healthz {{ return 200 \"ok\"; }}",
            file.display(),
            private.display(),
            pass = uwsgi_pass(uwsgi.socket())
        ),
    );
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n\
         auth_basic = {{ realm = \"Staff only\", user_file = \"{}\" }}\n\
         [[routes]]\npath = \"/page/\"\nupstream = \"default\"\nauth_basic = \"off\"\n\
         [[routes]]\npath = \"/report/\"\nupstream = \"default\"\nauth_basic = \"off\"\n\
         [[routes]]\npath = \"/protected/\"\nstatic = \"{}\"\ninternal = true\n\
         [[routes]]\npath = \"/healthz\"\nexact = true\nrespond = {{ status = 200, body = \"ok\" }}\n",
        uwsgi.upstream(),
        file.display(),
        private.display()
    ))
    .start();

    let environ = || Req::get("/environ");
    let mut cases: Vec<(String, Req, u16)> = vec![
        ("no credentials".into(), environ(), 401),
        (
            "HEAD, no credentials".into(),
            Req::new("HEAD", "/environ"),
            401,
        ),
        (
            "unknown user".into(),
            environ().header("Authorization", &basic("nobody:secret")),
            401,
        ),
        (
            "not Basic".into(),
            environ().header("Authorization", "Bearer abc"),
            401,
        ),
        (
            "not base64".into(),
            environ().header("Authorization", "Basic !!!!"),
            401,
        ),
        (
            "no colon".into(),
            environ().header(
                "Authorization",
                &format!("Basic {}", STANDARD.encode("plain")),
            ),
            401,
        ),
        (
            "scheme in lower case".into(),
            environ().header(
                "Authorization",
                &format!("basic {}", STANDARD.encode("plain:secret")),
            ),
            200,
        ),
        // nginx's base64 decoder: what follows the first `=` is not read, the last
        // character's spare bits may be set; spaces after the scheme, not a tab.
        (
            "junk after the padding".into(),
            environ().header("Authorization", "Basic c2hhOnNlY3JldA==xyz"),
            200,
        ),
        (
            "spare bits set".into(),
            environ().header("Authorization", "Basic c2hhOnNlY3JldB"),
            200,
        ),
        (
            "a tab after the scheme".into(),
            environ().header("Authorization", "Basic \tc2hhOnNlY3JldA=="),
            401,
        ),
        // libxcrypt, which nginx's crypt schemes go through, refuses a password of 512
        // bytes or more.
        (
            "sha512: a 600-byte password".into(),
            environ().header(
                "Authorization",
                &basic(&format!("sha512:{}", "p".repeat(600))),
            ),
            401,
        ),
        (
            "a route with auth_basic off".into(),
            Req::get("/page/100"),
            200,
        ),
        // nginx's `return` answers in its rewrite phase, before the password is asked for.
        ("a fixed answer".into(), Req::get("/healthz"), 200),
        // The app's route is open, the file it hands out (X-Accel-Redirect) is under the
        // top-level auth_basic: nginx checks it again after the internal redirect.
        (
            "a file from an open route, no credentials".into(),
            Req::get("/report/report.pdf"),
            401,
        ),
        (
            "a file from an open route, with credentials".into(),
            Req::get("/report/report.pdf").header("Authorization", &basic("apr1:secret")),
            200,
        ),
    ];
    for user in SCHEMES {
        cases.push((
            format!("{user}: right password"),
            environ().header("Authorization", &basic(&format!("{user}:secret"))),
            200,
        ));
        cases.push((
            format!("{user}: wrong password"),
            environ().header("Authorization", &basic(&format!("{user}:Secret"))),
            401,
        ));
    }
    // The same again: ringway's kept credentials answer as the first check did.
    cases.push((
        "bcrypt again".into(),
        environ().header("Authorization", &basic("bcrypt:secret")),
        200,
    ));

    // Two Authorization headers: 400 from both (a header that must be unique), before any
    // password is looked at.
    let twice = environ()
        .header("Authorization", &basic("plain:secret"))
        .header("Authorization", &basic("plain:secret"));
    assert_eq!(roundtrip(nginx.addr(), &twice).status, 400);
    assert_eq!(roundtrip(ringway.addr(), &twice).status, 400);

    for (name, req, want) in &cases {
        let ours = same_answer(&nginx, &ringway, name, req, *want);
        if *want == 401 {
            assert_eq!(
                ours.header("www-authenticate").as_deref(),
                Some("Basic realm=\"Staff only\""),
                "{name}"
            );
            assert!(!ours.says_close(), "{name}: a 401 keeps the connection");
        }
    }
}

#[test]
fn a_user_file_ringway_cannot_check_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, "ann:$apr1$x$y\nbob:abNANd1rDfiNc\n").expect("write");
    let config = dir.path().join("ringway.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = [\"unix:/nonexistent\"]\n\
             [[routes]]\npath = \"/admin/\"\nupstream = \"default\"\n\
             auth_basic = {{ realm = \"Admin\", user_file = \"{}\" }}\n",
            file.display()
        ),
    )
    .expect("write the config");
    let out = std::process::Command::new(ringway_tests::paths::ringway_bin())
        .arg("--check-config")
        .arg("--config")
        .arg(&config)
        .env("NO_COLOR", "1")
        .output()
        .expect("run ringway --check-config");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("routes[0].auth_basic") && err.contains("line 1"),
        "{err}"
    );
}

/// nginx's `satisfy any`: a listed address gets in without a password, anyone else with
/// one; a route whose list does not hold the client and that asks for no password refuses
/// it (403). A `deny` list that does not hold the client says nothing: the password
/// decides, unless an `allow all` lets it in. The test's client is 127.0.0.1.
#[test]
fn satisfy_any_lets_in_a_listed_address_or_a_password() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, USERS).expect("write the users");
    let uwsgi = Uwsgi::start(App::Flask);
    let auth = format!(
        "auth_basic \"Staff only\"; auth_basic_user_file {};",
        file.display()
    );
    let pass = uwsgi_pass(uwsgi.socket());
    let nginx = Nginx::start_with_server_directives(
        uwsgi.socket(),
        &format!(
            "location /page/ {{ satisfy any; allow 127.0.0.1; deny all; {auth} {pass} }}
            location /bytes/ {{ satisfy any; allow 10.0.0.0/8; deny all; {auth} {pass} }}
            location /status/ {{ satisfy any; allow 10.0.0.0/8; deny all; {pass} }}
            location /environ {{ satisfy all; allow 127.0.0.1; deny all; {auth} {pass} }}
            location /stream/ {{ satisfy any; deny 10.0.0.0/8; {auth} {pass} }}
            location /lazy/ {{ satisfy any; deny 10.0.0.0/8; allow all; {auth} {pass} }}"
        ),
    );
    let route = |path: &str, allow: &str, with_auth: bool, satisfy: &str| {
        let auth = if with_auth {
            format!(
                "auth_basic = {{ realm = \"Staff only\", user_file = \"{}\" }}\n",
                file.display()
            )
        } else {
            String::new()
        };
        format!(
            "[[routes]]\npath = \"{path}\"\nupstream = \"default\"\nallow = [\"{allow}\"]\n\
             satisfy = \"{satisfy}\"\n{auth}"
        )
    };
    // A route that answers itself asks no password, under either `satisfy`, not even the
    // top-level one it inherits (its own is refused): its allow list alone decides
    // (nginx's `return` comes before every access check; ringway keeps the list).
    let fixed = |path: &str, satisfy: &str| {
        route(path, "10.0.0.0/8", false, satisfy).replace(
            "upstream = \"default\"",
            "exact = true\nrespond = { status = 200, body = \"fixed\" }",
        )
    };
    let answers_itself = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n\
         auth_basic = {{ realm = \"Staff only\", user_file = \"{}\" }}\n{}{}",
        uwsgi.upstream(),
        file.display(),
        fixed("/fixed-any", "any"),
        fixed("/fixed-all", "all"),
    ))
    .start();
    for path in ["/fixed-any", "/fixed-all"] {
        let r = roundtrip(answers_itself.addr(), &Req::get(path));
        assert_eq!(r.status, 403, "{path}: not listed: {r:?}");
    }
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\n{}{}{}{}{}{}",
        uwsgi.upstream(),
        route("/page/", "127.0.0.1", true, "any"),
        route("/bytes/", "10.0.0.0/8", true, "any"),
        route("/status/", "10.0.0.0/8", false, "any"),
        route("/environ", "127.0.0.1", true, "all"),
        route("/stream/", "10.0.0.0/8", true, "any").replace("allow =", "deny ="),
        route("/lazy/", "all", true, "any").replace(
            "allow = [\"all\"]",
            "allow = [\"all\"]\ndeny = [\"10.0.0.0/8\"]"
        ),
    ))
    .start();
    let with = |req: Req, credentials: &str| req.header("Authorization", &basic(credentials));
    let cases = [
        ("listed: no password needed", Req::get("/page/10"), 200),
        ("not listed, no password", Req::get("/bytes/10"), 401),
        (
            "not listed, the password",
            with(Req::get("/bytes/10"), "sha512:secret"),
            200,
        ),
        (
            "not listed, a wrong password",
            with(Req::get("/bytes/10"), "sha512:nope"),
            401,
        ),
        ("not listed, nothing to ask", Req::get("/status/204"), 403),
        (
            "satisfy all: listed, no password",
            Req::get("/environ"),
            401,
        ),
        (
            "satisfy all: listed, the password",
            with(Req::get("/environ"), "plain:secret"),
            200,
        ),
        ("not denied, no password", Req::get("/stream/10"), 401),
        (
            "not denied, the password",
            with(Req::get("/stream/10"), "sha512:secret"),
            200,
        ),
        (
            "allowed by all: no password needed",
            Req::get("/lazy/10"),
            200,
        ),
    ];
    for (name, req, want) in &cases {
        same_answer(&nginx, &ringway, name, req, *want);
    }
}

/// nginx reads the user file at every request; ringway looks at it at most once a second:
/// past that, both take a new password, a new user and a user gone, both refuse everyone
/// (403) while the file is missing, and both take it back once it is there again. The log
/// says so once per change.
#[test]
fn a_changed_user_file_counts_as_in_nginx() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, "ann:{PLAIN}one\n").expect("write the users");
    let uwsgi = Uwsgi::start(App::Flask);
    let nginx = Nginx::start_with_server_directives(
        uwsgi.socket(),
        &format!(
            "auth_basic \"Staff only\"; auth_basic_user_file {};",
            file.display()
        ),
    );
    let ringway = Ringway::with_config(format!(
        "upstream = [\"{}\"]\nauth_basic = {{ realm = \"Staff only\", user_file = \"{}\" }}\n",
        uwsgi.upstream(),
        file.display()
    ))
    .start();
    let with =
        |credentials: &str| Req::get("/page/10").header("Authorization", &basic(credentials));
    // Past ringway's look at the file (once a second).
    let after_a_look = || std::thread::sleep(std::time::Duration::from_millis(1100));

    same_answer(&nginx, &ringway, "the first file", &with("ann:one"), 200);

    std::fs::write(&file, "ann:{PLAIN}two\nbob:{PLAIN}b\n").expect("rewrite the users");
    after_a_look();
    same_answer(&nginx, &ringway, "an old password", &with("ann:one"), 401);
    same_answer(&nginx, &ringway, "the new password", &with("ann:two"), 200);
    same_answer(&nginx, &ringway, "a new user", &with("bob:b"), 200);

    std::fs::write(&file, "bob:{PLAIN}b\n").expect("rewrite the users");
    after_a_look();
    same_answer(&nginx, &ringway, "a user gone", &with("ann:two"), 401);

    std::fs::remove_file(&file).expect("remove the file");
    after_a_look();
    same_answer(&nginx, &ringway, "the file gone", &with("bob:b"), 403);
    same_answer(
        &nginx,
        &ringway,
        "the file gone, again",
        &with("bob:b"),
        403,
    );

    std::fs::write(&file, "bob:{PLAIN}b\n").expect("write the users");
    after_a_look();
    same_answer(&nginx, &ringway, "the file back", &with("bob:b"), 200);

    let wait = std::time::Duration::from_secs(5);
    assert_eq!(
        ringway.log_count_after_waiting("no one gets in (403) until it is mended", 1, wait),
        1,
        "one error line for the file gone:\n{}",
        ringway.stderr()
    );
    assert_eq!(
        ringway.log_count_after_waiting("auth_basic user file read again", 3, wait),
        3,
        "one line per change read:\n{}",
        ringway.stderr()
    );
}

/// A slow hash waits for one of its file's four places to be checked in. A client that
/// leaves while it waits is let go at once (logged 499, as nginx logs a client that left)
/// and its check never runs, so a flood of abandoned guesses does not hold up the next
/// login (found by review: each one still cost a bcrypt run).
#[test]
fn a_client_that_leaves_while_its_password_waits_is_not_checked() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("htpasswd");
    // bcrypt at cost 10: a quarter of a second a check in a debug build.
    let users = "slow:$2b$10$9id6N513n/O9NwHcdCaU6OHxMEaSy5OhtV.3j6C2iZGPIWthg8s/W\n";
    std::fs::write(&file, users).expect("write the users");
    let uwsgi = Uwsgi::start(App::Flask);
    let auth_basic = format!(
        "auth_basic = {{ realm = \"Staff\", user_file = \"{}\" }}\n",
        file.display()
    );
    abandoned_guesses_are_let_go(&format!(
        "upstream = [\"{}\"]\n{auth_basic}",
        uwsgi.upstream()
    ));
    // The same under `satisfy = "any"` with an auth request that would let them in: a
    // client gone is asked nothing more (the subrequest itself is not seen from here).
    abandoned_guesses_are_let_go(&format!(
        "upstream = [\"{}\"]\n\
         [[routes]]\npath = \"/environ\"\nupstream = \"default\"\nsatisfy = \"any\"\n\
         allow = [\"10.0.0.0/8\"]\nauth_request = \"/bytes/0\"\n{auth_basic}",
        uwsgi.upstream()
    ));
}

/// Sixteen wrong guesses whose clients leave at once, then the right password, on a
/// ringway with `config`: the guesses waiting for a place are logged 499 and never
/// checked, the right one gets in.
fn abandoned_guesses_are_let_go(config: &str) {
    const GUESSES: usize = 16;
    let ringway = Ringway::with_config(config.to_owned())
        .arg("--access-log", "stderr")
        .arg("--access-log-format", "line $request_uri $status")
        .start();
    let guesses: Vec<Conn> = (0..GUESSES)
        .map(|i| {
            let mut conn = Conn::open(ringway.addr());
            let req = Req::get(&format!("/environ?guess={i}"))
                .header("Authorization", &basic(&format!("slow:wrong{i}")));
            conn.send(&req.to_bytes()).expect("send");
            conn
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(100));
    drop(guesses);
    let right = Req::get("/environ").header("Authorization", &basic("slow:secret"));
    assert_eq!(roundtrip(ringway.addr(), &right).status, 200);
    let mut statuses = Vec::new();
    poll_until(std::time::Duration::from_secs(10), || {
        statuses = ringway
            .stderr()
            .lines()
            .filter(|l| l.starts_with("line /environ?guess="))
            .filter_map(|l| l.rsplit(' ').next().map(str::to_owned))
            .collect();
        statuses.len() == GUESSES
    });
    assert_eq!(statuses.len(), GUESSES, "{}", ringway.stderr());
    // Checked: refused (401), or let in by the auth request under `satisfy = "any"`.
    let checked = statuses.iter().filter(|s| *s != "499").count();
    assert!(
        statuses
            .iter()
            .all(|s| ["499", "401", "200"].contains(&s.as_str())),
        "{statuses:?}"
    );
    // Four places: at most the four checks running, and those that took a place as one
    // ended before the clients left, were checked.
    assert!(
        checked <= 8,
        "{checked} of {GUESSES} abandoned guesses were checked: {statuses:?}"
    );
}
