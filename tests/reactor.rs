//! The reactor on every backend: timers, the cross-thread handle, graceful shutdown,
//! changes made during dispatch, fairness between clients, descriptor exhaustion and
//! stale handler ids.
//!
//! Every case takes a [`Backend`] and is written inside `per_backend!` (from
//! `tests/support`), which adds one test per backend (`accept_burst::epoll_et`). Loops run either in the test thread under a [`Watchdog`] (which stops
//! a loop that overstays) or on a background thread ([`LoopThread`]); sockets have
//! timeouts; every "eventually" has a deadline.

#[macro_use]
mod support;

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use readyloop::net::{
    notify, write_to, Conn, Listen, ListenConfig, PeerAddr, Protocol, Stream, StreamConfig,
};
use readyloop::proto::echo::{Echo, EchoOptions};
use readyloop::reactor::{Config, Ctx, Handler, HandlerId, PanicPolicy, Reactor, TimerId};
use readyloop::selector::{Backend, Interest, Readiness};

use support::*;

fn reactor(backend: Backend) -> Reactor {
    init_logging();
    Reactor::new(backend).unwrap_or_else(|e| panic!("reactor on {backend}: {e}"))
}

fn tcp_echo(backend: Backend) -> (LoopThread, SocketAddr) {
    spawn_loop(backend, Config::default(), |r| {
        r.listen_tcp("127.0.0.1:0", Echo::factory(EchoOptions::default()))
            .unwrap()
            .1
    })
}

fn handlers(lt: &LoopThread) -> usize {
    lt.call(|ctx| ctx.handler_count())
}

// ---------------------------------------------------------------------------------
// Timers
// ---------------------------------------------------------------------------------

per_backend!(
    fn timers_fire_in_order(backend: Backend) {
        let mut r = reactor(backend);
        let log: Rc<RefCell<Vec<(u32, Duration)>>> = Rc::default();
        let start = Instant::now();
        // (tag, delay in ms); two zero delays keep their insertion order.
        for (tag, ms) in [(30, 30), (10, 10), (20, 20), (0, 0), (1, 0)] {
            let log = log.clone();
            r.call_later(Duration::from_millis(ms), move |ctx| {
                log.borrow_mut().push((tag, start.elapsed()));
                if tag == 10 {
                    // A timer set from a timer callback.
                    let log = log.clone();
                    ctx.call_later(Duration::from_millis(5), move |_| {
                        log.borrow_mut().push((15, start.elapsed()));
                    });
                }
            });
        }
        r.call_later(Duration::from_millis(50), |ctx| ctx.stop());
        let wd = Watchdog::arm(r.handle(), Duration::from_secs(5));
        r.run().unwrap();
        assert!(
            !wd.disarm(),
            "{backend}: the loop did not stop from its timer"
        );
        let log = log.borrow();
        // The timers set up front fire in deadline order however late the loop runs; the
        // nested one (15) at least 5 ms after the one that set it (its place among the
        // others depends on how late that one ran).
        let tags: Vec<u32> = log.iter().map(|(t, _)| *t).filter(|&t| t != 15).collect();
        assert_eq!(tags, [0, 1, 10, 20, 30], "{backend}");
        let at = |tag: u32| log.iter().find(|(t, _)| *t == tag).map(|(_, at)| *at);
        let nested = at(15).unwrap_or_else(|| panic!("{backend}: nested timer did not fire"));
        assert!(
            nested >= at(10).unwrap() + Duration::from_millis(5),
            "{backend}"
        );
        for &(tag, at) in log.iter() {
            let due = Duration::from_millis(if tag == 1 { 0 } else { tag as u64 });
            assert!(at >= due, "{backend}: timer {tag} fired early, at {at:?}");
        }
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    fn cancel_timer_prevents_firing(backend: Backend) {
        let mut r = reactor(backend);
        let fired: Rc<RefCell<Vec<&'static str>>> = Rc::default();
        let f = fired.clone();
        let a = r.call_later(Duration::from_millis(20), move |_| f.borrow_mut().push("a"));
        let f = fired.clone();
        let b = r.call_later(Duration::from_millis(40), move |_| f.borrow_mut().push("b"));
        let f = fired.clone();
        let d = r.call_later(Duration::from_millis(5), move |_| f.borrow_mut().push("d"));
        assert!(r.with_ctx(|ctx| ctx.cancel_timer(a)), "pending: cancelled");
        assert!(
            !r.with_ctx(|ctx| ctx.cancel_timer(a)),
            "second cancel: nothing"
        );
        // Cancelled from inside another timer's callback.
        let f = fired.clone();
        r.call_later(Duration::from_millis(10), move |ctx| {
            assert!(ctx.cancel_timer(b));
            assert!(!ctx.cancel_timer(d), "d has already fired");
            f.borrow_mut().push("c");
        });
        // Many cancelled timers (lazy cancellation, compaction) change nothing.
        let far: Vec<_> = (0..1000)
            .map(|_| r.call_later(Duration::from_secs(3600), |_| panic!("cancelled timer ran")))
            .collect();
        r.with_ctx(|ctx| {
            for t in far {
                assert!(ctx.cancel_timer(t));
            }
        });
        r.call_later(Duration::from_millis(60), |ctx| ctx.stop());
        let wd = Watchdog::arm(r.handle(), Duration::from_secs(5));
        let start = Instant::now();
        r.run().unwrap();
        assert!(!wd.disarm());
        assert!(start.elapsed() < Duration::from_secs(2), "{backend}");
        assert_eq!(*fired.borrow(), ["d", "c"], "{backend}");
    }
);

/// Sets a 30 ms timer when connected and writes `tick` when it fires.
struct TimedWriter {
    /// When the timer is due at the latest (set in `connection_made`).
    due_by: Rc<Cell<Option<Instant>>>,
    fired: Rc<Cell<bool>>,
}

impl Protocol for TimedWriter {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        let delay = Duration::from_millis(30);
        conn.set_timer(delay);
        self.due_by.set(Some(Instant::now() + delay));
    }

    fn data_received(&mut self, _conn: &mut Conn<'_, '_>, _data: &[u8]) {}

    fn timer(&mut self, conn: &mut Conn<'_, '_>, _id: TimerId) {
        self.fired.set(true);
        conn.write(b"tick");
    }
}

fn tick(count: Rc<Cell<u32>>, ctx: &mut Ctx<'_>) {
    count.set(count.get() + 1);
    ctx.call_later(Duration::ZERO, move |ctx| tick(count, ctx));
}

