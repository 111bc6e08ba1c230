//! Reloading the configuration (SIGHUP) and checking one (`--check-config`): routes added
//! and removed, an upstream changed, a keep-alive connection moving to the new configuration
//! at its next request, a request in flight finishing on the old upstream, a configuration
//! that does not validate refused (the old one serves on, a log line says why, the metrics
//! count it), settings only a new process can change kept with a warning, the route
//! metrics following the new routes, and the old configuration's open files closed while a
//! request still holds it. The certificates swapped by a reload are in
//! `tls/reload.rs`; the binary upgrade is in upgrade.rs.
//!
//! Each uWSGI runs with an instance name, so every answer from an app carries `X-Instance`:
//! an answer without it is ringway's own.

use std::net::SocketAddr;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use ringway_tests::tls::{metrics, sample};
use ringway_tests::uwsgi::{INSTANCE_HEADER, UwsgiOptions};
use ringway_tests::wait::poll_until;
use ringway_tests::{App, Conn, Req, Response, Ringway, Uwsgi, paths, roundtrip};

const RELOADED: &str = "SIGHUP: configuration reloaded";
const REFUSED: &str = "SIGHUP: configuration refused, the old one stays";

fn start_two() -> (Uwsgi, Uwsgi) {
    let mut both = Uwsgi::start_all(vec![
        UwsgiOptions::named(App::Raw, "a"),
        UwsgiOptions::named(App::Raw, "b"),
    ]);
    let b = both.pop().expect("two uWSGIs");
    let a = both.pop().expect("two uWSGIs");
    (a, b)
}

/// A config with the group `app` on `uwsgi` and one route to it at `path`.
fn one_route(uwsgi: &Uwsgi, path: &str) -> String {
    format!(
        "[upstreams.app]\nservers = [\"{}\"]\n\n[[routes]]\npath = \"{path}\"\nupstream = \"app\"\n",
        uwsgi.upstream()
    )
}

/// (status, the uWSGI instance that answered: `None` for ringway's own answer).
fn get(addr: SocketAddr, path: &str) -> (u16, Option<String>) {
    let r = roundtrip(addr, &Req::get(path));
    (r.status, r.header(INSTANCE_HEADER))
}

fn served_by(r: &Response) -> (u16, Option<String>) {
    (r.status, r.header(INSTANCE_HEADER))
}

fn by(name: &str) -> (u16, Option<String>) {
    (200, Some(name.to_owned()))
}

/// A connection whose request (`/slow`, 1.5 s at the app) `ringway` is serving now, as its
/// metrics say (it runs with `--metrics`).
fn slow_request_served(ringway: &Ringway) -> Conn {
    let mut slow = Conn::open(ringway.addr());
    slow.send(&Req::get("/slow?ms=1500").to_bytes())
        .expect("send");
    let serving = poll_until(Duration::from_secs(10), || {
        sample(
            &metrics(ringway.metrics_addr()),
            "ringway_connections_by_state{state=\"writing\"}",
        ) >= 1.0
    });
    assert!(serving, "the slow request is being served");
    slow
}

