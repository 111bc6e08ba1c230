//! The queue between an upstream that answers fast and a client that reads slowly.
//!
//! The upstream side pushes pieces of response as it reads them; the client side pops them
//! as fast as the client takes them. Nothing waits in the queue longer than the client makes
//! it wait: a client that keeps up gets every piece at once. What the client cannot take yet
//! stays in memory up to the response's memory limit and the process-wide budget, then goes
//! to an anonymous temp file up to its limit; only past both does the upstream side wait (the
//! decisions are `spill::place`). So a slow client holds a file, not a Python worker and not
//! RAM: once the memory budget is spent, it holds only the piece on its way to it (relayed,
//! not buffered), everything behind that in the file.
//!
//! The file is written sequentially and read back in order; once everything written has been
//! read, writing starts again at offset 0, so a long answer to a slow client needs a file only
//! as large as the client is behind. If the file fails (a full disk), the spool carries on
//! without it, at the client's pace, and says so through [`Spool::take_file_error`].

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::Notify;

use super::spill::{self, Place, Queued};
use super::{Budget, Buf, TempFile};

/// Pieces smaller than this are copied out of their read buffer before being queued in
/// memory: an upstream writing a few bytes at a time must not queue mostly empty buffers.
const SMALL_PIECE: usize = 4096;
/// Largest read back from the file at a time.
const FILE_READ_SIZE: usize = 64 * 1024;

/// A queued piece.
enum Segment {
    /// Client bytes at `buf[from..]`.
    Memory(Buf, usize),
    /// `len` client bytes in the file at offset `at`.
    File { at: u64, len: u64 },
}

#[derive(Default)]
struct State {
    queue: VecDeque<Segment>,
    /// Capacity of the buffers queued in memory.
    memory: usize,
    /// Where the next file write goes.
    file_end: u64,
    /// File bytes written (or being written) and not read back yet.
    file_unread: u64,
    ended: bool,
}

/// One response's queue.
pub(crate) struct Spool<'a> {
    state: RefCell<State>,
    file: OnceCell<TempFile>,
    file_error: Cell<Option<io::ErrorKind>>,
    /// The client side has taken everything queued and is not writing a piece to the client
    /// (it waits in `pop`, or has not started yet): a piece for an empty queue goes straight
    /// out. False while it writes the piece it popped.
    client_waiting: Cell<bool>,
    limits: spill::Limits,
    budget: &'a Arc<Budget>,
    temp_dir: &'a Path,
    data: Notify,
    space: Notify,
}

impl<'a> Spool<'a> {
    /// An empty queue holding up to `memory` bytes in memory (charged to `budget`) and
    /// `file` bytes in a temp file in `temp_dir` (0: no file; the client sets the pace).
    pub(crate) fn new(
        memory: usize,
        file: u64,
        budget: &'a Arc<Budget>,
        temp_dir: &'a Path,
    ) -> Self {
        Spool {
            state: RefCell::default(),
            file: OnceCell::new(),
            file_error: Cell::new(None),
            client_waiting: Cell::new(true),
            limits: spill::Limits { memory, file },
            budget,
            temp_dir,
            data: Notify::new(),
            space: Notify::new(),
        }
    }

    /// Queues the client bytes at `buf[from..]`, waiting while the queue is full.
    pub(crate) async fn push(&self, buf: Buf, from: usize) {
        if buf.len() <= from {
            return;
        }
        let (mut buf, from) = compact(buf, from);
        loop {
            let queued = self.queued();
            let limits = self.file_limits();
            let piece = buf.len() - from;
            let waiting = self.client_waiting.get();
            let spent = self.budget.is_spent();
            let mut place = spill::place(buf.capacity(), queued, limits, spent, waiting);
            if place == Place::Memory && !buf.charge(self.budget) {
                place = spill::place(buf.capacity(), queued, limits, true, waiting);
            }
            match place {
                Place::Memory => {
                    let mut state = self.state.borrow_mut();
                    state.memory += buf.capacity();
                    state.queue.push_back(Segment::Memory(buf, from));
                    drop(state);
                    self.data.notify_one();
                    return;
                }
                Place::File => match self.write_to_file(buf, from, piece).await {
                    Ok(()) => return,
                    // The file failed: carry on without it, with the piece in hand.
                    Err(back) => buf = back,
                },
                Place::Wait => self.space.notified().await,
            }
        }
    }

    /// Says that nothing more will be pushed.
    pub(crate) fn end(&self) {
        self.state.borrow_mut().ended = true;
        self.data.notify_one();
    }

    /// The next client bytes, as a buffer and the offset they start at; `None` once the
    /// queue is empty and ended. Waits while it is empty. The caller is taken to be writing
    /// the piece to the client until it calls again.
    pub(crate) async fn pop(&self) -> io::Result<Option<(Buf, usize)>> {
        self.client_waiting.set(true);
        let next = self.next().await;
        if let Ok(Some(_)) = next {
            self.client_waiting.set(false);
        }
        next
    }

