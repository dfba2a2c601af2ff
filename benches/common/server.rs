//! Servers a bench runs as child processes, and how it stops them.
//!
//! **Ours** ([`ServerProc`]): the bench binary re-executed in its hidden `--serve`
//! mode, optionally under a wrapper command (`strace`, `perf stat`). One control
//! protocol, one line each way on stdin/stdout:
//!
//! * the child prints `ready PORT [PORT…]` once it listens (soak serves three);
//! * `stats on` → `ok` (the crate's syscall counters start);
//! * `stats off` → `counts N…` (nine numbers, `Syscall::ALL` order) or `counts none`
//!   (a server that does not count: not one of the crate's backends);
//! * `stop` (or EOF) → the child stops its server, prints `stopped` and exits (0, or
//!   3 if the server did not stop cleanly);
//! * a child may answer more (the accept pool's `pool stats`); anything else gets
//!   `error unknown command …`.
//!
//! **Outside** ([`Daemon`]): nginx, ngIRCd, vsftpd, pyftpdlib, tftpd-hpa, stopped with
//! `SIGTERM`. Every stop, ours or outside, has a deadline ([`STOP_TIMEOUT`]) after
//! which the process is killed and the stop is an error; every error is an
//! `io::Error` naming the server. Dropping either kills a process still running.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use readyloop::sys::stats::Counts;

use super::child::{format_counts, parse_counts};

/// How long a reply to a control line may take.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to exit once told to stop.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// An error naming the server.
fn err(name: &str, what: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{name}: {what}"))
}

/// Waits until `child` exits, at most until `deadline`; then kills it and says so.
fn wait_until(child: &mut Child, name: &str, deadline: Instant) -> io::Result<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Ok(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err(name, "did not stop in time (killed it)"));
            }
            Err(e) => return Err(err(name, e)),
        }
    }
}