#[test]
fn sighup_adds_and_removes_routes_and_moves_an_upstream() {
    let (a, b) = start_two();
    let ringway = Ringway::with_config(one_route(&a, "/environ"))
        .arg("--metrics", "127.0.0.1:0")
        .start();
    let addr = ringway.addr();
    assert_eq!(get(addr, "/environ"), by("a"));
    assert_eq!(get(addr, "/bytes/10").0, 404);
    // A keep-alive connection from before the reload.
    let mut kept = Conn::open(addr);
    kept.send(&Req::get("/environ").to_bytes()).expect("send");
    assert_eq!(served_by(&kept.read_response().expect("answer")), by("a"));

    // The route /environ removed, /bytes/ added, the group `app` moved to the other uWSGI.
    let line = ringway.reload(&one_route(&b, "/bytes/"));
    assert!(line.contains(RELOADED), "{line}");
    // The line names the servers now in use (they changed).
    assert!(
        line.contains(&b.upstream()) && !line.contains(&a.upstream()),
        "{line}"
    );
    assert_eq!(get(addr, "/bytes/10"), by("b"));
    let (status, instance) = get(addr, "/environ");
    assert_eq!((status, instance), (404, None), "the removed route is gone");
    // The connection from before takes the new configuration at its next request.
    kept.send(&Req::get("/bytes/10").to_bytes()).expect("send");
    assert_eq!(served_by(&kept.read_response().expect("answer")), by("b"));

    // The route label follows the new routes, the old route's count stays, the reload is
    // counted. A request is counted once its last byte is written: the test may read the
    // answer first.
    let count_in = |text: &str, route: &str| {
        sample(
            text,
            &format!("ringway_requests_total{{route=\"{route}\",code=\"200\"}}"),
        )
    };
    poll_until(Duration::from_secs(5), || {
        count_in(&metrics(ringway.metrics_addr()), "/bytes/") >= 2.0
    });
    let text = metrics(ringway.metrics_addr());
    let count = |route: &str| count_in(&text, route);
    assert_eq!(count("/environ"), 2.0, "{text}");
    assert_eq!(count("/bytes/"), 2.0, "{text}");
    assert_eq!(
        sample(&text, "ringway_config_reloads_total{result=\"ok\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "ringway_config_reloads_total{result=\"refused\"}"),
        0.0
    );
    assert_eq!(sample(&text, "ringway_config_last_reload_successful"), 1.0);
}

#[test]
fn a_configuration_that_does_not_validate_is_refused_and_the_old_one_serves() {
    let (a, b) = start_two();
    let good = one_route(&a, "/");
    let ringway = Ringway::with_config(good.clone())
        .arg("--metrics", "127.0.0.1:0")
        .start();
    let addr = ringway.addr();

    // A route to a group that does not exist (and b, which must not take effect).
    let bad = format!(
        "{}\n[[routes]]\npath = \"/environ\"\nupstream = \"nowhere\"\n",
        one_route(&b, "/")
    );
    let line = ringway.reload(&bad);
    assert!(line.contains(REFUSED), "{line}");
    assert!(
        line.contains("nowhere"),
        "the line names the problem: {line}"
    );
    assert_eq!(
        ringway.stderr().matches(REFUSED).count(),
        1,
        "one line:\n{}",
        ringway.stderr()
    );
    assert_eq!(get(addr, "/"), by("a"), "the old configuration serves");
    assert_eq!(get(addr, "/environ"), by("a"));
    let text = metrics(ringway.metrics_addr());
    assert_eq!(
        sample(&text, "ringway_config_reloads_total{result=\"refused\"}"),
        1.0
    );
    assert_eq!(sample(&text, "ringway_config_last_reload_successful"), 0.0);

    // Not TOML at all: refused too, on one line.
    let line = ringway.reload("[[routes]\npath = \n");
    assert!(line.contains(REFUSED), "{line}");
    assert_eq!(get(addr, "/"), by("a"));

    // Mended: the next reload takes.
    let line = ringway.reload(&one_route(&b, "/"));
    assert!(line.contains(RELOADED), "{line}");
    assert_eq!(get(addr, "/"), by("b"));
    let text = metrics(ringway.metrics_addr());
    assert_eq!(sample(&text, "ringway_config_last_reload_successful"), 1.0);
    assert_eq!(
        sample(&text, "ringway_config_reloads_total{result=\"refused\"}"),
        2.0
    );
}

#[test]
fn a_request_in_flight_across_a_reload_finishes_on_the_old_upstream() {
    let (a, b) = start_two();
    let ringway = Ringway::with_config(one_route(&a, "/"))
        .arg("--metrics", "127.0.0.1:0")
        .start();
    let addr = ringway.addr();
    // The request is being served (routed, then at the app) before the reload comes.
    let mut slow = slow_request_served(&ringway);
    sleep(Duration::from_millis(100));

    let line = ringway.reload(&one_route(&b, "/"));
    assert!(line.contains(RELOADED), "{line}");
    assert_eq!(
        get(addr, "/"),
        by("b"),
        "a new request uses the new upstream"
    );

    let r = slow.read_response().expect("the slow answer");
    assert_eq!(served_by(&r), by("a"), "{r:?}");
    assert_eq!(r.text(), "slept 1500 ms");
}

/// A reload that lowers `keepalive_timeout` holds the connections idle then to it, as nginx
/// closes its idle connections at a reload (found by review: they kept their old
/// deadline).
#[test]
fn a_reload_holds_idle_connections_to_the_new_keepalive_timeout() {
    let (a, _b) = start_two();
    let config =
        |timeout: &str| format!("keepalive_timeout = \"{timeout}\"\n{}", one_route(&a, "/"));
    let ringway = Ringway::with_config(config("75s")).start();
    let mut idle = Conn::open(ringway.addr());
    idle.send(&Req::get("/").to_bytes()).expect("send");
    let r = idle.read_response().expect("an answer");
    assert_eq!(served_by(&r), by("a"), "{r:?}");
    sleep(Duration::from_millis(300));
    let line = ringway.reload(&config("1s"));
    assert!(line.contains(RELOADED), "{line}");
    let reloaded = Instant::now();
    assert!(
        idle.closed_within(Duration::from_secs(10)),
        "the idle connection stayed open"
    );
    let took = reloaded.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "closed {took:?} after the reload, not within the new 1 s"
    );
}

