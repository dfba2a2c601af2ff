//! The chat server end to end, on every backend: line-protocol (`nc`-style) clients,
//! raw IRC sessions, real IRC clients (Python's `irc` package and `ii`), the classroom
//! UDP chat, misbehaving clients (flooders, slow readers, vanishing clients, bad
//! bytes), and the `chat_server` example as a child process.
//!
//! Each case is written inside `per_backend!` (from `tests/support`), which adds one
//! test per backend (`many_clients_many_rooms::epoll_et`, ...). Servers run in-process on loopback port 0
//! (or the binary, given `127.0.0.1:0` for all three front ends); every socket read has
//! a timeout and every wait a deadline. A missing real IRC client skips its case with a
//! note, except under `CI=true`, where it fails.

#[macro_use]
mod support;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use readyloop::net::{Conn, Listen, PeerAddr, Protocol};
use readyloop::proto::chat::{ChatConfig, ChatServer};
use readyloop::reactor::Config;
use readyloop::selector::Backend;

use support::*;

// ---------------------------------------------------------------------------------
// An in-process server
// ---------------------------------------------------------------------------------

thread_local! {
    /// The chat server of the reactor thread this runs on (each case has its own).
    static CHAT: RefCell<Option<ChatServer>> = const { RefCell::new(None) };
}

#[derive(Clone, Copy, Debug)]
struct Addrs {
    line: SocketAddr,
    irc: SocketAddr,
    udp: SocketAddr,
}

/// A relaxed configuration for cases that are not about limits.
fn relaxed() -> ChatConfig {
    ChatConfig {
        flood_burst: 100_000,
        flood_rate: 100_000.0,
        ..ChatConfig::default()
    }
}

fn start(backend: Backend, cfg: ChatConfig) -> (LoopThread, Addrs) {
    spawn_loop(backend, Config::default(), move |r| {
        let chat = ChatServer::new(cfg);
        let line = chat.listen_lines(r, "127.0.0.1:0").unwrap().1;
        let irc = chat.listen_irc(r, "127.0.0.1:0").unwrap().1;
        let udp = chat.bind_udp(r, "127.0.0.1:0").unwrap().1;
        CHAT.with(|c| *c.borrow_mut() = Some(chat));
        Addrs { line, irc, udp }
    })
}

/// How many members the chat has (asked on the loop).
fn members(lt: &LoopThread) -> usize {
    lt.call(|_| CHAT.with(|c| c.borrow().as_ref().map_or(0, |c| c.members())))
}

// ---------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------

/// A line-oriented TCP client (the line protocol or raw IRC).
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
    name: String,
    /// Lines read so far (for failure messages).
    seen: Vec<String>,
}

impl Client {
    fn connect(addr: SocketAddr, name: &str) -> Client {
        let s = connect(addr);
        Client {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
            name: name.to_string(),
            seen: Vec::new(),
        }
    }

    fn send(&mut self, line: &str) {
        self.w
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("{}: send {line:?}: {e}", self.name));
    }

    /// The next line (`None` at EOF or on a read error/timeout).
    fn next_line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                let l = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\r', '\n'])
                    .to_string();
                self.seen.push(l.clone());
                if self.seen.len() > 200 {
                    self.seen.remove(0);
                }
                Some(l)
            }
        }
    }

    /// Reads lines until one satisfies `pred`; returns it. Panics at EOF or timeout.
    fn expect(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            match self.next_line() {
                Some(l) if pred(&l) => return l,
                Some(_) if start.elapsed() < DEADLINE => {}
                _ => panic!(
                    "{}: expected {what}; last lines:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn expect_line(&mut self, exact: &str) {
        self.expect(&format!("{exact:?}"), |l| l == exact);
    }

    fn expect_contains(&mut self, part: &str) -> String {
        self.expect(&format!("a line containing {part:?}"), |l| l.contains(part))
    }

    /// Nothing matching `pred` arrives within `quiet`.
    fn expect_none(&mut self, quiet: Duration, what: &str, pred: impl Fn(&str) -> bool) {
        self.w.set_read_timeout(Some(quiet)).unwrap();
        while let Some(l) = self.next_line() {
            assert!(!pred(&l), "{}: unexpected {what}: {l:?}", self.name);
        }
        self.w.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    }

    /// Reads until EOF or a reset; panics if it takes longer than the deadline.
    fn expect_closed(&mut self) {
        let start = Instant::now();
        loop {
            let mut buf = [0u8; 65536];
            match self.r.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if is_timeout(&e) => panic!("{}: not closed", self.name),
                Err(_) => return,
            }
            assert!(start.elapsed() < DEADLINE, "{}: not closed", self.name);
        }
    }
}

/// A registered line-protocol user, in the lobby.
fn line_user(addr: SocketAddr, nick: &str) -> Client {
    let mut c = Client::connect(addr, nick);
    c.expect_line("* What is your nickname?");
    c.send(nick);
    c.expect_contains(&format!("* hello, {nick}!"));
    c.expect(&format!("{nick} in the lobby"), |l| {
        l.starts_with("* you are in lobby (")
    });
    c
}

/// A registered raw IRC user who joined `#lobby` (up to the end of the names list).
fn irc_user(addr: SocketAddr, nick: &str) -> Client {
    let mut c = Client::connect(addr, nick);
    c.send(&format!("NICK {nick}"));
    c.send(&format!("USER {nick} 0 * :Test {nick}"));
    c.expect_contains(&format!(" 001 {nick} :Welcome"));
    c.expect_contains(&format!(" 376 {nick} :End of /MOTD command."));
    c.send("JOIN #lobby");
    c.expect_contains(&format!(":{nick}!~{nick}@127.0.0.1 JOIN #lobby"));
    c.expect_contains(&format!(" 366 {nick} #lobby :End of /NAMES list."));
    c
}

/// A classroom UDP client.
struct UdpUser {
    s: UdpSocket,
    server: SocketAddr,
    name: String,
}

impl UdpUser {
    fn new(server: SocketAddr, name: &str) -> UdpUser {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        UdpUser {
            s,
            server,
            name: name.to_string(),
        }
    }

    fn send(&self, text: &str) {
        self.s.send_to(text.as_bytes(), self.server).unwrap();
    }

    /// Datagrams until one satisfies `pred` (bounded).
    fn expect(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        let mut seen = Vec::new();
        let mut buf = [0u8; 65536];
        while start.elapsed() < DEADLINE {
            if let Ok((n, _)) = self.s.recv_from(&mut buf) {
                let d = String::from_utf8_lossy(&buf[..n]).into_owned();
                if pred(&d) {
                    return d;
                }
                seen.push(d);
            }
        }
        panic!("{}: expected {what}; got {seen:?}", self.name)
    }

    fn expect_dgram(&self, exact: &str) {
        self.expect(&format!("{exact:?}"), |d| d == exact);
    }

    /// Joins as `name` and waits for the welcome.
    fn join(server: SocketAddr, name: &str) -> UdpUser {
        let u = UdpUser::new(server, name);
        u.send(&format!("username@{name}"));
        u.expect_dgram(&format!(
            "Welcome {name}! You are in lobby; send /leave to leave."
        ));
        u
    }
}

// ---------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------

