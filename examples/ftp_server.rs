//! FTP server (RFC 959 and its extensions) on the readyloop reactor, with the
//! classroom's length-prefixed "mini" file protocol as an optional second front end.
//!
//! ```text
//! cargo run --release --example ftp_server -- --root /srv/ftp
//! curl ftp://127.0.0.1:2121/
//! cargo run --release --example ftp_server -- --root /srv/ftp --mini 127.0.0.1:9999
//! ```
//!
//! Without `--users`, anonymous logins (read-only) are on; with `--users FILE`, only
//! its accounts, plus anonymous with `--anonymous`. Add an account with
//! `ftp_server --users FILE --add-user NAME --user-root DIR [--read-only]`, the
//! password read from the first line of stdin (stored as a salted Argon2id hash).
//!
//! Ready lines on stdout: `listening on ftp://ADDR (backend B)`, then, with `--mini`,
//! `listening on mini://ADDR (backend B)`. Access and transfer logs go to stderr.

mod common;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use readyloop::net::ListenConfig;
use readyloop::proto::ftp::accounts::{self, HashCost};
use readyloop::proto::ftp::mini::MiniConfig;
use readyloop::proto::ftp::{FtpConfig, FtpServer, SessionCounts, Users};
use readyloop::reactor::pool::Pool;
use readyloop::reactor::Reactor;
use readyloop::selector::Backend;

#[derive(Parser, Debug)]
#[command(about = "FTP server (RFC 959) and the mini file protocol on the readyloop reactor")]
struct Args {
    /// Readiness backend: select, poll, epoll, epoll-et, mio, polling.
    #[arg(long, default_value_t = Backend::best())]
    backend: Backend,
    /// TCP address of the FTP control listener (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:2121")]
    listen: String,
    /// Directory served to anonymous sessions and by the mini front end.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Passive data ports, `A-B` (inclusive); default: any free port.
    #[arg(long, value_parser = parse_range)]
    passive_ports: Option<(u16, u16)>,
    /// Users file (`name:argon2-hash:r|rw:root` per line).
    #[arg(long)]
    users: Option<PathBuf>,
    /// Allow anonymous logins even with `--users` (always on without it).
    #[arg(long)]
    anonymous: bool,
    /// Let anonymous sessions upload, delete, rename and make directories.
    #[arg(long)]
    allow_anonymous_upload: bool,
    /// Also serve the mini protocol on this TCP address.
    #[arg(long)]
    mini: Option<String>,
    /// The mini front end refuses `put`.
    #[arg(long)]
    mini_read_only: bool,
    /// Largest mini `put`, in bytes.
    #[arg(long, default_value_t = 1 << 30)]
    mini_max_filesize: u64,
    /// Idle control connections get 421 after this many milliseconds.
    #[arg(long, default_value_t = 300_000)]
    idle_timeout_ms: u64,
    /// Data connection setup (and a ready connection's wait for a command), ms.
    #[arg(long, default_value_t = 30_000)]
    data_timeout_ms: u64,
    /// A transfer moving no byte this long is aborted (426), ms.
    #[arg(long, default_value_t = 120_000)]
    stall_timeout_ms: u64,
    /// Delay before answering a failed login, ms.
    #[arg(long, default_value_t = 1_000)]
    login_delay_ms: u64,
    /// Failed logins per connection before it is closed.
    #[arg(long, default_value_t = 3)]
    max_login_attempts: u32,
    /// Control connections at once.
    #[arg(long, default_value_t = 1000)]
    max_connections: usize,
    /// Control connections at once from one address.
    #[arg(long, default_value_t = 50)]
    max_per_address: usize,
    #[command(flatten)]
    pool: common::PoolArgs,
    /// Longest command line in bytes (then 500).
    #[arg(long, default_value_t = 4096)]
    max_line: usize,
    /// Add (or replace) this account in `--users FILE` and exit; the password is the
    /// first line of stdin.
    #[arg(long, requires = "users")]
    add_user: Option<String>,
    /// The new account's root directory (with `--add-user`; default `--root`).
    #[arg(long)]
    user_root: Option<PathBuf>,
    /// The new account is read-only (with `--add-user`).
    #[arg(long)]
    read_only: bool,
    /// Argon2id memory cost of the new hash in KiB (with `--add-user`).
    #[arg(long, default_value_t = HashCost::default().memory_kib)]
    hash_memory_kib: u32,
    /// Argon2id passes of the new hash (with `--add-user`).
    #[arg(long, default_value_t = HashCost::default().passes)]
    hash_passes: u32,
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').ok_or("expected A-B")?;
    let a: u16 = a.trim().parse().map_err(|e| format!("{a}: {e}"))?;
    let b: u16 = b.trim().parse().map_err(|e| format!("{b}: {e}"))?;
    if a == 0 || a > b {
        return Err("expected 0 < A <= B".into());
    }
    Ok((a, b))
}

