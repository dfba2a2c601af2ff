//! A test-only syscall fault injector (cargo feature `fault-injection`, off by default).
//!
//! With the feature off this module does not exist and the wrappers in [`crate::sys`]
//! contain no trace of it. With it on, a thread that [`install`]s a [`Plan`] sees the
//! crate's network syscalls fail or fall short on that thread: on a schedule (the
//! `n`th call of a kind) and at random with a seed, so a run replays. Other threads
//! (the test's clients, other tests) are not affected; a thread with no plan pays one
//! thread-local lookup per call.
//!
//! Which calls: waits (`select`, `poll`, `epoll_wait`, and the waits of the `mio` and
//! `polling` adapters, where only `EINTR` applies), stream reads (`recv`), writes
//! (`send`, `sendmsg`, `sendfile`) and `accept4`. The waker and signal pipes, UDP
//! (which goes through `std`) and file opening are not touched.
//!
//! What the faults model, and where they are realistic:
//! * `EINTR` anywhere: a signal arrived.
//! * A spurious wake-up ([`Fault::Spurious`]): a wait reports readiness nobody has
//!   (`poll` and `select`: a registered descriptor marked ready; `epoll`: a returned
//!   event given both read and write bits); the read or write that follows meets the
//!   kernel's real `EAGAIN`. Realistic on every backend.
//! * `EAGAIN` where readiness said ready, and short reads and writes with the socket
//!   not drained or full: the kernel's answer made up. On level-triggered backends the
//!   next wait reports the descriptor again, so they test the retry paths. On
//!   edge-triggered backends they are not realistic: there `EAGAIN`, a short read and
//!   a short write *are* the kernel's promise that a new edge will come when the state
//!   changes, and the loop relies on it (README: the edge-triggered short-read
//!   shortcut); a made-up one can leave bytes waiting for an edge that never comes.
//!   Plans for edge-triggered backends leave them out.
//! * `ECONNRESET`/`EPIPE` mid-stream, `ENOBUFS`/`ENOMEM` on send: the connection
//!   fails; the protocol hears `connection_lost` with the error.
//! * `EMFILE`/`ENFILE`/`ECONNABORTED` on accept.
//! * `EBADF` on a wait: realistic for `select` only (a registered descriptor closed
//!   under it); for `poll` and `epoll` it would mean the selector itself is broken.

use std::cell::RefCell;
use std::io;

/// A kind of call the injector can touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// A readiness wait.
    Wait,
    /// A stream read (`recv`).
    Read,
    /// A stream write (`send`, `sendmsg`, `sendfile`).
    Write,
    /// `accept4`.
    Accept,
}

impl Op {
    const ALL: [Op; 4] = [Op::Wait, Op::Read, Op::Write, Op::Accept];
}

/// What happens to a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// `EINTR`.
    Interrupted,
    /// `EAGAIN` although the call could have proceeded (read, write, accept).
    WouldBlock,
    /// Fewer bytes than asked for (read, write; at least one).
    Short,
    /// A wait reports readiness that is not there (wait).
    Spurious,
    /// `EBADF` (wait).
    BadFd,
    /// `ECONNRESET` (read, write).
    Reset,
    /// `EPIPE` (write).
    BrokenPipe,
    /// `ENOBUFS` (write).
    NoBufs,
    /// `ENOMEM` (write).
    NoMem,
    /// `ECONNABORTED` (accept).
    Aborted,
    /// `EMFILE` (accept).
    ProcessFiles,
    /// `ENFILE` (accept).
    SystemFiles,
}

impl Fault {
    /// The `errno` this fault returns, if it is an error.
    fn errno(self) -> Option<i32> {
        Some(match self {
            Fault::Interrupted => libc::EINTR,
            Fault::WouldBlock => libc::EAGAIN,
            Fault::BadFd => libc::EBADF,
            Fault::Reset => libc::ECONNRESET,
            Fault::BrokenPipe => libc::EPIPE,
            Fault::NoBufs => libc::ENOBUFS,
            Fault::NoMem => libc::ENOMEM,
            Fault::Aborted => libc::ECONNABORTED,
            Fault::ProcessFiles => libc::EMFILE,
            Fault::SystemFiles => libc::ENFILE,
            Fault::Short | Fault::Spurious => return None,
        })
    }
}

/// A fault schedule for one thread.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Seeds the random faults (and the lengths of short reads and writes).
    pub seed: u64,
    /// `(op, fault, probability)`: each call of `op` gets `fault` with that
    /// probability (the first entry that fires wins).
    pub random: Vec<(Op, Fault, f64)>,
    /// `(op, n, fault)`: the `n`th call of `op` (from 0, counted since `install`)
    /// gets `fault`, before any random one.
    pub schedule: Vec<(Op, u64, Fault)>,
}