per_backend!(
    fn timers_do_not_spin(backend: Backend) {
        let mut r = reactor(backend);
        let wd = Watchdog::arm(r.handle(), Duration::from_secs(10));

        // A zero-delay timer set before an iteration fires at its start.
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        r.call_later(Duration::ZERO, move |_| f.set(true));
        r.run_once(Some(Duration::from_millis(10))).unwrap();
        assert!(
            fired.get(),
            "{backend}: zero-delay timer fired on the first iteration"
        );

        // One set from a callback bounds that iteration's wait (rounded up to 1 ms, not
        // the 2 s asked) and fires on the next.
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        r.call_later(Duration::ZERO, move |ctx| {
            ctx.call_later(Duration::ZERO, move |_| f.set(true));
        });
        let t = Instant::now();
        r.run_once(Some(Duration::from_secs(2))).unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{backend}: it did not wait"
        );
        assert!(!fired.get());
        r.run_once(Some(Duration::from_millis(10))).unwrap();
        assert!(fired.get(), "{backend}: fired on the next iteration");

        // Nothing pending: the wait lasts (no leftover zero timeout).
        let t = Instant::now();
        r.run_once(Some(Duration::from_millis(100))).unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(90),
            "{backend}: an idle iteration returned after {:?}",
            t.elapsed()
        );

        // A cancelled timer does not wake the loop early.
        let early = r.call_later(Duration::from_millis(10), |_| panic!("cancelled timer ran"));
        r.with_ctx(|ctx| ctx.cancel_timer(early));
        let t = Instant::now();
        r.run_once(Some(Duration::from_millis(150))).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(140), "{backend}");

        // A sub-millisecond timer: a few iterations, not a spin of zero-timeout waits.
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        let t = Instant::now();
        r.call_later(Duration::from_micros(500), move |_| f.set(true));
        let mut iterations = 0;
        while !fired.get() && iterations < 100 {
            r.run_once(Some(Duration::from_millis(50))).unwrap();
            iterations += 1;
        }
        assert!(fired.get());
        assert!(t.elapsed() >= Duration::from_micros(500));
        assert!(
            iterations <= 5,
            "{backend}: {iterations} iterations for a 0.5 ms timer"
        );

        // A timer that re-arms itself with zero delay runs once per iteration: it never
        // keeps `run_timers` busy, and the loop still gets to the selector in between.
        let count = Rc::new(Cell::new(0));
        let c = count.clone();
        r.call_later(Duration::ZERO, move |ctx| tick(c, ctx));
        let t = Instant::now();
        for _ in 0..10 {
            r.run_once(Some(Duration::from_secs(2))).unwrap();
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{backend}: due timers wait"
        );
        assert!(
            (10..=20).contains(&count.get()),
            "{backend}: {} runs in 10 iterations",
            count.get()
        );
        assert!(!wd.disarm());

        // A 100 ms timer under a long wait: the loop sleeps until it is due (one or two
        // iterations, not a spin), and the iteration whose wait ended at the deadline
        // runs it (timers run after I/O, as in Redis `ae.c`; see
        // `timer_runs_after_the_wait_and_its_write_leaves_at_once`).
        let mut r = reactor(backend);
        let wd = Watchdog::arm(r.handle(), Duration::from_secs(10));
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        let t = Instant::now();
        r.call_later(Duration::from_millis(100), move |_| f.set(true));
        let mut iterations = 0;
        while !fired.get() && iterations < 100 {
            r.run_once(Some(Duration::from_secs(5))).unwrap();
            iterations += 1;
        }
        assert!(fired.get(), "{backend}: the due timer ran");
        assert!(
            iterations <= 2 && t.elapsed() < Duration::from_secs(2),
            "{backend}: {iterations} iterations, {:?}, waiting for a 100 ms timer",
            t.elapsed()
        );
        assert!(
            t.elapsed() >= Duration::from_millis(100),
            "{backend}: early"
        );
        assert!(!wd.disarm());
    }

    /// Loop order (module docs of `reactor`): timers run after the wait and dispatch,
    /// before the deferred pass. So the iteration whose wait ends at a timer's
    /// deadline runs the timer, and a write the timer queues is on the wire when that
    /// same `run_once` returns (no second, zero-timeout wait).
    fn timer_runs_after_the_wait_and_its_write_leaves_at_once(backend: Backend) {
        let mut r = reactor(backend);
        let (ours, mut peer) = UnixStream::pair().unwrap();
        let due_by: Rc<Cell<Option<Instant>>> = Rc::default();
        let fired = Rc::new(Cell::new(false));
        let proto = TimedWriter {
            due_by: due_by.clone(),
            fired: fired.clone(),
        };
        let stream = Stream::new(
            ours.into(),
            PeerAddr::Unix,
            Box::new(proto),
            Rc::new(StreamConfig::default()),
        )
        .unwrap();
        r.with_ctx(|ctx| stream.register(ctx)).unwrap();
        let due_by = due_by.get().expect("connection_made set the timer");
        peer.set_nonblocking(true).unwrap();
        // Run until the loop's clock (read by the timer pass, last) has passed the
        // deadline: that iteration must have run the timer and flushed its write.
        let mut iterations = 0;
        loop {
            r.run_once(Some(Duration::from_secs(5))).unwrap();
            iterations += 1;
            if r.with_ctx(|ctx| ctx.now()) >= due_by || iterations == 100 {
                break;
            }
            assert!(!fired.get(), "{backend}: the timer fired early");
        }
        assert!(iterations < 100, "{backend}: the loop spun");
        assert!(
            fired.get(),
            "{backend}: the wait ended past the deadline but the timer did not run"
        );
        let mut buf = [0u8; 16];
        let n = peer.read(&mut buf).unwrap_or_else(|e| {
            panic!("{backend}: the timer's write did not leave in the same iteration: {e}")
        });
        assert_eq!(&buf[..n], b"tick", "{backend}");
    }

    fn stop_from_timer(backend: Backend) {
        let mut r = reactor(backend);
        let later = Rc::new(Cell::new(false));
        let l = later.clone();
        r.call_later(Duration::from_millis(600), move |ctx| {
            l.set(true);
            ctx.stop();
        });
        r.call_later(Duration::from_millis(20), |ctx| ctx.stop());
        let wd = Watchdog::arm(r.handle(), Duration::from_secs(5));
        let t = Instant::now();
        r.run().unwrap();
        assert!(!later.get(), "{backend}: run() went on after stop()");
        assert!(
            t.elapsed() < Duration::from_millis(590),
            "{backend}: stopped at once"
        );
        assert!(r.is_stopped());
        // run() again goes on with the timers left.
        r.run().unwrap();
        assert!(
            later.get(),
            "{backend}: the second run() ran the later timer"
        );
        assert!(!wd.disarm());
    }
);

// ---------------------------------------------------------------------------------
// The cross-thread handle
// ---------------------------------------------------------------------------------