fn add_user(args: &Args, name: &str) {
    let Some(file) = &args.users else {
        common::die("--add-user", "needs --users FILE")
    };
    let mut pw = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut pw) {
        common::die("reading the password from stdin", e);
    }
    let pw = pw.trim_end_matches(['\r', '\n']);
    if pw.is_empty() {
        common::die("--add-user", "empty password on stdin");
    }
    let root = args.user_root.clone().unwrap_or_else(|| args.root.clone());
    let root = std::fs::canonicalize(&root)
        .unwrap_or_else(|e| common::die(&format!("user root {}", root.display()), e));
    let cost = HashCost {
        memory_kib: args.hash_memory_kib,
        passes: args.hash_passes,
    };
    let hash =
        accounts::hash_password(pw.as_bytes(), cost).unwrap_or_else(|e| common::die("hashing", e));
    let line = accounts::user_line(name, &hash, !args.read_only, &root)
        .unwrap_or_else(|e| common::die("--add-user", e));
    // Keep the other accounts; replace this one.
    let old = std::fs::read_to_string(file).unwrap_or_default();
    let mut text: String = old
        .lines()
        .filter(|l| l.split(':').next() != Some(name))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&line);
    Users::parse(&text).unwrap_or_else(|e| common::die("users file", e));
    let tmp = file.with_extension("tmp");
    let res = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, file));
    if let Err(e) = res {
        common::die(&format!("writing {}", file.display()), e);
    }
    eprintln!("added user {name} to {}", file.display());
}

fn main() {
    common::init_logging();
    let args = Args::parse();
    if let Some(name) = args.add_user.clone() {
        add_user(&args, &name);
        return;
    }
    let users = args
        .users
        .as_ref()
        .map(|f| Users::load(f).unwrap_or_else(|e| common::die("users file", e)));
    let cfg = FtpConfig {
        anonymous: args.anonymous || users.is_none(),
        users,
        anonymous_upload: args.allow_anonymous_upload,
        passive_ports: args.passive_ports,
        max_line: args.max_line,
        idle_timeout: Duration::from_millis(args.idle_timeout_ms),
        data_setup_timeout: Duration::from_millis(args.data_timeout_ms),
        stall_timeout: Duration::from_millis(args.stall_timeout_ms),
        login_delay: Duration::from_millis(args.login_delay_ms),
        max_login_attempts: args.max_login_attempts,
        max_connections: args.max_connections,
        max_per_address: args.max_per_address,
        mini: MiniConfig {
            read_only: args.mini_read_only,
            max_filesize: args.mini_max_filesize,
            ..MiniConfig::default()
        },
        listen: ListenConfig {
            // The session answers 421 itself; this only bounds descriptors.
            max_connections: args.max_connections.saturating_mul(2).max(16),
            ..ListenConfig::default()
        },
        ..FtpConfig::new(args.root.clone())
    };
    if args.pool.pooled() {
        serve_pooled(&args, cfg);
        return;
    }
    let server = FtpServer::new(cfg).unwrap_or_else(|e| common::die("configuration", e));
    let mut reactor = Reactor::new(args.backend).unwrap_or_else(|e| common::die("reactor", e));
    reactor
        .handle_signals()
        .unwrap_or_else(|e| common::die("signals", e));
    let (_, addr) = server
        .listen(&mut reactor, args.listen.as_str())
        .unwrap_or_else(|e| common::die(&format!("listen on {}", args.listen), e));
    log::info!("serving {}", args.root.display());
    common::announce(&format!("ftp://{addr}"), args.backend);
    if let Some(m) = &args.mini {
        let (_, maddr) = server
            .listen_mini(&mut reactor, m.as_str())
            .unwrap_or_else(|e| common::die(&format!("listen on {m}"), e));
        common::announce(&format!("mini://{maddr}"), args.backend);
    }
    if let Err(e) = reactor.run() {
        common::die("event loop", e);
    }
}

/// `--threads N`: N reactors, an `FtpServer` on each (sessions, their passive
/// listeners and data connections stay on the reactor that accepted the control
/// connection); the session limits and the passive port rotation are shared
/// ([`SessionCounts`]). The mini front end runs on reactor 0.
fn serve_pooled(args: &Args, cfg: FtpConfig) {
    let counts = SessionCounts::default();
    // Check the configuration once, before binding.
    FtpServer::with_counts(cfg.clone(), counts.clone())
        .unwrap_or_else(|e| common::die("configuration", e));
    let threads = args.pool.threads as usize;
    let l = args.pool.bind(&args.listen, cfg.listen.clone());
    args.pool
        .announce_files("ftp", &l, &args.root, args.backend);
    let mini = args.mini.clone();
    let backend = args.backend;
    let pool = Pool::new(backend, threads).handle_signals(true);
    common::run_pool(pool, move |reactor, member| {
        let server = FtpServer::with_counts(cfg.clone(), counts.clone())?;
        l.attach(reactor, member, server.factory())?;
        if let (0, Some(m)) = (member.index(), &mini) {
            let (_, maddr) = server.listen_mini(reactor, m.as_str())?;
            common::announce(&format!("mini://{maddr}"), backend);
        }
        Ok(())
    });
}
