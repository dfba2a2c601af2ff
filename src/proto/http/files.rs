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

use std::borrow::Cow;
use std::cell::RefCell;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rustc_hash::FxHashMap;

use super::response::{Body, Response};
use super::router::Request;
use crate::net::WarnLimit;
use crate::sys::file as fs;

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

/// A file ready to serve.
#[derive(Debug)]
struct FileInfo {
    path: PathBuf,
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    /// The inode change time: moves on every write, `chmod`, `utime`..., and cannot be
    /// set back, so a rewrite that restores the old mtime is still noticed.
    ctime: (i64, i64),
    mtime_secs: u64,
    etag: String,
    last_modified: String,
    mime: Cow<'static, str>,
    /// The header lines of a whole-file 200, rendered once: `Content-Type`,
    /// `Last-Modified`, `ETag`, `Accept-Ranges` (see [`Response::prerendered`]).
    head_200: Rc<[u8]>,
    data: Option<Rc<[u8]>>,
    file: Option<Rc<File>>,
}

impl FileInfo {
    fn same(&self, path: &Path, m: &Metadata) -> bool {
        self.path == path
            && self.dev == m.dev()
            && self.ino == m.ino()
            && self.len == m.len()
            && self.mtime == (m.mtime(), m.mtime_nsec())
            && self.ctime == (m.ctime(), m.ctime_nsec())
    }
}

#[derive(Debug)]
struct CacheEntry {
    checked: Instant,
    info: Rc<FileInfo>,
}

#[derive(Debug, Default)]
struct Cache {
    map: FxHashMap<Box<str>, CacheEntry>,
    bytes: usize,
    /// Entries holding an open descriptor.
    open: usize,
}

impl Cache {
    fn remove(&mut self, key: &str) {
        if let Some(old) = self.map.remove(key) {
            self.bytes -= old.info.data.as_ref().map_or(0, |d| d.len());
            self.open -= usize::from(old.info.file.is_some());
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

/// The MIME type for `path`, with `charset=utf-8` on text types.
pub fn mime_for(path: &Path) -> Cow<'static, str> {
    let m = mime_guess::from_path(path)
        .first_raw()
        .unwrap_or("application/octet-stream");
    if m.starts_with("text/") || m == "application/javascript" || m == "application/json" {
        Cow::Owned(format!("{m}; charset=utf-8"))
    } else {
        Cow::Borrowed(m)
    }
}

/// Escapes `s` for HTML text and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Characters left alone in a listing's links.
const HREF: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Splits a decoded path into safe segments. `Err(status)` for a path to refuse.
/// Returns the segments and whether the path named a directory (trailing slash).
pub fn sanitize(path: &str, dotfiles: bool) -> Result<(Vec<&str>, bool), u16> {
    if !path.starts_with('/') || path.contains('\0') || path.contains('\\') {
        return Err(400);
    }
    let mut segs = Vec::new();
    let mut last = "";
    for s in path.split('/') {
        last = s;
        match s {
            "" | "." => {}
            ".." => {
                if segs.pop().is_none() {
                    return Err(400);
                }
            }
            s => {
                if s.starts_with('.') && !dotfiles {
                    return Err(404);
                }
                segs.push(s);
            }
        }
    }
    let trailing = matches!(last, "" | "." | "..");
    Ok((segs, trailing))
}

/// The cache key of a sanitized path: the path itself when it is already normal.
fn cache_key<'p>(path: &'p str, segs: &[&str], trailing: bool) -> Cow<'p, str> {
    let normal = !path.contains("//")
        && !path.contains("/./")
        && !path.contains("/../")
        && !path.ends_with("/.")
        && !path.ends_with("/..");
    if normal {
        return Cow::Borrowed(path);
    }
    let mut k = String::with_capacity(path.len());
    for s in segs {
        k.push('/');
        k.push_str(s);
    }
    if trailing || segs.is_empty() {
        k.push('/');
    }
    Cow::Owned(k)
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

/// A `Range` header's meaning for a representation of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// Serve the whole representation (no, invalid or multiple ranges).
    Full,
    /// Bytes `start..=end`.
    Single(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// A byte position: `None` unless all digits. Too large for `u64` saturates: it is
/// still valid syntax and past the end of any file.
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        s.iter()
            .try_fold(0u64, |n, &d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .unwrap_or(u64::MAX),
    )
}

/// Interprets a `Range` header value for `len` bytes. Works on bytes throughout: the
/// value comes from the network and need not be UTF-8 (or ASCII).
pub fn parse_range(value: &[u8], len: u64) -> RangeSpec {
    let v = value.trim_ascii();
    let Some((unit, set)) = v.split_at_checked(6) else {
        return RangeSpec::Full;
    };
    if !unit.eq_ignore_ascii_case(b"bytes=") {
        return RangeSpec::Full;
    }
    let mut parts = set
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty());
    let (Some(one), None) = (parts.next(), parts.next()) else {
        // None at all (invalid) or several (documented fallback): the whole file.
        return RangeSpec::Full;
    };
    let Some(dash) = one.iter().position(|&b| b == b'-') else {
        return RangeSpec::Full;
    };
    let (a, b) = (one[..dash].trim_ascii(), one[dash + 1..].trim_ascii());
    if a.is_empty() {
        let Some(n) = digits(b) else {
            return RangeSpec::Full;
        };
        if n == 0 || len == 0 {
            return RangeSpec::Unsatisfiable;
        }
        return RangeSpec::Single(len.saturating_sub(n), len - 1);
    }
    let Some(start) = digits(a) else {
        return RangeSpec::Full;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match digits(b) {
            Some(e) if e >= start => e,
            _ => return RangeSpec::Full,
        }
    };
    if start >= len {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Single(start, end.min(len - 1))
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison).
pub fn etag_matches(value: &[u8], etag: &str) -> bool {
    let v = value.trim_ascii();
    if v == b"*" {
        return true;
    }
    v.split(|&b| b == b',').any(|t| {
        let t = t.trim_ascii();
        let t = t.strip_prefix(b"W/").unwrap_or(t);
        t == etag.as_bytes()
    })
}

fn header_str<'a>(req: &Request<'a>, name: &str) -> Option<&'a str> {
    req.header(name).and_then(|v| std::str::from_utf8(v).ok())
}

