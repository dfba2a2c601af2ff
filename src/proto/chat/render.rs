//! Rendering the chat state's events in each front end's syntax. Every function returns whole
//! lines, each ending in `\n` (IRC: `\r\n`); the UDP sender turns lines into datagrams.

use std::fmt::Write;

use std::rc::Rc;

use super::state::{Event, Member, Message, MsgKind, Status};
use super::{Caps, Endpoint, Flavor, Hub};

/// Whether `ev` renders differently for IRC clients with different capabilities
/// (beyond tags): then it is rendered per recipient.
pub(crate) fn per_caps(ev: &Event) -> bool {
    matches!(ev, Event::Away { .. })
}

/// Renders `ev` for a member `me` of the given flavor.
pub(crate) fn render(hub: &Hub, flavor: Flavor, ev: &Event, me: &Member<Endpoint>) -> String {
    match flavor {
        Flavor::Line => line(ev, false),
        Flavor::Udp => line(ev, true),
        Flavor::Irc => {
            let s = irc(hub, ev, me);
            if irc_fits(&s) {
                s
            } else {
                clip_irc(&s).into_owned()
            }
        }
    }
}

/// A room message on the line protocol (`udp`: the classroom `NAME:text`).
pub(crate) fn line_message(out: &mut String, msg: &Message, udp: bool) {
    let _ = match (msg.kind, udp) {
        (MsgKind::Action, _) => writeln!(out, "* {} {}", msg.from, msg.text),
        (MsgKind::Notice, _) => writeln!(out, "-{}- {}", msg.from, msg.text),
        (MsgKind::Plain, false) => writeln!(out, "<{}> {}", msg.from, msg.text),
        (MsgKind::Plain, true) => writeln!(out, "{}:{}", msg.from, msg.text),
    };
}

fn line(ev: &Event, udp: bool) -> String {
    let mut s = String::new();
    match ev {
        Event::Room { msg, .. } => line_message(&mut s, msg, udp),
        Event::Private { msg, .. } => {
            let _ = match msg.kind {
                MsgKind::Action => writeln!(s, "*{}* * {} {}", msg.from, msg.from, msg.text),
                _ => writeln!(s, "*{}* {}", msg.from, msg.text),
            };
        }
        Event::Join { room, nick, .. } => {
            let _ = writeln!(s, "* {nick} has joined {room}");
        }
        Event::Joined {
            room,
            members,
            topic,
            history,
        } => line_joined(&mut s, room, members, topic.as_deref(), history, udp),
        Event::Part {
            room, nick, reason, ..
        } => {
            let _ = match reason {
                Some(r) => writeln!(s, "* {nick} has left {room} ({r})"),
                None => writeln!(s, "* {nick} has left {room}"),
            };
        }
        Event::Quit { nick, reason, .. } => {
            let _ = writeln!(s, "* {nick} has quit ({reason})");
        }
        Event::Nick { old, new, .. } => {
            let _ = writeln!(s, "* {old} is now known as {new}");
        }
        Event::Topic {
            room, by, topic, ..
        } => {
            let _ = if topic.is_empty() {
                writeln!(s, "* {by} cleared the topic of {room}")
            } else {
                writeln!(s, "* {by} set the topic of {room} to: {topic}")
            };
        }
        Event::Kick {
            room,
            by,
            target,
            reason,
            ..
        } => {
            let _ = writeln!(s, "* {by} kicked {target} from {room} ({reason})");
        }
        Event::Mode {
            room,
            by,
            changes,
            args,
            ..
        } => {
            let mut all = changes.to_string();
            for a in args {
                all.push(' ');
                all.push_str(a);
            }
            let _ = writeln!(s, "* {by} sets mode {all} on {room}");
        }
        Event::Invite { room, by, .. } => {
            let _ = writeln!(s, "* {by} invites you to {room} (/join {room})");
        }
        Event::Away { .. } => {}
        Event::Wallops { from, text, .. } => {
            let _ = writeln!(s, "* wallops from {from}: {text}");
        }
    }
    s
}

/// [`Event::Joined`] on the line protocol: who is here, the topic, the history.
fn line_joined(
    s: &mut String,
    room: &str,
    members: &[(Rc<str>, Status)],
    topic: Option<&str>,
    history: &[Message],
    udp: bool,
) {
    let names: Vec<String> = members
        .iter()
        .map(|(m, st)| format!("{}{m}", st.prefix(false)))
        .collect();
    let _ = writeln!(
        s,
        "* you are in {room} ({} here: {})",
        names.len(),
        names.join(", ")
    );
    if let Some(t) = topic {
        let _ = writeln!(s, "* topic: {t}");
    }
    if !history.is_empty() {
        let _ = writeln!(s, "* last {} messages in {room}:", history.len());
        for m in history {
            line_message(s, m, udp);
        }
        let _ = writeln!(s, "* end of history");
    }
}

