//! The IRC front end: enough of RFC 2812 for irssi, WeeChat, `ii` and Python's `irc`
//! package, plus the pure message parser ([`parse`]).
//!
//! Registration: `NICK` and `USER` in either order (`PASS` ignored, `CAP LS` answered
//! with no capabilities); then 001-005, the MOTD (375/372/376), and an automatic join
//! of `#lobby` (with its history replayed as `PRIVMSG`s between two server notices).
//! Before that, other commands get 451 (ERR_NOTREGISTERED).
//!
//! Commands: `NICK`, `USER`, `PING`/`PONG`, `JOIN` (several channels, `JOIN 0`),
//! `PART`, `PRIVMSG` and `NOTICE` (to `#room` or a nickname; CTCP `ACTION` is an
//! action), `QUIT`, `NAMES`, `TOPIC`, `WHO`, `WHOIS`, `LIST`, `MOTD`, `MODE` (queries
//! only: channels are `+nt`, nobody is an operator), `CAP`. Anything else gets 421.
//! Errors: 401, 403, 404, 405, 407, 411, 412, 417, 421, 431, 432, 433, 442, 451, 461,
//! 462. A `PRIVMSG`/`NOTICE` reaches each of its targets once, at most
//! [`MAX_TARGETS`] of them.
//!
//! Channels are the core's rooms with a `#`: `#Rust` here is `rust` on the line
//! protocol.

use std::cell::RefCell;
use std::fmt::Write;
use std::io;
use std::rc::Rc;

use super::core::{fold, valid_nick, ChatError, MemberId, MsgKind, Outcome, LOBBY};
use super::{decode, render, Endpoint, Flavor, Flood, Gate, Hub};
use crate::net::{Conn, PeerAddr, Protocol};
use crate::proto::framing::{Line, LineBuffer};
use crate::reactor::TimerId;

/// Most distinct targets of one `PRIVMSG` or `NOTICE` (`TARGMAX` in 005); the rest
/// get 407 (ERR_TOOMANYTARGETS; `NOTICE`: silently dropped).
pub const MAX_TARGETS: usize = 4;

/// A parsed IRC message (`[@tags] [:prefix] COMMAND params... [:trailing]`).
#[derive(Debug, PartialEq, Eq)]
pub struct IrcMessage<'a> {
    /// The prefix (without `:`), if any (clients rarely send one).
    pub prefix: Option<&'a str>,
    /// The command as sent (compare case-insensitively).
    pub command: &'a str,
    /// The parameters, the trailing one included (at most 15).
    pub params: Vec<&'a str>,
}

