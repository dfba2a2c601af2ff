//! The `select(2)` backend.
//!
//! Keeps two master `fd_set`s and a token per descriptor; each wait copies the masters
//! (select overwrites its arguments), waits, and scans descriptors `0..=max_fd`. Cost
//! per wait is O(highest descriptor) whatever is ready, and descriptors at or above
//! `FD_SETSIZE` (1024) are refused at registration: `FD_SET` on them would write past
//! the end of the set.
//!
//! # Translation
//! `select` has no error or hang-up bits: an error or hang-up marks the descriptor
//! readable and writable (per the interest), and `capabilities()` says that
//! `reports_error`, `reports_hangup` and `reports_read_closed` are false.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{
    unsupported, Backend, Capabilities, Events, Interest, Readiness, Reported, Selector, Token,
    Trigger,
};
use crate::sys::fdset::{self, FdSet, FD_SETSIZE};

/// The `select(2)` backend. Level-triggered only.
pub struct SelectSelector {
    read: FdSet,
    write: FdSet,
    /// `(token, interest)` per descriptor, indexed by descriptor.
    slots: Vec<Option<(Token, Interest)>>,
    max_fd: Option<RawFd>,
    /// Check at register time that a descriptor is open (one `fcntl`).
    check_open: bool,
}

impl SelectSelector {
    /// `select` failed with `EBADF`: a registered descriptor was closed without being
    /// unregistered (a caller bug). Reports each such key ready for its interest (select
    /// has no error bit; `poll` reports `POLLNVAL` as an error), so the owner's next
    /// call on it fails with `EBADF`, it unregisters the key and the loop goes on.
    /// If every registered descriptor is open by now, the closed one was reused
    /// before we looked (a race with another thread): nothing to report, the next
    /// wait sees the new state (a persistent `EBADF` would need a descriptor both
    /// open and closed, which cannot be; found by the fault injector, where failing
    /// the whole loop here took the server down).
    fn report_closed(&self, events: &mut Events, err: io::Error) -> io::Result<()> {
        for (fd, slot) in self.slots.iter().enumerate() {
            if let Some((token, interest)) = *slot {
                // `fd` < FD_SETSIZE, so it fits a RawFd.
                let fd = fd as RawFd;
                if crate::sys::check_open(fd).is_err() {
                    log::warn!("select: fd {fd} was closed while registered (EBADF)");
                    // No error bit in select: readable and writable, as the
                    // owner's next call then fails with EBADF.
                    let seen = Reported {
                        readable: true,
                        writable: true,
                        ..Reported::default()
                    };
                    events.push(token, Readiness::translate(interest, seen));
                }
            }
        }
        if events.is_empty() {
            log::warn!("select: {err}, but every registered descriptor is open; waiting again");
        }
        Ok(())
    }

    /// Creates the backend; only `Trigger::Level` is supported.
    ///
    /// # Errors
    ///
    /// `Unsupported` unless `trigger` is `Level`.
    pub fn new(trigger: Trigger) -> io::Result<SelectSelector> {
        if trigger != Trigger::Level {
            return Err(unsupported("select", trigger));
        }
        Ok(SelectSelector {
            read: FdSet::new(),
            write: FdSet::new(),
            slots: vec![None; FD_SETSIZE],
            max_fd: None,
            check_open: true,
        })
    }

    fn slot(&self, fd: RawFd) -> io::Result<usize> {
        super::check_fd(fd)?;
        if fd as usize >= FD_SETSIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "select backend cannot watch fd {fd}: select(2) only handles descriptors \
                     below FD_SETSIZE ({FD_SETSIZE}); use poll or epoll for more"
                ),
            ));
        }
        Ok(fd as usize)
    }

    fn set(&mut self, fd: RawFd, interest: Interest) -> io::Result<()> {
        self.read.remove(fd);
        self.write.remove(fd);
        if interest.is_readable() {
            self.read.insert(fd)?;
        }
        if interest.is_writable() {
            self.write.insert(fd)?;
        }
        Ok(())
    }
}

impl Selector for SelectSelector {
    fn backend(&self) -> Backend {
        Backend::Select
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            trigger: Trigger::Level,
            max_fd: Some(FD_SETSIZE),
            reports_error: false,
            reports_hangup: false,
            reports_read_closed: false,
            scalable: false,
        }
    }

    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let i = self.slot(fd)?;
        if self.slots[i].is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("fd {fd} is already registered"),
            ));
        }
        if self.check_open {
            crate::sys::check_open(fd)?;
        }
        self.set(fd, interest)?;
        self.slots[i] = Some((token, interest));
        self.max_fd = Some(self.max_fd.map_or(fd, |m| m.max(fd)));
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let i = self.slot(fd)?;
        if self.slots[i].is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("fd {fd} is not registered"),
            ));
        }
        self.set(fd, interest)?;
        self.slots[i] = Some((token, interest));
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let i = self.slot(fd)?;
        if self.slots[i].take().is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("fd {fd} is not registered"),
            ));
        }
        self.read.remove(fd);
        self.write.remove(fd);
        if self.max_fd == Some(fd) {
            self.max_fd = (0..fd).rev().find(|&f| self.slots[f as usize].is_some());
        }
        Ok(())
    }

    fn trust_open_descriptors(&mut self) {
        self.check_open = false;
    }

    fn select(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        let mut read = self.read;
        let mut write = self.write;
        let nfds = self.max_fd.map_or(0, |m| m as usize + 1);
        let res = fdset::select(nfds, &mut read, &mut write, timeout);
        let n = match crate::sys::empty_on_eintr(res) {
            Ok(Some(n)) => n,
            Ok(None) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBADF) => {
                return self.report_closed(events, e)
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(());
        }
        for fd in 0..nfds as RawFd {
            if let Some((token, interest)) = self.slots[fd as usize] {
                let r = read.contains(fd);
                let w = write.contains(fd);
                if r || w {
                    let seen = Reported {
                        readable: r,
                        writable: w,
                        ..Reported::default()
                    };
                    events.push(token, Readiness::translate(interest, seen));
                }
            }
        }
        Ok(())
    }
}
