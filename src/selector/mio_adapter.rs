//! The `mio` adapter: a reference backend over the `mio` crate (edge-triggered epoll
//! on Linux). Useful to check that the hand-written backends behave like a
//! well-known library, and as a contender in the lab.
//!
//! # Translation
//! `is_readable` -> readable, `is_writable` -> writable, `is_error` -> error,
//! `is_read_closed && is_write_closed` -> hang-up, `is_read_closed` -> read-closed.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use mio::unix::SourceFd;

use super::{
    check_fd, check_token, pack, unpack, unsupported, Backend, Capabilities, Events, Interest,
    Readiness, Reported, Selector, Token, Trigger,
};
use crate::sys::stats::{count, Syscall};

/// The `mio` backend. Edge-triggered only: mio has no level mode.
pub struct MioSelector {
    poll: mio::Poll,
    buf: mio::Events,
}

fn to_mio(interest: Interest) -> mio::Interest {
    match (interest.is_readable(), interest.is_writable()) {
        (true, true) => mio::Interest::READABLE | mio::Interest::WRITABLE | mio::Interest::PRIORITY,
        (true, false) => mio::Interest::READABLE | mio::Interest::PRIORITY,
        _ => mio::Interest::WRITABLE,
    }
}

impl MioSelector {
    /// Creates a `mio::Poll`; only `Trigger::Edge` is supported.
    ///
    /// # Errors
    ///
    /// `Unsupported` unless `trigger` is `Edge`; `mio::Poll::new` failed (out of
    /// descriptors).
    pub fn new(trigger: Trigger) -> io::Result<MioSelector> {
        if trigger != Trigger::Edge {
            return Err(unsupported("mio", trigger));
        }
        Ok(MioSelector {
            poll: mio::Poll::new()?,
            buf: mio::Events::with_capacity(1024),
        })
    }
}

impl Selector for MioSelector {
    fn backend(&self) -> Backend {
        Backend::Mio
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            trigger: Trigger::Edge,
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
        count(Syscall::Ctl);
        let data = pack(token, interest) as usize;
        self.poll
            .registry()
            .register(&mut SourceFd(&fd), mio::Token(data), to_mio(interest))
    }

    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()> {
        check_fd(fd)?;
        check_token(token)?;
        count(Syscall::Ctl);
        let data = pack(token, interest) as usize;
        self.poll
            .registry()
            .reregister(&mut SourceFd(&fd), mio::Token(data), to_mio(interest))
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        count(Syscall::Ctl);
        self.poll.registry().deregister(&mut SourceFd(&fd))
    }

    fn select(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        // mio rounds sub-millisecond timeouts up itself.
        let (poll, buf) = (&mut self.poll, &mut self.buf);
        if crate::sys::crate_wait(|| poll.poll(buf, timeout))?.is_none() {
            return Ok(());
        }
        for ev in self.buf.iter() {
            let (token, interest) = unpack(ev.token().0 as u64);
            let seen = Reported {
                readable: ev.is_readable(),
                writable: ev.is_writable(),
                error: ev.is_error(),
                hangup: ev.is_read_closed() && ev.is_write_closed(),
                read_closed: ev.is_read_closed(),
                priority: ev.is_priority(),
            };
            events.push(token, Readiness::translate(interest, seen));
        }
        Ok(())
    }
}
