//! Connection-to-connection behaviour: calls that reach a connection busy further up
//! the call stack, producer/consumer flow control (a relay through `echo_server`
//! with bounded memory), half-close in either order.
//!
//! Every case runs on every backend (each case is written inside `per_backend!`,
//! from `tests/support`).

#[macro_use]
mod support;

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use readyloop::net::{notify, Conn, Listen, Protocol, StreamConfig};
use readyloop::reactor::{Config, HandlerId};
use readyloop::selector::Backend;

use support::*;

type Log = Arc<Mutex<Vec<String>>>;

// ---------------------------------------------------------------------------------
// Calls into a busy connection
// ---------------------------------------------------------------------------------

/// Two clients meet: the first to send "ping" asks the other (`notify`); the other,
/// inside its `event` (so while the first is busy in `data_received`), writes back
/// to the first and notifies it. Both calls must land, in order.
struct Meet {
    ids: Rc<RefCell<Vec<HandlerId>>>,
    log: Log,
}

struct Ping(HandlerId);
struct Pong;

impl Protocol for Meet {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        self.ids.borrow_mut().push(conn.id());
        conn.write(b"hi\n");
    }
    fn data_received(&mut self, conn: &mut Conn<'_, '_>, _data: &[u8]) {
        let me = conn.id();
        let other = self.ids.borrow().iter().copied().find(|&i| i != me);
        let Some(other) = other else { return };
        let ok = conn.notify(other, Box::new(Ping(me)));
        self.log.lock().unwrap().push(format!("notify other {ok}"));
        conn.write(b"after\n");
    }
    fn event(&mut self, conn: &mut Conn<'_, '_>, event: Box<dyn Any>) {
        if let Some(Ping(from)) = event.downcast_ref::<Ping>() {
            let w = conn.write_to(*from, b"pong\n");
            let n = conn.notify(*from, Box::new(Pong));
            let gone = conn.write_to(readyloop::slab::SlabId(u64::MAX - 1), b"x");
            self.log.lock().unwrap().push(format!(
                "write_to busy {w}, notify busy {n}, write_to gone {gone}"
            ));
        } else if event.is::<Pong>() {
            conn.write(b"event\n");
        }
    }
}

per_backend!(
    fn calls_into_a_busy_connection(backend: Backend) {
        let log = Log::default();
        let l2 = log.clone();
        let (lt, addr) = spawn_loop(backend, Config::default(), move |r| {
            let ids = Rc::new(RefCell::new(Vec::new()));
            r.listen_tcp("127.0.0.1:0", move |_: &_| {
                Some(Box::new(Meet {
                    ids: ids.clone(),
                    log: l2.clone(),
                }) as Box<dyn Protocol>)
            })
            .unwrap()
            .1
        });
        let mut a = connect(addr);
        let mut b = connect(addr);
        let mut hi = [0u8; 3];
        a.read_exact(&mut hi).unwrap();
        b.read_exact(&mut hi).unwrap();
        a.write_all(b"ping").unwrap();
        let want = b"pong\nafter\nevent\n";
        let mut got = vec![0u8; want.len()];
        a.read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
        let l = log.lock().unwrap().clone();
        assert_eq!(
            l,
            [
                "write_to busy true, notify busy true, write_to gone false",
                "notify other true"
            ]
        );
        lt.stop().unwrap();
    }
);

// ---------------------------------------------------------------------------------
// A relay with producer/consumer flow control
// ---------------------------------------------------------------------------------

/// Messages between the two halves of a relay.
enum Relay {
    /// The other side's peer sent EOF: shut our write side after the output.
    ShutWrite,
    /// The other side is gone: close.
    Close,
}

/// One side of a relay: forwards what it reads to `other`, registered as its
/// producer both ways, and records the largest output the other side held.
struct Half {
    other: Option<HandlerId>,
    backend: Option<SocketAddr>,
    max_other_output: Rc<Cell<usize>>,
}

