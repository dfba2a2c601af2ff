//! Helpers shared by the integration suites (`tests/*.rs`; each says `#[macro_use] mod
//! support;`).
//!
//! * [`per_backend!`]: each case written once, inside the macro, as a function of the
//!   backend; one `#[test]` per backend (`tcp_echo_messages::epoll_et`).
//! * [`LoopThread`] ([`looping`]): a reactor running in this process on a background
//!   thread, with a bounded wait for `run()` to return; [`Watchdog`].
//! * [`ServerProcess`] ([`process`]): an example binary as a child process: ready
//!   lines, stderr, RSS and CPU time from `/proc`, SIGTERM; [`example`] builds it;
//!   [`run_with_deadline`] runs a client tool.
//! * [`clients`]: TCP clients with timeouts, round trips, reads to EOF, free ports.
//! * [`pattern`]: a deterministic byte pattern for bulk transfers, checked as it comes.
//! * [`tools`]: [`have_tool`] and [`require`], the one way a case gates on something
//!   outside the crate (a skip note, or a failure under `CI=true`).
//!
//! Every wait is bounded: sockets get read and write timeouts, loops get deadlines.
#![allow(dead_code)]

#[macro_use]
mod per_backend;

pub mod clients;
pub mod looping;
pub mod pattern;
pub mod process;
pub mod tools;

// Not every suite uses every part.
#[allow(unused_imports)]
pub use {clients::*, looping::*, pattern::*, process::*, tools::*};

use std::thread;
use std::time::{Duration, Instant};

/// How long any "eventually" loop may take before the case fails.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// Read and write timeout of every client socket.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Logs of the in-process reactor go to the test's captured output (`RUST_LOG`).
pub fn init_logging() {
    let _ = env_logger::builder().is_test(true).try_init();
}

/// Polls `f` until it returns `Some`, for at most `within`; panics with `what` after.
pub fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < within,
            "timed out after {within:?}: {what}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}
