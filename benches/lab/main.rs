//! The backend lab: `cargo bench --bench lab [-- options]`.
//!
//! Runs this crate's echo server on every backend, the classroom's thread-per-connection
//! and fork-per-connection servers, and reference echo servers on mio and tokio, under
//! one load generator; and (workload `http`) this crate's HTTP server on every backend
//! against nginx under `wrk`; and (workload `proxy`) this crate's TCP relay against a
//! tokio `copy_bidirectional` relay. Prints markdown tables, writes `target/lab/results.json`
//! and SVG plots. `-- --help` lists the options; `-- --self-test` runs the lab's own checks, and
//! so does `cargo test --benches` (which runs this target with no argument).

mod accept;
mod cli;
mod client;
#[path = "../common/mod.rs"]
mod common;
mod http;
mod latency;
mod loadgen;
mod nginx;
mod proxy;
mod report;
mod selftest;
mod servers;
mod wrk;

use common::{env, os, plot, procfs, strace, tools};

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cli::{Mode, Options};
use loadgen::{Bounds, EchoClient, PhaseResult};
use readyloop::sys::stats::Counts;
use report::{Cell, Outcome, Sample};
use servers::{ServerProc, ALL_CONTENDERS, NGINX};

fn main() {
    let mode = common::cli::or_exit("lab", cli::parse(std::env::args().skip(1)));
    match mode {
        Mode::Help => print!("{}", cli::usage()),
        Mode::Serve {
            name,
            cpu,
            http_root,
        } => servers::serve_child(&name, cpu, http_root),
        Mode::SelfTest => std::process::exit(selftest::run()),
        Mode::Lab(o) => std::process::exit(run_lab(o)),
    }
}

/// Collects samples per (workload, contender, idle count).
#[derive(Default)]
struct Results {
    cells: BTreeMap<(usize, usize, u64, u64), Cell>,
    /// nginx's syscalls per request by workload, from `strace -c` (`--strace` only):
    /// (total, breakdown).
    nginx_strace: BTreeMap<String, (f64, String)>,
}

impl Results {
    fn key(
        workload: &str,
        contender: &str,
        idle: Option<u64>,
        offered: Option<u64>,
    ) -> (usize, usize, u64, u64) {
        let w = cli::workload_rank(workload);
        let c = ALL_CONTENDERS
            .iter()
            .position(|x| *x == contender)
            .unwrap_or(99);
        (w, c, idle.unwrap_or(0), offered.unwrap_or(0))
    }

    fn cell(&mut self, workload: &str, contender: &str, idle: Option<u64>) -> &mut Cell {
        self.cell_at(workload, contender, idle, None)
    }

    fn cell_at(
        &mut self,
        workload: &str,
        contender: &str,
        idle: Option<u64>,
        offered: Option<u64>,
    ) -> &mut Cell {
        self.cells
            .entry(Self::key(workload, contender, idle, offered))
            .or_insert_with(|| Cell {
                workload: workload.to_string(),
                contender: contender.to_string(),
                idle,
                offered,
                outcome: Outcome::Measured(Vec::new()),
            })
    }

    fn add(
        &mut self,
        workload: &str,
        contender: &str,
        idle: Option<u64>,
        r: Result<Sample, String>,
    ) {
        self.add_at(workload, contender, idle, None, r)
    }

    /// Adds a sample of a sweep point: `offered` operations per second.
    fn add_at(
        &mut self,
        workload: &str,
        contender: &str,
        idle: Option<u64>,
        offered: Option<u64>,
        r: Result<Sample, String>,
    ) {
        let cell = self.cell_at(workload, contender, idle, offered);
        match (&mut cell.outcome, r) {
            (Outcome::Measured(v), Ok(s)) => v.push(s),
            (Outcome::Measured(_), Err(e)) => {
                eprintln!("lab: {workload} / {contender}: {e}");
                cell.outcome = Outcome::Failed(e);
            }
            _ => {}
        }
    }

    fn not_applicable(&mut self, workload: &str, contender: &str, idle: Option<u64>, why: &str) {
        self.cell(workload, contender, idle).outcome = Outcome::NotApplicable(why.to_string());
    }

    /// A contender that needs a missing tool: a failure under `CI=true`, else n/a.
    fn missing_tool(&mut self, workload: &str, contender: &str, tool: &str) {
        match tools::missing(tool) {
            Ok(why) => self.not_applicable(workload, contender, None, &why),
            Err(e) => self.add(workload, contender, None, Err(e)),
        }
    }

    fn of(&self, workload: &str) -> Vec<&Cell> {
        self.cells
            .values()
            .filter(|c| c.workload == workload)
            .collect()
    }

    fn all(&self) -> Vec<Cell> {
        self.cells.values().cloned().collect()
    }

    fn failures(&self) -> usize {
        self.cells
            .values()
            .filter(|c| match &c.outcome {
                Outcome::Failed(_) => true,
                Outcome::Measured(v) => v.is_empty() || v.iter().any(|s| s.ops == 0),
                Outcome::NotApplicable(_) => false,
            })
            .count()
    }
}

fn sample(r: &PhaseResult, counts: Option<Counts>) -> Sample {
    Sample {
        ops: r.ops,
        ops_per_sec: r.ops_per_sec(),
        mb_per_sec: r.mb_per_sec(),
        p50_us: r.quantile_us(0.50),
        p99_us: r.quantile_us(0.99),
        p999_us: r.quantile_us(0.999),
        errors: r.errors,
        counts,
        cpu_us_per_op: None,
        load_cpu: None,
        fixed_cpu_us_per_op: None,
    }
}

/// Adds the server's CPU time per operation over the measured window (read from
/// `/proc/PID/task/*/schedstat` before and after): steadier than throughput on a
/// shared machine, where the load generator often sets the pace.
fn with_cpu(mut s: Sample, before: Option<u64>, after: Option<u64>) -> Sample {
    if let (Some(a), Some(b)) = (before, after) {
        if s.ops > 0 {
            s.cpu_us_per_op = Some(b.saturating_sub(a) as f64 / 1000.0 / s.ops as f64);
        }
    }
    s
}