per_backend!(
    fn handle_from_another_thread(backend: Backend) {
        let (mut lt, ()) = spawn_loop(backend, Config::default(), |_| ());
        let (name, seen) =
            lt.call(|ctx| (thread::current().name().map(String::from), ctx.backend()));
        assert_eq!(name.as_deref(), Some(format!("reactor-{backend}").as_str()));
        assert_eq!(seen, backend);
        // Many calls from several threads all run, once each.
        let count = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let h = lt.handle.clone();
                let c = count.clone();
                thread::spawn(move || {
                    for _ in 0..250 {
                        let c = c.clone();
                        h.call(move |_| {
                            c.fetch_add(1, Ordering::Relaxed);
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        eventually(DEADLINE, "1000 calls ran", || {
            (count.load(Ordering::Relaxed) == 1000).then_some(())
        });
        assert!(!lt.finished());
        // stop() from this thread ends run().
        lt.handle.stop().unwrap();
        lt.join(Duration::from_secs(2)).unwrap();
        assert_eq!(count.load(Ordering::Relaxed), 1000);
    }

    fn wakes_coalesce(backend: Backend) {
        let mut r = reactor(backend);
        let wd = Watchdog::arm(r.handle(), Duration::from_secs(10));
        let count = Arc::new(AtomicUsize::new(0));
        let h = r.handle();
        let c = count.clone();
        thread::spawn(move || {
            for i in 0..10_000 {
                h.wake().unwrap();
                if i % 100 == 0 {
                    let c = c.clone();
                    h.call(move |_| {
                        c.fetch_add(1, Ordering::Relaxed);
                    })
                    .unwrap();
                }
            }
        })
        .join()
        .unwrap();
        // One iteration takes every queued call and the whole wake count...
        let t = Instant::now();
        r.run_once(Some(Duration::from_secs(2))).unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{backend}: woken at once"
        );
        assert_eq!(count.load(Ordering::Relaxed), 100, "{backend}");
        // ...so the next one waits its full timeout.
        let t = Instant::now();
        r.run_once(Some(Duration::from_millis(150))).unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(140),
            "{backend}: leftover wake-ups ({:?})",
            t.elapsed()
        );
        // A wake from another thread ends a long wait.
        let h = r.handle();
        let waker = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            h.wake().unwrap();
        });
        let t = Instant::now();
        r.run_once(Some(Duration::from_secs(5))).unwrap();
        assert!(t.elapsed() < Duration::from_secs(2), "{backend}: not woken");
        waker.join().unwrap();
        assert!(!wd.disarm());
    }

    /// A handle outliving its reactor says so instead of queueing a call nobody will run.
    fn handle_after_drop_fails(backend: Backend) {
        let r = reactor(backend);
        let h = r.handle();
        h.call(|_| {}).unwrap();
        drop(r);
        let err = h.call(|_| {}).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotConnected, "{backend}");
        assert_eq!(h.wake().unwrap_err().kind(), ErrorKind::NotConnected);
        assert_eq!(h.stop().unwrap_err().kind(), ErrorKind::NotConnected);
    }
);

/// A bare handler (on one end of a socket pair that never becomes readable) whose
/// deferred work defers itself again, `left` more times.
struct Deferrer {
    sock: UnixStream,
    left: u32,
    runs: Arc<AtomicUsize>,
}

impl Handler for Deferrer {
    fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    fn ready(&mut self, _ctx: &mut Ctx<'_>, _r: Readiness) {}

    fn deferred(&mut self, ctx: &mut Ctx<'_>) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        if self.left > 0 {
            self.left -= 1;
            ctx.defer(ctx.id());
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// A buggy handler that closes its own descriptor while it stays registered.
struct SelfCloser {
    sock: Option<UnixStream>,
    fd: RawFd,
    errors: Arc<AtomicUsize>,
}

impl Handler for SelfCloser {
    fn fd(&self) -> RawFd {
        self.fd
    }

    fn ready(&mut self, ctx: &mut Ctx<'_>, r: Readiness) {
        if self.sock.is_none() {
            // Reported after the close (select: ready; poll: POLLNVAL as an error):
            // a real handler's read would fail with EBADF here; it goes away.
            let _ = r;
            self.errors.fetch_add(1, Ordering::SeqCst);
            ctx.remove(ctx.id());
        }
    }

    fn deferred(&mut self, _ctx: &mut Ctx<'_>) {
        self.sock = None;
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

per_backend!(
    /// A handler that closes its descriptor without leaving (a bug the reactor cannot
    /// prevent) does not stop the loop on any backend: select's EBADF and poll's
    /// POLLNVAL are reported on its key, epoll forgets the descriptor; other handlers
    /// and timers go on.
    fn closed_handler_descriptor_does_not_stop_the_loop(backend: Backend) {
        let errors = Arc::new(AtomicUsize::new(0));
        let e2 = errors.clone();
        let (lt, (id, _peer)) = spawn_loop(backend, Config::default(), move |r| {
            let (sock, peer) = UnixStream::pair().unwrap();
            let fd = sock.as_raw_fd();
            let h = SelfCloser {
                sock: Some(sock),
                fd,
                errors: e2,
            };
            let id = r.insert(Box::new(h), Some(Interest::READABLE)).unwrap();
            (id, peer)
        });
        lt.handle.call(move |ctx| ctx.defer(id)).unwrap();
        // The loop still runs timers and calls afterwards.
        let (tx, rx) = mpsc::channel();
        lt.handle
            .call(move |ctx| {
                ctx.call_later(Duration::from_millis(50), move |_| {
                    let _ = tx.send(());
                });
            })
            .unwrap();
        rx.recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("{backend}: the loop stopped running timers"));
        // Whether the key was reported is not asserted: tests run in parallel, and
        // another thread may reuse the closed number at once (then it is open again).
        log::debug!(
            "{backend}: closed key reported {} time(s)",
            errors.load(Ordering::SeqCst)
        );
        lt.stop().unwrap();
    }

    /// Deferred work left over when the per-batch round limit is reached runs on the next
    /// iteration without waiting for an unrelated event.
    fn deferred_work_is_not_stranded(backend: Backend) {
        let runs = Arc::new(AtomicUsize::new(0));
        let r2 = runs.clone();
        let (lt, (id, _peer)) = spawn_loop(backend, Config::default(), move |r| {
            let (sock, peer) = UnixStream::pair().unwrap();
            let h = Deferrer {
                sock,
                left: 10,
                runs: r2,
            };
            let id = r.insert(Box::new(h), Some(Interest::READABLE)).unwrap();
            (id, peer)
        });
        lt.handle.call(move |ctx| ctx.defer(id)).unwrap();
        let t = Instant::now();
        eventually(Duration::from_secs(3), "11 deferred runs", || {
            (runs.load(Ordering::Relaxed) == 11).then_some(())
        });
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{backend}: deferred work waited {:?}",
            t.elapsed()
        );
        lt.stop().unwrap();

        // Deferred from outside the loop (`with_ctx` before an iteration): that
        // iteration does not block first.
        let mut r = reactor(backend);
        let (sock, _peer) = UnixStream::pair().unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let h = Deferrer {
            sock,
            left: 0,
            runs: runs.clone(),
        };
        let id = r.insert(Box::new(h), Some(Interest::READABLE)).unwrap();
        r.with_ctx(|ctx| ctx.defer(id));
        let t = Instant::now();
        r.run_once(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(runs.load(Ordering::Relaxed), 1);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{backend}: waited {:?} with deferred work pending",
            t.elapsed()
        );
    }
);

// ---------------------------------------------------------------------------------
// Graceful shutdown
// ---------------------------------------------------------------------------------

/// Echo that counts what it read, records its connection ids, and answers a probe
/// (a `Sender<usize>` sent with `notify`) with its pending output.
struct Probe {
    echo: Echo,
    received: Arc<AtomicU64>,
}

impl Protocol for Probe {
    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
        self.received
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.echo.data_received(conn, data);
    }

    fn event(&mut self, conn: &mut Conn<'_, '_>, event: Box<dyn Any>) {
        if let Ok(tx) = event.downcast::<mpsc::Sender<usize>>() {
            let _ = tx.send(conn.output_len());
        }
    }
}

type Ids = Arc<Mutex<Vec<HandlerId>>>;

/// A listener whose connections run `make()`, with their ids collected in `ids`.
fn recording_listener(
    r: &mut Reactor,
    cfg: ListenConfig,
    ids: Ids,
    make: impl Fn() -> Box<dyn Protocol> + 'static,
) -> SocketAddr {
    struct Recorder {
        inner: Box<dyn Protocol>,
        ids: Ids,
    }
    impl Protocol for Recorder {
        fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
            self.ids.lock().unwrap().push(conn.id());
            self.inner.connection_made(conn);
        }
        fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
            self.inner.data_received(conn, data);
        }
        fn eof_received(&mut self, conn: &mut Conn<'_, '_>) -> bool {
            self.inner.eof_received(conn)
        }
        fn connection_lost(&mut self, conn: &mut Conn<'_, '_>, reason: Option<&std::io::Error>) {
            self.inner.connection_lost(conn, reason);
        }
        fn event(&mut self, conn: &mut Conn<'_, '_>, event: Box<dyn Any>) {
            self.inner.event(conn, event);
        }
        fn shutdown(&mut self, conn: &mut Conn<'_, '_>) {
            self.inner.shutdown(conn);
        }
    }
    let factory = move |_: &readyloop::net::PeerAddr| {
        Some(Box::new(Recorder {
            inner: make(),
            ids: ids.clone(),
        }) as Box<dyn Protocol>)
    };
    r.listen_tcp_with("127.0.0.1:0", factory, cfg).unwrap().1
}

