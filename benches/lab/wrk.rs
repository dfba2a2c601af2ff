//! Runs `wrk` (pinned to the load generator's CPU) and parses what it prints.
//!
//! `wrk -t1 -cN -dSs --latency URL` prints, among others:
//!
//! ```text
//!   Latency Distribution
//!      50%  325.00us
//!      99%    1.35ms
//!   154894 requests in 2.00s, 19.79MB read
//!   Socket errors: connect 0, read 1, write 0, timeout 3
//!   Non-2xx or 3xx responses: 12
//! Requests/sec:  77314.98
//! Transfer/sec:      9.88MB
//! ```
//!
//! Times carry `us`, `ms`, `s`, `m` or `h`; sizes are binary (`KB` = 1024 B). The
//! two error lines appear only when there are errors.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one wrk run measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WrkResult {
    /// Responses completed.
    pub requests: u64,
    /// The run's length as wrk measured it, in seconds.
    pub seconds: f64,
    /// Bytes read (heads and bodies).
    pub bytes_read: f64,
    pub requests_per_sec: f64,
    /// Bytes per second read.
    pub transfer_per_sec: f64,
    pub p50_us: Option<f64>,
    pub p75_us: Option<f64>,
    pub p90_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// connect, read, write, timeout.
    pub socket_errors: [u64; 4],
    /// Responses with a status of 400 or more.
    pub non_2xx: u64,
    /// CPU time wrk used (user + system), in seconds (`None`: not measured).
    pub cpu_seconds: Option<f64>,
}

impl WrkResult {
    /// Socket errors and error statuses together.
    pub fn errors(&self) -> u64 {
        self.socket_errors.iter().sum::<u64>() + self.non_2xx
    }
}

/// `325.00us`, `1.35ms`, `2.00s`, `1.00m` → microseconds.
pub fn parse_time_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60e6)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600e6)
    } else {
        (s, 1.0)
    };
    num.trim().parse::<f64>().ok().map(|x| x * scale)
}

/// `19.79MB`, `512.00B`, `1.79GB` → bytes (binary units, as wrk prints them).
pub fn parse_bytes(s: &str) -> Option<f64> {
    let s = s.trim();
    let units = [
        ("PB", 1024f64.powi(5)),
        ("TB", 1024f64.powi(4)),
        ("GB", 1024f64.powi(3)),
        ("MB", 1024f64.powi(2)),
        ("KB", 1024.0),
        ("B", 1.0),
    ];
    for (u, scale) in units {
        if let Some(n) = s.strip_suffix(u) {
            return n.trim().parse::<f64>().ok().map(|x| x * scale);
        }
    }
    s.parse().ok()
}

/// Parses wrk's output. Fails if the summary lines are missing.
pub fn parse(out: &str) -> Result<WrkResult, String> {
    let mut r = WrkResult::default();
    let (mut have_count, mut have_rps) = (false, false);
    for line in out.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("Requests/sec:") {
            r.requests_per_sec = rest
                .trim()
                .parse()
                .map_err(|_| format!("bad Requests/sec line {l:?}"))?;
            have_rps = true;
        } else if let Some(rest) = l.strip_prefix("Transfer/sec:") {
            r.transfer_per_sec =
                parse_bytes(rest).ok_or_else(|| format!("bad Transfer/sec line {l:?}"))?;
        } else if let Some(rest) = l.strip_prefix("Socket errors:") {
            for part in rest.split(',') {
                let mut it = part.split_whitespace();
                let (Some(k), Some(v)) = (it.next(), it.next()) else {
                    continue;
                };
                let v: u64 = v.parse().map_err(|_| format!("bad errors line {l:?}"))?;
                match k {
                    "connect" => r.socket_errors[0] = v,
                    "read" => r.socket_errors[1] = v,
                    "write" => r.socket_errors[2] = v,
                    "timeout" => r.socket_errors[3] = v,
                    _ => {}
                }
            }
        } else if let Some(rest) = l.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = rest
                .trim()
                .parse()
                .map_err(|_| format!("bad Non-2xx line {l:?}"))?;
        } else if l.contains(" requests in ") {
            // `154894 requests in 2.00s, 19.79MB read`
            let (n, rest) = l.split_once(" requests in ").unwrap_or_default();
            r.requests = n
                .trim()
                .parse()
                .map_err(|_| format!("bad count line {l:?}"))?;
            let (t, b) = rest.split_once(',').unwrap_or((rest, ""));
            r.seconds = parse_time_us(t).ok_or_else(|| format!("bad time in {l:?}"))? / 1e6;
            r.bytes_read = parse_bytes(b.trim().trim_end_matches("read")).unwrap_or(0.0);
            have_count = true;
        } else if let Some((q, v)) = l.split_once('%') {
            let slot = match q.trim() {
                "50" => &mut r.p50_us,
                "75" => &mut r.p75_us,
                "90" => &mut r.p90_us,
                "99" => &mut r.p99_us,
                _ => continue,
            };
            // Only the distribution's lines: `50%  325.00us` (not `+/- Stdev` columns).
            if let Some(t) = parse_time_us(v) {
                *slot = Some(t);
            }
        }
    }
    if !have_count || !have_rps {
        return Err(format!(
            "wrk printed no summary: {:?}",
            out.chars().take(400).collect::<String>()
        ));
    }
    Ok(r)
}

/// The wrk command line for `url`.
pub fn command_line(cpu: Option<usize>, conns: usize, seconds: u64, url: &str) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(c) = cpu {
        v.extend(["taskset".to_string(), "-c".to_string(), c.to_string()]);
    }
    v.extend([
        "wrk".to_string(),
        "-t1".to_string(),
        format!("-c{conns}"),
        format!("-d{seconds}s"),
        "--timeout".to_string(),
        "5s".to_string(),
        "--latency".to_string(),
        url.to_string(),
    ]);
    v
}

/// CPU time (user + system, seconds) of the children this process has waited for.
fn children_cpu() -> Option<f64> {
    crate::common::os::children_cpu().map(|d| d.as_secs_f64())
}

/// Runs wrk (pinned to `cpu` with taskset when given) and parses its output. wrk
/// stops by itself after `seconds`; a watchdog kills it if it has not exited 15 s
/// later.
pub fn run(cpu: Option<usize>, conns: usize, seconds: u64, url: &str) -> Result<WrkResult, String> {
    let argv = command_line(cpu, conns, seconds, url);
    let cpu0 = children_cpu();
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(seconds + 15);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("wrk did not finish in time (killed it)".into());
            }
            Err(e) => return Err(format!("wrk: {e}")),
        }
    };
    let out = out_t.join().unwrap_or_default();
    let err = err_t.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("wrk exited with {status}: {}", err.trim()));
    }
    // The only child reaped meanwhile is wrk (servers are reaped when stopped).
    let used = children_cpu().zip(cpu0).map(|(b, a)| (b - a).max(0.0));
    let mut r = parse(&out)?;
    r.cpu_seconds = used;
    Ok(r)
}
