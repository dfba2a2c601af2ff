//! Request paths and names: safe segments, cache keys, MIME types, HTML escaping.

use std::borrow::Cow;
use std::path::Path;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

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
pub(super) const HREF: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Splits a decoded path into safe segments. `Err(status)` for a path to refuse.
/// Returns the segments and whether the path named a directory (trailing slash).
///
/// # Errors
/// 400 for a path that is not absolute, holds NUL or a backslash, or climbs above
/// `/` with `..`; 404 for a hidden segment (starting with `.`) unless `dotfiles`.
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
pub(super) fn cache_key<'p>(path: &'p str, segs: &[&str], trailing: bool) -> Cow<'p, str> {
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
    fn escaping_and_mime() {
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
