//! The nickname registry: registering, renaming, away states, `WHOWAS`, quitting.

use std::rc::Rc;

use super::{fold, valid_nick, Chat, ChatError, Event, Member, MemberId, Outcome, Whowas};

impl<E> Chat<E> {
    /// The member with nickname `nick` (case-insensitive).
    pub fn find(&self, nick: &str) -> Option<&Member<E>> {
        self.nicks
            .get(&fold(nick))
            .and_then(|id| self.members.get(id))
    }

    /// Checks that `nick` is well formed and free (or already `me`'s).
    ///
    /// # Errors
    ///
    /// [`ChatError::BadNick`] if `nick` is malformed, [`ChatError::NickTaken`] if
    /// another member has it (compared case-insensitively).
    pub fn check_nick(&self, nick: &str, me: Option<MemberId>) -> Result<(), ChatError> {
        if !valid_nick(nick) {
            return Err(ChatError::BadNick(nick.to_string()));
        }
        match self.nicks.get(&fold(nick)) {
            Some(&owner) if Some(owner) != me => Err(ChatError::NickTaken(nick.to_string())),
            _ => Ok(()),
        }
    }

    /// Adds a member (in no room yet: [`join`](Self::join) the lobby next).
    ///
    /// # Errors
    ///
    /// As [`check_nick`](Self::check_nick): the nickname is malformed or taken.
    pub fn register(
        &mut self,
        nick: &str,
        userhost: &str,
        endpoint: E,
    ) -> Result<MemberId, ChatError> {
        self.check_nick(nick, None)?;
        let id = MemberId(self.next_id);
        self.next_id += 1;
        self.nicks.insert(fold(nick), id);
        self.members.insert(
            id,
            Member {
                id,
                nick: nick.into(),
                userhost: userhost.into(),
                endpoint,
                rooms: Vec::new(),
                realname: nick.into(),
                away: None,
                oper: false,
                invisible: false,
                wallops: false,
            },
        );
        log::debug!("chat: {nick} ({userhost}) registered as {id:?}");
        Ok(id)
    }

    pub(super) fn remember(&mut self, m: Whowas) {
        if self.cfg.whowas == 0 {
            return;
        }
        if self.whowas.len() >= self.cfg.whowas {
            self.whowas.pop_back();
        }
        self.whowas.push_front(m);
    }

    /// What `WHOWAS` knows of `nick`, newest first.
    pub fn whowas(&self, nick: &str) -> Vec<&Whowas> {
        let key = fold(nick);
        self.whowas
            .iter()
            .filter(|w| fold(&w.nick) == key)
            .collect()
    }

    /// `id` takes the nickname `new`; the member and everyone sharing a room with it
    /// get [`Event::Nick`]. Changing only the case of one's own nickname is allowed.
    ///
    /// # Errors
    ///
    /// As [`check_nick`](Self::check_nick) (malformed, or another member's);
    /// [`NoSuchMember`](ChatError::NoSuchMember) for an unknown `id`.
    pub fn rename(&mut self, id: MemberId, new: &str) -> Result<Outcome, ChatError> {
        self.check_nick(new, Some(id))?;
        let mut to = vec![id];
        to.extend(self.neighbours(id));
        let member = self.members.get_mut(&id).ok_or(ChatError::NoSuchMember)?;
        if &*member.nick == new {
            return Ok(Outcome::default());
        }
        let old = std::mem::replace(&mut member.nick, new.into());
        let was = Whowas {
            nick: old.clone(),
            userhost: member.userhost.clone(),
            realname: member.realname.clone(),
        };
        let event = Event::Nick {
            old: old.clone(),
            userhost: member.userhost.clone(),
            new: member.nick.clone(),
        };
        self.nicks.remove(&fold(&old));
        self.nicks.insert(fold(new), id);
        self.remember(was);
        let mut out = Outcome::default();
        out.push(to, event);
        Ok(out)
    }

    /// Marks `id` away with `text` (`None` or empty: back); everyone sharing a room
    /// gets [`Event::Away`] (front ends show it to those who asked).
    ///
    /// # Errors
    ///
    /// [`NoSuchMember`](ChatError::NoSuchMember) for an unknown `id`.
    pub fn set_away(&mut self, id: MemberId, text: Option<&str>) -> Result<Outcome, ChatError> {
        let to = self.neighbours(id);
        let member = self.members.get_mut(&id).ok_or(ChatError::NoSuchMember)?;
        let text: Option<Rc<str>> = text.filter(|t| !t.is_empty()).map(Rc::from);
        member.away = text.clone();
        let mut out = Outcome::default();
        out.push(
            to,
            Event::Away {
                nick: member.nick.clone(),
                userhost: member.userhost.clone(),
                text,
            },
        );
        Ok(out)
    }

    /// `id` leaves the chat: out of every room, nickname freed; everyone who shared a
    /// room with it gets one [`Event::Quit`]. Unknown ids give an empty outcome (a
    /// front end may call this twice safely).
    pub fn quit(&mut self, id: MemberId, reason: &str) -> Outcome {
        let to = self.neighbours(id);
        let Some(member) = self.members.remove(&id) else {
            return Outcome::default();
        };
        self.nicks.remove(&fold(&member.nick));
        for key in &member.rooms {
            if let Some(r) = self.rooms.get_mut(key) {
                r.remove(id);
            }
            self.forget_if_empty(key);
        }
        for r in self.rooms.values_mut() {
            r.invited.remove(&id);
        }
        log::debug!("chat: {} quit ({reason})", member.nick);
        self.remember(Whowas {
            nick: member.nick.clone(),
            userhost: member.userhost.clone(),
            realname: member.realname.clone(),
        });
        let mut out = Outcome::default();
        out.push(
            to,
            Event::Quit {
                nick: member.nick,
                userhost: member.userhost,
                reason: reason.into(),
            },
        );
        out
    }
}
