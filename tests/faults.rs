//! Syscall fault injection on every backend (needs the `fault-injection` feature:
//! `cargo test --features fault-injection --test faults`; a plain `cargo test` skips
//! this file, see `required-features` in Cargo.toml).
//!
//! One reactor thread serves echo, HTTP and the chat's line protocol at once, with a
//! seeded random [`Plan`] installed on it (see `src/sys/fault.rs` for what each fault
//! models and which are realistic on edge-triggered backends). Clients on other
//! threads (not injected) drive it and check the invariants:
//!
//! * echo: every round trip comes back exactly, in order, once; or the connection
//!   ends cleanly (EOF or reset, never a hang) and the client retries;
//! * HTTP: every response is right, or the connection ends cleanly;
//! * chat: a member sees another's messages in order with no duplicate and no gap
//!   (a prefix of what was sent), or its connection ends cleanly;
//! * a connection may end in the middle of a line or a response (it failed after a
//!   short write): the clients take the fragment for the end, not for a line;
//! * afterwards, with the plan still in place: the loop idles (CPU time of the
//!   reactor thread over an idle second stays low), the descriptor count returns to
//!   its baseline, the chat has no member left; and with the plan removed, new
//!   clients of all three servers are served.
//!
//! Seeds: `FAULT_SEEDS` per backend (default 3, from a fixed base so CI replays the
//! same runs), or `FAULT_SEED=n` to replay one seed. A failure prints the seed and the
//! replay command. A long run: `FAULT_SEEDS=200 cargo test --release --features
//! fault-injection --test faults` (about 2 s per seed and backend).
//!
//! The cases of this file run one at a time (a lock), so the process-wide
//! descriptor count belongs to the case that reads it.

#[macro_use]
mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use readyloop::net::Listen;
use readyloop::proto::chat::{ChatConfig, ChatServer};
use readyloop::proto::echo::{Echo, EchoOptions};
use readyloop::proto::http::{HttpConfig, HttpServer, Router};
use readyloop::reactor::Config;
use readyloop::selector::{Backend, Trigger};
use readyloop::sys::fault::{self, Fault, Op, Plan};

use support::*;

static SERIAL: Mutex<()> = Mutex::new(());

/// Client socket timeout: a server that stops answering fails the case.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections a client may go through before it must have succeeded.
const ATTEMPTS: usize = 25;

/// The faults for `backend` (see `src/sys/fault.rs`): everything the kernel could
/// really do; made-up `EAGAIN` and short transfers only where the next wait reports
/// the descriptor again (level-triggered); `EBADF` on the wait only for `select`.
fn plan(backend: Backend, seed: u64) -> Plan {
    let mut random = vec![
        (Op::Wait, Fault::Interrupted, 0.05),
        (Op::Wait, Fault::Spurious, 0.10),
        (Op::Read, Fault::Interrupted, 0.05),
        (Op::Read, Fault::Reset, 0.004),
        (Op::Write, Fault::Interrupted, 0.05),
        (Op::Write, Fault::BrokenPipe, 0.002),
        (Op::Write, Fault::Reset, 0.002),
        (Op::Write, Fault::NoBufs, 0.002),
        (Op::Write, Fault::NoMem, 0.002),
        (Op::Accept, Fault::Interrupted, 0.05),
        (Op::Accept, Fault::Aborted, 0.03),
        (Op::Accept, Fault::ProcessFiles, 0.03),
        (Op::Accept, Fault::SystemFiles, 0.02),
    ];
    let level = backend.trigger() == Trigger::Level;
    if level {
        random.extend([
            (Op::Read, Fault::WouldBlock, 0.10),
            (Op::Read, Fault::Short, 0.20),
            (Op::Write, Fault::WouldBlock, 0.10),
            (Op::Write, Fault::Short, 0.20),
            (Op::Accept, Fault::WouldBlock, 0.10),
        ]);
    }
    if backend == Backend::Select {
        random.push((Op::Wait, Fault::BadFd, 0.02));
    }
    Plan {
        seed,
        random,
        schedule: Vec::new(),
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("FAULT_SEED") {
        return vec![s.parse().expect("FAULT_SEED: a number")];
    }
    let n: u64 = std::env::var("FAULT_SEEDS")
        .ok()
        .map(|s| s.parse().expect("FAULT_SEEDS: a number"))
        .unwrap_or(3);
    (0..n).map(|i| 0x5eed_0000 + i).collect()
}

/// Prints the seed and how to replay it if the case fails.
struct SeedNote(Backend, u64);

impl Drop for SeedNote {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "FAILED on {} with seed {}: replay with FAULT_SEED={} cargo test --features \
                 fault-injection --test faults -- --exact servers_survive_faults::{}",
                self.0,
                self.1,
                self.1,
                self.0.name().replace('-', "_")
            );
        }
    }
}

