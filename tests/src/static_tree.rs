//! A file tree for the static-file tests, built per test in a temp dir: every kind of file a
//! static route meets (text and binary files of several types, an empty one, a 1 GiB sparse
//! one, UTF-8 and space names, precompressed siblings, symlinks inside and out of the root,
//! a FIFO, a socket, a device, dotfiles, directories with and without an index), a secret
//! next to the root that no answer may ever contain, and a private dir for X-Accel-Redirect.
//!
//! Every regular file gets a fixed mtime ([`MTIME`], the siblings a little later), so ETags
//! and Last-Modified values are known in advance, and [`StaticTree::etag`] computes the ETag
//! the way nginx does (`"<mtime hex>-<size hex>"`). [`http_date`] and [`parse_http_date`]
//! handle the IMF-fixdate format of Last-Modified, Expires and the conditional headers.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, symlink};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use crate::data::pattern;

/// The mtime of every plain file: 2021-03-04 05:06:07 UTC.
pub const MTIME: u64 = 1_614_834_367;
/// The `.gz` siblings' mtime: a minute later, so their validators differ in both parts.
pub const GZ_MTIME: u64 = MTIME + 60;
/// The `.br` siblings' mtime.
pub const BR_MTIME: u64 = MTIME + 120;

/// `hello.txt`: 13 bytes of text, the file most cases ask for.
pub const TEXT: &str = "hello.txt";
/// Its contents.
pub const TEXT_BODY: &[u8] = b"hello static\n";
/// A stylesheet with both precompressed siblings (`.gz`, `.br`), each with its own content.
pub const CSS: &str = "css/site.css";
/// A script with a `.gz` sibling only (a request that prefers br falls back to gzip or plain).
pub const JS: &str = "js/app.js";
/// An SVG image (text: it gets a charset).
pub const SVG: &str = "img/logo.svg";
/// A PNG-like binary: every byte value, a PNG signature first.
pub const PNG: &str = "img/pixel.png";
/// A JSON document.
pub const JSON: &str = "data/config.json";
/// A file whose extension nobody knows: `application/octet-stream`.
pub const UNKNOWN: &str = "data/blob.qqq";
/// A file without an extension: `application/octet-stream`.
pub const NO_EXTENSION: &str = "data/README";
/// An empty file.
pub const EMPTY: &str = "empty.txt";
/// A 1 GiB sparse file (ftruncate: no disk used) whose last [`SPARSE_TAIL`] bytes are the
/// pattern, so a range at its end has bytes worth checking.
pub const SPARSE: &str = "big/sparse.bin";
/// [`SPARSE`]'s size.
pub const SPARSE_SIZE: u64 = 1 << 30;
/// How many bytes at the end of [`SPARSE`] are written (the rest reads as zeros).
pub const SPARSE_TAIL: usize = 4096;
/// A name in UTF-8; requested percent-encoded as [`UTF8_NAME_ENCODED`].
pub const UTF8_NAME: &str = "caf\u{e9}.txt";
/// [`UTF8_NAME`] as a request path segment.
pub const UTF8_NAME_ENCODED: &str = "caf%C3%A9.txt";
/// A name with a space; requested as [`SPACE_NAME_ENCODED`].
pub const SPACE_NAME: &str = "a b.txt";
/// [`SPACE_NAME`] as a request path segment.
pub const SPACE_NAME_ENCODED: &str = "a%20b.txt";
/// A dotfile at the root.
pub const DOTFILE: &str = ".env";
/// A file in a dot-directory.
pub const DOTDIR_FILE: &str = ".git/config";
/// A directory with an `index.html`.
pub const INDEXED_DIR: &str = "docs";
/// That index.
pub const INDEX: &str = "docs/index.html";
/// Another file in [`INDEXED_DIR`].
pub const GUIDE: &str = "docs/guide.txt";
/// A directory without an index (holding [`BARE_DIR_FILE`]): never listed.
pub const BARE_DIR: &str = "bare";
/// The file in [`BARE_DIR`], whose name must never appear in an answer for the directory.
pub const BARE_DIR_FILE: &str = "bare/listed-nowhere.txt";
/// A relative symlink to [`TEXT`], inside the root: served.
pub const LINK_IN_FILE: &str = "link-to-hello.txt";
/// A symlink to [`INDEXED_DIR`], inside the root: served.
pub const LINK_IN_DIR: &str = "link-to-docs";
/// A relative symlink to the secret next to the root: refused.
pub const LINK_OUT_FILE: &str = "link-to-secret.txt";
/// An absolute symlink to the secret: refused.
pub const LINK_OUT_ABSOLUTE: &str = "link-to-secret-absolute.txt";
/// A symlink to the directory next to the root: refused, and all under it.
pub const LINK_OUT_DIR: &str = "link-to-outside";
/// A symlink in [`INDEXED_DIR`] climbing out of the root with `../..`: refused.
pub const LINK_OUT_NESTED: &str = "docs/up-and-out.txt";
/// A symlink to nothing.
pub const LINK_DANGLING: &str = "link-to-nowhere";
/// A symlink to itself through another (ELOOP).
pub const LINK_LOOP: &str = "link-loop-a";
/// A FIFO with no writer: opening it for reading blocks unless done non-blocking.
pub const FIFO: &str = "fifo";
/// A unix socket file (opening it fails with ENXIO).
pub const SOCKET: &str = "socket";
/// A character device (`/dev/null`'s numbers), made with mknod: needs root (CI runs as root).
pub const DEVICE: &str = "null-device";
/// The secret next to the root (`BASE/secret.txt`), holding [`StaticTree::marker`].
pub const SECRET: &str = "secret.txt";
/// The directory next to the root (`BASE/outside`), its files holding the marker too.
pub const OUTSIDE_DIR: &str = "outside";
/// The file in [`OUTSIDE_DIR`].
pub const OUTSIDE_FILE: &str = "outside/page.txt";
/// The report in the private dir (the internal route's root), served via X-Accel-Redirect.
pub const REPORT: &str = "report.pdf";
/// A text file in the private dir: the app's Content-Type must win over the extension's.
pub const NOTES: &str = "notes.txt";
/// A symlink in the private dir to the secret: refused there too.
pub const PRIVATE_LINK_OUT: &str = "link-to-secret.txt";

