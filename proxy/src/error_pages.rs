//! The operator's error pages (`error_pages = { 502 = "/srv/errors/502.html" }`, nginx's
//! `error_page`): for each listed status, a file whose bytes replace the short text body of
//! ringway's own answers with that status, and of the app's answers on routes with
//! `intercept_errors`.
//!
//! The files are read when the configuration is checked, at start and at each SIGHUP (one
//! that cannot be read stops the start, or refuses the reload: the old configuration keeps
//! its pages). Each page lives in memory once, behind an `Arc` an answer clones; no answer
//! touches the file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::buffer::Budget;
use crate::small_file::read_small_file;
use crate::static_files::content_type;

/// The largest page: a page is copied into each answer that carries it.
pub const MAX_PAGE: u64 = 1 << 20;

/// A page's copy up to this size is part of an answer's share outside `max_buffer_memory`
/// (its head and 64 KiB of body); a bigger one is charged to it ([`Carried`]).
const UNCHARGED_PAGE: usize = 64 * 1024;

/// The statuses a page may be given for: the errors ringway or an app may answer with.
pub const STATUSES: std::ops::RangeInclusive<u16> = 400..=599;

/// One page, as answers carry it.
#[derive(Debug)]
pub struct Page {
    content_type: Box<str>,
    body: Box<[u8]>,
}

impl Page {
    /// Its Content-Type, from the file's extension (`text/html; charset=utf-8` for .html).
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// Its bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// A page as one answer carries it. The answer holds a copy until it is written, which a
/// client that reads nothing makes last `send_timeout`: a page over 64 KiB is charged to
/// `max_buffer_memory` for that long, so that such clients cannot hold copies of it beyond
/// the budget (found by review: 10,000 of them held 9 GB of a 900 KB page).
pub(crate) struct Carried<'a> {
    page: Arc<Page>,
    budget: &'a Budget,
    charged: usize,
}

impl<'a> Carried<'a> {
    /// `page` for an answer (`head_only`: its head alone, nothing copied); `None` when it is
    /// over 64 KiB and the budget has no room for it now.
    pub(crate) fn take(page: Arc<Page>, budget: &'a Budget, head_only: bool) -> Option<Self> {
        let size = if head_only { 0 } else { page.body.len() };
        let charged = if size > UNCHARGED_PAGE { size } else { 0 };
        // Made only once charged: its drop gives the charge back.
        (charged == 0 || budget.try_reserve(charged)).then(|| Carried {
            page,
            budget,
            charged,
        })
    }

    /// The page.
    pub(crate) fn page(&self) -> &Page {
        &self.page
    }
}

impl Drop for Carried<'_> {
    fn drop(&mut self) {
        if self.charged > 0 {
            self.budget.release(self.charged);
        }
    }
}

/// One status's page and the file it comes from.
struct Entry {
    status: u16,
    file: PathBuf,
    page: Arc<Page>,
}

/// Every configured page (none by default).
#[derive(Default)]
pub struct ErrorPages {
    entries: Vec<Entry>,
}

/// Why a file could not serve as a page.
#[derive(Debug)]
pub struct PageError {
    /// The status it is configured for.
    pub status: u16,
    /// The file.
    pub file: PathBuf,
    /// What went wrong.
    pub reason: String,
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.reason)
    }
}

