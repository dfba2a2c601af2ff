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

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use readyloop::net::Listen;
use readyloop::proto::tftp::{TftpConfig, TftpServer};
use readyloop::selector::Backend;

#[path = "common/mod.rs"]
mod common;

use common::child::{self, Ending};
use common::server::{Daemon, Running, ServerProc};
use common::{env, os, table, tools};

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

/// The child mode: our server on 127.0.0.1:0, then the benches' control protocol.
fn serve(args: &[String]) {
    let (Some(backend), Some(root)) = (args.first(), args.get(1)) else {
        fail("--serve BACKEND ROOT");
    };
    let backend: Backend = backend.parse().unwrap_or_else(|_| fail("bad backend"));
    let root = PathBuf::from(root);
    child::serve_reactor(
        "tftp bench server",
        backend,
        Ending::Stop,
        false,
        move |r| {
            let server = TftpServer::new(TftpConfig::new(root))?;
            Ok(vec![r.bind_udp("127.0.0.1:0", server)?.1])
        },
    )
}

/// `perf stat -x, -e task-clock -o OUT -- taskset -c 0`: the wrapper of both servers
/// (it counts forked children too).
fn perf_wrapper(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = ["perf", "stat", "-x,", "-e", "task-clock", "-o"]
        .map(String::from)
        .to_vec();
    v.push(out.display().to_string());
    v.extend(["--", "taskset", "-c", "0"].map(String::from));
    v
}

/// A server under `perf stat`, and where perf writes.
struct Server {
    name: &'static str,
    run: Running,
    perf_out: PathBuf,
}

impl Server {
    /// Stops the server (perf reports when it exits) and returns its CPU time.
    fn stop(self) -> Duration {
        if let Err(e) = self.run.stop() {
            // tftpd-hpa ends by SIGTERM, which perf passes on as its status.
            if self.name != "tftpd-hpa" {
                fail(&e.to_string());
            }
        }
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

fn ours(backend: Backend, root: &Path, perf_out: &Path) -> Server {
    let args = [backend.name().into(), root.as_os_str().to_owned()];
    let p = ServerProc::start("readyloop", &perf_wrapper(perf_out), &args, &[])
        .unwrap_or_else(|e| fail(&format!("start our server: {e}")));
    Server {
        name: "readyloop",
        run: Running::Ours(p),
        perf_out: perf_out.to_path_buf(),
    }
}

fn tftpd_hpa(root: &Path, perf_out: &Path) -> Server {
    // A free port (released just before tftpd binds it).
    let port = os::free_udp_port().unwrap_or_else(|e| fail(&e.to_string()));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let w = perf_wrapper(perf_out);
    let child = Command::new(&w[0])
        .args(&w[1..])
        .args(["in.tftpd", "-L", "-s"])
        .arg(root)
        .arg("-a")
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| fail(&format!("spawn in.tftpd: {e}")));
    std::thread::sleep(Duration::from_millis(300));
    Server {
        name: "tftpd-hpa",
        run: Running::Outside(Daemon::new("tftpd-hpa", child, addr, None, Vec::new()).wrapped()),
        perf_out: perf_out.to_path_buf(),
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
        .arg(s.run.addr().port().to_string())
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

fn run(o: &Opts) {
    for tool in ["atftp", "in.tftpd", "taskset", "perf"] {
        if tools::which(tool).is_none() {
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
                    table::median(&rates).unwrap_or(0.0),
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