/// Longest IRC line we send, CRLF included.
const IRC_LINE: usize = 512;

/// Whether every line of `text` fits in [`IRC_LINE`] bytes with its CRLF.
fn irc_fits(text: &str) -> bool {
    text.split("\r\n").all(|l| l.len() <= IRC_LINE - 2)
}

/// `text` (CRLF-terminated IRC lines) with every line over [`IRC_LINE`] bytes cut to
/// fit, on a character boundary (RFC 2812 2.3: clients may drop longer lines). Lines
/// that echo what a client sent (an unknown command, a `PING` token, a topic, a quit
/// reason) can pass it: input is limited in bytes, but each invalid byte in it
/// decodes to a 3-byte U+FFFD.
pub(crate) fn clip_irc(text: &str) -> std::borrow::Cow<'_, str> {
    let max = IRC_LINE - 2;
    if irc_fits(text) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive("\r\n") {
        let (body, end) = match line.strip_suffix("\r\n") {
            Some(b) => (b, "\r\n"),
            None => (line, ""),
        };
        let mut cut = body.len().min(max);
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&body[..cut]);
        out.push_str(end);
    }
    std::borrow::Cow::Owned(out)
}

/// The longest text an IRC client can send in one 512-byte line (`PRIVMSG x :` and
/// CRLF take at least 13 bytes): longer texts come from line-protocol users.
const IRC_CLIENT_TEXT: usize = IRC_LINE - 13;

/// Splits `text` into pieces of at most `max` bytes on character boundaries.
pub(crate) fn split_text(text: &str, max: usize) -> Vec<&str> {
    let max = max.max(4);
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out.push(rest);
    out
}

/// `:nick!user@host CMD target :text`; actions as CTCP `ACTION`. A text that does not
/// fit one line is truncated if an IRC client could have sent it, split over several
/// lines if longer (line-protocol users may send up to 2048 bytes).
pub(crate) fn irc_message(
    out: &mut String,
    from: &str,
    userhost: &str,
    target: &str,
    msg: &Message,
) {
    let cmd = if msg.kind == MsgKind::Notice {
        "NOTICE"
    } else {
        "PRIVMSG"
    };
    let head = format!(":{from}!{userhost} {cmd} {target} :");
    let (pre, post) = if msg.kind == MsgKind::Action {
        ("\x01ACTION ", "\x01")
    } else {
        ("", "")
    };
    let room = IRC_LINE.saturating_sub(head.len() + pre.len() + post.len() + 2);
    if msg.text.len() <= IRC_CLIENT_TEXT {
        // What an IRC client could send in one line is truncated to one line, as IRC
        // servers do (the prefix added here may not leave room for all of it).
        let piece = split_text(&msg.text, room)[0];
        let _ = write!(out, "{head}{pre}{piece}{post}\r\n");
        return;
    }
    for piece in split_text(&msg.text, room) {
        let _ = write!(out, "{head}{pre}{piece}{post}\r\n");
    }
}

fn irc(hub: &Hub, ev: &Event, member: &Member<Endpoint>) -> String {
    let mut s = String::new();
    match ev {
        Event::Room { room, msg } => {
            irc_message(&mut s, &msg.from, &msg.userhost, &format!("#{room}"), msg)
        }
        Event::Private { target, msg } => {
            irc_message(&mut s, &msg.from, &msg.userhost, target, msg)
        }
        Event::Joined {
            room,
            members,
            topic,
            history,
        } => irc_joined(
            &mut s,
            hub,
            member,
            room,
            members,
            topic.as_deref(),
            history,
        ),
        Event::Away {
            nick,
            userhost,
            text,
        } => {
            if member.endpoint.caps().has(Caps::AWAY_NOTIFY) {
                let _ = match text {
                    Some(t) => write!(s, ":{nick}!{userhost} AWAY :{t}\r\n"),
                    None => write!(s, ":{nick}!{userhost} AWAY\r\n"),
                };
            }
        }
        _ => irc_plain(&mut s, ev),
    }
    s
}

