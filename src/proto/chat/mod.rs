//! A chat server: one core (nicknames, rooms, membership, history) and three front
//! ends sharing it, so a person on `nc`, a person in an IRC client and a classroom UDP
//! client talk in the same rooms.
//!
//! * [`core`]: the pure chat logic ([`Chat`]), unit-tested without sockets. Each
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
//!
//! A room is `room` on the line and UDP front ends and `#room` on IRC; line and UDP
//! users start in the [`LOBBY`] (`#lobby`), IRC users join what they like
//! ([`ChatConfig::irc_autojoin`] puts them in the lobby too). Line and UDP users are in
//! one room at a time (a line user kicked from it is in none until it joins one); IRC
//! users may join several. Whoever creates a room (not the lobby) is its operator;
//! operators and modes are the core's, so they bind every front end alike.
//!
//! # Delivery
//! The core lives in one [`Hub`] per server, owned by the [`ChatServer`] (an `Rc` the
//! connections share; the reactor is single-threaded). A connection asks the core for
//! an [`Outcome`] and delivers it through the reactor by handler id: stream members get
//! the bytes queued by reference with [`Conn::write_shared_to`] (each event is rendered
//! once per front-end syntax into one shared [`Bytes`], not per recipient, and never
//! copied per recipient; flushed once per event batch, so a backlog of messages to one
//! recipient costs one gathered `sendmsg`), UDP members a datagram through
//! [`send_via`]. Per-recipient renderings (IRCv3 tags, personal events) are copied
//! with [`Conn::write_to`].
//! Delivery never calls back into a protocol, so the core is never borrowed twice.
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

pub mod core;
pub mod irc;
pub mod line;
mod render;
pub mod udp;

pub use self::core::{
    Chat, ChatError, ChatLimits, Event, MemberId, ModeChange, MsgKind, Outcome, RoomModes, Status,
    TokenBucket, LOBBY,
};
pub use line::LINE_HELP;

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::net::{
    send_via, write_shared_to, Conn, Datagrams, Listen, ListenConfig, PeerAddr, Protocol,
};
use crate::reactor::HandlerId;

/// Chat settings.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// History length and room, ban and `WHOWAS` limits.
    pub limits: ChatLimits,
    /// Longest line on the line protocol, in bytes.
    pub max_line: usize,
    /// Longest IRC line, in bytes (RFC 2812 says 512 with CRLF).
    pub irc_max_line: usize,
    /// Lines a client may send at once (the token bucket's size).
    pub flood_burst: u32,
    /// Lines per second a client may keep sending.
    pub flood_rate: f64,
    /// Dropped lines in a row after which a stream client is disconnected.
    pub flood_disconnect: u32,
    /// A stream client that has not chosen a nickname (IRC: registered) by then is
    /// closed.
    pub registration_timeout: Duration,
    /// A UDP member silent this long is removed (its leave announced).
    pub udp_idle: Duration,
    /// Most UDP members at once (each costs a little memory; UDP has no connection).
    pub max_udp_members: usize,
    /// The server's name in IRC prefixes and numerics.
    pub server_name: String,
    /// The network's name (IRC 001 and `NETWORK` in 005).
    pub network: String,
    /// The message of the day (IRC `MOTD`, shown on the line protocol's welcome).
    pub motd: Vec<String>,
    /// Whether IRC clients are joined to `#lobby` on connect (default: no, as on
    /// every IRC server; line and UDP users always start in the lobby).
    pub irc_autojoin: bool,
    /// Server operator accounts (IRC `OPER name password`).
    pub opers: Vec<OperAccount>,
    /// The server password IRC clients must give with `PASS` before registering.
    pub password: Option<String>,
    /// Listener settings for the line and IRC listeners; `stream.max_output` bounds
    /// every client's pending output.
    pub listen: ListenConfig,
}

impl Default for ChatConfig {
    fn default() -> ChatConfig {
        let mut listen = ListenConfig::default();
        listen.stream.max_output = Some(1 << 20);
        ChatConfig {
            limits: ChatLimits::default(),
            max_line: 2048,
            irc_max_line: 512,
            flood_burst: 20,
            flood_rate: 10.0,
            flood_disconnect: 200,
            registration_timeout: Duration::from_secs(60),
            udp_idle: Duration::from_secs(300),
            max_udp_members: 10_000,
            server_name: "readyloop.chat".into(),
            network: "readyloop".into(),
            motd: vec![
                "Welcome to the readyloop chat.".into(),
                "nc, IRC and UDP users share these rooms; nc and UDP users start in #lobby.".into(),
            ],
            irc_autojoin: false,
            opers: Vec::new(),
            password: None,
            listen,
        }
    }
}