/// Whether `conns` client connections would push the `select` server's descriptors
/// past `FD_SETSIZE` (it also holds the listener, the waker and the std descriptors):
/// the server refuses those connections, so the workload does not apply to it.
fn beyond_select(name: &str, conns: usize) -> bool {
    name == "select" && conns + 16 > libc::FD_SETSIZE
}

fn check(r: &PhaseResult) -> Result<(), String> {
    if r.ops == 0 {
        Err(format!("no operation completed ({} errors)", r.errors))
    } else {
        Ok(())
    }
}

struct Lab {
    o: Options,
    server_cpu: Option<usize>,
}

impl Lab {
    fn spawn(&self, name: &str) -> io::Result<ServerProc> {
        servers::spawn(name, self.server_cpu)
    }

    fn bounds(&self, duration: Duration) -> Bounds {
        Bounds {
            max_ops: self.o.max_ops,
            duration,
        }
    }

    fn warm(&self) -> Bounds {
        Bounds {
            max_ops: self.o.max_ops,
            duration: self.o.warmup,
        }
    }

    /// Closed-loop echo with `conns` connections of `size`-byte messages; with
    /// `fixed` (operations/s), then an open-loop phase at that offered load on the
    /// same server for the headline figure, its CPU per operation.
    fn echo(
        &self,
        name: &str,
        conns: usize,
        size: usize,
        duration: Duration,
        fixed: Option<f64>,
    ) -> Result<Sample, String> {
        let e = |e: io::Error| format!("{e}");
        let mut srv = self.spawn(name).map_err(e)?;
        let mut cl = EchoClient::connect(srv.addr, conns, size).map_err(e)?;
        cl.run(self.warm()).map_err(e)?;
        srv.stats_on().map_err(e)?;
        let cpu0 = procfs::cpu_ns(srv.pid());
        let r = cl.run(self.bounds(duration)).map_err(e)?;
        let cpu1 = procfs::cpu_ns(srv.pid());
        let counts = srv.stats_off().map_err(e)?;
        drop(cl);
        let fixed_cpu = match fixed {
            Some(rate) if name != "fork" => {
                let req = loadgen::Request::Echo(loadgen::pattern(size));
                let mut ol = loadgen::OpenLoop::connect(srv.addr, conns, req).map_err(e)?;
                let c0 = procfs::CpuMark::take(srv.pid());
                let f = ol.run(Some(rate), self.bounds(duration)).map_err(e)?;
                let ns = c0.and_then(|m| m.since(srv.pid()));
                check(&f.phase)?;
                ns.map(|ns| ns as f64 / 1e3 / f.phase.ops as f64)
            }
            _ => None,
        };
        srv.stop().map_err(e)?;
        check(&r)?;
        // A fork server's work happens in its children, which the parent's
        // schedstat does not include: no CPU figure for it rather than a wrong one.
        let (cpu0, cpu1) = if name == "fork" {
            (None, None)
        } else {
            (cpu0, cpu1)
        };
        let mut s = with_cpu(sample(&r, counts), cpu0, cpu1);
        s.fixed_cpu_us_per_op = fixed_cpu;
        Ok(s)
    }

    fn churn(&self, name: &str, duration: Duration) -> Result<Sample, String> {
        let e = |e: io::Error| format!("{e}");
        let mut srv = self.spawn(name).map_err(e)?;
        let c = self.o.churn_concurrency;
        loadgen::churn(srv.addr, c, self.warm()).map_err(e)?;
        srv.stats_on().map_err(e)?;
        // A thread per connection: its threads exit inside the window, taking their
        // time out of /proc/PID/task; the process's own (coarser) total keeps it.
        let cpu = |pid| {
            if name == "threads" {
                procfs::stat_cpu_ns(pid)
            } else {
                procfs::cpu_ns(pid)
            }
        };
        let cpu0 = cpu(srv.pid());
        let r = loadgen::churn(srv.addr, c, self.bounds(duration)).map_err(e)?;
        let cpu1 = cpu(srv.pid());
        let counts = srv.stats_off().map_err(e)?;
        srv.stop().map_err(e)?;
        check(&r)?;
        let (cpu0, cpu1) = if name == "fork" {
            (None, None)
        } else {
            (cpu0, cpu1)
        };
        Ok(with_cpu(sample(&r, counts), cpu0, cpu1))
    }

    /// One server, idle connections added step by step; one active connection measured
    /// at each step.
    fn idle_sweep(&self, name: &str, res: &mut Results) {
        let w = "idle-sweep";
        let duration = (self.o.duration / 2).max(Duration::from_millis(50));
        let mut srv = match self.spawn(name) {
            Ok(s) => s,
            Err(e) => {
                for &i in &self.o.idle_counts {
                    res.add(w, name, Some(i), Err(e.to_string()));
                }
                return;
            }
        };
        let mut idle = Vec::new();
        let mut active: Option<EchoClient> = None;
        let mut failed: Option<String> = None;
        let mut counts = self.o.idle_counts.clone();
        counts.sort_unstable();
        for &n in &counts {
            if let Some(f) = &failed {
                res.add(w, name, Some(n), Err(f.clone()));
                continue;
            }
            // The server holds listener, waker and std descriptors besides connections.
            if beyond_select(name, n as usize) {
                res.not_applicable(w, name, Some(n), "FD_SETSIZE");
                continue;
            }
            let r = (|| -> io::Result<Sample> {
                loadgen::open_idle(srv.addr, n as usize - idle.len(), 100, &mut idle)?;
                if active.is_none() {
                    active = Some(EchoClient::connect(srv.addr, 1, 64)?);
                }
                let cl = active.as_mut().expect("active client");
                cl.run(Bounds {
                    max_ops: self.o.max_ops,
                    duration: self.o.warmup / 2,
                })?;
                srv.stats_on()?;
                let r = cl.run(self.bounds(duration))?;
                let c = srv.stats_off()?;
                if r.ops == 0 {
                    return Err(io::Error::other("no round trip completed"));
                }
                Ok(sample(&r, c))
            })();
            match r {
                Ok(s) => res.add(w, name, Some(n), Ok(s)),
                Err(e) => {
                    let msg = format!("at {n} idle: {e}");
                    failed = Some(msg.clone());
                    res.add(w, name, Some(n), Err(msg));
                }
            }
        }
        drop(active);
        drop(idle);
        if let Err(e) = srv.stop() {
            if failed.is_none() {
                res.add(w, name, counts.last().copied(), Err(format!("stop: {e}")));
            }
        }
    }
}

