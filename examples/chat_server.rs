//! Chat server: one set of rooms for `nc` users (line protocol), IRC clients and the
//! classroom UDP chat.
//!
//! ```text
//! cargo run --release --example chat_server -- --backend epoll-et
//! nc 127.0.0.1 7070                      # first line: your nickname; /help
//! irssi -c 127.0.0.1 -p 6667             # or weechat, ii; you start in #lobby
//! nc -u 127.0.0.1 6666                   # username@NAME, then text; /leave
//! ```
//!
//! Prints one ready line per front end, in this order:
//! `listening on tcp://ADDR (backend B)`, `listening on irc://ADDR (backend B)`,
//! `listening on udp://ADDR (backend B)`. SIGINT/SIGTERM: every client is told, the
//! output flushed, exit 0.

mod common;

use std::time::Duration;

use clap::Parser;
use readyloop::proto::chat::{ChatConfig, ChatServer};
use readyloop::reactor::{Ctx, Reactor};
use readyloop::selector::Backend;

#[derive(Parser, Debug)]
#[command(about = "Chat server (line protocol, IRC, classroom UDP) on the readyloop reactor")]
struct Args {
    /// Readiness backend: select, poll, epoll, epoll-et, mio, polling.
    #[arg(long, default_value_t = Backend::best())]
    backend: Backend,
    /// TCP address of the line protocol (nc, telnet); port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: String,
    /// TCP address of the IRC front end.
    #[arg(long, default_value = "127.0.0.1:6667")]
    irc: String,
    /// UDP address of the classroom chat.
    #[arg(long, default_value = "127.0.0.1:6666")]
    udp: String,
    /// Messages kept per room and replayed on join.
    #[arg(long, default_value_t = 20)]
    history: usize,
    /// Lines a client may send at once (flood limit burst).
    #[arg(long, default_value_t = 20)]
    flood_burst: u32,
    /// Lines per second a client may keep sending.
    #[arg(long, default_value_t = 10.0)]
    flood_rate: f64,
    /// Drop a client whose pending output exceeds this many bytes (it stopped reading).
    #[arg(long, default_value_t = 1 << 20)]
    max_output: usize,
    /// Remove UDP members silent for this many seconds.
    #[arg(long, default_value_t = 300.0)]
    udp_idle_secs: f64,
    /// Refuse connections beyond this many (per listener).
    #[arg(long, default_value_t = 100_000)]
    max_connections: usize,
}

fn main() {
    common::init_logging();
    let args = Args::parse();
    let mut cfg = ChatConfig::default();
    cfg.core.history = args.history;
    cfg.flood_burst = args.flood_burst;
    cfg.flood_rate = args.flood_rate;
    cfg.listen.stream.max_output = Some(args.max_output);
    cfg.listen.max_connections = args.max_connections;
    cfg.udp_idle = Duration::try_from_secs_f64(args.udp_idle_secs)
        .unwrap_or_else(|e| common::die("--udp-idle-secs", e));
    let chat = ChatServer::new(cfg);
    let mut reactor = Reactor::new(args.backend).unwrap_or_else(|e| common::die("reactor", e));
    reactor
        .handle_signals()
        .unwrap_or_else(|e| common::die("signals", e));
    let (_, lines) = chat
        .listen_lines(&mut reactor, args.listen.as_str())
        .unwrap_or_else(|e| common::die(&format!("listen on {}", args.listen), e));
    let (_, irc) = chat
        .listen_irc(&mut reactor, args.irc.as_str())
        .unwrap_or_else(|e| common::die(&format!("listen on {}", args.irc), e));
    let (_, udp) = chat
        .bind_udp(&mut reactor, args.udp.as_str())
        .unwrap_or_else(|e| common::die(&format!("bind udp {}", args.udp), e));
    common::announce(&format!("tcp://{lines}"), args.backend);
    common::announce(&format!("irc://{irc}"), args.backend);
    common::announce(&format!("udp://{udp}"), args.backend);
    let first = reactor.with_ctx(|ctx| Status::now(&chat, ctx));
    log_status(first, &chat, &mut reactor);
    if let Err(e) = reactor.run() {
        common::die("event loop", e);
    }
    log::info!(
        "chat server stopped; {} panic(s) contained",
        reactor.panics_contained()
    );
}

/// What the periodic status line reports.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Status {
    members: usize,
    panics: u64,
}

impl Status {
    fn now(chat: &ChatServer, ctx: &Ctx<'_>) -> Status {
        Status {
            members: chat.members(),
            panics: ctx.panics_contained(),
        }
    }
}

/// Every minute, a status line (members, panics contained) when it changed.
fn log_status(last: Status, chat: &ChatServer, reactor: &mut Reactor) {
    fn tick(last: Status, chat: ChatServer, ctx: &mut Ctx<'_>) {
        let now = Status::now(&chat, ctx);
        if now != last {
            log::info!(
                "chat: {} member(s), {} panic(s) contained",
                now.members,
                now.panics
            );
        }
        ctx.call_later(STATUS_EVERY, move |ctx| tick(now, chat, ctx));
    }
    let chat = chat.clone();
    reactor.call_later(STATUS_EVERY, move |ctx| tick(last, chat, ctx));
}

const STATUS_EVERY: Duration = Duration::from_secs(60);
