//! Soak under mixed load: `cargo bench --bench soak [-- options]`.
//!
//! One child process (this binary re-executed in the hidden `--serve BACKEND` mode)
//! serves echo, HTTP and the chat's line protocol at once on one reactor. This process
//! drives it for `--duration` seconds (default 600 per backend; `--quick`: 25 s on one
//! backend, for CI) with:
//!
//! * well-behaved clients, whose every failure counts as an error (goal: 0): echo
//!   round trips of random sizes, keep-alive HTTP (`GET /plaintext`, `POST /echo`),
//!   chat pairs (one member talks, the other must see every line in order), and
//!   echo half-closes (send, shut the write side, read everything back);
//! * misbehaving clients, whose fate is not counted, only survived: slow readers (echo
//!   and chat), slowloris on HTTP, chat floods, connection bursts, resets (RST) in
//!   the middle of a request, and random garbage to every server.
//!
//! Every `--interval` seconds it samples the child's RSS, open descriptors and CPU
//! time. At the end it lets the server settle, measures its CPU while idle, reads the
//! panics it contained (`/api/stats`), and reports: requests served, errors, RSS and
//! descriptors over time (start, after warm-up, end; an SVG plot each), idle CPU.
//! The exit status is 1 if a well-behaved client saw an error, descriptors did not
//! come back to the baseline, or the idle loop used more than 5% of a CPU.
//!
//! Results go to `target/lab/soak.{md,json}` and `soak-{rss,fds}.svg` (`--out DIR`).
//! With no argument at all (as `cargo test --benches` runs it) the binary runs its
//! self-test.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use readyloop::net::{Listen, ListenConfig};
use readyloop::proto::chat::{ChatConfig, ChatServer};
use readyloop::proto::echo::{Echo, EchoOptions};
use readyloop::proto::http::{HttpConfig, HttpServer, Router};
use readyloop::selector::Backend;

#[path = "common/mod.rs"]
mod common;

use common::child::{self, Ending};
use common::server::ServerProc;
use common::{cli, env, plot, procfs, table};

// ---------------------------------------------------------------------------------
// Options.

#[derive(clap::Parser, Debug)]
#[command(
    name = "soak",
    about = "Soak: echo, HTTP and chat at once under mixed load"
)]
struct Args {
    /// Seconds of load per backend (default 600; --quick: 25).
    #[arg(long)]
    duration: Option<u64>,
    /// A short run on one backend (epoll-et unless --backends), for CI.
    #[arg(long)]
    quick: bool,
    /// Backends, comma-separated (default: all six; --quick: epoll-et).
    #[arg(long, value_delimiter = ',')]
    backends: Vec<Backend>,
    /// Seconds between samples of RSS, descriptors and CPU (default: duration / 60,
    /// at least 1).
    #[arg(long)]
    interval: Option<u64>,
    #[command(flatten)]
    harness: cli::Harness,
}

#[derive(Debug)]
struct Options {
    duration: Duration,
    backends: Vec<Backend>,
    interval: Duration,
    out: Option<PathBuf>,
}

#[derive(Debug)]
enum Mode {
    Help,
    SelfTest,
    Serve(Backend),
    Soak(Options),
}

fn parse_args(args: Vec<String>) -> Result<Mode, String> {
    let a = match cli::parse::<Args>("soak", args, |a| a.harness.self_test)? {
        cli::Parsed::SelfTest => return Ok(Mode::SelfTest),
        cli::Parsed::Help => return Ok(Mode::Help),
        cli::Parsed::Args(a) => a,
    };
    if let Some(b) = a.harness.serve {
        return b
            .parse()
            .map(Mode::Serve)
            .map_err(|e| format!("--serve: {e}"));
    }
    let secs = a.duration.unwrap_or(if a.quick { 25 } else { 600 });
    if secs < 5 {
        return Err("--duration: at least 5 seconds".into());
    }
    let backends = if !a.backends.is_empty() {
        a.backends
    } else if a.quick {
        vec![Backend::EpollEt]
    } else {
        Backend::ALL.to_vec()
    };
    let interval = a.interval.unwrap_or((secs / 60).max(1)).max(1);
    Ok(Mode::Soak(Options {
        duration: Duration::from_secs(secs),
        backends,
        interval: Duration::from_secs(interval),
        out: a.harness.out,
    }))
}

