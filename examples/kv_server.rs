//! A key-value server over lines (`readyloop::proto::kv`): one store shared by every
//! connection (`Rc<RefCell<..>>` on the reactor's thread), a line protocol, an idle
//! timeout.
//!
//! ```text
//! cargo run --release --example kv_server -- --listen 127.0.0.1:7009
//! printf 'SET greeting hello world\nGET greeting\nKEYS\nQUIT\n' | nc 127.0.0.1 7009
//! ```

mod common;

use std::time::Duration;

use clap::Parser;
use readyloop::net::Listen;
use readyloop::proto::kv::{Kv, KvOptions, Store};
use readyloop::reactor::Reactor;
use readyloop::selector::Backend;

#[derive(Parser, Debug)]
#[command(about = "Line-protocol key-value server on the readyloop reactor")]
struct Args {
    /// Readiness backend: select, poll, epoll, epoll-et, mio, polling.
    #[arg(long, default_value_t = Backend::best())]
    backend: Backend,
    /// TCP address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:7009")]
    listen: String,
    /// Close a connection after this many milliseconds without input (0: never).
    #[arg(long, default_value_t = 300_000)]
    idle_timeout_ms: u64,
    /// Most keys the store holds.
    #[arg(long, default_value_t = 1_000_000)]
    max_keys: usize,
}

fn main() {
    common::init_logging();
    let args = Args::parse();
    let mut reactor = Reactor::new(args.backend).unwrap_or_else(|e| common::die("reactor", e));
    reactor
        .handle_signals()
        .unwrap_or_else(|e| common::die("signals", e));
    let opts = KvOptions {
        idle_timeout: (args.idle_timeout_ms > 0)
            .then(|| Duration::from_millis(args.idle_timeout_ms)),
        ..KvOptions::default()
    };
    let store = Store::shared(args.max_keys);
    let (_, addr) = reactor
        .listen_tcp(args.listen.as_str(), Kv::factory(store.clone(), opts))
        .unwrap_or_else(|e| common::die(&format!("listen on {}", args.listen), e));
    common::announce(&format!("tcp://{addr}"), args.backend);
    if let Err(e) = reactor.run() {
        common::die("event loop", e);
    }
    log::info!("stopped with {} keys", store.borrow().len());
}
