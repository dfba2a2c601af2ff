//! `proto::kv`: the key-value server's request lines, framed by `LineBuffer` in pull
//! style (`feed` + `next_line`), parsed and executed on a small store.
//!
//! Properties: no panic on any bytes; fed in chunks the input chooses, pull style
//! gives the same lines and overflows as push style; the bytes held between feeds stay
//! bounded by the limit; every executed command appends exactly one CRLF-terminated
//! reply line; the store never holds more keys than its limit.
use readyloop::proto::framing::{Line, LineBuffer};
use readyloop::proto::kv::{parse, Store};

use super::Input;

const MAX_LINE: usize = 64;
const MAX_KEYS: usize = 8;

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let chunk = usize::from(input.byte()).max(1);
    let data = input.rest();
    let store = Store::shared(MAX_KEYS);
    let mut pull = LineBuffer::new(MAX_LINE);
    let mut push = LineBuffer::new(MAX_LINE);
    for part in data.chunks(chunk) {
        let mut pushed = Vec::new();
        push.push(part, |l| {
            pushed.push(match l {
                Line::Line(b) => Some(b.to_vec()),
                Line::TooLong => None,
            });
            true
        });
        pull.feed(part);
        let mut pulled = Vec::new();
        while let Some(l) = pull.next_line() {
            pulled.push(match l {
                Line::Line(b) => {
                    if let Ok(cmd) = parse(b) {
                        let mut reply = Vec::new();
                        store.borrow_mut().execute(cmd, &mut reply);
                        assert!(reply.ends_with(b"\r\n"), "reply without CRLF");
                        assert_eq!(
                            reply.iter().filter(|&&b| b == b'\n').count(),
                            1,
                            "one reply line per command"
                        );
                    }
                    Some(b.to_vec())
                }
                Line::TooLong => None,
            });
        }
        assert_eq!(pushed, pulled, "pull and push styles disagree");
        assert!(pull.pending() <= MAX_LINE + 1, "pending {}", pull.pending());
        assert!(store.borrow().len() <= MAX_KEYS);
    }
}