fn main() {
    let mode = common::cli::or_exit("soak", parse_args(std::env::args().skip(1).collect()));
    match mode {
        Mode::Help => print!("{}", cli::usage::<Args>()),
        Mode::SelfTest => std::process::exit(self_test()),
        Mode::Serve(b) => serve(b),
        Mode::Soak(o) => std::process::exit(soak(&o)),
    }
}

// ---------------------------------------------------------------------------------
// The child: echo, HTTP and chat on one reactor.

/// Short timeouts, so misbehaving clients are recycled within the run.
fn stream_listen() -> ListenConfig {
    let mut l = ListenConfig::default();
    l.stream.close_timeout = Duration::from_secs(2);
    l
}

/// The hidden `--serve BACKEND` mode: echo, HTTP and the chat's line protocol on one
/// reactor, `ready ECHO HTTP CHAT`, then the control protocol (`stop` or EOF: a
/// graceful shutdown).
fn serve(backend: Backend) -> ! {
    let _ = env_logger::builder()
        .parse_env(env_logger::Env::default().default_filter_or("warn"))
        .try_init();
    let name = format!("soak server ({backend})");
    child::serve_reactor(&name, backend, Ending::Shutdown, false, |r| {
        let echo = r
            .listen_tcp_with(
                "127.0.0.1:0",
                Echo::factory(EchoOptions::default()),
                stream_listen(),
            )?
            .1;
        let http_cfg = HttpConfig {
            header_timeout: Duration::from_secs(2),
            body_timeout: Duration::from_secs(2),
            keepalive_timeout: Duration::from_secs(5),
            listen: stream_listen(),
            access_log: false,
            ..HttpConfig::default()
        };
        let http = HttpServer::new(http_cfg, Router::with_builtins())?
            .listen(r, "127.0.0.1:0")?
            .1;
        let mut chat_cfg = ChatConfig {
            registration_timeout: Duration::from_secs(5),
            ..ChatConfig::default()
        };
        chat_cfg.listen.stream.close_timeout = Duration::from_secs(2);
        chat_cfg.listen.stream.max_output = Some(256 << 10);
        let chat = ChatServer::new(chat_cfg);
        let line = chat.listen_lines(r, "127.0.0.1:0")?.1;
        Ok(vec![echo, http, line])
    })
}

/// Starts the soak's server child; its echo, HTTP and chat addresses.
fn spawn(backend: Backend) -> io::Result<(ServerProc, Addrs)> {
    let server = ServerProc::start("soak server", &[], &[backend.name().into()], &[])?;
    let at = |i| {
        server
            .addr_of(i)
            .ok_or_else(|| io::Error::other("soak server: fewer than 3 ports"))
    };
    let addrs = Addrs {
        echo: at(0)?,
        http: at(1)?,
        chat: at(2)?,
    };
    Ok((server, addrs))
}

// ---------------------------------------------------------------------------------
// /proc.

#[derive(Clone, Copy, Debug)]
struct Point {
    t: f64,
    rss_kb: u64,
    fds: u64,
    /// Server CPU (schedstat ns) so far.
    cpu_ns: u64,
}

fn sample(pid: u32, start: Instant) -> Point {
    Point {
        t: start.elapsed().as_secs_f64(),
        rss_kb: procfs::status_kb(pid, "VmRSS").unwrap_or(0),
        fds: procfs::fd_count(pid),
        cpu_ns: procfs::cpu_ns(pid).unwrap_or(0),
    }
}

// ---------------------------------------------------------------------------------
// Clients.

/// What the clients did.
#[derive(Default)]
struct Tally {
    echo_trips: AtomicU64,
    http_requests: AtomicU64,
    chat_messages: AtomicU64,
    half_closes: AtomicU64,
    misbehaving: AtomicU64,
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

impl Tally {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Relaxed);
        let mut v = self.first_errors.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() < 10 {
            v.push(what);
        }
    }
}

/// xorshift64: the clients' choices, reproducible per thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between a well-behaved client's operations (the machine is shared).
const PACE: Duration = Duration::from_millis(2);

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

