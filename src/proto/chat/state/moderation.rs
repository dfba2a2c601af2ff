//! Room moderation: topics, kicks, modes, invitations.

use std::rc::Rc;

use super::{fold, unix_now, Chat, ChatError, Event, MemberId, ModeChange, Outcome, Room, Topic};

impl<E> Chat<E> {
    /// Whether `id` may act as an operator of `r` (a room operator or a server
    /// operator).
    pub(super) fn may_moderate(&self, id: MemberId, r: &Room) -> bool {
        r.status(id).is_some_and(|s| s.op) || self.members.get(&id).is_some_and(|m| m.oper)
    }

    /// Sets `room`'s topic (members only; in a `+t` room operators only; empty clears
    /// it); everyone in it is told.
    ///
    /// # Errors
    ///
    /// [`NoSuchMember`](ChatError::NoSuchMember), [`NoSuchRoom`](ChatError::NoSuchRoom),
    /// [`NotInRoom`](ChatError::NotInRoom) if `id` is not in it, and
    /// [`NotOperator`](ChatError::NotOperator) in a `+t` room for a member who is
    /// neither its operator nor a server operator.
    pub fn set_topic(
        &mut self,
        id: MemberId,
        room: &str,
        topic: &str,
    ) -> Result<Outcome, ChatError> {
        let member = self.members.get(&id).ok_or(ChatError::NoSuchMember)?;
        let r = self.existing_room(room)?;
        if !r.contains(id) {
            return Err(ChatError::NotInRoom(r.name.to_string()));
        }
        if r.modes.topic_lock && !self.may_moderate(id, r) {
            return Err(ChatError::NotOperator(r.name.to_string()));
        }
        let (by, userhost) = (member.nick.clone(), member.userhost.clone());
        let r = self
            .rooms
            .get_mut(&fold(room))
            .ok_or_else(|| ChatError::NoSuchRoom(room.to_string()))?;
        let topic: Rc<str> = topic.into();
        r.topic = (!topic.is_empty()).then(|| Topic {
            text: topic.clone(),
            by: format!("{by}!{userhost}").into(),
            at: unix_now(),
        });
        let mut out = Outcome::default();
        out.push(
            r.ids().collect(),
            Event::Topic {
                room: r.name.clone(),
                by,
                userhost,
                topic,
            },
        );
        Ok(out)
    }

    /// The room called `room`, or [`ChatError::NoSuchRoom`].
    fn existing_room(&self, room: &str) -> Result<&Room, ChatError> {
        self.rooms
            .get(&fold(room))
            .ok_or_else(|| ChatError::NoSuchRoom(room.to_string()))
    }

    /// Checks that `id` may moderate `room`: a member and an operator of it (or a
    /// server operator, member or not).
    pub(super) fn check_moderator(&self, id: MemberId, room: &str) -> Result<&Room, ChatError> {
        let r = self.existing_room(room)?;
        let oper = self.members.get(&id).is_some_and(|m| m.oper);
        if !r.contains(id) && !oper {
            return Err(ChatError::NotInRoom(r.name.to_string()));
        }
        if !self.may_moderate(id, r) {
            return Err(ChatError::NotOperator(r.name.to_string()));
        }
        Ok(r)
    }

    /// `id` (an operator of `room`) removes `target` from it; everyone in the room,
    /// the target included, gets [`Event::Kick`].
    ///
    /// # Errors
    ///
    /// [`NoSuchMember`](ChatError::NoSuchMember), [`NoSuchRoom`](ChatError::NoSuchRoom);
    /// [`NotInRoom`](ChatError::NotInRoom) or [`NotOperator`](ChatError::NotOperator)
    /// if `id` may not moderate the room (server operators may, member or not);
    /// [`NoSuchNick`](ChatError::NoSuchNick) for an unknown `target`,
    /// [`TargetNotInRoom`](ChatError::TargetNotInRoom) if it is not in the room.
    pub fn kick(
        &mut self,
        id: MemberId,
        room: &str,
        target: &str,
        reason: &str,
    ) -> Result<Outcome, ChatError> {
        let member = self.members.get(&id).ok_or(ChatError::NoSuchMember)?;
        let r = self.check_moderator(id, room)?;
        let name = r.name.clone();
        let victim = self
            .find(target)
            .ok_or_else(|| ChatError::NoSuchNick(target.to_string()))?;
        let (vid, vnick) = (victim.id, victim.nick.clone());
        if !r.contains(vid) {
            return Err(ChatError::TargetNotInRoom(
                vnick.to_string(),
                name.to_string(),
            ));
        }
        let to: Vec<MemberId> = r.ids().collect();
        let event = Event::Kick {
            room: name,
            by: member.nick.clone(),
            userhost: member.userhost.clone(),
            target: vnick,
            reason: if reason.is_empty() {
                member.nick.clone()
            } else {
                reason.into()
            },
        };
        let key = fold(room);
        if let Some(r) = self.rooms.get_mut(&key) {
            r.remove(vid);
        }
        if let Some(v) = self.members.get_mut(&vid) {
            v.rooms.retain(|k| *k != key);
        }
        self.forget_if_empty(&key);
        let mut out = Outcome::default();
        out.push(to, event);
        Ok(out)
    }

