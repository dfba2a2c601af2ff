//! Shared output chunks ([`Conn::write_shared`], [`write_shared_to`]): order with copied
//! writes, gathered sends that the kernel takes in part (ending inside any chunk, with
//! more chunks pending than one `sendmsg` takes), and the exact per-connection byte
//! bound (`max_output`) with one chunk queued on several connections.
//!
//! Every case runs on every backend (`per_backend!`, from `tests/support`). With
//! `--features fault-injection` the partial-send case also runs under a plan of
//! made-up short writes, `EAGAIN` and `EINTR` (level-triggered backends; `EINTR` only
//! on edge-triggered ones, see `src/sys/fault.rs`).

#[macro_use]
mod support;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use readyloop::net::{write_shared_to, Conn, Listen, ListenConfig, Protocol, StreamConfig};
use readyloop::reactor::{Config, HandlerId};
use readyloop::selector::Backend;

use support::*;

/// How the pieces of the pattern are queued, in turn.
#[derive(Clone, Copy, Debug)]
enum How {
    /// `Conn::write` (copied into the owned tail).
    Copy,
    /// `Conn::write_shared` of a static chunk.
    Shared,
    /// `Conn::write_shared_to` this very connection (by id).
    SharedToSelf,
    /// A slice of one big shared buffer (`Bytes::slice`).
    Slice,
}

/// Pieces of odd, varying lengths (1..=3001 bytes), so the kernel's partial sends end
/// inside chunks of every kind.
fn pieces(total: u64) -> Vec<(u64, usize, How)> {
    let hows = [How::Copy, How::Shared, How::SharedToSelf, How::Slice];
    let mut out = Vec::new();
    let mut off = 0u64;
    let mut i = 0usize;
    while off < total {
        let len = ((1 + (i * 7919) % 3001) as u64).min(total - off) as usize;
        out.push((off, len, hows[(i * 5 + i / 7) % hows.len()]));
        off += len as u64;
        i += 1;
    }
    out
}

/// On the first input: queues `total` pattern bytes as mixed copied and shared pieces
/// in one callback (more chunks than one `sendmsg` takes, more bytes than the socket
/// holds), then closes (the close flushes everything first).
struct Mixed {
    total: u64,
    big: Bytes,
    done: bool,
}

impl Protocol for Mixed {
    fn data_received(&mut self, conn: &mut Conn<'_, '_>, _data: &[u8]) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let me = conn.id();
        for (off, len, how) in pieces(self.total) {
            let ok = match how {
                How::Copy => conn.write(pattern_at(off, len)),
                How::Shared => conn.write_shared(&Bytes::from_static(pattern_at(off, len))),
                How::SharedToSelf => {
                    conn.write_shared_to(me, &Bytes::from_static(pattern_at(off, len)))
                }
                How::Slice => {
                    // `big` holds the pattern from offset 0 for one period and more.
                    let start = (off % 65_521) as usize;
                    conn.write_shared(&self.big.slice(start..start + len))
                }
            };
            assert!(ok, "write of {len} bytes at {off} refused");
        }
        conn.close();
    }
}

/// The pattern from stream offset 0 for one period (65521 bytes) and 4 KiB more, so
/// any piece starting within the period is one slice of it.
fn big() -> Bytes {
    let v: Vec<u8> = [
        pattern_at(0, 32 * 1024),
        pattern_at(32 * 1024, 32 * 1024),
        pattern_at(64 * 1024, 4 * 1024),
    ]
    .concat();
    Bytes::from(v)
}

/// Serves [`Mixed`] on `backend`; the client asks, waits until the server has queued
/// everything (so the socket is full and sends come back short), then reads it all.
fn mixed_round_trip(backend: Backend, total: u64) {
    let big = big();
    let (lt, addr) = spawn_loop(backend, Config::default(), move |r| {
        r.listen_tcp("127.0.0.1:0", move |_: &_| {
            Some(Box::new(Mixed {
                total,
                big: big.clone(),
                done: false,
            }) as Box<dyn Protocol>)
        })
        .unwrap()
        .1
    });
    let mut s = connect(addr);
    s.write_all(b"go").unwrap();
    thread::sleep(Duration::from_millis(200));
    expect_pattern_then_eof(&mut s, total);
    lt.stop().unwrap();
}

