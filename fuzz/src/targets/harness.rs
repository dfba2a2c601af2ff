//! Drives whole server connections in-process: a [`Reactor`] on a chosen backend, and
//! for each client one end of a Unix socket pair whose other end is a registered
//! [`Stream`] with the server's protocol. Bytes go in through the client ends, the
//! reactor runs (`run_once` without waiting: due timers, readiness, deferred work)
//! until nothing moves, and what the server wrote is collected per client.
//!
//! No port, no listener, no TIME_WAIT: a fuzzer can create thousands of these a
//! second. The peer address the protocol sees is a made-up loopback one.
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use readyloop::net::{PeerAddr, Protocol, Stream, StreamConfig};
use readyloop::reactor::{Config, PanicPolicy, Reactor};
use readyloop::selector::Backend;
use readyloop::sys::socket;

/// Most loop iterations one [`Harness::pump`] may take before the server is deemed to
/// spin (a finding, not a harness limit: an idle server stops within a few).
const SPIN_LIMIT: usize = 20_000;

/// One client: its socket end and what the server sent it.
pub struct Client {
    sock: Option<UnixStream>,
    /// Everything the server wrote to this client so far.
    pub out: Vec<u8>,
    /// The server closed (or shut the write side of) the connection.
    pub eof: bool,
    /// The server reset the connection.
    pub reset: bool,
    write_shut: bool,
}

/// A reactor and its in-process clients.
pub struct Harness {
    /// The reactor (its handlers are the server side of every client).
    pub reactor: Reactor,
    /// The clients, in the order they connected.
    pub clients: Vec<Client>,
}

/// The backend and reactor configuration a fuzz byte chooses: the backend, and the
/// event budget (how many events one handler gets per report before it is requeued).
/// Panics propagate, so a panic in a protocol is a crash the fuzzer sees (the default
/// policy would contain it).
pub fn backend(b: u8) -> (Backend, Config) {
    let n = Backend::ALL.len();
    let budget = [16, 1, 2, 4][usize::from(b) / n % 4];
    (
        Backend::ALL[usize::from(b) % n],
        Config {
            event_budget: budget,
            panic_policy: PanicPolicy::Propagate,
            ..Config::default()
        },
    )
}

impl Harness {
    /// A reactor on `backend` with `config`.
    pub fn new((backend, config): (Backend, Config)) -> Harness {
        super::init_logging();
        Harness {
            reactor: Reactor::with_config(backend, config).expect("reactor"),
            clients: Vec::new(),
        }
    }

    /// Connects a client to `proto`; returns its index.
    pub fn connect(&mut self, proto: Box<dyn Protocol>, cfg: Rc<StreamConfig>) -> usize {
        let (server, client) = UnixStream::pair().expect("socketpair");
        client.set_nonblocking(true).expect("nonblocking");
        let port = 40000 + self.clients.len() as u16;
        let peer = PeerAddr::Inet(SocketAddr::from(([127, 0, 0, 1], port)));
        let fd: OwnedFd = server.into();
        let stream = Stream::new(fd, peer, proto, cfg).expect("stream");
        self.reactor
            .with_ctx(|ctx| stream.register(ctx))
            .expect("register");
        self.clients.push(Client {
            sock: Some(client),
            out: Vec::new(),
            eof: false,
            reset: false,
            write_shut: false,
        });
        self.clients.len() - 1
    }

    /// Sends `data` from client `i` (pumping the reactor while the socket is full).
    /// Bytes a closed server can no longer take are dropped, as a peer's would be.
    pub fn send(&mut self, i: usize, mut data: &[u8]) {
        let mut stuck = 0;
        while !data.is_empty() {
            let c = &mut self.clients[i];
            let Some(sock) = &c.sock else { return };
            if c.write_shut {
                return;
            }
            match socket::send(sock.as_fd(), data) {
                Ok(n) => {
                    data = &data[n..];
                    stuck = 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    stuck += 1;
                    // The server stops reading only while its output is above the
                    // watermark, and pumping reads that output: it must move.
                    assert!(stuck < 1000, "the server stopped reading for good");
                    self.pump();
                }
                Err(_) => return,
            }
        }
    }

    /// Half-closes client `i` (the server reads EOF).
    pub fn shutdown_write(&mut self, i: usize) {
        let c = &mut self.clients[i];
        if let Some(sock) = &c.sock {
            let _ = sock.shutdown(std::net::Shutdown::Write);
            c.write_shut = true;
        }
    }

    /// Closes client `i`'s socket (after collecting what is there).
    pub fn close(&mut self, i: usize) {
        self.collect(i);
        self.clients[i].sock = None;
    }

    /// Reads what the server sent client `i`; returns how many bytes.
    fn collect(&mut self, i: usize) -> usize {
        let c = &mut self.clients[i];
        let Some(sock) = &mut c.sock else { return 0 };
        let mut buf = [0u8; 16 * 1024];
        let mut got = 0;
        loop {
            match sock.read(&mut buf) {
                Ok(0) => {
                    c.eof = true;
                    return got;
                }
                Ok(n) => {
                    c.out.extend_from_slice(&buf[..n]);
                    got += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    c.reset = true;
                    c.eof = true;
                    return got;
                }
            }
        }
    }

    /// Runs the reactor without waiting and reads every client, until a few rounds
    /// in a row move no byte. Panics if the server never settles.
    pub fn pump(&mut self) {
        let mut quiet = 0;
        for _ in 0..SPIN_LIMIT {
            self.reactor
                .run_once(Some(Duration::ZERO))
                .expect("run_once");
            let mut got = 0;
            for i in 0..self.clients.len() {
                got += self.collect(i);
            }
            if got == 0 {
                quiet += 1;
                if quiet >= 3 {
                    return;
                }
            } else {
                quiet = 0;
            }
        }
        panic!("the server never settles: still writing after {SPIN_LIMIT} loop iterations");
    }

    /// Checks nothing was contained (the harness propagates; a protocol could still
    /// run a reactor of its own).
    pub fn assert_no_panics(&self) {
        assert_eq!(self.reactor.panics_contained(), 0, "a handler panicked");
    }
}
