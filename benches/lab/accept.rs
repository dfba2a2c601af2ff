//! The `accept` workload: a [`Pool`] of 1, 2, 4 and 8 reactors under connection churn,
//! for every accept strategy (`reuseport`, `shared`, `handoff`) and backend.
//!
//! Per point: connections/s, server CPU per connection, and what the issue calls
//! wake-ups: the server threads' scheduler wake-ups per connection (timeslices from
//! `/proc/PID/task/*/schedstat`: a thread woken by the kernel that finds nothing and
//! sleeps again inside `select`/`poll`/`epoll_wait` is counted here even though user
//! space never sees it), the waits that returned to user space per connection, and
//! the listener wake-ups whose first `accept` found nothing (`EAGAIN`: the herd's
//! losers that got as far as user space); plus the balance, max/min connections
//! served per reactor.
//!
//! The server is a child process (`--serve accept:BACKEND:STRATEGY:N`, the lab's
//! child protocol plus `pool stats`), pinned like the other contenders; its reactors
//! share that core, so wake-ups are what is compared here, not throughput scaling.

use std::io;
use std::path::Path;
use std::time::Duration;

use readyloop::net::{AcceptStrategy, ListenConfig, PoolListener};
use readyloop::proto::echo::{Echo, EchoOptions};
use readyloop::reactor::pool::{Pool, StatsSnapshot};
use readyloop::selector::Backend;

use crate::cli::Options;
use crate::common::child::{self, Served};
use crate::common::{os, procfs};
use crate::loadgen::{self, Bounds};
use crate::report::{markdown, num};
use crate::servers::{self, ServerProc};

/// Reactor counts of the full run.
pub const REACTORS: [usize; 4] = [1, 2, 4, 8];

/// One measured point.
#[derive(Clone, Debug)]
pub struct Point {
    pub backend: Backend,
    pub strategy: AcceptStrategy,
    pub reactors: usize,
    /// `churn_concurrency` clients at once.
    pub busy: Phase,
    /// One client at a time.
    pub sparse: Phase,
}

/// max/min of `served` (`None`: a reactor served none).
pub fn balance(served: &[u64]) -> Option<f64> {
    let max = *served.iter().max()?;
    let min = *served.iter().min()?;
    (min > 0).then(|| max as f64 / min as f64)
}

/// The child name for a point.
fn child_name(b: Backend, s: AcceptStrategy, n: usize) -> String {
    format!("accept:{b}:{s}:{n}")
}

fn parse_child_name(name: &str) -> Option<(Backend, AcceptStrategy, usize)> {
    let mut it = name.strip_prefix("accept:")?.split(':');
    let b = it.next()?.parse().ok()?;
    let s = it.next()?.parse().ok()?;
    let n = it.next()?.parse().ok()?;
    Some((b, s, n))
}

/// Whether `name` is an accept child (`--serve accept:…`).
pub fn is_child(name: &str) -> bool {
    name.starts_with("accept:")
}

fn format_stats(stats: &[StatsSnapshot]) -> String {
    let parts: Vec<String> = stats
        .iter()
        .map(|s| {
            format!(
                "{} {} {} {}",
                s.waits, s.accepts_empty, s.accepted, s.served
            )
        })
        .collect();
    format!("pool {}", parts.join(";"))
}

fn parse_stats(line: &str) -> Option<Vec<StatsSnapshot>> {
    line.strip_prefix("pool ")?
        .split(';')
        .map(|p| {
            let v: Vec<u64> = p
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let [waits, accepts_empty, accepted, served] = v[..] else {
                return None;
            };
            Some(StatsSnapshot {
                waits,
                accepts_empty,
                accepted,
                served,
                open: 0,
            })
        })
        .collect()
}

/// The child side: an echo pool; `ready PORT`, then `pool stats` → `pool W E A S;…`
/// (per reactor: waits, empty accepts, accepted, served), `stats on`/`stats off` as
/// the other children (syscalls not counted here: `counts none`), `stop` → `stopped`.
pub fn serve_child(name: &str, cpu: Option<usize>) -> ! {
    if let Some(c) = cpu {
        os::pin_to(c);
    }
    os::raise_nofile();
    let started = (|| -> io::Result<_> {
        let (backend, strategy, n) = parse_child_name(name)
            .ok_or_else(|| io::Error::other(format!("bad accept child name {name:?}")))?;
        let l = PoolListener::bind("127.0.0.1:0", strategy, n, ListenConfig::default())?;
        let attach = l.clone();
        let pool = Pool::new(backend, n).start(move |r, m| {
            attach.attach(r, m, Echo::factory(EchoOptions::default()))?;
            Ok(())
        })?;
        Ok((l.local_addr().port(), pool))
    })();
    let (port, pool) =
        started.unwrap_or_else(|e| child::fail(&format!("lab: cannot start {name}"), &e));
    let stats = pool.stats_handles();
    let extra: child::Extra = Box::new(move |line| {
        (line == "pool stats").then(|| {
            let now: Vec<StatsSnapshot> = stats.iter().map(|s| s.snapshot()).collect();
            format_stats(&now)
        })
    });
    let stopper: child::Stopper = Box::new(move || {
        pool.stop();
        pool.wait()
    });
    let served = Served {
        ports: vec![port],
        counted: false,
        stopper,
        extra: Some(extra),
    };
    child::serve(&format!("lab: {name}"), served)
}

