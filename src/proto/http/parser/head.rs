//! The request-head stage: the request line and header lines (on `httparse`), with
//! the limits checked and the framing headers decoded into a [`Head`].

use std::mem::MaybeUninit;

use super::{has_token, BodyFraming, Head, HttpError, Limits, MAX_HEADERS_CAP};

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

/// Parses a request head from the start of `buf` into `head`.
///
/// `Ok(None)`: incomplete (more bytes needed; the limits have been checked against
/// what is there). `Ok(Some(n))`: the head is `buf[..n]`; `head` holds offsets into
/// it. Leading empty lines (a CRLF left after a previous body) are skipped, as RFC
/// 9112 allows; the offsets account for them.
///
/// Stages: the empty lines before the request, the request line and header lines
/// (`httparse`, then the size limits), then the headers that decide framing and
/// connection handling (`Framing`).
///
/// # Errors
/// The status to answer when the request is refused: 400 for a malformed head
/// (and for conflicting or smuggling-prone framing, or an HTTP/1.1 request without
/// `Host`), 414 for a request line over [`Limits::max_request_line`], 431 for a head
/// over [`Limits::max_head`] or more header lines than [`Limits::max_headers`], 413
/// for a declared body over [`Limits::max_body`], 417 for an expectation other than
/// `100-continue`, 501 for a transfer coding other than `chunked`, 505 for a
/// well-formed request line with another HTTP version.
pub fn parse_head(
    buf: &[u8],
    limits: &Limits,
    head: &mut Head,
) -> Result<Option<usize>, HttpError> {
    let skip = leading_empty_lines(buf)?;
    let data = &buf[skip..];
    if data.is_empty() {
        return Ok(None);
    }
    // Uninitialised: `httparse` writes only the entries it fills. An initialised
    // array (`EMPTY_HEADER` x 256, 8 KiB) cost every request 8 KiB of stores, the
    // largest item of a small request's user-space time in `perf`.
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let max = limits.max_headers.clamp(1, MAX_HEADERS_CAP);
    let mut req = httparse::Request::new(&mut []);
    let status = req
        .parse_with_uninit_headers(data, &mut storage[..max])
        .map_err(|e| refusal(e, data, limits))?;
    check_request_line(data, limits)?;
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
    let mut framing = Framing::default();
    for h in req.headers.iter() {
        head.headers
            .push((range(h.name.as_bytes()), range(h.value)));
        framing.header(head, h.name.as_bytes(), h.value.trim_ascii())?;
    }
    framing.finish(head, limits)?;
    Ok(Some(skip + n))
}

/// How many bytes of empty lines come before the request (at most 8 are allowed).
fn leading_empty_lines(buf: &[u8]) -> Result<usize, HttpError> {
    let skip = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if skip > 8 {
        return Err(HttpError::bad("too many empty lines before the request"));
    }
    Ok(skip)
}

/// The refusal for an `httparse` error on `data` (the head after the empty lines).
fn refusal(e: httparse::Error, data: &[u8], limits: &Limits) -> HttpError {
    match e {
        httparse::Error::TooManyHeaders => HttpError::new(431, "too many header lines"),
        httparse::Error::Version => {
            // A well-formed line with a version we do not speak gets 505; garbage, 400.
            let line_end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
            let line = &data[..line_end];
            if line.len() > limits.max_request_line {
                HttpError::new(414, "request line too long")
            } else if is_other_version_line(line) {
                HttpError::new(505, "unsupported HTTP version")
            } else {
                HttpError::bad("malformed request line")
            }
        }
        _ => HttpError::bad("malformed request head"),
    }
}

/// 414 when the request line (complete or not yet) is over the limit.
fn check_request_line(data: &[u8], limits: &Limits) -> Result<(), HttpError> {
    let too_long = match data.iter().position(|&b| b == b'\n') {
        Some(n) => n > limits.max_request_line,
        None => data.len() > limits.max_request_line,
    };
    if too_long {
        return Err(HttpError::new(414, "request line too long"));
    }
    Ok(())
}

/// The header stage: what the headers say about framing and the connection,
/// gathered line by line, then checked as a whole.
#[derive(Default)]
struct Framing {
    length: Option<u64>,
    chunked: bool,
    te_seen: bool,
}

impl Framing {
    /// Takes one header line (`value` trimmed) into `self` and `head`.
    fn header(&mut self, head: &mut Head, name: &[u8], value: &[u8]) -> Result<(), HttpError> {
        if name.eq_ignore_ascii_case(b"content-length") {
            self.content_length(value)?;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if self.te_seen || self.chunked {
                // Several Transfer-Encoding lines: only "chunked" once is understood.
                return Err(HttpError::new(501, "unsupported transfer coding"));
            }
            self.te_seen = true;
            if value.eq_ignore_ascii_case(b"chunked") {
                self.chunked = true;
            } else {
                return Err(HttpError::new(501, "unsupported transfer coding"));
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            head.conn_close |= has_token(value, "close");
            head.conn_keep_alive |= has_token(value, "keep-alive");
        } else if name.eq_ignore_ascii_case(b"expect") {
            if value.eq_ignore_ascii_case(b"100-continue") {
                head.expect_continue = head.minor >= 1;
            } else {
                return Err(HttpError::new(417, "unsupported expectation"));
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            if head.has_host {
                return Err(HttpError::bad("several Host headers"));
            }
            head.has_host = true;
        }
        Ok(())
    }

    /// A `Content-Length` value: repeated identical values (or a list of them) are
    /// tolerated (RFC 9110 8.6); anything else is a framing conflict.
    fn content_length(&mut self, value: &[u8]) -> Result<(), HttpError> {
        for part in value.split(|&b| b == b',') {
            let v = parse_u64(part.trim_ascii()).ok_or(HttpError::bad("invalid Content-Length"))?;
            if self.length.is_some_and(|l| l != v) {
                return Err(HttpError::bad("conflicting Content-Length headers"));
            }
            self.length = Some(v);
        }
        Ok(())
    }

    /// Checks the headers as a whole and sets `head.body`.
    fn finish(self, head: &mut Head, limits: &Limits) -> Result<(), HttpError> {
        if head.minor >= 1 && !head.has_host {
            return Err(HttpError::bad("HTTP/1.1 request without Host"));
        }
        if self.chunked {
            if self.length.is_some() {
                // Both framings at once is the classic smuggling vector: refuse.
                return Err(HttpError::bad("both Content-Length and Transfer-Encoding"));
            }
            if head.minor == 0 {
                return Err(HttpError::bad("Transfer-Encoding in an HTTP/1.0 request"));
            }
            head.body = BodyFraming::Chunked;
        } else if let Some(len) = self.length {
            if len > limits.max_body {
                return Err(HttpError::new(413, "declared body too large"));
            }
            if len > 0 {
                head.body = BodyFraming::Length(len);
            }
        }
        Ok(())
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
}
