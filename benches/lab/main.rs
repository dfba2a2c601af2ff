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
mod echo;
mod http;
mod httplab;
mod latency;
mod loadgen;
mod nginx;
mod outputs;
mod proxy;
mod report;
mod results;
mod selftest;
mod servers;
mod sweeps;
mod wrk;

use std::time::Instant;

use cli::{Mode, Options};
use common::{env, os, plot, strace};
use echo::{beyond_select, strace_cross_check, Lab};
use httplab::{print_http_tables, HttpLab};
use outputs::{print_tables, write_outputs};
use results::Results;
use sweeps::{latency_plans, print_latency_tables};

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
