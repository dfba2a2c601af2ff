//! Process and thread calls the lab and the tests need: CPU pinning, signals to child
//! processes, CPU-time accounting, and the pre-exec set-up of spawned servers.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use super::syscall;

fn cpu_set(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is a plain bitmask for which all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu < libc::CPU_SETSIZE as usize {
        // SAFETY: `cpu` is below CPU_SETSIZE, so CPU_SET writes inside the mask.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    set
}

/// Pins the calling thread to `cpu` (`sched_setaffinity`). Returns whether it worked.
pub fn pin_current_thread(cpu: usize) -> bool {
    let set = cpu_set(cpu);
    // SAFETY: `set` is a valid cpu_set_t of the size passed, read by the kernel.
    syscall!(
        Other,
        sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    )
    .is_ok()
}

/// Sends `signal` to process `pid` (`kill(2)`).
pub fn kill(pid: u32, signal: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: no pointer arguments.
    syscall!(Other, kill(pid, signal))?;
    Ok(())
}

fn rusage(who: i32) -> Option<Duration> {
    // SAFETY: all-zero is a valid rusage, which the kernel then fills.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage struct.
    syscall!(Other, getrusage(who, &mut ru)).ok()?;
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Some(Duration::from_micros(us(ru.ru_utime) + us(ru.ru_stime)))
}

/// CPU time (user + system) of the calling thread.
pub fn thread_cpu_time() -> Option<Duration> {
    rusage(libc::RUSAGE_THREAD)
}

/// CPU time (user + system) of the children this process has waited for.
pub fn children_cpu_time() -> Option<Duration> {
    rusage(libc::RUSAGE_CHILDREN)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of `/proc/PID/stat` times.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: no pointer arguments.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Sets SIGCHLD to `SIG_IGN`, so the kernel reaps exited children by itself.
pub fn ignore_sigchld() {
    // SAFETY: installing SIG_IGN runs no code of ours in signal context.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
}

/// Makes a spawned server die with us (`PR_SET_PDEATHSIG`) and, with `cpu`, pins it
/// there before it execs, so a benchmark never leaves a server behind.
pub fn spawn_pinned_and_tied(cmd: &mut Command, cpu: Option<usize>) {
    let set = cpu.map(cpu_set);
    // SAFETY: between fork and exec the closure makes only async-signal-safe calls
    // (sched_setaffinity, prctl) on memory it owns (a copy of `set`); no allocation.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(set) = &set {
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set);
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}
