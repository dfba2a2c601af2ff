//! Syscall accounting: counts per kind, cheap and off unless enabled.
//!
//! The counters are process-wide relaxed atomics. While disabled (the default) a
//! wrapper pays one relaxed load of a boolean. The lab enables counting around a
//! measurement and divides by the number of requests to report syscalls per request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// The kinds of syscall the crate makes and counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Syscall {
    /// `select(2)`, `poll(2)`, `epoll_wait(2)`, or the wait of a crate backend.
    Wait,
    /// `epoll_ctl(2)` and the registration calls of crate backends.
    Ctl,
    /// `read`/`recv`/`recvfrom`.
    Read,
    /// `write`/`send`/`sendto`/`sendfile`.
    Write,
    /// `accept4(2)`.
    Accept,
    /// `close(2)`, `shutdown(2)`.
    Close,
    /// Epoll instance creation, `eventfd`, `fcntl`, `setsockopt` and the rest.
    Other,
    /// Not a syscall: how many calls returned `EAGAIN`/`EWOULDBLOCK`.
    WouldBlock,
    /// Not a syscall: how many waits returned no event at all (timeouts, spurious wake-ups).
    EmptyWait,
}

impl Syscall {
    /// Every kind, in display order.
    pub const ALL: [Syscall; 9] = [
        Syscall::Wait,
        Syscall::Ctl,
        Syscall::Read,
        Syscall::Write,
        Syscall::Accept,
        Syscall::Close,
        Syscall::Other,
        Syscall::WouldBlock,
        Syscall::EmptyWait,
    ];

    /// Short lowercase name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Syscall::Wait => "wait",
            Syscall::Ctl => "ctl",
            Syscall::Read => "read",
            Syscall::Write => "write",
            Syscall::Accept => "accept",
            Syscall::Close => "close",
            Syscall::Other => "other",
            Syscall::WouldBlock => "eagain",
            Syscall::EmptyWait => "empty_wait",
        }
    }

    /// Whether this kind is a real syscall (the last two are outcomes of other calls).
    pub fn is_syscall(self) -> bool {
        !matches!(self, Syscall::WouldBlock | Syscall::EmptyWait)
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static COUNTS: [AtomicU64; 9] = [const { AtomicU64::new(0) }; 9];

/// Turns counting on or off for the whole process.
pub fn enable(on: bool) {
    ENABLED.store(on, Relaxed);
}

/// Whether counting is on.
pub fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// Counts one event of `kind` if counting is enabled.
#[inline]
pub fn count(kind: Syscall) {
    if ENABLED.load(Relaxed) {
        COUNTS[kind as usize].fetch_add(1, Relaxed);
    }
}

/// Counts an `EAGAIN` outcome.
#[inline]
pub fn note_error(e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::WouldBlock {
        count(Syscall::WouldBlock);
    }
}

/// A snapshot of all counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts(pub [u64; 9]);

impl Counts {
    /// The count of one kind.
    pub fn get(&self, kind: Syscall) -> u64 {
        self.0[kind as usize]
    }

    /// Total real syscalls (excluding the `WouldBlock`/`EmptyWait` outcome counters).
    pub fn syscalls(&self) -> u64 {
        Syscall::ALL
            .iter()
            .filter(|k| k.is_syscall())
            .map(|k| self.get(*k))
            .sum()
    }

    /// Counter-wise difference `self - earlier`.
    pub fn since(&self, earlier: &Counts) -> Counts {
        let mut out = [0; 9];
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.0[i].saturating_sub(earlier.0[i]);
        }
        Counts(out)
    }
}

/// Reads all counters.
pub fn snapshot() -> Counts {
    let mut out = [0; 9];
    for (i, o) in out.iter_mut().enumerate() {
        *o = COUNTS[i].load(Relaxed);
    }
    Counts(out)
}