fn echo_client(addr: SocketAddr, stop: &AtomicBool, t: &Tally, rng: &mut Rng) -> io::Result<()> {
    let mut c = connect(addr)?;
    for _ in 0..50 {
        if stop.load(Relaxed) {
            break;
        }
        let n = 1 + rng.below(16 << 10) as usize;
        let seed = rng.next() as u8;
        let msg: Vec<u8> = (0..n).map(|i| seed.wrapping_add(i as u8)).collect();
        c.write_all(&msg)?;
        let mut back = vec![0; n];
        c.read_exact(&mut back)?;
        if back != msg {
            return Err(io::Error::other("echo: wrong bytes"));
        }
        t.echo_trips.fetch_add(1, Relaxed);
        thread::sleep(PACE);
    }
    Ok(())
}

fn half_close_client(addr: SocketAddr, t: &Tally, rng: &mut Rng) -> io::Result<()> {
    let mut c = connect(addr)?;
    let msg: Vec<u8> = (0..1 + rng.below(32 << 10)).map(|i| i as u8).collect();
    c.write_all(&msg)?;
    c.shutdown(Shutdown::Write)?;
    let mut back = Vec::new();
    c.read_to_end(&mut back)?;
    if back != msg {
        return Err(io::Error::other(format!(
            "half-close: {} of {} bytes back",
            back.len(),
            msg.len()
        )));
    }
    t.half_closes.fetch_add(1, Relaxed);
    Ok(())
}