/// The events every IRC client sees the same way: one line from their author.
fn irc_plain(s: &mut String, ev: &Event) {
    match ev {
        Event::Join {
            room,
            nick,
            userhost,
        } => {
            let _ = write!(s, ":{nick}!{userhost} JOIN #{room}\r\n");
        }
        Event::Part {
            room,
            nick,
            userhost,
            reason,
        } => {
            let _ = match reason {
                Some(r) => write!(s, ":{nick}!{userhost} PART #{room} :{r}\r\n"),
                None => write!(s, ":{nick}!{userhost} PART #{room}\r\n"),
            };
        }
        Event::Quit {
            nick,
            userhost,
            reason,
        } => {
            let _ = write!(s, ":{nick}!{userhost} QUIT :{reason}\r\n");
        }
        Event::Nick { old, userhost, new } => {
            let _ = write!(s, ":{old}!{userhost} NICK :{new}\r\n");
        }
        Event::Topic {
            room,
            by,
            userhost,
            topic,
        } => {
            let _ = write!(s, ":{by}!{userhost} TOPIC #{room} :{topic}\r\n");
        }
        Event::Kick {
            room,
            by,
            userhost,
            target,
            reason,
        } => {
            let _ = write!(s, ":{by}!{userhost} KICK #{room} {target} :{reason}\r\n");
        }
        Event::Mode {
            room,
            by,
            userhost,
            changes,
            args,
        } => {
            let _ = write!(s, ":{by}!{userhost} MODE #{room} {changes}");
            for a in args {
                let _ = write!(s, " {a}");
            }
            s.push_str("\r\n");
        }
        Event::Invite {
            room,
            by,
            userhost,
            target,
        } => {
            let _ = write!(s, ":{by}!{userhost} INVITE {target} #{room}\r\n");
        }
        Event::Wallops {
            from,
            userhost,
            text,
        } => {
            let _ = write!(s, ":{from}!{userhost} WALLOPS :{text}\r\n");
        }
        Event::Room { .. } | Event::Private { .. } | Event::Joined { .. } | Event::Away { .. } => {}
    }
}

/// [`Event::Joined`] on IRC: the `JOIN`, the topic (332, 333), `NAMES`, and the
/// room's history.
fn irc_joined(
    s: &mut String,
    hub: &Hub,
    member: &Member<Endpoint>,
    room: &str,
    members: &[(Rc<str>, Status)],
    topic: Option<&str>,
    history: &[Message],
) {
    let srv = &hub.cfg.server_name;
    let me = &*member.nick;
    let _ = write!(s, ":{me}!{} JOIN #{room}\r\n", member.userhost);
    let info = hub.chat.room(room);
    if let Some(t) = topic {
        let _ = write!(s, ":{srv} 332 {me} #{room} :{t}\r\n");
        if let Some((by, at)) = info.as_ref().and_then(|i| i.topic_set.clone()) {
            let _ = write!(s, ":{srv} 333 {me} #{room} {by} {at}\r\n");
        }
    }
    let multi = member.endpoint.caps().has(Caps::MULTI_PREFIX);
    let secret = info.is_some_and(|i| i.modes.secret);
    let uhnames = member.endpoint.caps().has(Caps::USERHOST_IN_NAMES);
    let list: Vec<String> = members
        .iter()
        .map(|(m, st)| {
            let uh = uhnames
                .then(|| hub.chat.find(m).map(|x| format!("!{}", x.userhost)))
                .flatten()
                .unwrap_or_default();
            format!("{}{m}{uh}", st.prefix(multi))
        })
        .collect();
    names(s, srv, me, room, secret, list.iter().map(|m| m.as_str()));
    if !history.is_empty() {
        irc_history(s, srv, member.endpoint.caps(), room, history);
    }
}

/// A room's history replayed on join: with each message's time for `server-time` and
/// `message-tags` clients (in a `chathistory` batch with `batch`), between two server
/// notices for the others.
fn irc_history(s: &mut String, srv: &str, caps: Caps, room: &str, history: &[Message]) {
    if caps.has(Caps::SERVER_TIME) || caps.has(Caps::MESSAGE_TAGS) {
        // Each replayed message carries the time it was sent (in a
        // `chathistory` batch for clients with `batch`).
        let batch = caps.has(Caps::BATCH).then(|| format!("h{}", room.len()));
        if let Some(b) = &batch {
            let _ = write!(s, ":{srv} BATCH +{b} chathistory #{room}\r\n");
        }
        for m in history {
            let mut one = String::new();
            irc_message(&mut one, &m.from, &m.userhost, &format!("#{room}"), m);
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(m.at_ms);
            let mut tags = format!("time={}", super::irc_time(at));
            if let Some(b) = &batch {
                tags = format!("batch={b};{tags}");
            }
            s.push_str(&super::tag_lines(&one, &tags));
        }
        if let Some(b) = &batch {
            let _ = write!(s, ":{srv} BATCH -{b}\r\n");
        }
    } else {
        let _ = write!(
            s,
            ":{srv} NOTICE #{room} :*** last {} messages in #{room}:\r\n",
            history.len()
        );
        for m in history {
            irc_message(s, &m.from, &m.userhost, &format!("#{room}"), m);
        }
        let _ = write!(s, ":{srv} NOTICE #{room} :*** end of history\r\n");
    }
}

