//! Buffering: ringway takes a whole answer from uWSGI (memory up to `--response-buffer-size`,
//! then an anonymous temp file in `--temp-dir`, up to `--max-temp-file-size`) so that a slow
//! client does not hold a Python worker; request bodies past `--client-body-buffer-size`
//! wait in a temp file too, and past `--max-buffer-memory` every new body and answer does
//! (but for the piece on its way to the client); temp files never have a name and never
//! outlive their request; `X-Accel-Buffering: no` from the app turns all of this off for one
//! answer.

use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringway_tests::checks::check_echo;
use ringway_tests::client::READ_TIMEOUT;
use ringway_tests::ringway::{OpenFile, RingwayBuilder};
use ringway_tests::uwsgi::UwsgiOptions;
use ringway_tests::wait::poll_until;
use ringway_tests::{
    App, Conn, Framing, Req, Response, Ringway, Uwsgi, pattern, roundtrip, sha256_hex,
};

/// A big answer: far more than ringway's memory buffer and the kernel's socket buffers
/// together, so whoever holds it while the client pauses shows.
const BIG_ANSWER: usize = 20 * 1024 * 1024;
/// A big upload: far more than `--client-body-buffer-size`.
const BIG_UPLOAD: usize = 5 * 1024 * 1024;
/// What a paused client has read before it stops.
const PAUSED_AFTER: usize = 64 * 1024;
/// How long a spill to disk, or the end of a temp file, may take to show (generous: a
/// debug build on a shared machine).
const SETTLE: Duration = Duration::from_secs(10);
/// How long to watch for a spill that must not happen. Spills that must happen show within
/// milliseconds of the data passing the buffer, so this is far more.
const NO_SPILL_WINDOW: Duration = Duration::from_secs(2);

/// The raw app with `workers` workers that wait as long as a test may for a reader: with
/// uWSGI's default 4 s socket timeout, a worker gives up on an answer nobody reads and
/// serves the next request anyway (the paused client then gets a truncated body), which
/// would blur what ringway does.
fn patient_uwsgi(workers: u32) -> Uwsgi {
    Uwsgi::start_with(UwsgiOptions {
        workers,
        socket_timeout: Some(60),
        ..UwsgiOptions::new(App::Raw)
    })
}

/// A test-owned `--temp-dir`, canonical (as /proc reports fd targets), removed on drop.
struct TempDir(tempfile::TempDir);

impl TempDir {
    fn new() -> TempDir {
        TempDir(
            tempfile::Builder::new()
                .prefix("ringway-temp-")
                .tempdir()
                .expect("temp dir"),
        )
    }

    fn path(&self) -> PathBuf {
        self.0.path().canonicalize().expect("canonical temp dir")
    }

    /// The names in the directory (O_TMPFILE files have none).
    fn names(&self) -> Vec<String> {
        std::fs::read_dir(self.path())
            .expect("read temp dir")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }
}

/// ringway in front of `uwsgi` spilling to `temp` past 64k of body, with the body limit
/// raised for the big uploads; the caller adds the response buffer size.
fn with_temp_dir(uwsgi: &Uwsgi, temp: &TempDir) -> RingwayBuilder {
    Ringway::with(uwsgi)
        .arg("--temp-dir", &temp.path().display().to_string())
        .arg("--client-body-buffer-size", "64k")
        .arg("--max-body-size", "16m")
}

/// Asks for `target`, reads the first [`PAUSED_AFTER`] bytes and stops reading. The receive
/// buffer is pinned small, so the kernel holds little of the rest: the answer has to wait
/// in ringway (or in uWSGI, holding its worker).
fn paused_download(addr: SocketAddr, target: &str) -> Conn {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    pin_receive_buffer(&stream, 64 * 1024);
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(READ_TIMEOUT))
        .expect("write timeout");
    let mut conn = Conn::new(stream);
    conn.send(&Req::get(target).to_bytes()).expect("send");
    conn.read_at_least(PAUSED_AFTER)
        .unwrap_or_else(|e| panic!("{target}: the first {PAUSED_AFTER} bytes: {e}"));
    conn
}

