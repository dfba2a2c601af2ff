//! `KeyedSelector::best()` is level-triggered, as Python's
//! `selectors.DefaultSelector()`: a faithful port of a Python loop that reads a part
//! of what is ready per wake-up gets everything. Edge-triggered stays available by
//! name (`best_edge`), and reports a partly read descriptor only once.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use readyloop::selector::{Backend, Interest, KeyedSelector, Trigger};

/// Writes 3000 bytes, then reads at most 1000 per `select`, as Python's example
/// (`conn.recv(1000)`) does. Returns the bytes read within 10 wake-ups.
fn read_in_parts(sel: &mut KeyedSelector<&'static str>) -> usize {
    let (mut a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    sel.register(a.as_raw_fd(), Interest::READABLE, "conn")
        .unwrap();
    b.write_all(&[7u8; 3000]).unwrap();
    let mut got = 0;
    for _ in 0..10 {
        let ready: Vec<_> = sel
            .select(Some(Duration::from_millis(100)))
            .unwrap()
            .map(|(k, _)| k.data)
            .collect();
        for data in ready {
            assert_eq!(data, "conn");
            let mut buf = [0u8; 1000];
            got += a.read(&mut buf).unwrap();
        }
        if got == 3000 {
            break;
        }
    }
    sel.unregister(a.as_raw_fd()).unwrap();
    got
}

#[test]
fn default_selector_is_level_triggered() {
    let mut sel: KeyedSelector<&'static str> = KeyedSelector::best().unwrap();
    assert_eq!(sel.capabilities().trigger, Trigger::Level);
    assert_eq!(sel.backend(), Backend::best_level());
    assert_eq!(read_in_parts(&mut sel), 3000);
}

#[test]
fn edge_triggered_is_an_explicit_choice() {
    let mut sel = KeyedSelector::best_edge().unwrap();
    assert_eq!(sel.capabilities().trigger, Trigger::Edge);
    // One report for one arrival: the rest waits for a new edge that never comes.
    assert_eq!(read_in_parts(&mut sel), 1000);
}
