//! One HTTP connection: the [`Protocol`] that reads requests, answers them in order,
//! and enforces the timeouts.
//!
//! Phases: `Idle` (between requests: keep-alive timeout, or the header timeout before
//! the first request; stray empty lines keep a connection idle), `Head` (part of a
//! head is here: header timeout from its first byte, or for the first request from
//! the connection's start, so a slowloris client gets 408 however it trickles),
//! `Body` (body timeout between reads), `Linger` (answered with `Connection: close`:
//! write side shut, input discarded until the peer closes or the linger timeout).
//!
//! One timer per connection, re-armed lazily: the phase only records when it began,
//! and a timer that fires early just re-arms for the rest, so answering a request
//! costs no timer operation at all. While output is pending the timeouts measure
//! progress instead: a peer that takes no bytes for `send_timeout` is dropped.
//!
//! Pipelining: every complete request in the input is answered at once, in order,
//! until the connection reports backpressure; the rest waits in `inbuf` (reading is
//! paused) until [`Protocol::output_drained`].

use std::collections::VecDeque;
use std::ops::Range;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::parser::{parse_head, split_target, BodyDecoder, BodyFraming, Head, HttpError};
use super::response::{write_head, Body, ConnHeader, Response};
use super::router::{bump, decode_path, Request, Routed, KNOWN_METHODS};
use super::Shared;
use crate::net::{Conn, PeerAddr, Protocol};
use crate::reactor::TimerId;

/// The log target of the access log.
pub const ACCESS_TARGET: &str = "readyloop::http::access";

/// How long a peer may take no bytes of pending output.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Head,
    Body,
    Linger,
}

pub(crate) struct HttpConn {
    sh: Rc<Shared>,
    phase: Phase,
    /// When the phase began (or, for `Body`, the last body bytes arrived).
    since: Instant,
    /// No request has been answered yet.
    fresh: bool,
    /// Unprocessed input (a partial head, or requests held back by backpressure).
    inbuf: Vec<u8>,
    /// The current request's head bytes; `head` holds offsets into them.
    head_buf: Vec<u8>,
    head: Head,
    decoder: BodyDecoder,
    body: Vec<u8>,
    /// Scratch for response heads.
    out: Vec<u8>,
    timer: Option<(TimerId, Instant)>,
    /// Processing stopped for backpressure; resume in `output_drained`.
    stalled: bool,
    /// Output was pending at the last timer check: (bytes, still pending).
    last_pending: usize,
    sending: bool,
    /// Server shutting down: answer the current request with `Connection: close`.
    draining: bool,
    peer_eof: bool,
    /// Of the connection's bytes handed to the kernel, how many are in the stats.
    counted: u64,
    /// Access-log lines waiting for their response to be sent (or the connection lost).
    pending_log: VecDeque<LogRecord>,
}

/// An access-log line whose byte count is known once the body has left: the body is
/// the connection's output bytes `body_start..body_end` (see `Conn::bytes_sent`).
struct LogRecord {
    /// Up to the status and a space.
    prefix: String,
    /// From the space before the referer.
    suffix: String,
    body_start: u64,
    body_end: u64,
}

/// Escapes bytes for a quoted access-log field (as nginx does: `"`, `\` and
/// non-printable bytes become `\xHH`).
fn log_escape(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'"' && b != b'\\' || b == b' ' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
}

impl HttpConn {
    pub(crate) fn new(sh: Rc<Shared>) -> HttpConn {
        HttpConn {
            sh,
            phase: Phase::Idle,
            since: Instant::now(),
            fresh: true,
            inbuf: Vec::new(),
            head_buf: Vec::new(),
            head: Head::default(),
            decoder: BodyDecoder::new(BodyFraming::None, 0),
            body: Vec::new(),
            out: Vec::new(),
            timer: None,
            stalled: false,
            last_pending: 0,
            sending: false,
            draining: false,
            peer_eof: false,
            counted: 0,
            pending_log: VecDeque::new(),
        }
    }