/// Sets SO_RCVBUF, which also stops the kernel from growing the buffer by itself.
fn pin_receive_buffer(stream: &TcpStream, bytes: libc::c_int) {
    // SAFETY: setsockopt on an open socket we own, with a pointer to a c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::from_ref(&bytes).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
}

/// Reads the rest of a paused download and asserts it is the pattern, byte for byte.
fn finish_download(mut conn: Conn, target: &str, n: usize) -> Response {
    let r = conn
        .read_response()
        .unwrap_or_else(|e| panic!("{target}: the rest of the answer: {e}"));
    assert_eq!(r.status, 200, "{target}: {r:?}");
    assert_eq!(
        (r.body.len(), sha256_hex(&r.body)),
        (n, sha256_hex(&pattern(n))),
        "{target}: the body differs from the pattern (length, sha256)"
    );
    r
}

/// Sends the head of `POST /echo` with a body of `length` and the first `sent` bytes of the
/// pattern, then pauses.
fn paused_upload(addr: SocketAddr, length: usize, sent: usize) -> Conn {
    let mut conn = Conn::open(addr);
    let head =
        format!("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: {length}\r\n\r\n");
    conn.send(head.as_bytes()).expect("head");
    conn.send(&pattern(length)[..sent])
        .expect("the first part of the body");
    conn
}

/// Sends the rest of a paused upload and checks the app got the whole body.
fn finish_upload(mut conn: Conn, length: usize, sent: usize) {
    let body = pattern(length);
    conn.send(&body[sent..]).expect("the rest of the body");
    let r = conn.read_response().expect("the answer to the upload");
    check_echo(
        &r,
        &body,
        &format!("a {length}-byte upload paused at {sent}"),
    );
}

/// Waits until ringway holds at least `count` files in `temp` (the answers or bodies that
/// spilled there) and checks that none of them has a name.
fn wait_for_temp_files(
    ringway: &Ringway,
    temp: &TempDir,
    count: usize,
    what: &str,
) -> Vec<OpenFile> {
    let dir = temp.path();
    let mut files = Vec::new();
    poll_until(SETTLE, || {
        files = ringway.open_files_under(&dir);
        files.len() >= count
    });
    assert!(
        files.len() >= count,
        "{what}: ringway holds {} files in --temp-dir {}, want {count} (the data is past its \
         memory buffer and must spill): {files:?}; stderr:\n{}",
        files.len(),
        dir.display(),
        ringway.stderr()
    );
    assert_eq!(
        temp.names(),
        Vec::<String>::new(),
        "{what}: temp files must have no name (O_TMPFILE); open: {files:?}"
    );
    files
}

/// Watches `temp` for [`NO_SPILL_WINDOW`] and asserts ringway holds no file there.
fn assert_never_spills(ringway: &Ringway, temp: &TempDir, what: &str) {
    let dir = temp.path();
    let mut files = Vec::new();
    poll_until(NO_SPILL_WINDOW, || {
        files = ringway.open_files_under(&dir);
        !files.is_empty()
    });
    assert!(files.is_empty(), "{what}: went to a temp file: {files:?}");
}

/// Waits until ringway holds no file in `temp`, and checks that nothing is named there.
fn assert_no_temp_left(ringway: &Ringway, temp: &TempDir, what: &str) {
    let dir = temp.path();
    let closed = poll_until(SETTLE, || ringway.open_files_under(&dir).is_empty());
    assert!(
        closed,
        "{what}: ringway still holds temp files {:?}",
        ringway.open_files_under(&dir)
    );
    assert_eq!(
        temp.names(),
        Vec::<String>::new(),
        "{what}: --temp-dir {} is not empty",
        dir.display()
    );
}

