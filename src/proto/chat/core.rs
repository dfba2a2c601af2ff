//! The chat core: members, nicknames, rooms, membership, history. Pure logic, no I/O.
//!
//! Every operation returns an [`Outcome`]: the [`Event`]s to deliver and to whom. The
//! front ends render each event in their own syntax (a line for `nc`, an IRC message,
//! a datagram) and queue it on the recipients' connections; the core never sees a
//! socket, so it is unit-tested here without one.
//!
//! # Semantics
//! * Nicknames are unique, compared case-insensitively with IRC's `rfc1459` case
//!   mapping (`[]\~` are the upper case of `{}|^`), as [`fold`] does. A nickname is
//!   1 to [`NICK_MAX`] characters: a letter or one of ``[]\`_^{|}`` first, then
//!   letters, digits, those specials and `-`.
//! * Room names are compared the same way. A room name is 1 to [`ROOM_MAX`] ASCII
//!   letters, digits or `-_.+`; IRC shows it with a leading `#`.
//! * A room exists while it has members. When the last member leaves, the room is
//!   forgotten with its history and topic (memory stays bounded by the number of
//!   members), except the [`LOBBY`], which always exists.
//! * Each room keeps its last [`CoreConfig::history`] messages (plain messages and
//!   actions, not notices); a member joining a room gets them replayed
//!   ([`Event::Joined`]).
//! * A member is in at most [`CoreConfig::max_rooms`] rooms.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::rc::Rc;

/// The room everybody starts in (`#lobby` on IRC).
pub const LOBBY: &str = "lobby";
/// Longest nickname, in bytes.
pub const NICK_MAX: usize = 30;
/// Longest room name (without IRC's `#`), in bytes.
pub const ROOM_MAX: usize = 50;

/// A map keyed by member id. Ids are assigned here (sequential, never chosen by a
/// client), so the fast Fx hash is safe; maps keyed by names a client picks (nicks,
/// rooms) keep std's SipHash against hash flooding. Fan-out looks a member up per
/// recipient: with SipHash that was about a tenth of the server's CPU at 1M
/// deliveries/s.
type IdMap<V> = rustc_hash::FxHashMap<MemberId, V>;

/// Identifies a member of the chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(pub u64);

/// What a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgKind {
    /// A plain message (IRC `PRIVMSG`).
    Plain,
    /// An action (`/me`, IRC CTCP `ACTION`).
    Action,
    /// A notice (IRC `NOTICE`): never answered automatically, not kept in history.
    Notice,
}

/// A message as sent and as kept in a room's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The sender's nickname when it was sent.
    pub from: Rc<str>,
    /// The sender's `user@host` (IRC prefixes are `nick!user@host`).
    pub userhost: Rc<str>,
    /// The text (one line, no control characters but IRC formatting).
    pub text: Rc<str>,
    /// Plain, action or notice.
    pub kind: MsgKind,
}

/// Something to tell members. Shared strings are reference-counted so a fan-out to a
/// thousand members copies nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A message to a room.
    Room {
        /// The room's display name.
        room: Rc<str>,
        /// The message.
        msg: Message,
    },
    /// A private message to the recipient.
    Private {
        /// The message.
        msg: Message,
    },
    /// Someone (not the recipient) joined a room the recipient is in.
    Join {
        /// The room.
        room: Rc<str>,
        /// The newcomer's nickname.
        nick: Rc<str>,
        /// The newcomer's `user@host`.
        userhost: Rc<str>,
    },
    /// The recipient joined `room`: its members, topic and history to replay.
    Joined {
        /// The room.
        room: Rc<str>,
        /// Every member's nickname, the recipient's included, in join order.
        members: Vec<Rc<str>>,
        /// The topic, if set.
        topic: Option<Rc<str>>,
        /// The room's last messages, oldest first.
        history: Vec<Message>,
    },
    /// Someone left a room (the recipient, too, is told of its own parting).
    Part {
        /// The room.
        room: Rc<str>,
        /// Who left.
        nick: Rc<str>,
        /// Their `user@host`.
        userhost: Rc<str>,
        /// Why, if they said.
        reason: Option<Rc<str>>,
    },
    /// Someone sharing a room with the recipient left the chat.
    Quit {
        /// Who left.
        nick: Rc<str>,
        /// Their `user@host`.
        userhost: Rc<str>,
        /// Why.
        reason: Rc<str>,
    },
    /// Someone (the recipient included) changed nickname.
    Nick {
        /// The old nickname.
        old: Rc<str>,
        /// The `user@host` of the member.
        userhost: Rc<str>,
        /// The new nickname.
        new: Rc<str>,
    },
    /// A room's topic changed.
    Topic {
        /// The room.
        room: Rc<str>,
        /// Who set it.
        by: Rc<str>,
        /// Their `user@host`.
        userhost: Rc<str>,
        /// The new topic (empty: cleared).
        topic: Rc<str>,
    },
}