impl Half {
    /// The client side of a relay to `backend`, recording the largest output it saw
    /// buffered on the other side in `max`.
    fn client(backend: SocketAddr, max: Rc<Cell<usize>>) -> Box<dyn Protocol> {
        Box::new(Half {
            other: None,
            backend: Some(backend),
            max_other_output: max,
        })
    }
}

impl Protocol for Half {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        if let Some(addr) = self.backend {
            // The client side: connect to the backend, which produces into us.
            let back = Half {
                other: Some(conn.id()),
                backend: None,
                max_other_output: self.max_other_output.clone(),
            };
            match conn.connect_tcp(addr, Duration::from_secs(5), back) {
                Ok(id) => self.other = Some(id),
                Err(_) => conn.close(),
            }
        }
        if let Some(other) = self.other {
            conn.produce_into(other);
        }
    }
    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
        let Some(other) = self.other else { return };
        conn.write_to(other, data);
        if let Some(n) = conn.output_len_of(other) {
            self.max_other_output
                .set(self.max_other_output.get().max(n));
        }
    }
    fn eof_received(&mut self, conn: &mut Conn<'_, '_>) -> bool {
        if let Some(other) = self.other {
            conn.notify(other, Box::new(Relay::ShutWrite));
        }
        true
    }
    fn event(&mut self, conn: &mut Conn<'_, '_>, event: Box<dyn Any>) {
        match event.downcast_ref::<Relay>() {
            Some(Relay::ShutWrite) => conn.shutdown_write(),
            Some(Relay::Close) => conn.close(),
            None => {}
        }
    }
    fn connection_failed(&mut self, conn: &mut Conn<'_, '_>, _reason: &io::Error) {
        if let Some(other) = self.other {
            conn.notify(other, Box::new(Relay::Close));
        }
    }
    fn connection_lost(&mut self, conn: &mut Conn<'_, '_>, _reason: Option<&io::Error>) {
        if let Some(other) = self.other {
            conn.notify(other, Box::new(Relay::Close));
        }
    }
}

const RELAY_BYTES: u64 = 64 << 20;

