use super::*;
use std::time::{Duration, Instant};

fn chat() -> Chat<()> {
    Chat::new(ChatLimits {
        history: 3,
        max_rooms: 3,
        ..ChatLimits::default()
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