/// A reload that turns `proxy_protocol` on closes the connections accepted without it
/// before their next request, the idle one at once and the busy one after its answer, as
/// their next request could only be dropped unanswered (found by review: it was read, then
/// dropped).
#[test]
fn a_reload_that_turns_proxy_protocol_on_closes_kept_connections_before_their_next_request() {
    let (a, _b) = start_two();
    let config = |on: bool| format!("proxy_protocol = {on}\n{}", one_route(&a, "/"));
    let ringway = Ringway::with_config(config(false))
        .arg("--metrics", "127.0.0.1:0")
        .start();
    let mut idle = Conn::open(ringway.addr());
    idle.send(&Req::get("/").to_bytes()).expect("send");
    let r = idle.read_response().expect("an answer");
    assert_eq!(served_by(&r), by("a"), "{r:?}");
    let mut busy = slow_request_served(&ringway);

    let line = ringway.reload(&config(true));
    assert!(line.contains(RELOADED), "{line}");
    assert!(
        idle.closed_within(Duration::from_secs(5)),
        "the idle connection stayed open for a request it could not be served"
    );
    let r = busy.read_response().expect("the slow answer");
    assert_eq!(served_by(&r), by("a"), "{r:?}");
    assert!(
        busy.closed_within(Duration::from_secs(5)),
        "the busy connection stayed open after its answer"
    );
}

/// A connection limit set by a reload counts the connections already open: past it, their
/// next request gets 503 and the connection closes, as nginx's `limit_conn`, which counts
/// each request, refuses it (found by review: a limit added during an attack left the open
/// connections uncounted, and the attacker a new quota on top).
#[test]
fn a_connection_limit_set_by_a_reload_counts_the_connections_open() {
    let (a, _b) = start_two();
    let ringway = Ringway::with_config(one_route(&a, "/")).start();
    let mut conns: Vec<Conn> = (0..5)
        .map(|_| {
            let mut conn = Conn::open(ringway.addr());
            conn.send(&Req::get("/").to_bytes()).expect("send");
            assert_eq!(conn.read_response().expect("an answer").status, 200);
            conn
        })
        .collect();
    let line = ringway.reload(&format!("limit_conn_per_ip = 2\n{}", one_route(&a, "/")));
    assert!(line.contains(RELOADED), "{line}");
    // The workers take the new configuration as they next run: a moment.
    sleep(Duration::from_millis(300));
    let statuses: Vec<u16> = conns
        .iter_mut()
        .map(|conn| {
            conn.send(&Req::get("/").to_bytes()).expect("send");
            conn.read_response().expect("an answer").status
        })
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 503).count(),
        3,
        "{statuses:?}"
    );
}

/// An error page is checked against the `max_buffer_memory` the process keeps, not the one
/// the file asks for: a page only the file's budget would carry is refused at the reload
/// (found by review: it was taken, and every such answer then went out without it).
#[test]
fn a_reload_checks_error_pages_against_the_kept_max_buffer_memory() {
    let a = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "a"));
    let pages = tempfile::tempdir().expect("tempdir");
    let page = pages.path().join("503.html");
    std::fs::write(&page, vec![b'x'; 700 * 1024]).expect("write the page");
    let ringway = Ringway::with_config(format!(
        "max_buffer_memory = \"512k\"\n{}",
        one_route(&a, "/")
    ))
    .start();
    let raised = format!(
        "max_buffer_memory = \"4m\"\nerror_pages = {{ 503 = \"{}\" }}\n{}",
        page.display(),
        one_route(&a, "/")
    );
    let line = ringway.reload(&raised);
    assert!(line.contains(REFUSED), "{line}");
    assert!(line.contains("error_pages.503"), "{line}");
    assert!(line.contains("only with a restart"), "{line}");
    assert_eq!(
        get(ringway.addr(), "/"),
        by("a"),
        "the old configuration serves"
    );
}

