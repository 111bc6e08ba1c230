//! `[app]`: ringway starts uWSGI itself (the suite's own uWSGI command line), waits for its
//! socket before it accepts, starts it again when it dies (with backoff, logged and counted),
//! stops it after its own drain, and never leaves it behind, not even when SIGKILLed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ringway_tests::client::Conn;
use ringway_tests::proc_limits::open_files;
use ringway_tests::ringway::Refusal;
use ringway_tests::uwsgi::{UwsgiCommand, UwsgiOptions, command_line};
use ringway_tests::wait::{poll_until, send_signal};
use ringway_tests::{App, Req, Ringway, roundtrip};
use tempfile::TempDir;

/// How long uWSGI may take to load an app (as the harness allows its own uWSGIs).
const APP_START: Duration = Duration::from_secs(30);
/// How long the processes of a stopped or orphaned app may take to be gone.
const GONE_WITHIN: Duration = Duration::from_secs(5);
/// The line ringway logs each time it starts the app, with its pid.
const STARTED: &str = "app started pid=";
/// The line ringway logs for each restart.
const RESTARTING: &str = "starting it again in ";
/// Logged when the app outlived `stop_timeout` after its stop signal.
const KILLED_AFTER_STOP_TIMEOUT: &str = "did not exit within app.stop_timeout";

/// The app's socket, in a temp dir of its own, and the uWSGI command that serves it.
struct Setup {
    _dir: TempDir,
    socket: PathBuf,
    uwsgi: UwsgiCommand,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("ringway-app-")
            .tempdir()
            .expect("temp dir");
        let socket = dir.path().join("app.sock");
        let uwsgi = command_line(&UwsgiOptions::new(App::Raw), &socket, None);
        Setup {
            _dir: dir,
            socket,
            uwsgi,
        }
    }

    fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// A config serving the app's socket, with `[app]` running `command` and `keys`.
    fn config(&self, command: &[String], keys: &str) -> String {
        let command: Vec<String> = command.iter().map(|a| toml_string(a)).collect();
        format!(
            "upstream = [{}]\n\n[app]\ncommand = [{}]\n{keys}\n",
            toml_string(&format!("unix:{}", self.socket.display())),
            command.join(", ")
        )
    }

    /// ringway with `[app]` running the suite's uWSGI, its metrics on (without eBPF).
    fn ringway(&self, command: &[String], keys: &str) -> ringway_tests::ringway::RingwayBuilder {
        let mut builder = Ringway::with_config(self.config(command, keys))
            .arg("--metrics", "127.0.0.1:0")
            .flag("--no-ebpf");
        for (key, value) in &self.uwsgi.env {
            builder = builder.env(key, value);
        }
        builder
    }

    fn start(&self, keys: &str) -> Ringway {
        self.ringway(&self.uwsgi.argv(), keys).start()
    }

    /// A Python program that listens on the app's socket and does nothing else, ignoring
    /// SIGINT (the default stop_signal) if `ignore_sigint`, else with Python's own handling.
    fn python_listener(&self, ignore_sigint: bool) -> Vec<String> {
        let ignore = if ignore_sigint {
            "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        } else {
            ""
        };
        let script = format!(
            "{ignore}import socket, time\n\
             s = socket.socket(socket.AF_UNIX)\n\
             s.bind({path:?})\n\
             s.listen()\n\
             time.sleep(600)\n",
            path = self.socket.display().to_string()
        );
        let python = ringway_tests::paths::venv().join("bin/python");
        vec![python.display().to_string(), "-c".to_owned(), script]
    }

    /// A shell command that runs uWSGI the first time and fails at once every time after.
    fn crashing_after_first_run(&self) -> Vec<String> {
        let mark = self.dir().join("started-once");
        let uwsgi: Vec<String> = self.uwsgi.argv().iter().map(|a| sh_quote(a)).collect();
        let script = format!(
            "if [ -e {mark} ]; then echo 'app: cannot start' >&2; exit 1; fi; touch {mark}; \
             exec {}",
            uwsgi.join(" "),
            mark = sh_quote(&mark.display().to_string()),
        );
        vec!["/bin/sh".into(), "-c".into(), script]
    }
}

