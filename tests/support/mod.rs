//! Helpers shared by the integration suites (`tests/echo.rs`, `tests/reactor.rs`).
//!
//! * [`per_backend!`]: instantiates a list of cases once per backend, one module per
//!   backend (`epoll_et::tcp_echo_messages`), as the selector conformance suite does.
//! * [`LoopThread`]: a reactor running in this process on a background thread, with a
//!   bounded wait for `run()` to return.
//! * [`ServerProcess`]: the `echo_server` example as a child process: ready lines,
//!   stderr, RSS and CPU time from `/proc`, SIGTERM.
//! * A deterministic byte pattern for bulk transfers, checked with `memcmp`-sized slices.
//!
//! Every wait is bounded: sockets get read and write timeouts, loops get deadlines.
#![allow(dead_code)]

#[macro_use]
mod per_backend;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use readyloop::reactor::{Config, Ctx, Handle, Reactor};
use readyloop::selector::Backend;

/// How long any "eventually" loop may take before the case fails.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// Read and write timeout of every client socket.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Logs of the in-process reactor go to the test's captured output (`RUST_LOG`).
pub fn init_logging() {
    let _ = env_logger::builder().is_test(true).try_init();
}

/// Polls `f` until it returns `Some`, for at most `within`; panics with `what` after.
pub fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < within,
            "timed out after {within:?}: {what}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------
// Byte pattern
// ---------------------------------------------------------------------------------

/// The pattern repeats every `PERIOD` bytes: a prime, so it never lines up with
/// buffer sizes and a dropped, duplicated or reordered chunk shows.
const PERIOD: usize = 65_521;
/// Largest slice [`pattern_at`] hands out.
pub const CHUNK: usize = 32 * 1024;

fn pattern() -> &'static [u8] {
    static P: OnceLock<Vec<u8>> = OnceLock::new();
    P.get_or_init(|| {
        // xorshift32, twice the period so any window of CHUNK bytes is contiguous.
        let mut x: u32 = 0x9e37_79b9;
        let one: Vec<u8> = (0..PERIOD)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        [one.as_slice(), one.as_slice()].concat()
    })
}

/// The pattern bytes at stream offset `offset`, `len <= CHUNK` of them.
pub fn pattern_at(offset: u64, len: usize) -> &'static [u8] {
    assert!(len <= CHUNK);
    let start = (offset % PERIOD as u64) as usize;
    &pattern()[start..start + len]
}

/// Writes `total` pattern bytes.
pub fn send_pattern(w: &mut impl Write, total: u64) -> io::Result<()> {
    let mut sent = 0u64;
    while sent < total {
        let n = (total - sent).min(CHUNK as u64) as usize;
        w.write_all(pattern_at(sent, n))?;
        sent += n as u64;
    }
    Ok(())
}

/// Reads pattern bytes as they come, checking each one, until EOF or an error.
/// Returns how many arrived (all of them checked) and how the stream ended.
pub fn check_pattern_until_eof(r: &mut impl Read) -> (u64, io::Result<()>) {
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return (got, Ok(())),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return (got, Err(e)),
        };
        if buf[..n] != *pattern_at(got, n) {
            let bad = (0..n)
                .find(|&i| buf[i] != pattern_at(got + i as u64, 1)[0])
                .unwrap_or(0);
            return (
                got,
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("pattern mismatch at stream offset {}", got + bad as u64),
                )),
            );
        }
        got += n as u64;
    }
}

/// Reads exactly `total` pattern bytes then expects EOF.
pub fn expect_pattern_then_eof(r: &mut impl Read, total: u64) {
    let (got, end) = check_pattern_until_eof(r);
    if let Err(e) = end {
        panic!("after {got} of {total} bytes: {e}");
    }
    assert_eq!(got, total, "bytes echoed before EOF");
}

// ---------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------

/// A TCP client with read and write timeouts and `TCP_NODELAY`.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    timeouts(&s);
    s.set_nodelay(true).unwrap();
    s
}

