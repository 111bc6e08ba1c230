//! The access log: one line per request, nginx's `combined` format or JSON, to a file,
//! stderr or a syslog server (a route's own place, if it names one), written without
//! blocking an event loop and without a syscall per request.
//!
//! ```text
//! worker ─ line ─▶ its own buffer ──(64 KiB full, or every second, or at exit)──┐
//!                      ▲                                                         ▼
//!                      └──────── spare buffers ◀──── writer thread ◀── bounded queue
//!                                                     (write(2), O_APPEND)
//! ```
//!
//! Each worker formats its lines into a buffer of its own ([`WorkerLog`]); a full buffer,
//! or whatever it holds once a second, goes to the one writer thread through a bounded
//! queue, and the writer gives emptied buffers back for reuse. When the queue is full (a
//! full disk, a stuck NFS mount) the worker drops the lines and counts them
//! (`ringway_access_log_dropped_total`): it never waits. SIGUSR1 asks for a reopen (after
//! logrotate renamed the file): every worker first flushes what it holds, so lines written
//! before the signal land in the old file, then the writer opens the path anew. At exit each
//! worker flushes once more and the writer finishes the queue before the process ends.

mod escape;
pub(crate) mod line;
mod syslog;
mod template;
mod time;
mod writer;

use std::cell::{Ref, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use tokio::sync::watch;

use crate::config::{AccessLogConfig, LogFormat, LogSink, MAIN_LOG};
use line::{combined, json};
use syslog::{SyslogHeader, SyslogSocket};
use time::LogClock;
use writer::{Output, Sink, Writer};

pub(crate) use line::{
    Entry, ReadHeaders, TcpFigures, UpstreamBytes, UpstreamFields, read_header_name,
};
pub use syslog::{SyslogAddr, SyslogServer, SyslogTarget};
pub(crate) use template::MAX_HEADERS;
pub use template::Template;
pub(crate) use time::load_time_zone;
pub(crate) use writer::{check_file, open_file};

/// A worker hands its buffer over once it holds this much.
const FLUSH_AT: usize = 64 * 1024;
/// A new buffer's capacity: a full one plus a long line, so that it seldom grows.
const BUF_CAPACITY: usize = FLUSH_AT + 16 * 1024;
/// A buffer grown past this by a huge line is freed rather than kept for reuse.
const MAX_KEPT_CAPACITY: usize = 4 * BUF_CAPACITY;
/// Batches waiting for the writer (2 MiB of lines, 64 KiB each at most): past that, lines
/// are dropped. More with more workers and places, whose once-a-second flushes come at the
/// same moment ([`queue_batches`]): a stuck file then holds up to that many.
const QUEUE_BATCHES: usize = 32;
/// A worker's lines go to the writer at least this often.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// At exit, how long a worker keeps offering its last lines to a writer whose queue is full.
const EXIT_FLUSH_LIMIT: Duration = Duration::from_secs(2);
/// Between two offers at exit.
const EXIT_RETRY: Duration = Duration::from_millis(10);

/// Lines on their way to the writer.
struct Batch {
    /// The worker that sent them (by index).
    worker: usize,
    /// Where they go (an index into the configuration's sinks).
    sink: usize,
    /// The lines (empty for a bare reopen acknowledgement).
    buf: Vec<u8>,
    /// How many lines `buf` holds.
    lines: u64,
    /// Set when the worker flushed because of a reopen: that reopen's generation.
    flushed_for: Option<u64>,
}

/// The queue's room: every worker may hand a batch for every place at once (a reopen, the
/// flushes each second), with [`QUEUE_BATCHES`] at least.
fn queue_batches(workers: usize, sinks: usize) -> usize {
    QUEUE_BATCHES.max(workers.saturating_mul(sinks))
}

/// What the workers and the writer share.
struct Shared {
    /// Emptied buffers, back from the writer (taken once per hand-off, a short lock).
    spares: Mutex<Vec<Vec<u8>>>,
    /// Lines dropped: queue full, or the write failed.
    dropped: Arc<AtomicU64>,
    /// Of `dropped`, the lines dropped because the queue was full (the writer says itself
    /// what its failed writes lost, with their error).
    behind: AtomicU64,
    /// How many buffers may wait in `spares`.
    max_spares: usize,
}

impl Shared {
    /// A buffer for new lines: a spare if there is one.
    fn spare(&self) -> Vec<u8> {
        let reused = self.spares.lock().ok().and_then(|mut s| s.pop());
        reused.unwrap_or_else(|| Vec::with_capacity(BUF_CAPACITY))
    }

    /// Keeps an emptied buffer for reuse (unless a huge line grew it, or enough are kept).
    fn give_back(&self, buf: Vec<u8>) {
        if buf.capacity() > MAX_KEPT_CAPACITY {
            return;
        }
        if let Ok(mut spares) = self.spares.lock()
            && spares.len() < self.max_spares
        {
            spares.push(buf);
        }
    }
}

/// The route labels and upstream addresses as lines name them, made once per configuration
/// generation (a request is logged with the names of the configuration it was served by).
pub(crate) struct LogNames {
    /// By route index.
    pub(crate) routes: Vec<String>,
    /// By group index, then server index.
    pub(crate) upstreams: Vec<Vec<String>>,
    /// `server_name`, `$host` for a request without a Host.
    pub(crate) server_name: Option<String>,
    /// The machine's name (`$hostname`) and the process's ID (`$pid`).
    pub(crate) hostname: String,
    pub(crate) pid: u32,
}

impl LogNames {
    /// The label of route `index`.
    pub(crate) fn route_label(&self, index: usize) -> Option<&str> {
        self.routes.get(index).map(String::as_str)
    }

    /// The address of server `server` of group `group`, as configured.
    pub(crate) fn upstream_addr(&self, group: usize, server: usize) -> Option<&str> {
        let servers = self.upstreams.get(group)?;
        servers.get(server).map(String::as_str)
    }
}

/// The access log, process side: its writer thread and the reopen trigger.
pub struct AccessLog {
    writer: JoinHandle<()>,
    reopen: Option<Reopener>,
    shared: Arc<Shared>,
    /// Of `shared.behind`, the lines said in the log already.
    reported: AtomicU64,
}

/// Asks the access log to reopen its file (SIGUSR1). Cheap to clone.
#[derive(Clone)]
pub struct Reopener(Arc<watch::Sender<u64>>);

impl Reopener {
    /// Starts a reopen: the workers flush, then the writer opens the path anew (and logs
    /// the result).
    pub fn reopen(&self) {
        self.0.send_modify(|generation| *generation += 1);
    }
}

impl AccessLog {
    /// Starts the writer thread; returns the log and one [`WorkerLog`] per worker.
    pub(crate) fn start(
        config: &AccessLogConfig,
        workers: usize,
    ) -> anyhow::Result<(AccessLog, Vec<WorkerLog>)> {
        time::load_time_zone();
        let sinks = config
            .sinks
            .iter()
            .map(|sink| {
                Ok(match sink {
                    LogSink::Off => Sink::Off,
                    LogSink::Stderr => Sink::Stderr,
                    LogSink::Syslog { addr, .. } => Sink::Syslog(SyslogSocket::new(addr.clone())),
                    LogSink::File { path, opened } => {
                        let file = match opened.take() {
                            Some(file) => file,
                            // The configuration's file went to an earlier start (tests start
                            // servers from one configuration): open it again.
                            None => open_file(path).with_context(|| {
                                format!("access_log: cannot open {} for appending", path.display())
                            })?,
                        };
                        Sink::File {
                            path: path.clone(),
                            file,
                        }
                    }
                })
            })
            .collect::<anyhow::Result<Vec<Sink>>>()?;
        let to_file = sinks.iter().any(|sink| matches!(sink, Sink::File { .. }));
        let hostname = hostname();
        let forms: Vec<LineForm> = config
            .sinks
            .iter()
            .map(|sink| match sink {
                LogSink::Off => LineForm::Off,
                LogSink::Stderr | LogSink::File { .. } => LineForm::Line,
                LogSink::Syslog { target, .. } => {
                    LineForm::Syslog(SyslogHeader::new(target, &hostname))
                }
            })
            .collect();
        let (queue, batches) = sync_channel(queue_batches(workers, forms.len()));
        let (reopen, reopen_rx) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            spares: Mutex::new(Vec::new()),
            dropped: Arc::new(AtomicU64::new(0)),
            behind: AtomicU64::new(0),
            max_spares: QUEUE_BATCHES + workers + 1,
        });
        let logs = (0..workers)
            .map(|index| WorkerLog {
                index,
                format: RefCell::new(config.format.clone()),
                pending: RefCell::new(forms.iter().map(|_| Pending::default()).collect()),
                forms: forms.clone(),
                clock: RefCell::new(LogClock::new()),
                queue: queue.clone(),
                shared: Arc::clone(&shared),
                reopen: reopen_rx.clone(),
            })
            .collect();
        drop(queue);
        let writer = Writer {
            queue: batches,
            outputs: sinks.into_iter().map(Output::new).collect(),
            shared: Arc::clone(&shared),
            reopen: reopen_rx,
            flushed: vec![0; workers],
            opened: 0,
            reopen_seen: None,
        };
        let writer = std::thread::Builder::new()
            .name("ringway-log".into())
            .spawn(move || writer.run())
            .context("starting the access log's writer thread")?;
        Ok((
            AccessLog {
                writer,
                reopen: to_file.then(|| Reopener(Arc::new(reopen))),
                shared: Arc::clone(&shared),
                reported: AtomicU64::new(0),
            },
            logs,
        ))
    }

    /// The reopen trigger, when lines go to a file (stderr has nothing to reopen).
    pub fn reopener(&self) -> Option<Reopener> {
        self.reopen.clone()
    }

    /// Lines dropped so far (for the metrics).
    pub fn dropped(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.shared.dropped)
    }

    /// Says how many lines the workers dropped since the last call because the writer was
    /// behind, if any (the server's main thread calls it once per log window).
    pub fn report_dropped(&self) {
        let behind = self.shared.behind.load(Relaxed);
        let new = behind.saturating_sub(self.reported.swap(behind, Relaxed));
        if new > 0 {
            tracing::warn!(
                dropped = new,
                "access log: the writer is behind (a slow or stuck file?): {new} lines dropped"
            );
        }
    }

    /// Waits up to `limit` for the writer to write what is queued and end; call once the
    /// workers are gone (their buffers flushed, their queue senders dropped).
    pub(crate) fn finish(self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.writer.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.writer.is_finished() {
            let _ = self.writer.join();
        } else {
            tracing::warn!(
                "the access log's writer did not finish within {limit:?} (a stuck file?): \
                 the lines still queued are lost"
            );
        }
    }
}