#[derive(Clone, Copy)]
struct Addrs {
    echo: SocketAddr,
    http: SocketAddr,
    chat: SocketAddr,
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// CPU time (user + system) of the calling thread, from `/proc/thread-self/stat`.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the command name (which ends with the last ')'): utime and stime
    // are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// Whether an I/O error is a clean end of a connection (not a hang).
fn clean(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Clients here give up sooner than support's [`support::connect`]: a fault that hangs
/// a connection shows within [`CLIENT_TIMEOUT`].
fn connect(addr: SocketAddr) -> TcpStream {
    connect_within(addr, CLIENT_TIMEOUT)
}

// ---------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------

/// One echo session: `rounds` round trips of `size` bytes. `Ok(true)`: all came back
/// exactly; `Ok(false)`: the connection ended cleanly first (what came back was a
/// prefix of what was sent). Panics on wrong bytes or a hang.
fn echo_session(addr: SocketAddr, tag: u8, rounds: usize, size: usize) -> bool {
    let mut c = connect(addr);
    for round in 0..rounds {
        let msg: Vec<u8> = (0..size)
            .map(|i| tag.wrapping_add((round * 7 + i) as u8))
            .collect();
        if let Err(e) = c.write_all(&msg) {
            assert!(clean(&e), "echo {tag}: write: {e}");
            return false;
        }
        let mut got = 0;
        let mut buf = vec![0u8; size];
        while got < size {
            match c.read(&mut buf[got..]) {
                Ok(0) => return false,
                Ok(n) => {
                    assert_eq!(
                        &buf[got..got + n],
                        &msg[got..got + n],
                        "echo {tag}: round {round}: wrong bytes at {got}"
                    );
                    got += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    assert!(
                        clean(&e),
                        "echo {tag}: round {round}: {e} after {got} bytes"
                    );
                    return false;
                }
            }
        }
    }
    true
}

/// Reads one whole `\n`-terminated line into `buf`. A connection that ends
/// mid-line is a clean end like any other (`UnexpectedEof`), never a line:
/// `read_until` hands back what it has at EOF without the delimiter, and a server
/// whose connection fails after a short write leaves exactly such a fragment
/// (`"<t1> msg-1"` of `"<t1> msg-12\n"`, `"HTTP/1.1 "` of a status line).
fn whole_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<()> {
    r.read_until(b'\n', buf)?;
    if buf.last() == Some(&b'\n') {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "connection ended mid-line after {:?}",
                String::from_utf8_lossy(buf)
            ),
        ))
    }
}

