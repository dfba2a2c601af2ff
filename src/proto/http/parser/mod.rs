//! The pure HTTP/1.x request parser: request heads on top of `httparse`, request
//! bodies (`Content-Length` and chunked), with every limit checked. No I/O, no
//! panics: bytes in, a [`Head`] or an [`HttpError`] (a status code to answer) out.
//!
//! A parsed head keeps offsets into the bytes it was parsed from (the caller copies
//! those bytes into a buffer it keeps), so a steady stream of requests allocates
//! nothing once the first few have sized the buffers.
//!
//! Split by stage: this module holds the types both stages share and the target
//! splitter; `head` parses a request head ([`parse_head`]), `body` decodes a body
//! ([`BodyDecoder`]).

mod body;
mod head;

pub use body::BodyDecoder;
pub use head::parse_head;

use std::ops::Range;

/// The most header lines any configuration may allow (the parse array lives on the stack).
pub const MAX_HEADERS_CAP: usize = 256;

/// Size limits for a request.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Longest request line (method, target, version), in bytes: 414 beyond.
    pub max_request_line: usize,
    /// Largest whole head (request line and header lines): 431 beyond.
    pub max_head: usize,
    /// Most header lines: 431 beyond (capped at [`MAX_HEADERS_CAP`]).
    pub max_headers: usize,
    /// Largest request body (declared or chunked): 413 beyond.
    pub max_body: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_request_line: 8 * 1024,
            max_head: 16 * 1024,
            max_headers: 100,
            max_body: 1 << 20,
        }
    }
}

/// A request the parser refuses: the status to answer with (the connection then
/// closes) and a reason for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpError {
    /// 400, 408, 413, 414, 417, 431, 501 or 505.
    pub status: u16,
    /// Why, for the log (never sent to the client).
    pub reason: &'static str,
}

impl HttpError {
    /// An error with `status` and `reason`.
    pub const fn new(status: u16, reason: &'static str) -> HttpError {
        HttpError { status, reason }
    }

    fn bad(reason: &'static str) -> HttpError {
        HttpError::new(400, reason)
    }
}

/// How the request body is framed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    #[default]
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// A parsed request head: offsets into the head bytes, plus what the server needs
/// from the headers, decoded once.
#[derive(Clone, Debug, Default)]
pub struct Head {
    /// The method token.
    pub method: Range<usize>,
    /// The request target as sent (not decoded).
    pub target: Range<usize>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Header (name, value) ranges in order.
    pub headers: Vec<(Range<usize>, Range<usize>)>,
    /// Length of the head (request line to the empty line, inclusive).
    pub len: usize,
    /// Body framing.
    pub body: BodyFraming,
    /// `Connection: close` was sent.
    pub conn_close: bool,
    /// `Connection: keep-alive` was sent.
    pub conn_keep_alive: bool,
    /// `Expect: 100-continue` was sent (HTTP/1.1).
    pub expect_continue: bool,
    /// A `Host` header is present.
    pub has_host: bool,
}

impl Head {
    /// The value of the first header named `name` (case-insensitive), in `buf`.
    pub fn header<'b>(&self, buf: &'b [u8], name: &str) -> Option<&'b [u8]> {
        self.headers
            .iter()
            .find(|(n, _)| buf[n.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &buf[v.clone()])
    }

    /// Whether the connection may stay open after this request (before the server's
    /// own reasons to close): HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
    /// `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        if self.conn_close {
            return false;
        }
        self.minor >= 1 || self.conn_keep_alive
    }
}

/// Does `list` (a comma-separated header value) contain `token` (case-insensitive)?
pub fn has_token(list: &[u8], token: &str) -> bool {
    list.split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Splits a request target (origin form `/path?query`, or absolute form
/// `http://host/path?query`) into its raw path and raw query (after `?`), both still
/// percent-encoded. In absolute form the authority ends at the first `/` or `?`
/// (RFC 3986 3.2), so a `/` inside the query is never taken for the path, and an
/// empty path is `/` with the query kept. `None`: neither form (400).
pub fn split_target(target: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let mut path_q = target;
    for scheme in [&b"http://"[..], b"https://"] {
        if target.len() > scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &target[scheme.len()..];
            let end = rest
                .iter()
                .position(|&b| b == b'/' || b == b'?')
                .unwrap_or(rest.len());
            path_q = &rest[end..];
            if path_q.first() != Some(&b'/') {
                // No path: `/`, and whatever query follows.
                return Some((b"/", path_q.strip_prefix(b"?")));
            }
        }
    }
    if path_q.first() != Some(&b'/') {
        return None;
    }
    Some(match path_q.iter().position(|&b| b == b'?') {
        Some(i) => (&path_q[..i], Some(&path_q[i + 1..])),
        None => (path_q, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = |s: &'static [u8]| split_target(s);
        assert_eq!(t(b"/a?q=1"), Some((&b"/a"[..], Some(&b"q=1"[..]))));
        assert_eq!(t(b"/a"), Some((&b"/a"[..], None)));
        assert_eq!(t(b"/a?"), Some((&b"/a"[..], Some(&b""[..]))));
        assert_eq!(
            t(b"http://h/a/b?q=1"),
            Some((&b"/a/b"[..], Some(&b"q=1"[..])))
        );
        assert_eq!(
            t(b"HTTPS://h:8/a?x=/y"),
            Some((&b"/a"[..], Some(&b"x=/y"[..])))
        );
        assert_eq!(t(b"http://h?x=/y"), Some((&b"/"[..], Some(&b"x=/y"[..]))));
        assert_eq!(t(b"http://h"), Some((&b"/"[..], None)));
        assert_eq!(t(b"nopath"), None);
        assert_eq!(t(b"http://"), None);
        assert_eq!(t(b"ftp://h/a"), None);
    }
}
