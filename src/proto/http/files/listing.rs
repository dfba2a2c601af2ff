//! Directory listings: escaped, sorted, showing only what can be fetched.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::UNIX_EPOCH;

use percent_encoding::percent_encode;

use super::path::{html_escape, HREF};
use super::FileService;
use crate::proto::http::response::Response;
use crate::sys::file as fs;

impl FileService {
    pub(super) fn listing(&self, path: &str, dir: &Path, is_root: bool) -> Response {
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