/// How a worker writes the lines of one place.
#[derive(Clone)]
enum LineForm {
    /// Not at all (the top level's, off while routes log to their own).
    Off,
    /// Each ending with a newline (a file, stderr).
    Line,
    /// Each framed, after its syslog header.
    Syslog(SyslogHeader),
}

/// The machine's name, as nginx's `$hostname` and syslog headers have it (lower case).
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The lines a worker holds, not yet handed to the writer.
#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    lines: u64,
}

/// One worker's side of the access log (in its `Worker`; never shared between threads).
pub(crate) struct WorkerLog {
    index: usize,
    format: RefCell<LogFormat>,
    /// Per sink, the lines not yet handed over.
    pending: RefCell<Vec<Pending>>,
    /// Per sink, how its lines are written (the top level's may be off).
    forms: Vec<LineForm>,
    clock: RefCell<LogClock>,
    queue: SyncSender<Batch>,
    shared: Arc<Shared>,
    reopen: watch::Receiver<u64>,
}

impl WorkerLog {
    /// Formats the lines from now on as `format` (a reload may change it).
    pub(crate) fn set_format(&self, format: LogFormat) {
        if let Ok(mut current) = self.format.try_borrow_mut() {
            *current = format;
        }
    }

    /// The operator's own format, if lines are written in one: the request headers it
    /// names go in a line's [`Entry::headers`], in its order. Borrowed, not cloned: every
    /// worker shares the one `Arc`, whose count would move between cores on each line.
    pub(crate) fn template(&self) -> Option<Ref<'_, Template>> {
        let format = self.format.try_borrow().ok()?;
        Ref::filter_map(format, |f| match f {
            LogFormat::Custom(template) => Some(&**template),
            _ => None,
        })
        .ok()
    }

    /// Whether a line for `sink` would go anywhere.
    pub(crate) fn writes_to(&self, sink: usize) -> bool {
        self.forms
            .get(sink)
            .is_some_and(|form| !matches!(form, LineForm::Off))
    }

    /// Formats `entry` into this worker's buffer for `sink`; hands the buffer over once it
    /// is full.
    pub(crate) fn record(&self, entry: &Entry<'_>, sink: usize) {
        if !self.writes_to(sink) {
            return;
        }
        let Ok(mut all) = self.pending.try_borrow_mut() else {
            return;
        };
        let (Some(pending), Some(form)) = (all.get_mut(sink), self.forms.get(sink)) else {
            return;
        };
        if pending.buf.capacity() == 0 {
            pending.buf = self.shared.spare();
        }
        if let (Ok(mut clock), Ok(format)) = (self.clock.try_borrow_mut(), self.format.try_borrow())
        {
            let stamp = clock.at(SystemTime::now());
            let frame = match form {
                LineForm::Syslog(header) => {
                    Some(header.begin_frame(&mut pending.buf, stamp.syslog()))
                }
                LineForm::Off | LineForm::Line => None,
            };
            match &*format {
                LogFormat::Combined => combined(&mut pending.buf, entry, &stamp),
                LogFormat::Json => json(&mut pending.buf, entry, &stamp),
                LogFormat::Custom(template) => template.write(&mut pending.buf, entry, &stamp),
            }
            if let Some(start) = frame {
                syslog::end_frame(&mut pending.buf, start);
            }
            pending.lines += 1;
        }
        if pending.buf.len() >= FLUSH_AT {
            self.flush_pending(sink, pending, None);
        }
    }

    /// Hands what this worker holds to the writer, with (`flushed_for`) a reopen's
    /// acknowledgement on its last batch, or alone when it holds nothing: the lines before
    /// it go to the old files. What the queue has no room for is dropped.
    fn flush(&self, flushed_for: Option<u64>) {
        let Ok(mut all) = self.pending.try_borrow_mut() else {
            return;
        };
        let last = all.iter().rposition(|pending| pending.lines > 0);
        for (sink, pending) in all.iter_mut().enumerate() {
            let ack = flushed_for.filter(|_| Some(sink) == last);
            self.flush_pending(sink, pending, ack);
        }
        if let (None, Some(generation)) = (last, flushed_for) {
            let mut nothing = Pending::default();
            self.flush_pending(MAIN_LOG, &mut nothing, Some(generation));
        }
    }

    fn flush_pending(&self, sink: usize, pending: &mut Pending, flushed_for: Option<u64>) {
        if !self.offer(sink, pending, flushed_for) {
            self.drop_lines(pending);
        }
    }

    /// Offers the pending lines (and a reopen's acknowledgement) to the writer; false (the
    /// lines kept) if the queue is full.
    fn offer(&self, sink: usize, pending: &mut Pending, flushed_for: Option<u64>) -> bool {
        if pending.lines == 0 && flushed_for.is_none() {
            return true;
        }
        // A buffer with lines travels (the next line takes a spare); an acknowledgement
        // alone carries none.
        let buf = match pending.lines {
            0 => Vec::new(),
            _ => std::mem::take(&mut pending.buf),
        };
        let batch = Batch {
            worker: self.index,
            sink,
            buf,
            lines: std::mem::take(&mut pending.lines),
            flushed_for,
        };
        match self.queue.try_send(batch) {
            Ok(()) => true,
            Err(TrySendError::Full(batch) | TrySendError::Disconnected(batch)) => {
                if batch.lines > 0 {
                    pending.buf = batch.buf;
                    pending.lines = batch.lines;
                }
                false
            }
        }
    }

    /// Drops the pending lines (the writer is behind): counted only. The main thread says
    /// so ([`AccessLog::report_dropped`]): a worker that logged it itself, to the stderr the
    /// stuck writer may be stuck on, would stall with it (found by review).
    fn drop_lines(&self, pending: &mut Pending) {
        if pending.lines == 0 {
            return;
        }
        self.shared.dropped.fetch_add(pending.lines, Relaxed);
        self.shared.behind.fetch_add(pending.lines, Relaxed);
        pending.buf.clear();
        pending.lines = 0;
    }

    /// At exit: hands the last lines over, waiting a little for room in the queue (no
    /// request is left to slow down), then gives up on them.
    pub(crate) async fn flush_at_exit(&self) {
        let deadline = Instant::now() + EXIT_FLUSH_LIMIT;
        loop {
            if let Ok(mut all) = self.pending.try_borrow_mut() {
                let mut handed = true;
                for (sink, pending) in all.iter_mut().enumerate() {
                    handed &= self.offer(sink, pending, None);
                }
                if handed {
                    return;
                }
                if Instant::now() >= deadline {
                    all.iter_mut().for_each(|pending| self.drop_lines(pending));
                    return;
                }
            }
            tokio::time::sleep(EXIT_RETRY).await;
        }
    }
}

