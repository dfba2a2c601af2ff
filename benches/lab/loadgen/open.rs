//! Open loop: a constant offered rate, latency from the intended send time.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::{connect_registered, poll_tokens, read_echo, write_some, Bounds, PhaseResult, GRACE};

/// What an open-loop connection sends and expects back.
#[derive(Clone, Debug)]
pub enum Request {
    /// `msg`, echoed back byte for byte.
    Echo(Vec<u8>),
    /// An HTTP/1.1 keep-alive request; the reply is one `200` response framed by
    /// `Content-Length`.
    Http(Vec<u8>),
}

impl Request {
    /// A keep-alive `GET path`.
    pub fn http_get(path: &str) -> Request {
        Request::Http(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes())
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Request::Echo(m) | Request::Http(m) => m,
        }
    }
}

/// How much of an HTTP response `buf` holds: `Ok(Some((total length, body
/// length)))` once it is complete, `Ok(None)` while it is not; an error for a
/// status other than 200 or a head without `Content-Length`.
pub fn http_response_len(buf: &[u8]) -> io::Result<Option<(usize, usize)>> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > 64 * 1024 {
            return Err(bad("response head too long"));
        }
        return Ok(None);
    };
    let head = &buf[..head_end];
    if !head.starts_with(b"HTTP/1.1 200 ") && !head.starts_with(b"HTTP/1.0 200 ") {
        return Err(bad("status not 200"));
    }
    let mut len = None;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if line[..colon].eq_ignore_ascii_case(b"content-length") {
            let v = line[colon + 1..].trim_ascii();
            len = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok());
        }
    }
    let len: usize = len.ok_or_else(|| bad("no Content-Length"))?;
    let total = head_end + 4 + len;
    Ok((buf.len() >= total).then_some((total, len)))
}

struct OpenConn {
    stream: TcpStream,
    written: usize,
    read: usize,
    /// Unparsed reply bytes (HTTP).
    buf: Vec<u8>,
    /// The intended send time of the operation in flight.
    intended: Instant,
    busy: bool,
    /// Intended send times of operations due while one was in flight: each is sent
    /// as soon as the previous reply is in, and its latency still counts from its
    /// own intended time (coordinated omission corrected).
    queued: std::collections::VecDeque<Instant>,
    dead: bool,
}

/// N connections offered a constant total rate of operations (as wrk2 does): the
/// `k`-th operation of the phase is due at `start + k / rate`, on connection `k mod
/// N`; its latency runs from that intended time to the end of its reply, so a server
/// that stalls is charged for the operations it made wait. A connection sends its
/// next operation only when its reply is in (no pipelining). The generator waits on
/// a `timerfd` (nanosecond resolution), not on `epoll_wait`'s whole milliseconds.
pub struct OpenLoop {
    poll: Poll,
    events: Events,
    timer: readyloop::sys::timer::TimerFd,
    conns: Vec<OpenConn>,
    req: Request,
    chunk: Vec<u8>,
}

const TIMER: Token = Token(usize::MAX);

/// What an open-loop phase measured, beyond [`PhaseResult`].
#[derive(Debug)]
pub struct OpenResult {
    /// Its `errors` include the operations due but not completed by the end of the
    /// grace period.
    pub phase: PhaseResult,
}

impl OpenLoop {
    /// Opens `n` connections to `addr` that will send `req`.
    pub fn connect(addr: SocketAddr, n: usize, req: Request) -> io::Result<OpenLoop> {
        let poll = Poll::new()?;
        let timer = readyloop::sys::timer::TimerFd::new()?;
        poll.registry().register(
            &mut mio::unix::SourceFd(&std::os::fd::AsRawFd::as_raw_fd(&timer)),
            TIMER,
            Interest::READABLE,
        )?;
        let mut conns = Vec::with_capacity(n);
        for i in 0..n.max(1) {
            let stream = connect_registered(&poll, addr, Token(i))?;
            conns.push(OpenConn {
                stream,
                written: 0,
                read: 0,
                buf: Vec::new(),
                intended: Instant::now(),
                busy: false,
                queued: Default::default(),
                dead: false,
            });
        }
        Ok(OpenLoop {
            poll,
            events: Events::with_capacity(1024),
            timer,
            conns,
            req,
            chunk: vec![0; 64 * 1024],
        })
    }

