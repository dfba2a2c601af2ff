//! The selector conformance suite: one set of cases, written once, run against every
//! backend (`select`, `poll`, `epoll`, `epoll-et`, `mio`, `polling`).
//!
//! Each case takes a [`Backend`] and reads the selector's [`Capabilities`] to decide
//! what it may demand (error and hang-up bits, trigger mode, descriptor limit); no case
//! matches on a backend's name. Each case is written inside `per_backend!` (from
//! `tests/support`), which adds one test per backend, so a failure reads as
//! `trigger_mode_unix::epoll_et`.
//!
//! Rules the cases follow:
//! * real sockets on loopback (`127.0.0.1:0`) and `UnixStream::pair`;
//! * every wait has a timeout, and every "eventually" loop has a deadline of a few
//!   seconds, so a broken backend fails instead of hanging;
//! * spurious wake-ups are expected: "nothing reported" means "not reported for this
//!   key", and no case counts events where the kernel may coalesce them;
//! * timing assertions are only "returned no earlier than asked" and "within a
//!   generous bound".
//!
//! Tests that open many descriptors take [`FDS`] exclusively, so the ones that need
//! low descriptor numbers (select's `FD_SETSIZE`) or an exact fd reuse get them.

#[macro_use]
mod support;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use readyloop::selector::{
    Backend, Capabilities, Interest, KeyedSelector, Readiness, Token, Trigger,
};
use readyloop::sys;

/// How long any "eventually" loop may take before the case fails.
const DEADLINE: Duration = Duration::from_secs(5);
/// One wait inside an "eventually" loop.
const TICK: Duration = Duration::from_millis(100);
/// How long a "nothing more is reported" check waits.
const QUIET: Duration = Duration::from_millis(150);

/// Shared by every case; taken exclusively by the cases that open hundreds of
/// descriptors or need a freed descriptor number to be reused.
static FDS: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    FDS.read().unwrap_or_else(PoisonError::into_inner)
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    FDS.write().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

fn open<T>(backend: Backend) -> KeyedSelector<T> {
    let sel = KeyedSelector::new(backend).unwrap_or_else(|e| panic!("open {backend}: {e}"));
    assert_eq!(
        sel.backend(),
        backend,
        "backend() must name what was opened"
    );
    assert_eq!(
        sel.capabilities().trigger,
        backend.trigger(),
        "{backend}: opened in its own trigger mode"
    );
    sel
}

/// A connected TCP pair on loopback: (client, accepted server side).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// A TCP pair whose accepted side advertises a small receive window (the listener's
/// `SO_RCVBUF` is set before the handshake, so the window is small from the start).
fn small_tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    sys::socket::set_buffer_sizes(l.as_fd(), Some(4096), None).unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

fn unix_pair() -> (UnixStream, UnixStream) {
    UnixStream::pair().unwrap()
}

fn nonblocking(fd: &impl AsFd) {
    sys::set_nonblocking(fd.as_fd(), true).unwrap();
}

/// One wait: the `(token, readiness)` pairs of live keys.
fn wait_once<T>(sel: &mut KeyedSelector<T>, timeout: Duration) -> Vec<(Token, Readiness)> {
    let mut out = Vec::new();
    sel.select_into(Some(timeout), &mut out)
        .unwrap_or_else(|e| panic!("{}: select: {e}", sel.backend()));
    let caps = sel.capabilities();
    for (t, r) in &out {
        check_caps(sel.backend(), caps, *t, *r);
    }
    out
}

/// The union of what one wait reported for `token` (`EMPTY` if nothing).
fn reported<T>(sel: &mut KeyedSelector<T>, token: Token, timeout: Duration) -> Readiness {
    wait_once(sel, timeout)
        .into_iter()
        .filter(|(t, _)| *t == token)
        .fold(Readiness::EMPTY, |acc, (_, r)| acc.merge(r))
}

/// A backend never sets a bit its capabilities say it does not report.
fn check_caps(backend: Backend, caps: Capabilities, token: Token, r: Readiness) {
    if !caps.reports_error {
        assert!(
            !r.is_error(),
            "{backend}: {token:?} {r:?}, but reports_error is false"
        );
    }
    if !caps.reports_hangup {
        assert!(
            !r.is_hangup(),
            "{backend}: {token:?} {r:?}, but reports_hangup is false"
        );
    }
    if !caps.reports_hangup && !caps.reports_read_closed {
        assert!(
            !r.is_read_closed(),
            "{backend}: {token:?} {r:?}, but neither hangup nor read_closed is reported"
        );
    }
}

/// Waits (up to [`DEADLINE`]) until the readiness reported for `token`, merged over
/// the waits so far, satisfies `pred`. Merging lets a state that the kernel builds in
/// two steps (an RST sets the error, then the shutdown) show up on edge-triggered
/// backends, which report each step once.
fn wait_until<T>(
    sel: &mut KeyedSelector<T>,
    token: Token,
    what: &str,
    pred: impl Fn(Readiness) -> bool,
) -> Readiness {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Readiness::EMPTY;
    loop {
        seen = seen.merge(reported(sel, token, TICK));
        if pred(seen) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{}: timed out after {DEADLINE:?} waiting for {what}; saw {seen:?}",
            sel.backend()
        );
    }
}

/// Checks that one wait of [`QUIET`] reports nothing for `token` that `bad` matches.
fn assert_quiet<T>(
    sel: &mut KeyedSelector<T>,
    token: Token,
    what: &str,
    bad: impl Fn(Readiness) -> bool,
) {
    let r = reported(sel, token, QUIET);
    assert!(!bad(r), "{}: expected {what}, but got {r:?}", sel.backend());
}

/// Reads until `WouldBlock` (or EOF); returns the bytes read. The reader must be
/// non-blocking.
fn drain(r: &mut impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return out,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("drain: {e}"),
        }
    }
}

/// Writes until `WouldBlock`; returns how many bytes went in. Non-blocking writer.
fn fill(w: &mut impl Write) -> usize {
    let chunk = [0x5au8; 1024];
    let mut total = 0;
    loop {
        match w.write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return total,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("fill: {e}"),
        }
    }
}

/// Fills `w` until the send path is stably full: a fill after a pause takes nothing
/// (on TCP, data in flight is acknowledged after the first `WouldBlock` and frees
/// room again, until the peer's window is closed).
fn fill_until_stable(w: &mut impl Write) -> usize {
    let deadline = Instant::now() + DEADLINE;
    let mut total = fill(w);
    loop {
        thread::sleep(Duration::from_millis(20));
        let more = fill(w);
        if more == 0 {
            return total;
        }
        total += more;
        assert!(
            Instant::now() < deadline,
            "send buffer never filled up ({total} bytes written)"
        );
    }
}

