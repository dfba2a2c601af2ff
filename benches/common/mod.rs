//! The harness every bench target shares: `benches/lab`, `benches/chat`, `soak`, `ftp`
//! and `tftp` each mount this folder with `#[path = "../common/mod.rs"] mod common;`
//! (or `"common/mod.rs"` from a single-file bench).
//!
//! * [`server`]: server child processes and the one control protocol they speak
//!   (`ready` / `stats` / `stop`, one error type, every stop with a deadline), and
//!   outside servers (nginx, ngIRCd, vsftpd, ...) stopped the same way;
//! * [`child`]: the child side of that protocol, for the hidden `--serve` modes;
//! * [`procfs`]: `/proc` readings, among them the one server-CPU metric of every table
//!   ("server CPU": on-CPU time from `/proc/PID/task/*/schedstat`);
//! * [`os`]: pinning, descriptor limits, free ports, signals;
//! * [`tools`]: finding outside programs, and `CI=true` turning a missing one into a
//!   failure;
//! * [`cli`]: the command-line options every bench has (self-test, `--out`, the hidden
//!   `--serve`), and the parse that turns no argument at all into the self-test;
//! * [`table`]: samples, medians with ranges, number formatting, markdown tables;
//! * [`env`], [`strace`], [`plot`]: the machine line, `strace -c`, SVG plots.
//!
//! Why a module tree and not a workspace crate: it costs no extra crate, manifest or
//! dependency cycle (a lab crate would depend on `readyloop` while `readyloop`
//! dev-depends on it), and each bench compiles only what it mounts. The price is that
//! each target uses a different part of the harness, hence the `dead_code` allowance
//! below (unused parts are simply not linked into that target).
#![allow(dead_code)]

pub mod child;
pub mod cli;
pub mod env;
pub mod os;
pub mod plot;
pub mod procfs;
pub mod server;
pub mod strace;
pub mod table;
pub mod tools;
