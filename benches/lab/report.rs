//! Results: per-round samples, their medians with min–max, markdown tables and JSON.

use serde_json::{json, Value};

use readyloop::sys::stats::{Counts, Syscall};

pub use crate::common::table::{markdown, num, stat, Stat};

/// One measurement (one contender, one workload point, one round).
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub ops: u64,
    pub ops_per_sec: f64,
    pub mb_per_sec: f64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    pub errors: u64,
    /// Syscalls counted by the server over the measured window (crate contenders).
    pub counts: Option<Counts>,
    /// CPU time the server's process spent per operation, in µs (`http` workload).
    pub cpu_us_per_op: Option<f64>,
    /// Share of one CPU the load generator used over the run (`http`: wrk).
    pub load_cpu: Option<f64>,
    /// The headline: server CPU µs per operation over an open-loop phase at the
    /// run's fixed offered load (same server, right after the closed-loop phase).
    pub fixed_cpu_us_per_op: Option<f64>,
}

/// What a cell of the results holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Measured: the samples of every round.
    Measured(Vec<Sample>),
    /// Not applicable (e.g. `select` beyond `FD_SETSIZE`), with the reason.
    NotApplicable(String),
    /// The contender failed (did not start, errors), with the message.
    Failed(String),
}

impl PartialEq for Sample {
    fn eq(&self, o: &Sample) -> bool {
        self.ops == o.ops && self.ops_per_sec == o.ops_per_sec && self.counts == o.counts
    }
}

/// One workload point for one contender, across rounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub workload: String,
    pub contender: String,
    /// Idle connections held open (idle sweep only).
    pub idle: Option<u64>,
    /// Offered load, operations per second (open-loop latency sweeps only).
    pub offered: Option<u64>,
    pub outcome: Outcome,
}

fn median_of(samples: &[Sample], f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
    let xs: Vec<f64> = samples.iter().filter_map(f).collect();
    stat(&xs).map(|s| s.median)
}

/// The aggregate of one cell.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub ops_per_sec: Option<Stat>,
    pub mb_per_sec: Option<Stat>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    pub syscalls_per_op: Option<f64>,
    pub cpu_us_per_op: Option<f64>,
    pub load_cpu: Option<f64>,
    pub fixed_cpu_us_per_op: Option<Stat>,
    /// Per kind, per operation (median over rounds).
    pub per_kind: Vec<(&'static str, f64)>,
    pub errors: u64,
    pub rounds: usize,
}

/// Per-operation syscalls of one sample.
pub fn per_op(s: &Sample) -> Option<f64> {
    let c = s.counts?;
    (s.ops > 0).then(|| c.syscalls() as f64 / s.ops as f64)
}

/// Summarises a measured cell.
pub fn summarise(samples: &[Sample]) -> Summary {
    let ops: Vec<f64> = samples.iter().map(|s| s.ops_per_sec).collect();
    let mbs: Vec<f64> = samples.iter().map(|s| s.mb_per_sec).collect();
    let per_kind = Syscall::ALL
        .iter()
        .filter_map(|&k| {
            let m = median_of(samples, |s| {
                let c = s.counts?;
                (s.ops > 0).then(|| c.get(k) as f64 / s.ops as f64)
            })?;
            Some((k.name(), m))
        })
        .collect();
    Summary {
        ops_per_sec: stat(&ops),
        mb_per_sec: stat(&mbs),
        p50_us: median_of(samples, |s| s.p50_us),
        p99_us: median_of(samples, |s| s.p99_us),
        p999_us: median_of(samples, |s| s.p999_us),
        syscalls_per_op: median_of(samples, per_op),
        cpu_us_per_op: median_of(samples, |s| s.cpu_us_per_op),
        load_cpu: median_of(samples, |s| s.load_cpu),
        fixed_cpu_us_per_op: stat(
            &samples
                .iter()
                .filter_map(|s| s.fixed_cpu_us_per_op)
                .collect::<Vec<_>>(),
        ),
        per_kind,
        errors: samples.iter().map(|s| s.errors).sum(),
        rounds: samples.len(),
    }
}

fn opt(x: Option<f64>) -> String {
    x.map(num).unwrap_or_else(|| "–".to_string())
}

/// Two decimals, or `–`.
fn two(x: Option<f64>) -> String {
    x.map(|x| format!("{x:.2}")).unwrap_or_else(|| "–".into())
}

fn range(s: Option<Stat>) -> String {
    s.map(|s| format!("{}–{}", num(s.min), num(s.max)))
        .unwrap_or_else(|| "–".to_string())
}