fn toml_string(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The pid of the app ringway started last, from its log.
fn app_pid(ringway: &Ringway) -> Option<i32> {
    app_pid_in(&ringway.stderr())
}

/// The pid of the app last started, from ringway's log `log`.
fn app_pid_in(log: &str) -> Option<i32> {
    let line = log.lines().rev().find(|l| l.contains(STARTED))?;
    let at = line.find(STARTED)?;
    let digits: String = line[at + STARTED.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Waits for the app ringway starts next after `previous` (any app, for `None`).
fn next_app_pid(ringway: &Ringway, previous: Option<i32>) -> i32 {
    let mut pid = None;
    poll_until(APP_START, || {
        pid = app_pid(ringway).filter(|p| Some(*p) != previous);
        pid.is_some()
    });
    pid.unwrap_or_else(|| panic!("ringway started no app; stderr:\n{}", ringway.stderr()))
}

/// The processes of group `pgid` that are alive (zombies waiting for a reaper are not).
fn live_in_group(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after ')'.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.first() != Some(&"Z") && fields.get(2) == Some(&pgid.to_string().as_str())
        })
        .collect()
}

/// Waits until the group `pgid` holds uWSGI's master and its 2 workers (they are forked once
/// the app is loaded, a moment after the socket accepts).
fn master_and_workers(pgid: i32) -> bool {
    poll_until(APP_START, || live_in_group(pgid).len() == 3)
}

fn metric(ringway: &Ringway, name: &str) -> Option<f64> {
    let text = roundtrip(ringway.metrics_addr(), &Req::get("/metrics")).text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Each metric family's type, as the Prometheus client library's own parser reads `text`.
fn family_types(text: &str) -> serde_json::Value {
    let script = "import json, sys\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        print(json.dumps({f.name: f.type for f in text_string_to_metric_families(sys.stdin.read())}))\n";
    serde_json::from_slice(&ringway_tests::command::venv_python(script, text)).expect("json")
}

fn get_status(ringway: &Ringway, path: &str) -> u16 {
    roundtrip(ringway.addr(), &Req::get(path)).status
}

fn count(ringway: &Ringway, needle: &str) -> usize {
    ringway.stderr().matches(needle).count()
}

/// A restart in the same place: the socket file the last app left behind (stopped without
/// removing it, or killed) does not stand for the new app, which binds a new one there,
/// whose inode the file system may hand back (ext4 does): ringway counts the new one and
/// serves. (It waited for a change that never came, then gave up after `ready_timeout`.)
#[test]
fn a_restart_past_a_socket_file_left_behind_serves() {
    let setup = Setup::new();
    let mut first = setup.start("");
    assert_eq!(roundtrip(first.addr(), &Req::get("/")).status, 200);
    first.sigterm();
    assert!(
        first.wait_exit(Duration::from_secs(30)).is_some(),
        "stopped"
    );
    if !setup.socket.exists() {
        // An app that removes its socket on exit: leave one as a killed app would.
        drop(std::os::unix::net::UnixListener::bind(&setup.socket).expect("a stale socket"));
    }
    let second = setup
        .ringway(&setup.uwsgi.argv(), "ready_timeout = \"10s\"")
        .start();
    let r = roundtrip(second.addr(), &Req::get("/"));
    assert_eq!(r.status, 200, "{r:?}\n{}", second.stderr());
}

/// Another process takes the app's socket path and leaves it naming a socket nothing
/// listens on (a failed upgrade's new ringway, whose app replaced the file and then
/// stopped): ringway sees its app unreachable, kills it, and the app started again binds
/// the path: requests are served again within seconds. (They got 502 until a restart.)
#[test]
fn an_app_whose_socket_path_was_taken_and_left_dead_is_started_again() {
    let setup = Setup::new();
    let ringway = setup.start("");
    assert_eq!(roundtrip(ringway.addr(), &Req::get("/")).status, 200);
    let first = app_pid(&ringway);
    std::fs::remove_file(&setup.socket).expect("the app's socket file");
    drop(std::os::unix::net::UnixListener::bind(&setup.socket).expect("a dead socket"));
    assert!(
        ringway.wait_for_log("no longer reaches it", Duration::from_secs(10)),
        "{}",
        ringway.stderr()
    );
    let mut status = 0;
    let served = poll_until(Duration::from_secs(15), || {
        status = roundtrip(ringway.addr(), &Req::get("/")).status;
        status == 200
    });
    assert!(served, "still {status}:\n{}", ringway.stderr());
    assert_ne!(app_pid(&ringway), first, "a new app");
    assert_eq!(count(&ringway, RESTARTING), 1, "{}", ringway.stderr());
}

#[test]
fn the_first_request_after_start_is_served() {
    let setup = Setup::new();
    let ringway = setup.start("");
    // No wait, no retry: ringway said it listens only once the app's socket accepts.
    let r = roundtrip(ringway.addr(), &Req::get("/"));
    assert_eq!(r.status, 200, "{r:?}\nstderr:\n{}", ringway.stderr());
    let log = ringway.stderr();
    let started = log.find(STARTED).expect("the app's start is logged");
    let listening = log.find("listening on http://").expect("listening");
    assert!(started < listening, "app first, then accept:\n{log}");
    assert_eq!(metric(&ringway, "ringway_app_up"), Some(1.0));
    assert_eq!(metric(&ringway, "ringway_app_restarts_total"), Some(0.0));
    let types = family_types(&roundtrip(ringway.metrics_addr(), &Req::get("/metrics")).text());
    assert_eq!(types["ringway_app_up"], "gauge", "{types}");
    assert_eq!(types["ringway_app_restarts"], "counter", "{types}");
    let pid = app_pid(&ringway).expect("the app's pid");
    assert!(
        master_and_workers(pid),
        "uWSGI's master and 2 workers, in a group of their own: {:?}",
        live_in_group(pid)
    );
}

#[test]
fn a_killed_app_is_started_again_counted_and_serves_again() {
    let setup = Setup::new();
    let ringway = setup.start("");
    let first = next_app_pid(&ringway, None);
    assert!(master_and_workers(first), "{:?}", live_in_group(first));
    send_signal(first as u32, libc::SIGKILL);

    let second = next_app_pid(&ringway, Some(first));
    let served = poll_until(APP_START, || get_status(&ringway, "/") == 200);
    assert!(served, "served again; stderr:\n{}", ringway.stderr());
    assert_eq!(count(&ringway, RESTARTING), 1, "{}", ringway.stderr());
    assert!(
        ringway
            .stderr()
            .contains("the app exited (killed by SIGKILL)"),
        "{}",
        ringway.stderr()
    );
    assert_eq!(metric(&ringway, "ringway_app_restarts_total"), Some(1.0));
    assert_eq!(metric(&ringway, "ringway_app_up"), Some(1.0));
    // The old master's workers did not outlive it.
    assert!(
        poll_until(GONE_WITHIN, || live_in_group(first).is_empty()),
        "left of the first app: {:?}",
        live_in_group(first)
    );
    assert!(master_and_workers(second), "{:?}", live_in_group(second));
}

#[test]
fn with_restart_never_a_dead_app_stays_dead_and_ringway_serves_on() {
    let setup = Setup::new();
    let mut ringway = setup.start("restart = \"never\"");
    let pid = next_app_pid(&ringway, None);
    send_signal(pid as u32, libc::SIGKILL);
    assert!(
        ringway.wait_for_log("not started again", GONE_WITHIN),
        "{}",
        ringway.stderr()
    );
    assert!(
        poll_until(GONE_WITHIN, || live_in_group(pid).is_empty()),
        "the dead app's workers are gone"
    );
    assert_eq!(get_status(&ringway, "/"), 502);
    assert_eq!(metric(&ringway, "ringway_app_up"), Some(0.0));
    assert_eq!(metric(&ringway, "ringway_app_restarts_total"), Some(0.0));
    assert_eq!(count(&ringway, STARTED), 1, "started once only");
    assert!(ringway.is_running());
}

#[test]
fn an_app_that_fails_at_once_is_restarted_with_growing_waits() {
    let setup = Setup::new();
    let command = setup.crashing_after_first_run();
    let ringway = setup.ringway(&command, "").start();
    let first = next_app_pid(&ringway, None);
    send_signal(first as u32, libc::SIGKILL);

    // Each failed start is logged once, with the wait before the next; the waits double.
    let three = poll_until(APP_START, || count(&ringway, RESTARTING) >= 3);
    assert!(three, "three restarts; stderr:\n{}", ringway.stderr());
    let log = ringway.stderr();
    let waits: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split(RESTARTING).nth(1))
        .map(str::trim)
        .collect();
    assert_eq!(waits[..3], ["500ms", "1.0s", "2.0s"], "{log}");
    assert!(log.contains("the app exited (exit status 1)"), "{log}");
    // Counted once per start after a death: the last may still be in its wait.
    let logged_before = count(&ringway, RESTARTING) as f64;
    let restarts = metric(&ringway, "ringway_app_restarts_total").expect("restarts");
    let logged_after = count(&ringway, RESTARTING) as f64;
    assert!(
        (logged_before - 1.0..=logged_after).contains(&restarts),
        "{restarts} restarts counted, {logged_before}..{logged_after} logged:\n{}",
        ringway.stderr()
    );
}

/// A group beside the app's, on a socket another service already listens on (a uWSGI of
/// its own): it accepts before ringway starts, and counts at once; only a socket an old
/// ringway's app listens on waits to be replaced (found by review: every start waited for
/// this one to be replaced, and failed at ready_timeout).
#[test]
fn a_socket_another_service_already_listens_on_does_not_hold_up_the_start() {
    let setup = Setup::new();
    let other = setup.dir().join("other.sock");
    let _other = std::os::unix::net::UnixListener::bind(&other).expect("bind");
    let keys = format!(
        "ready_timeout = \"5s\"\n\
         [upstreams.other]\nservers = [{}]\n\
         [[routes]]\npath = \"/other/\"\nupstream = \"other\"\n",
        toml_string(&format!("unix:{}", other.display()))
    );
    let ringway = setup.ringway(&setup.uwsgi.argv(), &keys).start();
    let r = roundtrip(ringway.addr(), &Req::get("/"));
    assert_eq!(r.status, 200, "{r:?}\n{}", ringway.stderr());
}

/// A second ringway started with the same `[app]` (a binary upgrade) while the first one's
/// app still listens: the old app's socket does not count for the new one, which says it
/// listens only once its own app has bound the path anew (here 2 s after its start), and
/// then serves with the old process gone.
#[test]
fn a_new_process_waits_for_its_own_app_not_the_old_one_s() {
    let setup = Setup::new();
    let mark = setup.dir().join("first-started");
    let uwsgi: Vec<String> = setup.uwsgi.argv().iter().map(|a| sh_quote(a)).collect();
    let script = format!(
        "if [ -e {mark} ]; then sleep 2; fi; touch {mark}; exec {}",
        uwsgi.join(" "),
        mark = sh_quote(&mark.display().to_string()),
    );
    let command = vec!["/bin/sh".into(), "-c".into(), script];
    let mut old = setup.ringway(&command, "").start();
    let asked = std::time::Instant::now();
    let new = setup.ringway(&command, "").start();
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "listening {waited:?} after the start, before its own app could:\n{}",
        new.stderr()
    );
    old.sigterm();
    assert!(
        old.wait_exit(Duration::from_secs(20)).is_some(),
        "the old one stops"
    );
    let r = roundtrip(new.addr(), &Req::get("/"));
    assert_eq!(r.status, 200, "{r:?}\n{}", new.stderr());
}

