//! A small per-worker cache of opened files (nginx's `open_file_cache`): a busy file is opened
//! on the blocking pool about once a second per worker, not once per request.
//!
//! An entry, found or not, is trusted for [`VALID`]; after that the path is opened again, so
//! a file that was replaced (a deploy renaming new assets into place) is noticed within a
//! second. One request opens it again; the others keep being served the entry until that
//! open is done (for [`REOPENING_AT_MOST`] at most), as they were a moment before: each
//! request past the second opened it on the blocking pool (40 to 76 opens in 5 s of `wrk
//! -c100` on one 1 KiB file, against 8 to 10 now), and on a slow disk each of them would have
//! waited for its own. At most [`MAX_ENTRIES`] entries are kept; the oldest go first. A
//! cached file stays open while a request reads it, even if it leaves the cache meanwhile.
//!
//! A small file's bytes are read along with its opening (on the blocking pool) and kept with
//! the entry, up to [`MAX_HELD`] bytes per worker: the most requested files of a site (icons,
//! small scripts, styles) then go out with no read at all, and their bytes always match the
//! size and validators sent with them. A larger file, read per request, is checked for a
//! write in place at each reuse ([`FileCache::reused`]).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_uring::fs::File;

use super::StaticRoute;
use super::decision::{FileMeta, Validators};
use super::open::{Opened, Stamp};
use crate::clock::Coarse;
use crate::closing::OpenFile;
use crate::filesystem::Filesystem;

/// How long an entry is trusted.
const VALID: Duration = Duration::from_secs(1);
/// How long an entry is served past [`VALID`] while another request opens its path again:
/// an open stuck on a hung disk does not keep a replaced or deleted file in service (found
/// by review).
const REOPENING_AT_MOST: Duration = Duration::from_secs(5);
/// Most entries kept per worker.
const MAX_ENTRIES: usize = 1024;
/// Longest path cached: a longer one (no real asset's) is opened per request, so that
/// clients sending long junk paths cannot pin much memory here.
const MAX_KEY: usize = 512;
/// An entry not asked for this long is dropped, with its fd (nginx's `open_file_cache
/// inactive=60s`): a replaced asset nobody asks for again does not keep its disk space.
const INACTIVE: Duration = Duration::from_secs(60);
/// Largest file whose bytes are kept with its entry (one that goes out in the head's write).
pub(crate) const SMALL_FILE: u64 = 16 * 1024;
/// Most bytes of small files kept per worker.
const MAX_HELD: usize = 1024 * 1024;
/// Most opens in flight per worker. Each takes a thread of tokio's blocking pool, which the
/// runtime tokio-uring builds caps only at 512: a burst of requests for uncached paths (or a
/// slow disk) waits here instead of starting hundreds of threads.
const MAX_OPENING: usize = 16;

/// A regular file, open.
#[derive(Clone)]
pub(crate) struct CachedFile {
    pub(crate) file: Rc<OpenFile>,
    pub(crate) meta: FileMeta,
    /// What tells a write to the file since it was opened.
    stamp: Stamp,
    /// Its Last-Modified and ETag, formatted.
    pub(crate) validators: Validators,
    /// Its Content-Type, from its name's extension (looked up once per opening; shared, so
    /// that a request's copy costs no allocation whatever the type).
    pub(crate) content_type: Rc<str>,
    /// The whole file, when it is small and the worker's budget allowed.
    pub(crate) bytes: Option<Rc<Kept>>,
}

impl CachedFile {
    /// The filesystem the file is on.
    pub(crate) fn filesystem(&self) -> Filesystem {
        self.stamp.filesystem()
    }
}