impl Event {
    /// Whether the event concerns one recipient only (rendered per recipient).
    pub fn is_personal(&self) -> bool {
        matches!(self, Event::Joined { .. })
    }
}

/// One event for a list of members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The recipients.
    pub to: Vec<MemberId>,
    /// What to tell them.
    pub event: Event,
}

/// What an operation asks the front ends to deliver, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The deliveries.
    pub deliveries: Vec<Delivery>,
}

impl Outcome {
    fn push(&mut self, to: Vec<MemberId>, event: Event) {
        if !to.is_empty() {
            self.deliveries.push(Delivery { to, event });
        }
    }

    /// Appends another outcome's deliveries.
    pub fn extend(&mut self, other: Outcome) {
        self.deliveries.extend(other.deliveries);
    }

    /// Whether there is nothing to deliver.
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty()
    }
}

/// Why an operation was refused. Rendered as IRC numerics by the IRC front end and as
/// a `* ...` line by the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatError {
    /// The nickname is malformed.
    BadNick(String),
    /// The nickname belongs to someone else.
    NickTaken(String),
    /// The room name is malformed.
    BadRoom(String),
    /// No such room.
    NoSuchRoom(String),
    /// The member is not in that room.
    NotInRoom(String),
    /// Nobody has that nickname.
    NoSuchNick(String),
    /// The member is in too many rooms.
    TooManyRooms(String),
    /// Empty message.
    NoText,
    /// The member is unknown (already gone).
    NoSuchMember,
}

impl fmt::Display for ChatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatError::BadNick(n) => write!(
                f,
                "invalid nickname {n}: 1 to {NICK_MAX} characters, a letter first, then letters, digits or -_[]{{}}\\|^`"
            ),
            ChatError::NickTaken(n) => write!(f, "nickname {n} is taken"),
            ChatError::BadRoom(r) => write!(
                f,
                "invalid room name {r}: 1 to {ROOM_MAX} letters, digits or -_.+"
            ),
            ChatError::NoSuchRoom(r) => write!(f, "no such room {r}"),
            ChatError::NotInRoom(r) => write!(f, "you are not in {r}"),
            ChatError::NoSuchNick(n) => write!(f, "no such nickname {n}"),
            ChatError::TooManyRooms(r) => write!(f, "cannot join {r}: you are in too many rooms"),
            ChatError::NoText => write!(f, "no text to send"),
            ChatError::NoSuchMember => write!(f, "not registered"),
        }
    }
}

impl std::error::Error for ChatError {}

/// Core settings.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Messages kept per room and replayed on join.
    pub history: usize,
    /// Most rooms one member may be in.
    pub max_rooms: usize,
}

impl Default for CoreConfig {
    fn default() -> CoreConfig {
        CoreConfig {
            history: 20,
            max_rooms: 20,
        }
    }
}

/// IRC's `rfc1459` case folding: ASCII lower case, and `[]\~` to `{}|^`.
pub fn fold(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '[' => '{',
            ']' => '}',
            '\\' => '|',
            '~' => '^',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

fn nick_special(c: char) -> bool {
    matches!(c, '[' | ']' | '\\' | '`' | '_' | '^' | '{' | '|' | '}')
}

/// Whether `nick` is a well-formed nickname.
pub fn valid_nick(nick: &str) -> bool {
    let mut chars = nick.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    nick.len() <= NICK_MAX
        && (first.is_ascii_alphabetic() || nick_special(first))
        && chars.all(|c| c.is_ascii_alphanumeric() || nick_special(c) || c == '-')
}

/// Whether `room` (without `#`) is a well-formed room name.
pub fn valid_room(room: &str) -> bool {
    !room.is_empty()
        && room.len() <= ROOM_MAX
        && room
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))
}