per_backend!(
    /// 36 clients in 3 rooms (and 4 stay in the lobby), each sending 40 messages at once:
    /// every member of a room gets every other member's messages, in each sender's
    /// order, and nothing from other rooms.
    fn many_clients_many_rooms(backend: Backend) {
        const ROOMS: usize = 3;
        const PER_ROOM: usize = 12;
        const MSGS: usize = 40;
        let (lt, a) = start(backend, relaxed());
        let n = ROOMS * PER_ROOM;
        let barrier = Arc::new(Barrier::new(n));
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let barrier = barrier.clone();
                thread::spawn(move || {
                    let nick = format!("u{i}");
                    let room = format!("room{}", i % ROOMS);
                    let mut c = line_user(a.line, &nick);
                    c.send(&format!("/join {room}"));
                    c.expect(&format!("{nick} in {room}"), |l| {
                        l.starts_with(&format!("* you are in {room} ("))
                    });
                    barrier.wait();
                    let mut batch = String::new();
                    for k in 0..MSGS {
                        batch.push_str(&format!("msg {nick} {k}\n"));
                    }
                    c.w.write_all(batch.as_bytes()).unwrap();
                    // Expect MSGS from every other member of the room, in order per sender.
                    let mut next: HashMap<String, usize> = (0..n)
                        .filter(|j| j % ROOMS == i % ROOMS && *j != i)
                        .map(|j| (format!("u{j}"), 0))
                        .collect();
                    let mut left = next.len() * MSGS;
                    while left > 0 {
                        let l = c.next_line().unwrap_or_else(|| {
                            panic!("{nick}: EOF/timeout with {left} messages missing: {next:?}")
                        });
                        if l.starts_with("* ") {
                            continue;
                        }
                        // <uJ> msg uJ K
                        let (from, rest) = l
                            .strip_prefix('<')
                            .and_then(|r| r.split_once("> "))
                            .unwrap_or_else(|| panic!("{nick}: odd line {l:?}"));
                        let exp = next.get_mut(from).unwrap_or_else(|| {
                            panic!("{nick} in {room}: message from {from}: {l}")
                        });
                        assert_eq!(
                            rest,
                            format!("msg {from} {exp}"),
                            "{nick}: order from {from}"
                        );
                        *exp += 1;
                        left -= 1;
                    }
                    assert!(next.values().all(|&k| k == MSGS));
                    c
                })
            })
            .collect();
        let clients: Vec<Client> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(members(&lt), n, "{backend}");
        drop(clients);
        eventually(DEADLINE, "everyone gone", || {
            (members(&lt) == 0).then_some(())
        });
        lt.stop().unwrap();
    }

    /// Bursts beyond the token bucket are dropped with one notice; a flooder that keeps
    /// going is disconnected and its quit announced.
    fn flood_limit(backend: Backend) {
        let cfg = ChatConfig {
            flood_burst: 5,
            flood_rate: 1.0,
            flood_disconnect: 40,
            ..ChatConfig::default()
        };
        let (lt, a) = start(backend, cfg);
        let mut listener = line_user(a.line, "listener");
        let mut flooder = line_user(a.line, "flooder");
        // Registration took one token.
        let burst: String = (0..20).map(|k| format!("f{k}\n")).collect();
        flooder.w.write_all(burst.as_bytes()).unwrap();
        flooder.expect_contains("* flood limit: at most 5 lines at once");
        listener.expect_line("<flooder> f0");
        listener.expect_line("<flooder> f3");
        // f4 only if a token came back in time; nothing beyond f5.
        listener.expect_none(Duration::from_millis(300), "flood beyond the bucket", |l| {
            l.starts_with("<flooder> f") && l[11..].parse::<usize>().is_ok_and(|k| k > 5)
        });
        // Keep going: disconnected.
        let more: String = (0..100).map(|k| format!("g{k}\n")).collect();
        let _ = flooder.w.write_all(more.as_bytes());
        flooder.expect_line("* excess flood; goodbye");
        flooder.expect_closed();
        listener.expect_line("* flooder has quit (Excess flood)");
        eventually(DEADLINE, "flooder removed", || {
            (members(&lt) == 1).then_some(())
        });
        // IRC: a NOTICE; UDP: one error datagram per episode.
        let mut ircf = irc_user(a.irc, "ircflood");
        let burst: String = (0..10)
            .map(|k| format!("PRIVMSG #lobby :i{k}\r\n"))
            .collect();
        ircf.w.write_all(burst.as_bytes()).unwrap();
        ircf.expect_contains("NOTICE ircflood :*** flood limit: at most 5 lines at once");
        listener.expect_line("<ircflood> i0");
        let u = UdpUser::join(a.udp, "udpflood");
        for k in 0..10 {
            u.send(&format!("u{k}"));
        }
        u.expect_dgram("error: flood limit (at most 5 at once, 1 per second); message dropped");
        listener.expect_line("<udpflood> u0");
        listener.expect_line("<udpflood> u4");
        listener.expect_none(Duration::from_millis(200), "UDP flood relayed", |l| {
            l == "<udpflood> u7" || l == "<udpflood> u9"
        });
        lt.stop().unwrap();
    }

    /// Taken and malformed nicknames on every front end.
    fn nick_collisions(backend: Backend) {
        let (lt, a) = start(backend, relaxed());
        let mut alice = line_user(a.line, "Alice");
        let mut c = Client::connect(a.line, "second");
        c.expect_line("* What is your nickname?");
        c.send("aLiCe");
        c.expect_line("* nickname aLiCe is taken");
        c.expect_line("* What is your nickname?");
        c.send("9lives");
        c.expect_contains("* invalid nickname 9lives");
        c.expect_line("* What is your nickname?");
        // Commands before a nickname are not nicknames.
        c.send("/who");
        c.expect_line("* choose a nickname first (or /quit)");
        c.expect_line("* What is your nickname?");
        c.send("/nick bob");
        c.expect_contains("* hello, bob!");
        c.send("/nick ALICE");
        c.expect_line("* nickname ALICE is taken");
        c.send("/nick bobby");
        c.expect_line("* bob is now known as bobby");
        alice.expect_line("* bob is now known as bobby");
        let mut q = Client::connect(a.line, "quitter");
        q.expect_line("* What is your nickname?");
        q.send("/quit");
        q.expect_line("* bye");
        q.expect_closed();
        // IRC: 433 before registration, then another nickname works.
        let mut i = Client::connect(a.irc, "irc");
        i.send("NICK alice");
        i.expect_contains(" 433 * alice :Nickname is already in use");
        i.send("NICK bobby");
        i.expect_contains(" 433 * bobby :Nickname is already in use");
        i.send("NICK bad!nick");
        i.expect_contains(" 432 * bad!nick :Erroneous nickname");
        i.send("NICK carol");
        i.send("USER carol 0 * :Carol");
        i.expect_contains(" 001 carol ");
        i.send("NICK Alice");
        i.expect_contains(" 433 carol Alice :Nickname is already in use");
        // UDP: taken name gets an error datagram.
        let u = UdpUser::new(a.udp, "udp");
        u.send("username@CAROL");
        u.expect("taken error", |d| d == "error: nickname CAROL is taken");
        u.send("username@dave");
        u.expect_dgram("Welcome dave! You are in lobby; send /leave to leave.");
        // Case-only change of one's own nickname is allowed.
        alice.send("/nick alice");
        alice.expect_line("* Alice is now known as alice");
        lt.stop().unwrap();
    }

    /// The last N messages of a room are replayed on join (line, IRC and UDP).
    fn history_replay(backend: Backend) {
        let mut cfg = relaxed();
        cfg.limits.history = 3;
        let (lt, a) = start(backend, cfg);
        let mut a1 = line_user(a.line, "a1");
        for k in 0..5 {
            a1.send(&format!("old {k}"));
        }
        a1.send("/me waves");
        a1.send("/who");
        a1.expect_line("* in lobby (1): a1");
        let mut b = Client::connect(a.line, "b");
        b.send("b");
        b.expect_line("* you are in lobby (2 here: a1, b)");
        b.expect_line("* last 3 messages in lobby:");
        b.expect_line("<a1> old 3");
        b.expect_line("<a1> old 4");
        b.expect_line("* a1 waves");
        b.expect_line("* end of history");
        let mut i = irc_user(a.irc, "ircy");
        i.expect_contains("NOTICE #lobby :*** last 3 messages in #lobby:");
        i.expect_line(":a1!~line@127.0.0.1 PRIVMSG #lobby :old 3");
        i.expect_line(":a1!~line@127.0.0.1 PRIVMSG #lobby :old 4");
        i.expect_line(":a1!~line@127.0.0.1 PRIVMSG #lobby :\x01ACTION waves\x01");
        i.expect_contains("NOTICE #lobby :*** end of history");
        let u = UdpUser::new(a.udp, "u");
        u.send("username@udpy");
        u.expect_dgram("a1:old 3");
        u.expect_dgram("a1:old 4");
        u.expect_dgram("* a1 waves");
        // Rooms other than the lobby: history too, and forgotten when empty.
        a1.send("/join rust");
        a1.expect_contains("* you are in rust (1 here: @a1)");
        a1.send("in rust");
        b.send("/join RUST");
        b.expect_line("<a1> in rust");
        lt.stop().unwrap();
    }

    /// A client that stops reading is cut off once its output passes the limit (logged),
    /// its quit is announced, and the others keep getting everything; the server's memory
    /// stays flat. Runs against the binary (to read its RSS and log).
    fn slow_reader_is_cut_off(backend: Backend) {
        let mut srv = ChatProcess::start(
            backend,
            &[
                "--max-output",
                "262144",
                "--flood-burst",
                "1000000",
                "--flood-rate",
                "1000000",
            ],
        );
        let mut fast = line_user(srv.line, "fast");
        let mut slow = line_user(srv.line, "slow");
        let mut talker = line_user(srv.line, "talker");
        let before = srv.status_kib("VmRSS");
        // The fast reader checks every line in order on its own thread.
        const LINE: usize = 2000;
        let (tx, rx) = mpsc::channel::<usize>();
        let progress = Arc::new(AtomicUsize::new(0));
        let seen = progress.clone();
        let reader = thread::spawn(move || {
            let mut next = 0usize;
            let mut cut = false;
            let pad = "x".repeat(LINE);
            loop {
                let Some(l) = fast.next_line() else {
                    panic!("fast: EOF/timeout at message {next}")
                };
                if l == "* slow has quit (Connection lost: output buffer limit exceeded)" {
                    cut = true;
                    let _ = tx.send(next);
                    continue;
                }
                if l == "<talker> after" {
                    assert!(cut, "the quit came first");
                    return (next, fast);
                }
                if l.starts_with("* ") {
                    continue;
                }
                assert_eq!(l, format!("<talker> {next} {pad}"), "fast: message {next}");
                next += 1;
                seen.store(next, Ordering::Relaxed);
            }
        });
        let pad = "x".repeat(LINE);
        let mut sent = 0usize;
        let mut cut = None;
        let cut_at = loop {
            let mut batch = String::new();
            for _ in 0..50 {
                batch.push_str(&format!("{sent} {pad}\n"));
                sent += 1;
            }
            talker.w.write_all(batch.as_bytes()).unwrap();
            // Stay at most a window ahead of the fast reader (well under the output
            // limit), so only the reader that stopped can pass it.
            let start = Instant::now();
            while cut.is_none() && progress.load(Ordering::Relaxed) + 64 < sent {
                assert!(
                    start.elapsed() < DEADLINE,
                    "{backend}: the fast reader stalled"
                );
                cut = rx.try_recv().ok();
                thread::sleep(Duration::from_millis(1));
            }
            if let Some(n) = cut.or_else(|| rx.try_recv().ok()) {
                break n;
            }
            assert!(sent < 20_000, "{backend}: slow reader never cut off");
        };
        talker.send("after");
        let (got, mut fast) = reader.join().unwrap();
        assert_eq!(got, sent, "{backend}: the fast reader got every message");
        let peak = srv.status_kib("VmHWM");
        eprintln!(
        "{backend}: slow reader cut off after ~{cut_at} messages of {LINE} bytes; RSS {before} KiB before, peak {peak} KiB"
    );
        assert!(
            peak.saturating_sub(before) < 48 << 10,
            "{backend}: server memory grew from {before} KiB to {peak} KiB"
        );
        // The slow client reads what the kernel held, then EOF/reset.
        slow.expect_closed();
        fast.send("still here");
        talker.expect_line("<fast> still here");
        eventually(DEADLINE, "the cut is logged", || {
            let log = srv.stderr();
            (log.contains("output buffer") && log.contains("limit")).then_some(())
        });
        srv.terminate_and_wait();
    }

    /// A reader that keeps up is not cut off when one read of another client's input
    /// queues more than `max_output` for it: the limit is about output the kernel will
    /// not take (the peer stopped reading), so the server offers the backlog to the
    /// socket before judging.
    fn burst_over_output_limit_is_not_a_slow_reader(backend: Backend) {
        let mut cfg = relaxed();
        cfg.listen.stream.max_output = Some(16 * 1024);
        let (lt, a) = start(backend, cfg);
        let mut fast = line_user(a.line, "fast");
        let mut talker = line_user(a.line, "talker");
        fast.expect_line("* talker has joined lobby");
        // 20 lines of 2000 bytes in one write: about 40 KB for `fast` from one read,
        // while its socket buffer is empty.
        let pad = "x".repeat(2000);
        let batch: String = (0..20).map(|i| format!("{i} {pad}\n")).collect();
        talker.w.write_all(batch.as_bytes()).unwrap();
        talker.send("after");
        for i in 0..20 {
            fast.expect_line(&format!("<talker> {i} {pad}"));
        }
        fast.expect_line("<talker> after");
        fast.send("still here");
        talker.expect_line("<fast> still here");
        lt.stop().unwrap();
    }

    /// The classroom UDP protocol: error for strangers, join, relay to every front end,
    /// leave, and expiry of silent members.
    fn udp_join_relay_error(backend: Backend) {
        let mut cfg = relaxed();
        cfg.udp_idle = Duration::from_secs(1);
        let (lt, a) = start(backend, cfg);
        let mut nc = line_user(a.line, "nc");
        let stranger = UdpUser::new(a.udp, "stranger");
        stranger.send("hello?");
        stranger.expect_dgram("error: not joined; send username@NAME to join");
        let u = UdpUser::join(a.udp, "uma");
        u.expect_dgram("* you are in lobby (2 here: nc, uma)");
        nc.expect_line("* uma has joined lobby");
        u.send("hi from udp\n");
        u.expect_dgram("uma:hi from udp");
        nc.expect_line("<uma> hi from udp");
        nc.send("hi uma");
        u.expect_dgram("nc:hi uma");
        u.send("/who");
        u.expect_dgram("* in lobby (2): nc, uma");
        u.send("username@uma");
        u.expect_dgram("Welcome uma! You are in lobby; send /leave to leave.");
        u.send("/leave");
        u.expect_dgram("Bye uma");
        nc.expect_line("* uma has quit (Left the chat)");
        u.send("still here?");
        u.expect_dgram("error: not joined; send username@NAME to join");
        // A silent member expires; one that keeps talking does not.
        let v = UdpUser::join(a.udp, "vic");
        nc.expect_line("* vic has joined lobby");
        v.expect("expiry notice", |d| d == "Bye vic (timed out)");
        nc.expect_contains("* vic has quit (Timed out after 1s of silence)");
        v.send("late");
        v.expect_dgram("error: not joined; send username@NAME to join");
        assert_eq!(members(&lt), 1, "{backend}");
        lt.stop().unwrap();
    }

    /// A datagram longer than the line limit is refused with an error datagram, like an
    /// overlong line on the other front ends; one exactly at the limit is relayed.
    fn udp_overlong_datagram(backend: Backend) {
        let (lt, a) = start(backend, relaxed());
        let mut nc = line_user(a.line, "nc");
        let u = UdpUser::join(a.udp, "uma");
        nc.expect_line("* uma has joined lobby");
        let max = ChatConfig::default().max_line;
        u.send(&"x".repeat(max + 1));
        u.expect_dgram(&format!(
            "error: message too long (at most {max} bytes); dropped"
        ));
        let at_limit = "y".repeat(max);
        u.send(&at_limit);
        // The next message nc sees is the one at the limit, not the overlong one.
        let next = nc.expect("uma's next message", |l| l.starts_with("<uma> "));
        assert_eq!(next, format!("<uma> {at_limit}"), "{backend}");
        lt.stop().unwrap();
    }

    /// A UDP member's `username@NAME` (a nickname change, announced to the room) counts
    /// against the flood limit like any other datagram.
    fn udp_renames_are_flood_limited(backend: Backend) {
        let (lt, a) = start(backend, ChatConfig::default());
        let burst = ChatConfig::default().flood_burst as usize;
        let mut nc = line_user(a.line, "nc");
        let u = UdpUser::join(a.udp, "r0");
        nc.expect_line("* r0 has joined lobby");
        for i in 1..=burst * 5 {
            u.send(&format!("username@r{}", i % 2));
        }
        u.expect("the flood notice", |d| d.starts_with("error: flood limit"));
        // Leave once the bucket has a token again (a retry, not a timing assertion).
        let mut buf = [0u8; 65536];
        let left = (0..100).any(|_| {
            u.send("/leave");
            matches!(u.s.recv_from(&mut buf), Ok((n, _)) if buf[..n].starts_with(b"Bye "))
        });
        assert!(left, "{backend}: /leave never accepted");
        let mut renames = 0;
        loop {
            let l = nc.expect("a rename or the quit", |l| {
                l.contains(" is now known as ") || l.contains(" has quit ")
            });
            if l.contains(" has quit ") {
                break;
            }
            renames += 1;
        }
        assert!(
            renames <= burst,
            "{backend}: {renames} renames announced for a burst of {burst}"
        );
        lt.stop().unwrap();
    }

    /// Leaving and joining again from one address does not reset the flood limit (each
    /// join and leave is announced to the whole room).
    fn udp_join_leave_cycling_is_flood_limited(backend: Backend) {
        let (lt, a) = start(backend, ChatConfig::default());
        let burst = ChatConfig::default().flood_burst as usize;
        let mut nc = line_user(a.line, "nc");
        let u = UdpUser::join(a.udp, "cyc");
        nc.expect_line("* cyc has joined lobby");
        for _ in 0..burst * 3 {
            u.send("/leave");
            u.send("username@cyc");
        }
        u.expect("the join refusal", |d| {
            d.starts_with("error: joining too often") || d.starts_with("error: flood limit")
        });
        // Count the room's join notices until the marker from another user.
        let marker = UdpUser::join(a.udp, "marker");
        let mut joins = 0;
        loop {
            let l = nc.expect("a notice", |l| l.contains(" has joined lobby"));
            if l.contains("marker") {
                break;
            }
            joins += 1;
        }
        assert!(
            joins <= burst,
            "{backend}: {joins} join notices for a burst of {burst}"
        );
        drop(marker);
        lt.stop().unwrap();
    }

    /// A nc user, an IRC user and a UDP user in the same room see each other; rooms map
    /// between `name` and `#name`.
    fn cross_front_end(backend: Backend) {
        let (lt, a) = start(backend, relaxed());
        let mut nc = line_user(a.line, "ncu");
        let mut irc = irc_user(a.irc, "ircu");
        nc.expect_line("* ircu has joined lobby");
        let u = UdpUser::join(a.udp, "udpu");
        nc.expect_line("* udpu has joined lobby");
        irc.expect_line(":udpu!udp@127.0.0.1 JOIN #lobby");
        nc.send("from nc");
        irc.expect_line(":ncu!~line@127.0.0.1 PRIVMSG #lobby :from nc");
        u.expect_dgram("ncu:from nc");
        irc.send("PRIVMSG #lobby :from irc");
        nc.expect_line("<ircu> from irc");
        u.expect_dgram("ircu:from irc");
        irc.send("PRIVMSG #LOBBY :\x01ACTION dances\x01");
        nc.expect_line("* ircu dances");
        u.send("from udp");
        nc.expect_line("<udpu> from udp");
        irc.expect_line(":udpu!udp@127.0.0.1 PRIVMSG #lobby :from udp");
        nc.send("/me waves");
        irc.expect_line(":ncu!~line@127.0.0.1 PRIVMSG #lobby :\x01ACTION waves\x01");
        // Private messages both ways.
        nc.send("/msg IRCU psst");
        irc.expect_line(":ncu!~line@127.0.0.1 PRIVMSG ircu :psst");
        nc.expect_line("-> *IRCU* psst");
        irc.send("PRIVMSG ncu :back");
        nc.expect_line("*ircu* back");
        // #Rust on IRC is rust on the line protocol.
        irc.send("JOIN #Rust");
        irc.expect_line(":ircu!~ircu@127.0.0.1 JOIN #Rust");
        nc.send("/join rust");
        nc.expect_line("* you are in Rust (2 here: @ircu, ncu)");
        irc.expect_line(":ncu!~line@127.0.0.1 JOIN #Rust");
        irc.send("PRIVMSG #rust :rusty");
        nc.expect_line("<ircu> rusty");
        u.expect("nothing from #rust", |d| {
            d == "* ncu has left lobby (joined rust)"
        });
        nc.send("/part");
        irc.expect_line(":ncu!~line@127.0.0.1 PART #Rust :joined lobby");
        nc.expect_line("* you are in lobby (3 here: ircu, udpu, ncu)");
        lt.stop().unwrap();
    }

    /// The IRC command set over a raw socket: registration, errors, queries, QUIT.
    fn irc_commands(backend: Backend) {
        let (lt, a) = start(backend, relaxed());
        let mut nc = line_user(a.line, "watcher");
        let mut c = Client::connect(a.irc, "raw");
        c.send("JOIN #lobby");
        c.expect_contains(" 451 * :You have not registered");
        c.send("CAP LS 302");
        c.expect_contains(" CAP * LS :");
        c.send("CAP END");
        c.send("PING :early");
        c.expect_contains(" PONG readyloop.chat :early");
        c.send("USER raw");
        c.expect_contains(" 461 * USER :Not enough parameters");
        c.send("NICK raw");
        c.send("USER raw 0 * :Raw Client");
        for code in ["001", "002", "003", "004", "005", "375", "372", "376"] {
            c.expect_contains(&format!(" {code} raw "));
        }
        c.send("JOIN #lobby");
        c.expect_line(":raw!~raw@127.0.0.1 JOIN #lobby");
        c.expect_contains(" 353 raw = #lobby :watcher raw");
        c.expect_contains(" 366 raw #lobby :End of /NAMES list.");
        nc.expect_line("* raw has joined lobby");
        c.send("USER again 0 * :x");
        c.expect_contains(" 462 raw :You may not reregister");
        c.send("PING :tok");
        c.expect_line(":readyloop.chat PONG readyloop.chat :tok");
        c.send("FROBNICATE x");
        c.expect_contains(" 421 raw FROBNICATE :Unknown command");
        c.send("PRIVMSG nobody :hi");
        c.expect_contains(" 401 raw nobody :No such nick/channel");
        c.send("PRIVMSG #nowhere :hi");
        c.expect_contains(" 403 raw #nowhere :No such channel");
        c.send("PRIVMSG");
        c.expect_contains(" 411 raw :No recipient given (PRIVMSG)");
        c.send("PRIVMSG #lobby");
        c.expect_contains(" 412 raw :No text to send");
        c.send("NOTICE nobody :no reply to notices");
        c.send("JOIN");
        c.expect_contains(" 461 raw JOIN :Not enough parameters");
        c.send("JOIN nohash");
        c.expect_contains(" 403 raw nohash :No such channel");
        c.send("PART #other");
        c.expect_contains(" 403 raw #other :No such channel");
        c.send("JOIN #other,#third");
        c.expect_line(":raw!~raw@127.0.0.1 JOIN #other");
        c.expect_line(":raw!~raw@127.0.0.1 JOIN #third");
        c.send("PART #third :bye third");
        c.expect_line(":raw!~raw@127.0.0.1 PART #third :bye third");
        c.send("PART #lobby");
        c.expect_line(":raw!~raw@127.0.0.1 PART #lobby");
        nc.expect_line("* raw has left lobby");
        c.send("PRIVMSG #lobby :not a member");
        c.expect_contains(" 404 raw #lobby :Cannot send to channel");
        c.send("PART #lobby");
        c.expect_contains(" 442 raw #lobby :You're not on that channel");
        c.send("JOIN #lobby");
        c.expect_line(":raw!~raw@127.0.0.1 JOIN #lobby");
        c.send("TOPIC #lobby");
        c.expect_contains(" 331 raw #lobby :No topic is set");
        c.send("TOPIC #lobby :chat about loops");
        c.expect_line(":raw!~raw@127.0.0.1 TOPIC #lobby :chat about loops");
        nc.expect_line("* raw set the topic of lobby to: chat about loops");
        c.send("TOPIC #lobby");
        c.expect_contains(" 332 raw #lobby :chat about loops");
        c.send("NAMES #lobby");
        c.expect_contains(" 353 raw = #lobby :watcher raw");
        c.expect_contains(" 366 raw #lobby :End of /NAMES list.");
        c.send("WHO #lobby");
        c.expect_contains(" 352 raw #lobby ~line 127.0.0.1 readyloop.chat watcher H :0 watcher");
        c.expect_contains(" 352 raw #lobby ~raw 127.0.0.1 readyloop.chat raw H :0 Raw Client");
        c.expect_contains(" 315 raw #lobby :End of WHO list");
        c.send("WHOIS watcher");
        c.expect_contains(" 311 raw watcher ~line 127.0.0.1 * :watcher");
        c.expect_contains(" 318 raw watcher :End of /WHOIS list.");
        c.send("LIST");
        c.expect_contains(" 321 raw Channel :Users  Name");
        c.expect_contains(" 322 raw #lobby 2 :chat about loops");
        c.expect_contains(" 322 raw #other 1 :");
        c.expect_contains(" 323 raw :End of /LIST");
        c.send("MOTD");
        c.expect_contains(" 375 raw :- readyloop.chat Message of the day");
        c.expect_contains(" 376 raw :End of /MOTD command.");
        c.send("MODE #lobby");
        c.expect_contains(" 324 raw #lobby +n");
        c.send("NICK rawer");
        c.expect_line(":raw!~raw@127.0.0.1 NICK :rawer");
        nc.expect_line("* raw is now known as rawer");
        // A line of more than 512 bytes: 417, and the connection goes on.
        c.send(&format!("PRIVMSG #lobby :{}", "y".repeat(600)));
        c.expect_contains(" 417 rawer :Input line was too long");
        c.send("QUIT :done here");
        c.expect_contains("ERROR :Closing Link: 127.0.0.1 (Quit: done here)");
        c.expect_closed();
        nc.expect_line("* rawer has quit (Quit: done here)");
        lt.stop().unwrap();
    }

    /// A client that vanishes (reset or plain close) is removed from every room, its quit
    /// announced once; an unregistered one just goes.
    fn vanished_client_removed_everywhere(backend: Backend) {
        let (lt, a) = start(backend, relaxed());
        let mut watcher = irc_user(a.irc, "watcher");
        watcher.send("JOIN #side");
        watcher.expect_line(":watcher!~watcher@127.0.0.1 JOIN #side");
        let mut ghost = irc_user(a.irc, "ghost");
        ghost.send("JOIN #side");
        watcher.expect_line(":ghost!~ghost@127.0.0.1 JOIN #side");
        let nc = line_user(a.line, "ncghost");
        watcher.expect_line(":ncghost!~line@127.0.0.1 JOIN #lobby");
        let _unregistered = Client::connect(a.line, "unregistered");
        assert_eq!(members(&lt), 3);
        // Reset: SO_LINGER 0 then close.
        readyloop::sys::socket::set_linger_zero(ghost.w.as_fd()).unwrap();
        drop(ghost);
        let q = watcher.expect_contains(":ghost!~ghost@127.0.0.1 QUIT :");
        assert!(q.contains("Connection"), "{q}");
        // Plain close.
        nc.w.shutdown(Shutdown::Both).unwrap();
        drop(nc);
        watcher.expect_line(":ncghost!~line@127.0.0.1 QUIT :Connection closed");
        watcher.expect_none(Duration::from_millis(200), "a second QUIT", |l| {
            l.contains(" QUIT ")
        });
        assert_eq!(members(&lt), 1);
        watcher.send("NAMES #side");
        watcher.expect_contains(" 353 watcher = #side :@watcher");
        lt.stop().unwrap();
    }
);

