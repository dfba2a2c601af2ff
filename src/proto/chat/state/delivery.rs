//! Messages: to a room, to a member, to operators; who hears a member.

use std::collections::BTreeSet;
use std::rc::Rc;

use super::{fold, unix_millis, Chat, ChatError, Event, MemberId, Message, MsgKind, Outcome};

impl<E> Chat<E> {
    /// `id` says `text` in `room`; everyone else in the room gets it, and it is kept
    /// in the history unless it is a notice. A non-member may send only to a `-n`
    /// room; in a `+m` room only operators and voiced members speak; a banned member
    /// (not voiced) does not.
    ///
    /// # Errors
    ///
    /// [`NoText`](ChatError::NoText) for an empty `text`,
    /// [`NoSuchMember`](ChatError::NoSuchMember), [`NoSuchRoom`](ChatError::NoSuchRoom);
    /// [`NotInRoom`](ChatError::NotInRoom) for a non-member and a `+n` room;
    /// [`CannotSend`](ChatError::CannotSend) for a non-member of a `+m` room, or a
    /// member who is neither operator nor voiced in a `+m` room or while banned.
    pub fn say(
        &mut self,
        id: MemberId,
        room: &str,
        text: &str,
        kind: MsgKind,
    ) -> Result<Outcome, ChatError> {
        if text.is_empty() {
            return Err(ChatError::NoText);
        }
        let member = self.members.get(&id).ok_or(ChatError::NoSuchMember)?;
        let r = self
            .rooms
            .get_mut(&fold(room))
            .ok_or_else(|| ChatError::NoSuchRoom(room.to_string()))?;
        match r.status(id) {
            None if r.modes.no_external => {
                return Err(ChatError::NotInRoom(r.name.to_string()));
            }
            None if r.modes.moderated => return Err(ChatError::CannotSend(r.name.to_string())),
            Some(st) if !st.op && !st.voice => {
                let mask = format!("{}!{}", member.nick, member.userhost);
                if r.modes.moderated || r.banned(&mask) {
                    return Err(ChatError::CannotSend(r.name.to_string()));
                }
            }
            _ => {}
        }
        let msg = Message {
            from: member.nick.clone(),
            userhost: member.userhost.clone(),
            text: text.into(),
            kind,
            at_ms: unix_millis(),
        };
        if kind != MsgKind::Notice && self.cfg.history > 0 {
            if r.history.len() == self.cfg.history {
                r.history.pop_front();
            }
            r.history.push_back(msg.clone());
        }
        let to = r.ids().filter(|&m| m != id).collect();
        let mut out = Outcome::default();
        out.push(
            to,
            Event::Room {
                room: r.name.clone(),
                msg,
            },
        );
        Ok(out)
    }

    /// `id` sends `text` to the member called `to`.
    ///
    /// # Errors
    ///
    /// [`NoText`](ChatError::NoText) for an empty `text`,
    /// [`NoSuchMember`](ChatError::NoSuchMember) for an unknown `id`,
    /// [`NoSuchNick`](ChatError::NoSuchNick) if nobody is called `to`.
    pub fn private(
        &mut self,
        id: MemberId,
        to: &str,
        text: &str,
        kind: MsgKind,
    ) -> Result<Outcome, ChatError> {
        if text.is_empty() {
            return Err(ChatError::NoText);
        }
        let member = self.members.get(&id).ok_or(ChatError::NoSuchMember)?;
        let target = self
            .nicks
            .get(&fold(to))
            .copied()
            .ok_or_else(|| ChatError::NoSuchNick(to.to_string()))?;
        let tnick = self
            .members
            .get(&target)
            .map_or_else(|| Rc::from(to), |m| m.nick.clone());
        let mut out = Outcome::default();
        out.push(
            vec![target],
            Event::Private {
                target: tnick,
                msg: Message {
                    from: member.nick.clone(),
                    userhost: member.userhost.clone(),
                    text: text.into(),
                    kind,
                    at_ms: unix_millis(),
                },
            },
        );
        Ok(out)
    }

    /// Everyone sharing a room with `id`, `id` excluded, each once.
    pub fn neighbours(&self, id: MemberId) -> Vec<MemberId> {
        let Some(m) = self.members.get(&id) else {
            return Vec::new();
        };
        let mut set = BTreeSet::new();
        for key in &m.rooms {
            if let Some(r) = self.rooms.get(key) {
                set.extend(r.ids().filter(|&o| o != id));
            }
        }
        set.into_iter().collect()
    }

    /// A server operator's `text` to every member who receives wallops.
    ///
    /// # Errors
    ///
    /// [`NoSuchMember`](ChatError::NoSuchMember) for an unknown `id`,
    /// [`NoPrivileges`](ChatError::NoPrivileges) if it is not a server operator.
    pub fn wallops(&self, id: MemberId, text: &str) -> Result<Outcome, ChatError> {
        let member = self.members.get(&id).ok_or(ChatError::NoSuchMember)?;
        if !member.oper {
            return Err(ChatError::NoPrivileges);
        }
        let to = self
            .members
            .values()
            .filter(|m| m.wallops)
            .map(|m| m.id)
            .collect();
        let mut out = Outcome::default();
        out.push(
            to,
            Event::Wallops {
                from: member.nick.clone(),
                userhost: member.userhost.clone(),
                text: text.into(),
            },
        );
        Ok(out)
    }
}