/// Makes untrusted text safe to relay on one line: control characters (CR, NUL, ...)
/// become spaces, except IRC formatting codes (bold, colour, CTCP's `\x01`...), which
/// clients understand. Leading and trailing whitespace is kept.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\x01' | '\x02' | '\x03' | '\x0f' | '\x16' | '\x1d' | '\x1f' => c,
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// A member of the chat.
#[derive(Debug)]
pub struct Member<E> {
    /// The member's id.
    pub id: MemberId,
    /// The current nickname.
    pub nick: Rc<str>,
    /// `user@host` (shown in IRC prefixes and `WHO`).
    pub userhost: Rc<str>,
    /// Where to deliver (the front end's business).
    pub endpoint: E,
    /// The rooms the member is in (folded names), in join order.
    pub rooms: Vec<String>,
}

#[derive(Debug)]
struct Room {
    name: Rc<str>,
    /// Members in join order (ids grow, so a set keyed by join sequence).
    members: BTreeSet<(u64, MemberId)>,
    seq: IdMap<u64>,
    next_seq: u64,
    history: VecDeque<Message>,
    topic: Option<Rc<str>>,
}

impl Room {
    fn new(name: &str) -> Room {
        Room {
            name: name.into(),
            members: BTreeSet::new(),
            seq: IdMap::default(),
            next_seq: 0,
            history: VecDeque::new(),
            topic: None,
        }
    }

    fn add(&mut self, id: MemberId) {
        let s = self.next_seq;
        self.next_seq += 1;
        self.seq.insert(id, s);
        self.members.insert((s, id));
    }

    fn remove(&mut self, id: MemberId) -> bool {
        match self.seq.remove(&id) {
            Some(s) => self.members.remove(&(s, id)),
            None => false,
        }
    }

    fn contains(&self, id: MemberId) -> bool {
        self.seq.contains_key(&id)
    }

    fn ids(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.members.iter().map(|&(_, id)| id)
    }
}

/// A summary of a room for `/rooms` and IRC `LIST`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomInfo {
    /// The display name.
    pub name: Rc<str>,
    /// How many members.
    pub members: usize,
    /// The topic, if set.
    pub topic: Option<Rc<str>>,
}

/// The chat: members, nicknames, rooms, history. `E` is the front ends' address of a
/// member (the core only stores it).
#[derive(Debug)]
pub struct Chat<E> {
    cfg: CoreConfig,
    members: IdMap<Member<E>>,
    nicks: HashMap<String, MemberId>,
    rooms: HashMap<String, Room>,
    next_id: u64,
}

impl<E> Chat<E> {
    /// An empty chat with just the lobby.
    pub fn new(cfg: CoreConfig) -> Chat<E> {
        let mut rooms = HashMap::new();
        rooms.insert(LOBBY.to_string(), Room::new(LOBBY));
        Chat {
            cfg,
            members: IdMap::default(),
            nicks: HashMap::new(),
            rooms,
            next_id: 1,
        }
    }

    /// The settings.
    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether nobody is here.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// A member.
    pub fn member(&self, id: MemberId) -> Option<&Member<E>> {
        self.members.get(&id)
    }

    /// The member with nickname `nick` (case-insensitive).
    pub fn find(&self, nick: &str) -> Option<&Member<E>> {
        self.nicks
            .get(&fold(nick))
            .and_then(|id| self.members.get(id))
    }