/// Wraps a chat protocol; after handing it bytes that contain `!!panic`, panics, as a
/// protocol bug would (the chat has no such bug to provoke, so the test brings one).
struct Tripwire {
    inner: Box<dyn Protocol>,
}

impl Protocol for Tripwire {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        self.inner.connection_made(conn);
    }
    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
        self.inner.data_received(conn, data);
        if data.windows(7).any(|w| w == b"!!panic") {
            panic!("chat protocol bug (expected by the test)");
        }
    }
    fn eof_received(&mut self, conn: &mut Conn<'_, '_>) -> bool {
        self.inner.eof_received(conn)
    }
    fn connection_lost(&mut self, conn: &mut Conn<'_, '_>, reason: Option<&std::io::Error>) {
        self.inner.connection_lost(conn, reason);
    }
    fn timer(&mut self, conn: &mut Conn<'_, '_>, id: readyloop::reactor::TimerId) {
        self.inner.timer(conn, id);
    }
    fn output_drained(&mut self, conn: &mut Conn<'_, '_>) {
        self.inner.output_drained(conn);
    }
    fn event(&mut self, conn: &mut Conn<'_, '_>, event: Box<dyn std::any::Any>) {
        self.inner.event(conn, event);
    }
    fn shutdown(&mut self, conn: &mut Conn<'_, '_>) {
        self.inner.shutdown(conn);
    }
}

