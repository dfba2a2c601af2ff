//! The request path: `split_target`, `decode_path` (percent-decoding and dot
//! segments, what routes see) and the file service's `sanitize`.
//!
//! Properties: a decoded path starts with `/`, has no `.` or `..` segment left, and
//! decoding is idempotent on it; it equals a reference stack model of RFC 3986 5.2.4
//! (with a climb above `/` refused); the segments `sanitize` returns are plain names
//! (no `/`, NUL, `\`, `.` or `..`; no dotfile unless allowed), so a path joined from
//! them never leaves the root; and the query is exactly what follows the first `?`.
use std::path::{Component, Path};

use readyloop::proto::http::files::sanitize;
use readyloop::proto::http::parser::split_target;
use readyloop::proto::http::router::decode_path;

use super::Input;

fn unhex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-decoding as RFC 3986 2.1 (a `%` not followed by two hex digits stays).
fn pct(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(h), Some(l)) = (unhex(raw[i + 1]), unhex(raw[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

/// RFC 3986 5.2.4 on an absolute path; `None` for a `..` above `/`.
fn model(path: &str) -> Option<String> {
    let rest = path.strip_prefix('/')?;
    let mut segs: Vec<&str> = Vec::new();
    let mut trailing = false;
    for s in rest.split('/') {
        trailing = s == "." || s == "..";
        match s {
            "." => {}
            ".." => {
                segs.pop()?;
            }
            s => segs.push(s),
        }
    }
    let mut out = String::new();
    for s in &segs {
        out.push('/');
        out.push_str(s);
    }
    if trailing || segs.is_empty() {
        out.push('/');
    }
    Some(out)
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let dotfiles = input.byte() & 1 == 1;
    let target = input.rest();
    let Some((raw_path, query)) = split_target(target) else {
        return;
    };
    assert!(raw_path.starts_with(b"/"));
    assert!(!raw_path.contains(&b'?'));
    if let Some(q) = query {
        // The query is what follows the first `?` after the path.
        let qpos = target.len() - q.len();
        assert_eq!(target[qpos - 1], b'?');
    }
    let decoded = pct(raw_path);
    let expect = std::str::from_utf8(&decoded).ok().and_then(model);
    let Some(path) = decode_path(raw_path) else {
        assert_eq!(expect, None, "refused a path the model accepts");
        return;
    };
    assert_eq!(
        Some(path.as_ref()),
        expect.as_deref(),
        "decode_path vs the model"
    );
    assert!(path.starts_with('/'));
    assert!(
        !path.split('/').any(|s| s == "." || s == ".."),
        "dot segment left in {path:?}"
    );
    // Idempotent: the decoded path (re-encoded `%` aside) resolves to itself.
    if !path.contains('%') {
        assert_eq!(decode_path(path.as_bytes()).as_deref(), Some(path.as_ref()));
    }
    match sanitize(&path, dotfiles) {
        Ok((segs, _trailing)) => {
            let root = Path::new("/srv/root");
            let mut joined = root.to_path_buf();
            for s in &segs {
                assert!(!s.is_empty());
                assert!(*s != "." && *s != "..");
                assert!(!s.contains(['/', '\0', '\\']), "segment {s:?}");
                assert!(dotfiles || !s.starts_with('.'), "dotfile {s:?}");
                joined.push(s);
            }
            assert!(joined.starts_with(root), "{joined:?} left the root");
            assert!(
                joined
                    .components()
                    .all(|c| matches!(c, Component::RootDir | Component::Normal(_))),
                "{joined:?}"
            );
        }
        Err(status) => assert!(status == 400 || status == 404, "status {status}"),
    }
}