#[test]
fn an_app_that_never_accepts_stops_ringway_at_ready_timeout() {
    let setup = Setup::new();
    let command = vec!["/bin/sh".to_owned(), "-c".to_owned(), "exit 3".to_owned()];
    let Refusal { status, stderr, .. } = setup
        .ringway(&command, "ready_timeout = \"3s\"")
        .start_refused();
    assert!(!status.success(), "{status}\n{stderr}");
    assert!(
        stderr.contains("app.ready_timeout") && stderr.contains("did not accept connections"),
        "{stderr}"
    );
    // The backoff bounds the restarts (and their lines): 0.5 s, then 1 s, then 2 s.
    let restarts = stderr.matches(RESTARTING).count();
    assert!(
        (1..=3).contains(&restarts),
        "{restarts} restarts:\n{stderr}"
    );
    assert!(
        stderr.contains("the app exited (exit status 3)"),
        "{stderr}"
    );
}

#[test]
fn a_missing_program_is_refused_at_start() {
    let setup = Setup::new();
    let command = vec![setup.dir().join("no-such-uwsgi").display().to_string()];
    let Refusal { status, stderr, .. } = setup.ringway(&command, "").start_refused();
    assert!(!status.success());
    assert!(
        stderr.contains("app.command: cannot start") && stderr.contains("no-such-uwsgi"),
        "{stderr}"
    );
}