    /// Offers `rate` operations per second within `bounds` (operations due after
    /// `bounds.duration`, or beyond `bounds.max_ops`, are not offered), then lets the
    /// ones due finish within [`GRACE`]. `rate` `None`: closed loop (each connection
    /// sends again as soon as its reply is in, latency from the actual send).
    pub fn run(&mut self, rate: Option<f64>, bounds: Bounds) -> io::Result<OpenResult> {
        let mut res = PhaseResult::new();
        let n = self.conns.len();
        let start = Instant::now();
        let deadline = start + bounds.duration;
        let hard = deadline + GRACE;
        let total = match rate {
            Some(r) if r > 0.0 => ((r * bounds.duration.as_secs_f64()) as u64).min(bounds.max_ops),
            _ => bounds.max_ops,
        };
        let interval = rate.map(|r| Duration::from_secs_f64(1.0 / r.max(1e-3)));
        let due = |k: u64| match interval {
            Some(iv) => start + iv.mul_f64(k as f64),
            None => start,
        };
        let mut next: u64 = 0; // next operation to offer
        let mut outstanding: u64 = 0; // offered, not yet finished
        let mut last_done = start;
        let mut armed: Option<Instant> = None;
        for c in &mut self.conns {
            c.busy = false;
            c.queued.clear();
        }
        loop {
            let now = Instant::now();
            // Offer what is due.
            while next < total && (interval.is_some() || outstanding < n as u64) {
                let t = due(next);
                if interval.is_some() && t > now {
                    break;
                }
                if interval.is_none() && now >= deadline {
                    break;
                }
                let i = (next % n as u64) as usize;
                next += 1;
                if self.conns[i].dead {
                    res.errors += 1;
                    continue;
                }
                outstanding += 1;
                if self.conns[i].busy {
                    self.conns[i].queued.push_back(t.max(start));
                } else if !self.begin(i, if interval.is_some() { t } else { now }) {
                    outstanding -= 1;
                    res.errors += 1;
                }
            }
            let offering = next < total && (interval.is_some() || now < deadline);
            if !offering && outstanding == 0 {
                break;
            }
            if interval.is_none() && now >= deadline && outstanding == 0 {
                break;
            }
            if now >= hard {
                break;
            }
            // Wake for the next due operation (timerfd) or for replies.
            let mut wait = (hard - now).min(Duration::from_millis(100));
            if interval.is_some() && next < total {
                let t = due(next);
                if armed != Some(t) {
                    self.timer.set_after(t.saturating_duration_since(now))?;
                    armed = Some(t);
                }
                wait = wait.max(Duration::from_millis(1));
            }
            let Some(tokens) = poll_tokens(&mut self.poll, &mut self.events, wait)? else {
                continue;
            };
            for i in tokens {
                if i == TIMER.0 {
                    self.timer.drain()?;
                    armed = None;
                    continue;
                }
                if i >= n || !self.conns[i].busy {
                    continue;
                }
                match self.advance(i) {
                    Ok(false) => {}
                    Ok(true) => {
                        let now = Instant::now();
                        let len = self.req.bytes().len();
                        let c = &mut self.conns[i];
                        c.busy = false;
                        outstanding -= 1;
                        res.record(c.intended, now, len);
                        last_done = now;
                        let again = match c.queued.pop_front() {
                            Some(t) => Some(t),
                            None if interval.is_none() && now < deadline && next < total => {
                                next += 1;
                                outstanding += 1;
                                Some(now)
                            }
                            None => None,
                        };
                        if let Some(t) = again {
                            if !self.begin(i, t) {
                                outstanding -= 1;
                                res.errors += 1;
                            }
                        }
                    }
                    Err(_) => {
                        let c = &mut self.conns[i];
                        c.busy = false;
                        c.dead = true;
                        let lost = 1 + c.queued.len() as u64;
                        c.queued.clear();
                        outstanding -= lost;
                        res.errors += lost;
                    }
                }
            }
        }
        let _ = self.timer.disarm();
        let unfinished = outstanding;
        for c in &mut self.conns {
            if c.busy || !c.queued.is_empty() {
                // A reply may still come: this connection can no longer be trusted.
                c.dead = true;
            }
            c.busy = false;
            c.queued.clear();
        }
        res.errors += unfinished;
        res.elapsed = last_done.saturating_duration_since(start);
        Ok(OpenResult { phase: res })
    }

    /// Starts an operation intended at `intended` on connection `i`.
    fn begin(&mut self, i: usize, intended: Instant) -> bool {
        let c = &mut self.conns[i];
        c.written = 0;
        c.read = 0;
        c.intended = intended;
        c.busy = true;
        match write_some(&mut c.stream, self.req.bytes(), &mut c.written) {
            Ok(()) => true,
            Err(_) => {
                c.busy = false;
                c.dead = true;
                false
            }
        }
    }

    /// Progress on connection `i`; true when the whole reply is in.
    fn advance(&mut self, i: usize) -> io::Result<bool> {
        let c = &mut self.conns[i];
        let msg = self.req.bytes();
        if c.written < msg.len() {
            write_some(&mut c.stream, msg, &mut c.written)?;
        }
        match &self.req {
            Request::Echo(m) => read_echo(&mut c.stream, &mut self.chunk, m, &mut c.read),
            Request::Http(_) => loop {
                if let Some((total, _)) = http_response_len(&c.buf)? {
                    if c.buf.len() > total {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "bytes after the response",
                        ));
                    }
                    c.buf.clear();
                    return Ok(true);
                }
                match c.stream.read(&mut self.chunk) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(k) => c.buf.extend_from_slice(&self.chunk[..k]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            },
        }
    }
}