fn run_lab(o: Options) -> i32 {
    let started = Instant::now();
    let machine = env::machine_info();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let server_cpu = if o.pin && cores >= 2 && os::pin_to(1) {
        Some(0)
    } else {
        None
    };
    let nofile = os::raise_nofile();
    println!(
        "# readyloop backend lab{}\n",
        if o.quick { " (--quick)" } else { "" }
    );
    println!("- machine: {machine}");
    println!(
        "- pinning: {}",
        match server_cpu {
            Some(c) => format!("server process on CPU {c}, load generator on CPU 1"),
            None => "none".into(),
        }
    );
    println!(
        "- method: {} round(s), contenders alternate within each round; medians with min–max; \
         {:.1} s per round-trip point after {:.1} s warm-up; RLIMIT_NOFILE {nofile}",
        o.rounds,
        o.duration.as_secs_f64(),
        o.warmup.as_secs_f64()
    );
    println!(
        "- syscalls/op: counted by the crate's own counters in the server over the measured \
         window (`readyloop::sys::stats`); `–` for contenders that do not count\n"
    );
    let lab = Lab {
        o: o.clone(),
        server_cpu,
    };
    let mut res = Results::default();
    let has = |w: &str| o.workloads.iter().any(|x| x == w);
    let echo = o.echo_contenders();
    let hl = if has("http") {
        HttpLab::new(&o, server_cpu, &mut res)
    } else {
        None
    };
    let lat_site = if has("latency") {
        http::Site::create_named("latency")
            .map_err(|e| eprintln!("lab: latency: content: {e}"))
            .ok()
    } else {
        None
    };
    let nginx_bin = nginx::binary();
    let lat = if has("latency") {
        latency_plans(
            &o,
            server_cpu,
            lat_site.as_ref(),
            nginx_bin.is_some(),
            &mut res,
        )
    } else {
        Vec::new()
    };
    for round in 0..o.rounds {
        let n = echo.len();
        let order: Vec<&String> = (0..n).map(|i| &echo[(i + round) % n]).collect();
        eprintln!("lab: round {}/{}", round + 1, o.rounds);
        for name in &order {
            if has("round-trip") {
                if beyond_select(name, o.connections) {
                    res.not_applicable("round-trip", name, None, "FD_SETSIZE");
                } else {
                    let s = lab.echo(name, o.connections, 64, o.duration, Some(o.fixed_rate));
                    res.add("round-trip", name, None, s);
                }
            }
        }
        for name in &order {
            // The sweep opens 10000 connections per contender: three rounds are plenty.
            if has("idle-sweep") && round < 3 {
                lab.idle_sweep(name, &mut res);
            }
        }
        for name in &order {
            if has("churn") {
                if beyond_select(name, o.churn_concurrency) {
                    res.not_applicable("churn", name, None, "FD_SETSIZE");
                } else {
                    let s = lab.churn(name, o.duration / 2);
                    res.add("churn", name, None, s);
                }
            }
        }
        for name in &order {
            if has("bulk") {
                if beyond_select(name, o.bulk_connections) {
                    res.not_applicable("bulk", name, None, "FD_SETSIZE");
                } else {
                    let s = lab.echo(name, o.bulk_connections, o.bulk_chunk, o.duration / 2, None);
                    res.add("bulk", name, None, s);
                }
            }
        }
        // Each sweep is many points per contender: three rounds are plenty.
        if round < 3 {
            for lp in &lat {
                let n = lp.contenders.len();
                for i in 0..n {
                    let name = &lp.contenders[(i + round) % n];
                    latency::sweep(
                        name,
                        &lp.plan,
                        lat_site.as_ref(),
                        nginx_bin.as_deref(),
                        &mut res,
                    );
                }
            }
        }
        if let Some(hl) = &hl {
            hl.round(round, &mut res);
        }
    }
    if let (Some(hl), true) = (&hl, o.strace && !o.quick) {
        hl.strace_nginx(&mut res);
    }
    print_tables(&o, &res);
    print_latency_tables(&lat, &res);
    if has("http") {
        print_http_tables(&o, &res, hl.as_ref());
    }
    // The relay comparison (readyloop's `proxy` protocol vs tokio's
    // `copy_bidirectional`): its own contenders, its own table.
    let proxy_failures = if has("proxy") {
        proxy::run(&o, server_cpu)
    } else {
        0
    };
    let dir = env::out_dir(o.out_dir.as_ref());
    let accept_failures = if has("accept") {
        accept::run(&o, server_cpu, &dir)
    } else {
        0
    };
    if let Err(e) = write_outputs(&dir, &o, &res, &machine, &lat) {
        eprintln!("lab: cannot write results to {}: {e}", dir.display());
        return 1;
    }
    if o.strace && !o.quick {
        strace_cross_check(&lab);
    }
    println!(
        "\nwrote {}/results.json and plots; took {:.1} s",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    let failures = res.failures() + proxy_failures + accept_failures;
    if failures > 0 {
        eprintln!("lab: {failures} measurement(s) failed");
        return 1;
    }
    0
}

/// The headline of a table at fixed offered load `rate`, paired with the first of
/// `refs` that has fixed-load figures in `cells` (none: no headline).
fn headline(cells: &[&Cell], rate: f64, refs: &[&str]) -> Option<report::Headline> {
    let has = |n: &str| {
        cells.iter().any(|c| {
            c.contender == n
                && matches!(&c.outcome, Outcome::Measured(s) if s.iter().any(|x| x.fixed_cpu_us_per_op.is_some()))
        })
    };
    refs.iter().find(|r| has(r)).map(|r| report::Headline {
        rate,
        reference: r.to_string(),
    })
}

fn best_reference(res: &Results) -> Option<f64> {
    res.of("round-trip")
        .iter()
        .filter(|c| ["ref-mio", "ref-tokio", "polling"].contains(&c.contender.as_str()))
        .filter_map(|c| match &c.outcome {
            Outcome::Measured(s) => report::summarise(s).ops_per_sec.map(|t| t.median),
            _ => None,
        })
        .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))))
}