fn wait_ids(ids: &Ids, n: usize) -> Vec<HandlerId> {
    eventually(DEADLINE, &format!("{n} connection(s) registered"), || {
        let v = ids.lock().unwrap();
        (v.len() >= n).then(|| v.clone())
    })
}

per_backend!(
    fn graceful_shutdown_flushes(backend: Backend) {
        // Reading never pauses here, so the server takes all the client sends and holds
        // the echo the client does not read yet.
        const M: u64 = 16 << 20;
        let received = Arc::new(AtomicU64::new(0));
        let ids: Ids = Arc::default();
        let (rcv, ids2) = (received.clone(), ids.clone());
        let (mut lt, addr) = spawn_loop(backend, Config::default(), move |r| {
            let cfg = ListenConfig {
                stream: StreamConfig {
                    high_watermark: 64 << 20,
                    low_watermark: 1 << 20,
                    ..StreamConfig::default()
                },
                ..ListenConfig::default()
            };
            recording_listener(r, cfg, ids2, move || {
                Box::new(Probe {
                    echo: Echo::default(),
                    received: rcv.clone(),
                })
            })
        });
        let mut c = connect(addr);
        let mut w = c.try_clone().unwrap();
        let writer = thread::spawn(move || send_pattern(&mut w, M));
        writer.join().unwrap().expect("the server takes everything");
        let id = wait_ids(&ids, 1)[0];
        eventually(DEADLINE, "the server read everything", || {
            (received.load(Ordering::Relaxed) == M).then_some(())
        });
        let pending = lt.call(move |ctx| {
            let (tx, rx) = mpsc::channel::<usize>();
            assert!(notify(ctx, id, Box::new(tx)));
            rx.recv().unwrap()
        });
        assert!(pending > 0, "{backend}: the server has output pending");

        lt.handle.shutdown().unwrap();
        // The listener goes away at once: new connections are refused.
        eventually(
            DEADLINE,
            "listener closed",
            || match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => Some(()),
                _ => None,
            },
        );
        assert!(
            !lt.finished(),
            "{backend}: run() waits for the pending output"
        );
        // Everything queued is delivered, then the server closes.
        expect_pattern_then_eof(&mut c, M);
        lt.join(DEADLINE).expect("run() returns Ok");
    }

    /// A graceful close while the peer is still sending. The server flushes its output
    /// and closes with unread input; a plain close would make the kernel reset the
    /// connection and drop what it had not yet transmitted, so the client would receive
    /// less than the server echoed. The lingering close (shut the write side after the
    /// flush, read and discard until EOF or the close timeout, then close) delivers it
    /// all: this case checks that, on every backend, in the default run.
    fn graceful_shutdown_while_client_still_sends(backend: Backend) {
        let received = Arc::new(AtomicU64::new(0));
        let rcv = received.clone();
        let (mut lt, addr) = spawn_loop(backend, Config::default(), move |r| {
            recording_listener(r, ListenConfig::default(), Ids::default(), move || {
                Box::new(Probe {
                    echo: Echo::default(),
                    received: rcv.clone(),
                })
            })
        });
        let mut c = connect(addr);
        let mut w = c.try_clone().unwrap();
        // Reading is paused by backpressure: the client cannot finish sending.
        let writer = thread::spawn(move || {
            let _ = send_pattern(&mut w, 64 << 20);
        });
        eventually(DEADLINE, "server reading", || {
            (received.load(Ordering::Relaxed) > 1 << 20).then_some(())
        });
        thread::sleep(Duration::from_millis(200));
        lt.handle.shutdown().unwrap();
        let (got, end) = check_pattern_until_eof(&mut c);
        let echoed = received.load(Ordering::Relaxed);
        let _ = c.shutdown(Shutdown::Both);
        writer.join().unwrap();
        lt.join(DEADLINE).unwrap();
        assert!(
            end.is_ok() && got == echoed,
            "{backend}: the server echoed {echoed} bytes, the client got {got} ({end:?})"
        );
    }

    fn shutdown_deadline_cuts_stuck_clients(backend: Backend) {
        let config = Config {
            shutdown_timeout: Duration::from_millis(300),
            ..Config::default()
        };
        let (mut lt, addr) = spawn_loop(backend, config, |r| {
            r.listen_tcp("127.0.0.1:0", Echo::factory(EchoOptions::default()))
                .unwrap()
                .1
        });
        let mut stuck = connect(addr);
        let (_, stalled) = send_until_blocked(&mut stuck, Duration::from_millis(200), 64 << 20);
        assert!(stalled);
        let t = Instant::now();
        lt.handle.shutdown().unwrap();
        lt.join(Duration::from_secs(5)).unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{backend}: the deadline cut the client ({:?})",
            t.elapsed()
        );
        // The client's connection is gone (reset, or EOF after what was sent).
        stuck
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let (_, end) = check_pattern_until_eof(&mut stuck);
        if let Err(e) = end {
            assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{backend}: {e}");
        }
    }
);

