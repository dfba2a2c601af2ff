//! The clients of one client thread: its IRC connections, driven with mio, and
//! what one sending phase measured.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::common::os::thread_cpu;
use crate::irc::{privmsg_trailing, split_irc, trailing, Stamp};
use crate::ROOM;

// own thread for every step (join, settle, phase). Client `i` lives in fleet
// `i % threads`, so each fleet has its share of the receivers and of the senders.

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum St {
    Connecting,
    Registering,
    Joining,
    Joined,
    Dead(String),
}

pub struct Client {
    /// The client's number across all fleets (its nickname is `b{id}`; senders are
    /// `0..senders`).
    pub id: usize,
    pub sock: TcpStream,
    pub rbuf: Vec<u8>,
    pub wbuf: Vec<u8>,
    pub state: St,
}

/// What one sending phase measured, client side (every fleet together).
#[derive(Debug, Default, Clone)]
pub struct PhaseOut {
    pub sent: u64,
    /// Deliveries received while the window was open.
    pub in_window: u64,
    /// Deliveries of this phase's messages, in all.
    pub received: u64,
    pub expected: u64,
    pub lost: u64,
    pub self_echo: u64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub max_us: Option<f64>,
    pub window: Duration,
    /// CPU time of every client thread, summed.
    pub client_cpu: Duration,
}

/// What one fleet measured in a phase; [`Fleets::phase`] adds them up.
pub struct FleetOut {
    pub in_window: u64,
    /// Deliveries per `[sender][seq]` received by this fleet's clients.
    pub got: Vec<Vec<u32>>,
    pub self_echo: u64,
    pub hist: Histogram<u64>,
    pub window: Duration,
    pub client_cpu: Duration,
}

/// One phase's plan, shared by every fleet's thread.
pub struct PhasePlan {
    pub phase: u32,
    pub senders: usize,
    pub rate: f64,
    pub duration: Duration,
    /// When message 0 is due (the same instant for every fleet).
    pub t0: Instant,
    /// Messages sent so far, per sender (each fleet counts its own senders').
    pub sent: Vec<AtomicU64>,
    /// Fleets done sending (a fleet's drain ends only once all are).
    pub done: AtomicUsize,
    pub fleets: usize,
}

impl PhasePlan {
    /// Messages in the phase, all senders together (message `j` is sender
    /// `j % senders`'s number `j / senders`).
    pub fn total(&self) -> u64 {
        ((self.rate * self.duration.as_secs_f64()).round() as u64).max(1)
    }

    pub fn per_sender(&self) -> usize {
        self.total().div_ceil(self.senders as u64) as usize
    }

    pub fn all_sent(&self) -> bool {
        self.done.load(Ordering::SeqCst) >= self.fleets
    }
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("histogram bounds")
}

pub struct Fleet {
    /// This fleet's number and how many there are: it holds clients `index`,
    /// `index + threads`, ...
    pub index: usize,
    pub threads: usize,
    pub poll: Poll,
    pub events: Events,
    pub clients: Vec<Client>,
    pub addr: SocketAddr,
    pub explicit_join: bool,
    /// Shared by every fleet: stamps are sent by one fleet and read by another.
    pub epoch: Instant,
    pub scratch: Vec<u8>,
    pub last_rx: Instant,
    // The current phase's accounting.
    pub phase: u32,
    pub window_open: bool,
    pub in_window: u64,
    pub got: Vec<Vec<u32>>,
    pub self_echo: u64,
    pub hist: Histogram<u64>,
}

pub const IO_BUF: usize = 64 * 1024;

impl Fleet {
    pub fn new(
        addr: SocketAddr,
        explicit_join: bool,
        epoch: Instant,
        index: usize,
        threads: usize,
    ) -> io::Result<Fleet> {
        Ok(Fleet {
            index,
            threads,
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            clients: Vec::new(),
            addr,
            explicit_join,
            epoch,
            scratch: vec![0; IO_BUF],
            last_rx: Instant::now(),
            phase: u32::MAX,
            window_open: false,
            in_window: 0,
            got: Vec::new(),
            self_echo: 0,
            hist: new_histogram(),
        })
    }

    pub fn nick(id: usize) -> String {
        format!("b{id}")
    }

