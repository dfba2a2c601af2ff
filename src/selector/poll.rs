//! The `poll(2)` backend.
//!
//! Keeps a dense array of `pollfd` (what the kernel reads) beside a parallel array of
//! tokens, and an fd -> index map so deregistration is O(1) (swap-remove). Each wait
//! passes the whole array: cost is O(registered descriptors) whatever is ready, but
//! there is no `FD_SETSIZE` limit.
//!
//! # Translation
//! `POLLIN`/`POLLPRI` -> readable, `POLLOUT` -> writable, `POLLERR` -> error,
//! `POLLHUP` -> hang-up, `POLLRDHUP` -> read-closed, `POLLNVAL` (a descriptor closed
//! without being deregistered: a caller bug) -> error, logged.

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{
    unsupported, Backend, Capabilities, Events, Interest, Readiness, Reported, Selector, Token,
    Trigger,
};
use crate::sys::poll::{
    self as sys_poll, PollFd, POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI, POLLRDHUP,
};

/// The `poll(2)` backend. Level-triggered only.
pub struct PollSelector {
    fds: Vec<PollFd>,
    tokens: Vec<(Token, Interest)>,
    index: HashMap<RawFd, usize>,
    /// Check at register time that a descriptor is open (one `fcntl`).
    check_open: bool,
}

fn poll_events(interest: Interest) -> i16 {
    let mut ev = 0;
    if interest.is_readable() {
        ev |= POLLIN | POLLRDHUP | POLLPRI;
    }
    if interest.is_writable() {
        ev |= POLLOUT;
    }
    ev
}

impl PollSelector {
    /// Creates the backend; only `Trigger::Level` is supported.
    ///
    /// # Errors
    ///
    /// `Unsupported` unless `trigger` is `Level`.
    pub fn new(trigger: Trigger) -> io::Result<PollSelector> {
        if trigger != Trigger::Level {
            return Err(unsupported("poll", trigger));
        }
        Ok(PollSelector {
            fds: Vec::new(),
            tokens: Vec::new(),
            index: HashMap::new(),
            check_open: true,
        })
    }

    fn find(&self, fd: RawFd) -> io::Result<usize> {
        self.index.get(&fd).copied().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("fd {fd} is not registered"),
            )
        })
    }
}

impl Selector for PollSelector {
    fn backend(&self) -> Backend {
        Backend::Poll
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            trigger: Trigger::Level,
            max_fd: None,
            reports_error: true,
            reports_hangup: true,
            reports_read_closed: true,
            scalable: false,
        }
    }

    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        super::check_fd(fd)?;
        if self.index.contains_key(&fd) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("fd {fd} is already registered"),
            ));
        }
        if self.check_open {
            crate::sys::check_open(fd)?;
        }
        self.index.insert(fd, self.fds.len());
        self.fds.push(PollFd {
            fd,
            events: poll_events(interest),
            revents: 0,
        });
        self.tokens.push((token, interest));
        Ok(())
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        let i = self.find(fd)?;
        self.fds[i].events = poll_events(interest);
        self.tokens[i] = (token, interest);
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let i = self.find(fd)?;
        self.index.remove(&fd);
        self.fds.swap_remove(i);
        self.tokens.swap_remove(i);
        if let Some(moved) = self.fds.get(i) {
            self.index.insert(moved.fd, i);
        }
        Ok(())
    }

    fn trust_open_descriptors(&mut self) {
        self.check_open = false;
    }

    fn select(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        let Some(n) = crate::sys::empty_on_eintr(sys_poll::poll(&mut self.fds, timeout))? else {
            return Ok(());
        };
        let mut left = n;
        for (pfd, &(token, interest)) in self.fds.iter().zip(&self.tokens) {
            if left == 0 {
                break;
            }
            let re = pfd.revents;
            if re == 0 {
                continue;
            }
            left -= 1;
            if re & POLLNVAL != 0 {
                log::warn!("poll: fd {} was closed while registered (POLLNVAL)", pfd.fd);
            }
            let seen = Reported {
                readable: re & (POLLIN | POLLPRI) != 0,
                writable: re & POLLOUT != 0,
                error: re & (POLLERR | POLLNVAL) != 0,
                hangup: re & POLLHUP != 0,
                read_closed: re & POLLRDHUP != 0,
                priority: re & POLLPRI != 0,
            };
            events.push(token, Readiness::translate(interest, seen));
        }
        Ok(())
    }
}
