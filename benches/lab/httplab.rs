//! The `http` workload of a run: this crate's HTTP server on every backend against
//! nginx under wrk, its tables and targets.

use std::path::PathBuf;

use crate::cli::Options;
use crate::common::tools;
use crate::nginx;
use crate::outputs::headline;
use crate::report::{self, Outcome, Sample};
use crate::results::Results;
use crate::servers::NGINX;
use crate::{http, wrk};

/// What the `http` workload needs for a run: the content, nginx, wrk, the pinning.
pub struct HttpLab {
    pub site: http::Site,
    pub contenders: Vec<String>,
    pub nginx_bin: Option<PathBuf>,
    pub nginx_version: Option<String>,
    pub run: http::Run,
    /// The headline's fixed offered load (requests/s).
    pub fixed: f64,
}

impl HttpLab {
    /// Prepares the workload; without wrk (or with nothing to run) it records why in
    /// `res` and returns `None`. Under `CI=true` a missing wrk or nginx is a failure.
    pub fn new(o: &Options, server_cpu: Option<usize>, res: &mut Results) -> Option<HttpLab> {
        let contenders = o.http_contenders();
        let missing = |what: &str, who: &[String], res: &mut Results| {
            for t in &http::TARGETS {
                for name in who {
                    res.missing_tool(t.workload, name, what);
                }
            }
        };
        if contenders.is_empty() {
            eprintln!(
                "lab: http: no HTTP contender selected (the six backends and nginx serve HTTP)"
            );
            return None;
        }
        if !tools::runs("wrk", "-v") {
            missing("wrk", &contenders, res);
            return None;
        }
        let site = match http::Site::create() {
            Ok(s) => s,
            Err(e) => {
                for t in &http::TARGETS {
                    for name in &contenders {
                        res.add(t.workload, name, None, Err(format!("content: {e}")));
                    }
                }
                return None;
            }
        };
        let mut contenders = contenders;
        let nginx_bin = nginx::binary();
        if contenders.iter().any(|c| c == NGINX) && nginx_bin.is_none() {
            missing("nginx", &[NGINX.to_string()], res);
            contenders.retain(|c| c != NGINX);
        }
        let nginx_version = nginx_bin.as_deref().and_then(nginx::version);
        // wrk on the load generator's CPU (the lab itself is pinned there already).
        let load_cpu = server_cpu.and(tools::runs("taskset", "-V").then_some(1));
        Some(HttpLab {
            site,
            contenders,
            nginx_bin,
            nginx_version,
            run: http::Run {
                server_cpu,
                load_cpu,
                conns: o.http_connections,
                seconds: o.http_seconds(),
                warmup: o.warmup,
            },
            fixed: o.http_fixed_rate,
        })
    }

    /// The fixed offered load of `t`'s headline: the 1 MiB file gets a twentieth.
    pub fn fixed_rate(&self, t: &http::Target) -> f64 {
        if t.workload == "http-1m" {
            self.fixed / 20.0
        } else {
            self.fixed
        }
    }

    /// One round: every sub-workload, contenders in an order rotated by the round.
    pub fn round(&self, round: usize, res: &mut Results) {
        let n = self.contenders.len();
        for t in &http::TARGETS {
            for i in 0..n {
                let name = &self.contenders[(i + round) % n];
                let r = http::measure(
                    name,
                    t,
                    &self.site,
                    self.nginx_bin.as_deref(),
                    &self.run,
                    Some(self.fixed_rate(t)),
                );
                let s = r.map(|(w, counts, cpu_ns, fixed)| Sample {
                    fixed_cpu_us_per_op: fixed,
                    ops: w.requests,
                    ops_per_sec: w.requests_per_sec,
                    mb_per_sec: w.requests_per_sec * t.body_len as f64 / 1e6,
                    p50_us: w.p50_us,
                    p99_us: w.p99_us,
                    p999_us: None,
                    errors: w.errors(),
                    counts,
                    cpu_us_per_op: cpu_ns.map(|ns| ns as f64 / 1e3 / w.requests as f64),
                    load_cpu: w
                        .cpu_seconds
                        .filter(|_| w.seconds > 0.0)
                        .map(|c| c / w.seconds),
                });
                res.add(t.workload, name, None, s);
            }
        }
    }

