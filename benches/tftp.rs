//! TFTP download benchmark: `cargo bench --bench tftp [-- options]`.
//!
//! One run, one client (`atftp`), two servers on the same machine: this crate's TFTP
//! server (a child process: this binary re-executed in the hidden `--serve BACKEND
//! ROOT` mode, configured like `examples/tftp_server.rs`) and tftpd-hpa (`in.tftpd -L
//! -s ROOT -a 127.0.0.1:PORT`, in the foreground; it forks a child per transfer). Each
//! downloads a file (64 MiB by default) to `/dev/null` at blksize 512 and 1428, and
//! with windowsize 16 (RFC 7440, which tftpd-hpa does not implement: it answers
//! without the option and atftp falls back to one block at a time). The server is
//! pinned to CPU 0 and the client to CPU 1 (`taskset`).
//!
//! Reported per case: MiB/s (median of `--reps` runs) and server CPU milliseconds per
//! MiB: `perf stat -e task-clock` around a fresh server per case (it counts forked
//! children, so tftpd-hpa's per-transfer processes are included), divided by the MiB
//! downloaded; it includes one server start and stop (a few ms). Targets (issue
//! 11): our CPU per MiB at most tftpd-hpa's at equal options; our windowsize-16
//! throughput at least 3x tftpd-hpa's best.
//!
//! Options: `--size MIB` (default 64), `--reps N` (default 3), `--backend B` (default
//! epoll), `--quick` (8 MiB, 1 rep: a smoke run). Without `--bench` (as `cargo test
//! --benches` runs it) it only prints this usage.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use readyloop::net::Listen;
use readyloop::proto::tftp::{TftpConfig, TftpServer};
use readyloop::reactor::Reactor;
use readyloop::selector::Backend;

#[path = "lab/env.rs"]
mod env;

const USAGE: &str =
    "usage: cargo bench --bench tftp -- [--size MIB] [--reps N] [--backend B] [--quick]
  needs atftp, in.tftpd (tftpd-hpa), taskset and perf";

struct Opts {
    size_mib: u64,
    reps: usize,
    backend: Backend,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        serve(&args[1..]);
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("{USAGE}");
        return;
    }
    let mut o = Opts {
        size_mib: 64,
        reps: 3,
        backend: Backend::Epoll,
    };
    let mut it = args.iter().filter(|a| *a != "--bench");
    while let Some(a) = it.next() {
        let mut val = |what: &str| -> String {
            it.next()
                .cloned()
                .unwrap_or_else(|| fail(&format!("{a} needs {what}")))
        };
        match a.as_str() {
            "--size" => o.size_mib = val("MIB").parse().unwrap_or_else(|_| fail("bad --size")),
            "--reps" => o.reps = val("N").parse().unwrap_or_else(|_| fail("bad --reps")),
            "--backend" => o.backend = val("B").parse().unwrap_or_else(|_| fail("bad --backend")),
            "--quick" => {
                o.size_mib = 8;
                o.reps = 1;
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return;
            }
            other => fail(&format!("unknown option {other}\n{USAGE}")),
        }
    }
    run(&o);
}

fn fail(msg: &str) -> ! {
    eprintln!("tftp bench: {msg}");
    std::process::exit(2);
}

/// The child mode: our server on 127.0.0.1:0, a ready line, run until killed.
fn serve(args: &[String]) {
    let (Some(backend), Some(root)) = (args.first(), args.get(1)) else {
        fail("--serve BACKEND ROOT");
    };
    let backend: Backend = backend.parse().unwrap_or_else(|_| fail("bad backend"));
    let server = TftpServer::new(TftpConfig::new(root)).unwrap_or_else(|e| fail(&e.to_string()));
    let mut reactor = Reactor::new(backend).unwrap_or_else(|e| fail(&e.to_string()));
    let (_, addr) = reactor
        .bind_udp("127.0.0.1:0", server)
        .unwrap_or_else(|e| fail(&e.to_string()));
    println!("listening on tftp://{addr}");
    if let Err(e) = reactor.run() {
        fail(&e.to_string());
    }
}

/// A server under `perf stat -e task-clock` (which counts its forked children too).
struct Server {
    name: &'static str,
    perf: Child,
    perf_out: PathBuf,
    addr: SocketAddr,
}

/// `perf stat -x, -e task-clock -o OUT -- taskset -c 0 ARGS...`.
fn under_perf(out: &Path, args: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = Command::new("perf");
    cmd.args(["stat", "-x,", "-e", "task-clock", "-o"])
        .arg(out)
        .args(["--", "taskset", "-c", "0"])
        .args(args);
    cmd
}

impl Server {
    /// Stops the server (SIGTERM to perf's child) and returns its CPU time.
    fn stop(mut self) -> Duration {
        let me = self.perf.id();
        let children =
            std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")).unwrap_or_default();
        for pid in children.split_whitespace() {
            let _ = Command::new("kill").args(["-TERM", pid]).status();
        }
        let _ = self.perf.wait();
        let text = std::fs::read_to_string(&self.perf_out).unwrap_or_default();
        let msec = text
            .lines()
            .find(|l| l.contains("task-clock"))
            .and_then(|l| l.split(',').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| fail(&format!("no task-clock in perf output: {text}")));
        Duration::from_secs_f64(msec / 1000.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.perf.try_wait(), Ok(None)) {
            let me = self.perf.id();
            let children = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children"))
                .unwrap_or_default();
            for pid in children.split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
            let _ = self.perf.wait();
        }
    }
}

