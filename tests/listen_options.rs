//! Listener options that save work per connection: accepted sockets inherit
//! `TCP_NODELAY` from the listener (no `setsockopt` each), and `TCP_DEFER_ACCEPT`
//! (`ListenConfig::defer_accept`, on for the HTTP server) hands over a connection with
//! its first bytes, which are read at once.
//!
//! Every case runs on every backend (each case is written inside `per_backend!`,
//! from `tests/support`).

#[macro_use]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use readyloop::net::{Conn, Listen, ListenConfig, Protocol, StreamConfig};
use readyloop::proto::echo::{Echo, EchoOptions};
use readyloop::reactor::Config;
use readyloop::selector::Backend;
use readyloop::sys::stats;

use support::*;

/// The syscall counters are process-wide: the cases of this file run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Reports the accepted socket's `TCP_NODELAY` as the kernel has it, then echoes.
struct Probe(mpsc::Sender<bool>);

impl Protocol for Probe {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        let _ = self.0.send(conn.nodelay().unwrap_or(false));
    }
    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
        conn.write(data);
    }
}

per_backend!(
    /// With `StreamConfig::nodelay` (the default) an accepted socket has `TCP_NODELAY`
    /// although the listener set it only once on itself; with it off, it has not.
    fn accepted_sockets_inherit_nodelay(backend: Backend) {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        for on in [true, false] {
            let (tx, rx) = mpsc::channel();
            let (lt, addr) = spawn_loop(backend, Config::default(), move |r| {
                let cfg = ListenConfig {
                    stream: StreamConfig {
                        nodelay: on,
                        ..StreamConfig::default()
                    },
                    ..ListenConfig::default()
                };
                let tx = tx.clone();
                r.listen_tcp_with(
                    "127.0.0.1:0",
                    move |_: &_| Some(Box::new(Probe(tx.clone())) as Box<dyn Protocol>),
                    cfg,
                )
                .unwrap()
                .1
            });
            let _c = TcpStream::connect(addr).unwrap();
            assert_eq!(
                rx.recv_timeout(DEADLINE).unwrap(),
                on,
                "{backend}: nodelay {on}"
            );
            lt.stop().unwrap();
        }
    }

    /// `defer_accept`: connections that send first are served (the listener reads their
    /// first bytes without waiting for a readiness report; how many waits that saves is
    /// the lab's churn figure), and the server spends no `setsockopt` or other
    /// miscellaneous call per connection (the crate's syscall counters).
    fn defer_accept_serves_at_once(backend: Backend) {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (lt, addr) = spawn_loop(backend, Config::default(), move |r| {
            let cfg = ListenConfig {
                defer_accept: Some(Duration::from_secs(1)),
                ..ListenConfig::default()
            };
            r.listen_tcp_with("127.0.0.1:0", Echo::factory(EchoOptions::default()), cfg)
                .unwrap()
                .1
        });
        let base = stats::snapshot();
        stats::enable(true);
        for i in 0..20u8 {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(DEADLINE)).unwrap();
            c.write_all(&[i; 10]).unwrap();
            let mut b = [0u8; 10];
            c.read_exact(&mut b).unwrap();
            assert_eq!(b, [i; 10], "{backend}");
        }
        stats::enable(false);
        let counts = stats::snapshot().since(&base);
        lt.stop().unwrap();
        assert_eq!(
            counts.get(stats::Syscall::Other),
            0,
            "{backend}: a setsockopt or other call per connection: {counts:?}"
        );
    }
);
