//! Results: the fan-out table of a run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::common::table::{markdown, median};
use crate::measure::Sample;

#[derive(Default)]
pub struct Cell {
    pub samples: Vec<Sample>,
    pub failure: Option<String>,
}

pub fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) => format!("{x:.digits$}"),
        None => "null".into(),
    }
}

pub fn med(samples: &[Sample], f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = samples.iter().filter_map(f).collect();
    median(&v)
}

pub fn max_of(samples: &[Sample], f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
    samples.iter().filter_map(f).reduce(f64::max)
}

/// One table row for a contender.
pub fn row(name: &str, cell: &Cell) -> Vec<String> {
    if cell.samples.is_empty() {
        let why = cell.failure.clone().unwrap_or_else(|| "not run".into());
        let mut r = vec![name.to_string(), why];
        r.extend(std::iter::repeat_n("–".to_string(), HEADER.len() - 2));
        return r;
    }
    let s = &cell.samples;
    let d: Vec<f64> = s.iter().map(|x| x.deliveries_per_sec).collect();
    let (lo, hi) = (
        d.iter().copied().fold(f64::INFINITY, f64::min),
        d.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let rate = format!(
        "{:.0} [{:.0}–{:.0}]",
        median(&d).unwrap_or(f64::NAN),
        lo,
        hi
    );
    let writes = match (
        med(s, |x| x.writes_per_delivery),
        med(s, |x| x.strace_writes_per_delivery),
    ) {
        (Some(c), Some(t)) => format!("{c:.3} (strace {t:.3})"),
        (Some(c), None) => format!("{c:.3}"),
        (None, Some(t)) => format!("strace {t:.3}"),
        (None, None) => "null".into(),
    };
    let mut lost = s.iter().map(|x| x.lost).sum::<u64>().to_string();
    if let Some(f) = &cell.failure {
        let _ = write!(lost, " ({f})");
    }
    vec![
        name.to_string(),
        rate,
        fmt_opt(med(s, |x| x.p50_us), 0),
        fmt_opt(med(s, |x| x.p99_us), 0),
        format!(
            "{} / {}",
            fmt_opt(max_of(s, |x| x.hwm_mib), 1),
            fmt_opt(med(s, |x| x.rss_end_mib), 1)
        ),
        fmt_opt(med(s, |x| x.cpu_us_per_delivery), 3),
        fmt_opt(med(s, |x| x.server_cpu_pct), 0),
        writes,
        lost,
    ]
}

pub const HEADER: [&str; 9] = [
    "contender",
    "deliveries/s median [min–max]",
    "p50 µs",
    "p99 µs",
    "server RSS MiB peak / end",
    "server CPU µs/delivery",
    "server CPU %",
    "write syscalls/delivery",
    "lost messages",
];

pub fn render_table(order: &[String], cells: &BTreeMap<String, Cell>) -> String {
    let empty = Cell::default();
    let rows: Vec<Vec<String>> = order
        .iter()
        .map(|n| row(n, cells.get(n).unwrap_or(&empty)))
        .collect();
    markdown(&HEADER, &rows)
}