/// One HTTP response with a `Content-Length` body.
fn http_response(r: &mut BufReader<TcpStream>) -> io::Result<(u16, Vec<u8>)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 || !line.ends_with('\n') {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let mut len = 0;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || !h.ends_with('\n') {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            if n.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().map_err(io::Error::other)?;
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok((status, body))
}

fn http_client(addr: SocketAddr, stop: &AtomicBool, t: &Tally, rng: &mut Rng) -> io::Result<()> {
    let mut r = BufReader::new(connect(addr)?);
    for i in 0..100 {
        if stop.load(Relaxed) {
            break;
        }
        let (req, want) = if i % 2 == 0 {
            (
                b"GET /plaintext HTTP/1.1\r\nHost: soak\r\n\r\n".to_vec(),
                b"Hello, World!".to_vec(),
            )
        } else {
            let body: Vec<u8> = (0..1 + rng.below(4096)).map(|j| j as u8).collect();
            let mut req = format!(
                "POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            req.extend(&body);
            (req, body)
        };
        r.get_mut().write_all(&req)?;
        let (status, body) = http_response(&mut r)?;
        if status != 200 || body != want {
            return Err(io::Error::other(format!(
                "http: status {status}, wrong body"
            )));
        }
        t.http_requests.fetch_add(1, Relaxed);
        thread::sleep(PACE);
    }
    Ok(())
}

struct ChatLine {
    r: BufReader<TcpStream>,
}

impl ChatLine {
    fn join(addr: SocketAddr, nick: &str, room: &str) -> io::Result<ChatLine> {
        let mut c = ChatLine {
            r: BufReader::new(connect(addr)?),
        };
        c.send(nick)?;
        c.until(|l| l.starts_with(&format!("* hello, {nick}!")))?;
        c.send(&format!("/join {room}"))?;
        c.until(|l| l.starts_with(&format!("* you are in {room}")))?;
        Ok(c)
    }

    fn send(&mut self, line: &str) -> io::Result<()> {
        self.r.get_mut().write_all(format!("{line}\n").as_bytes())
    }

    fn until(&mut self, pred: impl Fn(&str) -> bool) -> io::Result<String> {
        loop {
            let mut l = String::new();
            if self.r.read_line(&mut l)? == 0 || !l.ends_with('\n') {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let l = l.trim_end();
            if pred(l) {
                return Ok(l.to_string());
            }
        }
    }
}

/// A talker and a listener in a room of their own: the listener must see every
/// line, in order (the flood limit allows 20 at once).
fn chat_pair(addr: SocketAddr, id: u64, t: &Tally) -> io::Result<()> {
    let room = format!("soak{id}");
    let mut listener = ChatLine::join(addr, &format!("l{id}"), &room)?;
    let mut talker = ChatLine::join(addr, &format!("t{id}"), &room)?;
    for i in 0..10 {
        talker.send(&format!("line {i}"))?;
    }
    let prefix = format!("<t{id}> line ");
    for i in 0..10 {
        let l = listener.until(|l| l.starts_with(&prefix))?;
        if l[prefix.len()..] != i.to_string() {
            return Err(io::Error::other(format!("chat: {l:?}, expected line {i}")));
        }
        t.chat_messages.fetch_add(1, Relaxed);
    }
    talker.send("/quit")?;
    listener.send("/quit")?;
    Ok(())
}

/// One misbehaving action, chosen at random; whatever happens to it is fine.
fn misbehave(s: &Addrs, rng: &mut Rng, id: u64) {
    let _ = (|| -> io::Result<()> {
        match rng.below(8) {
            // Slow reader on echo: send a lot, never read, go away.
            0 => {
                let mut c = connect(s.echo)?;
                c.set_write_timeout(Some(Duration::from_secs(2)))?;
                let chunk = vec![b'x'; 64 << 10];
                for _ in 0..32 {
                    c.write_all(&chunk)?;
                }
                thread::sleep(Duration::from_secs(1));
            }
            // Slow reader in the chat lobby: registered, never reads.
            1 => {
                let mut c = connect(s.chat)?;
                c.write_all(format!("slow{id}\n").as_bytes())?;
                thread::sleep(Duration::from_secs(3));
            }
            // Slowloris: one header byte at a time.
            2 => {
                let mut c = connect(s.http)?;
                c.write_all(b"GET /plaintext HTTP/1.1\r\nX-Slow: ")?;
                for _ in 0..12 {
                    c.write_all(b"a")?;
                    thread::sleep(Duration::from_millis(250));
                }
            }
            // Chat flood: far more lines than the limit lets through.
            3 => {
                let mut c = connect(s.chat)?;
                let mut lines = format!("flood{id}\n");
                for i in 0..500 {
                    lines.push_str(&format!("flood line {i}\n"));
                }
                c.write_all(lines.as_bytes())?;
                c.set_read_timeout(Some(Duration::from_millis(500)))?;
                let mut sink = [0u8; 65536];
                while c.read(&mut sink)? > 0 {}
            }
            // A burst of connections, dropped at once.
            4 => {
                let held: Vec<TcpStream> = (0..50)
                    .filter_map(|i| connect([s.echo, s.http, s.chat][i % 3]).ok())
                    .collect();
                drop(held);
            }
            // A reset in the middle of a request.
            5 => {
                let mut c = connect(s.http)?;
                c.write_all(
                    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial",
                )?;
                readyloop::sys::socket::set_linger_zero(c.as_fd())?;
            }
            // Garbage to every server.
            6 => {
                for addr in [s.echo, s.http, s.chat] {
                    let mut c = connect(addr)?;
                    c.set_read_timeout(Some(Duration::from_millis(300)))?;
                    let junk: Vec<u8> =
                        (0..1 + rng.below(4096)).map(|_| rng.next() as u8).collect();
                    c.write_all(&junk)?;
                    let mut sink = [0u8; 65536];
                    while c.read(&mut sink)? > 0 {}
                }
            }
            // A half-closed chat client: says hello, shuts its write side.
            _ => {
                let mut c = connect(s.chat)?;
                c.write_all(format!("half{id}\nhello\n").as_bytes())?;
                c.shutdown(Shutdown::Write)?;
                c.set_read_timeout(Some(Duration::from_secs(2)))?;
                let mut sink = [0u8; 65536];
                while c.read(&mut sink)? > 0 {}
            }
        }
        Ok(())
    })();
}

#[derive(Clone, Copy)]
struct Addrs {
    echo: SocketAddr,
    http: SocketAddr,
    chat: SocketAddr,
}

// ---------------------------------------------------------------------------------
// One backend.

struct Run {
    backend: Backend,
    secs: f64,
    points: Vec<Point>,
    baseline_fds: u64,
    end_fds: u64,
    idle_cpu: f64,
    panics: Option<u64>,
    echo_trips: u64,
    http_requests: u64,
    chat_messages: u64,
    half_closes: u64,
    misbehaving: u64,
    errors: u64,
    first_errors: Vec<String>,
    clean_exit: bool,
}

impl Run {
    /// Points after the first fifth of the run (warm-up).
    fn warm(&self) -> &[Point] {
        let cut = self.points.iter().position(|p| p.t >= self.secs / 5.0);
        &self.points[cut.unwrap_or(0)..]
    }

    fn range(&self, f: impl Fn(&Point) -> u64) -> (u64, u64) {
        let w = self.warm();
        (
            w.iter().map(&f).min().unwrap_or(0),
            w.iter().map(&f).max().unwrap_or(0),
        )
    }

    fn ok(&self) -> bool {
        self.errors == 0 && self.end_fds <= self.baseline_fds && self.idle_cpu <= 5.0
    }
}

fn stats_panics(addr: SocketAddr) -> Option<u64> {
    let mut r = BufReader::new(connect(addr).ok()?);
    r.get_mut()
        .write_all(b"GET /api/stats HTTP/1.1\r\nHost: soak\r\n\r\n")
        .ok()?;
    let (_, body) = http_response(&mut r).ok()?;
    serde_json::from_slice::<Value>(&body).ok()?["panics_contained"].as_u64()
}

fn soak_one(backend: Backend, o: &Options) -> io::Result<Run> {
    let (server, addrs) = spawn(backend)?;
    let pid = server.pid();
    thread::sleep(Duration::from_millis(200));
    let baseline_fds = procfs::fd_count(pid);
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut workers = Vec::new();
    // Well-behaved: two of each kind; misbehaving: two threads.
    for w in 0..8u64 {
        let (stop, t) = (stop.clone(), tally.clone());
        workers.push(thread::spawn(move || {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (w + 1));
            let mut n = 0u64;
            while !stop.load(Relaxed) {
                n += 1;
                let id = w * 1_000_000 + n;
                let res = match w {
                    0 | 1 => echo_client(addrs.echo, &stop, &t, &mut rng),
                    2 | 3 => http_client(addrs.http, &stop, &t, &mut rng),
                    4 | 5 => chat_pair(addrs.chat, id, &t),
                    6 => half_close_client(addrs.echo, &t, &mut rng),
                    _ => {
                        misbehave(&addrs, &mut rng, id);
                        t.misbehaving.fetch_add(1, Relaxed);
                        Ok(())
                    }
                };
                if let Err(e) = res {
                    t.error(format!("worker {w}: {e}"));
                }
                thread::sleep(PACE);
            }
        }));
    }
    // The second misbehaving thread.
    {
        let (stop, t) = (stop.clone(), tally.clone());
        workers.push(thread::spawn(move || {
            let mut rng = Rng(0xdead_beef);
            let mut n = 0;
            while !stop.load(Relaxed) {
                n += 1;
                misbehave(&addrs, &mut rng, 9_000_000 + n);
                t.misbehaving.fetch_add(1, Relaxed);
            }
        }));
    }
    let mut points = vec![sample(pid, start)];
    while start.elapsed() < o.duration {
        thread::sleep(o.interval.min(o.duration.saturating_sub(start.elapsed())));
        points.push(sample(pid, start));
        let p = points[points.len() - 1];
        eprint!(
            "\r{backend}: {:>4.0}/{} s  rss {} KiB  fds {}  errors {}   ",
            p.t,
            o.duration.as_secs(),
            p.rss_kb,
            p.fds,
            tally.errors.load(Relaxed)
        );
    }
    eprintln!();
    stop.store(true, Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let secs = start.elapsed().as_secs_f64();
    // Let close timeouts and lingering closes finish (2 s server-side), then idle.
    let settle = Instant::now();
    while procfs::fd_count(pid) > baseline_fds && settle.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(200));
    }
    let end_fds = procfs::fd_count(pid);
    let c0 = procfs::cpu_ns(pid).unwrap_or(0);
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs(3));
    let idle_ns = procfs::cpu_ns(pid).unwrap_or(0).saturating_sub(c0);
    let idle_cpu = idle_ns as f64 / 1e9 / t0.elapsed().as_secs_f64() * 100.0;
    points.push(sample(pid, start));
    let panics = stats_panics(addrs.http);
    let clean_exit = match server.stop() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("soak: {e}");
            false
        }
    };
    let t = Arc::try_unwrap(tally).unwrap_or_default();
    Ok(Run {
        backend,
        secs,
        points,
        baseline_fds,
        end_fds,
        idle_cpu,
        panics,
        echo_trips: t.echo_trips.into_inner(),
        http_requests: t.http_requests.into_inner(),
        chat_messages: t.chat_messages.into_inner(),
        half_closes: t.half_closes.into_inner(),
        misbehaving: t.misbehaving.into_inner(),
        errors: t.errors.into_inner(),
        first_errors: t.first_errors.into_inner().unwrap_or_default(),
        clean_exit,
    })
}

