//! Shared bits of the example servers: logging set-up and the "listening on" line.
#![allow(dead_code)]

use std::io::Write;

use readyloop::selector::Backend;

/// `RUST_LOG` controls logging; the default shows info and above on stderr.
pub fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
}

/// Prints the ready line scripts and tests wait for, flushed:
/// `listening on tcp://127.0.0.1:PORT (backend epoll-et)`.
pub fn announce(url: &str, backend: Backend) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (e.g. the reader went away) must not kill the server.
    let _ = writeln!(out, "listening on {url} (backend {backend})");
    let _ = out.flush();
}

/// Reports a fatal start-up error on stderr and exits with status 1.
pub fn die(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("error: {what}: {e}");
    std::process::exit(1);
}

/// `--threads` and `--accept`: how many reactors serve, and how they share accepts.
#[derive(clap::Args, Debug, Clone)]
pub struct PoolArgs {
    /// Reactors, one per thread (1: the single-reactor server).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: u64,
    /// With --threads > 1, how the reactors share accepts: reuseport (a socket per
    /// reactor, the kernel spreads connections), shared (one socket watched by all;
    /// EPOLLEXCLUSIVE on the epoll backends) or handoff (reactor 0 accepts and hands
    /// connections round-robin to every reactor; handoff-least: to the reactor with
    /// the fewest connections).
    #[arg(long, default_value_t = readyloop::net::AcceptStrategy::default())]
    pub accept: readyloop::net::AcceptStrategy,
}

impl PoolArgs {
    /// Whether to run a pool (more than one reactor, or a strategy asked for).
    pub fn pooled(&self) -> bool {
        self.threads > 1
    }

    /// Binds `listen` for this many reactors with this accept strategy, or exits with
    /// the error.
    pub fn bind(
        &self,
        listen: &str,
        cfg: readyloop::net::ListenConfig,
    ) -> std::sync::Arc<readyloop::net::PoolListener> {
        readyloop::net::PoolListener::bind(listen, self.accept, self.threads as usize, cfg)
            .unwrap_or_else(|e| die(&format!("listen on {listen}"), e))
    }

    /// Logs what a pooled file server serves and prints its ready line
    /// (`scheme://ADDR`).
    pub fn announce_files(
        &self,
        scheme: &str,
        l: &readyloop::net::PoolListener,
        root: &std::path::Path,
        backend: Backend,
    ) {
        log::info!(
            "serving {} with {} reactors, accept strategy {}",
            root.display(),
            self.threads,
            self.accept
        );
        announce(&format!("{scheme}://{}", l.local_addr()), backend);
    }
}

/// Runs `pool` with `setup` until every reactor has finished, logs each reactor's
/// counters, and exits with status 1 if one failed.
pub fn run_pool<F>(pool: readyloop::reactor::pool::Pool, setup: F)
where
    F: Fn(
            &mut readyloop::reactor::Reactor,
            &readyloop::reactor::pool::Member,
        ) -> std::io::Result<()>
        + Send
        + Sync
        + 'static,
{
    let running = pool.start(setup).unwrap_or_else(|e| die("reactors", e));
    let stats = running.stats_handles();
    let res = running.wait();
    for (i, s) in stats.iter().enumerate() {
        let s = s.snapshot();
        log::info!(
            "reactor {i}: {} waits, {} connections accepted, {} empty accepts, {} served",
            s.waits,
            s.accepted,
            s.accepts_empty,
            s.served
        );
    }
    if let Err(e) = res {
        die("event loop", e);
    }
}
