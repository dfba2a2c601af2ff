//! A chat server: one chat state (nicknames, rooms, membership, history) and three front
//! ends sharing it, so a person on `nc`, a person in an IRC client and a classroom UDP
//! client talk in the same rooms.
//!
//! * [`state`]: the pure chat logic ([`Chat`]), unit-tested without sockets. Each
//!   operation returns the events to deliver and to whom.
//! * [`mod@line`]: the line protocol for `nc` and `telnet` ([`LINE_HELP`] lists its
//!   commands).
//! * [`irc`]: RFC 1459/2812 and the modern IRC documents (channel operators and
//!   modes, bans, INVITE, KICK, WHO/WHOIS/WHOWAS, AWAY, OPER, KILL, WALLOPS, LUSERS,
//!   ...), IRCv3 capabilities, and the pure message parser; it passes irctest's classic
//!   selection (README).
//! * [`udp`]: the classroom protocol: `username@NAME` joins, every other datagram is
//!   a message relayed to all members (the sender included) as `NAME:text`; `/leave`
//!   leaves, `/who` lists the lobby; members silent for [`ChatConfig::udp_idle`]
//!   expire.
//! * This file: the [`Hub`], delivery and the [`ChatServer`]; `config` holds
//!   [`ChatConfig`] and [`OperAccount`], `ircv3` the capabilities and message tags,
//!   `input` decoding and the flood gate, `render` each front end's syntax.
//!
//! A room is `room` on the line and UDP front ends and `#room` on IRC; line and UDP
//! users start in the [`LOBBY`] (`#lobby`), IRC users join what they like
//! ([`ChatConfig::irc_autojoin`] puts them in the lobby too). Line and UDP users are in
//! one room at a time (a line user kicked from it is in none until it joins one); IRC
//! users may join several. Whoever creates a room (not the lobby) is its operator;
//! operators and modes are the chat state's, so they bind every front end alike.
//!
//! # Delivery
//! The chat state lives in one [`Hub`] per server, owned by the [`ChatServer`] (an `Rc` the
//! connections share; the reactor is single-threaded). A connection asks the chat state for
//! an [`Outcome`] and delivers it through the reactor by handler id: stream members get
//! the bytes queued by reference with [`Conn::write_shared_to`] (each event is rendered
//! once per front-end syntax into one shared [`Bytes`], not per recipient, and never
//! copied per recipient; flushed once per event batch, so a backlog of messages to one
//! recipient costs one gathered `sendmsg`), UDP members a datagram through
//! [`send_via`]. Per-recipient renderings (IRCv3 tags, personal events) are copied
//! with [`Conn::write_to`].
//! Delivery never calls back into a protocol, so the chat state is never borrowed twice.
//!
//! # Robustness
//! * Lines are at most [`ChatConfig::max_line`] bytes (IRC: [`ChatConfig::irc_max_line`]);
//!   a longer one is dropped with a notice (IRC: 417), memory stays bounded
//!   ([`LineBuffer`](crate::proto::framing::LineBuffer)).
//! * Input is decoded as UTF-8 lossily (bad bytes become U+FFFD); control characters
//!   other than IRC formatting become spaces, so nobody can inject lines.
//! * Flood limit: a token bucket per client ([`ChatConfig::flood_burst`] lines at once,
//!   refilled at [`ChatConfig::flood_rate`] per second; every line counts, commands
//!   too). A line beyond it is dropped and the client told once per episode (line:
//!   `* flood limit ...`, IRC: a `NOTICE`, UDP: an `error:` datagram); after
//!   [`ChatConfig::flood_disconnect`] dropped lines in a row a stream client is
//!   disconnected (`Excess flood`, logged).
//! * Output is bounded: the listeners' [`StreamConfig::max_output`](crate::net::StreamConfig)
//!   (1 MiB by default) disconnects a client whose pending output passes it (it stopped
//!   reading); the connection logs why, and its leave is announced to its rooms.
//! * A connection that goes away for any reason is removed from every room and its
//!   quit announced; a client that does not register within
//!   [`ChatConfig::registration_timeout`] is closed.
//!
//! # Examples
//!
//! The three front ends on free ports of one reactor; an IRC client on another
//! thread registers, quits, and stops the reactor.
//!
//! ```
//! use std::io::{self, Read, Write};
//! use std::net::{SocketAddr, TcpStream};
//! use std::time::Duration;
//! use readyloop::proto::chat::{ChatConfig, ChatServer};
//! use readyloop::reactor::Reactor;
//! use readyloop::selector::Backend;
//!
//! let mut reactor = Reactor::new(Backend::EpollEt)?;
//! let chat = ChatServer::new(ChatConfig::default());
//! let (_, lines) = chat.listen_lines(&mut reactor, "127.0.0.1:0")?;
//! let (_, irc) = chat.listen_irc(&mut reactor, "127.0.0.1:0")?;
//! let (_, udp) = chat.bind_udp(&mut reactor, "127.0.0.1:0")?;
//! println!("nc {} {}; irc://{irc}; udp://{udp}", lines.ip(), lines.port());
//!
//! fn irc_session(addr: SocketAddr) -> io::Result<String> {
//!     let mut c = TcpStream::connect(addr)?;
//!     c.set_read_timeout(Some(Duration::from_secs(5)))?;
//!     c.write_all(b"NICK alice\r\nUSER alice 0 * :Alice\r\nQUIT :bye\r\n")?;
//!     let mut replies = String::new();
//!     c.read_to_string(&mut replies)?; // the server closes after QUIT
//!     Ok(replies)
//! }
//! let handle = reactor.handle();
//! let client = std::thread::spawn(move || {
//!     let replies = irc_session(irc);
//!     let _ = handle.stop(); // whatever happened: the loop below must end
//!     replies
//! });
//! reactor.run()?;
//! let replies = client.join().expect("client thread")?;
//! assert!(replies.contains(" 001 alice "), "{replies}"); // RPL_WELCOME
//! assert!(replies.contains("ERROR :"), "{replies}"); // the goodbye before the close
//! assert_eq!(chat.members(), 0);
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod irc;
pub mod line;
mod render;
pub mod state;
pub mod udp;