/// The tree: `BASE/root` (the static root), `BASE/private` (the internal root), and
/// `BASE/secret.txt` and `BASE/outside/` that no answer may reveal. Removed on drop.
pub struct StaticTree {
    dir: TempDir,
    marker: String,
    private_marker: String,
}

impl StaticTree {
    /// Builds the whole tree. Panics (with the reason) if a piece cannot be made, e.g. the
    /// device node without root.
    pub fn build() -> StaticTree {
        let dir = tempfile::Builder::new()
            .prefix("ringway-static-")
            .tempdir()
            .expect("temp dir");
        let unique = format!(
            "{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos()
        );
        let tree = StaticTree {
            dir,
            marker: format!("RINGWAY-SECRET-{unique}"),
            private_marker: format!("RINGWAY-PRIVATE-{unique}"),
        };
        tree.make_outside();
        tree.make_files();
        tree.make_special_files();
        tree.make_links();
        tree.make_private();
        tree
    }

    /// The temp dir holding everything.
    pub fn base(&self) -> &Path {
        self.dir.path()
    }

    /// The static route's root (`BASE/root`).
    pub fn root(&self) -> PathBuf {
        self.base().join("root")
    }

    /// The internal route's root (`BASE/private`).
    pub fn private(&self) -> PathBuf {
        self.base().join("private")
    }

    /// `BASE/root/rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// The text in every file outside the root (the secret, the outside dir): an answer that
    /// holds it served a file it must not.
    pub fn marker(&self) -> &str {
        &self.marker
    }

    /// The text in every file of the private dir: only X-Accel-Redirect may serve those.
    pub fn private_marker(&self) -> &str {
        &self.private_marker
    }

    /// The contents of `BASE/root/rel` (following symlinks).
    pub fn bytes(&self, rel: &str) -> Vec<u8> {
        read(&self.path(rel))
    }

    /// The contents of `BASE/private/name`.
    pub fn private_bytes(&self, name: &str) -> Vec<u8> {
        read(&self.private().join(name))
    }

    /// The size of `BASE/root/rel`.
    pub fn size(&self, rel: &str) -> u64 {
        metadata(&self.path(rel)).len()
    }

    /// The ETag nginx gives `BASE/root/rel` (see [`etag_of`]).
    pub fn etag(&self, rel: &str) -> String {
        etag_of(&self.path(rel))
    }

    /// Its Last-Modified value.
    pub fn last_modified(&self, rel: &str) -> String {
        last_modified_of(&self.path(rel))
    }

    /// Writes another file under the root (for a test's own needs, e.g. a 10 MiB one), with
    /// the fixed mtime.
    pub fn add_file(&self, rel: &str, contents: &[u8]) {
        write_file(&self.path(rel), contents, MTIME);
    }