/// The point of buffering answers: with one uWSGI worker, a client that reads a 20 MiB
/// answer slowly must not keep that worker from serving others. ringway takes the whole
/// answer (memory, then temp file), uWSGI is done with it, the next request is served while
/// the slow client has still read almost nothing; then the slow client gets every byte.
#[test]
fn a_slow_reader_does_not_hold_the_only_python_worker() {
    let uwsgi = patient_uwsgi(1);
    let ringway = Ringway::start(&uwsgi); // default buffer sizes and temp dir
    let addr = ringway.addr();
    let target = format!("/bytes/{BIG_ANSWER}");
    let slow = paused_download(addr, &target);
    let read_so_far = slow.leftover().len();

    // The slow client reads nothing more until this answer is in (or the safety timeout).
    let mut other = Conn::open(addr);
    other.send(&Req::get("/").to_bytes()).expect("send");
    let r = other.read_response().unwrap_or_else(|e| {
        panic!(
            "GET / was not answered while a client of {target} paused after {read_so_far} \
             bytes: the only uWSGI worker is still busy writing that answer (ringway must \
             take it all into memory and its temp file): {e}"
        )
    });
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Hello, World!"),
        "{r:?}"
    );

    let r = finish_download(slow, &target, BIG_ANSWER);
    assert_eq!(r.framing, Framing::Length(BIG_ANSWER as u64), "{r:?}");
}

/// Without `--temp-dir`, spilled answers go to a private (0700) directory under /var/tmp.
#[test]
fn the_default_temp_dir_is_private_under_var_tmp() {
    let uwsgi = patient_uwsgi(2);
    let ringway = Ringway::start(&uwsgi);
    let target = format!("/bytes/{BIG_ANSWER}");
    let slow = paused_download(ringway.addr(), &target);
    let var_tmp = Path::new("/var/tmp");
    let mut spilled = Vec::new();
    poll_until(SETTLE, || {
        spilled = ringway.open_files_under(var_tmp);
        !spilled.is_empty()
    });
    assert!(
        !spilled.is_empty(),
        "a paused client of {target}: ringway holds no temp file under /var/tmp (it had to \
         spill past its 64k buffer); stderr:\n{}",
        ringway.stderr()
    );
    for file in &spilled {
        let dir = Path::new(&file.target)
            .parent()
            .expect("a temp file has a directory");
        assert_ne!(
            dir, var_tmp,
            "{file:?}: not straight in /var/tmp, in a private directory"
        );
        let mode = std::fs::metadata(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o700,
            "{}: the temp dir is private (mode {:o})",
            dir.display(),
            mode & 0o777
        );
    }
    finish_download(slow, &target, BIG_ANSWER);
}

/// Uploads far past the default `--client-body-buffer-size` (so through the temp file)
/// reach the app whole, with a length and chunked (which ringway turns into a length for
/// uWSGI).
#[test]
fn big_uploads_reach_the_app_whole() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::with(&uwsgi).arg("--max-body-size", "16m").start();
    let addr = ringway.addr();
    let body = pattern(BIG_UPLOAD);
    let r = roundtrip(addr, &Req::post("/echo", &body));
    check_echo(&r, &body, "5 MiB upload with Content-Length");
    let pieces: Vec<&[u8]> = body.chunks(100_003).collect();
    let r = roundtrip(addr, &Req::post("/echo", b"").chunked(&pieces));
    check_echo(&r, &body, "5 MiB chunked upload");
}

/// uWSGI is contacted only once the whole body is in, also when the body waits on disk:
/// with one worker, a 5 MiB upload stalled a fifth in does not keep others from being
/// served.
#[test]
fn a_big_upload_in_progress_does_not_hold_the_only_python_worker() {
    let uwsgi = patient_uwsgi(1);
    let ringway = Ringway::with(&uwsgi).arg("--max-body-size", "16m").start();
    let upload = paused_upload(ringway.addr(), BIG_UPLOAD, BIG_UPLOAD / 5);
    let mut other = Conn::open(ringway.addr());
    other.send(&Req::get("/").to_bytes()).expect("send");
    let r = other.read_response().unwrap_or_else(|e| {
        panic!(
            "GET / was not answered while an upload stalled a fifth in: the only uWSGI \
             worker is waiting for that body: {e}"
        )
    });
    assert_eq!(r.status, 200, "{r:?}");
    finish_upload(upload, BIG_UPLOAD, BIG_UPLOAD / 5);
}

