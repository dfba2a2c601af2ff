//! Regression tests for bugs found in review: each failed before its fix. Each is
//! named for the property it checks (the bug's absence), not for the bug. The cases
//! that run on several backends are written inside `per_backend!` (`tests/support`).

#[macro_use]
mod support;

use std::cell::Cell;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use readyloop::net::{Conn, PeerAddr, Protocol, Stream, StreamConfig};
use readyloop::reactor::Reactor;
use readyloop::selector::Backend;
use support::read_until_quiet;

#[test]
fn huge_timer_delay_does_not_panic() {
    let mut r = Reactor::new(Backend::Poll).unwrap();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        r.call_later(Duration::MAX, |_| {});
    }));
    assert!(res.is_ok(), "call_later(Duration::MAX) panicked");
}

#[test]
fn run_again_after_graceful_shutdown() {
    let mut r = Reactor::new(Backend::Poll).unwrap();
    r.call_later(Duration::from_millis(1), |ctx| ctx.shutdown());
    r.run().unwrap();
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    r.call_later(Duration::from_millis(20), move |ctx| {
        f.set(true);
        ctx.stop();
    });
    let t = Instant::now();
    r.run().unwrap();
    eprintln!("second run returned after {:?}", t.elapsed());
    assert!(
        fired.get(),
        "second run() returned without running its timer"
    );
}

struct Abort;
impl Protocol for Abort {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        conn.abort();
    }
    fn data_received(&mut self, _: &mut Conn<'_, '_>, _: &[u8]) {}
}

fn iterations_after_dup_close(backend: Backend) -> u32 {
    let mut r = Reactor::new(backend).unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let _still_open = a.try_clone().unwrap(); // e.g. a clone kept for another purpose
    let fd: OwnedFd = a.into();
    r.with_ctx(|ctx| {
        Stream::new(
            fd,
            PeerAddr::Unix,
            Box::new(Abort),
            Rc::new(StreamConfig::default()),
        )
        .unwrap()
        .register(ctx)
    })
    .unwrap();
    assert_eq!(r.handler_count(), 0);
    b.write_all(b"x").unwrap(); // the (still open) file becomes readable
    let t = Instant::now();
    let mut n = 0;
    while t.elapsed() < Duration::from_millis(200) {
        r.run_once(Some(Duration::from_millis(50))).unwrap();
        n += 1;
    }
    n
}

#[test]
fn closed_stream_with_duplicate_does_not_spin_epoll_lt() {
    let poll = iterations_after_dup_close(Backend::Poll);
    let epoll = iterations_after_dup_close(Backend::Epoll);
    eprintln!("run_once(50ms) iterations in 200 ms: poll={poll} epoll={epoll}");
    assert!(
        epoll < 20,
        "epoll loop spun {epoll} times in 200 ms with no handler left"
    );
}

#[test]
fn line_buffer_unlimited_does_not_overflow() {
    let mut lb = readyloop::proto::framing::LineBuffer::new(usize::MAX);
    lb.push(b"partial", |_| true);
    assert_eq!(lb.pending(), 7);
}

/// The receive queue (bytes) of the loopback TCP socket from `local_port` to
/// `remote_port`, read from `/proc/net/tcp` (`None` if it is not listed).
fn server_rx_queue(local_port: u16, remote_port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let port = |field: &str| {
        field
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 5 || port(f[1])? != local_port || port(f[2])? != remote_port {
            return None;
        }
        let (_, rx) = f[4].split_once(':')?;
        u64::from_str_radix(rx, 16).ok()
    })
}

/// Runs the loop (20 ms waits) for `span`.
fn run_for(r: &mut Reactor, span: Duration) {
    let t = Instant::now();
    while t.elapsed() < span {
        r.run_once(Some(Duration::from_millis(20))).unwrap();
    }
}

