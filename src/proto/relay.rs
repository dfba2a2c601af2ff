//! A TCP relay (port forwarder), as Twisted's `portforward`: every accepted client
//! connection gets its own outgoing connection to a backend, and bytes flow both ways.
//! `examples/proxy.rs` is a server around it.
//!
//! * The backend is connected from the client's `connection_made`
//!   ([`Conn::connect_tcp_with`]) with a connect timeout; a refused or timed-out
//!   backend closes the client cleanly (`connection_failed`).
//! * Flow control: each side [`produce_into`](Conn::produce_into) the other, so a
//!   client that stops reading stops the relay reading the backend (and the
//!   reverse): memory stays bounded by the watermarks whatever the peers do.
//! * Half-close is forwarded in both orders: an EOF from one peer becomes a
//!   `shutdown_write` towards the other; each side closes once both of its
//!   directions are done.
//! * A side that goes closes the other after it sent what it holds; a graceful
//!   shutdown flushes both sides, then closes them.
//!
//! # Examples
//!
//! A relay in front of an echo server, both on one reactor; a client on another
//! thread talks to the echo server through the relay, half-closes, reads the echo
//! to the end, and stops the reactor.
//!
//! ```
//! use std::io::{self, Read, Write};
//! use std::net::{Shutdown, SocketAddr, TcpStream};
//! use std::time::Duration;
//! use readyloop::net::{Listen, StreamConfig};
//! use readyloop::proto::echo::{Echo, EchoOptions};
//! use readyloop::proto::relay::Relay;
//! use readyloop::reactor::Reactor;
//! use readyloop::selector::Backend;
//!
//! let mut reactor = Reactor::new(Backend::EpollEt)?;
//! let (_, backend) = reactor.listen_tcp("127.0.0.1:0", Echo::factory(EchoOptions::default()))?;
//! let factory = Relay::factory(backend, Duration::from_secs(5), StreamConfig::default());
//! let (_, relay) = reactor.listen_tcp("127.0.0.1:0", factory)?;
//!
//! fn talk(relay: SocketAddr) -> io::Result<Vec<u8>> {
//!     let mut c = TcpStream::connect(relay)?;
//!     c.set_read_timeout(Some(Duration::from_secs(5)))?;
//!     c.write_all(b"through the relay\n")?;
//!     c.shutdown(Shutdown::Write)?; // forwarded to the backend as a half-close
//!     let mut echoed = Vec::new();
//!     c.read_to_end(&mut echoed)?;
//!     Ok(echoed)
//! }
//! let handle = reactor.handle();
//! let client = std::thread::spawn(move || {
//!     let echoed = talk(relay);
//!     let _ = handle.stop(); // whatever happened: the loop below must end
//!     echoed
//! });
//! reactor.run()?;
//! assert_eq!(client.join().expect("client thread")?, b"through the relay\n");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::net::{Conn, PeerAddr, Protocol, StreamConfig};
use crate::reactor::HandlerId;

/// What one side of a relay asks of the other.
enum Msg {
    /// Our peer sent EOF: shut your write side once your output is sent.
    ShutWrite,
    /// Our side is gone: close (after sending what you hold).
    Close,
}

/// One side of a relay: the client's connection (which connects the backend when it
/// is made) or the backend's.
pub struct Relay {
    /// The other side's connection, once there is one.
    other: Option<HandlerId>,
    /// Client side only: where to connect, how long it may take, with what settings.
    backend: Option<(SocketAddr, Duration, StreamConfig)>,
}

impl Relay {
    /// The client side of a relay to `to` (a connect may take `timeout`; the
    /// backend connection uses `cfg`).
    pub fn to(to: SocketAddr, timeout: Duration, cfg: StreamConfig) -> Relay {
        Relay {
            other: None,
            backend: Some((to, timeout, cfg)),
        }
    }

    /// A factory for listeners: each client is relayed to `to`.
    pub fn factory(
        to: SocketAddr,
        timeout: Duration,
        cfg: StreamConfig,
    ) -> impl FnMut(&PeerAddr) -> Option<Box<dyn Protocol>> {
        move |_| Some(Box::new(Relay::to(to, timeout, cfg.clone())) as Box<dyn Protocol>)
    }

    fn tell_other(&self, conn: &mut Conn<'_, '_>, msg: Msg) {
        if let Some(other) = self.other {
            // `false`: the other side is gone already; nothing to tell.
            conn.notify(other, Box::new(msg));
        }
    }
}

impl Protocol for Relay {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        if let Some((addr, timeout, cfg)) = self.backend.take() {
            let back = Relay {
                other: Some(conn.id()),
                backend: None,
            };
            match conn.connect_tcp_with(addr, timeout, back, cfg) {
                Ok(id) => self.other = Some(id),
                Err(e) => {
                    log::warn!("{}: cannot connect to {addr}: {e}", conn.peer());
                    conn.close();
                    return;
                }
            }
        }
        if let Some(other) = self.other {
            // Pace our reading by the other side's output: the other side then no
            // longer pauses its own reading for it (that deadlocks a relay).
            conn.produce_into(other);
        }
    }

    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
        if let Some(other) = self.other {
            if !conn.write_to(other, data) {
                // The other side is closing or gone: nothing more can be relayed.
                conn.close();
            }
        }
    }

    fn eof_received(&mut self, conn: &mut Conn<'_, '_>) -> bool {
        self.tell_other(conn, Msg::ShutWrite);
        // Keep the connection: the other direction may still carry data. It closes
        // once our write side is shut too.
        true
    }

    fn event(&mut self, conn: &mut Conn<'_, '_>, event: Box<dyn Any>) {
        match event.downcast_ref::<Msg>() {
            Some(Msg::ShutWrite) => conn.shutdown_write(),
            Some(Msg::Close) => conn.close(),
            None => {}
        }
    }

    fn connection_failed(&mut self, conn: &mut Conn<'_, '_>, reason: &io::Error) {
        log::warn!("backend: {reason}");
        self.tell_other(conn, Msg::Close);
    }

    fn connection_lost(&mut self, conn: &mut Conn<'_, '_>, reason: Option<&io::Error>) {
        if let Some(e) = reason {
            log::debug!("{}: {e}", conn.peer());
        }
        self.tell_other(conn, Msg::Close);
    }
}