fn pool_stats(srv: &mut ServerProc) -> Result<Vec<StatsSnapshot>, String> {
    let r = srv.command("pool stats").map_err(|e| e.to_string())?;
    parse_stats(&r).ok_or_else(|| format!("pool stats: {r:?}"))
}

/// What one churn phase measured.
#[derive(Clone, Debug, Default)]
pub struct Phase {
    pub conns: u64,
    pub errors: u64,
    pub conns_per_sec: f64,
    pub cpu_us_per_conn: Option<f64>,
    /// Scheduler wake-ups (timeslices) of all server threads per connection.
    pub wakeups_per_conn: Option<f64>,
    /// Waits that returned to user space, all reactors, per connection.
    pub waits_per_conn: f64,
    /// Listener wake-ups whose first accept found nothing, per connection.
    pub empty_per_conn: f64,
    /// Connections served per reactor.
    pub served: Vec<u64>,
}

/// Churns `concurrency` clients at the server for `duration` and reads its counters.
fn phase(
    srv: &mut ServerProc,
    concurrency: usize,
    o: &Options,
    duration: Duration,
) -> Result<Phase, String> {
    let s0 = pool_stats(srv)?;
    let (cpu0, ts0) = (procfs::cpu_ns(srv.pid()), procfs::timeslices(srv.pid()));
    let bounds = Bounds {
        max_ops: o.max_ops,
        duration,
    };
    let r = loadgen::churn(srv.addr, concurrency, bounds).map_err(|e| e.to_string())?;
    let (cpu1, ts1) = (procfs::cpu_ns(srv.pid()), procfs::timeslices(srv.pid()));
    let s1 = pool_stats(srv)?;
    if r.ops == 0 {
        return Err("no connection completed".into());
    }
    let d: Vec<StatsSnapshot> = s1.iter().zip(&s0).map(|(a, b)| a.since(b)).collect();
    let conns = r.ops as f64;
    let sum = |f: fn(&StatsSnapshot) -> u64| d.iter().map(f).sum::<u64>() as f64;
    Ok(Phase {
        conns: r.ops,
        errors: r.errors,
        conns_per_sec: r.ops_per_sec(),
        cpu_us_per_conn: cpu0
            .zip(cpu1)
            .map(|(a, b)| b.saturating_sub(a) as f64 / 1000.0 / conns),
        wakeups_per_conn: ts0
            .zip(ts1)
            .map(|(a, b)| b.saturating_sub(a) as f64 / conns),
        waits_per_conn: sum(|s| s.waits) / conns,
        empty_per_conn: sum(|s| s.accepts_empty) / conns,
        served: d.iter().map(|s| s.served).collect(),
    })
}

/// One point: start the pool, warm up, a busy phase (`churn_concurrency` clients)
/// and a sparse one (one client: each connection arrives at idle reactors).
fn measure(
    b: Backend,
    s: AcceptStrategy,
    n: usize,
    o: &Options,
    cpu: Option<usize>,
    duration: Duration,
) -> Result<Point, String> {
    let e = |e: io::Error| e.to_string();
    let mut srv = servers::spawn(&child_name(b, s, n), cpu).map_err(e)?;
    let warm = Bounds {
        max_ops: o.max_ops,
        duration: o.warmup.min(duration),
    };
    loadgen::churn(srv.addr, o.churn_concurrency, warm).map_err(e)?;
    let busy = phase(&mut srv, o.churn_concurrency, o, duration)?;
    let sparse = phase(&mut srv, 1, o, duration)?;
    srv.stop().map_err(e)?;
    Ok(Point {
        backend: b,
        strategy: s,
        reactors: n,
        busy,
        sparse,
    })
}

