//! The line protocol, for `nc` and `telnet`.
//!
//! On connect the server asks for a nickname; the first line is taken as one. A taken
//! nickname gets `* nickname NICK is taken` and the question again. Then the client is
//! in the lobby: a plain line goes to the current room and the others see
//! `<nick> text`; lines starting with `/` are commands ([`LINE_HELP`]); `//text` sends
//! `/text`. Server lines start with `* `, private messages read `*nick* text`.
//!
//! A line client is in one room at a time: `/join` leaves the current room first,
//! `/part` goes back to the lobby.

use std::cell::RefCell;
use std::fmt::Write;
use std::io;
use std::rc::Rc;

use super::state::{valid_room, ChatError, MemberId, MsgKind, Outcome, LOBBY};
use super::{decode, Endpoint, Flavor, Flood, Gate, Hub};
use crate::net::{Conn, PeerAddr, Protocol};
use crate::proto::framing::{Line, LineBuffer};
use crate::reactor::TimerId;

/// The line protocol's commands (`/help`).
pub const LINE_HELP: &str = "\
* commands:
*   /nick NAME        change your nickname
*   /join ROOM        leave this room and join ROOM (created if new)
*   /part [REASON]    leave this room, back to the lobby
*   /msg NICK TEXT    private message
*   /me TEXT          action (* nick TEXT)
*   /who [ROOM]       who is in this room (or ROOM)
*   /rooms            list the rooms
*   /topic [TEXT]     show or set this room's topic
*   /away [TEXT]      mark yourself away (no TEXT: back)
*   /kick NICK [WHY]  remove NICK from this room (room operators, shown as @nick)
*   /quit [REASON]    leave the chat
*   /help             this list
*   //TEXT            send a line starting with /
";

const ASK: &str = "* What is your nickname?\n";

/// One line-protocol connection.
pub(crate) struct LineClient {
    hub: Rc<RefCell<Hub>>,
    lines: LineBuffer,
    flood: Flood,
    host: String,
    me: Option<MemberId>,
    /// The current room (display name).
    room: Rc<str>,
    reg_timer: Option<TimerId>,
}

impl LineClient {
    pub(crate) fn new(hub: Rc<RefCell<Hub>>, peer: &PeerAddr) -> LineClient {
        let (max, flood) = {
            let h = hub.borrow();
            (h.cfg.max_line, Flood::new(&h.cfg))
        };
        let host = super::peer_host(peer);
        LineClient {
            hub,
            lines: LineBuffer::new(max),
            flood,
            host,
            me: None,
            room: LOBBY.into(),
            reg_timer: None,
        }
    }

    /// Handles one line; `false` stops reading the rest of the input (closing).
    fn line(&mut self, conn: &mut Conn<'_, '_>, line: Line<'_>) -> bool {
        match self.flood.check(conn.now()) {
            Gate::Pass => {}
            Gate::DropAndWarn => {
                let cfg = &self.hub.borrow().cfg;
                let msg = format!(
                    "* flood limit: at most {} lines at once and {} per second; lines dropped\n",
                    cfg.flood_burst, cfg.flood_rate
                );
                conn.write(msg.as_bytes());
                return true;
            }
            Gate::Drop => return true,
            Gate::Disconnect => {
                super::client_warn(format_args!(
                    "chat: {}: excess flood, disconnecting",
                    conn.peer()
                ));
                conn.write(b"* excess flood; goodbye\n");
                self.leave(conn, "Excess flood");
                conn.close();
                return false;
            }
        }
        let text = match line {
            Line::Line(bytes) => decode(bytes),
            Line::TooLong => {
                let max = self.hub.borrow().cfg.max_line;
                let msg = format!("* line too long (at most {max} bytes); dropped\n");
                conn.write(msg.as_bytes());
                return true;
            }
        };
        match self.me {
            None => self.choose_nick(conn, text.trim()),
            Some(me) => self.command(conn, me, &text),
        }
    }

