//! The writer thread: the one place that touches the log files. Workers hand it full
//! buffers through a bounded queue; it writes each with plain blocking write(2) calls to the
//! file the batch is for (opened `O_APPEND`), gives the buffer back for reuse, and reopens
//! every file when asked (SIGUSR1, after a rotation). A slow or failing disk only ever
//! blocks this thread: the workers never wait for it (a full queue drops lines, counted).

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

use super::syslog::SyslogSocket;
use super::{Batch, Shared};
use crate::ratelimit::WINDOW;

/// How often the thread looks for a reopen request while no batch comes in.
const POLL: Duration = Duration::from_millis(100);
/// How long a reopen waits for the workers to flush what they hold into the old file; a
/// worker that has not answered by then (its queue slot was full) writes into the new one.
const REOPEN_WAIT: Duration = Duration::from_secs(1);

/// Checks that the log file could be opened for appending, creating nothing: an existing
/// file is opened (and closed), a missing one needs a directory ringway may write to.
pub(crate) fn check_file(path: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => crate::buffer::check_creatable(path),
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
    /// Nowhere (the top level's log, off while routes log to their own).
    Off,
    Stderr,
    File {
        path: PathBuf,
        file: File,
    },
    /// A syslog server: each framed line one datagram.
    Syslog(SyslogSocket),
}

impl Sink {
    /// Writes all of `bytes`; on failure, also says how many went out before it.
    fn write(&mut self, bytes: &[u8]) -> Result<(), (io::Error, usize)> {
        match self {
            // Sent line by line instead ([`Output::write`]).
            Sink::Off | Sink::Syslog(_) => Ok(()),
            // Locked for the whole batch: the daemon's own log lines (also on stderr) go
            // between batches, never inside a line.
            Sink::Stderr => write_counting(&mut io::stderr().lock(), bytes),
            Sink::File { file, .. } => write_counting(file, bytes),
        }
    }
}

/// After a batch of `lines` lines went out only up to `done` bytes: how many lines were
/// lost (the ones not written whole) and whether the last one written was cut short.
fn cut_short(batch: &[u8], done: usize, lines: u64) -> (u64, bool) {
    let out = batch.get(..done).unwrap_or(batch);
    let whole = out.iter().filter(|&&b| b == b'\n').count() as u64;
    (
        lines.saturating_sub(whole),
        !out.is_empty() && !out.ends_with(b"\n"),
    )
}

/// `write_all`, telling how far it got when it fails.
fn write_counting(out: &mut impl Write, bytes: &[u8]) -> Result<(), (io::Error, usize)> {
    let mut done = 0;
    while let Some(rest) = bytes.get(done..).filter(|rest| !rest.is_empty()) {
        match out.write(rest) {
            Ok(0) => return Err((io::ErrorKind::WriteZero.into(), done)),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((e, done)),
        }
    }
    Ok(())
}

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) queue: Receiver<Batch>,
    /// Per sink, where its lines go.
    pub(super) outputs: Vec<Output>,
    pub(super) shared: Arc<Shared>,
    pub(super) reopen: watch::Receiver<u64>,
    /// Per worker, the last reopen generation it flushed for.
    pub(super) flushed: Vec<u64>,
    /// The reopen generation the files in use were opened for.
    pub(super) opened: u64,
    /// When the pending reopen request was first seen.
    pub(super) reopen_seen: Option<Instant>,
}

/// One sink and how its writes have gone.
pub(super) struct Output {
    sink: Sink,
    failures: Failures,
    /// A failed write (a full disk) left a line cut short: the next write ends it first,
    /// so that the next line does not run on from it.
    torn: bool,
}

impl Output {
    pub(super) fn new(sink: Sink) -> Output {
        Output {
            sink,
            failures: Failures::default(),
            torn: false,
        }
    }

    /// Writes a batch of `lines` lines; returns how many were lost.
    fn write(&mut self, batch: &[u8], lines: u64) -> u64 {
        if let Sink::Syslog(socket) = &mut self.sink {
            let sent = socket.send(batch);
            if let Some(err) = sent.error {
                self.failures.failed(&self.sink, &err, sent.dropped);
            }
            return sent.dropped;
        }
        if self.torn && self.sink.write(b"\n").is_ok() {
            self.torn = false;
        }
        match self.sink.write(batch) {
            Ok(()) => 0,
            Err((err, done)) => {
                let (dropped, torn) = cut_short(batch, done, lines);
                self.torn = torn;
                self.failures.failed(&self.sink, &err, dropped);
                dropped
            }
        }
    }
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
        for output in &mut self.outputs {
            output.failures.report_rest(&output.sink);
        }
    }

    fn write(&mut self, batch: Batch) {
        let Batch {
            worker,
            sink,
            mut buf,
            lines,
            flushed_for,
        } = batch;
        if let Some(output) = self.outputs.get_mut(sink)
            && !buf.is_empty()
        {
            let dropped = output.write(&buf, lines);
            self.shared.dropped.fetch_add(dropped, Relaxed);
        }
        if buf.capacity() > 0 {
            buf.clear();
            self.shared.give_back(buf);
        }
        if let (Some(generation), Some(slot)) = (flushed_for, self.flushed.get_mut(worker)) {
            *slot = (*slot).max(generation);
        }
    }

    /// Reopens the files once a reopen was asked for and every worker has flushed what it
    /// held into the old ones (or [`REOPEN_WAIT`] has passed).
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
        for output in &mut self.outputs {
            let Sink::File { path, file } = &mut output.sink else {
                continue;
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
            Sink::Off => f.write_str("off"),
            Sink::Stderr => f.write_str("stderr"),
            Sink::File { path, .. } => write!(f, "{}", path.display()),
            Sink::Syslog(socket) => socket.addr().fmt(f),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    /// Takes `room` bytes, then fails as a full disk does.
    struct Full {
        taken: Vec<u8>,
        room: usize,
    }

    impl Write for Full {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let n = bytes.len().min(self.room - self.taken.len());
            if n == 0 {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            self.taken.extend_from_slice(&bytes[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_disk_filling_up_midway_counts_only_the_lines_lost_and_notes_the_cut() {
        let batch = b"one\ntwo\nthree\n";
        let mut disk = Full {
            taken: Vec::new(),
            room: 6,
        };
        let Err((err, done)) = write_counting(&mut disk, batch) else {
            panic!("the disk is full");
        };
        assert_eq!((err.raw_os_error(), done), (Some(libc::ENOSPC), 6));
        // "one" is whole, "tw" cut short: two lines lost, the next write ends the cut one.
        assert_eq!(cut_short(batch, done, 3), (2, true));
        assert_eq!(cut_short(batch, 8, 3), (1, false));
        assert_eq!(cut_short(batch, 0, 3), (3, false));
        assert_eq!(cut_short(batch, batch.len(), 3), (0, false));
    }
}
