//! The writer thread: the one place that touches the log file. Workers hand it full buffers
//! through a bounded queue; it writes each with plain blocking write(2) calls (the file is
//! opened `O_APPEND`), gives the buffer back for reuse, and reopens the file when asked
//! (SIGUSR1, after a rotation). A slow or failing disk only ever blocks this thread: the
//! workers never wait for it (a full queue drops lines, counted).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Batch, Shared};
use crate::ratelimit::WINDOW;

/// How often the thread looks for a reopen request while no batch comes in.
const POLL: Duration = Duration::from_millis(100);
/// How long a reopen waits for the workers to flush what they hold into the old file; a
/// worker that has not answered by then (its queue slot was full) writes into the new one.
const REOPEN_WAIT: Duration = Duration::from_secs(1);

/// Checks that the log file could be opened for appending, creating nothing: an existing
/// file is opened (and closed), a missing one needs an existing directory.
pub(crate) fn check_file(path: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            if std::fs::metadata(dir)?.is_dir() {
                Ok(())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{} is not a directory", dir.display()),
                ))
            }
        }
        Err(e) => Err(e),
    }
}

/// Opens (or creates, mode 0640 before the umask) the log file for appending.
///
/// The open is non-blocking, so that a FIFO nobody reads refuses at once (ENXIO) instead of
/// hanging the start; the writes then block as usual, on the writer thread only.
pub(crate) fn open_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let fd = file.as_raw_fd();
    // SAFETY: `fd` belongs to `file`, open for the duration of both calls.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above; only the O_NONBLOCK status flag changes.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// Where the lines go.
pub(super) enum Sink {
    Stderr,
    File { path: PathBuf, file: File },
}

impl Sink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            // Locked for the whole batch: the daemon's own log lines (also on stderr) go
            // between batches, never inside a line.
            Sink::Stderr => io::stderr().lock().write_all(bytes),
            Sink::File { file, .. } => file.write_all(bytes),
        }
    }
}

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) queue: Receiver<Batch>,
    pub(super) sink: Sink,
    pub(super) shared: Arc<Shared>,
    pub(super) reopen: watch::Receiver<u64>,
    /// Per worker, the last reopen generation it flushed for.
    pub(super) flushed: Vec<u64>,
    /// The reopen generation the file in use was opened for.
    pub(super) opened: u64,
    /// When the pending reopen request was first seen.
    pub(super) reopen_seen: Option<Instant>,
    pub(super) failures: Failures,
}

/// Write failures, reported at most once per rate-limiting window.
#[derive(Default)]
pub(super) struct Failures {
    lines: u64,
    last_report: Option<Instant>,
}

impl Writer {
    /// Writes batches until every worker is gone and the queue is empty.
    pub(super) fn run(mut self) {
        loop {
            match self.queue.recv_timeout(POLL) {
                Ok(batch) => self.write(batch),
                Err(RecvTimeoutError::Timeout) => {}
                // Every worker dropped its sender (they flush before they go): all written.
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.reopen_when_due();
        }
        self.failures.report_rest(&self.sink);
    }

    fn write(&mut self, batch: Batch) {
        let Batch {
            worker,
            mut buf,
            lines,
            flushed_for,
        } = batch;
        if !buf.is_empty() {
            if let Err(err) = self.sink.write(&buf) {
                self.shared.dropped.fetch_add(lines, Relaxed);
                self.failures.failed(&self.sink, &err, lines);
            }
            buf.clear();
            self.shared.give_back(buf);
        }
        if let (Some(generation), Some(slot)) = (flushed_for, self.flushed.get_mut(worker)) {
            *slot = (*slot).max(generation);
        }
    }

    /// Reopens the file once a reopen was asked for and every worker has flushed what it
    /// held into the old one (or [`REOPEN_WAIT`] has passed).
    fn reopen_when_due(&mut self) {
        let wanted = *self.reopen.borrow();
        if wanted <= self.opened {
            return;
        }
        let seen = *self.reopen_seen.get_or_insert_with(Instant::now);
        let all_flushed = self.flushed.iter().all(|&g| g >= wanted);
        if !all_flushed && seen.elapsed() < REOPEN_WAIT {
            return;
        }
        self.opened = wanted;
        self.reopen_seen = None;
        let Sink::File { path, file } = &mut self.sink else {
            return;
        };
        match open_file(path.as_path()) {
            Ok(new) => {
                *file = new;
                tracing::info!(path = %path.display(), "access log reopened");
            }
            Err(err) => tracing::warn!(
                path = %path.display(),
                error = %err,
                "access log not reopened: lines keep going to the file already open"
            ),
        }
    }
}

impl Failures {
    /// Counts a failed write of `lines` lines; says so at most once per window (ENOSPC
    /// would otherwise log once per batch).
    fn failed(&mut self, sink: &Sink, err: &io::Error, lines: u64) {
        self.lines += lines;
        if self.last_report.is_none_or(|t| t.elapsed() >= WINDOW) {
            tracing::warn!(
                to = %sink,
                error = %err,
                dropped = self.lines,
                "access log write failed: {} lines dropped",
                self.lines
            );
            self.lines = 0;
            self.last_report = Some(Instant::now());
        }
    }

    /// At the end: the lines dropped since the last report, if any.
    fn report_rest(&mut self, sink: &Sink) {
        if self.lines > 0 {
            tracing::warn!(
                to = %sink,
                dropped = self.lines,
                "access log write failed: {} more lines dropped",
                self.lines
            );
        }
    }
}

impl std::fmt::Display for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::Stderr => f.write_str("stderr"),
            Sink::File { path, .. } => write!(f, "{}", path.display()),
        }
    }
}