fn tripwired(
    mut f: impl FnMut(&PeerAddr) -> Option<Box<dyn Protocol>>,
) -> impl FnMut(&PeerAddr) -> Option<Box<dyn Protocol>> {
    move |peer| Some(Box::new(Tripwire { inner: f(peer)? }) as Box<dyn Protocol>)
}

per_backend!(
    /// A chat connection whose protocol panics (contained by the reactor) is cleaned up
    /// as if the peer had gone: its quit announced in its rooms, its nickname free
    /// again, the room lists without it; everyone else keeps chatting, and the reactor
    /// counted the panics.
    fn panicking_client_is_cleaned_up(backend: Backend) {
        let (lt, a) = spawn_loop(backend, Config::default(), move |r| {
            let chat = ChatServer::new(relaxed());
            let lcfg = relaxed().listen;
            let line = r
                .listen_tcp_with("127.0.0.1:0", tripwired(chat.line_factory()), lcfg.clone())
                .unwrap()
                .1;
            let irc = r
                .listen_tcp_with("127.0.0.1:0", tripwired(chat.irc_factory()), lcfg)
                .unwrap()
                .1;
            let udp = chat.bind_udp(r, "127.0.0.1:0").unwrap().1;
            CHAT.with(|c| *c.borrow_mut() = Some(chat));
            Addrs { line, irc, udp }
        });
        let mut watcher = irc_user(a.irc, "watcher");
        watcher.send("JOIN #side");
        watcher.expect_line(":watcher!~watcher@127.0.0.1 JOIN #side");
        let mut victim = irc_user(a.irc, "victim");
        victim.send("JOIN #side");
        watcher.expect_line(":victim!~victim@127.0.0.1 JOIN #side");
        let mut nc = line_user(a.line, "ncvictim");
        watcher.expect_line(":ncvictim!~line@127.0.0.1 JOIN #lobby");
        assert_eq!(members(&lt), 3);

        victim.send("PRIVMSG #side :!!panic");
        watcher.expect_line(":victim!~victim@127.0.0.1 PRIVMSG #side :!!panic");
        let q = watcher.expect_contains(":victim!~victim@127.0.0.1 QUIT :");
        assert!(q.contains("panicked"), "{q}");
        victim.expect_closed();
        nc.send("!!panic");
        watcher.expect_line(":ncvictim!~line@127.0.0.1 PRIVMSG #lobby :!!panic");
        let q = watcher.expect_contains(":ncvictim!~line@127.0.0.1 QUIT :");
        assert!(q.contains("panicked"), "{q}");
        nc.expect_closed();

        assert_eq!(members(&lt), 1);
        assert_eq!(lt.call(|ctx| ctx.panics_contained()), 2);
        watcher.send("NAMES #side");
        watcher.expect_line(":readyloop.chat 353 watcher = #side :@watcher");
        let ok = lt.call(|_| {
            CHAT.with(|c| {
                let c = c.borrow();
                let chat = c.as_ref().unwrap();
                chat.with_chat(|ch| {
                    ch.find("victim").is_none()
                        && ch.find("ncvictim").is_none()
                        && ch.who("side").map(|m| m.len()) == Some(1)
                })
            })
        });
        assert!(
            ok,
            "{backend}: the chat state still knows a panicked client"
        );
        // The nicknames are free again, and the server serves.
        let mut again = irc_user(a.irc, "victim");
        again.send("JOIN #side");
        watcher.expect_line(":victim!~victim@127.0.0.1 JOIN #side");
        let _nc2 = line_user(a.line, "ncvictim");
        watcher.send("PRIVMSG #side :hello again");
        again.expect_line(":watcher!~watcher@127.0.0.1 PRIVMSG #side :hello again");
        lt.stop().unwrap();
    }

    /// One PRIVMSG line names a bounded number of targets (`TARGMAX`), each once, so a
    /// list of targets cannot multiply a line past the flood limit; the rest get 407.
    fn irc_privmsg_targets_are_bounded(backend: Backend) {
        let (lt, a) = start(backend, relaxed());
        let mut nc = line_user(a.line, "nc");
        let mut irc = irc_user(a.irc, "amp");
        nc.expect_line("* amp has joined lobby");
        irc.send(&format!("PRIVMSG {} :y", vec!["#lobby"; 60].join(",")));
        irc.send("PRIVMSG nc,nc,NC,x1,x2,x3,x4,x5 :z");
        irc.send("PRIVMSG #lobby :after");
        let mut got = Vec::new();
        while got.last().map(String::as_str) != Some("<amp> after") {
            got.push(nc.expect("a message from amp", |l| {
                l.starts_with("<amp> ") || l.starts_with("*amp* ")
            }));
        }
        assert_eq!(got, ["<amp> y", "*amp* z", "<amp> after"], "{backend}");
        irc.expect_contains(" 407 amp ");
        lt.stop().unwrap();
    }

    /// Bytes that are not UTF-8 arrive as U+FFFD; control characters cannot break lines;
    /// an overlong line is refused and the connection goes on.
    fn bad_bytes_and_long_lines(backend: Backend) {
        let (lt, a) = start(backend, relaxed());
        let mut x = line_user(a.line, "x");
        let mut y = irc_user(a.irc, "y");
        x.expect_line("* y has joined lobby");
        x.w.write_all(b"caf\xe9 \xff\xfe ok\n").unwrap();
        y.expect_line(":x!~line@127.0.0.1 PRIVMSG #lobby :caf\u{fffd} \u{fffd}\u{fffd} ok");
        x.w.write_all(b"inject\rPRIVMSG #lobby :fake\n").unwrap();
        y.expect_line(":x!~line@127.0.0.1 PRIVMSG #lobby :inject PRIVMSG #lobby :fake");
        x.w.write_all(&[b'z'; 5000]).unwrap();
        x.w.write_all(b"\nshort\n").unwrap();
        x.expect_line("* line too long (at most 2048 bytes); dropped");
        y.expect_line(":x!~line@127.0.0.1 PRIVMSG #lobby :short");
        y.w.write_all(b"PRIVMSG #lobby :\xc3\x28 bad\r\n").unwrap();
        x.expect_line("<y> \u{fffd}( bad");
        // A nickname in bad UTF-8 is just invalid.
        let mut z = Client::connect(a.line, "z");
        z.expect_line("* What is your nickname?");
        z.w.write_all(b"\xff\xff\n").unwrap();
        z.expect_contains("* invalid nickname");
        lt.stop().unwrap();
    }
);