fn raise_nofile(want: u64) {
    let (soft, hard) = sys::nofile_limit().unwrap();
    if soft < want {
        sys::set_nofile_limit(want).unwrap();
    }
    let (soft, _) = sys::nofile_limit().unwrap();
    assert!(
        soft >= want,
        "this test needs RLIMIT_NOFILE >= {want}, the hard limit is {hard}"
    );
}

// ---------------------------------------------------------------------------------
// 1. Readable after the peer writes
// ---------------------------------------------------------------------------------

fn readable_after_write<S: Read + Write + AsRawFd + AsFd>(
    backend: Backend,
    (mut a, mut b): (S, S),
) {
    let mut sel = open::<&str>(backend);
    let fd = a.as_raw_fd();
    let token = sel.register(fd, Interest::READABLE, "a").unwrap().token;

    // Nothing to read yet: a zero timeout returns nothing at all (the only key is
    // quiet and there is no waker).
    let start = Instant::now();
    let ready: Vec<_> = sel
        .select(Some(Duration::ZERO))
        .unwrap()
        .map(|(k, r)| (k.fd, r))
        .collect();
    assert!(
        ready.is_empty(),
        "{backend}: reported {ready:?} before any write"
    );
    assert!(start.elapsed() < Duration::from_secs(1));

    b.write_all(b"ping").unwrap();
    let r = wait_until(&mut sel, token, "readable", |r| r.is_readable());
    assert!(
        !r.is_writable(),
        "{backend}: READABLE-only key reported {r:?}"
    );
    assert!(
        !r.is_error() && !r.is_hangup() && !r.is_read_closed(),
        "{backend}: {r:?}"
    );

    // The iterator form hands back the key with its data.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let hit: Vec<_> = sel
            .select(Some(TICK))
            .unwrap()
            .map(|(k, r)| (k.fd, k.data, r.is_readable()))
            .collect();
        if !hit.is_empty() {
            assert_eq!(hit, vec![(fd, "a", true)], "{backend}");
            break;
        }
        // Edge-triggered backends reported the arrival once already.
        if sel.capabilities().trigger == Trigger::Edge {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{backend}: level key stopped being reported"
        );
    }

    let mut buf = [0u8; 4];
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    sel.unregister(fd).unwrap();
}

per_backend!(
    fn readable_after_peer_writes_unix(backend: Backend) {
        let _g = shared();
        readable_after_write(backend, unix_pair());
    }

    fn readable_after_peer_writes_tcp(backend: Backend) {
        let _g = shared();
        readable_after_write(backend, tcp_pair());
    }

    /// A listening socket is readable when a connection is waiting to be accepted.
    fn listener_readable_on_pending_connection(backend: Backend) {
        let _g = shared();
        let mut sel = open::<()>(backend);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        nonblocking(&l);
        let token = sel
            .register(l.as_raw_fd(), Interest::READABLE, ())
            .unwrap()
            .token;
        assert_quiet(&mut sel, token, "no pending connection", |r| !r.is_empty());
        let _c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        wait_until(&mut sel, token, "a pending connection", |r| r.is_readable());
        let (s, _) = l.accept().expect("readable listener must accept");
        drop(s);
        assert_eq!(l.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
        sel.unregister(l.as_raw_fd()).unwrap();
    }
);

// ---------------------------------------------------------------------------------
// 2. Writable when there is room, not when the send buffer is full
// ---------------------------------------------------------------------------------

fn writability<S: Read + Write + AsRawFd + AsFd>(backend: Backend, (mut w, mut r): (S, S)) {
    let mut sel = open::<()>(backend);
    sys::socket::set_buffer_sizes(w.as_fd(), None, Some(4096)).unwrap();
    nonblocking(&w);
    nonblocking(&r);
    let fd = w.as_raw_fd();
    let token = sel.register(fd, Interest::WRITABLE, ()).unwrap().token;

    let ready = wait_until(&mut sel, token, "writable (fresh socket)", |x| {
        x.is_writable()
    });
    assert!(
        !ready.is_readable(),
        "{backend}: WRITABLE-only key reported {ready:?}"
    );

    // Fill it. On TCP the kernel keeps freeing a little room for a while after the
    // first `WouldBlock` (acknowledgements, the receiver collapsing its queue), so a
    // report of writability is checked against the socket: it must really take data.
    // The case passes once a wait sees the full buffer as not writable, twice in a row.
    let mut written = fill_until_stable(&mut w);
    assert!(written > 0, "{backend}: a fresh socket must take some data");
    let deadline = Instant::now() + DEADLINE;
    let mut quiet_waits = 0;
    while quiet_waits < 2 {
        let r = reported(&mut sel, token, QUIET);
        if !r.is_writable() {
            quiet_waits += 1;
            continue;
        }
        quiet_waits = 0;
        let more = fill(&mut w);
        assert!(
            more > 0,
            "{backend}: reported {r:?} but the send buffer is full ({written} bytes in)"
        );
        written += more + fill_until_stable(&mut w);
        assert!(
            Instant::now() < deadline,
            "{backend}: still writable with the peer not reading ({written} bytes in)"
        );
    }

    // The peer drains: room appears, and is reported (as a new edge on edge backends).
    let deadline = Instant::now() + DEADLINE;
    let mut read = 0;
    loop {
        read += drain(&mut r).len();
        if reported(&mut sel, token, TICK).is_writable() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{backend}: not writable after the peer read {read} of {written} bytes"
        );
    }
    assert!(read > 0);
    sel.unregister(fd).unwrap();
}

per_backend!(
    fn writable_until_send_buffer_full_tcp(backend: Backend) {
        let _g = shared();
        writability(backend, small_tcp_pair());
    }

    fn writable_until_send_buffer_full_unix(backend: Backend) {
        let _g = shared();
        writability(backend, unix_pair());
    }
);

// ---------------------------------------------------------------------------------
// 3. Peer close, half-close, full close
// ---------------------------------------------------------------------------------