    /// `--strace`: nginx's syscalls per request, one traced wrk run per sub-workload.
    pub fn strace_nginx(&self, res: &mut Results) {
        let Some(bin) = &self.nginx_bin else { return };
        if !self.contenders.iter().any(|c| c == NGINX) {
            return;
        }
        if !tools::runs("strace", "-V") {
            eprintln!("lab: strace is not installed: nginx's syscalls not counted");
            return;
        }
        for t in &http::TARGETS {
            match http::nginx_strace(t, &self.site, bin, &self.run) {
                Ok((total, per)) => {
                    let b = per
                        .iter()
                        .map(|(k, v)| format!("{k} {v:.2}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    res.nginx_strace.insert(t.workload.to_string(), (total, b));
                }
                Err(e) => eprintln!("lab: strace of nginx on {}: {e}", t.workload),
            }
        }
    }
}

/// The median requests/s of `contender` on `workload`.
pub fn median_rps(res: &Results, workload: &str, contender: &str) -> Option<f64> {
    res.of(workload)
        .into_iter()
        .find(|c| c.contender == contender)
        .and_then(|c| match &c.outcome {
            Outcome::Measured(s) => report::summarise(s).ops_per_sec.map(|t| t.median),
            _ => None,
        })
}

pub fn print_http_tables(o: &Options, res: &Results, hl: Option<&HttpLab>) {
    let (conns, secs) = (o.http_connections, o.http_seconds());
    println!("## HTTP: this crate's server on each backend vs nginx (one worker)\n");
    if let Some(hl) = hl {
        println!(
            "- load: `{}` (wrk {}), keep-alive; server {}",
            wrk::command_line(hl.run.load_cpu, conns, secs, "URL").join(" "),
            if hl.run.load_cpu.is_some() {
                "pinned with taskset"
            } else {
                "not pinned"
            },
            match hl.run.server_cpu {
                Some(c) => format!("pinned to CPU {c}"),
                None => "not pinned".into(),
            }
        );
        match (&hl.nginx_bin, &hl.nginx_version) {
            (Some(_), v) => println!(
                "- nginx: {} with `worker_processes 1; master_process off; access_log off; \
                 sendfile on; tcp_nopush on; keepalive_requests 100000000;` (config generated \
                 by benches/lab/nginx.rs)",
                v.as_deref().unwrap_or("nginx (version unknown)")
            ),
            (None, _) => println!("- nginx: not installed (Debian: `apt-get install nginx`)"),
        }
        println!(
            "- this crate: `HttpServer` with `Router::with_builtins()`, the same root, \
             no access log (benches/lab/servers.rs)"
        );
    }
    println!(
        "- server CPU µs/req: the server process's CPU time over the wrk run (all its \
         threads, `/proc/PID/task/*/schedstat`) per request: what a request costs the \
         server even when one wrk thread on CPU 1 is the bottleneck; wrk CPU: the share \
         of a CPU wrk used over its run (near 100%: the load generator, not the server, \
         sets the pace)"
    );
    println!(
        "- syscalls/req: the crate's counters in the server over the wrk run{}\n",
        if res.nginx_strace.is_empty() {
            "; nginx: `–` (counted only with `--strace`)"
        } else {
            "; nginx: `strace -c -f -p` over a separate wrk run (marked *)"
        }
    );
    let titles = [
        "### `http-plaintext`: GET /plaintext (13 B)",
        "### `http-small`: GET /small.txt (the same 13 B as a static file)",
        "### `http-1k`: GET /1k.bin (1 KiB static file)",
        "### `http-1m`: GET /1m.bin (1 MiB static file; MB/s of file content)",
    ];
    for (t, title) in http::TARGETS.iter().zip(titles) {
        println!("{title}\n");
        let base = median_rps(res, t.workload, NGINX);
        println!(
            "{}",
            report::http_table(
                &res.of(t.workload),
                base,
                t.workload == "http-1m",
                res.nginx_strace.get(t.workload),
                hl.and_then(|hl| headline(&res.of(t.workload), hl.fixed_rate(t), &[NGINX]))
                    .as_ref(),
            )
        );
    }
    http_targets(o, res);
}

/// Prints issue 4's targets for this run.
pub fn http_targets(o: &Options, res: &Results) {
    println!(
        "Issue 4 targets (epoll-et, measured in this run{}):\n",
        if o.quick {
            "; --quick runs are too short to judge them"
        } else {
            ""
        }
    );
    let verdict = |ok: bool| if ok { "(met)" } else { "(NOT met)" };
    for (w, what, goal) in [
        ("http-plaintext", "plaintext keep-alive requests/s", 1.25),
        ("http-1k", "1 KiB static file requests/s", 1.1),
        ("http-1m", "1 MiB static file requests/s", 0.9),
    ] {
        match (median_rps(res, w, "epoll-et"), median_rps(res, w, NGINX)) {
            (Some(a), Some(b)) if b > 0.0 => println!(
                "- {what} ≥ {goal}x nginx: {:.2}x ({} vs {}) {}",
                a / b,
                report::num(a),
                report::num(b),
                verdict(a / b >= goal)
            ),
            _ => println!("- {what} ≥ {goal}x nginx: not measured"),
        }
    }
    let cpu = |w: &str, c: &str| {
        res.of(w)
            .into_iter()
            .find(|x| x.contender == c)
            .and_then(|x| match &x.outcome {
                Outcome::Measured(s) => report::summarise(s).cpu_us_per_op,
                _ => None,
            })
    };
    for (w, what) in [
        ("http-plaintext", "plaintext"),
        ("http-1k", "1 KiB file"),
        ("http-1m", "1 MiB file"),
    ] {
        if let (Some(a), Some(b)) = (cpu(w, "epoll-et"), cpu(w, NGINX)) {
            println!(
                "- (context) server CPU per {what} request: epoll-et {a:.2} µs, nginx {b:.2} µs \
                 (nginx needs {:.2}x the CPU)",
                b / a
            );
        }
    }
    for (w, what, goal) in [
        ("http-plaintext", "syscalls per plaintext request", 2.05),
        ("http-1k", "syscalls per 1 KiB static file request", 3.0),
    ] {
        let x = res
            .of(w)
            .into_iter()
            .find(|c| c.contender == "epoll-et")
            .and_then(|c| match &c.outcome {
                Outcome::Measured(s) => report::summarise(s).syscalls_per_op,
                _ => None,
            });
        match x {
            Some(x) => println!("- {what} ≤ {goal}: {x:.2} {}", verdict(x <= goal)),
            None => println!("- {what} ≤ {goal}: not measured"),
        }
    }
    // Issue 14: the 13 B static file against nginx's `return 200` text, server CPU
    // per request at the fixed offered load, round by round.
    let fixed = |w: &str, c: &str| -> Option<Vec<Option<f64>>> {
        res.of(w)
            .into_iter()
            .find(|x| x.contender == c)
            .and_then(|x| match &x.outcome {
                Outcome::Measured(s) => Some(s.iter().map(|s| s.fixed_cpu_us_per_op).collect()),
                _ => None,
            })
    };
    for c in ["epoll-et", "epoll"] {
        let (Some(a), Some(b)) = (fixed("http-small", c), fixed("http-plaintext", NGINX)) else {
            continue;
        };
        let ratios: Vec<f64> = a
            .iter()
            .zip(&b)
            .filter_map(|(x, y)| Some(x.as_ref()? / y.as_ref()?))
            .collect();
        if let Some(r) = report::stat(&ratios) {
            println!(
                "- issue 14: {c}'s 13 B static file ≤ 0.95x nginx's `return 200` in server CPU per request at {}/s, paired by round: {:.2}x ({:.2}–{:.2}) {}",
                report::num(o.http_fixed_rate),
                r.median,
                r.min,
                r.max,
                verdict(r.median <= 0.95)
            );
        }
        if let (Some(a), Some(b)) = (cpu("http-small", c), cpu("http-plaintext", NGINX)) {
            println!(
                "- (context) the same over the wrk runs (closed loop): {c} {a:.2} µs per 13 B \
                 file, nginx {b:.2} µs per `return 200`: {:.2}x",
                a / b
            );
        }
    }
    println!();
}
