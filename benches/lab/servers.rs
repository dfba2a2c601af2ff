//! The contenders: every server runs in a child process (the lab binary re-executed
//! with the hidden `--serve NAME` mode), pinned to its own core, so that it never shares
//! a descriptor table, an allocator or a CPU with the load generator.
//!
//! Child protocol, one line each way on stdin/stdout:
//! the child prints `ready PORT`; then `stats on` → `ok`; `stats off` → `counts N…`
//! (nine numbers, in `Syscall::ALL` order) or `counts none`; `stop` (or EOF) → `stopped`
//! and the child exits.
//!
//! With `--http-root DIR` the child runs this crate's HTTP server (on backend NAME)
//! over that directory instead of the echo server, with the same protocol.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use readyloop::net::{Listen, ListenConfig};
use readyloop::proto::echo::{Echo, EchoOptions};
use readyloop::proto::http::{HttpConfig, HttpServer, Router};
use readyloop::reactor::Reactor;
use readyloop::selector::Backend;
use readyloop::sys::stats::{self, Counts};

/// Every contender, in table order.
pub const CONTENDERS: [&str; 10] = [
    "select",
    "poll",
    "epoll",
    "epoll-et",
    "mio",
    "polling",
    "threads",
    "fork",
    "ref-mio",
    "ref-tokio",
];

/// The HTTP workload's outside contender (not a child of the lab: see `nginx.rs`).
pub const NGINX: &str = "nginx";

/// Every contender of any workload, in table order.
pub const ALL_CONTENDERS: [&str; 11] = [
    "select",
    "poll",
    "epoll",
    "epoll-et",
    "mio",
    "polling",
    "threads",
    "fork",
    "ref-mio",
    "ref-tokio",
    NGINX,
];

/// Whether `name` is one of this crate's backends (and so counts its syscalls).
pub fn is_crate(name: &str) -> bool {
    name.parse::<Backend>().is_ok()
}

/// Pins the calling thread (and the threads and processes it creates later) to `cpu`.
pub fn pin_to(cpu: usize) -> bool {
    readyloop::sys::process::pin_current_thread(cpu)
}

/// Raises the soft descriptor limit as far as the hard limit allows.
pub fn raise_nofile() -> u64 {
    if let Ok((_, hard)) = readyloop::sys::nofile_limit() {
        let _ = readyloop::sys::set_nofile_limit(hard);
    }
    readyloop::sys::nofile_limit().map(|(s, _)| s).unwrap_or(0)
}

// ---------------------------------------------------------------------------------
// Parent side.

/// A running contender (a child process).
pub struct ServerProc {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    /// Where it listens.
    pub addr: SocketAddr,
}

const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

impl ServerProc {
    /// Starts contender `name`, pinned to `cpu` if given.
    pub fn spawn(name: &str, cpu: Option<usize>) -> io::Result<ServerProc> {
        Self::spawn_wrapped(name, cpu, &[])
    }

    /// Starts this crate's HTTP server on backend `name`, serving `root`.
    pub fn spawn_http(name: &str, cpu: Option<usize>, root: &Path) -> io::Result<ServerProc> {
        Self::spawn_full(name, cpu, &[], Some(root))
    }

    /// Starts contender `name` under a wrapper command (e.g. `strace -c -f -o FILE`).
    pub fn spawn_wrapped(
        name: &str,
        cpu: Option<usize>,
        wrapper: &[String],
    ) -> io::Result<ServerProc> {
        Self::spawn_full(name, cpu, wrapper, None)
    }