#[test]
fn settings_only_a_new_process_can_change_are_kept_with_a_warning() {
    let a = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "a"));
    let ringway = Ringway::with_config(one_route(&a, "/")).start();
    let changed = format!(
        "max_buffer_memory = \"96m\"\nmax_body_size = \"1k\"\n{}",
        one_route(&a, "/")
    );
    let line = ringway.reload(&changed);
    assert!(line.contains(RELOADED), "{line}");
    assert!(line.contains("upstreams=\"unchanged\""), "{line}");
    let log = ringway.stderr();
    let warning = log
        .lines()
        .find(|l| l.contains("max_buffer_memory changed but kept"))
        .unwrap_or_else(|| panic!("a warning names the setting:\n{log}"));
    assert!(warning.contains("Reload and upgrade"), "{warning}");
    assert!(
        warning.contains("only a new process can change them (start the new ringway"),
        "one sentence, with no runs of spaces: {warning}"
    );
    // The rest of the file took effect.
    let r = roundtrip(ringway.addr(), &Req::post("/", &[b'x'; 2048]));
    assert_eq!(r.status, 413, "{r:?}");
}

/// `ringway --check-config` with `args`: (exit code, stderr).
fn check_config(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(paths::ringway_bin())
        .arg("--check-config")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run ringway --check-config");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `ringway --check-config` as `nobody` (a service's user, where root may write anywhere),
/// for an upstream and `args`: (exit code, stderr).
fn check_config_as_nobody(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(paths::ringway_bin())
        .args([
            "--check-config",
            "--upstream",
            "unix:/x.sock",
            "--metrics",
            "off",
        ])
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run setpriv (util-linux)");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_exits_0_for_a_good_configuration_and_1_for_a_bad_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    // The listen address is taken: a check binds nothing, so it does not mind.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = taken.local_addr().expect("addr").to_string();
    let good = file(
        "good.toml",
        &format!("listen = \"{listen}\"\nupstream = [\"unix:/nonexistent.sock\"]\n"),
    );
    let (code, err) = check_config(&["--config", &good]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("ringway: configuration {good} is ok")),
        "{err}"
    );

    // A route to a group that does not exist.
    let bad = file(
        "bad.toml",
        "upstream = [\"unix:/x.sock\"]\n[[routes]]\npath = \"/\"\nupstream = \"nowhere\"\n",
    );
    let (code, err) = check_config(&["--config", &bad]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is not valid"), "{err}");
    assert!(err.contains("nowhere"), "{err}");

    // A file it names is missing: an error page, a certificate.
    let missing = dir.path().join("missing.html").display().to_string();
    let no_page = file(
        "no_page.toml",
        &format!("upstream = [\"unix:/x.sock\"]\nerror_pages = {{ 502 = \"{missing}\" }}\n"),
    );
    let (code, err) = check_config(&["--config", &no_page]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&missing), "{err}");
    let cert = dir.path().join("missing.pem").display().to_string();
    let (code, err) = check_config(&[
        "--upstream",
        "unix:/x.sock",
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &cert,
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&cert), "{err}");

    // A flag wins over the file, as at start.
    let (code, err) = check_config(&["--config", &good, "--workers", "0"]);
    assert_eq!(code, Some(1), "{err}");

    // An access log that does not exist yet is checked, not created (a check run as root
    // would leave a file the service's user cannot write); one in no directory is refused.
    let log = dir.path().join("access.log");
    let (code, err) = check_config(&[
        "--config",
        &good,
        "--access-log",
        &log.display().to_string(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!log.exists(), "the check created {}", log.display());
    let nowhere = dir
        .path()
        .join("no-such-dir/access.log")
        .display()
        .to_string();
    let (code, err) = check_config(&["--config", &good, "--access-log", &nowhere]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&nowhere), "{err}");

    // What a start refuses and a check once let through (so that `systemctl reload` said
    // yes to a reload the process then refused): a temp directory others may write to, and
    // an app program that is nowhere. A temp directory yet to be made is not made.
    let (code, err) = check_config(&["--config", &good, "--temp-dir", "/tmp"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("temp_dir") && err.contains("writable by other users"),
        "{err}"
    );
    let unmade = dir.path().join("spool");
    let unmade_arg = unmade.display().to_string();
    let (code, err) = check_config(&["--config", &good, "--temp-dir", &unmade_arg]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!unmade.exists(), "the check created {}", unmade.display());
    // One the service's user could not make (nobody may not write to /usr).
    let (code, err) = check_config_as_nobody(&["--temp-dir", "/usr/ringway-check-spool"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("ringway may not write to /usr"), "{err}");
    // An access log the service's user could not open, which root could (the unit test of
    // this check cannot see it, run as root).
    let (code, err) = check_config_as_nobody(&["--access-log", "/usr/ringway-check-access.log"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--access-log") && err.contains("ringway may not write to /usr"),
        "{err}"
    );
    assert!(!std::path::Path::new("/usr/ringway-check-access.log").exists());
    let orphan = dir.path().join("no-such-dir/spool").display().to_string();
    let (code, err) = check_config(&["--config", &good, "--temp-dir", &orphan]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot be created"), "{err}");
    for (program, says) in [
        ("/nonexistent/uwsgi", "is not an executable file"),
        ("no-such-program-ringway", "is not found in PATH"),
    ] {
        let app = file(
            "app.toml",
            &format!(
                "listen = \"{listen}\"\nupstream = [\"unix:/nonexistent.sock\"]\n\
                 [app]\ncommand = [\"{program}\", \"--ini\", \"app.ini\"]\n"
            ),
        );
        let (code, err) = check_config(&["--config", &app]);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("app.command") && err.contains(says), "{err}");
    }
    let app = file(
        "app.toml",
        &format!(
            "listen = \"{listen}\"\nupstream = [\"unix:/nonexistent.sock\"]\n\
             [app]\ncommand = [\"sh\", \"-c\", \"exit 0\"]\n"
        ),
    );
    let (code, err) = check_config(&["--config", &app]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_reload_changes_the_access_log_format_and_statuses_and_keeps_one_file_open() {
    let a = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "a"));
    let dir = tempfile::tempdir().expect("temp dir");
    let dir_path = dir.path().canonicalize().expect("canonical dir");
    let log = dir_path.join("access.log");
    let config = |format: &str, statuses: &str| {
        format!(
            "access_log = \"{}\"\naccess_log_format = \"{format}\"\n{statuses}\n{}",
            log.display(),
            one_route(&a, "/")
        )
    };
    let ringway = Ringway::with_config(config("combined", "")).start();
    assert_eq!(get(ringway.addr(), "/?first"), by("a"));
    let line = ringway.reload(&config("json", ""));
    assert!(line.contains(RELOADED), "{line}");
    assert_eq!(get(ringway.addr(), "/?second"), by("a"));
    // Lines reach the file within a second.
    let written = ringway_tests::wait::poll_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("second"))
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(written, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(!lines[0].starts_with('{'), "combined before: {text}");
    assert!(lines[1].starts_with('{'), "JSON after: {text}");
    // Only errors from the next reload on.
    let line = ringway.reload(&config("json", "access_log_statuses = [\"4xx\"]"));
    assert!(line.contains(RELOADED), "{line}");
    assert_eq!(get(ringway.addr(), "/?third"), by("a"));
    assert_eq!(get(ringway.addr(), "/status/404?fourth").0, 404);
    let written = ringway_tests::wait::poll_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("fourth"))
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(written && !text.contains("third"), "{text}");
    // The reload's check opened the file too: only the writer's stays open.
    let open = ringway.open_files_under(&dir_path);
    assert_eq!(open.len(), 1, "{open:?}");
}

#[test]
fn a_reload_closes_the_old_configurations_open_files_while_its_requests_finish() {
    let a = Uwsgi::start_with(UwsgiOptions::named(App::Raw, "a"));
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().canonicalize().expect("canonical dir");
    std::fs::write(root.join("a.css"), "body {}\n").expect("a.css");
    let config = format!(
        "{}\n[[routes]]\npath = \"/static/\"\nstatic = \"{}\"\n",
        one_route(&a, "/"),
        root.display()
    );
    let ringway = Ringway::with_config(config.clone()).start();
    let addr = ringway.addr();
    assert_eq!(get(addr, "/static/a.css").0, 200);
    assert_eq!(
        ringway.open_files_under(&root).len(),
        1,
        "a.css is kept open by the file cache"
    );
    // A request that holds the old configuration for seconds (as a WebSocket would hours).
    let mut slow = Conn::open(addr);
    slow.send(&Req::get("/slow?ms=6000").to_bytes())
        .expect("send");
    sleep(Duration::from_millis(300));
    let line = ringway.reload(&config);
    assert!(line.contains(RELOADED), "{line}");
    let mut open = Vec::new();
    let closed = ringway_tests::wait::poll_until(Duration::from_secs(3), || {
        open = ringway.open_files_under(&root);
        open.is_empty()
    });
    assert!(closed, "the old configuration's cache still holds {open:?}");
    let r = slow.read_response().expect("the slow answer");
    assert_eq!(served_by(&r), by("a"), "{r:?}");
    assert_eq!(get(addr, "/static/a.css").0, 200, "the new one serves it");
}