per_backend!(
    /// Unix stream: when the peer closes, the kernel sets both shutdown bits on our side
    /// at once, so poll/epoll say HUP (not just RDHUP).
    fn peer_close_unix(backend: Backend) {
        let _g = shared();
        let mut sel = open::<()>(backend);
        let caps = sel.capabilities();
        let (mut a, b) = unix_pair();
        nonblocking(&a);
        let token = sel
            .register(a.as_raw_fd(), Interest::READABLE, ())
            .unwrap()
            .token;
        assert_quiet(&mut sel, token, "nothing before the close", |r| {
            !r.is_empty()
        });
        drop(b);
        let r = wait_until(&mut sel, token, "readable after peer close", |r| {
            r.is_readable()
                && (!(caps.reports_hangup || caps.reports_read_closed) || r.is_read_closed())
                && (!caps.reports_hangup || r.is_hangup())
        });
        assert!(
            !r.is_writable(),
            "{backend}: READABLE-only key reported {r:?}"
        );
        let mut buf = [0u8; 8];
        assert_eq!(a.read(&mut buf).unwrap(), 0, "EOF after the peer closed");
        sel.unregister(a.as_raw_fd()).unwrap();
    }

    /// TCP: the peer closes (FIN). We may still write, so this is read-closed, not a
    /// hang-up.
    fn peer_close_tcp(backend: Backend) {
        let _g = shared();
        let mut sel = open::<()>(backend);
        let caps = sel.capabilities();
        let (mut a, b) = tcp_pair();
        nonblocking(&a);
        let token = sel
            .register(a.as_raw_fd(), Interest::READABLE, ())
            .unwrap()
            .token;
        drop(b);
        let r = wait_until(&mut sel, token, "readable after peer close", |r| {
            r.is_readable() && (!caps.reports_read_closed || r.is_read_closed())
        });
        assert!(
            !r.is_hangup(),
            "{backend}: a peer's FIN is not a hang-up: {r:?}"
        );
        let mut buf = [0u8; 8];
        assert_eq!(a.read(&mut buf).unwrap(), 0, "EOF after the peer closed");
        sel.unregister(a.as_raw_fd()).unwrap();
    }

    /// The peer shuts down its write side after sending a tail: readable, read-closed
    /// (a hint), the tail is still readable, then EOF.
    fn peer_shutdown_write_tcp(backend: Backend) {
        let _g = shared();
        let mut sel = open::<()>(backend);
        let caps = sel.capabilities();
        let (mut a, mut b) = tcp_pair();
        nonblocking(&a);
        let token = sel
            .register(a.as_raw_fd(), Interest::READABLE, ())
            .unwrap()
            .token;
        b.write_all(b"tail").unwrap();
        b.shutdown(Shutdown::Write).unwrap();
        let r = wait_until(
            &mut sel,
            token,
            "readable and read-closed after shutdown(Write)",
            |r| r.is_readable() && (!caps.reports_read_closed || r.is_read_closed()),
        );
        assert!(
            !r.is_hangup(),
            "{backend}: half-close is not a hang-up: {r:?}"
        );
        assert!(
            !r.is_error(),
            "{backend}: half-close is not an error: {r:?}"
        );
        // Data sent before the shutdown is still there, then EOF.
        let mut got = Vec::new();
        let deadline = Instant::now() + DEADLINE;
        let mut buf = [0u8; 16];
        loop {
            match a.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline);
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("{backend}: read: {e}"),
            }
        }
        assert_eq!(got, b"tail");
        // Our side can still write: the peer reads it.
        a.write_all(b"reply").unwrap();
        let mut reply = [0u8; 5];
        b.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"reply");
        sel.unregister(a.as_raw_fd()).unwrap();
    }

    /// Both directions closed (we shut down writing, the peer closes): a hang-up.
    fn full_close_tcp_is_hangup(backend: Backend) {
        let _g = shared();
        let mut sel = open::<()>(backend);
        let caps = sel.capabilities();
        let (mut a, b) = tcp_pair();
        nonblocking(&a);
        let token = sel
            .register(a.as_raw_fd(), Interest::READABLE, ())
            .unwrap()
            .token;
        a.shutdown(Shutdown::Write).unwrap();
        // Our own half-close makes nothing readable.
        assert_quiet(
            &mut sel,
            token,
            "nothing after our own shutdown(Write)",
            |r| r.is_readable(),
        );
        b.shutdown(Shutdown::Write).unwrap();
        drop(b);
        let r = wait_until(&mut sel, token, "hang-up after both sides closed", |r| {
            r.is_readable()
                && (!caps.reports_hangup || (r.is_hangup() && r.is_read_closed()))
                && (!caps.reports_read_closed || r.is_read_closed())
        });
        assert!(
            !r.is_writable(),
            "{backend}: READABLE-only key reported {r:?}"
        );
        let mut buf = [0u8; 8];
        assert_eq!(a.read(&mut buf).unwrap(), 0);
        sel.unregister(a.as_raw_fd()).unwrap();
    }
);

// ---------------------------------------------------------------------------------
// 4. Reset
// ---------------------------------------------------------------------------------

per_backend!(
    /// The peer closes with `SO_LINGER` 0, which sends RST. The kernel reports
    /// IN|OUT|RDHUP|HUP|ERR on epoll/poll; the translation table turns that into
    /// readable (masked: not writable), error, hang-up and read-closed.
    fn reset_is_error(backend: Backend) {
        let _g = shared();
        let mut sel = open::<()>(backend);
        let caps = sel.capabilities();
        let (mut a, b) = tcp_pair();
        nonblocking(&a);
        let token = sel
            .register(a.as_raw_fd(), Interest::READABLE, ())
            .unwrap()
            .token;
        sys::socket::set_linger_zero(b.as_fd()).unwrap();
        drop(b);
        let r = wait_until(
            &mut sel,
            token,
            "readable (and error/hang-up) after RST",
            |r| {
                r.is_readable()
                    && (!caps.reports_error || r.is_error())
                    && (!caps.reports_hangup || r.is_hangup())
                    && (!(caps.reports_hangup || caps.reports_read_closed) || r.is_read_closed())
            },
        );
        assert!(
            !r.is_writable(),
            "{backend}: READABLE-only key reported {r:?}"
        );
        let mut buf = [0u8; 8];
        let err = a.read(&mut buf).expect_err("a read after RST must fail");
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{backend}: {err}");
        // The error is consumed; the socket stays readable (EOF) on level backends.
        assert_eq!(a.read(&mut buf).unwrap(), 0);
        if caps.trigger == Trigger::Level {
            wait_until(
                &mut sel,
                token,
                "still readable (EOF) after the error was read",
                |r| r.is_readable(),
            );
        }
        sel.unregister(a.as_raw_fd()).unwrap();
    }
);

// ---------------------------------------------------------------------------------
// 5. Level- versus edge-triggered
// ---------------------------------------------------------------------------------