    /// Checks that `nick` is well formed and free (or already `me`'s).
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
            },
        );
        log::debug!("chat: {nick} ({userhost}) registered as {id:?}");
        Ok(id)
    }

    /// Whether `id` is in `room`.
    pub fn is_in(&self, id: MemberId, room: &str) -> bool {
        self.rooms.get(&fold(room)).is_some_and(|r| r.contains(id))
    }

    /// `id` joins `room` (created if new). Others in the room get [`Event::Join`],
    /// the newcomer [`Event::Joined`] with the history. Joining a room one is already
    /// in does nothing.
    pub fn join(&mut self, id: MemberId, room: &str) -> Result<Outcome, ChatError> {
        if !valid_room(room) {
            return Err(ChatError::BadRoom(room.to_string()));
        }
        let key = fold(room);
        let member = self.members.get_mut(&id).ok_or(ChatError::NoSuchMember)?;
        if member.rooms.contains(&key) {
            return Ok(Outcome::default());
        }
        if member.rooms.len() >= self.cfg.max_rooms {
            return Err(ChatError::TooManyRooms(room.to_string()));
        }
        member.rooms.push(key.clone());
        let (nick, userhost) = (member.nick.clone(), member.userhost.clone());
        let r = self.rooms.entry(key).or_insert_with(|| Room::new(room));
        let others: Vec<MemberId> = r.ids().collect();
        r.add(id);
        let mut out = Outcome::default();
        out.push(
            others,
            Event::Join {
                room: r.name.clone(),
                nick,
                userhost,
            },
        );
        let members = r
            .ids()
            .filter_map(|m| self.members.get(&m).map(|m| m.nick.clone()))
            .collect();
        out.push(
            vec![id],
            Event::Joined {
                room: r.name.clone(),
                members,
                topic: r.topic.clone(),
                history: r.history.iter().cloned().collect(),
            },
        );
        Ok(out)
    }

    /// `id` leaves `room`; everyone in it (the leaver included) gets [`Event::Part`].
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

    fn forget_if_empty(&mut self, key: &str) {
        if key != LOBBY && self.rooms.get(key).is_some_and(|r| r.members.is_empty()) {
            self.rooms.remove(key);
        }
    }

    /// `id` says `text` in `room` (it must be a member); everyone else in the room
    /// gets it, and it is kept in the history unless it is a notice.
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
        if !r.contains(id) {
            return Err(ChatError::NotInRoom(r.name.to_string()));
        }
        let msg = Message {
            from: member.nick.clone(),
            userhost: member.userhost.clone(),
            text: text.into(),
            kind,
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
        let mut out = Outcome::default();
        out.push(
            vec![target],
            Event::Private {
                msg: Message {
                    from: member.nick.clone(),
                    userhost: member.userhost.clone(),
                    text: text.into(),
                    kind,
                },
            },
        );
        Ok(out)
    }

    /// Everyone sharing a room with `id`, `id` excluded, each once.
    fn neighbours(&self, id: MemberId) -> Vec<MemberId> {
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

    /// `id` takes the nickname `new`; the member and everyone sharing a room with it
    /// get [`Event::Nick`]. Changing only the case of one's own nickname is allowed.
    pub fn rename(&mut self, id: MemberId, new: &str) -> Result<Outcome, ChatError> {
        self.check_nick(new, Some(id))?;
        let mut to = vec![id];
        to.extend(self.neighbours(id));
        let member = self.members.get_mut(&id).ok_or(ChatError::NoSuchMember)?;
        if &*member.nick == new {
            return Ok(Outcome::default());
        }
        let old = std::mem::replace(&mut member.nick, new.into());
        self.nicks.remove(&fold(&old));
        self.nicks.insert(fold(new), id);
        let mut out = Outcome::default();
        out.push(
            to,
            Event::Nick {
                old,
                userhost: member.userhost.clone(),
                new: member.nick.clone(),
            },
        );
        Ok(out)
    }

    /// Sets `room`'s topic (members only; empty clears it); everyone in it is told.
    pub fn set_topic(
        &mut self,
        id: MemberId,
        room: &str,
        topic: &str,
    ) -> Result<Outcome, ChatError> {
        let member = self.members.get(&id).ok_or(ChatError::NoSuchMember)?;
        let r = self
            .rooms
            .get_mut(&fold(room))
            .ok_or_else(|| ChatError::NoSuchRoom(room.to_string()))?;
        if !r.contains(id) {
            return Err(ChatError::NotInRoom(r.name.to_string()));
        }
        let topic: Rc<str> = topic.into();
        r.topic = (!topic.is_empty()).then(|| topic.clone());
        let mut out = Outcome::default();
        out.push(
            r.ids().collect(),
            Event::Topic {
                room: r.name.clone(),
                by: member.nick.clone(),
                userhost: member.userhost.clone(),
                topic,
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
        log::debug!("chat: {} quit ({reason})", member.nick);
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

    /// The members of `room` in join order (`None`: no such room).
    pub fn who(&self, room: &str) -> Option<Vec<&Member<E>>> {
        let r = self.rooms.get(&fold(room))?;
        Some(r.ids().filter_map(|id| self.members.get(&id)).collect())
    }

    /// The display name and topic of `room`.
    pub fn room(&self, room: &str) -> Option<RoomInfo> {
        self.rooms.get(&fold(room)).map(|r| RoomInfo {
            name: r.name.clone(),
            members: r.members.len(),
            topic: r.topic.clone(),
        })
    }

    /// Every room, sorted by name.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        let mut v: Vec<RoomInfo> = self
            .rooms
            .values()
            .map(|r| RoomInfo {
                name: r.name.clone(),
                members: r.members.len(),
                topic: r.topic.clone(),
            })
            .collect();
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
}

/// A token bucket: `burst` tokens, refilled at `rate` per second; each line costs one.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    last: Option<std::time::Instant>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: u32, rate: f64) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            rate,
            last: None,
        }
    }

    /// Takes a token at `now` if there is one.
    pub fn take(&mut self, now: std::time::Instant) -> bool {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn chat() -> Chat<()> {
        Chat::new(CoreConfig {
            history: 3,
            max_rooms: 3,
        })
    }

    fn reg(c: &mut Chat<()>, nick: &str) -> MemberId {
        let id = c.register(nick, "u@h", ()).unwrap();
        c.join(id, LOBBY).unwrap();
        id
    }

    #[test]
    fn folding_and_validation() {
        assert_eq!(fold("Nick[]\\~"), "nick{}|^");
        assert!(valid_nick("alice"));
        assert!(valid_nick("[bot]_1-x"));
        assert!(!valid_nick("1abc"));
        assert!(!valid_nick("-abc"));
        assert!(!valid_nick(""));
        assert!(!valid_nick("a b"));
        assert!(!valid_nick("é"));
        assert!(!valid_nick(&"a".repeat(NICK_MAX + 1)));
        assert!(valid_room("c++"));
        assert!(!valid_room("#x"));
        assert!(!valid_room("a,b"));
        assert_eq!(sanitize("a\rb\0c\x01ACTION\x01"), "a b c\x01ACTION\x01");
    }

    #[test]
    fn nicknames_are_unique_case_insensitively() {
        let mut c = chat();
        let a = reg(&mut c, "Alice");
        assert_eq!(
            c.register("aLICE", "u@h", ()),
            Err(ChatError::NickTaken("aLICE".into()))
        );
        assert!(matches!(
            c.register("9", "u@h", ()),
            Err(ChatError::BadNick(_))
        ));
        let b = reg(&mut c, "bob[1]");
        assert_eq!(c.find("BOB{1}").map(|m| m.id), Some(b));
        assert!(matches!(c.rename(b, "ALICE"), Err(ChatError::NickTaken(_))));
        // Own nickname in another case is fine; both see it.
        let out = c.rename(a, "alice").unwrap();
        assert_eq!(out.deliveries[0].to, vec![a, b]);
        assert_eq!(c.find("ALICE").map(|m| &*m.nick), Some("alice"));
        // After a quit the nickname is free again.
        c.quit(a, "bye");
        assert!(c.register("Alice", "u@h", ()).is_ok());
    }

    #[test]
    fn join_say_part_and_notices() {
        let mut c = chat();
        let a = reg(&mut c, "a");
        let b = reg(&mut c, "b");
        let out = c.join(a, "Rust").unwrap();
        assert_eq!(out.deliveries.len(), 1, "nobody else is in Rust");
        assert!(
            matches!(&out.deliveries[0].event, Event::Joined { members, .. } if members.len() == 1)
        );
        let out = c.join(b, "rust").unwrap();
        assert_eq!(out.deliveries[0].to, vec![a]);
        assert!(
            matches!(&out.deliveries[0].event, Event::Join { room, nick, .. } if &**room == "Rust" && &**nick == "b")
        );
        assert!(c.join(b, "RUST").unwrap().is_empty(), "already in");
        let out = c.say(a, "rust", "hi", MsgKind::Plain).unwrap();
        assert_eq!(out.deliveries[0].to, vec![b], "not echoed to the sender");
        assert_eq!(
            c.say(a, "nowhere", "x", MsgKind::Plain),
            Err(ChatError::NoSuchRoom("nowhere".into()))
        );
        let out = c.part(b, "rust", Some("later")).unwrap();
        assert_eq!(out.deliveries[0].to, vec![a, b], "the leaver is told too");
        assert_eq!(
            c.say(b, "rust", "x", MsgKind::Plain),
            Err(ChatError::NotInRoom("Rust".into()))
        );
        assert_eq!(
            c.part(b, "rust", None),
            Err(ChatError::NotInRoom("Rust".into()))
        );
        // The last one out: the room is forgotten, the lobby never is.
        c.part(a, "rust", None).unwrap();
        assert!(c.room("rust").is_none());
        c.part(a, LOBBY, None).unwrap();
        c.part(b, LOBBY, None).unwrap();
        assert!(c.room(LOBBY).is_some());
        assert!(matches!(c.join(a, "#bad"), Err(ChatError::BadRoom(_))));
    }

    #[test]
    fn history_is_bounded_and_replayed_on_join() {
        let mut c = chat();
        let a = reg(&mut c, "a");
        for i in 0..5 {
            c.say(a, LOBBY, &format!("m{i}"), MsgKind::Plain).unwrap();
        }
        c.say(a, LOBBY, "n", MsgKind::Notice).unwrap();
        c.say(a, LOBBY, "waves", MsgKind::Action).unwrap();
        let b = c.register("b", "u@h", ()).unwrap();
        let out = c.join(b, LOBBY).unwrap();
        let Some(Delivery {
            to,
            event: Event::Joined {
                history, members, ..
            },
        }) = out.deliveries.last()
        else {
            panic!("{out:?}")
        };
        assert_eq!(to, &vec![b]);
        assert_eq!(members.iter().map(|m| &**m).collect::<Vec<_>>(), ["a", "b"]);
        let texts: Vec<&str> = history.iter().map(|m| &*m.text).collect();
        assert_eq!(texts, ["m3", "m4", "waves"], "last 3, notices not kept");
        assert_eq!(history[2].kind, MsgKind::Action);
    }

    #[test]
    fn quit_tells_each_neighbour_once_and_frees_everything() {
        let mut c = chat();
        let a = reg(&mut c, "a");
        let b = reg(&mut c, "b");
        let d = reg(&mut c, "d");
        c.join(a, "x").unwrap();
        c.join(b, "x").unwrap();
        c.join(a, "y").unwrap();
        let out = c.quit(a, "gone");
        assert_eq!(out.deliveries.len(), 1);
        assert_eq!(out.deliveries[0].to, vec![b, d]);
        assert!(c.room("y").is_none());
        assert_eq!(c.who("x").unwrap().len(), 1);
        assert!(c.find("a").is_none());
        assert!(c.quit(a, "again").is_empty());
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn private_messages_and_limits() {
        let mut c = chat();
        let a = reg(&mut c, "a");
        let b = reg(&mut c, "b");
        let out = c.private(a, "B", "psst", MsgKind::Plain).unwrap();
        assert_eq!(out.deliveries[0].to, vec![b]);
        assert_eq!(
            c.private(a, "zed", "x", MsgKind::Plain),
            Err(ChatError::NoSuchNick("zed".into()))
        );
        assert_eq!(
            c.private(a, "b", "", MsgKind::Plain),
            Err(ChatError::NoText)
        );
        c.join(a, "r1").unwrap();
        c.join(a, "r2").unwrap();
        assert!(matches!(c.join(a, "r3"), Err(ChatError::TooManyRooms(_))));
        let out = c.set_topic(a, "r1", "hello").unwrap();
        assert_eq!(out.deliveries[0].to, vec![a]);
        assert_eq!(c.room("R1").unwrap().topic.as_deref(), Some("hello"));
        let names: Vec<String> = c.rooms().iter().map(|r| r.name.to_string()).collect();
        assert_eq!(names, ["lobby", "r1", "r2"]);
        assert_eq!(c.rooms_of(a).len(), 3);
    }

    #[test]
    fn token_bucket_limits_bursts_and_refills() {
        let t0 = Instant::now();
        let mut tb = TokenBucket::new(3, 10.0);
        assert!((0..3).all(|_| tb.take(t0)));
        assert!(!tb.take(t0));
        assert!(tb.take(t0 + Duration::from_millis(100)));
        assert!(!tb.take(t0 + Duration::from_millis(100)));
        // Refill never exceeds the burst.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| tb.take(later)).count(), 3);
    }
}
