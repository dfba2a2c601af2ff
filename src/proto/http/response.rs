//! Responses: what handlers return ([`Response`], [`Body`]) and the writer that turns
//! one into a status line and headers (pure; the connection sends the bytes).

use std::borrow::Cow;
use std::fs::File;
use std::ops::Range;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The reason phrase of `status` (empty for codes we never send).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// A response body.
#[derive(Clone, Debug, Default)]
pub enum Body {
    /// No body (`Content-Length: 0`, or none for 204 and 304).
    #[default]
    Empty,
    /// Bytes, borrowed for `'static` (no copy) or owned.
    Bytes(Cow<'static, [u8]>),
    /// A slice of shared bytes (the file cache hands these out without copying).
    Shared(Rc<[u8]>, Range<usize>),
    /// A region of an open file, sent with `sendfile(2)`.
    File {
        /// The open file (shared with the cache; the connection keeps it open).
        file: Rc<File>,
        /// First byte.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
}

impl Body {
    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::Shared(_, r) => r.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a handler answers.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<Cow<'static, str>>,
    /// Further headers (`Date`, `Server`, `Content-Length` and `Connection` are added
    /// by the server; CR and LF in names or values are dropped).
    pub headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    /// The body.
    pub body: Body,
    /// Header lines rendered ahead of time, written after `headers` as they are: each
    /// line *starts* with CRLF (`\r\nName: value`), and the writer does not check
    /// them, so only the server's own code fills this (the file service renders a
    /// cached file's `Content-Type`, validators and `Accept-Ranges` once, not per
    /// request).
    pub prerendered: Option<Rc<[u8]>>,
}

impl Response {
    /// An empty response with `status`.
    pub fn empty(status: u16) -> Response {
        Response {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Body::Empty,
            prerendered: None,
        }
    }

    /// A response with a body of type `content_type`.
    pub fn bytes(
        status: u16,
        content_type: impl Into<Cow<'static, str>>,
        body: impl Into<Cow<'static, [u8]>>,
    ) -> Response {
        Response {
            status,
            content_type: Some(content_type.into()),
            headers: Vec::new(),
            body: Body::Bytes(body.into()),
            prerendered: None,
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<Cow<'static, str>>) -> Response {
        let body: Cow<'static, [u8]> = match body.into() {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        };
        Response::bytes(status, "text/plain; charset=utf-8", body)
    }

    /// An `application/json` response (the caller supplies valid JSON).
    pub fn json(status: u16, body: impl Into<String>) -> Response {
        Response::bytes(status, "application/json", body.into().into_bytes())
    }

    /// An `text/html; charset=utf-8` response.
    pub fn html(status: u16, body: impl Into<String>) -> Response {
        Response::bytes(status, "text/html; charset=utf-8", body.into().into_bytes())
    }

    /// The server's short page for an error status.
    pub fn error(status: u16) -> Response {
        let body = format!("{status} {}\n", reason(status));
        Response::text(status, body)
    }

    /// Adds a header.
    pub fn with_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Whether this status never carries a body (1xx, 204, 304).
    pub fn bodiless_status(status: u16) -> bool {
        (100..200).contains(&status) || status == 204 || status == 304
    }
}

/// Appends the decimal form of `n`.
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn push_clean(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    // The common case, no CR or LF, is one copy rather than a byte-by-byte filter.
    if b.iter().any(|&c| c == b'\r' || c == b'\n') {
        out.extend(b.iter().filter(|&&c| c != b'\r' && c != b'\n'));
    } else {
        out.extend_from_slice(b);
    }
}

/// How the `Connection` header is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnHeader {
    /// No header (HTTP/1.1 keep-alive is the default).
    None,
    /// `Connection: keep-alive` (an HTTP/1.0 client that asked for it).
    KeepAlive,
    /// `Connection: close`.
    Close,
}

/// Writes the status line and headers of `resp` into `out` (which is cleared first).
/// `content_length` is the length the body has (or would have, for HEAD).
pub fn write_head(
    out: &mut Vec<u8>,
    resp: &Response,
    content_length: u64,
    date: &[u8],
    server: &str,
    conn: ConnHeader,
) {
    out.clear();
    if resp.status == 200 {
        // The common case, without formatting a number.
        out.extend_from_slice(b"HTTP/1.1 200 OK");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        push_u64(out, u64::from(resp.status));
        out.push(b' ');
        out.extend_from_slice(reason(resp.status).as_bytes());
    }
    out.extend_from_slice(b"\r\nServer: ");
    push_clean(out, server);
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date);
    if let Some(ct) = &resp.content_type {
        out.extend_from_slice(b"\r\nContent-Type: ");
        push_clean(out, ct);
    }
    if !Response::bodiless_status(resp.status) {
        out.extend_from_slice(b"\r\nContent-Length: ");
        push_u64(out, content_length);
    }
    match conn {
        ConnHeader::None => {}
        ConnHeader::KeepAlive => out.extend_from_slice(b"\r\nConnection: keep-alive"),
        ConnHeader::Close => out.extend_from_slice(b"\r\nConnection: close"),
    }
    for (name, value) in &resp.headers {
        out.extend_from_slice(b"\r\n");
        push_clean(out, name);
        out.extend_from_slice(b": ");
        push_clean(out, value);
    }
    if let Some(p) = &resp.prerendered {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(b"\r\n\r\n");
}

/// The current time formatted for `Date` (IMF-fixdate) and for the access log
/// (`10/Oct/2000:13:55:36 +0000`), recomputed at most once a second.
#[derive(Debug, Default)]
pub struct DateCache {
    secs: u64,
    http: String,
    clf: String,
    /// Until this (monotonic) instant the wall-clock second cannot have changed:
    /// [`update_at`](Self::update_at) reads no clock before it.
    valid_until: Option<Instant>,
}

impl DateCache {
    /// Refreshes the strings if the second changed (reads the wall clock).
    pub fn update(&mut self) {
        self.update_at(Instant::now());
    }

    /// Refreshes the strings if the second may have changed by `now` (the caller's
    /// monotonic time, e.g. the reactor's loop time): the wall clock is read only
    /// when `now` reaches the end of the second last read, so a busy server reads
    /// it about once a second instead of once a response (as nginx updates its
    /// cached time once per event-loop iteration). A wall clock stepped meanwhile
    /// shows at most one second late.
    pub fn update_at(&mut self, now: Instant) {
        if self.valid_until.is_some_and(|t| now < t) {
            return;
        }
        let wall = SystemTime::now();
        let since = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        if secs != self.secs || self.http.is_empty() {
            self.secs = secs;
            self.http = httpdate::fmt_http_date(wall);
            self.clf = clf_date(secs);
        }
        // `now` was taken before `wall`: the instant computed is at or before the
        // end of this second, never after it.
        let rest = Duration::from_nanos(1_000_000_000 - u64::from(since.subsec_nanos()));
        self.valid_until = now.checked_add(rest);
    }

    /// The `Date` header value.
    pub fn http(&self) -> &str {
        &self.http
    }

    /// The access-log time stamp.
    pub fn clf(&self) -> &str {
        &self.clf
    }
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31): Howard Hinnant's
/// `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Common-log-format time stamp in UTC: `10/Oct/2000:13:55:36 +0000`.
pub fn clf_date(secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_is_well_formed() {
        let mut out = Vec::new();
        let r = Response::text(200, "hi").with_header("X-Evil", "a\r\nInjected: 1");
        write_head(&mut out, &r, 2, b"DATE", "readyloop", ConnHeader::Close);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s,
            "HTTP/1.1 200 OK\r\nServer: readyloop\r\nDate: DATE\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nConnection: close\r\nX-Evil: aInjected: 1\r\n\r\n"
        );
        let mut out = Vec::new();
        write_head(
            &mut out,
            &Response::empty(304),
            10,
            b"D",
            "s",
            ConnHeader::None,
        );
        assert!(!String::from_utf8(out).unwrap().contains("Content-Length"));
    }

    #[test]
    fn numbers_and_dates() {
        let mut v = Vec::new();
        push_u64(&mut v, 0);
        v.push(b' ');
        push_u64(&mut v, u64::MAX);
        assert_eq!(v, b"0 18446744073709551615");
        assert_eq!(clf_date(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(clf_date(971_185_336), "10/Oct/2000:13:42:16 +0000");
        assert_eq!(clf_date(1_709_210_096), "29/Feb/2024:12:34:56 +0000");
    }

    #[test]
    fn date_cache_reads_the_wall_clock_once_a_second() {
        let mut d = DateCache::default();
        let t0 = Instant::now();
        d.update_at(t0);
        let until = d.valid_until.expect("set by the first update");
        assert!(until > t0 && until <= t0 + Duration::from_secs(1));
        let secs = d.secs;
        assert!(
            secs.abs_diff(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs()
            ) <= 1
        );
        assert_eq!(
            d.http,
            httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
        );
        // Before the end of the second: nothing is read or changed.
        d.update_at(until - Duration::from_nanos(1));
        assert_eq!(d.valid_until, Some(until));
        // At its end: read again, valid for at most one more second from then.
        d.update_at(until);
        let next = d.valid_until.unwrap();
        assert!(next > until && next <= until + Duration::from_secs(1));
        assert!(d.secs >= secs);
    }
}