pub use self::state::{
    Chat, ChatError, ChatLimits, Event, MemberId, ModeChange, MsgKind, Outcome, RoomModes, Status,
    TokenBucket, LOBBY,
};
pub use line::LINE_HELP;

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;

use bytes::Bytes;

use crate::net::{send_via, write_shared_to, Conn, Datagrams, Listen, PeerAddr, Protocol};
use crate::reactor::HandlerId;

mod config;
mod input;
mod ircv3;

pub use self::config::{ChatConfig, OperAccount};
pub(crate) use self::input::{client_warn, decode, peer_host, Flood, Gate};
pub use self::ircv3::{irc_time, Caps};
pub(crate) use self::ircv3::{tag_lines, Tags};

/// How a member is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A stream connection speaking `flavor`.
    Stream {
        /// The connection's handler.
        id: HandlerId,
        /// Its protocol.
        flavor: Flavor,
        /// The IRCv3 capabilities it enabled (IRC only).
        caps: Caps,
    },
    /// A UDP client.
    Datagram {
        /// The UDP socket's handler.
        sock: HandlerId,
        /// The client's address.
        addr: SocketAddr,
    },
}

/// The syntax a member's front end speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// The line protocol.
    Line,
    /// IRC.
    Irc,
    /// Classroom UDP.
    Udp,
}

impl Endpoint {
    fn flavor(&self) -> Flavor {
        match self {
            Endpoint::Stream { flavor, .. } => *flavor,
            Endpoint::Datagram { .. } => Flavor::Udp,
        }
    }

    /// The IRCv3 capabilities (none but for IRC clients).
    pub fn caps(&self) -> Caps {
        match self {
            Endpoint::Stream { caps, .. } => *caps,
            Endpoint::Datagram { .. } => Caps::default(),
        }
    }
}

/// What every front end of one server shares: the chat state and the settings.
#[derive(Debug)]
pub struct Hub {
    /// The chat.
    pub chat: Chat<Endpoint>,
    /// The settings.
    pub cfg: ChatConfig,
    /// When the server started (IRC 003).
    pub started: std::time::SystemTime,
    /// The last message id handed out (IRCv3 `msgid`).
    pub msgid: std::cell::Cell<u64>,
    /// IRC connections not registered yet (`LUSERS`).
    pub unregistered: usize,
    /// The most members there have been at once (`LUSERS`).
    pub max_users: usize,
}