/// Reads one HTTP response with a Content-Length body; `Err` at a clean end.
fn http_response(r: &mut impl BufRead) -> io::Result<(u16, Vec<u8>)> {
    let mut line = Vec::new();
    whole_line(r, &mut line)?;
    let line = String::from_utf8_lossy(&line);
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut len = 0;
    loop {
        let mut h = Vec::new();
        whole_line(r, &mut h)?;
        let h = String::from_utf8_lossy(&h);
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            if n.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().expect("Content-Length");
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok((status, body))
}

/// One keep-alive HTTP session: `/plaintext` and a `POST /echo`, `n` times.
fn http_session(addr: SocketAddr, tag: usize, n: usize) -> bool {
    let c = connect(addr);
    let mut r = BufReader::new(c);
    for i in 0..n {
        let body: Vec<u8> = (0..3000).map(|j| (tag + i + j) as u8).collect();
        let mut req = b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n".to_vec();
        req.extend(
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .bytes(),
        );
        req.extend(&body);
        if let Err(e) = r.get_mut().write_all(&req) {
            assert!(clean(&e), "http {tag}: write: {e}");
            return false;
        }
        for want in [&b"Hello, World!"[..], &body[..]] {
            match http_response(&mut r) {
                Ok((status, got)) => {
                    assert_eq!(status, 200, "http {tag}: request {i}");
                    assert!(got == want, "http {tag}: request {i}: wrong body");
                }
                Err(e) => {
                    assert!(clean(&e), "http {tag}: request {i}: {e}");
                    return false;
                }
            }
        }
    }
    true
}

/// A line-protocol chat client.
struct ChatClient {
    r: BufReader<TcpStream>,
    nick: String,
    seen: Vec<String>,
    /// The fragment of a line the connection ended in, if it did.
    cut: Vec<u8>,
}

impl ChatClient {
    /// Connects and registers as `nick`; `None` if the connection ended cleanly.
    fn join(addr: SocketAddr, nick: &str) -> Option<ChatClient> {
        let mut c = ChatClient {
            r: BufReader::new(connect(addr)),
            nick: nick.to_string(),
            seen: Vec::new(),
            cut: Vec::new(),
        };
        c.until(|l| l.starts_with("* What is your nickname?"))?;
        c.send(nick)?;
        let hello = format!("* hello, {nick}!");
        c.until(|l| l.starts_with(&hello))?;
        Some(c)
    }

    fn send(&mut self, line: &str) -> Option<()> {
        match self.r.get_mut().write_all(format!("{line}\n").as_bytes()) {
            Ok(()) => Some(()),
            Err(e) => {
                assert!(clean(&e), "chat: write: {e}");
                None
            }
        }
    }

    /// The next line; `None` at a clean end (a fragment of a line the connection
    /// ended in is not a line: see [`whole_line`]); panics on a hang.
    fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match whole_line(&mut self.r, &mut buf) {
            Ok(()) => {
                let l = String::from_utf8_lossy(&buf).trim_end().to_string();
                self.seen.push(l.clone());
                Some(l)
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.cut = buf;
                None
            }
            Err(e) => {
                assert!(
                    clean(&e),
                    "chat {}: read: {e}; port {:?}; lines so far: {:?}; partial {:?}",
                    self.nick,
                    self.r.get_ref().local_addr(),
                    self.seen,
                    String::from_utf8_lossy(&buf)
                );
                None
            }
        }
    }

    fn until(&mut self, pred: impl Fn(&str) -> bool) -> Option<String> {
        loop {
            let l = self.line()?;
            if pred(&l) {
                return Some(l);
            }
        }
    }
}

/// Two members in the lobby; `talker` sends `n` numbered lines; `listener` must see
/// a prefix of them, in order, without duplicates. `true` if it saw them all.
fn chat_session(addr: SocketAddr, tag: usize, n: usize) -> bool {
    let (lnick, tnick) = (format!("l{tag}"), format!("t{tag}"));
    let Some(mut listener) = ChatClient::join(addr, &lnick) else {
        return false;
    };
    let Some(mut talker) = ChatClient::join(addr, &tnick) else {
        return false;
    };
    for i in 0..n {
        if talker.send(&format!("msg-{i}")).is_none() {
            break;
        }
    }
    let prefix = format!("<{tnick}> msg-");
    let gone = format!("* {tnick} has quit");
    let mut next = 0;
    while next < n {
        let Some(l) = listener.until(|l| l.starts_with(&prefix) || l.starts_with(&gone)) else {
            return false;
        };
        if l.starts_with(&gone) {
            // The talker's connection failed first: what came was a prefix.
            return false;
        }
        let i: usize = l[prefix.len()..].parse().unwrap_or_else(|e| {
            panic!(
                "chat {tag}: {l:?}: {e}; lines: {:?}; talker's: {:?}",
                listener.seen, talker.seen
            )
        });
        assert_eq!(
            i, next,
            "chat {tag}: got {l:?}, expected message {next}; lines: {:?}",
            listener.seen
        );
        next += 1;
    }
    let _ = talker.send("/quit");
    let _ = listener.send("/quit");
    true
}

