//! The `http` workload (issue 4's comparison): this crate's HTTP server on each
//! backend against nginx with one worker, same content, loaded by `wrk`.
//!
//! Sub-workloads, named in the results: `http-plaintext` (`GET /plaintext`, 13 bytes),
//! `http-small` (the same 13 bytes as a static file), `http-1k` (a 1 KiB static file) and `http-1m` (a 1 MiB static file), all over
//! keep-alive connections. The content is generated once per lab run in a temporary
//! directory that both kinds of server serve.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use readyloop::sys::stats::Counts;

use crate::client::{Client, Reply};
use crate::common::procfs::{cpu_ns, CpuMark};
use crate::common::server::Running;
use crate::nginx;
use crate::servers::{self, NGINX};
use crate::wrk::{self, WrkResult};

/// A sub-workload: its result name, the path requested, and the body size.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub workload: &'static str,
    pub path: &'static str,
    pub body_len: usize,
}

pub const PLAINTEXT: &[u8] = b"Hello, World!";

/// The three sub-workloads, in table order.
pub const TARGETS: [Target; 4] = [
    Target {
        workload: "http-plaintext",
        path: "/plaintext",
        body_len: PLAINTEXT.len(),
    },
    // The same 13 bytes as a static file (issue 14: what the file path costs above
    // the plaintext route).
    Target {
        workload: "http-small",
        path: "/small.txt",
        body_len: PLAINTEXT.len(),
    },
    Target {
        workload: "http-1k",
        path: "/1k.bin",
        body_len: 1024,
    },
    Target {
        workload: "http-1m",
        path: "/1m.bin",
        body_len: 1 << 20,
    },
];

/// The temporary directory of one lab run: `root/` with the content, and nginx's
/// directories beside it. Removed on drop.
pub struct Site {
    pub dir: PathBuf,
    pub root: PathBuf,
}

impl Site {
    /// Creates the directory and the content (deterministic bytes).
    pub fn create() -> io::Result<Site> {
        Self::create_named("http")
    }

