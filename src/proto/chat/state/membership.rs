//! Room membership: joining (keys, bans, limits, invitations), parting, and the
//! room tables' queries.

use std::rc::Rc;

use super::{
    fold, valid_room, Chat, ChatError, Event, Member, MemberId, Outcome, Room, RoomInfo, Status,
    LOBBY,
};

impl<E> Chat<E> {
    /// Whether `id` is in `room`.
    pub fn is_in(&self, id: MemberId, room: &str) -> bool {
        self.rooms.get(&fold(room)).is_some_and(|r| r.contains(id))
    }

    /// `id`'s status in `room` (`None`: not a member).
    pub fn status(&self, id: MemberId, room: &str) -> Option<Status> {
        self.rooms.get(&fold(room)).and_then(|r| r.status(id))
    }

    /// How many rooms exist (the lobby included).
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// `id` joins `room` (created if new). Others in the room get [`Event::Join`],
    /// the newcomer [`Event::Joined`] with the history. Joining a room one is already
    /// in does nothing.
    ///
    /// # Errors
    ///
    /// As [`join_with_key`](Self::join_with_key) without a key.
    pub fn join(&mut self, id: MemberId, room: &str) -> Result<Outcome, ChatError> {
        self.join_with_key(id, room, None)
    }

    /// [`join`](Self::join) with the room's key, if it has one. A ban (`+b`), an
    /// invitation-only room (`+i`), a key (`+k`) or a limit (`+l`) may refuse; an
    /// invitation lifts the first two. Whoever creates a room (not the lobby) becomes
    /// its operator.
    ///
    /// # Errors
    ///
    /// [`BadRoom`](ChatError::BadRoom) for a malformed name,
    /// [`NoSuchMember`](ChatError::NoSuchMember) for an unknown `id`,
    /// [`TooManyRooms`](ChatError::TooManyRooms) past the configured limit; for an
    /// existing room, [`Banned`](ChatError::Banned) (`+b`) and
    /// [`InviteOnly`](ChatError::InviteOnly) (`+i`) unless invited,
    /// [`BadKey`](ChatError::BadKey) (`+k`) and [`RoomFull`](ChatError::RoomFull)
    /// (`+l`). Nothing changes then.
    pub fn join_with_key(
        &mut self,
        id: MemberId,
        room: &str,
        key: Option<&str>,
    ) -> Result<Outcome, ChatError> {
        if !valid_room(room) {
            return Err(ChatError::BadRoom(room.to_string()));
        }
        let key_name = fold(room);
        let member = self.members.get_mut(&id).ok_or(ChatError::NoSuchMember)?;
        if member.rooms.contains(&key_name) {
            return Ok(Outcome::default());
        }
        if member.rooms.len() >= self.cfg.max_rooms {
            return Err(ChatError::TooManyRooms(room.to_string()));
        }
        let mask = format!("{}!{}", member.nick, member.userhost);
        let (nick, userhost) = (member.nick.clone(), member.userhost.clone());
        let creating = !self.rooms.contains_key(&key_name);
        let r = self
            .rooms
            .entry(key_name.clone())
            .or_insert_with(|| Room::new(room));
        if !creating {
            admits(r, id, &mask, key)?;
        }
        r.invited.remove(&id);
        let others: Vec<MemberId> = r.ids().collect();
        let status = Status {
            op: creating && key_name != LOBBY,
            voice: false,
        };
        r.add(id, status);
        if let Some(m) = self.members.get_mut(&id) {
            m.rooms.push(key_name);
        }
        let away = self.members.get(&id).and_then(|m| m.away.clone());
        let mut out = Outcome::default();
        out.push(
            others.clone(),
            Event::Join {
                room: r.name.clone(),
                nick: nick.clone(),
                userhost: userhost.clone(),
            },
        );
        if away.is_some() {
            // Those who follow away states learn the newcomer's at once.
            out.push(
                others,
                Event::Away {
                    nick,
                    userhost,
                    text: away,
                },
            );
        }
        let members = r
            .members
            .iter()
            .filter_map(|&(_, m)| {
                let st = r.status(m).unwrap_or_default();
                self.members.get(&m).map(|m| (m.nick.clone(), st))
            })
            .collect();
        out.push(
            vec![id],
            Event::Joined {
                room: r.name.clone(),
                members,
                topic: r.topic.as_ref().map(|t| t.text.clone()),
                history: r.history.iter().cloned().collect(),
            },
        );
        Ok(out)
    }

