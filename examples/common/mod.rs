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
