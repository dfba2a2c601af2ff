//! What every bench's command line has (clap): the self-test, cargo's `--bench`, the
//! output folder and the hidden `--serve` mode of the server children.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// The options every bench shares; `#[command(flatten)]` them into its own.
#[derive(clap::Args, Debug, Default)]
pub struct Harness {
    /// Where the results go (default target/lab).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run the bench's own checks and exit (also: no argument at all, as `cargo test
    /// --benches` runs it).
    #[arg(long)]
    pub self_test: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    pub bench: bool,
    /// Internal: serve this contender in this child process.
    #[arg(long, hide = true)]
    pub serve: Option<String>,
    /// Internal: the CPU the served contender is pinned to.
    #[arg(long, hide = true)]
    pub cpu: Option<usize>,
}

/// What the command line asks for, before the bench reads its own options.
#[derive(Debug)]
pub enum Parsed<A> {
    /// No argument at all, or `--self-test`.
    SelfTest,
    /// `--help`.
    Help,
    Args(A),
}

/// Parses `args` (without the program name) as bench `name`'s `A`; no argument at
/// all (as `cargo test --benches` runs a bench) is the self-test. `A` reports its
/// own `--self-test` through `self_test`.
///
/// # Errors
/// clap's message for a bad command line.
pub fn parse<A: clap::Parser>(
    name: &str,
    args: Vec<String>,
    self_test: impl Fn(&A) -> bool,
) -> Result<Parsed<A>, String> {
    if args.is_empty() {
        return Ok(Parsed::SelfTest);
    }
    let argv = std::iter::once(OsString::from(name)).chain(args.into_iter().map(OsString::from));
    match A::try_parse_from(argv) {
        Ok(a) if self_test(&a) => Ok(Parsed::SelfTest),
        Ok(a) => Ok(Parsed::Args(a)),
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => Ok(Parsed::Help),
        Err(e) => Err(e.to_string()),
    }
}

/// `A`'s `--help` text.
pub fn usage<A: clap::CommandFactory>() -> String {
    A::command().render_help().to_string()
}

/// A number of seconds (fractions allowed), as a clap value parser.
///
/// # Errors
/// Not a number, or not a valid duration.
pub fn secs(v: &str) -> Result<Duration, String> {
    let s: f64 = v.parse().map_err(|_| format!("not a number: {v:?}"))?;
    Duration::try_from_secs_f64(s).map_err(|e| e.to_string())
}

/// `r`'s value, or `bench: error` on stderr and exit status 2 (a bad command line).
pub fn or_exit<T>(bench: &str, r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| {
        eprintln!("{bench}: {e}");
        std::process::exit(2);
    })
}