    fn choose_nick(&mut self, conn: &mut Conn<'_, '_>, nick: &str) -> bool {
        if nick.is_empty() {
            conn.write(ASK.as_bytes());
            return true;
        }
        // A command before a nickname: `/quit` leaves, `/nick NAME` chooses, `/help`
        // helps; nothing that starts with `/` is taken as a nickname.
        if let Some(cmd) = nick.strip_prefix('/') {
            let (verb, arg) = cmd.split_once(' ').unwrap_or((cmd, ""));
            match verb.to_ascii_lowercase().as_str() {
                "quit" | "exit" => {
                    conn.write(b"* bye\n");
                    conn.close();
                    return false;
                }
                "nick" if !arg.trim().is_empty() => return self.choose_nick(conn, arg.trim()),
                "help" => conn.write(LINE_HELP.as_bytes()),
                _ => conn.write(b"* choose a nickname first (or /quit)\n"),
            };
            conn.write(ASK.as_bytes());
            return true;
        }
        let mut hub = self.hub.borrow_mut();
        let endpoint = Endpoint::Stream {
            id: conn.id(),
            flavor: Flavor::Line,
            caps: super::Caps::default(),
        };
        let userhost = format!("~line@{}", self.host);
        match hub.chat.register(nick, &userhost, endpoint) {
            Ok(id) => {
                self.me = Some(id);
                if let Some(t) = self.reg_timer.take() {
                    conn.cancel_timer(t);
                }
                log::info!("chat: {} is {nick} (line)", conn.peer());
                let mut hello = format!("* hello, {nick}! Type /help for the commands.\n");
                for l in &hub.cfg.motd {
                    let _ = writeln!(hello, "* {l}");
                }
                conn.write(hello.as_bytes());
                match hub.chat.join(id, LOBBY) {
                    Ok(out) => hub.deliver(&out, conn),
                    Err(e) => log::error!("chat: join lobby: {e}"),
                }
                self.room = LOBBY.into();
            }
            Err(e) => {
                conn.write(format!("* {e}\n{ASK}").as_bytes());
            }
        }
        true
    }

    fn error(conn: &mut Conn<'_, '_>, e: &ChatError) {
        conn.write(format!("* {e}\n").as_bytes());
    }

    fn deliver(&self, conn: &mut Conn<'_, '_>, out: Result<Outcome, ChatError>) -> bool {
        match out {
            Ok(out) => {
                self.hub.borrow().deliver(&out, conn);
                true
            }
            Err(e) => {
                Self::error(conn, &e);
                false
            }
        }
    }

    /// The room the client is in: the one it last chose, or (kicked from it) the
    /// last one it is still in.
    fn current_room(&mut self, me: MemberId) -> Option<Rc<str>> {
        let hub = self.hub.borrow();
        if hub.chat.is_in(me, &self.room) {
            return Some(self.room.clone());
        }
        let r = hub.chat.rooms_of(me).last().cloned()?;
        drop(hub);
        self.room = r.clone();
        Some(r)
    }

    fn command(&mut self, conn: &mut Conn<'_, '_>, me: MemberId, text: &str) -> bool {
        let in_room = self.current_room(me).is_some();
        let needs_room = !text.starts_with('/')
            || text.starts_with("//")
            || ["/me ", "/topic", "/kick "]
                .iter()
                .any(|c| text.to_ascii_lowercase().starts_with(c));
        if !in_room && needs_room {
            conn.write(b"* you are in no room; /join ROOM\n");
            return true;
        }
        let Some(cmdline) = text.strip_prefix('/').filter(|t| !t.starts_with('/')) else {
            // A plain line (or `//...`, sent without its first slash).
            let msg = text.strip_prefix('/').unwrap_or(text);
            if !msg.trim().is_empty() {
                self.say(conn, me, msg, MsgKind::Plain);
            }
            return true;
        };
        let (cmd, rest) = match cmdline.split_once(char::is_whitespace) {
            Some((c, r)) => (c, r.trim()),
            None => (cmdline, ""),
        };
        match cmd.to_ascii_lowercase().as_str() {
            "nick" if !rest.is_empty() => {
                let out = self.hub.borrow_mut().chat.rename(me, rest);
                self.deliver(conn, out);
            }
            "join" if !rest.is_empty() => {
                let room = rest.trim_start_matches('#');
                self.switch_room(conn, me, room, None);
            }
            "part" | "leave" => self.cmd_part(conn, me, rest),
            "msg" | "query" => self.cmd_msg(conn, me, rest),
            "me" if !rest.is_empty() => self.say(conn, me, rest, MsgKind::Action),
            "who" | "names" => self.cmd_who(conn, rest),
            "rooms" | "list" => self.cmd_rooms(conn),
            "topic" => self.cmd_topic(conn, me, rest),
            "away" => self.cmd_away(conn, me, rest),
            "kick" if !rest.is_empty() => self.cmd_kick(conn, me, rest),
            "help" => {
                conn.write(LINE_HELP.as_bytes());
            }
            "quit" | "exit" => return self.cmd_quit(conn, rest),
            "nick" | "join" | "me" | "kick" => {
                conn.write(format!("* usage: /{cmd} ARGUMENT\n").as_bytes());
            }
            _ => {
                conn.write(format!("* unknown command /{cmd}; /help lists them\n").as_bytes());
            }
        }
        true
    }