    /// The same in a directory of its own, told apart by `name`.
    pub fn create_named(name: &str) -> io::Result<Site> {
        let dir = std::env::temp_dir().join(format!("readyloop-lab-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let root = dir.join("root");
        fs::create_dir_all(&root)?;
        fs::write(root.join("small.txt"), PLAINTEXT)?;
        for t in &TARGETS[2..] {
            let body: Vec<u8> = (0..t.body_len).map(|i| b'a' + (i % 26) as u8).collect();
            fs::write(root.join(t.path.trim_start_matches('/')), body)?;
        }
        fs::write(
            root.join("index.html"),
            "<!doctype html><title>lab</title><p>readyloop lab content</p>\n",
        )?;
        Ok(Site { dir, root })
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Checks one response of `t` (status, size, and the content of the file ones).
pub fn check_reply(t: &Target, r: &Reply) -> Result<(), String> {
    if r.status != 200 {
        return Err(format!("{}: status {}", t.path, r.status));
    }
    if r.body.len() != t.body_len {
        return Err(format!(
            "{}: {} body bytes, not {}",
            t.path,
            r.body.len(),
            t.body_len
        ));
    }
    let ok = if t.body_len == PLAINTEXT.len() {
        r.body == PLAINTEXT
    } else {
        r.body
            .iter()
            .enumerate()
            .all(|(i, &b)| b == b'a' + (i % 26) as u8)
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{}: wrong content", t.path))
    }
}

/// Warms a server up on one keep-alive connection and checks what it serves: at
/// most `max` requests and `time`; at least one.
pub fn warm(addr: SocketAddr, t: &Target, max: u64, time: Duration) -> Result<u64, String> {
    let e = |e: io::Error| format!("warm-up {}: {e}", t.path);
    let mut c = Client::connect(addr).map_err(e)?;
    let start = Instant::now();
    let mut n = 0;
    while n == 0 || (n < max && start.elapsed() < time) {
        let r = c.get(t.path).map_err(e)?;
        check_reply(t, &r)?;
        n += 1;
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------
// The contenders.

/// A running HTTP contender: this crate's server in a lab child process (counts
/// its syscalls) or nginx.
pub type Server = Running;

/// Starts HTTP contender `name` serving `site`, pinned to `cpu` if given.
///
/// # Errors
/// nginx not installed, a start that failed, or a contender that does not serve HTTP.
pub fn start(
    name: &str,
    site: &Site,
    cpu: Option<usize>,
    nginx_bin: Option<&Path>,
) -> Result<Server, String> {
    if name == NGINX {
        let bin = nginx_bin.ok_or("nginx: not installed")?;
        Ok(Running::Outside(nginx::start(
            bin, &site.dir, &site.root, cpu,
        )?))
    } else if servers::is_crate(name) {
        let p = servers::spawn_http(name, cpu, &site.root).map_err(|e| e.to_string())?;
        Ok(Running::Ours(p))
    } else {
        Err(format!("{name} does not serve HTTP"))
    }
}

/// An `io::Error` as the lab's `String` errors.
pub fn text(e: io::Error) -> String {
    e.to_string()
}

/// The settings of one measurement.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    pub server_cpu: Option<usize>,
    pub load_cpu: Option<usize>,
    pub conns: usize,
    pub seconds: u64,
    pub warmup: Duration,
}

/// What [`measure`] returns: wrk's result, the server's syscall counts and CPU ns
/// over the wrk run, and its CPU µs per request at the fixed offered load.
pub type Measured = (WrkResult, Option<Counts>, Option<u64>, Option<f64>);

/// One measurement: start `name`, warm it up (checking its answers), count its
/// syscalls and CPU time over one wrk run; with `fixed` (requests/s), then the
/// server's CPU µs per request over an open-loop phase at that offered load (as long
/// as the wrk run, same connections); stop it.
pub fn measure(
    name: &str,
    t: &Target,
    site: &Site,
    nginx_bin: Option<&Path>,
    run: &Run,
    fixed: Option<f64>,
) -> Result<Measured, String> {
    let mut srv = start(name, site, run.server_cpu, nginx_bin)?;
    let url = format!("http://{}{}", srv.addr(), t.path);
    warm(srv.addr(), t, 20_000, run.warmup)?;
    srv.stats_on().map_err(text)?;
    let cpu0 = cpu_ns(srv.pid());
    let r = wrk::run(run.load_cpu, run.conns, run.seconds, &url);
    let cpu = cpu_ns(srv.pid())
        .zip(cpu0)
        .map(|(b, a)| b.saturating_sub(a));
    let counts = srv.stats_off().map_err(text)?;
    let fixed_cpu = match fixed {
        Some(rate) => Some(fixed_load_cpu(&srv, t, run, rate)?),
        None => None,
    };
    srv.stop().map_err(text)?;
    let r = r?;
    if r.requests == 0 {
        return Err(format!("no request completed ({} errors)", r.errors()));
    }
    if r.non_2xx > 0 {
        return Err(format!("{} responses with an error status", r.non_2xx));
    }
    Ok((r, counts, cpu, fixed_cpu.flatten()))
}

/// The server's CPU µs per request while offered `rate` requests/s of `t` (open
/// loop, `run.conns` connections, `run.seconds`); `None` if its CPU time is not
/// readable.
fn fixed_load_cpu(srv: &Server, t: &Target, run: &Run, rate: f64) -> Result<Option<f64>, String> {
    let e = |e: io::Error| format!("fixed load: {e}");
    let mut ol = crate::loadgen::OpenLoop::connect(
        srv.addr(),
        run.conns,
        crate::loadgen::Request::http_get(t.path),
    )
    .map_err(e)?;
    let c0 = CpuMark::take(srv.pid());
    let r = ol
        .run(
            Some(rate),
            crate::loadgen::Bounds {
                max_ops: u64::MAX,
                duration: Duration::from_secs(run.seconds),
            },
        )
        .map_err(e)?;
    let cpu = c0.and_then(|m| m.since(srv.pid()));
    if r.phase.ops == 0 {
        return Err(format!(
            "fixed load: no request completed ({} errors)",
            r.phase.errors
        ));
    }
    Ok(cpu.map(|ns| ns as f64 / 1e3 / r.phase.ops as f64))
}

/// nginx's syscalls per request from `strace -c -f -p` over one wrk run (slowed down
/// by strace, so the run's throughput is thrown away). Returns (total, per name).
pub fn nginx_strace(
    t: &Target,
    site: &Site,
    nginx_bin: &Path,
    run: &Run,
) -> Result<(f64, Vec<(String, f64)>), String> {
    let ng = nginx::start(nginx_bin, &site.dir, &site.root, run.server_cpu)?;
    let url = format!("http://{}{}", ng.addr, t.path);
    warm(ng.addr, t, 20_000, run.warmup)?;
    let out = site.dir.join(format!("strace-{}.txt", t.workload));
    let (calls, r) = crate::strace::strace_counts(ng.pid(), &out, || {
        wrk::run(run.load_cpu, run.conns, run.seconds, &url)
    })?;
    ng.stop().map_err(text)?;
    if r.requests == 0 {
        return Err("no request completed under strace".into());
    }
    let n = r.requests as f64;
    let total = calls.get("total").copied().unwrap_or(0) as f64 / n;
    let mut per: Vec<(String, f64)> = calls
        .iter()
        .filter(|(k, _)| *k != "total")
        .map(|(k, v)| (k.clone(), *v as f64 / n))
        .filter(|(_, v)| *v >= 0.005)
        .collect();
    per.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok((total, per))
}