    fn spawn_full(
        name: &str,
        cpu: Option<usize>,
        wrapper: &[String],
        http_root: Option<&Path>,
    ) -> io::Result<ServerProc> {
        let exe = std::env::current_exe()?;
        let mut cmd = match wrapper.split_first() {
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.arg("--serve").arg(name);
        if let Some(c) = cpu {
            cmd.arg("--cpu").arg(c.to_string());
        }
        if let Some(root) = http_root {
            cmd.arg("--http-root").arg(root);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = ServerProc {
            child,
            stdin,
            lines: rx,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let ready = p.reply()?;
        let port: u16 = ready
            .strip_prefix("ready ")
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("{name}: unexpected start line {ready:?}")))?;
        p.addr.set_port(port);
        Ok(p)
    }

    fn reply(&mut self) -> io::Result<String> {
        match self.lines.recv_timeout(REPLY_TIMEOUT) {
            Ok(l) => Ok(l),
            Err(_) => {
                let _ = self.child.kill();
                Err(io::Error::other("server did not answer (killed it)"))
            }
        }
    }

    /// Sends one command line and returns the reply line.
    pub fn command(&mut self, cmd: &str) -> io::Result<String> {
        writeln!(self.stdin, "{cmd}")?;
        self.stdin.flush()?;
        self.reply()
    }

    /// Starts counting syscalls (for the crate's contenders).
    pub fn stats_on(&mut self) -> io::Result<()> {
        let r = self.command("stats on")?;
        if r == "ok" {
            Ok(())
        } else {
            Err(io::Error::other(format!("stats on: {r:?}")))
        }
    }

    /// Stops counting and returns the counts since `stats_on` (`None`: not counted).
    pub fn stats_off(&mut self) -> io::Result<Option<Counts>> {
        let r = self.command("stats off")?;
        parse_counts(&r).ok_or_else(|| io::Error::other(format!("stats off: {r:?}")))
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server and waits for the process to exit.
    pub fn stop(mut self) -> io::Result<()> {
        let r = self.command("stop");
        let status = self.child.wait()?;
        match r {
            Ok(l) if l == "stopped" && status.success() => Ok(()),
            Ok(l) => Err(io::Error::other(format!("stop: {l:?}, exit {status}"))),
            Err(e) => Err(e),
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Formats counts for the child protocol.
pub fn format_counts(c: Option<Counts>) -> String {
    match c {
        None => "counts none".to_string(),
        Some(c) => {
            let nums: Vec<String> = c.0.iter().map(u64::to_string).collect();
            format!("counts {}", nums.join(" "))
        }
    }
}

/// Parses a `counts …` line: `Some(None)` for `counts none`, `None` if malformed.
pub fn parse_counts(line: &str) -> Option<Option<Counts>> {
    let rest = line.strip_prefix("counts ")?;
    if rest.trim() == "none" {
        return Some(None);
    }
    let nums: Vec<u64> = rest
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let arr: [u64; 9] = nums.try_into().ok()?;
    Some(Some(Counts(arr)))
}

// ---------------------------------------------------------------------------------
// Child side.

/// How the child stops its server: the crate's reactors stop through their handle;
/// the others end with the process.
type Stopper = Box<dyn FnOnce() -> io::Result<()>>;

/// The hidden `--serve NAME` mode. Never returns.
pub fn serve_child(name: &str, cpu: Option<usize>, http_root: Option<PathBuf>) -> ! {
    if crate::accept::is_child(name) {
        crate::accept::serve_child(name, cpu);
    }
    if let Some(c) = cpu {
        pin_to(c);
    }
    raise_nofile();
    let counted = is_crate(name);
    let started = match (name, http_root) {
        (other, Some(root)) => match other.parse::<Backend>() {
            Ok(b) => start_http(b, root),
            Err(e) => Err(io::Error::other(format!("http: {e}"))),
        },
        (name, None) => match name {
            "threads" => start_threads(),
            "fork" => start_fork(),
            "ref-mio" => start_ref_mio(),
            "ref-tokio" => start_ref_tokio(),
            other => match other.parse::<Backend>() {
                Ok(b) => start_crate(b),
                Err(e) => Err(io::Error::other(e.to_string())),
            },
        },
    };
    let (port, stopper) = match started {
        Ok(x) => x,
        Err(e) => {
            eprintln!("lab: cannot start {name}: {e}");
            std::process::exit(2);
        }
    };
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "ready {port}");
    let _ = out.flush();
    let mut base = Counts::default();
    let mut stopper = Some(stopper);
    let mut code = 0;
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let reply = match line.trim() {
            "stats on" => {
                if counted {
                    base = stats::snapshot();
                    stats::enable(true);
                }
                "ok".to_string()
            }
            "stats off" => {
                if counted {
                    stats::enable(false);
                    format_counts(Some(stats::snapshot().since(&base)))
                } else {
                    format_counts(None)
                }
            }
            "stop" => break,
            other => format!("error unknown command {other:?}"),
        };
        let _ = writeln!(out, "{reply}");
        let _ = out.flush();
    }
    if let Some(s) = stopper.take() {
        if let Err(e) = s() {
            eprintln!("lab: {name} did not stop cleanly: {e}");
            code = 3;
        }
    }
    let _ = writeln!(out, "stopped");
    let _ = out.flush();
    std::process::exit(code);
}

/// This crate's echo server as a user would run it for speed: the client speaks
/// first, so the listener has `TCP_DEFER_ACCEPT` (connections arrive with their
/// first bytes, read at once).
fn start_crate(backend: Backend) -> io::Result<(u16, Stopper)> {
    start_reactor(backend, move |r| {
        let cfg = ListenConfig {
            defer_accept: Some(Duration::from_secs(1)),
            // A knob for comparing accept loops (issue 14): READYLOOP_LAB_ACCEPT_PER_READY=N
            // caps the accepts per readiness report on level-triggered backends.
            accept_per_ready: std::env::var("READYLOOP_LAB_ACCEPT_PER_READY")
                .ok()
                .and_then(|v| v.parse().ok())
                .or(ListenConfig::default().accept_per_ready),
            ..ListenConfig::default()
        };
        let (_, addr) =
            r.listen_tcp_with("127.0.0.1:0", Echo::factory(EchoOptions::default()), cfg)?;
        Ok(addr)
    })
}

/// This crate's HTTP server as a user would run it for speed: the built-in routes
/// (`/plaintext`), files under `root`, default limits and cache, no access log.
fn start_http(backend: Backend, root: PathBuf) -> io::Result<(u16, Stopper)> {
    start_reactor(backend, move |r| {
        let cfg = HttpConfig {
            root: Some(root),
            access_log: false,
            ..HttpConfig::default()
        };
        let server = HttpServer::new(cfg, Router::with_builtins())?;
        let (_, addr) = server.listen(r, "127.0.0.1:0")?;
        Ok(addr)
    })
}

/// Runs a reactor on its own thread with what `setup` registers on it.
fn start_reactor(
    backend: Backend,
    setup: impl FnOnce(&mut Reactor) -> io::Result<SocketAddr> + Send + 'static,
) -> io::Result<(u16, Stopper)> {
    let (tx, rx) = mpsc::channel();
    let t = thread::Builder::new()
        .name(format!("reactor-{backend}"))
        .spawn(move || -> io::Result<()> {
            let setup = (|| {
                let mut r = Reactor::new(backend)?;
                let addr = setup(&mut r)?;
                Ok::<_, io::Error>((r, addr))
            })();
            match setup {
                Ok((mut r, addr)) => {
                    let _ = tx.send(Ok((addr.port(), r.handle())));
                    r.run()
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    Ok(())
                }
            }
        })?;
    let (port, handle) = rx
        .recv()
        .map_err(|_| io::Error::other("reactor thread died"))??;
    let stop: Stopper = Box::new(move || {
        handle.stop()?;
        t.join()
            .map_err(|_| io::Error::other("reactor thread panicked"))?
    });
    Ok((port, stop))
}

fn listen_std() -> io::Result<(TcpListener, u16)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    Ok((l, port))
}

fn echo_blocking(mut s: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// Thread per connection, blocking I/O (the classroom's first server).
fn start_threads() -> io::Result<(u16, Stopper)> {
    let (l, port) = listen_std()?;
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let _ = s.set_nodelay(true);
            let spawned = thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || echo_blocking(s));
            if spawned.is_err() {
                thread::sleep(Duration::from_millis(1));
            }
        }
    });
    Ok((port, Box::new(|| Ok(()))))
}

