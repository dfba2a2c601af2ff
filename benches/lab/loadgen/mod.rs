//! The load generator: one implementation for every contender.
//!
//! A single-threaded mio client (edge-triggered epoll) drives N connections closed-loop:
//! each connection sends one message, waits for the whole echo, records the round trip
//! in an HDR histogram and sends the next. Every phase is bounded by a count of
//! operations *and* a deadline; when either is reached no new operation starts, the
//! ones in flight finish (so the server is quiet between phases), and the phase ends by
//! itself even if the server stops answering (a grace period after the deadline).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

mod open;

pub use open::{http_response_len, OpenLoop, Request};

/// How long in-flight operations may take to finish after a phase's deadline.
pub const GRACE: Duration = Duration::from_secs(5);

/// When a phase stops starting new operations: whichever comes first.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Most operations to start.
    pub max_ops: u64,
    /// Longest time to keep starting operations.
    pub duration: Duration,
}

/// What one phase measured.
#[derive(Debug)]
pub struct PhaseResult {
    /// Completed operations (round trips, or connections for churn).
    pub ops: u64,
    /// Payload bytes echoed back (one direction).
    pub bytes: u64,
    /// From the first operation started to the last one finished.
    pub elapsed: Duration,
    /// Round-trip latency in nanoseconds.
    pub hist: Histogram<u64>,
    /// Operations that failed (reset, refused, wrong bytes, timed out).
    pub errors: u64,
}

impl PhaseResult {
    fn new() -> PhaseResult {
        PhaseResult {
            ops: 0,
            bytes: 0,
            elapsed: Duration::ZERO,
            hist: new_histogram(),
            errors: 0,
        }
    }

    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        per_sec(self.ops as f64, self.elapsed)
    }

    /// Megabytes (10^6) per second echoed.
    pub fn mb_per_sec(&self) -> f64 {
        per_sec(self.bytes as f64 / 1e6, self.elapsed)
    }

    /// Latency quantile in microseconds (`None` with no samples).
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        if self.hist.is_empty() {
            None
        } else {
            Some(self.hist.value_at_quantile(q) as f64 / 1000.0)
        }
    }

    fn record(&mut self, started: Instant, now: Instant, bytes: usize) {
        let ns = now.saturating_duration_since(started).as_nanos() as u64;
        self.hist.saturating_record(ns.max(1));
        self.ops += 1;
        self.bytes += bytes as u64;
    }
}

/// A histogram for latencies from 1 ns to 100 s at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

fn per_sec(x: f64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        x / s
    } else {
        0.0
    }
}

/// The message pattern: byte `i` is `i % 251`, so a shifted or corrupted echo shows.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

struct Conn {
    stream: TcpStream,
    written: usize,
    read: usize,
    started: Instant,
    busy: bool,
}

/// N connections that echo closed-loop.
pub struct EchoClient {
    poll: Poll,
    events: Events,
    conns: Vec<Conn>,
    msg: Vec<u8>,
    buf: Vec<u8>,
}

/// Waits for events at most `wait`; the tokens ready, or `None` if a signal
/// interrupted the wait (the caller goes round again).
fn poll_tokens(
    poll: &mut Poll,
    events: &mut Events,
    wait: Duration,
) -> io::Result<Option<Vec<usize>>> {
    match poll.poll(events, Some(wait)) {
        Ok(()) => Ok(Some(events.iter().map(|e| e.token().0).collect())),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
        Err(e) => Err(e),
    }
}

/// A non-blocking, `TCP_NODELAY` connection to `addr`, registered with `poll` under
/// `token` for reading and writing (the load generators' connections).
fn connect_registered(poll: &Poll, addr: SocketAddr, token: Token) -> io::Result<TcpStream> {
    let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    let mut stream = TcpStream::from_std(s);
    poll.registry()
        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
    Ok(stream)
}

impl EchoClient {
    /// Opens `n` connections to `addr` for messages of `msg_size` bytes.
    pub fn connect(addr: SocketAddr, n: usize, msg_size: usize) -> io::Result<EchoClient> {
        let poll = Poll::new()?;
        let mut conns = Vec::with_capacity(n);
        for i in 0..n {
            let stream = connect_registered(&poll, addr, Token(i))?;
            conns.push(Conn {
                stream,
                written: 0,
                read: 0,
                started: Instant::now(),
                busy: false,
            });
        }
        Ok(EchoClient {
            poll,
            events: Events::with_capacity(1024),
            conns,
            msg: pattern(msg_size.max(1)),
            buf: vec![0; 64 * 1024],
        })
    }