// ---------------------------------------------------------------------------------
// Changes during dispatch
// ---------------------------------------------------------------------------------

/// Asks a connection to close itself gracefully (sent with `notify`).
struct CloseYourself;

/// A control protocol: `victim` enrols the connection; `kill` removes every victim
/// at once (from the killer's callback); `close` asks them to close gracefully after
/// a goodbye; `quit` aborts the connection itself; anything else is echoed.
struct Control {
    victims: Ids,
    lost: Arc<AtomicUsize>,
}

impl Protocol for Control {
    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
        match data {
            b"victim" => {
                self.victims.lock().unwrap().push(conn.id());
                conn.write(b"ok\n");
            }
            b"kill" => {
                let victims: Vec<_> = self.victims.lock().unwrap().drain(..).collect();
                for v in victims {
                    conn.remove_handler(v);
                }
                conn.write(b"killed\n");
            }
            b"close" => {
                let victims: Vec<_> = self.victims.lock().unwrap().drain(..).collect();
                for v in victims {
                    assert!(conn.write_to(v, b"bye\n"));
                    assert!(conn.notify(v, Box::new(CloseYourself)));
                }
                conn.write(b"closed\n");
            }
            b"quit" => conn.abort(),
            other => {
                conn.write(other);
            }
        }
    }

    fn event(&mut self, conn: &mut Conn<'_, '_>, event: Box<dyn Any>) {
        if event.is::<CloseYourself>() {
            conn.close();
        }
    }

    fn connection_lost(&mut self, _conn: &mut Conn<'_, '_>, _reason: Option<&std::io::Error>) {
        self.lost.fetch_add(1, Ordering::Relaxed);
    }
}

/// Writes `msg` and expects exactly `reply` back.
fn ask(c: &mut TcpStream, msg: &[u8], reply: &[u8]) {
    c.write_all(msg).unwrap();
    let mut got = vec![0u8; reply.len()];
    c.read_exact(&mut got)
        .unwrap_or_else(|e| panic!("reply to {:?}: {e}", String::from_utf8_lossy(msg)));
    assert_eq!(got, reply, "reply to {:?}", String::from_utf8_lossy(msg));
}

fn expect_eof_or_reset(c: &mut TcpStream, allowed: &[&[u8]], what: &str) {
    match read_to_eof(c) {
        Ok(data) => assert!(
            allowed.contains(&data.as_slice()),
            "{what}: got {:?}",
            String::from_utf8_lossy(&data)
        ),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{what}: {e}"),
    }
}

per_backend!(
    fn close_other_connection_during_dispatch(backend: Backend) {
        let victims: Ids = Arc::default();
        let lost = Arc::new(AtomicUsize::new(0));
        let (v2, l2) = (victims.clone(), lost.clone());
        let (lt, addr) = spawn_loop(backend, Config::default(), move |r| {
            let factory = move |_: &readyloop::net::PeerAddr| {
                Some(Box::new(Control {
                    victims: v2.clone(),
                    lost: l2.clone(),
                }) as Box<dyn Protocol>)
            };
            r.listen_tcp("127.0.0.1:0", factory).unwrap().1
        });
        let enrol = |c: &mut TcpStream| ask(c, b"victim", b"ok\n");

        // Removal by id from another connection's callback: both victims see EOF.
        let mut a = connect(addr);
        let mut b = connect(addr);
        enrol(&mut a);
        enrol(&mut b);
        let mut k = connect(addr);
        ask(&mut k, b"kill", b"killed\n");
        assert_eq!(read_to_eof(&mut a).unwrap(), b"", "{backend}: a sees EOF");
        assert_eq!(read_to_eof(&mut b).unwrap(), b"", "{backend}: b sees EOF");

        // Graceful close requested by another connection: the goodbye, then EOF.
        let mut c = connect(addr);
        enrol(&mut c);
        ask(&mut k, b"close", b"closed\n");
        assert_eq!(read_to_eof(&mut c).unwrap(), b"bye\n", "{backend}");

        // The victim's own data and a new connection in the same batch as the kill: the
        // victim's queued event must be dropped, the newcomer must get only its own echo.
        let mut d = connect(addr);
        enrol(&mut d);
        d.write_all(b"hello").unwrap();
        k.write_all(b"kill").unwrap();
        let mut e = connect(addr);
        let mut got = [0u8; 7];
        k.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"killed\n");
        expect_eof_or_reset(&mut d, &[b"", b"hello"], "victim in the same batch");
        assert_eq!(round_trip(&mut e, b"newcomer"), b"newcomer", "{backend}");

        // A connection that aborts itself.
        k.write_all(b"quit").unwrap();
        assert_eq!(read_to_eof(&mut k).unwrap(), b"", "{backend}: quit -> EOF");

        eventually(DEADLINE, "5 connections lost", || {
            (lost.load(Ordering::Relaxed) == 5).then_some(())
        });
        assert_eq!(handlers(&lt), 2, "{backend}: the listener and the newcomer");
        assert_eq!(round_trip(&mut e, b"still"), b"still");
        drop(e);
        lt.stop().unwrap();
    }
);

// ---------------------------------------------------------------------------------
// Fairness
// ---------------------------------------------------------------------------------

per_backend!(
    fn heavy_client_does_not_starve_others(backend: Backend) {
        let (lt, addr) = tcp_echo(backend);
        let heavy = connect(addr);
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let mut w = heavy.try_clone().unwrap();
        let (st, sn) = (stop.clone(), sent.clone());
        let writer = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut n = 0u64;
            while !st.load(Ordering::Relaxed) && Instant::now() < deadline {
                w.write_all(pattern_at(n, CHUNK)).expect("heavy write");
                n += CHUNK as u64;
                sn.store(n, Ordering::Relaxed);
            }
            w.shutdown(Shutdown::Write).unwrap();
            n
        });
        let mut r = heavy;
        let reader = thread::spawn(move || check_pattern_until_eof(&mut r));
        eventually(DEADLINE, "heavy stream flowing", || {
            (sent.load(Ordering::Relaxed) >= 8 << 20).then_some(())
        });
        let mut light = connect(addr);
        let mut worst = Duration::ZERO;
        for i in 0..20 {
            let msg = format!("request {i}\n");
            let t = Instant::now();
            assert_eq!(round_trip(&mut light, msg.as_bytes()), msg.as_bytes());
            worst = worst.max(t.elapsed());
        }
        let during = sent.load(Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        let total = writer.join().unwrap();
        let (got, end) = reader.join().unwrap();
        end.unwrap_or_else(|e| panic!("{backend}: heavy stream: {e}"));
        assert_eq!(got, total, "{backend}: the heavy client got its whole echo");
        eprintln!(
            "{backend}: worst light round trip {worst:?} while {} MiB streamed",
            during >> 20
        );
        assert!(
            worst < Duration::from_secs(2),
            "{backend}: a light request waited {worst:?} behind a heavy client"
        );
        lt.stop().unwrap();
    }

    /// More pending connections than one accept round takes (the listener's budget):
    /// an edge-triggered listener must come back for the rest without a new edge.
    fn accept_burst(backend: Backend) {
        const N: usize = 150;
        let (lt, addr) = tcp_echo(backend);
        let mut clients: Vec<TcpStream> = (0..N).map(|_| connect(addr)).collect();
        for (i, c) in clients.iter_mut().enumerate() {
            c.write_all(format!("{i:05}").as_bytes()).unwrap();
        }
        for (i, c) in clients.iter_mut().enumerate() {
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf)
                .unwrap_or_else(|e| panic!("{backend}: client {i} of a burst of {N}: {e}"));
            assert_eq!(&buf, format!("{i:05}").as_bytes());
        }
        assert_eq!(handlers(&lt), N + 1, "{backend}");
        drop(clients);
        lt.stop().unwrap();
    }
);

