//! RFC 862 echo server over TCP, and optionally UDP and a Unix-domain socket.
//!
//! ```text
//! cargo run --release --example echo_server -- --backend epoll-et --listen 127.0.0.1:7007
//! nc 127.0.0.1 7007
//! ```

mod common;

use clap::Parser;
use readyloop::net::{Listen, ListenConfig};
use readyloop::proto::echo::{Echo, EchoOptions, UdpEcho};
use readyloop::reactor::pool::Pool;
use readyloop::reactor::Reactor;
use readyloop::selector::Backend;

#[derive(Parser, Debug)]
#[command(about = "RFC 862 echo server on the readyloop reactor")]
struct Args {
    /// Readiness backend: select, poll, epoll, epoll-et, mio, polling.
    #[arg(long, default_value_t = Backend::best())]
    backend: Backend,
    /// TCP address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:7007")]
    listen: String,
    /// Also serve UDP echo on this address.
    #[arg(long)]
    udp: Option<String>,
    /// Also serve on a Unix-domain stream socket at this path.
    #[arg(long)]
    unix: Option<std::path::PathBuf>,
    /// Answer in upper case (the classroom variant).
    #[arg(long)]
    upper: bool,
    /// Refuse connections beyond this many (across all reactors).
    #[arg(long, default_value_t = 100_000)]
    max_connections: usize,
    #[command(flatten)]
    pool: common::PoolArgs,
}

fn main() {
    common::init_logging();
    let args = Args::parse();
    let opts = EchoOptions { upper: args.upper };
    if args.pool.pooled() {
        serve_pooled(args, opts);
        return;
    }
    let mut reactor = Reactor::new(args.backend).unwrap_or_else(|e| common::die("reactor", e));
    reactor
        .handle_signals()
        .unwrap_or_else(|e| common::die("signals", e));
    let cfg = ListenConfig {
        max_connections: args.max_connections,
        ..ListenConfig::default()
    };
    let (_, tcp) = reactor
        .listen_tcp_with(args.listen.as_str(), Echo::factory(opts), cfg.clone())
        .unwrap_or_else(|e| common::die(&format!("listen on {}", args.listen), e));
    common::announce(&format!("tcp://{tcp}"), args.backend);
    if let Some(addr) = &args.udp {
        let (_, udp) = reactor
            .bind_udp(addr.as_str(), UdpEcho::new(opts))
            .unwrap_or_else(|e| common::die(&format!("bind udp {addr}"), e));
        common::announce(&format!("udp://{udp}"), args.backend);
    }
    if let Some(path) = &args.unix {
        reactor
            .listen_unix(path, Echo::factory(opts), cfg)
            .unwrap_or_else(|e| common::die(&format!("listen on {}", path.display()), e));
        common::announce(&format!("unix:{}", path.display()), args.backend);
    }
    if let Err(e) = reactor.run() {
        common::die("event loop", e);
    }
}

/// `--threads N`: N reactors share the TCP address; UDP and Unix go to reactor 0.
fn serve_pooled(args: Args, opts: EchoOptions) {
    let cfg = ListenConfig {
        max_connections: args.max_connections,
        ..ListenConfig::default()
    };
    let threads = args.pool.threads as usize;
    let tcp = args.pool.bind(&args.listen, cfg.clone());
    let backend = args.backend;
    // UDP and Unix sockets are bound here, so the ready lines come before serving.
    let udp = args.udp.as_ref().map(|addr| {
        std::net::UdpSocket::bind(addr.as_str())
            .unwrap_or_else(|e| common::die(&format!("bind udp {addr}"), e))
    });
    log::info!(
        "{threads} reactors, accept strategy {} on {}",
        args.pool.accept,
        tcp.local_addr()
    );
    common::announce(&format!("tcp://{}", tcp.local_addr()), backend);
    if let Some(s) = &udp {
        if let Ok(a) = s.local_addr() {
            common::announce(&format!("udp://{a}"), backend);
        }
    }
    let udp = std::sync::Mutex::new(udp);
    let unix = args.unix.clone();
    let pool = Pool::new(backend, threads).handle_signals(true);
    common::run_pool(pool, move |reactor, member| {
        tcp.attach(reactor, member, Echo::factory(opts))?;
        if member.index() == 0 {
            let sock = udp.lock().map(|mut u| u.take()).unwrap_or(None);
            if let Some(sock) = sock {
                reactor.with_ctx(|ctx| {
                    readyloop::net::DatagramSocket::new(sock, Box::new(UdpEcho::new(opts)))?
                        .register(ctx)
                })?;
            }
            if let Some(path) = &unix {
                reactor.listen_unix(path, Echo::factory(opts), cfg.clone())?;
                common::announce(&format!("unix:{}", path.display()), backend);
            }
        }
        Ok(())
    });
}
