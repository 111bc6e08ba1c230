//! Parity with nginx `proxy_pass`: the same requests through nginx (`upstream` block with
//! `keepalive 32`, `proxy_http_version 1.1`, `proxy_set_header Connection ""` and the usual
//! Host / X-Forwarded-For / X-Forwarded-Proto / X-Real-IP lines) and through ringway (an HTTP
//! upstream group, `keepalive = 32`) to the SAME gunicorn serving `tests/apps/http_echo.py`.
//! Compared: what the app saw (method, target, headers, Content-Length, body bytes read,
//! remote address, scheme) and what the client got (status, Content-Type, ETag, body).
//! Where ringway differs from nginx on purpose, [`on_purpose`] says why and checks ringway's
//! side. Framing of the answers is not compared: each proxy frames the answer for its
//! client itself (nginx relays an unframed answer chunked, ringway may send a length).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use serde_json::Value;

use ringway_tests::app_server::{AppServer, Listen, Served, Server};
use ringway_tests::client::{Conn, Req, Response};
use ringway_tests::data::pattern;
use ringway_tests::{Nginx, Ringway};

/// One request of the table.
struct Case {
    name: &'static str,
    req: Req,
    /// The app answers with what it saw (the echo route; HEAD: in `X-Echo`).
    echo: bool,
}

fn cases() -> Vec<Case> {
    let body = pattern(10_000);
    let long = "v".repeat(4000);
    vec![
        Case {
            name: "get-with-query",
            req: Req::get("/echo/a%20b?x=1&y=%2F&z"),
            echo: true,
        },
        Case {
            name: "head",
            req: Req::new("HEAD", "/echo?head=1"),
            echo: true,
        },
        Case {
            name: "post-content-length",
            req: Req::post("/echo", &body).header("Content-Type", "application/octet-stream"),
            echo: true,
        },
        Case {
            name: "post-chunked",
            req: Req::new("POST", "/echo").chunked(&[
                &body[..3000],
                &body[3000..3001],
                &body[3001..],
            ]),
            echo: true,
        },
        Case {
            name: "hop-by-hop",
            req: Req::get("/echo")
                .header("Connection", "keep-alive, X-Foo")
                .header("X-Foo", "named-in-connection")
                .header("TE", "trailers")
                .header("Keep-Alive", "timeout=5")
                .header("X-Bar", "end-to-end"),
            echo: true,
        },
        Case {
            name: "spoofed-identity",
            req: Req::get("/echo")
                .header("X-Forwarded-For", "203.0.113.9")
                .header("X-Real-IP", "203.0.113.10")
                .header("X-Forwarded-Proto", "https")
                .header("X-Request-ID", "client-chosen"),
            echo: true,
        },
        Case {
            name: "long-header",
            req: Req::get("/echo").header("X-Long", &long),
            echo: true,
        },
        Case {
            name: "status-204",
            req: Req::get("/status/204"),
            echo: false,
        },
        Case {
            name: "status-304",
            req: Req::get("/status/304").header("If-None-Match", "\"v1\""),
            echo: false,
        },
        Case {
            name: "streaming-answer",
            req: Req::get("/stream/100000"),
            echo: false,
        },
    ]
}

/// Sends `case` on a fresh connection to `addr` and reads the answer.
fn send(addr: SocketAddr, case: &Case) -> Response {
    let mut conn = Conn::open(addr);
    conn.send(&case.req.to_bytes())
        .unwrap_or_else(|e| panic!("[{}] sending to {addr}: {e}", case.name));
    conn.read_response_to(case.req.method())
        .unwrap_or_else(|e| panic!("[{}] answer from {addr}: {e}", case.name))
}

/// What the app saw, from the echo route's answer.
fn seen(case: &Case, resp: &Response) -> Value {
    if case.req.method() == "HEAD" {
        let text = resp
            .header("x-echo")
            .unwrap_or_else(|| panic!("[{}] no X-Echo header: {resp:?}", case.name));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("[{}] X-Echo: {e}", case.name))
    } else {
        resp.json()
    }
}

