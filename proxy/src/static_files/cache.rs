//! A small per-worker cache of opened files (nginx's `open_file_cache`): a busy file is opened
//! on the blocking pool about once a second per worker, not once per request.
//!
//! An entry, found or not, is trusted for [`VALID`]; after that the path is opened again, so
//! a file that was replaced (a deploy renaming new assets into place) or changed is noticed
//! within a second. At most [`MAX_ENTRIES`] entries are kept; the oldest go first. A cached
//! file stays open while a request reads it, even if it leaves the cache meanwhile.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_uring::fs::File;

use super::decision::FileMeta;
use super::open::{Opened, Root};

/// How long an entry is trusted.
const VALID: Duration = Duration::from_secs(1);
/// Most entries kept per worker.
const MAX_ENTRIES: usize = 1024;

/// What a path turned out to be.
#[derive(Clone)]
pub(crate) enum Lookup {
    /// A regular file, open, with its metadata.
    File(Rc<File>, FileMeta),
    /// A directory.
    Directory,
    /// Nothing servable.
    NotFound,
}

struct Entry {
    found: Lookup,
    at: Instant,
}

/// One root's entries, by path.
type Paths = HashMap<Box<[u8]>, Entry>;

/// One worker's cache, keyed by static route and path.
#[derive(Default)]
pub(crate) struct FileCache {
    /// Per root (a static route's index among the routes), path → entry.
    entries: RefCell<HashMap<usize, Paths>>,
    /// Insertion order, for eviction.
    order: RefCell<VecDeque<(usize, Box<[u8]>)>>,
}

impl FileCache {
    /// `rel` under `root` (the root of the route at `route`), from the cache or opened.
    pub(crate) async fn open(&self, route: usize, root: &Arc<Root>, rel: &[u8]) -> Lookup {
        if let Some(entry) = self.entries.borrow().get(&route).and_then(|m| m.get(rel))
            && entry.at.elapsed() < VALID
        {
            return entry.found.clone();
        }
        let (root, owned) = (Arc::clone(root), rel.to_vec());
        let opened = tokio::task::spawn_blocking(move || root.open_beneath(&owned)).await;
        let found = match opened {
            Ok(Opened::File(file, meta)) => Lookup::File(Rc::new(File::from_std(file)), meta),
            Ok(Opened::Directory) => Lookup::Directory,
            Ok(Opened::NotFound) | Err(_) => Lookup::NotFound,
        };
        self.insert(route, rel, found.clone());
        found
    }

    fn insert(&self, route: usize, rel: &[u8], found: Lookup) {
        let mut entries = self.entries.borrow_mut();
        let mut order = self.order.borrow_mut();
        let key: Box<[u8]> = rel.into();
        let fresh = Entry {
            found,
            at: Instant::now(),
        };
        if entries
            .entry(route)
            .or_default()
            .insert(key.clone(), fresh)
            .is_some()
        {
            // A stale entry replaced: its place in the order stays.
            return;
        }
        order.push_back((route, key));
        while order.len() > MAX_ENTRIES {
            if let Some((route, key)) = order.pop_front()
                && let Some(map) = entries.get_mut(&route)
            {
                map.remove(&key);
            }
        }
    }
}
