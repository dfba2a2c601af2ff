//! The static-file service: safe path resolution under a root, MIME types, index
//! files, escaped directory listings, validators (`ETag`, `Last-Modified`),
//! conditional requests (304), single byte ranges (206/416), and a small cache.
//!
//! # Path security
//! The path arrives percent-decoded with its dot segments already resolved (the
//! connection does that before routing); it is checked again here: NUL and backslash are refused
//! (400); `.` and `..` segments are resolved lexically and a `..` that would climb
//! above the root is refused (400); a segment starting with `.` is hidden (404) unless
//! dotfiles are enabled. The resulting file is then resolved with `realpath` and must
//! still lie under the (canonical) root, so a symlink leading outside is a 404.
//! Listings apply the same check to symlinks, so they show only what can be fetched;
//! for the same reason they omit names that are not UTF-8 (request paths must decode
//! as UTF-8, so such a file cannot be fetched: 400).
//!
//! # Ranges
//! One `bytes=` range is served as 206 (or 416 when unsatisfiable). A request with
//! several ranges gets the whole file with 200, as RFC 9110 allows a server to ignore
//! `Range`; so does a `Range` whose syntax is invalid, and one on `HEAD`.
//!
//! # Cache
//! Each served file's metadata (and, for files up to [`FileOptions::cache_max_file`]
//! bytes, its contents; for larger ones an open descriptor) is cached by request path.
//! An entry younger than [`FileOptions::revalidate`] is used as is: a hit costs no
//! syscall at all, so a small static file costs what a plaintext response costs (one
//! `recv`, one `send`, a share of `epoll_wait`). An older entry is re-resolved
//! (`realpath` + `stat`) and reloaded only if the file changed (path, inode, size,
//! mtime or ctime: a rewrite that puts the old mtime back, or a `chmod`, still moves
//! the ctime). The cache is bounded in entries, bytes and open descriptors
//! ([`FileOptions::cache_max_open`]); when an insert would pass a bound, the cache is
//! emptied first (only of its descriptors, for that bound: crude, bounded, and rare
//! for a site that fits).
//!
//! Split by concern: this module resolves and answers requests ([`FileService`]);
//! `cache` loads files and keeps them, `path` checks request paths and names
//! (segments, cache keys, MIME types, escaping), `conditional` reads `Range` and
//! `If-None-Match`, `listing` renders directory listings.

mod cache;
mod conditional;
mod listing;
mod path;

pub use conditional::{etag_matches, parse_range, RangeSpec};
pub use path::{html_escape, mime_for, sanitize};

use std::cell::RefCell;
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use percent_encoding::percent_encode;

use super::response::{Body, Response};
use super::router::Request;
use crate::net::WarnLimit;
use crate::sys::file as fs;
use cache::{Cache, FileInfo};
use path::{cache_key, HREF};

/// Static-file settings.
#[derive(Clone, Debug)]
pub struct FileOptions {
    /// Serve paths with a segment starting with `.` (default: hidden, 404).
    pub dotfiles: bool,
    /// List directories that have no index file (default: on).
    pub listing: bool,
    /// The index file of a directory.
    pub index: String,
    /// Files up to this size are cached in memory.
    pub cache_max_file: u64,
    /// Most bytes of file contents the cache holds.
    pub cache_max_bytes: usize,
    /// Most entries the cache holds.
    pub cache_max_entries: usize,
    /// Most open descriptors the cache holds (files above `cache_max_file` are cached
    /// as an open descriptor); keep it well below the process's descriptor limit,
    /// which connections share.
    pub cache_max_open: usize,
    /// How long a cached entry is trusted before it is checked again.
    pub revalidate: Duration,
    /// Most entries shown in a directory listing.
    pub listing_max_entries: usize,
}

impl Default for FileOptions {
    fn default() -> FileOptions {
        FileOptions {
            dotfiles: false,
            listing: true,
            index: "index.html".into(),
            cache_max_file: 256 * 1024,
            cache_max_bytes: 64 << 20,
            cache_max_entries: 4096,
            cache_max_open: 128,
            revalidate: Duration::from_secs(1),
            listing_max_entries: 10_000,
        }
    }
}

/// What a path resolves to.
enum Located {
    File(PathBuf, Metadata),
    Listing(PathBuf),
    Redirect,
}

/// Serves files under a root directory.
#[derive(Debug)]
pub struct FileService {
    root: PathBuf,
    opts: FileOptions,
    cache: RefCell<Cache>,
    /// Symlinks out of the root and descriptor exhaustion are worth a warning, but a
    /// client can cause them at will: at most one a second.
    warnings: WarnLimit,
}