/// Runs the workload; prints its table; writes `accept.md` and `accept.svg` to `dir`.
/// Returns the number of points that failed.
pub fn run(o: &Options, cpu: Option<usize>, dir: &Path) -> usize {
    let backends: Vec<Backend> = o
        .contenders
        .iter()
        .filter_map(|c| c.parse().ok())
        .filter(|b: &Backend| !o.quick || matches!(b, Backend::Poll | Backend::EpollEt))
        .collect();
    let reactors: &[usize] = if o.quick { &[2] } else { &REACTORS };
    let duration = if o.quick { o.duration } else { o.duration / 2 };
    let mut points = Vec::new();
    let mut failures = 0;
    eprintln!("lab: accept workload");
    for &b in &backends {
        for s in AcceptStrategy::ALL {
            for &n in reactors {
                match measure(b, s, n, o, cpu, duration) {
                    Ok(p) => points.push(p),
                    Err(e) => {
                        eprintln!("lab: accept / {b} {s} {n}: {e}");
                        failures += 1;
                    }
                }
            }
        }
    }
    let table = table(&points);
    println!(
        "\n## accept: connection churn over a pool of reactors\n\n\
         busy: {} concurrent churn clients (connect, 64-byte round trip, close) for {:.1} s; \
         sparse: one client at a time for as long (every connection finds the reactors \
         idle); after {:.1} s warm-up, one round. The server process is pinned to one core, so \
         its reactors share it: compare wake-ups and CPU per connection, not throughput (this \
         machine has 2 cores: scaling past 2 is not measurable here).\n\
         wake-ups = server threads' timeslices (schedstat) per connection, including wake-ups \
         that never reach user space; waits = waits returned to user space per connection; \
         empty = listener wake-ups whose first accept found nothing, per connection; \
         balance = max/min connections per reactor.\n",
        o.churn_concurrency,
        duration.as_secs_f64(),
        o.warmup.min(duration).as_secs_f64()
    );
    println!("{table}");
    if let Err(e) =
        std::fs::create_dir_all(dir).and_then(|_| std::fs::write(dir.join("accept.md"), &table))
    {
        eprintln!("lab: cannot write accept.md: {e}");
    }
    if reactors.len() > 1 {
        let x: Vec<String> = reactors.iter().map(|n| n.to_string()).collect();
        let mut series = Vec::new();
        for &b in &backends {
            for s in AcceptStrategy::ALL {
                let ys = reactors
                    .iter()
                    .map(|&n| {
                        points
                            .iter()
                            .find(|p| p.backend == b && p.strategy == s && p.reactors == n)
                            .and_then(|p| p.sparse.wakeups_per_conn)
                    })
                    .collect();
                series.push((format!("{s} {b}"), ys));
            }
        }
        let path = dir.join("accept.svg");
        if let Err(e) = crate::plot::line_chart(
            &path,
            "accept: server wake-ups per connection, one client at a time",
            "reactors",
            "wake-ups (timeslices) per connection",
            &x,
            &series,
        ) {
            eprintln!("lab: plot {}: {e}", path.display());
        }
    }
    failures
}

fn opt(x: Option<f64>) -> String {
    x.map(num).unwrap_or_else(|| "–".into())
}

/// The markdown table, one row per point.
pub fn table(points: &[Point]) -> String {
    let header = [
        "backend",
        "strategy",
        "reactors",
        "busy: conns (errors)",
        "busy: conn/s",
        "busy: CPU µs/conn",
        "busy: wake-ups/conn",
        "busy: waits/conn",
        "busy: empty accepts/conn",
        "busy: balance",
        "sparse: wake-ups/conn",
        "sparse: waits/conn",
        "sparse: empty accepts/conn",
        "sparse: served per reactor",
    ];
    let bal = |served: &[u64]| {
        balance(served)
            .map(|b| format!("{b:.2}"))
            .unwrap_or_else(|| "∞".into())
    };
    let rows: Vec<Vec<String>> = points
        .iter()
        .map(|p| {
            let (b, sp) = (&p.busy, &p.sparse);
            vec![
                p.backend.to_string(),
                p.strategy.to_string(),
                p.reactors.to_string(),
                format!("{} ({})", b.conns + sp.conns, b.errors + sp.errors),
                num(b.conns_per_sec),
                opt(b.cpu_us_per_conn),
                opt(b.wakeups_per_conn),
                num(b.waits_per_conn),
                format!("{:.3}", b.empty_per_conn),
                bal(&b.served),
                opt(sp.wakeups_per_conn),
                num(sp.waits_per_conn),
                format!("{:.3}", sp.empty_per_conn),
                sp.served
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join("/"),
            ]
        })
        .collect();
    markdown(&header, &rows)
}

/// Checks of the pure parts (the lab's `--self-test`).
pub fn self_check() -> Result<(), String> {
    let name = child_name(Backend::EpollEt, AcceptStrategy::Shared, 4);
    if parse_child_name(&name) != Some((Backend::EpollEt, AcceptStrategy::Shared, 4)) {
        return Err(format!("child name {name} does not round-trip"));
    }
    let s = vec![
        StatsSnapshot {
            waits: 5,
            accepts_empty: 1,
            accepted: 3,
            served: 3,
            open: 0,
        };
        2
    ];
    if parse_stats(&format_stats(&s)) != Some(s) {
        return Err("pool stats line does not round-trip".into());
    }
    if balance(&[6, 3]) != Some(2.0) || balance(&[6, 0]).is_some() {
        return Err("balance".into());
    }
    let p = Point {
        backend: Backend::Poll,
        strategy: AcceptStrategy::Handoff,
        reactors: 2,
        busy: Phase::default(),
        sparse: Phase::default(),
    };
    if !table(&[p]).contains("| poll | handoff | 2 |") {
        return Err("table row".into());
    }
    Ok(())
}
