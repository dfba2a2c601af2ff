//! The descriptor behind a cross-thread waker: an `eventfd`, or a pipe where eventfd
//! is not available.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::eventfd::{EfdFlags, EventFd};

/// A descriptor pair that becomes readable when [`WakeFd::wake`] is called and stops
/// being readable after [`WakeFd::reset`].
#[derive(Debug)]
pub enum WakeFd {
    /// One eventfd used for both ends.
    EventFd(OwnedFd),
    /// A non-blocking pipe: (read end, write end).
    Pipe(OwnedFd, OwnedFd),
}

impl WakeFd {
    /// Creates an eventfd, or a pipe if eventfd fails (e.g. ENOSYS).
    ///
    /// # Errors
    ///
    /// Neither an eventfd nor a pipe could be created (out of descriptors).
    pub fn new() -> io::Result<WakeFd> {
        super::stats::count(super::stats::Syscall::Other);
        match EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK) {
            Ok(fd) => Ok(WakeFd::EventFd(fd.into())),
            Err(e) => {
                log::debug!("eventfd failed ({e}); falling back to a pipe");
                Self::new_pipe()
            }
        }
    }

    /// Forces the pipe variant (used by tests to cover the fallback).
    ///
    /// # Errors
    ///
    /// The pipe could not be created (out of descriptors).
    pub fn new_pipe() -> io::Result<WakeFd> {
        let (r, w) = super::pipe()?;
        Ok(WakeFd::Pipe(r, w))
    }

    /// The descriptor to register for readability.
    pub fn read_fd(&self) -> RawFd {
        match self {
            WakeFd::EventFd(fd) | WakeFd::Pipe(fd, _) => fd.as_raw_fd(),
        }
    }

    fn write_end(&self) -> BorrowedFd<'_> {
        match self {
            WakeFd::EventFd(fd) | WakeFd::Pipe(_, fd) => fd.as_fd(),
        }
    }

    /// Makes the read side readable. A full pipe or a saturated eventfd already is
    /// readable, so `WouldBlock` counts as success.
    ///
    /// # Errors
    ///
    /// The write failed otherwise (not expected while the descriptor is open).
    pub fn wake(&self) -> io::Result<()> {
        let one: u64 = 1;
        let bytes = one.to_ne_bytes();
        let buf: &[u8] = match self {
            WakeFd::EventFd(_) => &bytes,
            WakeFd::Pipe(..) => &bytes[..1],
        };
        match super::write(self.write_end(), buf) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Drains the read side so it stops being readable.
    ///
    /// # Errors
    ///
    /// A read failed with something other than `WouldBlock` or `EINTR`.
    pub fn reset(&self) -> io::Result<()> {
        let mut buf = [0u8; 64];
        let fd = super::borrow_raw(self.read_fd());
        loop {
            match super::read(fd, &mut buf) {
                // An eventfd read returns 8 bytes and zeroes the counter: done.
                Ok(8) if matches!(self, WakeFd::EventFd(_)) => return Ok(()),
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventfd_and_pipe_wake_and_reset() {
        for w in [WakeFd::new().unwrap(), WakeFd::new_pipe().unwrap()] {
            w.wake().unwrap();
            w.wake().unwrap();
            w.reset().unwrap();
            // Nothing left to read after a reset.
            let mut buf = [0u8; 8];
            let err = super::super::read(super::super::borrow_raw(w.read_fd()), &mut buf);
            assert_eq!(err.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        }
    }
}