/// A small file's bytes, kept with its entry.
pub(crate) struct Kept {
    pub(crate) plain: Box<[u8]>,
    /// The same bytes as a gzip stream, at this level, made by the first request that
    /// wanted them compressed (`[gzip]`): the entry's other requests send them as they are,
    /// so a busy small file is compressed about once a second per worker, not per request.
    /// Not counted in [`MAX_HELD`]: compressing adds at most a few bytes, so a worker's
    /// small files take at most twice that.
    pub(crate) gzipped: RefCell<Option<(u32, Box<[u8]>)>>,
}

/// What a path turned out to be.
#[derive(Clone)]
pub(crate) enum Lookup {
    /// A regular file, open, with its metadata.
    File(CachedFile),
    /// A directory.
    Directory,
    /// Nothing servable.
    NotFound,
    /// The host failed to open it (see [`Opened::Failed`]): never kept in the cache.
    Failed(std::io::ErrorKind),
}

/// Whether a file whose bytes are read per request was written where it is since it was
/// opened (`cp` over it, `rsync --inplace`): its kept length and validators no longer hold.
fn written_in_place(found: &Lookup) -> bool {
    match found {
        Lookup::File(cached) if cached.bytes.is_none() => !cached.stamp.unchanged(&**cached.file),
        _ => false,
    }
}

struct Entry {
    found: Lookup,
    at: Coarse,
    /// A request is opening the path again: the others are served this entry meanwhile.
    reopening: bool,
}

/// One root's entries, by path.
type Paths = HashMap<Box<[u8]>, Entry>;

/// One worker's cache, keyed by static route and path.
pub(crate) struct FileCache {
    /// Per root (a static route's index among the routes), path → entry.
    entries: RefCell<HashMap<usize, Paths>>,
    /// Insertion order, for eviction.
    order: RefCell<VecDeque<(usize, Box<[u8]>)>>,
    /// Bytes of small files held by the entries.
    held: Cell<usize>,
    /// Opens in flight on the blocking pool. A permit goes into the blocking task and ends
    /// with it, so an open stuck on a slow disk keeps its place even after its request left.
    opening: Arc<Semaphore>,
    /// Its configuration was replaced: what is opened is served, never kept.
    retired: Cell<bool>,
}

impl Default for FileCache {
    fn default() -> Self {
        FileCache {
            entries: RefCell::default(),
            order: RefCell::default(),
            held: Cell::default(),
            opening: Arc::new(Semaphore::new(MAX_OPENING)),
            retired: Cell::new(false),
        }
    }
}

impl FileCache {
    /// `rel` under `root` (the root of the route at `route`), from the cache or opened.
    pub(crate) async fn open(&self, route: usize, files: &StaticRoute, rel: &[u8]) -> Lookup {
        match self.reused(route, rel) {
            Some(found) => found,
            None => self.open_anew(route, files, rel).await,
        }
    }

