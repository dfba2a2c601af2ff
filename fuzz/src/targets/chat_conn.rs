//! The chat server's front ends driven whole, several clients at once on one
//! reactor (through the in-process [`Harness`]; UDP over loopback sockets): the line
//! protocol's commands (`chat_line`), IRC (`chat_irc`), classroom UDP datagrams with a
//! line client watching (`chat_udp`).
//!
//! The input is a program: byte 0 picks the backend, byte 1 the configuration (a
//! strict flood limit, a zero registration timeout, a zero UDP idle time, short lines,
//! a small output limit), then operations on a client chosen by the op byte: send the
//! next bytes (a datagram for UDP), send a canned line, run the loop, half-close or
//! close (UDP: `/leave`).
//!
//! Properties:
//! * What a client receives is UTF-8; line-protocol output holds no CR or NUL and ends
//!   lines with LF; IRC output is CRLF-terminated lines of at most 512 bytes with no
//!   other CR, LF or NUL (nobody can inject a line or a command); a UDP reply is one
//!   line.
//! * Shared state stays consistent: once every stream client has gone, no member left
//!   in any room is a stream member; once the server stops, the chat is empty.
//! * The loop always settles.
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::Duration;

use readyloop::net::{PeerAddr, Protocol};
use readyloop::proto::chat::{ChatConfig, ChatServer, Endpoint};

use super::harness::{backend, Harness};
use super::Input;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Line,
    Irc,
    Udp,
}

const LINE_CANNED: &[&str] = &[
    "alice\n",
    "bob\r\n",
    "hello everyone\n",
    "/join rust\n",
    "/part bye\n",
    "/msg alice hi there\n",
    "/msg bob hi\n",
    "/me waves\n",
    "/who\n",
    "/who lobby\n",
    "/rooms\n",
    "/topic Rust things\n",
    "/topic\n",
    "/nick carol\n",
    "/help\n",
    "/quit gone\n",
    "//slash\n",
    "/nick\n",
    "/away lunch\n",
    "/kick bob why\n",
];

const IRC_CANNED: &[&str] = &[
    "NICK alice\r\nUSER a 0 * :Alice A\r\n",
    "NICK bob\r\nUSER b 0 * :Bob\r\n",
    "CAP LS 302\r\n",
    "CAP REQ :echo-message server-time message-tags multi-prefix away-notify\r\n",
    "CAP END\r\n",
    "MODE #rust +ov-v+klbmsit bob bob bob key 3 x!*@*\r\n",
    "KICK #rust,#lobby bob,alice :out\r\n",
    "INVITE bob #rust\r\n",
    "AWAY :brb\r\n",
    "WHO al* o\r\n",
    "WHOWAS bob 2\r\n",
    "MODE alice +iw-o\r\n",
    "KILL bob :x\r\n",
    "JOIN #rust,#lobby\r\n",
    "PRIVMSG #lobby :hello\r\n",
    "PRIVMSG alice,bob,#rust :hi all\r\n",
    "NOTICE bob :psst\r\n",
    "PRIVMSG #lobby :\x01ACTION waves\x01\r\n",
    "PART #rust :bye\r\n",
    "TOPIC #lobby :new topic\r\n",
    "NAMES #lobby\r\n",
    "WHO #lobby\r\n",
    "WHOIS alice\r\n",
    "LIST\r\n",
    "MODE #lobby\r\n",
    "PING :x\r\n",
    "MOTD\r\n",
    "JOIN 0\r\n",
    "NICK carol\r\n",
    "QUIT :gone\r\n",
];

const UDP_CANNED: &[&str] = &[
    "username@dave",
    "username@erin\n",
    "hello from udp\n",
    "/who",
    "/leave",
    "username@alice",
];

fn config(flags: u8) -> ChatConfig {
    let mut cfg = ChatConfig::default();
    if flags & 1 != 0 {
        cfg.flood_burst = 3;
        cfg.flood_rate = 1.0;
        cfg.flood_disconnect = 6;
    } else {
        cfg.flood_burst = 1_000_000;
        cfg.flood_rate = 1e9;
    }
    if flags & 2 != 0 {
        cfg.registration_timeout = Duration::ZERO;
    }
    if flags & 4 != 0 {
        cfg.udp_idle = Duration::ZERO;
    }
    if flags & 8 != 0 {
        cfg.max_line = 40;
        cfg.irc_max_line = 64;
    }
    if flags & 16 != 0 {
        cfg.listen.stream.max_output = Some(2048);
    }
    cfg
}

struct UdpClient {
    sock: UdpSocket,
    out: Vec<Vec<u8>>,
}

struct World {
    h: Harness,
    chat: ChatServer,
    /// Per client: its kind and its index (harness client or UDP client).
    clients: Vec<(Kind, usize)>,
    udp: Vec<UdpClient>,
    udp_server: Option<SocketAddr>,
}