per_backend!(
    /// Copied and shared pieces arrive in the order written, byte for byte, through
    /// partial gathered sends: 16 MiB in about 11000 pieces.
    fn mixed_writes_keep_order_through_partial_sends(backend: Backend) {
        mixed_round_trip(backend, 16 << 20);
    }

    /// One shared chunk queued on two connections counts in full against each one's
    /// `max_output`: a write that keeps a connection's pending bytes at or under the
    /// limit succeeds, and the first one that would take them over it (with the
    /// socket full) cuts that connection off; `bytes_sent() + output_len()` is
    /// everything queued.
    fn shared_chunks_count_in_full_against_max_output(backend: Backend) {
        exact_bound(backend);
    }
);

/// Records its id; writes nothing itself.
struct Quiet(Arc<Mutex<Vec<HandlerId>>>);

impl Protocol for Quiet {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        self.0.lock().unwrap().push(conn.id());
    }

    fn data_received(&mut self, _conn: &mut Conn<'_, '_>, _data: &[u8]) {}
}

per_backend!(
    /// `net::write_shared_to` and `net::write_to` from outside any connection (a
    /// call on the loop) interleave in order; a gone id is refused.
    fn write_shared_to_from_the_loop(backend: Backend) {
        let ids = Arc::new(Mutex::new(Vec::new()));
        let i2 = ids.clone();
        let (lt, addr) = spawn_loop(backend, Config::default(), move |r| {
            r.listen_tcp("127.0.0.1:0", move |_: &_| {
                Some(Box::new(Quiet(i2.clone())) as Box<dyn Protocol>)
            })
            .unwrap()
            .1
        });
        let mut s = connect(addr);
        let id = eventually(DEADLINE, "the connection is accepted", || {
            ids.lock().unwrap().first().copied()
        });
        let shared = Bytes::from_static(b"<shared>");
        let oks = lt.call(move |ctx| {
            let mut oks = Vec::new();
            for i in 0..3 {
                oks.push(readyloop::net::write_to(
                    ctx,
                    id,
                    format!("{i}:").as_bytes(),
                ));
                oks.push(write_shared_to(ctx, id, &shared));
            }
            oks
        });
        assert!(oks.iter().all(|&ok| ok), "{backend}: {oks:?}");
        let want = b"0:<shared>1:<shared>2:<shared>";
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(text(&got), text(want), "{backend}");
        drop(s);
        eventually(DEADLINE, "a write to a gone connection is refused", || {
            lt.call(move |ctx| !write_shared_to(ctx, id, &Bytes::from_static(b"x")))
                .then_some(())
        });
        lt.stop().unwrap();
    }
);

const LIMIT: usize = 256 * 1024;
const PIECE: usize = 10_000;

/// What the bound case saw, per write: `(ok, len before, len after, sent after)` on
/// the writing connection, and the other connection's pending bytes after.
type Trace = Arc<Mutex<Vec<(bool, usize, usize, u64, Option<usize>)>>>;

/// The second connection to arrive writes, on its first input, the same shared
/// piece to itself and to the first connection until its own write is refused.
/// Neither client reads.
struct Bound {
    ids: Rc<RefCell<Vec<HandlerId>>>,
    accepted: Arc<AtomicUsize>,
    trace: Trace,
}

impl Protocol for Bound {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        self.ids.borrow_mut().push(conn.id());
        self.accepted.fetch_add(1, Ordering::SeqCst);
    }

    fn data_received(&mut self, conn: &mut Conn<'_, '_>, _data: &[u8]) {
        let me = conn.id();
        let Some(other) = self.ids.borrow().iter().copied().find(|&i| i != me) else {
            return;
        };
        let piece = Bytes::from(vec![b'x'; PIECE]);
        let mut trace = self.trace.lock().unwrap();
        // Bounded: the kernel holds a few MiB at most on loopback.
        for _ in 0..10_000 {
            let before = conn.output_len();
            conn.write_shared_to(other, &piece);
            let ok = conn.write_shared(&piece);
            let other_len = conn.output_len_of(other);
            trace.push((ok, before, conn.output_len(), conn.bytes_sent(), other_len));
            if !ok {
                break;
            }
        }
    }
}