#[test]
fn sigterm_stops_the_app_after_the_drain() {
    let setup = Setup::new();
    let mut ringway = setup.start("");
    let pid = next_app_pid(&ringway, None);

    let mut conn = Conn::open(ringway.addr());
    conn.send(&Req::get("/slow?ms=1500").to_bytes())
        .expect("send");
    // Accepted (its head is in the socket): the drain serves it, and it reaches the app.
    assert!(
        poll_until(APP_START, || metric(&ringway, "ringway_connections_active")
            .is_some_and(|n| n >= 1.0)),
        "ringway never accepted the connection"
    );
    ringway.sigterm();

    // Had the app been stopped before the drain, this would be a 502.
    let r = conn
        .read_response()
        .expect("the request in flight completes");
    assert_eq!((r.status, r.text().as_str()), (200, "slept 1500 ms"));
    let status = ringway.wait_exit(Duration::from_secs(20));
    let log = ringway.stderr();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
    let draining = log.find("stopping: no new connections").expect("drain");
    let stopping_app = log
        .find("stopping the app: SIGINT sent to its process group")
        .expect("the app is stopped with its stop_signal");
    assert!(draining < stopping_app, "{log}");
    assert!(
        poll_until(GONE_WITHIN, || live_in_group(pid).is_empty()),
        "left of the app: {:?}",
        live_in_group(pid)
    );
    assert!(
        !log.contains(RESTARTING),
        "a stopped app is not restarted:\n{log}"
    );
    assert!(
        !log.contains(KILLED_AFTER_STOP_TIMEOUT),
        "the app stopped on its stop_signal:\n{log}"
    );
}