/// epoll-et's round trips/s over the best reference's in the same round: the median
/// and range over rounds. Contenders alternate within a round, so a round's ratio is
/// less exposed to the machine's drift than the ratio of medians.
fn paired_ratio(res: &Results) -> Option<report::Stat> {
    let rt = res.of("round-trip");
    let samples = |name: &str| -> Option<Vec<f64>> {
        rt.iter()
            .find(|c| c.contender == name)
            .and_then(|c| match &c.outcome {
                Outcome::Measured(s) => Some(s.iter().map(|x| x.ops_per_sec).collect()),
                _ => None,
            })
    };
    let et = samples("epoll-et")?;
    let refs: Vec<Vec<f64>> = ["ref-mio", "ref-tokio", "polling"]
        .into_iter()
        .filter_map(samples)
        .collect();
    if refs.is_empty() {
        return None;
    }
    let ratios: Vec<f64> = (0..et.len())
        .filter_map(|k| {
            let best = refs
                .iter()
                .map(|r| r.get(k).copied())
                .collect::<Option<Vec<f64>>>()?
                .into_iter()
                .fold(0.0, f64::max);
            (best > 0.0).then(|| et[k] / best)
        })
        .collect();
    report::stat(&ratios)
}

fn print_tables(o: &Options, res: &Results) {
    let has = |w: &str| o.workloads.iter().any(|x| x == w);
    if has("round-trip") {
        println!(
            "## Echo round trip (64 B, {} connections, closed loop)\n",
            o.connections
        );
        let base = best_reference(res);
        println!(
            "{}",
            report::throughput_table(
                &res.of("round-trip"),
                "round trips/s",
                false,
                base,
                headline(
                    &res.of("round-trip"),
                    o.fixed_rate,
                    &["ref-mio", "ref-tokio"]
                )
                .as_ref(),
            )
        );
        if base.is_some() {
            println!("`vs best ref`: ratio to the best of `ref-mio`, `ref-tokio` and `polling`.\n");
        }
        if !o.quick {
            targets(res, base);
        }
    }
    if has("idle-sweep") {
        println!("## Idle-connection sweep (p50 round-trip µs of one active connection)\n");
        println!(
            "{}",
            report::idle_table(&res.of("idle-sweep"), &o.echo_contenders(), &o.idle_counts)
        );
    }
    if has("churn") {
        println!(
            "## Connection churn (connect, one 64 B round trip, close; {} at a time)\n",
            o.churn_concurrency
        );
        println!(
            "{}",
            report::throughput_table(&res.of("churn"), "connections/s", false, None, None)
        );
    }
    if has("bulk") {
        println!(
            "## Echo bulk ({} KiB chunks, {} connections; latency per chunk round trip)\n",
            o.bulk_chunk / 1024,
            o.bulk_connections
        );
        println!(
            "{}",
            report::throughput_table(&res.of("bulk"), "MB/s", true, None, None)
        );
    }
}

/// Prints the targets for this run.
fn targets(res: &Results, base: Option<f64>) {
    let et = res
        .of("round-trip")
        .into_iter()
        .find(|c| c.contender == "epoll-et");
    let Some(Outcome::Measured(s)) = et.map(|c| &c.outcome) else {
        return;
    };
    let s = report::summarise(s);
    if let (Some(t), Some(b)) = (s.ops_per_sec, base) {
        let r = t.median / b;
        println!(
            "- target epoll-et ≥ 1.05x best reference: {:.2}x {}",
            r,
            if r >= 1.05 { "(met)" } else { "(NOT met)" }
        );
    }
    if let Some(p) = paired_ratio(res) {
        println!(
            "- (context) the same ratio paired by round (epoll-et over the best reference \
             of the same round, which shares its machine state): median {:.2}x, \
             min–max {:.2}x–{:.2}x",
            p.median, p.min, p.max
        );
    }
    if let Some(x) = s.syscalls_per_op {
        println!(
            "- target epoll-et ≤ 2.1 syscalls per round trip: {:.2} {}",
            x,
            if x <= 2.1 { "(met)" } else { "(NOT met)" }
        );
    }
    // The steadier view: what a round trip costs each server in CPU time.
    let cpu = |name: &str| {
        res.of("round-trip")
            .into_iter()
            .find(|c| c.contender == name)
            .and_then(|c| match &c.outcome {
                Outcome::Measured(s) => report::summarise(s).cpu_us_per_op,
                _ => None,
            })
    };
    if let Some(mine) = s.cpu_us_per_op {
        for r in ["ref-mio", "ref-tokio", "polling"] {
            if let Some(theirs) = cpu(r) {
                println!(
                    "- (context) server CPU per round trip: epoll-et {mine:.2} µs, {r} {theirs:.2} µs ({r} needs {:.2}x the CPU)",
                    theirs / mine
                );
            }
        }
    }
    println!();
}