fn oob_echo(backend: Backend) -> Vec<u8> {
    use readyloop::net::Listen;
    use readyloop::proto::echo::{Echo, EchoOptions};
    let mut r = Reactor::new(backend).unwrap();
    let (_, addr) = r
        .listen_tcp("127.0.0.1:0", Echo::factory(EchoOptions::default()))
        .unwrap();
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    // accept + register
    for _ in 0..3 {
        r.run_once(Some(Duration::from_millis(10))).unwrap();
    }
    c.write_all(b"hello").unwrap();
    // An urgent byte, as telnet's "Synch" (Ctrl-C) sends: recv stops at its mark.
    let n = readyloop::sys::socket::send_urgent(c.as_fd(), b'X').unwrap();
    assert_eq!(n, 1);
    c.write_all(b"world").unwrap();
    // All three segments must sit in the server's receive queue before the loop
    // first reads, or the read never meets the urgent mark and the case proves
    // nothing: wait (bounded) until the kernel shows all 11 bytes queued.
    let client_port = c.local_addr().unwrap().port();
    let t = Instant::now();
    loop {
        let queued = server_rx_queue(addr.port(), client_port);
        if queued >= Some(11) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{backend}: the server's receive queue holds {queued:?} bytes, not 11"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    run_for(&mut r, Duration::from_millis(300));
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    read_until_quiet(&mut c)
}

per_backend!(
    #[backends(epoll, epoll_et, mio)]
    fn urgent_data_does_not_stall_edge_triggered_short_read_shortcut(b: Backend) {
        let got = oob_echo(b);
        // The urgent byte is out of band (not inline): the stream is "helloworld".
        assert_eq!(
            String::from_utf8_lossy(&got),
            "helloworld",
            "{b}: data after the urgent mark was not read"
        );
    }
);

per_backend!(
    #[backends(epoll, epoll_et)]
    fn scm_rights_does_not_stall_edge_triggered_unix_echo(b: Backend) {
        use readyloop::net::{Listen, ListenConfig};
        use readyloop::proto::echo::{Echo, EchoOptions};
        let path = std::env::temp_dir().join(format!("rv-scm-{}-{b}", std::process::id()));
        let mut r = Reactor::new(b).unwrap();
        r.listen_unix(
            &path,
            Echo::factory(EchoOptions::default()),
            ListenConfig::default(),
        )
        .unwrap();
        let mut c = UnixStream::connect(&path).unwrap();
        for _ in 0..3 {
            r.run_once(Some(Duration::from_millis(10))).unwrap();
        }
        let stdin = std::io::stdin();
        let sent = readyloop::sys::socket::send_with_fd(c.as_fd(), b"A", stdin.as_fd()).unwrap();
        assert_eq!(sent, 1);
        c.write_all(b"BBBB").unwrap();
        run_for(&mut r, Duration::from_millis(200));
        c.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let got = read_until_quiet(&mut c);
        // The descriptor message ends a recv early; the rest must still be read.
        assert_eq!(
            String::from_utf8_lossy(&got),
            "ABBBB",
            "{b}: data after the SCM_RIGHTS message was not read"
        );
    }
);

#[test]
fn zero_event_budget_does_not_spin() {
    use readyloop::net::Listen;
    use readyloop::proto::echo::{Echo, EchoOptions};
    use readyloop::reactor::Config;
    let cfg = Config {
        event_budget: 0,
        ..Config::default()
    };
    let mut r = Reactor::with_config(Backend::EpollEt, cfg).unwrap();
    let (_, addr) = r
        .listen_tcp("127.0.0.1:0", Echo::factory(EchoOptions::default()))
        .unwrap();
    let _c = std::net::TcpStream::connect(addr).unwrap();
    let t = Instant::now();
    let mut n = 0;
    while t.elapsed() < Duration::from_millis(200) {
        r.run_once(Some(Duration::from_millis(50))).unwrap();
        n += 1;
    }
    eprintln!(
        "event_budget 0: {n} iterations in 200 ms, handlers = {}",
        r.handler_count()
    );
    // The budget is raised to 1: the connection is accepted (listener + connection)
    // and the loop blocks in its waits (4 x 50 ms) instead of requeueing forever.
    assert_eq!(
        r.handler_count(),
        2,
        "the pending connection was not accepted"
    );
    assert!(n < 1000, "the loop spun: {n} iterations in 200 ms");
}

/// `shutdown_timeout: Duration::MAX` ("no deadline") overflowed `Instant + Duration`
/// when a graceful shutdown (the SIGTERM path) armed its deadline: a panic. It must
/// neither panic (propagated, so the test sees it) nor wait: with nothing to flush the
/// shutdown completes at once.
#[test]
fn shutdown_timeout_max_does_not_panic_on_sigterm_path() {
    use readyloop::reactor::{Config, PanicPolicy};
    let cfg = Config {
        shutdown_timeout: Duration::MAX,
        panic_policy: PanicPolicy::Propagate,
        ..Config::default()
    };
    let mut r = Reactor::with_config(Backend::Poll, cfg).unwrap();
    r.call_later(Duration::ZERO, |ctx| ctx.shutdown());
    let t = Instant::now();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.run()));
    assert!(res.is_ok(), "shutdown with shutdown_timeout MAX panicked");
    res.unwrap().unwrap();
    assert_eq!(r.panics_contained(), 0);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "an empty graceful shutdown took {:?}",
        t.elapsed()
    );
}

