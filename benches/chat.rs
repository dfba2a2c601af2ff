//! Chat fan-out benchmark: `cargo bench --bench chat [-- options]`.
//!
//! N IRC clients (default 1000) join `#lobby`; a few of them (`--senders`, default 4)
//! send `PRIVMSG #lobby` at a steady total rate (`--rate`, default 3000/s, i.e. about
//! 3M deliveries/s offered: more than ngIRCd delivers on one core here, so the table
//! compares what each server can deliver; `--rate 200` compares cost at a light load);
//! every other client receives every message. Over a fixed window it measures deliveries per second
//! (messages received, summed over all clients), the delivery latency (each message
//! carries its send time in nanoseconds since an `Instant` shared by all clients, which
//! live in this one process), the server's memory (`VmRSS`, `VmHWM`), its CPU time per
//! delivery (`utime + stime`), its write syscalls per delivery (this crate's counters;
//! with `--strace` also `strace -c -f` for every contender), and lost messages.
//!
//! Contenders: this crate's chat server on each backend (a child process: this binary
//! re-executed in the hidden `--serve BACKEND` mode, configured like
//! `examples/chat_server.rs` but with the flood limit lifted) and ngIRCd (`ngircd -n`
//! with a generated configuration; `MaxPenaltyTime = 0` turns its flood penalties off).
//! The server runs pinned to CPU 0, the clients to CPU 1: `--client-threads` threads
//! (default 2), each with its own mio poll, its share of the receivers and of the
//! senders (client `i` in thread `i % threads`) and the shared sending schedule, so one
//! thread's reading does not delay the other's sending (on more cores they spread over
//! CPUs 1, 2, ...).
//!
//! `-- --help` lists the options; with no argument at all (as `cargo test --benches`
//! runs it) the binary runs its self-test.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde_json::{json, Value};

use readyloop::proto::chat::{ChatConfig, ChatServer};
use readyloop::selector::Backend;
use readyloop::sys::stats::Syscall;

#[path = "common/mod.rs"]
mod common;

use common::child::{self, Ending};
use common::os::{pin_to, raise_nofile, thread_cpu};
use common::procfs::{busy_pct, cpu_jiffies, status_kb};
use common::server::{Daemon, Running, ServerProc};
use common::table::{markdown, median};
use common::{cli, env, procfs, strace, tools};

/// Every contender, in table order.
const ALL: [&str; 7] = [
    "select", "poll", "epoll", "epoll-et", "mio", "polling", "ngircd",
];
const NGIRCD: &str = "ngircd";
const ROOM: &str = "#lobby";
/// The tag that starts every benchmark message's text.
const TAG: &str = "rlb";

// ---------------------------------------------------------------------------------
// Options.

#[derive(Clone, Debug)]
struct Options {
    clients: usize,
    senders: usize,
    rate: f64,
    duration: Duration,
    warmup: Duration,
    rounds: usize,
    /// Client threads (fleets), each with its share of receivers and senders.
    client_threads: usize,
    contenders: Vec<String>,
    strace: bool,
    quick: bool,
    out: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            clients: 1000,
            senders: 4,
            rate: 3000.0,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            rounds: 3,
            client_threads: 2,
            contenders: ALL.iter().map(|s| s.to_string()).collect(),
            strace: false,
            quick: false,
            out: None,
        }
    }
}

#[derive(Debug)]
enum Mode {
    Help,
    SelfTest,
    Bench(Options),
    Serve { backend: String, cpu: Option<usize> },
}

/// The chat bench's command line (clap).
#[derive(clap::Parser, Debug)]
#[command(
    name = "chat",
    about = "Chat fan-out benchmark: cargo bench --bench chat -- [options]"
)]
struct Args {
    /// A few seconds: 50 clients, 1 round, short window, 1000 msgs/s.
    #[arg(long)]
    quick: bool,
    /// Clients in #lobby (default 1000).
    #[arg(long)]
    clients: Option<usize>,
    /// Clients that send (default 4).
    #[arg(long)]
    senders: Option<usize>,
    /// Messages per second, all senders together (default 3000).
    #[arg(long)]
    rate: Option<f64>,
    /// Measured window in seconds (default 10).
    #[arg(long, value_parser = cli::secs)]
    duration: Option<Duration>,
    /// Unmeasured sending before the window, in seconds (default 2).
    #[arg(long, value_parser = cli::secs)]
    warmup: Option<Duration>,
    /// Rounds; contenders alternate within each (default 3).
    #[arg(long)]
    rounds: Option<usize>,
    /// Client threads, each with its share of the clients and senders (default 2).
    #[arg(long)]
    client_threads: Option<usize>,
    /// Contenders (default: all).
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(ALL))]
    contenders: Vec<String>,
    /// One extra phase per contender under strace -c -f (writes/delivery).
    #[arg(long)]
    strace: bool,
    #[command(flatten)]
    harness: cli::Harness,
}

fn parse_args(args: Vec<String>) -> Result<Mode, String> {
    let a = match cli::parse::<Args>("chat", args, |a| a.harness.self_test)? {
        cli::Parsed::SelfTest => return Ok(Mode::SelfTest),
        cli::Parsed::Help => return Ok(Mode::Help),
        cli::Parsed::Args(a) => a,
    };
    if let Some(backend) = a.harness.serve {
        return Ok(Mode::Serve {
            backend,
            cpu: a.harness.cpu,
        });
    }
    let mut o = Options {
        quick: a.quick,
        strace: a.strace,
        out: a.harness.out,
        ..Options::default()
    };
    if !a.contenders.is_empty() {
        o.contenders = a.contenders;
    }
    if let Some(n) = a.senders {
        o.senders = n;
    }
    if let Some(r) = a.rate {
        o.rate = r;
    }
    if o.quick {
        o.clients = 50;
        o.rounds = 1;
        // A smoke run: every contender starts, serves and stops; no saturation.
        if a.rate.is_none() {
            o.rate = 1000.0;
        }
        o.duration = Duration::from_secs(2);
        o.warmup = Duration::from_millis(500);
    }
    o.clients = a.clients.unwrap_or(o.clients);
    o.rounds = a.rounds.unwrap_or(o.rounds);
    o.client_threads = a.client_threads.unwrap_or(o.client_threads);
    o.duration = a.duration.unwrap_or(o.duration);
    o.warmup = a.warmup.unwrap_or(o.warmup);
    if o.clients < 2 || o.senders == 0 || o.senders >= o.clients {
        return Err("need at least 2 clients and 1 <= senders < clients".into());
    }
    if !(o.rate > 0.0 && o.rate <= 1e6) {
        return Err("--rate must be in (0, 1e6]".into());
    }
    if o.rounds == 0 || o.duration.is_zero() {
        return Err("--rounds and --duration must be positive".into());
    }
    if o.client_threads == 0 || o.client_threads > 16 {
        return Err("--client-threads must be in 1..=16".into());
    }
    if o.duration > Duration::from_secs(600) || o.clients > 20_000 || o.rounds > 50 {
        return Err("bounds: --duration <= 600, --clients <= 20000, --rounds <= 50".into());
    }
    Ok(Mode::Bench(o))
}

