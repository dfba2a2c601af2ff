//! Service discovery by UDP broadcast: `serve` answers probes with a name and the
//! services it offers; `find` broadcasts a probe and lists every answer within a
//! timeout.
//!
//! ```text
//! cargo run --example udp_discovery -- serve --name alpha --listen 0.0.0.0:7979 \
//!     --offer tftp://127.0.0.1:6969
//! cargo run --example udp_discovery -- find --to 127.255.255.255:7979
//! ```
//!
//! Several servers may share one port on one host (the socket is bound with
//! `SO_REUSEADDR`; each gets a copy of every broadcast). `find` prints one line per
//! server, `found NAME at ADDR offers URL URL...`, then `N found`, and exits 0.

mod common;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use readyloop::net::{Listen, UdpConfig};
use readyloop::proto::discovery::{DiscoveryServer, Finder, Found};
use readyloop::reactor::Reactor;
use readyloop::selector::Backend;

#[derive(Parser, Debug)]
#[command(about = "UDP broadcast discovery on the readyloop reactor")]
struct Args {
    /// Readiness backend: select, poll, epoll, epoll-et, mio, polling.
    #[arg(long, default_value_t = Backend::best(), global = true)]
    backend: Backend,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Answer discovery probes.
    Serve {
        /// Address to listen on: the wildcard address, to hear broadcasts.
        #[arg(long, default_value = "0.0.0.0:7979")]
        listen: String,
        /// This server's name in answers.
        #[arg(long, default_value = "readyloop")]
        name: String,
        /// A service offered (repeatable), e.g. tftp://10.0.0.2:6969.
        #[arg(long)]
        offer: Vec<String>,
    },
    /// Broadcast a probe and list the answers.
    Find {
        /// Where to send the probe: a broadcast address and the servers' port.
        #[arg(long, default_value = "127.255.255.255:7979")]
        to: SocketAddr,
        /// How long to wait for answers, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
        /// Local address to send from.
        #[arg(long, default_value = "0.0.0.0:0")]
        bind: String,
    },
}

fn main() {
    common::init_logging();
    let args = Args::parse();
    let mut reactor = Reactor::new(args.backend).unwrap_or_else(|e| common::die("reactor", e));
    match args.cmd {
        Cmd::Serve {
            listen,
            name,
            offer,
        } => {
            reactor
                .handle_signals()
                .unwrap_or_else(|e| common::die("signals", e));
            let cfg = UdpConfig {
                broadcast: true,
                reuse_addr: true,
            };
            let (_, addr) = reactor
                .bind_udp_with(listen.as_str(), DiscoveryServer::new(name, offer), cfg)
                .unwrap_or_else(|e| common::die(&format!("bind udp {listen}"), e));
            common::announce(&format!("udp://{addr}"), args.backend);
            if let Err(e) = reactor.run() {
                common::die("event loop", e);
            }
        }
        Cmd::Find {
            to,
            timeout_ms,
            bind,
        } => {
            let result: Rc<RefCell<Option<Vec<Found>>>> = Rc::default();
            let sink = result.clone();
            let finder = Finder::new(to, Duration::from_millis(timeout_ms), move |ctx, found| {
                *sink.borrow_mut() = Some(found);
                ctx.stop();
            });
            let cfg = UdpConfig {
                broadcast: true,
                reuse_addr: false,
            };
            reactor
                .bind_udp_with(bind.as_str(), finder, cfg)
                .unwrap_or_else(|e| common::die(&format!("bind udp {bind}"), e));
            if let Err(e) = reactor.run() {
                common::die("event loop", e);
            }
            let found = result.borrow_mut().take().unwrap_or_default();
            for f in &found {
                println!(
                    "found {} at {} offers {}",
                    f.name,
                    f.from,
                    f.offers.join(" ")
                );
            }
            println!("{} found", found.len());
        }
    }
}
