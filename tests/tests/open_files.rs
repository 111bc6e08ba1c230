//! The limit of open files: ringway raises its soft limit to the hard one at start (as
//! nginx's `worker_rlimit_nofile` sets it), says so, and warns when `max_connections` lies
//! above it. Run under `prlimit`, which starts it with a low soft limit. A file it cannot
//! open, or an upstream socket, for want of a descriptor is a 500, as from nginx. And the
//! limit of tasks (a pids cgroup, as systemd's `TasksMax` or a container's `pids.max`):
//! with no thread to be had for a file's open, the request is a 500, not a dropped
//! connection, and the files are served again once threads can be started.

use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use ringway_tests::proc_limits::open_files;
use ringway_tests::ringway::RingwayBuilder;
use ringway_tests::wait::poll_until;
use ringway_tests::{App, Conn, Req, Response, Ringway, Uwsgi};

#[test]
fn the_soft_limit_is_raised_to_the_hard_one_and_a_max_connections_above_it_is_warned_of() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi)
        .under(&["prlimit", "--nofile=256:4096"])
        .arg("--max-connections", "10000")
        .start();
    assert_eq!(open_files(ringway.pid()), (4096, 4096));
    let log = ringway.stderr();
    assert!(
        log.contains("open files: soft limit raised from 256 to 4096 (the hard limit)"),
        "{log}"
    );
    assert!(
        log.contains("max_connections = 10000 is above the limit of open files (4096)"),
        "{log}"
    );
    let at_the_limit = Ringway::with(&uwsgi)
        .under(&["prlimit", "--nofile=4096:4096"])
        .arg("--max-connections", "4096")
        .start();
    assert_eq!(open_files(at_the_limit.pid()), (4096, 4096));
    let log = at_the_limit.stderr();
    assert!(
        !log.contains("open files"),
        "nothing raised, nothing to warn of:\n{log}"
    );
}

/// Open files a [`limited`] ringway may hold.
const LIMIT: usize = 64;

/// ringway from `builder`, one worker, at most [`LIMIT`] open files.
fn limited(builder: RingwayBuilder) -> Ringway {
    builder
        .workers(1)
        .flag("--no-ebpf")
        .under(&["prlimit", &format!("--nofile={LIMIT}:{LIMIT}")])
        .start()
}

/// `path` asked of `ringway` on a connection opened before others took every descriptor
/// left (the rest wait, unaccepted, in the backlog), then, once those closed, on fresh
/// connections until one is answered 200 (within 10 s): the first answer and the last.
/// ringway's main thread opens a file for a moment now and then (`/proc/self/smaps`, at
/// start and when quiet): asked just as it closed it, a request could find a descriptor
/// free before a waiting filler took it (a flake under load), so the table must look full
/// three times, 100 ms apart, and a request that still found one is asked again.
fn asked_out_of_descriptors(ringway: &Ringway, path: &str) -> (Response, Option<Response>) {
    let addr = ringway.addr();
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", ringway.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let get = |conn: &mut Conn| {
        conn.send(&Req::get(path).to_bytes()).expect("send");
        conn.read_response().expect("an answer")
    };
    let mut conn = Conn::open(addr);
    let fillers: Vec<TcpStream> = (0..LIMIT)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    let stays_full = || {
        (0..3).all(|_| {
            std::thread::sleep(Duration::from_millis(100));
            fds() >= LIMIT
        })
    };
    let mut out = None;
    for _ in 0..5 {
        let full = poll_until(Duration::from_secs(5), stays_full);
        assert!(full, "ringway holds {} descriptors of {LIMIT}", fds());
        let got = get(&mut conn);
        let found_one = got.status == 200;
        out = Some(got);
        if !found_one {
            break;
        }
    }
    let out = out.expect("asked at least once");
    drop(fillers);
    let mut last = None;
    poll_until(Duration::from_secs(10), || {
        let got = get(&mut Conn::open(addr));
        let served = got.status == 200;
        last = Some(got);
        served
    });
    (out, last)
}

/// A file ringway cannot open for want of a descriptor is answered 500, as nginx answers
/// it, not 404 (a CDN could keep a 404), and is not remembered: once descriptors are free
/// again, the same file is served.
#[test]
fn a_file_not_opened_for_want_of_descriptors_is_a_500_and_not_remembered() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("a.txt"), b"hello").expect("write");
    let ringway = limited(Ringway::with_config(format!(
        "[[routes]]\npath = \"/s/\"\nstatic = {:?}\n",
        dir.path().display().to_string()
    )));
    let (out, then) = asked_out_of_descriptors(&ringway, "/s/a.txt");
    assert_eq!(out.status, 500, "{out:?}");
    assert!(
        then.as_ref()
            .is_some_and(|r| r.status == 200 && r.body == b"hello"),
        "served once descriptors are free: {then:?}"
    );
    assert!(
        ringway.wait_for_log("opening a static file failed", Duration::from_secs(5)),
        "{}",
        ringway.stderr()
    );
}