/// Where deliveries go: implemented for a stream connection and a UDP socket, which
/// reach other handlers through the reactor by id.
pub(crate) trait Sink {
    /// Queues bytes on a stream connection.
    fn to_stream(&mut self, id: HandlerId, data: &[u8]);
    /// Queues a shared chunk on a stream connection by reference (no copy).
    fn to_stream_shared(&mut self, id: HandlerId, data: &Bytes);
    /// Sends one datagram through a UDP socket handler.
    fn to_datagram(&mut self, sock: HandlerId, to: SocketAddr, data: &[u8]);
}

impl Sink for Conn<'_, '_> {
    fn to_stream(&mut self, id: HandlerId, data: &[u8]) {
        self.write_to(id, data);
    }

    fn to_stream_shared(&mut self, id: HandlerId, data: &Bytes) {
        self.write_shared_to(id, data);
    }

    fn to_datagram(&mut self, sock: HandlerId, to: SocketAddr, data: &[u8]) {
        self.send_via(sock, data, to);
    }
}

impl Sink for Datagrams<'_, '_> {
    fn to_stream(&mut self, id: HandlerId, data: &[u8]) {
        self.write_to(id, data);
    }

    fn to_stream_shared(&mut self, id: HandlerId, data: &Bytes) {
        write_shared_to(self.reactor(), id, data);
    }

    fn to_datagram(&mut self, sock: HandlerId, to: SocketAddr, data: &[u8]) {
        if sock == self.id() {
            self.send_to(data, to);
        } else {
            send_via(self.reactor(), sock, data, to);
        }
    }
}

/// Sends the shared rendering `text` (one or more `\n`-terminated lines) to one
/// endpoint: by reference on a stream (the same bytes queued on every recipient), one
/// datagram per line (without the newline) over UDP.
pub(crate) fn send_shared(sink: &mut dyn Sink, ep: &Endpoint, text: &Bytes) {
    match *ep {
        Endpoint::Stream { id, .. } => sink.to_stream_shared(id, text),
        Endpoint::Datagram { sock, addr } => {
            for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                sink.to_datagram(sock, addr, line);
            }
        }
    }
}

/// Sends `text` (one or more `\n`-terminated lines) to one endpoint: as is on a stream,
/// one datagram per line (without the newline) over UDP.
pub(crate) fn send_text(sink: &mut dyn Sink, ep: &Endpoint, text: &str) {
    match *ep {
        Endpoint::Stream { id, .. } => sink.to_stream(id, text.as_bytes()),
        Endpoint::Datagram { sock, addr } => {
            for line in text.lines().filter(|l| !l.is_empty()) {
                sink.to_datagram(sock, addr, line.as_bytes());
            }
        }
    }
}

impl Hub {
    /// Delivers an outcome: each event rendered once per syntax (personal events once
    /// per recipient) and queued on every recipient, by reference: the recipients of
    /// one rendering share its bytes ([`Conn::write_shared_to`]). IRC clients that
    /// enabled `server-time` or `message-tags` get the tags in front of each line.
    pub(crate) fn deliver(&self, out: &Outcome, sink: &mut dyn Sink) {
        for d in &out.deliveries {
            let mut cache: [Option<Bytes>; 3] = [None, None, None];
            let mut tags: Option<Tags> = None;
            for &to in &d.to {
                let Some(m) = self.chat.member(to) else {
                    continue;
                };
                let flavor = m.endpoint.flavor();
                let caps = m.endpoint.caps();
                if d.event.is_personal() || render::per_caps(&d.event) {
                    let text = render::render(self, flavor, &d.event, m);
                    if caps.tags() && !matches!(d.event, Event::Joined { .. }) {
                        let t = tags.get_or_insert_with(|| self.tags_for(&d.event));
                        send_text(sink, &m.endpoint, &tag_lines(&text, &t.for_caps(caps)));
                    } else {
                        send_text(sink, &m.endpoint, &text);
                    }
                } else {
                    let text = cache[flavor as usize].get_or_insert_with(|| {
                        Bytes::from(render::render(self, flavor, &d.event, m))
                    });
                    if caps.tags() {
                        let t = tags.get_or_insert_with(|| self.tags_for(&d.event));
                        // Rendered text is UTF-8 (a String before it was shared).
                        let plain = String::from_utf8_lossy(text);
                        send_text(sink, &m.endpoint, &tag_lines(&plain, &t.for_caps(caps)));
                    } else {
                        send_shared(sink, &m.endpoint, text);
                    }
                }
            }
        }
    }

    /// A fresh message id.
    pub(crate) fn next_msgid(&self) -> String {
        let n = self.msgid.get() + 1;
        self.msgid.set(n);
        format!("{:x}-{n}", self.started_secs())
    }