fn ours(backend: Backend, root: &Path, perf_out: &Path) -> Server {
    let exe = std::env::current_exe().expect("current_exe");
    let mut perf = under_perf(
        perf_out,
        &[
            exe.as_os_str(),
            "--serve".as_ref(),
            backend.name().as_ref(),
            root.as_os_str(),
        ],
    )
    .stdout(Stdio::piped())
    // perf reports the server's end by SIGTERM there: noise.
    .stderr(Stdio::null())
    .spawn()
    .unwrap_or_else(|e| fail(&format!("spawn our server: {e}")));
    let mut line = String::new();
    let out = perf.stdout.take().expect("stdout");
    BufReader::new(out)
        .read_line(&mut line)
        .unwrap_or_else(|e| fail(&format!("ready line: {e}")));
    let addr = line
        .trim()
        .strip_prefix("listening on tftp://")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| fail(&format!("unexpected ready line {line:?}")));
    Server {
        name: "readyloop",
        perf,
        perf_out: perf_out.to_path_buf(),
        addr,
    }
}

fn tftpd_hpa(root: &Path, perf_out: &Path) -> Server {
    // A free port (released just before tftpd binds it).
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| fail(&e.to_string()));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let a = addr.to_string();
    let perf = under_perf(
        perf_out,
        &[
            "in.tftpd".as_ref(),
            "-L".as_ref(),
            "-s".as_ref(),
            root.as_os_str(),
            "-a".as_ref(),
            a.as_ref(),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap_or_else(|e| fail(&format!("spawn in.tftpd: {e}")));
    std::thread::sleep(Duration::from_millis(300));
    Server {
        name: "tftpd-hpa",
        perf,
        perf_out: perf_out.to_path_buf(),
        addr,
    }
}

/// One download; returns how long it took.
fn download(s: &Server, opts: &[&str]) -> Duration {
    let start = Instant::now();
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "1", "atftp", "-g", "-r", "file", "-l", "/dev/null"]);
    for o in opts {
        cmd.args(["--option", o]);
    }
    let out = cmd
        .arg("127.0.0.1")
        .arg(s.addr.port().to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| fail(&format!("run atftp: {e}")));
    let took = start.elapsed();
    if !out.status.success() {
        fail(&format!(
            "atftp against {} {opts:?}: {}\n{}",
            s.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    took
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn run(o: &Opts) {
    for tool in ["atftp", "in.tftpd", "taskset", "perf"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            fail(&format!("{tool} not found\n{USAGE}"));
        }
    }
    let root: PathBuf = env::out_dir(None).join("tftp-root");
    std::fs::create_dir_all(&root).unwrap_or_else(|e| fail(&e.to_string()));
    let size = o.size_mib << 20;
    let file = root.join("file");
    if std::fs::metadata(&file).map(|m| m.len()).ok() != Some(size) {
        let mut data = vec![0u8; size as usize];
        let mut x: u32 = 0x9e37_79b9;
        for b in data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = (x >> 24) as u8;
        }
        std::fs::write(&file, data).unwrap_or_else(|e| fail(&e.to_string()));
    }
    // tftpd-hpa drops to user `tftp` (or nobody) after its chroot.
    let _ = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&root)
        .status();
    println!(
        "# TFTP download, {} MiB, {} reps, {}",
        o.size_mib,
        o.reps,
        env::machine_info()
    );
    println!(
        "server pinned to CPU 0, atftp to CPU 1; our backend {}\n",
        o.backend
    );
    println!("| server | options | MiB/s | server CPU ms/MiB |");
    println!("|---|---|---:|---:|");
    let cases: [(&str, &[&str]); 4] = [
        ("blksize 512", &["blksize 512"]),
        ("blksize 1428", &["blksize 1428"]),
        (
            "blksize 512, windowsize 16",
            &["blksize 512", "windowsize 16"],
        ),
        (
            "blksize 1428, windowsize 16",
            &["blksize 1428", "windowsize 16"],
        ),
    ];
    let mib = o.size_mib as f64;
    let perf_out = env::out_dir(None).join("tftp-perf.txt");
    // Servers alternate within each case (the machine's load drifts; alternating
    // spreads the drift over both), rows are printed per server afterwards.
    let mut rows: Vec<(&str, String)> = Vec::new();
    for (label, opts) in &cases {
        for server in ["readyloop", "tftpd-hpa"] {
            // A fresh server per case, so perf's count covers this case's transfers
            // (and one start-up and shutdown, a few milliseconds).
            let s = match server {
                "readyloop" => ours(o.backend, &root, &perf_out),
                _ => tftpd_hpa(&root, &perf_out),
            };
            let mut rates = Vec::new();
            for _ in 0..o.reps {
                let t = download(&s, opts);
                rates.push(mib / t.as_secs_f64());
            }
            let name = s.name;
            let cpu = s.stop();
            rows.push((
                name,
                format!(
                    "| {name} | {label} | {:.1} | {:.2} |",
                    median(rates),
                    cpu.as_secs_f64() * 1000.0 / (mib * o.reps as f64)
                ),
            ));
        }
    }
    for server in ["readyloop", "tftpd-hpa"] {
        for (_, row) in rows.iter().filter(|(n, _)| *n == server) {
            println!("{row}");
        }
    }
}
