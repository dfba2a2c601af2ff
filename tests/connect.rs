//! Outgoing connections (`Listen::connect_tcp`, `connect_unix`): `connection_made` only
//! once the connect completed, `connection_failed` for refused, timed-out and
//! abandoned connects, writes queued before the connect, connects made from inside a
//! handler (FTP's active mode), `TCP_NODELAY` on outgoing sockets.
//!
//! Every case runs on every backend (each case is written inside `per_backend!`,
//! from `tests/support`).

#[macro_use]
mod support;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use readyloop::net::{write_to, Conn, Listen, Protocol, StreamConfig};
use readyloop::proto::echo::{Echo, EchoOptions};
use readyloop::reactor::Config;
use readyloop::selector::Backend;

use support::*;

type Log = Arc<Mutex<Vec<String>>>;

fn log_of(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

fn wait_log(log: &Log, what: &str, f: impl Fn(&[String]) -> bool) -> Vec<String> {
    eventually(DEADLINE, what, || {
        let l = log_of(log);
        f(&l).then_some(l)
    })
}

/// Records its callbacks; sends `greeting` on `connection_made`.
struct Client {
    log: Log,
    greeting: &'static [u8],
}

impl Protocol for Client {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        self.log
            .lock()
            .unwrap()
            .push(format!("made {}", conn.peer()));
        conn.write(self.greeting);
    }
    fn data_received(&mut self, _conn: &mut Conn<'_, '_>, data: &[u8]) {
        self.log
            .lock()
            .unwrap()
            .push(format!("data {}", String::from_utf8_lossy(data)));
    }
    fn connection_failed(&mut self, _conn: &mut Conn<'_, '_>, reason: &io::Error) {
        self.log
            .lock()
            .unwrap()
            .push(format!("failed {:?} {reason}", reason.kind()));
    }
    fn connection_lost(&mut self, _conn: &mut Conn<'_, '_>, reason: Option<&io::Error>) {
        self.log.lock().unwrap().push(format!("lost {reason:?}"));
    }
}

fn client(log: &Log, greeting: &'static [u8]) -> Client {
    Client {
        log: log.clone(),
        greeting,
    }
}

per_backend!(
    /// The connect completes against a listener this test accepts from by hand:
    /// `connection_made` runs once, a write queued (`write_to`) before the connect
    /// completed and the greeting written on `connection_made` arrive in that order,
    /// the reply is read.
    fn connects_and_talks(backend: Backend) {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let log = Log::default();
        let l2 = log.clone();
        let (lt, id) = spawn_loop(backend, Config::default(), move |r| {
            let id = r
                .connect_tcp(addr, Duration::from_secs(5), client(&l2, b"world\n"))
                .unwrap();
            // Queued while connecting: sent first, before the greeting.
            assert!(r.with_ctx(|ctx| write_to(ctx, id, b"hello ")));
            id
        });
        let (mut s, _) = server.accept().unwrap();
        timeouts(&s);
        let mut got = [0u8; 12];
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello world\n");
        s.write_all(b"pong").unwrap();
        let l = wait_log(&log, "reply", |l| l.iter().any(|e| e == "data pong"));
        assert_eq!(l[0], format!("made {addr}"), "{l:?}");
        assert_eq!(l.iter().filter(|e| e.starts_with("made")).count(), 1);
        drop(s);
        wait_log(&log, "connection_lost on EOF", |l| {
            l.iter().any(|e| e.starts_with("lost"))
        });
        let gone = move |ctx: &mut readyloop::reactor::Ctx<'_>| {
            ctx.with_handler::<readyloop::net::Stream, _>(id, |_, _| ())
                .is_none()
        };
        assert!(lt.call(gone));
        lt.stop().unwrap();
    }

    /// A refused connect: `connection_failed` with `ConnectionRefused`, nothing else,
    /// and the handler is gone.
    fn refused(backend: Backend) {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let log = Log::default();
        let l2 = log.clone();
        let (lt, ()) = spawn_loop(backend, Config::default(), move |r| {
            r.connect_tcp(addr, Duration::from_secs(5), client(&l2, b""))
                .unwrap();
        });
        let l = wait_log(&log, "connection_failed", |l| !l.is_empty());
        assert!(l[0].starts_with("failed ConnectionRefused"), "{l:?}");
        assert!(l[0].contains(&addr.to_string()), "{l:?}");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(log_of(&log).len(), 1, "{:?}", log_of(&log));
        assert_eq!(lt.call(|ctx| ctx.handler_count()), 0);
        lt.stop().unwrap();
    }
);

