//! A whole run: every contender, every round, the tables, the ratios, the targets
//! and `chat.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cli::Options;
use crate::common;
use crate::common::os::{pin_to, raise_nofile};
use crate::common::procfs::{busy_pct, cpu_jiffies};
use crate::common::table::median;
use crate::common::{env, tools};
use crate::measure::{Bench, Sample};
use crate::report::{fmt_opt, med, render_table, Cell};
use crate::{NGIRCD, ROOM};

/// What a run decided before its first round: contenders, CPUs, tools, the machine.
struct Setup {
    o: Options,
    contenders: Vec<String>,
    server_cpu: Option<usize>,
    client_cpu: Option<usize>,
    client_cpus: Vec<Option<usize>>,
    /// Distinct CPUs the client threads run on.
    client_cpu_count: usize,
    ngircd_version: Option<String>,
    strace_ok: bool,
    work: PathBuf,
    machine: String,
    /// Every CPU's busy share just before the run.
    idle_busy: Vec<f64>,
}

/// Runs the benchmark; the exit status (1: a contender failed or lost messages).
pub fn run(o: Options) -> i32 {
    let s = match setup(o) {
        Ok(s) => s,
        Err(code) => return code,
    };
    print_header(&s);
    let started = Instant::now();
    let cells = rounds(&s);
    let _ = std::fs::remove_dir_all(&s.work);
    println!(
        "\n## Fan-out, {} clients ({:.0} s)\n",
        s.o.clients,
        started.elapsed().as_secs_f64()
    );
    print!("{}", render_table(&s.contenders, &cells));
    println!(
        "\nRSS: VmHWM (peak over the server's life, joins included) / VmRSS at the end of the window. \
Server CPU: the server's on-CPU time (schedstat, all threads) over the window; µs/delivery divides it by the deliveries. \
Write syscalls: this crate's counters (write/send calls) over the window; `(strace …)`: \
strace -c -f over a separate phase (write, writev, send, sendto, sendmsg). \
Lost: deliveries missing after a drain, all rounds."
    );
    let (best_ratio, best_capacity_ratio) = ratios(&s, &cells);
    let lost = targets(&s, &cells, best_ratio, best_capacity_ratio);
    write_json(&s, &cells);
    let failures = s
        .contenders
        .iter()
        .filter(|n| cells.get(*n).is_none_or(|c| c.samples.is_empty()))
        .filter(|n| *n != "select")
        .count();
    if failures > 0 || lost > 0 {
        1
    } else {
        0
    }
}