fn trigger_semantics<S: Read + Write + AsRawFd + AsFd>(backend: Backend, (mut a, mut b): (S, S)) {
    let mut sel = open::<()>(backend);
    let caps = sel.capabilities();
    nonblocking(&a);
    let token = sel
        .register(a.as_raw_fd(), Interest::READABLE, ())
        .unwrap()
        .token;

    b.write_all(b"one").unwrap();
    wait_until(&mut sel, token, "readable after the first write", |r| {
        r.is_readable()
    });

    match caps.trigger {
        Trigger::Level => {
            // Not drained: reported again on every wait.
            for i in 0..3 {
                let r = reported(&mut sel, token, Duration::from_secs(1));
                assert!(
                    r.is_readable(),
                    "{backend}: level wait #{i} without draining: {r:?}"
                );
            }
            // Read part of it: still readable.
            let mut one = [0u8; 1];
            a.read_exact(&mut one).unwrap();
            let r = reported(&mut sel, token, Duration::from_secs(1));
            assert!(r.is_readable(), "{backend}: level, partly drained: {r:?}");
            assert_eq!(drain(&mut a), b"ne");
            assert_quiet(&mut sel, token, "nothing once drained", |r| r.is_readable());
        }
        Trigger::Edge => {
            // Not drained, no new data: no new report.
            assert_quiet(
                &mut sel,
                token,
                "no second report without a new arrival",
                |r| r.is_readable(),
            );
            let mut one = [0u8; 1];
            a.read_exact(&mut one).unwrap();
            assert_quiet(&mut sel, token, "no report after a partial read", |r| {
                r.is_readable()
            });
            // A new arrival raises a new edge even though old data is still unread.
            b.write_all(b"two").unwrap();
            wait_until(&mut sel, token, "a new report for a new arrival", |r| {
                r.is_readable()
            });
            assert_quiet(&mut sel, token, "one report per arrival", |r| {
                r.is_readable()
            });
            assert_eq!(drain(&mut a), b"netwo");
            // Drained: a new arrival raises a new edge again.
            b.write_all(b"three").unwrap();
            wait_until(&mut sel, token, "a report after drain and new data", |r| {
                r.is_readable()
            });
            assert_eq!(drain(&mut a), b"three");
        }
    }
    assert_quiet(&mut sel, token, "nothing once drained", |r| r.is_readable());
    sel.unregister(a.as_raw_fd()).unwrap();
}

per_backend!(
    fn trigger_mode_unix(backend: Backend) {
        let _g = shared();
        trigger_semantics(backend, unix_pair());
    }

    fn trigger_mode_tcp(backend: Backend) {
        let _g = shared();
        trigger_semantics(backend, tcp_pair());
    }
);

// ---------------------------------------------------------------------------------
// 6. modify, unregister, bookkeeping errors
// ---------------------------------------------------------------------------------