/// A server operator account: a name and an Argon2id hash of its password (PHC
/// string, as `argon2` or the `argon2` crate writes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperAccount {
    /// The name given to `OPER`.
    pub name: String,
    /// The password's hash (`$argon2id$v=19$...`).
    pub hash: String,
}

impl OperAccount {
    /// An account from a name and a hash.
    ///
    /// # Errors
    ///
    /// A message naming the operator if `hash` is not a PHC string.
    pub fn from_hash(name: &str, hash: &str) -> Result<OperAccount, String> {
        argon2::PasswordHash::new(hash).map_err(|e| format!("operator {name}: bad hash: {e}"))?;
        Ok(OperAccount {
            name: name.to_string(),
            hash: hash.to_string(),
        })
    }

    /// An account from a plain password, hashed here (Argon2id, a random salt from
    /// the system).
    ///
    /// # Errors
    ///
    /// `/dev/urandom` cannot be read, or hashing fails (`Other`; not expected with
    /// the default Argon2 parameters).
    pub fn from_password(name: &str, password: &str) -> io::Result<OperAccount> {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let mut salt = [0u8; 16];
        io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut salt)?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| io::Error::other(e.to_string()))?;
        let hash = argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(OperAccount {
            name: name.to_string(),
            hash: hash.to_string(),
        })
    }

    /// Whether `password` is this account's.
    pub fn verify(&self, password: &str) -> bool {
        use argon2::password_hash::PasswordVerifier;
        argon2::PasswordHash::new(&self.hash).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    }
}

/// The IRCv3 capabilities an IRC client enabled (`CAP REQ`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps(pub u16);

impl Caps {
    /// `multi-prefix`: every status prefix in `NAMES` and `WHO` (`@+nick`).
    pub const MULTI_PREFIX: Caps = Caps(1);
    /// `server-time`: a `time` tag on relayed messages.
    pub const SERVER_TIME: Caps = Caps(2);
    /// `message-tags`: tags on messages (`msgid`), `TAGMSG`.
    pub const MESSAGE_TAGS: Caps = Caps(4);
    /// `echo-message`: one's own messages come back.
    pub const ECHO_MESSAGE: Caps = Caps(8);
    /// `away-notify`: `AWAY` of people one shares a room with.
    pub const AWAY_NOTIFY: Caps = Caps(16);
    /// `cap-notify` (implied by `CAP LS 302`).
    pub const CAP_NOTIFY: Caps = Caps(32);
    /// `batch` (history replay on join comes as a `chathistory` batch).
    pub const BATCH: Caps = Caps(64);
    /// `userhost-in-names`: `NAMES` shows `nick!user@host`.
    pub const USERHOST_IN_NAMES: Caps = Caps(128);
    /// Every capability by name, as `CAP LS` lists them.
    pub const ALL: [(&'static str, Caps); 8] = [
        ("away-notify", Caps::AWAY_NOTIFY),
        ("batch", Caps::BATCH),
        ("cap-notify", Caps::CAP_NOTIFY),
        ("echo-message", Caps::ECHO_MESSAGE),
        ("message-tags", Caps::MESSAGE_TAGS),
        ("multi-prefix", Caps::MULTI_PREFIX),
        ("server-time", Caps::SERVER_TIME),
        ("userhost-in-names", Caps::USERHOST_IN_NAMES),
    ];

    /// The capability called `name`.
    pub fn by_name(name: &str) -> Option<Caps> {
        Caps::ALL
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, c)| c)
    }

    /// Whether every capability of `other` is enabled.
    pub fn has(self, other: Caps) -> bool {
        self.0 & other.0 == other.0
    }

    /// Enables or disables `other`.
    pub fn set(&mut self, other: Caps, on: bool) {
        if on {
            self.0 |= other.0;
        } else {
            self.0 &= !other.0;
        }
    }

    /// The enabled capabilities' names, space-separated.
    pub fn names(self) -> String {
        Caps::ALL
            .iter()
            .filter(|&&(_, c)| self.has(c))
            .map(|&(n, _)| n)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether messages to this client carry tags.
    pub fn tags(self) -> bool {
        self.0 & (Caps::SERVER_TIME.0 | Caps::MESSAGE_TAGS.0) != 0
    }
}