/// Temp files are nameless and closed when their request ends, however it ends.
#[test]
fn temp_files_have_no_name_and_close_with_their_request() {
    let uwsgi = patient_uwsgi(2);
    let temp = TempDir::new();
    let ringway = with_temp_dir(&uwsgi, &temp)
        .arg("--response-buffer-size", "64k")
        .start();
    let addr = ringway.addr();
    let body = pattern(BIG_UPLOAD);

    let r = roundtrip(addr, &Req::post("/echo", &body));
    check_echo(&r, &body, "5 MiB upload");
    assert_no_temp_left(&ringway, &temp, "after a 5 MiB upload");
    let pieces: Vec<&[u8]> = body.chunks(100_003).collect();
    let r = roundtrip(addr, &Req::post("/echo", b"").chunked(&pieces));
    check_echo(&r, &body, "5 MiB chunked upload");
    assert_no_temp_left(&ringway, &temp, "after a 5 MiB chunked upload");

    let upload = paused_upload(addr, BIG_UPLOAD, BIG_UPLOAD / 5);
    wait_for_temp_files(&ringway, &temp, 1, "an upload stalled a fifth in");
    finish_upload(upload, BIG_UPLOAD, BIG_UPLOAD / 5);
    assert_no_temp_left(&ringway, &temp, "after a stalled upload completed");

    let target = format!("/bytes/{BIG_ANSWER}");
    let slow = paused_download(addr, &target);
    wait_for_temp_files(&ringway, &temp, 1, "a paused 20 MiB download");
    finish_download(slow, &target, BIG_ANSWER);
    assert_no_temp_left(&ringway, &temp, "after a 20 MiB download");

    let upload = paused_upload(addr, BIG_UPLOAD, BIG_UPLOAD / 5);
    wait_for_temp_files(&ringway, &temp, 1, "an upload stalled a fifth in");
    drop(upload);
    assert_no_temp_left(&ringway, &temp, "after a client went away mid-upload");

    let slow = paused_download(addr, &target);
    wait_for_temp_files(&ringway, &temp, 1, "a paused download");
    drop(slow);
    assert_no_temp_left(&ringway, &temp, "after a client went away mid-download");

    let r = roundtrip(addr, &Req::get("/"));
    assert_eq!(r.status, 200, "served after the aborts: {r:?}");
}

/// Nameless temp files die with the process: after SIGKILL in the middle of a spilled
/// download and a spilled upload, the temp dir is empty.
#[test]
fn a_sigkill_leaves_nothing_in_the_temp_dir() {
    let uwsgi = patient_uwsgi(2);
    let temp = TempDir::new();
    let mut ringway = with_temp_dir(&uwsgi, &temp)
        .arg("--response-buffer-size", "64k")
        .start();
    let addr = ringway.addr();
    let _download = paused_download(addr, &format!("/bytes/{BIG_ANSWER}"));
    let _upload = paused_upload(addr, BIG_UPLOAD, BIG_UPLOAD / 5);
    wait_for_temp_files(&ringway, &temp, 2, "a paused download and a stalled upload");
    ringway.signal(libc::SIGKILL);
    assert!(
        ringway.wait_exit(SETTLE).is_some(),
        "ringway did not die of SIGKILL"
    );
    assert_eq!(
        temp.names(),
        Vec::<String>::new(),
        "--temp-dir {} after SIGKILL",
        temp.path().display()
    );
}

/// Past `--max-temp-file-size`, ringway stops taking the answer in and relays the rest at
/// the client's pace: the temp file grows to the limit (give or take one read) and no
/// further, and the client still gets every byte.
#[test]
fn the_temp_file_stops_at_max_temp_file_size() {
    let uwsgi = patient_uwsgi(1);
    let temp = TempDir::new();
    let limit: u64 = 1024 * 1024;
    let ringway = with_temp_dir(&uwsgi, &temp)
        .arg("--response-buffer-size", "64k")
        .arg("--max-temp-file-size", "1m")
        .start();
    let target = format!("/bytes/{BIG_ANSWER}");
    let slow = paused_download(ringway.addr(), &target);
    let files = wait_for_temp_files(&ringway, &temp, 1, "a paused 20 MiB download");
    // Watch the file while uWSGI writes as fast as ringway takes: it fills up to the limit.
    let mut largest = 0;
    poll_until(NO_SPILL_WINDOW, || {
        largest = files.iter().map(OpenFile::size).fold(largest, u64::max);
        false
    });
    let one_read = 64 * 1024;
    assert!(
        largest <= limit + one_read,
        "the temp file grew to {largest} bytes past --max-temp-file-size {limit}"
    );
    assert!(
        largest >= limit / 2,
        "the temp file took only {largest} bytes of the {limit} allowed while the client \
         paused: ringway takes the answer in as fast as uWSGI writes it"
    );
    finish_download(slow, &target, BIG_ANSWER);
}

