//! The access log end to end: the lines of both formats parsed field by field and matched
//! against what the client did; the combined format against a real nginx given the same
//! requests; SIGUSR1 after a rename (logrotate); lines written while ringway runs and at
//! stop; stderr; a full disk counted and never in the requests' way.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringway_tests::wait::poll_until;
use ringway_tests::{App, Conn, Nginx, Req, Response, Ringway, Uwsgi, roundtrip};
use serde_json::Value;

/// How long lines may take to show up in the file (they are written at least every second).
const LINES_WITHIN: Duration = Duration::from_secs(10);

/// A request on the wire, odd bytes allowed: the request line, then `headers` (raw values),
/// then `body` with its Content-Length (or `declared` alone: a length announced, no body).
fn wire(line: &[u8], headers: &[(&str, &[u8])], body: Option<&[u8]>) -> Vec<u8> {
    let mut out = line.to_vec();
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(body) = body {
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
    } else {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Sends `bytes` on a fresh connection and reads the answer (to a HEAD when `head`).
fn send(addr: std::net::SocketAddr, bytes: &[u8], head: bool) -> Response {
    let mut conn = Conn::open(addr);
    conn.send(bytes).expect("send");
    conn.read_response_to(if head { "HEAD" } else { "GET" })
        .expect("an answer")
}

/// The lines of `path` once it has `n` of them (waited for up to [`LINES_WITHIN`]).
fn lines_once(path: &Path, n: usize, ringway: &Ringway) -> Vec<String> {
    let mut lines = Vec::new();
    let complete = poll_until(LINES_WITHIN, || {
        lines = read_lines(path);
        lines.len() >= n
    });
    assert!(
        complete,
        "{} holds {} lines, {n} expected:\n{}\nringway stderr:\n{}",
        path.display(),
        lines.len(),
        lines.join("\n"),
        ringway.stderr()
    );
    lines
}

fn read_lines(path: &Path) -> Vec<String> {
    let bytes = fs::read(path).unwrap_or_default();
    // Only complete lines: a line is written whole, but a read may come between batches.
    let text = String::from_utf8(bytes).expect("access log lines are ASCII (combined) or UTF-8");
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| l.trim_end_matches('\n').to_owned())
        .collect()
}

/// nginx and ringway in front of one uWSGI (the raw app), each logging to a file of its own
/// in the same format of the operator's own, escaped as `escape` says (nginx's `escape=`,
/// ringway's `access_log_escape`); `nginx_server` and `ringway_keys` add lines to their
/// configurations.
struct SameFormat {
    nginx: Nginx,
    ringway: Ringway,
    nginx_log: PathBuf,
    ringway_log: PathBuf,
    _dir: tempfile::TempDir,
    _uwsgi: Uwsgi,
}

impl SameFormat {
    fn start(format: &str, escape: Option<&str>, nginx_server: &str, ringway_keys: &str) -> Self {
        let uwsgi = Uwsgi::start(App::Raw);
        let dir = tempfile::tempdir().expect("temp dir");
        let nginx_log = dir.path().join("nginx.log");
        let ringway_log = dir.path().join("ringway.log");
        let nginx_escape = escape.map(|e| format!("escape={e} ")).unwrap_or_default();
        let nginx = Nginx::start_with_http_directives(
            uwsgi.socket(),
            &format!("log_format custom {nginx_escape}'{format}';"),
            &format!("access_log {} custom; {nginx_server}", nginx_log.display()),
        );
        let escape_key = escape
            .map(|e| format!("access_log_escape = {e:?}\n"))
            .unwrap_or_default();
        let ringway = Ringway::with_config(format!(
            "upstream = [{:?}]\n{ringway_keys}access_log = {:?}\naccess_log_format = \
             '{format}'\n{escape_key}",
            uwsgi.upstream(),
            ringway_log.display().to_string(),
        ))
        .start();
        SameFormat {
            nginx,
            ringway,
            nginx_log,
            ringway_log,
            _dir: dir,
            _uwsgi: uwsgi,
        }
    }

    /// Each proxy's address and log file, nginx's first.
    fn both(&self) -> [(std::net::SocketAddr, &Path); 2] {
        [
            (self.nginx.addr(), &self.nginx_log),
            (self.ringway.addr(), &self.ringway_log),
        ]
    }
}

/// The fields of a combined line.
#[derive(Debug, PartialEq, Eq)]
struct Combined {
    remote_addr: String,
    remote_user: String,
    time_local: String,
    request: String,
    status: String,
    body_bytes_sent: String,
    referer: String,
    user_agent: String,
}

/// Parses `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
/// "$http_referer" "$http_user_agent"`; a quoted field holds no raw `"` (they are escaped).
fn parse_combined<'a>(line: &'a str) -> Combined {
    let cut = |text: &'a str, at: &str| {
        text.split_once(at)
            .unwrap_or_else(|| panic!("not a combined line (no {at:?}): {line:?}"))
    };
    let (remote_addr, rest) = cut(line, " - ");
    let (remote_user, rest) = cut(rest, " [");
    let (time_local, rest) = cut(rest, "] \"");
    let (request, rest) = cut(rest, "\" ");
    let (status, rest) = cut(rest, " ");
    let (body_bytes_sent, rest) = cut(rest, " \"");
    let (referer, rest) = cut(rest, "\" \"");
    let user_agent = rest
        .strip_suffix('"')
        .unwrap_or_else(|| panic!("not a combined line (no closing quote): {line:?}"));
    assert!(!user_agent.contains('"'), "raw quote in {line:?}");
    Combined {
        remote_addr: remote_addr.into(),
        remote_user: remote_user.into(),
        time_local: time_local.into(),
        request: request.into(),
        status: status.into(),
        body_bytes_sent: body_bytes_sent.into(),
        referer: referer.into(),
        user_agent: user_agent.into(),
    }
}

/// Whether `t` has nginx's `$time_local` shape: `01/Dec/2026:21:51:48 +0000`.
fn is_time_local(t: &str) -> bool {
    let b = t.as_bytes();
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    b.len() == 26
        && digits(0..2)
        && b[2] == b'/'
        && MONTHS.contains(&&t[3..6])
        && b[6] == b'/'
        && digits(7..11)
        && b[11] == b':'
        && digits(12..14)
        && b[14] == b':'
        && digits(15..17)
        && b[17] == b':'
        && digits(18..20)
        && b[20] == b' '
        && matches!(b[21], b'+' | b'-')
        && digits(22..26)
}

/// One request of the nginx comparison.
struct Case {
    name: &'static str,
    wire: Vec<u8>,
    head: bool,
    /// The answer is the proxy's own error page (not the app's): nginx's HTML and ringway's
    /// text differ in length, so `$body_bytes_sent` is checked against what each client got.
    own_page: bool,
}

fn parity_cases() -> Vec<Case> {
    let host: (&str, &[u8]) = ("Host", b"localhost");
    let case = |name, wire, head, own_page| Case {
        name,
        wire,
        head,
        own_page,
    };
    vec![
        // $remote_user: the Basic user name, logged whether or not anything checks it
        // ("ann:secret", and a name with a quote and a byte nginx escapes).
        case(
            "a Basic user",
            wire(
                b"GET /bytes/31 HTTP/1.1",
                &[host, ("Authorization", b"Basic YW5uOnNlY3JldA==")],
                None,
            ),
            false,
            false,
        ),
        case(
            "a Basic user with odd bytes",
            wire(
                b"GET /bytes/32 HTTP/1.1",
                &[host, ("Authorization", b"Basic YSJiXBs6eA==")],
                None,
            ),
            false,
            false,
        ),
        case(
            "GET with Referer and User-Agent",
            wire(
                b"GET /bytes/1000 HTTP/1.1",
                &[
                    host,
                    ("Referer", b"https://example.com/page?a=1&b=2"),
                    ("User-Agent", b"curl/8.5.0"),
                ],
                None,
            ),
            false,
            false,
        ),
        case(
            "odd bytes in the query",
            wire(
                b"GET /bytes/5?q=\"a\"&b=\\x&c=\xc3\xa9&d={|}^`~%7E HTTP/1.1",
                &[host],
                None,
            ),
            false,
            false,
        ),
        // Valid UTF-8 only in the target: ringway's request parser (httparse) refuses
        // anything else with 400, where nginx takes any byte.
        case(
            "odd bytes in the path (the app's 404)",
            wire(b"GET /missing/\"\xc3\xa9\\end HTTP/1.1", &[host], None),
            false,
            false,
        ),
        case(
            "quotes, backslashes, a tab and UTF-8 in the User-Agent",
            wire(
                b"GET / HTTP/1.1",
                &[
                    host,
                    (
                        "User-Agent",
                        b"Mozilla/5.0 \"quoted\" \\back\\ \xc3\xa9\tafter-tab",
                    ),
                    ("Referer", b"http://x/\"y\""),
                ],
                None,
            ),
            false,
            false,
        ),
        case(
            "no Referer, no User-Agent",
            wire(b"GET /bytes/1 HTTP/1.1", &[host], None),
            false,
            false,
        ),
        case(
            "an empty User-Agent",
            wire(b"GET /bytes/2 HTTP/1.1", &[host, ("User-Agent", b"")], None),
            false,
            false,
        ),
        case(
            "HEAD",
            wire(
                b"HEAD /bytes/100 HTTP/1.1",
                &[host, ("User-Agent", b"head/1")],
                None,
            ),
            true,
            false,
        ),
        case(
            "a 404 from the app",
            wire(b"GET /status/404 HTTP/1.1", &[host], None),
            false,
            false,
        ),
        case(
            "POST with a body",
            wire(b"POST /echo?x=1 HTTP/1.1", &[host], Some(&[b'p'; 3000])),
            false,
            false,
        ),
        case(
            "HTTP/1.0",
            wire(
                b"GET /bytes/10 HTTP/1.0",
                &[("User-Agent", b"old/1.0")],
                None,
            ),
            false,
            false,
        ),
        case(
            "413: a declared body over the limit",
            wire(
                b"POST /echo HTTP/1.1",
                &[host, ("Content-Length", b"2000000")],
                None,
            ),
            false,
            true,
        ),
        case(
            "400: HTTP/1.1 without Host",
            wire(
                b"GET /bytes/3 HTTP/1.1",
                &[("User-Agent", b"no-host")],
                None,
            ),
            false,
            true,
        ),
    ]
}

