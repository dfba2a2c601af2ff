//! What the chat state reports: events, deliveries, outcomes, errors, and the room mode
//! and status types they carry.

use std::fmt;
use std::rc::Rc;

use super::{MemberId, NICK_MAX, ROOM_MAX};

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

/// One mode change asked of [`Chat::set_modes`](super::Chat::set_modes).
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
    pub(super) fn push(&mut self, to: Vec<MemberId>, event: Event) {
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