/// Runs `session` until it succeeds, at most [`ATTEMPTS`] times.
fn retry(what: &str, mut session: impl FnMut(usize) -> bool) {
    for attempt in 0..ATTEMPTS {
        if session(attempt) {
            return;
        }
    }
    panic!("{what}: no session got through in {ATTEMPTS} attempts");
}

// ---------------------------------------------------------------------------------
// The case
// ---------------------------------------------------------------------------------

per_backend!(
    fn servers_survive_faults(backend: Backend) {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        for seed in seeds() {
            let _note = SeedNote(backend, seed);
            one_seed(backend, seed);
        }
    }
);

fn one_seed(backend: Backend, seed: u64) {
    let fds_before = open_fds();
    let plan = plan(backend, seed);
    let (lt, a) = spawn_loop(backend, Config::default(), move |r| {
        let echo = r
            .listen_tcp("127.0.0.1:0", Echo::factory(EchoOptions::default()))
            .unwrap()
            .1;
        let http = HttpServer::new(HttpConfig::default(), Router::with_builtins())
            .unwrap()
            .listen(r, "127.0.0.1:0")
            .unwrap()
            .1;
        let chat = ChatServer::new(ChatConfig {
            flood_burst: 100_000,
            flood_rate: 100_000.0,
            ..ChatConfig::default()
        });
        let caddr = chat.listen_lines(r, "127.0.0.1:0").unwrap().1;
        CHAT.with(|c| *c.borrow_mut() = Some(chat));
        fault::install(plan);
        Addrs {
            echo,
            http,
            chat: caddr,
        }
    });
    let baseline = open_fds();
    let start = Instant::now();
    let mut clients = Vec::new();
    for k in 0..3usize {
        clients.push(thread::spawn(move || {
            retry(&format!("echo client {k}"), |att| {
                echo_session(a.echo, (k * 31 + att) as u8, 8, 4096 + 1000 * k)
            })
        }));
        clients.push(thread::spawn(move || {
            retry(&format!("http client {k}"), |att| {
                http_session(a.http, k * 100 + att, 5)
            })
        }));
        clients.push(thread::spawn(move || {
            retry(&format!("chat client {k}"), |att| {
                chat_session(a.chat, k * 100 + att, 20)
            })
        }));
    }
    for c in clients {
        if let Err(p) = c.join() {
            std::panic::resume_unwind(p);
        }
    }
    let report = lt.call(|_| fault::report()).expect("a plan");
    eprintln!(
        "{backend} seed {seed}: clients done in {:?}; {} faults injected: {:?}",
        start.elapsed(),
        report.total(),
        report.injected
    );
    assert!(report.total() > 0, "{backend}: no fault was injected");

    // Clients gone, faults still on: no member left, descriptors back to the
    // baseline, and the loop idles.
    eventually(DEADLINE, "chat members gone", || {
        (lt.call(|_| CHAT.with(|c| c.borrow().as_ref().map_or(0, |c| c.members()))) == 0)
            .then_some(())
    });
    eventually(DEADLINE, "descriptors back to the baseline", || {
        (open_fds() <= baseline).then_some(())
    });
    let cpu0 = lt.call(|_| thread_cpu());
    thread::sleep(Duration::from_secs(1));
    let idle = lt.call(|_| thread_cpu()) - cpu0;
    assert!(
        idle <= Duration::from_millis(100),
        "{backend}: the loop used {idle:?} of CPU in an idle second"
    );

    // Faults off: everyone is served.
    lt.call(|_| fault::uninstall());
    assert!(echo_session(a.echo, 7, 2, 1000), "{backend}: echo after");
    assert!(http_session(a.http, 7, 1), "{backend}: http after");
    assert!(chat_session(a.chat, 999, 3), "{backend}: chat after");
    lt.stop().unwrap();
    eventually(DEADLINE, "descriptors back to where they were", || {
        (open_fds() <= fds_before).then_some(())
    });
}

