//! `/proc` readings: a server's CPU time, memory and descriptors, and the machine's
//! busy share.
//!
//! **Server CPU**, in every table of every bench, is one metric: the on-CPU time the
//! scheduler charged to the server process, all its threads together, read from
//! `/proc/PID/task/*/schedstat` (nanoseconds, first field) before and after the
//! measured window ([`cpu_ns`], [`CpuMark`]; a process tree for servers that fork a
//! process per session, [`tree_cpu_ns`]). It is exact to the nanosecond and counts
//! what the kernel did on the server's behalf in its context, unlike `utime + stime`
//! in clock ticks. Two places read the same scheduler clock another way, because the
//! threads or processes that did the work are gone by the time the window ends:
//! [`stat_cpu_ns`] (the kernel's process total, which keeps exited threads: the
//! thread-per-connection server under churn) and `perf stat -e task-clock` in the TFTP
//! bench (tftpd-hpa's per-transfer children exit before they can be read).

use std::collections::BTreeMap;
use std::fs;

/// CPU time (ns) that process `pid` has run, all its threads together
/// (`/proc/PID/task/*/schedstat`, first field); `None` where not readable.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    tasks_sum(pid, 0)
}

/// Timeslices run by all threads of `pid` (`/proc/PID/task/*/schedstat`, third field).
pub fn timeslices(pid: u32) -> Option<u64> {
    tasks_sum(pid, 2)
}

/// Field `i` of `/proc/PID/task/*/schedstat`, summed over the threads.
fn tasks_sum(pid: u32, i: usize) -> Option<u64> {
    let mut total = 0;
    for t in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let s = fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?;
        total += schedstat_field(&s, i)?;
    }
    Some(total)
}

/// On-CPU ns of the calling thread (`/proc/thread-self/schedstat`).
pub fn thread_cpu_ns() -> Option<u64> {
    schedstat_field(&fs::read_to_string("/proc/thread-self/schedstat").ok()?, 0)
}

/// Field `i` of a `schedstat` line (on-CPU ns, wait ns, timeslices).
pub fn schedstat_field(text: &str, i: usize) -> Option<u64> {
    text.split_whitespace().nth(i)?.parse().ok()
}

/// CPU time (ns) of process `pid` from `/proc/PID/stat` (utime + stime, clock ticks,
/// which the kernel scales to the scheduler's total): coarse (10 ms a tick), but it
/// keeps the time of threads that have exited, which `/proc/PID/task` forgets (a
/// thread-per-connection server under churn).
pub fn stat_cpu_ns(pid: u32) -> Option<u64> {
    let ticks = parse_stat_ticks(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    Some(ticks * 1_000_000_000 / super::os::clock_ticks_per_sec())
}

/// `utime + stime` (clock ticks) from the text of `/proc/PID/stat`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name is in parentheses and may contain spaces: fields count from
    // after the last ')'. Field 3 (state) is the first one there; utime is 14, stime 15.
    let f = stat_fields(stat)?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The fields of a `/proc/PID/stat` line after the command name.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace().collect())
}

/// The CPU time (ns) of each thread of a process at one moment
/// (`/proc/PID/task/TID/schedstat`), so that the time spent between two marks can be
/// summed over the threads alive at the second one: a thread that exits in between
/// (thread-per-connection servers) no longer makes the difference negative.
pub struct CpuMark(BTreeMap<String, u64>);

impl CpuMark {
    /// The threads of `pid` now (`None` where not readable).
    pub fn take(pid: u32) -> Option<CpuMark> {
        let mut m = BTreeMap::new();
        for t in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
            let t = t.ok()?;
            // A thread may exit between the listing and the read: skip it.
            let Ok(s) = fs::read_to_string(t.path().join("schedstat")) else {
                continue;
            };
            let ns = schedstat_field(&s, 0)?;
            m.insert(t.file_name().to_string_lossy().into_owned(), ns);
        }
        Some(CpuMark(m))
    }

    /// CPU ns the threads of `pid` alive now ran since this mark (a thread born since
    /// counts whole).
    pub fn since(&self, pid: u32) -> Option<u64> {
        let now = CpuMark::take(pid)?;
        Some(
            now.0
                .iter()
                .map(|(tid, ns)| ns.saturating_sub(self.0.get(tid).copied().unwrap_or(0)))
                .sum(),
        )
    }
}

/// CPU time (ns, schedstat) of `pid` and all its descendants alive now: servers
/// that serve each session in a process they fork (vsftpd).
pub fn tree_cpu_ns(pid: u32) -> Option<u64> {
    let mut parent = Vec::new();
    for e in fs::read_dir("/proc").ok()?.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let ppid = stat_fields(&stat)
            .and_then(|f| f.get(1)?.parse::<u32>().ok())
            .unwrap_or(0);
        parent.push((p, ppid));
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    // A process of the tree may exit meanwhile: it counts nothing.
    Some(tree.into_iter().filter_map(cpu_ns).sum())
}

/// A `kB` field (`VmRSS`, `VmHWM`) of `/proc/PID/status`.
pub fn status_kb(pid: u32, key: &str) -> Option<u64> {
    parse_status_kb(
        &fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        key,
    )
}

/// A `kB` field (`VmRSS`, `VmHWM`) from the text of `/proc/PID/status`.
pub fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Open descriptors of `pid` (0 where not readable).
pub fn fd_count(pid: u32) -> u64 {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// Per-CPU `(busy, total)` jiffies from `/proc/stat` (busy: everything but idle and
/// iowait; softirq and steal included).
pub fn cpu_jiffies() -> Vec<(u64, u64)> {
    parse_proc_stat(&fs::read_to_string("/proc/stat").unwrap_or_default())
}

/// The per-CPU lines of the text of `/proc/stat` as `(busy, total)` jiffies.
pub fn parse_proc_stat(text: &str) -> Vec<(u64, u64)> {
    text.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (total - idle, total)
        })
        .collect()
}

/// Busy percentage per CPU between two [`cpu_jiffies`] readings.
pub fn busy_pct(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let t = y.1.saturating_sub(x.1).max(1) as f64;
            (100.0 * y.0.saturating_sub(x.0) as f64 / t).min(100.0)
        })
        .collect()
}
