//! The `epoll(7)` backend, level- or edge-triggered.
//!
//! Registration is one `epoll_ctl` per call; a wait returns only ready descriptors, so
//! its cost is O(ready), independent of how many idle descriptors are registered. The
//! token travels in `epoll_event.data.u64`, so no lookup is needed per event.
//!
//! # Translation
//! `EPOLLIN`/`EPOLLPRI` -> readable, `EPOLLOUT` -> writable, `EPOLLERR` -> error,
//! `EPOLLHUP` -> hang-up, `EPOLLRDHUP` -> read-closed. `EPOLLRDHUP` is requested with
//! read interest, so a peer's `shutdown(SHUT_WR)` is visible without a read.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{
    check_fd, check_token, pack, unpack, Backend, Capabilities, Events, Interest, Readiness,
    Reported, Selector, Token, Trigger,
};
use crate::sys::epoll::{
    empty_event, Epoll, EpollEvent, EPOLLERR, EPOLLET, EPOLLEXCLUSIVE, EPOLLHUP, EPOLLIN, EPOLLOUT,
    EPOLLPRI, EPOLLRDHUP,
};

/// How many events one `epoll_wait` can return.
const EVENTS_CAPACITY: usize = 1024;

/// The `epoll` backend (`epoll` = level-triggered, `epoll-et` = edge-triggered).
pub struct EpollSelector {
    ep: Epoll,
    trigger: Trigger,
    buf: Vec<EpollEvent>,
}

impl EpollSelector {
    /// Creates an epoll instance in `trigger` mode.
    ///
    /// # Errors
    ///
    /// epoll_create1 failed (out of descriptors or memory).
    pub fn new(trigger: Trigger) -> io::Result<EpollSelector> {
        let mut buf = Vec::with_capacity(EVENTS_CAPACITY);
        buf.resize(EVENTS_CAPACITY, empty_event());
        buf.clear();
        Ok(EpollSelector {
            ep: Epoll::new()?,
            trigger,
            buf,
        })
    }

    fn flags(&self, interest: Interest) -> u32 {
        let mut ev = 0;
        if interest.is_readable() {
            ev |= EPOLLIN | EPOLLRDHUP | EPOLLPRI;
        }
        if interest.is_writable() {
            ev |= EPOLLOUT;
        }
        if self.trigger == Trigger::Edge {
            ev |= EPOLLET;
        }
        ev as u32
    }
}

impl Selector for EpollSelector {
    fn backend(&self) -> Backend {
        match self.trigger {
            Trigger::Level => Backend::Epoll,
            Trigger::Edge => Backend::EpollEt,
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            trigger: self.trigger,
            max_fd: None,
            reports_error: true,
            reports_hangup: true,
            reports_read_closed: true,
            scalable: true,
        }
    }

    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        check_fd(fd)?;
        check_token(token)?;
        log::trace!("epoll register fd={fd} token={token:?} interest={interest:?}");
        self.ep.add(fd, self.flags(interest), pack(token, interest))
    }

    /// `EPOLLEXCLUSIVE` (Linux 4.5): of the epoll instances waiting on `fd`, the
    /// kernel wakes one (or a few) per event instead of all. Only `EPOLLIN`,
    /// `EPOLLOUT` and `EPOLLET` may go with it, so no `EPOLLRDHUP`/`EPOLLPRI`.
    fn register_exclusive(
        &mut self,
        fd: RawFd,
        token: Token,
        interest: Interest,
    ) -> io::Result<bool> {
        check_fd(fd)?;
        check_token(token)?;
        let mut ev = EPOLLEXCLUSIVE;
        if interest.is_readable() {
            ev |= EPOLLIN;
        }
        if interest.is_writable() {
            ev |= EPOLLOUT;
        }
        if self.trigger == Trigger::Edge {
            ev |= EPOLLET;
        }
        log::trace!("epoll register fd={fd} token={token:?} interest={interest:?} exclusive");
        self.ep.add(fd, ev as u32, pack(token, interest))?;
        Ok(true)
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        check_fd(fd)?;
        check_token(token)?;
        self.ep
            .modify(fd, self.flags(interest), pack(token, interest))
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.ep.delete(fd)
    }

    /// Closing the only reference to a file removes it from every epoll set
    /// (epoll(7), "Will closing a file descriptor cause it to be removed from all
    /// epoll interest lists?": yes, once all duplicates are closed): no `epoll_ctl`.
    fn deregister_before_close(&mut self, _fd: RawFd) -> io::Result<()> {
        Ok(())
    }

    fn select(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        if crate::sys::empty_on_eintr(self.ep.wait(&mut self.buf, timeout))?.is_none() {
            return Ok(());
        }
        for ev in &self.buf {
            let bits = ev.events as i32;
            let data = ev.u64;
            let (token, interest) = unpack(data);
            let seen = Reported {
                readable: bits & (EPOLLIN | EPOLLPRI) != 0,
                writable: bits & EPOLLOUT != 0,
                error: bits & EPOLLERR != 0,
                hangup: bits & EPOLLHUP != 0,
                read_closed: bits & EPOLLRDHUP != 0,
                priority: bits & EPOLLPRI != 0,
            };
            events.push(token, Readiness::translate(interest, seen));
        }
        Ok(())
    }
}