fn write_outputs(
    dir: &std::path::Path,
    o: &Options,
    res: &Results,
    machine: &str,
    lat: &[LatencyPlan],
) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut json = report::json_results(&res.all());
    // The http cells: the ratio to nginx, and where the syscall counts come from.
    if let Some(arr) = json.as_array_mut() {
        for v in arr.iter_mut() {
            let (Some(w), Some(c)) = (v["workload"].as_str(), v["contender"].as_str()) else {
                continue;
            };
            if !w.starts_with("http-") {
                continue;
            }
            let (w, c) = (w.to_string(), c.to_string());
            let ratio = match (median_rps(res, &w, &c), median_rps(res, &w, NGINX)) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                _ => None,
            };
            v["vs_nginx"] = serde_json::json!(ratio);
            if c == NGINX {
                if let Some((total, by)) = res.nginx_strace.get(&w) {
                    v["syscalls_per_op"] = serde_json::json!(total);
                    v["syscalls_source"] = serde_json::json!("strace");
                    v["syscalls_per_op_strace"] = serde_json::json!(by);
                }
            } else if !v["syscalls_per_op"].is_null() {
                v["syscalls_source"] = serde_json::json!("counters");
            }
        }
    }
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&json).map_err(io::Error::other)? + "\n",
    )?;
    let run = serde_json::json!({
        "machine": machine,
        "quick": o.quick,
        "rounds": o.rounds,
        "duration_s": o.duration.as_secs_f64(),
        "connections": o.connections,
        "workloads": o.workloads,
        "contenders": o.contenders,
        "idle_counts": o.idle_counts,
        "fixed_rate": o.fixed_rate,
        "http_fixed_rate": o.http_fixed_rate,
        "latency": lat.iter().map(|l| serde_json::json!({
            "workload": l.plan.workload,
            "capacity_per_sec": l.capacity,
            "connections": l.plan.conns,
            "offered_per_sec": l.plan.rates,
            "point_s": l.plan.point.as_secs_f64(),
        })).collect::<Vec<_>>(),
    });
    std::fs::write(
        dir.join("run.json"),
        serde_json::to_string_pretty(&run).map_err(io::Error::other)? + "\n",
    )?;
    let plot_err = |e: Box<dyn std::error::Error>| io::Error::other(e.to_string());
    let rt = res.of("round-trip");
    if !rt.is_empty() {
        let bars: Vec<(String, f64, f64, f64)> = rt
            .iter()
            .filter_map(|c| match &c.outcome {
                Outcome::Measured(s) => {
                    let t = report::summarise(s).ops_per_sec?;
                    Some((c.contender.clone(), t.median, t.min, t.max))
                }
                _ => None,
            })
            .collect();
        plot::bar_chart(
            &dir.join("round_trip.svg"),
            &format!(
                "Echo round trips/s (64 B, {} connections; median, min–max)",
                o.connections
            ),
            "round trips/s",
            &bars,
        )
        .map_err(plot_err)?;
    }
    let mut panels = Vec::new();
    for t in &http::TARGETS {
        let cells = res.of(t.workload);
        let mb = t.workload == "http-1m";
        let bars: Vec<(String, f64, f64, f64)> = cells
            .iter()
            .filter_map(|c| match &c.outcome {
                Outcome::Measured(s) => {
                    let sm = report::summarise(s);
                    let t = if mb { sm.mb_per_sec } else { sm.ops_per_sec }?;
                    Some((c.contender.clone(), t.median, t.min, t.max))
                }
                _ => None,
            })
            .collect();
        if !bars.is_empty() {
            let (title, unit) = match t.workload {
                "http-plaintext" => ("GET /plaintext", "requests/s"),
                "http-1k" => ("1 KiB file", "requests/s"),
                "http-small" => ("13 B file", "requests/s"),
                _ => ("1 MiB file", "MB/s"),
            };
            panels.push((title.to_string(), unit.to_string(), bars));
        }
    }
    if !panels.is_empty() {
        plot::bar_panels(
            &dir.join("http.svg"),
            &format!(
                "HTTP: readyloop backends vs nginx (1 worker), wrk -c{} (median, min–max)",
                o.http_connections
            ),
            &panels,
        )
        .map_err(plot_err)?;
    }
    for l in lat {
        let cells = res.of(l.plan.workload);
        if cells.is_empty() {
            continue;
        }
        let labels: Vec<String> = l
            .plan
            .rates
            .iter()
            .map(|r| report::num(*r as f64))
            .collect();
        let series: Vec<(String, Vec<Option<f64>>)> = l
            .contenders
            .iter()
            .map(|name| {
                let ys = l
                    .plan
                    .rates
                    .iter()
                    .map(|&r| {
                        cells
                            .iter()
                            .find(|c| &c.contender == name && c.offered == Some(r))
                            .and_then(|c| match &c.outcome {
                                Outcome::Measured(s) => report::summarise(s).p99_us,
                                _ => None,
                            })
                    })
                    .collect();
                (name.clone(), ys)
            })
            .collect();
        let what = if l.plan.workload == "latency-http" {
            "HTTP GET /plaintext"
        } else {
            "echo 64 B"
        };
        plot::line_chart(
            &dir.join(format!("{}.svg", l.plan.workload.replace('-', "_"))),
            &format!(
                "{what}, open loop, {} connections: p99 latency vs offered load",
                l.plan.conns
            ),
            "offered load (operations/s)",
            "p99 latency from intended send (µs)",
            &labels,
            &series,
        )
        .map_err(plot_err)?;
    }
    let idle = res.of("idle-sweep");
    if !idle.is_empty() {
        let labels: Vec<String> = o.idle_counts.iter().map(u64::to_string).collect();
        let series: Vec<(String, Vec<Option<f64>>)> = o
            .echo_contenders()
            .iter()
            .map(|name| {
                let ys = o
                    .idle_counts
                    .iter()
                    .map(|&i| {
                        idle.iter()
                            .find(|c| &c.contender == name && c.idle == Some(i))
                            .and_then(|c| match &c.outcome {
                                Outcome::Measured(s) => report::summarise(s).p50_us,
                                _ => None,
                            })
                    })
                    .collect();
                (name.clone(), ys)
            })
            .collect();
        plot::line_chart(
            &dir.join("idle_sweep.svg"),
            "Round-trip latency of one active connection vs idle connections (p50)",
            "idle connections",
            "p50 latency (µs)",
            &labels,
            &series,
        )
        .map_err(plot_err)?;
    }
    Ok(())
}