/// The same requests through nginx (`access_log` in the default combined format) and
/// through ringway (`access_log_format = "combined"`, the default): the lines must be equal
/// byte for byte but for the time, and the body bytes of the proxies' own error pages (each
/// must match what its client received).
#[test]
fn combined_lines_are_nginx_lines() {
    let uwsgi = Uwsgi::start(App::Raw);
    let dir = tempfile::tempdir().expect("temp dir");
    let nginx_log = dir.path().join("nginx.log");
    let ringway_log = dir.path().join("ringway.log");
    let nginx = Nginx::start_with_server_directives(
        uwsgi.socket(),
        &format!(
            "access_log {}; client_max_body_size 1m;",
            nginx_log.display()
        ),
    );
    let ringway = Ringway::with(&uwsgi)
        .arg("--access-log", ringway_log.to_str().expect("utf-8 path"))
        .arg("--max-body-size", "1m")
        .start();
    let cases = parity_cases();
    let mut received = Vec::new();
    for case in &cases {
        let via_nginx = send(nginx.addr(), &case.wire, case.head);
        let via_ringway = send(ringway.addr(), &case.wire, case.head);
        assert_eq!(
            via_nginx.status, via_ringway.status,
            "[{}] nginx {via_nginx:?}\nringway {via_ringway:?}",
            case.name
        );
        received.push((via_nginx.body.len(), via_ringway.body.len()));
    }
    let from_nginx = lines_once(&nginx_log, cases.len(), &ringway);
    let from_ringway = lines_once(&ringway_log, cases.len(), &ringway);
    assert_eq!(from_ringway.len(), cases.len(), "{from_ringway:#?}");
    let mut problems = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        // ringway's lines are in the requests' order; nginx may write a line late (after a
        // lingering close), so its line is found by its request line.
        let r_line = &from_ringway[i];
        let r = parse_combined(r_line);
        let Some(n_line) = from_nginx
            .iter()
            .find(|l| parse_combined(l).request == r.request)
        else {
            problems.push(format!(
                "[{}] no nginx line with ringway's request {:?}",
                case.name, r.request
            ));
            continue;
        };
        let n = parse_combined(n_line);
        let (n_got, r_got) = received[i];
        for (who, fields) in [("nginx", &n), ("ringway", &r)] {
            if !is_time_local(&fields.time_local) {
                problems.push(format!(
                    "[{}] {who}: time {:?}",
                    case.name, fields.time_local
                ));
            }
        }
        // The clients run on this machine, as both servers: the zone offsets are equal.
        if n.time_local.get(20..) != r.time_local.get(20..) {
            problems.push(format!(
                "[{}] time zones: nginx {:?}, ringway {:?}",
                case.name, n.time_local, r.time_local
            ));
        }
        if r.body_bytes_sent != r_got.to_string() {
            problems.push(format!(
                "[{}] ringway logged {} body bytes, its client got {r_got}",
                case.name, r.body_bytes_sent
            ));
        }
        if n.body_bytes_sent != n_got.to_string() {
            problems.push(format!(
                "[{}] nginx logged {} body bytes, its client got {n_got} (the test's premise)",
                case.name, n.body_bytes_sent
            ));
        }
        // Equal but for the time (checked above), and the own pages' lengths.
        let mut alike = parse_combined(r_line);
        alike.time_local.clone_from(&n.time_local);
        if case.own_page {
            alike.body_bytes_sent.clone_from(&n.body_bytes_sent);
        }
        if alike != n {
            problems.push(format!(
                "[{}] fields differ:\n  nginx   {n_line}\n  ringway {r_line}",
                case.name
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences:\n{}\n\nnginx:\n{}\nringway:\n{}",
        problems.len(),
        problems.join("\n"),
        from_nginx.join("\n"),
        from_ringway.join("\n")
    );
}

/// nginx's `$pipe`, `$connection_requests`, `$request_completion`, `$sent_http_NAME` and
/// `$connection` for three requests sent at once on one connection and others on more: the
/// same from nginx and ringway, but for the connection numbers, which only have to tell
/// connections apart.
#[test]
fn pipelined_requests_their_answers_and_their_connections_are_logged_as_by_nginx() {
    const FORMAT: &str = "$http_x_case $pipe $connection_requests \"$request_completion\" \
        \"$sent_http_content_type\" $sent_http_content_length \"$sent_http_set_cookie\" \
        $sent_http_transfer_encoding $connection";
    let both = SameFormat::start(FORMAT, None, "", "");
    let ringway = &both.ringway;
    let request_for = |path: &str, case: usize, close: bool| {
        let close = if close { "Connection: close\r\n" } else { "" };
        format!("GET {path} HTTP/1.1\r\nHost: a\r\nX-Case: {case}\r\n{close}\r\n")
    };
    let request = |case: usize, close: bool| request_for("/bytes/3", case, close);
    let mut seen = Vec::new();
    for (addr, log) in both.both() {
        // One request alone, then three in one write: the second and third are pipelined.
        let mut conn = Conn::open(addr);
        conn.send(request(1, false).as_bytes()).expect("send");
        conn.read_response_to("GET").expect("an answer");
        let three = [request(2, false), request(3, false), request(4, true)].concat();
        conn.send(three.as_bytes()).expect("send");
        for _ in 0..3 {
            conn.read_response_to("GET").expect("an answer");
        }
        // Two Set-Cookie (the first is shown, as by nginx 1.22); an answer without a length,
        // sent chunked.
        send(
            addr,
            request_for("/set-cookies", 5, false).as_bytes(),
            false,
        );
        send(
            addr,
            request_for("/unbuffered/5", 6, false).as_bytes(),
            false,
        );
        let mut lines = lines_once(log, 6, ringway);
        lines.sort();
        seen.push(lines);
    }
    let fields = |line: &str| -> (String, String) {
        let (rest, connection) = line.rsplit_once(' ').expect("a connection number");
        (rest.to_owned(), connection.to_owned())
    };
    let [from_nginx, from_ringway] =
        [&seen[0], &seen[1]].map(|lines| lines.iter().map(|l| fields(l)).collect::<Vec<_>>());
    let firsts =
        |got: &[(String, String)]| -> Vec<String> { got.iter().map(|(f, _)| f.clone()).collect() };
    assert_eq!(firsts(&from_ringway), firsts(&from_nginx), "{seen:#?}");
    let marks: Vec<String> = from_ringway
        .iter()
        .map(|(f, _)| f.split(' ').take(4).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        marks,
        [
            "1 . 1 \"OK\"",
            "2 . 2 \"OK\"",
            "3 p 3 \"OK\"",
            "4 p 4 \"OK\"",
            "5 . 1 \"OK\"",
            "6 . 1 \"OK\""
        ],
        "{seen:#?}"
    );
    assert!(
        from_ringway[4].0.contains("\"a=1; Path=/\"") && from_ringway[5].0.ends_with(" chunked"),
        "{from_ringway:?}"
    );
    for got in [&from_nginx, &from_ringway] {
        let numbers: Vec<&str> = got.iter().map(|(_, n)| n.as_str()).collect();
        assert!(numbers[0].parse::<u64>().is_ok(), "{numbers:?}");
        assert!(
            numbers[1..4].iter().all(|n| *n == numbers[0]),
            "one connection: {numbers:?}"
        );
        assert!(
            numbers[4] != numbers[0] && numbers[5] != numbers[4],
            "other connections: {numbers:?}"
        );
    }
}

/// A format of the operator's own (nginx's `log_format`), the same text given to nginx and
/// to ringway: the same lines for the same requests, but for what differs by nature (the
/// times, the own error pages' lengths).
const CUSTOM_FORMAT: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status \
    b=$body_bytes_sent; \"$http_referer\" \"$http_user_agent\" xff=\"$http_x_forwarded_for\" \
    m=$request_method u=$request_uri p=$server_protocol h=$host up=$upstream_addr \
    c=\"${http_x_custom_thing}\" s=$scheme sn=$server_name cr=$connection_requests \
    us=$upstream_status rl=$request_length uri=$uri a=$args ia=$is_args qs=$query_string \
    sa=$server_addr hn=$hostname ct=$content_type cl=$content_length ra=$realip_remote_addr \
    aq=$arg_q ax=${arg_X} cs=$cookie_sid cg=$cookie_lang uct=$upstream_http_content_type \
    uxi=${upstream_http_X_Instance} pi=$pipe rc=\"$request_completion\" \
    rb=\"$request_body\" iso=$time_iso8601 ms=$msec";

/// `line` with its times (checked for their form) and, for an own page, its body bytes
/// masked.
fn masked_custom(line: &str, own_page: bool, problems: &mut Vec<String>) -> String {
    let (start, rest) = line.split_once('[').unwrap_or((line, ""));
    let (time, rest) = rest.split_once(']').unwrap_or(("", rest));
    if !is_time_local(time) {
        problems.push(format!("time_local {time:?} in {line}"));
    }
    let (rest, msec) = rest.rsplit_once(" ms=").unwrap_or((rest, ""));
    let (rest, iso) = rest.rsplit_once(" iso=").unwrap_or((rest, ""));
    let msec_form = msec.split_once('.').is_some_and(|(s, ms)| {
        s.len() >= 10 && ms.len() == 3 && s.bytes().chain(ms.bytes()).all(|b| b.is_ascii_digit())
    });
    // 2026-12-04T12:00:00+00:00: RFC 3339 in whole seconds.
    let iso_form = iso.len() == 25 && iso.as_bytes()[10] == b'T' && !iso.contains('.');
    if !msec_form || !iso_form {
        problems.push(format!("msec {msec:?} or time_iso8601 {iso:?} in {line}"));
    }
    let mut rest = rest.to_owned();
    if own_page && let (Some(b), Some(end)) = (rest.find(" b="), rest.find("; \"")) {
        rest.replace_range(b + 3..end, "N");
    }
    format!("{start}[T]{rest}")
}

/// The combined test's requests and a few more, each carrying `X-Case: N`, through nginx
/// (`log_format custom {escape} '{format}'`) and ringway (the same format and
/// `access_log_escape`); each line with its case's (found by `case_of`, which reads the
/// `X-Case` value back from a line), nginx's and ringway's.
fn custom_lines(
    format: &str,
    escape: Option<&str>,
    case_of: fn(&str) -> Option<usize>,
) -> Vec<(Case, String, String)> {
    let both = SameFormat::start(
        format,
        escape,
        "client_max_body_size 1m;",
        "max_body_size = \"1m\"\nserver_name = \"localhost\"\n",
    );
    let SameFormat {
        nginx,
        ringway,
        nginx_log,
        ringway_log,
        ..
    } = &both;
    let host: (&str, &[u8]) = ("Host", b"LocalHost:8080");
    let mut cases = parity_cases();
    cases.push(Case {
        name: "two X-Forwarded-For lines, a custom header, a Host with a port",
        wire: wire(
            b"GET /bytes/7 HTTP/1.1",
            &[
                host,
                ("X-Forwarded-For", b"192.0.2.1"),
                // Control bytes but HTAB are refused (400) by ringway, taken by nginx.
                ("X-Custom-Thing", b"\"quoted\" \\ \tx \xc3\xa9"),
                ("X-Forwarded-For", b"198.51.100.2, 203.0.113.3"),
            ],
            None,
        ),
        head: false,
        own_page: false,
    });
    cases.push(Case {
        name: "arguments and cookies ($arg_NAME, $cookie_NAME)",
        wire: wire(
            b"GET /bytes/7?x=1&Q=a%20b&q=2&lang=de HTTP/1.1",
            &[host, ("Cookie", b"a=1; SID = s1 ;lang=fr; sidx=9")],
            None,
        ),
        head: false,
        own_page: false,
    });
    for (i, case) in cases.iter_mut().enumerate() {
        let line_end = case
            .wire
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a line");
        let tag = format!("\r\nX-Case: {i}");
        case.wire.splice(line_end..line_end, tag.bytes());
        let via_nginx = send(nginx.addr(), &case.wire, case.head);
        let via_ringway = send(ringway.addr(), &case.wire, case.head);
        assert_eq!(via_nginx.status, via_ringway.status, "[{}]", case.name);
    }
    let from_nginx = lines_once(nginx_log, cases.len(), ringway);
    let from_ringway = lines_once(ringway_log, cases.len(), ringway);
    let line_of = |lines: &[String], i: usize| {
        lines
            .iter()
            .find(|l| case_of(l) == Some(i))
            .cloned()
            .unwrap_or_else(|| panic!("no line for case {i} in {lines:#?}"))
    };
    cases
        .into_iter()
        .enumerate()
        .map(|(i, case)| (case, line_of(&from_nginx, i), line_of(&from_ringway, i)))
        .collect()
}

/// [`CUSTOM_FORMAT`] with `escape` (nginx's default when `None`): the same lines from
/// nginx and ringway, their times and own pages' lengths masked.
fn custom_format_case(escape: Option<&str>) {
    let format = format!("$http_x_case {CUSTOM_FORMAT}");
    let case_of = |line: &str| line.split(' ').next()?.parse().ok();
    let mut problems = Vec::new();
    for (case, n_line, r_line) in custom_lines(&format, escape, case_of) {
        let n = masked_custom(&n_line, case.own_page, &mut problems);
        let r = masked_custom(&r_line, case.own_page, &mut problems);
        if case.name.starts_with("arguments and cookies") && escape.is_none() {
            // Found, not both missing: the first `q` in any case, raw; spaces kept as nginx
            // keeps them.
            assert!(r.contains(" aq=a%20b ax=1 cs=s1  cg=fr "), "{r}");
        }
        if n != r {
            problems.push(format!("[{}]\n  nginx   {n}\n  ringway {r}", case.name));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_format_of_ones_own_writes_nginx_lines() {
    custom_format_case(None);
}

/// `escape=none`: values as sent, a missing one empty.
#[test]
fn an_escape_none_format_writes_nginx_lines() {
    custom_format_case(Some("none"));
}

/// A JSON template with nginx's `escape=json`: missing values empty, bytes escaped as
/// `ngx_escape_json` escapes them.
#[test]
fn an_escape_json_format_writes_nginx_lines() {
    let format = "{\"case\":\"$http_x_case\",\"addr\":\"$remote_addr\",\"user\":\"$remote_user\",\
                  \"request\":\"$request\",\"status\":$status,\"bytes\":$body_bytes_sent,\
                  \"referer\":\"$http_referer\",\"agent\":\"$http_user_agent\",\
                  \"xff\":\"$http_x_forwarded_for\",\"thing\":\"$http_x_custom_thing\",\
                  \"host\":\"$host\",\"upstream\":\"$upstream_addr\"}";
    let case_of = |line: &str| {
        let rest = line.strip_prefix("{\"case\":\"")?;
        rest.split('"').next()?.parse().ok()
    };
    let mut problems = Vec::new();
    for (case, n_line, r_line) in custom_lines(format, Some("json"), case_of) {
        let mask = |line: &str| -> String {
            match (
                case.own_page,
                line.find("\"bytes\":"),
                line.find(",\"referer\""),
            ) {
                (true, Some(b), Some(end)) => format!("{}N{}", &line[..b + 8], &line[end..]),
                _ => line.to_owned(),
            }
        };
        if mask(&n_line) != mask(&r_line) {
            problems.push(format!(
                "[{}]\n  nginx   {n_line}\n  ringway {r_line}",
                case.name
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Whether `t` is RFC 3339 with milliseconds: `2026-12-01T21:51:48.123+00:00`.
fn is_rfc3339_millis(t: &str) -> bool {
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    b.len() == 29
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && matches!(b[23], b'+' | b'-')
        && digits(24..26)
        && b[26] == b':'
        && digits(27..29)
}

/// What one JSON line must say.
struct Expect {
    name: &'static str,
    wire: Vec<u8>,
    head: bool,
    method: Option<&'static str>,
    path: Option<&'static str>,
    protocol: Option<&'static str>,
    status: u16,
    referer: Option<&'static str>,
    user_agent: Option<&'static str>,
    route: Option<&'static str>,
    /// The request went to the upstream (its times and address are logged).
    upstream: bool,
    /// At least this long (the app sleeps).
    at_least: Duration,
}

/// Each request on a fresh connection, then its JSON line checked field by field against
/// what the client sent and got.
#[test]
fn json_lines_say_what_the_client_did() {
    let uwsgi = Uwsgi::start(App::Raw);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.json");
    let socket = uwsgi.socket().display().to_string();
    let ringway = Ringway::with_config(format!(
        r#"
access_log = "{}"
access_log_format = "json"

[upstreams.app]
servers = ["unix:{socket}"]

[[routes]]
path = "/"
upstream = "app"

[[routes]]
path = "/old/"
redirect = {{ to = "/new/" }}
"#,
        log.display()
    ))
    .start();
    let host: (&str, &[u8]) = ("Host", b"localhost");
    let base = |name, wire, status| Expect {
        name,
        wire,
        head: false,
        method: Some("GET"),
        path: None,
        protocol: Some("HTTP/1.1"),
        status,
        referer: None,
        user_agent: None,
        route: Some("/"),
        upstream: true,
        at_least: Duration::ZERO,
    };
    let cases = vec![
        Expect {
            path: Some("/bytes/1000?a=1"),
            referer: Some("https://example.com/from"),
            user_agent: Some("json-test/1"),
            ..base(
                "GET with Referer and User-Agent",
                wire(
                    b"GET /bytes/1000?a=1 HTTP/1.1",
                    &[
                        host,
                        ("Referer", b"https://example.com/from"),
                        ("User-Agent", b"json-test/1"),
                    ],
                    None,
                ),
                200,
            )
        },
        Expect {
            method: Some("POST"),
            path: Some("/echo"),
            ..base(
                "POST with a body",
                wire(b"POST /echo HTTP/1.1", &[host], Some(&[b'b'; 5000])),
                200,
            )
        },
        Expect {
            head: true,
            method: Some("HEAD"),
            path: Some("/bytes/10"),
            ..base("HEAD", wire(b"HEAD /bytes/10 HTTP/1.1", &[host], None), 200)
        },
        Expect {
            path: Some("/slow?ms=300"),
            at_least: Duration::from_millis(300),
            ..base(
                "an app that takes 300 ms",
                wire(b"GET /slow?ms=300 HTTP/1.1", &[host], None),
                200,
            )
        },
        Expect {
            path: Some("/lazy/2000000"),
            ..base(
                "an answer longer than one read (relayed through the spool)",
                wire(b"GET /lazy/2000000 HTTP/1.1", &[host], None),
                200,
            )
        },
        Expect {
            path: Some("/old/a?b=1"),
            route: Some("/old/"),
            upstream: false,
            ..base(
                "a redirect route: no upstream",
                wire(b"GET /old/a?b=1 HTTP/1.1", &[host], None),
                301,
            )
        },
        Expect {
            path: Some("/q\"\\\u{e9}?x={}"),
            user_agent: Some("\u{ff}\u{fe} \"q\" \\ \tend"),
            ..base(
                "quotes, backslashes, UTF-8 in the target; invalid UTF-8 in a header",
                wire(
                    b"GET /q\"\\\xc3\xa9?x={} HTTP/1.1",
                    &[host, ("User-Agent", b"\xff\xfe \"q\" \\ \tend")],
                    None,
                ),
                404,
            )
        },
        Expect {
            method: Some("POST"),
            path: Some("/echo"),
            upstream: false,
            ..base(
                "413: a declared body over the limit",
                wire(
                    b"POST /echo HTTP/1.1",
                    &[host, ("Content-Length", b"2000000")],
                    None,
                ),
                413,
            )
        },
        Expect {
            // Its syntax is sound (only Host is missing): its request line's parts and its
            // headers are logged, as nginx logs them.
            method: Some("GET"),
            path: Some("/"),
            protocol: Some("HTTP/1.1"),
            user_agent: Some("no-host"),
            route: None,
            upstream: false,
            ..base(
                "400: a head refused (no Host)",
                wire(b"GET / HTTP/1.1", &[("User-Agent", b"no-host")], None),
                400,
            )
        },
        Expect {
            method: None,
            protocol: None,
            route: None,
            upstream: false,
            ..base(
                "400: a head whose syntax is broken",
                wire(
                    b"GET /x HTTP/1.1",
                    &[host, ("User-Agent", b"unread"), ("Bad Name", b"x")],
                    None,
                ),
                400,
            )
        },
    ];
    let mut got = Vec::new();
    for case in &cases {
        let answer = send(ringway.addr(), &case.wire, case.head);
        assert_eq!(answer.status, case.status, "[{}] {answer:?}", case.name);
        got.push(answer);
    }
    let lines = lines_once(&log, cases.len(), &ringway);
    assert_eq!(lines.len(), cases.len(), "{lines:#?}");
    let mut problems = Vec::new();
    for ((case, answer), line) in cases.iter().zip(&got).zip(&lines) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("[{}] not JSON ({e}): {line}", case.name));
        let mut check = |what: &str, ok: bool| {
            if !ok {
                problems.push(format!("[{}] {what}: {line}", case.name));
            }
        };
        let text = |key: &str| v[key].as_str().map(str::to_owned);
        let seconds = |key: &str| v[key].as_f64();
        check("time", text("time").is_some_and(|t| is_rfc3339_millis(&t)));
        check("remote_addr", v["remote_addr"] == "127.0.0.1");
        check("method", text("method").as_deref() == case.method);
        if case.method.is_some() {
            check("path", text("path").as_deref() == case.path);
        } else {
            check("path null", v["path"].is_null());
        }
        check("protocol", text("protocol").as_deref() == case.protocol);
        check("status", v["status"] == case.status);
        check(
            "body_bytes_sent is what the client got",
            v["body_bytes_sent"].as_u64() == Some(answer.body.len() as u64),
        );
        check("referer", text("referer").as_deref() == case.referer);
        check(
            "user_agent",
            text("user_agent").as_deref() == case.user_agent,
        );
        check("route", text("route").as_deref() == case.route);
        check("remote_user", v["remote_user"].is_null());
        check(
            "request_id is the answer's X-Request-ID",
            answer.header("x-request-id").is_some()
                && text("request_id") == answer.header("x-request-id"),
        );
        let request_time = seconds("request_time");
        check(
            "request_time",
            request_time.is_some_and(|t| t >= case.at_least.as_secs_f64() && t < 60.0),
        );
        if case.upstream {
            check(
                "upstream_addr",
                text("upstream_addr") == Some(format!("unix:{socket}")),
            );
            let connect = seconds("upstream_connect_time");
            let response = seconds("upstream_response_time");
            check(
                "upstream_connect_time",
                connect.is_some_and(|c| c >= 0.0) && connect <= response,
            );
            check(
                "upstream_response_time within request_time",
                response.is_some_and(|r| r >= case.at_least.as_secs_f64())
                    && response <= request_time,
            );
        } else {
            for key in [
                "upstream_addr",
                "upstream_connect_time",
                "upstream_response_time",
            ] {
                check(key, v[key].is_null());
            }
        }
        check(
            "the fields and no others",
            v.as_object().is_some_and(|o| o.len() == 16),
        );
    }
    assert!(
        problems.is_empty(),
        "{}\n\nall lines:\n{}",
        problems.join("\n"),
        lines.join("\n")
    );
}

/// Behind a trusted proxy: `remote_addr` is the client its X-Forwarded-For names (in both
/// formats), and `request_id` the X-Request-ID the client got: the proxy's own when it sent
/// one, else the one ringway made; a request refused before routing (a path that does not
/// decode) included.
#[test]
fn lines_name_the_real_client_and_the_request_id() {
    let uwsgi = Uwsgi::start(App::Raw);
    let dir = tempfile::tempdir().expect("temp dir");
    for format in ["json", "combined"] {
        let log = dir.path().join(format!("access.{format}"));
        let ringway = Ringway::with(&uwsgi)
            .arg("--access-log", log.to_str().expect("utf-8 path"))
            .arg("--access-log-format", format)
            .arg("--trusted-proxy", "127.0.0.1")
            .start();
        let forwarded: (&str, &[u8]) = ("X-Forwarded-For", b"198.51.100.7");
        let host: (&str, &[u8]) = ("Host", b"localhost");
        let requests = [
            wire(b"GET /bytes/5 HTTP/1.1", &[host, forwarded], None),
            wire(
                b"GET /bytes/6 HTTP/1.1",
                &[host, forwarded, ("X-Request-ID", b"lb-7f3a-0001")],
                None,
            ),
            wire(b"GET /%zz HTTP/1.1", &[host, forwarded], None),
        ];
        let answers: Vec<Response> = requests
            .iter()
            .map(|bytes| send(ringway.addr(), bytes, false))
            .collect();
        let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        assert_eq!(statuses, [200, 200, 400], "{answers:?}");
        assert_eq!(
            answers[1].header("x-request-id").as_deref(),
            Some("lb-7f3a-0001"),
            "a trusted proxy's ID is kept: {answers:?}"
        );
        let lines = lines_once(&log, requests.len(), &ringway);
        assert_eq!(lines.len(), requests.len(), "{lines:#?}");
        for (answer, line) in answers.iter().zip(&lines) {
            let id = answer
                .header("x-request-id")
                .expect("every answer has an ID");
            if format == "json" {
                let v: Value = serde_json::from_str(line).expect("JSON");
                assert_eq!(v["remote_addr"], "198.51.100.7", "{line}");
                assert_eq!(v["request_id"], id.as_str(), "{line}");
            } else {
                assert_eq!(parse_combined(line).remote_addr, "198.51.100.7", "{line}");
            }
        }
    }
}

/// How many lines of `lines` carry the User-Agent `agent`.
fn count_agent(lines: &[String], agent: &str) -> usize {
    let quoted = format!("\"{agent}\"");
    lines.iter().filter(|l| l.ends_with(&quoted)).count()
}

fn request_as(addr: std::net::SocketAddr, agent: &str) {
    let r = roundtrip(addr, &Req::get("/").header("User-Agent", agent));
    assert_eq!(r.status, 200, "{r:?}");
}

/// logrotate's way: rename the file, then SIGUSR1. The lines of the requests before the
/// signal are all in the renamed file (ringway flushes before it reopens), those after in
/// the new one, none lost.
#[test]
fn sigusr1_after_a_rename_starts_a_new_file() {
    let uwsgi = Uwsgi::start(App::Raw);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let mut ringway = Ringway::with(&uwsgi)
        .arg("--access-log", log.to_str().expect("utf-8 path"))
        .workers(2)
        .start();
    for _ in 0..7 {
        request_as(ringway.addr(), "before");
    }
    fs::rename(&log, &rotated).expect("rename");
    ringway.signal(libc::SIGUSR1);
    let reopened = poll_until(LINES_WITHIN, || {
        log.exists() && ringway.stderr().contains("access log reopened")
    });
    assert!(reopened, "no new file after SIGUSR1:\n{}", ringway.stderr());
    for _ in 0..5 {
        request_as(ringway.addr(), "after");
    }
    ringway.sigterm();
    let status = ringway.wait_exit(LINES_WITHIN).expect("ringway exits");
    assert!(status.success(), "{status}\n{}", ringway.stderr());
    let (old, new) = (read_lines(&rotated), read_lines(&log));
    assert_eq!(
        (count_agent(&old, "before"), count_agent(&old, "after")),
        (7, 0),
        "the renamed file:\n{}",
        old.join("\n")
    );
    assert_eq!(
        (count_agent(&new, "before"), count_agent(&new, "after")),
        (0, 5),
        "the new file:\n{}",
        new.join("\n")
    );
    assert_eq!((old.len(), new.len()), (7, 5));
}

/// nginx's `access_log` in a `location`: a route's own file takes its lines in place of the
/// top level's, `off` takes them nowhere, the rest go to the top level's file; SIGUSR1
/// after logrotate renamed both starts both anew. With the top level's log off, a route's
/// file still gets its lines, and nothing else is logged.
#[test]
fn a_route_s_own_file_takes_its_lines_and_is_reopened_with_the_rest() {
    let uwsgi = Uwsgi::start(App::Raw);
    let dir = tempfile::tempdir().expect("temp dir");
    let main = dir.path().join("access.log");
    let api = dir.path().join("api.log");
    let routes = |main_log: Option<&Path>| {
        let top = main_log.map_or(String::new(), |p| {
            format!("access_log = \"{}\"\n", p.display())
        });
        format!(
            "{top}[upstreams.app]\nservers = [\"{}\"]\n\
             [[routes]]\npath = \"/environ/api/\"\nupstream = \"app\"\naccess_log = \"{}\"\n\
             [[routes]]\npath = \"/environ/api/v2/\"\nupstream = \"app\"\naccess_log = \"{}\"\n\
             [[routes]]\npath = \"/environ/quiet/\"\nupstream = \"app\"\naccess_log = \"off\"\n\
             [[routes]]\npath = \"/\"\nupstream = \"app\"\n",
            uwsgi.upstream(),
            api.display(),
            api.display(),
        )
    };
    let ask = |ringway: &Ringway, path: &str, agent: &str| {
        let r = roundtrip(ringway.addr(), &Req::get(path).header("User-Agent", agent));
        assert_eq!(r.status, 200, "{path}: {r:?}");
    };
    let mut ringway = Ringway::with_config(routes(Some(&main))).workers(2).start();
    // Not waited for: the lines still in the workers' buffers at the signal must land in
    // the renamed files too (each worker flushes every file before the reopen).
    for agent in ["before", "before"] {
        ask(&ringway, "/environ/api/users", agent);
        ask(&ringway, "/environ/api/v2/users", agent);
        ask(&ringway, "/environ/quiet/x", agent);
        ask(&ringway, "/environ/page", agent);
    }
    // A line is recorded just after its answer went: given time to be, not to be flushed.
    std::thread::sleep(Duration::from_millis(100));
    let (main_old, api_old) = (
        dir.path().join("access.log.1"),
        dir.path().join("api.log.1"),
    );
    fs::rename(&main, &main_old).expect("rename");
    fs::rename(&api, &api_old).expect("rename");
    ringway.signal(libc::SIGUSR1);
    let reopened = poll_until(LINES_WITHIN, || main.exists() && api.exists());
    assert!(
        reopened,
        "both files anew after SIGUSR1:\n{}",
        ringway.stderr()
    );
    ask(&ringway, "/environ/api/users", "after");
    ask(&ringway, "/environ/page", "after");
    ringway.sigterm();
    let status = ringway.wait_exit(LINES_WITHIN).expect("ringway exits");
    assert!(status.success(), "{status}\n{}", ringway.stderr());
    let [main_old, api_old, main_new, api_new] =
        [&main_old, &api_old, &main, &api].map(|p| read_lines(p));
    let path_of = |line: &String| line.split('"').nth(1).unwrap_or_default().to_owned();
    // Sorted: each worker's lines are in its order, two workers' are batched apart.
    let paths = |lines: &[String]| {
        let mut paths = lines.iter().map(path_of).collect::<Vec<_>>();
        paths.sort();
        paths
    };
    assert_eq!(paths(&main_old), ["GET /environ/page HTTP/1.1"; 2]);
    assert_eq!(
        paths(&api_old),
        [
            "GET /environ/api/users HTTP/1.1",
            "GET /environ/api/users HTTP/1.1",
            "GET /environ/api/v2/users HTTP/1.1",
            "GET /environ/api/v2/users HTTP/1.1"
        ]
    );
    assert_eq!(
        count_agent(&main_old, "before") + count_agent(&api_old, "before"),
        6
    );
    assert_eq!(paths(&main_new), ["GET /environ/page HTTP/1.1"]);
    assert_eq!(paths(&api_new), ["GET /environ/api/users HTTP/1.1"]);
    assert_eq!(count_agent(&api_new, "after"), 1);

    // Only the route logs: its lines, nothing else (a request no route takes included).
    fs::remove_file(&api).expect("removed");
    let ringway = Ringway::with_config(routes(None)).start();
    ask(&ringway, "/environ/api/users", "only");
    ask(&ringway, "/environ/page", "only");
    let mut conn = Conn::open(ringway.addr());
    conn.send(b"GET /x HTTP/1.1\r\n\r\n").expect("send");
    assert_eq!(conn.read_response().expect("an answer").status, 400);
    let lines = lines_once(&api, 1, &ringway);
    std::thread::sleep(Duration::from_millis(1500));
    let stderr = ringway.stderr();
    assert!(
        !stderr.contains("/environ/page") && !stderr.contains("GET /x"),
        "the other requests logged nowhere, not on stderr either:\n{stderr}"
    );
    assert_eq!(
        paths(&read_lines(&api)),
        ["GET /environ/api/users HTTP/1.1"],
        "{lines:?}"
    );
}

/// A line shows up while ringway runs (buffered lines go out at least every second, not
/// only when 64 KiB are ready), and the lines of requests answered right before SIGTERM are
/// all in the file once ringway has exited.
#[test]
fn lines_are_written_while_running_and_at_stop() {
    let uwsgi = Uwsgi::start(App::Raw);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.log");
    let mut ringway = Ringway::with(&uwsgi)
        .arg("--access-log", log.to_str().expect("utf-8 path"))
        .start();
    request_as(ringway.addr(), "first");
    let lines = lines_once(&log, 1, &ringway);
    assert_eq!(count_agent(&lines, "first"), 1, "{lines:#?}");

    // On one keep-alive connection, then SIGTERM at once: these lines are still in the
    // worker's buffer when the signal comes.
    let mut conn = Conn::open(ringway.addr());
    for _ in 0..30 {
        let req = Req::get("/").header("User-Agent", "last");
        conn.send(&req.to_bytes()).expect("send");
        let r = conn.read_response().expect("answer");
        assert_eq!(r.status, 200, "{r:?}");
    }
    ringway.sigterm();
    drop(conn);
    let status = ringway.wait_exit(LINES_WITHIN).expect("ringway exits");
    assert!(status.success(), "{status}\n{}", ringway.stderr());
    let lines = read_lines(&log);
    assert_eq!(
        (count_agent(&lines, "first"), count_agent(&lines, "last")),
        (1, 30),
        "{}",
        lines.join("\n")
    );
}

/// `access_log = "stderr"`: the lines come out on stderr, whole, among ringway's own.
#[test]
fn stderr_gets_the_lines() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--access-log", "stderr")
        .arg("--access-log-format", "json")
        .start();
    let r = roundtrip(
        ringway.addr(),
        &Req::get("/bytes/77").header("User-Agent", "to-stderr"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let mut line = None;
    poll_until(LINES_WITHIN, || {
        line = ringway
            .stderr()
            .lines()
            .find(|l| l.starts_with("{\"time\":") && l.contains("to-stderr"))
            .map(str::to_owned);
        line.is_some()
    });
    let line = line.unwrap_or_else(|| panic!("no JSON line on stderr:\n{}", ringway.stderr()));
    let v: Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(
        (&v["path"], &v["status"], &v["body_bytes_sent"]),
        (
            &Value::from("/bytes/77"),
            &Value::from(200),
            &Value::from(77)
        ),
        "{line}"
    );
}

/// A full disk (/dev/full answers every write with ENOSPC): requests are served as usual,
/// the lines are counted as dropped in the metrics, and the failure is logged.
#[test]
fn a_full_disk_drops_lines_counts_them_and_serves_on() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--access-log", "/dev/full")
        .arg("--metrics", "127.0.0.1:0")
        .flag("--no-ebpf")
        .start();
    for _ in 0..5 {
        request_as(ringway.addr(), "lost");
    }
    let metrics = ringway.metrics_addr();
    let mut dropped = 0.0;
    let counted = poll_until(LINES_WITHIN, || {
        let text = roundtrip(metrics, &Req::get("/metrics")).text();
        dropped = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("ringway_access_log_dropped_total ")?
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0);
        dropped >= 5.0
    });
    assert!(
        counted,
        "ringway_access_log_dropped_total is {dropped}, 5 expected; stderr:\n{}",
        ringway.stderr()
    );
    assert!(
        ringway.wait_for_log("access log write failed", Duration::from_secs(5)),
        "{}",
        ringway.stderr()
    );
    request_as(ringway.addr(), "still served");
}

/// nginx's `access_log off` in a `location` (the static files', a health check's): that
/// route's requests are not logged, the others are. A route's own file that cannot be
/// opened is refused at start, named by its route.
#[test]
fn a_route_with_its_log_off_is_not_logged() {
    let uwsgi = Uwsgi::start(App::Raw);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.log");
    let config = format!(
        "upstream = [\"{}\"]\naccess_log = '{}'\n\
         [[routes]]\npath = \"/healthz\"\nexact = true\naccess_log = \"off\"\n\
         respond = {{ status = 200, body = \"ok\" }}\n",
        uwsgi.upstream(),
        log.display()
    );
    let mut ringway = Ringway::with_config(config).start();
    for target in ["/healthz", "/environ", "/healthz", "/environ?second"] {
        let r = roundtrip(ringway.addr(), &Req::get(target));
        assert_eq!(r.status, 200, "{target}: {r:?}");
    }
    ringway.sigterm();
    let status = ringway.wait_exit(LINES_WITHIN).expect("ringway exits");
    assert!(status.success(), "{status}\n{}", ringway.stderr());
    let lines = read_lines(&log);
    let requests: Vec<String> = lines.iter().map(|l| parse_combined(l).request).collect();
    assert_eq!(
        requests,
        ["GET /environ HTTP/1.1", "GET /environ?second HTTP/1.1"],
        "{}",
        lines.join("\n")
    );

    let unwritable = format!(
        "upstream = [\"{}\"]\n[[routes]]\npath = \"/x/\"\nupstream = \"default\"\n\
         access_log = \"{}\"\n",
        uwsgi.upstream(),
        dir.path().join("missing").join("x.log").display()
    );
    let refused = Ringway::with_config(unwritable).start_refused();
    assert!(
        refused.stderr.contains("routes[0].access_log") && refused.stderr.contains("cannot open"),
        "{}",
        refused.stderr
    );
}

/// A file an app's X-Accel-Redirect names is logged where the route it lands on logs, as
/// nginx logs a request in the location its internal redirect ended in: compared with
/// nginx, a found file and a missing one.
#[test]
fn an_x_accel_redirect_is_logged_by_the_route_it_lands_on() {
    let uwsgi = Uwsgi::start(App::Raw);
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dir.path().join("files");
    fs::create_dir(&files).expect("mkdir");
    fs::write(files.join("f.txt"), "the file").expect("write");
    let at = |name: &str| dir.path().join(name);
    let nginx = Nginx::start_with_server_directives(
        uwsgi.socket(),
        &format!(
            "access_log {}; location /files/ {{ internal; alias {}/; access_log {}; }}",
            at("nginx-main.log").display(),
            files.display(),
            at("nginx-files.log").display()
        ),
    );
    let ringway = Ringway::with_config(format!(
        "access_log = \"{}\"\n[upstreams.app]\nservers = [\"{}\"]\n\
         [[routes]]\npath = \"/\"\nupstream = \"app\"\n\
         [[routes]]\npath = \"/files/\"\nstatic = \"{}\"\ninternal = true\n\
         access_log = \"{}\"\n",
        at("ringway-main.log").display(),
        uwsgi.upstream(),
        files.display(),
        at("ringway-files.log").display()
    ))
    .start();
    let cases = [
        ("/accel?to=/files/f.txt", 200),
        ("/accel?to=/files/missing.txt", 404),
        ("/environ/x", 200),
    ];
    for (target, status) in cases {
        for addr in [nginx.addr(), ringway.addr()] {
            let r = roundtrip(addr, &Req::get(target));
            assert_eq!(r.status, status, "{target}: {r:?}");
        }
    }
    let requests = |name: &str, n: usize| {
        let mut requests: Vec<String> = lines_once(&at(name), n, &ringway)
            .iter()
            .map(|l| parse_combined(l).request)
            .collect();
        requests.sort();
        requests
    };
    let files_lines = requests("nginx-files.log", 2);
    assert_eq!(
        files_lines,
        [
            "GET /accel?to=/files/f.txt HTTP/1.1",
            "GET /accel?to=/files/missing.txt HTTP/1.1"
        ],
        "the test's premise"
    );
    assert_eq!(requests("ringway-files.log", 2), files_lines);
    let main_lines = requests("nginx-main.log", 1);
    assert_eq!(
        main_lines,
        ["GET /environ/x HTTP/1.1"],
        "the test's premise"
    );
    assert_eq!(requests("ringway-main.log", 1), main_lines);
}

/// `$bytes_sent` is every byte the client received for its answer, `$request_length` every
/// byte of its request (a chunked body with its framing), for two pipelined requests.
#[test]
fn sizes_are_the_bytes_on_the_wire() {
    use std::io::{Read, Write};
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .arg("--access-log", "stderr")
        .arg(
            "--access-log-format",
            "sizes $request_method $bytes_sent $body_bytes_sent $request_length",
        )
        .start();
    let get = b"GET /bytes/1000 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    let post = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
                 Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        .to_vec();
    let mut stream = std::net::TcpStream::connect(ringway.addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(&[get.clone(), post.clone()].concat())
        .expect("send");
    let mut answers = Vec::new();
    stream.read_to_end(&mut answers).expect("both answers");
    // The first answer: its head, then its 1000 bytes.
    let head_end = answers
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let first = head_end + 1000;
    assert!(
        answers
            .get(first..)
            .is_some_and(|r| r.starts_with(b"HTTP/1.1 200"))
    );
    let line = |method: &str| {
        let mut found = None;
        poll_until(LINES_WITHIN, || {
            found = ringway
                .stderr()
                .lines()
                .find(|l| l.starts_with(&format!("sizes {method} ")))
                .map(str::to_owned);
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no {method} line:\n{}", ringway.stderr()))
    };
    assert_eq!(line("GET"), format!("sizes GET {first} 1000 {}", get.len()));
    let second = &answers[first..];
    let body = second.len()
        - (second
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a head")
            + 4);
    assert_eq!(
        line("POST"),
        format!("sizes POST {} {body} {}", second.len(), post.len()),
        "{}",
        String::from_utf8_lossy(second)
    );

    // An interim `100 Continue` is part of what the answer sent, as nginx counts it.
    let head = b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
                 Expect: 100-continue\r\nConnection: close\r\n\r\n";
    let mut stream = std::net::TcpStream::connect(ringway.addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(head).expect("send the head");
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).expect("100 Continue");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"hello").expect("send the body");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("the answer");
    let put = line("PUT");
    let fields: Vec<&str> = put.split(' ').collect();
    assert_eq!(
        fields.get(2).copied(),
        Some((interim.len() + answer.len()).to_string().as_str()),
        "{put}"
    );
    assert_eq!(
        fields.get(4).copied(),
        Some((head.len() + 5).to_string().as_str())
    );
}

/// `$proxy_protocol_addr` and `$proxy_protocol_port` name what a PROXY header named (`-`
/// for a header naming no one, a load balancer's health check); `$tcpinfo_*` are the
/// kernel's figures of the client's connection.
#[test]
fn proxy_protocol_and_tcp_info_variables_show_the_connection() {
    let uwsgi = Uwsgi::start(App::Raw);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.log");
    let ringway = Ringway::with_config(format!(
        "upstream = [{:?}]\nproxy_protocol = true\naccess_log = {:?}\naccess_log_format = \
         '$http_x_case $proxy_protocol_addr $proxy_protocol_port $tcpinfo_rtt \
         $tcpinfo_rttvar $tcpinfo_snd_cwnd $tcpinfo_rcv_space'\n",
        uwsgi.upstream(),
        log.display().to_string(),
    ))
    .start();
    let request = |case: u32| format!("GET /bytes/3 HTTP/1.1\r\nHost: a\r\nX-Case: {case}\r\n\r\n");
    let named = format!("PROXY TCP4 192.0.2.1 127.0.0.1 5555 80\r\n{}", request(1));
    let unnamed = format!("PROXY UNKNOWN\r\n{}", request(2));
    for wire in [named, unnamed] {
        let r = send(ringway.addr(), wire.as_bytes(), false);
        assert_eq!(r.status, 200, "{r:?}");
    }
    let mut lines = lines_once(&log, 2, &ringway);
    lines.sort();
    let fields: Vec<Vec<&str>> = lines.iter().map(|l| l.split(' ').collect()).collect();
    assert_eq!(fields[0][..3], ["1", "192.0.2.1", "5555"], "{lines:?}");
    assert_eq!(fields[1][..3], ["2", "-", "-"], "{lines:?}");
    for line in &fields {
        let figures: Vec<u64> = line[3..]
            .iter()
            .map(|f| f.parse().unwrap_or_else(|_| panic!("a figure: {line:?}")))
            .collect();
        // A loopback round trip takes some microseconds; a window holds some segments.
        assert!(
            figures[0] > 0 && figures[2] > 0 && figures[3] > 0,
            "{line:?}"
        );
    }
}

/// `access_log_statuses` (nginx's `access_log ... if=$loggable` over `map $status`): only
/// the listed statuses get a line, a head too broken to parse and a client that left (499)
/// included; the metrics still count every request.
#[test]
fn only_the_listed_statuses_are_logged() {
    let uwsgi = Uwsgi::start(App::Raw);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.log");
    let ringway = Ringway::with(&uwsgi)
        .arg("--access-log", &log.display().to_string())
        .arg("--access-log-format", "$request_uri $status")
        .arg("--access-log-statuses", "4xx,503")
        .arg("--metrics", "127.0.0.1:0")
        .flag("--no-ebpf")
        .start();
    for path in [
        "/",
        "/status/404",
        "/status/500",
        "/status/503",
        "/status/301",
    ] {
        roundtrip(ringway.addr(), &Req::get(path));
    }
    send(
        ringway.addr(),
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        false,
    );
    let mut gone = std::net::TcpStream::connect(ringway.addr()).expect("connect");
    std::io::Write::write_all(&mut gone, b"GET /slow?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    std::thread::sleep(Duration::from_millis(100));
    drop(gone);
    let lines = lines_once(&log, 4, &ringway);
    assert_eq!(
        lines,
        [
            "/status/404 404",
            "/status/503 503",
            "/ 400",
            "/slow?ms=1500 499"
        ],
        "4xx and 503 only, in their order"
    );
    let metrics = roundtrip(ringway.metrics_addr(), &Req::get("/metrics")).text();
    for code in ["200", "301", "404", "500", "503"] {
        assert!(
            metrics.contains(&format!(
                "ringway_requests_total{{route=\"/\",code=\"{code}\"}} 1"
            )),
            "{code} counted:\n{metrics}"
        );
    }
}

/// A client that leaves is logged as nginx logs it: one that cuts its body short (closing or
/// resetting its connection) gets 400, one gone while the app works 499, and neither has an
/// `$upstream_status` (`-`: no answer head came).
#[test]
fn clients_that_leave_are_logged_as_by_nginx() {
    let both = SameFormat::start("$http_x_case $status $upstream_status", None, "", "");
    let cut_short = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc";
    let cases: [(&str, &[u8], bool); 5] = [
        ("closed-in-body", cut_short, false),
        ("reset-in-body", cut_short, true),
        (
            "gone-at-app",
            b"GET /slow?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n",
            false,
        ),
        // Gone well before its answer, within a second at the app (found by review:
        // ringway watched only after a second, and logged the 200 it wrote to nobody).
        (
            "gone-quickly",
            b"GET /slow?ms=700 HTTP/1.1\r\nHost: t\r\n\r\n",
            false,
        ),
        (
            "gone-after-more",
            b"GET /slow?ms=2500 HTTP/1.1\r\nHost: t\r\n\r\n",
            false,
        ),
    ];
    let mut seen = Vec::new();
    // ringway first: nginx's cut requests leave the app's two workers busy for seconds,
    // and a request queued behind them would be slow to answer whoever asks.
    for (addr, log) in both.both().into_iter().rev() {
        for (case, request, reset) in cases {
            let mut conn = std::net::TcpStream::connect(addr).expect("connect");
            let head_end = request
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap_or(0);
            let (head, rest) = request.split_at(head_end);
            let tagged = [head, format!("\r\nX-Case: {case}").as_bytes(), rest].concat();
            std::io::Write::write_all(&mut conn, &tagged).expect("send");
            std::thread::sleep(Duration::from_millis(200));
            if case == "gone-after-more" {
                // Bytes before its end, sent once the request was read (a pipelined
                // request here; a TLS client's close_notify) hide no client that left
                // (found by review: never seen to leave).
                let more = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
                std::io::Write::write_all(&mut conn, more).expect("send more");
            }
            if reset {
                socket2::SockRef::from(&conn)
                    .set_linger(Some(Duration::ZERO))
                    .expect("SO_LINGER 0: a reset on close");
            }
            drop(conn);
        }
        let mut lines = lines_once(log, cases.len(), &both.ringway);
        lines.sort();
        seen.push(lines);
    }
    assert_eq!(
        seen[1],
        [
            "closed-in-body 400 -",
            "gone-after-more 499 -",
            "gone-at-app 499 -",
            "gone-quickly 499 -",
            "reset-in-body 400 -"
        ],
        "nginx's lines"
    );
    assert_eq!(seen[0], seen[1], "ringway's lines, then nginx's");
}

/// A request whose server refused its connect names that server in its line, with the 502
/// as its status and no connect or header time, as nginx's (found by review: `- -`, so a
/// dashboard counting upstream errors missed the most common 502).
#[test]
fn a_refused_connect_is_logged_with_its_server_as_by_nginx() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A socket file nobody listens on: ECONNREFUSED.
    let dead = dir.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).expect("bind"));
    let format = "$status $upstream_addr $upstream_status $upstream_connect_time \
                  $upstream_header_time";
    let nginx_log = dir.path().join("nginx.log");
    let ringway_log = dir.path().join("ringway.log");
    let nginx = Nginx::start_with_http_directives(
        &dead,
        &format!("log_format custom '{format}';"),
        &format!("access_log {} custom;", nginx_log.display()),
    );
    let ringway = Ringway::with_config(format!(
        "upstream = [\"unix:{}\"]\naccess_log = {:?}\naccess_log_format = '{format}'\n",
        dead.display(),
        ringway_log.display().to_string(),
    ))
    .start();
    let mut seen = Vec::new();
    for (addr, log) in [(nginx.addr(), &nginx_log), (ringway.addr(), &ringway_log)] {
        let r = roundtrip(addr, &Req::get("/"));
        assert_eq!(r.status, 502, "{r:?}");
        seen.push(lines_once(log, 1, &ringway));
    }
    assert_eq!(
        seen[0],
        [format!("502 unix:{} 502 - -", dead.display())],
        "nginx's line"
    );
    assert_eq!(seen[1], seen[0], "ringway's line, then nginx's");
}

/// A head the client cuts short (closing or resetting in its request line or its headers)
/// or sends too slowly is logged as nginx logs it: 400 (408), with what came of its request
/// line; a connection that closes before a byte of a request is no request and gets no line.
#[test]
fn heads_cut_short_are_logged_as_by_nginx() {
    let both = SameFormat::start(
        "$status \"$request\"",
        None,
        "client_header_timeout 1s;",
        "client_header_timeout = \"1s\"\n",
    );
    #[derive(Clone, Copy, PartialEq)]
    enum Then {
        Close,
        Reset,
        Wait,
    }
    let cases: [(&[u8], Then); 6] = [
        (b"", Then::Close),
        // A SOCKS greeting: no method has these bytes, so no line end is waited for (found
        // by review: a 408 after the timeout).
        (b"\x05\x01\x00", Then::Wait),
        (b"GET /closed-in-line HT", Then::Close),
        (
            b"GET /closed-in-headers HTTP/1.1\r\nHost: t\r\n",
            Then::Close,
        ),
        (
            b"GET /reset-in-headers HTTP/1.1\r\nHost: t\r\n",
            Then::Reset,
        ),
        (b"GET /slow-headers HTTP/1.1\r\nHost: t\r\n", Then::Wait),
    ];
    let mut seen = Vec::new();
    for (addr, log) in both.both() {
        for (request, then) in cases {
            let mut conn = std::net::TcpStream::connect(addr).expect("connect");
            std::io::Write::write_all(&mut conn, request).expect("send");
            let pause = if then == Then::Wait { 1500 } else { 200 };
            std::thread::sleep(Duration::from_millis(pause));
            if then == Then::Reset {
                socket2::SockRef::from(&conn)
                    .set_linger(Some(Duration::ZERO))
                    .expect("SO_LINGER 0: a reset on close");
            }
            drop(conn);
        }
        // Logged after the others: the connection that sent nothing had its chance.
        std::thread::sleep(Duration::from_millis(200));
        let last = send(addr, b"GET /?last HTTP/1.1\r\nHost: t\r\n\r\n", false);
        assert_eq!(last.status, 200, "{last:?}");
        let mut lines = lines_once(log, cases.len(), &both.ringway);
        lines.sort();
        seen.push(lines);
    }
    assert_eq!(
        seen[0],
        [
            "200 \"GET /?last HTTP/1.1\"",
            "400 \"GET /closed-in-headers HTTP/1.1\"",
            "400 \"GET /closed-in-line HT\"",
            "400 \"GET /reset-in-headers HTTP/1.1\"",
            "400 \"\\x05\\x01\\x00\"",
            "408 \"GET /slow-headers HTTP/1.1\"",
        ],
        "nginx's lines"
    );
    assert_eq!(seen[1], seen[0], "ringway's lines, then nginx's");
}

/// `$request_time` runs from the request's first byte, as nginx's does: a head that came
/// slowly, and one cut by `client_header_timeout` (408), log the time their head took
/// (found by review: ringway's ran from the complete head, so a 408 logged 0.000).
#[test]
fn request_time_counts_a_slow_head() {
    let both = SameFormat::start(
        "$request_time \"$request\"",
        None,
        "client_header_timeout 1s;",
        "client_header_timeout = \"1s\"\n",
    );
    for (addr, log) in both.both() {
        let mut conn = std::net::TcpStream::connect(addr).expect("connect");
        std::io::Write::write_all(&mut conn, b"GET /slow-headers HTTP/1.1\r\nHost: t\r\n")
            .expect("send");
        std::thread::sleep(Duration::from_millis(1500));
        drop(conn);
        let mut conn = Conn::open(addr);
        conn.send(b"GET /?first HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("send");
        assert_eq!(conn.read_response().expect("answer").status, 200);
        // The keep-alive wait before it is not its time; the pause within its head is.
        std::thread::sleep(Duration::from_millis(1500));
        conn.send(b"GET /?split HTTP/1.1\r\n").expect("send");
        std::thread::sleep(Duration::from_millis(600));
        conn.send(b"Host: t\r\n\r\n").expect("send");
        assert_eq!(conn.read_response().expect("answer").status, 200);
        let lines = lines_once(log, 3, &both.ringway);
        let time_of = |request: &str| -> f64 {
            let line = lines
                .iter()
                .find(|l| l.contains(request))
                .unwrap_or_else(|| panic!("no {request} in {lines:?}"));
            line.split(' ')
                .next()
                .and_then(|t| t.parse().ok())
                .unwrap_or(-1.0)
        };
        let (slow, first, split) = (
            time_of("/slow-headers"),
            time_of("/?first"),
            time_of("/?split"),
        );
        assert!((0.9..3.0).contains(&slow), "408 after 1 s: {lines:?}");
        assert!(first < 0.4, "no head time: {lines:?}");
        assert!(
            (0.4..1.2).contains(&split),
            "its head's 0.6 s, not the wait: {lines:?}"
        );
    }
}

/// nginx's `$upstream_bytes_received`, `$upstream_response_length` and
/// `$upstream_bytes_sent`: the same numbers from nginx and ringway for the same answers of
/// the same uWSGI (its head and body as they came, the body alone, and the uwsgi packet
/// with the request's body: the suite's nginx sends the vars ringway sends), small, large,
/// without a length, an error and an upload.
#[test]
fn upstream_byte_counts_are_logged_as_by_nginx() {
    const FORMAT: &str = "$http_x_case $upstream_bytes_received $upstream_response_length \
        $upstream_bytes_sent";
    let both = SameFormat::start(FORMAT, None, "", "");
    let upload = ringway_tests::pattern(20_000);
    let requests = [
        Req::get("/bytes/3"),
        Req::get("/bytes/200000"),
        Req::get("/stream/5000"),
        Req::get("/status/404"),
        Req::post("/echo", &upload),
    ];
    let mut seen = Vec::new();
    for (addr, log) in both.both() {
        for (case, req) in requests.iter().enumerate() {
            let r = roundtrip(addr, &req.clone().header("X-Case", &case.to_string()));
            assert!(r.status == 200 || r.status == 404, "{r:?}");
        }
        let mut lines = lines_once(log, requests.len(), &both.ringway);
        lines.sort();
        seen.push(lines);
    }
    let fields = |line: &String| -> Vec<u64> {
        line.split(' ')
            .map(|f| f.parse().unwrap_or_else(|_| panic!("a number: {line}")))
            .collect()
    };
    for (from_nginx, from_ringway) in seen[0].iter().zip(&seen[1]) {
        let (n, r) = (fields(from_nginx), fields(from_ringway));
        assert_eq!(n, r, "case, received, body, sent:\n{seen:#?}");
        assert!(r[2] < r[1] && r[3] > 0, "{from_ringway}");
    }
    let upload_sent = fields(&seen[1][4])[3];
    assert!(
        upload_sent > 20_000,
        "the upload's packet and body: {upload_sent}"
    );
    assert_eq!(fields(&seen[1][1])[2], 200_000, "{seen:#?}");
}

/// On a listener on every address (`0.0.0.0`), `$server_addr` is the address the client
/// reached, as nginx asks the socket for it, and so is the `SERVER_NAME` a request
/// without a Host gets (found by review: both were `0.0.0.0`).
#[test]
fn a_wildcard_listeners_server_addr_is_the_address_reached() {
    let uwsgi = Uwsgi::start(App::Flask);
    let ringway = Ringway::with(&uwsgi)
        .listen("0.0.0.0:0".parse().expect("an address"))
        .arg("--access-log", "stderr")
        .arg(
            "--access-log-format",
            "line sa=$server_addr sp=$server_port",
        )
        .start();
    let port = ringway.addr().port();
    let reached = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let r = roundtrip(reached, &Req::get("/bytes/3"));
    assert_eq!(r.status, 200, "{r:?}");
    let line = format!("line sa=127.0.0.1 sp={port}");
    let logged = poll_until(LINES_WITHIN, || ringway.stderr().contains(&line));
    assert!(logged, "no {line:?} in\n{}", ringway.stderr());
    let mut conn = Conn::open(reached);
    conn.send(b"GET /environ HTTP/1.0\r\n\r\n").expect("send");
    let r = conn.read_response().expect("an answer");
    assert_eq!(r.status, 200, "{r:?}");
    let environ: Value = serde_json::from_slice(&r.body).expect("the app's JSON");
    assert_eq!(environ["SERVER_NAME"], "127.0.0.1", "{environ}");
}
