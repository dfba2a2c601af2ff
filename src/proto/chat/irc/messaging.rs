//! Messages and away states: `PRIVMSG`, `NOTICE`, `AWAY`.

use crate::net::Conn;
use crate::proto::chat::state::{fold, MsgKind};
use crate::proto::chat::Caps;

use super::{IrcClient, IrcMessage, MAX_TARGETS};

impl IrcClient {
    pub(super) fn irc_privmsg(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
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
    pub(super) fn tell_away(&self, conn: &mut Conn<'_, '_>, nick: &str) {
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

    pub(super) fn irc_away(&mut self, conn: &mut Conn<'_, '_>, msg: &IrcMessage<'_>) -> bool {
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
}
