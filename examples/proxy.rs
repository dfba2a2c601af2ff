//! A TCP relay (port forwarder), as Twisted's `portforward`: every client connection
//! gets its own connection to the backend, and bytes flow both ways.
//!
//! ```text
//! cargo run --release --example echo_server -- --listen 127.0.0.1:7007 &
//! cargo run --release --example proxy -- --listen 127.0.0.1:7008 --to 127.0.0.1:7007
//! nc 127.0.0.1 7008
//! ```
//!
//! The relay itself is `readyloop::proto::relay` (read it: it is short). What it
//! shows of the library:
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

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use readyloop::net::{Listen, ListenConfig, StreamConfig};
use readyloop::proto::relay::Relay;
use readyloop::reactor::Reactor;
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
            move |_| Some(Box::new(Relay::to(to, timeout, StreamConfig::default()))),
            cfg,
        )
        .unwrap_or_else(|e| common::die(&format!("listen on {}", args.listen), e));
    log::info!("relaying to {to}");
    common::announce(&format!("tcp://{addr}"), args.backend);
    if let Err(e) = reactor.run() {
        common::die("event loop", e);
    }
}