/// Parses one line (without CRLF). `None` for an empty line.
pub fn parse(line: &str) -> Option<IrcMessage<'_>> {
    let mut rest = line.trim_start_matches(' ');
    if rest.starts_with('@') {
        // IRCv3 message tags: not negotiated, so ignored.
        rest = rest
            .split_once(' ')
            .map_or("", |(_, r)| r)
            .trim_start_matches(' ');
    }
    let mut prefix = None;
    if let Some(p) = rest.strip_prefix(':') {
        let (pre, r) = p.split_once(' ').unwrap_or((p, ""));
        prefix = Some(pre);
        rest = r.trim_start_matches(' ');
    }
    let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if command.is_empty() {
        return None;
    }
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        if params.len() == 14 {
            params.push(rest.strip_prefix(':').unwrap_or(rest));
            break;
        }
        if let Some(trailing) = rest.strip_prefix(':') {
            params.push(trailing);
            break;
        }
        let (p, r) = rest.split_once(' ').unwrap_or((rest, ""));
        params.push(p);
        rest = r;
    }
    Some(IrcMessage {
        prefix,
        command,
        params,
    })
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
    me: Option<MemberId>,
    reg_timer: Option<TimerId>,
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
            me: None,
            reg_timer: None,
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

    /// Sends a numeric reply: `:server NNN target rest`.
    fn numeric(&self, conn: &mut Conn<'_, '_>, code: u16, rest: &str) {
        let line = format!(
            ":{} {code:03} {} {rest}\r\n",
            self.hub.borrow().cfg.server_name,
            self.target()
        );
        write_irc(conn, &line);
    }

    fn chat_error(&self, conn: &mut Conn<'_, '_>, e: &ChatError, cmd: &str) {
        match e {
            ChatError::BadNick(n) => self.numeric(conn, 432, &format!("{n} :Erroneous nickname")),
            ChatError::NickTaken(n) => {
                self.numeric(conn, 433, &format!("{n} :Nickname is already in use"))
            }
            ChatError::BadRoom(r) | ChatError::NoSuchRoom(r) => {
                self.numeric(conn, 403, &format!("#{r} :No such channel"))
            }
            ChatError::NotInRoom(r) if cmd == "PRIVMSG" || cmd == "NOTICE" => {
                self.numeric(conn, 404, &format!("#{r} :Cannot send to channel"))
            }
            ChatError::NotInRoom(r) => {
                self.numeric(conn, 442, &format!("#{r} :You're not on that channel"))
            }
            ChatError::NoSuchNick(n) => {
                self.numeric(conn, 401, &format!("{n} :No such nick/channel"))
            }
            ChatError::TooManyRooms(r) => self.numeric(
                conn,
                405,
                &format!("#{r} :You have joined too many channels"),
            ),
            ChatError::NoText => self.numeric(conn, 412, ":No text to send"),
            ChatError::NoSuchMember => self.numeric(conn, 451, ":You have not registered"),
        }
    }

    fn deliver(&self, conn: &mut Conn<'_, '_>, out: Result<Outcome, ChatError>, cmd: &str) {
        match out {
            Ok(out) => self.hub.borrow().deliver(&out, conn),
            Err(e) => self.chat_error(conn, &e, cmd),
        }
    }

    /// Handles one line; `false` stops reading (closing).
    fn line(&mut self, conn: &mut Conn<'_, '_>, line: Line<'_>) -> bool {
        match self.flood.check(conn.reactor().now()) {
            Gate::Pass => {}
            Gate::DropAndWarn => {
                let (srv, burst, rate) = {
                    let h = self.hub.borrow();
                    (
                        h.cfg.server_name.clone(),
                        h.cfg.flood_burst,
                        h.cfg.flood_rate,
                    )
                };
                let line = format!(
                    ":{srv} NOTICE {} :*** flood limit: at most {burst} lines at once and {rate} per second; lines dropped\r\n",
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
                conn.write(
                    format!("ERROR :Closing Link: {} (Excess Flood)\r\n", self.host).as_bytes(),
                );
                self.leave(conn, "Excess Flood");
                conn.close();
                return false;
            }
        }
        let text = match line {
            Line::Line(bytes) => decode(bytes),
            Line::TooLong => {
                self.numeric(conn, 417, ":Input line was too long");
                return true;
            }
        };
        let Some(msg) = parse(&text) else {
            return true;
        };
        self.command(conn, &msg)
    }

    fn need(&self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>, n: usize, cmd: &str) -> bool {
        if msg.params.len() < n || msg.params[..n].iter().any(|p| p.is_empty() && n > 0) {
            self.numeric(conn, 461, &format!("{cmd} :Not enough parameters"));
            false
        } else {
            true
        }
    }

    fn command(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let cmd = msg.command.to_ascii_uppercase();
        let srv = self.hub.borrow().cfg.server_name.clone();
        // Allowed before registration.
        match cmd.as_str() {
            "NICK" => {
                self.nick_cmd(conn, msg);
                return true;
            }
            "USER" => {
                if self.me.is_some() || self.user.is_some() {
                    self.numeric(conn, 462, ":You may not reregister");
                } else if self.need(conn, msg, 4, "USER") {
                    let user: String = msg.params[0]
                        .chars()
                        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                        .take(16)
                        .collect();
                    let user = if user.is_empty() { "user".into() } else { user };
                    self.user = Some((user, msg.params[3].to_string()));
                    self.try_register(conn);
                }
                return true;
            }
            "PASS" => return true,
            "CAP" => {
                let sub = msg.params.first().map(|s| s.to_ascii_uppercase());
                let t = self.target();
                match sub.as_deref() {
                    Some("LS") => write_irc(conn, &format!(":{srv} CAP {t} LS :\r\n")),
                    Some("LIST") => write_irc(conn, &format!(":{srv} CAP {t} LIST :\r\n")),
                    Some("REQ") => {
                        let req = msg.params.get(1).copied().unwrap_or("");
                        write_irc(conn, &format!(":{srv} CAP {t} NAK :{req}\r\n"))
                    }
                    _ => {}
                }
                return true;
            }
            "PING" => {
                let token = msg.params.first().copied().unwrap_or("");
                if token.is_empty() {
                    self.numeric(conn, 409, ":No origin specified");
                } else {
                    write_irc(conn, &format!(":{srv} PONG {srv} :{token}\r\n"));
                }
                return true;
            }
            "PONG" => return true,
            "QUIT" => {
                let reason = match msg.params.first() {
                    Some(r) if !r.is_empty() => format!("Quit: {r}"),
                    _ => "Quit".to_string(),
                };
                write_irc(
                    conn,
                    &format!("ERROR :Closing Link: {} ({reason})\r\n", self.host),
                );
                self.leave(conn, &reason);
                conn.close();
                return false;
            }
            _ => {}
        }
        let Some(me) = self.me else {
            self.numeric(conn, 451, ":You have not registered");
            return true;
        };
        match cmd.as_str() {
            "JOIN" => {
                if !self.need(conn, msg, 1, "JOIN") {
                    return true;
                }
                if msg.params[0] == "0" {
                    let rooms = self.hub.borrow().chat.rooms_of(me);
                    for r in rooms {
                        let out =
                            self.hub
                                .borrow_mut()
                                .chat
                                .part(me, &r, Some("Left all channels"));
                        self.deliver(conn, out, "PART");
                    }
                    return true;
                }
                for chan in msg.params[0].split(',').filter(|c| !c.is_empty()) {
                    match chan.strip_prefix('#') {
                        Some(room) => {
                            let out = self.hub.borrow_mut().chat.join(me, room);
                            self.deliver(conn, out, "JOIN");
                        }
                        None => self.numeric(conn, 403, &format!("{chan} :No such channel")),
                    }
                }
            }
            "PART" => {
                if !self.need(conn, msg, 1, "PART") {
                    return true;
                }
                let reason = msg.params.get(1).copied();
                for chan in msg.params[0].split(',').filter(|c| !c.is_empty()) {
                    match chan.strip_prefix('#') {
                        Some(room) => {
                            let out = self.hub.borrow_mut().chat.part(me, room, reason);
                            self.deliver(conn, out, "PART");
                        }
                        None => self.numeric(conn, 403, &format!("{chan} :No such channel")),
                    }
                }
            }
            "PRIVMSG" | "NOTICE" => {
                let notice = cmd == "NOTICE";
                if msg.params.is_empty() || msg.params[0].is_empty() {
                    if !notice {
                        self.numeric(conn, 411, &format!(":No recipient given ({cmd})"));
                    }
                    return true;
                }
                let text = msg.params.get(1).copied().unwrap_or("");
                if text.is_empty() {
                    if !notice {
                        self.numeric(conn, 412, ":No text to send");
                    }
                    return true;
                }
                let (kind, text) = if notice {
                    (MsgKind::Notice, text)
                } else if let Some(a) = text
                    .strip_prefix("\x01ACTION ")
                    .map(|a| a.strip_suffix('\x01').unwrap_or(a))
                {
                    (MsgKind::Action, a)
                } else {
                    (MsgKind::Plain, text)
                };
                // Each target once, at most MAX_TARGETS: a list of targets must not
                // multiply one line past the flood limit.
                let mut targets: Vec<&str> = Vec::new();
                for t in msg.params[0].split(',').filter(|t| !t.is_empty()) {
                    if targets.iter().any(|o| fold(o) == fold(t)) {
                        continue;
                    }
                    if targets.len() == MAX_TARGETS {
                        if !notice {
                            self.numeric(
                                conn,
                                407,
                                &format!(
                                    "{t} :Too many recipients; at most {MAX_TARGETS} per message"
                                ),
                            );
                        }
                        break;
                    }
                    targets.push(t);
                }
                for target in targets {
                    let out = match target.strip_prefix('#') {
                        Some(room) => self.hub.borrow_mut().chat.say(me, room, text, kind),
                        None => self.hub.borrow_mut().chat.private(me, target, text, kind),
                    };
                    if notice {
                        // NOTICE never gets an automatic reply.
                        if let Ok(out) = out {
                            self.hub.borrow().deliver(&out, conn);
                        }
                    } else {
                        self.deliver(conn, out, &cmd);
                    }
                }
            }
            "NAMES" => {
                let rooms: Vec<String> = match msg.params.first() {
                    Some(p) if !p.is_empty() => p
                        .split(',')
                        .map(|c| c.trim_start_matches('#').to_string())
                        .collect(),
                    _ => self
                        .hub
                        .borrow()
                        .chat
                        .rooms_of(me)
                        .iter()
                        .map(|r| r.to_string())
                        .collect(),
                };
                let hub = self.hub.borrow();
                let nick = self.target();
                let mut s = String::new();
                for room in rooms {
                    match (hub.chat.room(&room), hub.chat.who(&room)) {
                        (Some(info), Some(members)) => render::names(
                            &mut s,
                            &srv,
                            &nick,
                            &info.name,
                            members.iter().map(|m| &*m.nick),
                        ),
                        _ => {
                            let _ = write!(s, ":{srv} 366 {nick} #{room} :End of /NAMES list.\r\n");
                        }
                    }
                }
                write_irc(conn, &s);
            }
            "TOPIC" => {
                if !self.need(conn, msg, 1, "TOPIC") {
                    return true;
                }
                let Some(room) = msg.params[0].strip_prefix('#') else {
                    self.numeric(conn, 403, &format!("{} :No such channel", msg.params[0]));
                    return true;
                };
                match msg.params.get(1) {
                    Some(topic) => {
                        let out = self.hub.borrow_mut().chat.set_topic(me, room, topic);
                        self.deliver(conn, out, "TOPIC");
                    }
                    None => {
                        let info = self.hub.borrow().chat.room(room);
                        match info {
                            None => self.numeric(conn, 403, &format!("#{room} :No such channel")),
                            Some(i) => match i.topic {
                                Some(t) => self.numeric(conn, 332, &format!("#{} :{t}", i.name)),
                                None => self.numeric(
                                    conn,
                                    331,
                                    &format!("#{} :No topic is set", i.name),
                                ),
                            },
                        }
                    }
                }
            }
            "WHO" => {
                let mask = msg.params.first().copied().unwrap_or("*");
                let hub = self.hub.borrow();
                let nick = self.target();
                let mut s = String::new();
                let who_line = |s: &mut String, chan: &str, m: &super::core::Member<Endpoint>| {
                    let (user, host) = m.userhost.split_once('@').unwrap_or((&m.userhost, "*"));
                    let _ = write!(
                        s,
                        ":{srv} 352 {nick} {chan} {user} {host} {srv} {} H :0 {}\r\n",
                        m.nick, m.nick
                    );
                };
                if let Some(room) = mask.strip_prefix('#') {
                    if let (Some(info), Some(members)) = (hub.chat.room(room), hub.chat.who(room)) {
                        let chan = format!("#{}", info.name);
                        for m in members {
                            who_line(&mut s, &chan, m);
                        }
                    }
                } else if let Some(m) = hub.chat.find(mask) {
                    let chan = hub
                        .chat
                        .rooms_of(m.id)
                        .first()
                        .map(|r| format!("#{r}"))
                        .unwrap_or_else(|| "*".into());
                    who_line(&mut s, &chan, m);
                }
                let _ = write!(s, ":{srv} 315 {nick} {mask} :End of WHO list\r\n");
                write_irc(conn, &s);
            }
            "WHOIS" => {
                if !self.need(conn, msg, 1, "WHOIS") {
                    return true;
                }
                let who = *msg.params.last().unwrap_or(&"");
                let reply = {
                    let hub = self.hub.borrow();
                    hub.chat.find(who).map(|m| {
                        let (user, host) = m.userhost.split_once('@').unwrap_or((&m.userhost, "*"));
                        let chans: Vec<String> = hub
                            .chat
                            .rooms_of(m.id)
                            .iter()
                            .map(|r| format!("#{r}"))
                            .collect();
                        (
                            m.nick.to_string(),
                            user.to_string(),
                            host.to_string(),
                            chans.join(" "),
                        )
                    })
                };
                match reply {
                    Some((n, user, host, chans)) => {
                        self.numeric(conn, 311, &format!("{n} {user} {host} * :{n}"));
                        if !chans.is_empty() {
                            self.numeric(conn, 319, &format!("{n} :{chans}"));
                        }
                        self.numeric(conn, 312, &format!("{n} {srv} :readyloop chat"));
                        self.numeric(conn, 318, &format!("{n} :End of /WHOIS list."));
                    }
                    None => {
                        self.numeric(conn, 401, &format!("{who} :No such nick/channel"));
                        self.numeric(conn, 318, &format!("{who} :End of /WHOIS list."));
                    }
                }
            }
            "LIST" => {
                let rooms = self.hub.borrow().chat.rooms();
                let nick = self.target();
                let mut s = format!(":{srv} 321 {nick} Channel :Users  Name\r\n");
                for r in rooms {
                    let _ = write!(
                        s,
                        ":{srv} 322 {nick} #{} {} :{}\r\n",
                        r.name,
                        r.members,
                        r.topic.as_deref().unwrap_or("")
                    );
                }
                let _ = write!(s, ":{srv} 323 {nick} :End of /LIST\r\n");
                write_irc(conn, &s);
            }
            "MOTD" => self.motd(conn),
            "MODE" => {
                if !self.need(conn, msg, 1, "MODE") {
                    return true;
                }
                let target = msg.params[0];
                if let Some(room) = target.strip_prefix('#') {
                    let info = self.hub.borrow().chat.room(room);
                    match (info, msg.params.get(1)) {
                        (None, _) => self.numeric(conn, 403, &format!("{target} :No such channel")),
                        (Some(i), None) => self.numeric(conn, 324, &format!("#{} +nt", i.name)),
                        (Some(i), Some(m)) if m.trim_start_matches('+') == "b" => self.numeric(
                            conn,
                            368,
                            &format!("#{} :End of channel ban list", i.name),
                        ),
                        (Some(i), Some(_)) => self.numeric(
                            conn,
                            482,
                            &format!("#{} :You're not channel operator", i.name),
                        ),
                    }
                } else if msg.params.len() == 1 {
                    self.numeric(conn, 221, "+");
                }
                // User mode changes are accepted and ignored.
            }
            "USERHOST" | "ISON" => {
                let hub = self.hub.borrow();
                let found: Vec<String> = msg
                    .params
                    .iter()
                    .flat_map(|p| p.split(' '))
                    .filter_map(|n| hub.chat.find(n))
                    .map(|m| {
                        if cmd == "ISON" {
                            m.nick.to_string()
                        } else {
                            format!("{}=+{}", m.nick, m.userhost)
                        }
                    })
                    .collect();
                drop(hub);
                let code = if cmd == "ISON" { 303 } else { 302 };
                self.numeric(conn, code, &format!(":{}", found.join(" ")));
            }
            "AWAY" => self.numeric(conn, 305, ":You are no longer marked as being away"),
            _ => self.numeric(conn, 421, &format!("{} :Unknown command", msg.command)),
        }
        true
    }

    fn nick_cmd(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) {
        let Some(new) = msg.params.first().filter(|n| !n.is_empty()) else {
            self.numeric(conn, 431, ":No nickname given");
            return;
        };
        if let Some(me) = self.me {
            let out = self.hub.borrow_mut().chat.rename(me, new);
            self.deliver(conn, out, "NICK");
            return;
        }
        if !valid_nick(new) {
            self.numeric(conn, 432, &format!("{new} :Erroneous nickname"));
            return;
        }
        let taken = self.hub.borrow().chat.check_nick(new, None).is_err();
        if taken {
            self.numeric(conn, 433, &format!("{new} :Nickname is already in use"));
            return;
        }
        self.nick = Some(new.to_string());
        self.try_register(conn);
    }

    fn try_register(&mut self, conn: &mut Conn<'_, '_>) {
        let (Some(nick), Some((user, _real))) = (self.nick.clone(), self.user.clone()) else {
            return;
        };
        let endpoint = Endpoint::Stream {
            id: conn.id(),
            flavor: Flavor::Irc,
        };
        let userhost = format!("~{user}@{}", self.host);
        let reg = self
            .hub
            .borrow_mut()
            .chat
            .register(&nick, &userhost, endpoint);
        let id = match reg {
            Ok(id) => id,
            Err(e) => {
                // Taken since NICK: ask again.
                self.nick = None;
                self.chat_error(conn, &e, "NICK");
                return;
            }
        };
        self.me = Some(id);
        if let Some(t) = self.reg_timer.take() {
            conn.cancel_timer(t);
        }
        log::info!("chat: {} is {nick} (irc)", conn.peer());
        let (srv, created) = {
            let h = self.hub.borrow();
            (
                h.cfg.server_name.clone(),
                httpdate::fmt_http_date(h.started),
            )
        };
        let version = concat!("readyloop-", env!("CARGO_PKG_VERSION"));
        self.numeric(
            conn,
            1,
            &format!(":Welcome to the readyloop chat, {nick}!{userhost}"),
        );
        self.numeric(
            conn,
            2,
            &format!(":Your host is {srv}, running version {version}"),
        );
        self.numeric(conn, 3, &format!(":This server was created {created}"));
        self.numeric(conn, 4, &format!("{srv} {version} i nt"));
        self.numeric(
            conn,
            5,
            &format!(
                "CHANTYPES=# CASEMAPPING=rfc1459 NICKLEN={} CHANNELLEN={} CHANLIMIT=#:{} PREFIX=() TARGMAX=PRIVMSG:{MAX_TARGETS},NOTICE:{MAX_TARGETS} NETWORK=readyloop :are supported by this server",
                super::core::NICK_MAX,
                super::core::ROOM_MAX + 1,
                self.hub.borrow().chat.config().max_rooms
            ),
        );
        self.motd(conn);
        let out = self.hub.borrow_mut().chat.join(id, LOBBY);
        self.deliver(conn, out, "JOIN");
    }

    fn motd(&self, conn: &mut Conn<'_, '_>) {
        let (srv, motd) = {
            let h = self.hub.borrow();
            (h.cfg.server_name.clone(), h.cfg.motd.clone())
        };
        if motd.is_empty() {
            self.numeric(conn, 422, ":MOTD File is missing");
            return;
        }
        self.numeric(conn, 375, &format!(":- {srv} Message of the day - "));
        for l in &motd {
            self.numeric(conn, 372, &format!(":- {l}"));
        }
        self.numeric(conn, 376, ":End of /MOTD command.");
    }

    /// Leaves the chat (once), announcing it.
    fn leave(&mut self, conn: &mut Conn<'_, '_>, reason: &str) {
        if let Some(me) = self.me.take() {
            let mut hub = self.hub.borrow_mut();
            let out = hub.chat.quit(me, reason);
            hub.deliver(&out, conn);
        }
    }
}

