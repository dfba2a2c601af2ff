//! The `polling` adapter: a reference backend over the `polling` crate (epoll on
//! Linux), level-triggered under the name `polling`; it can also run edge-triggered.
//!
//! # Translation
//! `readable` -> readable, `writable` -> writable, `is_err()` -> error,
//! `is_interrupt()` (EPOLLHUP) -> hang-up. `polling` does not expose EPOLLRDHUP, so
//! `reports_read_closed` is false: a half-close shows as readable (a read returns 0).

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use polling::{Event, PollMode, Poller};

use super::{
    check_fd, check_token, pack, unpack, Backend, Capabilities, Events, Interest, Readiness,
    Reported, Selector, Token, Trigger,
};
use crate::sys::stats::{count, Syscall};

/// The `polling` backend.
pub struct PollingSelector {
    poller: Poller,
    mode: PollMode,
    trigger: Trigger,
    buf: polling::Events,
}

fn event(token: Token, interest: Interest) -> Event {
    let mut ev = Event::none(pack(token, interest) as usize);
    ev.readable = interest.is_readable();
    ev.writable = interest.is_writable();
    ev
}

// `polling` wraps the descriptor in a `BorrowedFd`, which panics on -1: `check_fd`
// refuses negative descriptors with an error first.

impl PollingSelector {
    /// Creates a `polling::Poller` in `trigger` mode.
    ///
    /// # Errors
    ///
    /// `Unsupported` if the poller cannot run `trigger`; `Poller::new` failed (out of
    /// descriptors).
    pub fn new(trigger: Trigger) -> io::Result<PollingSelector> {
        let poller = Poller::new()?;
        let mode = match trigger {
            Trigger::Level => PollMode::Level,
            Trigger::Edge => PollMode::Edge,
        };
        let supported = match trigger {
            Trigger::Level => poller.supports_level(),
            Trigger::Edge => poller.supports_edge(),
        };
        if !supported {
            return Err(super::unsupported("polling", trigger));
        }
        Ok(PollingSelector {
            poller,
            mode,
            trigger,
            buf: polling::Events::new(),
        })
    }
}

impl Selector for PollingSelector {
    fn backend(&self) -> Backend {
        Backend::Polling
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            trigger: self.trigger,
            max_fd: None,
            reports_error: true,
            reports_hangup: true,
            reports_read_closed: false,
            scalable: true,
        }
    }

    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        check_fd(fd)?;
        check_token(token)?;
        crate::sys::polling_ext::add(&self.poller, fd, event(token, interest), self.mode)
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        check_fd(fd)?;
        check_token(token)?;
        count(Syscall::Ctl);
        self.poller.modify_with_mode(
            crate::sys::borrow_raw(fd),
            event(token, interest),
            self.mode,
        )
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        check_fd(fd)?;
        count(Syscall::Ctl);
        self.poller.delete(crate::sys::borrow_raw(fd))
    }

    fn select(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        self.buf.clear();
        let (poller, buf) = (&self.poller, &mut self.buf);
        if crate::sys::crate_wait(|| poller.wait(buf, timeout))?.is_none() {
            return Ok(());
        }
        for ev in self.buf.iter() {
            let (token, interest) = unpack(ev.key as u64);
            let seen = Reported {
                readable: ev.readable,
                writable: ev.writable,
                error: ev.is_err().unwrap_or(false),
                hangup: ev.is_interrupt(),
                read_closed: false,
                priority: false,
            };
            events.push(token, Readiness::translate(interest, seen));
        }
        Ok(())
    }
}