// ---------------------------------------------------------------------------------
// Report.

fn table(runs: &[Run]) -> String {
    let header = [
        "backend",
        "secs",
        "echo trips",
        "http reqs",
        "chat msgs",
        "half-closes",
        "misbehaving",
        "errors",
        "RSS KiB (warm min-max, end)",
        "fds (base, warm max, end)",
        "idle CPU",
        "panics",
    ];
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let (rlo, rhi) = r.range(|p| p.rss_kb);
            let (_, fhi) = r.range(|p| p.fds);
            let rend = r.points.last().map_or(0, |p| p.rss_kb);
            vec![
                r.backend.to_string(),
                format!("{:.0}", r.secs),
                r.echo_trips.to_string(),
                r.http_requests.to_string(),
                r.chat_messages.to_string(),
                r.half_closes.to_string(),
                r.misbehaving.to_string(),
                r.errors.to_string(),
                format!("{rlo}-{rhi}, {rend}"),
                format!("{}, {fhi}, {}", r.baseline_fds, r.end_fds),
                format!("{:.1}%", r.idle_cpu),
                r.panics.map_or("?".into(), |p| p.to_string()),
            ]
        })
        .collect();
    table::markdown(&header, &rows)
}

fn json_run(r: &Run) -> Value {
    json!({
        "backend": r.backend.name(),
        "secs": r.secs,
        "echo_trips": r.echo_trips,
        "http_requests": r.http_requests,
        "chat_messages": r.chat_messages,
        "half_closes": r.half_closes,
        "misbehaving_actions": r.misbehaving,
        "errors": r.errors,
        "first_errors": r.first_errors,
        "baseline_fds": r.baseline_fds,
        "end_fds": r.end_fds,
        "idle_cpu_percent": r.idle_cpu,
        "panics_contained": r.panics,
        "clean_exit": r.clean_exit,
        "samples": r.points.iter().map(|p| json!({
            "t": p.t, "rss_kb": p.rss_kb, "fds": p.fds, "cpu_ns": p.cpu_ns
        })).collect::<Vec<_>>(),
    })
}

