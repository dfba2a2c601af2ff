//! The results of a lab run: every cell (workload, contender, idle count, offered
//! load) with its samples, and how a measurement becomes a sample.

use std::collections::BTreeMap;

use readyloop::sys::stats::Counts;

use crate::cli;
use crate::common::tools;
use crate::loadgen::PhaseResult;
use crate::report::{Cell, Outcome, Sample};
use crate::servers::ALL_CONTENDERS;

/// Collects samples per (workload, contender, idle count).
#[derive(Default)]
pub struct Results {
    pub cells: BTreeMap<(usize, usize, u64, u64), Cell>,
    /// nginx's syscalls per request by workload, from `strace -c` (`--strace` only):
    /// (total, breakdown).
    pub nginx_strace: BTreeMap<String, (f64, String)>,
}

impl Results {
    pub fn key(
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

    pub fn cell(&mut self, workload: &str, contender: &str, idle: Option<u64>) -> &mut Cell {
        self.cell_at(workload, contender, idle, None)
    }

    pub fn cell_at(
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

    pub fn add(
        &mut self,
        workload: &str,
        contender: &str,
        idle: Option<u64>,
        r: Result<Sample, String>,
    ) {
        self.add_at(workload, contender, idle, None, r)
    }

    /// Adds a sample of a sweep point: `offered` operations per second.
    pub fn add_at(
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

    pub fn not_applicable(
        &mut self,
        workload: &str,
        contender: &str,
        idle: Option<u64>,
        why: &str,
    ) {
        self.cell(workload, contender, idle).outcome = Outcome::NotApplicable(why.to_string());
    }

    /// A contender that needs a missing tool: a failure under `CI=true`, else n/a.
    pub fn missing_tool(&mut self, workload: &str, contender: &str, tool: &str) {
        match tools::missing(tool) {
            Ok(why) => self.not_applicable(workload, contender, None, &why),
            Err(e) => self.add(workload, contender, None, Err(e)),
        }
    }

    pub fn of(&self, workload: &str) -> Vec<&Cell> {
        self.cells
            .values()
            .filter(|c| c.workload == workload)
            .collect()
    }

    pub fn all(&self) -> Vec<Cell> {
        self.cells.values().cloned().collect()
    }

    pub fn failures(&self) -> usize {
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

pub fn sample(r: &PhaseResult, counts: Option<Counts>) -> Sample {
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

/// Adds contender `name`'s server CPU per operation over the measured window (read
/// from `/proc/PID/task/*/schedstat` before and after): steadier than throughput on a
/// shared machine, where the load generator often sets the pace. A fork server's work
/// happens in its children, which the parent's schedstat does not include: no CPU
/// figure for it rather than a wrong one.
pub fn with_cpu(name: &str, mut s: Sample, before: Option<u64>, after: Option<u64>) -> Sample {
    if name == "fork" {
        return s;
    }
    if let (Some(a), Some(b)) = (before, after) {
        if s.ops > 0 {
            s.cpu_us_per_op = Some(b.saturating_sub(a) as f64 / 1000.0 / s.ops as f64);
        }
    }
    s
}