    /// Runs one closed-loop phase. Returns an error only if the client itself fails;
    /// server misbehaviour shows as `errors` (and an errored connection stays idle).
    pub fn run(&mut self, bounds: Bounds) -> io::Result<PhaseResult> {
        let mut res = PhaseResult::new();
        let start = Instant::now();
        let deadline = start + bounds.duration;
        let hard = deadline + GRACE;
        let mut started: u64 = 0;
        let mut in_flight = 0usize;
        let mut last_done = start;
        for i in 0..self.conns.len() {
            if started >= bounds.max_ops {
                break;
            }
            started += 1;
            if self.begin(i, start) {
                in_flight += 1;
            } else {
                res.errors += 1;
            }
        }
        while in_flight > 0 {
            let now = Instant::now();
            if now >= hard {
                res.errors += in_flight as u64;
                for c in &mut self.conns {
                    c.busy = false;
                }
                break;
            }
            let wait = (hard - now).min(Duration::from_millis(100));
            let Some(tokens) = poll_tokens(&mut self.poll, &mut self.events, wait)? else {
                continue;
            };
            for i in tokens {
                if i >= self.conns.len() || !self.conns[i].busy {
                    continue;
                }
                match self.advance(i) {
                    Ok(false) => {}
                    Ok(true) => {
                        let now = Instant::now();
                        let c = &mut self.conns[i];
                        c.busy = false;
                        in_flight -= 1;
                        res.record(c.started, now, self.msg.len());
                        last_done = now;
                        if started < bounds.max_ops && now < deadline {
                            started += 1;
                            if self.begin(i, now) {
                                in_flight += 1;
                            } else {
                                res.errors += 1;
                            }
                        }
                    }
                    Err(_) => {
                        self.conns[i].busy = false;
                        in_flight -= 1;
                        res.errors += 1;
                    }
                }
            }
        }
        res.elapsed = last_done.saturating_duration_since(start);
        Ok(res)
    }

    /// Starts an operation on connection `i`; false if the connection failed.
    fn begin(&mut self, i: usize, now: Instant) -> bool {
        let c = &mut self.conns[i];
        c.written = 0;
        c.read = 0;
        c.started = now;
        c.busy = true;
        // Writes now; the reply is read when the readable edge comes.
        match write_some(&mut c.stream, &self.msg, &mut c.written) {
            Ok(()) => true,
            Err(_) => {
                c.busy = false;
                false
            }
        }
    }

    /// Makes progress on connection `i`; true when the whole echo is back.
    fn advance(&mut self, i: usize) -> io::Result<bool> {
        let c = &mut self.conns[i];
        let len = self.msg.len();
        if c.written < len {
            write_some(&mut c.stream, &self.msg, &mut c.written)?;
        }
        read_echo(&mut c.stream, &mut self.buf, &self.msg, &mut c.read)
    }
}

/// Reads the echo of `msg` (checking every byte) until it is whole or the socket
/// would block; whether it is whole. `read`: how much of it has come back so far.
fn read_echo(s: &mut TcpStream, buf: &mut [u8], msg: &[u8], read: &mut usize) -> io::Result<bool> {
    let len = msg.len();
    while *read < len {
        let room = (len - *read).min(buf.len());
        match s.read(&mut buf[..room]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                if buf[..n] != msg[*read..*read + n] {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "bad echo"));
                }
                *read += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(*read == len)
}