    fn make_outside(&self) {
        let secret = format!("{}: outside the root, never to be served\n", self.marker);
        write_file(&self.base().join(SECRET), secret.as_bytes(), MTIME);
        let page = format!("{}: a page outside the root\n", self.marker);
        write_file(&self.base().join(OUTSIDE_FILE), page.as_bytes(), MTIME);
    }

    fn make_files(&self) {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend((0..=255u8).chain((0..=255u8).rev()));
        let files: [(&str, &[u8]); 12] = [
            (TEXT, TEXT_BODY),
            (CSS, b"body { color: #123; }\n/* plain */\n"),
            (JS, b"console.log(\"plain app.js\");\n"),
            (SVG, b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n"),
            (PNG, &png),
            (JSON, b"{\"static\": true}\n"),
            (UNKNOWN, b"\x00\x01unknown extension\xff"),
            (NO_EXTENSION, b"no extension at all\n"),
            (EMPTY, b""),
            (UTF8_NAME, "caf\u{e9} au lait\n".as_bytes()),
            (SPACE_NAME, b"a name with a space\n"),
            (INDEX, b"<!doctype html><title>docs</title>index of docs\n"),
        ];
        for (rel, contents) in files {
            write_file(&self.path(rel), contents, MTIME);
        }
        write_file(&self.path(GUIDE), b"the guide\n", MTIME);
        write_file(
            &self.path(BARE_DIR_FILE),
            b"in a dir without index\n",
            MTIME,
        );
        write_file(&self.path(DOTFILE), b"SECRET_KEY=dotfile\n", MTIME);
        write_file(&self.path(DOTDIR_FILE), b"[core]\n\tdotdir = true\n", MTIME);
        // Siblings with their own content (not real compression: what matters is which file
        // went out) and their own sizes and mtimes, so every validator tells them apart.
        write_file(
            &self.path(&format!("{CSS}.gz")),
            b"GZIP SIBLING of site.css",
            GZ_MTIME,
        );
        write_file(
            &self.path(&format!("{CSS}.br")),
            b"BROTLI SIBLING of site.css, longer",
            BR_MTIME,
        );
        write_file(
            &self.path(&format!("{JS}.gz")),
            b"GZIP SIBLING of app.js",
            GZ_MTIME,
        );
        self.make_sparse();
    }

    /// 1 GiB by ftruncate (no blocks), then the pattern written over its last bytes.
    fn make_sparse(&self) {
        let path = self.path(SPARSE);
        fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        let mut file = fs::File::create(&path).expect("create the sparse file");
        file.set_len(SPARSE_SIZE).expect("ftruncate to 1 GiB");
        file.seek(SeekFrom::Start(SPARSE_SIZE - SPARSE_TAIL as u64))
            .expect("seek");
        file.write_all(&pattern(SPARSE_TAIL))
            .expect("write the tail");
        file.set_modified(at(MTIME)).expect("set mtime");
    }

    fn make_special_files(&self) {
        let fifo = path_cstring(&self.path(FIFO));
        // SAFETY: mkfifo(3) with a NUL-terminated path we own and a mode.
        let rc = unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) };
        assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
        // The listener is dropped at once: the socket file stays, with nobody behind it.
        UnixListener::bind(self.path(SOCKET)).expect("bind the socket file");
        let device = path_cstring(&self.path(DEVICE));
        // SAFETY: mknod(2) with a NUL-terminated path we own, a mode and a device number.
        let rc =
            unsafe { libc::mknod(device.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 3)) };
        assert_eq!(
            rc,
            0,
            "mknod of a character device (the static tests need root, as CI has): {}",
            std::io::Error::last_os_error()
        );
    }

    fn make_links(&self) {
        let root = self.root();
        let links = [
            (LINK_IN_FILE, PathBuf::from(TEXT)),
            (LINK_IN_DIR, PathBuf::from(INDEXED_DIR)),
            (LINK_OUT_FILE, Path::new("..").join(SECRET)),
            (LINK_OUT_ABSOLUTE, self.base().join(SECRET)),
            (LINK_OUT_DIR, Path::new("..").join(OUTSIDE_DIR)),
            (LINK_OUT_NESTED, Path::new("../..").join(SECRET)),
            (LINK_DANGLING, PathBuf::from("no-such-target")),
            (LINK_LOOP, PathBuf::from("link-loop-b")),
            ("link-loop-b", PathBuf::from(LINK_LOOP)),
        ];
        for (name, target) in links {
            symlink(&target, root.join(name))
                .unwrap_or_else(|e| panic!("symlink {name} -> {}: {e}", target.display()));
        }
    }

    fn make_private(&self) {
        let report = format!(
            "%PDF-1.4\n% {}: the report, served only via X-Accel-Redirect\n",
            self.private_marker
        );
        write_file(&self.private().join(REPORT), report.as_bytes(), MTIME);
        let notes = format!("{}: notes\n", self.private_marker);
        write_file(&self.private().join(NOTES), notes.as_bytes(), MTIME);
        symlink(
            Path::new("..").join(SECRET),
            self.private().join(PRIVATE_LINK_OUT),
        )
        .expect("symlink in the private dir");
    }
}