fn breakdown(s: &Summary) -> String {
    if s.per_kind.is_empty() {
        return "–".to_string();
    }
    s.per_kind
        .iter()
        .filter(|(name, v)| *v >= 0.005 && *name != "other")
        .map(|(name, v)| format!("{name} {v:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The headline of a table: server CPU per operation at a fixed offered load
/// (`rate` operations/s), and the contender each row is paired with, round by round.
#[derive(Clone, Debug)]
pub struct Headline {
    pub rate: f64,
    pub reference: String,
}

/// `name`'s fixed-load CPU per operation over `reference`'s, round by round (the
/// contenders alternate within a round, so a round's ratio shares its machine
/// state): median and range of the per-round ratios.
pub fn paired_cpu(cells: &[&Cell], name: &str, reference: &str) -> Option<Stat> {
    let per_round = |n: &str| -> Option<Vec<Option<f64>>> {
        cells
            .iter()
            .find(|c| c.contender == n)
            .and_then(|c| match &c.outcome {
                Outcome::Measured(s) => Some(s.iter().map(|x| x.fixed_cpu_us_per_op).collect()),
                _ => None,
            })
    };
    let (a, b) = (per_round(name)?, per_round(reference)?);
    let ratios: Vec<f64> = a
        .iter()
        .zip(&b)
        .filter_map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) if *y > 0.0 => Some(x / y),
            _ => None,
        })
        .collect();
    stat(&ratios)
}

fn headline_header(h: Option<&Headline>, unit: &str) -> Vec<String> {
    match h {
        Some(h) => vec![
            format!("server CPU µs/{unit} @ {}/s", num(h.rate)),
            "min–max".to_string(),
            format!("vs `{}` (paired)", h.reference),
        ],
        None => Vec::new(),
    }
}

fn headline_cells(h: Option<&Headline>, cells: &[&Cell], c: &Cell, s: &Summary) -> Vec<String> {
    let Some(h) = h else { return Vec::new() };
    let f = s.fixed_cpu_us_per_op;
    vec![
        f.map(|x| format!("**{:.2}**", x.median))
            .unwrap_or_else(|| "–".into()),
        f.map(|x| format!("{:.2}–{:.2}", x.min, x.max))
            .unwrap_or_else(|| "–".into()),
        match paired_cpu(cells, &c.contender, &h.reference) {
            Some(p) if c.contender != h.reference => {
                format!("{:.2}x ({:.2}–{:.2})", p.median, p.min, p.max)
            }
            Some(_) => "1".into(),
            None => "–".into(),
        },
    ]
}

fn status_cell(o: &Outcome) -> Option<String> {
    match o {
        Outcome::Measured(_) => None,
        Outcome::NotApplicable(r) => Some(format!("n/a ({r})")),
        Outcome::Failed(e) => Some(format!("failed: {e}")),
    }
}

/// The table of a throughput workload (round trip, bulk, churn).
/// `unit` names the throughput column; `mb` uses MB/s instead of ops/s.
/// With a `headline`, the first columns are the server's CPU per operation at the
/// fixed offered load and its ratio to the headline's reference, paired by round.
pub fn throughput_table(
    cells: &[&Cell],
    unit: &str,
    mb: bool,
    baseline: Option<f64>,
    headline: Option<&Headline>,
) -> String {
    let mut header = vec!["contender".to_string()];
    header.extend(headline_header(headline, "op"));
    header.extend([format!("{unit} (median)"), "min–max".to_string()]);
    if baseline.is_some() {
        header.push("vs best ref".to_string());
    }
    for h in [
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "server CPU µs/op",
        "syscalls/op",
        "per op (server)",
        "errors",
    ] {
        header.push(h.to_string());
    }
    let mut rows = Vec::new();
    for c in cells {
        let mut row = vec![format!("`{}`", c.contender)];
        if let Some(s) = status_cell(&c.outcome) {
            row.push(s);
            while row.len() < header.len() {
                row.push(String::new());
            }
            rows.push(row);
            continue;
        }
        let Outcome::Measured(samples) = &c.outcome else {
            unreachable!()
        };
        let s = summarise(samples);
        row.extend(headline_cells(headline, cells, c, &s));
        let tp = if mb { s.mb_per_sec } else { s.ops_per_sec };
        row.push(opt(tp.map(|t| t.median)));
        row.push(range(tp));
        if let Some(b) = baseline {
            row.push(match tp {
                Some(t) if b > 0.0 => format!("{:.2}x", t.median / b),
                _ => "–".to_string(),
            });
        }
        row.push(opt(s.p50_us));
        row.push(opt(s.p99_us));
        row.push(opt(s.p999_us));
        row.push(two(s.cpu_us_per_op));
        row.push(two(s.syscalls_per_op));
        row.push(breakdown(&s));
        row.push(s.errors.to_string());
        rows.push(row);
    }
    let h: Vec<&str> = header.iter().map(String::as_str).collect();
    markdown(&h, &rows)
}

