//! The operator's error pages (`error_pages = { 502 = "/srv/errors/502.html" }`, nginx's
//! `error_page`): for each listed status, a file whose bytes replace the short text body of
//! ringway's own answers with that status, and of the app's answers on routes with
//! `intercept_errors`.
//!
//! The files are read when the configuration is checked (an unreadable one stops ringway)
//! and again on SIGHUP. Each page lives in memory once, behind an `Arc`; an answer takes a
//! read lock for a moment to clone that `Arc` and never touches the file. A reload swaps
//! each page whole, and a file that cannot be read again keeps its old page.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use crate::small_file::read_small_file;
use crate::static_files::content_type;

/// The largest page: a page is copied into each answer that carries it.
pub const MAX_PAGE: u64 = 1 << 20;

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

/// One status's page and the file it comes from.
struct Entry {
    status: u16,
    file: PathBuf,
    page: RwLock<Arc<Page>>,
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
                    page: RwLock::new(Arc::new(page)),
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

    /// The page for `status`, if one is configured.
    pub fn get(&self, status: u16) -> Option<Arc<Page>> {
        let entry = self.entries.iter().find(|e| e.status == status)?;
        let page = entry.page.read().unwrap_or_else(PoisonError::into_inner);
        Some(Arc::clone(&page))
    }

    /// Reads every file again (SIGHUP). A file read whole replaces its page; one that cannot
    /// be read keeps the page it had, and is returned among the errors.
    pub fn reload(&self) -> (usize, Vec<PageError>) {
        let mut reloaded = 0;
        let mut errors = Vec::new();
        for entry in &self.entries {
            match read_page(&entry.file) {
                Ok(page) => {
                    *entry.page.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(page);
                    reloaded += 1;
                }
                Err(reason) => errors.push(PageError {
                    status: entry.status,
                    file: entry.file.clone(),
                    reason,
                }),
            }
        }
        (reloaded, errors)
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

    #[test]
    fn pages_are_read_typed_and_reloaded_or_kept() {
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

        std::fs::write(&html, "<h1>back soon</h1>").unwrap();
        std::fs::remove_file(&json).unwrap();
        let (reloaded, errors) = pages.reload();
        assert_eq!(reloaded, 1);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].status, 503);
        assert_eq!(pages.get(502).unwrap().body(), b"<h1>back soon</h1>");
        assert_eq!(pages.get(503).unwrap().body(), b"{}", "the old page stays");
        // An answer holding the old page keeps it whole.
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
