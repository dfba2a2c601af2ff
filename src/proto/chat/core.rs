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
//! * Whoever creates a room (the lobby excepted) is its operator ([`Status::op`]).
//!   Operators set modes ([`Chat::set_modes`]: `+o +v +t +n +m +s +i +k +l +b`), kick
//!   ([`Chat::kick`]), invite to a `+i` room; a server operator ([`Member::oper`]) may
//!   do so in any room. New rooms are `+nt`; the lobby is `+n` (anyone sets its topic).
//! * A member may be away ([`Chat::set_away`]); `WHOWAS` remembers the last
//!   [`CoreConfig::whowas`] nicknames given up.

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
    /// When it was sent (milliseconds since the Unix epoch; IRCv3 `server-time` of a
    /// replayed message).
    pub at_ms: u64,
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
    /// A private message (to the recipient, or its echo to the sender).
    Private {
        /// The recipient's nickname.
        target: Rc<str>,
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
        /// Every member's nickname and status, the recipient's included, in join order.
        members: Vec<(Rc<str>, Status)>,
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
    /// Someone was removed from a room by an operator (the target is told too).
    Kick {
        /// The room.
        room: Rc<str>,
        /// The operator.
        by: Rc<str>,
        /// The operator's `user@host`.
        userhost: Rc<str>,
        /// Who was kicked.
        target: Rc<str>,
        /// Why.
        reason: Rc<str>,
    },
    /// A room's modes or a member's status in it changed.
    Mode {
        /// The room.
        room: Rc<str>,
        /// Who changed them.
        by: Rc<str>,
        /// Their `user@host`.
        userhost: Rc<str>,
        /// The changes applied, in IRC letters (`+o-k`).
        changes: Rc<str>,
        /// Their arguments, in order.
        args: Vec<Rc<str>>,
    },
    /// The recipient is invited to a room.
    Invite {
        /// The room.
        room: Rc<str>,
        /// Who invited.
        by: Rc<str>,
        /// Their `user@host`.
        userhost: Rc<str>,
        /// The invited member's nickname.
        target: Rc<str>,
    },
    /// Someone sharing a room with the recipient went away or came back.
    Away {
        /// Who.
        nick: Rc<str>,
        /// Their `user@host`.
        userhost: Rc<str>,
        /// The away message (`None`: back).
        text: Option<Rc<str>>,
    },
    /// A message from a server operator to everyone who receives wallops.
    Wallops {
        /// Who sent it.
        from: Rc<str>,
        /// Their `user@host`.
        userhost: Rc<str>,
        /// The text.
        text: Rc<str>,
    },
}

/// A member's status in a room (IRC's `@` and `+`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// A room operator (`@`, mode `+o`): may kick, set modes and the topic of a `+t` room.
    pub op: bool,
    /// Voiced (`+`, mode `+v`): may speak in a moderated (`+m`) room.
    pub voice: bool,
}

impl Status {
    /// The highest prefix (`@`, `+` or nothing), or all of them (`multi`: `@+`).
    pub fn prefix(self, multi: bool) -> &'static str {
        match (self.op, self.voice, multi) {
            (true, true, true) => "@+",
            (true, _, _) => "@",
            (false, true, _) => "+",
            (false, false, _) => "",
        }
    }
}

/// A room's modes (IRC letters in brackets).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomModes {
    /// Only operators set the topic (`t`).
    pub topic_lock: bool,
    /// Only members send to the room (`n`).
    pub no_external: bool,
    /// Only operators and voiced members speak (`m`).
    pub moderated: bool,
    /// Not listed to non-members (`s`).
    pub secret: bool,
    /// Joining needs an invitation (`i`).
    pub invite_only: bool,
    /// Joining needs this key (`k`).
    pub key: Option<Rc<str>>,
    /// At most this many members (`l`).
    pub limit: Option<usize>,
}

impl RoomModes {
    /// The modes as IRC shows them (`+kl key 10`); `reveal`: show the key's value.
    pub fn render(&self, reveal: bool) -> String {
        let mut flags = String::from("+");
        let mut args = Vec::new();
        for (on, c) in [
            (self.invite_only, 'i'),
            (self.moderated, 'm'),
            (self.no_external, 'n'),
            (self.secret, 's'),
            (self.topic_lock, 't'),
        ] {
            if on {
                flags.push(c);
            }
        }
        if let Some(k) = &self.key {
            flags.push('k');
            args.push(if reveal { k.to_string() } else { "*".into() });
        }
        if let Some(l) = self.limit {
            flags.push('l');
            args.push(l.to_string());
        }
        for a in args {
            flags.push(' ');
            flags.push_str(&a);
        }
        flags
    }
}

