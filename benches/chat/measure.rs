//! One measurement: a server, the fleet, warm-up, the window.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use readyloop::sys::stats::Syscall;
use serde_json::{json, Value};

use crate::cli::Options;
use crate::common::procfs::{busy_pct, cpu_jiffies, status_kb};
use crate::common::{procfs, strace};
use crate::fleets::Fleets;
use crate::server::start_server;

/// Write-side syscalls in an strace count.
pub fn strace_writes(m: &BTreeMap<String, u64>) -> u64 {
    ["write", "writev", "send", "sendto", "sendmsg", "sendmmsg"]
        .iter()
        .map(|k| m.get(*k).copied().unwrap_or(0))
        .sum()
}

#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub round: usize,
    pub deliveries_per_sec: f64,
    pub offered_per_sec: f64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub max_us: Option<f64>,
    pub rss_end_mib: Option<f64>,
    pub rss_joined_mib: Option<f64>,
    pub rss_window_max_mib: Option<f64>,
    pub hwm_mib: Option<f64>,
    pub cpu_us_per_delivery: Option<f64>,
    pub server_cpu_pct: Option<f64>,
    pub client_cpu_pct: f64,
    /// Every CPU's busy share over the window (softirq and steal included).
    pub machine_busy_pct: Vec<f64>,
    pub writes_per_delivery: Option<f64>,
    pub syscalls_per_delivery: Option<f64>,
    pub strace_writes_per_delivery: Option<f64>,
    pub lost: u64,
    pub sent: u64,
    pub received: u64,
    pub expected: u64,
    pub self_echo: u64,
    pub join_secs: f64,
}

impl Sample {
    pub fn json(&self) -> Value {
        json!({
            "round": self.round,
            "deliveries_per_sec": self.deliveries_per_sec,
            "offered_deliveries_per_sec": self.offered_per_sec,
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
            "max_us": self.max_us,
            "rss_end_mib": self.rss_end_mib,
            "rss_after_join_mib": self.rss_joined_mib,
            "rss_window_max_mib": self.rss_window_max_mib,
            "rss_peak_hwm_mib": self.hwm_mib,
            "cpu_us_per_delivery": self.cpu_us_per_delivery,
            "server_cpu_pct": self.server_cpu_pct,
            "client_cpu_pct": self.client_cpu_pct,
            "machine_busy_pct_per_cpu": self.machine_busy_pct,
            "writes_per_delivery": self.writes_per_delivery,
            "syscalls_per_delivery": self.syscalls_per_delivery,
            "strace_writes_per_delivery": self.strace_writes_per_delivery,
            "lost": self.lost,
            "sent": self.sent,
            "received": self.received,
            "expected": self.expected,
            "self_echo": self.self_echo,
            "join_secs": self.join_secs,
        })
    }
}

pub struct Bench {
    pub o: Options,
    pub server_cpu: Option<usize>,
    /// One entry per client thread: the CPU it is pinned to.
    pub client_cpus: Vec<Option<usize>>,
    pub work: PathBuf,
}

pub fn mib(kb: Option<u64>) -> Option<f64> {
    kb.map(|k| k as f64 / 1024.0)
}

impl Bench {
    /// One round of one contender. `strace`: also one phase under strace afterwards.
    pub fn measure(&self, name: &str, round: usize, strace: bool) -> Result<Sample, String> {
        let o = &self.o;
        let text = |e: io::Error| e.to_string();
        let mut srv = start_server(name, self.server_cpu, &self.work)?;
        let pid = srv.pid();
        // Every contender's clients JOIN #lobby themselves after 001: chat_server, like
        // every IRC server, no longer joins IRC clients anywhere (--irc-autojoin).
        let mut fleet =
            Fleets::new(srv.addr(), true, &self.client_cpus).map_err(|e| format!("poll: {e}"))?;
        let join_limit = Duration::from_secs(30 + o.clients as u64 / 20);
        let joined_in = fleet.join_all(o.clients, 50, join_limit)?;
        fleet.settle(Duration::from_millis(300), Duration::from_secs(60))?;
        let rss_joined = mib(status_kb(pid, "VmRSS"));
        if !o.warmup.is_zero() {
            fleet.phase(1, o.senders, o.rate, o.warmup, &mut || {})?;
        }
        srv.stats_on().map_err(text)?;
        let cpu0 = procfs::cpu_ns(pid);
        let jiffies0 = cpu_jiffies();
        let t0 = Instant::now();
        let mut rss_max: Option<u64> = None;
        let mut sample_rss = || {
            if let Some(kb) = status_kb(pid, "VmRSS") {
                rss_max = Some(rss_max.map_or(kb, |m| m.max(kb)));
            }
        };
        let r = fleet.phase(2, o.senders, o.rate, o.duration, &mut sample_rss)?;
        let cpu1 = procfs::cpu_ns(pid);
        let machine_busy = busy_pct(&jiffies0, &cpu_jiffies());
        let elapsed = t0.elapsed();
        let counts = srv.stats_off().map_err(text)?;
        sample_rss();
        let rss_end = mib(status_kb(pid, "VmRSS"));
        let hwm = mib(status_kb(pid, "VmHWM"));
        let cpu_secs = match (cpu0, cpu1) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e9),
            _ => None,
        };
        let deliveries = r.received.max(1) as f64;
        let mut s = Sample {
            round,
            deliveries_per_sec: r.in_window as f64 / r.window.as_secs_f64(),
            offered_per_sec: o.rate * (o.clients - 1) as f64,
            p50_us: r.p50_us,
            p99_us: r.p99_us,
            max_us: r.max_us,
            rss_end_mib: rss_end,
            rss_joined_mib: rss_joined,
            rss_window_max_mib: mib(rss_max),
            hwm_mib: hwm,
            cpu_us_per_delivery: cpu_secs.map(|c| c * 1e6 / deliveries),
            server_cpu_pct: cpu_secs.map(|c| 100.0 * c / elapsed.as_secs_f64()),
            client_cpu_pct: 100.0 * r.client_cpu.as_secs_f64() / elapsed.as_secs_f64(),
            machine_busy_pct: machine_busy,
            writes_per_delivery: counts.map(|c| c.get(Syscall::Write) as f64 / deliveries),
            syscalls_per_delivery: counts.map(|c| c.syscalls() as f64 / deliveries),
            strace_writes_per_delivery: None,
            lost: r.lost,
            sent: r.sent,
            received: r.received,
            expected: r.expected,
            self_echo: r.self_echo,
            join_secs: joined_in.as_secs_f64(),
        };
        if strace {
            let file = self
                .work
                .join(format!("strace-{name}-{}.txt", std::process::id()));
            let dur = o.duration.min(Duration::from_secs(5));
            match strace::strace_counts(pid, &file, || {
                fleet.phase(3, o.senders, o.rate, dur, &mut || {})
            }) {
                Ok((m, st)) => {
                    s.strace_writes_per_delivery =
                        Some(strace_writes(&m) as f64 / st.received.max(1) as f64);
                    s.lost += st.lost;
                }
                Err(e) => eprintln!("  {name}: strace phase failed: {e}"),
            }
        }
        drop(fleet);
        srv.stop().map_err(text)?;
        Ok(s)
    }
}