    /// Opens `rel` under `root` on the blocking pool (after [`FileCache::reused`] said so),
    /// within the worker's bound on opens in flight, and keeps what it found.
    pub(crate) async fn open_anew(&self, route: usize, files: &StaticRoute, rel: &[u8]) -> Lookup {
        // However this open ends (failed, or its request gone), another may start.
        let _reopening = Reopening {
            cache: self,
            route,
            rel,
        };
        // Never closed, so acquiring fails only if it were: then nothing is servable.
        let Ok(opening) = Arc::clone(&self.opening).acquire_owned().await else {
            return Lookup::Failed(std::io::ErrorKind::Other);
        };
        let (root, owned) = (Arc::clone(&files.root), rel.to_vec());
        let room = self.held.get() < MAX_HELD;
        let opened = crate::blocking::run(opening, move |_opening| {
            let opened = root.open_beneath(&owned);
            let bytes = match &opened {
                Opened::File(file, meta, _) if room && meta.size <= SMALL_FILE => {
                    read_whole(file, meta.size)
                }
                _ => None,
            };
            (opened, bytes)
        })
        .await;
        let found = match opened {
            Some((Opened::File(file, meta, stamp), bytes)) => {
                let bytes = bytes
                    .filter(|b| self.held.get() + b.len() <= MAX_HELD)
                    .map(|plain| {
                        Rc::new(Kept {
                            plain: plain.into_boxed_slice(),
                            gzipped: RefCell::default(),
                        })
                    });
                Lookup::File(CachedFile {
                    file: Rc::new(OpenFile::new(File::from_std(file), stamp.filesystem())),
                    meta,
                    stamp,
                    validators: Validators::of(&meta),
                    content_type: Rc::from(files.types.content_type(typed_as(files, rel))),
                    bytes,
                })
            }
            Some((Opened::Directory, _)) => Lookup::Directory,
            Some((Opened::NotFound, _)) => Lookup::NotFound,
            Some((Opened::Failed(kind), _)) => return Lookup::Failed(kind),
            Some((Opened::Short(kind), _)) => {
                return self
                    .kept_meanwhile(route, rel)
                    .unwrap_or(Lookup::Failed(kind));
            }
            // No thread to open it on (a pids limit), as short of a resource as an open
            // without a descriptor; or the open panicked.
            None => {
                let kind = std::io::ErrorKind::Other;
                return self
                    .kept_meanwhile(route, rel)
                    .unwrap_or(Lookup::Failed(kind));
            }
        };
        if rel.len() <= MAX_KEY && !self.retired.get() {
            self.insert(route, rel, found.clone());
        }
        found
    }

    /// The entry for `rel` while it is trusted, or while another request opens it again;
    /// `None` when this request is to open it ([`FileCache::open_anew`]; the entry, if any,
    /// then says so).
    ///
    /// A file whose bytes are read per request is looked at first ([`Stamp::unchanged`]):
    /// one written in place (`cp` over it, `rsync --inplace`) would go out as its new
    /// bytes under its old length and validators, and be cached so for its whole `expires`
    /// (found by review); then it is opened again. nginx without `open_file_cache` looks at
    /// it for each request too.
    pub(crate) fn reused(&self, route: usize, rel: &[u8]) -> Option<Lookup> {
        let mut entries = self.entries.borrow_mut();
        let entry = entries.get_mut(&route)?.get_mut(rel)?;
        let age = entry.at.elapsed();
        let written = written_in_place(&entry.found);
        if !written && (age < VALID || (entry.reopening && age < VALID + REOPENING_AT_MOST)) {
            return Some(entry.found.clone());
        }
        entry.reopening = true;
        None
    }

    /// The entry for `rel`, trusted for another [`VALID`], when it could not be opened again
    /// for want of file descriptors or memory: a file it holds is still open, and served as
    /// nginx's open file cache serves what it holds (found by review: a connection flood
    /// that used up the fds made every cached file a 500). Not a file written in place since
    /// (its bytes would not match its length and validators).
    fn kept_meanwhile(&self, route: usize, rel: &[u8]) -> Option<Lookup> {
        let mut entries = self.entries.borrow_mut();
        let entry = entries.get_mut(&route)?.get_mut(rel)?;
        if written_in_place(&entry.found) {
            return None;
        }
        entry.at = Coarse::now();
        Some(entry.found.clone())
    }

    /// Drops every entry, closing the files no request holds: a configuration replaced by
    /// a reload keeps its worker alive while its last requests finish (a WebSocket may take
    /// hours), and its cache would otherwise hold its fds and replaced files that long.
    /// Nothing is kept after (an open in flight now would fill it again; found by review).
    pub(crate) fn clear(&self) {
        self.retired.set(true);
        self.entries.borrow_mut().clear();
        self.order.borrow_mut().clear();
        self.held.set(0);
    }