    fn set_phase(&mut self, phase: Phase, now: Instant) {
        self.phase = phase;
        self.since = now;
        self.sending = false;
    }

    fn deadline(&self) -> Instant {
        let c = &self.sh.cfg;
        let t = if self.sending {
            SEND_TIMEOUT
        } else {
            match self.phase {
                Phase::Idle if self.fresh => c.header_timeout,
                Phase::Idle => c.keepalive_timeout,
                Phase::Head => c.header_timeout,
                Phase::Body => c.body_timeout,
                Phase::Linger => c.linger_timeout,
            }
        };
        self.since + t
    }

    /// Makes sure a timer fires no later than the current deadline.
    fn arm(&mut self, conn: &mut Conn<'_, '_>) {
        let d = self.deadline();
        match self.timer {
            Some((_, at)) if at <= d => return,
            Some((id, _)) => {
                conn.cancel_timer(id);
            }
            None => {}
        }
        let delay = d.saturating_duration_since(Instant::now());
        let id = conn.set_timer(delay);
        self.timer = Some((id, d));
    }

    fn process_inbuf(&mut self, conn: &mut Conn<'_, '_>) {
        let mut buf = std::mem::take(&mut self.inbuf);
        let used = self.process(conn, &buf);
        if self.phase == Phase::Linger {
            buf.clear();
        } else {
            buf.drain(..used);
        }
        if buf.is_empty() && buf.capacity() > 64 * 1024 {
            buf = Vec::new();
        }
        self.inbuf = buf;
    }

    /// Handles as many requests from `buf` as are complete. Returns how many bytes
    /// were used; the rest is a partial head or held back by backpressure.
    fn process(&mut self, conn: &mut Conn<'_, '_>, buf: &[u8]) -> usize {
        let mut pos = 0;
        let now = conn.now();
        while pos < buf.len() {
            match self.phase {
                Phase::Linger => return buf.len(),
                Phase::Idle | Phase::Head => {
                    if conn.is_closing() {
                        return buf.len();
                    }
                    if self.phase == Phase::Idle
                        && buf[pos..].iter().all(|&b| b == b'\r' || b == b'\n')
                    {
                        // Only empty lines (an old client's extra CRLF after a body,
                        // RFC 9112 2.2): no request has begun, so the connection stays
                        // idle (keep-alive timeout, not the header timeout and 408).
                        return buf.len();
                    }
                    if conn.is_backpressured() {
                        self.stalled = true;
                        return pos;
                    }
                    if self.phase == Phase::Idle {
                        // The first head is timed from the connection's start (waiting
                        // before the first byte buys no second header timeout); later
                        // ones from their first byte.
                        let since = if self.fresh { self.since } else { now };
                        self.set_phase(Phase::Head, since);
                    }
                    let rest = &buf[pos..];
                    match parse_head(rest, &self.sh.cfg.limits, &mut self.head) {
                        Ok(None) => return pos,
                        Err(e) => {
                            self.refuse(conn, e, rest);
                            return buf.len();
                        }
                        Ok(Some(n)) => {
                            self.head_buf.clear();
                            self.head_buf.extend_from_slice(&rest[..n]);
                            pos += n;
                            if self.head.body == BodyFraming::None {
                                self.body.clear();
                                self.dispatch(conn, now);
                            } else {
                                self.decoder =
                                    BodyDecoder::new(self.head.body, self.sh.cfg.limits.max_body);
                                self.body.clear();
                                self.set_phase(Phase::Body, now);
                                if self.head.expect_continue && pos == buf.len() {
                                    conn.write(b"HTTP/1.1 100 Continue\r\n\r\n");
                                }
                            }
                        }
                    }
                }
                Phase::Body => match self.decoder.feed(&buf[pos..], &mut self.body) {
                    Err(e) => {
                        self.refuse(conn, e, &[]);
                        return buf.len();
                    }
                    Ok(n) => {
                        pos += n;
                        self.since = now;
                        if self.decoder.is_done() {
                            self.dispatch(conn, now);
                        }
                    }
                },
            }
        }
        pos
    }