    fn started_secs(&self) -> u64 {
        self.started
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// The tags an event carries: the time now, and a message id for messages.
    pub(crate) fn tags_for(&self, ev: &Event) -> Tags {
        let msgid =
            matches!(ev, Event::Room { .. } | Event::Private { .. }).then(|| self.next_msgid());
        Tags {
            time: irc_time(std::time::SystemTime::now()),
            msgid,
        }
    }
}

/// A chat server: the shared chat state, and the front ends to put on a reactor.
#[derive(Clone, Debug)]
pub struct ChatServer {
    hub: Rc<RefCell<Hub>>,
}

impl ChatServer {
    /// A server with an empty chat.
    pub fn new(cfg: ChatConfig) -> ChatServer {
        ChatServer {
            hub: Rc::new(RefCell::new(Hub {
                chat: Chat::new(cfg.limits.clone()),
                cfg,
                started: std::time::SystemTime::now(),
                msgid: std::cell::Cell::new(0),
                unregistered: 0,
                max_users: 0,
            })),
        }
    }

    /// A factory for line-protocol connections.
    pub fn line_factory(&self) -> impl FnMut(&PeerAddr) -> Option<Box<dyn Protocol>> {
        let hub = self.hub.clone();
        move |peer| Some(Box::new(line::LineClient::new(hub.clone(), peer)) as Box<dyn Protocol>)
    }

    /// A factory for IRC connections.
    pub fn irc_factory(&self) -> impl FnMut(&PeerAddr) -> Option<Box<dyn Protocol>> {
        let hub = self.hub.clone();
        move |peer| Some(Box::new(irc::IrcClient::new(hub.clone(), peer)) as Box<dyn Protocol>)
    }

    /// The UDP front end, for a socket bound elsewhere.
    pub fn udp_protocol(&self) -> udp::UdpChat {
        udp::UdpChat::new(self.hub.clone())
    }

    /// Listens for line-protocol clients on TCP `addr`, with the listener settings
    /// of the server's [`ChatConfig`].
    ///
    /// # Errors
    ///
    /// As [`Listen::listen_tcp`]: `addr` does not resolve, cannot be bound or
    /// listened on, or the backend refuses the descriptor.
    pub fn listen_lines(
        &self,
        net: &mut impl Listen,
        addr: impl ToSocketAddrs,
    ) -> io::Result<(HandlerId, SocketAddr)> {
        let cfg = self.hub.borrow().cfg.listen.clone();
        net.listen_tcp_with(addr, self.line_factory(), cfg)
    }

    /// Listens for IRC clients on TCP `addr`, with the listener settings of the
    /// server's [`ChatConfig`].
    ///
    /// # Errors
    ///
    /// As [`listen_lines`](Self::listen_lines).
    pub fn listen_irc(
        &self,
        net: &mut impl Listen,
        addr: impl ToSocketAddrs,
    ) -> io::Result<(HandlerId, SocketAddr)> {
        let cfg = self.hub.borrow().cfg.listen.clone();
        net.listen_tcp_with(addr, self.irc_factory(), cfg)
    }

    /// Serves the classroom UDP chat on `addr`.
    ///
    /// # Errors
    ///
    /// As [`Listen::bind_udp`]: `addr` does not resolve or cannot be bound, or the
    /// backend refuses the descriptor.
    pub fn bind_udp(
        &self,
        net: &mut impl Listen,
        addr: impl ToSocketAddrs,
    ) -> io::Result<(HandlerId, SocketAddr)> {
        net.bind_udp(addr, self.udp_protocol())
    }

    /// How many members the chat has (all front ends).
    pub fn members(&self) -> usize {
        self.hub.borrow().chat.len()
    }

    /// Runs `f` on the chat state (for inspection and tests).
    pub fn with_chat<R>(&self, f: impl FnOnce(&Chat<Endpoint>) -> R) -> R {
        f(&self.hub.borrow().chat)
    }
}

/// The quit message announced when a stream member's connection goes away (logged
/// when it was an error).
fn quit_reason(conn: &crate::net::Conn<'_, '_>, reason: Option<&std::io::Error>) -> String {
    match reason {
        Some(e) => {
            log::info!("chat: {} lost: {e}", conn.peer());
            format!("Connection lost: {e}")
        }
        None => "Connection closed".to_string(),
    }
}