fn main() {
    let mode = common::cli::or_exit("chat bench", parse_args(std::env::args().skip(1).collect()));
    match mode {
        Mode::Help => print!("{}", cli::usage::<Args>()),
        Mode::SelfTest => std::process::exit(self_test()),
        Mode::Serve { backend, cpu } => serve_child(&backend, cpu),
        Mode::Bench(o) => std::process::exit(run(o)),
    }
}

// ---------------------------------------------------------------------------------
// Pure parts: IRC lines, the latency stamp, the ngircd configuration, statistics.

/// An IRC line split into prefix, command and the rest (parameters).
fn split_irc(line: &str) -> (Option<&str>, &str, &str) {
    let line = line.trim_end_matches(['\r', '\n']);
    let (prefix, rest) = match line.strip_prefix(':') {
        Some(r) => match r.split_once(' ') {
            Some((p, rest)) => (Some(p), rest),
            None => (Some(r), ""),
        },
        None => (None, line),
    };
    let rest = rest.trim_start_matches(' ');
    match rest.split_once(' ') {
        Some((cmd, params)) => (prefix, cmd, params),
        None => (prefix, rest, ""),
    }
}

/// The trailing parameter (after ` :`), or the last parameter.
fn trailing(params: &str) -> &str {
    if let Some(t) = params.strip_prefix(':') {
        return t;
    }
    match params.find(" :") {
        Some(i) => &params[i + 2..],
        None => params.rsplit(' ').next().unwrap_or(""),
    }
}

/// What a benchmark message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    phase: u32,
    sender: u32,
    seq: u32,
    /// Send time: nanoseconds since the fleet's epoch.
    nanos: u64,
}

impl Stamp {
    fn encode(&self) -> String {
        format!(
            "{TAG} {} {} {} {}",
            self.phase, self.sender, self.seq, self.nanos
        )
    }

    fn decode(text: &str) -> Option<Stamp> {
        Self::decode_bytes(text.as_bytes())
    }

    /// Decodes from bytes (the client's hot path: no UTF-8 check, no allocation).
    fn decode_bytes(text: &[u8]) -> Option<Stamp> {
        let mut it = text.split(|&b| b == b' ');
        if it.next()? != TAG.as_bytes() {
            return None;
        }
        let s = Stamp {
            phase: u32::try_from(decimal(it.next()?)?).ok()?,
            sender: u32::try_from(decimal(it.next()?)?).ok()?,
            seq: u32::try_from(decimal(it.next()?)?).ok()?,
            nanos: decimal(it.next()?)?,
        };
        // Padding may follow.
        Some(s)
    }
}

/// An unsigned decimal number (digits only; `None` past `u64::MAX`).
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The trailing parameter of a `PRIVMSG` line, found on the bytes (the client's hot
/// path); `None` for every other command (those go through [`split_irc`]).
fn privmsg_trailing(line: &[u8]) -> Option<&[u8]> {
    let rest = match line.strip_prefix(b":") {
        Some(r) => &r[memchr::memchr(b' ', r)? + 1..],
        None => line,
    };
    let rest = rest.strip_prefix(b"PRIVMSG ")?;
    let at = memchr::memmem::find(rest, b" :")?;
    let t = &rest[at + 2..];
    Some(t.strip_suffix(b"\r").unwrap_or(t))
}

/// ngIRCd's configuration for one run on `port`; `dir` holds its pid file.
fn ngircd_config(port: u16, dir: &Path) -> String {
    format!(
        "# Generated by readyloop's chat benchmark.
[Global]
	Name = bench.local
	Info = readyloop chat benchmark
	AdminInfo1 = bench
	AdminInfo2 = bench
	AdminEMail = bench@bench.local
	Listen = 127.0.0.1
	Ports = {port}
	MotdPhrase = bench
	PidFile = {pid}
[Limits]
	MaxConnections = 0
	MaxConnectionsIP = 0
	MaxJoins = 0
	MaxNickLength = 16
	# 0 turns the flood penalties off (ngIRCd >= 25).
	MaxPenaltyTime = 0
	PingTimeout = 600
	PongTimeout = 600
[Options]
	PAM = no
	DNS = no
	Ident = no
",
        pid = dir.join("ngircd.pid").display()
    )
}

/// Write-side syscalls in an strace count.
fn strace_writes(m: &BTreeMap<String, u64>) -> u64 {
    ["write", "writev", "send", "sendto", "sendmsg", "sendmmsg"]
        .iter()
        .map(|k| m.get(*k).copied().unwrap_or(0))
        .sum()
}

// ---------------------------------------------------------------------------------
// Child mode: this crate's chat server.

/// The hidden `--serve BACKEND` mode: the chat server's IRC front end on a free port,
/// configured like `examples/chat_server.rs` (defaults) but with the flood limit
/// lifted (the senders send 50 lines/s each), speaking the benches' control protocol
/// (`benches/common/server.rs`) with the crate's syscall counters.
fn serve_child(backend: &str, cpu: Option<usize>) -> ! {
    if let Some(c) = cpu {
        pin_to(c);
    }
    raise_nofile();
    let name = "chat bench server";
    let backend: Backend = backend.parse().unwrap_or_else(|e| child::fail(name, &e));
    child::serve_reactor(name, backend, Ending::Stop, true, |r| {
        let cfg = ChatConfig {
            flood_burst: 1_000_000,
            flood_rate: 1e9,
            ..ChatConfig::default()
        };
        Ok(vec![ChatServer::new(cfg).listen_irc(r, "127.0.0.1:0")?.1])
    })
}

// ---------------------------------------------------------------------------------
// Parent side: a running server, ours or ngircd.

/// Starts contender `name`: ours (a child of this bench, pinned to `cpu`) or ngircd
/// (its configuration and log in a fresh directory under `work`).
fn start_server(name: &str, cpu: Option<usize>, work: &Path) -> Result<Running, String> {
    if name != NGIRCD {
        let mut args = vec![name.into()];
        if let Some(c) = cpu {
            args.extend(["--cpu".into(), c.to_string().into()]);
        }
        let p = ServerProc::start(name, &[], &args, &[]).map_err(|e| e.to_string())?;
        return Ok(Running::Ours(p));
    }
    let bin = tools::which("ngircd").ok_or("ngircd: not installed")?;
    let mut last = String::new();
    for attempt in 0..5 {
        let dir = work.join(format!("ngircd-{}-{attempt}", std::process::id()));
        match try_ngircd(&bin, &dir, cpu) {
            Ok(d) => return Ok(Running::Outside(d)),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                last = e;
            }
        }
    }
    Err(last)
}