/// Sets [`IO_TIMEOUT`] on both directions.
pub fn timeouts(s: &TcpStream) {
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
}

/// Writes `msg` and reads back exactly as many bytes.
pub fn round_trip(s: &mut (impl Read + Write), msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).expect("write");
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).expect("read the echo");
    back
}

/// One attempt at an echo from a new client: connect (1 s), write `msg`, read as many
/// bytes back (500 ms). `None` on any failure, for [`eventually`] loops that wait for a
/// server to take clients again.
pub fn try_echo(addr: SocketAddr, msg: &[u8]) -> Option<Vec<u8>> {
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    c.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    c.write_all(msg).ok()?;
    let mut buf = vec![0u8; msg.len()];
    c.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// Reads until EOF (bounded by the socket's read timeout).
pub fn read_to_eof(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

/// Bytes as text, invalid UTF-8 replaced (for messages and `contains` checks).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Whether an error is what a blocking socket with a timeout returns on timeout.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Writes pattern bytes until the peer stops taking them (a write blocks for
/// `stall`) or `limit` bytes are sent. Returns the bytes sent and whether it stalled.
pub fn send_until_blocked(s: &mut TcpStream, stall: Duration, limit: u64) -> (u64, bool) {
    s.set_write_timeout(Some(stall)).unwrap();
    let mut sent = 0u64;
    let stalled = loop {
        if sent >= limit {
            break false;
        }
        let n = (limit - sent).min(CHUNK as u64) as usize;
        match s.write(pattern_at(sent, n)) {
            Ok(0) => panic!("write returned 0"),
            Ok(n) => sent += n as u64,
            Err(e) if is_timeout(&e) => break true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("write after {sent} bytes: {e}"),
        }
    };
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    (sent, stalled)
}

/// A Unix socket path in the temp dir, unique in this run; any stale file is removed.
pub fn temp_socket_path(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("readyloop-{}-{tag}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

// ---------------------------------------------------------------------------------
// A reactor on a background thread
// ---------------------------------------------------------------------------------

/// A reactor running `run()` on its own thread. Dropping it stops the loop.
pub struct LoopThread {
    /// The reactor's cross-thread handle.
    pub handle: Handle,
    done: mpsc::Receiver<io::Result<()>>,
    thread: Option<JoinHandle<()>>,
    result: Option<io::Result<()>>,
}

/// Builds a reactor on `backend` in a new thread, runs `setup` on it (listeners...),
/// hands `setup`'s result back, and runs the loop.
pub fn spawn_loop<T: Send + 'static>(
    backend: Backend,
    config: Config,
    setup: impl FnOnce(&mut Reactor) -> T + Send + 'static,
) -> (LoopThread, T) {
    init_logging();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    let thread = thread::Builder::new()
        .name(format!("reactor-{backend}"))
        .spawn(move || {
            let mut reactor = Reactor::with_config(backend, config)
                .unwrap_or_else(|e| panic!("reactor on {backend}: {e}"));
            let t = setup(&mut reactor);
            let _ = ready_tx.send((reactor.handle(), t));
            let r = reactor.run();
            drop(reactor);
            let _ = done_tx.send(r);
        })
        .unwrap();
    let (handle, t) = ready_rx
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|e| panic!("{backend}: reactor set-up failed: {e}"));
    (
        LoopThread {
            handle,
            done,
            thread: Some(thread),
            result: None,
        },
        t,
    )
}

impl LoopThread {
    /// Runs `f` on the loop and returns its result (bounded wait).
    pub fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut Ctx<'_>) -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::channel();
        self.handle
            .call(move |ctx| {
                let _ = tx.send(f(ctx));
            })
            .expect("handle.call");
        rx.recv_timeout(DEADLINE)
            .expect("the loop ran the call within the deadline")
    }

    /// Waits (at most `within`) for `run()` to return, and returns its result.
    pub fn join(&mut self, within: Duration) -> io::Result<()> {
        if let Some(r) = self.result.take() {
            return r;
        }
        let r = self
            .done
            .recv_timeout(within)
            .unwrap_or_else(|e| panic!("run() did not return within {within:?}: {e}"));
        if let Some(t) = self.thread.take() {
            t.join().expect("reactor thread panicked");
        }
        r
    }

    /// Whether `run()` has returned (without waiting).
    pub fn finished(&mut self) -> bool {
        if self.thread.is_none() || self.result.is_some() {
            return true;
        }
        match self.done.try_recv() {
            Ok(r) => {
                self.result = Some(r);
                true
            }
            Err(_) => false,
        }
    }

    /// `handle.stop()`, then waits for `run()` to return (a loop that already ended
    /// and dropped its reactor answers `NotConnected`: then only the join is left).
    pub fn stop(mut self) -> io::Result<()> {
        if let Err(e) = self.handle.stop() {
            assert_eq!(e.kind(), io::ErrorKind::NotConnected, "handle.stop: {e}");
        }
        self.join(DEADLINE)
    }
}

impl Drop for LoopThread {
    fn drop(&mut self) {
        if self.thread.is_some() && self.result.is_none() {
            let _ = self.handle.stop();
            if self.done.recv_timeout(Duration::from_secs(5)).is_ok() {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
        }
    }
}

/// Stops a reactor through its handle if the test has not disarmed it in time, so a
/// loop that never returns fails the case instead of hanging it.
pub struct Watchdog {
    cancel: mpsc::Sender<()>,
    thread: JoinHandle<bool>,
}

impl Watchdog {
    /// Arms a watchdog that calls `handle.stop()` after `after`.
    pub fn arm(handle: Handle, after: Duration) -> Watchdog {
        let (cancel, rx) = mpsc::channel::<()>();
        let thread = thread::spawn(move || match rx.recv_timeout(after) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = handle.stop();
                true
            }
            _ => false,
        });
        Watchdog { cancel, thread }
    }

    /// Disarms it; returns whether it had fired.
    pub fn disarm(self) -> bool {
        let _ = self.cancel.send(());
        self.thread.join().unwrap_or(true)
    }
}

