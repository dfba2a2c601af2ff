//! The soak's options and command line (clap).

use std::path::PathBuf;
use std::time::Duration;

use readyloop::selector::Backend;

use crate::common::cli;

#[derive(clap::Parser, Debug)]
#[command(
    name = "soak",
    about = "Soak: echo, HTTP and chat at once under mixed load"
)]
pub struct Args {
    /// Seconds of load per backend (default 600; --quick: 25).
    #[arg(long)]
    pub duration: Option<u64>,
    /// A short run on one backend (epoll-et unless --backends), for CI.
    #[arg(long)]
    pub quick: bool,
    /// Backends, comma-separated (default: all six; --quick: epoll-et).
    #[arg(long, value_delimiter = ',')]
    pub backends: Vec<Backend>,
    /// Seconds between samples of RSS, descriptors and CPU (default: duration / 60,
    /// at least 1).
    #[arg(long)]
    pub interval: Option<u64>,
    #[command(flatten)]
    pub harness: cli::Harness,
}

#[derive(Debug)]
pub struct Options {
    pub duration: Duration,
    pub backends: Vec<Backend>,
    pub interval: Duration,
    pub out: Option<PathBuf>,
}

#[derive(Debug)]
pub enum Mode {
    Help,
    SelfTest,
    Serve(Backend),
    Soak(Options),
}

pub fn parse_args(args: Vec<String>) -> Result<Mode, String> {
    let a = match cli::parse::<Args>("soak", args, |a| a.harness.self_test)? {
        cli::Parsed::SelfTest => return Ok(Mode::SelfTest),
        cli::Parsed::Help => return Ok(Mode::Help),
        cli::Parsed::Args(a) => a,
    };
    if let Some(b) = a.harness.serve {
        return b
            .parse()
            .map(Mode::Serve)
            .map_err(|e| format!("--serve: {e}"));
    }
    let secs = a.duration.unwrap_or(if a.quick { 25 } else { 600 });
    if secs < 5 {
        return Err("--duration: at least 5 seconds".into());
    }
    let backends = if !a.backends.is_empty() {
        a.backends
    } else if a.quick {
        vec![Backend::EpollEt]
    } else {
        Backend::ALL.to_vec()
    };
    let interval = a.interval.unwrap_or((secs / 60).max(1)).max(1);
    Ok(Mode::Soak(Options {
        duration: Duration::from_secs(secs),
        backends,
        interval: Duration::from_secs(interval),
        out: a.harness.out,
    }))
}