/// What the injector did on a thread ([`uninstall`], [`report`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Calls seen per op (`Op` order: wait, read, write, accept).
    pub calls: [u64; 4],
    /// Faults injected, by kind, in the order first injected.
    pub injected: Vec<(Op, Fault, u64)>,
}

impl Report {
    /// Faults injected in all.
    pub fn total(&self) -> u64 {
        self.injected.iter().map(|&(_, _, n)| n).sum()
    }
}

struct State {
    plan: Plan,
    rng: u64,
    report: Report,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// splitmix64: small, fast, and good enough to spread faults.
fn next(rng: &mut u64) -> u64 {
    *rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *rng;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform float in `[0, 1)`.
fn unit(rng: &mut u64) -> f64 {
    (next(rng) >> 11) as f64 / (1u64 << 53) as f64
}

/// Installs `plan` on the current thread (replacing any other).
pub fn install(plan: Plan) {
    let rng = plan.seed;
    STATE.with(|s| {
        *s.borrow_mut() = Some(State {
            plan,
            rng,
            report: Report::default(),
        })
    });
}

/// Removes the current thread's plan and returns what it did.
pub fn uninstall() -> Option<Report> {
    STATE.with(|s| s.borrow_mut().take().map(|st| st.report))
}

/// What the current thread's plan has done so far.
pub fn report() -> Option<Report> {
    STATE.with(|s| s.borrow().as_ref().map(|st| st.report.clone()))
}

/// What a wrapper does with the call it is about to make.
#[derive(Debug)]
pub(crate) enum Action {
    /// Make the call as asked.
    Pass,
    /// Return this error instead.
    Fail(io::Error),
    /// Make the call with at most this many bytes.
    Short(usize),
    /// (Waits) make the call, then report readiness that is not there.
    Spurious,
}

/// Decides the fate of the next `op` call on this thread (`len`: bytes asked for).
pub(crate) fn before(op: Op, len: usize) -> Action {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let Some(st) = s.as_mut() else {
            return Action::Pass;
        };
        let i = Op::ALL.iter().position(|&o| o == op).unwrap_or(0);
        let n = st.report.calls[i];
        st.report.calls[i] += 1;
        let mut chosen = st
            .plan
            .schedule
            .iter()
            .find(|&&(o, at, _)| o == op && at == n)
            .map(|&(_, _, f)| f);
        if chosen.is_none() {
            for &(o, f, p) in &st.plan.random {
                if o == op && unit(&mut st.rng) < p {
                    chosen = Some(f);
                    break;
                }
            }
        }
        let Some(f) = chosen else {
            return Action::Pass;
        };
        let action = match f {
            Fault::Short if len > 1 => {
                Action::Short(1 + (next(&mut st.rng) % (len as u64 - 1)) as usize)
            }
            Fault::Short => return Action::Pass,
            Fault::Spurious => Action::Spurious,
            f => match f.errno() {
                Some(e) => Action::Fail(io::Error::from_raw_os_error(e)),
                None => return Action::Pass,
            },
        };
        match st
            .report
            .injected
            .iter_mut()
            .find(|(o, g, _)| *o == op && *g == f)
        {
            Some(e) => e.2 += 1,
            None => st.report.injected.push((op, f, 1)),
        }
        action
    })
}

/// A random index below `n` from the current thread's plan (0 without a plan).
pub(crate) fn pick(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    STATE.with(|s| match s.borrow_mut().as_mut() {
        Some(st) => (next(&mut st.rng) % n as u64) as usize,
        None => 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_then_random_replays() {
        let plan = Plan {
            seed: 7,
            random: vec![(Op::Read, Fault::Short, 0.5)],
            schedule: vec![(Op::Read, 1, Fault::Reset)],
        };
        let run = || {
            install(plan.clone());
            let out: Vec<String> = (0..50)
                .map(|_| format!("{:?}", before(Op::Read, 100)))
                .collect();
            (out, uninstall().unwrap())
        };
        let (a, ra) = run();
        let (b, rb) = run();
        assert_eq!(a, b, "same seed, same faults");
        assert_eq!(ra, rb);
        assert!(a[1].contains("Fail"), "{}", a[1]);
        assert!(a.iter().any(|x| x.starts_with("Short")));
        assert!(a.iter().any(|x| x == "Pass"));
        assert_eq!(ra.calls[1], 50);
        assert!(matches!(before(Op::Read, 10), Action::Pass), "uninstalled");
    }
}