fn plots(runs: &[Run], dir: &std::path::Path) {
    // At most 30 points per series, at the same fractions of each run.
    let n = runs
        .iter()
        .map(|r| r.points.len())
        .max()
        .unwrap_or(0)
        .min(30);
    if n < 2 {
        return;
    }
    let labels: Vec<String> = (0..n)
        .map(|i| format!("{:.0}%", i as f64 * 100.0 / (n - 1) as f64))
        .collect();
    let series = |f: fn(&Point) -> f64| -> Vec<(String, Vec<Option<f64>>)> {
        runs.iter()
            .map(|r| {
                let m = r.points.len();
                let ys = (0..n)
                    .map(|i| r.points.get(i * (m - 1) / (n - 1)).map(f))
                    .collect();
                (r.backend.to_string(), ys)
            })
            .collect()
    };
    for (file, title, y, f) in [
        (
            "soak-rss.svg",
            "Soak: server RSS over the run",
            "RSS (MiB)",
            (|p: &Point| p.rss_kb as f64 / 1024.0) as fn(&Point) -> f64,
        ),
        (
            "soak-fds.svg",
            "Soak: server descriptors over the run",
            "open descriptors",
            |p: &Point| p.fds as f64,
        ),
    ] {
        if let Err(e) = plot::line_chart(
            &dir.join(file),
            title,
            "share of the run",
            y,
            &labels,
            &series(f),
        ) {
            eprintln!("soak: plot {file}: {e}");
        }
    }
}