per_backend!(
    fn modify_changes_interest(backend: Backend) {
        let _g = shared();
        let mut sel = open::<u32>(backend);
        let (mut a, mut b) = unix_pair();
        nonblocking(&a);
        let fd = a.as_raw_fd();
        let token = sel.register(fd, Interest::READABLE, 7).unwrap().token;
        assert_quiet(&mut sel, token, "a quiet READABLE key", |r| !r.is_empty());

        // READABLE -> WRITABLE: the (always writable) socket is now reported.
        let key = sel.modify(fd, Interest::WRITABLE).unwrap();
        assert_eq!(
            (key.interest, key.token, key.data),
            (Interest::WRITABLE, token, 7)
        );
        let r = wait_until(&mut sel, token, "writable after modify", |r| {
            r.is_writable()
        });
        assert!(!r.is_readable(), "{backend}: {r:?}");

        // Data arrives while only WRITABLE is wanted: never reported readable.
        b.write_all(b"data").unwrap();
        for _ in 0..2 {
            let r = reported(&mut sel, token, QUIET);
            assert!(
                !r.is_readable(),
                "{backend}: WRITABLE-only key reported {r:?}"
            );
        }

        // WRITABLE -> READABLE: the pending data shows, writability does not.
        sel.modify(fd, Interest::READABLE).unwrap();
        assert_eq!(sel.get_key(fd).unwrap().interest, Interest::READABLE);
        let r = wait_until(&mut sel, token, "readable after modify", |r| {
            r.is_readable()
        });
        assert!(!r.is_writable(), "{backend}: {r:?}");

        // BOTH: both show.
        sel.modify_token(token, Interest::BOTH).unwrap();
        wait_until(&mut sel, token, "readable and writable", |r| {
            r.is_readable() && r.is_writable()
        });
        // Same interest again: a no-op that still succeeds.
        sel.modify(fd, Interest::BOTH).unwrap();
        assert_eq!(drain(&mut a), b"data");
        sel.modify(fd, Interest::READABLE).unwrap();
        assert_quiet(&mut sel, token, "nothing once drained (READABLE)", |r| {
            !r.is_empty()
        });
        sel.unregister(fd).unwrap();
    }

    fn unregister_stops_events(backend: Backend) {
        let _g = shared();
        let mut sel = open::<String>(backend);
        let (a, mut b) = unix_pair();
        let (c, mut d) = unix_pair();
        let fd = a.as_raw_fd();
        let token = sel
            .register(fd, Interest::READABLE, "a".into())
            .unwrap()
            .token;
        let other = sel
            .register(c.as_raw_fd(), Interest::READABLE, "c".into())
            .unwrap()
            .token;
        assert_eq!(sel.len(), 2);

        let key = sel.unregister(fd).unwrap();
        assert_eq!(
            (key.fd, key.token, key.interest),
            (fd, token, Interest::READABLE)
        );
        assert_eq!(key.data, "a");
        assert!(sel.get_key(fd).is_none());
        assert!(sel.get(token).is_none());
        assert_eq!(sel.len(), 1);

        // Data for the unregistered socket wakes nobody: the wait runs its full course
        // (a backend that still watched `a` would return at once, level or edge).
        b.write_all(b"x").unwrap();
        let start = Instant::now();
        let got = wait_once(&mut sel, Duration::from_millis(200));
        let waited = start.elapsed();
        assert!(got.is_empty(), "{backend}: {got:?}");
        assert!(
            waited >= Duration::from_millis(190),
            "{backend}: the wait returned after {waited:?}: the kernel still watches fd {fd}"
        );

        // The other key is unaffected.
        d.write_all(b"y").unwrap();
        wait_until(&mut sel, other, "the remaining key still works", |r| {
            r.is_readable()
        });

        // Unknown descriptors and stale tokens.
        let err = sel.unregister(fd).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{backend}: {err}");
        let err = sel.unregister(b.as_raw_fd()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{backend}: {err}");
        assert_eq!(
            sel.unregister_token(token).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            sel.modify(fd, Interest::WRITABLE).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(sel.len(), 1);
        sel.unregister(c.as_raw_fd()).unwrap();
        assert!(sel.is_empty());
    }

    /// The kernel side alone (no registry to filter stale tokens): after `deregister`
    /// the backend reports nothing for the descriptor.
    fn raw_deregister_stops_events(backend: Backend) {
        let _g = shared();
        let mut sel = backend.open().unwrap();
        let mut events = readyloop::selector::Events::with_capacity(16);
        let (a, mut b) = unix_pair();
        let fd = a.as_raw_fd();
        sel.register(fd, Token(5), Interest::READABLE).unwrap();
        b.write_all(b"x").unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            sel.select(&mut events, Some(TICK)).unwrap();
            if events.iter().any(|(t, r)| t == Token(5) && r.is_readable()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{backend}: raw selector never reported fd {fd}"
            );
        }
        sel.deregister(fd).unwrap();
        b.write_all(b"y").unwrap();
        sel.select(&mut events, Some(QUIET)).unwrap();
        assert!(
            events.is_empty(),
            "{backend}: events after deregister: {events:?}"
        );
        assert!(
            sel.deregister(fd).is_err(),
            "{backend}: deregistering twice must fail"
        );
        assert!(
            sel.reregister(fd, Token(5), Interest::READABLE).is_err(),
            "{backend}: reregistering a deregistered fd must fail"
        );
    }

    /// A descriptor number that is not open is refused at register time on every backend
    /// (select and poll check it: their interest sets live in user space). A registered
    /// descriptor closed without being unregistered (a caller bug) does not break the
    /// wait: poll reports its key as an error (`POLLNVAL`), select (which has no error
    /// bit) as ready, epoll forgets it; the other keys keep working and the stale key can be unregistered.
    fn closed_descriptors(backend: Backend) {
        // Exclusive: no other case may open a descriptor that takes the closed number.
        let _g = exclusive();
        let mut sel = open::<&str>(backend);
        let (gone, _peer) = unix_pair();
        let closed = gone.as_raw_fd();
        drop(gone);
        let err = sel
            .register(closed, Interest::READABLE, "closed")
            .unwrap_err();
        assert_ne!(err.kind(), ErrorKind::AlreadyExists, "{backend}: {err}");
        assert!(sel.is_empty(), "{backend}: no key for a refused descriptor");

        let (live, mut live_peer) = unix_pair();
        let live_token = sel
            .register(live.as_raw_fd(), Interest::READABLE, "live")
            .unwrap()
            .token;
        let (victim, _victim_peer) = unix_pair();
        let victim_fd = victim.as_raw_fd();
        let victim_token = sel
            .register(victim_fd, Interest::READABLE, "victim")
            .unwrap()
            .token;
        drop(victim);
        let caps = sel.capabilities();
        for _ in 0..3 {
            let got = wait_once(&mut sel, Duration::from_millis(20));
            for (token, r) in got {
                assert_eq!(token, victim_token, "{backend}: only the closed key: {r:?}");
                assert!(
                    r.is_error() || (!caps.reports_error && r.is_readable()),
                    "{backend}: the closed key is an error: {r:?}"
                );
            }
        }
        // The stale key goes (the kernel may refuse the removal; the key goes anyway).
        let _ = sel.unregister(victim_fd);
        assert_eq!(sel.len(), 1, "{backend}");
        live_peer.write_all(b"x").unwrap();
        wait_until(&mut sel, live_token, "readable after a closed key", |r| {
            r.is_readable()
        });
        sel.unregister(live.as_raw_fd()).unwrap();
    }

    fn register_errors_leave_no_key(backend: Backend) {
        let _g = shared();
        let mut sel = open::<&str>(backend);
        let (a, mut b) = unix_pair();
        let fd = a.as_raw_fd();
        let token = sel.register(fd, Interest::READABLE, "first").unwrap().token;

        // Twice: AlreadyExists, the first key untouched.
        let err = sel.register(fd, Interest::WRITABLE, "second").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{backend}: {err}");
        assert_eq!(sel.len(), 1);
        let key = sel.get_key(fd).unwrap();
        assert_eq!(
            (key.token, key.interest, key.data),
            (token, Interest::READABLE, "first")
        );

        // A descriptor no backend can watch: an error, no key, no slot consumed.
        // The same error on every backend, and not select's FD_SETSIZE advice.
        let err = sel.register(-1, Interest::READABLE, "bad").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{backend}: {err}");
        assert!(!err.to_string().contains("FD_SETSIZE"), "{backend}: {err}");
        assert_eq!(sel.len(), 1);
        assert!(sel.get_key(-1).is_none());
        assert_eq!(sel.registrations().count(), 1);

        // A regular file: epoll refuses it (EPERM), poll and select accept it. Whatever
        // the backend says, the registry agrees with it.
        let file = std::fs::File::open("/dev/null").unwrap();
        match sel.register(file.as_raw_fd(), Interest::READABLE, "file") {
            Ok(_) => {
                assert_eq!(sel.len(), 2);
                sel.unregister(file.as_raw_fd()).unwrap();
            }
            Err(_) => assert!(sel.get_key(file.as_raw_fd()).is_none()),
        }
        assert_eq!(sel.len(), 1);

        // The selector still works after the failures.
        b.write_all(b"x").unwrap();
        wait_until(&mut sel, token, "readable after failed registers", |r| {
            r.is_readable()
        });
        let (c, _d) = unix_pair();
        let t2 = sel
            .register(c.as_raw_fd(), Interest::READABLE, "third")
            .unwrap()
            .token;
        assert_ne!(t2, token);
        assert_eq!(sel.len(), 2);
        sel.unregister(c.as_raw_fd()).unwrap();
        sel.unregister(fd).unwrap();
    }
);

// ---------------------------------------------------------------------------------
// 7. Timeouts and the waker
// ---------------------------------------------------------------------------------

per_backend!(
    fn timeouts(backend: Backend) {
        let _g = shared();
        let mut sel = open::<()>(backend);
        let (a, _b) = unix_pair();
        let token = sel
            .register(a.as_raw_fd(), Interest::READABLE, ())
            .unwrap()
            .token;

        let start = Instant::now();
        let got = wait_once(&mut sel, Duration::ZERO);
        assert!(got.is_empty(), "{backend}: {got:?}");
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{backend}: zero timeout blocked"
        );

        for ms in [50u64, 120] {
            let want = Duration::from_millis(ms);
            let start = Instant::now();
            let got = wait_once(&mut sel, want);
            let took = start.elapsed();
            assert!(got.iter().all(|(t, _)| *t != token), "{backend}: {got:?}");
            assert!(
                took >= want - Duration::from_millis(5),
                "{backend}: a {want:?} wait returned after {took:?}"
            );
            assert!(
                took < Duration::from_secs(2),
                "{backend}: a {want:?} wait took {took:?}"
            );
        }

        // Sub-millisecond timeouts round up (no busy spin of zero-timeout waits).
        let want = Duration::from_micros(200);
        for _ in 0..3 {
            let start = Instant::now();
            wait_once(&mut sel, want);
            let took = start.elapsed();
            assert!(
                took >= want,
                "{backend}: a {want:?} wait returned after {took:?}"
            );
        }
        sel.unregister(a.as_raw_fd()).unwrap();
    }

    fn waker_wakes_blocking_select(backend: Backend) {
        let _g = shared();
        let mut sel = open::<()>(backend);
        let waker = sel.waker().unwrap();
        // The same waker comes back on a second call.
        let _again = sel.waker().unwrap();
        assert!(sel.is_empty(), "the waker is not a key");
        assert!(!sel.take_woken());

        let (a, _b) = unix_pair();
        sel.register(a.as_raw_fd(), Interest::READABLE, ()).unwrap();

        // Block with no timeout in another thread (so a broken waker fails the test
        // instead of hanging it), wake from this one after ~50 ms.
        let (tx, rx) = mpsc::channel();
        let handle = thread::spawn(move || {
            let keys = sel.select(None).map(|ready| ready.count());
            let returned = Instant::now();
            let woken = sel.take_woken();
            let _ = tx.send((keys.map_err(|e| e.to_string()), returned, woken));
            sel
        });
        thread::sleep(Duration::from_millis(50));
        let woke_at = Instant::now();
        waker.wake().unwrap();
        let (keys, returned, woken) = rx.recv_timeout(DEADLINE).unwrap_or_else(|_| {
            panic!("{backend}: select(None) was not woken within {DEADLINE:?}")
        });
        assert_eq!(keys, Ok(0), "{backend}: woken select returned keys");
        assert!(woken, "{backend}: take_woken() after a wake");
        assert!(
            returned >= woke_at,
            "{backend}: select(None) returned {:?} before the wake",
            woke_at - returned
        );
        let mut sel = handle.join().unwrap();
        assert!(!sel.take_woken(), "take_woken() clears the flag");

        // After a wake is consumed, the next wait is not woken again.
        let start = Instant::now();
        let got = wait_once(&mut sel, Duration::from_millis(100));
        assert!(got.is_empty());
        assert!(!sel.take_woken(), "{backend}: woken twice by one wake");
        assert!(
            start.elapsed() >= Duration::from_millis(95),
            "{backend}: the wake was not drained"
        );
        sel.unregister(a.as_raw_fd()).unwrap();
    }

    /// A waker that outlives its selector says so instead of waking nobody.
    fn waker_after_close_fails(backend: Backend) {
        let _g = shared();
        let mut sel = open::<()>(backend);
        let w = sel.waker().unwrap();
        w.wake().unwrap();
        let _ = sel.close();
        let err = w.wake().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotConnected, "{backend}: {err}");
        let mut sel = open::<()>(backend);
        let w = sel.waker().unwrap();
        drop(sel);
        assert_eq!(w.wake().unwrap_err().kind(), ErrorKind::NotConnected);
    }

    fn waker_wakes_coalesce(backend: Backend) {
        let _g = shared();
        let mut sel = open::<()>(backend);
        let waker = sel.waker().unwrap();
        let w2 = waker.clone();
        let t = thread::spawn(move || {
            for _ in 0..1000 {
                w2.wake().unwrap();
            }
        });
        for _ in 0..1000 {
            waker.wake().unwrap();
        }
        t.join().unwrap();

        // One return for all of them...
        let start = Instant::now();
        let got = wait_once(&mut sel, DEADLINE);
        assert!(got.is_empty());
        assert!(
            sel.take_woken(),
            "{backend}: 2000 wakes did not wake the selector"
        );
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{backend}: pending wakes did not return at once"
        );
        // ...and nothing left over afterwards.
        let start = Instant::now();
        wait_once(&mut sel, Duration::from_millis(100));
        assert!(!sel.take_woken(), "{backend}: wakes did not coalesce");
        assert!(
            start.elapsed() >= Duration::from_millis(95),
            "{backend}: leftover wake"
        );

        // The waker still works after coalescing.
        waker.wake().unwrap();
        wait_once(&mut sel, DEADLINE);
        assert!(sel.take_woken(), "{backend}: the waker stopped working");
    }
);

