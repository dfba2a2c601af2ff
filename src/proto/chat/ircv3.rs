//! The IRCv3 pieces several front ends share: capabilities, `server-time`
//! timestamps and message tags.

/// The IRCv3 capabilities an IRC client enabled (`CAP REQ`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps(pub u16);

impl Caps {
    /// `multi-prefix`: every status prefix in `NAMES` and `WHO` (`@+nick`).
    pub const MULTI_PREFIX: Caps = Caps(1);
    /// `server-time`: a `time` tag on relayed messages.
    pub const SERVER_TIME: Caps = Caps(2);
    /// `message-tags`: tags on messages (`msgid`), `TAGMSG`.
    pub const MESSAGE_TAGS: Caps = Caps(4);
    /// `echo-message`: one's own messages come back.
    pub const ECHO_MESSAGE: Caps = Caps(8);
    /// `away-notify`: `AWAY` of people one shares a room with.
    pub const AWAY_NOTIFY: Caps = Caps(16);
    /// `cap-notify` (implied by `CAP LS 302`).
    pub const CAP_NOTIFY: Caps = Caps(32);
    /// `batch` (history replay on join comes as a `chathistory` batch).
    pub const BATCH: Caps = Caps(64);
    /// `userhost-in-names`: `NAMES` shows `nick!user@host`.
    pub const USERHOST_IN_NAMES: Caps = Caps(128);
    /// Every capability by name, as `CAP LS` lists them.
    pub const ALL: [(&'static str, Caps); 8] = [
        ("away-notify", Caps::AWAY_NOTIFY),
        ("batch", Caps::BATCH),
        ("cap-notify", Caps::CAP_NOTIFY),
        ("echo-message", Caps::ECHO_MESSAGE),
        ("message-tags", Caps::MESSAGE_TAGS),
        ("multi-prefix", Caps::MULTI_PREFIX),
        ("server-time", Caps::SERVER_TIME),
        ("userhost-in-names", Caps::USERHOST_IN_NAMES),
    ];

    /// The capability called `name`.
    pub fn by_name(name: &str) -> Option<Caps> {
        Caps::ALL
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, c)| c)
    }

    /// Whether every capability of `other` is enabled.
    pub fn has(self, other: Caps) -> bool {
        self.0 & other.0 == other.0
    }

    /// Enables or disables `other`.
    pub fn set(&mut self, other: Caps, on: bool) {
        if on {
            self.0 |= other.0;
        } else {
            self.0 &= !other.0;
        }
    }

    /// The enabled capabilities' names, space-separated.
    pub fn names(self) -> String {
        Caps::ALL
            .iter()
            .filter(|&&(_, c)| self.has(c))
            .map(|&(n, _)| n)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether messages to this client carry tags.
    pub fn tags(self) -> bool {
        self.0 & (Caps::SERVER_TIME.0 | Caps::MESSAGE_TAGS.0) != 0
    }
}

/// An RFC 3339 UTC time with milliseconds (`2024-01-02T03:04:05.678Z`), as
/// IRCv3 `server-time` writes it.
pub fn irc_time(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// The IRCv3 tags of one delivery.
#[derive(Clone, Debug)]
pub(crate) struct Tags {
    /// `time`.
    pub(crate) time: String,
    /// `msgid`, for messages.
    pub(crate) msgid: Option<String>,
}

impl Tags {
    /// The tag string (without `@` and the space) for a client with `caps`.
    pub(crate) fn for_caps(&self, caps: Caps) -> String {
        let mut s = String::new();
        if caps.has(Caps::MESSAGE_TAGS) {
            if let Some(id) = &self.msgid {
                s.push_str("msgid=");
                s.push_str(id);
            }
        }
        if caps.has(Caps::SERVER_TIME) || caps.has(Caps::MESSAGE_TAGS) {
            if !s.is_empty() {
                s.push(';');
            }
            s.push_str("time=");
            s.push_str(&self.time);
        }
        s
    }
}

/// `text` (IRC lines) with `@tags ` in front of each line.
pub(crate) fn tag_lines(text: &str, tags: &str) -> String {
    if tags.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 40);
    for l in text.split_inclusive('\n') {
        out.push('@');
        out.push_str(tags);
        out.push(' ');
        out.push_str(l);
    }
    out
}
