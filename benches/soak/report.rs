//! The soak's table, JSON and plots, and the whole run over every backend.

use serde_json::{json, Value};

use crate::cli::Options;
use crate::common::{env, plot, table};
use crate::run::{soak_one, Run};
use crate::server::Point;

pub fn table(runs: &[Run]) -> String {
    let header = [
        "backend",
        "secs",
        "echo trips",
        "http reqs",
        "chat msgs",
        "half-closes",
        "misbehaving",
        "errors",
        "RSS KiB (warm min-max, end)",
        "fds (base, warm max, end)",
        "idle CPU",
        "panics",
    ];
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let (rlo, rhi) = r.range(|p| p.rss_kb);
            let (_, fhi) = r.range(|p| p.fds);
            let rend = r.points.last().map_or(0, |p| p.rss_kb);
            vec![
                r.backend.to_string(),
                format!("{:.0}", r.secs),
                r.echo_trips.to_string(),
                r.http_requests.to_string(),
                r.chat_messages.to_string(),
                r.half_closes.to_string(),
                r.misbehaving.to_string(),
                r.errors.to_string(),
                format!("{rlo}-{rhi}, {rend}"),
                format!("{}, {fhi}, {}", r.baseline_fds, r.end_fds),
                format!("{:.1}%", r.idle_cpu),
                r.panics.map_or("?".into(), |p| p.to_string()),
            ]
        })
        .collect();
    table::markdown(&header, &rows)
}

pub fn json_run(r: &Run) -> Value {
    json!({
        "backend": r.backend.name(),
        "secs": r.secs,
        "echo_trips": r.echo_trips,
        "http_requests": r.http_requests,
        "chat_messages": r.chat_messages,
        "half_closes": r.half_closes,
        "misbehaving_actions": r.misbehaving,
        "errors": r.errors,
        "first_errors": r.first_errors,
        "baseline_fds": r.baseline_fds,
        "end_fds": r.end_fds,
        "idle_cpu_percent": r.idle_cpu,
        "panics_contained": r.panics,
        "clean_exit": r.clean_exit,
        "samples": r.points.iter().map(|p| json!({
            "t": p.t, "rss_kb": p.rss_kb, "fds": p.fds, "cpu_ns": p.cpu_ns
        })).collect::<Vec<_>>(),
    })
}

pub fn plots(runs: &[Run], dir: &std::path::Path) {
    // At most 30 points per series, at the same fractions of each run.
    let n = runs
        .iter()
        .map(|r| r.points.len())
        .max()
        .unwrap_or(0)
        .min(30);
    if n < 2 {
        return;
    }
    let labels: Vec<String> = (0..n)
        .map(|i| format!("{:.0}%", i as f64 * 100.0 / (n - 1) as f64))
        .collect();
    let series = |f: fn(&Point) -> f64| -> Vec<(String, Vec<Option<f64>>)> {
        runs.iter()
            .map(|r| {
                let m = r.points.len();
                let ys = (0..n)
                    .map(|i| r.points.get(i * (m - 1) / (n - 1)).map(f))
                    .collect();
                (r.backend.to_string(), ys)
            })
            .collect()
    };
    for (file, title, y, f) in [
        (
            "soak-rss.svg",
            "Soak: server RSS over the run",
            "RSS (MiB)",
            (|p: &Point| p.rss_kb as f64 / 1024.0) as fn(&Point) -> f64,
        ),
        (
            "soak-fds.svg",
            "Soak: server descriptors over the run",
            "open descriptors",
            |p: &Point| p.fds as f64,
        ),
    ] {
        if let Err(e) = plot::line_chart(
            &dir.join(file),
            title,
            "share of the run",
            y,
            &labels,
            &series(f),
        ) {
            eprintln!("soak: plot {file}: {e}");
        }
    }
}

pub fn soak(o: &Options) -> i32 {
    let mut runs = Vec::new();
    for &b in &o.backends {
        match soak_one(b, o) {
            Ok(r) => {
                if !r.first_errors.is_empty() {
                    eprintln!("{b}: first errors: {:#?}", r.first_errors);
                }
                runs.push(r)
            }
            Err(e) => {
                eprintln!("soak: {b}: {e}");
                return 1;
            }
        }
    }
    let cmd = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect::<Vec<_>>()
        .join(" ");
    let md = format!(
        "# Soak\n\n`cargo bench --bench soak -- {cmd}` on {}; sample every {} s; warm = after the first fifth.\n\n{}\n",
        env::machine_info(),
        o.interval.as_secs(),
        table(&runs)
    );
    println!("{md}");
    let dir = env::out_dir(o.out.as_ref());
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join("soak.md"), &md);
        let js = json!({ "machine": env::machine_info(), "runs": runs.iter().map(json_run).collect::<Vec<_>>() });
        let _ = std::fs::write(
            dir.join("soak.json"),
            serde_json::to_string_pretty(&js).unwrap_or_default(),
        );
        plots(&runs, &dir);
        println!("results in {}", dir.display());
    }
    let bad: Vec<&Run> = runs.iter().filter(|r| !r.ok()).collect();
    for r in &bad {
        eprintln!(
            "soak: {}: {} error(s), descriptors {} -> {}, idle CPU {:.1}%",
            r.backend, r.errors, r.baseline_fds, r.end_fds, r.idle_cpu
        );
    }
    i32::from(!bad.is_empty())
}
