//! A TCP relay (port forwarder), as Twisted's `portforward`: every client connection
//! gets its own connection to the backend, and bytes flow both ways.
//!
//! ```text
//! cargo run --release --example echo_server -- --listen 127.0.0.1:7007 &
//! cargo run --release --example proxy -- --listen 127.0.0.1:7008 --to 127.0.0.1:7007
//! nc 127.0.0.1 7008
//! ```
//!
//! What it shows of the library:
//! * outgoing connections: `connect_tcp_with` from inside the client's
//!   `connection_made`, with a connect timeout; a refused or timed-out backend
//!   (`connection_failed`) closes the client cleanly;
//! * flow control between connections: each side `produce_into` the other, so a
//!   client that stops reading stops the proxy reading the backend (and the reverse),
//!   and memory stays bounded by the watermarks whatever the peers do;
//! * half-close forwarded in both orders: an EOF from one peer becomes a
//!   `shutdown_write` towards the other, and each side closes once both of its
//!   directions are done;
//! * graceful shutdown (SIGINT/SIGTERM): both sides flush what they hold, then close.

mod common;

use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use readyloop::net::{Conn, Listen, ListenConfig, Protocol, StreamConfig};
use readyloop::reactor::{HandlerId, Reactor};
use readyloop::selector::Backend;

#[derive(Parser, Debug)]
#[command(about = "TCP relay on the readyloop reactor")]
struct Args {
    /// Readiness backend: select, poll, epoll, epoll-et, mio, polling.
    #[arg(long, default_value_t = Backend::best())]
    backend: Backend,
    /// TCP address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:7008")]
    listen: String,
    /// The backend to relay to.
    #[arg(long)]
    to: String,
    /// How long a connect to the backend may take, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    connect_timeout_ms: u64,
    /// Refuse clients beyond this many.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
}

/// What one side of a relay asks of the other.
enum Relay {
    /// Our peer sent EOF: shut your write side once your output is sent.
    ShutWrite,
    /// Our side is gone: close (after sending what you hold).
    Close,
}

/// One side of a relay: the client's connection (which connects the backend when
/// it is made) or the backend's.
struct Side {
    /// The other side's connection, once there is one.
    other: Option<HandlerId>,
    /// Client side only: where to connect, and how long it may take.
    backend: Option<(SocketAddr, Duration)>,
}

impl Side {
    fn tell_other(&self, conn: &mut Conn<'_, '_>, msg: Relay) {
        if let Some(other) = self.other {
            // `false`: the other side is gone already; nothing to tell.
            conn.notify(other, Box::new(msg));
        }
    }
}

impl Protocol for Side {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        if let Some((addr, timeout)) = self.backend {
            let back = Side {
                other: Some(conn.id()),
                backend: None,
            };
            match conn
                .reactor()
                .connect_tcp_with(addr, timeout, back, StreamConfig::default())
            {
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
        self.tell_other(conn, Relay::ShutWrite);
        // Keep the connection: the other direction may still carry data. It closes
        // once our write side is shut too.
        true
    }

    fn event(&mut self, conn: &mut Conn<'_, '_>, event: Box<dyn Any>) {
        match event.downcast_ref::<Relay>() {
            Some(Relay::ShutWrite) => conn.shutdown_write(),
            Some(Relay::Close) => conn.close(),
            None => {}
        }
    }

    fn connection_failed(&mut self, conn: &mut Conn<'_, '_>, reason: &io::Error) {
        log::warn!("backend: {reason}");
        self.tell_other(conn, Relay::Close);
    }

    fn connection_lost(&mut self, conn: &mut Conn<'_, '_>, reason: Option<&io::Error>) {
        if let Some(e) = reason {
            log::debug!("{}: {e}", conn.peer());
        }
        self.tell_other(conn, Relay::Close);
    }
}

fn main() {
    common::init_logging();
    let args = Args::parse();
    let to: SocketAddr =
        match std::net::ToSocketAddrs::to_socket_addrs(args.to.as_str()).map(|mut a| a.next()) {
            Ok(Some(a)) => a,
            Ok(None) => common::die(&format!("--to {}", args.to), "resolves to nothing"),
            Err(e) => common::die(&format!("--to {}", args.to), e),
        };
    let timeout = Duration::from_millis(args.connect_timeout_ms);
    let mut reactor = Reactor::new(args.backend).unwrap_or_else(|e| common::die("reactor", e));
    reactor
        .handle_signals()
        .unwrap_or_else(|e| common::die("signals", e));
    let cfg = ListenConfig {
        max_connections: args.max_connections,
        ..ListenConfig::default()
    };
    // The factory: a plain closure building the client side of each relay.
    let (_, addr) = reactor
        .listen_tcp_with(
            args.listen.as_str(),
            move |_| {
                Some(Box::new(Side {
                    other: None,
                    backend: Some((to, timeout)),
                }))
            },
            cfg,
        )
        .unwrap_or_else(|e| common::die(&format!("listen on {}", args.listen), e));
    log::info!("relaying to {to}");
    common::announce(&format!("tcp://{addr}"), args.backend);
    if let Err(e) = reactor.run() {
        common::die("event loop", e);
    }
}
