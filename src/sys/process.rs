//! Process and thread calls the lab and the tests need (feature `testkit`): CPU
//! pinning, signals to child processes, CPU-time accounting, and the pre-exec set-up
//! of spawned servers. On `nix`; the pre-exec hook is the one `unsafe` left (running
//! code between `fork` and `exec` is unsafe by nature).

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use nix::sched::{sched_setaffinity, CpuSet};
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::signal::{self, SigHandler, Signal};
use nix::unistd::{sysconf, Pid, SysconfVar};

use super::stats::{count, Syscall};

/// The set holding `cpu` alone; `None` if `cpu` is past the set's size.
fn cpu_set(cpu: usize) -> Option<CpuSet> {
    let mut set = CpuSet::new();
    set.set(cpu).ok()?;
    Some(set)
}

/// Pins the calling thread to `cpu` (`sched_setaffinity`). Returns whether it worked.
pub fn pin_current_thread(cpu: usize) -> bool {
    count(Syscall::Other);
    cpu_set(cpu).is_some_and(|set| sched_setaffinity(Pid::from_raw(0), &set).is_ok())
}

/// Sends `signal` to process `pid` (`kill(2)`); signal 0 sends nothing and only
/// checks that the process exists.
///
/// # Errors
///
/// `InvalidInput` for a pid or signal number out of range; the kernel's error
/// otherwise (`ESRCH`: no such process, `EPERM`).
pub fn kill(pid: u32, signal: i32) -> io::Result<()> {
    let invalid = |what| io::Error::new(io::ErrorKind::InvalidInput, what);
    let pid = libc::pid_t::try_from(pid).map_err(|_| invalid("pid out of range"))?;
    let signal = match signal {
        0 => None,
        n => Some(Signal::try_from(n).map_err(|_| invalid("unknown signal number"))?),
    };
    count(Syscall::Other);
    signal::kill(Pid::from_raw(pid), signal)?;
    Ok(())
}

fn rusage(who: UsageWho) -> Option<Duration> {
    count(Syscall::Other);
    let ru = getrusage(who).ok()?;
    let us = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    Some(Duration::from_micros(
        us(ru.user_time()) + us(ru.system_time()),
    ))
}

/// CPU time (user + system) of the calling thread.
pub fn thread_cpu_time() -> Option<Duration> {
    rusage(UsageWho::RUSAGE_THREAD)
}

/// CPU time (user + system) of the children this process has waited for.
pub fn children_cpu_time() -> Option<Duration> {
    rusage(UsageWho::RUSAGE_CHILDREN)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of `/proc/PID/stat` times.
pub fn clock_ticks_per_sec() -> u64 {
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    }
}

/// Sets SIGCHLD to `SIG_IGN`, so the kernel reaps exited children by itself.
pub fn ignore_sigchld() {
    // SAFETY: installing SIG_IGN runs no code of ours in signal context (nix marks
    // `signal` unsafe for handlers that are functions, which this is not).
    if let Err(e) = unsafe { signal::signal(Signal::SIGCHLD, SigHandler::SigIgn) } {
        log::warn!("ignoring SIGCHLD: {e}");
    }
}

/// Makes a spawned server die with us (`PR_SET_PDEATHSIG`) and, with `cpu`, pins it
/// there before it execs, so a benchmark never leaves a server behind.
pub fn spawn_pinned_and_tied(cmd: &mut Command, cpu: Option<usize>) {
    let set = cpu.and_then(cpu_set);
    // SAFETY: between fork and exec the closure makes only async-signal-safe calls
    // (sched_setaffinity, prctl) on memory it owns (a copy of `set`); no allocation.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(set) = &set {
                let _ = sched_setaffinity(Pid::from_raw(0), set);
            }
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_calls_answer() {
        assert!(thread_cpu_time().is_some());
        assert!(children_cpu_time().is_some());
        assert!(clock_ticks_per_sec() > 0);
        assert!(!pin_current_thread(usize::MAX), "no such CPU");
        kill(std::process::id(), 0).unwrap();
        let err = kill(std::process::id(), 12345).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = kill(u32::MAX, 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
