//! Registration: `PASS`, `CAP`, `NICK`, `USER`, `PING`/`PONG`, `QUIT`, and the
//! welcome burst (001-005) once a client is registered.

use crate::net::Conn;
use crate::proto::chat::state::{valid_nick, LOBBY};
use crate::proto::chat::{Caps, Endpoint, Flavor};

use super::{write_irc, IrcClient, IrcMessage, MAX_MODES, MAX_TARGETS, VERSION};

impl IrcClient {
    pub(super) fn irc_pass(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        if self.me.is_some() {
            self.numeric(conn, 462, ":You may not reregister");
        } else if self.need(conn, msg, 1) {
            self.pass = Some(msg.params[0].to_string());
        }
        true
    }

    pub(super) fn irc_cap(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
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
    pub(super) fn sync_caps(&self) {
        if let Some(me) = self.me {
            let mut hub = self.hub.borrow_mut();
            if let Some(Endpoint::Stream { caps, .. }) =
                hub.chat.member_mut(me).map(|m| &mut m.endpoint)
            {
                *caps = self.caps;
            }
        }
    }

    pub(super) fn irc_nick(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
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

    pub(super) fn irc_user(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
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

    pub(super) fn irc_ping(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let token = msg.params.first().copied().unwrap_or("");
        if token.is_empty() {
            self.numeric(conn, 409, ":No origin specified");
        } else {
            let srv = self.srv();
            write_irc(conn, &format!(":{srv} PONG {srv} :{token}\r\n"));
        }
        true
    }

    pub(super) fn irc_pong(&mut self, _conn: &mut Conn<'_, '_>, _msg: &IrcMessage<'_>) -> bool {
        true
    }

    pub(super) fn irc_quit(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
        let reason = match msg.params.first() {
            Some(r) if !r.is_empty() => format!("Quit: {r}"),
            _ => "Quit".to_string(),
        };
        self.close_link(conn, &reason);
        false
    }

    pub(super) fn try_register(&mut self, conn: &mut Conn<'_, '_>) -> bool {
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
        self.welcome(conn, &nick, &userhost);
        let autojoin = self.hub.borrow().cfg.irc_autojoin;
        if autojoin {
            let out = self.hub.borrow_mut().chat.join(id, LOBBY);
            self.deliver(conn, out, "JOIN");
        }
        true
    }

    /// The welcome burst: 001-005, then `LUSERS` and the MOTD.
    fn welcome(&self, conn: &mut Conn<'_, '_>, nick: &str, userhost: &str) {
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
    }

    /// RPL_ISUPPORT (005): what this server does, truthfully.
    pub(super) fn isupport(&self, s: &mut String) {
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
            format!("CHANNELLEN={}", crate::proto::chat::state::ROOM_MAX + 1),
            "CHANTYPES=#".into(),
            "KICKLEN=390".into(),
            format!("MAXLIST=b:{max_bans}"),
            format!("MODES={MAX_MODES}"),
            format!("NETWORK={network}"),
            format!("NICKLEN={}", crate::proto::chat::state::NICK_MAX),
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
}
