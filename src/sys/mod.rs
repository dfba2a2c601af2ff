//! The thin OS layer: the only module of the crate that contains `unsafe`.
//!
//! Every wrapper here turns a raw `libc` call into a safe function that takes
//! and returns owned or borrowed file descriptors and `io::Result`s. Layers above
//! (`selector`, `reactor`, `net`) never call `libc` directly.
//!
//! Each wrapper also bumps a per-kind syscall counter (see [`stats`]) when counting
//! is enabled, so the lab can report syscalls per request without `strace`.

pub mod epoll;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod fdset;
pub mod file;
pub mod listen;
pub mod poll;
pub(crate) mod polling_ext;
pub mod process;
pub mod socket;
pub mod stats;
pub mod timer;
pub mod waker;

/// Calls a `libc` function, counts it, and turns `-1` into `io::Error::last_os_error()`.
///
/// ```ignore
/// let fd = syscall!(Epoll, epoll_create1(libc::EPOLL_CLOEXEC))?;
/// ```
macro_rules! syscall {
    ($kind:ident, $fn:ident ( $($arg:expr),* $(,)? ) ) => {{
        $crate::sys::stats::count($crate::sys::stats::Syscall::$kind);
        // SAFETY: every call site passes arguments that satisfy the libc function's
        // contract; each caller states why in its own SAFETY comment.
        #[allow(unused_unsafe)]
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use syscall;

/// Fault injection hook for a call that moves `$len` bytes: returns the injected
/// error from the enclosing function, or evaluates to how many bytes to ask for.
/// Only with the `fault-injection` feature.
#[cfg(feature = "fault-injection")]
macro_rules! fault_len {
    ($op:ident, $len:expr) => {
        match $crate::sys::fault::before($crate::sys::fault::Op::$op, $len) {
            $crate::sys::fault::Action::Fail(e) => return Err(e),
            $crate::sys::fault::Action::Short(n) => n,
            _ => $len,
        }
    };
}
#[cfg(feature = "fault-injection")]
pub(crate) use fault_len;

/// Fault injection hook for a wait: returns the injected error from the enclosing
/// function, or evaluates to whether to add a spurious readiness after the wait.
#[cfg(feature = "fault-injection")]
macro_rules! fault_wait {
    () => {
        match $crate::sys::fault::before($crate::sys::fault::Op::Wait, 0) {
            $crate::sys::fault::Action::Fail(e) => return Err(e),
            $crate::sys::fault::Action::Spurious => true,
            _ => false,
        }
    };
}
#[cfg(feature = "fault-injection")]
pub(crate) use fault_wait;

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Converts a timeout to whole milliseconds for `poll`/`epoll_wait`:
/// `None` is -1 (wait forever), anything else rounds *up* (so a 0.2 ms timer does not
/// turn into a busy spin of zero-timeout waits) and clamps to `i32::MAX`.
pub fn timeout_ms(timeout: Option<Duration>) -> i32 {
    match timeout {
        None => -1,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            i32::try_from(ms).unwrap_or(i32::MAX)
        }
    }
}

/// The one place where a readiness wait's `EINTR` becomes "no events" (the
/// [`Selector`](crate::selector::Selector) contract): `Ok(None)` if a signal
/// interrupted the wait, the result itself otherwise. The caller returns an empty
/// event list and its loop waits again with a freshly computed timeout, so a signal
/// neither fails the loop nor delays a timer.
///
/// # Errors
///
/// `res`'s error, unless it is `EINTR`.
pub fn empty_on_eintr<T>(res: std::io::Result<T>) -> std::io::Result<Option<T>> {
    match res {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(None),
        Err(e) => Err(e),
    }
}

/// Runs the wait of a backend crate (`mio`, `polling`) the way the hand-written
/// waits run: counted as one [`Syscall::Wait`](stats::Syscall::Wait), seen by the
/// fault injector (which can only fail it here: the crate owns the event list, so
/// no spurious readiness), and `EINTR` turned into `Ok(None)` by [`empty_on_eintr`].
///
/// # Errors
///
/// The wait's error (or an injected one), unless it is `EINTR`.
pub(crate) fn crate_wait<T>(
    wait: impl FnOnce() -> std::io::Result<T>,
) -> std::io::Result<Option<T>> {
    stats::count(stats::Syscall::Wait);
    #[cfg(feature = "fault-injection")]
    if let fault::Action::Fail(e) = fault::before(fault::Op::Wait, 0) {
        return empty_on_eintr(Err(e));
    }
    empty_on_eintr(wait())
}

/// Wraps a freshly returned descriptor.
///
/// Only call with a descriptor that the kernel just returned to us and that nobody
/// else owns.
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass a descriptor that a syscall has just returned, which
    // therefore is open and owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Borrows a raw descriptor that the caller knows to be open for the duration of the
/// borrow (the selector layer keeps registered descriptors open: "deregister before close").
pub(crate) fn borrow_raw<'a>(fd: RawFd) -> BorrowedFd<'a> {
    // SAFETY: the selector contract requires callers to deregister a descriptor before
    // they close it, so a registered descriptor is open while we use the borrow.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Checks that `fd` is an open descriptor of this process (`fcntl(F_GETFD)`, counted
/// as a registration call): `select` and `poll` keep their interest sets in user space,
/// so without this they would accept any number and fail (or report `POLLNVAL`) later.
pub fn check_open(fd: RawFd) -> std::io::Result<()> {
    if fd < 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("invalid fd {fd}"),
        ));
    }
    // SAFETY: F_GETFD only reads the descriptor's flags; any number is acceptable
    // (one that is not open yields EBADF) and no memory is passed.
    syscall!(Ctl, fcntl(fd, libc::F_GETFD)).map(|_| ())
}