// ---------------------------------------------------------------------------------
// Real IRC clients
// ---------------------------------------------------------------------------------

/// The Python interpreter with the `irc` package, if any.
fn python_irc() -> Option<String> {
    ["python3", "/usr/bin/python3"].into_iter().find_map(|py| {
        let ok = Command::new(py)
            .args(["-c", "import irc.client"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| py.to_string())
    })
}

const PY_CLIENT: &str = r##"
import sys, time
import irc.client

host, port = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 15
state = {"joined": False, "got": None}

def on_welcome(c, e):
    print("WELCOME", e.arguments[0], flush=True)
    c.join("#lobby")

def on_join(c, e):
    if irc.client.NickMask(e.source).nick == c.get_nickname() and e.target == "#lobby":
        state["joined"] = True
        print("JOINED", e.target, flush=True)
        c.privmsg("#lobby", "hello from python")

def on_pubmsg(c, e):
    nick = irc.client.NickMask(e.source).nick
    print("PUBMSG", nick, e.target, e.arguments[0], flush=True)
    if nick == "ncpal" and e.arguments[0] == "hello python":
        state["got"] = e.arguments[0]
        c.quit("bye from python")

def on_disconnect(c, e):
    state["done"] = True

reactor = getattr(irc.client, "Reactor", None) or irc.client.IRC
reactor = reactor()
c = reactor.server().connect(host, port, "pyuser", username="py", ircname="Python Client")
c.add_global_handler("welcome", on_welcome)
c.add_global_handler("join", on_join)
c.add_global_handler("pubmsg", on_pubmsg)
c.add_global_handler("disconnect", on_disconnect)
while time.time() < deadline and not state.get("done"):
    reactor.process_once(0.1)
if state["got"] and state["joined"]:
    print("OK", flush=True)
    sys.exit(0)
print("FAILED", state, flush=True)
sys.exit(1)
"##;

per_backend!(
    /// A real client (Python's `irc` package) registers, joins #lobby, talks to a
    /// line-protocol user and hears back.
    fn irc_client_python(backend: Backend) {
        let py = python_irc();
        if !require(py.is_some(), "Python's irc package", "pip install irc") {
            return;
        }
        let py = py.unwrap();
        let (lt, a) = start(backend, relaxed());
        let mut nc = line_user(a.line, "ncpal");
        let script = std::env::temp_dir().join(format!("readyloop-chat-{}.py", std::process::id()));
        std::fs::write(&script, PY_CLIENT).unwrap();
        let mut child = Command::new(&py)
            .arg(&script)
            .arg(a.irc.ip().to_string())
            .arg(a.irc.port().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {py}: {e}"));
        let out = drain(child.stdout.take().unwrap());
        let err = drain(child.stderr.take().unwrap());
        nc.expect_line("* pyuser has joined lobby");
        nc.expect_line("<pyuser> hello from python");
        nc.send("hello python");
        nc.expect_line("* pyuser has quit (Quit: bye from python)");
        let st = wait_child(&mut child, DEADLINE);
        let _ = child.kill();
        let out = out.join().unwrap();
        let err = err.join().unwrap();
        let _ = std::fs::remove_file(&script);
        assert!(
            st.is_some_and(|s| s.success()) && out.contains("OK"),
            "{backend}: python client {st:?}\nstdout:\n{out}\nstderr:\n{err}"
        );
        assert!(
            out.contains("WELCOME Welcome to the readyloop chat, pyuser!~py@127.0.0.1"),
            "{out}"
        );
        assert!(out.contains("PUBMSG ncpal #lobby hello python"), "{out}");
        lt.stop().unwrap();
    }
);

fn drain(mut r: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut s = Vec::new();
        let _ = r.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    })
}