    /// Says `text` in the current room.
    fn say(&self, conn: &mut Conn<'_, '_>, me: MemberId, text: &str, kind: MsgKind) {
        let out = self.hub.borrow_mut().chat.say(me, &self.room, text, kind);
        self.deliver(conn, out);
    }

    /// `/part [REASON]`: back to the lobby.
    fn cmd_part(&mut self, conn: &mut Conn<'_, '_>, me: MemberId, rest: &str) {
        if self.hub.borrow().chat.is_in(me, LOBBY) {
            conn.write(b"* you are in the lobby; /quit leaves the chat\n");
        } else {
            let reason = (!rest.is_empty()).then_some(rest);
            self.switch_room(conn, me, LOBBY, reason);
        }
    }

    /// `/msg NICK TEXT`.
    fn cmd_msg(&self, conn: &mut Conn<'_, '_>, me: MemberId, rest: &str) {
        let (to, msg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let msg = msg.trim_start();
        if to.is_empty() || msg.is_empty() {
            conn.write(b"* usage: /msg NICK TEXT\n");
            return;
        }
        let out = self
            .hub
            .borrow_mut()
            .chat
            .private(me, to, msg, MsgKind::Plain);
        if self.deliver(conn, out) {
            conn.write(format!("-> *{to}* {msg}\n").as_bytes());
        }
    }

    /// `/who [ROOM]`.
    fn cmd_who(&self, conn: &mut Conn<'_, '_>, rest: &str) {
        let room = if rest.is_empty() {
            &*self.room
        } else {
            rest.trim_start_matches('#')
        };
        let hub = self.hub.borrow();
        let reply = match hub.chat.who_status(room) {
            Some(members) => {
                let names: Vec<String> = members
                    .iter()
                    .map(|(m, st)| match &m.away {
                        Some(a) => format!("{}{} (away: {a})", st.prefix(false), m.nick),
                        None => format!("{}{}", st.prefix(false), m.nick),
                    })
                    .collect();
                let name = hub.chat.room(room).map(|r| r.name).unwrap_or(room.into());
                format!("* in {name} ({}): {}\n", names.len(), names.join(", "))
            }
            None => format!("* {}\n", ChatError::NoSuchRoom(room.to_string())),
        };
        conn.write(reply.as_bytes());
    }

    /// `/rooms`.
    fn cmd_rooms(&self, conn: &mut Conn<'_, '_>) {
        let hub = self.hub.borrow();
        let mut s = String::from("* rooms:\n");
        for r in hub.chat.rooms() {
            let _ = match &r.topic {
                Some(t) => writeln!(s, "*   {} ({}): {t}", r.name, r.members),
                None => writeln!(s, "*   {} ({})", r.name, r.members),
            };
        }
        conn.write(s.as_bytes());
    }

    /// `/topic [TEXT]`: shows or sets the current room's topic.
    fn cmd_topic(&self, conn: &mut Conn<'_, '_>, me: MemberId, rest: &str) {
        if rest.is_empty() {
            let topic = self
                .hub
                .borrow()
                .chat
                .room(&self.room)
                .and_then(|r| r.topic);
            let s = match topic {
                Some(t) => format!("* topic of {}: {t}\n", self.room),
                None => format!("* {} has no topic\n", self.room),
            };
            conn.write(s.as_bytes());
        } else {
            let out = self.hub.borrow_mut().chat.set_topic(me, &self.room, rest);
            self.deliver(conn, out);
        }
    }

    /// `/away [TEXT]`.
    fn cmd_away(&self, conn: &mut Conn<'_, '_>, me: MemberId, rest: &str) {
        let text = (!rest.is_empty()).then_some(rest);
        let out = self.hub.borrow_mut().chat.set_away(me, text);
        if self.deliver(conn, out) {
            let s = match text {
                Some(t) => format!("* you are marked away: {t}\n"),
                None => "* you are back\n".to_string(),
            };
            conn.write(s.as_bytes());
        }
    }

    /// `/kick NICK [WHY]`.
    fn cmd_kick(&self, conn: &mut Conn<'_, '_>, me: MemberId, rest: &str) {
        let (who, why) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let out = self
            .hub
            .borrow_mut()
            .chat
            .kick(me, &self.room, who, why.trim());
        self.deliver(conn, out);
    }

    /// `/quit [REASON]`; `false`: the connection is closing.
    fn cmd_quit(&mut self, conn: &mut Conn<'_, '_>, rest: &str) -> bool {
        conn.write(b"* bye\n");
        let reason = if rest.is_empty() {
            "Quit".to_string()
        } else {
            format!("Quit: {rest}")
        };
        self.leave(conn, &reason);
        conn.close();
        false
    }

    /// Leaves the current room and joins `room` (validated first, so a bad name
    /// leaves the client where it was).
    fn switch_room(
        &mut self,
        conn: &mut Conn<'_, '_>,
        me: MemberId,
        room: &str,
        reason: Option<&str>,
    ) {
        if !valid_room(room) {
            Self::error(conn, &ChatError::BadRoom(room.to_string()));
            return;
        }
        let mut hub = self.hub.borrow_mut();
        if hub.chat.is_in(me, room) {
            conn.write(format!("* you are already in {}\n", self.room).as_bytes());
            return;
        }
        let reason = reason
            .map(str::to_string)
            .unwrap_or_else(|| format!("joined {room}"));
        if let Ok(out) = hub.chat.part(me, &self.room, Some(&reason)) {
            hub.deliver(&out, conn);
        }
        let out = match hub.chat.join(me, room) {
            Ok(out) => out,
            Err(e) => {
                Self::error(conn, &e);
                // Never leave a line client in no room.
                match hub.chat.join(me, LOBBY) {
                    Ok(out) => {
                        self.room = LOBBY.into();
                        hub.deliver(&out, conn);
                    }
                    Err(e) => log::error!("chat: rejoin lobby: {e}"),
                }
                return;
            }
        };
        self.room = hub
            .chat
            .room(room)
            .map(|r| r.name)
            .unwrap_or_else(|| room.into());
        hub.deliver(&out, conn);
    }

    /// Leaves the chat (once), announcing it to everyone who shared a room.
    fn leave(&mut self, conn: &mut Conn<'_, '_>, reason: &str) {
        if let Some(me) = self.me.take() {
            let mut hub = self.hub.borrow_mut();
            let out = hub.chat.quit(me, reason);
            hub.deliver(&out, conn);
        }
    }
}

impl Protocol for LineClient {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        let timeout = self.hub.borrow().cfg.registration_timeout;
        self.reg_timer = Some(conn.set_timer(timeout));
        conn.write(format!("* welcome to the readyloop chat\n{ASK}").as_bytes());
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
                log::info!("chat: {}: no nickname in time; closing", conn.peer());
                conn.write(b"* no nickname given in time; goodbye\n");
                conn.close();
            }
        }
    }

    fn event(&mut self, conn: &mut Conn<'_, '_>, event: Box<dyn std::any::Any>) {
        if let Ok(k) = event.downcast::<super::irc::Killed>() {
            conn.write(format!("* you were removed from the chat: {}\n", k.reason).as_bytes());
            self.leave(conn, &k.reason);
            conn.close();
        }
    }

    fn connection_lost(&mut self, conn: &mut Conn<'_, '_>, reason: Option<&io::Error>) {
        let why = super::quit_reason(conn, reason);
        self.leave(conn, &why);
    }

    fn shutdown(&mut self, conn: &mut Conn<'_, '_>) {
        conn.write(b"* server shutting down\n");
        self.leave(conn, "Server shutting down");
        conn.close();
    }
}
