//! The echo workloads (round trip, bulk, churn, idle sweep) on one contender at a
//! time, and the strace cross-check of the crate's syscall counters.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use readyloop::sys::stats::Counts;

use crate::cli::Options;
use crate::common::{procfs, strace};
use crate::loadgen::{self, Bounds, EchoClient, PhaseResult};
use crate::report::{self, Sample};
use crate::results::{sample, with_cpu, Results};
use crate::servers::{self, ServerProc};

/// Whether `conns` client connections would push the `select` server's descriptors
/// past `FD_SETSIZE` (it also holds the listener, the waker and the std descriptors):
/// the server refuses those connections, so the workload does not apply to it.
pub fn beyond_select(name: &str, conns: usize) -> bool {
    name == "select" && conns + 16 > libc::FD_SETSIZE
}

pub fn check(r: &PhaseResult) -> Result<(), String> {
    if r.ops == 0 {
        Err(format!("no operation completed ({} errors)", r.errors))
    } else {
        Ok(())
    }
}

pub struct Lab {
    pub o: Options,
    pub server_cpu: Option<usize>,
}

impl Lab {
    pub fn spawn(&self, name: &str) -> io::Result<ServerProc> {
        servers::spawn(name, self.server_cpu)
    }

    pub fn bounds(&self, duration: Duration) -> Bounds {
        Bounds {
            max_ops: self.o.max_ops,
            duration,
        }
    }

    pub fn warm(&self) -> Bounds {
        Bounds {
            max_ops: self.o.max_ops,
            duration: self.o.warmup,
        }
    }

    /// Closed-loop echo with `conns` connections of `size`-byte messages; with
    /// `fixed` (operations/s), then an open-loop phase at that offered load on the
    /// same server for the headline figure, its CPU per operation.
    pub fn echo(
        &self,
        name: &str,
        conns: usize,
        size: usize,
        duration: Duration,
        fixed: Option<f64>,
    ) -> Result<Sample, String> {
        let e = |e: io::Error| format!("{e}");
        let mut srv = self.spawn(name).map_err(e)?;
        let mut cl = EchoClient::connect(srv.addr, conns, size).map_err(e)?;
        cl.run(self.warm()).map_err(e)?;
        srv.stats_on().map_err(e)?;
        let cpu0 = procfs::cpu_ns(srv.pid());
        let r = cl.run(self.bounds(duration)).map_err(e)?;
        let cpu1 = procfs::cpu_ns(srv.pid());
        let counts = srv.stats_off().map_err(e)?;
        drop(cl);
        let fixed_cpu = match fixed {
            Some(rate) if name != "fork" => {
                let req = loadgen::Request::Echo(loadgen::pattern(size));
                let mut ol = loadgen::OpenLoop::connect(srv.addr, conns, req).map_err(e)?;
                let c0 = procfs::CpuMark::take(srv.pid());
                let f = ol.run(Some(rate), self.bounds(duration)).map_err(e)?;
                let ns = c0.and_then(|m| m.since(srv.pid()));
                check(&f.phase)?;
                ns.map(|ns| ns as f64 / 1e3 / f.phase.ops as f64)
            }
            _ => None,
        };
        srv.stop().map_err(e)?;
        check(&r)?;
        let mut s = with_cpu(name, sample(&r, counts), cpu0, cpu1);
        s.fixed_cpu_us_per_op = fixed_cpu;
        Ok(s)
    }

    pub fn churn(&self, name: &str, duration: Duration) -> Result<Sample, String> {
        let e = |e: io::Error| format!("{e}");
        let mut srv = self.spawn(name).map_err(e)?;
        let c = self.o.churn_concurrency;
        loadgen::churn(srv.addr, c, self.warm()).map_err(e)?;
        srv.stats_on().map_err(e)?;
        // A thread per connection: its threads exit inside the window, taking their
        // time out of /proc/PID/task; the process's own (coarser) total keeps it.
        let cpu = |pid| {
            if name == "threads" {
                procfs::stat_cpu_ns(pid)
            } else {
                procfs::cpu_ns(pid)
            }
        };
        let cpu0 = cpu(srv.pid());
        let r = loadgen::churn(srv.addr, c, self.bounds(duration)).map_err(e)?;
        let cpu1 = cpu(srv.pid());
        let counts = srv.stats_off().map_err(e)?;
        srv.stop().map_err(e)?;
        check(&r)?;
        Ok(with_cpu(name, sample(&r, counts), cpu0, cpu1))
    }

