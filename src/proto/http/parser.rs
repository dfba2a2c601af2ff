//! The pure HTTP/1.x request parser: request heads on top of `httparse`, request
//! bodies (`Content-Length` and chunked), with every limit checked. No I/O, no
//! panics: bytes in, a [`Head`] or an [`HttpError`] (a status code to answer) out.
//!
//! A parsed head keeps offsets into the bytes it was parsed from (the caller copies
//! those bytes into a buffer it keeps), so a steady stream of requests allocates
//! nothing once the first few have sized the buffers.

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

fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Whether `line` is a well-formed request line (`method SP target SP HTTP/x[.y]`)
/// whose version is simply one we do not speak (505), rather than a malformed line
/// (400) such as one with a space inside the target.
fn is_other_version_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Some(v) = version.strip_prefix(b"HTTP/") else {
        return false;
    };
    let digits_ok = match v {
        [a] => a.is_ascii_digit(),
        [a, b'.', b] => a.is_ascii_digit() && b.is_ascii_digit(),
        _ => false,
    };
    !method.is_empty() && !target.is_empty() && digits_ok
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

/// Parses a request head from the start of `buf` into `head`.
///
/// `Ok(None)`: incomplete (more bytes needed; the limits have been checked against
/// what is there). `Ok(Some(n))`: the head is `buf[..n]`; `head` holds offsets into
/// it. Leading empty lines (a CRLF left after a previous body) are skipped, as RFC
/// 9112 allows; the offsets account for them.
pub fn parse_head(
    buf: &[u8],
    limits: &Limits,
    head: &mut Head,
) -> Result<Option<usize>, HttpError> {
    // Leading CRLFs.
    let skip = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if skip > 8 {
        return Err(HttpError::bad("too many empty lines before the request"));
    }
    let data = &buf[skip..];
    if data.is_empty() {
        return Ok(None);
    }
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS_CAP];
    let max = limits.max_headers.clamp(1, MAX_HEADERS_CAP);
    let mut req = httparse::Request::new(&mut storage[..max]);
    let status = match req.parse(data) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::new(431, "too many header lines"))
        }
        Err(httparse::Error::Version) => {
            // A well-formed line with a version we do not speak gets 505; garbage, 400.
            let line_end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
            let line = &data[..line_end];
            return Err(if line.len() > limits.max_request_line {
                HttpError::new(414, "request line too long")
            } else if is_other_version_line(line) {
                HttpError::new(505, "unsupported HTTP version")
            } else {
                HttpError::bad("malformed request line")
            });
        }
        Err(_) => return Err(HttpError::bad("malformed request head")),
    };
    let line_len = data.iter().position(|&b| b == b'\n');
    match line_len {
        Some(n) if n > limits.max_request_line => {
            return Err(HttpError::new(414, "request line too long"))
        }
        None if data.len() > limits.max_request_line => {
            return Err(HttpError::new(414, "request line too long"))
        }
        _ => {}
    }
    let n = match status {
        httparse::Status::Partial => {
            if data.len() > limits.max_head {
                return Err(HttpError::new(431, "request head too large"));
            }
            return Ok(None);
        }
        httparse::Status::Complete(n) => n,
    };
    if n > limits.max_head {
        return Err(HttpError::new(431, "request head too large"));
    }
    // Offsets of the borrowed pieces relative to `buf`.
    let base = buf.as_ptr() as usize;
    let range = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HttpError::bad("incomplete request line"));
    };
    head.method = range(method.as_bytes());
    head.target = range(path.as_bytes());
    head.minor = minor;
    head.len = skip + n;
    head.headers.clear();
    head.body = BodyFraming::None;
    head.conn_close = false;
    head.conn_keep_alive = false;
    head.expect_continue = false;
    head.has_host = false;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut te_seen = false;
    for h in req.headers.iter() {
        head.headers
            .push((range(h.name.as_bytes()), range(h.value)));
        let name = h.name.as_bytes();
        let value = h.value.trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            // Repeated identical values (or a list of them) are tolerated (RFC 9110
            // 8.6); anything else is a framing conflict.
            for part in value.split(|&b| b == b',') {
                let v =
                    parse_u64(part.trim_ascii()).ok_or(HttpError::bad("invalid Content-Length"))?;
                if length.is_some_and(|l| l != v) {
                    return Err(HttpError::bad("conflicting Content-Length headers"));
                }
                length = Some(v);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if te_seen || chunked {
                // Several Transfer-Encoding lines: only "chunked" once is understood.
                return Err(HttpError::new(501, "unsupported transfer coding"));
            }
            te_seen = true;
            if value.eq_ignore_ascii_case(b"chunked") {
                chunked = true;
            } else {
                return Err(HttpError::new(501, "unsupported transfer coding"));
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            head.conn_close |= has_token(value, "close");
            head.conn_keep_alive |= has_token(value, "keep-alive");
        } else if name.eq_ignore_ascii_case(b"expect") {
            if value.eq_ignore_ascii_case(b"100-continue") {
                head.expect_continue = minor >= 1;
            } else {
                return Err(HttpError::new(417, "unsupported expectation"));
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            if head.has_host {
                return Err(HttpError::bad("several Host headers"));
            }
            head.has_host = true;
        }
    }
    if minor >= 1 && !head.has_host {
        return Err(HttpError::bad("HTTP/1.1 request without Host"));
    }
    if chunked {
        if length.is_some() {
            // Both framings at once is the classic smuggling vector: refuse.
            return Err(HttpError::bad("both Content-Length and Transfer-Encoding"));
        }
        if minor == 0 {
            return Err(HttpError::bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        head.body = BodyFraming::Chunked;
    } else if let Some(len) = length {
        if len > limits.max_body {
            return Err(HttpError::new(413, "declared body too large"));
        }
        if len > 0 {
            head.body = BodyFraming::Length(len);
        }
    }
    Ok(Some(skip + n))
}

/// Where a body decoder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex size; `digits` so far.
    Size { digits: u8 },
    /// After the size, whitespace: only `;` (an extension) or the line end may follow
    /// (RFC 9112 7.1.1; anything else is refused, not skipped: a proxy in front may
    /// read such a line differently, which is how requests get smuggled).
    SizeBws,
    /// Skipping a chunk extension up to the line end.
    Ext,
    /// Expecting LF after CR in a size line.
    SizeLf,
    /// Reading chunk data.
    Data,
    /// Expecting CR (or LF) after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// Reading trailer lines; `line` bytes in the current one.
    Trailer { line: usize },
    /// Expecting LF after CR in a trailer line.
    TrailerLf { line: usize },
    /// The body is complete.
    Done,
}

/// Most bytes of chunk extensions and trailers taken together.
const MAX_CHUNK_META: usize = 8 * 1024;

/// An incremental body decoder (`Content-Length` or chunked) with a size limit.
#[derive(Clone, Debug)]
pub struct BodyDecoder {
    chunked: bool,
    state: ChunkState,
    /// Bytes left in the body (length) or in the current chunk (chunked).
    remaining: u64,
    /// Chunk sizes announced so far (checked against `max` before the data comes).
    announced: u64,
    /// Body bytes decoded so far.
    decoded: u64,
    max: u64,
    meta: usize,
}

impl BodyDecoder {
    /// A decoder for `framing`, refusing bodies over `max` bytes.
    pub fn new(framing: BodyFraming, max: u64) -> BodyDecoder {
        let (chunked, state, remaining) = match framing {
            BodyFraming::None => (false, ChunkState::Done, 0),
            BodyFraming::Length(0) => (false, ChunkState::Done, 0),
            BodyFraming::Length(n) => (false, ChunkState::Data, n),
            BodyFraming::Chunked => (true, ChunkState::Size { digits: 0 }, 0),
        };
        BodyDecoder {
            chunked,
            state,
            remaining,
            announced: 0,
            decoded: 0,
            max,
            meta: 0,
        }
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decoded body bytes so far.
    pub fn total(&self) -> u64 {
        self.decoded
    }

    /// Decodes from `input`, appending body bytes to `out`. Returns how many input
    /// bytes were used (less than `input.len()` only once the body is done: the rest
    /// belongs to the next request).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, HttpError> {
        let mut i = 0;
        while i < input.len() && self.state != ChunkState::Done {
            match self.state {
                ChunkState::Data => {
                    let take = (input.len() - i)
                        .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    self.remaining -= take as u64;
                    self.decoded += take as u64;
                    if self.remaining == 0 {
                        self.state = if self.chunked {
                            ChunkState::DataCr
                        } else {
                            ChunkState::Done
                        };
                    }
                }
                ChunkState::Size { digits } => {
                    let b = input[i];
                    i += 1;
                    match (b as char).to_digit(16) {
                        Some(d) => {
                            if digits >= 15 {
                                return Err(HttpError::bad("chunk size too long"));
                            }
                            self.remaining = self.remaining * 16 + u64::from(d);
                            self.state = ChunkState::Size { digits: digits + 1 };
                        }
                        None if digits == 0 => return Err(HttpError::bad("invalid chunk size")),
                        None => {
                            self.announced += self.remaining;
                            if self.announced > self.max {
                                return Err(HttpError::new(413, "chunked body too large"));
                            }
                            match b {
                                b'\r' => self.state = ChunkState::SizeLf,
                                b'\n' => self.end_size_line(),
                                b';' => self.state = ChunkState::Ext,
                                b' ' | b'\t' => self.state = ChunkState::SizeBws,
                                _ => return Err(HttpError::bad("invalid chunk size line")),
                            }
                        }
                    }
                }
                state @ (ChunkState::SizeBws | ChunkState::Ext) => {
                    let b = input[i];
                    i += 1;
                    self.meta += 1;
                    if self.meta > MAX_CHUNK_META {
                        return Err(HttpError::bad("chunk extensions too long"));
                    }
                    match (state, b) {
                        (_, b'\r') => self.state = ChunkState::SizeLf,
                        (_, b'\n') => self.end_size_line(),
                        (ChunkState::SizeBws, b' ' | b'\t') => {}
                        (ChunkState::SizeBws, b';') => self.state = ChunkState::Ext,
                        (ChunkState::SizeBws, _) => {
                            return Err(HttpError::bad("invalid chunk size line"))
                        }
                        (_, 0) => return Err(HttpError::bad("NUL in chunk extension")),
                        _ => {}
                    }
                }
                ChunkState::SizeLf => {
                    if input[i] != b'\n' {
                        return Err(HttpError::bad("CR without LF in chunk size line"));
                    }
                    i += 1;
                    self.end_size_line();
                }
                ChunkState::DataCr => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'\r' => self.state = ChunkState::DataLf,
                        b'\n' => self.state = ChunkState::Size { digits: 0 },
                        _ => return Err(HttpError::bad("chunk data longer than its size")),
                    }
                }
                ChunkState::DataLf => {
                    if input[i] != b'\n' {
                        return Err(HttpError::bad("CR without LF after chunk data"));
                    }
                    i += 1;
                    self.remaining = 0;
                    self.state = ChunkState::Size { digits: 0 };
                }
                ChunkState::Trailer { line } => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'\r' => self.state = ChunkState::TrailerLf { line },
                        b'\n' => self.end_trailer_line(line),
                        0 => return Err(HttpError::bad("NUL in trailer")),
                        _ => {
                            self.meta += 1;
                            if self.meta > MAX_CHUNK_META {
                                return Err(HttpError::new(431, "trailers too large"));
                            }
                            self.state = ChunkState::Trailer { line: line + 1 };
                        }
                    }
                }
                ChunkState::TrailerLf { line } => {
                    if input[i] != b'\n' {
                        return Err(HttpError::bad("CR without LF in trailer"));
                    }
                    i += 1;
                    self.end_trailer_line(line);
                }
                ChunkState::Done => {}
            }
        }
        Ok(i)
    }

    fn end_size_line(&mut self) {
        self.state = if self.remaining == 0 {
            ChunkState::Trailer { line: 0 }
        } else {
            ChunkState::Data
        };
    }

    fn end_trailer_line(&mut self, line: usize) {
        self.state = if line == 0 {
            ChunkState::Done
        } else {
            ChunkState::Trailer { line: 0 }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> Result<Option<(usize, Head)>, HttpError> {
        let mut h = Head::default();
        parse_head(s, &Limits::default(), &mut h).map(|o| o.map(|n| (n, h)))
    }

    fn status(s: &[u8]) -> u16 {
        match parse(s) {
            Err(e) => e.status,
            Ok(Some(_)) => 200,
            Ok(None) => 0,
        }
    }

    #[test]
    fn simple_get() {
        let raw = b"GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: t\r\n\r\nrest";
        let (n, h) = parse(raw).unwrap().unwrap();
        assert_eq!(n, raw.len() - 4);
        assert_eq!(&raw[h.method.clone()], b"GET");
        assert_eq!(&raw[h.target.clone()], b"/a%20b?x=1");
        assert_eq!(h.minor, 1);
        assert_eq!(h.header(raw, "user-agent"), Some(&b"t"[..]));
        assert!(h.keep_alive());
        assert_eq!(h.body, BodyFraming::None);
    }

    #[test]
    fn partial_then_complete() {
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        for cut in 0..raw.len() {
            assert_eq!(status(&raw[..cut]), 0, "cut at {cut}");
        }
        assert_eq!(status(raw), 200);
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        let raw = b"\r\nGET / HTTP/1.0\r\n\r\n";
        let (n, h) = parse(raw).unwrap().unwrap();
        assert_eq!(n, raw.len());
        assert_eq!(&raw[h.method.clone()], b"GET");
        assert!(!h.keep_alive());
    }

    #[test]
    fn connection_semantics() {
        let (_, h) = parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive());
        let (_, h) = parse(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive());
    }

    #[test]
    fn malformed_is_400_never_a_panic() {
        for raw in [
            &b"GARBAGE\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost h\r\n\r\n",
            b"GET / HTTP/1.1\r\n: x\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n", // no Host
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"G\x00T / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n",
        ] {
            assert_eq!(status(raw), 400, "{:?}", String::from_utf8_lossy(raw));
        }
        assert_eq!(status(b"GET / HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(status(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505);
        assert_eq!(status(b"GET / HTTP/3\r\n\r\n"), 505);
        // A space inside the target (or any extra field) is malformed, not a version.
        assert_eq!(status(b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1 x\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1x\r\nHost: h\r\n\r\n"), 400);
        let long = format!("GET /{} HTTP/2.0\r\n\r\n", "a".repeat(9000));
        assert_eq!(status(long.as_bytes()), 414);
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
            501
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n"),
            417
        );
    }

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

    #[test]
    fn same_content_length_twice_is_fine() {
        let (_, h) =
            parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(h.body, BodyFraming::Length(5));
    }

    #[test]
    fn limits() {
        let lim = Limits {
            max_request_line: 32,
            max_head: 64,
            max_headers: 3,
            max_body: 10,
        };
        let mut h = Head::default();
        let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(40));
        let e = parse_head(long_line.as_bytes(), &lim, &mut h).unwrap_err();
        assert_eq!(e.status, 414);
        // Partial and already too long, no newline yet.
        let e = parse_head(&long_line.as_bytes()[..36], &lim, &mut h).unwrap_err();
        assert_eq!(e.status, 414);
        let big = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n", "b".repeat(60));
        assert_eq!(
            parse_head(big.as_bytes(), &lim, &mut h).unwrap_err().status,
            431
        );
        let many = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(parse_head(many, &lim, &mut h).unwrap_err().status, 431);
        let body = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n";
        assert_eq!(parse_head(body, &lim, &mut h).unwrap_err().status, 413);
        let ok = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n";
        assert!(parse_head(ok, &lim, &mut h).unwrap().is_some());
        assert_eq!(h.body, BodyFraming::Length(10));
    }

    #[test]
    fn expect_continue() {
        let (_, h) = parse(
            b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(h.expect_continue);
    }

    fn decode(
        framing: BodyFraming,
        max: u64,
        input: &[u8],
    ) -> Result<(Vec<u8>, usize, bool), HttpError> {
        let mut d = BodyDecoder::new(framing, max);
        let mut out = Vec::new();
        let n = d.feed(input, &mut out)?;
        Ok((out, n, d.is_done()))
    }

    #[test]
    fn content_length_body() {
        let (out, n, done) = decode(BodyFraming::Length(5), 100, b"helloGET").unwrap();
        assert_eq!((out.as_slice(), n, done), (&b"hello"[..], 5, true));
        let (out, n, done) = decode(BodyFraming::Length(5), 100, b"hel").unwrap();
        assert_eq!((out.as_slice(), n, done), (&b"hel"[..], 3, false));
    }

    #[test]
    fn chunked_body_in_every_split() {
        let raw = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        let body_len = raw.len() - 4;
        for cut in 0..=raw.len() {
            let mut d = BodyDecoder::new(BodyFraming::Chunked, 100);
            let mut out = Vec::new();
            let a = d.feed(&raw[..cut], &mut out).unwrap();
            let b = d.feed(&raw[a..], &mut out).unwrap();
            assert!(d.is_done(), "cut {cut}");
            assert_eq!(a + b, body_len, "cut {cut}");
            assert_eq!(out, b"hello, world");
        }
        // Bare LF line ends are accepted.
        let (out, _, done) = decode(BodyFraming::Chunked, 100, b"3\nabc\n0\n\n").unwrap();
        assert_eq!((out.as_slice(), done), (&b"abc"[..], true));
        // Whitespace before an extension or the line end (BWS) is accepted.
        let (out, _, done) =
            decode(BodyFraming::Chunked, 100, b"3 ;e=1\r\nabc\r\n0\t \r\n\r\n").unwrap();
        assert_eq!((out.as_slice(), done), (&b"abc"[..], true));
    }

    #[test]
    fn chunked_errors() {
        for raw in [
            &b"x\r\n"[..],
            b"\r\n",
            b"3\r\nabcd\r\n",
            b"3\rX",
            b"fffffffffffffffff\r\n",
            b"3\r\nabc\rX",
            b"3 junk\r\nabc\r\n0\r\n\r\n",
            b"3\tx;e\r\nabc\r\n0\r\n\r\n",
        ] {
            let e = decode(BodyFraming::Chunked, u64::MAX, raw).unwrap_err();
            assert_eq!(e.status, 400, "{:?}", String::from_utf8_lossy(raw));
        }
        assert_eq!(
            decode(BodyFraming::Chunked, 4, b"5\r\nhello\r\n0\r\n\r\n")
                .unwrap_err()
                .status,
            413
        );
        assert_eq!(
            decode(BodyFraming::Chunked, 4, b"3\r\nabc\r\n2\r\nde\r\n")
                .unwrap_err()
                .status,
            413
        );
    }

    #[test]
    fn fuzz_never_panics() {
        // A cheap deterministic fuzz: mutate a valid request byte by byte.
        let base = b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n";
        let mut x: u32 = 12345;
        for _ in 0..20_000 {
            let mut v = base.to_vec();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = (x as usize) % v.len();
                v[i] = (x >> 8) as u8;
            }
            let mut h = Head::default();
            if let Ok(Some(n)) = parse_head(&v, &Limits::default(), &mut h) {
                let mut d = BodyDecoder::new(h.body, 1 << 20);
                let mut out = Vec::new();
                let _ = d.feed(&v[n..], &mut out);
            }
        }
    }
}