    async fn next(&self) -> io::Result<Option<(Buf, usize)>> {
        loop {
            let front = {
                let mut state = self.state.borrow_mut();
                match state.queue.front() {
                    Some(Segment::File { at, len }) => Some((*at, *len)),
                    Some(Segment::Memory(..)) => {
                        if let Some(Segment::Memory(buf, from)) = state.queue.pop_front() {
                            state.memory -= buf.capacity();
                            drop(state);
                            self.space.notify_one();
                            return Ok(Some((buf, from)));
                        }
                        None
                    }
                    None if state.ended => return Ok(None),
                    None => None,
                }
            };
            match front {
                Some((at, len)) => return self.read_from_file(at, len).await.map(Some),
                None => self.data.notified().await,
            }
        }
    }

    /// Whether the client side has taken everything queued.
    pub(crate) fn is_drained(&self) -> bool {
        self.state.borrow().queue.is_empty()
    }

    /// The temp file failure the spool worked around, if any (to be reported once).
    pub(crate) fn take_file_error(&self) -> Option<io::ErrorKind> {
        self.file_error.take()
    }

    fn queued(&self) -> Queued {
        let state = self.state.borrow();
        Queued {
            memory: state.memory,
            file: state.file_end,
        }
    }

    /// The limits, with the file's taken away once it failed.
    fn file_limits(&self) -> spill::Limits {
        let mut limits = self.limits;
        if self.file_error.get().is_some() {
            limits.file = 0;
        }
        limits
    }

    /// Writes a piece to the file and queues it; gives the buffer back if the file failed.
    async fn write_to_file(&self, buf: Buf, from: usize, piece: usize) -> Result<(), Buf> {
        let file = match self.file.get() {
            Some(file) => file,
            None => match TempFile::create(self.temp_dir).await {
                Ok(file) => self.file.get_or_init(|| file),
                Err(e) => {
                    self.file_error.set(Some(e.kind()));
                    return Err(buf);
                }
            },
        };
        // Reserve the region before the write, so that a reader finishing meanwhile does not
        // rewind the file under it.
        let at = {
            let mut state = self.state.borrow_mut();
            let at = state.file_end;
            state.file_end += piece as u64;
            state.file_unread += piece as u64;
            at
        };
        let (res, buf) = file.write_all_at(buf, from, at).await;
        let mut state = self.state.borrow_mut();
        if let Err(e) = res {
            state.file_unread -= piece as u64;
            // The region holds nothing: as if never reserved, so that a reader that takes
            // every queued byte still finds the file read to its end.
            if state.file_end == at + piece as u64 {
                state.file_end = at;
            }
            self.file_error.set(Some(e.kind()));
            return Err(buf);
        }
        let len = piece as u64;
        match state.queue.back_mut() {
            Some(Segment::File {
                at: last,
                len: last_len,
            }) if *last + *last_len == at => {
                *last_len += len;
            }
            _ => state.queue.push_back(Segment::File { at, len }),
        }
        drop(state);
        self.data.notify_one();
        Ok(())
    }

    /// Reads the next bytes of the file segment at the front (`at`, `len` when looked at).
    async fn read_from_file(&self, at: u64, len: u64) -> io::Result<(Buf, usize)> {
        let Some(file) = self.file.get() else {
            return Err(io::ErrorKind::NotFound.into());
        };
        let want = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .min(FILE_READ_SIZE);
        let (res, buf) = file.read_at(Buf::with_capacity(want), want, at).await;
        let n = match res? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => n as u64,
        };
        let mut state = self.state.borrow_mut();
        // The writer may have grown this segment meanwhile; only the reader shrinks it.
        if let Some(Segment::File { at, len }) = state.queue.front_mut() {
            *at += n;
            *len -= n;
            if *len == 0 {
                state.queue.pop_front();
            }
        }
        state.file_unread -= n;
        if state.file_unread == 0 {
            state.file_end = 0;
        }
        drop(state);
        self.space.notify_one();
        Ok((buf, 0))
    }
}