    /// `id` (an operator of `room`) changes its modes; everyone in it gets one
    /// [`Event::Mode`] with the changes that took effect. The errors of changes that
    /// did not (an unknown nickname, ...) come back beside it.
    ///
    /// # Errors
    ///
    /// Only when nothing may be changed: [`NoSuchMember`](ChatError::NoSuchMember),
    /// [`NoSuchRoom`](ChatError::NoSuchRoom), or [`NotInRoom`](ChatError::NotInRoom) /
    /// [`NotOperator`](ChatError::NotOperator) if `id` may not moderate the room. A
    /// single change that fails ([`NoSuchNick`](ChatError::NoSuchNick),
    /// [`TargetNotInRoom`](ChatError::TargetNotInRoom)) is reported in the `Vec` beside
    /// the outcome instead.
    pub fn set_modes(
        &mut self,
        id: MemberId,
        room: &str,
        changes: &[ModeChange],
    ) -> Result<(Outcome, Vec<ChatError>), ChatError> {
        let member = self.members.get(&id).ok_or(ChatError::NoSuchMember)?;
        let (by, userhost) = (member.nick.clone(), member.userhost.clone());
        let name = self.check_moderator(id, room)?.name.clone();
        let mut errors = Vec::new();
        let mut applied = Applied::default();
        for ch in changes {
            // Status changes need the member's id before the room is borrowed.
            let who = match ch {
                ModeChange::Op(_, n) | ModeChange::Voice(_, n) => match self.find(n) {
                    Some(m) => Some((m.id, m.nick.clone())),
                    None => {
                        errors.push(ChatError::NoSuchNick(n.clone()));
                        continue;
                    }
                },
                _ => None,
            };
            let max_bans = self.cfg.max_bans;
            let Some(r) = self.rooms.get_mut(&fold(room)) else {
                break;
            };
            if let Err(e) = apply_mode(r, ch, who, max_bans, &mut applied) {
                errors.push(e);
            }
        }
        let mut out = Outcome::default();
        if !applied.changes.is_empty() {
            let to = self
                .rooms
                .get(&fold(room))
                .map(|r| r.ids().collect())
                .unwrap_or_default();
            out.push(
                to,
                Event::Mode {
                    room: name,
                    by,
                    userhost,
                    changes: applied.changes.into(),
                    args: applied.args,
                },
            );
        }
        Ok((out, errors))
    }

    /// `id` invites `target` to `room`: the target gets [`Event::Invite`] and may then
    /// join past `+i` and bans. The inviter must be in the room (and an operator of
    /// an invitation-only one); a room that does not exist cannot be invited to.
    ///
    /// # Errors
    ///
    /// [`NoSuchMember`](ChatError::NoSuchMember), [`NoSuchNick`](ChatError::NoSuchNick)
    /// for an unknown `target`, [`NoSuchRoom`](ChatError::NoSuchRoom),
    /// [`NotInRoom`](ChatError::NotInRoom) if the inviter is not in it,
    /// [`NotOperator`](ChatError::NotOperator) for a `+i` room the inviter may not
    /// moderate, [`AlreadyInRoom`](ChatError::AlreadyInRoom) if the target is in it.
    pub fn invite(&mut self, id: MemberId, room: &str, target: &str) -> Result<Outcome, ChatError> {
        let member = self.members.get(&id).ok_or(ChatError::NoSuchMember)?;
        let victim = self
            .find(target)
            .ok_or_else(|| ChatError::NoSuchNick(target.to_string()))?;
        let r = self.existing_room(room)?;
        if !r.contains(id) {
            return Err(ChatError::NotInRoom(r.name.to_string()));
        }
        if r.modes.invite_only && !self.may_moderate(id, r) {
            return Err(ChatError::NotOperator(r.name.to_string()));
        }
        if r.contains(victim.id) {
            return Err(ChatError::AlreadyInRoom(
                victim.nick.to_string(),
                r.name.to_string(),
            ));
        }
        let event = Event::Invite {
            room: r.name.clone(),
            by: member.nick.clone(),
            userhost: member.userhost.clone(),
            target: victim.nick.clone(),
        };
        let vid = victim.id;
        if let Some(r) = self.rooms.get_mut(&fold(room)) {
            r.invited.insert(vid);
        }
        let mut out = Outcome::default();
        out.push(vec![vid], event);
        Ok(out)
    }
}