#[test]
fn listen_errors_name_the_address() {
    use readyloop::net::{Listen, ListenConfig, Protocol};
    use std::io::ErrorKind;
    fn refuse(_: &PeerAddr) -> Option<Box<dyn Protocol>> {
        None
    }
    let mut r = Reactor::new(Backend::Poll).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let e = r.listen_tcp(addr, refuse).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
    assert!(
        e.to_string().contains(&addr.to_string()),
        "no address in: {e}"
    );

    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let uaddr = udp.local_addr().unwrap();
    struct Nop;
    impl readyloop::net::DatagramProtocol for Nop {
        fn datagram_received(
            &mut self,
            _: &mut readyloop::net::Datagrams<'_, '_>,
            _: &[u8],
            _: std::net::SocketAddr,
        ) {
        }
    }
    let e = r.bind_udp(uaddr, Nop).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
    assert!(
        e.to_string().contains(&uaddr.to_string()),
        "no address in: {e}"
    );

    let missing = std::env::temp_dir().join(format!("rv-nodir-{}/s", std::process::id()));
    let e = r
        .listen_unix(&missing, refuse, ListenConfig::default())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.to_string().contains(&missing.display().to_string()),
        "no path in: {e}"
    );

    let long = std::env::temp_dir().join("x".repeat(200));
    let e = r
        .listen_unix(&long, refuse, ListenConfig::default())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("xxxxxxxx"), "no path in: {e}");
}

#[test]
fn unlimited_event_budget_does_not_overflow() {
    use readyloop::net::Listen;
    use readyloop::proto::echo::{Echo, EchoOptions, UdpEcho};
    use readyloop::reactor::Config;
    // "No budget": usize::MAX. Listeners and UDP sockets take four times the budget.
    let cfg = Config {
        event_budget: usize::MAX,
        ..Config::default()
    };
    let mut r = Reactor::with_config(Backend::Poll, cfg).unwrap();
    let (_, addr) = r
        .listen_tcp("127.0.0.1:0", Echo::factory(EchoOptions::default()))
        .unwrap();
    let (_, uaddr) = r
        .bind_udp("127.0.0.1:0", UdpEcho::new(EchoOptions::default()))
        .unwrap();
    let _c = std::net::TcpStream::connect(addr).unwrap();
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    u.send_to(b"x", uaddr).unwrap();
    for _ in 0..3 {
        r.run_once(Some(Duration::from_millis(20))).unwrap();
    }
    assert_eq!(r.handler_count(), 3, "listener, UDP socket, connection");
}

/// `listen_unix` on the path of a live server probes it with a connect; a blocking
/// connect to a server whose accept queue is full waited forever.
#[test]
fn listen_unix_on_busy_live_socket_does_not_hang() {
    use readyloop::net::{Listen, ListenConfig, Protocol};
    use std::sync::mpsc;
    fn refuse(_: &PeerAddr) -> Option<Box<dyn Protocol>> {
        None
    }
    let path = std::env::temp_dir().join(format!("rv-busy-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    // A live server that never accepts, with the smallest queue.
    let mut live = Reactor::new(Backend::Poll).unwrap();
    let cfg = ListenConfig {
        backlog: 1,
        ..ListenConfig::default()
    };
    live.listen_unix(&path, refuse, cfg).unwrap();
    // Fill its queue (the connect after the last one that fits blocks).
    let (tx, rx) = mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok(s) = UnixStream::connect(&p) {
            held.push(s);
            if tx.send(held.len()).is_err() {
                break;
            }
        }
    });
    for _ in 0..2 {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("queue connections");
    }
    let (tx, rx) = mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || {
        let mut r = Reactor::new(Backend::Poll).unwrap();
        let res = r
            .listen_unix(&p, refuse, ListenConfig::default())
            .map(|_| ());
        let _ = tx.send(res.map_err(|e| e.kind()));
    });
    let got = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("listen_unix on a busy live socket returned");
    assert_eq!(got, Err(std::io::ErrorKind::AddrInUse));
    assert!(path.exists(), "the live server's socket file was kept");
    drop(live);
}

/// An empty path made Linux autobind the socket to a random abstract address: the
/// listener "succeeded" where no client could ever find it.
#[test]
fn listen_unix_on_empty_path_is_refused() {
    use readyloop::net::{Listen, ListenConfig, Protocol};
    fn refuse(_: &PeerAddr) -> Option<Box<dyn Protocol>> {
        None
    }
    let mut r = Reactor::new(Backend::Poll).unwrap();
    let e = r
        .listen_unix("", refuse, ListenConfig::default())
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    assert_eq!(r.handler_count(), 0);
}