fn soak(o: &Options) -> i32 {
    let mut runs = Vec::new();
    for &b in &o.backends {
        match soak_one(b, o) {
            Ok(r) => {
                if !r.first_errors.is_empty() {
                    eprintln!("{b}: first errors: {:#?}", r.first_errors);
                }
                runs.push(r)
            }
            Err(e) => {
                eprintln!("soak: {b}: {e}");
                return 1;
            }
        }
    }
    let cmd = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect::<Vec<_>>()
        .join(" ");
    let md = format!(
        "# Soak\n\n`cargo bench --bench soak -- {cmd}` on {}; sample every {} s; warm = after the first fifth.\n\n{}\n",
        env::machine_info(),
        o.interval.as_secs(),
        table(&runs)
    );
    println!("{md}");
    let dir = env::out_dir(o.out.as_ref());
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join("soak.md"), &md);
        let js = json!({ "machine": env::machine_info(), "runs": runs.iter().map(json_run).collect::<Vec<_>>() });
        let _ = std::fs::write(
            dir.join("soak.json"),
            serde_json::to_string_pretty(&js).unwrap_or_default(),
        );
        plots(&runs, &dir);
        println!("results in {}", dir.display());
    }
    let bad: Vec<&Run> = runs.iter().filter(|r| !r.ok()).collect();
    for r in &bad {
        eprintln!(
            "soak: {}: {} error(s), descriptors {} -> {}, idle CPU {:.1}%",
            r.backend, r.errors, r.baseline_fds, r.end_fds, r.idle_cpu
        );
    }
    i32::from(!bad.is_empty())
}

// ---------------------------------------------------------------------------------
// Self-test.

fn self_test() -> i32 {
    let mut failed = 0;
    let mut check = |what: &str, ok: bool| {
        println!("{} {what}", if ok { "ok  " } else { "FAIL" });
        failed += usize::from(!ok);
    };
    let parse = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()).collect());
    check(
        "no argument: self-test",
        matches!(parse(&[]), Ok(Mode::SelfTest)),
    );
    check(
        "quick: 25 s on epoll-et",
        matches!(parse(&["--quick", "--bench"]), Ok(Mode::Soak(o)) if o.duration.as_secs() == 25 && o.backends == [Backend::EpollEt]),
    );
    check(
        "default: 600 s on every backend",
        matches!(parse(&["--bench"]), Ok(Mode::Soak(o)) if o.duration.as_secs() == 600 && o.backends.len() == 6 && o.interval.as_secs() == 10),
    );
    check(
        "duration and backends",
        matches!(parse(&["--duration", "60", "--backends", "poll,select"]), Ok(Mode::Soak(o)) if o.duration.as_secs() == 60 && o.backends == [Backend::Poll, Backend::Select]),
    );
    check("too short", parse(&["--duration", "1"]).is_err());
    check("unknown backend", parse(&["--backends", "kqueue"]).is_err());
    check(
        "serve mode",
        matches!(parse(&["--serve", "poll"]), Ok(Mode::Serve(Backend::Poll))),
    );
    check(
        "stat fields",
        procfs::parse_stat_ticks("1 (a b) S 1 1 1 0 -1 0 0 0 0 0 7 5 0 0") == Some(12),
    );
    check(
        "this process has server-CPU time",
        procfs::cpu_ns(std::process::id()).is_some_and(|n| n > 0),
    );
    for bad in common::server::self_check() {
        check(bad, false);
    }
    check(
        "this process has descriptors",
        procfs::fd_count(std::process::id()) > 0,
    );
    check(
        "this process has RSS",
        procfs::status_kb(std::process::id(), "VmRSS").is_some_and(|k| k > 0),
    );
    check("Backend parses", Backend::from_str("epoll-et").is_ok());
    if failed == 0 {
        println!("self-test: all checks passed");
        0
    } else {
        println!("self-test: {failed} check(s) failed");
        1
    }
}