/// One open-loop sweep of the run: its plan, contenders and the capacity it is
/// scaled to.
struct LatencyPlan {
    plan: latency::Plan,
    contenders: Vec<String>,
    capacity: f64,
}

/// Calibrates each latency sub-workload (closed loop against epoll-et) and plans
/// its offered loads; a calibration that fails marks the sub-workload failed.
fn latency_plans(
    o: &Options,
    server_cpu: Option<usize>,
    site: Option<&http::Site>,
    have_nginx: bool,
    res: &mut Results,
) -> Vec<LatencyPlan> {
    let mut out = Vec::new();
    for w in cli::LATENCY_WORKLOADS {
        let (conns, mut contenders) = if w == "latency-http" {
            (o.http_connections, o.http_contenders())
        } else {
            (o.connections, o.echo_contenders())
        };
        if w == "latency-http" && !have_nginx && contenders.iter().any(|c| c == NGINX) {
            res.missing_tool(w, NGINX, "nginx");
            contenders.retain(|c| c != NGINX);
        }
        contenders.retain(|c| !beyond_select(c, conns));
        if contenders.is_empty() {
            continue;
        }
        let time = (o.sweep_duration * 2).max(Duration::from_millis(200));
        match latency::calibrate(w, conns, time, site, server_cpu) {
            Ok(capacity) => {
                let rates = latency::rates(capacity, &o.load_fractions);
                eprintln!("lab: {w}: capacity {capacity:.0}/s closed loop; offering {rates:?}");
                out.push(LatencyPlan {
                    plan: latency::Plan {
                        workload: w,
                        conns,
                        rates,
                        point: o.sweep_duration,
                        warmup: o.warmup,
                        max_ops: o.max_ops,
                        server_cpu,
                    },
                    contenders,
                    capacity,
                });
            }
            Err(e) => {
                for c in &contenders {
                    res.add(w, c, None, Err(format!("calibration: {e}")));
                }
            }
        }
    }
    out
}

fn print_latency_tables(lat: &[LatencyPlan], res: &Results) {
    for l in lat {
        let what = if l.plan.workload == "latency-http" {
            "HTTP `GET /plaintext` (nginx: `return 200`)"
        } else {
            "echo, 64 B"
        };
        println!(
            "## Open-loop latency: {what}, {} connections (`{}`)\n",
            l.plan.conns, l.plan.workload
        );
        println!(
            "- offered load: a constant rate, each connection sending on a schedule; latency \
             counted from the intended send time (coordinated omission corrected, as wrk2); \
             {:.1} s per point; 100% = {:.0}/s, the closed-loop rate of this load generator \
             against epoll-et at the start of the run\n",
            l.plan.point.as_secs_f64(),
            l.capacity
        );
        println!(
            "{}",
            report::latency_tables(&res.of(l.plan.workload), &l.contenders, &l.plan.rates)
        );
    }
}

/// Counts epoll-et's syscalls per round trip with `strace -c -f` (a run with K round
/// trips minus a run with none, both with the same start, connections and stop) and
/// prints it beside the crate's own count over the same K round trips.
fn strace_cross_check(lab: &Lab) {
    println!("\n## Cross-check with strace -c -f (epoll-et)\n");
    if std::process::Command::new("strace")
        .arg("-V")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        println!("strace is not installed: skipped.");
        return;
    }
    let k: u64 = 20_000;
    let run = |ops: u64| -> Result<(BTreeMap<String, u64>, Option<Counts>), String> {
        let e = |e: io::Error| e.to_string();
        let file =
            std::env::temp_dir().join(format!("lab-strace-{}-{ops}.txt", std::process::id()));
        let wrapper: Vec<String> = ["strace", "-f", "-c", "-U", "calls,name", "-o"]
            .iter()
            .map(|s| s.to_string())
            .chain([file.display().to_string()])
            .collect();
        let mut srv = servers::spawn_wrapped("epoll-et", lab.server_cpu, &wrapper).map_err(e)?;
        let mut cl = EchoClient::connect(srv.addr, 10, 64).map_err(e)?;
        srv.stats_on().map_err(e)?;
        if ops > 0 {
            let r = cl
                .run(Bounds {
                    max_ops: ops,
                    duration: Duration::from_secs(60),
                })
                .map_err(e)?;
            if r.ops != ops {
                return Err(format!("{} of {ops} round trips", r.ops));
            }
        }
        let counts = srv.stats_off().map_err(e)?;
        drop(cl);
        srv.stop().map_err(e)?;
        let text = std::fs::read_to_string(&file).map_err(e)?;
        let _ = std::fs::remove_file(&file);
        Ok((strace::parse_strace_calls(&text), counts))
    };
    let (with, without) = match (run(k), run(0)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            println!("strace run failed: {e}");
            return;
        }
    };
    let diff = |name: &str| {
        with.0.get(name).copied().unwrap_or(0) as f64
            - without.0.get(name).copied().unwrap_or(0) as f64
    };
    let total = diff("total") / k as f64;
    let mut rows = Vec::new();
    for name in with.0.keys().filter(|n| *n != "total") {
        let d = diff(name) / k as f64;
        if d.abs() >= 0.005 {
            rows.push(vec![format!("`{name}`"), format!("{d:.2}")]);
        }
    }
    rows.push(vec!["**total**".into(), format!("{total:.2}")]);
    println!(
        "{}",
        report::markdown(
            &["syscall (strace, server process)", "per round trip"],
            &rows
        )
    );
    match with.1 {
        Some(c) => println!(
            "crate counters over the same {k} round trips (10 connections, under strace): {:.2} per round trip; strace: {total:.2}",
            c.syscalls() as f64 / k as f64
        ),
        None => println!("crate counters: none"),
    }
}

// ---------------------------------------------------------------------------------
// The http workload.