    /// The index in `clients` of client `id`, if it lives in this fleet.
    pub fn local(&self, id: usize) -> Option<usize> {
        (id % self.threads == self.index)
            .then_some(id / self.threads)
            .filter(|&i| i < self.clients.len())
    }

    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub fn pending(&self) -> usize {
        self.clients
            .iter()
            .filter(|c| !matches!(c.state, St::Joined | St::Dead(_)))
            .count()
    }

    pub fn dead(&self) -> Vec<(usize, String)> {
        self.clients
            .iter()
            .filter_map(|c| match &c.state {
                St::Dead(why) => Some((c.id, why.clone())),
                _ => None,
            })
            .collect()
    }

    /// This fleet's share of clients `0..n`.
    pub fn share(&self, n: usize) -> usize {
        (self.index..n).step_by(self.threads).count()
    }

    /// Connects and registers this fleet's share of clients `0..n`, at most `wave`
    /// registering at once; every one must be in the room before `limit`.
    pub fn join_all(&mut self, n: usize, wave: usize, limit: Duration) -> Result<Duration, String> {
        let t0 = Instant::now();
        let deadline = t0 + limit;
        let mine = self.share(n);
        loop {
            while self.clients.len() < mine && self.pending() < wave {
                let i = self.clients.len();
                let sock = TcpStream::connect(self.addr).map_err(|e| format!("connect: {e}"))?;
                // The senders' lines must not wait for Nagle (a real client's would, but
                // the latency measured is the server's).
                let _ = sock.set_nodelay(true);
                let mut c = Client {
                    id: self.index + i * self.threads,
                    sock,
                    rbuf: Vec::new(),
                    wbuf: Vec::new(),
                    state: St::Connecting,
                };
                self.poll
                    .registry()
                    .register(
                        &mut c.sock,
                        Token(i),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .map_err(|e| format!("register: {e}"))?;
                self.clients.push(c);
            }
            let dead = self.dead();
            if let Some((i, why)) = dead.first() {
                return Err(format!(
                    "{} of {} clients failed to join (client {i}: {why})",
                    dead.len(),
                    self.clients.len()
                ));
            }
            if self.clients.len() == mine && self.pending() == 0 {
                return Ok(t0.elapsed());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "after {limit:?}: {} of {mine} clients of fleet {} connected, {} still registering",
                    self.clients.len(),
                    self.index,
                    self.pending()
                ));
            }
            self.pump(Duration::from_millis(10))
                .map_err(|e| format!("poll: {e}"))?;
        }
    }

    /// Reads until nothing arrived for `quiet` (the join notices), at most `limit`.
    pub fn settle(&mut self, quiet: Duration, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        self.last_rx = Instant::now();
        while self.last_rx.elapsed() < quiet {
            if Instant::now() > deadline {
                return Err(format!("traffic did not settle within {limit:?}"));
            }
            self.pump(Duration::from_millis(20))
                .map_err(|e| format!("poll: {e}"))?;
        }
        Ok(())
    }

    pub fn queue(&mut self, i: usize, data: &[u8]) {
        let c = &mut self.clients[i];
        c.wbuf.extend_from_slice(data);
        Self::flush(c);
    }

    pub fn flush(c: &mut Client) {
        while !c.wbuf.is_empty() {
            match c.sock.write(&c.wbuf) {
                Ok(0) => {
                    c.state = St::Dead("write returned 0".into());
                    return;
                }
                Ok(n) => {
                    c.wbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => {
                    c.state = St::Dead(format!("write: {e}"));
                    return;
                }
            }
        }
    }

    /// One poll and the I/O it reports.
    pub fn pump(&mut self, timeout: Duration) -> io::Result<()> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let ready: Vec<(usize, bool, bool)> = self
            .events
            .iter()
            .map(|e| {
                (
                    e.token().0,
                    e.is_readable() || e.is_read_closed() || e.is_error(),
                    e.is_writable(),
                )
            })
            .collect();
        for (i, readable, writable) in ready {
            if i >= self.clients.len() {
                continue;
            }
            if writable {
                let nick = Self::nick(self.clients[i].id);
                let c = &mut self.clients[i];
                if c.state == St::Connecting {
                    match c.sock.take_error() {
                        Ok(None) if c.sock.peer_addr().is_ok() => {
                            c.state = St::Registering;
                            let reg = format!("NICK {nick}\r\nUSER {nick} 0 * :bench\r\n");
                            c.wbuf.extend_from_slice(reg.as_bytes());
                        }
                        Ok(None) => {}
                        Ok(Some(e)) | Err(e) => {
                            c.state = St::Dead(format!("connect: {e}"));
                            continue;
                        }
                    }
                }
                Self::flush(c);
            }
            if readable {
                self.read_client(i);
            }
        }
        Ok(())
    }

    pub fn read_client(&mut self, i: usize) {
        let mut buf = std::mem::take(&mut self.scratch);
        loop {
            if matches!(self.clients[i].state, St::Dead(_)) {
                break;
            }
            let r = self.clients[i].sock.read(&mut buf);
            match r {
                Ok(0) => {
                    self.clients[i].state = St::Dead("closed by the server".into());
                    break;
                }
                Ok(n) => {
                    let now = Instant::now();
                    self.last_rx = now;
                    let now_ns = now.duration_since(self.epoch).as_nanos() as u64;
                    // Lines are taken from the read buffer in place; only a partial
                    // line at the end is kept (in `rbuf`) for the next read.
                    let mut rbuf = std::mem::take(&mut self.clients[i].rbuf);
                    let mut data = &buf[..n];
                    if !rbuf.is_empty() {
                        match memchr::memchr(b'\n', data) {
                            Some(nl) => {
                                rbuf.extend_from_slice(&data[..nl]);
                                self.line_bytes(i, &rbuf, now_ns);
                                rbuf.clear();
                                data = &data[nl + 1..];
                            }
                            None => {
                                rbuf.extend_from_slice(data);
                                data = &[];
                            }
                        }
                    }
                    while let Some(nl) = memchr::memchr(b'\n', data) {
                        self.line_bytes(i, &data[..nl], now_ns);
                        data = &data[nl + 1..];
                    }
                    rbuf.extend_from_slice(data);
                    if rbuf.len() > 1 << 20 {
                        self.clients[i].state = St::Dead("line longer than 1 MiB".into());
                    }
                    self.clients[i].rbuf = rbuf;
                    // mio is edge-triggered: a short read drained the socket, and data
                    // arriving later raises a new edge; skip the read that would say EAGAIN.
                    if n < buf.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => break,
                Err(e) => {
                    self.clients[i].state = St::Dead(format!("read: {e}"));
                    break;
                }
            }
        }
        self.scratch = buf;
    }

    /// One received line (without its `\n`): benchmark messages on the byte fast
    /// path, everything else through [`Fleet::line`].
    pub fn line_bytes(&mut self, i: usize, line: &[u8], now_ns: u64) {
        match privmsg_trailing(line) {
            Some(text) => self.privmsg(i, text, now_ns),
            None => {
                let line = String::from_utf8_lossy(line);
                self.line(i, &line, now_ns);
            }
        }
    }

    /// A `PRIVMSG` with trailing text `text`: counted if it is this phase's stamp.
    pub fn privmsg(&mut self, i: usize, text: &[u8], now_ns: u64) {
        let Some(s) = Stamp::decode_bytes(text) else {
            return;
        };
        if s.phase != self.phase {
            return;
        }
        if s.sender as usize == self.clients[i].id {
            self.self_echo += 1;
            return;
        }
        if let Some(c) = self
            .got
            .get_mut(s.sender as usize)
            .and_then(|v| v.get_mut(s.seq as usize))
        {
            *c += 1;
        }
        if self.window_open {
            self.in_window += 1;
        }
        let _ = self.hist.record(now_ns.saturating_sub(s.nanos).max(1));
    }

    pub fn line(&mut self, i: usize, line: &str, now_ns: u64) {
        let (_prefix, cmd, params) = split_irc(line);
        match cmd {
            "PRIVMSG" => self.privmsg(i, trailing(params).as_bytes(), now_ns),
            "PING" => {
                let reply = format!("PONG {params}\r\n");
                self.queue(i, reply.as_bytes());
            }
            "001" => {
                if self.explicit_join {
                    self.queue(i, format!("JOIN {ROOM}\r\n").as_bytes());
                }
                self.clients[i].state = St::Joining;
            }
            "366" if self.clients[i].state == St::Joining && params.contains(ROOM) => {
                self.clients[i].state = St::Joined;
            }
            "433" | "432" | "451" | "465" | "471" | "473" | "474" | "475" => {
                self.clients[i].state = St::Dead(format!("server said: {line}"));
            }
            "ERROR" => {
                self.clients[i].state = St::Dead(format!("server said: {line}"));
            }
            _ => {}
        }
    }

    /// Sends this fleet's senders' share of `plan` (message `j` goes out at
    /// `t0 + j / rate`), counts deliveries while sending (the window), then drains
    /// until every delivery to this fleet arrived or none came for `stall` (at most
    /// `drain_limit`).
    pub fn phase(&mut self, plan: &PhasePlan) -> Result<FleetOut, String> {
        self.phase = plan.phase;
        self.got = vec![vec![0; plan.per_sender()]; plan.senders];
        self.self_echo = 0;
        self.in_window = 0;
        self.hist.reset();
        let cpu0 = thread_cpu();
        self.window_open = true;
        let sent = self.send_window(plan);
        // Counted even on failure: the other fleets' drains wait for every fleet.
        plan.done.fetch_add(1, Ordering::SeqCst);
        self.window_open = false;
        let window = sent?;
        self.drain(plan)?;
        let client_cpu = thread_cpu().saturating_sub(cpu0);
        let dead = self.dead();
        if let Some((i, why)) = dead.first() {
            return Err(format!(
                "{} clients disconnected during the phase (client {i}: {why})",
                dead.len()
            ));
        }
        Ok(FleetOut {
            in_window: self.in_window,
            got: std::mem::take(&mut self.got),
            self_echo: self.self_echo,
            hist: self.hist.clone(),
            window,
            client_cpu,
        })
    }

    /// The first message at or after `j` that one of this fleet's senders sends
    /// (`plan.total()` if none).
    pub fn next_own(&self, j: u64, plan: &PhasePlan) -> u64 {
        let senders = plan.senders as u64;
        (j..j + senders)
            .find(|&k| self.local((k % senders) as usize).is_some())
            .map_or(plan.total(), |k| k.min(plan.total()))
    }

    /// The sending window; returns its length.
    pub fn send_window(&mut self, plan: &PhasePlan) -> Result<Duration, String> {
        let total = plan.total();
        let senders = plan.senders as u64;
        let interval = Duration::from_secs_f64(1.0 / plan.rate);
        let due = |j: u64| plan.t0 + interval.mul_f64(j as f64);
        let end = plan.t0 + plan.duration;
        let mut j = self.next_own(0, plan);
        loop {
            let now = Instant::now();
            while j < total && due(j) <= now {
                let sender = (j % senders) as usize;
                let s = Stamp {
                    phase: plan.phase,
                    sender: sender as u32,
                    seq: (j / senders) as u32,
                    nanos: self.now_ns(),
                };
                let line = format!("PRIVMSG {ROOM} :{}\r\n", s.encode());
                if let Some(i) = self.local(sender) {
                    self.queue(i, line.as_bytes());
                }
                plan.sent[sender].fetch_add(1, Ordering::SeqCst);
                j = self.next_own(j + 1, plan);
            }
            if now >= end {
                break;
            }
            let next = if j < total { due(j).min(end) } else { end };
            let wait = next
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50));
            self.pump(wait).map_err(|e| format!("poll: {e}"))?;
        }
        Ok(plan.t0.elapsed())
    }

    /// Deliveries this fleet's clients should get for what was sent: every message
    /// reaches every client but its sender.
    pub fn expected(&self, plan: &PhasePlan) -> u64 {
        let n = self.clients.len() as u64;
        plan.sent
            .iter()
            .enumerate()
            .map(|(s, c)| c.load(Ordering::SeqCst) * (n - u64::from(self.local(s).is_some())))
            .sum()
    }

    pub fn received(&self) -> u64 {
        self.got.iter().flatten().map(|&c| c as u64).sum()
    }

    /// Reads until every fleet is done sending and every delivery to this fleet
    /// arrived, or nothing came for 3 s; a server that fell behind has a backlog of up
    /// to the whole window to drain.
    pub fn drain(&mut self, plan: &PhasePlan) -> Result<(), String> {
        let drain_limit = Instant::now() + Duration::from_secs(15).max(plan.duration * 2);
        let stall = Duration::from_secs(3);
        self.last_rx = Instant::now();
        loop {
            if (plan.all_sent() && self.received() >= self.expected(plan))
                || Instant::now() > drain_limit
                || self.last_rx.elapsed() > stall
            {
                return Ok(());
            }
            self.pump(Duration::from_millis(20))
                .map_err(|e| format!("poll: {e}"))?;
        }
    }
}