    /// Answers the request in `head_buf`/`head` (with `body`).
    fn dispatch(&mut self, conn: &mut Conn<'_, '_>, now: Instant) {
        self.fresh = false;
        let peer = conn.peer().clone();
        let backend = conn.backend();
        let resp = self.respond(&peer, backend, now);
        // A malformed target (400) closes like a malformed head does.
        let keep = self.head.keep_alive()
            && resp.status != 400
            && !self.draining
            && !conn.is_shutting_down();
        let head_only = &self.head_buf[self.head.method.clone()] == b"HEAD";
        let (status, body) = self.send(conn, resp, head_only, keep);
        if self.sh.cfg.access_log && log::log_enabled!(target: ACCESS_TARGET, log::Level::Info) {
            let mut line = String::with_capacity(128);
            let hb = &self.head_buf;
            log_escape(&mut line, &hb[self.head.method.clone()]);
            line.push(' ');
            log_escape(&mut line, &hb[self.head.target.clone()]);
            line.push_str(if self.head.minor == 0 {
                " HTTP/1.0"
            } else {
                " HTTP/1.1"
            });
            let referer = self.head.header(hb, "referer");
            let ua = self.head.header(hb, "user-agent");
            let rec = self.access_log(&peer, &line, status, body, referer, ua);
            self.pending_log.push_back(rec);
        }
        if keep {
            self.set_phase(Phase::Idle, now);
        } else {
            self.linger(conn);
        }
    }

    fn respond(
        &self,
        peer: &PeerAddr,
        backend: crate::selector::Backend,
        now: Instant,
    ) -> Response {
        let hb = &self.head_buf;
        // Matched as bytes: a known method needs no UTF-8 check of its own.
        let raw_method = &hb[self.head.method.clone()];
        let Some(method) = KNOWN_METHODS
            .into_iter()
            .find(|m| m.as_bytes() == raw_method)
        else {
            return Response::error(if std::str::from_utf8(raw_method).is_ok() {
                501
            } else {
                400
            });
        };
        let target = &hb[self.head.target.clone()];
        if target == b"*" {
            return if method == "OPTIONS" {
                Response::empty(204).with_header("Allow", "GET, HEAD, POST, OPTIONS")
            } else {
                Response::error(400)
            };
        }
        let Some((raw_path, query)) = split_target(target) else {
            return Response::error(400);
        };
        // Decoded, dot segments resolved; not UTF-8 or above `/` is 400.
        let Some(path) = decode_path(raw_path) else {
            return Response::error(400);
        };
        let query = query.and_then(|q| std::str::from_utf8(q).ok());
        let req = Request {
            head: &self.head,
            method,
            raw: hb,
            path: &path,
            query,
            body: &self.body,
            peer,
            stats: &self.sh.stats,
            backend,
        };
        match self.sh.router.route(method, &path) {
            Routed::Handler(h) => h(&req),
            Routed::MethodNotAllowed(allow) => Response::error(405).with_header("Allow", allow),
            Routed::Options(allow) => Response::empty(204).with_header("Allow", allow),
            Routed::NotFound => match &self.sh.files {
                Some(files) => files.serve(&req, now),
                None => Response::error(404),
            },
        }
    }