/// Copies a small piece out of a large buffer, so that what is queued is what is held.
fn compact(buf: Buf, from: usize) -> (Buf, usize) {
    let piece = buf.len() - from;
    if piece < SMALL_PIECE && buf.capacity() > 2 * SMALL_PIECE {
        (Buf::copy_of(buf.get(from..).unwrap_or_default()), 0)
    } else {
        (buf, from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(fill: u8, len: usize) -> Buf {
        let mut buf = Buf::with_capacity(len);
        buf.resize(len, fill);
        buf
    }

    /// Pops everything, in order, as one byte string.
    async fn drain(spool: &Spool<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some((buf, from)) = spool.pop().await.unwrap() {
            out.extend_from_slice(&buf[from..]);
        }
        out
    }

    #[test]
    fn memory_then_file_then_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Arc::new(Budget::new(1 << 30));
        tokio_uring::start(async {
            let spool = Spool::new(40 * 1024, 1 << 20, &budget, dir.path());
            let mut want = Vec::new();
            for i in 0..10u8 {
                let p = piece(i, 16 * 1024);
                want.extend_from_slice(&p);
                spool.push(p, 0).await;
            }
            assert!(
                spool.file.get().is_some(),
                "what did not fit went to the file"
            );
            assert!(spool.queued().memory <= 40 * 1024);
            spool.end();
            assert_eq!(drain(&spool).await, want);
            assert_eq!(spool.queued().file, 0, "rewound once read back");
            assert_eq!(budget.used(), 0);
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        });
    }

    #[test]
    fn a_full_spool_waits_for_the_client() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Arc::new(Budget::new(1 << 30));
        tokio_uring::start(async {
            let spool = Spool::new(16 * 1024, 0, &budget, dir.path());
            let producer = async {
                for i in 0..8u8 {
                    spool.push(piece(i, 16 * 1024), 0).await;
                    // Without a file, at most one piece waits for the client.
                    assert!(spool.state.borrow().queue.len() <= 1);
                }
                spool.end();
            };
            let (_, got) = tokio::join!(producer, drain(&spool));
            assert_eq!(got.len(), 8 * 16 * 1024);
            assert!(spool.file.get().is_none());
        });
    }

    #[test]
    fn a_spent_budget_sends_pieces_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Arc::new(Budget::new(1));
        tokio_uring::start(async {
            let spool = Spool::new(1 << 20, 1 << 20, &budget, dir.path());
            spool.push(piece(1, 16 * 1024), 0).await;
            spool.push(piece(2, 16 * 1024), 0).await;
            spool.push(piece(3, 16 * 1024), 0).await;
            {
                let state = spool.state.borrow();
                assert!(
                    matches!(state.queue.front(), Some(Segment::Memory(..))),
                    "the first piece is no buffering: the client waits for it"
                );
                assert!(matches!(
                    state.queue.back(),
                    Some(Segment::File { len: 32768, .. })
                ));
            }
            spool.end();
            assert_eq!(drain(&spool).await.len(), 3 * 16 * 1024);
        });
    }

    #[test]
    fn past_the_budget_only_the_piece_in_flight_stays_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Arc::new(Budget::new(1));
        tokio_uring::start(async {
            let spool = Spool::new(1 << 20, 1 << 20, &budget, dir.path());
            let front_is_memory = || {
                matches!(
                    spool.state.borrow().queue.front(),
                    Some(Segment::Memory(..))
                )
            };
            spool.push(piece(1, 16 * 1024), 0).await;
            assert!(
                front_is_memory(),
                "nothing popped yet: the client side waits for it"
            );
            // The client side takes it and is busy writing it: the next piece waits on disk.
            let in_flight = spool.pop().await.unwrap().unwrap();
            spool.push(piece(2, 16 * 1024), 0).await;
            assert!(matches!(
                spool.state.borrow().queue.front(),
                Some(Segment::File { len: 16384, .. })
            ));
            drop(in_flight);
            let (buf, from) = spool.pop().await.unwrap().unwrap();
            assert_eq!(&buf[from..], &[2u8; 16 * 1024][..]);
            // The client side waits in `pop` for more: a new piece goes straight out.
            let (got, ()) = tokio::join!(spool.pop(), async {
                tokio::task::yield_now().await;
                spool.push(piece(3, 16 * 1024), 0).await;
                assert!(front_is_memory());
            });
            let (buf, from) = got.unwrap().unwrap();
            assert_eq!(&buf[from..], &[3u8; 16 * 1024][..]);
            assert_eq!(budget.used(), 0, "nothing was charged past the budget");
        });
    }

    #[test]
    fn with_room_in_the_budget_a_client_one_piece_behind_costs_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Arc::new(Budget::new(1 << 30));
        tokio_uring::start(async {
            let spool = Spool::new(64 * 1024, 1 << 20, &budget, dir.path());
            for i in 0..4u8 {
                spool.push(piece(i, 65600), 0).await;
                let in_flight = spool.pop().await.unwrap().unwrap();
                spool.push(piece(i, 65600), 0).await;
                drop(in_flight);
                drop(spool.pop().await.unwrap().unwrap());
            }
            assert!(spool.file.get().is_none());
        });
    }

    #[test]
    fn a_missing_temp_dir_means_the_client_sets_the_pace() {
        let budget = Arc::new(Budget::new(1 << 30));
        let dir = Path::new("/nonexistent/ringway-test");
        tokio_uring::start(async {
            let spool = Spool::new(16 * 1024, 1 << 20, &budget, dir);
            let producer = async {
                for i in 0..4u8 {
                    spool.push(piece(i, 16 * 1024), 0).await;
                }
                spool.end();
            };
            let (_, got) = tokio::join!(producer, drain(&spool));
            assert_eq!(got.len(), 4 * 16 * 1024);
            assert_eq!(spool.take_file_error(), Some(io::ErrorKind::NotFound));
        });
    }

    #[test]
    fn small_pieces_are_compacted() {
        let mut big = Buf::with_capacity(64 * 1024);
        big.extend_from_slice(b"0123456789");
        let (small, from) = compact(big, 4);
        assert_eq!(
            (&small[from..], small.capacity() < 8192),
            (&b"456789"[..], true)
        );
    }
}