/// Descriptor limit, pinning, ngircd and strace, the work directory, the client
/// threads' CPUs and the machine's state; `Err(exit status)` if the run cannot go on.
fn setup(o: Options) -> Result<Setup, i32> {
    // Counted before this thread is pinned (which narrows what it may use).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (server_cpu, client_cpu) = common::os::two_cpus();
    let limit = raise_nofile();
    if limit < (o.clients as u64 + 64) {
        eprintln!(
            "chat bench: descriptor limit {limit} is too low for {} clients",
            o.clients
        );
        return Err(2);
    }
    if let Some(c) = client_cpu {
        if !pin_to(c) {
            eprintln!("chat bench: could not pin the clients to CPU {c}");
        }
    }
    let mut contenders = o.contenders.clone();
    let ngircd_bin = tools::which("ngircd");
    if contenders.iter().any(|c| c == NGIRCD) && ngircd_bin.is_none() {
        match tools::missing("ngircd") {
            Ok(why) => println!("{why}"),
            Err(e) => {
                eprintln!("chat bench: {e}: failing");
                return Err(1);
            }
        }
        contenders.retain(|c| c != NGIRCD);
    }
    let ngircd_version = ngircd_bin
        .as_deref()
        .and_then(|b| tools::version_line(b, "--version"));
    let strace_ok = o.strace && tools::runs("strace", "-V");
    if o.strace && !strace_ok {
        println!("strace: not installed; write syscalls come from the crate's counters only");
    }
    let work = std::env::temp_dir().join(format!("chat-bench-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&work) {
        eprintln!("chat bench: {}: {e}", work.display());
        return Err(2);
    }
    // The client threads share the CPUs the server does not use (on 2 cores: CPU 1).
    let client_cpus: Vec<Option<usize>> = (0..o.client_threads)
        .map(|k| client_cpu.map(|c| c + k % cores.saturating_sub(c).max(1)))
        .collect();
    let client_cpu_count = {
        let mut v: Vec<Option<usize>> = client_cpus.clone();
        v.dedup();
        v.len().max(1)
    };
    let machine = env::machine_info();
    // Other load on the machine skews every number here: say so.
    let j0 = cpu_jiffies();
    std::thread::sleep(Duration::from_millis(500));
    let idle_busy = busy_pct(&j0, &cpu_jiffies());
    Ok(Setup {
        o,
        contenders,
        server_cpu,
        client_cpu,
        client_cpus,
        client_cpu_count,
        ngircd_version,
        strace_ok,
        work,
        machine,
        idle_busy,
    })
}

/// The report's head: the machine, the pinning, the workload.
fn print_header(s: &Setup) {
    let o = &s.o;
    if s.idle_busy.iter().any(|&b| b > 15.0) {
        println!(
            "warning: the machine is not idle before the run (CPUs busy {:.0?}%): another process competes for the cores",
            s.idle_busy
        );
    }
    println!("# Chat fan-out benchmark\n");
    println!(
        "machine: {}; server pinned to CPU {}, clients ({} thread(s)) to CPU {}",
        s.machine,
        s.server_cpu.map_or("-".into(), |c| c.to_string()),
        o.client_threads,
        s.client_cpus
            .iter()
            .map(|c| c.map_or("-".into(), |c| c.to_string()))
            .collect::<Vec<_>>()
            .join(",")
    );
    println!(
        "workload: {} IRC clients in {ROOM}, {} senders, {} msgs/s in all ({:.0} deliveries/s offered), window {:?} after {:?} warm-up, {} round(s){}",
        o.clients,
        o.senders,
        o.rate,
        o.rate * (o.clients - 1) as f64,
        o.duration,
        o.warmup,
        o.rounds,
        if s.strace_ok { ", plus one strace phase per contender" } else { "" }
    );
    if let Some(v) = &s.ngircd_version {
        println!("ngircd: {v} (MaxPenaltyTime = 0: no flood penalties)");
    }
}

/// Every round, contenders alternating (forwards, then backwards): the cells.
fn rounds(s: &Setup) -> BTreeMap<String, Cell> {
    let o = &s.o;
    let bench = Bench {
        o: o.clone(),
        server_cpu: s.server_cpu,
        client_cpus: s.client_cpus.clone(),
        work: s.work.clone(),
    };
    let mut cells: BTreeMap<String, Cell> = BTreeMap::new();
    for round in 0..o.rounds {
        let mut order = s.contenders.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        for name in &order {
            let strace = s.strace_ok && round + 1 == o.rounds;
            eprint!("round {}/{}: {name} ... ", round + 1, o.rounds);
            let r = bench.measure(name, round, strace);
            let cell = cells.entry(name.clone()).or_default();
            match r {
                Ok(sample) => {
                    progress(&sample, s.client_cpu_count);
                    cell.samples.push(sample);
                }
                Err(e) => {
                    eprintln!("failed: {e}");
                    let short = if name == "select" && o.clients > 900 {
                        format!("n/a (FD_SETSIZE): {e}")
                    } else {
                        e
                    };
                    cell.failure = Some(short);
                }
            }
        }
    }
    cells
}

/// One measurement's line on stderr, and a warning if the clients were the limit.
fn progress(s: &Sample, client_cpu_count: usize) {
    eprintln!(
        "{:.0} deliveries/s, p99 {} µs, lost {}, server CPU {}%, client CPU {:.0}%, CPUs busy {:.0?}%",
        s.deliveries_per_sec,
        fmt_opt(s.p99_us, 0),
        s.lost,
        fmt_opt(s.server_cpu_pct, 0),
        s.client_cpu_pct,
        s.machine_busy_pct
    );
    if s.client_cpu_pct > 90.0 * client_cpu_count as f64 {
        eprintln!(
            "  warning: the client threads were {:.0}% busy on {client_cpu_count} CPU(s): they may be the bottleneck",
            s.client_cpu_pct
        );
    }
}

/// Contender `n`'s median deliveries per second.
fn med_rate(cells: &BTreeMap<String, Cell>, n: &str) -> Option<f64> {
    let c = cells.get(n)?;
    median(
        &c.samples
            .iter()
            .map(|s| s.deliveries_per_sec)
            .collect::<Vec<_>>(),
    )
}

/// Contender `n`'s median server CPU per delivery.
fn med_cpu(cells: &BTreeMap<String, Cell>, n: &str) -> Option<f64> {
    cells
        .get(n)
        .and_then(|c| med(&c.samples, |s| s.cpu_us_per_delivery))
}

/// Prints each of our contenders against ngircd; the best throughput ratio and the
/// best CPU-per-delivery ratio.
fn ratios(s: &Setup, cells: &BTreeMap<String, Cell>) -> (Option<f64>, Option<f64>) {
    let ng_rate = med_rate(cells, NGIRCD);
    let ng_cpu = med_cpu(cells, NGIRCD);
    println!("\n## Ratios vs ngircd\n");
    let mut best_ratio: Option<f64> = None;
    let mut best_capacity_ratio: Option<f64> = None;
    if ng_rate.is_none() {
        println!("ngircd: no result; no ratios.");
    }
    for n in s.contenders.iter().filter(|c| *c != NGIRCD) {
        let (Some(r), Some(ng)) = (med_rate(cells, n), ng_rate) else {
            continue;
        };
        let ratio = r / ng;
        best_ratio = Some(best_ratio.map_or(ratio, |b: f64| b.max(ratio)));
        let cap = match (med_cpu(cells, n), ng_cpu) {
            (Some(a), Some(b)) if a > 0.0 => {
                let x = b / a;
                best_capacity_ratio = Some(best_capacity_ratio.map_or(x, |m: f64| m.max(x)));
                format!(
                    "; ngircd spends {x:.2}x the server CPU per delivery (capacity on one core ≈ {:.0} vs {:.0} deliveries/s)",
                    1e6 / a,
                    1e6 / b
                )
            }
            _ => String::new(),
        };
        println!("- {n}: deliveries/s {ratio:.2}x ngircd{cap}");
    }
    (best_ratio, best_capacity_ratio)
}

/// Prints the targets (throughput vs ngircd, writes per delivery, bounded memory,
/// nothing lost); the messages lost, all contenders.
fn targets(
    s: &Setup,
    cells: &BTreeMap<String, Cell>,
    best_ratio: Option<f64>,
    best_capacity_ratio: Option<f64>,
) -> u64 {
    let o = &s.o;
    println!("\n## Targets\n");
    let offered = o.rate * (o.clients - 1) as f64;
    match best_ratio {
        Some(r) => {
            let saturated = med_rate(cells, NGIRCD).is_some_and(|x| x < 0.95 * offered);
            println!(
                "- deliveries/s >= 1.5x ngircd: best {r:.2}x: {}{}",
                if r >= 1.5 { "met" } else { "not met" },
                if saturated {
                    String::new()
                } else {
                    format!(
                        " (both kept up with the offered {offered:.0} deliveries/s, so the ratio is ~1 by construction; \
the CPU-per-delivery ratio {} says what the capacity would be; raise --rate to saturate)",
                        fmt_opt(best_capacity_ratio, 2)
                    )
                }
            )
        }
        None => println!("- deliveries/s >= 1.5x ngircd: not measured"),
    }
    for n in s.contenders.iter().filter(|c| *c != NGIRCD) {
        let Some(c) = cells.get(n) else { continue };
        per_contender_targets(n, c);
    }
    let lost: u64 = cells
        .values()
        .flat_map(|c| c.samples.iter().map(|s| s.lost))
        .sum();
    println!("- lost messages, all contenders: {lost}");
    lost
}

/// One of our contenders' targets: writes per delivery, memory growth.
fn per_contender_targets(n: &str, c: &Cell) {
    let w = med(&c.samples, |s| s.writes_per_delivery);
    let t = med(&c.samples, |s| s.strace_writes_per_delivery);
    let worst = [w, t].into_iter().flatten().reduce(f64::max);
    if let Some(x) = worst {
        println!(
            "- {n}: write syscalls per delivery {x:.3} (<= 1 per recipient per batch: {})",
            if x <= 1.0 { "met" } else { "NOT met" }
        );
    }
    let growth = match (
        med(&c.samples, |s| s.rss_joined_mib),
        med(&c.samples, |s| s.rss_window_max_mib),
    ) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    if let Some(g) = growth {
        println!(
            "- {n}: RSS growth while sending {g:+.1} MiB (bounded memory: {})",
            if g < 16.0 { "yes" } else { "check" }
        );
    }
}

/// Writes `chat.json` (every sample of every contender, the options, the machine).
fn write_json(s: &Setup, cells: &BTreeMap<String, Cell>) {
    let o = &s.o;
    let dir = env::out_dir(o.out.as_ref());
    let file = dir.join("chat.json");
    let doc = json!({
        "machine": s.machine,
        "server_cpu": s.server_cpu,
        "client_cpu": s.client_cpu,
        "client_cpus": s.client_cpus,
        "ngircd_version": s.ngircd_version,
        "busy_pct_per_cpu_before_run": s.idle_busy,
        "options": {
            "clients": o.clients, "senders": o.senders, "rate": o.rate,
            "duration_secs": o.duration.as_secs_f64(), "warmup_secs": o.warmup.as_secs_f64(),
            "rounds": o.rounds, "strace": s.strace_ok, "quick": o.quick,
            "client_threads": o.client_threads,
        },
        "contenders": s.contenders.iter().map(|n| {
            let c = cells.get(n);
            json!({
                "name": n,
                "failure": c.and_then(|c| c.failure.clone()),
                "deliveries_per_sec_median": med_rate(cells, n),
                "samples": c.map(|c| c.samples.iter().map(Sample::json).collect::<Vec<_>>()).unwrap_or_default(),
            })
        }).collect::<Vec<_>>(),
    });
    match std::fs::create_dir_all(&dir).and_then(|_| {
        std::fs::write(
            &file,
            serde_json::to_string_pretty(&doc).unwrap_or_default(),
        )
    }) {
        Ok(()) => println!("\nresults: {}", file.display()),
        Err(e) => eprintln!("chat bench: {}: {e}", file.display()),
    }
}