/// A listener whose accept queue is full: a further connect's SYN is dropped, so
/// the connect hangs until its timeout. Returns the listener and the connections
/// that filled it (keep them alive).
fn full_listener() -> (TcpListener, Vec<TcpStream>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    readyloop::sys::socket::listen(l.as_fd(), 0).unwrap();
    let addr = l.local_addr().unwrap();
    let mut filled = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => filled.push(s),
            Err(e) if is_timeout(&e) => return (l, filled),
            Err(e) => panic!("filling the accept queue: {e}"),
        }
    }
    panic!("the accept queue of a listen(0) socket never filled");
}

per_backend!(
    /// A connect that never completes fails with `TimedOut` after its timeout (a
    /// reactor timer: not before it, and not much after).
    fn times_out(backend: Backend) {
        let (l, _filled) = full_listener();
        let addr = l.local_addr().unwrap();
        let log = Log::default();
        let l2 = log.clone();
        let start = Instant::now();
        let (lt, ()) = spawn_loop(backend, Config::default(), move |r| {
            r.connect_tcp(addr, Duration::from_millis(300), client(&l2, b""))
                .unwrap();
        });
        let l = wait_log(&log, "connection_failed", |l| !l.is_empty());
        let took = start.elapsed();
        assert!(l[0].starts_with("failed TimedOut"), "{l:?}");
        assert!(took >= Duration::from_millis(300), "failed after {took:?}");
        assert_eq!(lt.call(|ctx| ctx.handler_count()), 0);
        lt.stop().unwrap();
    }

    /// A graceful shutdown abandons a connect in progress: `connection_failed`
    /// (`ConnectionAborted`), and the shutdown does not wait for the connect timeout.
    fn shutdown_abandons_connect(backend: Backend) {
        let (l, _filled) = full_listener();
        let addr = l.local_addr().unwrap();
        let log = Log::default();
        let l2 = log.clone();
        let (mut lt, ()) = spawn_loop(backend, Config::default(), move |r| {
            r.connect_tcp(addr, Duration::from_secs(30), client(&l2, b""))
                .unwrap();
        });
        lt.handle.shutdown().unwrap();
        lt.join(DEADLINE).unwrap();
        let l = log_of(&log);
        assert_eq!(l.len(), 1, "{l:?}");
        assert!(l[0].starts_with("failed ConnectionAborted"), "{l:?}");
    }
);

/// FTP's active mode: a server protocol connects out from inside its callback (a
/// "PORT addr" line) and relays what the new connection receives to its client.
struct Control {
    data: Option<readyloop::reactor::HandlerId>,
}

/// The outgoing data connection: reports what it reads to the control connection.
struct DataConn {
    control: readyloop::reactor::HandlerId,
}

impl Protocol for DataConn {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        conn.write(b"data hello\n");
        conn.write_to(self.control, b"200 connected\n");
    }
    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
        conn.write_to(self.control, data);
    }
    fn connection_failed(&mut self, conn: &mut Conn<'_, '_>, reason: &io::Error) {
        let msg = format!("425 {:?}\n", reason.kind());
        conn.write_to(self.control, msg.as_bytes());
    }
}

impl Protocol for Control {
    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
        let line = String::from_utf8_lossy(data);
        let Some(addr) = line.trim().strip_prefix("PORT ") else {
            conn.write(b"500 ?\n");
            return;
        };
        let Ok(addr) = addr.parse::<SocketAddr>() else {
            conn.write(b"501 bad address\n");
            return;
        };
        let me = conn.id();
        match conn.connect_tcp(addr, Duration::from_secs(5), DataConn { control: me }) {
            Ok(id) => self.data = Some(id),
            Err(e) => {
                conn.write(format!("425 {e}\n").as_bytes());
            }
        }
    }
}