/// Waits until `path` exists and contains `part`.
fn wait_file_contains(path: &Path, part: &str) -> String {
    eventually(
        DEADLINE,
        &format!("{} contains {part:?}", path.display()),
        || {
            std::fs::read_to_string(path)
                .ok()
                .filter(|s| s.contains(part))
        },
    )
}

per_backend!(
    /// `ii`, the FIFO-driven IRC client: registers, joins #lobby, sends through its
    /// channel FIFO, and logs a line-protocol user's answer.
    fn irc_client_ii(backend: Backend) {
        if !have_tool("ii", "ii") {
            return;
        }
        let (lt, a) = start(backend, relaxed());
        let mut nc = line_user(a.line, "ncpal");
        let dir: PathBuf = std::env::temp_dir().join(format!(
            "readyloop-ii-{}-{}",
            std::process::id(),
            backend.name()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("ii")
            .arg("-s")
            .arg(a.irc.ip().to_string())
            .arg("-p")
            .arg(a.irc.port().to_string())
            .arg("-n")
            .arg("iiuser")
            .arg("-i")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ii");
        struct Kill(Child);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let mut child = Kill(child);
        let srv_dir = dir.join(a.irc.ip().to_string());
        let chan = srv_dir.join("#lobby");
        wait_file_contains(
            &srv_dir.join("out"),
            "Welcome to the readyloop chat, iiuser",
        );
        let sin = eventually(DEADLINE, "ii's server in FIFO", || {
            std::fs::OpenOptions::new()
                .write(true)
                .open(srv_dir.join("in"))
                .ok()
        });
        (&sin).write_all(b"/j #lobby\n").unwrap();
        drop(sin);
        nc.expect_line("* iiuser has joined lobby");
        wait_file_contains(&chan.join("out"), "iiuser");
        // Writing to ii's FIFO: ii holds it open for reading, so this does not block.
        let fifo = eventually(DEADLINE, "ii's #lobby/in FIFO", || {
            std::fs::OpenOptions::new()
                .write(true)
                .open(chan.join("in"))
                .ok()
        });
        (&fifo).write_all(b"hello from ii\n").unwrap();
        drop(fifo);
        nc.expect_line("<iiuser> hello from ii");
        nc.send("hello ii");
        wait_file_contains(&chan.join("out"), "<ncpal> hello ii");
        // A topic through the channel FIFO, then quit through the server FIFO.
        let cin = std::fs::OpenOptions::new()
            .write(true)
            .open(chan.join("in"))
            .unwrap();
        (&cin).write_all(b"/t ii was here\n").unwrap();
        drop(cin);
        nc.expect_line("* iiuser set the topic of lobby to: ii was here");
        let sin = std::fs::OpenOptions::new()
            .write(true)
            .open(srv_dir.join("in"))
            .unwrap();
        (&sin).write_all(b"/q leaving\n").unwrap();
        drop(sin);
        nc.expect_contains("* iiuser has quit (Quit: leaving");
        let _ = wait_child(&mut child.0, Duration::from_secs(5));
        drop(child);
        let _ = std::fs::remove_dir_all(&dir);
        lt.stop().unwrap();
    }
);

// ---------------------------------------------------------------------------------
// The example binary
// ---------------------------------------------------------------------------------

/// `chat_server` as a child process, with the addresses of its three ready lines.
struct ChatProcess {
    srv: ServerProcess,
    line: SocketAddr,
    irc: SocketAddr,
    udp: SocketAddr,
}

impl ChatProcess {
    fn start(backend: Backend, extra: &[&str]) -> ChatProcess {
        let fronts = ["--listen", "127.0.0.1:0", "--irc", "127.0.0.1:0"];
        let args = [&fronts[..], &["--udp", "127.0.0.1:0"], extra].concat();
        let mut srv = ServerProcess::example("chat_server", backend, &args);
        let line = srv.ready_addr("tcp");
        let irc = srv.ready_addr("irc");
        let udp = srv.ready_addr("udp");
        ChatProcess {
            srv,
            line,
            irc,
            udp,
        }
    }

    fn status_kib(&self, field: &str) -> u64 {
        self.srv.status_kib(field)
    }

    fn stderr(&self) -> String {
        self.srv.stderr()
    }

    fn terminate_and_wait(&mut self) {
        self.srv.terminate();
        let st = self.srv.wait_exit(DEADLINE).expect("exits after SIGTERM");
        assert!(st.success(), "exit status {st}; stderr:\n{}", self.stderr());
    }
}

per_backend!(
    /// The binary: ready lines for the three front ends, a conversation across them, and
    /// a graceful SIGTERM (clients told, exit 0).
    fn example_binary(backend: Backend) {
        let mut srv = ChatProcess::start(backend, &[]);
        let mut nc = line_user(srv.line, "bin_nc");
        let mut irc = irc_user(srv.irc, "bin_irc");
        let u = UdpUser::join(srv.udp, "bin_udp");
        nc.expect_line("* bin_udp has joined lobby");
        irc.send("PRIVMSG #lobby :hi all");
        nc.expect_line("<bin_irc> hi all");
        u.expect_dgram("bin_irc:hi all");
        srv.terminate_and_wait();
        nc.expect_line("* server shutting down");
        nc.expect_closed();
        irc.expect_contains("ERROR :Closing Link: 127.0.0.1 (Server shutting down)");
        irc.expect_closed();
        u.expect_dgram("error: server shutting down");
    }

    /// Moderation is the chat state's, so it holds across front ends: an IRC channel operator
    /// moderates a room nc users share (+m, voice, kick), a line user who created a room
    /// kicks an IRC user from it with `/kick`, `/away` shows in IRC `WHOIS` and `/who`.
    fn moderation_across_front_ends(backend: Backend) {
        let (lt, a) = start(backend, relaxed());
        let mut op = irc_user(a.irc, "ircop");
        let mut nc = line_user(a.line, "ncu");
        op.send("JOIN #mod");
        op.expect_contains(" 353 ircop = #mod :@ircop");
        nc.send("/join mod");
        nc.expect_line("* you are in mod (2 here: @ircop, ncu)");
        op.expect_line(":ncu!~line@127.0.0.1 JOIN #mod");
        // Only the operator sets modes and the topic (+t by default).
        nc.send("/topic mine now");
        nc.expect_line("* you are not an operator of mod");
        op.send("MODE #mod +m");
        op.expect_line(":ircop!~ircop@127.0.0.1 MODE #mod +m");
        nc.expect_line("* ircop sets mode +m on mod");
        nc.send("can I speak?");
        nc.expect_line("* cannot send to mod");
        op.send("MODE #mod +v ncu");
        nc.expect_line("* ircop sets mode +v ncu on mod");
        nc.send("now I can");
        op.expect_line(":ncu!~line@127.0.0.1 PRIVMSG #mod :now I can");
        // Away on the line protocol: IRC sees it in WHOIS, the line in /who.
        nc.send("/away lunch");
        nc.expect_line("* you are marked away: lunch");
        op.send("WHOIS ncu");
        op.expect_contains(" 301 ircop ncu :lunch");
        op.expect_contains(" 318 ircop ncu :End of /WHOIS list.");
        nc.send("/who");
        nc.expect_line("* in mod (2): @ircop, +ncu (away: lunch)");
        op.send("PRIVMSG ncu :there?");
        op.expect_contains(" 301 ircop ncu :lunch");
        nc.expect_line("*ircop* there?");
        // A kicked line user is out of the room, and told.
        op.send("KICK #mod ncu :enough");
        op.expect_line(":ircop!~ircop@127.0.0.1 KICK #mod ncu :enough");
        nc.expect_line("* ircop kicked ncu from mod (enough)");
        nc.send("still here?");
        nc.expect_line("* you are in no room; /join ROOM");
        // A line user's room: it is the operator, and /kick works on IRC users.
        nc.send("/join ncroom");
        nc.expect_line("* you are in ncroom (1 here: @ncu)");
        op.send("JOIN #ncroom");
        op.expect_contains(" 353 ircop = #ncroom :@ncu ircop");
        nc.expect_line("* ircop has joined ncroom");
        op.send("KICK #ncroom ncu");
        op.expect_contains(" 482 ircop #ncroom :You're not channel operator");
        nc.send("/kick ircop bye bye");
        op.expect_line(":ncu!~line@127.0.0.1 KICK #ncroom ircop :bye bye");
        nc.expect_line("* ncu kicked ircop from ncroom (bye bye)");
        nc.send("/kick");
        nc.expect_line("* usage: /kick ARGUMENT");
        lt.stop().unwrap();
    }

    /// Channel modes on raw IRC: keys, limits, invitations, bans, secret channels, and
    /// the numerics that refuse.
    fn irc_channel_modes(backend: Backend) {
        let (lt, a) = start(backend, relaxed());
        let mut op = irc_user(a.irc, "chop");
        let mut b = irc_user(a.irc, "bee");
        op.send("JOIN #locked");
        op.expect_contains(" 366 chop #locked ");
        op.send("MODE #locked +kl sesame 2");
        op.expect_line(":chop!~chop@127.0.0.1 MODE #locked +kl sesame 2");
        op.send("MODE #locked");
        op.expect_contains(" 324 chop #locked +ntkl sesame 2");
        b.send("MODE #locked");
        b.expect_contains(" 324 bee #locked +ntkl * 2");
        b.send("JOIN #locked");
        b.expect_contains(" 475 bee #locked :Cannot join channel (+k)");
        b.send("JOIN #locked sesame");
        b.expect_line(":bee!~bee@127.0.0.1 JOIN #locked");
        b.send("MODE #locked -k *");
        b.expect_contains(" 482 bee #locked :You're not channel operator");
        b.send("PART #locked");
        op.send("MODE #locked -k+i *");
        op.expect_line(":chop!~chop@127.0.0.1 MODE #locked -k+i sesame");
        b.send("JOIN #locked");
        b.expect_contains(" 473 bee #locked :Cannot join channel (+i)");
        op.send("INVITE bee #locked");
        op.expect_contains(" 341 chop bee #locked");
        b.expect_line(":chop!~chop@127.0.0.1 INVITE bee #locked");
        b.send("JOIN #locked");
        b.expect_line(":bee!~bee@127.0.0.1 JOIN #locked");
        op.send("MODE #locked +b bee");
        op.expect_line(":chop!~chop@127.0.0.1 MODE #locked +b bee!*@*");
        b.send("PRIVMSG #locked :banned?");
        b.expect_contains(" 404 bee #locked :Cannot send to channel");
        op.send("MODE #locked +b");
        op.expect_contains(" 367 chop #locked bee!*@*");
        op.expect_contains(" 368 chop #locked :End of channel ban list");
        op.send("KICK #locked bee");
        b.expect_line(":chop!~chop@127.0.0.1 KICK #locked bee :chop");
        op.send("MODE #locked -i");
        b.send("JOIN #locked");
        b.expect_contains(" 474 bee #locked :Cannot join channel (+b)");
        op.send("MODE #locked +s-b bee!*@*");
        op.expect_line(":chop!~chop@127.0.0.1 MODE #locked +s-b bee!*@*");
        b.send("LIST");
        b.expect_line(":readyloop.chat 323 bee :End of /LIST");
        op.send("MODE #locked +x");
        op.expect_contains(" 472 chop x :is unknown mode char to me");
        op.send("MODE #locked +o nobody");
        op.expect_contains(" 401 chop nobody :No such nick/channel");
        lt.stop().unwrap();
    }

    /// Server operators from configuration: OPER (hashed password), WALLOPS to +w users,
    /// KILL of a line user and of an IRC user; WHO flags, WHOWAS, LUSERS, TIME, INFO.
    fn irc_operators(backend: Backend) {
        let cfg = ChatConfig {
            opers: vec![
                readyloop::proto::chat::OperAccount::from_password("boss", "hunter2").unwrap(),
            ],
            ..relaxed()
        };
        let (lt, a) = start(backend, cfg);
        let mut o = irc_user(a.irc, "oper");
        let mut w = irc_user(a.irc, "watch");
        let mut nc = line_user(a.line, "victim");
        o.send("KILL victim :no");
        o.expect_contains(" 481 oper :Permission Denied");
        o.send("OPER boss wrong");
        o.expect_contains(" 464 oper :Password incorrect");
        o.send("OPER nobody hunter2");
        o.expect_contains(" 491 oper ");
        o.send("OPER boss hunter2");
        o.expect_contains(" 381 oper :You are now an IRC operator");
        o.expect_line(":oper!~oper@127.0.0.1 MODE oper :+o");
        o.send("WHO oper");
        o.expect_contains(" 352 oper * ~oper 127.0.0.1 readyloop.chat oper H* :0 Test oper");
        w.send("MODE watch +w");
        w.expect_line(":watch!~watch@127.0.0.1 MODE watch :+w");
        o.send("WALLOPS :hear ye");
        w.expect_line(":oper!~oper@127.0.0.1 WALLOPS :hear ye");
        o.send("KILL victim :rude");
        nc.expect_line("* you were removed from the chat: Killed (oper (rude))");
        nc.expect_closed();
        w.expect_line(":victim!~line@127.0.0.1 QUIT :Killed (oper (rude))");
        o.send("KILL watch :bye");
        w.expect_contains("ERROR :Closing Link: 127.0.0.1 (Killed (oper (bye)))");
        w.expect_closed();
        o.send("WHOWAS victim");
        o.expect_contains(" 314 oper victim ~line 127.0.0.1 * :victim");
        o.expect_contains(" 369 oper victim :End of WHOWAS");
        o.send("LUSERS");
        o.expect_contains(" 251 oper :There are 1 users and 0 invisible on 1 servers");
        o.expect_contains(" 252 oper 1 :operator(s) online");
        o.send("TIME");
        o.expect_contains(" 391 oper readyloop.chat ");
        o.send("INFO");
        o.expect_contains(" 374 oper :End of INFO list");
        lt.stop().unwrap();
    }

    /// IRCv3: CAP LS 302 holds registration until CAP END; server-time and message-tags
    /// tag messages, echo-message echoes, away-notify tells, multi-prefix shows `@+`.
    fn irc_capabilities(backend: Backend) {
        let (lt, a) = start(backend, relaxed());
        let mut c = Client::connect(a.irc, "capper");
        c.send("CAP LS 302");
        c.expect_contains(" CAP * LS :away-notify batch cap-notify echo-message message-tags multi-prefix server-time userhost-in-names");
        c.send("NICK capper");
        c.send("USER capper 0 * :Capper");
        c.send("CAP REQ :server-time echo-message bogus");
        c.expect_contains(" CAP capper NAK :server-time echo-message bogus");
        c.send("CAP REQ :server-time echo-message away-notify multi-prefix message-tags");
        c.expect_contains(
            " CAP capper ACK :server-time echo-message away-notify multi-prefix message-tags",
        );
        c.send("CAP END");
        c.expect_contains(" 001 capper ");
        c.send("JOIN #caps");
        c.expect_contains(" 366 capper #caps ");
        let mut b = irc_user(a.irc, "plain");
        b.send("JOIN #caps");
        c.expect_contains(":plain!~plain@127.0.0.1 JOIN #caps");
        c.send("MODE #caps +v capper");
        c.send("NAMES #caps");
        c.expect_contains(" 353 capper = #caps :@+capper plain");
        b.send("PRIVMSG #caps :tagged?");
        let l = c.expect_contains("PRIVMSG #caps :tagged?");
        assert!(l.starts_with("@msgid="), "{l}");
        assert!(l.contains(";time=20") && l.contains("Z :plain!"), "{l}");
        c.send("PRIVMSG #caps :echo");
        let l = c.expect_contains(":capper!~capper@127.0.0.1 PRIVMSG #caps :echo");
        assert!(l.starts_with('@'), "{l}");
        b.expect_line(":capper!~capper@127.0.0.1 PRIVMSG #caps :echo");
        b.send("AWAY :gone");
        let l = c.expect_contains(":plain!~plain@127.0.0.1 AWAY :gone");
        assert!(l.starts_with('@'), "{l}");
        // History replayed on join carries the time each message was sent.
        b.send("JOIN #hist");
        b.expect_contains(" 366 plain #hist ");
        b.send("PRIVMSG #hist :old news");
        b.send("PING :sent");
        b.expect_contains(" PONG readyloop.chat :sent");
        c.send("JOIN #hist");
        let l = c.expect_contains("PRIVMSG #hist :old news");
        assert!(
            l.starts_with("@time=20") && l.contains(":plain!~plain@"),
            "{l}"
        );
        c.send("CAP LIST");
        c.expect_contains(
        " CAP capper LIST :away-notify cap-notify echo-message message-tags multi-prefix server-time",
    );
        lt.stop().unwrap();
    }
);

/// A tmux server of our own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("tmux {args:?}: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` and Enter into the pane.
    fn type_line(&self, text: &str) {
        self.run(&["send-keys", "-t", "irc", "-l", text]);
        self.run(&["send-keys", "-t", "irc", "Enter"]);
    }

    /// Waits until the visible pane shows `part`.
    fn wait_screen(&self, part: &str) -> String {
        eventually(DEADLINE, &format!("irssi's screen shows {part:?}"), || {
            let screen = self.run(&["capture-pane", "-p", "-t", "irc"]);
            screen.contains(part).then_some(screen)
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

per_backend!(
    /// A full-screen client: irssi under tmux (keys typed with send-keys, the screen read
    /// with capture-pane) joins #kr, talks with a line user who created the room, and is
    /// kicked by it.
    fn irc_client_irssi(backend: Backend) {
        if !(have_tool("irssi", "irssi") && have_tool("tmux", "tmux")) {
            return;
        }
        let (lt, a) = start(backend, relaxed());
        let mut nc = line_user(a.line, "ncop");
        nc.send("/join kr");
        nc.expect_line("* you are in kr (1 here: @ncop)");
        let home = std::env::temp_dir().join(format!(
            "readyloop-irssi-{}-{}",
            std::process::id(),
            backend.name()
        ));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home).unwrap();
        let tmux = Tmux {
            socket: format!("readyloop-{}-{}", std::process::id(), backend.name()),
        };
        let cmd = format!(
            "irssi --home={} -n irssiu -c {} -p {}",
            home.display(),
            a.irc.ip(),
            a.irc.port()
        );
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "irc",
            "-x",
            "160",
            "-y",
            "40",
            &cmd,
        ]);
        tmux.wait_screen("Welcome to the readyloop chat");
        tmux.type_line("/join #kr");
        nc.expect_line("* irssiu has joined kr");
        tmux.wait_screen("@ncop");
        tmux.type_line("hello from irssi");
        nc.expect_line("<irssiu> hello from irssi");
        nc.send("hi irssi");
        tmux.wait_screen("hi irssi");
        nc.send("/kick irssiu out you go");
        nc.expect_line("* ncop kicked irssiu from kr (out you go)");
        tmux.wait_screen("irssiu was kicked from #kr by ncop [out you go]");
        tmux.type_line("/quit bye from irssi");
        nc.send("/part");
        nc.expect_line("* you are in lobby (1 here: ncop)");
        eventually(DEADLINE, "irssi gone from the chat", || {
            (members(&lt) == 1).then_some(())
        });
        drop(tmux);
        let _ = std::fs::remove_dir_all(&home);
        lt.stop().unwrap();
    }
);