// ---------------------------------------------------------------------------------
// The example binary as a child process
// ---------------------------------------------------------------------------------

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

/// Whether `tool` is on the PATH; if not, [`require`] says so (`package` is what
/// `scripts/setup` installs for it).
pub fn have_tool(tool: &str, package: &str) -> bool {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    require(
        ok,
        tool,
        &format!("apt-get install -y {package}; see scripts/setup"),
    )
}

/// The one way a case gates on something outside the crate (a client tool, a Python
/// package, network namespaces): returns `ok`. When it is `false`, the case is skipped
/// with a note on stderr, except under `CI=true`, where it fails naming `what` and how
/// to get it (`install`): CI must not pass by skipping.
pub fn require(ok: bool, what: &str, install: &str) -> bool {
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{what} is required under CI=true ({install})");
        }
        eprintln!("note: {what} not available ({install}); skipping this case");
    }
    ok
}

/// The first of `n` consecutive TCP ports on 127.0.0.1 that were all free a moment
/// ago, for a server that takes a port range (FTP passive ports). Tried from a
/// pseudo-random start in 20000..30000, below the kernel's ephemeral range, so test
/// runs in parallel (and other worktrees) rarely meet; the range can still be taken
/// between this check and its use.
pub fn free_port_range(n: u16) -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let call = NEXT.fetch_add(1, Ordering::Relaxed) as u64;
    let mut x = (nanos ^ (u64::from(std::process::id()) << 20) ^ (call << 40)) | 1;
    for _ in 0..200 {
        // xorshift64: the next candidate start.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let lo = 20_000 + (x % 10_000) as u16;
        let free = (lo..lo + n).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return lo;
        }
    }
    panic!("no {n} consecutive free ports in 20000..30000 after 200 tries");
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