fn try_ngircd(bin: &Path, dir: &Path, cpu: Option<usize>) -> Result<Daemon, String> {
    let e = |e: io::Error| format!("ngircd: {e}");
    std::fs::create_dir_all(dir).map_err(e)?;
    // ngIRCd drops root privileges to `nobody`, which must be able to write the pid.
    let _ = std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777));
    let port = common::os::free_port().map_err(e)?;
    let conf = dir.join("ngircd.conf");
    std::fs::write(&conf, ngircd_config(port, dir)).map_err(e)?;
    let log = std::fs::File::create(dir.join("ngircd.log")).map_err(e)?;
    let log2 = log.try_clone().map_err(e)?;
    let mut cmd = Command::new(bin);
    cmd.arg("-n")
        .arg("-f")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    common::os::tie_to_bench(&mut cmd, cpu);
    let child = cmd.spawn().map_err(e)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let logs = vec![dir.join("ngircd.log")];
    let mut d = Daemon::new(NGIRCD, child, addr, Some(dir.to_path_buf()), logs);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = d.exited() {
            return Err(format!("ngircd exited at start ({st}): {}", d.logs()));
        }
        // Ours on that port (not whoever took it meanwhile): it said so.
        if d.log(0)
            .contains(&format!("Now listening on [127.0.0.1]:{port}"))
            && std::net::TcpStream::connect(addr).is_ok()
        {
            return Ok(d);
        }
        if Instant::now() > deadline {
            return Err(format!("ngircd did not listen: {}", d.logs()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------
// The clients: `--client-threads` fleets (default 2), each with its own mio poll and its
// own thread for every step (join, settle, phase). Client `i` lives in fleet
// `i % threads`, so each fleet has its share of the receivers and of the senders.

#[derive(Clone, Debug, PartialEq, Eq)]
enum St {
    Connecting,
    Registering,
    Joining,
    Joined,
    Dead(String),
}

struct Client {
    /// The client's number across all fleets (its nickname is `b{id}`; senders are
    /// `0..senders`).
    id: usize,
    sock: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    state: St,
}

/// What one sending phase measured, client side (every fleet together).
#[derive(Debug, Default, Clone)]
struct PhaseOut {
    sent: u64,
    /// Deliveries received while the window was open.
    in_window: u64,
    /// Deliveries of this phase's messages, in all.
    received: u64,
    expected: u64,
    lost: u64,
    self_echo: u64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    max_us: Option<f64>,
    window: Duration,
    /// CPU time of every client thread, summed.
    client_cpu: Duration,
}

/// What one fleet measured in a phase; [`Fleets::phase`] adds them up.
struct FleetOut {
    in_window: u64,
    /// Deliveries per `[sender][seq]` received by this fleet's clients.
    got: Vec<Vec<u32>>,
    self_echo: u64,
    hist: Histogram<u64>,
    window: Duration,
    client_cpu: Duration,
}

/// One phase's plan, shared by every fleet's thread.
struct PhasePlan {
    phase: u32,
    senders: usize,
    rate: f64,
    duration: Duration,
    /// When message 0 is due (the same instant for every fleet).
    t0: Instant,
    /// Messages sent so far, per sender (each fleet counts its own senders').
    sent: Vec<AtomicU64>,
    /// Fleets done sending (a fleet's drain ends only once all are).
    done: AtomicUsize,
    fleets: usize,
}

impl PhasePlan {
    /// Messages in the phase, all senders together (message `j` is sender
    /// `j % senders`'s number `j / senders`).
    fn total(&self) -> u64 {
        ((self.rate * self.duration.as_secs_f64()).round() as u64).max(1)
    }

    fn per_sender(&self) -> usize {
        self.total().div_ceil(self.senders as u64) as usize
    }

    fn all_sent(&self) -> bool {
        self.done.load(Ordering::SeqCst) >= self.fleets
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("histogram bounds")
}

struct Fleet {
    /// This fleet's number and how many there are: it holds clients `index`,
    /// `index + threads`, ...
    index: usize,
    threads: usize,
    poll: Poll,
    events: Events,
    clients: Vec<Client>,
    addr: SocketAddr,
    explicit_join: bool,
    /// Shared by every fleet: stamps are sent by one fleet and read by another.
    epoch: Instant,
    scratch: Vec<u8>,
    last_rx: Instant,
    // The current phase's accounting.
    phase: u32,
    window_open: bool,
    in_window: u64,
    got: Vec<Vec<u32>>,
    self_echo: u64,
    hist: Histogram<u64>,
}

const IO_BUF: usize = 64 * 1024;

impl Fleet {
    fn new(
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

    fn nick(id: usize) -> String {
        format!("b{id}")
    }

    /// The index in `clients` of client `id`, if it lives in this fleet.
    fn local(&self, id: usize) -> Option<usize> {
        (id % self.threads == self.index)
            .then_some(id / self.threads)
            .filter(|&i| i < self.clients.len())
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn pending(&self) -> usize {
        self.clients
            .iter()
            .filter(|c| !matches!(c.state, St::Joined | St::Dead(_)))
            .count()
    }

    fn dead(&self) -> Vec<(usize, String)> {
        self.clients
            .iter()
            .filter_map(|c| match &c.state {
                St::Dead(why) => Some((c.id, why.clone())),
                _ => None,
            })
            .collect()
    }

    /// This fleet's share of clients `0..n`.
    fn share(&self, n: usize) -> usize {
        (self.index..n).step_by(self.threads).count()
    }

    /// Connects and registers this fleet's share of clients `0..n`, at most `wave`
    /// registering at once; every one must be in the room before `limit`.
    fn join_all(&mut self, n: usize, wave: usize, limit: Duration) -> Result<Duration, String> {
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
    fn settle(&mut self, quiet: Duration, limit: Duration) -> Result<(), String> {
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

    fn queue(&mut self, i: usize, data: &[u8]) {
        let c = &mut self.clients[i];
        c.wbuf.extend_from_slice(data);
        Self::flush(c);
    }

    fn flush(c: &mut Client) {
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
    fn pump(&mut self, timeout: Duration) -> io::Result<()> {
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

    fn read_client(&mut self, i: usize) {
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
    fn line_bytes(&mut self, i: usize, line: &[u8], now_ns: u64) {
        match privmsg_trailing(line) {
            Some(text) => self.privmsg(i, text, now_ns),
            None => {
                let line = String::from_utf8_lossy(line);
                self.line(i, &line, now_ns);
            }
        }
    }

    /// A `PRIVMSG` with trailing text `text`: counted if it is this phase's stamp.
    fn privmsg(&mut self, i: usize, text: &[u8], now_ns: u64) {
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

    fn line(&mut self, i: usize, line: &str, now_ns: u64) {
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
    fn phase(&mut self, plan: &PhasePlan) -> Result<FleetOut, String> {
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
    fn next_own(&self, j: u64, plan: &PhasePlan) -> u64 {
        let senders = plan.senders as u64;
        (j..j + senders)
            .find(|&k| self.local((k % senders) as usize).is_some())
            .map_or(plan.total(), |k| k.min(plan.total()))
    }

    /// The sending window; returns its length.
    fn send_window(&mut self, plan: &PhasePlan) -> Result<Duration, String> {
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
    fn expected(&self, plan: &PhasePlan) -> u64 {
        let n = self.clients.len() as u64;
        plan.sent
            .iter()
            .enumerate()
            .map(|(s, c)| c.load(Ordering::SeqCst) * (n - u64::from(self.local(s).is_some())))
            .sum()
    }

    fn received(&self) -> u64 {
        self.got.iter().flatten().map(|&c| c as u64).sum()
    }

    /// Reads until every fleet is done sending and every delivery to this fleet
    /// arrived, or nothing came for 3 s; a server that fell behind has a backlog of up
    /// to the whole window to drain.
    fn drain(&mut self, plan: &PhasePlan) -> Result<(), String> {
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

/// Every client, in `threads` fleets; each step runs every fleet on its own thread
/// (pinned to its CPU) and waits for all.
struct Fleets {
    fleets: Vec<Fleet>,
    cpus: Vec<Option<usize>>,
    clients: usize,
}

impl Fleets {
    /// `cpus`: one entry per client thread (its length is the thread count).
    fn new(addr: SocketAddr, explicit_join: bool, cpus: &[Option<usize>]) -> io::Result<Fleets> {
        let epoch = Instant::now();
        let threads = cpus.len().max(1);
        let fleets = (0..threads)
            .map(|k| Fleet::new(addr, explicit_join, epoch, k, threads))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Fleets {
            fleets,
            cpus: cpus.to_vec(),
            clients: 0,
        })
    }

    /// Runs `f` on every fleet, each on its own thread, calling `tick` about every
    /// 250 ms meanwhile; the first error wins.
    fn each<T: Send>(
        &mut self,
        f: impl Fn(&mut Fleet) -> Result<T, String> + Sync,
        tick: &mut dyn FnMut(),
    ) -> Result<Vec<T>, String> {
        let f = &f;
        let cpus = &self.cpus;
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .fleets
                .iter_mut()
                .enumerate()
                .map(|(k, fleet)| {
                    let cpu = cpus.get(k).copied().flatten();
                    s.spawn(move || {
                        if let Some(c) = cpu {
                            pin_to(c);
                        }
                        f(fleet)
                    })
                })
                .collect();
            let mut last = Instant::now();
            while !handles.iter().all(|h| h.is_finished()) {
                std::thread::sleep(Duration::from_millis(5));
                if last.elapsed() >= Duration::from_millis(250) {
                    last = Instant::now();
                    tick();
                }
            }
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("a client thread panicked".into()))
                })
                .collect()
        })
    }

    /// Connects and registers clients `0..n` (each fleet its share, at most `wave`
    /// registering at once in all); returns when the last fleet is done.
    fn join_all(&mut self, n: usize, wave: usize, limit: Duration) -> Result<Duration, String> {
        self.clients = n;
        let wave = wave.div_ceil(self.fleets.len()).max(1);
        let t = self.each(|f| f.join_all(n, wave, limit), &mut || {})?;
        Ok(t.into_iter().max().unwrap_or_default())
    }

    fn settle(&mut self, quiet: Duration, limit: Duration) -> Result<(), String> {
        self.each(|f| f.settle(quiet, limit), &mut || {})
            .map(|_| ())
    }

    /// Sends `rate` messages per second for `duration` from clients `0..senders`
    /// (interleaved; each fleet sends for its own senders on a shared schedule),
    /// counts deliveries while sending (the window, `on_tick` about every 250 ms), then
    /// drains until every delivery arrived or none came for 3 s.
    fn phase(
        &mut self,
        phase: u32,
        senders: usize,
        rate: f64,
        duration: Duration,
        on_tick: &mut dyn FnMut(),
    ) -> Result<PhaseOut, String> {
        let plan = PhasePlan {
            phase,
            senders,
            rate,
            duration,
            // A moment ahead, so every thread is up when the first message is due.
            t0: Instant::now() + Duration::from_millis(2),
            sent: (0..senders).map(|_| AtomicU64::new(0)).collect(),
            done: AtomicUsize::new(0),
            fleets: self.fleets.len(),
        };
        let end = plan.t0 + duration;
        let mut tick = || {
            if Instant::now() < end {
                on_tick();
            }
        };
        let outs = self.each(|f| f.phase(&plan), &mut tick)?;
        let n = self.clients as u64;
        let mut got = vec![vec![0u32; plan.per_sender()]; senders];
        let mut hist = new_histogram();
        let mut out = PhaseOut::default();
        for o in &outs {
            for (acc, v) in got.iter_mut().zip(&o.got) {
                for (a, c) in acc.iter_mut().zip(v) {
                    *a += c;
                }
            }
            let _ = hist.add(&o.hist);
            out.in_window += o.in_window;
            out.self_echo += o.self_echo;
            out.window = out.window.max(o.window);
            out.client_cpu += o.client_cpu;
        }
        let sent: Vec<u64> = plan.sent.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        out.sent = sent.iter().sum();
        out.expected = out.sent * (n - 1);
        out.received = got.iter().flatten().map(|&c| c as u64).sum();
        for (v, &s) in got.iter().zip(&sent) {
            out.lost += v
                .iter()
                .take(s as usize)
                .map(|&c| (n - 1).saturating_sub(c as u64))
                .sum::<u64>();
        }
        let q = |x: f64| (!hist.is_empty()).then(|| hist.value_at_quantile(x) as f64 / 1000.0);
        out.p50_us = q(0.5);
        out.p99_us = q(0.99);
        out.max_us = (!hist.is_empty()).then(|| hist.max() as f64 / 1000.0);
        Ok(out)
    }
}

#[derive(Debug, Clone, Default)]
struct Sample {
    round: usize,
    deliveries_per_sec: f64,
    offered_per_sec: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    max_us: Option<f64>,
    rss_end_mib: Option<f64>,
    rss_joined_mib: Option<f64>,
    rss_window_max_mib: Option<f64>,
    hwm_mib: Option<f64>,
    cpu_us_per_delivery: Option<f64>,
    server_cpu_pct: Option<f64>,
    client_cpu_pct: f64,
    /// Every CPU's busy share over the window (softirq and steal included).
    machine_busy_pct: Vec<f64>,
    writes_per_delivery: Option<f64>,
    syscalls_per_delivery: Option<f64>,
    strace_writes_per_delivery: Option<f64>,
    lost: u64,
    sent: u64,
    received: u64,
    expected: u64,
    self_echo: u64,
    join_secs: f64,
}

impl Sample {
    fn json(&self) -> Value {
        json!({
            "round": self.round,
            "deliveries_per_sec": self.deliveries_per_sec,
            "offered_deliveries_per_sec": self.offered_per_sec,
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
            "max_us": self.max_us,
            "rss_end_mib": self.rss_end_mib,
            "rss_after_join_mib": self.rss_joined_mib,
            "rss_window_max_mib": self.rss_window_max_mib,
            "rss_peak_hwm_mib": self.hwm_mib,
            "cpu_us_per_delivery": self.cpu_us_per_delivery,
            "server_cpu_pct": self.server_cpu_pct,
            "client_cpu_pct": self.client_cpu_pct,
            "machine_busy_pct_per_cpu": self.machine_busy_pct,
            "writes_per_delivery": self.writes_per_delivery,
            "syscalls_per_delivery": self.syscalls_per_delivery,
            "strace_writes_per_delivery": self.strace_writes_per_delivery,
            "lost": self.lost,
            "sent": self.sent,
            "received": self.received,
            "expected": self.expected,
            "self_echo": self.self_echo,
            "join_secs": self.join_secs,
        })
    }
}

struct Bench {
    o: Options,
    server_cpu: Option<usize>,
    /// One entry per client thread: the CPU it is pinned to.
    client_cpus: Vec<Option<usize>>,
    work: PathBuf,
}

fn mib(kb: Option<u64>) -> Option<f64> {
    kb.map(|k| k as f64 / 1024.0)
}

impl Bench {
    /// One round of one contender. `strace`: also one phase under strace afterwards.
    fn measure(&self, name: &str, round: usize, strace: bool) -> Result<Sample, String> {
        let o = &self.o;
        let text = |e: io::Error| e.to_string();
        let mut srv = start_server(name, self.server_cpu, &self.work)?;
        let pid = srv.pid();
        // Every contender's clients JOIN #lobby themselves after 001: chat_server, like
        // every IRC server, no longer joins IRC clients anywhere (--irc-autojoin).
        let mut fleet =
            Fleets::new(srv.addr(), true, &self.client_cpus).map_err(|e| format!("poll: {e}"))?;
        let join_limit = Duration::from_secs(30 + o.clients as u64 / 20);
        let joined_in = fleet.join_all(o.clients, 50, join_limit)?;
        fleet.settle(Duration::from_millis(300), Duration::from_secs(60))?;
        let rss_joined = mib(status_kb(pid, "VmRSS"));
        if !o.warmup.is_zero() {
            fleet.phase(1, o.senders, o.rate, o.warmup, &mut || {})?;
        }
        srv.stats_on().map_err(text)?;
        let cpu0 = procfs::cpu_ns(pid);
        let jiffies0 = cpu_jiffies();
        let t0 = Instant::now();
        let mut rss_max: Option<u64> = None;
        let mut sample_rss = || {
            if let Some(kb) = status_kb(pid, "VmRSS") {
                rss_max = Some(rss_max.map_or(kb, |m| m.max(kb)));
            }
        };
        let r = fleet.phase(2, o.senders, o.rate, o.duration, &mut sample_rss)?;
        let cpu1 = procfs::cpu_ns(pid);
        let machine_busy = busy_pct(&jiffies0, &cpu_jiffies());
        let elapsed = t0.elapsed();
        let counts = srv.stats_off().map_err(text)?;
        sample_rss();
        let rss_end = mib(status_kb(pid, "VmRSS"));
        let hwm = mib(status_kb(pid, "VmHWM"));
        let cpu_secs = match (cpu0, cpu1) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e9),
            _ => None,
        };
        let deliveries = r.received.max(1) as f64;
        let mut s = Sample {
            round,
            deliveries_per_sec: r.in_window as f64 / r.window.as_secs_f64(),
            offered_per_sec: o.rate * (o.clients - 1) as f64,
            p50_us: r.p50_us,
            p99_us: r.p99_us,
            max_us: r.max_us,
            rss_end_mib: rss_end,
            rss_joined_mib: rss_joined,
            rss_window_max_mib: mib(rss_max),
            hwm_mib: hwm,
            cpu_us_per_delivery: cpu_secs.map(|c| c * 1e6 / deliveries),
            server_cpu_pct: cpu_secs.map(|c| 100.0 * c / elapsed.as_secs_f64()),
            client_cpu_pct: 100.0 * r.client_cpu.as_secs_f64() / elapsed.as_secs_f64(),
            machine_busy_pct: machine_busy,
            writes_per_delivery: counts.map(|c| c.get(Syscall::Write) as f64 / deliveries),
            syscalls_per_delivery: counts.map(|c| c.syscalls() as f64 / deliveries),
            strace_writes_per_delivery: None,
            lost: r.lost,
            sent: r.sent,
            received: r.received,
            expected: r.expected,
            self_echo: r.self_echo,
            join_secs: joined_in.as_secs_f64(),
        };
        if strace {
            let file = self
                .work
                .join(format!("strace-{name}-{}.txt", std::process::id()));
            let dur = o.duration.min(Duration::from_secs(5));
            match strace::strace_counts(pid, &file, || {
                fleet.phase(3, o.senders, o.rate, dur, &mut || {})
            }) {
                Ok((m, st)) => {
                    s.strace_writes_per_delivery =
                        Some(strace_writes(&m) as f64 / st.received.max(1) as f64);
                    s.lost += st.lost;
                }
                Err(e) => eprintln!("  {name}: strace phase failed: {e}"),
            }
        }
        drop(fleet);
        srv.stop().map_err(text)?;
        Ok(s)
    }
}

// ---------------------------------------------------------------------------------
// Results and report.

#[derive(Default)]
struct Cell {
    samples: Vec<Sample>,
    failure: Option<String>,
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) => format!("{x:.digits$}"),
        None => "null".into(),
    }
}

fn med(samples: &[Sample], f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = samples.iter().filter_map(f).collect();
    median(&v)
}

fn max_of(samples: &[Sample], f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
    samples.iter().filter_map(f).reduce(f64::max)
}

/// One table row for a contender.
fn row(name: &str, cell: &Cell) -> Vec<String> {
    if cell.samples.is_empty() {
        let why = cell.failure.clone().unwrap_or_else(|| "not run".into());
        let mut r = vec![name.to_string(), why];
        r.extend(std::iter::repeat_n("–".to_string(), HEADER.len() - 2));
        return r;
    }
    let s = &cell.samples;
    let d: Vec<f64> = s.iter().map(|x| x.deliveries_per_sec).collect();
    let (lo, hi) = (
        d.iter().copied().fold(f64::INFINITY, f64::min),
        d.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let rate = format!(
        "{:.0} [{:.0}–{:.0}]",
        median(&d).unwrap_or(f64::NAN),
        lo,
        hi
    );
    let writes = match (
        med(s, |x| x.writes_per_delivery),
        med(s, |x| x.strace_writes_per_delivery),
    ) {
        (Some(c), Some(t)) => format!("{c:.3} (strace {t:.3})"),
        (Some(c), None) => format!("{c:.3}"),
        (None, Some(t)) => format!("strace {t:.3}"),
        (None, None) => "null".into(),
    };
    let mut lost = s.iter().map(|x| x.lost).sum::<u64>().to_string();
    if let Some(f) = &cell.failure {
        let _ = write!(lost, " ({f})");
    }
    vec![
        name.to_string(),
        rate,
        fmt_opt(med(s, |x| x.p50_us), 0),
        fmt_opt(med(s, |x| x.p99_us), 0),
        format!(
            "{} / {}",
            fmt_opt(max_of(s, |x| x.hwm_mib), 1),
            fmt_opt(med(s, |x| x.rss_end_mib), 1)
        ),
        fmt_opt(med(s, |x| x.cpu_us_per_delivery), 3),
        fmt_opt(med(s, |x| x.server_cpu_pct), 0),
        writes,
        lost,
    ]
}

const HEADER: [&str; 9] = [
    "contender",
    "deliveries/s median [min–max]",
    "p50 µs",
    "p99 µs",
    "server RSS MiB peak / end",
    "server CPU µs/delivery",
    "server CPU %",
    "write syscalls/delivery",
    "lost messages",
];

fn render_table(order: &[String], cells: &BTreeMap<String, Cell>) -> String {
    let empty = Cell::default();
    let rows: Vec<Vec<String>> = order
        .iter()
        .map(|n| row(n, cells.get(n).unwrap_or(&empty)))
        .collect();
    markdown(&HEADER, &rows)
}

fn run(o: Options) -> i32 {
    // Counted before this thread is pinned (which narrows what it may use).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (server_cpu, client_cpu) = common::os::two_cpus();
    let limit = raise_nofile();
    if limit < (o.clients as u64 + 64) {
        eprintln!(
            "chat bench: descriptor limit {limit} is too low for {} clients",
            o.clients
        );
        return 2;
    }
    if let Some(c) = client_cpu {
        if !pin_to(c) {
            eprintln!("chat bench: could not pin the clients to CPU {c}");
        }
    }
    let mut contenders = o.contenders.clone();
    let ngircd_bin = tools::which("ngircd");
    if contenders.iter().any(|c| c == NGIRCD) && ngircd_bin.is_none() {
        match tools::missing("ngircd") {
            Ok(why) => println!("{why}"),
            Err(e) => {
                eprintln!("chat bench: {e}: failing");
                return 1;
            }
        }
        contenders.retain(|c| c != NGIRCD);
    }
    let ngircd_version = ngircd_bin
        .as_deref()
        .and_then(|b| tools::version_line(b, "--version"));
    let strace_ok = o.strace && tools::runs("strace", "-V");
    if o.strace && !strace_ok {
        println!("strace: not installed; write syscalls come from the crate's counters only");
    }
    let work = std::env::temp_dir().join(format!("chat-bench-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&work) {
        eprintln!("chat bench: {}: {e}", work.display());
        return 2;
    }
    // The client threads share the CPUs the server does not use (on 2 cores: CPU 1).
    let client_cpus: Vec<Option<usize>> = (0..o.client_threads)
        .map(|k| client_cpu.map(|c| c + k % cores.saturating_sub(c).max(1)))
        .collect();
    let client_cpu_count = {
        let mut v: Vec<Option<usize>> = client_cpus.clone();
        v.dedup();
        v.len().max(1)
    };
    let machine = env::machine_info();
    // Other load on the machine skews every number here: say so.
    let j0 = cpu_jiffies();
    std::thread::sleep(Duration::from_millis(500));
    let idle_busy = busy_pct(&j0, &cpu_jiffies());
    if idle_busy.iter().any(|&b| b > 15.0) {
        println!(
            "warning: the machine is not idle before the run (CPUs busy {idle_busy:.0?}%): another process competes for the cores"
        );
    }
    println!("# Chat fan-out benchmark\n");
    println!(
        "machine: {machine}; server pinned to CPU {}, clients ({} thread(s)) to CPU {}",
        server_cpu.map_or("-".into(), |c| c.to_string()),
        o.client_threads,
        client_cpus
            .iter()
            .map(|c| c.map_or("-".into(), |c| c.to_string()))
            .collect::<Vec<_>>()
            .join(",")
    );
    println!(
        "workload: {} IRC clients in {ROOM}, {} senders, {} msgs/s in all ({:.0} deliveries/s offered), window {:?} after {:?} warm-up, {} round(s){}",
        o.clients,
        o.senders,
        o.rate,
        o.rate * (o.clients - 1) as f64,
        o.duration,
        o.warmup,
        o.rounds,
        if strace_ok { ", plus one strace phase per contender" } else { "" }
    );
    if let Some(v) = &ngircd_version {
        println!("ngircd: {v} (MaxPenaltyTime = 0: no flood penalties)");
    }
    let bench = Bench {
        o: o.clone(),
        server_cpu,
        client_cpus: client_cpus.clone(),
        work: work.clone(),
    };
    let mut cells: BTreeMap<String, Cell> = BTreeMap::new();
    let started = Instant::now();
    for round in 0..o.rounds {
        // Alternate the order: forwards, backwards.
        let mut order = contenders.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        for name in &order {
            let strace = strace_ok && round + 1 == o.rounds;
            eprint!("round {}/{}: {name} ... ", round + 1, o.rounds);
            let r = bench.measure(name, round, strace);
            let cell = cells.entry(name.clone()).or_default();
            match r {
                Ok(s) => {
                    eprintln!(
                        "{:.0} deliveries/s, p99 {} µs, lost {}, server CPU {}%, client CPU {:.0}%, CPUs busy {:.0?}%",
                        s.deliveries_per_sec,
                        fmt_opt(s.p99_us, 0),
                        s.lost,
                        fmt_opt(s.server_cpu_pct, 0),
                        s.client_cpu_pct,
                        s.machine_busy_pct
                    );
                    if s.client_cpu_pct > 90.0 * client_cpu_count as f64 {
                        eprintln!(
                            "  warning: the client threads were {:.0}% busy on {client_cpu_count} CPU(s): they may be the bottleneck",
                            s.client_cpu_pct
                        );
                    }
                    cell.samples.push(s);
                }
                Err(e) => {
                    eprintln!("failed: {e}");
                    let short = if name == "select" && o.clients > 900 {
                        format!("n/a (FD_SETSIZE): {e}")
                    } else {
                        e
                    };
                    cell.failure = Some(short);
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    println!(
        "\n## Fan-out, {} clients ({:.0} s)\n",
        o.clients,
        started.elapsed().as_secs_f64()
    );
    print!("{}", render_table(&contenders, &cells));
    println!(
        "\nRSS: VmHWM (peak over the server's life, joins included) / VmRSS at the end of the window. \
Server CPU: the server's on-CPU time (schedstat, all threads) over the window; µs/delivery divides it by the deliveries. \
Write syscalls: this crate's counters (write/send calls) over the window; `(strace …)`: \
strace -c -f over a separate phase (write, writev, send, sendto, sendmsg). \
Lost: deliveries missing after a drain, all rounds."
    );
    // Ratios vs ngircd.
    let med_rate = |n: &str| -> Option<f64> {
        let c = cells.get(n)?;
        median(
            &c.samples
                .iter()
                .map(|s| s.deliveries_per_sec)
                .collect::<Vec<_>>(),
        )
    };
    let med_cpu = |n: &str| {
        cells
            .get(n)
            .and_then(|c| med(&c.samples, |s| s.cpu_us_per_delivery))
    };
    let ours: Vec<&String> = contenders.iter().filter(|c| *c != NGIRCD).collect();
    let ng_rate = med_rate(NGIRCD);
    let ng_cpu = med_cpu(NGIRCD);
    println!("\n## Ratios vs ngircd\n");
    let mut best_ratio: Option<f64> = None;
    let mut best_capacity_ratio: Option<f64> = None;
    if ng_rate.is_none() {
        println!("ngircd: no result; no ratios.");
    }
    for n in &ours {
        let (Some(r), Some(ng)) = (med_rate(n), ng_rate) else {
            continue;
        };
        let ratio = r / ng;
        best_ratio = Some(best_ratio.map_or(ratio, |b: f64| b.max(ratio)));
        let cap = match (med_cpu(n), ng_cpu) {
            (Some(a), Some(b)) if a > 0.0 => {
                let x = b / a;
                best_capacity_ratio = Some(best_capacity_ratio.map_or(x, |m: f64| m.max(x)));
                format!(
                    "; ngircd spends {x:.2}x the server CPU per delivery (capacity on one core ≈ {:.0} vs {:.0} deliveries/s)",
                    1e6 / a,
                    1e6 / b
                )
            }
            _ => String::new(),
        };
        println!("- {n}: deliveries/s {ratio:.2}x ngircd{cap}");
    }
    // Targets.
    println!("\n## Targets\n");
    let offered = o.rate * (o.clients - 1) as f64;
    match best_ratio {
        Some(r) => {
            let saturated = ng_rate.is_some_and(|x| x < 0.95 * offered);
            println!(
                "- deliveries/s >= 1.5x ngircd: best {r:.2}x: {}{}",
                if r >= 1.5 { "met" } else { "not met" },
                if saturated {
                    String::new()
                } else {
                    format!(
                        " (both kept up with the offered {offered:.0} deliveries/s, so the ratio is ~1 by construction; \
the CPU-per-delivery ratio {} says what the capacity would be; raise --rate to saturate)",
                        fmt_opt(best_capacity_ratio, 2)
                    )
                }
            )
        }
        None => println!("- deliveries/s >= 1.5x ngircd: not measured"),
    }
    for n in &ours {
        let Some(c) = cells.get(*n) else { continue };
        let w = med(&c.samples, |s| s.writes_per_delivery);
        let t = med(&c.samples, |s| s.strace_writes_per_delivery);
        let worst = [w, t].into_iter().flatten().reduce(f64::max);
        if let Some(x) = worst {
            println!(
                "- {n}: write syscalls per delivery {x:.3} (<= 1 per recipient per batch: {})",
                if x <= 1.0 { "met" } else { "NOT met" }
            );
        }
        let growth = match (
            med(&c.samples, |s| s.rss_joined_mib),
            med(&c.samples, |s| s.rss_window_max_mib),
        ) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        if let Some(g) = growth {
            println!(
                "- {n}: RSS growth while sending {g:+.1} MiB (bounded memory: {})",
                if g < 16.0 { "yes" } else { "check" }
            );
        }
    }
    let lost: u64 = cells
        .values()
        .flat_map(|c| c.samples.iter().map(|s| s.lost))
        .sum();
    println!("- lost messages, all contenders: {lost}");
    // JSON.
    let dir = env::out_dir(o.out.as_ref());
    let file = dir.join("chat.json");
    let doc = json!({
        "machine": machine,
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
        "client_cpus": client_cpus,
        "ngircd_version": ngircd_version,
        "busy_pct_per_cpu_before_run": idle_busy,
        "options": {
            "clients": o.clients, "senders": o.senders, "rate": o.rate,
            "duration_secs": o.duration.as_secs_f64(), "warmup_secs": o.warmup.as_secs_f64(),
            "rounds": o.rounds, "strace": strace_ok, "quick": o.quick,
            "client_threads": o.client_threads,
        },
        "contenders": contenders.iter().map(|n| {
            let c = cells.get(n);
            json!({
                "name": n,
                "failure": c.and_then(|c| c.failure.clone()),
                "deliveries_per_sec_median": med_rate(n),
                "samples": c.map(|c| c.samples.iter().map(Sample::json).collect::<Vec<_>>()).unwrap_or_default(),
            })
        }).collect::<Vec<_>>(),
    });
    match std::fs::create_dir_all(&dir).and_then(|_| {
        std::fs::write(
            &file,
            serde_json::to_string_pretty(&doc).unwrap_or_default(),
        )
    }) {
        Ok(()) => println!("\nresults: {}", file.display()),
        Err(e) => eprintln!("chat bench: {}: {e}", file.display()),
    }
    let failures = contenders
        .iter()
        .filter(|n| cells.get(*n).is_none_or(|c| c.samples.is_empty()))
        .filter(|n| *n != "select")
        .count();
    if failures > 0 || lost > 0 {
        1
    } else {
        0
    }
}

// ---------------------------------------------------------------------------------
// Self-test.

fn self_test() -> i32 {
    let mut failed = 0;
    let mut check = |name: &str, ok: bool| {
        println!("{} {name}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            failed += 1;
        }
    };
    // IRC lines.
    let (p, c, r) = split_irc(":a!u@h PRIVMSG #lobby :rlb 2 1 7 123\r\n");
    check(
        "split prefixed line",
        p == Some("a!u@h") && c == "PRIVMSG" && r == "#lobby :rlb 2 1 7 123",
    );
    check("trailing param", trailing(r) == "rlb 2 1 7 123");
    let (p, c, r) = split_irc("PING :bench.local");
    check(
        "split unprefixed line",
        p.is_none() && c == "PING" && r == ":bench.local",
    );
    check("trailing only", trailing(":x y") == "x y");
    check("no trailing", trailing("a b") == "b");
    let (_, c, r) = split_irc(":srv 366 b1 #lobby :End of NAMES list");
    check(
        "numeric",
        c == "366" && r.contains(ROOM) && trailing(r) == "End of NAMES list",
    );
    check("empty line", split_irc("") == (None, "", ""));
    // Stamps.
    let s = Stamp {
        phase: 2,
        sender: 3,
        seq: 4_000_000,
        nanos: 18_446_744_073_709_551_615,
    };
    check("stamp round trip", Stamp::decode(&s.encode()) == Some(s));
    check(
        "stamp with padding",
        Stamp::decode("rlb 1 2 3 4 xxxx").map(|s| s.nanos) == Some(4),
    );
    check("not a stamp", Stamp::decode("hello 1 2 3 4").is_none());
    check("short stamp", Stamp::decode("rlb 1 2 3").is_none());
    check("bad number", Stamp::decode("rlb 1 x 3 4").is_none());
    check(
        "privmsg fast path",
        privmsg_trailing(b":a!u@h PRIVMSG #lobby :rlb 2 1 7 123\r") == Some(&b"rlb 2 1 7 123"[..]),
    );
    check(
        "privmsg fast path: other commands",
        privmsg_trailing(b":srv NOTICE b1 :rlb 1 2 3 4").is_none()
            && privmsg_trailing(b"PING :x").is_none(),
    );
    check(
        "number too long",
        decimal(b"99999999999999999999").is_none(),
    );
    // ngircd configuration.
    let conf = ngircd_config(16667, Path::new("/tmp/x"));
    for key in [
        "[Global]",
        "Name = bench.local",
        "Listen = 127.0.0.1",
        "Ports = 16667",
        "[Limits]",
        "MaxConnections = 0",
        "MaxConnectionsIP = 0",
        "MaxJoins = 0",
        "MaxPenaltyTime = 0",
        "PingTimeout = 600",
        "[Options]",
        "PAM = no",
        "DNS = no",
        "Ident = no",
        "PidFile = /tmp/x/ngircd.pid",
    ] {
        check(&format!("ngircd config has {key:?}"), conf.contains(key));
    }
    check(
        "ngircd sections in order",
        conf.find("[Global]") < conf.find("[Limits]")
            && conf.find("[Limits]") < conf.find("[Options]"),
    );
    // The shared harness: protocol, statistics, tables; /proc parsing.
    for bad in common::server::self_check() {
        check(bad, false);
    }
    for bad in common::table::self_check() {
        check(bad, false);
    }
    let stat = "1234 (chat server) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
    check("stat ticks", procfs::parse_stat_ticks(stat) == Some(300));
    let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
    check(
        "VmRSS",
        procfs::parse_status_kb(status, "VmRSS") == Some(1024),
    );
    check(
        "VmHWM",
        procfs::parse_status_kb(status, "VmHWM") == Some(2048),
    );
    check(
        "missing key",
        procfs::parse_status_kb(status, "VmSwap").is_none(),
    );
    let m = strace::parse_strace_calls(
        "calls syscall\n------ ----\n 10 write\n 5 writev\n 7 epoll_wait\n 22 total\n",
    );
    check(
        "strace parse",
        m.get("write") == Some(&10) && strace_writes(&m) == 15,
    );
    let ps = "cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0 0 0\ncpu1 5 0 5 30 10 0 0 0 0 0\nintr 1\n";
    let j = procfs::parse_proc_stat(ps);
    check("proc stat per cpu", j == vec![(10, 50), (10, 50)]);
    check(
        "busy pct",
        busy_pct(&[(10, 50)], &[(60, 150)]) == vec![50.0],
    );
    // Table rendering.
    let mut cells = BTreeMap::new();
    let sample = |d: f64, lost: u64| Sample {
        deliveries_per_sec: d,
        p50_us: Some(100.0),
        p99_us: Some(900.0),
        hwm_mib: Some(12.5),
        rss_end_mib: Some(10.0),
        cpu_us_per_delivery: Some(0.25),
        server_cpu_pct: Some(5.0),
        writes_per_delivery: Some(0.5),
        lost,
        ..Sample::default()
    };
    cells.insert(
        "epoll".to_string(),
        Cell {
            samples: vec![sample(300.0, 0), sample(100.0, 1), sample(200.0, 0)],
            failure: None,
        },
    );
    cells.insert(
        "select".to_string(),
        Cell {
            samples: vec![],
            failure: Some("n/a (FD_SETSIZE)".into()),
        },
    );
    let order = vec![
        "epoll".to_string(),
        "select".to_string(),
        "ngircd".to_string(),
    ];
    let t = render_table(&order, &cells);
    let lines: Vec<&str> = t.lines().collect();
    check("table has header, rule, 3 rows", lines.len() == 5);
    check(
        "table header",
        lines[0].starts_with("| contender | deliveries/s"),
    );
    check("table rule", lines[1].starts_with("| --- | ---: |"));
    check(
        "table row",
        lines[2] == "| epoll | 200 [100–300] | 100 | 900 | 12.5 / 10.0 | 0.250 | 5 | 0.500 | 1 |",
    );
    check(
        "table n/a row",
        lines[3].starts_with("| select | n/a (FD_SETSIZE) |"),
    );
    check(
        "table not run",
        lines[4].starts_with("| ngircd | not run |"),
    );
    check(
        "columns agree",
        lines
            .iter()
            .all(|l| l.matches(" | ").count() == HEADER.len() - 1),
    );
    // Arguments.
    let parse = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()).collect());
    check(
        "no args: self-test",
        matches!(parse(&[]), Ok(Mode::SelfTest)),
    );
    check(
        "quick",
        matches!(parse(&["--quick", "--bench"]), Ok(Mode::Bench(o)) if o.clients == 50 && o.rounds == 1 && o.rate == 1000.0),
    );
    check(
        "quick keeps an explicit rate",
        matches!(parse(&["--quick", "--rate", "50"]), Ok(Mode::Bench(o)) if o.rate == 50.0),
    );
    check(
        "quick with clients",
        matches!(parse(&["--quick", "--clients", "80"]), Ok(Mode::Bench(o)) if o.clients == 80),
    );
    check(
        "contenders",
        matches!(parse(&["--contenders", "epoll,ngircd"]), Ok(Mode::Bench(o)) if o.contenders == ["epoll", "ngircd"]),
    );
    check(
        "unknown contender",
        parse(&["--contenders", "nginx"]).is_err(),
    );
    check("bad rate", parse(&["--rate", "0"]).is_err());
    check(
        "client threads",
        matches!(parse(&["--client-threads", "3"]), Ok(Mode::Bench(o)) if o.client_threads == 3)
            && matches!(parse(&["--quick"]), Ok(Mode::Bench(o)) if o.client_threads == 2)
            && parse(&["--client-threads", "0"]).is_err(),
    );
    check(
        "senders < clients",
        parse(&["--clients", "4", "--senders", "4"]).is_err(),
    );
    if failed == 0 {
        println!("self-test: all checks passed");
        0
    } else {
        println!("self-test: {failed} check(s) failed");
        1
    }
}