/// The table of an HTTP sub-workload: requests/s with min–max, the ratio to nginx
/// (`baseline`, its median), MB/s of content when `mb`, wrk's latency, the server
/// process's CPU time per request, syscalls per request (the crate's counters; for nginx `strace` = (total, breakdown) if given).
pub fn http_table(
    cells: &[&Cell],
    baseline: Option<f64>,
    mb: bool,
    strace: Option<&(f64, String)>,
    headline: Option<&Headline>,
) -> String {
    let mut header = vec!["contender".to_string()];
    header.extend(headline_header(headline, "req"));
    header.extend(
        ["requests/s (median)", "min–max", "vs nginx"]
            .iter()
            .map(|s| s.to_string()),
    );
    if mb {
        header.push("MB/s".into());
    }
    header.extend(
        [
            "p50 µs",
            "p99 µs",
            "server CPU µs/req",
            "wrk CPU",
            "syscalls/req",
            "per req (server)",
            "errors",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let mut rows = Vec::new();
    for c in cells {
        let mut row = vec![format!("`{}`", c.contender)];
        let samples = match &c.outcome {
            Outcome::Measured(s) => s,
            // e.g. `nginx: not installed`
            Outcome::NotApplicable(r) => {
                row.push(r.clone());
                row.resize(header.len(), String::new());
                rows.push(row);
                continue;
            }
            Outcome::Failed(e) => {
                row.push(format!("failed: {e}"));
                row.resize(header.len(), String::new());
                rows.push(row);
                continue;
            }
        };
        let s = summarise(samples);
        row.extend(headline_cells(headline, cells, c, &s));
        row.push(opt(s.ops_per_sec.map(|t| t.median)));
        row.push(range(s.ops_per_sec));
        row.push(match (s.ops_per_sec, baseline) {
            (Some(t), Some(b)) if b > 0.0 => format!("{:.2}x", t.median / b),
            _ => "–".to_string(),
        });
        if mb {
            row.push(opt(s.mb_per_sec.map(|t| t.median)));
        }
        row.push(opt(s.p50_us));
        row.push(opt(s.p99_us));
        row.push(two(s.cpu_us_per_op));
        row.push(
            s.load_cpu
                .map(|x| format!("{:.0}%", x * 100.0))
                .unwrap_or("–".into()),
        );
        match (s.syscalls_per_op, strace) {
            (Some(x), _) => {
                row.push(format!("{x:.2}"));
                row.push(breakdown(&s));
            }
            (None, Some((x, b))) if c.contender == "nginx" => {
                row.push(format!("{x:.2}*"));
                row.push(b.clone());
            }
            _ => {
                row.push("–".into());
                row.push("–".into());
            }
        }
        row.push(s.errors.to_string());
        rows.push(row);
    }
    let h: Vec<&str> = header.iter().map(String::as_str).collect();
    markdown(&h, &rows)
}

/// The idle-sweep table: p50 round-trip latency (µs) of the active connection per idle
/// count, and the ratio of the largest measured count to zero.
pub fn idle_table(cells: &[&Cell], contenders: &[String], idles: &[u64]) -> String {
    let mut header: Vec<String> = vec!["contender".into()];
    header.extend(idles.iter().map(|i| format!("{i} idle")));
    header.push("last/0".into());
    header.push("syscalls/op at max".into());
    let mut rows = Vec::new();
    for name in contenders {
        let mut row = vec![format!("`{name}`")];
        let mut first = None;
        let mut last = None;
        let mut last_sys = None;
        for &i in idles {
            let cell = cells
                .iter()
                .find(|c| &c.contender == name && c.idle == Some(i));
            let text = match cell.map(|c| &c.outcome) {
                None => "–".to_string(),
                Some(Outcome::Measured(samples)) => {
                    let s = summarise(samples);
                    if let Some(p) = s.p50_us {
                        if first.is_none() {
                            first = Some(p);
                        }
                        last = Some(p);
                        last_sys = s.syscalls_per_op;
                    }
                    let p99 = s
                        .p99_us
                        .map(|p| format!(" (p99 {})", num(p)))
                        .unwrap_or_default();
                    format!("{}{p99}", opt(s.p50_us))
                }
                Some(o) => status_cell(o).unwrap_or_default(),
            };
            row.push(text);
        }
        row.push(match (first, last) {
            (Some(a), Some(b)) if a > 0.0 => format!("{:.2}x", b / a),
            _ => "–".into(),
        });
        row.push(two(last_sys));
        rows.push(row);
    }
    let h: Vec<&str> = header.iter().map(String::as_str).collect();
    markdown(&h, &rows)
}

/// One JSON object per cell: at least `workload`, `contender`, `ops_per_sec`, `p50_us`,
/// `p99_us` and `syscalls_per_op` (null where not measured).
pub fn json_cell(c: &Cell) -> Value {
    let mut v = json!({
        "workload": c.workload,
        "contender": c.contender,
        "ops_per_sec": null,
        "p50_us": null,
        "p99_us": null,
        "syscalls_per_op": null,
    });
    if let Some(i) = c.idle {
        v["idle_connections"] = json!(i);
    }
    if let Some(r) = c.offered {
        v["offered_per_sec"] = json!(r);
    }
    match &c.outcome {
        Outcome::Measured(samples) => {
            let s = summarise(samples);
            v["status"] = json!("ok");
            if let Some(t) = s.ops_per_sec {
                v["ops_per_sec"] = json!(t.median);
                v["ops_per_sec_min"] = json!(t.min);
                v["ops_per_sec_max"] = json!(t.max);
            }
            if c.workload == "bulk" || c.workload.starts_with("http-") {
                if let Some(t) = s.mb_per_sec {
                    v["mb_per_sec"] = json!(t.median);
                    v["mb_per_sec_min"] = json!(t.min);
                    v["mb_per_sec_max"] = json!(t.max);
                }
            }
            v["p50_us"] = json!(s.p50_us);
            v["p99_us"] = json!(s.p99_us);
            v["p999_us"] = json!(s.p999_us);
            v["syscalls_per_op"] = json!(s.syscalls_per_op);
            if s.cpu_us_per_op.is_some() {
                v["server_cpu_us_per_op"] = json!(s.cpu_us_per_op);
            }
            if let Some(f) = s.fixed_cpu_us_per_op {
                v["fixed_load_server_cpu_us_per_op"] = json!(f.median);
                v["fixed_load_server_cpu_us_per_op_min"] = json!(f.min);
                v["fixed_load_server_cpu_us_per_op_max"] = json!(f.max);
            }
            if s.load_cpu.is_some() {
                v["load_generator_cpu_share"] = json!(s.load_cpu);
            }
            if !s.per_kind.is_empty() {
                let m: serde_json::Map<String, Value> = s
                    .per_kind
                    .iter()
                    .map(|(k, x)| (k.to_string(), json!(x)))
                    .collect();
                v["syscalls_per_op_by_kind"] = Value::Object(m);
            }
            v["errors"] = json!(s.errors);
            v["rounds"] = json!(s.rounds);
        }
        Outcome::NotApplicable(r) => {
            v["status"] = json!("n/a");
            v["note"] = json!(r);
        }
        Outcome::Failed(e) => {
            v["status"] = json!("failed");
            v["note"] = json!(e);
        }
    }
    v
}

/// The whole results array.
pub fn json_results(cells: &[Cell]) -> Value {
    Value::Array(cells.iter().map(json_cell).collect())
}

/// The open-loop sweep of one workload, two tables: latency (p50 / p99 / p99.9 µs,
/// counted from the intended send time) and server CPU µs per operation with the
/// rate achieved, one column per offered load.
pub fn latency_tables(cells: &[&Cell], contenders: &[String], rates: &[u64]) -> String {
    let mut header: Vec<String> = vec!["contender".into()];
    header.extend(rates.iter().map(|r| format!("{}/s", num(*r as f64))));
    let h: Vec<&str> = header.iter().map(String::as_str).collect();
    let find = |name: &str, r: u64| {
        cells
            .iter()
            .find(|c| c.contender == name && c.offered == Some(r))
    };
    let mut lat = Vec::new();
    let mut cpu = Vec::new();
    for name in contenders {
        if !cells.iter().any(|c| &c.contender == name) {
            continue;
        }
        let mut a = vec![format!("`{name}`")];
        let mut b = a.clone();
        for &r in rates {
            match find(name, r).map(|c| &c.outcome) {
                None => {
                    a.push("–".into());
                    b.push("–".into());
                }
                Some(Outcome::Measured(samples)) => {
                    let s = summarise(samples);
                    a.push(format!(
                        "{} / {} / {}",
                        opt(s.p50_us),
                        opt(s.p99_us),
                        opt(s.p999_us)
                    ));
                    let done = s
                        .ops_per_sec
                        .map(|t| format!(" ({})", num(t.median)))
                        .unwrap_or_default();
                    let err = if s.errors > 0 {
                        format!(" [{} err]", s.errors)
                    } else {
                        String::new()
                    };
                    b.push(format!("{}{done}{err}", two(s.cpu_us_per_op)));
                }
                Some(o) => {
                    let t = status_cell(o).unwrap_or_default();
                    a.push(t.clone());
                    b.push(t);
                }
            }
        }
        lat.push(a);
        cpu.push(b);
    }
    format!(
        "Latency p50 / p99 / p99.9 µs from the intended send time, by offered load:\n\n{}\n\
         Server CPU µs/op (achieved ops/s), by offered load:\n\n{}",
        markdown(&h, &lat),
        markdown(&h, &cpu)
    )
}
