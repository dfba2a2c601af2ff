//! Channel commands: `JOIN`, `PART`, `NAMES`, `TOPIC`, `LIST`, `INVITE`, `KICK`.

use std::fmt::Write;

use crate::net::Conn;
use crate::proto::chat::state::fold;
use crate::proto::chat::{render, Caps};

use super::{write_irc, IrcClient, IrcMessage};

impl IrcClient {
    pub(super) fn irc_join(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
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
        let keys: Vec<&str> = msg
            .params
            .get(1)
            .map_or_else(Vec::new, |k| k.split(',').collect());
        self.each_channel(conn, msg.params[0], |this, conn, i, room| {
            let key = keys.get(i).copied().filter(|k| !k.is_empty());
            let out = this.hub.borrow_mut().chat.join_with_key(me, room, key);
            this.deliver(conn, out, "JOIN");
        });
        true
    }

    /// Runs `f` for each `#channel` of a comma-separated list, with the channel's
    /// position in the list (empty entries skipped) and its name without `#`; any
    /// other name gets 403.
    fn each_channel(
        &mut self,
        conn: &mut Conn<'_, '_>,
        list: &str,
        mut f: impl FnMut(&mut Self, &mut Conn<'_, '_>, usize, &str),
    ) {
        for (i, chan) in list.split(',').filter(|c| !c.is_empty()).enumerate() {
            match chan.strip_prefix('#') {
                Some(room) => f(self, conn, i, room),
                None => self.numeric(conn, 403, &format!("{chan} :No such channel")),
            }
        }
    }

    pub(super) fn irc_part(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let Some(me) = self.me else { return true };
        if !self.need(conn, msg, 1) {
            return true;
        }
        let reason = msg.params.get(1).copied();
        self.each_channel(conn, msg.params[0], |this, conn, _, room| {
            let out = this.hub.borrow_mut().chat.part(me, room, reason);
            this.deliver(conn, out, "PART");
        });
        true
    }

    pub(super) fn irc_names(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
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

    pub(super) fn irc_topic(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
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

    pub(super) fn irc_list(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
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

    pub(super) fn irc_invite(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
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

    pub(super) fn irc_kick(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
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
}
