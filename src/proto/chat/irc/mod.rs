//! The IRC front end: RFC 1459/2812 and the modern IRC documents as irssi, WeeChat,
//! `ii`, Python's `irc` package and irctest expect, a few IRCv3 capabilities, and the
//! pure message parser ([`parse`]).
//!
//! Registration: `PASS` (checked against [`ChatConfig::password`](super::ChatConfig)),
//! `NICK` and `USER` in either order, `CAP LS [302]`/`REQ`/`END` (which hold
//! registration until `CAP END`); then 001-005, `LUSERS` (251-255, 265, 266), the MOTD
//! (375/372/376 or 422). IRC clients are joined nowhere unless
//! [`ChatConfig::irc_autojoin`](super::ChatConfig) (`#lobby`). Before that, other
//! commands get 451 (ERR_NOTREGISTERED).
//!
//! Each command is one `irc_*` method, found in a table (`PRE_REGISTRATION`,
//! `REGISTERED`); anything else gets 421. Membership, operators, modes, bans,
//! invitations and away states are the chat state's ([`Chat`](super::Chat)), so the line
//! protocol and the UDP room see the same: this module parses and renders. Channel modes
//! `+o +v +t +n +m +s +i +k +l +b` (at most [`MAX_MODES`] a `MODE`), user modes
//! `+i +w` and `-o`; server operators ([`ChatConfig::opers`](super::ChatConfig), Argon2
//! hashes) may `KILL`, `WALLOPS` and moderate any channel. A `PRIVMSG`/`NOTICE` reaches
//! each of its targets once, at most [`MAX_TARGETS`] of them. `PING` and `PONG` are not
//! counted by the flood limit.
//!
//! IRCv3: `multi-prefix`, `server-time`, `message-tags` (`msgid` and `time` tags; client
//! tags are not relayed), `echo-message`, `away-notify`, `cap-notify`, `batch`,
//! `userhost-in-names`. A
//! room's history is replayed on join: between two server notices for plain clients;
//! for `server-time`/`message-tags` clients each message carries the time it was sent,
//! inside a `chathistory` batch if they enabled `batch`.
//!
//! Channels are the chat state's rooms with a `#`: `#Rust` here is `rust` on the line
//! protocol.
//!
//! # Where things are
//! This file holds the client state, the command tables, the reply helpers and the
//! [`Protocol`] glue; the `irc_*` methods live by concern in `registration`,
//! `channels`, `messaging` (`PRIVMSG`, `NOTICE`, `AWAY`), `modes` (`MODE`, `OPER`,
//! `KILL`, `WALLOPS`), `queries` (`WHO`, `WHOIS`, ...) and `server` (`MOTD`,
//! `LUSERS`, ...); the message parser is in `parse`.

use std::cell::RefCell;
use std::fmt::Write;
use std::io;
use std::rc::Rc;

use super::state::{ChatError, MemberId, Outcome};
use super::{decode, render, Caps, Flood, Gate, Hub};
use crate::net::{Conn, PeerAddr, Protocol};
use crate::proto::framing::{Line, LineBuffer};
use crate::reactor::TimerId;

mod channels;
mod messaging;
mod modes;
mod parse;
mod queries;
mod registration;
mod server;

pub use self::modes::MAX_MODES;
pub use self::parse::{parse, IrcMessage};

/// Most distinct targets of one `PRIVMSG` or `NOTICE` (`TARGMAX` in 005); the rest
/// get 407 (ERR_TOOMANYTARGETS; `NOTICE`: silently dropped).
pub const MAX_TARGETS: usize = 4;

