//! The operating system's side of a measurement: pinning, descriptor limits, free
//! ports, signals, and children tied to the bench. Every bench reaches
//! `readyloop::sys::process` through here and nowhere else, so that one file follows
//! if it moves.

use std::io;
use std::net::{TcpListener, UdpSocket};
use std::process::Command;
use std::time::Duration;

/// Pins the calling thread (and the threads and processes it creates later) to `cpu`.
pub fn pin_to(cpu: usize) -> bool {
    readyloop::sys::process::pin_current_thread(cpu)
}

/// The CPUs a bench pins to: the server on CPU 0 and the load on CPU 1 when the
/// machine has two or more, else neither.
pub fn two_cpus() -> (Option<usize>, Option<usize>) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores >= 2 {
        (Some(0), Some(1))
    } else {
        (None, None)
    }
}

/// Raises the soft descriptor limit as far as the hard limit allows; returns the
/// soft limit now (0 if unknown).
pub fn raise_nofile() -> u64 {
    if let Ok((_, hard)) = readyloop::sys::nofile_limit() {
        let _ = readyloop::sys::set_nofile_limit(hard);
    }
    readyloop::sys::nofile_limit().map(|(s, _)| s).unwrap_or(0)
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, released):
/// for outside servers that cannot be told to bind port 0. Their start retries on a
/// clash.
///
/// # Errors
/// The bind's error.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The same for UDP.
///
/// # Errors
/// The bind's error.
pub fn free_udp_port() -> io::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Sends `signal` to process `pid`.
///
/// # Errors
/// `kill(2)`'s error.
pub fn kill(pid: u32, signal: i32) -> io::Result<()> {
    readyloop::sys::process::kill(pid, signal)
}

/// Makes `cmd`'s process die with the bench (and run pinned to `cpu` if given).
pub fn tie_to_bench(cmd: &mut Command, cpu: Option<usize>) {
    readyloop::sys::process::spawn_pinned_and_tied(cmd, cpu);
}

/// This thread's CPU time.
pub fn thread_cpu() -> Duration {
    readyloop::sys::process::thread_cpu_time().unwrap_or_default()
}

/// CPU time (user + system) of the children this process has waited for.
pub fn children_cpu() -> Option<Duration> {
    readyloop::sys::process::children_cpu_time()
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 when unknown).
pub fn clock_ticks_per_sec() -> u64 {
    readyloop::sys::process::clock_ticks_per_sec().max(1)
}

/// Lets forked children be reaped by the kernel (the `fork` contender).
pub fn ignore_sigchld() {
    readyloop::sys::process::ignore_sigchld();
}