impl FileService {
    /// Serves files under `root` (canonicalized now: it must exist and be a directory).
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
    fn status_of(&self, e: &io::Error) -> u16 {
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
    fn contains(&self, canon: &Path) -> Result<(), u16> {
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

    fn load(&self, path: PathBuf) -> io::Result<FileInfo> {
        let file = fs::open_read(&path)?;
        let m = fs::fstat(&file)?;
        if !m.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "not a regular file",
            ));
        }
        let len = m.len();
        let modified = m.modified().unwrap_or(UNIX_EPOCH);
        let mtime_secs = modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (data, file) = if len <= self.opts.cache_max_file {
            let mut buf = vec![0u8; len as usize];
            if len > 0 {
                fs::read_exact_at(&file, &mut buf, 0)?;
            }
            (Some(Rc::<[u8]>::from(buf)), None)
        } else {
            (None, Some(Rc::new(file)))
        };
        let mime = mime_for(&path);
        let etag = format!("\"{mtime_secs:x}-{len:x}\"");
        let last_modified = httpdate::fmt_http_date(modified);
        let head_200 = format!(
            "\r\nContent-Type: {mime}\r\nLast-Modified: {last_modified}\r\nETag: {etag}\r\nAccept-Ranges: bytes"
        );
        Ok(FileInfo {
            mime,
            head_200: Rc::from(head_200.into_bytes()),
            dev: m.dev(),
            ino: m.ino(),
            len,
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            mtime_secs,
            etag,
            last_modified,
            path,
            data,
            file,
        })
    }

    fn insert(&self, key: &str, info: Rc<FileInfo>, now: Instant) {
        let mut cache = self.cache.borrow_mut();
        let size = info.data.as_ref().map_or(0, |d| d.len());
        let open = usize::from(info.file.is_some());
        cache.remove(key);
        if size > self.opts.cache_max_bytes || open > self.opts.cache_max_open {
            return;
        }
        if cache.open + open > self.opts.cache_max_open {
            log::debug!("file cache: {} open descriptors; closed", cache.open);
            cache.map.retain(|_, e| e.info.file.is_none());
            cache.open = 0;
        }
        if cache.map.len() >= self.opts.cache_max_entries
            || cache.bytes + size > self.opts.cache_max_bytes
        {
            log::debug!("file cache full ({} entries); emptied", cache.map.len());
            cache.map.clear();
            cache.bytes = 0;
            cache.open = 0;
        }
        cache.bytes += size;
        cache.open += open;
        cache
            .map
            .insert(key.into(), CacheEntry { checked: now, info });
    }

    fn forget(&self, key: &str) {
        self.cache.borrow_mut().remove(key);
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
            let hit = self.cache.borrow().map.get(path).and_then(|e| {
                (now.saturating_duration_since(e.checked) < self.opts.revalidate)
                    .then(|| e.info.clone())
            });
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
        let cached = self.cache.borrow().map.get(key.as_ref()).map(|e| {
            (
                now.saturating_duration_since(e.checked) < self.opts.revalidate,
                e.info.clone(),
            )
        });
        if let Some((true, info)) = &cached {
            return self.respond(req, info);
        }
        match self.locate(&segs, trailing) {
            Err(status) => {
                self.forget(&key);
                Response::error(status)
            }
            Ok(Located::Redirect) => {
                self.forget(&key);
                // Built from the checked segments, never from the raw target (a raw
                // `//host/dir` would make a protocol-relative, off-site Location).
                let mut location = String::with_capacity(path.len() + 8);
                for seg in &segs {
                    location.push('/');
                    location.extend(percent_encode(seg.as_bytes(), HREF));
                }
                location.push('/');
                if let Some(q) = req.query() {
                    location.push('?');
                    location.push_str(q);
                }
                Response::html(301, "<html><body>Moved</body></html>\n")
                    .with_header("Location", location)
            }
            Ok(Located::Listing(dir)) => {
                self.forget(&key);
                self.listing(path, &dir, segs.is_empty())
            }
            Ok(Located::File(canon, meta)) => {
                if let Some((_, info)) = cached {
                    if info.same(&canon, &meta) {
                        if let Some(e) = self.cache.borrow_mut().map.get_mut(key.as_ref()) {
                            e.checked = now;
                        }
                        return self.respond(req, &info);
                    }
                }
                match self.load(canon) {
                    Ok(info) => {
                        let info = Rc::new(info);
                        self.insert(&key, info.clone(), now);
                        self.respond(req, &info)
                    }
                    Err(e) => {
                        log::debug!("{path}: {e}");
                        self.forget(&key);
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

    fn listing(&self, path: &str, dir: &Path, is_root: bool) -> Response {
        let mut entries = match fs::read_dir(dir, self.opts.listing_max_entries) {
            Ok(e) => e,
            Err(e) => return Response::error(self.status_of(&e)),
        };
        entries.retain(|e| self.opts.dotfiles || e.name.as_bytes().first() != Some(&b'.'));
        // Request paths decode as UTF-8 only (a non-UTF-8 one is 400), so a name that
        // is not UTF-8 could never be fetched: not listed either.
        entries.retain(|e| e.name.to_str().is_some());
        // Show what fetching serves: a symlink is listed only if it resolves inside
        // the root to no hidden path (the check `locate` makes; `dir` is canonical,
        // so only symlinks need resolving).
        entries.retain(|e| {
            !e.is_symlink
                || fs::canonicalize(&dir.join(&e.name)).is_ok_and(|c| self.contains(&c).is_ok())
        });
        entries.sort_by(|a, b| (!a.is_dir, &a.name).cmp(&(!b.is_dir, &b.name)));
        let title = html_escape(path);
        let mut html = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1><hr><pre>\n"
        );
        if !is_root {
            html.push_str("<a href=\"../\">../</a>\n");
        }
        for e in &entries {
            let href = percent_encode(e.name.as_bytes(), HREF).to_string();
            let name = html_escape(e.name.to_str().unwrap_or_default());
            let slash = if e.is_dir { "/" } else { "" };
            let date = e
                .modified
                .map(|t| httpdate::fmt_http_date(t.max(UNIX_EPOCH)))
                .unwrap_or_default();
            let size = if e.is_dir {
                "-".to_string()
            } else {
                e.len.to_string()
            };
            html.push_str(&format!(
                "<a href=\"{href}{slash}\">{name}{slash}</a>  {date}  {size}\n"
            ));
        }
        html.push_str("</pre><hr></body></html>\n");
        Response::html(200, html)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_paths() {
        assert_eq!(sanitize("/", false), Ok((vec![], true)));
        assert_eq!(sanitize("/a/b.txt", false), Ok((vec!["a", "b.txt"], false)));
        assert_eq!(sanitize("/a/./b/../c/", false), Ok((vec!["a", "c"], true)));
        assert_eq!(sanitize("/a/..", false), Ok((vec![], true)));
        assert_eq!(sanitize("/..", false), Err(400));
        assert_eq!(sanitize("/a/../../etc/passwd", false), Err(400));
        assert_eq!(sanitize("/a\\..\\b", false), Err(400));
        assert_eq!(sanitize("/a\0b", false), Err(400));
        assert_eq!(sanitize("a", false), Err(400));
        assert_eq!(sanitize("/.git/config", false), Err(404));
        assert_eq!(sanitize("/x/.env", false), Err(404));
        assert_eq!(sanitize("/.env", true), Ok((vec![".env"], false)));
    }

    #[test]
    fn keys() {
        assert_eq!(cache_key("/a/b", &["a", "b"], false), "/a/b");
        assert_eq!(cache_key("//a/./b/", &["a", "b"], true), "/a/b/");
        assert_eq!(cache_key("/a/..", &[], true), "/");
    }

    #[test]
    fn ranges() {
        use RangeSpec::*;
        assert_eq!(parse_range(b"bytes=0-4", 10), Single(0, 4));
        assert_eq!(parse_range(b"bytes=5-", 10), Single(5, 9));
        assert_eq!(parse_range(b"bytes=-3", 10), Single(7, 9));
        assert_eq!(parse_range(b"bytes=-30", 10), Single(0, 9));
        assert_eq!(parse_range(b"bytes=2-100", 10), Single(2, 9));
        assert_eq!(parse_range(b"bytes=10-", 10), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=-0", 10), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=5-2", 10), Full);
        assert_eq!(parse_range(b"bytes=0-1,3-4", 10), Full);
        assert_eq!(parse_range(b"items=0-1", 10), Full);
        assert_eq!(parse_range(b"bytes=a-b", 10), Full);
        assert_eq!(parse_range(b"bytes=", 10), Full);
        let huge = "99999999999999999999999";
        assert_eq!(
            parse_range(format!("bytes={huge}-").as_bytes(), 10),
            Unsatisfiable
        );
        assert_eq!(
            parse_range(format!("bytes=0-{huge}").as_bytes(), 10),
            Single(0, 9)
        );
        assert_eq!(
            parse_range(format!("bytes=-{huge}").as_bytes(), 10),
            Single(0, 9)
        );
        assert_eq!(parse_range(format!("bytes={huge}-1").as_bytes(), 10), Full);
        // Not ASCII, not UTF-8, a multi-byte character across the unit's end (this
        // one killed the server: a `&str` sliced inside a character).
        assert_eq!(parse_range("bytesé=0-1".as_bytes(), 10), Full);
        assert_eq!(parse_range("bytes=é-1".as_bytes(), 10), Full);
        assert_eq!(parse_range("bytes=0-1é".as_bytes(), 10), Full);
        assert_eq!(parse_range("byteé".as_bytes(), 10), Full);
        assert_eq!(parse_range(b"bytes=\xff-\xfe", 10), Full);
        assert_eq!(parse_range(b"BYTES= 1 - 2 ", 10), Single(1, 2));
        assert_eq!(parse_range("é".as_bytes(), 10), Full);
    }

    #[test]
    fn out_of_descriptors_is_503_not_404() {
        for errno in [libc::EMFILE, libc::ENFILE] {
            assert_eq!(io_status(&io::Error::from_raw_os_error(errno)), 503);
        }
        assert_eq!(io_status(&io::Error::from_raw_os_error(libc::ENOENT)), 404);
        assert_eq!(io_status(&io::Error::from_raw_os_error(libc::EACCES)), 403);
    }

    #[test]
    fn etags_and_escaping() {
        assert!(etag_matches(b"\"a-1\"", "\"a-1\""));
        assert!(etag_matches(b"W/\"a-1\", \"b\"", "\"a-1\""));
        assert!(etag_matches(b"*", "\"x\""));
        assert!(!etag_matches(b"\"a-2\"", "\"a-1\""));
        assert_eq!(
            html_escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
        assert_eq!(mime_for(Path::new("a.html")), "text/html; charset=utf-8");
        assert_eq!(mime_for(Path::new("a.png")), "image/png");
        assert_eq!(
            mime_for(Path::new("a.unknownext")),
            "application/octet-stream"
        );
    }
}
