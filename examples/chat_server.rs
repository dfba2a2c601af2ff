//! Chat server: one set of rooms for `nc` users (line protocol), IRC clients and the
//! classroom UDP chat.
//!
//! ```text
//! cargo run --release --example chat_server -- --backend epoll-et
//! nc 127.0.0.1 7070                      # first line: your nickname; /help
//! irssi -c 127.0.0.1 -p 6667             # or weechat, ii; /join #lobby
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
use readyloop::proto::chat::{ChatConfig, ChatServer, OperAccount};
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
    /// The server's name in IRC prefixes and numerics.
    #[arg(long, default_value = "readyloop.chat")]
    server_name: String,
    /// The network's name (IRC 001 and ISUPPORT NETWORK).
    #[arg(long, default_value = "readyloop")]
    network: String,
    /// A file whose lines are the message of the day (default: a short greeting).
    #[arg(long)]
    motd: Option<std::path::PathBuf>,
    /// An IRC operator account, NAME:PASSWORD (hashed with Argon2id at start; the
    /// plain password stays visible in the process list: prefer --oper-file).
    #[arg(long, value_name = "NAME:PASSWORD")]
    oper: Vec<String>,
    /// A file of IRC operator accounts, one `NAME HASH` a line (HASH an Argon2 PHC
    /// string such as `argon2 SALT -id -e` prints); `#` starts a comment.
    #[arg(long)]
    oper_file: Option<std::path::PathBuf>,
    /// Join IRC clients to #lobby on connect (off: the IRC convention; nc and UDP
    /// users always start in the lobby).
    #[arg(long)]
    irc_autojoin: bool,
    /// A server password IRC clients must give with PASS (empty: none).
    #[arg(long)]
    password: Option<String>,
}

/// Reads the operator accounts of `--oper` and `--oper-file`.
fn opers(args: &Args) -> Vec<OperAccount> {
    let mut v = Vec::new();
    for o in &args.oper {
        let Some((name, pass)) = o.split_once(':') else {
            common::die("--oper", "expected NAME:PASSWORD");
        };
        v.push(OperAccount::from_password(name, pass).unwrap_or_else(|e| common::die("--oper", e)));
    }
    if let Some(path) = &args.oper_file {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| common::die(&format!("--oper-file {}", path.display()), e));
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let Some((name, hash)) = line.split_once(char::is_whitespace) else {
                common::die("--oper-file", format!("expected NAME HASH, got {line:?}"));
            };
            v.push(
                OperAccount::from_hash(name, hash.trim())
                    .unwrap_or_else(|e| common::die("--oper-file", e)),
            );
        }
    }
    v
}

fn main() {
    common::init_logging();
    let args = Args::parse();
    let mut cfg = ChatConfig::default();
    cfg.limits.history = args.history;
    cfg.flood_burst = args.flood_burst;
    cfg.flood_rate = args.flood_rate;
    cfg.listen.stream.max_output = Some(args.max_output);
    cfg.listen.max_connections = args.max_connections;
    cfg.udp_idle = Duration::try_from_secs_f64(args.udp_idle_secs)
        .unwrap_or_else(|e| common::die("--udp-idle-secs", e));
    cfg.server_name = args.server_name.clone();
    cfg.network = args.network.clone();
    if let Some(path) = &args.motd {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| common::die(&format!("--motd {}", path.display()), e));
        cfg.motd = text.lines().map(str::to_string).collect();
    }
    cfg.opers = opers(&args);
    cfg.irc_autojoin = args.irc_autojoin;
    cfg.password = args.password.clone().filter(|p| !p.is_empty());
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