// ---------------------------------------------------------------------------------
// 8. User data
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Conn {
    name: String,
    id: u64,
    buf: Vec<u8>,
}

per_backend!(
    fn user_data_round_trips(backend: Backend) {
        let _g = shared();
        let mut sel = open::<Conn>(backend);
        let (a, mut pa) = unix_pair();
        let (c, _pc) = unix_pair();
        let alpha = Conn {
            name: "alpha".into(),
            id: 1,
            buf: vec![1, 2, 3],
        };
        let gamma = Conn {
            name: "gamma".into(),
            id: 3,
            buf: Vec::new(),
        };
        let ta = sel
            .register(a.as_raw_fd(), Interest::READABLE, alpha.clone())
            .unwrap()
            .token;
        let key = sel
            .register(c.as_raw_fd(), Interest::READABLE, gamma.clone())
            .unwrap();
        assert_eq!(key.data, gamma);
        let tc = key.token;
        assert_ne!(ta, tc);

        // Mutate through get_key_mut; the change is what select hands back.
        sel.get_key_mut(a.as_raw_fd()).unwrap().data.buf.push(4);
        pa.write_all(b"x").unwrap();
        let deadline = Instant::now() + DEADLINE;
        let seen = loop {
            let hits: Vec<Conn> = sel
                .select(Some(TICK))
                .unwrap()
                .filter(|(_, r)| r.is_readable())
                .map(|(k, _)| k.data.clone())
                .collect();
            if !hits.is_empty() {
                break hits;
            }
            assert!(Instant::now() < deadline, "{backend}: never readable");
        };
        assert_eq!(
            seen,
            vec![Conn {
                name: "alpha".into(),
                id: 1,
                buf: vec![1, 2, 3, 4]
            }],
            "{backend}"
        );
        assert_eq!(sel.get(tc).unwrap().data, gamma);
        sel.get_mut(tc).unwrap().data.id = 33;

        let key = sel.unregister(a.as_raw_fd()).unwrap();
        assert_eq!(
            key.data,
            Conn {
                name: "alpha".into(),
                id: 1,
                buf: vec![1, 2, 3, 4]
            }
        );
        let rest = sel.close();
        assert_eq!(
            rest,
            vec![Conn {
                name: "gamma".into(),
                id: 33,
                buf: Vec::new()
            }]
        );
    }
);

