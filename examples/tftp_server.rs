//! A TFTP server (RFC 1350 with blksize, timeout, tsize and windowsize options) on the
//! readyloop reactor: every transfer on its own UDP socket, retransmission on timers.
//!
//! ```text
//! cargo run --release --example tftp_server -- --root /srv/tftp --listen 127.0.0.1:6969
//! tftp 127.0.0.1 6969 -m binary -c get file.bin
//! curl -o file.bin tftp://127.0.0.1:6969/file.bin
//! ```

mod common;

use std::path::PathBuf;

use clap::Parser;
use readyloop::net::Listen;
use readyloop::proto::tftp::{TftpConfig, TftpServer};
use readyloop::reactor::Reactor;
use readyloop::selector::Backend;

#[derive(Parser, Debug)]
#[command(about = "TFTP server on the readyloop reactor")]
struct Args {
    /// Readiness backend: select, poll, epoll, epoll-et, mio, polling.
    #[arg(long, default_value_t = Backend::best())]
    backend: Backend,
    /// UDP address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:6969")]
    listen: String,
    /// Directory served (names are relative to it; nothing outside is reachable).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Accept uploads (write requests); never over an existing file.
    #[arg(long)]
    allow_write: bool,
    /// Most transfers at once; beyond, requests get ERROR 0.
    #[arg(long, default_value_t = 64)]
    max_transfers: usize,
    /// Reactors, one per thread, each with its own `SO_REUSEPORT` socket on the
    /// address (the kernel hashes each client to one; its transfers stay on that
    /// reactor). `--max-transfers` is split evenly between them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    threads: u64,
}

fn main() {
    common::init_logging();
    let args = Args::parse();
    let mut cfg = TftpConfig::new(&args.root);
    cfg.allow_write = args.allow_write;
    cfg.max_transfers = args.max_transfers;
    if args.threads > 1 {
        serve_pooled(&args, cfg);
        return;
    }
    let server = TftpServer::new(cfg).unwrap_or_else(|e| common::die("tftp", e));
    let mut reactor = Reactor::new(args.backend).unwrap_or_else(|e| common::die("reactor", e));
    reactor
        .handle_signals()
        .unwrap_or_else(|e| common::die("signals", e));
    let (_, addr) = reactor
        .bind_udp(args.listen.as_str(), server)
        .unwrap_or_else(|e| common::die(&format!("bind udp {}", args.listen), e));
    common::announce(&format!("tftp://{addr}"), args.backend);
    if let Err(e) = reactor.run() {
        common::die("event loop", e);
    }
}

/// `--threads N`: N reactors, each with its own `SO_REUSEPORT` UDP socket on the
/// address and its own `TftpServer`, admitting `ceil(max_transfers / N)` transfers.
fn serve_pooled(args: &Args, mut cfg: TftpConfig) {
    use readyloop::net::DatagramSocket;
    use readyloop::reactor::pool::Pool;
    use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
    use std::sync::Mutex;

    let n = args.threads as usize;
    cfg.max_transfers = cfg.max_transfers.div_ceil(n).max(1);
    TftpServer::new(cfg.clone()).unwrap_or_else(|e| common::die("tftp", e));
    let bind = |a: SocketAddr| {
        readyloop::sys::listen::bind_udp(a, true)
            .map(UdpSocket::from)
            .unwrap_or_else(|e| common::die(&format!("bind udp {a}"), e))
    };
    let first_addr = args
        .listen
        .as_str()
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| common::die("bind udp", format!("cannot resolve {}", args.listen)));
    let first = bind(first_addr);
    let addr = first
        .local_addr()
        .unwrap_or_else(|e| common::die("bind udp", e));
    let mut socks = vec![Some(first)];
    socks.extend((1..n).map(|_| Some(bind(addr))));
    let socks = Mutex::new(socks);
    log::info!("{n} reactors, a SO_REUSEPORT socket each on {addr}");
    common::announce(&format!("tftp://{addr}"), args.backend);
    let pool = Pool::new(args.backend, n).handle_signals(true);
    common::run_pool(pool, move |reactor, member| {
        let sock = socks
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .get_mut(member.index())
            .and_then(Option::take)
            .ok_or_else(|| std::io::Error::other("no socket for this reactor"))?;
        let server = TftpServer::new(cfg.clone())?;
        reactor.with_ctx(|ctx| DatagramSocket::new(sock, Box::new(server))?.register(ctx))?;
        Ok(())
    });
}
