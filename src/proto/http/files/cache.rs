//! The file cache: what a served file's entry holds, and loading, inserting and
//! forgetting entries within the cache's bounds.

use std::borrow::Cow;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use rustc_hash::FxHashMap;

use super::path::mime_for;
use super::FileService;
use crate::sys::file as fs;

/// A file ready to serve.
#[derive(Debug)]
pub(super) struct FileInfo {
    pub(super) path: PathBuf,
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) len: u64,
    pub(super) mtime: (i64, i64),
    /// The inode change time: moves on every write, `chmod`, `utime`..., and cannot be
    /// set back, so a rewrite that restores the old mtime is still noticed.
    pub(super) ctime: (i64, i64),
    pub(super) mtime_secs: u64,
    pub(super) etag: String,
    pub(super) last_modified: String,
    pub(super) mime: Cow<'static, str>,
    /// The header lines of a whole-file 200, rendered once: `Content-Type`,
    /// `Last-Modified`, `ETag`, `Accept-Ranges` (see [`Response::prerendered`]).
    pub(super) head_200: Rc<[u8]>,
    pub(super) data: Option<Rc<[u8]>>,
    pub(super) file: Option<Rc<File>>,
}

impl FileInfo {
    pub(super) fn same(&self, path: &Path, m: &Metadata) -> bool {
        self.path == path
            && self.dev == m.dev()
            && self.ino == m.ino()
            && self.len == m.len()
            && self.mtime == (m.mtime(), m.mtime_nsec())
            && self.ctime == (m.ctime(), m.ctime_nsec())
    }
}

#[derive(Debug)]
pub(super) struct CacheEntry {
    /// Trusted without a check before this (the last check plus
    /// [`FileOptions::revalidate`](super::FileOptions::revalidate); `None`: past the
    /// clock's range, always).
    fresh_until: Option<Instant>,
    pub(super) info: Rc<FileInfo>,
}

impl CacheEntry {
    /// An entry for `info`, checked at `now`.
    fn new(info: Rc<FileInfo>, now: Instant, revalidate: Duration) -> CacheEntry {
        CacheEntry {
            fresh_until: now.checked_add(revalidate),
            info,
        }
    }

    /// Whether the entry may be used without a check at `now`.
    pub(super) fn is_fresh(&self, now: Instant) -> bool {
        self.fresh_until.is_none_or(|t| now < t)
    }

    /// The file was found unchanged at `now`.
    pub(super) fn checked(&mut self, now: Instant, revalidate: Duration) {
        self.fresh_until = now.checked_add(revalidate);
    }
}

#[derive(Debug, Default)]
pub(super) struct Cache {
    pub(super) map: FxHashMap<Box<str>, CacheEntry>,
    pub(super) bytes: usize,
    /// Entries holding an open descriptor.
    pub(super) open: usize,
}

impl Cache {
    pub(super) fn remove(&mut self, key: &str) {
        if let Some(old) = self.map.remove(key) {
            self.bytes -= old.info.data.as_ref().map_or(0, |d| d.len());
            self.open -= usize::from(old.info.file.is_some());
        }
    }
}

impl FileService {
    pub(super) fn load(&self, path: PathBuf) -> io::Result<FileInfo> {
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

    pub(super) fn insert(&self, key: &str, info: Rc<FileInfo>, now: Instant) {
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
            .insert(key.into(), CacheEntry::new(info, now, self.opts.revalidate));
    }

    pub(super) fn forget(&self, key: &str) {
        self.cache.borrow_mut().remove(key);
    }
}