per_backend!(
    /// 64 MiB through the relay to `echo_server` and back, with the client not reading
    /// for a while halfway: nothing deadlocks, every byte comes back in order, the
    /// half-close is forwarded both ways (the client's EOF reaches the echo server,
    /// whose close comes back as EOF), and neither side ever held much more than its
    /// high watermark of output.
    fn relay_moves_64mib_through_echo_server(backend: Backend) {
        let mut echo = ServerProcess::echo_server(backend, &["--listen", "127.0.0.1:0"], None);
        let backend_addr = echo.tcp_addr();
        let (lt, addr) = spawn_loop(backend, Config::default(), move |r| {
            let max = Rc::new(Cell::new(0usize));
            r.listen_tcp("127.0.0.1:0", move |_: &_| {
                Some(Half::client(backend_addr, max.clone()))
            })
            .unwrap()
            .1
        });
        let mut c = connect(addr);
        let mut reader = c.try_clone().unwrap();
        let rx = thread::spawn(move || {
            // Stop reading for a while once a quarter has come back: the relay must
            // throttle the whole chain instead of buffering the rest.
            let mut first = vec![0u8; (RELAY_BYTES / 4) as usize];
            reader.read_exact(&mut first).unwrap();
            thread::sleep(Duration::from_millis(500));
            let (got, end) = check_pattern_until_eof(&mut (&first[..]).chain(reader));
            (got, end.map_err(|e| e.to_string()))
        });
        send_pattern(&mut c, RELAY_BYTES).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let (got, end) = rx.join().unwrap();
        end.unwrap_or_else(|e| panic!("after {got} bytes: {e}"));
        assert_eq!(got, RELAY_BYTES);
        // Both relay connections close once both directions are done.
        eventually(DEADLINE, "relay connections closed", || {
            (lt.call(|ctx| ctx.handler_count()) == 1).then_some(())
        });
        drop(echo.stderr());
        lt.stop().unwrap();
    }

    /// The same relay, asserting the bound on what each side held (asked on the loop).
    fn relay_output_stays_bounded(backend: Backend) {
        let mut echo = ServerProcess::echo_server(backend, &["--listen", "127.0.0.1:0"], None);
        let backend_addr = echo.tcp_addr();
        let bound = StreamConfig::default().high_watermark + 2 * readyloop::net::READ_BUFFER_SIZE;
        let max = Arc::new(Mutex::new(0usize));
        let max2 = max.clone();
        let (lt, addr) = spawn_loop(backend, Config::default(), move |r| {
            let seen = Rc::new(Cell::new(0usize));
            let s2 = seen.clone();
            let addr = r
                .listen_tcp("127.0.0.1:0", move |_: &_| {
                    Some(Half::client(backend_addr, s2.clone()))
                })
                .unwrap()
                .1;
            // Publish the largest output seen, every 20 ms.
            fn publish(
                ctx: &mut readyloop::reactor::Ctx<'_>,
                seen: Rc<Cell<usize>>,
                out: Arc<Mutex<usize>>,
            ) {
                *out.lock().unwrap() = seen.get();
                ctx.call_later(Duration::from_millis(20), move |ctx| {
                    publish(ctx, seen, out)
                });
            }
            r.with_ctx(|ctx| publish(ctx, seen, max2));
            addr
        });
        let mut c = connect(addr);
        // Send without reading a byte back: the chain must stall (the relay is not
        // allowed to buffer it all; the kernel's socket buffers along the chain hold a
        // few MiB), and what the relay holds stays bounded.
        let (sent, stalled) = send_until_blocked(&mut c, Duration::from_millis(500), 256 << 20);
        eprintln!("stalled after {sent} bytes");
        assert!(
            stalled,
            "256 MiB went in with nobody reading: buffered somewhere"
        );
        let held = *max.lock().unwrap();
        assert!(held <= bound, "a relay side held {held} bytes > {bound}");
        // Then read it all back: the chain resumes.
        let mut reader = c.try_clone().unwrap();
        let rx = thread::spawn(move || check_pattern_until_eof(&mut reader).0);
        c.shutdown(Shutdown::Write).unwrap();
        let got = rx.join().unwrap();
        assert_eq!(got, sent);
        thread::sleep(Duration::from_millis(50));
        let held = *max.lock().unwrap();
        assert!(held <= bound, "a relay side held {held} bytes > {bound}");
        drop(echo.stderr());
        lt.stop().unwrap();
    }
);

// ---------------------------------------------------------------------------------
// Half-close in either order
// ---------------------------------------------------------------------------------

/// Answers "bye" with "ok" and shuts its write side; keeps a half-closed
/// connection open (`eof_received` returns true) and answers the EOF with "eof".
struct HalfClose {
    log: Log,
}

impl Protocol for HalfClose {
    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
        if data == b"bye" {
            conn.write(b"ok");
            conn.shutdown_write();
            assert!(conn.is_write_shut());
            assert!(!conn.write(b"late"));
        }
    }
    fn eof_received(&mut self, conn: &mut Conn<'_, '_>) -> bool {
        self.log
            .lock()
            .unwrap()
            .push(format!("eof write_shut={}", conn.is_write_shut()));
        if !conn.is_write_shut() {
            conn.write(b"eof");
            conn.shutdown_write();
        }
        true
    }
    fn connection_lost(&mut self, _conn: &mut Conn<'_, '_>, reason: Option<&io::Error>) {
        self.log.lock().unwrap().push(format!("lost {reason:?}"));
    }
}

/// Waits until the connection is gone (its `lost` entry is in the log).
fn wait_lost(log: &Log) {
    eventually(DEADLINE, "server closed after both FINs", || {
        log.lock()
            .unwrap()
            .iter()
            .any(|e| e.starts_with("lost"))
            .then_some(())
    });
}