#[test]
fn sigkill_to_ringway_leaves_no_process_of_the_app() {
    let setup = Setup::new();
    let mut ringway = setup.start("");
    let pid = next_app_pid(&ringway, None);
    assert!(master_and_workers(pid), "{:?}", live_in_group(pid));

    ringway.signal(libc::SIGKILL);
    assert!(ringway.wait_exit(GONE_WITHIN).is_some(), "ringway died");
    assert!(
        poll_until(GONE_WITHIN, || live_in_group(pid).is_empty()),
        "left of the app after ringway's SIGKILL: {:?}",
        live_in_group(pid)
    );
    assert!(
        std::os::unix::net::UnixStream::connect(&setup.socket).is_err(),
        "nothing accepts on the app's socket"
    );
}

#[test]
fn a_stop_signal_while_the_app_starts_stops_both_without_waiting_for_ready_timeout() {
    let setup = Setup::new();
    // The app never opens its socket, and asks ringway (its parent) to stop.
    let command = vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        "kill -TERM $PPID; exec sleep 600".to_owned(),
    ];
    // It exits without ever listening: nothing bound, nothing taken from an old process.
    let exited = setup
        .ringway(&command, "ready_timeout = \"1h\"")
        .start_refused();
    let log = exited.stderr;
    let pid = app_pid_in(&log).expect("the app's pid");
    assert!(exited.status.success(), "{:?}\n{log}", exited.status);
    assert!(
        log.contains("a stop signal arrived while waiting for the app"),
        "{log}"
    );
    assert!(!log.contains("listening on"), "{log}");
    // A shell's `sleep` does not clear its signal mask: it ends on SIGINT only if ringway
    // did not pass its blocked signals on.
    assert!(
        !log.contains(KILLED_AFTER_STOP_TIMEOUT),
        "the app stopped on its stop_signal:\n{log}"
    );
    assert!(
        poll_until(GONE_WITHIN, || live_in_group(pid).is_empty()),
        "left of the app: {:?}",
        live_in_group(pid)
    );
}

