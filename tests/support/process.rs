//! Child processes: the example binaries (built on demand) as servers with their
//! ready lines, stderr, RSS and CPU time, and client tools run with a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use readyloop::selector::Backend;

use super::DEADLINE;

/// The path of an example binary of this package, built if needed.
///
/// `cargo test` builds the examples, but `cargo test --test echo` does not, and a
/// binary left over from an older tree would test old code: so this runs
/// `cargo build --example NAME` once per test binary (a no-op when up to date). If
/// cargo cannot be run, an existing binary is used; if there is none, the case fails
/// with instructions.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary in target/<profile>/deps")
        .to_path_buf();
    let path = profile_dir.join("examples").join(name);
    let built = BUILT.get_or_init(|| Mutex::new(Vec::new()));
    let mut built = built.lock().unwrap_or_else(|p| p.into_inner());
    if !built.iter().any(|n| n == name) {
        let profile = profile_dir
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("debug")
            .to_string();
        let target_dir = profile_dir.parent().expect("target dir");
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--example", name])
            .arg("--manifest-path")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir);
        if profile != "debug" {
            cmd.args(["--profile", &profile]);
        }
        match cmd.output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "cargo build --example {name} failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => {
                eprintln!("cannot run {cargo} to build example {name} ({e}); using what exists")
            }
        }
        built.push(name.to_string());
    }
    assert!(
        path.exists(),
        "example binary {} not found: build it with `cargo build --examples` (plain \
         `cargo test` builds it too)",
        path.display()
    );
    path
}

/// A running `echo_server` (or another example) whose stdout ready lines and stderr
/// are collected by reader threads. Dropping it kills the process.
pub struct ServerProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
    stderr_done: mpsc::Receiver<()>,
    backend: Backend,
}

impl ServerProcess {
    /// Starts `echo_server --backend B ARGS...`; with `nofile`, under
    /// `ulimit -n NOFILE` (applied in the child only, through `sh`).
    pub fn echo_server(backend: Backend, args: &[&str], nofile: Option<u32>) -> ServerProcess {
        Self::example_server("echo_server", backend, args, nofile)
    }

    /// Starts the example `name` (`--backend B ARGS...`), as [`echo_server`](Self::echo_server).
    pub fn example_server(
        name: &str,
        backend: Backend,
        args: &[&str],
        nofile: Option<u32>,
    ) -> ServerProcess {
        let bin = example(name);
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.args(["--backend", backend.name()]).args(args);
        ServerProcess::spawn(cmd, backend)
    }

    /// Starts the example `name` with `--backend B ARGS...`.
    pub fn example(name: &str, backend: Backend, args: &[&str]) -> ServerProcess {
        let mut cmd = Command::new(example(name));
        cmd.args(["--backend", backend.name()]).args(args);
        ServerProcess::spawn(cmd, backend)
    }

    /// Spawns `cmd` (with `RUST_LOG=info`, piped output) and starts the readers;
    /// `backend` is what its ready lines name.
    pub fn spawn(mut cmd: Command, backend: Backend) -> ServerProcess {
        cmd.env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let (done_tx, stderr_done) = mpsc::channel();
        thread::spawn(move || {
            let mut r = BufReader::new(err);
            let mut line = String::new();
            while matches!(r.read_line(&mut line), Ok(n) if n > 0) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
            let _ = done_tx.send(());
        });
        ServerProcess {
            child,
            lines,
            stderr,
            stderr_done,
            backend,
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the child wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Everything the child wrote on stderr, once it has closed it (after exit).
    pub fn stderr_to_end(&self) -> String {
        let _ = self.stderr_done.recv_timeout(DEADLINE);
        self.stderr()
    }

    /// Waits for the next `listening on URL (backend B)` line and returns `URL`.
    pub fn ready_url(&mut self) -> String {
        let line = match self.lines.recv_timeout(DEADLINE) {
            Ok(l) => l,
            Err(e) => {
                let status = self.child.try_wait().ok().flatten();
                panic!(
                    "no ready line ({e}); exit status {status:?}; stderr:\n{}",
                    self.stderr()
                )
            }
        };
        let rest = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected stdout line {line:?}"));
        let suffix = format!(" (backend {})", self.backend);
        rest.strip_suffix(&suffix)
            .unwrap_or_else(|| panic!("ready line {line:?} does not end with {suffix:?}"))
            .to_string()
    }

    /// Waits for the TCP ready line and returns the address.
    pub fn tcp_addr(&mut self) -> SocketAddr {
        self.ready_addr("tcp")
    }

    /// Waits for the next ready line, which must be `SCHEME://ADDR`, and returns `ADDR`.
    pub fn ready_addr(&mut self, scheme: &str) -> SocketAddr {
        let url = self.ready_url();
        url.strip_prefix(scheme)
            .and_then(|r| r.strip_prefix("://"))
            .unwrap_or_else(|| panic!("expected {scheme}:// next, got {url}"))
            .parse()
            .unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    /// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
    pub fn status_kib(&self, field: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        s.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
    }

    /// Resident set size now, in bytes.
    pub fn rss(&self) -> u64 {
        self.status_kib("VmRSS") * 1024
    }

    /// Peak resident set size so far, in bytes.
    pub fn peak_rss(&self) -> u64 {
        self.status_kib("VmHWM") * 1024
    }

    /// User plus system CPU time used so far.
    pub fn cpu_time(&self) -> Duration {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("read /proc/PID/stat");
        // Fields after the parenthesised command name start at field 3 (state).
        let rest = &s[s.rfind(')').expect("comm") + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let st = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -TERM failed: {st}");
    }

    /// Waits at most `within` for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        wait_child(&mut self.child, within)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Waits at most `within` for `child` to exit.
pub fn wait_child(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        if start.elapsed() >= within {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// `sysconf(_SC_CLK_TCK)`, through `getconf` (no `unsafe` outside `src/sys`).
fn clock_ticks() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// Runs a command with a deadline, killing it after (the panic names the command and
/// its stderr). `stdin`, if given, is written from a thread; output is read as it
/// comes, so a child writing more than a pipe holds never blocks.
pub fn run_with_deadline(cmd: &mut Command, stdin: Option<&[u8]>, deadline: Duration) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if let Some(data) = stdin {
        let mut w = child.stdin.take().expect("piped stdin");
        let data = data.to_vec();
        thread::spawn(move || {
            let _ = w.write_all(&data);
        });
    }
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish in {deadline:?}; stderr: {}",
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// `curl -sS --max-time 20 ARGS`, `stdin` piped in, within 30 s; fails the case if curl
/// does (its stderr in the message). Gate the case on `have_tool("curl", "curl")`.
pub fn curl(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let out = run_with_deadline(
        Command::new("curl")
            .args(["-sS", "--max-time", "20"])
            .args(args),
        stdin,
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
