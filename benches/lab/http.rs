//! The `http` workload (issue 4's comparison): this crate's HTTP server on each
//! backend against nginx with one worker, same content, loaded by `wrk`.
//!
//! Sub-workloads, named in the results: `http-plaintext` (`GET /plaintext`, 13 bytes),
//! `http-small` (the same 13 bytes as a static file), `http-1k` (a 1 KiB static file) and `http-1m` (a 1 MiB static file), all over
//! keep-alive connections. The content is generated once per lab run in a temporary
//! directory that both kinds of server serve.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use readyloop::sys::stats::Counts;

use crate::nginx::Nginx;
use crate::servers::{self, ServerProc, NGINX};
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

// ---------------------------------------------------------------------------------
// A minimal blocking HTTP/1.1 client: readiness checks, warm-up, self-test.

/// One response as the client saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub server: String,
    pub body: Vec<u8>,
}

/// A keep-alive connection.
pub struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        s.set_nodelay(true)?;
        Ok(Client {
            s,
            buf: Vec::with_capacity(8192),
        })
    }

    /// `GET path`, reading the whole response (`Content-Length` framing only).
    pub fn get(&mut self, path: &str) -> io::Result<Reply> {
        write!(self.s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
        let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
        let mut chunk = [0u8; 16 * 1024];
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > 64 * 1024 {
                return Err(bad("response head too long"));
            }
            let n = self.s.read(&mut chunk)?;
            if n == 0 {
                return Err(bad("connection closed before a response"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|_| bad("head not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let (mut len, mut server) = (None, String::new());
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse::<usize>().ok();
                } else if k.eq_ignore_ascii_case("server") {
                    server = v.trim().to_string();
                }
            }
        }
        let len = len.ok_or_else(|| bad("no Content-Length"))?;
        self.buf.drain(..head_end);
        while self.buf.len() < len {
            let n = self.s.read(&mut chunk)?;
            if n == 0 {
                return Err(bad("connection closed in a body"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let body: Vec<u8> = self.buf.drain(..len).collect();
        Ok(Reply {
            status,
            server,
            body,
        })
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

/// A running HTTP contender.
pub enum Server {
    /// This crate's server in a lab child process (counts its syscalls).
    Crate(ServerProc),
    Nginx(Nginx),
}

impl Server {
    pub fn start(
        name: &str,
        site: &Site,
        cpu: Option<usize>,
        nginx_bin: Option<&Path>,
    ) -> Result<Server, String> {
        if name == NGINX {
            let bin = nginx_bin.ok_or("nginx: not installed")?;
            Ok(Server::Nginx(Nginx::start(
                bin, &site.dir, &site.root, cpu,
            )?))
        } else if servers::is_crate(name) {
            let p = ServerProc::spawn_http(name, cpu, &site.root)
                .map_err(|e| format!("{name}: {e}"))?;
            Ok(Server::Crate(p))
        } else {
            Err(format!("{name} does not serve HTTP"))
        }
    }

    pub fn addr(&self) -> SocketAddr {
        match self {
            Server::Crate(p) => p.addr,
            Server::Nginx(n) => n.addr,
        }
    }

    pub fn pid(&self) -> u32 {
        match self {
            Server::Crate(p) => p.pid(),
            Server::Nginx(n) => n.pid(),
        }
    }

    pub fn stats_on(&mut self) -> Result<(), String> {
        match self {
            Server::Crate(p) => p.stats_on().map_err(|e| e.to_string()),
            Server::Nginx(_) => Ok(()),
        }
    }

    pub fn stats_off(&mut self) -> Result<Option<Counts>, String> {
        match self {
            Server::Crate(p) => p.stats_off().map_err(|e| e.to_string()),
            Server::Nginx(_) => Ok(None),
        }
    }

    pub fn stop(self) -> Result<(), String> {
        match self {
            Server::Crate(p) => p.stop().map_err(|e| e.to_string()),
            Server::Nginx(n) => n.stop(),
        }
    }
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

/// CPU time (ns) that process `pid` has run, all its threads together
/// (`/proc/PID/task/*/schedstat`, first field); `None` where not readable.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0;
    for t in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let s = fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?;
        total += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// CPU time (ns) of process `pid` from `/proc/PID/stat` (utime + stime, clock ticks):
/// coarse (10 ms a tick), but it keeps the time of threads that have exited, which
/// `/proc/PID/task` forgets (a thread-per-connection server under churn).
pub fn stat_cpu_ns(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let hz = readyloop::sys::process::clock_ticks_per_sec().max(1);
    Some(ticks * 1_000_000_000 / hz)
}

/// The CPU time (ns) of each thread of a process at one moment
/// (`/proc/PID/task/TID/schedstat`), so that the time spent between two marks can be
/// summed over the threads alive at the second one: a thread that exits in between
/// (thread-per-connection servers) no longer makes the difference negative.
pub struct CpuMark(std::collections::BTreeMap<String, u64>);

impl CpuMark {
    /// The threads of `pid` now (`None` where not readable).
    pub fn take(pid: u32) -> Option<CpuMark> {
        let mut m = std::collections::BTreeMap::new();
        for t in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
            let t = t.ok()?;
            // A thread may exit between the listing and the read: skip it.
            let Ok(s) = fs::read_to_string(t.path().join("schedstat")) else {
                continue;
            };
            let ns = s.split_whitespace().next()?.parse::<u64>().ok()?;
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
    let mut srv = Server::start(name, site, run.server_cpu, nginx_bin)?;
    let url = format!("http://{}{}", srv.addr(), t.path);
    warm(srv.addr(), t, 20_000, run.warmup)?;
    srv.stats_on()?;
    let cpu0 = cpu_ns(srv.pid());
    let r = wrk::run(run.load_cpu, run.conns, run.seconds, &url);
    let cpu = cpu_ns(srv.pid())
        .zip(cpu0)
        .map(|(b, a)| b.saturating_sub(a));
    let counts = srv.stats_off()?;
    let fixed_cpu = match fixed {
        Some(rate) => Some(fixed_load_cpu(&srv, t, run, rate)?),
        None => None,
    };
    srv.stop()?;
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
    let ng = Nginx::start(nginx_bin, &site.dir, &site.root, run.server_cpu)?;
    let url = format!("http://{}{}", ng.addr, t.path);
    warm(ng.addr, t, 20_000, run.warmup)?;
    let out = site.dir.join(format!("strace-{}.txt", t.workload));
    let (calls, r) = crate::strace::strace_counts(ng.pid(), &out, || {
        wrk::run(run.load_cpu, run.conns, run.seconds, &url)
    })?;
    ng.stop()?;
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
