//! Chat fan-out benchmark: `cargo bench --bench chat [-- options]`.
//!
//! N IRC clients (default 1000) join `#lobby`; a few of them (`--senders`, default 4)
//! send `PRIVMSG #lobby` at a steady total rate (`--rate`, default 3000/s, i.e. about
//! 3M deliveries/s offered: more than ngIRCd delivers on one core here, so the table
//! compares what each server can deliver; `--rate 200` compares cost at a light load);
//! every other client receives every message. Over a fixed window it measures deliveries per second
//! (messages received, summed over all clients), the delivery latency (each message
//! carries its send time in nanoseconds since an `Instant` shared by all clients, which
//! live in this one process), the server's memory (`VmRSS`, `VmHWM`), its server CPU per
//! delivery (on-CPU time from `/proc/PID/task/*/schedstat`, the one server-CPU metric of
//! every bench: `benches/common/procfs.rs`), its write syscalls per delivery (this
//! crate's counters; with `--strace` also `strace -c -f` for every contender), and lost
//! messages.
//!
//! Contenders: this crate's chat server on each backend (a child process: this binary
//! re-executed in the hidden `--serve BACKEND` mode, configured like
//! `examples/chat_server.rs` but with the flood limit lifted) and ngIRCd (`ngircd -n`
//! with a generated configuration; `MaxPenaltyTime = 0` turns its flood penalties off).
//! The server runs pinned to CPU 0, the clients to CPU 1: `--client-threads` threads
//! (default 2), each with its own mio poll, its share of the receivers and of the
//! senders (client `i` in thread `i % threads`) and the shared sending schedule, so one
//! thread's reading does not delay the other's sending (on more cores they spread over
//! CPUs 1, 2, ...).
//!
//! `-- --help` lists the options; with no argument at all (as `cargo test --benches`
//! runs it) the binary runs its self-test.

mod cli;
#[path = "../common/mod.rs"]
mod common;
mod fleet;
mod fleets;
mod irc;
mod measure;
mod report;
mod run;
mod selftest;
mod server;

use cli::Mode;

/// Every contender, in table order.
pub const ALL: [&str; 7] = [
    "select", "poll", "epoll", "epoll-et", "mio", "polling", "ngircd",
];
pub const NGIRCD: &str = "ngircd";
pub const ROOM: &str = "#lobby";
/// The tag that starts every benchmark message's text.
pub const TAG: &str = "rlb";

fn main() {
    let mode = common::cli::or_exit(
        "chat bench",
        cli::parse_args(std::env::args().skip(1).collect()),
    );
    match mode {
        Mode::Help => print!("{}", common::cli::usage::<cli::Args>()),
        Mode::SelfTest => std::process::exit(selftest::self_test()),
        Mode::Serve { backend, cpu } => server::serve_child(&backend, cpu),
        Mode::Bench(o) => std::process::exit(run::run(o)),
    }
}
