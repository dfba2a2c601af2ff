//! Queries about people: `WHO`, `WHOIS`, `WHOWAS`, `USERHOST`, `ISON`.

use std::fmt::Write;

use crate::net::Conn;
use crate::proto::chat::state::{fold, mask_match, Member, Status};
use crate::proto::chat::{Caps, Endpoint};

use super::{write_irc, IrcClient, IrcMessage};

impl IrcClient {
    /// The `H`/`G`, `*` and status flags of a WHO reply.
    pub(super) fn who_flags(m: &Member<Endpoint>, status: Option<Status>, multi: bool) -> String {
        let mut f = String::from(if m.away.is_some() { "G" } else { "H" });
        if m.oper {
            f.push('*');
        }
        if let Some(st) = status {
            f.push_str(st.prefix(multi));
        }
        f
    }

    pub(super) fn irc_who(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
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

    pub(super) fn irc_whois(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
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

    pub(super) fn irc_whowas(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
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
            let entries: Vec<crate::proto::chat::state::Whowas> = self
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

    /// `show` of each member named in `msg`'s parameters (space-separated too), for
    /// the first `max` names; names nobody has are skipped (`USERHOST`, `ISON`).
    fn each_present(
        &self,
        msg: &IrcMessage<'_>,
        max: usize,
        show: impl Fn(&Member<Endpoint>) -> String,
    ) -> Vec<String> {
        let hub = self.hub.borrow();
        msg.params
            .iter()
            .flat_map(|p| p.split(' '))
            .take(max)
            .filter_map(|n| hub.chat.find(n))
            .map(show)
            .collect()
    }

    pub(super) fn irc_userhost(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if !self.need(conn, msg, 1) {
            return true;
        }
        let found = self.each_present(msg, 5, |m| {
            let oper = if m.oper { "*" } else { "" };
            let away = if m.away.is_some() { '-' } else { '+' };
            format!("{}{oper}={away}{}", m.nick, m.userhost)
        });
        self.numeric(conn, 302, &format!(":{}", found.join(" ")));
        true
    }

    pub(super) fn irc_ison(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if !self.need(conn, msg, 1) {
            return true;
        }
        let found = self.each_present(msg, usize::MAX, |m| m.nick.to_string());
        self.numeric(conn, 303, &format!(":{}", found.join(" ")));
        true
    }

    // ----- operators ------------------------------------------------------------
}