impl World {
    fn new(be: u8, flags: u8, kinds: &[Kind]) -> World {
        let chat = ChatServer::new(config(flags));
        let mut h = Harness::new(backend(be));
        let cfg = Rc::new(config(flags).listen.stream);
        let mut udp_server = None;
        if kinds.contains(&Kind::Udp) {
            let (_, addr) = chat
                .bind_udp(&mut h.reactor, "127.0.0.1:0")
                .expect("bind udp");
            udp_server = Some(addr);
        }
        let mut clients = Vec::new();
        let mut udp = Vec::new();
        for (i, &k) in kinds.iter().enumerate() {
            let peer = PeerAddr::Inet(SocketAddr::from(([127, 0, 0, 1], 40000 + i as u16)));
            let proto: Option<Box<dyn Protocol>> = match k {
                Kind::Line => chat.line_factory()(&peer),
                Kind::Irc => chat.irc_factory()(&peer),
                Kind::Udp => None,
            };
            match proto {
                Some(p) => clients.push((k, h.connect(p, cfg.clone()))),
                None => {
                    let sock = UdpSocket::bind("127.0.0.1:0").expect("udp client");
                    sock.set_nonblocking(true).expect("nonblocking");
                    udp.push(UdpClient {
                        sock,
                        out: Vec::new(),
                    });
                    clients.push((k, udp.len() - 1));
                }
            }
        }
        World {
            h,
            chat,
            clients,
            udp,
            udp_server,
        }
    }

    fn pump(&mut self) {
        self.h.pump();
        let mut buf = [0u8; 65536];
        for u in &mut self.udp {
            while let Ok(n) = u.sock.recv(&mut buf) {
                u.out.push(buf[..n].to_vec());
            }
        }
    }

    fn send(&mut self, who: usize, data: &[u8]) {
        match self.clients[who] {
            (Kind::Udp, u) => {
                if let Some(to) = self.udp_server {
                    let _ = self.udp[u].sock.send_to(data, to);
                }
            }
            (_, c) => self.h.send(c, data),
        }
    }

    fn check_output(&self) {
        for &(k, i) in &self.clients {
            match k {
                Kind::Udp => {
                    for d in &self.udp[i].out {
                        let s = std::str::from_utf8(d).expect("UDP reply not UTF-8");
                        let body = s.strip_suffix('\n').unwrap_or(s);
                        assert!(!body.contains(['\n', '\r', '\0']), "UDP reply {s:?}");
                    }
                }
                Kind::Line => {
                    let out = &self.h.clients[i].out;
                    let s = std::str::from_utf8(out).expect("line output not UTF-8");
                    assert!(!s.contains(['\r', '\0']), "line output {s:?}");
                    assert!(
                        s.is_empty() || s.ends_with('\n'),
                        "unterminated line: {s:?}"
                    );
                }
                Kind::Irc => {
                    let out = &self.h.clients[i].out;
                    let s = std::str::from_utf8(out).expect("IRC output not UTF-8");
                    assert!(s.is_empty() || s.ends_with("\r\n"), "unterminated: {s:?}");
                    for line in s.split_terminator("\r\n") {
                        assert!(!line.contains(['\r', '\n', '\0']), "IRC line {line:?}");
                        assert!(
                            line.len() + 2 <= 512,
                            "IRC line of {} bytes: {line:?}",
                            line.len() + 2
                        );
                        assert!(!line.is_empty(), "empty IRC line");
                    }
                }
            }
        }
    }
}

fn run_with(data: &[u8], kinds: &[Kind]) {
    let mut input = Input::new(data);
    let be = input.byte();
    let flags = input.byte();
    let mut w = World::new(be, flags, kinds);
    w.pump();
    while !input.is_empty() {
        let op = input.byte();
        let who = usize::from(op & 7) % kinds.len();
        let kind = kinds[who];
        match op >> 3 {
            0..=11 => {
                let n = usize::from(input.byte());
                let data = input.take(n);
                w.send(who, data);
            }
            12..=15 => w.pump(),
            16..=27 => {
                let i = usize::from(input.byte());
                let line = match kind {
                    Kind::Line => LINE_CANNED[i % LINE_CANNED.len()],
                    Kind::Irc => IRC_CANNED[i % IRC_CANNED.len()],
                    Kind::Udp => UDP_CANNED[i % UDP_CANNED.len()],
                };
                w.send(who, line.as_bytes());
            }
            28..=29 => match w.clients[who] {
                (Kind::Udp, _) => w.send(who, b"/leave"),
                (_, c) => w.h.shutdown_write(c),
            },
            _ => match w.clients[who] {
                (Kind::Udp, _) => w.pump(),
                (_, c) => {
                    w.pump();
                    w.h.close(c);
                }
            },
        }
    }
    w.pump();
    w.check_output();
    // Every stream client goes: none of them may stay a member anywhere.
    for i in 0..w.h.clients.len() {
        w.h.close(i);
    }
    w.pump();
    w.chat.with_chat(|c| {
        for r in c.rooms() {
            for m in c.who(&r.name).unwrap_or_default() {
                assert!(
                    matches!(m.endpoint, Endpoint::Datagram { .. }),
                    "{} is still in {} after its connection closed",
                    m.nick,
                    r.name
                );
            }
        }
    });
    w.h.assert_no_panics();
    let udp_handlers = usize::from(w.udp_server.is_some());
    assert_eq!(
        w.h.reactor.handler_count(),
        udp_handlers,
        "connections left behind"
    );
    // The server stops: nobody is left.
    w.h.reactor.close_all();
    assert_eq!(w.chat.members(), 0, "members left after the server stopped");
}

/// Three line-protocol clients.
pub fn run_line(data: &[u8]) {
    run_with(data, &[Kind::Line, Kind::Line, Kind::Line]);
}

/// Three IRC clients.
pub fn run_irc(data: &[u8]) {
    run_with(data, &[Kind::Irc, Kind::Irc, Kind::Irc]);
}

/// Three UDP clients and a line client.
pub fn run_udp(data: &[u8]) {
    run_with(data, &[Kind::Udp, Kind::Udp, Kind::Udp, Kind::Line]);
}