/// The mode changes that took effect, as IRC shows them (`+o-v` and their arguments).
#[derive(Default)]
struct Applied {
    changes: String,
    args: Vec<Rc<str>>,
    sign: Option<char>,
}

impl Applied {
    fn note(&mut self, on: bool, c: char, arg: Option<Rc<str>>) {
        let s = if on { '+' } else { '-' };
        if self.sign != Some(s) {
            self.changes.push(s);
            self.sign = Some(s);
        }
        self.changes.push(c);
        self.args.extend(arg);
    }
}

/// Applies one mode change to room `r`, noting it in `applied` if it changed
/// anything. `who` is the member an `o`/`v` change is about (looked up by the caller);
/// one not in the room is an error.
fn apply_mode(
    r: &mut Room,
    ch: &ModeChange,
    who: Option<(MemberId, Rc<str>)>,
    max_bans: usize,
    applied: &mut Applied,
) -> Result<(), ChatError> {
    match ch {
        ModeChange::Op(on, _) | ModeChange::Voice(on, _) => {
            let Some((mid, mnick)) = who else {
                return Ok(());
            };
            let Some(entry) = r.seq.get_mut(&mid) else {
                return Err(ChatError::TargetNotInRoom(
                    mnick.to_string(),
                    r.name.to_string(),
                ));
            };
            let (flag, c) = match ch {
                ModeChange::Op(..) => (&mut entry.1.op, 'o'),
                _ => (&mut entry.1.voice, 'v'),
            };
            if *flag != *on {
                *flag = *on;
                applied.note(*on, c, Some(mnick));
            }
        }
        ModeChange::TopicLock(on)
        | ModeChange::NoExternal(on)
        | ModeChange::Moderated(on)
        | ModeChange::Secret(on)
        | ModeChange::InviteOnly(on) => {
            let (flag, c) = match ch {
                ModeChange::TopicLock(_) => (&mut r.modes.topic_lock, 't'),
                ModeChange::NoExternal(_) => (&mut r.modes.no_external, 'n'),
                ModeChange::Moderated(_) => (&mut r.modes.moderated, 'm'),
                ModeChange::Secret(_) => (&mut r.modes.secret, 's'),
                _ => (&mut r.modes.invite_only, 'i'),
            };
            if *flag != *on {
                *flag = *on;
                applied.note(*on, c, None);
            }
        }
        ModeChange::Key(k) => apply_key(r, k.as_deref(), applied),
        ModeChange::Limit(l) => apply_limit(r, *l, applied),
        ModeChange::Ban(on, mask) => apply_ban(r, *on, mask, max_bans, applied),
    }
    Ok(())
}

/// `+k KEY` and `-k`.
fn apply_key(r: &mut Room, key: Option<&str>, applied: &mut Applied) {
    match key {
        Some(k) => {
            let k: Rc<str> = k.into();
            r.modes.key = Some(k.clone());
            applied.note(true, 'k', Some(k));
        }
        None => {
            if let Some(k) = r.modes.key.take() {
                applied.note(false, 'k', Some(k));
            }
        }
    }
}

/// `+l N` and `-l`.
fn apply_limit(r: &mut Room, limit: Option<usize>, applied: &mut Applied) {
    match limit {
        Some(l) => {
            r.modes.limit = Some(l);
            applied.note(true, 'l', Some(l.to_string().into()));
        }
        None => {
            if r.modes.limit.take().is_some() {
                applied.note(false, 'l', None);
            }
        }
    }
}

/// `+b MASK` (at most `max_bans`, no duplicates) and `-b MASK`.
fn apply_ban(r: &mut Room, on: bool, mask: &str, max_bans: usize, applied: &mut Applied) {
    if on {
        if !r.bans.iter().any(|b| fold(b) == fold(mask)) && r.bans.len() < max_bans {
            let m: Rc<str> = mask.into();
            r.bans.push(m.clone());
            applied.note(true, 'b', Some(m));
        }
    } else {
        let before = r.bans.len();
        r.bans.retain(|b| fold(b) != fold(mask));
        if r.bans.len() != before {
            applied.note(false, 'b', Some(mask.into()));
        }
    }
}