/// One mode change asked of [`Chat::set_modes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModeChange {
    /// `+o`/`-o` NICK.
    Op(bool, String),
    /// `+v`/`-v` NICK.
    Voice(bool, String),
    /// `+t`/`-t`.
    TopicLock(bool),
    /// `+n`/`-n`.
    NoExternal(bool),
    /// `+m`/`-m`.
    Moderated(bool),
    /// `+s`/`-s`.
    Secret(bool),
    /// `+i`/`-i`.
    InviteOnly(bool),
    /// `+k KEY` / `-k`.
    Key(Option<String>),
    /// `+l N` / `-l`.
    Limit(Option<usize>),
    /// `+b MASK` / `-b MASK`.
    Ban(bool, String),
}

/// What `WHOWAS` remembers of a nickname no longer in use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Whowas {
    /// The nickname.
    pub nick: Rc<str>,
    /// Its `user@host`.
    pub userhost: Rc<str>,
    /// Its real name.
    pub realname: Rc<str>,
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

    /// Adds `id` to the recipients of the first delivery (IRCv3 `echo-message`: the
    /// sender gets its own message back, with the same tags).
    pub fn echo_to(&mut self, id: MemberId) {
        if let Some(d) = self.deliveries.first_mut() {
            if !d.to.contains(&id) {
                d.to.push(id);
            }
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
    /// Only a room operator may do that in this room.
    NotOperator(String),
    /// Only a server operator may do that.
    NoPrivileges,
    /// `(nick, room)`: that member is not in that room.
    TargetNotInRoom(String, String),
    /// `(nick, room)`: that member is already in that room.
    AlreadyInRoom(String, String),
    /// The room does not accept this message (`+n`, `+m`, a ban).
    CannotSend(String),
    /// Banned from the room.
    Banned(String),
    /// The room is invite-only.
    InviteOnly(String),
    /// Wrong or missing room key.
    BadKey(String),
    /// The room is full.
    RoomFull(String),
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
            ChatError::NotOperator(r) => write!(f, "you are not an operator of {r}"),
            ChatError::NoPrivileges => write!(f, "you are not a server operator"),
            ChatError::TargetNotInRoom(n, r) => write!(f, "{n} is not in {r}"),
            ChatError::AlreadyInRoom(n, r) => write!(f, "{n} is already in {r}"),
            ChatError::CannotSend(r) => write!(f, "cannot send to {r}"),
            ChatError::Banned(r) => write!(f, "cannot join {r}: you are banned"),
            ChatError::InviteOnly(r) => write!(f, "cannot join {r}: invitation needed"),
            ChatError::BadKey(r) => write!(f, "cannot join {r}: wrong key"),
            ChatError::RoomFull(r) => write!(f, "cannot join {r}: the room is full"),
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
    /// Most bans per room.
    pub max_bans: usize,
    /// Nicknames `WHOWAS` remembers.
    pub whowas: usize,
}

impl Default for CoreConfig {
    fn default() -> CoreConfig {
        CoreConfig {
            history: 20,
            max_rooms: 20,
            max_bans: 100,
            whowas: 100,
        }
    }
}

/// Whether `text` matches the IRC wildcard `mask` (`*` any run, `?` one character),
/// compared case-insensitively as [`fold`] does.
pub fn mask_match(mask: &str, text: &str) -> bool {
    let m: Vec<char> = fold(mask).chars().collect();
    let t: Vec<char> = fold(text).chars().collect();
    let (mut mi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if mi < m.len() && (m[mi] == '?' || m[mi] == t[ti]) {
            mi += 1;
            ti += 1;
        } else if mi < m.len() && m[mi] == '*' {
            star = Some((mi, ti));
            mi += 1;
        } else if let Some((smi, sti)) = star {
            mi = smi + 1;
            ti = sti + 1;
            star = Some((smi, sti + 1));
        } else {
            return false;
        }
    }
    m[mi..].iter().all(|&c| c == '*')
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

/// Whether `room` (without `#`) is a well-formed room name: 1 to [`ROOM_MAX`] bytes,
/// no spaces, control characters, `,` `:` or `#`.
pub fn valid_room(room: &str) -> bool {
    !room.is_empty()
        && room.len() <= ROOM_MAX
        && room
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !matches!(c, ',' | ':' | '#'))
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
/// member (the core only stores it).
#[derive(Debug)]
pub struct Chat<E> {
    cfg: CoreConfig,
    members: IdMap<Member<E>>,
    nicks: HashMap<String, MemberId>,
    rooms: HashMap<String, Room>,
    next_id: u64,
    whowas: VecDeque<Whowas>,
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
            whowas: VecDeque::new(),
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

    /// Whether `id` is in `room`.
    pub fn is_in(&self, id: MemberId, room: &str) -> bool {
        self.rooms.get(&fold(room)).is_some_and(|r| r.contains(id))
    }

    /// A member, to change its front-end details (endpoint, real name, user modes).
    pub fn member_mut(&mut self, id: MemberId) -> Option<&mut Member<E>> {
        self.members.get_mut(&id)
    }

    /// Every member, in no particular order.
    pub fn all_members(&self) -> impl Iterator<Item = &Member<E>> + '_ {
        self.members.values()
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
    pub fn join(&mut self, id: MemberId, room: &str) -> Result<Outcome, ChatError> {
        self.join_with_key(id, room, None)
    }

    /// [`join`](Self::join) with the room's key, if it has one. A ban (`+b`), an
    /// invitation-only room (`+i`), a key (`+k`) or a limit (`+l`) may refuse; an
    /// invitation lifts the first two. Whoever creates a room (not the lobby) becomes
    /// its operator.
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
            let invited = r.invited.contains(&id);
            let name = r.name.to_string();
            if !invited && r.banned(&mask) {
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

    /// Whether `id` may act as an operator of `r` (a room operator or a server
    /// operator).
    fn may_moderate(&self, id: MemberId, r: &Room) -> bool {
        r.status(id).is_some_and(|s| s.op) || self.members.get(&id).is_some_and(|m| m.oper)
    }

    /// `id` says `text` in `room`; everyone else in the room gets it, and it is kept
    /// in the history unless it is a notice. A non-member may send only to a `-n`
    /// room; in a `+m` room only operators and voiced members speak; a banned member
    /// (not voiced) does not.
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

    fn remember(&mut self, m: Whowas) {
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

    /// Sets `room`'s topic (members only; in a `+t` room operators only; empty clears
    /// it); everyone in it is told.
    pub fn set_topic(
        &mut self,
        id: MemberId,
        room: &str,
        topic: &str,
    ) -> Result<Outcome, ChatError> {
        let member = self.members.get(&id).ok_or(ChatError::NoSuchMember)?;
        let r = self
            .rooms
            .get(&fold(room))
            .ok_or_else(|| ChatError::NoSuchRoom(room.to_string()))?;
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

    /// Checks that `id` may moderate `room`: a member and an operator of it (or a
    /// server operator, member or not).
    fn check_moderator(&self, id: MemberId, room: &str) -> Result<&Room, ChatError> {
        let r = self
            .rooms
            .get(&fold(room))
            .ok_or_else(|| ChatError::NoSuchRoom(room.to_string()))?;
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
        let mut applied = String::new();
        let mut args: Vec<Rc<str>> = Vec::new();
        let mut sign = ' ';
        let mut note = |on: bool, c: char, arg: Option<Rc<str>>| {
            let s = if on { '+' } else { '-' };
            if s != sign {
                applied.push(s);
                sign = s;
            }
            applied.push(c);
            args.extend(arg);
        };
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
            match ch {
                ModeChange::Op(on, _) | ModeChange::Voice(on, _) => {
                    let Some((mid, mnick)) = who else { continue };
                    let Some(entry) = r.seq.get_mut(&mid) else {
                        errors.push(ChatError::TargetNotInRoom(
                            mnick.to_string(),
                            name.to_string(),
                        ));
                        continue;
                    };
                    let (flag, c) = match ch {
                        ModeChange::Op(..) => (&mut entry.1.op, 'o'),
                        _ => (&mut entry.1.voice, 'v'),
                    };
                    if *flag != *on {
                        *flag = *on;
                        note(*on, c, Some(mnick));
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
                        note(*on, c, None);
                    }
                }
                ModeChange::Key(Some(k)) => {
                    let k: Rc<str> = k.as_str().into();
                    r.modes.key = Some(k.clone());
                    note(true, 'k', Some(k));
                }
                ModeChange::Key(None) => {
                    if let Some(k) = r.modes.key.take() {
                        note(false, 'k', Some(k));
                    }
                }
                ModeChange::Limit(Some(l)) => {
                    r.modes.limit = Some(*l);
                    note(true, 'l', Some(l.to_string().into()));
                }
                ModeChange::Limit(None) => {
                    if r.modes.limit.take().is_some() {
                        note(false, 'l', None);
                    }
                }
                ModeChange::Ban(true, mask) => {
                    if !r.bans.iter().any(|b| fold(b) == fold(mask)) && r.bans.len() < max_bans {
                        let m: Rc<str> = mask.as_str().into();
                        r.bans.push(m.clone());
                        note(true, 'b', Some(m));
                    }
                }
                ModeChange::Ban(false, mask) => {
                    let before = r.bans.len();
                    r.bans.retain(|b| fold(b) != fold(mask));
                    if r.bans.len() != before {
                        note(false, 'b', Some(mask.as_str().into()));
                    }
                }
            }
        }
        let mut out = Outcome::default();
        if !applied.is_empty() {
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
                    changes: applied.into(),
                    args,
                },
            );
        }
        Ok((out, errors))
    }

    /// `id` invites `target` to `room`: the target gets [`Event::Invite`] and may then
    /// join past `+i` and bans. The inviter must be in the room (and an operator of
    /// an invitation-only one); a room that does not exist cannot be invited to.
    pub fn invite(&mut self, id: MemberId, room: &str, target: &str) -> Result<Outcome, ChatError> {
        let member = self.members.get(&id).ok_or(ChatError::NoSuchMember)?;
        let victim = self
            .find(target)
            .ok_or_else(|| ChatError::NoSuchNick(target.to_string()))?;
        let r = self
            .rooms
            .get(&fold(room))
            .ok_or_else(|| ChatError::NoSuchRoom(room.to_string()))?;
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

    /// Marks `id` away with `text` (`None` or empty: back); everyone sharing a room
    /// gets [`Event::Away`] (front ends show it to those who asked).
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

    /// A server operator's `text` to every member who receives wallops.
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
            ..CoreConfig::default()
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
        assert_eq!(
            members.iter().map(|(m, _)| &**m).collect::<Vec<_>>(),
            ["a", "b"]
        );
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
    fn operators_modes_kick_invite_and_masks() {
        assert!(mask_match("b*!*@*", "Bob!~b@h"));
        assert!(mask_match("?ob!*", "bob!x"));
        assert!(!mask_match("bob!*@x", "bob!u@y"));
        assert!(mask_match("*", ""));
        let mut c = chat();
        let a = reg(&mut c, "a");
        let b = reg(&mut c, "b");
        c.join(a, "r").unwrap();
        assert_eq!(c.status(a, "r").map(|s| s.op), Some(true), "creator is op");
        assert_eq!(
            c.status(a, LOBBY).map(|s| s.op),
            Some(false),
            "not in the lobby"
        );
        c.join(b, "r").unwrap();
        assert_eq!(
            c.set_topic(b, "r", "x"),
            Err(ChatError::NotOperator("r".into()))
        );
        assert_eq!(
            c.kick(b, "r", "a", ""),
            Err(ChatError::NotOperator("r".into()))
        );
        let (out, errs) = c
            .set_modes(
                a,
                "r",
                &[
                    ModeChange::Moderated(true),
                    ModeChange::Voice(true, "zed".into()),
                    ModeChange::Key(Some("k".into())),
                ],
            )
            .unwrap();
        assert_eq!(errs, vec![ChatError::NoSuchNick("zed".into())]);
        assert!(matches!(&out.deliveries[0].event,
            Event::Mode { changes, args, .. } if &**changes == "+mk" && args.len() == 1));
        assert_eq!(
            c.say(b, "r", "hi", MsgKind::Plain),
            Err(ChatError::CannotSend("r".into()))
        );
        let out = c.kick(a, "r", "B", "").unwrap();
        assert_eq!(out.deliveries[0].to, vec![a, b], "the target is told too");
        assert!(!c.is_in(b, "r"));
        assert_eq!(c.join(b, "r"), Err(ChatError::BadKey("r".into())));
        assert!(c.join_with_key(b, "r", Some("k")).is_ok());
        c.kick(a, "r", "b", "again").unwrap();
        c.set_modes(
            a,
            "r",
            &[ModeChange::Key(None), ModeChange::InviteOnly(true)],
        )
        .unwrap();
        assert_eq!(c.join(b, "r"), Err(ChatError::InviteOnly("r".into())));
        assert_eq!(c.invite(b, "r", "a"), Err(ChatError::NotInRoom("r".into())));
        c.invite(a, "r", "b").unwrap();
        assert!(c.join(b, "r").is_ok(), "an invitation lifts +i");
        c.set_away(b, Some("lunch")).unwrap();
        assert_eq!(
            c.find("b").and_then(|m| m.away.clone()).as_deref(),
            Some("lunch")
        );
        c.rename(b, "bee").unwrap();
        assert_eq!(c.whowas("b").len(), 1);
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
