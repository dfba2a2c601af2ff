//! The chat state: members, nicknames, rooms, membership, history. Pure logic, no I/O.
//!
//! Every operation returns an [`Outcome`]: the [`Event`]s to deliver and to whom. The
//! front ends render each event in their own syntax (a line for `nc`, an IRC message,
//! a datagram) and queue it on the recipients' connections; the state never sees a
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
//! * Each room keeps its last [`ChatLimits::history`] messages (plain messages and
//!   actions, not notices); a member joining a room gets them replayed
//!   ([`Event::Joined`]).
//! * A member is in at most [`ChatLimits::max_rooms`] rooms.
//! * Whoever creates a room (the lobby excepted) is its operator ([`Status::op`]).
//!   Operators set modes ([`Chat::set_modes`]: `+o +v +t +n +m +s +i +k +l +b`), kick
//!   ([`Chat::kick`]), invite to a `+i` room; a server operator ([`Member::oper`]) may
//!   do so in any room. New rooms are `+nt`; the lobby is `+n` (anyone sets its topic).
//! * A member may be away ([`Chat::set_away`]); `WHOWAS` remembers the last
//!   [`ChatLimits::whowas`] nicknames given up.
//!
//! # Where things are
//! This file holds the tables ([`Chat`], [`Member`], rooms) and their accessors; the
//! operations live by concern: `nicks` (registering, renaming, away, `WHOWAS`, quit),
//! `membership` (join, part, the room queries), `delivery` (messages to rooms and
//! members), `moderation` (topics, kicks, modes, invitations). `event` has the event,
//! outcome and error types, `names` the naming rules and the flood token bucket.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::rc::Rc;

mod delivery;
mod event;
mod membership;
mod moderation;
mod names;
mod nicks;

pub use self::event::{
    ChatError, Delivery, Event, Message, ModeChange, MsgKind, Outcome, RoomModes, Status, Whowas,
};
pub use self::names::{fold, mask_match, sanitize, valid_nick, valid_room, TokenBucket};

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

/// The chat's limits: history kept, rooms per member, bans per room, `WHOWAS` memory
/// ([`ChatConfig::limits`](super::ChatConfig::limits)).
#[derive(Clone, Debug)]
pub struct ChatLimits {
    /// Messages kept per room and replayed on join.
    pub history: usize,
    /// Most rooms one member may be in.
    pub max_rooms: usize,
    /// Most bans per room.
    pub max_bans: usize,
    /// Nicknames `WHOWAS` remembers.
    pub whowas: usize,
}

impl Default for ChatLimits {
    fn default() -> ChatLimits {
        ChatLimits {
            history: 20,
            max_rooms: 20,
            max_bans: 100,
            whowas: 100,
        }
    }
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
    /// The real name (IRC `USER`'s last parameter; the nickname elsewhere).
    pub realname: Rc<str>,
    /// The away message, if away.
    pub away: Option<Rc<str>>,
    /// A server operator (`OPER`): may kick and set modes anywhere, `KILL`, `WALLOPS`.
    pub oper: bool,
    /// Hidden from `WHO` masks and `NAMES` of rooms one does not share (`+i`).
    pub invisible: bool,
    /// Receives `WALLOPS` (`+w`).
    pub wallops: bool,
}

#[derive(Debug)]
struct Room {
    name: Rc<str>,
    /// Members in join order (ids grow, so a set keyed by join sequence).
    members: BTreeSet<(u64, MemberId)>,
    seq: IdMap<(u64, Status)>,
    next_seq: u64,
    history: VecDeque<Message>,
    topic: Option<Topic>,
    modes: RoomModes,
    bans: Vec<Rc<str>>,
    invited: BTreeSet<MemberId>,
    created: u64,
}

/// A room's topic, who set it and when (Unix seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topic {
    /// The text.
    pub text: Rc<str>,
    /// Who set it (`nick!user@host`).
    pub by: Rc<str>,
    /// When (Unix seconds).
    pub at: u64,
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Room {
    fn new(name: &str) -> Room {
        let lobby = fold(name) == LOBBY;
        Room {
            name: name.into(),
            members: BTreeSet::new(),
            seq: IdMap::default(),
            next_seq: 0,
            history: VecDeque::new(),
            topic: None,
            // The lobby has no operators unless a server operator steps in: anyone
            // sets its topic.
            modes: RoomModes {
                topic_lock: !lobby,
                no_external: true,
                ..RoomModes::default()
            },
            bans: Vec::new(),
            invited: BTreeSet::new(),
            created: unix_now(),
        }
    }

    fn add(&mut self, id: MemberId, status: Status) {
        let s = self.next_seq;
        self.next_seq += 1;
        self.seq.insert(id, (s, status));
        self.members.insert((s, id));
    }

    fn remove(&mut self, id: MemberId) -> bool {
        match self.seq.remove(&id) {
            Some((s, _)) => self.members.remove(&(s, id)),
            None => false,
        }
    }

    fn contains(&self, id: MemberId) -> bool {
        self.seq.contains_key(&id)
    }

    fn status(&self, id: MemberId) -> Option<Status> {
        self.seq.get(&id).map(|&(_, st)| st)
    }

    fn ids(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.members.iter().map(|&(_, id)| id)
    }

    fn banned(&self, mask: &str) -> bool {
        self.bans.iter().any(|b| mask_match(b, mask))
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
    /// Who set the topic and when.
    pub topic_set: Option<(Rc<str>, u64)>,
    /// The modes.
    pub modes: RoomModes,
    /// The ban masks.
    pub bans: Vec<Rc<str>>,
    /// When the room was created (Unix seconds).
    pub created: u64,
}

impl RoomInfo {
    fn of(r: &Room) -> RoomInfo {
        RoomInfo {
            name: r.name.clone(),
            members: r.members.len(),
            topic: r.topic.as_ref().map(|t| t.text.clone()),
            topic_set: r.topic.as_ref().map(|t| (t.by.clone(), t.at)),
            modes: r.modes.clone(),
            bans: r.bans.clone(),
            created: r.created,
        }
    }
}

/// The chat: members, nicknames, rooms, history. `E` is the front ends' address of a
/// member (the state only stores it).
#[derive(Debug)]
pub struct Chat<E> {
    cfg: ChatLimits,
    members: IdMap<Member<E>>,
    nicks: HashMap<String, MemberId>,
    rooms: HashMap<String, Room>,
    next_id: u64,
    whowas: VecDeque<Whowas>,
}

impl<E> Chat<E> {
    /// An empty chat with just the lobby.
    pub fn new(cfg: ChatLimits) -> Chat<E> {
        let mut rooms = HashMap::new();
        rooms.insert(LOBBY.to_string(), Room::new(LOBBY));
        Chat {
            cfg,
            members: IdMap::default(),
            nicks: HashMap::new(),
            rooms,
            next_id: 1,
            whowas: VecDeque::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ChatLimits {
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

    /// A member, to change its front-end details (endpoint, real name, user modes).
    pub fn member_mut(&mut self, id: MemberId) -> Option<&mut Member<E>> {
        self.members.get_mut(&id)
    }

    /// Every member, in no particular order.
    pub fn all_members(&self) -> impl Iterator<Item = &Member<E>> + '_ {
        self.members.values()
    }
}

#[cfg(test)]
mod tests;