/// What the `http` workload needs for a run: the content, nginx, wrk, the pinning.
struct HttpLab {
    site: http::Site,
    contenders: Vec<String>,
    nginx_bin: Option<PathBuf>,
    nginx_version: Option<String>,
    run: http::Run,
    /// The headline's fixed offered load (requests/s).
    fixed: f64,
}

impl HttpLab {
    /// Prepares the workload; without wrk (or with nothing to run) it records why in
    /// `res` and returns `None`. Under `CI=true` a missing wrk or nginx is a failure.
    fn new(o: &Options, server_cpu: Option<usize>, res: &mut Results) -> Option<HttpLab> {
        let contenders = o.http_contenders();
        let missing = |what: &str, who: &[String], res: &mut Results| {
            for t in &http::TARGETS {
                for name in who {
                    res.missing_tool(t.workload, name, what);
                }
            }
        };
        if contenders.is_empty() {
            eprintln!(
                "lab: http: no HTTP contender selected (the six backends and nginx serve HTTP)"
            );
            return None;
        }
        if !tools::runs("wrk", "-v") {
            missing("wrk", &contenders, res);
            return None;
        }
        let site = match http::Site::create() {
            Ok(s) => s,
            Err(e) => {
                for t in &http::TARGETS {
                    for name in &contenders {
                        res.add(t.workload, name, None, Err(format!("content: {e}")));
                    }
                }
                return None;
            }
        };
        let mut contenders = contenders;
        let nginx_bin = nginx::binary();
        if contenders.iter().any(|c| c == NGINX) && nginx_bin.is_none() {
            missing("nginx", &[NGINX.to_string()], res);
            contenders.retain(|c| c != NGINX);
        }
        let nginx_version = nginx_bin.as_deref().and_then(nginx::version);
        // wrk on the load generator's CPU (the lab itself is pinned there already).
        let load_cpu = server_cpu.and(tools::runs("taskset", "-V").then_some(1));
        Some(HttpLab {
            site,
            contenders,
            nginx_bin,
            nginx_version,
            run: http::Run {
                server_cpu,
                load_cpu,
                conns: o.http_connections,
                seconds: o.http_seconds(),
                warmup: o.warmup,
            },
            fixed: o.http_fixed_rate,
        })
    }

    /// The fixed offered load of `t`'s headline: the 1 MiB file gets a twentieth.
    fn fixed_rate(&self, t: &http::Target) -> f64 {
        if t.workload == "http-1m" {
            self.fixed / 20.0
        } else {
            self.fixed
        }
    }

    /// One round: every sub-workload, contenders in an order rotated by the round.
    fn round(&self, round: usize, res: &mut Results) {
        let n = self.contenders.len();
        for t in &http::TARGETS {
            for i in 0..n {
                let name = &self.contenders[(i + round) % n];
                let r = http::measure(
                    name,
                    t,
                    &self.site,
                    self.nginx_bin.as_deref(),
                    &self.run,
                    Some(self.fixed_rate(t)),
                );
                let s = r.map(|(w, counts, cpu_ns, fixed)| Sample {
                    fixed_cpu_us_per_op: fixed,
                    ops: w.requests,
                    ops_per_sec: w.requests_per_sec,
                    mb_per_sec: w.requests_per_sec * t.body_len as f64 / 1e6,
                    p50_us: w.p50_us,
                    p99_us: w.p99_us,
                    p999_us: None,
                    errors: w.errors(),
                    counts,
                    cpu_us_per_op: cpu_ns.map(|ns| ns as f64 / 1e3 / w.requests as f64),
                    load_cpu: w
                        .cpu_seconds
                        .filter(|_| w.seconds > 0.0)
                        .map(|c| c / w.seconds),
                });
                res.add(t.workload, name, None, s);
            }
        }
    }