// ---------------------------------------------------------------------------------
// 9. Stale events after a descriptor is reused
// ---------------------------------------------------------------------------------

per_backend!(
    fn stale_token_after_fd_reuse(backend: Backend) {
        // Exclusive: the freed descriptor number must come back to us, not to another test.
        let _g = exclusive();
        let mut sel = open::<String>(backend);
        let (a, mut pa) = unix_pair();
        let old_fd = a.as_raw_fd();
        let t1 = sel
            .register(old_fd, Interest::READABLE, "old".into())
            .unwrap()
            .token;
        pa.write_all(b"x").unwrap();

        // The kernel reports t1; we hold the batch, as a reactor does while dispatching.
        let mut batch = Vec::new();
        let deadline = Instant::now() + DEADLINE;
        while !batch.iter().any(|(t, _): &(Token, Readiness)| *t == t1) {
            sel.select_into(Some(TICK), &mut batch).unwrap();
            assert!(Instant::now() < deadline, "{backend}: never readable");
        }
        // A handler earlier in the batch closes the connection (unregister first)...
        let key = sel.unregister(old_fd).unwrap();
        assert_eq!((key.token, key.data.as_str()), (t1, "old"));
        drop(a);
        drop(pa);

        // ...and accepts a new one that gets the same descriptor number.
        let mut spare = Vec::new();
        let (n, mut pn) = loop {
            let (x, y) = unix_pair();
            if x.as_raw_fd() == old_fd {
                break (x, y);
            }
            if y.as_raw_fd() == old_fd {
                break (y, x);
            }
            spare.push((x, y));
            assert!(spare.len() < 64, "{backend}: fd {old_fd} was never reused");
        };
        assert_eq!(n.as_raw_fd(), old_fd);
        let t2 = sel
            .register(old_fd, Interest::READABLE, "new".into())
            .unwrap()
            .token;

        // Same slot (the registry reuses it), new generation: a different token.
        assert_ne!(t1, t2, "{backend}: a reused slot must get a new generation");
        assert_eq!(
            t1.0 & 0xffff_ffff,
            t2.0 & 0xffff_ffff,
            "the slot was reused"
        );
        assert!(
            sel.get(t1).is_none(),
            "{backend}: the old token resolves after reuse"
        );
        assert_eq!(sel.get(t2).unwrap().data, "new");
        assert_eq!(sel.get_key(old_fd).unwrap().token, t2);

        // The rest of the held batch: the stale event resolves to nothing.
        for (t, _) in &batch {
            if *t == t1 {
                assert!(sel.get(*t).is_none());
            }
        }
        assert_eq!(
            sel.modify_token(t1, Interest::WRITABLE).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            sel.unregister_token(t1).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(sel.get(t2).unwrap().interest, Interest::READABLE);

        // The new socket has no data: nothing may be reported, least of all with the new
        // data (the old event must not leak into the new registration).
        let leaked: Vec<(Token, String, Readiness)> = sel
            .select(Some(QUIET))
            .unwrap()
            .map(|(k, r)| (k.token, k.data.clone(), r))
            .collect();
        assert!(
            leaked.is_empty(),
            "{backend}: stale event delivered: {leaked:?}"
        );
        pn.write_all(b"y").unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let hits: Vec<(Token, String)> = sel
                .select(Some(TICK))
                .unwrap()
                .map(|(k, _)| (k.token, k.data.clone()))
                .collect();
            assert!(hits.iter().all(|(t, _)| *t == t2), "{backend}: {hits:?}");
            if !hits.is_empty() {
                assert_eq!(hits[0].1, "new");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{backend}: the new socket was never readable"
            );
        }
        sel.unregister(old_fd).unwrap();
    }
);

// ---------------------------------------------------------------------------------
// 10. Many descriptors, and FD_SETSIZE
// ---------------------------------------------------------------------------------

/// Registers every socket of `socks` (pairs at 2k, 2k+1), writes to the peers of
/// `writes` (indices of registered keys) and checks that exactly those keys are
/// reported readable.
fn exact_readiness(sel: &mut KeyedSelector<usize>, socks: &mut [UnixStream], writes: &[usize]) {
    let backend = sel.backend();
    let tokens: Vec<Token> = socks
        .iter()
        .enumerate()
        .map(|(i, s)| {
            sel.register(s.as_raw_fd(), Interest::READABLE, i)
                .unwrap()
                .token
        })
        .collect();
    assert_eq!(sel.len(), socks.len());
    let got = wait_once(sel, Duration::ZERO);
    assert!(
        got.is_empty(),
        "{backend}: {} keys ready before any write",
        got.len()
    );

    let mut expected = BTreeSet::new();
    for &i in writes {
        // Socks come in pairs (2k, 2k+1): writing to one end makes the other readable.
        let peer = i ^ 1;
        socks[peer].write_all(b"!").unwrap();
        expected.insert(i);
    }
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + DEADLINE;
    while seen != expected {
        for (t, r) in wait_once(sel, TICK) {
            assert!(r.is_readable(), "{backend}: {r:?}");
            let i = sel.get(t).expect("live key").data;
            assert_eq!(tokens[i], t);
            assert!(
                expected.contains(&i),
                "{backend}: key {i} (fd {}) reported but nothing was written to it",
                socks[i].as_raw_fd()
            );
            seen.insert(i);
        }
        assert!(
            Instant::now() < deadline,
            "{backend}: saw {seen:?}, expected {expected:?}"
        );
    }
    // Nothing else shows up afterwards either.
    for (t, _) in wait_once(sel, QUIET) {
        let i = sel.get(t).unwrap().data;
        assert!(expected.contains(&i), "{backend}: key {i} reported late");
    }
    for s in socks.iter() {
        sel.unregister(s.as_raw_fd()).unwrap();
    }
    assert!(sel.is_empty());
}