/// A file served before the descriptors ran out goes on being served from the descriptor
/// ringway holds (a small one from memory, a large one read through it), as nginx's open
/// file cache serves what it holds, where a fresh open would fail (found by review: a
/// connection flood made every cached file a 500 a second after it was opened).
#[test]
fn a_file_opened_before_the_descriptors_ran_out_is_still_served() {
    let dir = tempfile::tempdir().expect("temp dir");
    let large = ringway_tests::pattern(256 * 1024);
    std::fs::write(dir.path().join("a.txt"), b"hello").expect("write");
    std::fs::write(dir.path().join("large.bin"), &large).expect("write");
    let ringway = limited(Ringway::with_config(format!(
        "[[routes]]\npath = \"/s/\"\nstatic = {:?}\n",
        dir.path().display().to_string()
    )));
    for path in ["/s/a.txt", "/s/large.bin"] {
        let r = ringway_tests::roundtrip(ringway.addr(), &Req::get(path));
        assert_eq!(r.status, 200, "{path} before: {r:?}");
    }
    // Past the second for which an entry is trusted without a look: each is opened again.
    std::thread::sleep(Duration::from_millis(1100));
    for (path, body) in [("/s/a.txt", &b"hello"[..]), ("/s/large.bin", &large)] {
        let (out, _) = asked_out_of_descriptors(&ringway, path);
        assert_eq!(
            (out.status, out.body.len()),
            (200, body.len()),
            "{path}: {out:?}"
        );
        assert!(out.body == body, "{path}: its bytes");
    }
    assert!(
        ringway.wait_for_log("opening a static file failed", Duration::from_secs(5)),
        "the failed opens are logged: {}",
        ringway.stderr()
    );
}

/// A request ringway cannot open an upstream socket for, out of descriptors itself, is
/// answered 500 as nginx answers it when `socket()` fails, and the server is not blamed: no
/// 502, no failure counted against it, no "refused"; once descriptors are free again, the
/// next request goes through.
#[test]
fn no_descriptor_for_an_upstream_socket_is_a_500_that_blames_no_server() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = limited(Ringway::with(&uwsgi));
    let (out, then) = asked_out_of_descriptors(&ringway, "/bytes/5");
    assert_eq!(out.status, 500, "{out:?}");
    assert!(
        then.as_ref().is_some_and(|r| r.status == 200),
        "served once descriptors are free: {then:?}"
    );
    assert!(
        ringway.wait_for_log("no socket for the upstream", Duration::from_secs(5)),
        "{}",
        ringway.stderr()
    );
    let log = ringway.stderr();
    assert!(
        !log.contains("out of turn") && !log.contains("refused"),
        "the server was blamed:\n{log}"
    );
}

/// A pids cgroup (v1, as this machine mounts it) holding one process, taken apart when
/// dropped (the process moved back to the root first).
struct PidsCgroup {
    dir: std::path::PathBuf,
    pid: u32,
}

const PIDS_ROOT: &str = "/sys/fs/cgroup/pids";

impl PidsCgroup {
    fn holding(pid: u32) -> PidsCgroup {
        let dir = std::path::Path::new(PIDS_ROOT).join(format!("ringway-test-{pid}"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the test needs the pids cgroup, as root)",
                dir.display()
            )
        });
        std::fs::write(dir.join("cgroup.procs"), pid.to_string()).expect("move ringway in");
        PidsCgroup { dir, pid }
    }

    fn tasks(&self) -> String {
        std::fs::read_to_string(self.dir.join("pids.current")).unwrap_or_default()
    }

    fn set_max(&self, max: &str) {
        std::fs::write(self.dir.join("pids.max"), max).expect("set pids.max");
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(
            Path::new(PIDS_ROOT).join("cgroup.procs"),
            self.pid.to_string(),
        );
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// With no thread to be had (its tasks at the cgroup's limit: tokio's blocking pool, which
/// opens the files, has none yet and can start none), each request for a file is answered
/// 500 and logged once or so, where tokio's panic dropped the connection; and the places
/// among the worker's opens those requests took are given back, so that the files are
/// served as soon as threads can be started again (found by review: after 16 such requests
/// every later one waited for ever).
#[test]
fn with_no_thread_to_be_had_a_file_is_a_500_and_files_are_served_once_there_are() {
    let dir = tempfile::tempdir().expect("temp dir");
    for i in 0..20 {
        std::fs::write(dir.path().join(format!("f{i}.txt")), format!("file {i}")).expect("write");
    }
    let ringway = Ringway::with_config(format!(
        "[[routes]]\npath = \"/s/\"\nstatic = {:?}\n",
        dir.path().display().to_string()
    ))
    .workers(1)
    .flag("--no-ebpf")
    .start();
    let cgroup = PidsCgroup::holding(ringway.pid());
    let tasks = cgroup.tasks();
    cgroup.set_max(tasks.trim());
    for i in 0..20 {
        let mut conn = Conn::open(ringway.addr());
        conn.send(&Req::get(&format!("/s/f{i}.txt")).to_bytes())
            .expect("send");
        let r = conn.read_response().unwrap_or_else(|e| {
            panic!(
                "f{i}: no answer ({e}) with {tasks} tasks at most:\n{}",
                ringway.stderr()
            )
        });
        assert_eq!(r.status, 500, "f{i}: {r:?}");
    }
    assert!(
        ringway.wait_for_log("no thread could be started", Duration::from_secs(5)),
        "{}",
        ringway.stderr()
    );
    let panics = ringway.stderr().matches("panicked").count();
    assert!(panics <= 6, "panic messages are rate-limited: {panics}");
    cgroup.set_max("max");
    for i in [0, 19] {
        let mut conn = Conn::open(ringway.addr());
        conn.send(&Req::get(&format!("/s/f{i}.txt")).to_bytes())
            .expect("send");
        let r = conn
            .read_response()
            .expect("an answer once threads can be started");
        assert_eq!((r.status, r.text()), (200, format!("file {i}")), "{r:?}");
    }
}