    /// `--strace`: nginx's syscalls per request, one traced wrk run per sub-workload.
    fn strace_nginx(&self, res: &mut Results) {
        let Some(bin) = &self.nginx_bin else { return };
        if !self.contenders.iter().any(|c| c == NGINX) {
            return;
        }
        if !tools::runs("strace", "-V") {
            eprintln!("lab: strace is not installed: nginx's syscalls not counted");
            return;
        }
        for t in &http::TARGETS {
            match http::nginx_strace(t, &self.site, bin, &self.run) {
                Ok((total, per)) => {
                    let b = per
                        .iter()
                        .map(|(k, v)| format!("{k} {v:.2}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    res.nginx_strace.insert(t.workload.to_string(), (total, b));
                }
                Err(e) => eprintln!("lab: strace of nginx on {}: {e}", t.workload),
            }
        }
    }
}

/// The median requests/s of `contender` on `workload`.
fn median_rps(res: &Results, workload: &str, contender: &str) -> Option<f64> {
    res.of(workload)
        .into_iter()
        .find(|c| c.contender == contender)
        .and_then(|c| match &c.outcome {
            Outcome::Measured(s) => report::summarise(s).ops_per_sec.map(|t| t.median),
            _ => None,
        })
}

fn print_http_tables(o: &Options, res: &Results, hl: Option<&HttpLab>) {
    let (conns, secs) = (o.http_connections, o.http_seconds());
    println!("## HTTP: this crate's server on each backend vs nginx (one worker)\n");
    if let Some(hl) = hl {
        println!(
            "- load: `{}` (wrk {}), keep-alive; server {}",
            wrk::command_line(hl.run.load_cpu, conns, secs, "URL").join(" "),
            if hl.run.load_cpu.is_some() {
                "pinned with taskset"
            } else {
                "not pinned"
            },
            match hl.run.server_cpu {
                Some(c) => format!("pinned to CPU {c}"),
                None => "not pinned".into(),
            }
        );
        match (&hl.nginx_bin, &hl.nginx_version) {
            (Some(_), v) => println!(
                "- nginx: {} with `worker_processes 1; master_process off; access_log off; \
                 sendfile on; tcp_nopush on; keepalive_requests 100000000;` (config generated \
                 by benches/lab/nginx.rs)",
                v.as_deref().unwrap_or("nginx (version unknown)")
            ),
            (None, _) => println!("- nginx: not installed (Debian: `apt-get install nginx`)"),
        }
        println!(
            "- this crate: `HttpServer` with `Router::with_builtins()`, the same root, \
             no access log (benches/lab/servers.rs)"
        );
    }
    println!(
        "- server CPU µs/req: the server process's CPU time over the wrk run (all its \
         threads, `/proc/PID/task/*/schedstat`) per request: what a request costs the \
         server even when one wrk thread on CPU 1 is the bottleneck; wrk CPU: the share \
         of a CPU wrk used over its run (near 100%: the load generator, not the server, \
         sets the pace)"
    );
    println!(
        "- syscalls/req: the crate's counters in the server over the wrk run{}\n",
        if res.nginx_strace.is_empty() {
            "; nginx: `–` (counted only with `--strace`)"
        } else {
            "; nginx: `strace -c -f -p` over a separate wrk run (marked *)"
        }
    );
    let titles = [
        "### `http-plaintext`: GET /plaintext (13 B)",
        "### `http-small`: GET /small.txt (the same 13 B as a static file)",
        "### `http-1k`: GET /1k.bin (1 KiB static file)",
        "### `http-1m`: GET /1m.bin (1 MiB static file; MB/s of file content)",
    ];
    for (t, title) in http::TARGETS.iter().zip(titles) {
        println!("{title}\n");
        let base = median_rps(res, t.workload, NGINX);
        println!(
            "{}",
            report::http_table(
                &res.of(t.workload),
                base,
                t.workload == "http-1m",
                res.nginx_strace.get(t.workload),
                hl.and_then(|hl| headline(&res.of(t.workload), hl.fixed_rate(t), &[NGINX]))
                    .as_ref(),
            )
        );
    }
    http_targets(o, res);
}

/// Prints issue 4's targets for this run.
fn http_targets(o: &Options, res: &Results) {
    println!(
        "Issue 4 targets (epoll-et, measured in this run{}):\n",
        if o.quick {
            "; --quick runs are too short to judge them"
        } else {
            ""
        }
    );
    let verdict = |ok: bool| if ok { "(met)" } else { "(NOT met)" };
    for (w, what, goal) in [
        ("http-plaintext", "plaintext keep-alive requests/s", 1.25),
        ("http-1k", "1 KiB static file requests/s", 1.1),
        ("http-1m", "1 MiB static file requests/s", 0.9),
    ] {
        match (median_rps(res, w, "epoll-et"), median_rps(res, w, NGINX)) {
            (Some(a), Some(b)) if b > 0.0 => println!(
                "- {what} ≥ {goal}x nginx: {:.2}x ({} vs {}) {}",
                a / b,
                report::num(a),
                report::num(b),
                verdict(a / b >= goal)
            ),
            _ => println!("- {what} ≥ {goal}x nginx: not measured"),
        }
    }
    let cpu = |w: &str, c: &str| {
        res.of(w)
            .into_iter()
            .find(|x| x.contender == c)
            .and_then(|x| match &x.outcome {
                Outcome::Measured(s) => report::summarise(s).cpu_us_per_op,
                _ => None,
            })
    };
    for (w, what) in [
        ("http-plaintext", "plaintext"),
        ("http-1k", "1 KiB file"),
        ("http-1m", "1 MiB file"),
    ] {
        if let (Some(a), Some(b)) = (cpu(w, "epoll-et"), cpu(w, NGINX)) {
            println!(
                "- (context) server CPU per {what} request: epoll-et {a:.2} µs, nginx {b:.2} µs \
                 (nginx needs {:.2}x the CPU)",
                b / a
            );
        }
    }
    for (w, what, goal) in [
        ("http-plaintext", "syscalls per plaintext request", 2.05),
        ("http-1k", "syscalls per 1 KiB static file request", 3.0),
    ] {
        let x = res
            .of(w)
            .into_iter()
            .find(|c| c.contender == "epoll-et")
            .and_then(|c| match &c.outcome {
                Outcome::Measured(s) => report::summarise(s).syscalls_per_op,
                _ => None,
            });
        match x {
            Some(x) => println!("- {what} ≤ {goal}: {x:.2} {}", verdict(x <= goal)),
            None => println!("- {what} ≤ {goal}: not measured"),
        }
    }
    // Issue 14: the 13 B static file against nginx's `return 200` text, server CPU
    // per request at the fixed offered load, round by round.
    let fixed = |w: &str, c: &str| -> Option<Vec<Option<f64>>> {
        res.of(w)
            .into_iter()
            .find(|x| x.contender == c)
            .and_then(|x| match &x.outcome {
                Outcome::Measured(s) => Some(s.iter().map(|s| s.fixed_cpu_us_per_op).collect()),
                _ => None,
            })
    };
    for c in ["epoll-et", "epoll"] {
        let (Some(a), Some(b)) = (fixed("http-small", c), fixed("http-plaintext", NGINX)) else {
            continue;
        };
        let ratios: Vec<f64> = a
            .iter()
            .zip(&b)
            .filter_map(|(x, y)| Some(x.as_ref()? / y.as_ref()?))
            .collect();
        if let Some(r) = report::stat(&ratios) {
            println!(
                "- issue 14: {c}'s 13 B static file ≤ 0.95x nginx's `return 200` in server CPU per request at {}/s, paired by round: {:.2}x ({:.2}–{:.2}) {}",
                report::num(o.http_fixed_rate),
                r.median,
                r.min,
                r.max,
                verdict(r.median <= 0.95)
            );
        }
        if let (Some(a), Some(b)) = (cpu("http-small", c), cpu("http-plaintext", NGINX)) {
            println!(
                "- (context) the same over the wrk runs (closed loop): {c} {a:.2} µs per 13 B \
                 file, nginx {b:.2} µs per `return 200`: {:.2}x",
                a / b
            );
        }
    }
    println!();
}