#[test]
fn an_app_that_ignores_stop_signal_is_killed_after_stop_timeout() {
    let setup = Setup::new();
    // Opens the app's socket, and ignores SIGINT (the default stop_signal).
    let command = setup.python_listener(true);
    let mut ringway = setup.ringway(&command, "stop_timeout = \"1s\"").start();
    let pid = next_app_pid(&ringway, None);
    ringway.sigterm();
    let status = ringway.wait_exit(Duration::from_secs(20));
    let log = ringway.stderr();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
    assert!(
        log.contains(
            "the app did not exit within app.stop_timeout (1s); killing its process group"
        ),
        "{log}"
    );
    assert!(log.contains("the app exited (killed by SIGKILL)"), "{log}");
    assert!(
        poll_until(GONE_WITHIN, || live_in_group(pid).is_empty()),
        "left of the app: {:?}",
        live_in_group(pid)
    );
}

/// A stop signal sent while the app is being stopped kills its group at once, as a second
/// one cuts ringway's drain short (found by review: it waited out `stop_timeout`).
#[test]
fn another_stop_signal_while_the_app_stops_kills_it_at_once() {
    let setup = Setup::new();
    let command = setup.python_listener(true);
    let mut ringway = setup.ringway(&command, "stop_timeout = \"60s\"").start();
    let pid = next_app_pid(&ringway, None);
    ringway.sigterm();
    assert!(
        ringway.wait_for_log("stopping the app", Duration::from_secs(20)),
        "{}",
        ringway.stderr()
    );
    let asked = std::time::Instant::now();
    ringway.sigterm();
    let status = ringway.wait_exit(Duration::from_secs(20));
    let log = ringway.stderr();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}\n{log}",
        asked.elapsed()
    );
    assert!(
        log.contains("another stop signal: killing the app's process group"),
        "{log}"
    );
    assert!(
        poll_until(GONE_WITHIN, || live_in_group(pid).is_empty()),
        "left of the app: {:?}",
        live_in_group(pid)
    );
}

/// Started where SIGINT and SIGCHLD are ignored (`trap '' INT CHLD`, as `nohup` or a
/// script's `cmd &` leave some), ringway still sees its app exit, and the app gets SIGINT
/// (the default stop_signal) at its default: a Python app without a handler of its own stops
/// at once, where it ignored the signal and was killed at stop_timeout (found by review).
#[test]
fn signals_ignored_where_ringway_started_are_not_ignored_by_its_app() {
    let setup = Setup::new();
    let command = setup.python_listener(false);
    let mut ringway = setup
        .ringway(&command, "stop_timeout = \"10s\"")
        .under(&["/bin/sh", "-c", "trap '' INT CHLD; exec \"$@\"", "sh"])
        .start();
    let pid = next_app_pid(&ringway, None);
    ringway.sigterm();
    let status = ringway.wait_exit(Duration::from_secs(20));
    let log = ringway.stderr();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
    assert!(!log.contains(KILLED_AFTER_STOP_TIMEOUT), "{log}");
    assert!(log.contains("the app exited (killed by SIGINT)"), "{log}");
    assert!(
        poll_until(GONE_WITHIN, || live_in_group(pid).is_empty()),
        "left of the app: {:?}",
        live_in_group(pid)
    );
}

