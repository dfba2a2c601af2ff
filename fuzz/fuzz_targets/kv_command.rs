//! The key-value line protocol (`proto::kv`): any bytes, split into lines by
//! `LineBuffer` in pull style (chunked by the first byte), parsed and executed,
//! must not panic, and pull style must agree with push style line for line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use readyloop::proto::framing::{Line, LineBuffer};
use readyloop::proto::kv::{parse, Store};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, data)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let store = Store::shared(64);
    let mut pull = LineBuffer::new(64);
    let mut push = LineBuffer::new(64);
    let mut reply = Vec::new();
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
                        store.borrow_mut().execute(cmd, &mut reply);
                    }
                    Some(b.to_vec())
                }
                Line::TooLong => None,
            });
        }
        assert_eq!(pushed, pulled);
        assert!(pull.pending() <= 66);
        reply.clear();
    }
});
