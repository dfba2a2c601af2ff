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
}

fn main() {
    common::init_logging();
    let args = Args::parse();
    let mut cfg = TftpConfig::new(&args.root);
    cfg.allow_write = args.allow_write;
    cfg.max_transfers = args.max_transfers;
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