/// Kills `child` if it still runs, and reaps it.
fn reap(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// One of our servers: a child process speaking the control protocol.
pub struct ServerProc {
    name: String,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    ports: Vec<u16>,
    /// Where it listens (its first port).
    pub addr: SocketAddr,
}

impl ServerProc {
    /// Starts `current_exe --serve ARGS…` (under `wrapper`, e.g. `strace -c -f -o F`,
    /// if not empty), tied to the bench, and waits for its `ready` line. `name` names
    /// it in errors; `envs` are added to its environment.
    ///
    /// # Errors
    /// The spawn's error, no `ready` line within [`REPLY_TIMEOUT`], or a malformed one.
    pub fn start(
        name: &str,
        wrapper: &[String],
        args: &[OsString],
        envs: &[(&str, &str)],
    ) -> io::Result<ServerProc> {
        let exe = std::env::current_exe()?;
        let mut cmd = match wrapper.split_first() {
            Some((prog, rest)) => {
                let mut c = Command::new(prog);
                c.args(rest).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.arg("--serve").args(args).envs(envs.iter().copied());
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        super::os::tie_to_bench(&mut cmd, None);
        let mut child = cmd.spawn().map_err(|e| err(name, e))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            reap(&mut child);
            return Err(err(name, "no pipes"));
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = ServerProc {
            name: name.to_string(),
            child,
            stdin,
            lines: rx,
            ports: Vec::new(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let ready = p.reply()?;
        p.ports = super::child::parse_ready(&ready)
            .ok_or_else(|| err(name, format!("unexpected start line {ready:?}")))?;
        p.addr.set_port(p.ports[0]);
        Ok(p)
    }

    /// Every port it listens on, in the order of its `ready` line.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// `127.0.0.1:port` for its `i`th port.
    pub fn addr_of(&self, i: usize) -> Option<SocketAddr> {
        let p = *self.ports.get(i)?;
        Some(SocketAddr::from(([127, 0, 0, 1], p)))
    }

    fn reply(&mut self) -> io::Result<String> {
        match self.lines.recv_timeout(REPLY_TIMEOUT) {
            Ok(l) => Ok(l),
            Err(_) => {
                reap(&mut self.child);
                Err(err(&self.name, "no answer (killed it)"))
            }
        }
    }

    /// Sends one command line and returns the reply line.
    ///
    /// # Errors
    /// The pipe's error, or no reply within [`REPLY_TIMEOUT`] (the child is killed).
    pub fn command(&mut self, cmd: &str) -> io::Result<String> {
        writeln!(self.stdin, "{cmd}")
            .and_then(|_| self.stdin.flush())
            .map_err(|e| err(&self.name, e))?;
        self.reply()
    }

    /// Starts counting syscalls (a no-op for a server that does not count).
    ///
    /// # Errors
    /// As [`ServerProc::command`], or a reply other than `ok`.
    pub fn stats_on(&mut self) -> io::Result<()> {
        match self.command("stats on")?.as_str() {
            "ok" => Ok(()),
            r => Err(err(&self.name, format!("stats on: {r:?}"))),
        }
    }

    /// Stops counting; the counts since [`ServerProc::stats_on`] (`None`: not counted).
    ///
    /// # Errors
    /// As [`ServerProc::command`], or a malformed reply.
    pub fn stats_off(&mut self) -> io::Result<Option<Counts>> {
        let r = self.command("stats off")?;
        parse_counts(&r).ok_or_else(|| err(&self.name, format!("stats off: {r:?}")))
    }

    /// The child's process id (the wrapper's, if wrapped).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server: `stop`, its `stopped`, a clean exit, all within
    /// [`STOP_TIMEOUT`] (then it is killed).
    ///
    /// # Errors
    /// No `stopped`, an unclean exit, or the deadline.
    pub fn stop(mut self) -> io::Result<()> {
        let deadline = Instant::now() + STOP_TIMEOUT;
        let said = writeln!(self.stdin, "stop").and_then(|_| self.stdin.flush());
        let reply = said.ok().and_then(|_| {
            let left = deadline.saturating_duration_since(Instant::now());
            self.lines.recv_timeout(left).ok()
        });
        let status = wait_until(&mut self.child, &self.name, deadline)?;
        match reply {
            Some(l) if l == "stopped" && status.success() => Ok(()),
            r => Err(err(&self.name, format!("stop: {r:?}, exit {status}"))),
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        reap(&mut self.child);
    }
}

/// An outside server: a process the bench started from another program, with the
/// directory of its generated configuration and logs (removed on drop).
pub struct Daemon {
    name: String,
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    dir: Option<PathBuf>,
    logs: Vec<PathBuf>,
    /// Signal the child's own children, not the child (a wrapper such as `perf`).
    wrapped: bool,
}

impl Daemon {
    /// Adopts a started process. `dir` (if any) is removed on drop; `logs` are read
    /// into error messages.
    pub fn new(
        name: &str,
        child: Child,
        addr: SocketAddr,
        dir: Option<PathBuf>,
        logs: Vec<PathBuf>,
    ) -> Daemon {
        Daemon {
            name: name.to_string(),
            child,
            addr,
            dir,
            logs,
            wrapped: false,
        }
    }

    /// The same for a server started under a wrapper that must outlive it (`perf
    /// stat` reports when its child exits): [`Daemon::stop`] signals the wrapper's
    /// children.
    pub fn wrapped(mut self) -> Daemon {
        self.wrapped = true;
        self
    }

    /// The process id (the wrapper's, if wrapped).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited, with its status (`start` polls this).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The tails of its logs, for an error message.
    pub fn logs(&self) -> String {
        let mut out = Vec::new();
        for l in &self.logs {
            let text = std::fs::read_to_string(l).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.extend(
                lines[lines.len().saturating_sub(5)..]
                    .iter()
                    .map(|l| l.to_string()),
            );
        }
        out.join(" / ")
    }

    /// The whole text of log `i`.
    pub fn log(&self, i: usize) -> String {
        self.logs
            .get(i)
            .and_then(|l| std::fs::read_to_string(l).ok())
            .unwrap_or_default()
    }

    fn signal(&self, signal: i32) {
        let me = self.child.id();
        if !self.wrapped {
            let _ = super::os::kill(me, signal);
            return;
        }
        let children =
            std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")).unwrap_or_default();
        for pid in children.split_whitespace().filter_map(|p| p.parse().ok()) {
            let _ = super::os::kill(pid, signal);
        }
    }

    /// Stops it with `SIGTERM` and waits, at most [`STOP_TIMEOUT`] (then `SIGKILL`).
    /// Exit status 0 or death by that `SIGTERM` is a clean stop.
    ///
    /// # Errors
    /// An unclean exit (with its logs) or the deadline.
    pub fn stop(mut self) -> io::Result<()> {
        use std::os::unix::process::ExitStatusExt;
        self.signal(libc::SIGTERM);
        let status = wait_until(&mut self.child, &self.name, Instant::now() + STOP_TIMEOUT)?;
        if status.success() || status.signal() == Some(libc::SIGTERM) {
            Ok(())
        } else {
            Err(err(
                &self.name,
                format!("exited with {status}: {}", self.logs()),
            ))
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGKILL);
        }
        reap(&mut self.child);
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A running contender of either kind.
pub enum Running {
    Ours(ServerProc),
    Outside(Daemon),
}

impl Running {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Running::Ours(p) => p.addr,
            Running::Outside(d) => d.addr,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        match self {
            Running::Ours(p) => p.pid(),
            Running::Outside(d) => d.pid(),
        }
    }

    /// Starts counting syscalls (ours only).
    ///
    /// # Errors
    /// As [`ServerProc::stats_on`].
    pub fn stats_on(&mut self) -> io::Result<()> {
        match self {
            Running::Ours(p) => p.stats_on(),
            Running::Outside(_) => Ok(()),
        }
    }

    /// Stops counting (ours only; `None` for an outside server).
    ///
    /// # Errors
    /// As [`ServerProc::stats_off`].
    pub fn stats_off(&mut self) -> io::Result<Option<Counts>> {
        match self {
            Running::Ours(p) => p.stats_off(),
            Running::Outside(_) => Ok(None),
        }
    }

    /// Stops it, with a deadline.
    ///
    /// # Errors
    /// As [`ServerProc::stop`] / [`Daemon::stop`].
    pub fn stop(self) -> io::Result<()> {
        match self {
            Running::Ours(p) => p.stop(),
            Running::Outside(d) => d.stop(),
        }
    }
}

/// Checks of the protocol's pure parts, for the benches' self-tests: the failures.
pub fn self_check() -> Vec<&'static str> {
    let mut bad = Vec::new();
    let c = Counts([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    if parse_counts(&format_counts(Some(c))) != Some(Some(c)) {
        bad.push("counts round trip");
    }
    if parse_counts("counts none") != Some(None) {
        bad.push("counts none");
    }
    if parse_counts("counts 1 2").is_some() {
        bad.push("counts short");
    }
    if super::child::parse_ready("ready 1 2 3") != Some(vec![1, 2, 3]) {
        bad.push("ready ports");
    }
    if super::child::parse_ready("ready").is_some()
        || super::child::parse_ready("ready x").is_some()
    {
        bad.push("ready malformed");
    }
    bad
}