impl ErrorPages {
    /// Reads the page of each `(status, file)`; the first file that cannot be read is the
    /// error.
    pub fn load(files: impl IntoIterator<Item = (u16, PathBuf)>) -> Result<Self, PageError> {
        let entries = files
            .into_iter()
            .map(|(status, file)| {
                let page = read_page(&file).map_err(|reason| PageError {
                    status,
                    file: file.clone(),
                    reason,
                })?;
                Ok(Entry {
                    status,
                    file,
                    page: Arc::new(page),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(ErrorPages { entries })
    }

    /// Whether no page is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The statuses that have a page, in configuration order.
    pub fn statuses(&self) -> impl Iterator<Item = u16> + '_ {
        self.entries.iter().map(|e| e.status)
    }

    /// Each status and the size of its page now.
    pub fn sizes(&self) -> impl Iterator<Item = (u16, usize)> + '_ {
        self.entries
            .iter()
            .map(|entry| (entry.status, entry.page.body.len()))
    }

    /// Whether an answer can carry a page of `size` bytes while `max_buffer_memory` is
    /// `budget`: one over 64 KiB is charged to it ([`Carried`]).
    fn fits(size: usize, budget: usize) -> bool {
        size <= UNCHARGED_PAGE || size <= budget
    }

    /// The first page no answer could carry while `max_buffer_memory` is `budget`: its
    /// status, and what to say of it (`None`: every page fits).
    pub fn first_misfit(&self, budget: usize) -> Option<(u16, String)> {
        let (status, size) = self.sizes().find(|&(_, size)| !Self::fits(size, budget))?;
        Some((
            status,
            format!(
                "the page ({size} bytes) is larger than max_buffer_memory ({budget} bytes), \
                 which an answer carrying a page over 64 KiB is charged to: it could never be \
                 sent; raise max_buffer_memory or make the page smaller"
            ),
        ))
    }

    /// The page for `status`, if one is configured.
    pub fn get(&self, status: u16) -> Option<Arc<Page>> {
        let entry = self.entries.iter().find(|e| e.status == status)?;
        Some(Arc::clone(&entry.page))
    }
}

impl fmt::Debug for ErrorPages {
    /// The statuses and files, not the pages' bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|e| (e.status, &e.file)))
            .finish()
    }
}

/// Reads `file` whole, if it is a regular file of at most [`MAX_PAGE`] bytes.
fn read_page(file: &Path) -> Result<Page, String> {
    let body = read_small_file(file, MAX_PAGE)?;
    let name = file.as_os_str().as_encoded_bytes();
    Ok(Page {
        content_type: content_type(name).into(),
        body: body.into_boxed_slice(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn page_of(size: usize) -> Arc<Page> {
        Arc::new(Page {
            content_type: "text/html".into(),
            body: vec![b'x'; size].into(),
        })
    }

    #[test]
    fn a_big_page_is_carried_only_while_the_budget_has_room() {
        let budget = Budget::new(300 * 1024);
        let big = page_of(100 * 1024);
        let held: Vec<Carried<'_>> = (0..3)
            .map(|_| Carried::take(Arc::clone(&big), &budget, false).unwrap())
            .collect();
        assert_eq!(budget.used(), 300 * 1024);
        assert!(Carried::take(Arc::clone(&big), &budget, false).is_none());
        // A HEAD answer copies nothing; a small page is within the answer's own share.
        assert!(Carried::take(Arc::clone(&big), &budget, true).is_some());
        assert!(Carried::take(page_of(UNCHARGED_PAGE), &budget, false).is_some());
        drop(held);
        assert_eq!(budget.used(), 0, "given back once the answers are written");
        let again = Carried::take(big, &budget, false).unwrap();
        assert_eq!(again.page().body().len(), 100 * 1024);
    }

    #[test]
    fn pages_are_read_typed_and_kept_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let html = dir.path().join("502.html");
        let json = dir.path().join("503.json");
        std::fs::write(&html, "<h1>down</h1>").unwrap();
        std::fs::write(&json, "{}").unwrap();
        let pages = ErrorPages::load([(502, html.clone()), (503, json.clone())]).unwrap();
        let page = pages.get(502).unwrap();
        assert_eq!(page.body(), b"<h1>down</h1>");
        assert_eq!(page.content_type(), "text/html; charset=utf-8");
        assert_eq!(
            pages.get(503).unwrap().content_type(),
            "application/json; charset=utf-8"
        );
        assert!(pages.get(504).is_none());

        // Read once: a change of the file is a reload's to read.
        std::fs::write(&html, "<h1>back soon</h1>").unwrap();
        assert_eq!(pages.get(502).unwrap().body(), b"<h1>down</h1>");
        assert_eq!(page.body(), b"<h1>down</h1>");
    }

    #[test]
    fn unreadable_large_and_odd_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.html");
        let err = ErrorPages::load([(404, missing.clone())]).unwrap_err();
        assert_eq!((err.status, &err.file), (404, &missing));
        assert!(err.reason.contains("No such file"), "{err}");

        let err = ErrorPages::load([(500, dir.path().to_owned())]).unwrap_err();
        assert_eq!(err.reason, "not a regular file");

        let big = dir.path().join("big.html");
        std::fs::write(&big, vec![b'x'; MAX_PAGE as usize + 1]).unwrap();
        let err = ErrorPages::load([(500, big)]).unwrap_err();
        assert!(err.reason.contains("larger than"), "{err}");

        let fifo = dir.path().join("fifo.html");
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        let err = ErrorPages::load([(500, fifo)]).unwrap_err();
        assert_eq!(err.reason, "not a regular file");
    }
}
