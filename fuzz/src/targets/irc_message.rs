//! `proto::chat::irc::parse`: one IRC message, from a line as the front end decodes
//! it (UTF-8 lossily, control characters neutralised).
//!
//! Properties: the command is non-empty and holds no space; at most 15 parameters;
//! every parameter but the last is non-empty, holds no space and does not start with
//! `:`; and serialising the message (`:prefix COMMAND middle... :trailing`) and parsing
//! it again gives the same message.
use readyloop::proto::chat::irc::{parse, IrcMessage};
use readyloop::proto::chat::state::sanitize;

fn serialise(m: &IrcMessage<'_>) -> String {
    let mut out = String::new();
    if m.prefix.is_none() && m.command.starts_with('@') {
        // Only a tags section can come before such a command (`@a @b`: tags, then the
        // command `@b`, answered 421).
        out.push_str("@t ");
    }
    if let Some(p) = m.prefix {
        out.push(':');
        out.push_str(p);
        out.push(' ');
    }
    out.push_str(m.command);
    if let Some((last, middle)) = m.params.split_last() {
        for p in middle {
            out.push(' ');
            out.push_str(p);
        }
        out.push_str(" :");
        out.push_str(last);
    }
    out
}

pub fn run(data: &[u8]) {
    // What the IRC front end does to a received line before parsing it.
    let line = sanitize(&String::from_utf8_lossy(data));
    let Some(m) = parse(&line) else {
        return;
    };
    assert!(!m.command.is_empty());
    assert!(!m.command.contains(' '));
    assert!(m.params.len() <= 15);
    if let Some((_, middle)) = m.params.split_last() {
        for p in middle {
            assert!(
                !p.is_empty() && !p.contains(' ') && !p.starts_with(':'),
                "{p:?}"
            );
        }
    }
    if let Some(p) = m.prefix {
        assert!(!p.contains(' '));
    }
    let wire = serialise(&m);
    let again = parse(&wire);
    assert_eq!(again.as_ref(), Some(&m), "{line:?} -> {wire:?}");
}