/// ringway raises its own soft limit of open files at start; the app gets the one ringway
/// was started with (a Python program may use `select()`, which breaks past fd 1023), and
/// its workers with it.
#[test]
fn the_app_gets_the_limit_of_open_files_ringway_was_started_with() {
    let setup = Setup::new();
    let ringway = setup
        .ringway(&setup.uwsgi.argv(), "")
        .under(&["prlimit", "--nofile=256:4096"])
        .start();
    assert_eq!(
        open_files(ringway.pid()),
        (4096, 4096),
        "ringway's own, raised"
    );
    let pid = app_pid(&ringway).expect("the app's pid");
    let app = u32::try_from(pid).expect("a pid");
    assert_eq!(open_files(app), (256, 4096), "the app's");
    // uWSGI's workers, forked by its master, once they are up.
    let served = roundtrip(ringway.addr(), &Req::get("/"));
    assert_eq!(served.status, 200, "{served:?}");
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let workers: Vec<u32> = children
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect();
    assert!(!workers.is_empty(), "uWSGI's workers");
    for worker in workers {
        assert_eq!(open_files(worker), (256, 4096), "worker {worker}");
    }
}

/// The children of `pid`, any thread's (the app's parent is ringway's supervisor thread,
/// orphans go to its main thread), zombies included.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Whether `pid` is a zombie, waiting for its parent to reap it.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(stat.rsplit_once(')')?.1.split_whitespace().next()? == "Z"))
        .unwrap_or(false)
}

/// As pid 1 (a container's entry point without an init), ringway reaps the orphans the
/// kernel hands it while the app runs: processes an app started and left behind would
/// otherwise stay zombies for as long as the app lives. The app's own death is still seen
/// as such: it is started again.
#[test]
fn as_pid_1_the_orphans_of_a_running_app_are_reaped() {
    let setup = Setup::new();
    let uwsgi: Vec<String> = setup.uwsgi.argv().iter().map(|a| sh_quote(a)).collect();
    // Three processes whose parent (a subshell) is gone at once: orphans, pid 1's when they
    // end a moment later.
    let script = format!(
        "for i in 1 2 3; do (sleep 0.3 &); done; exec {}",
        uwsgi.join(" ")
    );
    let command = vec!["/bin/sh".to_owned(), "-c".to_owned(), script];
    let ringway = setup
        .ringway(&command, "")
        .under(&["unshare", "--pid", "--fork", "--kill-child"])
        .start();
    let served = poll_until(APP_START, || get_status(&ringway, "/") == 200);
    assert!(served, "served; stderr:\n{}", ringway.stderr());
    let pid1 = match children_of(ringway.pid())[..] {
        [pid] => pid,
        ref other => panic!("unshare's child, ringway: {other:?}"),
    };
    std::thread::sleep(Duration::from_secs(1));
    let zombies = || -> Vec<u32> {
        children_of(pid1)
            .into_iter()
            .filter(|&c| is_zombie(c))
            .collect()
    };
    assert!(
        poll_until(GONE_WITHIN, || zombies().is_empty()),
        "zombies under ringway: {:?}\n{}",
        zombies(),
        ringway.stderr()
    );
    // The app (uWSGI's master: ringway's one child now) killed: started again.
    let [app] = children_of(pid1)[..] else {
        panic!("ringway's children: {:?}", children_of(pid1));
    };
    send_signal(app, libc::SIGKILL);
    let restarted = poll_until(APP_START, || {
        count(&ringway, RESTARTING) == 1 && get_status(&ringway, "/") == 200
    });
    assert!(restarted, "started again:\n{}", ringway.stderr());
    assert!(
        ringway
            .stderr()
            .contains("the app exited (killed by SIGKILL)"),
        "{}",
        ringway.stderr()
    );
    assert!(
        poll_until(GONE_WITHIN, || zombies().is_empty()),
        "zombies under ringway: {:?}",
        zombies()
    );
}