/// Past `--max-buffer-memory`, new bodies go to disk from their first byte: a small body
/// that stays in memory while the budget is free goes to a temp file once stalled uploads
/// hold the budget.
#[test]
fn past_the_memory_budget_new_bodies_go_to_disk_at_once() {
    let uwsgi = patient_uwsgi(2);
    let temp = TempDir::new();
    let ringway = with_temp_dir(&uwsgi, &temp)
        .arg("--max-buffer-memory", "512k")
        .start();
    let addr = ringway.addr();
    // Each under --client-body-buffer-size (64k): in memory while the budget allows.
    let (length, stalled_at) = (63_000, 62_000);

    let first = paused_upload(addr, length, stalled_at);
    assert_never_spills(&ringway, &temp, "a 63 kB body with the memory budget free");
    // Ten of them hold 620 kB: past the 512k budget whatever ringway counts.
    let mut stalled = vec![first];
    stalled.extend((1..10).map(|_| paused_upload(addr, length, stalled_at)));
    std::thread::sleep(NO_SPILL_WINDOW); // all of them are in
    let before = ringway.open_files_under(&temp.path()).len();
    let late = paused_upload(addr, length, 1000);
    wait_for_temp_files(
        &ringway,
        &temp,
        before + 1,
        "a new body with the memory budget used up (by stalled uploads)",
    );
    finish_upload(late, length, 1000);
    for upload in stalled {
        finish_upload(upload, length, stalled_at);
    }
    assert_no_temp_left(&ringway, &temp, "after the uploads");
}

/// Past `--max-buffer-memory`, new answers go to disk too: with a memory buffer that holds a
/// whole 8 MiB answer, a paused reader's answer stays in memory while the budget is free, and
/// a further paused reader's answer goes to a temp file once paused readers hold the budget;
/// every reader still gets every byte.
#[test]
fn past_the_memory_budget_new_answers_go_to_disk_at_once() {
    let uwsgi = patient_uwsgi(2);
    let temp = TempDir::new();
    let ringway = with_temp_dir(&uwsgi, &temp)
        .arg("--response-buffer-size", "16m")
        .arg("--max-buffer-memory", "12m")
        .start();
    let addr = ringway.addr();
    // Far more than the kernel takes of an answer to a paused client (the socket buffers
    // grow to tcp_wmem's maximum, 4 MiB by default), so most of it waits in ringway.
    let n = 8 * 1024 * 1024;
    let target = format!("/bytes/{n}");

    let first = paused_download(addr, &target);
    assert_never_spills(
        &ringway,
        &temp,
        "a paused 8 MiB answer with the memory budget free",
    );
    // Four of them hold at least 16 MiB: the budget is spent.
    let mut paused = vec![first];
    paused.extend((1..4).map(|_| paused_download(addr, &target)));
    std::thread::sleep(NO_SPILL_WINDOW); // all of them are in
    let before = ringway.open_files_under(&temp.path()).len();
    let late = paused_download(addr, &target);
    wait_for_temp_files(
        &ringway,
        &temp,
        before + 1,
        "a new answer with the memory budget used up (by paused readers)",
    );
    finish_download(late, &target, n);
    for conn in paused {
        finish_download(conn, &target, n);
    }
    assert_no_temp_left(&ringway, &temp, "after the downloads");
}

