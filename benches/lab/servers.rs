//! The contenders: every server runs in a child process (the lab binary re-executed
//! with the hidden `--serve NAME` mode), pinned to its own core, so that it never shares
//! a descriptor table, an allocator or a CPU with the load generator.
//!
//! The child speaks the benches' one control protocol (`benches/common/server.rs`).
//! With `--http-root DIR` the child runs this crate's HTTP server (on backend NAME)
//! over that directory instead of the echo server.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use readyloop::net::{Listen, ListenConfig};
use readyloop::proto::echo::{Echo, EchoOptions};
use readyloop::proto::http::{HttpConfig, HttpServer, Router};
use readyloop::selector::Backend;

use crate::common::child::{self, Ending, Served, Stopper};
use crate::common::os;
pub use crate::common::server::ServerProc;

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

/// Every contender of any workload, in table order: [`CONTENDERS`], then nginx.
pub const ALL_CONTENDERS: [&str; 11] = {
    let mut all = [NGINX; 11];
    let mut i = 0;
    while i < CONTENDERS.len() {
        all[i] = CONTENDERS[i];
        i += 1;
    }
    all
};

/// Whether `name` is one of this crate's backends (and so counts its syscalls).
pub fn is_crate(name: &str) -> bool {
    name.parse::<Backend>().is_ok()
}

/// Starts contender `name` (a lab child), pinned to `cpu` if given.
///
/// # Errors
/// As [`ServerProc::start`].
pub fn spawn(name: &str, cpu: Option<usize>) -> io::Result<ServerProc> {
    spawn_full(name, cpu, &[], None)
}

/// Starts this crate's HTTP server on backend `name`, serving `root`.
///
/// # Errors
/// As [`ServerProc::start`].
pub fn spawn_http(name: &str, cpu: Option<usize>, root: &Path) -> io::Result<ServerProc> {
    spawn_full(name, cpu, &[], Some(root))
}

/// Starts contender `name` under a wrapper command (e.g. `strace -c -f -o FILE`).
///
/// # Errors
/// As [`ServerProc::start`].
pub fn spawn_wrapped(name: &str, cpu: Option<usize>, wrapper: &[String]) -> io::Result<ServerProc> {
    spawn_full(name, cpu, wrapper, None)
}

fn spawn_full(
    name: &str,
    cpu: Option<usize>,
    wrapper: &[String],
    http_root: Option<&Path>,
) -> io::Result<ServerProc> {
    let mut args: Vec<OsString> = vec![name.into()];
    if let Some(c) = cpu {
        args.extend(["--cpu".into(), c.to_string().into()]);
    }
    if let Some(root) = http_root {
        args.extend(["--http-root".into(), root.into()]);
    }
    ServerProc::start(name, wrapper, &args, &[])
}

// ---------------------------------------------------------------------------------
// Child side.

/// The hidden `--serve NAME` mode. Never returns.
pub fn serve_child(name: &str, cpu: Option<usize>, http_root: Option<PathBuf>) -> ! {
    if crate::accept::is_child(name) {
        crate::accept::serve_child(name, cpu);
    }
    if let Some(c) = cpu {
        os::pin_to(c);
    }
    os::raise_nofile();
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
    let (ports, stopper) =
        started.unwrap_or_else(|e| child::fail(&format!("lab: cannot start {name}"), &e));
    let served = Served {
        ports,
        counted: is_crate(name),
        stopper,
        extra: None,
    };
    child::serve(&format!("lab: {name}"), served)
}

/// This crate's echo server as a user would run it for speed: the client speaks
/// first, so the listener has `TCP_DEFER_ACCEPT` (connections arrive with their
/// first bytes, read at once).
fn start_crate(backend: Backend) -> io::Result<(Vec<u16>, Stopper)> {
    child::start_reactor(backend, Ending::Stop, move |r| {
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
        Ok(vec![addr])
    })
}

/// This crate's HTTP server as a user would run it for speed: the built-in routes
/// (`/plaintext`), files under `root`, default limits and cache, no access log.
fn start_http(backend: Backend, root: PathBuf) -> io::Result<(Vec<u16>, Stopper)> {
    child::start_reactor(backend, Ending::Stop, move |r| {
        let cfg = HttpConfig {
            root: Some(root),
            access_log: false,
            ..HttpConfig::default()
        };
        let server = HttpServer::new(cfg, Router::with_builtins())?;
        let (_, addr) = server.listen(r, "127.0.0.1:0")?;
        Ok(vec![addr])
    })
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
fn start_threads() -> io::Result<(Vec<u16>, Stopper)> {
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
    Ok((vec![port], Box::new(|| Ok(()))))
}

/// Process per connection: `fork(2)` after `accept` (the classroom's second server).
fn start_fork() -> io::Result<(Vec<u16>, Stopper)> {
    use nix::sys::signal::Signal;
    use nix::unistd::{close, fork, ForkResult};
    let (l, port) = listen_std()?;
    os::ignore_sigchld();
    thread::spawn(move || {
        let lfd = l.as_raw_fd();
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let _ = s.set_nodelay(true);
            // SAFETY: the child makes only async-signal-safe calls (close, prctl, read,
            // write, _exit) on descriptors it owns and a stack buffer, then exits.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => {
                    let _ = close(lfd);
                    let _ = close(0);
                    let _ = close(1);
                    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
                    fork_child_echo(&s);
                    // SAFETY: `_exit` ends the child at once, running none of the
                    // parent's atexit handlers or destructors (nix has no `_exit`).
                    unsafe { libc::_exit(0) };
                }
                Ok(ForkResult::Parent { .. }) => drop(s),
                Err(_) => {
                    drop(s);
                    thread::sleep(Duration::from_millis(1));
                }
            }
        }
    });
    Ok((vec![port], Box::new(|| Ok(()))))
}

/// The forked child's echo loop: plain `read`/`write` (nix), no allocation.
fn fork_child_echo(s: &std::net::TcpStream) {
    use nix::errno::Errno;
    use nix::unistd::{read, write};
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match read(s, &mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        };
        let mut off = 0usize;
        while off < n {
            match write(s, &buf[off..n]) {
                Ok(0) => return,
                Ok(w) => off += w,
                Err(Errno::EINTR) => continue,
                Err(_) => return,
            }
        }
    }
}

/// An echo server written directly on mio, the way its examples do it: read until
/// `WouldBlock`, write what was read, buffer the rest and wait for writability.
fn start_ref_mio() -> io::Result<(Vec<u16>, Stopper)> {
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
    Ok((vec![port], Box::new(|| Ok(()))))
}

/// An echo server on tokio's current-thread runtime: a task per connection with
/// `read` and `write_all`.
fn start_ref_tokio() -> io::Result<(Vec<u16>, Stopper)> {
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
    Ok((vec![port], Box::new(|| Ok(()))))
}