    fn insert(&self, route: usize, rel: &[u8], found: Lookup) {
        let mut entries = self.entries.borrow_mut();
        let mut order = self.order.borrow_mut();
        // Two of the oldest entries per insertion, as nginx's cache expires them: each
        // inactive one is dropped, an active one goes to the back. Every busy file comes
        // through here once a second (it is opened again), so the whole order turns over.
        for _ in 0..2 {
            let Some((route, key)) = order.pop_front() else {
                break;
            };
            let map = entries.get_mut(&route);
            let inactive = map
                .as_ref()
                .and_then(|m| m.get(&key))
                .is_none_or(|e| e.at.elapsed() > INACTIVE);
            if !inactive {
                order.push_back((route, key));
                continue;
            }
            if let Some(gone) = map.and_then(|m| m.remove(&key)) {
                self.held.set(self.held.get() - held_by(&gone.found));
            }
        }
        let key: Box<[u8]> = rel.into();
        self.held.set(self.held.get() + held_by(&found));
        let fresh = Entry {
            found,
            at: Coarse::now(),
            reopening: false,
        };
        if let Some(stale) = entries.entry(route).or_default().insert(key.clone(), fresh) {
            // A stale entry replaced: its place in the order stays.
            self.held.set(self.held.get() - held_by(&stale.found));
            return;
        }
        order.push_back((route, key));
        while order.len() > MAX_ENTRIES {
            if let Some((route, key)) = order.pop_front()
                && let Some(map) = entries.get_mut(&route)
                && let Some(gone) = map.remove(&key)
            {
                self.held.set(self.held.get() - held_by(&gone.found));
            }
        }
    }
}

/// An entry being opened again by one request: its mark is taken off when that open ends,
/// whatever became of it (a fresh entry replaced it, the open failed, its request left).
struct Reopening<'a> {
    cache: &'a FileCache,
    route: usize,
    rel: &'a [u8],
}

impl Drop for Reopening<'_> {
    fn drop(&mut self) {
        let mut entries = self.cache.entries.borrow_mut();
        if let Some(entry) = entries
            .get_mut(&self.route)
            .and_then(|m| m.get_mut(self.rel))
        {
            entry.reopening = false;
        }
    }
}

/// Bytes of file content an entry holds.
fn held_by(found: &Lookup) -> usize {
    match found {
        Lookup::File(CachedFile {
            bytes: Some(bytes), ..
        }) => bytes.plain.len(),
        _ => 0,
    }
}

/// The whole of a small file; `None` if it cannot be read whole (it changed meanwhile: the
/// request then reads it as a large one would).
fn read_whole(file: &std::fs::File, size: u64) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0; usize::try_from(size).ok()?];
    file.read_exact_at(&mut bytes, 0).ok()?;
    Some(bytes)
}