/// Buffering never delays a byte: a server-sent event stream whose app waits after the first
/// event reaches the client event by event. The app sends the second event only once the
/// test has seen the first one (it waits for a file the test then creates), so a first event
/// held back anywhere on the way shows as a read that times out, not as a slow one.
#[test]
fn a_paced_stream_reaches_the_client_piece_by_piece() {
    let uwsgi = Uwsgi::start(App::Raw);
    let ringway = Ringway::start(&uwsgi);
    let gate_dir = TempDir::new();
    let gate = gate_dir.path().join("second");
    let target = format!("/paced?gate={}", gate.display());
    let (first, second) = ("data: first\n\n", "data: second\n\n");

    let mut conn = Conn::open(ringway.addr());
    conn.send(&Req::get(&target).to_bytes()).expect("send");
    while !String::from_utf8_lossy(conn.leftover()).contains(first) {
        let have = conn.leftover().len();
        conn.read_at_least(have + 1).unwrap_or_else(|e| {
            panic!(
                "{target}: the first event did not arrive while the app waits for it to be \
                 seen (got {:?}): {e}",
                String::from_utf8_lossy(conn.leftover())
            )
        });
    }
    assert!(
        !String::from_utf8_lossy(conn.leftover()).contains("second"),
        "the second event came before the gate opened: {:?}",
        String::from_utf8_lossy(conn.leftover())
    );
    std::fs::write(&gate, b"").expect("open the gate");
    let r = conn.read_response().expect("the rest of the stream");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.framing, Framing::Chunked, "{r:?}");
    assert_eq!(r.text(), format!("{first}{second}"), "{r:?}");
}

/// `X-Accel-Buffering: no` is for ringway, not for the client.
#[test]
fn x_accel_buffering_is_not_passed_to_the_client() {
    for app in App::ALL {
        let uwsgi = Uwsgi::start(app);
        let ringway = Ringway::start(&uwsgi);
        let n = 1024 * 1024;
        let r = roundtrip(ringway.addr(), &Req::get(&format!("/unbuffered/{n}")));
        assert_eq!(r.status, 200, "{app:?}: {r:?}");
        assert_eq!(
            r.header("x-accel-buffering"),
            None,
            "{app:?}: the X-Accel-Buffering header reached the client: {r:?}"
        );
        assert!(r.body == pattern(n), "{app:?}: body differs: {r:?}");
    }
}

/// A paused client of `buffered` makes ringway spill to a temp file (the control, run first,
/// shows the watch would see a spill), and one of `unbuffered`, as large, never does; the
/// answer to `unbuffered`, read whole at last.
fn spills_but_not_unbuffered(
    ringway: &Ringway,
    temp: &TempDir,
    buffered: &str,
    unbuffered: &str,
) -> Response {
    let slow = paused_download(ringway.addr(), buffered);
    wait_for_temp_files(ringway, temp, 1, "control: a paused ordinary answer");
    finish_download(slow, buffered, BIG_ANSWER);
    assert_no_temp_left(ringway, temp, "after the control download");

    let slow = paused_download(ringway.addr(), unbuffered);
    assert_never_spills(ringway, temp, &format!("a paused client of {unbuffered}"));
    finish_download(slow, unbuffered, BIG_ANSWER)
}

/// An answer marked `X-Accel-Buffering: no` goes at the client's pace and never to disk,
/// where the same answer without the mark spills.
#[test]
fn an_unbuffered_answer_never_touches_the_disk() {
    let uwsgi = patient_uwsgi(2);
    let temp = TempDir::new();
    let ringway = with_temp_dir(&uwsgi, &temp)
        .arg("--response-buffer-size", "64k")
        .start();
    let r = spills_but_not_unbuffered(
        &ringway,
        &temp,
        &format!("/stream/{BIG_ANSWER}"),
        &format!("/unbuffered/{BIG_ANSWER}"),
    );
    assert_eq!(r.header("x-accel-buffering"), None, "{r:?}");
}

/// `buffering = false` on a route (nginx's `uwsgi_buffering off`): the same answer that
/// spills on another route goes at the client's pace there, never to disk.
#[test]
fn a_route_with_buffering_off_relays_at_the_clients_pace() {
    let uwsgi = patient_uwsgi(2);
    let temp = TempDir::new();
    let ringway = with_temp_dir(&uwsgi, &temp)
        .arg("--response-buffer-size", "64k")
        .config(
            "[[routes]]\npath = \"/stream/\"\nupstream = \"default\"\nbuffering = false\n\
             [[routes]]\npath = \"/\"\nupstream = \"default\"\n",
        )
        .start();
    spills_but_not_unbuffered(
        &ringway,
        &temp,
        &format!("/lazy/{BIG_ANSWER}"),
        &format!("/stream/{BIG_ANSWER}"),
    );
}
