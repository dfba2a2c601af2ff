//! Command-line options of the lab.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValuesParser;

use crate::common::cli::{self, Harness, Parsed};

use crate::servers::{ALL_CONTENDERS, CONTENDERS, NGINX};

/// The workloads, in the order they run.
pub const WORKLOADS: [&str; 8] = [
    "round-trip",
    "idle-sweep",
    "churn",
    "bulk",
    "latency",
    "http",
    "accept",
    "proxy",
];

/// The sub-workloads of `latency` (open-loop sweeps), as named in the results.
pub const LATENCY_WORKLOADS: [&str; 2] = ["latency-echo", "latency-http"];

/// The sub-workloads of `http`, as named in the results.
pub const HTTP_WORKLOADS: [&str; 4] = ["http-plaintext", "http-small", "http-1k", "http-1m"];

/// Where a result's workload goes in the tables and the JSON (`http` expanded).
pub fn workload_rank(w: &str) -> usize {
    WORKLOADS
        .iter()
        .take(4)
        .chain(LATENCY_WORKLOADS.iter())
        .chain(HTTP_WORKLOADS.iter())
        .position(|x| *x == w)
        .unwrap_or(99)
}

/// Idle-connection counts of the full sweep.
pub const IDLE_COUNTS: [u64; 5] = [0, 100, 1000, 4000, 10000];

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// The lab itself.
    Lab(Options),
    /// The hidden child mode: serve contender `name`, pinned to `cpu`.
    /// With `http_root`: this crate's HTTP server on backend `name`, serving that root.
    Serve {
        name: String,
        cpu: Option<usize>,
        http_root: Option<PathBuf>,
    },
    /// Run the lab's own checks.
    SelfTest,
    /// Print usage.
    Help,
}

/// The lab's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub quick: bool,
    pub workloads: Vec<String>,
    pub contenders: Vec<String>,
    /// Connections of the round-trip workload.
    pub connections: usize,
    /// Measured time of one round-trip point (other workloads use a fraction).
    pub duration: Duration,
    pub warmup: Duration,
    pub rounds: usize,
    /// Most operations per measured point.
    pub max_ops: u64,
    pub idle_counts: Vec<u64>,
    /// Concurrent connections of churn and bulk.
    pub churn_concurrency: usize,
    pub bulk_connections: usize,
    pub bulk_chunk: usize,
    /// Connections of wrk in the `http` workload.
    pub http_connections: usize,
    pub pin: bool,
    pub strace: bool,
    pub out_dir: Option<PathBuf>,
    /// Offered loads of the open-loop sweeps, as fractions of the closed-loop
    /// capacity measured against epoll-et at the start of the sweep.
    pub load_fractions: Vec<f64>,
    /// Measured time of one sweep point.
    pub sweep_duration: Duration,
    /// The fixed offered load of the headline (server CPU per operation), echo.
    pub fixed_rate: f64,
    /// The same for the HTTP tables (the 1 MiB file: a twentieth of it).
    pub http_fixed_rate: f64,
}

impl Options {
    /// The default suite (a few minutes on two cores).
    pub fn default_suite() -> Options {
        Options {
            quick: false,
            workloads: WORKLOADS.iter().map(|s| s.to_string()).collect(),
            contenders: ALL_CONTENDERS.iter().map(|s| s.to_string()).collect(),
            connections: 100,
            duration: Duration::from_secs(1),
            warmup: Duration::from_millis(300),
            rounds: 5,
            max_ops: 20_000_000,
            idle_counts: IDLE_COUNTS.to_vec(),
            churn_concurrency: 16,
            bulk_connections: 4,
            bulk_chunk: 16 * 1024,
            http_connections: 50,
            pin: true,
            strace: false,
            out_dir: None,
            load_fractions: vec![0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.25],
            sweep_duration: Duration::from_millis(500),
            // Well under any contender's capacity even on a loaded 2-core machine (the
            // closed-loop rates fell to 4k–11k/s there), so every contender does the same work.
            fixed_rate: 5_000.0,
            http_fixed_rate: 5_000.0,
        }
    }

    /// `--quick`: every contender starts, serves a few requests and stops.
    pub fn quick() -> Options {
        Options {
            quick: true,
            connections: 10,
            duration: Duration::from_millis(100),
            warmup: Duration::from_millis(20),
            rounds: 1,
            max_ops: 2_000,
            idle_counts: vec![0, 50],
            churn_concurrency: 4,
            bulk_connections: 2,
            http_connections: 4,
            load_fractions: vec![0.1, 1.25],
            sweep_duration: Duration::from_millis(100),
            fixed_rate: 2_000.0,
            http_fixed_rate: 2_000.0,
            ..Options::default_suite()
        }
    }
}

/// Notes printed after the options in `--help`.
const AFTER_HELP: &str = "\
The http workload needs wrk and nginx (Debian: apt-get install wrk nginx); nginx is
looked up on PATH, then /usr/sbin, or taken from $READYLOOP_LAB_NGINX. Without nginx
the table says so (with CI=true it is a failure).";