/// The name a file of `files` is typed by: the route's one file's path, else its own.
fn typed_as<'n>(files: &'n StaticRoute, rel: &'n [u8]) -> &'n [u8] {
    files
        .file
        .as_ref()
        .map_or(rel, |one| one.typed_as.as_bytes())
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::{FileCache, Lookup, SMALL_FILE};
    use crate::clock::Coarse;
    use crate::static_files::{Root, StaticRoute};

    /// A route serving the files of `dir`, as the built-in table types them.
    fn files_in(dir: &std::path::Path) -> StaticRoute {
        StaticRoute::plain(Root::open(dir).unwrap())
    }

    #[test]
    fn small_files_keep_their_bytes_and_large_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let small = vec![b's'; usize::try_from(SMALL_FILE).unwrap()];
        std::fs::write(dir.path().join("small.css"), &small).unwrap();
        std::fs::write(dir.path().join("large.bin"), vec![b'l'; 20_000]).unwrap();
        let root = files_in(dir.path());
        tokio_uring::start(async {
            let cache = FileCache::default();
            let Lookup::File(found) = cache.open(0, &root, b"small.css").await else {
                panic!("small.css is a file");
            };
            assert_eq!(
                found.bytes.as_deref().map(|b| &b.plain[..]),
                Some(&small[..])
            );
            let Lookup::File(found) = cache.open(0, &root, b"large.bin").await else {
                panic!("large.bin is a file");
            };
            assert!(
                found.bytes.is_none(),
                "a file over {SMALL_FILE} bytes is read per request"
            );
            assert_eq!(cache.held.get(), small.len());
            // Opening the same path again (here: forced) replaces the entry, and its count.
            cache.insert(0, b"small.css", Lookup::NotFound);
            assert_eq!(cache.held.get(), 0);
        });
    }

    /// Past its second an entry is opened again by one request; the others are served it
    /// meanwhile (each opened it), and once that open ends, however it ended, the next
    /// request may open it again.
    #[test]
    fn an_expired_entry_is_opened_again_by_one_request_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.css"), b"a{}").unwrap();
        let root = files_in(dir.path());
        tokio_uring::start(async {
            let cache = FileCache::default();
            let Lookup::File(first) = cache.open(0, &root, b"a.css").await else {
                panic!("a.css is a file");
            };
            assert!(cache.reused(0, b"a.css").is_some(), "trusted for a second");
            // Its entry made `age` old, and marked as being opened again or not.
            let set = |age, reopening| {
                let mut entries = cache.entries.borrow_mut();
                let entry = entries.get_mut(&0).unwrap().get_mut(&b"a.css"[..]).unwrap();
                entry.at = Coarse::ago(age);
                entry.reopening = reopening;
            };
            set(super::VALID * 2, false);
            assert!(cache.reused(0, b"a.css").is_none(), "this request opens it");
            let Some(Lookup::File(meanwhile)) = cache.reused(0, b"a.css") else {
                panic!("the others are served the entry");
            };
            assert!(Rc::ptr_eq(&meanwhile.file, &first.file));
            // That open ended without a fresh entry (it failed, or its request left).
            let ended = || {
                drop(super::Reopening {
                    cache: &cache,
                    route: 0,
                    rel: b"a.css",
                })
            };
            ended();
            assert!(cache.reused(0, b"a.css").is_none(), "the next one opens it");
            ended();
            // An open that ends with a fresh entry: trusted again.
            let Lookup::File(fresh) = cache.open(0, &root, b"a.css").await else {
                panic!("a.css is a file");
            };
            assert!(!Rc::ptr_eq(&fresh.file, &first.file));
            assert!(cache.reused(0, b"a.css").is_some());
            // An open that takes too long (a hung disk) no longer holds the others back.
            set(super::VALID + super::REOPENING_AT_MOST * 2, true);
            assert!(
                cache.reused(0, b"a.css").is_none(),
                "past the bound, opened again"
            );
        });
    }

    #[test]
    fn long_paths_are_looked_up_but_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = files_in(dir.path());
        tokio_uring::start(async {
            let cache = FileCache::default();
            let long = vec![b'a'; super::MAX_KEY + 1];
            assert!(matches!(
                cache.open(0, &root, &long).await,
                Lookup::NotFound
            ));
            assert!(matches!(
                cache.open(0, &root, b"short-missing").await,
                Lookup::NotFound
            ));
            let entries = cache.entries.borrow();
            let kept: Vec<&[u8]> = entries[&0].keys().map(|k| &k[..]).collect();
            assert_eq!(kept, [&b"short-missing"[..]]);
            assert_eq!(cache.order.borrow().len(), 1);
        });
    }

    #[test]
    fn a_cleared_cache_serves_what_it_opens_and_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.css"), b"a").unwrap();
        let root = files_in(dir.path());
        tokio_uring::start(async {
            let cache = FileCache::default();
            assert!(matches!(
                cache.open(0, &root, b"a.css").await,
                Lookup::File(_)
            ));
            cache.clear();
            assert!(matches!(
                cache.open(0, &root, b"a.css").await,
                Lookup::File(_)
            ));
            assert!(cache.entries.borrow().is_empty());
            assert_eq!((cache.order.borrow().len(), cache.held.get()), (0, 0));
        });
    }
}