per_backend!(
    #[backends(select, poll, epoll, polling)]
    /// Regression (CI: "chat 100: got \"<t100> msg-1\", expected message 10" on poll):
    /// a member's connection that fails after a short write leaves the client the
    /// first bytes of a line, then EOF. The server does what TCP allows; the client
    /// took the fragment `"<t0> msg-1"` of `"<t0> msg-10\n"` for a whole line, a
    /// duplicate of message 1. Deterministic: the plan (installed once both members are
    /// in and the first ten messages are through) cuts the next write, the listener's
    /// copy of `msg-10`, after 10 of its 12 bytes (seed 1's short length), and resets
    /// the write that would send the rest. Level-triggered backends only: on the others
    /// a made-up short write is not realistic (see `src/sys/fault.rs`).
    fn chat_client_takes_a_cut_line_for_the_end(backend: Backend) {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(backend.trigger(), Trigger::Level, "{backend}");
        let (lt, addr) = spawn_loop(backend, Config::default(), |r| {
            let chat = ChatServer::new(ChatConfig::default());
            let addr = chat.listen_lines(r, "127.0.0.1:0").unwrap().1;
            CHAT.with(|c| *c.borrow_mut() = Some(chat));
            addr
        });
        let mut listener = ChatClient::join(addr, "l0").expect("l0 joins");
        let mut talker = ChatClient::join(addr, "t0").expect("t0 joins");
        listener
            .until(|l| l.starts_with("* t0 has joined"))
            .expect("the join notice");
        for i in 0..10 {
            talker.send(&format!("msg-{i}")).expect("talker sends");
            let l = listener.line().expect("a message");
            assert_eq!(l, format!("<t0> msg-{i}"), "{backend}");
        }
        lt.call(|_| {
            fault::install(Plan {
                seed: 1,
                random: Vec::new(),
                schedule: vec![(Op::Write, 0, Fault::Short), (Op::Write, 1, Fault::Reset)],
            })
        });
        talker.send("msg-10").expect("talker sends");
        assert_eq!(
            listener.line(),
            None,
            "{backend}: a cut line is the end of the connection, not a line"
        );
        assert_eq!(
            String::from_utf8_lossy(&listener.cut),
            "<t0> msg-1",
            "{backend}: what came of \"<t0> msg-10\\n\""
        );
        let report = lt.call(|_| fault::uninstall()).expect("a plan");
        assert_eq!(
            report.injected,
            vec![(Op::Write, Fault::Short, 1), (Op::Write, Fault::Reset, 1)],
            "{backend}"
        );
        assert!(
            talker.until(|l| l.starts_with("* l0 has quit")).is_some(),
            "{backend}: the talker hears the listener go"
        );
        lt.stop().unwrap();
    }
);

/// The HTTP client reads a response cut anywhere as a clean end, never as a bad
/// status line or header (same cause as above).
#[test]
fn http_client_takes_a_cut_response_for_the_end() {
    let whole = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!";
    for cut in 0..whole.len() {
        let mut r = io::Cursor::new(&whole[..cut]);
        match http_response(&mut r) {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}"),
            Ok(x) => panic!("cut at {cut}: {x:?}"),
        }
    }
    let mut r = io::Cursor::new(&whole[..]);
    assert_eq!(
        http_response(&mut r).unwrap(),
        (200, b"Hello, World!".to_vec())
    );
}

thread_local! {
    static CHAT: std::cell::RefCell<Option<ChatServer>> = const { std::cell::RefCell::new(None) };
}
