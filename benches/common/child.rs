//! The child's side of the control protocol (see [`super::server`]): what a bench's
//! hidden `--serve` mode runs once its server listens.

use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;

use readyloop::reactor::Reactor;
use readyloop::selector::Backend;
use readyloop::sys::stats::{self, Counts};

/// How the child stops its server: a reactor stops through its handle; a server that
/// ends with the process has nothing to do.
pub type Stopper = Box<dyn FnOnce() -> io::Result<()>>;

/// Extra control lines a child answers (`Some(reply)`), besides the protocol's.
pub type Extra = Box<dyn FnMut(&str) -> Option<String>>;

/// A started server, as [`serve`] takes it.
pub struct Served {
    /// Its ports, for the `ready` line.
    pub ports: Vec<u16>,
    /// Whether `stats on/off` counts syscalls (this crate's reactors only).
    pub counted: bool,
    pub stopper: Stopper,
    pub extra: Option<Extra>,
}

/// Formats counts for the protocol.
pub fn format_counts(c: Option<Counts>) -> String {
    match c {
        None => "counts none".to_string(),
        Some(c) => {
            let nums: Vec<String> = c.0.iter().map(u64::to_string).collect();
            format!("counts {}", nums.join(" "))
        }
    }
}

/// Parses a `counts …` line: `Some(None)` for `counts none`, `None` if malformed.
pub fn parse_counts(line: &str) -> Option<Option<Counts>> {
    let rest = line.strip_prefix("counts ")?;
    if rest.trim() == "none" {
        return Some(None);
    }
    let nums: Vec<u64> = rest
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let arr: [u64; 9] = nums.try_into().ok()?;
    Some(Some(Counts(arr)))
}

/// The ports of a `ready PORT [PORT…]` line (`None` if malformed or empty).
pub fn parse_ready(line: &str) -> Option<Vec<u16>> {
    let ports: Vec<u16> = line
        .strip_prefix("ready ")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    (!ports.is_empty()).then_some(ports)
}

/// Says `ready`, answers control lines until `stop` or EOF, stops the server, says
/// `stopped` and exits: 0, or 3 if the server did not stop cleanly. `name` names it
/// on stderr.
pub fn serve(name: &str, s: Served) -> ! {
    let mut out = io::stdout().lock();
    let ports: Vec<String> = s.ports.iter().map(u16::to_string).collect();
    let _ = writeln!(out, "ready {}", ports.join(" "));
    let _ = out.flush();
    let (mut base, mut extra) = (Counts::default(), s.extra);
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let reply = match line.trim() {
            "stats on" => {
                if s.counted {
                    base = stats::snapshot();
                    stats::enable(true);
                }
                "ok".to_string()
            }
            "stats off" if s.counted => {
                stats::enable(false);
                format_counts(Some(stats::snapshot().since(&base)))
            }
            "stats off" => format_counts(None),
            "stop" => break,
            other => match extra.as_mut().and_then(|f| f(other)) {
                Some(r) => r,
                None => format!("error unknown command {other:?}"),
            },
        };
        let _ = writeln!(out, "{reply}");
        let _ = out.flush();
    }
    let code = match (s.stopper)() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{name}: did not stop cleanly: {e}");
            3
        }
    };
    let _ = writeln!(out, "stopped");
    let _ = out.flush();
    std::process::exit(code);
}

/// Exits with status 2 and `what: e` on stderr: a child that cannot start.
pub fn fail(what: &str, e: &dyn std::fmt::Display) -> ! {
    eprintln!("{what}: {e}");
    std::process::exit(2);
}

/// How a reactor child ends on `stop`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `Handle::stop`: at once.
    Stop,
    /// `Handle::shutdown`: graceful (stop accepting, let connections finish).
    Shutdown,
}

/// Runs a reactor on its own thread with what `setup` registers on it (returning the
/// addresses it listens on); the stopper ends it as `ending` says and joins it.
///
/// # Errors
/// The reactor's or `setup`'s error.
pub fn start_reactor(
    backend: Backend,
    ending: Ending,
    setup: impl FnOnce(&mut Reactor) -> io::Result<Vec<SocketAddr>> + Send + 'static,
) -> io::Result<(Vec<u16>, Stopper)> {
    let (tx, rx) = mpsc::channel();
    let t = thread::Builder::new()
        .name(format!("reactor-{backend}"))
        .spawn(move || -> io::Result<()> {
            let started = Reactor::new(backend).and_then(|mut r| {
                let addrs = setup(&mut r)?;
                Ok((r, addrs))
            });
            let mut r = match started {
                Ok((r, addrs)) => {
                    let ports = addrs.iter().map(SocketAddr::port).collect();
                    let _ = tx.send(Ok((ports, r.handle())));
                    r
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return Ok(());
                }
            };
            r.run()?;
            if r.panics_contained() > 0 {
                eprintln!("{backend}: {} panic(s) contained", r.panics_contained());
            }
            Ok(())
        })?;
    let (ports, handle) = rx
        .recv()
        .map_err(|_| io::Error::other("reactor thread died"))??;
    let stop: Stopper = Box::new(move || {
        match ending {
            Ending::Stop => handle.stop()?,
            Ending::Shutdown => handle.shutdown()?,
        }
        t.join()
            .map_err(|_| io::Error::other("reactor thread panicked"))?
    });
    Ok((ports, stop))
}

/// The usual `--serve` mode in one call: a reactor on `backend` with what `setup`
/// registers ([`start_reactor`]), then [`serve`]; a start that fails exits with
/// status 2. `counted`: whether `stats on/off` counts syscalls.
pub fn serve_reactor(
    name: &str,
    backend: Backend,
    ending: Ending,
    counted: bool,
    setup: impl FnOnce(&mut Reactor) -> io::Result<Vec<SocketAddr>> + Send + 'static,
) -> ! {
    let (ports, stopper) = start_reactor(backend, ending, setup).unwrap_or_else(|e| fail(name, &e));
    let served = Served {
        ports,
        counted,
        stopper,
        extra: None,
    };
    serve(name, served)
}