fn exact_bound(backend: Backend) {
    let trace = Trace::default();
    let t2 = trace.clone();
    let accepted = Arc::new(AtomicUsize::new(0));
    let a2 = accepted.clone();
    let (lt, addr) = spawn_loop(backend, Config::default(), move |r| {
        let ids = Rc::new(RefCell::new(Vec::new()));
        let cfg = ListenConfig {
            stream: StreamConfig {
                max_output: Some(LIMIT),
                ..StreamConfig::default()
            },
            ..ListenConfig::default()
        };
        r.listen_tcp_with(
            "127.0.0.1:0",
            move |_: &_| {
                Some(Box::new(Bound {
                    ids: ids.clone(),
                    accepted: a2.clone(),
                    trace: t2.clone(),
                }) as Box<dyn Protocol>)
            },
            cfg,
        )
        .unwrap()
        .1
    });
    let first = connect(addr);
    eventually(DEADLINE, "the first connection is accepted", || {
        (accepted.load(Ordering::SeqCst) >= 1).then_some(())
    });
    let mut second = connect(addr);
    second.write_all(b"go").unwrap();
    let t = eventually(DEADLINE, "a write is refused", || {
        let t = trace.lock().unwrap();
        t.last().is_some_and(|l| !l.0).then(|| t.clone())
    });
    let mut queued = 0u64;
    for (i, &(ok, before, after, sent, other)) in t.iter().enumerate() {
        if ok {
            queued += PIECE as u64;
            assert!(
                after <= LIMIT,
                "{backend}: write {i} left {after} > {LIMIT} pending"
            );
            assert_eq!(
                sent + after as u64,
                queued,
                "{backend}: write {i}: sent + pending"
            );
            if let Some(o) = other {
                assert!(o <= LIMIT, "{backend}: the other connection holds {o}");
            }
        } else {
            assert!(
                before + PIECE > LIMIT,
                "{backend}: write {i} refused with {before} + {PIECE} <= {LIMIT} pending"
            );
        }
        if before + PIECE <= LIMIT {
            assert!(ok, "{backend}: write {i} under the limit was refused");
        }
    }
    assert!(t.len() > 1, "{backend}: the first write was refused");
    // The writer was cut off: its client reads what the kernel held, then the end.
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    loop {
        match second.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n as u64,
        }
    }
    assert!(got < queued + PIECE as u64, "{backend}: {got} bytes read");
    drop(first);
    lt.stop().unwrap();
}

#[cfg(feature = "fault-injection")]
mod faults {
    use super::*;
    use readyloop::selector::Trigger;
    use readyloop::sys::fault::{self, Fault, Op, Plan};

    fn plan(backend: Backend) -> Plan {
        let mut random = vec![(Op::Write, Fault::Interrupted, 0.1)];
        // The first sends are faulted for sure; later ones at random.
        let mut schedule = vec![(Op::Write, 0, Fault::Interrupted)];
        if backend.trigger() == Trigger::Level {
            random.extend([
                (Op::Write, Fault::Short, 0.3),
                (Op::Write, Fault::WouldBlock, 0.1),
            ]);
            schedule.extend([
                (Op::Write, 1, Fault::Short),
                (Op::Write, 2, Fault::WouldBlock),
                (Op::Write, 3, Fault::Short),
            ]);
        }
        Plan {
            seed: 14,
            random,
            schedule,
        }
    }

    per_backend!(
        /// The partial-send case with the injector cutting gathered sends short
        /// (anywhere inside the chunks), failing them with `EAGAIN` and `EINTR`.
        fn mixed_writes_under_write_faults(backend: Backend) {
            let total = 1 << 20;
            let big = big();
            let p = plan(backend);
            let (lt, addr) = spawn_loop(backend, Config::default(), move |r| {
                fault::install(p);
                r.listen_tcp("127.0.0.1:0", move |_: &_| {
                    Some(Box::new(Mixed {
                        total,
                        big: big.clone(),
                        done: false,
                    }) as Box<dyn Protocol>)
                })
                .unwrap()
                .1
            });
            let mut s = connect(addr);
            s.write_all(b"go").unwrap();
            thread::sleep(Duration::from_millis(100));
            expect_pattern_then_eof(&mut s, total);
            let report = lt.call(|_| fault::uninstall()).expect("a plan");
            assert!(report.total() > 0, "{backend}: no fault was injected");
            lt.stop().unwrap();
        }
    );
}