per_backend!(
    fn connect_from_a_handler(backend: Backend) {
        let (lt, addr) = spawn_loop(backend, Config::default(), |r| {
            // A plain closure is a factory (no `|_: &_|`, no cast).
            r.listen_tcp("127.0.0.1:0", |_| Some(Box::new(Control { data: None })))
                .unwrap()
                .1
        });
        let data_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = connect(addr);
        c.write_all(format!("PORT {}\n", data_listener.local_addr().unwrap()).as_bytes())
            .unwrap();
        let (mut d, _) = data_listener.accept().unwrap();
        timeouts(&d);
        let mut got = [0u8; 11];
        d.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"data hello\n");
        let mut reply = [0u8; 14];
        c.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"200 connected\n");
        d.write_all(b"file bytes").unwrap();
        let mut relayed = [0u8; 10];
        c.read_exact(&mut relayed).unwrap();
        assert_eq!(&relayed, b"file bytes");

        // A refused data connection is reported on the control connection.
        let dead = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        c.write_all(format!("PORT {dead}\n").as_bytes()).unwrap();
        let mut reply = [0u8; 22];
        c.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"425 ConnectionRefused\n");
        lt.stop().unwrap();
    }

    /// `StreamConfig::nodelay` applies to outgoing sockets: the server sees a client
    /// whose small writes are not held back by Nagle (checked on the socket itself
    /// through the connection's `TCP_NODELAY` as the reactor left it).
    fn nodelay_on_outgoing(backend: Backend) {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        for on in [true, false] {
            let (tx, rx) = std::sync::mpsc::channel();
            struct Probe(std::sync::mpsc::Sender<bool>);
            impl Protocol for Probe {
                fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
                    let _ = self.0.send(conn.nodelay().unwrap());
                }
                fn data_received(&mut self, _conn: &mut Conn<'_, '_>, _data: &[u8]) {}
            }
            let (lt, ()) = spawn_loop(backend, Config::default(), move |r| {
                let cfg = StreamConfig {
                    nodelay: on,
                    ..StreamConfig::default()
                };
                r.connect_tcp_with(addr, Duration::from_secs(5), Probe(tx), cfg)
                    .unwrap();
            });
            let _accepted = server.accept().unwrap();
            assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), on);
            lt.stop().unwrap();
        }
    }

    /// `connect_unix`: connected at once; the echo server on the same reactor answers.
    fn unix_connect(backend: Backend) {
        let path = temp_socket_path("connect");
        let log = Log::default();
        let l2 = log.clone();
        let p2 = path.clone();
        let (lt, ()) = spawn_loop(backend, Config::default(), move |r| {
            r.listen_unix(
                &p2,
                Echo::factory(EchoOptions::default()),
                Default::default(),
            )
            .unwrap();
            r.connect_unix(&p2, client(&l2, b"over unix"), StreamConfig::default())
                .unwrap();
        });
        wait_log(&log, "echo over unix", |l| {
            l.iter().any(|e| e == "data over unix")
        });
        assert_eq!(log_of(&log)[0], "made unix");
        lt.stop().unwrap();
        let missing = readyloop::reactor::Reactor::new(backend)
            .unwrap()
            .connect_unix(&path, client(&log, b""), StreamConfig::default())
            .unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    }

    /// An address that does not resolve is an error of the call, not a callback.
    fn unresolvable_is_an_error(backend: Backend) {
        let mut r = readyloop::reactor::Reactor::new(backend).unwrap();
        let log = Log::default();
        let e = r
            .connect_tcp(
                "no-such-host.invalid:80",
                Duration::from_secs(1),
                client(&log, b""),
            )
            .unwrap_err();
        assert!(!e.to_string().is_empty());
        assert!(log_of(&log).is_empty());
        assert_eq!(r.handler_count(), 0);
    }
);