fn write_some(s: &mut TcpStream, msg: &[u8], written: &mut usize) -> io::Result<()> {
    while *written < msg.len() {
        match s.write(&msg[*written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Closes with a reset (`SO_LINGER` 0) so churn leaves no `TIME_WAIT` behind and the
/// ephemeral ports do not run out.
pub fn set_linger_zero(fd: &impl std::os::fd::AsFd) {
    let _ = readyloop::sys::socket::set_linger_zero(fd.as_fd());
}

#[derive(PartialEq)]
enum Stage {
    Connecting,
    Echoing,
}

struct Slot {
    stream: Option<TcpStream>,
    stage: Stage,
    written: usize,
    read: usize,
    started: Instant,
    generation: usize,
}

/// Connection churn: `concurrency` slots each connect, do one 64-byte round trip and
/// close (with a reset), over and over. One operation is one whole connection.
pub fn churn(addr: SocketAddr, concurrency: usize, bounds: Bounds) -> io::Result<PhaseResult> {
    let msg = pattern(64);
    let mut buf = [0u8; 64];
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut res = PhaseResult::new();
    let start = Instant::now();
    let deadline = start + bounds.duration;
    let hard = deadline + GRACE;
    let mut started = 0u64;
    let mut last_done = start;
    let mut slots: Vec<Slot> = (0..concurrency.max(1))
        .map(|_| Slot {
            stream: None,
            stage: Stage::Connecting,
            written: 0,
            read: 0,
            started: start,
            generation: 0,
        })
        .collect();
    let n = slots.len();
    // Tokens carry slot and generation so a stale event for a closed socket is ignored.
    let token = |slot: usize, gen: usize| Token(gen * n + slot);
    let open = |poll: &mut Poll, s: &mut Slot, i: usize| -> io::Result<()> {
        s.generation += 1;
        let mut stream = TcpStream::connect(addr)?;
        poll.registry().register(
            &mut stream,
            token(i, s.generation),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        s.stream = Some(stream);
        s.stage = Stage::Connecting;
        s.written = 0;
        s.read = 0;
        s.started = Instant::now();
        Ok(())
    };
    let close = |poll: &mut Poll, s: &mut Slot| {
        if let Some(mut st) = s.stream.take() {
            let _ = poll.registry().deregister(&mut st);
            set_linger_zero(&st);
        }
    };
    let mut active = 0usize;
    for (i, s) in slots.iter_mut().enumerate() {
        if started >= bounds.max_ops {
            break;
        }
        started += 1;
        match open(&mut poll, s, i) {
            Ok(()) => active += 1,
            Err(_) => res.errors += 1,
        }
    }
    while active > 0 {
        let now = Instant::now();
        if now >= hard || res.errors > 1000 {
            res.errors += active as u64;
            break;
        }
        let wait = (hard - now).min(Duration::from_millis(100));
        let Some(tokens) = poll_tokens(&mut poll, &mut events, wait)? else {
            continue;
        };
        for t in tokens {
            let (i, gen) = (t % n, t / n);
            let s = &mut slots[i];
            if s.generation != gen || s.stream.is_none() {
                continue;
            }
            let step = churn_step(s, &msg, &mut buf);
            let finished = match step {
                Ok(false) => continue,
                Ok(true) => {
                    let now = Instant::now();
                    res.record(s.started, now, msg.len());
                    last_done = now;
                    true
                }
                Err(_) => {
                    res.errors += 1;
                    true
                }
            };
            if finished {
                close(&mut poll, s);
                active -= 1;
                let now = Instant::now();
                if started < bounds.max_ops && now < deadline {
                    started += 1;
                    match open(&mut poll, s, i) {
                        Ok(()) => active += 1,
                        Err(_) => res.errors += 1,
                    }
                }
            }
        }
    }
    for s in &mut slots {
        close(&mut poll, s);
    }
    res.elapsed = last_done.saturating_duration_since(start);
    Ok(res)
}

fn churn_step(s: &mut Slot, msg: &[u8], buf: &mut [u8]) -> io::Result<bool> {
    let stream = s.stream.as_mut().expect("open slot");
    if s.stage == Stage::Connecting {
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
        match stream.peer_addr() {
            Ok(_) => {
                stream.set_nodelay(true)?;
                s.stage = Stage::Echoing;
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    if s.written < msg.len() {
        write_some(stream, msg, &mut s.written)?;
    }
    while s.read < msg.len() {
        match stream.read(&mut buf[..msg.len() - s.read]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(k) => s.read += k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(s.read == msg.len())
}

/// Opens `n` more idle connections, `batch` at a time; each batch proves the server
/// accepted every connection (one echoed byte each) before the next batch connects,
/// so the accept queue never overflows.
pub fn open_idle(
    addr: SocketAddr,
    n: usize,
    batch: usize,
    into: &mut Vec<std::net::TcpStream>,
) -> io::Result<()> {
    let mut left = n;
    while left > 0 {
        let k = left.min(batch.max(1));
        let first = into.len();
        for _ in 0..k {
            let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            into.push(s);
        }
        for s in &mut into[first..] {
            s.write_all(b"i")?;
        }
        for s in &mut into[first..] {
            let mut b = [0u8; 1];
            s.read_exact(&mut b)?;
        }
        left -= k;
    }
    Ok(())
}
