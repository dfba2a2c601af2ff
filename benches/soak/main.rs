//! Soak under mixed load: `cargo bench --bench soak [-- options]`.
//!
//! One child process (this binary re-executed in the hidden `--serve BACKEND` mode)
//! serves echo, HTTP and the chat's line protocol at once on one reactor. This process
//! drives it for `--duration` seconds (default 600 per backend; `--quick`: 25 s on one
//! backend, for CI) with:
//!
//! * well-behaved clients, whose every failure counts as an error (goal: 0): echo
//!   round trips of random sizes, keep-alive HTTP (`GET /plaintext`, `POST /echo`),
//!   chat pairs (one member talks, the other must see every line in order), and
//!   echo half-closes (send, shut the write side, read everything back);
//! * misbehaving clients, whose fate is not counted, only survived: slow readers (echo
//!   and chat), slowloris on HTTP, chat floods, connection bursts, resets (RST) in
//!   the middle of a request, and random garbage to every server.
//!
//! Every `--interval` seconds it samples the child's RSS, open descriptors and CPU
//! time. At the end it lets the server settle, measures its CPU while idle, reads the
//! panics it contained (`/api/stats`), and reports: requests served, errors, RSS and
//! descriptors over time (start, after warm-up, end; an SVG plot each), idle CPU.
//! The exit status is 1 if a well-behaved client saw an error, descriptors did not
//! come back to the baseline, or the idle loop used more than 5% of a CPU.
//!
//! Results go to `target/lab/soak.{md,json}` and `soak-{rss,fds}.svg` (`--out DIR`).
//! With no argument at all (as `cargo test --benches` runs it) the binary runs its
//! self-test.

mod cli;
mod clients;
#[path = "../common/mod.rs"]
mod common;
mod report;
mod run;
mod selftest;
mod server;

use cli::{parse_args, Mode};

fn main() {
    let mode = common::cli::or_exit("soak", parse_args(std::env::args().skip(1).collect()));
    match mode {
        Mode::Help => print!("{}", common::cli::usage::<cli::Args>()),
        Mode::SelfTest => std::process::exit(selftest::self_test()),
        Mode::Serve(b) => server::serve(b),
        Mode::Soak(o) => std::process::exit(report::soak(&o)),
    }
}
