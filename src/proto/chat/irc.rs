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
//! invitations and away states are the core's ([`Chat`](super::Chat)), so the line
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
//! Channels are the core's rooms with a `#`: `#Rust` here is `rust` on the line
//! protocol.

use std::cell::RefCell;
use std::fmt::Write;
use std::io;
use std::rc::Rc;

use super::core::{
    fold, mask_match, valid_nick, ChatError, Member, MemberId, ModeChange, MsgKind, Outcome,
    Status, LOBBY,
};
use super::{decode, render, Caps, Endpoint, Flavor, Flood, Gate, Hub};
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
            match self.flood.check(conn.reactor().now()) {
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

    fn irc_pass(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if self.me.is_some() {
            self.numeric(conn, 462, ":You may not reregister");
        } else if self.need(conn, msg, 1) {
            self.pass = Some(msg.params[0].to_string());
        }
        true
    }

    fn irc_cap(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let srv = self.srv();
        let t = self.target();
        let sub = msg
            .params
            .first()
            .map(|s| s.to_ascii_uppercase())
            .unwrap_or_default();
        match sub.as_str() {
            "LS" => {
                if self.me.is_none() {
                    self.cap_negotiating = true;
                }
                if msg.params.get(1).and_then(|v| v.parse::<u32>().ok()) >= Some(302) {
                    self.caps.set(Caps::CAP_NOTIFY, true);
                }
                let all: Vec<&str> = Caps::ALL.iter().map(|&(n, _)| n).collect();
                write_irc(conn, &format!(":{srv} CAP {t} LS :{}\r\n", all.join(" ")));
            }
            "LIST" => {
                write_irc(
                    conn,
                    &format!(":{srv} CAP {t} LIST :{}\r\n", self.caps.names()),
                );
            }
            "REQ" => {
                if self.me.is_none() {
                    self.cap_negotiating = true;
                }
                let req = msg.params.get(1).copied().unwrap_or("");
                let mut caps = self.caps;
                let mut ok = !req.trim().is_empty();
                for name in req.split(' ').filter(|n| !n.is_empty()) {
                    let (on, name) = match name.strip_prefix('-') {
                        Some(n) => (false, n),
                        None => (true, name),
                    };
                    match Caps::by_name(name) {
                        Some(c) => caps.set(c, on),
                        None => ok = false,
                    }
                }
                let verdict = if ok { "ACK" } else { "NAK" };
                if ok {
                    self.caps = caps;
                    self.sync_caps();
                }
                write_irc(conn, &format!(":{srv} CAP {t} {verdict} :{req}\r\n"));
            }
            "END" => {
                if self.me.is_none() && self.cap_negotiating {
                    self.cap_negotiating = false;
                    return self.try_register(conn);
                }
            }
            _ => {
                let sub = msg.params.first().copied().unwrap_or("");
                self.numeric(conn, 410, &format!("{sub} :Invalid CAP command"));
            }
        }
        true
    }

    /// Copies the enabled capabilities into the member's endpoint.
    fn sync_caps(&self) {
        if let Some(me) = self.me {
            let mut hub = self.hub.borrow_mut();
            if let Some(Endpoint::Stream { caps, .. }) =
                hub.chat.member_mut(me).map(|m| &mut m.endpoint)
            {
                *caps = self.caps;
            }
        }
    }

    fn irc_nick(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let Some(new) = msg.params.first().filter(|n| !n.is_empty()) else {
            self.numeric(conn, 431, ":No nickname given");
            return true;
        };
        if let Some(me) = self.me {
            let out = self.hub.borrow_mut().chat.rename(me, new);
            self.deliver(conn, out, "NICK");
            return true;
        }
        if !valid_nick(new) {
            self.numeric(conn, 432, &format!("{new} :Erroneous nickname"));
            return true;
        }
        let taken = self.hub.borrow().chat.check_nick(new, None).is_err();
        if taken {
            self.numeric(conn, 433, &format!("{new} :Nickname is already in use"));
            return true;
        }
        self.nick = Some(new.to_string());
        self.try_register(conn)
    }

    fn irc_user(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if self.me.is_some() || self.user.is_some() {
            self.numeric(conn, 462, ":You may not reregister");
            return true;
        }
        if !self.need(conn, msg, 4) {
            return true;
        }
        let user: String = msg.params[0]
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(16)
            .collect();
        let user = if user.is_empty() { "user".into() } else { user };
        self.user = Some((user, msg.params[3].to_string()));
        self.try_register(conn)
    }

    fn irc_ping(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let token = msg.params.first().copied().unwrap_or("");
        if token.is_empty() {
            self.numeric(conn, 409, ":No origin specified");
        } else {
            let srv = self.srv();
            write_irc(conn, &format!(":{srv} PONG {srv} :{token}\r\n"));
        }
        true
    }

    fn irc_pong(&mut self, _conn: &mut Conn<'_, '_>, _msg: &IrcMessage<'_>) -> bool {
        true
    }

    fn irc_quit(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let reason = match msg.params.first() {
            Some(r) if !r.is_empty() => format!("Quit: {r}"),
            _ => "Quit".to_string(),
        };
        self.close_link(conn, &reason);
        false
    }

    fn try_register(&mut self, conn: &mut Conn<'_, '_>) -> bool {
        if self.cap_negotiating {
            return true;
        }
        let (Some(nick), Some((user, real))) = (self.nick.clone(), self.user.clone()) else {
            return true;
        };
        let password = self.hub.borrow().cfg.password.clone();
        if let Some(p) = password {
            if self.pass.as_deref() != Some(p.as_str()) {
                self.numeric(conn, 464, ":Password incorrect");
                self.close_link(conn, "Bad Password");
                return false;
            }
        }
        let endpoint = Endpoint::Stream {
            id: conn.id(),
            flavor: Flavor::Irc,
            caps: self.caps,
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
                return true;
            }
        };
        self.me = Some(id);
        {
            let mut hub = self.hub.borrow_mut();
            if let Some(m) = hub.chat.member_mut(id) {
                m.realname = real.as_str().into();
            }
            if self.counted {
                hub.unregistered = hub.unregistered.saturating_sub(1);
                self.counted = false;
            }
            let n = hub.chat.len();
            hub.max_users = hub.max_users.max(n);
        }
        if let Some(t) = self.reg_timer.take() {
            conn.cancel_timer(t);
        }
        log::info!("chat: {} is {nick} (irc)", conn.peer());
        let (srv, created, network) = {
            let h = self.hub.borrow();
            (
                h.cfg.server_name.clone(),
                httpdate::fmt_http_date(h.started),
                h.cfg.network.clone(),
            )
        };
        let mut s = String::new();
        self.push_numeric(
            &mut s,
            1,
            &format!(":Welcome to the {network} chat, {nick}!{userhost}"),
        );
        self.push_numeric(
            &mut s,
            2,
            &format!(":Your host is {srv}, running version {VERSION}"),
        );
        self.push_numeric(&mut s, 3, &format!(":This server was created {created}"));
        self.push_numeric(&mut s, 4, &format!("{srv} {VERSION} iow biklmnostv bklov"));
        self.isupport(&mut s);
        write_irc(conn, &s);
        self.lusers(conn);
        self.motd(conn);
        let autojoin = self.hub.borrow().cfg.irc_autojoin;
        if autojoin {
            let out = self.hub.borrow_mut().chat.join(id, LOBBY);
            self.deliver(conn, out, "JOIN");
        }
        true
    }

    /// RPL_ISUPPORT (005): what this server does, truthfully.
    fn isupport(&self, s: &mut String) {
        let (max_rooms, max_bans, network) = {
            let h = self.hub.borrow();
            (
                h.chat.config().max_rooms,
                h.chat.config().max_bans,
                h.cfg.network.clone(),
            )
        };
        let tokens = [
            "AWAYLEN=390".to_string(),
            "CASEMAPPING=rfc1459".into(),
            format!("CHANLIMIT=#:{max_rooms}"),
            "CHANMODES=b,k,l,imnst".into(),
            format!("CHANNELLEN={}", super::core::ROOM_MAX + 1),
            "CHANTYPES=#".into(),
            "KICKLEN=390".into(),
            format!("MAXLIST=b:{max_bans}"),
            format!("MODES={MAX_MODES}"),
            format!("NETWORK={network}"),
            format!("NICKLEN={}", super::core::NICK_MAX),
            "PREFIX=(ov)@+".into(),
            format!("TARGMAX=PRIVMSG:{MAX_TARGETS},NOTICE:{MAX_TARGETS},KICK:1,JOIN:,PART:,NAMES:1,WHOIS:1"),
            "TOPICLEN=390".into(),
        ];
        // At most 13 tokens a line.
        for chunk in tokens.chunks(12) {
            self.push_numeric(
                s,
                5,
                &format!("{} :are supported by this server", chunk.join(" ")),
            );
        }
    }

    // ----- channels -------------------------------------------------------------

    fn irc_join(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let Some(me) = self.me else { return true };
        if !self.need(conn, msg, 1) {
            return true;
        }
        if msg.params[0] == "0" {
            let rooms = self.hub.borrow().chat.rooms_of(me);
            for r in rooms {
                let out = self
                    .hub
                    .borrow_mut()
                    .chat
                    .part(me, &r, Some("Left all channels"));
                self.deliver(conn, out, "PART");
            }
            return true;
        }
        let mut keys = msg
            .params
            .get(1)
            .map(|k| k.split(','))
            .into_iter()
            .flatten();
        for chan in msg.params[0].split(',').filter(|c| !c.is_empty()) {
            let key = keys.next().filter(|k| !k.is_empty());
            match chan.strip_prefix('#') {
                Some(room) => {
                    let out = self.hub.borrow_mut().chat.join_with_key(me, room, key);
                    self.deliver(conn, out, "JOIN");
                }
                None => self.numeric(conn, 403, &format!("{chan} :No such channel")),
            }
        }
        true
    }

    fn irc_part(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let Some(me) = self.me else { return true };
        if !self.need(conn, msg, 1) {
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
        true
    }

    fn irc_privmsg(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let Some(me) = self.me else { return true };
        let cmd = msg.command.to_ascii_uppercase();
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
        // Each target once, at most MAX_TARGETS: a list of targets must not multiply
        // one line past the flood limit.
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
                        &format!("{t} :Too many recipients; at most {MAX_TARGETS} per message"),
                    );
                }
                break;
            }
            targets.push(t);
        }
        let echo = self.caps.has(Caps::ECHO_MESSAGE);
        for t in targets {
            let out = match t.strip_prefix('#') {
                Some(room) => self.hub.borrow_mut().chat.say(me, room, text, kind),
                None => {
                    let out = self.hub.borrow_mut().chat.private(me, t, text, kind);
                    if out.is_ok() && !notice {
                        self.tell_away(conn, t);
                    }
                    out
                }
            };
            match out {
                Ok(mut out) => {
                    if echo {
                        out.echo_to(me);
                    }
                    self.hub.borrow().deliver(&out, conn);
                }
                Err(e) if !notice => self.chat_error(conn, &e, &cmd),
                Err(_) => {}
            }
        }
        true
    }

    /// RPL_AWAY (301) if `nick` is away.
    fn tell_away(&self, conn: &mut Conn<'_, '_>, nick: &str) {
        let away = {
            let hub = self.hub.borrow();
            hub.chat
                .find(nick)
                .and_then(|m| m.away.clone().map(|a| (m.nick.clone(), a)))
        };
        if let Some((n, a)) = away {
            self.numeric(conn, 301, &format!("{n} :{a}"));
        }
    }

    fn irc_names(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let Some(me) = self.me else { return true };
        let srv = self.srv();
        let nick = self.target();
        let multi = self.caps.has(Caps::MULTI_PREFIX);
        let uhnames = self.caps.has(Caps::USERHOST_IN_NAMES);
        let mut s = String::new();
        let Some(list) = msg.params.first().filter(|p| !p.is_empty()) else {
            let _ = write!(s, ":{srv} 366 {nick} * :End of /NAMES list.\r\n");
            write_irc(conn, &s);
            return true;
        };
        let hub = self.hub.borrow();
        for chan in list.split(',').filter(|c| !c.is_empty()) {
            let room = chan.strip_prefix('#').unwrap_or(chan);
            let visible = hub
                .chat
                .room(room)
                .filter(|i| chan.starts_with('#') && (!i.modes.secret || hub.chat.is_in(me, room)));
            match (visible, hub.chat.who_status(room)) {
                (Some(info), Some(members)) => {
                    let list: Vec<String> = members
                        .iter()
                        .filter(|(m, _)| !m.invisible || m.id == me || hub.chat.is_in(me, room))
                        .map(|(m, st)| {
                            if uhnames {
                                format!("{}{}!{}", st.prefix(multi), m.nick, m.userhost)
                            } else {
                                format!("{}{}", st.prefix(multi), m.nick)
                            }
                        })
                        .collect();
                    render::names(
                        &mut s,
                        &srv,
                        &nick,
                        &info.name,
                        info.modes.secret,
                        list.iter().map(|m| m.as_str()),
                    );
                }
                _ => {
                    let _ = write!(s, ":{srv} 366 {nick} {chan} :End of /NAMES list.\r\n");
                }
            }
        }
        drop(hub);
        write_irc(conn, &s);
        true
    }

    fn irc_topic(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let Some(me) = self.me else { return true };
        if !self.need(conn, msg, 1) {
            return true;
        }
        let Some(room) = msg.params[0].strip_prefix('#') else {
            self.numeric(conn, 403, &format!("{} :No such channel", msg.params[0]));
            return true;
        };
        if let Some(topic) = msg.params.get(1) {
            let out = self.hub.borrow_mut().chat.set_topic(me, room, topic);
            self.deliver(conn, out, "TOPIC");
            return true;
        }
        let (info, member) = {
            let hub = self.hub.borrow();
            (hub.chat.room(room), hub.chat.is_in(me, room))
        };
        match info {
            None => self.numeric(conn, 403, &format!("#{room} :No such channel")),
            Some(i) if i.modes.secret && !member => self.numeric(
                conn,
                442,
                &format!("#{} :You're not on that channel", i.name),
            ),
            Some(i) => match i.topic {
                Some(t) => {
                    self.numeric(conn, 332, &format!("#{} :{t}", i.name));
                    if let Some((by, at)) = i.topic_set {
                        self.numeric(conn, 333, &format!("#{} {by} {at}", i.name));
                    }
                }
                None => self.numeric(conn, 331, &format!("#{} :No topic is set", i.name)),
            },
        }
        true
    }

    fn irc_list(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let Some(me) = self.me else { return true };
        let srv = self.srv();
        let nick = self.target();
        let wanted: Option<Vec<String>> = msg
            .params
            .first()
            .filter(|p| !p.is_empty())
            .map(|p| p.split(',').map(fold).collect());
        let mut s = format!(":{srv} 321 {nick} Channel :Users  Name\r\n");
        {
            let hub = self.hub.borrow();
            for r in hub.chat.rooms() {
                if r.members == 0 || (r.modes.secret && !hub.chat.is_in(me, &r.name)) {
                    continue;
                }
                if let Some(w) = &wanted {
                    if !w.contains(&fold(&format!("#{}", r.name))) {
                        continue;
                    }
                }
                let _ = write!(
                    s,
                    ":{srv} 322 {nick} #{} {} :{}\r\n",
                    r.name,
                    r.members,
                    r.topic.as_deref().unwrap_or("")
                );
            }
        }
        let _ = write!(s, ":{srv} 323 {nick} :End of /LIST\r\n");
        write_irc(conn, &s);
        true
    }

    fn irc_invite(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let Some(me) = self.me else { return true };
        if !self.need(conn, msg, 2) {
            return true;
        }
        let (target, chan) = (msg.params[0], msg.params[1]);
        let Some(room) = chan.strip_prefix('#') else {
            self.numeric(conn, 403, &format!("{chan} :No such channel"));
            return true;
        };
        let out = self.hub.borrow_mut().chat.invite(me, room, target);
        match out {
            Ok(out) => {
                let (name, tnick) = {
                    let hub = self.hub.borrow();
                    (
                        hub.chat.room(room).map_or_else(|| room.into(), |i| i.name),
                        hub.chat
                            .find(target)
                            .map_or_else(|| target.into(), |m| m.nick.clone()),
                    )
                };
                self.numeric(conn, 341, &format!("{tnick} #{name}"));
                self.tell_away(conn, target);
                self.hub.borrow().deliver(&out, conn);
            }
            Err(e) => self.chat_error(conn, &e, "INVITE"),
        }
        true
    }

    fn irc_kick(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let Some(me) = self.me else { return true };
        if !self.need(conn, msg, 2) {
            return true;
        }
        let reason = msg.params.get(2).copied().unwrap_or("");
        let chans: Vec<&str> = msg.params[0].split(',').filter(|c| !c.is_empty()).collect();
        let users: Vec<&str> = msg.params[1].split(',').filter(|c| !c.is_empty()).collect();
        // KICK #a,#b x,y kicks x from #a and y from #b; KICK #a x,y both from #a.
        for (i, user) in users.iter().enumerate() {
            let Some(chan) = chans.get(i).or(chans.first()).copied() else {
                break;
            };
            let Some(room) = chan.strip_prefix('#') else {
                self.numeric(conn, 403, &format!("{chan} :No such channel"));
                continue;
            };
            let mut hub = self.hub.borrow_mut();
            match hub.chat.kick(me, room, user, reason) {
                Ok(out) => hub.deliver(&out, conn),
                Err(e) => {
                    drop(hub);
                    self.chat_error(conn, &e, "KICK");
                }
            }
        }
        true
    }

    // ----- modes ----------------------------------------------------------------

    fn irc_mode(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if !self.need(conn, msg, 1) {
            return true;
        }
        match msg.params[0].strip_prefix('#') {
            Some(room) => self.channel_mode(conn, room, &msg.params[1..]),
            None => self.user_mode(conn, msg.params[0], msg.params.get(1).copied()),
        }
        true
    }

    fn channel_mode(&mut self, conn: &mut Conn<'_, '_>, room: &str, args: &[&str]) {
        let Some(me) = self.me else { return };
        let Some(info) = self.hub.borrow().chat.room(room) else {
            self.numeric(conn, 403, &format!("#{room} :No such channel"));
            return;
        };
        let name = info.name.clone();
        let Some(spec) = args.first().filter(|s| !s.is_empty()) else {
            let member = self.hub.borrow().chat.is_in(me, room);
            self.numeric(conn, 324, &format!("#{name} {}", info.modes.render(member)));
            self.numeric(conn, 329, &format!("#{name} {}", info.created));
            return;
        };
        let mut params = args[1..].iter().copied();
        let mut plus = true;
        let mut changes = Vec::new();
        let mut list_bans = false;
        for c in spec.chars() {
            let change = match c {
                '+' => {
                    plus = true;
                    continue;
                }
                '-' => {
                    plus = false;
                    continue;
                }
                'o' | 'v' => match params.next() {
                    Some(n) if c == 'o' => ModeChange::Op(plus, n.to_string()),
                    Some(n) => ModeChange::Voice(plus, n.to_string()),
                    None => continue,
                },
                't' => ModeChange::TopicLock(plus),
                'n' => ModeChange::NoExternal(plus),
                'm' => ModeChange::Moderated(plus),
                's' => ModeChange::Secret(plus),
                'i' => ModeChange::InviteOnly(plus),
                'k' if plus => match params.next().filter(|k| valid_key(k)) {
                    Some(k) => ModeChange::Key(Some(k.to_string())),
                    None => continue,
                },
                'k' => {
                    params.next();
                    ModeChange::Key(None)
                }
                'l' if plus => match params.next().and_then(|l| l.parse::<usize>().ok()) {
                    Some(l) if l > 0 => ModeChange::Limit(Some(l)),
                    _ => continue,
                },
                'l' => ModeChange::Limit(None),
                'b' => match params.next() {
                    Some(m) => ModeChange::Ban(plus, normalize_mask(m)),
                    None => {
                        list_bans = true;
                        continue;
                    }
                },
                _ => {
                    self.numeric(conn, 472, &format!("{c} :is unknown mode char to me"));
                    continue;
                }
            };
            if changes.len() < MAX_MODES {
                changes.push(change);
            }
        }
        if list_bans {
            let mut s = String::new();
            for b in &info.bans {
                self.push_numeric(&mut s, 367, &format!("#{name} {b}"));
            }
            self.push_numeric(&mut s, 368, &format!("#{name} :End of channel ban list"));
            write_irc(conn, &s);
        }
        if changes.is_empty() {
            return;
        }
        let res = self.hub.borrow_mut().chat.set_modes(me, room, &changes);
        match res {
            Ok((out, errors)) => {
                for e in &errors {
                    self.chat_error(conn, e, "MODE");
                }
                self.hub.borrow().deliver(&out, conn);
            }
            Err(e) => self.chat_error(conn, &e, "MODE"),
        }
    }

    fn user_mode(&mut self, conn: &mut Conn<'_, '_>, nick: &str, spec: Option<&str>) {
        let Some(me) = self.me else { return };
        let (mine, exists) = {
            let hub = self.hub.borrow();
            let m = hub.chat.find(nick);
            (m.is_some_and(|m| m.id == me), m.is_some())
        };
        if !exists {
            self.numeric(conn, 401, &format!("{nick} :No such nick/channel"));
            return;
        }
        if !mine {
            self.numeric(conn, 502, ":Can't change mode for other users");
            return;
        }
        let Some(spec) = spec.filter(|s| !s.is_empty()) else {
            let modes = self.user_modes();
            self.numeric(conn, 221, &modes);
            return;
        };
        let mut plus = true;
        let mut applied = String::new();
        let mut sign = ' ';
        let mut unknown = false;
        {
            let mut hub = self.hub.borrow_mut();
            let Some(m) = hub.chat.member_mut(me) else {
                return;
            };
            for c in spec.chars() {
                let flag = match c {
                    '+' => {
                        plus = true;
                        continue;
                    }
                    '-' => {
                        plus = false;
                        continue;
                    }
                    'i' => &mut m.invisible,
                    'w' => &mut m.wallops,
                    // Only OPER makes an operator; anyone may stop being one.
                    'o' if !plus => &mut m.oper,
                    'o' => continue,
                    _ => {
                        unknown = true;
                        continue;
                    }
                };
                if *flag != plus {
                    *flag = plus;
                    let s = if plus { '+' } else { '-' };
                    if s != sign {
                        applied.push(s);
                        sign = s;
                    }
                    applied.push(c);
                }
            }
        }
        if unknown {
            self.numeric(conn, 501, ":Unknown MODE flag");
        }
        if !applied.is_empty() {
            let (n, uh) = self.me_prefix();
            write_irc(conn, &format!(":{n}!{uh} MODE {n} :{applied}\r\n"));
        }
    }

    fn user_modes(&self) -> String {
        let hub = self.hub.borrow();
        let mut s = String::from("+");
        if let Some(m) = self.me.and_then(|id| hub.chat.member(id)) {
            for (on, c) in [(m.invisible, 'i'), (m.oper, 'o'), (m.wallops, 'w')] {
                if on {
                    s.push(c);
                }
            }
        }
        s
    }

    /// The member's nickname and `user@host`.
    fn me_prefix(&self) -> (String, String) {
        let hub = self.hub.borrow();
        self.me
            .and_then(|id| hub.chat.member(id))
            .map(|m| (m.nick.to_string(), m.userhost.to_string()))
            .unwrap_or_default()
    }

    // ----- users ----------------------------------------------------------------

    fn irc_away(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let Some(me) = self.me else { return true };
        let text = msg.params.first().copied().filter(|t| !t.is_empty());
        let out = self.hub.borrow_mut().chat.set_away(me, text);
        match text {
            Some(_) => self.numeric(conn, 306, ":You have been marked as being away"),
            None => self.numeric(conn, 305, ":You are no longer marked as being away"),
        }
        self.deliver(conn, out, "AWAY");
        true
    }

    /// The `H`/`G`, `*` and status flags of a WHO reply.
    fn who_flags(m: &Member<Endpoint>, status: Option<Status>, multi: bool) -> String {
        let mut f = String::from(if m.away.is_some() { "G" } else { "H" });
        if m.oper {
            f.push('*');
        }
        if let Some(st) = status {
            f.push_str(st.prefix(multi));
        }
        f
    }

    fn irc_who(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let Some(me) = self.me else { return true };
        let mask = msg
            .params
            .first()
            .copied()
            .filter(|m| !m.is_empty())
            .unwrap_or("*");
        let opers_only = msg.params.get(1).is_some_and(|f| f.contains('o'));
        let srv = self.srv();
        let nick = self.target();
        let multi = self.caps.has(Caps::MULTI_PREFIX);
        let mut s = String::new();
        {
            let hub = self.hub.borrow();
            let line = |s: &mut String, chan: &str, m: &Member<Endpoint>, st: Option<Status>| {
                if opers_only && !m.oper {
                    return;
                }
                let (user, host) = m.userhost.split_once('@').unwrap_or((&m.userhost, "*"));
                let _ = write!(
                    s,
                    ":{srv} 352 {nick} {chan} {user} {host} {srv} {} {} :0 {}\r\n",
                    m.nick,
                    Self::who_flags(m, st, multi),
                    m.realname
                );
            };
            if let Some(room) = mask.strip_prefix('#') {
                let visible = hub
                    .chat
                    .room(room)
                    .filter(|i| !i.modes.secret || hub.chat.is_in(me, room));
                if let (Some(info), Some(members)) = (visible, hub.chat.who_status(room)) {
                    let chan = format!("#{}", info.name);
                    let inside = hub.chat.is_in(me, room);
                    for (m, st) in members {
                        if inside || !m.invisible {
                            line(&mut s, &chan, m, Some(st));
                        }
                    }
                }
            } else {
                let all = mask == "*" || mask == "0";
                // Invisibility hides from masks, not from one's exact nickname.
                let exact = !mask.contains(['*', '?']);
                let mut found: Vec<&Member<Endpoint>> = hub
                    .chat
                    .all_members()
                    .filter(|m| {
                        m.id == me
                            || !m.invisible
                            || hub.chat.share_room(me, m.id)
                            || (exact && fold(mask) == fold(&m.nick))
                    })
                    .filter(|m| {
                        all || mask_match(mask, &m.nick)
                            || mask_match(mask, m.userhost.split_once('@').map_or("", |x| x.1))
                            || mask_match(mask, &m.realname)
                    })
                    .collect();
                found.sort_by_key(|m| m.id);
                for m in found {
                    line(&mut s, "*", m, None);
                }
            }
        }
        let _ = write!(s, ":{srv} 315 {nick} {mask} :End of WHO list\r\n");
        write_irc(conn, &s);
        true
    }

    fn irc_whois(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let Some(me) = self.me else { return true };
        if msg.params.is_empty() || msg.params.iter().all(|p| p.is_empty()) {
            self.numeric(conn, 431, ":No nickname given");
            return true;
        }
        let who = *msg.params.last().unwrap_or(&"");
        let srv = self.srv();
        let multi = self.caps.has(Caps::MULTI_PREFIX);
        let mut s = String::new();
        {
            let hub = self.hub.borrow();
            match hub.chat.find(who) {
                Some(m) => {
                    let n = &m.nick;
                    let (user, host) = m.userhost.split_once('@').unwrap_or((&m.userhost, "*"));
                    self.push_numeric(&mut s, 311, &format!("{n} {user} {host} * :{}", m.realname));
                    let chans: Vec<String> = hub
                        .chat
                        .rooms_status_of(m.id)
                        .into_iter()
                        .filter(|(i, _)| !i.modes.secret || hub.chat.is_in(me, &i.name))
                        .map(|(i, st)| format!("{}#{}", st.prefix(multi), i.name))
                        .collect();
                    if !chans.is_empty() {
                        self.push_numeric(&mut s, 319, &format!("{n} :{}", chans.join(" ")));
                    }
                    self.push_numeric(&mut s, 312, &format!("{n} {srv} :readyloop chat"));
                    if m.oper {
                        self.push_numeric(&mut s, 313, &format!("{n} :is an IRC operator"));
                    }
                    if let Some(a) = &m.away {
                        self.push_numeric(&mut s, 301, &format!("{n} :{a}"));
                    }
                    self.push_numeric(&mut s, 318, &format!("{n} :End of /WHOIS list."));
                }
                None => {
                    self.push_numeric(&mut s, 401, &format!("{who} :No such nick/channel"));
                    self.push_numeric(&mut s, 318, &format!("{who} :End of /WHOIS list."));
                }
            }
        }
        write_irc(conn, &s);
        true
    }

    fn irc_whowas(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if !self.need(conn, msg, 1) {
            return true;
        }
        let srv = self.srv();
        let count = msg
            .params
            .get(1)
            .and_then(|c| c.parse::<i64>().ok())
            .filter(|&c| c > 0)
            .map_or(usize::MAX, |c| c as usize);
        let mut s = String::new();
        for nick in msg.params[0].split(',').filter(|n| !n.is_empty()) {
            let entries: Vec<super::core::Whowas> = self
                .hub
                .borrow()
                .chat
                .whowas(nick)
                .into_iter()
                .take(count)
                .cloned()
                .collect();
            if entries.is_empty() {
                self.push_numeric(&mut s, 406, &format!("{nick} :There was no such nickname"));
            }
            for w in entries {
                let (user, host) = w.userhost.split_once('@').unwrap_or((&w.userhost, "*"));
                self.push_numeric(
                    &mut s,
                    314,
                    &format!("{} {user} {host} * :{}", w.nick, w.realname),
                );
                self.push_numeric(&mut s, 312, &format!("{} {srv} :readyloop chat", w.nick));
            }
            self.push_numeric(&mut s, 369, &format!("{nick} :End of WHOWAS"));
        }
        write_irc(conn, &s);
        true
    }

    fn irc_userhost(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if !self.need(conn, msg, 1) {
            return true;
        }
        let found: Vec<String> = {
            let hub = self.hub.borrow();
            msg.params
                .iter()
                .flat_map(|p| p.split(' '))
                .take(5)
                .filter_map(|n| hub.chat.find(n))
                .map(|m| {
                    let oper = if m.oper { "*" } else { "" };
                    let away = if m.away.is_some() { '-' } else { '+' };
                    format!("{}{oper}={away}{}", m.nick, m.userhost)
                })
                .collect()
        };
        self.numeric(conn, 302, &format!(":{}", found.join(" ")));
        true
    }

    fn irc_ison(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if !self.need(conn, msg, 1) {
            return true;
        }
        let found: Vec<String> = {
            let hub = self.hub.borrow();
            msg.params
                .iter()
                .flat_map(|p| p.split(' '))
                .filter_map(|n| hub.chat.find(n))
                .map(|m| m.nick.to_string())
                .collect()
        };
        self.numeric(conn, 303, &format!(":{}", found.join(" ")));
        true
    }

    // ----- operators ------------------------------------------------------------

    fn irc_oper(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let Some(me) = self.me else { return true };
        if !self.need(conn, msg, 2) {
            return true;
        }
        let (name, password) = (msg.params[0], msg.params[1]);
        let account = self
            .hub
            .borrow()
            .cfg
            .opers
            .iter()
            .find(|a| a.name == name)
            .cloned();
        let Some(account) = account else {
            self.numeric(conn, 491, ":No O-lines for your host");
            return true;
        };
        if !account.verify(password) {
            log::info!("chat: {}: failed OPER as {name}", conn.peer());
            self.numeric(conn, 464, ":Password incorrect");
            return true;
        }
        log::info!("chat: {}: OPER as {name}", conn.peer());
        if let Some(m) = self.hub.borrow_mut().chat.member_mut(me) {
            m.oper = true;
        }
        self.numeric(conn, 381, ":You are now an IRC operator");
        let (n, uh) = self.me_prefix();
        write_irc(conn, &format!(":{n}!{uh} MODE {n} :+o\r\n"));
        true
    }

    fn is_oper(&self) -> bool {
        let hub = self.hub.borrow();
        self.me
            .and_then(|id| hub.chat.member(id))
            .is_some_and(|m| m.oper)
    }

    fn irc_kill(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if !self.need(conn, msg, 1) {
            return true;
        }
        if !self.is_oper() {
            self.numeric(conn, 481, ":Permission Denied- You're not an IRC operator");
            return true;
        }
        let nick = msg.params[0];
        let given = msg.params.get(1).copied().unwrap_or("");
        let victim = {
            let hub = self.hub.borrow();
            hub.chat.find(nick).map(|m| (m.id, m.endpoint))
        };
        let Some((vid, endpoint)) = victim else {
            self.numeric(conn, 401, &format!("{nick} :No such nick/channel"));
            return true;
        };
        let (by, _) = self.me_prefix();
        let reason = format!("Killed ({by} ({given}))");
        log::info!("chat: {by} killed {nick} ({given})");
        if Some(vid) == self.me {
            self.close_link(conn, &reason);
            return false;
        }
        match endpoint {
            Endpoint::Stream { id, .. } => {
                if !conn.notify(
                    id,
                    Box::new(Killed {
                        reason: reason.clone(),
                    }),
                ) {
                    let mut hub = self.hub.borrow_mut();
                    let out = hub.chat.quit(vid, &reason);
                    hub.deliver(&out, conn);
                }
            }
            Endpoint::Datagram { sock, addr } => {
                let mut hub = self.hub.borrow_mut();
                super::send_via(
                    conn.reactor(),
                    sock,
                    format!("Bye {nick} ({reason})").as_bytes(),
                    addr,
                );
                let out = hub.chat.quit(vid, &reason);
                hub.deliver(&out, conn);
            }
        }
        true
    }

    fn irc_wallops(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let Some(me) = self.me else { return true };
        if !self.need(conn, msg, 1) {
            return true;
        }
        let out = self.hub.borrow().chat.wallops(me, msg.params[0]);
        self.deliver(conn, out, "WALLOPS");
        true
    }

    // ----- server queries -------------------------------------------------------

    /// 402 if `msg`'s `param`-th parameter names a server other than this one.
    fn other_server(&self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>, param: usize) -> bool {
        let srv = self.srv();
        match msg.params.get(param).filter(|p| !p.is_empty()) {
            Some(t) if !mask_match(t, &srv) && self.hub.borrow().chat.find(t).is_none() => {
                self.numeric(conn, 402, &format!("{t} :No such server"));
                true
            }
            _ => false,
        }
    }

    fn irc_motd(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if !self.other_server(conn, msg, 0) {
            self.motd(conn);
        }
        true
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
        let mut s = String::new();
        self.push_numeric(&mut s, 375, &format!(":- {srv} Message of the day - "));
        for l in &motd {
            self.push_numeric(&mut s, 372, &format!(":- {l}"));
        }
        self.push_numeric(&mut s, 376, ":End of /MOTD command.");
        write_irc(conn, &s);
    }

    fn irc_lusers(&mut self, conn: &mut Conn<'_, '_>, _msg: &IrcMessage<'_>) -> bool {
        self.lusers(conn);
        true
    }

    fn lusers(&self, conn: &mut Conn<'_, '_>) {
        let (total, invisible, opers, unknown, channels, max) = {
            let h = self.hub.borrow();
            let total = h.chat.len();
            let invisible = h.chat.all_members().filter(|m| m.invisible).count();
            let opers = h.chat.all_members().filter(|m| m.oper).count();
            (
                total,
                invisible,
                opers,
                h.unregistered,
                h.chat.room_count(),
                h.max_users.max(total),
            )
        };
        let mut s = String::new();
        self.push_numeric(
            &mut s,
            251,
            &format!(
                ":There are {} users and {invisible} invisible on 1 servers",
                total - invisible
            ),
        );
        self.push_numeric(&mut s, 252, &format!("{opers} :operator(s) online"));
        self.push_numeric(&mut s, 253, &format!("{unknown} :unknown connection(s)"));
        self.push_numeric(&mut s, 254, &format!("{channels} :channels formed"));
        self.push_numeric(
            &mut s,
            255,
            &format!(":I have {total} clients and 0 servers"),
        );
        self.push_numeric(
            &mut s,
            265,
            &format!("{total} {max} :Current local users {total}, max {max}"),
        );
        self.push_numeric(
            &mut s,
            266,
            &format!("{total} {max} :Current global users {total}, max {max}"),
        );
        write_irc(conn, &s);
    }

    fn irc_time(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if self.other_server(conn, msg, 0) {
            return true;
        }
        let srv = self.srv();
        let now = std::time::SystemTime::now();
        let secs = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.numeric(
            conn,
            391,
            &format!("{srv} {secs} 0 :{}", httpdate::fmt_http_date(now)),
        );
        true
    }

    fn irc_info(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if self.other_server(conn, msg, 0) {
            return true;
        }
        let mut s = String::new();
        for l in [
            format!("{VERSION}: a chat server on a hand-written event loop"),
            "nc users, IRC clients and classroom UDP clients share its rooms.".into(),
        ] {
            self.push_numeric(&mut s, 371, &format!(":{l}"));
        }
        self.push_numeric(&mut s, 374, ":End of INFO list");
        write_irc(conn, &s);
        true
    }

    fn irc_version(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if self.other_server(conn, msg, 0) {
            return true;
        }
        let srv = self.srv();
        let mut s = String::new();
        self.push_numeric(&mut s, 351, &format!("{VERSION} {srv} :readyloop chat"));
        self.isupport(&mut s);
        write_irc(conn, &s);
        true
    }

    fn irc_admin(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if self.other_server(conn, msg, 0) {
            return true;
        }
        let srv = self.srv();
        let mut s = String::new();
        self.push_numeric(&mut s, 256, &format!("{srv} :Administrative info"));
        self.push_numeric(&mut s, 257, ":The operator of this host");
        self.push_numeric(&mut s, 258, ":readyloop chat");
        self.push_numeric(&mut s, 259, ":see the operator of this host");
        write_irc(conn, &s);
        true
    }

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

/// Most mode changes in one `MODE` (`MODES` in 005).
pub const MAX_MODES: usize = 6;

/// Whether `k` may be a channel key: 1 to 23 bytes, no spaces, commas or control
/// characters.
fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 23 && k.chars().all(|c| !c.is_control() && c != ',' && c != ' ')
}

/// A ban mask completed to `nick!user@host` (`bob` is `bob!*@*`, `*@h` is `*!*@h`).
fn normalize_mask(m: &str) -> String {
    match (m.contains('!'), m.contains('@')) {
        (true, true) => m.to_string(),
        (true, false) => format!("{m}@*"),
        (false, true) => format!("*!{m}"),
        (false, false) => format!("{m}!*@*"),
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