/// The lab's command line (clap).
#[derive(clap::Parser, Debug)]
#[command(
    name = "lab",
    about = "The readyloop backend lab: cargo bench --bench lab -- [options]",
    after_help = AFTER_HELP
)]
struct Args {
    /// A few seconds: every contender starts, serves and stops (for CI).
    #[arg(long)]
    quick: bool,
    /// Workloads to run (default: all).
    #[arg(long, value_delimiter = ',', value_parser = PossibleValuesParser::new(WORKLOADS))]
    workloads: Vec<String>,
    /// Contenders (default: all). The echo workloads skip nginx; http runs the six
    /// backends and nginx only.
    #[arg(long, value_delimiter = ',', value_parser = PossibleValuesParser::new(ALL_CONTENDERS))]
    contenders: Vec<String>,
    /// Round-trip connections (default 100).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    connections: Option<u64>,
    /// wrk connections of the http workload (default 50).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    http_connections: Option<u64>,
    /// Measured seconds per round-trip point (default 1; others use less; http runs wrk
    /// for this many whole seconds, at least 1).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Rounds; contenders alternate within each (default 5; the idle sweep runs at most 3).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    rounds: Option<u64>,
    /// Idle counts of the sweep (default 0,100,1000,4000,10000).
    #[arg(long, value_delimiter = ',')]
    idle: Vec<u64>,
    /// Most operations per measured point.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_ops: Option<u64>,
    /// Offered loads of the open-loop sweeps, as fractions of the closed-loop capacity
    /// measured against epoll-et (default 0.1,0.25,0.5,0.75,0.9,1,1.25).
    #[arg(long, value_delimiter = ',')]
    loads: Vec<f64>,
    /// The fixed offered load (operations/s) at which the round-trip and HTTP tables'
    /// headline, server CPU per operation, is measured (default 5000 echo, 5000
    /// HTTP; --quick 2000).
    #[arg(long)]
    fixed_rate: Option<f64>,
    /// The same for the HTTP tables only.
    #[arg(long)]
    http_fixed_rate: Option<f64>,
    /// Do not pin server and load generator to different cores.
    #[arg(long)]
    no_pin: bool,
    /// Cross-check syscalls/op of epoll-et against strace -c -f, and count nginx's
    /// syscalls per request with strace -c -f -p.
    #[arg(long)]
    strace: bool,
    #[command(flatten)]
    harness: Harness,
    /// Internal: the document root of the served HTTP contender.
    #[arg(long, hide = true)]
    http_root: Option<PathBuf>,
}

fn parse_duration(v: &str) -> Result<Duration, String> {
    let secs: f64 = v.parse().map_err(|_| format!("not a number: {v:?}"))?;
    if !(secs > 0.0 && secs < 3600.0) {
        return Err(format!("out of range (0 < SECS < 3600): {secs}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The lab's `--help` text.
pub fn usage() -> String {
    crate::common::cli::usage::<Args>()
}

/// Parses the arguments (without the program name). Cargo's own `--bench` is ignored.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Mode, String> {
    // `cargo bench` always passes `--bench`; no argument at all means `cargo test
    // --benches` (or `--all-targets`) is running this harness = false target: run the
    // checks rather than the whole lab.
    let a = match cli::parse::<Args>("lab", args.into_iter().collect(), |a| a.harness.self_test)? {
        Parsed::SelfTest => return Ok(Mode::SelfTest),
        Parsed::Help => return Ok(Mode::Help),
        Parsed::Args(a) => a,
    };
    if let Some(name) = a.harness.serve {
        return Ok(Mode::Serve {
            name,
            cpu: a.harness.cpu,
            http_root: a.http_root,
        });
    }
    let mut o = if a.quick {
        Options::quick()
    } else {
        Options::default_suite()
    };
    if !a.workloads.is_empty() {
        o.workloads = a.workloads;
    }
    if !a.contenders.is_empty() {
        o.contenders = a.contenders;
    }
    if let Some(n) = a.connections {
        o.connections = n as usize;
    }
    if let Some(n) = a.http_connections {
        o.http_connections = n as usize;
    }
    if let Some(d) = a.duration {
        o.duration = d;
        o.warmup = o.warmup.min(d / 4);
        o.sweep_duration = d / 2;
    }
    if let Some(n) = a.rounds {
        o.rounds = n as usize;
    }
    if !a.idle.is_empty() {
        o.idle_counts = a.idle;
    }
    if let Some(n) = a.max_ops {
        o.max_ops = n;
    }
    if !a.loads.is_empty() {
        if a.loads.iter().any(|f| !(*f > 0.0 && *f <= 100.0)) {
            return Err("--loads: fractions in (0, 100]".into());
        }
        o.load_fractions = a.loads;
        o.load_fractions.sort_by(f64::total_cmp);
        o.load_fractions.dedup();
    }
    for (v, to) in [
        (a.fixed_rate, &mut o.fixed_rate),
        (a.http_fixed_rate.or(a.fixed_rate), &mut o.http_fixed_rate),
    ] {
        if let Some(r) = v {
            if !(r > 0.0 && r <= 1e7) {
                return Err("--fixed-rate: operations/s in (0, 1e7]".into());
            }
            *to = r;
        }
    }
    o.pin = !a.no_pin;
    o.strace = a.strace;
    o.out_dir = a.harness.out;
    // Keep the documented order whatever order the flags gave.
    o.workloads
        .sort_by_key(|w| WORKLOADS.iter().position(|x| x == w));
    o.workloads.dedup();
    o.contenders
        .sort_by_key(|c| ALL_CONTENDERS.iter().position(|x| x == c));
    o.contenders.dedup();
    Ok(Mode::Lab(o))
}

impl Options {
    /// The echo contenders selected (nginx only serves HTTP).
    pub fn echo_contenders(&self) -> Vec<String> {
        self.contenders
            .iter()
            .filter(|c| CONTENDERS.contains(&c.as_str()))
            .cloned()
            .collect()
    }

    /// The HTTP contenders selected: this crate's backends, then nginx.
    pub fn http_contenders(&self) -> Vec<String> {
        self.contenders
            .iter()
            .filter(|c| crate::servers::is_crate(c) || c.as_str() == NGINX)
            .cloned()
            .collect()
    }

    /// wrk's `-d` (whole seconds, at least one).
    pub fn http_seconds(&self) -> u64 {
        (self.duration.as_secs_f64().ceil() as u64).max(1)
    }
}