    /// `id` leaves `room`; everyone in it (the leaver included) gets [`Event::Part`].
    ///
    /// # Errors
    ///
    /// [`NoSuchRoom`](ChatError::NoSuchRoom), [`NotInRoom`](ChatError::NotInRoom) if
    /// `id` is not in it, [`NoSuchMember`](ChatError::NoSuchMember).
    pub fn part(
        &mut self,
        id: MemberId,
        room: &str,
        reason: Option<&str>,
    ) -> Result<Outcome, ChatError> {
        let key = fold(room);
        let r = self
            .rooms
            .get_mut(&key)
            .ok_or_else(|| ChatError::NoSuchRoom(room.to_string()))?;
        if !r.contains(id) {
            return Err(ChatError::NotInRoom(r.name.to_string()));
        }
        let member = self.members.get_mut(&id).ok_or(ChatError::NoSuchMember)?;
        let to: Vec<MemberId> = r.ids().collect();
        r.remove(id);
        member.rooms.retain(|k| *k != key);
        let event = Event::Part {
            room: r.name.clone(),
            nick: member.nick.clone(),
            userhost: member.userhost.clone(),
            reason: reason.filter(|s| !s.is_empty()).map(Rc::from),
        };
        self.forget_if_empty(&key);
        let mut out = Outcome::default();
        out.push(to, event);
        Ok(out)
    }

    pub(super) fn forget_if_empty(&mut self, key: &str) {
        if key != LOBBY && self.rooms.get(key).is_some_and(|r| r.members.is_empty()) {
            self.rooms.remove(key);
        }
    }

    /// The members of `room` in join order (`None`: no such room).
    pub fn who(&self, room: &str) -> Option<Vec<&Member<E>>> {
        let r = self.rooms.get(&fold(room))?;
        Some(r.ids().filter_map(|id| self.members.get(&id)).collect())
    }

    /// The members of `room` with their status, in join order.
    pub fn who_status(&self, room: &str) -> Option<Vec<(&Member<E>, Status)>> {
        let r = self.rooms.get(&fold(room))?;
        Some(
            r.members
                .iter()
                .filter_map(|&(_, id)| {
                    let st = r.status(id).unwrap_or_default();
                    self.members.get(&id).map(|m| (m, st))
                })
                .collect(),
        )
    }

    /// The display name, topic and modes of `room`.
    pub fn room(&self, room: &str) -> Option<RoomInfo> {
        self.rooms.get(&fold(room)).map(RoomInfo::of)
    }

    /// Every room, sorted by name.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        let mut v: Vec<RoomInfo> = self.rooms.values().map(RoomInfo::of).collect();
        v.sort_by_key(|a| fold(&a.name));
        v
    }

    /// The display names of `id`'s rooms, in join order.
    pub fn rooms_of(&self, id: MemberId) -> Vec<Rc<str>> {
        self.members
            .get(&id)
            .map(|m| {
                m.rooms
                    .iter()
                    .filter_map(|k| self.rooms.get(k).map(|r| r.name.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `id`'s rooms with its status in each, in join order.
    pub fn rooms_status_of(&self, id: MemberId) -> Vec<(RoomInfo, Status)> {
        self.members
            .get(&id)
            .map(|m| {
                m.rooms
                    .iter()
                    .filter_map(|k| {
                        let r = self.rooms.get(k)?;
                        Some((RoomInfo::of(r), r.status(id).unwrap_or_default()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `a` and `b` share a room.
    pub fn share_room(&self, a: MemberId, b: MemberId) -> bool {
        match (self.members.get(&a), self.members.get(&b)) {
            (Some(ma), Some(_)) => ma
                .rooms
                .iter()
                .any(|k| self.rooms.get(k).is_some_and(|r| r.contains(b))),
            _ => false,
        }
    }
}

/// Whether existing room `r` lets `id` (`mask` is its `nick!user@host`) in with
/// `key`: a ban (`+b`) or `+i` refuse unless invited, then the key (`+k`) and the
/// limit (`+l`).
fn admits(r: &Room, id: MemberId, mask: &str, key: Option<&str>) -> Result<(), ChatError> {
    let invited = r.invited.contains(&id);
    let name = r.name.to_string();
    if !invited && r.banned(mask) {
        return Err(ChatError::Banned(name));
    }
    if !invited && r.modes.invite_only {
        return Err(ChatError::InviteOnly(name));
    }
    if let Some(k) = &r.modes.key {
        if key != Some(&**k) {
            return Err(ChatError::BadKey(name));
        }
    }
    if r.modes.limit.is_some_and(|l| r.members.len() >= l) {
        return Err(ChatError::RoomFull(name));
    }
    Ok(())
}
