//! Command-line options of the lab.

use std::path::PathBuf;
use std::time::Duration;

use crate::servers::{ALL_CONTENDERS, CONTENDERS, NGINX};

/// The workloads, in the order they run.
pub const WORKLOADS: [&str; 5] = ["round-trip", "idle-sweep", "churn", "bulk", "http"];

/// The sub-workloads of `http`, as named in the results.
pub const HTTP_WORKLOADS: [&str; 3] = ["http-plaintext", "http-1k", "http-1m"];

/// Where a result's workload goes in the tables and the JSON (`http` expanded).
pub fn workload_rank(w: &str) -> usize {
    WORKLOADS
        .iter()
        .take(4)
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
            ..Options::default_suite()
        }
    }
}

pub const USAGE: &str = "\
usage: cargo bench --bench lab -- [options]
  --quick              a few seconds: every contender starts, serves and stops (for CI)
  --workloads a,b      of: round-trip, idle-sweep, churn, bulk, http (default: all)
  --contenders a,b     of: select, poll, epoll, epoll-et, mio, polling, threads, fork,
                       ref-mio, ref-tokio, nginx (default: all). The echo workloads
                       skip nginx; http runs the six backends and nginx only
  --connections N      round-trip connections (default 100)
  --http-connections N wrk connections of the http workload (default 50)
  --duration SECS      measured seconds per round-trip point (default 1; others use less;
                       http runs wrk for this many whole seconds, at least 1)
  --rounds N           rounds; contenders alternate within each (default 5; the idle
                       sweep runs at most 3)
  --idle a,b           idle counts of the sweep (default 0,100,1000,4000,10000)
  --max-ops N          most operations per measured point
  --no-pin             do not pin server and load generator to different cores
  --strace             cross-check syscalls/op of epoll-et against strace -c -f, and
                       count nginx's syscalls per request with strace -c -f -p
  --out DIR            where results.json and the plots go (default target/lab)
  --self-test          run the lab's own unit checks and exit

The http workload needs wrk and nginx (Debian: apt-get install wrk nginx); nginx is
looked up on PATH, then /usr/sbin, or taken from $READYLOOP_LAB_NGINX. Without nginx
the table says so (with CI=true it is a failure).
";

fn list(v: &str, allowed: &[&str], what: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if items.is_empty() {
        return Err(format!("empty list of {what}"));
    }
    for i in &items {
        if !allowed.contains(&i.as_str()) {
            return Err(format!(
                "unknown {what} {i:?}; expected one of: {}",
                allowed.join(", ")
            ));
        }
    }
    Ok(items)
}

fn number<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
    v.parse()
        .map_err(|_| format!("{flag}: not a valid number: {v:?}"))
}

/// Parses the arguments (without the program name). Cargo's own `--bench` is ignored.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Mode, String> {
    let args: Vec<String> = args.into_iter().collect();
    // `cargo bench` always passes `--bench`; no argument at all means `cargo test
    // --benches` (or `--all-targets`) is running this harness = false target: run the
    // checks rather than the whole lab.
    if args.is_empty() {
        return Ok(Mode::SelfTest);
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(Mode::Help);
    }
    if args.iter().any(|a| a == "--self-test") {
        return Ok(Mode::SelfTest);
    }
    if let Some(p) = args.iter().position(|a| a == "--serve") {
        let name = args
            .get(p + 1)
            .cloned()
            .ok_or("--serve needs a contender")?;
        let cpu = match args.iter().position(|a| a == "--cpu") {
            Some(q) => Some(number("--cpu", args.get(q + 1).cloned())?),
            None => None,
        };
        let http_root = match args.iter().position(|a| a == "--http-root") {
            Some(q) => Some(PathBuf::from(
                args.get(q + 1).ok_or("--http-root needs a directory")?,
            )),
            None => None,
        };
        return Ok(Mode::Serve {
            name,
            cpu,
            http_root,
        });
    }
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = if quick {
        Options::quick()
    } else {
        Options::default_suite()
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" | "--bench" => {}
            "--workloads" => {
                o.workloads = list(
                    &it.next().ok_or("--workloads needs a list")?,
                    &WORKLOADS,
                    "workload",
                )?
            }
            "--contenders" => {
                o.contenders = list(
                    &it.next().ok_or("--contenders needs a list")?,
                    &ALL_CONTENDERS,
                    "contender",
                )?
            }
            "--connections" => o.connections = number::<usize>(&a, it.next())?.max(1),
            "--http-connections" => {
                o.http_connections = number::<usize>(&a, it.next())?.clamp(1, 10_000)
            }
            "--duration" => {
                let secs: f64 = number(&a, it.next())?;
                if !(secs > 0.0 && secs < 3600.0) {
                    return Err(format!("--duration: out of range: {secs}"));
                }
                o.duration = Duration::from_secs_f64(secs);
                o.warmup = o.warmup.min(o.duration / 4);
            }
            "--rounds" => o.rounds = number::<usize>(&a, it.next())?.max(1),
            "--max-ops" => o.max_ops = number::<u64>(&a, it.next())?.max(1),
            "--idle" => {
                let v = it.next().ok_or("--idle needs a list")?;
                o.idle_counts = v
                    .split(',')
                    .map(|s| s.trim().parse::<u64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("--idle: bad list {v:?}"))?;
            }
            "--no-pin" => o.pin = false,
            "--strace" => o.strace = true,
            "--out" => o.out_dir = Some(PathBuf::from(it.next().ok_or("--out needs a dir")?)),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
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