/// RPL_NAMREPLY lines (353) for `room`, then RPL_ENDOFNAMES (366).
pub(crate) fn names<'a>(
    s: &mut String,
    srv: &str,
    me: &str,
    room: &str,
    secret: bool,
    members: impl Iterator<Item = &'a str>,
) {
    let symbol = if secret { '@' } else { '=' };
    let head = format!(":{srv} 353 {me} {symbol} #{room} :");
    let mut line = String::new();
    for m in members {
        if !line.is_empty() && head.len() + line.len() + m.len() + 3 > IRC_LINE {
            let _ = write!(s, "{head}{line}\r\n");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(m);
    }
    if !line.is_empty() {
        let _ = write!(s, "{head}{line}\r\n");
    }
    let _ = write!(s, ":{srv} 366 {me} #{room} :End of /NAMES list.\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn msg(kind: MsgKind, text: &str) -> Message {
        Message {
            from: "alice".into(),
            userhost: "~a@127.0.0.1".into(),
            text: text.into(),
            kind,
            at_ms: 0,
        }
    }

    #[test]
    fn line_and_udp_syntax() {
        let ev = Event::Room {
            room: "lobby".into(),
            msg: msg(MsgKind::Plain, "hi there"),
        };
        assert_eq!(line(&ev, false), "<alice> hi there\n");
        assert_eq!(line(&ev, true), "alice:hi there\n");
        let ev = Event::Room {
            room: "lobby".into(),
            msg: msg(MsgKind::Action, "waves"),
        };
        assert_eq!(line(&ev, false), "* alice waves\n");
        let ev = Event::Quit {
            nick: "bob".into(),
            userhost: "x@y".into(),
            reason: Rc::from("Connection closed"),
        };
        assert_eq!(line(&ev, false), "* bob has quit (Connection closed)\n");
    }

    #[test]
    fn irc_messages_split_and_ctcp() {
        let mut s = String::new();
        irc_message(&mut s, "a", "u@h", "#lobby", &msg(MsgKind::Action, "waves"));
        assert_eq!(s, ":a!u@h PRIVMSG #lobby :\x01ACTION waves\x01\r\n");
        let long = "é".repeat(600);
        let mut s = String::new();
        irc_message(&mut s, "a", "u@h", "#lobby", &msg(MsgKind::Plain, &long));
        let lines: Vec<&str> = s.split_inclusive("\r\n").collect();
        assert!(lines.len() >= 3, "{}", lines.len());
        assert!(lines.iter().all(|l| l.len() <= IRC_LINE));
        let body: String = lines
            .iter()
            .map(|l| l.trim_end().split_once(" :").unwrap().1)
            .collect();
        assert_eq!(body, long);
    }

    #[test]
    fn names_are_chunked() {
        let mut s = String::new();
        let many: Vec<String> = (0..200).map(|i| format!("user{i}")).collect();
        names(
            &mut s,
            "srv",
            "me",
            "lobby",
            false,
            many.iter().map(|m| m.as_str()),
        );
        assert!(s.lines().count() > 3);
        assert!(s.lines().all(|l| l.len() + 2 <= IRC_LINE));
        assert!(s.ends_with(":srv 366 me #lobby :End of /NAMES list.\r\n"));
    }

    #[test]
    fn irc_lines_are_clipped_to_512_bytes_on_char_boundaries() {
        assert!(matches!(
            clip_irc("a\r\nb\r\n"),
            std::borrow::Cow::Borrowed(_)
        ));
        let long = format!(
            ":s 421 n {} :Unknown command\r\nok\r\n",
            "\u{fffd}".repeat(300)
        );
        let clipped = clip_irc(&long);
        let lines: Vec<&str> = clipped.split_inclusive("\r\n").collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].len() <= 512 && lines[0].len() > 500,
            "{}",
            lines[0].len()
        );
        assert!(lines[0].ends_with("\u{fffd}\r\n"));
        assert_eq!(lines[1], "ok\r\n");
    }
}
