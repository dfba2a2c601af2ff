//! The thin OS layer: the only module of the crate that contains `unsafe`.
//!
//! Every wrapper here turns a raw system call into a safe function that takes
//! and returns owned or borrowed file descriptors and `io::Result`s. Layers above
//! (`selector`, `reactor`, `net`) never call `libc` or `nix` directly.
//!
//! The readiness core is written by hand on `libc`: `select` and its `fd_set`,
//! `poll`, `epoll` (crate-private modules: a user reaches them through
//! [`selector`](crate::selector)), and the data-path calls the fault injector wraps
//! (`accept4`, `send`, `recv`, `read`, `write`). What is not the point of the project goes
//! through `nix`, which removes the hand-written `unsafe`: socket options,
//! `getsockname`, `socket`/`bind`, `sendfile`, `eventfd`, pipes, `fcntl`, and the
//! test kit's process calls. Either way each call is counted (see [`stats`]).
//!
//! Feature `testkit` (on for this crate's own tests, benches and examples, off for
//! users) adds what only the lab and the tests need: `process`, `timer`, the
//! descriptor-limit calls and a few socket helpers (`set_linger_zero`,
//! `set_buffer_sizes`, `send_urgent`, `send_with_fd`).
//!
//! Each wrapper also bumps a per-kind syscall counter (see [`stats`]) when counting
//! is enabled, so the lab can report syscalls per request without `strace`.

pub(crate) mod epoll;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub(crate) mod fdset;
pub(crate) mod file;
pub mod listen;
pub(crate) mod poll;
pub(crate) mod polling_ext;
#[cfg(feature = "testkit")]
pub mod process;
pub mod socket;
pub mod stats;
#[cfg(feature = "testkit")]
pub mod timer;
pub(crate) mod waker;

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
///
/// # Errors
///
/// `InvalidInput` for a negative number, `EBADF` for one that is not open.
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
///
/// # Errors
///
/// `fcntl` failed (not expected for a borrowed, hence open, descriptor).
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    stats::count(stats::Syscall::Other);
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    let new = if on {
        flags | OFlag::O_NONBLOCK
    } else {
        flags - OFlag::O_NONBLOCK
    };
    if new != flags {
        stats::count(stats::Syscall::Other);
        fcntl(fd, FcntlArg::F_SETFL(new))?;
    }
    Ok(())
}

/// Returns the per-process soft and hard limits on open descriptors
/// (`RLIMIT_NOFILE`). Feature `testkit`.
///
/// # Errors
///
/// `getrlimit` failed (not expected).
#[cfg(feature = "testkit")]
pub fn nofile_limit() -> std::io::Result<(u64, u64)> {
    use nix::sys::resource::{getrlimit, Resource};
    stats::count(stats::Syscall::Other);
    Ok(getrlimit(Resource::RLIMIT_NOFILE)?)
}

/// Sets the soft limit on open descriptors (up to the hard limit). Feature `testkit`.
///
/// # Errors
///
/// `getrlimit` or `setrlimit` failed.
#[cfg(feature = "testkit")]
pub fn set_nofile_limit(soft: u64) -> std::io::Result<()> {
    use nix::sys::resource::{setrlimit, Resource};
    let (_, hard) = nofile_limit()?;
    stats::count(stats::Syscall::Other);
    setrlimit(Resource::RLIMIT_NOFILE, soft.min(hard), hard)?;
    Ok(())
}

/// `read(2)` on a raw descriptor into `buf`.
///
/// # Errors
///
/// The kernel's error (`WouldBlock` on an empty non-blocking descriptor, counted as
/// [`Syscall::WouldBlock`](stats::Syscall::WouldBlock)).
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
///
/// # Errors
///
/// The kernel's error (`WouldBlock` on a full non-blocking descriptor, `EPIPE`).
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` readable bytes; `fd` is borrowed, so open.
    let n = syscall!(Write, write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()))
        .inspect_err(stats::note_error)?;
    Ok(n as usize)
}

/// Creates a pipe with both ends non-blocking and close-on-exec.
///
/// # Errors
///
/// The kernel refused (out of descriptors).
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::OFlag;
    stats::count(stats::Syscall::Other);
    Ok(nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eintr_is_no_events_and_other_errors_stay() {
        use std::io::Error;
        assert_eq!(empty_on_eintr(Ok(3)).unwrap(), Some(3));
        let eintr = Error::from_raw_os_error(libc::EINTR);
        assert_eq!(empty_on_eintr::<usize>(Err(eintr)).unwrap(), None);
        let ebadf = Error::from_raw_os_error(libc::EBADF);
        let err = empty_on_eintr::<usize>(Err(ebadf)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn crate_wait_counts_one_wait() {
        let before = stats::snapshot();
        let was = stats::enabled();
        stats::enable(true);
        let got = crate_wait(|| Ok(7));
        let eintr = crate_wait::<()>(|| Err(std::io::Error::from_raw_os_error(libc::EINTR)));
        stats::enable(was);
        assert_eq!(got.unwrap(), Some(7));
        assert_eq!(eintr.unwrap(), None);
        // Other tests may count in parallel: at least our two.
        let waits = stats::snapshot().since(&before).get(stats::Syscall::Wait);
        assert!(waits >= 2, "{waits}");
    }

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