// ---------------------------------------------------------------------------------
// Descriptor exhaustion (in a child process with a low RLIMIT_NOFILE)
// ---------------------------------------------------------------------------------

per_backend!(
    fn fd_exhaustion_does_not_spin(backend: Backend) {
        let mut srv = ServerProcess::echo_server(backend, &["--listen", "127.0.0.1:0"], Some(64));
        let addr = srv.tcp_addr();
        let mut first = connect(addr);
        assert_eq!(round_trip(&mut first, b"first"), b"first");
        let cpu_before = srv.cpu_time();
        let flood_start = Instant::now();
        // More connections than the server has descriptors; hold them all.
        let mut flood = Vec::new();
        for _ in 0..120 {
            if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                flood.push(s);
            }
        }
        assert!(
            flood.len() >= 80,
            "{backend}: only {} connects",
            flood.len()
        );
        let log = eventually(
            Duration::from_secs(5),
            "a warning about descriptors",
            || {
                let log = srv.stderr();
                log.lines()
                    .any(|l| l.contains("WARN") && l.contains("file descriptors"))
                    .then_some(log)
            },
        );
        // Held for a second: the server must idle, not spin on the readable listener.
        thread::sleep(Duration::from_secs(1).saturating_sub(flood_start.elapsed()));
        thread::sleep(Duration::from_millis(500));
        let cpu = srv.cpu_time() - cpu_before;
        eprintln!(
            "{backend}: {cpu:?} CPU over {:?} of exhaustion",
            flood_start.elapsed()
        );
        assert!(
            cpu < Duration::from_millis(500),
            "{backend}: the server used {cpu:?} of CPU while out of descriptors; log:\n{log}"
        );
        // Connections accepted before the limit are still served, and once the flood
        // leaves, new clients are served again.
        served_after_flood(&mut first, flood, addr, backend.name());
    }
);

// ---------------------------------------------------------------------------------
// Stale ids
// ---------------------------------------------------------------------------------

per_backend!(
    fn stale_handler_id(backend: Backend) {
        let ids: Ids = Arc::default();
        let ids2 = ids.clone();
        let (lt, addr) = spawn_loop(backend, Config::default(), move |r| {
            recording_listener(r, ListenConfig::default(), ids2, || {
                Box::new(Echo::default())
            })
        });
        let mut c1 = connect(addr);
        let id1 = wait_ids(&ids, 1)[0];
        assert!(
            lt.call(move |ctx| write_to(ctx, id1, b"pushed\n")),
            "live id"
        );
        let mut got = [0u8; 7];
        c1.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pushed\n");
        drop(c1);
        eventually(DEADLINE, "first connection gone", || {
            (handlers(&lt) == 1).then_some(())
        });
        assert!(
            !lt.call(move |ctx| write_to(ctx, id1, b"x")),
            "{backend}: write_to a closed connection's id"
        );
        // A new connection (likely in the same slot): the old id still reaches nothing.
        let mut c2 = connect(addr);
        let id2 = wait_ids(&ids, 2)[1];
        assert_ne!(id1, id2, "{backend}: a reused slot gets a new id");
        let (stale_write, stale_notify, stale_interest, stale_set) = lt.call(move |ctx| {
            (
                write_to(ctx, id1, b"stale\n"),
                notify(ctx, id1, Box::new(())),
                ctx.interest(id1),
                ctx.set_interest(id1, Some(Interest::READABLE)).unwrap(),
            )
        });
        assert!(!stale_write && !stale_notify && !stale_set, "{backend}");
        assert_eq!(stale_interest, None);
        assert!(lt.call(move |ctx| write_to(ctx, id2, b"fresh\n")));
        // c2 gets "fresh\n" and then its own echo, nothing stale in between.
        assert_eq!(round_trip(&mut c2, b"ping"), b"fres", "{backend}");
        let mut rest = [0u8; 6];
        c2.read_exact(&mut rest).unwrap();
        assert_eq!(&rest, b"h\nping");
        drop(c2);
        lt.stop().unwrap();
    }
);

// ---------------------------------------------------------------------------------
// Writes after close
// ---------------------------------------------------------------------------------

/// Writes, closes, then writes again from `connection_made`; records what the
/// second write and `is_closing` said.
struct WriteAfterClose(Arc<Mutex<Option<(bool, bool)>>>);

impl Protocol for WriteAfterClose {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        assert!(conn.write(b"before"));
        conn.close(); // output pending: the close flushes first
        let late = conn.write(b"after");
        *self.0.lock().unwrap() = Some((late, conn.is_closing()));
        conn.close(); // closing twice is harmless
    }
    fn data_received(&mut self, _: &mut Conn<'_, '_>, _: &[u8]) {}
}

per_backend!(
    fn write_after_close_is_dropped(backend: Backend) {
        let seen: Arc<Mutex<Option<(bool, bool)>>> = Arc::default();
        let seen2 = seen.clone();
        let (lt, addr) = spawn_loop(backend, Config::default(), move |r| {
            r.listen_tcp("127.0.0.1:0", move |_: &_| {
                Some(Box::new(WriteAfterClose(seen2.clone())) as Box<dyn Protocol>)
            })
            .unwrap()
            .1
        });
        let mut c = connect(addr);
        let got = read_to_eof(&mut c).unwrap();
        let (late, closing) = seen.lock().unwrap().expect("connection_made ran");
        assert!(closing, "{backend}: is_closing() after close()");
        assert!(!late, "{backend}: write() after close() was accepted");
        assert_eq!(
            got, b"before",
            "{backend}: bytes written after close() were sent"
        );
        lt.stop().unwrap();
    }
);

/// Sets a long timer when connected and never cancels it.
struct ForgetfulTimer(Arc<AtomicUsize>);