/// A worker's flusher task: hands its lines over every second, and at once when a reopen
/// is asked for (so that they go to the old file).
pub(crate) async fn flush_periodically(log: Rc<WorkerLog>) {
    let mut reopen = log.reopen.clone();
    let mut reopens = true;
    loop {
        if !reopens {
            tokio::time::sleep(FLUSH_EVERY).await;
            log.flush(None);
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(FLUSH_EVERY) => log.flush(None),
            changed = reopen.changed() => match changed {
                Ok(()) => {
                    let generation = *reopen.borrow_and_update();
                    log.flush(Some(generation));
                }
                // The trigger is gone (the server is stopping): flush on time only.
                Err(_) => reopens = false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OpenedFile;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;

    fn entry(user_agent: &[u8]) -> Entry<'_> {
        Entry {
            remote_addr: "127.0.0.1".parse().unwrap(),
            remote_port: Some(40000),
            body_bytes: 13,
            user_agent: Some(user_agent),
            request_time: Duration::from_millis(1),
            route: Some("/"),
            ..line::sample()
        }
    }

    fn start(path: &Path, workers: usize) -> (AccessLog, Vec<WorkerLog>) {
        let config = AccessLogConfig {
            format: LogFormat::Combined,
            statuses: crate::config::LoggedStatuses::ALL,
            sinks: vec![LogSink::File {
                path: path.to_path_buf(),
                opened: OpenedFile::new(open_file(path).unwrap()),
            }],
        };
        AccessLog::start(&config, workers).unwrap()
    }

    #[test]
    fn lines_reach_the_file_in_order_per_worker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let (log, workers) = start(&path, 2);
        // Enough for several full buffers, then a partial one flushed by hand.
        for i in 0..3000 {
            let agent = format!("agent-{i}");
            workers[i % 2].record(&entry(agent.as_bytes()), MAIN_LOG);
        }
        for worker in &workers {
            worker.flush(None);
        }
        drop(workers);
        log.finish(Duration::from_secs(10));
        let text = std::fs::read_to_string(&path).unwrap();
        let agents: Vec<usize> = text
            .lines()
            .map(|l| {
                let at = l.rfind("\"agent-").unwrap() + 7;
                l[at..l.len() - 1].parse().unwrap()
            })
            .collect();
        assert_eq!(agents.len(), 3000);
        for parity in 0..2 {
            let mine: Vec<usize> = agents.iter().copied().filter(|a| a % 2 == parity).collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "worker {parity} in order"
            );
        }
    }

    /// A route's own file gets its lines; a top level that is off takes none, and drops
    /// nothing it would count.
    #[test]
    fn a_routes_lines_go_to_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("api.log");
        let config = AccessLogConfig {
            format: LogFormat::Combined,
            statuses: crate::config::LoggedStatuses::ALL,
            sinks: vec![
                LogSink::Off,
                LogSink::File {
                    path: own.clone(),
                    opened: OpenedFile::new(open_file(&own).unwrap()),
                },
            ],
        };
        let (log, workers) = AccessLog::start(&config, 1).unwrap();
        assert!(!workers[0].writes_to(MAIN_LOG));
        assert!(workers[0].writes_to(1));
        assert!(!workers[0].writes_to(2), "no such sink");
        workers[0].record(&entry(b"elsewhere"), MAIN_LOG);
        workers[0].record(&entry(b"api"), 1);
        workers[0].flush(None);
        drop(workers);
        let dropped = log.dropped();
        log.finish(Duration::from_secs(10));
        let text = std::fs::read_to_string(&own).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("\"api\""), "{text}");
        assert_eq!(dropped.load(Relaxed), 0);
    }

    /// ENOSPC (/dev/full): the lines are counted as dropped, nothing blocks, and the
    /// writer's own line says so: not a second one blaming a slow file (found by review).
    #[test]
    fn a_failed_write_counts_its_lines_as_dropped() {
        let (log, workers) = start(Path::new("/dev/full"), 1);
        for _ in 0..100 {
            workers[0].record(&entry(b"x"), MAIN_LOG);
        }
        workers[0].flush(None);
        drop(workers);
        let dropped = log.dropped();
        let shared = Arc::clone(&log.shared);
        log.finish(Duration::from_secs(10));
        assert_eq!(dropped.load(Relaxed), 100);
        assert_eq!(
            shared.behind.load(Relaxed),
            0,
            "nothing waited for the writer"
        );
    }

    /// A file that takes nothing (a pipe nobody reads: a stuck NFS mount): recording never
    /// waits, the lines past what the queue holds are dropped and counted, and every line is
    /// either written or counted.
    #[test]
    fn a_stuck_file_drops_and_counts_never_waits() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("stuck");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let (log, workers) = start(&fifo, 1);
        let agent = vec![b'a'; 1000];
        let total = 10_000u64;
        // Were a record to wait for the pipe, this loop would hang.
        for _ in 0..total {
            workers[0].record(&entry(&agent), MAIN_LOG);
        }
        workers[0].flush(None);
        let dropped = log.dropped();
        assert!(
            dropped.load(Relaxed) > 0,
            "10 MB of lines cannot all be queued for a stuck file"
        );
        assert_eq!(
            log.shared.behind.load(Relaxed),
            dropped.load(Relaxed),
            "every line dropped so far waited for the writer"
        );
        drop(workers);
        // Now read: the writer gets unstuck, writes what was queued, and ends.
        let fd = reader.as_raw_fd();
        // SAFETY: the fd belongs to `reader`; only O_NONBLOCK is cleared.
        unsafe { libc::fcntl(fd, libc::F_SETFL, 0) };
        let draining = std::thread::spawn(move || {
            let mut all = Vec::new();
            reader.read_to_end(&mut all).unwrap();
            all
        });
        log.finish(Duration::from_secs(10));
        let written = draining.join().unwrap();
        let lines = written.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(lines + dropped.load(Relaxed), total, "written or counted");
    }
}