    /// Writes `resp`; returns the status and where its body lies in the connection's
    /// output (`Conn::bytes_sent` offsets). Asks to hear when it has all left, to count
    /// it (stats, access log).
    fn send(
        &mut self,
        conn: &mut Conn<'_, '_>,
        resp: Response,
        head_only: bool,
        keep: bool,
    ) -> (u16, Range<u64>) {
        let conn_hdr = if !keep {
            ConnHeader::Close
        } else if self.head.minor == 0 {
            ConnHeader::KeepAlive
        } else {
            ConnHeader::None
        };
        let len = resp.body.len();
        {
            let mut date = self.sh.date.borrow_mut();
            date.update_at(conn.now());
            write_head(
                &mut self.out,
                &resp,
                len,
                date.http().as_bytes(),
                &self.sh.cfg.server_name,
                conn_hdr,
            );
        }
        conn.write(&self.out);
        let body_start = conn.bytes_sent() + conn.output_len() as u64;
        let mut sent = 0;
        if !head_only && !Response::bodiless_status(resp.status) {
            sent = len;
            match resp.body {
                Body::Empty => {}
                Body::Bytes(b) => {
                    conn.write(&b);
                }
                Body::Shared(d, r) => {
                    conn.write(&d[r]);
                }
                Body::File { file, offset, len } => {
                    conn.send_file(file, offset, len);
                }
            }
        }
        bump(&self.sh.stats.requests, 1);
        conn.notify_drained();
        (resp.status, body_start..body_start + sent)
    }

    /// Counts the bytes the connection has handed to the kernel (stats) and writes
    /// the access-log lines of responses that have left; `lost`: the connection is
    /// gone, so the rest are written with what was sent of them.
    fn settle(&mut self, conn: &Conn<'_, '_>, lost: bool) {
        let sent = conn.bytes_sent();
        bump(&self.sh.stats.bytes_sent, sent.saturating_sub(self.counted));
        self.counted = sent;
        while let Some(r) = self.pending_log.front() {
            if r.body_end > sent && !lost {
                break;
            }
            let bytes = sent
                .saturating_sub(r.body_start)
                .min(r.body_end - r.body_start);
            log::info!(target: ACCESS_TARGET, "{}{bytes}{}", r.prefix, r.suffix);
            self.pending_log.pop_front();
        }
    }

    /// The access-log line of a response whose body is `body`, to queue (written by
    /// [`settle`](Self::settle) once the body has left or the connection is lost).
    fn access_log(
        &self,
        peer: &PeerAddr,
        request_line: &str,
        status: u16,
        body: Range<u64>,
        referer: Option<&[u8]>,
        ua: Option<&[u8]>,
    ) -> LogRecord {
        let host = match peer {
            PeerAddr::Inet(a) => a.ip().to_string(),
            PeerAddr::Unix => "unix".to_string(),
        };
        let quoted = |v: Option<&[u8]>| {
            let mut s = String::new();
            match v {
                Some(v) => log_escape(&mut s, v),
                None => s.push('-'),
            }
            s
        };
        let prefix = {
            let mut date = self.sh.date.borrow_mut();
            date.update();
            format!("{host} - - [{}] \"{request_line}\" {status} ", date.clf())
        };
        let suffix = format!(" \"{}\" \"{}\"", quoted(referer), quoted(ua));
        LogRecord {
            prefix,
            suffix,
            body_start: body.start,
            body_end: body.end,
        }
    }

    /// Answers a refused request and closes (lingering).
    fn refuse(&mut self, conn: &mut Conn<'_, '_>, e: HttpError, raw: &[u8]) {
        log::debug!("{}: {} ({})", conn.peer(), e.status, e.reason);
        let peer = conn.peer().clone();
        let resp = Response::error(e.status);
        self.head.minor = 1;
        let (status, body) = self.send(conn, resp, false, false);
        if self.sh.cfg.access_log && log::log_enabled!(target: ACCESS_TARGET, log::Level::Info) {
            let first = raw.split(|&b| b == b'\n').next().unwrap_or(&[]);
            let first = first.strip_suffix(b"\r").unwrap_or(first);
            let mut line = String::new();
            if first.is_empty() {
                line.push('-');
            } else {
                log_escape(&mut line, &first[..first.len().min(256)]);
            }
            let rec = self.access_log(&peer, &line, status, body, None, None);
            self.pending_log.push_back(rec);
        }
        self.linger(conn);
    }