impl Protocol for ForgetfulTimer {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        conn.set_timer(Duration::from_secs(3600));
    }

    fn data_received(&mut self, _: &mut Conn<'_, '_>, _: &[u8]) {}

    fn connection_lost(&mut self, _: &mut Conn<'_, '_>, _: Option<&std::io::Error>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

per_backend!(
    /// A connection's timers go with it, even those its protocol never cancels: many
    /// short connections with long timers must not grow the timer heap.
    fn timers_go_with_their_handler(backend: Backend) {
        let lost = Arc::new(AtomicUsize::new(0));
        let lost2 = lost.clone();
        let (lt, addr) = spawn_loop(backend, Config::default(), move |r| {
            r.listen_tcp("127.0.0.1:0", move |_: &_| {
                Some(Box::new(ForgetfulTimer(lost2.clone())) as Box<dyn Protocol>)
            })
            .unwrap()
            .1
        });
        const N: usize = 50;
        for _ in 0..N {
            drop(connect(addr));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while lost.load(Ordering::SeqCst) < N {
            assert!(
                Instant::now() < deadline,
                "{backend}: connections not closed"
            );
            thread::sleep(Duration::from_millis(5));
        }
        let pending = lt.call(|ctx| ctx.pending_timers());
        assert_eq!(
            pending, 0,
            "{backend}: timers of closed connections pending"
        );
        lt.stop().unwrap();
    }
);

// ---------------------------------------------------------------------------------
// A panicking handler
// ---------------------------------------------------------------------------------

struct Boom;

impl Protocol for Boom {
    fn data_received(&mut self, _: &mut Conn<'_, '_>, _: &[u8]) {
        panic!("protocol bug (expected by the test)");
    }
}

per_backend!(
    /// Under `PanicPolicy::Propagate` a panic in a protocol unwinds out of `run`; the
    /// reactor must stay usable: the
    /// panicking connection is gone (not left registered with no handler, which made
    /// level-triggered backends spin and refused a new connection reusing its fd), and
    /// the next connection is served.
    fn propagated_handler_panic_leaves_reactor_usable(backend: Backend) {
        init_logging();
        let mut r = Reactor::with_config(backend, propagate()).unwrap();
        let first = Rc::new(Cell::new(true));
        let (_, addr) = r
            .listen_tcp("127.0.0.1:0", move |_: &_| {
                let p: Box<dyn Protocol> = if first.replace(false) {
                    Box::new(Boom)
                } else {
                    Box::new(Echo::default())
                };
                Some(p)
            })
            .unwrap();
        let mut c1 = connect(addr);
        c1.write_all(b"x").unwrap();
        let wd = Watchdog::arm(r.handle(), Duration::from_secs(5));
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.run()));
        assert!(
            res.is_err(),
            "{backend}: the protocol's panic did not unwind"
        );
        assert_eq!(
            r.handler_count(),
            1,
            "{backend}: the panicking connection is still registered"
        );
        // Its socket was closed (EOF or reset; a timeout is a failure).
        expect_closed(&mut c1, &format!("{backend}: the panicking connection"));
        // A new connection (likely on the same descriptor number) is served.
        let mut c2 = connect(addr);
        c2.write_all(b"ping").unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = thread::spawn(move || {
            let mut got = [0u8; 4];
            let res = c2.read_exact(&mut got).map(|_| got);
            let _ = tx.send(());
            res
        });
        let start = Instant::now();
        while rx.try_recv().is_err() && start.elapsed() < DEADLINE {
            r.run_once(Some(Duration::from_millis(20))).unwrap();
        }
        let got = reader.join().unwrap();
        assert_eq!(
            got.ok().as_ref().map(|g| &g[..]),
            Some(&b"ping"[..]),
            "{backend}: the next connection was not served"
        );
        let _ = wd.disarm();
        assert_eq!(
            r.panics_contained(),
            0,
            "{backend}: a propagated panic counted"
        );
    }
);

fn propagate() -> Config {
    Config {
        panic_policy: PanicPolicy::Propagate,
        ..Config::default()
    }
}

per_backend!(
    /// Under `PanicPolicy::Propagate` a panicking timer closure and a panicking remote
    /// call leave `run()` too.
    fn propagated_closure_panics_leave_run(backend: Backend) {
        init_logging();
        for remote in [false, true] {
            let mut r = Reactor::with_config(backend, propagate()).unwrap();
            if remote {
                r.handle()
                    .call(|_| panic!("remote call bug (expected by the test)"))
                    .unwrap();
            } else {
                r.call_later(Duration::from_millis(1), |_| {
                    panic!("timer closure bug (expected by the test)")
                });
            }
            let wd = Watchdog::arm(r.handle(), Duration::from_secs(5));
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.run()));
            assert!(
                !wd.disarm(),
                "{backend} (remote: {remote}): the watchdog stopped the loop"
            );
            assert!(
                res.is_err(),
                "{backend} (remote: {remote}): the panic did not leave run()"
            );
            // Still usable.
            r.call_later(Duration::from_millis(1), |ctx| ctx.stop());
            r.run().unwrap();
        }
    }
);

type LostLog = Arc<Mutex<Vec<Option<ErrorKind>>>>;

/// Echoes; panics on `boom` (in `data_received`), and optionally again in the
/// `connection_lost` that follows; records what `connection_lost` was told.
struct BoomOn {
    lost: LostLog,
    panic_again: bool,
}

impl Protocol for BoomOn {
    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
        if data.windows(4).any(|w| w == b"boom") {
            panic!("protocol bug on boom (expected by the test)");
        }
        conn.write(data);
    }
    fn event(&mut self, _: &mut Conn<'_, '_>, _: Box<dyn Any>) {
        panic!("protocol bug in event (expected by the test)");
    }
    fn connection_lost(&mut self, _: &mut Conn<'_, '_>, reason: Option<&std::io::Error>) {
        self.lost.lock().unwrap().push(reason.map(|e| e.kind()));
        if self.panic_again && reason.is_some() {
            panic!("cleanup bug (expected by the test)");
        }
    }
}

fn panics(lt: &LoopThread) -> u64 {
    lt.call(|ctx| ctx.panics_contained())
}