/// Process per connection: `fork(2)` after `accept` (the classroom's second server).
fn start_fork() -> io::Result<(u16, Stopper)> {
    let (l, port) = listen_std()?;
    readyloop::sys::process::ignore_sigchld();
    thread::spawn(move || {
        let lfd = l.as_raw_fd();
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let _ = s.set_nodelay(true);
            let fd = s.into_raw_fd();
            // SAFETY: the child only makes async-signal-safe calls (close, prctl, read,
            // write, _exit) on descriptors it owns and a stack buffer, then exits.
            unsafe {
                match libc::fork() {
                    0 => {
                        libc::close(lfd);
                        libc::close(0);
                        libc::close(1);
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        fork_child_echo(fd);
                        libc::_exit(0);
                    }
                    -1 => {
                        libc::close(fd);
                        thread::sleep(Duration::from_millis(1));
                    }
                    _ => {
                        libc::close(fd);
                    }
                }
            }
        }
    });
    Ok((port, Box::new(|| Ok(()))))
}

/// The forked child's echo loop, raw syscalls only.
///
/// # Safety
/// `fd` must be an open socket owned by the caller.
unsafe fn fork_child_echo(fd: i32) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        if n <= 0 {
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            return;
        }
        let mut off = 0usize;
        while off < n as usize {
            let w = libc::write(fd, buf[off..].as_ptr().cast(), n as usize - off);
            if w <= 0 {
                if w < 0 && *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                return;
            }
            off += w as usize;
        }
    }
}

