//! The `latency` workload: open-loop sweeps of offered load (issue 14, part 1).
//!
//! Each contender is offered a constant rate of operations ([`OpenLoop`]: every
//! connection sends on a schedule, latency counts from the intended send time, so
//! coordinated omission is corrected as in wrk2), from about a tenth of the
//! capacity to past it. The capacity is measured once at the start of the run: the
//! closed-loop rate of the same load generator against epoll-et. At every point:
//! p50 / p99 / p99.9 latency, the server's CPU time per operation and the rate
//! actually achieved. Sub-workloads: `latency-echo` (64 B echo, every echo
//! contender) and `latency-http` (`GET /plaintext`: this crate's HTTP server on
//! every backend and nginx's `return 200`).

use std::path::Path;
use std::time::Duration;

use crate::common::procfs;
use crate::http::{self, Server, Site};
use crate::loadgen::{Bounds, OpenLoop, Request};
use crate::report::Sample;
use crate::results::Results;
use crate::servers;

/// What one sweep runs.
#[derive(Clone, Debug)]
pub struct Plan {
    pub workload: &'static str,
    pub conns: usize,
    pub rates: Vec<u64>,
    pub point: Duration,
    pub warmup: Duration,
    pub max_ops: u64,
    pub server_cpu: Option<usize>,
}

/// The request of a sub-workload.
pub fn request(workload: &str) -> Request {
    if workload == "latency-http" {
        Request::http_get("/plaintext")
    } else {
        Request::Echo(crate::loadgen::pattern(64))
    }
}

fn start(
    name: &str,
    workload: &str,
    site: Option<&Site>,
    nginx_bin: Option<&Path>,
    cpu: Option<usize>,
) -> Result<Server, String> {
    if workload == "latency-http" {
        let site = site.ok_or("no content directory")?;
        http::start(name, site, cpu, nginx_bin)
    } else {
        servers::spawn(name, cpu)
            .map(Server::Ours)
            .map_err(http::text)
    }
}

/// Rounds to two significant figures (readable axis labels).
fn round2(x: f64) -> u64 {
    if x < 1.0 {
        return 1;
    }
    let p = 10f64.powi(x.log10().floor() as i32 - 1);
    ((x / p).round() * p) as u64
}

/// The offered loads: `fractions` of `capacity`, two significant figures, distinct.
pub fn rates(capacity: f64, fractions: &[f64]) -> Vec<u64> {
    let mut v: Vec<u64> = fractions.iter().map(|f| round2(capacity * f)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The closed-loop capacity (operations/s) of the load generator against epoll-et.
pub fn calibrate(
    workload: &str,
    conns: usize,
    time: Duration,
    site: Option<&Site>,
    cpu: Option<usize>,
) -> Result<f64, String> {
    let e = |e: std::io::Error| e.to_string();
    let srv = start("epoll-et", workload, site, None, cpu)?;
    let mut ol = OpenLoop::connect(srv.addr(), conns, request(workload)).map_err(e)?;
    let b = |d| Bounds {
        max_ops: u64::MAX,
        duration: d,
    };
    ol.run(None, b(time / 4)).map_err(e)?;
    let r = ol.run(None, b(time)).map_err(e)?;
    drop(ol);
    srv.stop().map_err(e)?;
    if r.phase.ops == 0 {
        return Err(format!(
            "calibration: nothing completed ({} errors)",
            r.phase.errors
        ));
    }
    Ok(r.phase.ops_per_sec())
}

/// One contender through every offered load of `plan`, lowest first, on one server.
pub fn sweep(
    name: &str,
    plan: &Plan,
    site: Option<&Site>,
    nginx_bin: Option<&Path>,
    res: &mut Results,
) {
    let w = plan.workload;
    let mut srv = match start(name, w, site, nginx_bin, plan.server_cpu) {
        Ok(s) => s,
        Err(e) => {
            for &r in &plan.rates {
                res.add_at(w, name, None, Some(r), Err(e.clone()));
            }
            return;
        }
    };
    let mut failed: Option<String> = None;
    for (k, &rate) in plan.rates.iter().enumerate() {
        if let Some(f) = &failed {
            res.add_at(w, name, None, Some(rate), Err(f.clone()));
            continue;
        }
        let r = point(name, &mut srv, plan, rate, k == 0);
        if let Err(e) = &r {
            failed = Some(format!("at {rate}/s: {e}"));
        }
        res.add_at(
            w,
            name,
            None,
            Some(rate),
            r.map_err(|e| format!("at {rate}/s: {e}")),
        );
    }
    if let Err(e) = srv.stop() {
        if failed.is_none() {
            eprintln!("lab: {w} / {name}: stop: {e}");
        }
    }
}

fn point(
    name: &str,
    srv: &mut Server,
    plan: &Plan,
    rate: u64,
    warm: bool,
) -> Result<Sample, String> {
    let e = |e: std::io::Error| e.to_string();
    let mut ol = OpenLoop::connect(srv.addr(), plan.conns, request(plan.workload)).map_err(e)?;
    if warm {
        ol.run(
            None,
            Bounds {
                max_ops: plan.max_ops,
                duration: plan.warmup,
            },
        )
        .map_err(e)?;
    }
    srv.stats_on().map_err(e)?;
    let cpu0 = procfs::CpuMark::take(srv.pid());
    let r = ol
        .run(
            Some(rate as f64),
            Bounds {
                max_ops: plan.max_ops,
                duration: plan.point,
            },
        )
        .map_err(e)?;
    let cpu_ns = cpu0.and_then(|m| m.since(srv.pid()));
    let counts = srv.stats_off().map_err(e)?;
    drop(ol);
    let p = &r.phase;
    if p.ops == 0 {
        return Err(format!("no operation completed ({} errors)", p.errors));
    }
    // fork's work is in its children, which the parent's schedstat leaves out.
    let cpu = match cpu_ns {
        Some(ns) if name != "fork" => Some(ns as f64 / 1e3 / p.ops as f64),
        _ => None,
    };
    Ok(Sample {
        ops: p.ops,
        ops_per_sec: p.ops_per_sec(),
        mb_per_sec: p.mb_per_sec(),
        p50_us: p.quantile_us(0.50),
        p99_us: p.quantile_us(0.99),
        p999_us: p.quantile_us(0.999),
        errors: p.errors,
        counts,
        cpu_us_per_op: cpu,
        load_cpu: None,
        fixed_cpu_us_per_op: None,
    })
}