per_backend!(
    /// Under the default `PanicPolicy::Contain` a panicking protocol costs its own
    /// connection and nothing else: it is closed, its protocol hears `connection_lost`
    /// with an error (so it can clean shared state), the counter goes up, a client
    /// connected before is still served and so is a new one. A second panic in that
    /// `connection_lost` is contained too.
    fn contained_panic_costs_one_connection(backend: Backend) {
        for panic_again in [false, true] {
            let what = format!("{backend} (panic in connection_lost too: {panic_again})");
            let lost: LostLog = Arc::default();
            let lost2 = lost.clone();
            let (lt, addr) = spawn_loop(backend, Config::default(), move |r| {
                r.listen_tcp("127.0.0.1:0", move |_: &_| {
                    Some(Box::new(BoomOn {
                        lost: lost2.clone(),
                        panic_again,
                    }) as Box<dyn Protocol>)
                })
                .unwrap()
                .1
            });
            let mut good = connect(addr);
            assert_eq!(round_trip(&mut good, b"hello"), b"hello", "{what}");
            let mut bad = connect(addr);
            assert_eq!(round_trip(&mut bad, b"hi"), b"hi", "{what}");
            assert_eq!(handlers(&lt), 3, "{what}");
            bad.write_all(b"boom").unwrap();
            expect_closed(&mut bad, &what);
            let want = if panic_again { 2 } else { 1 };
            eventually(DEADLINE, "panic counted", || {
                (panics(&lt) == want).then_some(())
            });
            assert_eq!(
                *lost.lock().unwrap(),
                vec![Some(ErrorKind::Other)],
                "{what}: connection_lost after the panic"
            );
            assert_eq!(
                handlers(&lt),
                2,
                "{what}: the panicking connection is still registered"
            );
            assert_eq!(
                round_trip(&mut good, b"still there"),
                b"still there",
                "{what}"
            );
            let mut next = connect(addr);
            assert_eq!(round_trip(&mut next, b"new"), b"new", "{what}");
            assert_eq!(panics(&lt), want, "{what}");
            lt.stop().unwrap();
        }
    }

    /// A panic in a handler reached from elsewhere (`notify` -> `with_handler`) costs
    /// that handler only; the caller sees it as gone.
    fn contained_panic_in_reached_handler(backend: Backend) {
        let ids: Ids = Arc::default();
        let lost: LostLog = Arc::default();
        let (ids2, lost2) = (ids.clone(), lost.clone());
        let (lt, addr) = spawn_loop(backend, Config::default(), move |r| {
            recording_listener(r, ListenConfig::default(), ids2, move || {
                Box::new(BoomOn {
                    lost: lost2.clone(),
                    panic_again: false,
                })
            })
        });
        let mut a = connect(addr);
        assert_eq!(round_trip(&mut a, b"a"), b"a");
        let mut b = connect(addr);
        assert_eq!(round_trip(&mut b, b"b"), b"b");
        let [_, idb] = wait_ids(&ids, 2)[..] else {
            panic!("two ids")
        };
        let delivered = lt.call(move |ctx| notify(ctx, idb, Box::new(())));
        assert!(
            !delivered,
            "{backend}: a panicking notify reported delivered"
        );
        expect_closed(&mut b, &format!("{backend}: notified connection"));
        assert_eq!(panics(&lt), 1, "{backend}");
        assert_eq!(
            *lost.lock().unwrap(),
            vec![Some(ErrorKind::Other)],
            "{backend}"
        );
        assert_eq!(round_trip(&mut a, b"still"), b"still", "{backend}");
        assert_eq!(handlers(&lt), 2, "{backend}");
        lt.stop().unwrap();
    }
);

/// Echoes datagrams; panics on `boom`.
struct UdpBoom;

impl readyloop::net::DatagramProtocol for UdpBoom {
    fn datagram_received(
        &mut self,
        dg: &mut readyloop::net::Datagrams<'_, '_>,
        data: &[u8],
        from: SocketAddr,
    ) {
        if data == b"boom" {
            panic!("datagram protocol bug (expected by the test)");
        }
        dg.send_to(data, from);
    }
}

per_backend!(
    /// A datagram protocol's panic costs that datagram: the socket (every peer's
    /// service) stays, the next datagram is answered, the panic is counted.
    fn contained_panic_costs_one_datagram(backend: Backend) {
        let (lt, addr) = spawn_loop(backend, Config::default(), |r| {
            r.bind_udp("127.0.0.1:0", UdpBoom).unwrap().1
        });
        let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 64];
        c.send_to(b"boom", addr).unwrap();
        eventually(DEADLINE, "datagram panic counted", || {
            (panics(&lt) == 1).then_some(())
        });
        c.send_to(b"ping", addr).unwrap();
        let (n, _) = c.recv_from(&mut buf).expect("the socket still answers");
        assert_eq!(&buf[..n], b"ping", "{backend}");
        assert_eq!(handlers(&lt), 1, "{backend}: the UDP socket is gone");
        assert_eq!(panics(&lt), 1, "{backend}");
        lt.stop().unwrap();
    }

    /// A panicking timer closure and remote call are lost alone; the loop goes on.
    fn contained_closure_panics(backend: Backend) {
        let mut r = reactor(backend);
        r.call_later(Duration::from_millis(1), |_| {
            panic!("timer closure bug (expected by the test)")
        });
        r.handle()
            .call(|_| panic!("remote call bug (expected by the test)"))
            .unwrap();
        let ran = Rc::new(Cell::new(false));
        let ran2 = ran.clone();
        r.call_later(Duration::from_millis(30), move |ctx| {
            ran2.set(true);
            ctx.stop();
        });
        let wd = Watchdog::arm(r.handle(), Duration::from_secs(5));
        r.run().unwrap();
        assert!(!wd.disarm(), "{backend}: the watchdog had to stop the loop");
        assert!(ran.get(), "{backend}: the later timer did not run");
        assert_eq!(r.panics_contained(), 2, "{backend}");
    }
);

// ---------------------------------------------------------------------------------
// Output that never left
// ---------------------------------------------------------------------------------

type Lost = Arc<Mutex<Option<Option<ErrorKind>>>>;

/// Queues more than a non-reading peer's socket takes, optionally closes, and
/// records what `connection_lost` was told.
struct Unsent {
    close: bool,
    lost: Lost,
}

impl Protocol for Unsent {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        conn.write(&vec![b'x'; 16 << 20]);
        if self.close {
            conn.close();
        }
    }
    fn data_received(&mut self, _: &mut Conn<'_, '_>, _: &[u8]) {}
    fn connection_lost(&mut self, _: &mut Conn<'_, '_>, reason: Option<&std::io::Error>) {
        *self.lost.lock().unwrap() = Some(reason.map(|e| e.kind()));
    }
    fn shutdown(&mut self, _: &mut Conn<'_, '_>) {}
}

per_backend!(
    /// `connection_lost(None)` means a clean close; a connection dropped with output
    /// still queued (the close timed out, or the loop stopped) must get an error.
    fn unsent_output_is_not_a_clean_close(backend: Backend) {
        for close in [true, false] {
            let lost: Lost = Arc::default();
            let lost2 = lost.clone();
            let (mut lt, addr) = spawn_loop(backend, Config::default(), move |r| {
                let cfg = ListenConfig {
                    stream: StreamConfig {
                        close_timeout: Duration::from_millis(100),
                        ..StreamConfig::default()
                    },
                    ..ListenConfig::default()
                };
                r.listen_tcp_with(
                    "127.0.0.1:0",
                    move |_: &_| {
                        Some(Box::new(Unsent {
                            close,
                            lost: lost2.clone(),
                        }) as Box<dyn Protocol>)
                    },
                    cfg,
                )
                .unwrap()
                .1
            });
            let _never_reads = connect(addr);
            eventually(DEADLINE, "connection registered", || {
                (handlers(&lt) == 2).then_some(())
            });
            if !close {
                lt.handle.stop().unwrap();
                lt.join(DEADLINE).unwrap();
            }
            let reason = eventually(DEADLINE, "connection_lost", || *lost.lock().unwrap());
            let want = if close {
                Some(ErrorKind::TimedOut)
            } else {
                Some(ErrorKind::Other)
            };
            assert_eq!(
                reason, want,
                "{backend} (close: {close}): connection dropped with output unsent"
            );
            if close {
                lt.stop().unwrap();
            }
        }
    }
);