/// The 301 to a directory's path with its slash: built from the checked segments,
/// never from the raw target (a raw `//host/dir` would make a protocol-relative,
/// off-site Location).
fn redirect(segs: &[&str], query: Option<&str>) -> Response {
    let mut location = String::with_capacity(segs.iter().map(|s| s.len() + 1).sum::<usize>() + 8);
    for seg in segs {
        location.push('/');
        location.extend(percent_encode(seg.as_bytes(), HREF));
    }
    location.push('/');
    if let Some(q) = query {
        location.push('?');
        location.push_str(q);
    }
    Response::html(301, "<html><body>Moved</body></html>\n").with_header("Location", location)
}

fn io_status(e: &io::Error) -> u16 {
    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
        // The server is out of descriptors, the file may well exist: a transient
        // failure (503), not "no such file" (a 404 caches in clients and proxies).
        return 503;
    }
    match e.kind() {
        io::ErrorKind::PermissionDenied => 403,
        _ => 404,
    }
}

fn header_str<'a>(req: &Request<'a>, name: &str) -> Option<&'a str> {
    req.header(name).and_then(|v| std::str::from_utf8(v).ok())
}

impl FileService {
    /// Serves files under `root` (canonicalized now: it must exist and be a directory).
    ///
    /// # Errors
    /// The error of resolving or `stat`ing `root`; `InvalidInput` when it is not a
    /// directory.
    pub fn new(root: &Path, opts: FileOptions) -> io::Result<FileService> {
        let root = fs::canonicalize(root)?;
        if !fs::stat(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(FileService {
            root,
            opts,
            cache: RefCell::new(Cache::default()),
            warnings: WarnLimit::default(),
        })
    }

    /// The status for a failed file operation; out of descriptors is logged (rate
    /// limited).
    pub(super) fn status_of(&self, e: &io::Error) -> u16 {
        let status = io_status(e);
        if status == 503 {
            self.warnings
                .warn(module_path!(), format_args!("cannot open a file: {e}"));
        }
        status
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Checks that a canonical path lies under the root and has no hidden segment
    /// (logs a path outside the root).
    fn inside(&self, canon: &Path) -> Result<(), u16> {
        let r = self.contains(canon);
        if r.is_err() && !canon.starts_with(&self.root) {
            self.warnings.warn(
                module_path!(),
                format_args!("{}: outside the root (symlink?); refused", canon.display()),
            );
        }
        r
    }

    /// [`inside`](Self::inside) without the log.
    pub(super) fn contains(&self, canon: &Path) -> Result<(), u16> {
        let Ok(rel) = canon.strip_prefix(&self.root) else {
            return Err(404);
        };
        if !self.opts.dotfiles
            && rel
                .components()
                .any(|c| c.as_os_str().as_bytes().first() == Some(&b'.'))
        {
            return Err(404);
        }
        Ok(())
    }

    fn locate(&self, segs: &[&str], trailing: bool) -> Result<Located, u16> {
        let mut full = self.root.clone();
        full.extend(segs);
        let canon = fs::canonicalize(&full).map_err(|e| self.status_of(&e))?;
        self.inside(&canon)?;
        let meta = fs::stat(&canon).map_err(|e| self.status_of(&e))?;
        if meta.is_dir() {
            if !trailing && !segs.is_empty() {
                return Ok(Located::Redirect);
            }
            if let Ok(index) = fs::canonicalize(&canon.join(&self.opts.index)) {
                self.inside(&index)?;
                let m = fs::stat(&index).map_err(|e| self.status_of(&e))?;
                if m.is_file() {
                    return Ok(Located::File(index, m));
                }
            }
            if self.opts.listing {
                return Ok(Located::Listing(canon));
            }
            return Err(403);
        }
        if !meta.is_file() {
            return Err(403);
        }
        if trailing {
            return Err(404);
        }
        Ok(Located::File(canon, meta))
    }

    /// How many entries the cache holds (for tests and stats).
    pub fn cached_entries(&self) -> usize {
        self.cache.borrow().map.len()
    }

    /// Answers a request for the (decoded) path of `req`.
    pub fn serve(&self, req: &Request<'_>, now: Instant) -> Response {
        let method = req.method();
        match method {
            "GET" | "HEAD" | "OPTIONS" => {}
            _ => {
                return Response::error(405).with_header("Allow", "GET, HEAD, OPTIONS");
            }
        }
        let path = req.path();
        // A path that is a fresh entry's key as it stands needs no more checking: keys
        // are sanitized paths in normal form, which sanitize to themselves.
        if method != "OPTIONS" {
            let hit = (self.cache.borrow().map.get(path))
                .and_then(|e| e.is_fresh(now).then(|| e.info.clone()));
            if let Some(info) = hit {
                return self.respond(req, &info);
            }
        }
        let (segs, trailing) = match sanitize(path, self.opts.dotfiles) {
            Ok(s) => s,
            Err(status) => return Response::error(status),
        };
        if method == "OPTIONS" {
            // The resource must exist as for GET (404, 403... alike); the cache is
            // neither consulted nor filled.
            return match self.locate(&segs, trailing) {
                Ok(_) => Response::empty(204).with_header("Allow", "GET, HEAD, OPTIONS"),
                Err(status) => Response::error(status),
            };
        }
        let key = cache_key(path, &segs, trailing);
        let cached =
            (self.cache.borrow().map.get(key.as_ref())).map(|e| (e.is_fresh(now), e.info.clone()));
        match cached {
            Some((true, info)) => self.respond(req, &info),
            stale => self.serve_located(req, &key, (&segs, trailing), stale.map(|c| c.1), now),
        }
    }

    /// Answers from the file system what the cache could not (`stale`: the entry
    /// under `key` that is due for a check, if any).
    fn serve_located(
        &self,
        req: &Request<'_>,
        key: &str,
        (segs, trailing): (&[&str], bool),
        stale: Option<Rc<FileInfo>>,
        now: Instant,
    ) -> Response {
        let path = req.path();
        match self.locate(segs, trailing) {
            Err(status) => {
                self.forget(key);
                Response::error(status)
            }
            Ok(Located::Redirect) => {
                self.forget(key);
                redirect(segs, req.query())
            }
            Ok(Located::Listing(dir)) => {
                self.forget(key);
                self.listing(path, &dir, segs.is_empty())
            }
            Ok(Located::File(canon, meta)) => {
                if let Some(info) = stale {
                    if info.same(&canon, &meta) {
                        if let Some(e) = self.cache.borrow_mut().map.get_mut(key) {
                            e.checked(now, self.opts.revalidate);
                        }
                        return self.respond(req, &info);
                    }
                }
                match self.load(canon) {
                    Ok(info) => {
                        let info = Rc::new(info);
                        self.insert(key, info.clone(), now);
                        self.respond(req, &info)
                    }
                    Err(e) => {
                        log::debug!("{path}: {e}");
                        self.forget(key);
                        Response::error(self.status_of(&e))
                    }
                }
            }
        }
    }

    fn respond(&self, req: &Request<'_>, info: &Rc<FileInfo>) -> Response {
        let validators = |status: u16| {
            Response::empty(status)
                .with_header("Last-Modified", info.last_modified.clone())
                .with_header("ETag", info.etag.clone())
        };
        if let Some(inm) = req.header("if-none-match") {
            if etag_matches(inm, &info.etag) {
                return validators(304);
            }
        } else if let Some(ims) = header_str(req, "if-modified-since") {
            if let Ok(t) = httpdate::parse_http_date(ims) {
                let ims = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                if info.mtime_secs <= ims {
                    return validators(304);
                }
            }
        }
        let len = info.len;
        let mut spec = RangeSpec::Full;
        if req.method() == "GET" {
            if let Some(range) = req.header("range") {
                let if_range_ok = match header_str(req, "if-range") {
                    None => true,
                    Some(v) if v.starts_with('"') => v == info.etag,
                    Some(v) if v.starts_with("W/") => false,
                    Some(v) => httpdate::parse_http_date(v).is_ok_and(|t| {
                        t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) == info.mtime_secs
                    }),
                };
                if if_range_ok {
                    spec = parse_range(range, len);
                }
            }
        }
        let (status, start, end) = match spec {
            RangeSpec::Full => (200, 0, len),
            RangeSpec::Single(a, b) => (206, a, b + 1),
            RangeSpec::Unsatisfiable => {
                return Response::error(416)
                    .with_header("Content-Range", format!("bytes */{len}"))
                    .with_header("Accept-Ranges", "bytes");
            }
        };
        let body = match (&info.data, &info.file) {
            (Some(d), _) => Body::Shared(d.clone(), start as usize..end as usize),
            (None, Some(f)) => Body::File {
                file: f.clone(),
                offset: start,
                len: end - start,
            },
            (None, None) => Body::Empty,
        };
        if status == 200 {
            // The common case: headers rendered when the file was loaded.
            let mut resp = Response::empty(200);
            resp.body = body;
            resp.prerendered = Some(info.head_200.clone());
            return resp;
        }
        let mut resp = validators(status).with_header("Accept-Ranges", "bytes");
        resp.content_type = Some(info.mime.clone());
        resp.body = body;
        if status == 206 {
            resp.headers.push((
                "Content-Range".into(),
                format!("bytes {start}-{}/{len}", end - 1).into(),
            ));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_descriptors_is_503_not_404() {
        for errno in [libc::EMFILE, libc::ENFILE] {
            assert_eq!(io_status(&io::Error::from_raw_os_error(errno)), 503);
        }
        assert_eq!(io_status(&io::Error::from_raw_os_error(libc::ENOENT)), 404);
        assert_eq!(io_status(&io::Error::from_raw_os_error(libc::EACCES)), 403);
    }
}