per_backend!(
    fn half_close_either_order(backend: Backend) {
        let log = Log::default();
        let l2 = log.clone();
        let (lt, addr) = spawn_loop(backend, Config::default(), move |r| {
            r.listen_tcp("127.0.0.1:0", move |_: &_| {
                Some(Box::new(HalfClose { log: l2.clone() }) as Box<dyn Protocol>)
            })
            .unwrap()
            .1
        });
        // Our side first: the server shuts its write side, then the client's EOF comes.
        let mut c = connect(addr);
        c.write_all(b"bye").unwrap();
        assert_eq!(read_to_eof(&mut c).unwrap(), b"ok");
        c.shutdown(Shutdown::Write).unwrap();
        wait_lost(&log);
        assert_eq!(
            log.lock().unwrap().clone(),
            ["eof write_shut=true", "lost None"]
        );
        assert_eq!(lt.call(|ctx| ctx.handler_count()), 1);

        // The peer first: its EOF, then our answer and FIN.
        log.lock().unwrap().clear();
        let mut c = connect(addr);
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_eof(&mut c).unwrap(), b"eof");
        wait_lost(&log);
        assert_eq!(
            log.lock().unwrap().clone(),
            ["eof write_shut=false", "lost None"]
        );
        assert_eq!(lt.call(|ctx| ctx.handler_count()), 1);
        lt.stop().unwrap();
    }

    /// `notify` on a connection that is gone returns false (not "busy").
    fn notify_gone_is_false(backend: Backend) {
        let (lt, ()) = spawn_loop(backend, Config::default(), |_| ());
        assert!(!lt.call(|ctx| notify(ctx, readyloop::slab::SlabId(7), Box::new(()))));
        lt.stop().unwrap();
    }
);

// ---------------------------------------------------------------------------------
// Idle timeout, local address, clock
// ---------------------------------------------------------------------------------

/// Closes after 300 ms without input; reports its local address and the clock on
/// connect ("local ADDR").
struct Idler;

impl Protocol for Idler {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        conn.set_idle_timeout(Some(Duration::from_millis(300)));
        let started = conn.now();
        assert!(started.elapsed() < Duration::from_secs(5));
        let local = conn.local_addr().unwrap();
        conn.write(format!("local {local} id {}\n", conn.id()).as_bytes());
    }
    fn data_received(&mut self, _conn: &mut Conn<'_, '_>, _data: &[u8]) {}
    fn idle_timeout(&mut self, conn: &mut Conn<'_, '_>) {
        conn.write(b"bye\n");
        conn.close();
    }
}

per_backend!(
    fn idle_timeout_closes_a_quiet_connection(backend: Backend) {
        let (lt, addr) = spawn_loop(backend, Config::default(), |r| {
            r.listen_tcp("127.0.0.1:0", |_| Some(Box::new(Idler)))
                .unwrap()
                .1
        });
        let mut c = connect(addr);
        let mut first = Vec::new();
        let mut byte = [0u8; 1];
        while !first.ends_with(b"\n") {
            c.read_exact(&mut byte).unwrap();
            first.push(byte[0]);
        }
        let first = String::from_utf8(first).unwrap();
        assert!(first.starts_with(&format!("local {addr} id ")), "{first:?}");
        // Input every 100 ms keeps it open past the 300 ms timeout...
        let start = std::time::Instant::now();
        for _ in 0..6 {
            thread::sleep(Duration::from_millis(100));
            c.write_all(b"x").unwrap();
        }
        c.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        let e = c.read(&mut byte).unwrap_err();
        assert!(is_timeout(&e), "closed while active: {e}");
        // ...then silence closes it, with the protocol's goodbye.
        c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        assert_eq!(read_to_eof(&mut c).unwrap(), b"bye\n");
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(900), "closed after {took:?}");
        lt.stop().unwrap();
    }
);