impl Protocol for IrcClient {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        let timeout = self.hub.borrow().cfg.registration_timeout;
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
                conn.write(
                    format!(
                        "ERROR :Closing Link: {} (Registration timeout)\r\n",
                        self.host
                    )
                    .as_bytes(),
                );
                conn.close();
            }
        }
    }

    fn connection_lost(&mut self, conn: &mut Conn<'_, '_>, reason: Option<&io::Error>) {
        let why = super::quit_reason(conn, reason);
        self.leave(conn, &why);
    }

    fn shutdown(&mut self, conn: &mut Conn<'_, '_>) {
        conn.write(
            format!(
                "ERROR :Closing Link: {} (Server shutting down)\r\n",
                self.host
            )
            .as_bytes(),
        );
        self.leave(conn, "Server shutting down");
        conn.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefix_params_and_trailing() {
        let m = parse(":nick!u@h PRIVMSG #lobby :hello  there :)").unwrap();
        assert_eq!(m.prefix, Some("nick!u@h"));
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, ["#lobby", "hello  there :)"]);
        let m = parse("USER guest 0 * :Real Name").unwrap();
        assert_eq!(m.params, ["guest", "0", "*", "Real Name"]);
        let m = parse("@time=x;y=z  JOIN   #a,#b  ").unwrap();
        assert_eq!((m.command, m.params), ("JOIN", vec!["#a,#b"]));
        let m = parse("PRIVMSG #x :").unwrap();
        assert_eq!(m.params, ["#x", ""]);
        assert_eq!(parse(""), None);
        assert_eq!(parse("   "), None);
        assert_eq!(parse(":onlyprefix"), None);
        let many = format!(
            "CMD {}",
            (0..20).map(|i| i.to_string()).collect::<Vec<_>>().join(" ")
        );
        let m = parse(&many).unwrap();
        assert_eq!(m.params.len(), 15);
        assert_eq!(m.params[14], "14 15 16 17 18 19");
    }
}