/// An echo server written directly on mio, the way its examples do it: read until
/// `WouldBlock`, write what was read, buffer the rest and wait for writability.
fn start_ref_mio() -> io::Result<(u16, Stopper)> {
    use mio::net::TcpListener as MioListener;
    use mio::{Events, Interest, Poll, Token};
    let (l, port) = listen_std()?;
    l.set_nonblocking(true)?;
    thread::spawn(move || -> io::Result<()> {
        struct C {
            s: mio::net::TcpStream,
            pending: Vec<u8>,
        }
        const LISTENER: Token = Token(usize::MAX);
        let mut listener = MioListener::from_std(l);
        let mut poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut events = Events::with_capacity(1024);
        let mut conns: Vec<Option<C>> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Err(e) = poll.poll(&mut events, None) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in events.iter() {
                if ev.token() == LISTENER {
                    loop {
                        match listener.accept() {
                            Ok((mut s, _)) => {
                                let _ = s.set_nodelay(true);
                                let i = free.pop().unwrap_or_else(|| {
                                    conns.push(None);
                                    conns.len() - 1
                                });
                                poll.registry()
                                    .register(&mut s, Token(i), Interest::READABLE)?;
                                conns[i] = Some(C {
                                    s,
                                    pending: Vec::new(),
                                });
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(_) => break,
                        }
                    }
                    continue;
                }
                let i = ev.token().0;
                let Some(c) = conns.get_mut(i).and_then(Option::as_mut) else {
                    continue;
                };
                let mut close = false;
                // Flush what is pending first.
                while !c.pending.is_empty() {
                    match c.s.write(&c.pending) {
                        Ok(n) => {
                            c.pending.drain(..n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            close = true;
                            break;
                        }
                    }
                }
                if !close && c.pending.is_empty() {
                    loop {
                        match c.s.read(&mut buf) {
                            Ok(0) => {
                                close = true;
                                break;
                            }
                            Ok(n) => {
                                let mut off = 0;
                                while off < n {
                                    match c.s.write(&buf[off..n]) {
                                        Ok(w) => off += w,
                                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                                        Err(_) => {
                                            close = true;
                                            break;
                                        }
                                    }
                                }
                                if off < n && !close {
                                    c.pending.extend_from_slice(&buf[off..n]);
                                    break;
                                }
                                if close {
                                    break;
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(_) => {
                                close = true;
                                break;
                            }
                        }
                    }
                }
                if close {
                    if let Some(mut c) = conns[i].take() {
                        let _ = poll.registry().deregister(&mut c.s);
                    }
                    free.push(i);
                } else {
                    let want = if c.pending.is_empty() {
                        Interest::READABLE
                    } else {
                        Interest::READABLE | Interest::WRITABLE
                    };
                    // Only touch the registration when output is pending (rare).
                    if !c.pending.is_empty() {
                        poll.registry().reregister(&mut c.s, Token(i), want)?;
                    }
                }
            }
        }
    });
    Ok((port, Box::new(|| Ok(()))))
}

/// An echo server on tokio's current-thread runtime: a task per connection with
/// `read` and `write_all`.
fn start_ref_tokio() -> io::Result<(u16, Stopper)> {
    let (l, port) = listen_std()?;
    l.set_nonblocking(true)?;
    thread::spawn(move || -> io::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(l)?;
            loop {
                let (mut s, _) = match l.accept().await {
                    Ok(x) => x,
                    Err(_) => continue,
                };
                let _ = s.set_nodelay(true);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        })
    });
    Ok((port, Box::new(|| Ok(()))))
}
