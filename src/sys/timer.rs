//! A monotonic `timerfd` (feature `testkit`): a one-shot timer with nanosecond
//! resolution that a poller watches like any other descriptor (readable when it
//! fires). On `nix`.
//!
//! `poll(2)` and `epoll_wait(2)` take whole milliseconds; the lab's open-loop load
//! generator sends on a schedule finer than that, so it waits on a `timerfd` instead.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFlags, TimerSetTimeFlags};

use super::stats::{count, Syscall};

/// A non-blocking, close-on-exec `CLOCK_MONOTONIC` timer descriptor.
#[derive(Debug)]
pub struct TimerFd(nix::sys::timerfd::TimerFd);

impl TimerFd {
    /// Creates a disarmed timer.
    ///
    /// # Errors
    ///
    /// The kernel refused the descriptor (`EMFILE`, `ENFILE`, `ENOMEM`).
    pub fn new() -> io::Result<TimerFd> {
        count(Syscall::Other);
        let flags = TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC;
        Ok(TimerFd(nix::sys::timerfd::TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            flags,
        )?))
    }

    /// Arms the timer to fire once, `after` from now (`Duration::ZERO` fires at once:
    /// one nanosecond, since zero would disarm it).
    ///
    /// # Errors
    ///
    /// `timerfd_settime` failed (not expected for a valid descriptor).
    pub fn set_after(&self, after: Duration) -> io::Result<()> {
        let after = after.max(Duration::from_nanos(1));
        count(Syscall::Other);
        let when = Expiration::OneShot(TimeSpec::from_duration(after));
        self.0.set(when, TimerSetTimeFlags::empty())?;
        Ok(())
    }

    /// Disarms the timer.
    ///
    /// # Errors
    ///
    /// `timerfd_settime` failed (not expected for a valid descriptor).
    pub fn disarm(&self) -> io::Result<()> {
        count(Syscall::Other);
        self.0.unset()?;
        Ok(())
    }

    /// Reads the expiry count (clearing readiness); 0 if it has not fired.
    ///
    /// # Errors
    ///
    /// The read failed with something other than `WouldBlock`.
    pub fn drain(&self) -> io::Result<u64> {
        let mut buf = [0u8; 8];
        match super::read(self.0.as_fd(), &mut buf) {
            Ok(8) => Ok(u64::from_ne_bytes(buf)),
            Ok(_) => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }
}

impl AsFd for TimerFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn fires_once_after_the_delay() {
        let t = TimerFd::new().unwrap();
        assert_eq!(t.drain().unwrap(), 0, "a new timer is disarmed");
        let start = Instant::now();
        t.set_after(Duration::from_micros(300)).unwrap();
        let mut fired = 0;
        while fired == 0 && start.elapsed() < Duration::from_secs(5) {
            fired = t.drain().unwrap();
        }
        assert_eq!(fired, 1);
        assert!(start.elapsed() >= Duration::from_micros(300));
        t.set_after(Duration::from_secs(60)).unwrap();
        t.disarm().unwrap();
        assert_eq!(t.drain().unwrap(), 0);
    }
}