    /// One server, idle connections added step by step; one active connection measured
    /// at each step.
    pub fn idle_sweep(&self, name: &str, res: &mut Results) {
        let w = "idle-sweep";
        let duration = (self.o.duration / 2).max(Duration::from_millis(50));
        let mut srv = match self.spawn(name) {
            Ok(s) => s,
            Err(e) => {
                for &i in &self.o.idle_counts {
                    res.add(w, name, Some(i), Err(e.to_string()));
                }
                return;
            }
        };
        let mut idle = Vec::new();
        let mut active: Option<EchoClient> = None;
        let mut failed: Option<String> = None;
        let mut counts = self.o.idle_counts.clone();
        counts.sort_unstable();
        for &n in &counts {
            if let Some(f) = &failed {
                res.add(w, name, Some(n), Err(f.clone()));
                continue;
            }
            // The server holds listener, waker and std descriptors besides connections.
            if beyond_select(name, n as usize) {
                res.not_applicable(w, name, Some(n), "FD_SETSIZE");
                continue;
            }
            let r = (|| -> io::Result<Sample> {
                loadgen::open_idle(srv.addr, n as usize - idle.len(), 100, &mut idle)?;
                if active.is_none() {
                    active = Some(EchoClient::connect(srv.addr, 1, 64)?);
                }
                let cl = active.as_mut().expect("active client");
                cl.run(Bounds {
                    max_ops: self.o.max_ops,
                    duration: self.o.warmup / 2,
                })?;
                srv.stats_on()?;
                let r = cl.run(self.bounds(duration))?;
                let c = srv.stats_off()?;
                if r.ops == 0 {
                    return Err(io::Error::other("no round trip completed"));
                }
                Ok(sample(&r, c))
            })();
            match r {
                Ok(s) => res.add(w, name, Some(n), Ok(s)),
                Err(e) => {
                    let msg = format!("at {n} idle: {e}");
                    failed = Some(msg.clone());
                    res.add(w, name, Some(n), Err(msg));
                }
            }
        }
        drop(active);
        drop(idle);
        if let Err(e) = srv.stop() {
            if failed.is_none() {
                res.add(w, name, counts.last().copied(), Err(format!("stop: {e}")));
            }
        }
    }
}

/// Counts epoll-et's syscalls per round trip with `strace -c -f` (a run with K round
/// trips minus a run with none, both with the same start, connections and stop) and
/// prints it beside the crate's own count over the same K round trips.
pub fn strace_cross_check(lab: &Lab) {
    println!("\n## Cross-check with strace -c -f (epoll-et)\n");
    if std::process::Command::new("strace")
        .arg("-V")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        println!("strace is not installed: skipped.");
        return;
    }
    let k: u64 = 20_000;
    let run = |ops: u64| -> Result<(BTreeMap<String, u64>, Option<Counts>), String> {
        let e = |e: io::Error| e.to_string();
        let file =
            std::env::temp_dir().join(format!("lab-strace-{}-{ops}.txt", std::process::id()));
        let wrapper: Vec<String> = ["strace", "-f", "-c", "-U", "calls,name", "-o"]
            .iter()
            .map(|s| s.to_string())
            .chain([file.display().to_string()])
            .collect();
        let mut srv = servers::spawn_wrapped("epoll-et", lab.server_cpu, &wrapper).map_err(e)?;
        let mut cl = EchoClient::connect(srv.addr, 10, 64).map_err(e)?;
        srv.stats_on().map_err(e)?;
        if ops > 0 {
            let r = cl
                .run(Bounds {
                    max_ops: ops,
                    duration: Duration::from_secs(60),
                })
                .map_err(e)?;
            if r.ops != ops {
                return Err(format!("{} of {ops} round trips", r.ops));
            }
        }
        let counts = srv.stats_off().map_err(e)?;
        drop(cl);
        srv.stop().map_err(e)?;
        let text = std::fs::read_to_string(&file).map_err(e)?;
        let _ = std::fs::remove_file(&file);
        Ok((strace::parse_strace_calls(&text), counts))
    };
    let (with, without) = match (run(k), run(0)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            println!("strace run failed: {e}");
            return;
        }
    };
    let diff = |name: &str| {
        with.0.get(name).copied().unwrap_or(0) as f64
            - without.0.get(name).copied().unwrap_or(0) as f64
    };
    let total = diff("total") / k as f64;
    let mut rows = Vec::new();
    for name in with.0.keys().filter(|n| *n != "total") {
        let d = diff(name) / k as f64;
        if d.abs() >= 0.005 {
            rows.push(vec![format!("`{name}`"), format!("{d:.2}")]);
        }
    }
    rows.push(vec!["**total**".into(), format!("{total:.2}")]);
    println!(
        "{}",
        report::markdown(
            &["syscall (strace, server process)", "per round trip"],
            &rows
        )
    );
    match with.1 {
        Some(c) => println!(
            "crate counters over the same {k} round trips (10 connections, under strace): {:.2} per round trip; strace: {total:.2}",
            c.syscalls() as f64 / k as f64
        ),
        None => println!("crate counters: none"),
    }
}
