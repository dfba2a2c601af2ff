//! HTTP/1.1 server: static files under `--root` (default: the bundled site in
//! `examples/site`) and simple data (`/api/stats`, `POST /echo`, `/plaintext`).
//!
//! ```text
//! cargo run --release --example http_server -- --backend epoll-et --listen 127.0.0.1:8080
//! curl -v http://127.0.0.1:8080/
//! ```
//!
//! The access log (combined log format) goes to stderr at `info`; benchmark with
//! `--no-access-log` (or `RUST_LOG=warn`).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use readyloop::net::ListenConfig;
use readyloop::proto::http::{FileOptions, HttpConfig, HttpServer, Limits, Router};
use readyloop::reactor::pool::Pool;
use readyloop::reactor::Reactor;
use readyloop::selector::Backend;

/// The bundled default site.
const DEFAULT_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/site");

#[derive(Parser, Debug)]
#[command(about = "HTTP/1.1 server (static files and simple data) on the readyloop reactor")]
struct Args {
    /// Readiness backend: select, poll, epoll, epoll-et, mio, polling.
    #[arg(long, default_value_t = Backend::best())]
    backend: Backend,
    /// TCP address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Directory to serve (default: the bundled site).
    #[arg(long, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Refuse connections beyond this many (across all reactors).
    #[arg(long, default_value_t = 100_000)]
    max_connections: usize,
    #[command(flatten)]
    pool: common::PoolArgs,
    /// Do not write the access log.
    #[arg(long)]
    no_access_log: bool,
    /// Serve files and directories whose name starts with a dot.
    #[arg(long)]
    dotfiles: bool,
    /// Answer 403 for directories without an index instead of listing them.
    #[arg(long)]
    no_listing: bool,
    /// Time allowed for a whole request head, in milliseconds (then 408).
    #[arg(long, default_value_t = 10_000)]
    header_timeout_ms: u64,
    /// Time allowed between reads of a request body, in milliseconds (then 408).
    #[arg(long, default_value_t = 10_000)]
    body_timeout_ms: u64,
    /// Idle keep-alive connections close after this many milliseconds.
    #[arg(long, default_value_t = 75_000)]
    keepalive_timeout_ms: u64,
    /// Largest request body in bytes (then 413).
    #[arg(long, default_value_t = 1 << 20)]
    max_body: u64,
    /// Longest request line in bytes (then 414).
    #[arg(long, default_value_t = 8 * 1024)]
    max_request_line: usize,
    /// Largest request head in bytes (then 431).
    #[arg(long, default_value_t = 16 * 1024)]
    max_head: usize,
    /// Most header lines (then 431).
    #[arg(long, default_value_t = 100)]
    max_headers: usize,
}

fn main() {
    common::init_logging();
    let args = Args::parse();
    let cfg = HttpConfig {
        limits: Limits {
            max_request_line: args.max_request_line,
            max_head: args.max_head,
            max_headers: args.max_headers,
            max_body: args.max_body,
        },
        header_timeout: Duration::from_millis(args.header_timeout_ms),
        body_timeout: Duration::from_millis(args.body_timeout_ms),
        keepalive_timeout: Duration::from_millis(args.keepalive_timeout_ms),
        root: Some(args.root.clone()),
        files: FileOptions {
            dotfiles: args.dotfiles,
            listing: !args.no_listing,
            ..FileOptions::default()
        },
        access_log: !args.no_access_log,
        listen: ListenConfig {
            max_connections: args.max_connections,
            // TCP_DEFER_ACCEPT as HttpConfig's default has it.
            ..HttpConfig::default().listen
        },
        ..HttpConfig::default()
    };
    if args.pool.pooled() {
        serve_pooled(&args, cfg);
        return;
    }
    let server = HttpServer::new(cfg, Router::with_builtins())
        .unwrap_or_else(|e| common::die("configuration", e));
    let mut reactor = Reactor::new(args.backend).unwrap_or_else(|e| common::die("reactor", e));
    reactor
        .handle_signals()
        .unwrap_or_else(|e| common::die("signals", e));
    let (_, addr) = server
        .listen(&mut reactor, args.listen.as_str())
        .unwrap_or_else(|e| common::die(&format!("listen on {}", args.listen), e));
    log::info!("serving {}", args.root.display());
    common::announce(&format!("tcp://{addr}"), args.backend);
    if let Err(e) = reactor.run() {
        common::die("event loop", e);
    }
}

/// `--threads N`: N reactors, each with its own `HttpServer` (file cache, counters,
/// date cache: per reactor, no locks), sharing the address by `--accept`.
fn serve_pooled(args: &Args, cfg: HttpConfig) {
    // Check the configuration (the root) once, before binding.
    HttpServer::new(cfg.clone(), Router::with_builtins())
        .unwrap_or_else(|e| common::die("configuration", e));
    let threads = args.pool.threads as usize;
    let l = args.pool.bind(&args.listen, cfg.listen.clone());
    args.pool
        .announce_files("tcp", &l, &args.root, args.backend);
    let pool = Pool::new(args.backend, threads).handle_signals(true);
    common::run_pool(pool, move |reactor, member| {
        let server = HttpServer::new(cfg.clone(), Router::with_builtins())?;
        l.attach(reactor, member, server.factory())?;
        Ok(())
    });
}