fn is_request_id(value: Option<&Value>) -> bool {
    value.and_then(Value::as_str).is_some_and(|id| {
        id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The request headers [`on_purpose`] judges in every echo case.
const ON_PURPOSE: [&str; 4] = [
    "x-request-id",
    "x-forwarded-host",
    "x-forwarded-for",
    "connection",
];

/// A request header the app sees differently through ringway, on purpose: checks both
/// sides and says why, or `None` when the two must be equal.
fn on_purpose(
    case: &str,
    header: &str,
    nginx: Option<&Value>,
    ringway: Option<&Value>,
) -> Option<Result<(), String>> {
    let check = |ok: bool, why: &str| {
        Some(if ok {
            Ok(())
        } else {
            Err(format!(
                "{header}: nginx {nginx:?}, ringway {ringway:?} ({why})"
            ))
        })
    };
    match header {
        // ringway gives every request an ID and replaces an untrusted client's own (nginx
        // needs `proxy_set_header X-Request-ID $request_id`, which the usual lines lack, so it
        // passes the client's on).
        "x-request-id" => check(
            is_request_id(ringway)
                && nginx.and_then(Value::as_str)
                    == (case == "spoofed-identity").then_some("client-chosen"),
            "ringway sets its own request ID",
        ),
        // ringway sends the real client's address alone: an untrusted client's own list
        // says nothing (behind a `trusted_proxy` the walk has already found the client),
        // where nginx appends to whatever the client wrote. An app that trusts the one proxy
        // in front (ProxyFix `x_for=1`, Granian's and uvicorn's trusted hosts) reads the
        // rightmost address either way: that is what must agree.
        "x-forwarded-for" => check(
            ringway.and_then(Value::as_str) == Some("127.0.0.1")
                && nginx
                    .and_then(Value::as_str)
                    .and_then(|list| list.rsplit(", ").next())
                    == Some("127.0.0.1"),
            "the rightmost address is the real client's",
        ),
        // ringway sends the host the client asked for as X-Forwarded-Host; the usual nginx
        // lines do not.
        "x-forwarded-host" => check(
            ringway.and_then(Value::as_str) == Some("localhost") && nginx.is_none(),
            "ringway sets X-Forwarded-Host",
        ),
        // nginx sends none (`Connection ""`); ringway may say keep-alive, which HTTP/1.1
        // implies: either way none of the client's tokens.
        "connection" => check(
            nginx.is_none() && ringway.is_none_or(|v| v.as_str() == Some("keep-alive")),
            "no client Connection tokens reach the app",
        ),
        // A header the client named in Connection is hop-by-hop (RFC 9110 §7.6.1): ringway
        // drops it; nginx does not read Connection's tokens and passes it on.
        "x-foo" if case == "hop-by-hop" => check(
            ringway.is_none() && nginx.and_then(Value::as_str) == Some("named-in-connection"),
            "headers named in Connection are dropped",
        ),
        _ => None,
    }
}

#[test]
fn ringway_proxies_http_as_nginx_proxy_pass_does() {
    // gthread workers: gunicorn keeps connections open for both proxies' pools.
    let app = AppServer::start(Server::Gunicorn, Served::HttpEcho, Listen::Tcp, 1);
    let nginx = Nginx::start_proxy_pass(app.addr());
    let ringway = Ringway::with_config(format!(
        "[upstreams.app]
servers = [\"{}\"]
keepalive = 32

[[routes]]
path = \"/\"
upstream = \"app\"
",
        app.upstream()
    ))
    .start();
    let mut problems = Vec::new();
    for case in cases() {
        let via_nginx = send(nginx.addr(), &case);
        let via_ringway = send(ringway.addr(), &case);
        let name = case.name;
        let mut differ = |what: &str, n: String, r: String| {
            if n != r {
                problems.push(format!("[{name}] {what}: nginx {n:?}, ringway {r:?}"));
            }
        };
        differ(
            "status",
            via_nginx.status.to_string(),
            via_ringway.status.to_string(),
        );
        for header in ["content-type", "etag"] {
            differ(
                header,
                format!("{:?}", via_nginx.header(header)),
                format!("{:?}", via_ringway.header(header)),
            );
        }
        if !case.echo {
            differ(
                "body",
                format!("{} bytes {:?}", via_nginx.body.len(), sha(&via_nginx.body)),
                format!(
                    "{} bytes {:?}",
                    via_ringway.body.len(),
                    sha(&via_ringway.body)
                ),
            );
            if name == "streaming-answer" && via_ringway.body != pattern(100_000) {
                problems.push(format!("[{name}] ringway's body is not the app's bytes"));
            }
            if matches!(name, "status-204" | "status-304") && !via_ringway.body.is_empty() {
                problems.push(format!("[{name}] ringway sent a body"));
            }
            continue;
        }
        let (n, r) = (seen(&case, &via_nginx), seen(&case, &via_ringway));
        for key in [
            "method",
            "target",
            "content_length",
            "body_length",
            "remote_addr",
            "scheme",
        ] {
            differ(
                &format!("app saw {key}"),
                n[key].to_string(),
                r[key].to_string(),
            );
        }
        let empty = serde_json::Map::new();
        let headers = |v: &Value| {
            v["headers"]
                .as_object()
                .cloned()
                .unwrap_or_else(|| empty.clone())
        };
        let (nh, rh) = (headers(&n), headers(&r));
        // Every header either side saw, plus those ringway sets on purpose (so one that
        // vanished from both sides is still checked).
        let names: BTreeSet<&str> = nh
            .keys()
            .chain(rh.keys())
            .map(String::as_str)
            .chain(ON_PURPOSE.iter().copied())
            .collect();
        for header in names {
            let (a, b) = (nh.get(header), rh.get(header));
            match on_purpose(name, header, a, b) {
                Some(Ok(())) => {}
                Some(Err(why)) => problems.push(format!("[{name}] app saw {why}")),
                None if a != b => problems.push(format!(
                    "[{name}] app saw {header}: nginx {a:?}, ringway {b:?}"
                )),
                None => {}
            }
        }
        // ringway's answers carry the request ID the app saw (nginx's do not: on purpose,
        // as above).
        if via_ringway.header("x-request-id").as_deref()
            != rh.get("x-request-id").and_then(Value::as_str)
        {
            problems.push(format!(
                "[{name}] ringway answered X-Request-ID {:?}, the app saw {:?}",
                via_ringway.header("x-request-id"),
                rh.get("x-request-id")
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences from nginx proxy_pass:\n{}\n\ngunicorn's log:\n{}\nringway's log:\n{}\nnginx's error log:\n{}",
        problems.len(),
        problems.join("\n"),
        app.log(),
        ringway.stderr(),
        nginx.error_log()
    );
}

fn sha(body: &[u8]) -> String {
    ringway_tests::sha256_hex(body)
}

/// `proxy_set_header` with nginx's variables, and `upstream_headers` with the same: the app
/// gets the same values (each proxy's own port and time aside), and a variable without a
/// value leaves its header out in both.
#[test]
fn headers_with_variables_are_nginx_s() {
    use ringway_tests::nginx::PROXY_PASS_LINES;
    let app = AppServer::start(Server::Gunicorn, Served::HttpEcho, Listen::Tcp, 1);
    let set = [
        ("X-Original-URI", "$request_uri"),
        ("X-Forwarded-Port", "$server_port"),
        ("X-Request-Start", "t=${msec}"),
        (
            "X-Client",
            "$remote_addr via $scheme, $request_method $uri ? $args",
        ),
        ("X-Agent", "[$http_user_agent]"),
        ("X-Missing", "$http_x_not_sent"),
    ];
    let lines: String = set
        .iter()
        .map(|(name, value)| format!("proxy_set_header {name} \"{value}\";\n            "))
        .collect();
    let nginx = Nginx::start_proxy_pass_with_locations(
        app.addr(),
        &format!("location /vars/ {{\n            {PROXY_PASS_LINES}\n            {lines}}}"),
    );
    let table: String = set
        .iter()
        .map(|(name, value)| format!("\"{name}\" = '{value}', "))
        .collect();
    let ringway = Ringway::with_config(format!(
        "[upstreams.app]\nservers = [\"{}\"]\n\n[[routes]]\npath = \"/\"\nupstream = \"app\"\n\
         upstream_headers = {{ {} }}\n",
        app.upstream(),
        table.trim_end_matches(", ")
    ))
    .start();
    let req = Req::get("/vars/a%20b?x=1").header("User-Agent", "tester/1.0");
    let case = Case {
        name: "variables",
        req,
        echo: true,
    };
    let (theirs, ours) = (
        seen(&case, &send(nginx.addr(), &case)),
        seen(&case, &send(ringway.addr(), &case)),
    );
    let header = |seen: &Value, name: &str| seen["headers"][name].as_str().map(str::to_owned);
    for name in ["x-original-uri", "x-client", "x-agent", "x-missing"] {
        assert_eq!(header(&ours, name), header(&theirs, name), "{name}");
    }
    assert_eq!(
        header(&ours, "x-original-uri").as_deref(),
        Some("/vars/a%20b?x=1")
    );
    assert_eq!(
        header(&ours, "x-client").as_deref(),
        Some("127.0.0.1 via http, GET /vars/a b ? x=1")
    );
    assert_eq!(header(&ours, "x-missing"), None, "no value, no header");
    for (seen, addr) in [(&ours, ringway.addr()), (&theirs, nginx.addr())] {
        assert_eq!(
            header(seen, "x-forwarded-port"),
            Some(addr.port().to_string())
        );
        let start = header(seen, "x-request-start").unwrap_or_default();
        let ok = start
            .strip_prefix("t=")
            .and_then(|t| t.split_once('.'))
            .is_some_and(|(s, ms)| {
                s.len() >= 10
                    && ms.len() == 3
                    && s.bytes().chain(ms.bytes()).all(|b| b.is_ascii_digit())
            });
        assert!(ok, "X-Request-Start {start:?}");
    }
}

/// `text` as a query value: letters and digits as they are, every other byte `%XX`.
fn query_escaped(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The echo app's target that answers with these `Set-Cookie` values.
fn set_cookie_target(cookies: &[&str]) -> String {
    let query: Vec<String> = cookies
        .iter()
        .map(|c| format!("set={}", query_escaped(c)))
        .collect();
    format!("/set-cookie?{}", query.join("&"))
}

/// nginx's `proxy_cookie_flags` and ringway's `cookie_flags`, the same rules, in front of
/// the same app: each Set-Cookie the app sends comes out the same from both (added,
/// replaced and removed flags, the first rule naming the cookie, one no rule names, one
/// whose first part has no value).
#[test]
fn cookie_flags_rewrite_set_cookie_as_nginx_s_proxy_cookie_flags() {
    let app = AppServer::start(Server::Gunicorn, Served::HttpEcho, Listen::Tcp, 1);
    let rules = [
        "session samesite=strict httponly",
        "~^track nosecure nosamesite",
        "~ secure samesite=lax",
    ];
    let nginx_rules: String = rules
        .iter()
        .map(|rule| format!("proxy_cookie_flags {rule};"))
        .collect();
    let nginx = Nginx::start_proxy_pass_with_locations(
        app.addr(),
        &format!(
            "location /set-cookie {{ {nginx_rules} {} }}",
            ringway_tests::nginx::PROXY_PASS_LINES
        ),
    );
    let toml_rules: Vec<String> = rules.iter().map(|rule| format!("{rule:?}")).collect();
    let ringway = Ringway::with_config(format!(
        "[upstreams.app]\nservers = [\"{}\"]\n\
         [[routes]]\npath = \"/\"\nupstream = \"app\"\n\
         [[routes]]\npath = \"/set-cookie\"\nexact = true\nupstream = \"app\"\n\
         cookie_flags = [{}]\n",
        app.upstream(),
        toml_rules.join(", ")
    ))
    .start();
    let cookies = [
        "SESSION=abc; Path=/",
        "session=abc; SameSite=None; Secure",
        "tracking=1; Secure; SameSite=Strict; Path=/",
        "TrackingId=2; Secure",
        "theme=dark",
        "theme=dark;path=/ ;  samesite=LAX",
        "lang=en; Secure; HttpOnly",
        "flag; Path=/",
    ];
    let target = set_cookie_target(&cookies);
    let set_cookies = |addr: SocketAddr| {
        let mut conn = Conn::open(addr);
        conn.send(&Req::get(&target).to_bytes()).expect("send");
        let r = conn.read_response().expect("an answer");
        assert_eq!(r.status, 200, "{r:?}");
        r.header_all("set-cookie")
    };
    let via_nginx = set_cookies(nginx.addr());
    let via_ringway = set_cookies(ringway.addr());
    assert_eq!(via_nginx.len(), cookies.len(), "{via_nginx:?}");
    assert_eq!(via_ringway, via_nginx);
    assert_eq!(
        via_ringway[0], "SESSION=abc; Path=/; HttpOnly; SameSite=Strict",
        "the rules did something: {via_ringway:?}"
    );
}

/// nginx's `valid_referers` with `if ($invalid_referer) { return 403; }` and ringway's
/// `referers`, the same list, in front of the same app: each Referer gets the same status
/// from both (none, blocked, the server's names, wildcards, a URI part, a regex, and ones
/// no rule takes).
#[test]
fn referers_refuse_what_nginx_s_valid_referers_refuses() {
    let app = AppServer::start(Server::Gunicorn, Served::HttpEcho, Listen::Tcp, 1);
    let valid = [
        "none",
        "blocked",
        "server_names",
        "*.example.com",
        "www.example.*",
        "partner.example/shop/",
        r"~\.google\.",
    ];
    let nginx = Nginx::start_proxy_pass_with_locations(
        app.addr(),
        &format!(
            "location /img/ {{ valid_referers {}; if ($invalid_referer) {{ return 403; }} {} }}",
            valid.join(" "),
            ringway_tests::nginx::PROXY_PASS_LINES
        ),
    );
    let toml_valid: Vec<String> = valid.iter().map(|v| format!("{v:?}")).collect();
    let ringway = Ringway::with_config(format!(
        "hosts = [\"{}\"]\n[upstreams.app]\nservers = [\"{}\"]\n\
         [[routes]]\npath = \"/\"\nupstream = \"app\"\n\
         [[routes]]\npath = \"/img/\"\nupstream = \"app\"\n\
         referers = {{ valid = [{}] }}\n",
        ringway_tests::nginx::SERVER_NAME,
        app.upstream(),
        toml_valid.join(", ")
    ))
    .start();
    let referers = [
        None,
        Some("XXXXXXXXXXXXXXXXXXX"),
        Some("http://i.r"),
        Some("ftp://evil.example/"),
        Some("http://localhost/page"),
        Some("HTTP://LOCALHOST:8080/"),
        Some("https://a.b.example.com/x"),
        Some("https://example.com/"),
        Some("https://www.example.co.uk/"),
        Some("http://partner.example/shop/item"),
        Some("http://partner.example:81/shop/"),
        Some("http://partner.example/other"),
        Some("https://www.Google.de/search?q=x"),
        Some("https://evil.com/"),
        Some("https://evil.com/?localhost"),
        Some("https://localhost.evil.com/"),
    ];
    let status = |addr: SocketAddr, referer: Option<&str>| {
        let mut conn = Conn::open(addr);
        let mut req = Req::get("/img/cat.png");
        if let Some(referer) = referer {
            req = req.header("Referer", referer);
        }
        conn.send(&req.to_bytes()).expect("send");
        conn.read_response().expect("an answer").status
    };
    let mut refused = 0;
    for referer in referers {
        let via_nginx = status(nginx.addr(), referer);
        let via_ringway = status(ringway.addr(), referer);
        assert_eq!(via_ringway, via_nginx, "Referer {referer:?}");
        refused += usize::from(via_ringway == 403);
    }
    assert_eq!(refused, 5, "the lists refused some and took the rest");

    // nginx's `valid_referers` without its `if`: judged, shown in `$invalid_referer`,
    // served.
    let watching = Ringway::with_config(format!(
        "hosts = [\"{}\"]\naccess_log = \"stderr\"\n\
         access_log_format = '$request_uri $status [$invalid_referer]'\n\
         [upstreams.app]\nservers = [\"{}\"]\n\
         [[routes]]\npath = \"/\"\nupstream = \"app\"\n\
         [[routes]]\npath = \"/img/\"\nupstream = \"app\"\n\
         referers = {{ valid = [{}], dry_run = true }}\n",
        ringway_tests::nginx::SERVER_NAME,
        app.upstream(),
        toml_valid.join(", ")
    ))
    .start();
    let mut conn = Conn::open(watching.addr());
    for (target, referer) in [
        ("/img/1", "https://evil.com/"),
        ("/img/2", "https://a.example.com/"),
        ("/page", "https://evil.com/"),
    ] {
        conn.send(&Req::get(target).header("Referer", referer).to_bytes())
            .expect("send");
        let r = conn.read_response().expect("an answer");
        assert_eq!(r.status, 200, "{target}: {r:?}");
    }
    let expected = ["/img/1 200 [1]", "/img/2 200 []", "/page 200 []"];
    let logged = ringway_tests::wait::poll_until(std::time::Duration::from_secs(10), || {
        let log = watching.stderr();
        expected.iter().all(|line| log.contains(line))
    });
    assert!(logged, "{}", watching.stderr());
}

/// nginx's `proxy_redirect` (with `absolute_redirect off`, ringway's way with a relative
/// Location) and ringway's `location_rewrite`, the same rules, in front of the same app:
/// each Location and Refresh comes out the same from both (a prefix, `$host`, a regex and
/// its groups, a URL no rule matches, a Refresh without a URL).
#[test]
fn location_rewrite_rewrites_location_and_refresh_as_nginx_s_proxy_redirect() {
    let app = AppServer::start(Server::Gunicorn, Served::HttpEcho, Listen::Tcp, 1);
    let rules = [
        "http://$host/ /app/",
        r"~*^https://(old)\.example\.com/(.*)$ https://new.example.com/$2?from=$1",
        "/ /app/",
    ];
    let nginx_rules: String = rules
        .iter()
        .map(|rule| format!("proxy_redirect {rule};"))
        .collect();
    let nginx = Nginx::start_proxy_pass_with_locations(
        app.addr(),
        &format!(
            "location /headers {{ absolute_redirect off; {nginx_rules} {} }}",
            ringway_tests::nginx::PROXY_PASS_LINES
        ),
    );
    let toml_rules: Vec<String> = rules.iter().map(|rule| format!("{rule:?}")).collect();
    let ringway = Ringway::with_config(format!(
        "[upstreams.app]\nservers = [\"{}\"]\n\
         [[routes]]\npath = \"/\"\nupstream = \"app\"\n\
         [[routes]]\npath = \"/headers\"\nexact = true\nupstream = \"app\"\n\
         location_rewrite = [{}]\n",
        app.upstream(),
        toml_rules.join(", ")
    ))
    .start();
    let cases = [
        ("Location", "/login?next=/x"),
        ("Location", "http://shop.example.com/account"),
        ("Location", "https://OLD.example.com/a/b"),
        ("Location", "https://other.example/"),
        ("Location", "login"),
        ("Refresh", "3; url=/next"),
        ("Refresh", "0;URL=http://shop.example.com/x"),
        ("Refresh", "5"),
    ];
    let answer = |addr: SocketAddr, name: &str, value: &str| {
        let encoded = query_escaped(&format!("{name}:{value}"));
        let mut conn = Conn::open(addr);
        let req = Req::get(&format!("/headers?h={encoded}")).host(Some("Shop.Example.COM:8443"));
        conn.send(&req.to_bytes()).expect("send");
        let r = conn.read_response().expect("an answer");
        assert_eq!(r.status, 200, "{r:?}");
        r.header_all(name)
    };
    let mut rewritten = Vec::new();
    for (name, value) in cases {
        let via_nginx = answer(nginx.addr(), name, value);
        let via_ringway = answer(ringway.addr(), name, value);
        assert_eq!(via_nginx.len(), 1, "{name}: {value}: {via_nginx:?}");
        assert_eq!(via_ringway, via_nginx, "{name}: {value}");
        rewritten.push(via_ringway[0].clone());
    }
    assert_eq!(
        rewritten[..3],
        [
            "/app/login?next=/x",
            "/app/account",
            "https://new.example.com/a/b?from=OLD"
        ],
        "the rules did something: {rewritten:?}"
    );
}

/// nginx's `proxy_cookie_domain` and `proxy_cookie_path` (with `proxy_cookie_flags`) and
/// ringway's `cookie_domain` and `cookie_path` (with `cookie_flags`), the same rules, in
/// front of the same app: each Set-Cookie comes out the same from both (a domain in any
/// case with its dot, `$host`, a path's prefix, regexes and their groups, several paths in
/// one header, empty values, one no rule touches, one with no cookie).
#[test]
fn cookie_domain_and_path_rewrite_set_cookie_as_nginx_s_proxy_cookie_rules() {
    let app = AppServer::start(Server::Gunicorn, Served::HttpEcho, Listen::Tcp, 1);
    let domains = [
        "localhost $host",
        r"~^\.?([a-z]+)\.internal$ $1.example.org",
        ".Backend.Local .example.net",
    ];
    let paths = ["/api/ /", "~*^/V([0-9])/ /api/v$1/", "/ /app/"];
    let flags = "~^f secure";
    let nginx_rules: String = domains
        .iter()
        .map(|rule| format!("proxy_cookie_domain {rule};"))
        .chain(
            paths
                .iter()
                .map(|rule| format!("proxy_cookie_path {rule};")),
        )
        .chain([format!("proxy_cookie_flags {flags};")])
        .collect();
    let nginx = Nginx::start_proxy_pass_with_locations(
        app.addr(),
        &format!(
            "location /set-cookie {{ {nginx_rules} {} }}",
            ringway_tests::nginx::PROXY_PASS_LINES
        ),
    );
    let toml = |rules: &[&str]| {
        rules
            .iter()
            .map(|rule| format!("{rule:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ringway = Ringway::with_config(format!(
        "[upstreams.app]\nservers = [\"{}\"]\n\
         [[routes]]\npath = \"/\"\nupstream = \"app\"\n\
         [[routes]]\npath = \"/set-cookie\"\nexact = true\nupstream = \"app\"\n\
         cookie_domain = [{}]\ncookie_path = [{}]\ncookie_flags = [{flags:?}]\n",
        app.upstream(),
        toml(&domains),
        toml(&paths),
    ))
    .start();
    let cookies = [
        "a=1; Domain=localhost; Path=/",
        "b=2; domain=.BACKEND.local; path=/api/x",
        "c=3; Domain=.db.internal; Path=/v2/users",
        "d=4;Path=/other ; Domain=else.com",
        "e=5; Domain=; Path=",
        "f=6; Path=/API/; Domain=x.Internal",
        "g; Domain=localhost",
        "h=8; Path=/api/; path=/x",
        "i=9; Max-Age=60",
    ];
    let target = set_cookie_target(&cookies);
    let set_cookies = |addr: SocketAddr| {
        let mut conn = Conn::open(addr);
        let req = Req::get(&target).host(Some("Shop.Example.COM:8443"));
        conn.send(&req.to_bytes()).expect("send");
        let r = conn.read_response().expect("an answer");
        assert_eq!(r.status, 200, "{r:?}");
        r.header_all("set-cookie")
    };
    let via_nginx = set_cookies(nginx.addr());
    let via_ringway = set_cookies(ringway.addr());
    assert_eq!(via_nginx.len(), cookies.len(), "{via_nginx:?}");
    assert_eq!(via_ringway, via_nginx);
    assert_eq!(
        via_ringway[0], "a=1; Domain=shop.example.com; Path=/app/",
        "the rules did something: {via_ringway:?}"
    );
}