/// An RFC 3339 UTC time with milliseconds (`2024-01-02T03:04:05.678Z`), as
/// IRCv3 `server-time` writes it.
pub fn irc_time(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

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

/// What every front end of one server shares: the chat core and the settings.
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
        send_via(self.reactor(), sock, data, to);
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

/// The IRCv3 tags of one delivery.
#[derive(Clone, Debug)]
pub(crate) struct Tags {
    /// `time`.
    pub(crate) time: String,
    /// `msgid`, for messages.
    pub(crate) msgid: Option<String>,
}

impl Tags {
    /// The tag string (without `@` and the space) for a client with `caps`.
    pub(crate) fn for_caps(&self, caps: Caps) -> String {
        let mut s = String::new();
        if caps.has(Caps::MESSAGE_TAGS) {
            if let Some(id) = &self.msgid {
                s.push_str("msgid=");
                s.push_str(id);
            }
        }
        if caps.has(Caps::SERVER_TIME) || caps.has(Caps::MESSAGE_TAGS) {
            if !s.is_empty() {
                s.push(';');
            }
            s.push_str("time=");
            s.push_str(&self.time);
        }
        s
    }
}

/// `text` (IRC lines) with `@tags ` in front of each line.
pub(crate) fn tag_lines(text: &str, tags: &str) -> String {
    if tags.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 40);
    for l in text.split_inclusive('\n') {
        out.push('@');
        out.push_str(tags);
        out.push(' ');
        out.push_str(l);
    }
    out
}

thread_local! {
    /// Warnings a client causes at will (flooding, filling the UDP member table):
    /// at most one a second per reactor thread, so clients cannot fill the log.
    static CLIENT_WARN: crate::net::WarnLimit =
        const { crate::net::WarnLimit::new(Duration::from_secs(1)) };
}

/// Logs a warning a client caused, rate-limited (see `CLIENT_WARN`).
pub(crate) fn client_warn(msg: std::fmt::Arguments<'_>) {
    CLIENT_WARN.with(|w| w.warn(module_path!(), msg));
}

/// The host part of a stream member's `user@host`: the peer's IP, or `local`.
pub(crate) fn peer_host(peer: &PeerAddr) -> String {
    match peer {
        PeerAddr::Inet(a) => a.ip().to_string(),
        PeerAddr::Unix => "local".to_string(),
    }
}

/// Decodes a received line: UTF-8 (lossy), control characters neutralised.
pub(crate) fn decode(line: &[u8]) -> String {
    self::core::sanitize(&String::from_utf8_lossy(line))
}

/// What the flood gate says about one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Process it.
    Pass,
    /// Drop it; tell the client (first drop of an episode).
    DropAndWarn,
    /// Drop it silently.
    Drop,
    /// Too many drops in a row: disconnect.
    Disconnect,
}

/// A client's flood state: the bucket and the drops since the last accepted line.
#[derive(Clone, Debug)]
pub(crate) struct Flood {
    bucket: TokenBucket,
    dropped: u32,
    limit: u32,
}

impl Flood {
    pub(crate) fn new(cfg: &ChatConfig) -> Flood {
        Flood {
            bucket: TokenBucket::new(cfg.flood_burst, cfg.flood_rate),
            dropped: 0,
            limit: cfg.flood_disconnect,
        }
    }

    pub(crate) fn check(&mut self, now: Instant) -> Gate {
        if self.bucket.take(now) {
            self.dropped = 0;
            return Gate::Pass;
        }
        self.dropped += 1;
        if self.dropped >= self.limit {
            Gate::Disconnect
        } else if self.dropped == 1 {
            Gate::DropAndWarn
        } else {
            Gate::Drop
        }
    }
}

/// A chat server: the shared core, and the front ends to put on a reactor.
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

    /// Runs `f` on the chat core (for inspection and tests).
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
