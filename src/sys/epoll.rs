//! `epoll_create1`, `epoll_ctl` and `epoll_wait`.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::syscall;

pub use libc::epoll_event as EpollEvent;
pub use libc::{
    EPOLLERR, EPOLLET, EPOLLEXCLUSIVE, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLPRI, EPOLLRDHUP,
};

/// An owned epoll instance (closed on drop).
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

/// An empty event, for sizing the events buffer.
pub fn empty_event() -> EpollEvent {
    EpollEvent { events: 0, u64: 0 }
}

impl Epoll {
    /// `epoll_create1(EPOLL_CLOEXEC)`.
    ///
    /// # Errors
    ///
    /// The kernel refused (`EMFILE`, `ENFILE`, `ENOMEM`).
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: no pointer arguments.
        let fd = syscall!(Other, epoll_create1(libc::EPOLL_CLOEXEC))?;
        Ok(Epoll {
            fd: super::owned(fd),
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        let mut ev = EpollEvent { events, u64: data };
        // SAFETY: `ev` is a valid epoll_event that outlives the call (the kernel copies it).
        syscall!(Ctl, epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev))?;
        Ok(())
    }

    /// `EPOLL_CTL_ADD`.
    ///
    /// # Errors
    ///
    /// The kernel's error: `EEXIST` (already added), `EBADF`, `EPERM` (a regular file),
    /// `ENOMEM`/`ENOSPC`.
    pub fn add(&self, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, data)
    }

    /// `EPOLL_CTL_MOD`.
    ///
    /// # Errors
    ///
    /// The kernel's error: `ENOENT` (not added), `EBADF`, `EINVAL` (an
    /// `EPOLLEXCLUSIVE` registration).
    pub fn modify(&self, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, data)
    }

    /// `EPOLL_CTL_DEL`.
    ///
    /// # Errors
    ///
    /// The kernel's error: `ENOENT` (not added), `EBADF` (closed).
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// `epoll_wait` into the spare capacity of `events` (which is cleared first and
    /// never grown: its capacity is the most events one call returns).
    ///
    /// # Errors
    ///
    /// The kernel's error, `EINTR` included (the selector maps it to no events).
    pub fn wait(&self, events: &mut Vec<EpollEvent>, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        #[cfg(feature = "fault-injection")]
        let spurious = super::fault_wait!();
        let cap = events.capacity().clamp(1, i32::MAX as usize);
        if events.capacity() == 0 {
            events.reserve(1);
        }
        // SAFETY: the buffer has room for `cap` events; the kernel writes at most that
        // many, and we set the length to exactly how many it wrote.
        let n = syscall!(
            Wait,
            epoll_wait(
                self.fd.as_raw_fd(),
                events.as_mut_ptr(),
                cap as libc::c_int,
                super::timeout_ms(timeout)
            )
        )?;
        // SAFETY: the kernel initialised the first `n` (<= cap) entries.
        unsafe { events.set_len(n as usize) };
        #[cfg(feature = "fault-injection")]
        if spurious && !events.is_empty() {
            let i = super::fault::pick(events.len());
            events[i].events |= (EPOLLIN | EPOLLOUT) as u32;
        }
        Ok(())
    }
}

impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