/// A command handler: `false` stops reading (the connection is closing).
type Handler = fn(&mut IrcClient, &mut Conn<'_, '_>, &IrcMessage<'_>) -> bool;

/// Commands allowed before registration.
const PRE_REGISTRATION: &[(&str, Handler)] = &[
    ("CAP", IrcClient::irc_cap),
    ("NICK", IrcClient::irc_nick),
    ("PASS", IrcClient::irc_pass),
    ("PING", IrcClient::irc_ping),
    ("PONG", IrcClient::irc_pong),
    ("QUIT", IrcClient::irc_quit),
    ("USER", IrcClient::irc_user),
];

/// Commands of a registered client.
const REGISTERED: &[(&str, Handler)] = &[
    ("ADMIN", IrcClient::irc_admin),
    ("AWAY", IrcClient::irc_away),
    ("INFO", IrcClient::irc_info),
    ("INVITE", IrcClient::irc_invite),
    ("ISON", IrcClient::irc_ison),
    ("JOIN", IrcClient::irc_join),
    ("KICK", IrcClient::irc_kick),
    ("KILL", IrcClient::irc_kill),
    ("LIST", IrcClient::irc_list),
    ("LUSERS", IrcClient::irc_lusers),
    ("MODE", IrcClient::irc_mode),
    ("MOTD", IrcClient::irc_motd),
    ("NAMES", IrcClient::irc_names),
    ("NOTICE", IrcClient::irc_privmsg),
    ("OPER", IrcClient::irc_oper),
    ("PART", IrcClient::irc_part),
    ("PRIVMSG", IrcClient::irc_privmsg),
    ("TIME", IrcClient::irc_time),
    ("TOPIC", IrcClient::irc_topic),
    ("USERHOST", IrcClient::irc_userhost),
    ("VERSION", IrcClient::irc_version),
    ("WALLOPS", IrcClient::irc_wallops),
    ("WHO", IrcClient::irc_who),
    ("WHOIS", IrcClient::irc_whois),
    ("WHOWAS", IrcClient::irc_whowas),
];

/// The software version in 002, 004 and `VERSION`.
const VERSION: &str = concat!("readyloop-", env!("CARGO_PKG_VERSION"));

/// Another connection's order to this one (delivered with [`Conn::notify`]).
#[derive(Debug)]
pub(crate) struct Killed {
    /// The quit reason others see (`Killed (oper (reason))`).
    pub(crate) reason: String,
}

/// Writes IRC lines to `conn`, each cut to the protocol's 512 bytes
/// ([`render::clip_irc`]).
fn write_irc(conn: &mut Conn<'_, '_>, text: &str) {
    conn.write(render::clip_irc(text).as_bytes());
}

/// One IRC connection.
pub(crate) struct IrcClient {
    hub: Rc<RefCell<Hub>>,
    lines: LineBuffer,
    flood: Flood,
    host: String,
    /// The nickname asked for before registration.
    nick: Option<String>,
    /// `USER`'s user name and real name.
    user: Option<(String, String)>,
    /// The password given with `PASS`.
    pass: Option<String>,
    /// Capabilities enabled (kept here until registration, then in the endpoint too).
    caps: Caps,
    /// `CAP LS`/`REQ` before registration holds it until `CAP END`.
    cap_negotiating: bool,
    me: Option<MemberId>,
    reg_timer: Option<TimerId>,
    /// Counted in the hub's unregistered connections (LUSERS 253).
    counted: bool,
}

impl IrcClient {
    pub(crate) fn new(hub: Rc<RefCell<Hub>>, peer: &PeerAddr) -> IrcClient {
        let (max, flood) = {
            let h = hub.borrow();
            (h.cfg.irc_max_line, Flood::new(&h.cfg))
        };
        let host = super::peer_host(peer);
        IrcClient {
            hub,
            lines: LineBuffer::new(max.saturating_sub(2)),
            flood,
            host,
            nick: None,
            user: None,
            pass: None,
            caps: Caps::default(),
            cap_negotiating: false,
            me: None,
            reg_timer: None,
            counted: false,
        }
    }

    /// The nickname to address replies to (`*` before one is known).
    fn target(&self) -> String {
        let hub = self.hub.borrow();
        match self.me.and_then(|id| hub.chat.member(id)) {
            Some(m) => m.nick.to_string(),
            None => self.nick.clone().unwrap_or_else(|| "*".into()),
        }
    }

    fn srv(&self) -> String {
        self.hub.borrow().cfg.server_name.clone()
    }

    /// Sends a numeric reply: `:server NNN target rest`.
    fn numeric(&self, conn: &mut Conn<'_, '_>, code: u16, rest: &str) {
        let line = format!(":{} {code:03} {} {rest}\r\n", self.srv(), self.target());
        write_irc(conn, &line);
    }

    /// Appends a numeric reply to `s` (for multi-line answers written at once).
    fn push_numeric(&self, s: &mut String, code: u16, rest: &str) {
        let _ = write!(s, ":{} {code:03} {} {rest}\r\n", self.srv(), self.target());
    }

    fn chat_error(&self, conn: &mut Conn<'_, '_>, e: &ChatError, cmd: &str) {
        let (code, text) = match e {
            ChatError::BadNick(n) => (432, format!("{n} :Erroneous nickname")),
            ChatError::NickTaken(n) => (433, format!("{n} :Nickname is already in use")),
            ChatError::BadRoom(r) | ChatError::NoSuchRoom(r) => {
                (403, format!("#{r} :No such channel"))
            }
            ChatError::NotInRoom(r) if cmd == "PRIVMSG" || cmd == "NOTICE" => {
                (404, format!("#{r} :Cannot send to channel"))
            }
            ChatError::NotInRoom(r) => (442, format!("#{r} :You're not on that channel")),
            ChatError::NoSuchNick(n) => (401, format!("{n} :No such nick/channel")),
            ChatError::TooManyRooms(r) => (405, format!("#{r} :You have joined too many channels")),
            ChatError::NoText => (412, ":No text to send".into()),
            ChatError::NoSuchMember => (451, ":You have not registered".into()),
            ChatError::NotOperator(r) => (482, format!("#{r} :You're not channel operator")),
            ChatError::NoPrivileges => {
                (481, ":Permission Denied- You're not an IRC operator".into())
            }
            ChatError::TargetNotInRoom(n, r) => {
                (441, format!("{n} #{r} :They aren't on that channel"))
            }
            ChatError::AlreadyInRoom(n, r) => (443, format!("{n} #{r} :is already on channel")),
            ChatError::CannotSend(r) => (404, format!("#{r} :Cannot send to channel")),
            ChatError::Banned(r) => (474, format!("#{r} :Cannot join channel (+b)")),
            ChatError::InviteOnly(r) => (473, format!("#{r} :Cannot join channel (+i)")),
            ChatError::BadKey(r) => (475, format!("#{r} :Cannot join channel (+k)")),
            ChatError::RoomFull(r) => (471, format!("#{r} :Cannot join channel (+l)")),
        };
        self.numeric(conn, code, &text);
    }

    fn deliver(&self, conn: &mut Conn<'_, '_>, out: Result<Outcome, ChatError>, cmd: &str) {
        match out {
            Ok(out) => self.hub.borrow().deliver(&out, conn),
            Err(e) => self.chat_error(conn, &e, cmd),
        }
    }

    /// Handles one line; `false` stops reading (closing). Every line but `PING` and
    /// `PONG` (keepalives, answered in kind) passes the flood gate.
    fn line(&mut self, conn: &mut Conn<'_, '_>, line: Line<'_>) -> bool {
        let text = match line {
            Line::Line(bytes) => Some(decode(bytes)),
            Line::TooLong => None,
        };
        let msg = text.as_deref().and_then(parse);
        let keepalive = msg.as_ref().is_some_and(|m| {
            m.command.eq_ignore_ascii_case("PING") || m.command.eq_ignore_ascii_case("PONG")
        });
        if !keepalive {
            match self.flood.check(conn.now()) {
                Gate::Pass => {}
                Gate::DropAndWarn => {
                    let (burst, rate) = {
                        let h = self.hub.borrow();
                        (h.cfg.flood_burst, h.cfg.flood_rate)
                    };
                    let line = format!(
                        ":{} NOTICE {} :*** flood limit: at most {burst} lines at once and {rate} per second; lines dropped\r\n",
                        self.srv(),
                        self.target()
                    );
                    write_irc(conn, &line);
                    return true;
                }
                Gate::Drop => return true,
                Gate::Disconnect => {
                    super::client_warn(format_args!(
                        "chat: {}: excess flood, disconnecting",
                        conn.peer()
                    ));
                    self.close_link(conn, "Excess Flood");
                    return false;
                }
            }
        }
        if text.is_none() {
            self.numeric(conn, 417, ":Input line was too long");
            return true;
        }
        match msg {
            Some(msg) => self.command(conn, &msg),
            None => true,
        }
    }

    /// Whether `msg` has `n` parameters, the first `n` non-empty; else 461.
    fn need(&self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>, n: usize) -> bool {
        if msg.params.len() < n || msg.params[..n].iter().any(|p| p.is_empty()) {
            let cmd = msg.command.to_ascii_uppercase();
            self.numeric(conn, 461, &format!("{cmd} :Not enough parameters"));
            false
        } else {
            true
        }
    }

    /// Dispatches one message to its `irc_*` handler.
    fn command(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let cmd = msg.command.to_ascii_uppercase();
        let find = |table: &[(&str, Handler)]| {
            table.iter().find(|(name, _)| *name == cmd).map(|&(_, h)| h)
        };
        if let Some(h) = find(PRE_REGISTRATION) {
            return h(self, conn, msg);
        }
        if self.me.is_none() {
            self.numeric(conn, 451, ":You have not registered");
            return true;
        }
        match find(REGISTERED) {
            Some(h) => h(self, conn, msg),
            None => {
                self.numeric(conn, 421, &format!("{} :Unknown command", msg.command));
                true
            }
        }
    }

    /// Sends `ERROR :Closing Link`, leaves the chat with `reason`, closes.
    fn close_link(&mut self, conn: &mut Conn<'_, '_>, reason: &str) {
        write_irc(
            conn,
            &format!("ERROR :Closing Link: {} ({reason})\r\n", self.host),
        );
        self.leave(conn, reason);
        conn.close();
    }

    // ----- registration -----------------------------------------------------------

    /// Leaves the chat (once), announcing it.
    fn leave(&mut self, conn: &mut Conn<'_, '_>, reason: &str) {
        if self.counted {
            self.counted = false;
            let mut hub = self.hub.borrow_mut();
            hub.unregistered = hub.unregistered.saturating_sub(1);
        }
        if let Some(me) = self.me.take() {
            let mut hub = self.hub.borrow_mut();
            let out = hub.chat.quit(me, reason);
            hub.deliver(&out, conn);
        }
    }
}

impl Protocol for IrcClient {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        let timeout = {
            let mut hub = self.hub.borrow_mut();
            hub.unregistered += 1;
            hub.cfg.registration_timeout
        };
        self.counted = true;
        self.reg_timer = Some(conn.set_timer(timeout));
    }

    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
        let mut lines = std::mem::replace(&mut self.lines, LineBuffer::new(0));
        lines.push(data, |l| self.line(conn, l));
        self.lines = lines;
    }

    fn timer(&mut self, conn: &mut Conn<'_, '_>, id: TimerId) {
        if self.reg_timer == Some(id) {
            self.reg_timer = None;
            if self.me.is_none() {
                log::info!("chat: {}: not registered in time; closing", conn.peer());
                self.close_link(conn, "Registration timeout");
            }
        }
    }

    fn event(&mut self, conn: &mut Conn<'_, '_>, event: Box<dyn std::any::Any>) {
        if let Ok(k) = event.downcast::<Killed>() {
            self.close_link(conn, &k.reason);
        }
    }

    fn connection_lost(&mut self, conn: &mut Conn<'_, '_>, reason: Option<&io::Error>) {
        let why = super::quit_reason(conn, reason);
        self.leave(conn, &why);
    }

    fn shutdown(&mut self, conn: &mut Conn<'_, '_>) {
        self.close_link(conn, "Server shutting down");
    }
}

#[cfg(test)]
mod tests;
