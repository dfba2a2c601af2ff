//! Modes and server operators: `MODE` (channel and user), `OPER`, `KILL`, `WALLOPS`.

use crate::net::Conn;
use crate::proto::chat::state::ModeChange;
use crate::proto::chat::Endpoint;

use super::{write_irc, IrcClient, IrcMessage, Killed};

impl IrcClient {
    pub(super) fn irc_mode(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if !self.need(conn, msg, 1) {
            return true;
        }
        match msg.params[0].strip_prefix('#') {
            Some(room) => self.channel_mode(conn, room, &msg.params[1..]),
            None => self.user_mode(conn, msg.params[0], msg.params.get(1).copied()),
        }
        true
    }

    pub(super) fn channel_mode(&mut self, conn: &mut Conn<'_, '_>, room: &str, args: &[&str]) {
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
        let (changes, list_bans) = self.mode_changes(conn, spec, &args[1..]);
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

    /// Parses a channel `MODE` spec and its parameters into at most [`MAX_MODES`]
    /// changes (472 for an unknown letter); `true` if a `b` without a mask asked for
    /// the ban list.
    fn mode_changes(
        &self,
        conn: &mut Conn<'_, '_>,
        spec: &str,
        args: &[&str],
    ) -> (Vec<ModeChange>, bool) {
        let mut params = args.iter().copied();
        let mut changes = Vec::new();
        let mut list_bans = false;
        for (plus, c) in signed(spec) {
            let change = match c {
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
        (changes, list_bans)
    }

    pub(super) fn user_mode(&mut self, conn: &mut Conn<'_, '_>, nick: &str, spec: Option<&str>) {
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
        let mut applied = String::new();
        let mut sign = ' ';
        let mut unknown = false;
        {
            let mut hub = self.hub.borrow_mut();
            let Some(m) = hub.chat.member_mut(me) else {
                return;
            };
            for (plus, c) in signed(spec) {
                let flag = match c {
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

    pub(super) fn user_modes(&self) -> String {
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
    pub(super) fn me_prefix(&self) -> (String, String) {
        let hub = self.hub.borrow();
        self.me
            .and_then(|id| hub.chat.member(id))
            .map(|m| (m.nick.to_string(), m.userhost.to_string()))
            .unwrap_or_default()
    }

    // ----- users ----------------------------------------------------------------

    pub(super) fn irc_oper(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
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

    pub(super) fn is_oper(&self) -> bool {
        let hub = self.hub.borrow();
        self.me
            .and_then(|id| hub.chat.member(id))
            .is_some_and(|m| m.oper)
    }

    pub(super) fn irc_kill(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
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
                conn.send_via(sock, format!("Bye {nick} ({reason})").as_bytes(), addr);
                let out = hub.chat.quit(vid, &reason);
                hub.deliver(&out, conn);
            }
        }
        true
    }

    pub(super) fn irc_wallops(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let Some(me) = self.me else { return true };
        if !self.need(conn, msg, 1) {
            return true;
        }
        let out = self.hub.borrow().chat.wallops(me, msg.params[0]);
        self.deliver(conn, out, "WALLOPS");
        true
    }

    // ----- server queries -------------------------------------------------------
}

/// The mode letters of `spec` with the sign in force for each (`+` until a `-`, and
/// so on), the signs themselves left out.
fn signed(spec: &str) -> impl Iterator<Item = (bool, char)> + '_ {
    let mut plus = true;
    spec.chars().filter_map(move |c| match c {
        '+' => {
            plus = true;
            None
        }
        '-' => {
            plus = false;
            None
        }
        c => Some((plus, c)),
    })
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
