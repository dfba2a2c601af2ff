//! The chat bench's options and command line (clap).

use std::path::PathBuf;
use std::time::Duration;

use crate::common::cli;
use crate::ALL;

#[derive(Clone, Debug)]
pub struct Options {
    pub clients: usize,
    pub senders: usize,
    pub rate: f64,
    pub duration: Duration,
    pub warmup: Duration,
    pub rounds: usize,
    /// Client threads (fleets), each with its share of receivers and senders.
    pub client_threads: usize,
    pub contenders: Vec<String>,
    pub strace: bool,
    pub quick: bool,
    pub out: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            clients: 1000,
            senders: 4,
            rate: 3000.0,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            rounds: 3,
            client_threads: 2,
            contenders: ALL.iter().map(|s| s.to_string()).collect(),
            strace: false,
            quick: false,
            out: None,
        }
    }
}

#[derive(Debug)]
pub enum Mode {
    Help,
    SelfTest,
    Bench(Options),
    Serve { backend: String, cpu: Option<usize> },
}

/// The chat bench's command line (clap).
#[derive(clap::Parser, Debug)]
#[command(
    name = "chat",
    about = "Chat fan-out benchmark: cargo bench --bench chat -- [options]"
)]
pub struct Args {
    /// A few seconds: 50 clients, 1 round, short window, 1000 msgs/s.
    #[arg(long)]
    pub quick: bool,
    /// Clients in #lobby (default 1000).
    #[arg(long)]
    pub clients: Option<usize>,
    /// Clients that send (default 4).
    #[arg(long)]
    pub senders: Option<usize>,
    /// Messages per second, all senders together (default 3000).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured window in seconds (default 10).
    #[arg(long, value_parser = cli::secs)]
    pub duration: Option<Duration>,
    /// Unmeasured sending before the window, in seconds (default 2).
    #[arg(long, value_parser = cli::secs)]
    pub warmup: Option<Duration>,
    /// Rounds; contenders alternate within each (default 3).
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Client threads, each with its share of the clients and senders (default 2).
    #[arg(long)]
    pub client_threads: Option<usize>,
    /// Contenders (default: all).
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(ALL))]
    pub contenders: Vec<String>,
    /// One extra phase per contender under strace -c -f (writes/delivery).
    #[arg(long)]
    pub strace: bool,
    #[command(flatten)]
    pub harness: cli::Harness,
}

pub fn parse_args(args: Vec<String>) -> Result<Mode, String> {
    let a = match cli::parse::<Args>("chat", args, |a| a.harness.self_test)? {
        cli::Parsed::SelfTest => return Ok(Mode::SelfTest),
        cli::Parsed::Help => return Ok(Mode::Help),
        cli::Parsed::Args(a) => a,
    };
    if let Some(backend) = a.harness.serve {
        return Ok(Mode::Serve {
            backend,
            cpu: a.harness.cpu,
        });
    }
    let mut o = Options {
        quick: a.quick,
        strace: a.strace,
        out: a.harness.out,
        ..Options::default()
    };
    if !a.contenders.is_empty() {
        o.contenders = a.contenders;
    }
    if let Some(n) = a.senders {
        o.senders = n;
    }
    if let Some(r) = a.rate {
        o.rate = r;
    }
    if o.quick {
        o.clients = 50;
        o.rounds = 1;
        // A smoke run: every contender starts, serves and stops; no saturation.
        if a.rate.is_none() {
            o.rate = 1000.0;
        }
        o.duration = Duration::from_secs(2);
        o.warmup = Duration::from_millis(500);
    }
    o.clients = a.clients.unwrap_or(o.clients);
    o.rounds = a.rounds.unwrap_or(o.rounds);
    o.client_threads = a.client_threads.unwrap_or(o.client_threads);
    o.duration = a.duration.unwrap_or(o.duration);
    o.warmup = a.warmup.unwrap_or(o.warmup);
    if o.clients < 2 || o.senders == 0 || o.senders >= o.clients {
        return Err("need at least 2 clients and 1 <= senders < clients".into());
    }
    if !(o.rate > 0.0 && o.rate <= 1e6) {
        return Err("--rate must be in (0, 1e6]".into());
    }
    if o.rounds == 0 || o.duration.is_zero() {
        return Err("--rounds and --duration must be positive".into());
    }
    if o.client_threads == 0 || o.client_threads > 16 {
        return Err("--client-threads must be in 1..=16".into());
    }
    if o.duration > Duration::from_secs(600) || o.clients > 20_000 || o.rounds > 50 {
        return Err("bounds: --duration <= 600, --clients <= 20000, --rounds <= 50".into());
    }
    Ok(Mode::Bench(o))
}