    /// Shuts our write side after the answer and discards input until the peer
    /// closes (or the linger timeout).
    fn linger(&mut self, conn: &mut Conn<'_, '_>) {
        let now = conn.now();
        self.set_phase(Phase::Linger, now);
        self.inbuf.clear();
        conn.shutdown_write();
    }
}

impl Protocol for HttpConn {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        let stats = &self.sh.stats;
        bump(&stats.connections_open, 1);
        bump(&stats.connections_total, 1);
        self.since = conn.now();
        self.arm(conn);
    }

    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
        bump(&self.sh.stats.bytes_received, data.len() as u64);
        if self.phase == Phase::Linger {
            return;
        }
        if self.inbuf.is_empty() {
            let used = self.process(conn, data);
            if used < data.len() && self.phase != Phase::Linger {
                self.inbuf.extend_from_slice(&data[used..]);
            }
        } else {
            self.inbuf.extend_from_slice(data);
            self.process_inbuf(conn);
        }
        self.arm(conn);
    }

    fn eof_received(&mut self, conn: &mut Conn<'_, '_>) -> bool {
        self.peer_eof = true;
        if self.stalled && !self.inbuf.is_empty() {
            // Requests are still waiting for room to answer: finish them first.
            return true;
        }
        if self.phase == Phase::Head || self.phase == Phase::Body {
            log::debug!("{}: peer closed mid-request", conn.peer());
        }
        false
    }

    fn output_drained(&mut self, conn: &mut Conn<'_, '_>) {
        self.settle(conn, false);
        if self.stalled {
            self.stalled = false;
            self.process_inbuf(conn);
            if self.peer_eof && !self.stalled {
                conn.close();
                return;
            }
            self.arm(conn);
        }
    }

    fn timer(&mut self, conn: &mut Conn<'_, '_>, id: TimerId) {
        if self.timer.map(|(t, _)| t) != Some(id) {
            return;
        }
        self.timer = None;
        let now = Instant::now();
        if now < self.deadline() {
            self.arm(conn);
            return;
        }
        let pending = conn.output_len();
        if pending > 0 {
            if pending != self.last_pending || !self.sending {
                // Progress since the last check: measure the next stretch.
                self.last_pending = pending;
                self.since = now;
                self.sending = true;
                self.arm(conn);
            } else {
                log::info!(
                    "{}: peer took none of {pending} pending bytes in {SEND_TIMEOUT:?}; dropping",
                    conn.peer()
                );
                conn.abort();
            }
            return;
        }
        self.sending = false;
        match self.phase {
            Phase::Idle => {
                log::debug!("{}: idle timeout", conn.peer());
                conn.close();
            }
            Phase::Head | Phase::Body => {
                let e = HttpError::new(408, "request not received in time");
                let raw = std::mem::take(&mut self.inbuf);
                self.refuse(conn, e, &raw);
                self.arm(conn);
            }
            Phase::Linger => {
                log::debug!("{}: linger timeout", conn.peer());
                conn.abort();
            }
        }
    }

    fn shutdown(&mut self, conn: &mut Conn<'_, '_>) {
        self.draining = true;
        if self.phase == Phase::Idle {
            conn.close();
        }
    }

    fn connection_lost(&mut self, conn: &mut Conn<'_, '_>, reason: Option<&std::io::Error>) {
        self.settle(conn, true);
        let stats = &self.sh.stats;
        stats
            .connections_open
            .set(stats.connections_open.get().saturating_sub(1));
        if let Some((id, _)) = self.timer.take() {
            conn.cancel_timer(id);
        }
        if let Some(e) = reason {
            log::debug!("{}: connection lost: {e}", conn.peer());
        }
    }
}