/// The time `secs` after the epoch.
fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Writes `contents` to `path` (parents created) and sets its mtime to `mtime`.
fn write_file(path: &Path, contents: &[u8], mtime: u64) {
    fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    let file = fs::File::options()
        .write(true)
        .open(path)
        .expect("reopen to set the mtime");
    file.set_modified(at(mtime)).expect("set mtime");
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn metadata(path: &Path) -> fs::Metadata {
    fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
}

fn path_cstring(path: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL in a temp path")
}

/// The strong ETag nginx builds for a file: `"<mtime in seconds, hex>-<size, hex>"`, both
/// lowercase (ngx_http_set_etag), following symlinks.
pub fn etag_of(path: &Path) -> String {
    let meta = metadata(path);
    format!("\"{:x}-{:x}\"", meta.mtime(), meta.len())
}

/// A file's Last-Modified value (its mtime as an IMF-fixdate).
pub fn last_modified_of(path: &Path) -> String {
    let meta = metadata(path);
    http_date(u64::try_from(meta.mtime()).expect("mtime after 1970"))
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `secs` after the epoch as an IMF-fixdate (`Thu, 04 Mar 2021 05:06:07 GMT`).
pub fn http_date(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(i64::try_from(days).expect("days fit i64"));
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses an IMF-fixdate into seconds after the epoch; `None` for anything else.
pub fn parse_http_date(text: &str) -> Option<u64> {
    let rest = text.trim().split_once(", ")?.1;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (the inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_round_trip_and_match_known_values() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(MTIME), "Thu, 04 Mar 2021 05:06:07 GMT");
        // A leap day, and the end of a leap year.
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(1_483_228_799), "Sat, 31 Dec 2016 23:59:59 GMT");
        for secs in [0, MTIME, 951_782_400, 1_483_228_799, 4_102_444_800] {
            assert_eq!(parse_http_date(&http_date(secs)), Some(secs), "{secs}");
        }
        assert_eq!(parse_http_date("Thursday, 04-Mar-21 05:06:07 GMT"), None);
        assert_eq!(parse_http_date("garbage"), None);
    }

    #[test]
    fn the_tree_has_what_the_tests_rely_on() {
        let tree = StaticTree::build();
        assert_eq!(tree.bytes(TEXT), TEXT_BODY);
        assert_eq!(tree.etag(TEXT), format!("\"{MTIME:x}-d\""));
        assert_eq!(tree.last_modified(TEXT), "Thu, 04 Mar 2021 05:06:07 GMT");
        assert_eq!(tree.size(SPARSE), SPARSE_SIZE);
        assert_eq!(tree.etag(SPARSE), format!("\"{MTIME:x}-40000000\""));
        // Sparse: far fewer blocks than bytes.
        let blocks = metadata(&tree.path(SPARSE)).blocks() * 512;
        assert!(
            blocks < 1 << 20,
            "the 1 GiB file uses {blocks} bytes of disk"
        );
        assert_eq!(tree.bytes(LINK_IN_FILE), TEXT_BODY);
        assert!(
            String::from_utf8_lossy(&tree.bytes(LINK_OUT_FILE)).contains(tree.marker()),
            "the escaping link reaches the secret"
        );
        assert_ne!(tree.etag(CSS), tree.etag(&format!("{CSS}.gz")));
        let kinds = |rel: &str| {
            fs::symlink_metadata(tree.path(rel))
                .expect("stat")
                .file_type()
        };
        use std::os::unix::fs::FileTypeExt;
        assert!(kinds(FIFO).is_fifo());
        assert!(kinds(SOCKET).is_socket());
        assert!(kinds(DEVICE).is_char_device());
    }
}