per_backend!(
    fn thousand_sockets(backend: Backend) {
        let _g = exclusive();
        raise_nofile(8192);
        let mut sel = open::<usize>(backend);
        let limit = sel.capabilities().max_fd.unwrap_or(usize::MAX);
        let mut socks = Vec::new();
        while socks.len() < 1000 {
            let (a, b) = unix_pair();
            assert!(
                (b.as_raw_fd() as usize) < limit,
                "{backend}: ran out of descriptors below {limit} after {} sockets",
                socks.len()
            );
            socks.push(a);
            socks.push(b);
        }
        let writes = [0, 3, 500, 777, 998, 999];
        exact_readiness(&mut sel, &mut socks, &writes);
    }

    fn descriptors_beyond_fd_setsize(backend: Backend) {
        let _g = exclusive();
        raise_nofile(8192);
        let mut sel = open::<usize>(backend);
        match sel.capabilities().max_fd {
            None => {
                // 1100 pairs: well past FD_SETSIZE (1024).
                let mut socks = Vec::new();
                for _ in 0..1100 {
                    let (a, b) = unix_pair();
                    socks.push(a);
                    socks.push(b);
                }
                let n = socks.len();
                let writes = [1, 1000, n - 200, n - 101, n - 2, n - 1];
                for &i in &writes[2..] {
                    assert!(socks[i].as_raw_fd() > 1024, "want fds above FD_SETSIZE");
                }
                exact_readiness(&mut sel, &mut socks, &writes);
            }
            Some(max) => {
                // One socket registered below the limit keeps working throughout.
                let (low, mut low_peer) = unix_pair();
                assert!((low.as_raw_fd() as usize) < max);
                let token = sel
                    .register(low.as_raw_fd(), Interest::READABLE, 0)
                    .unwrap()
                    .token;
                let mut hold = Vec::new();
                let high = loop {
                    let (a, b) = unix_pair();
                    if b.as_raw_fd() as usize >= max {
                        break b;
                    }
                    hold.push((a, b));
                    assert!(hold.len() < 4096, "never reached fd {max}");
                };
                let fd = high.as_raw_fd();
                let err = sel.register(fd, Interest::READABLE, 1).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::InvalidInput, "{backend}: {err}");
                let msg = err.to_string();
                assert!(
                    msg.contains(&fd.to_string()) && msg.contains(&max.to_string()),
                    "{backend}: the error should name the fd and the limit: {msg}"
                );
                assert_eq!(sel.len(), 1);
                assert!(sel.get_key(fd).is_none());
                assert_eq!(sel.unregister(fd).unwrap_err().kind(), ErrorKind::NotFound);

                low_peer.write_all(b"x").unwrap();
                wait_until(&mut sel, token, "the low fd still served", |r| {
                    r.is_readable()
                });
                // And the highest descriptor below the limit still works.
                let near_fd = hold
                    .iter()
                    .flat_map(|(a, b)| [a.as_raw_fd(), b.as_raw_fd()])
                    .filter(|&fd| (fd as usize) < max)
                    .max()
                    .expect("a held socket below the limit");
                let near_peer = hold
                    .iter_mut()
                    .find_map(|(a, b)| match near_fd {
                        fd if fd == a.as_raw_fd() => Some(b),
                        fd if fd == b.as_raw_fd() => Some(a),
                        _ => None,
                    })
                    .unwrap();
                let t = sel.register(near_fd, Interest::READABLE, 2).unwrap().token;
                near_peer.write_all(b"y").unwrap();
                wait_until(&mut sel, t, "the highest fd below the limit", |r| {
                    r.is_readable()
                });
                sel.unregister(near_fd).unwrap();
                sel.unregister(low.as_raw_fd()).unwrap();
            }
        }
    }
);

// ---------------------------------------------------------------------------------
// 11. Trigger modes a backend cannot run
// ---------------------------------------------------------------------------------

per_backend!(
    fn trigger_modes(backend: Backend) {
        let _g = shared();
        let own = KeyedSelector::<()>::with_trigger(backend, backend.trigger()).unwrap();
        assert_eq!(own.capabilities().trigger, backend.trigger());
        assert_eq!(own.backend(), backend);
        for trigger in [Trigger::Level, Trigger::Edge] {
            match KeyedSelector::<()>::with_trigger(backend, trigger) {
                // Never silently another mode.
                Ok(sel) => assert_eq!(sel.capabilities().trigger, trigger, "{backend}"),
                Err(e) => {
                    assert_eq!(
                        e.kind(),
                        ErrorKind::Unsupported,
                        "{backend} {trigger:?}: {e}"
                    );
                    assert_ne!(trigger, backend.trigger(), "{backend} refuses its own mode");
                }
            }
        }
    }
);

// ---------------------------------------------------------------------------------
// 11 and 12, backend-independent
// ---------------------------------------------------------------------------------

#[test]
fn unsupported_modes_are_refused() {
    for (b, t) in [
        (Backend::Select, Trigger::Edge),
        (Backend::Poll, Trigger::Edge),
        (Backend::Mio, Trigger::Level),
    ] {
        let err = KeyedSelector::<()>::with_trigger(b, t).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{b} {t:?}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(b.name()), "the error names the backend: {msg}");
    }
    // epoll runs both modes, under two names.
    let lt = KeyedSelector::<()>::with_trigger(Backend::EpollEt, Trigger::Level).unwrap();
    assert_eq!(lt.backend(), Backend::Epoll);
    let et = KeyedSelector::<()>::with_trigger(Backend::Epoll, Trigger::Edge).unwrap();
    assert_eq!(et.backend(), Backend::EpollEt);
}

#[test]
fn backend_names_round_trip() {
    let mut names = BTreeSet::new();
    for b in Backend::ALL {
        assert_eq!(b.name().parse::<Backend>().unwrap(), b);
        assert_eq!(b.to_string(), b.name());
        assert!(names.insert(b.name()), "duplicate name {}", b.name());
    }
    assert_eq!(names.len(), 6);
    assert_eq!("epoll-et".parse::<Backend>().unwrap(), Backend::EpollEt);
    assert_eq!(Backend::EpollEt.trigger(), Trigger::Edge);
    assert_eq!(Backend::default(), Backend::best());
    assert!(Backend::ALL.contains(&Backend::best()));
    for bad in ["", "kqueue", "EPOLL", "epoll_et", " epoll"] {
        let err = bad.parse::<Backend>().unwrap_err().to_string();
        assert!(err.contains("epoll-et") && err.contains("select"), "{err}");
    }
}

/// `per_backend!` spells the backends out: a backend added to `Backend::ALL` must be
/// added there too.
#[test]
fn per_backend_covers_every_backend() {
    let all: Vec<String> = Backend::ALL
        .iter()
        .map(|b| b.name().replace('-', "_"))
        .collect();
    assert_eq!(all, per_backend!(@names));
}
