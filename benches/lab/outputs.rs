//! What a run prints and writes: the tables, the targets, `results.json` and the
//! SVG plots.

use std::io;

use crate::cli::Options;
use crate::common::plot;
use crate::http;
use crate::httplab::median_rps;
use crate::report::{self, Cell, Outcome};
use crate::results::Results;
use crate::servers::NGINX;
use crate::sweeps::LatencyPlan;

/// The headline of a table at fixed offered load `rate`, paired with the first of
/// `refs` that has fixed-load figures in `cells` (none: no headline).
pub fn headline(cells: &[&Cell], rate: f64, refs: &[&str]) -> Option<report::Headline> {
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

pub fn best_reference(res: &Results) -> Option<f64> {
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
pub fn paired_ratio(res: &Results) -> Option<report::Stat> {
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

pub fn print_tables(o: &Options, res: &Results) {
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
pub fn targets(res: &Results, base: Option<f64>) {
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

pub fn write_outputs(
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
        let series = sweep_series(
            &cells,
            &l.contenders,
            &l.plan.rates,
            |c, r| c.offered == Some(r),
            |s| s.p99_us,
        );
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
        let series = sweep_series(
            &idle,
            &o.echo_contenders(),
            &o.idle_counts,
            |c, i| c.idle == Some(i),
            |s| s.p50_us,
        );
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

/// The series of a sweep plot: per contender, `metric` of the cell at each point
/// `x` (`at` tells whether a cell is that point's), `None` where not measured.
pub fn sweep_series(
    cells: &[&Cell],
    contenders: &[String],
    xs: &[u64],
    at: impl Fn(&Cell, u64) -> bool,
    metric: impl Fn(&report::Summary) -> Option<f64>,
) -> Vec<(String, Vec<Option<f64>>)> {
    let point = |name: &String, x: u64| {
        let c = cells.iter().find(|c| &c.contender == name && at(c, x))?;
        match &c.outcome {
            Outcome::Measured(s) => metric(&report::summarise(s)),
            _ => None,
        }
    };
    contenders
        .iter()
        .map(|name| (name.clone(), xs.iter().map(|&x| point(name, x)).collect()))
        .collect()
}