/// Puts a descriptor in non-blocking mode (one `fcntl` when already set is skipped).
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> std::io::Result<()> {
    let raw = fd.as_raw_fd();
    let flags = syscall!(Other, fcntl(raw, libc::F_GETFL))?;
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        syscall!(Other, fcntl(raw, libc::F_SETFL, new))?;
    }
    Ok(())
}

/// Returns the per-process soft limit on open descriptors (`RLIMIT_NOFILE`).
pub fn nofile_limit() -> std::io::Result<(u64, u64)> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable rlimit struct.
    syscall!(Other, getrlimit(libc::RLIMIT_NOFILE, &mut rl))?;
    Ok((rl.rlim_cur, rl.rlim_max))
}

/// Sets the soft limit on open descriptors (up to the hard limit).
pub fn set_nofile_limit(soft: u64) -> std::io::Result<()> {
    let (_, hard) = nofile_limit()?;
    let rl = libc::rlimit {
        rlim_cur: soft.min(hard),
        rlim_max: hard,
    };
    // SAFETY: `rl` is a valid rlimit struct that outlives the call.
    syscall!(Other, setrlimit(libc::RLIMIT_NOFILE, &rl))?;
    Ok(())
}

/// `read(2)` on a raw descriptor into `buf`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` writable bytes; `fd` is borrowed, so open.
    let n = syscall!(
        Read,
        read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
    )
    .inspect_err(stats::note_error)?;
    Ok(n as usize)
}

/// `write(2)` on a raw descriptor.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` readable bytes; `fd` is borrowed, so open.
    let n = syscall!(Write, write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()))
        .inspect_err(stats::note_error)?;
    Ok(n as usize)
}

/// Creates a pipe with both ends non-blocking and close-on-exec.
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
    syscall!(
        Other,
        pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC)
    )?;
    Ok((owned(fds[0]), owned(fds[1])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_rounds_up_and_clamps() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1500))), 2);
        assert_eq!(timeout_ms(Some(Duration::from_millis(7))), 7);
        assert_eq!(timeout_ms(Some(Duration::from_secs(u64::MAX))), i32::MAX);
    }
}
