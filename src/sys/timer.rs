//! A monotonic `timerfd`: a one-shot timer with nanosecond resolution that a poller
//! watches like any other descriptor (readable when it fires).
//!
//! `poll(2)` and `epoll_wait(2)` take whole milliseconds; the lab's open-loop load
//! generator sends on a schedule finer than that, so it waits on a `timerfd` instead.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use super::{owned, syscall};

/// A non-blocking, close-on-exec `CLOCK_MONOTONIC` timer descriptor.
#[derive(Debug)]
pub struct TimerFd(OwnedFd);

impl TimerFd {
    /// Creates a disarmed timer.
    pub fn new() -> io::Result<TimerFd> {
        // SAFETY: no pointer arguments; the kernel returns a new descriptor or -1.
        let fd = syscall!(
            Other,
            timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC
            )
        )?;
        Ok(TimerFd(owned(fd)))
    }

    /// Arms the timer to fire once, `after` from now (`Duration::ZERO` fires at once:
    /// one nanosecond, since zero would disarm it).
    pub fn set_after(&self, after: Duration) -> io::Result<()> {
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        self.settime(&spec)
    }

    /// Disarms the timer.
    pub fn disarm(&self) -> io::Result<()> {
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        self.settime(&libc::itimerspec {
            it_interval: zero,
            it_value: zero,
        })
    }

    fn settime(&self, spec: &libc::itimerspec) -> io::Result<()> {
        // SAFETY: `spec` is a valid itimerspec that outlives the call; the old value
        // is not asked for (null); the descriptor is owned, so open.
        syscall!(
            Other,
            timerfd_settime(self.0.as_raw_fd(), 0, spec, std::ptr::null_mut())
        )?;
        Ok(())
    }

    /// Reads the expiry count (clearing readiness); 0 if it has not fired.
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
        self.0.as_raw_fd()
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
