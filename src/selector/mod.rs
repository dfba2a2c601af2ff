//! Readiness selectors: one typed interface over `select`, `poll`, `epoll` (level- and
//! edge-triggered), and the `mio` and `polling` crates.
//!
//! The layer has two halves, like CPython's `selectors` module:
//!
//! * [`Selector`] is the kernel side, one implementation per backend: register,
//!   reregister and deregister a descriptor under a [`Token`], and wait for readiness.
//!   A backend knows nothing about user data or callbacks.
//! * [`KeyedSelector`] is the shared registry on top: it owns the keys
//!   ([`SelectorKey`]: descriptor, interest, user data), hands out generation-stamped
//!   tokens, keeps the fd -> key map, and offers Python's `register` / `modify` /
//!   `unregister` / `select` / `get_key` shape, typed (Python's `get_map()` mapping
//!   is [`KeyedSelector::registrations`], an iterator over the keys).
//!
//! # Choosing a backend
//!
//! Backends are chosen at run time by name ([`Backend`]): `select`, `poll`, `epoll`,
//! `epoll-et`, `mio`, `polling`. [`Backend::best`] is the platform's best (epoll-et
//! on Linux), the reactor's default, whose handlers read until `WouldBlock`.
//! Python's `DefaultSelector()` is [`KeyedSelector::best`], level-triggered as Python's:
//! [`Backend::best_level`] (epoll on Linux); edge-triggered selectors are opened by
//! name or with [`KeyedSelector::best_edge`].
//!
//! | backend    | trigger | cost of one wait          | descriptor limit      |
//! |------------|---------|---------------------------|-----------------------|
//! | `select`   | level   | O(highest fd), sets copied | fd < `FD_SETSIZE` (1024) |
//! | `poll`     | level   | O(registered fds)          | none (RLIMIT_NOFILE)  |
//! | `epoll`    | level   | O(ready fds)               | none                  |
//! | `epoll-et` | edge    | O(ready fds)               | none                  |
//! | `mio`      | edge    | O(ready fds) (epoll)       | none                  |
//! | `polling`  | level   | O(ready fds) (epoll)       | none                  |
//!
//! # Readiness translation
//!
//! Every backend maps what the kernel says into [`Readiness`] with one table:
//!
//! | kernel says                         | readable | writable | error | hangup | read_closed |
//! |-------------------------------------|----------|----------|-------|--------|-------------|
//! | data / EOF / pending accept (IN)    | yes      |          |       |        |             |
//! | room in the send buffer (OUT)       |          | yes      |       |        |             |
//! | error (ERR)                         | yes      | yes      | yes   |        |             |
//! | hang-up, both directions (HUP)      | yes      | yes      |       | yes    | yes         |
//! | peer shut its write side (RDHUP)    | yes      |          |       |        | yes         |
//!
//! `readable` and `writable` are then masked by the registered interest: a key
//! registered for `WRITABLE` only is never reported readable. `select(2)` has no
//! error or hang-up bits; its backend reports those states as readable and writable
//! only, and says so in its [`Capabilities`].

mod backend;
mod epoll;
mod keyed;
mod mio_adapter;
mod poll;
mod polling_adapter;
mod select;

pub use backend::{Backend, UnknownBackend};
pub use epoll::EpollSelector;
#[allow(deprecated)]
pub use keyed::DefaultSelector;
pub use keyed::{KeyedSelector, Ready, SelectorKey, Waker};
pub use mio_adapter::MioSelector;
pub use poll::PollSelector;
pub use polling_adapter::PollingSelector;
pub use select::SelectSelector;

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Identifies a registration in the kernel's event reports.
///
/// [`KeyedSelector`] packs a slot index (low 32 bits) and a generation (the next 30
/// bits; backends carry the interest in the top two), so an event that was queued for a descriptor that has since been closed and
/// reused cannot be mistaken for an event of the new owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub usize);

impl Token {
    /// The token reserved for the selector's own waker. It can never be registered.
    /// (`usize::MAX` itself is reserved by the `polling` crate.)
    pub const WAKER: Token = Token(usize::MAX - 1);
}

/// What a registration waits for: readable, writable or both. Never empty.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(u8);

impl Interest {
    /// Wait for the descriptor to become readable (data, EOF, a pending connection).
    pub const READABLE: Interest = Interest(1);
    /// Wait for the descriptor to become writable (room in the send buffer).
    pub const WRITABLE: Interest = Interest(2);
    /// Both.
    pub const BOTH: Interest = Interest(3);

    /// Combines two interests.
    #[must_use]
    pub const fn add(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }

    /// Removes `other`; `None` if nothing would be left (an interest is never empty).
    pub const fn remove(self, other: Interest) -> Option<Interest> {
        let bits = self.0 & !other.0;
        if bits == 0 {
            None
        } else {
            Some(Interest(bits))
        }
    }

    /// Whether readability is wanted.
    pub const fn is_readable(self) -> bool {
        self.0 & 1 != 0
    }

    /// Whether writability is wanted.
    pub const fn is_writable(self) -> bool {
        self.0 & 2 != 0
    }
}

impl std::ops::BitOr for Interest {
    type Output = Interest;
    fn bitor(self, rhs: Interest) -> Interest {
        self.add(rhs)
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.is_readable(), self.is_writable()) {
            (true, true) => f.write_str("READABLE | WRITABLE"),
            (true, false) => f.write_str("READABLE"),
            _ => f.write_str("WRITABLE"),
        }
    }
}

/// What a backend saw for one descriptor, in the kernel's terms, before
/// [`Readiness::translate`] applies the translation table and the interest mask.
/// Named fields, so a backend spells out which condition is which:
///
/// ```
/// use readyloop::selector::{Interest, Readiness, Reported};
///
/// let r = Readiness::translate(
///     Interest::BOTH,
///     Reported { hangup: true, ..Reported::default() },
/// );
/// assert!(r.is_readable() && r.is_writable() && r.is_hangup() && r.is_read_closed());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Reported {
    /// Data, EOF or a pending connection (IN, or PRI).
    pub readable: bool,
    /// Room in the send buffer (OUT).
    pub writable: bool,
    /// A pending error (ERR).
    pub error: bool,
    /// Both directions closed (HUP).
    pub hangup: bool,
    /// The peer shut its write side (RDHUP).
    pub read_closed: bool,
    /// Urgent data pending (PRI).
    pub priority: bool,
}

/// What the kernel reported for one key. See the module docs for the table.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Readiness(u8);

impl Readiness {
    const READ_BIT: u8 = 1;
    const WRITE_BIT: u8 = 2;
    const ERROR_BIT: u8 = 4;
    const HANGUP_BIT: u8 = 8;
    const READ_CLOSED_BIT: u8 = 16;
    const PRIORITY_BIT: u8 = 32;

    /// Readable and nothing else: what a handler is told when it is asked to read
    /// before any wait said so (a deferred accept's first bytes, a paused stream
    /// resumed).
    pub const READABLE: Readiness = Readiness(Self::READ_BIT);

    /// Translates what a backend saw with the table of the module docs, then masks
    /// `readable` and `writable` with the registered `interest`.
    pub const fn translate(interest: Interest, seen: Reported) -> Readiness {
        let mut bits = 0;
        if interest.is_readable()
            && (seen.readable || seen.error || seen.hangup || seen.read_closed)
        {
            bits |= Self::READ_BIT;
        }
        if interest.is_writable() && (seen.writable || seen.error || seen.hangup) {
            bits |= Self::WRITE_BIT;
        }
        if seen.error {
            bits |= Self::ERROR_BIT;
        }
        if seen.hangup {
            bits |= Self::HANGUP_BIT | Self::READ_CLOSED_BIT;
        }
        if seen.read_closed {
            bits |= Self::READ_CLOSED_BIT;
        }
        if seen.priority {
            bits |= Self::PRIORITY_BIT;
        }
        Readiness(bits)
    }

    /// Nothing ready.
    pub const EMPTY: Readiness = Readiness(0);

    /// Readable: a read, accept or recv will not block (it may return EOF or an error).
    pub const fn is_readable(self) -> bool {
        self.0 & Self::READ_BIT != 0
    }
    /// Writable: a write will not block (it may fail with an error).
    pub const fn is_writable(self) -> bool {
        self.0 & Self::WRITE_BIT != 0
    }
    /// The socket has a pending error (EPOLLERR / POLLERR).
    pub const fn is_error(self) -> bool {
        self.0 & Self::ERROR_BIT != 0
    }
    /// Both directions are closed (EPOLLHUP / POLLHUP).
    pub const fn is_hangup(self) -> bool {
        self.0 & Self::HANGUP_BIT != 0
    }
    /// The peer will send no more data (EPOLLRDHUP / POLLRDHUP, or a full hang-up).
    /// A hint: data sent before the shutdown may still be waiting to be read.
    pub const fn is_read_closed(self) -> bool {
        self.0 & Self::READ_CLOSED_BIT != 0
    }
    /// Urgent (out-of-band) data is pending (EPOLLPRI / POLLPRI). A read stops at the
    /// urgent mark, so a short read does not mean the socket drained.
    pub const fn is_priority(self) -> bool {
        self.0 & Self::PRIORITY_BIT != 0
    }
    /// Whether nothing at all is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Union of two readiness reports for the same key.
    #[must_use]
    pub const fn merge(self, other: Readiness) -> Readiness {
        Readiness(self.0 | other.0)
    }
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.is_readable(), "READABLE"),
            (self.is_writable(), "WRITABLE"),
            (self.is_error(), "ERROR"),
            (self.is_hangup(), "HANGUP"),
            (self.is_read_closed(), "READ_CLOSED"),
        ];
        let mut first = true;
        for (on, name) in names {
            if on {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("EMPTY")?;
        }
        Ok(())
    }
}

/// How readiness is reported over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// Reported on every wait while the condition holds (select, poll, epoll default).
    Level,
    /// Reported once per change: new data arriving, room appearing. The caller must
    /// read or write until `WouldBlock` (or see a short read) before waiting again.
    Edge,
}

/// What a backend can do, read by shared code instead of matching on its name
/// (the nginx `NGX_USE_*_EVENT` idea).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// The trigger mode this instance runs in.
    pub trigger: Trigger,
    /// Highest descriptor + 1 it accepts (`Some(FD_SETSIZE)` for select), or `None`.
    pub max_fd: Option<usize>,
    /// Whether it reports [`Readiness::is_error`].
    pub reports_error: bool,
    /// Whether it reports [`Readiness::is_hangup`].
    pub reports_hangup: bool,
    /// Whether it reports [`Readiness::is_read_closed`] for a peer's half-close.
    pub reports_read_closed: bool,
    /// Whether a wait costs O(ready) rather than O(registered).
    pub scalable: bool,
}

/// The list of `(token, readiness)` pairs a backend fills on each wait.
///
/// It is reused from wait to wait: after the first few waits it allocates nothing.
#[derive(Debug, Default)]
pub struct Events {
    list: Vec<(Token, Readiness)>,
}

impl Events {
    /// An empty list with room for `cap` events.
    pub fn with_capacity(cap: usize) -> Events {
        Events {
            list: Vec::with_capacity(cap),
        }
    }
    /// Removes every event (keeps the allocation).
    pub fn clear(&mut self) {
        self.list.clear();
    }
    /// Appends one event.
    pub fn push(&mut self, token: Token, readiness: Readiness) {
        self.list.push((token, readiness));
    }
    /// The events of the last wait.
    pub fn iter(&self) -> impl Iterator<Item = (Token, Readiness)> + '_ {
        self.list.iter().copied()
    }
    /// How many events the last wait returned.
    pub fn len(&self) -> usize {
        self.list.len()
    }
    /// Whether the last wait returned nothing.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// The kernel side of a selector: one implementation per backend.
///
/// Implementations never keep user data; [`KeyedSelector`] does. Contract:
/// * a failed call changes no bookkeeping;
/// * `select` clears `events` first, returns `Ok` with no events on `EINTR`, and
///   rounds a timeout up to whole milliseconds;
/// * a descriptor is deregistered before it is closed.
pub trait Selector: Send {
    /// Which backend this is.
    fn backend(&self) -> Backend;
    /// What it can do.
    fn capabilities(&self) -> Capabilities;
    /// Starts watching `fd` for `interest`, reporting it as `token`.
    ///
    /// # Errors
    ///
    /// `AlreadyExists` if `fd` is registered; `InvalidInput` for a negative `fd` or a
    /// token past 62 bits (and, on `select`, for `fd >= FD_SETSIZE`); the kernel's error
    /// (`EBADF` for a closed descriptor, `EPERM` for a regular file on epoll).
    fn register(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;
    /// Starts watching `fd` (a listening socket shared with other selectors) so that
    /// a readiness change wakes only one of the selectors waiting on it, not all
    /// (`EPOLLEXCLUSIVE`). Returns whether the backend could: the default registers
    /// normally and returns `false` (select, poll, and the crate backends: every
    /// waiter wakes, the thundering herd). An exclusive registration reports
    /// readability and writability only (no read-closed or priority bits), and
    /// cannot be modified in place: change it by deregistering and registering again.
    ///
    /// # Errors
    ///
    /// As [`register`](Self::register).
    fn register_exclusive(
        &mut self,
        fd: RawFd,
        token: Token,
        interest: Interest,
    ) -> io::Result<bool> {
        self.register(fd, token, interest)?;
        Ok(false)
    }
    /// Changes the interest or token of a watched `fd`.
    ///
    /// # Errors
    ///
    /// `NotFound` if `fd` is not registered (`ENOENT` from epoll); otherwise as
    /// [`register`](Self::register). On error the registration is unchanged.
    fn reregister(&mut self, fd: RawFd, token: Token, interest: Interest) -> io::Result<()>;
    /// Stops watching `fd`.
    ///
    /// # Errors
    ///
    /// `NotFound` if `fd` is not registered; the kernel's error (`EBADF` if it was
    /// closed first, against the contract).
    fn deregister(&mut self, fd: RawFd) -> io::Result<()>;
    /// Stops watching `fd`, which the caller is about to close and has never
    /// duplicated. Backends whose kernel forgets a descriptor when its last reference
    /// closes (epoll) skip the syscall; the rest deregister as usual.
    ///
    /// # Errors
    ///
    /// As [`deregister`](Self::deregister), on backends that make the call.
    fn deregister_before_close(&mut self, fd: RawFd) -> io::Result<()> {
        self.deregister(fd)
    }
    /// Waits up to `timeout` (`None`: forever) and fills `events`.
    ///
    /// # Errors
    ///
    /// The wait failed (`EBADF`/`EINVAL` from a broken selector, `ENOMEM`). `EINTR` is
    /// not an error: it returns `Ok` with no events.
    fn select(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()>;
    /// The caller promises that every descriptor it registers is open (the reactor:
    /// its handlers own theirs). Backends that check at register time with a syscall
    /// (`select` and `poll`, whose interest sets live in user space) stop checking,
    /// so registering costs them no syscall; a closed descriptor then shows up at
    /// the next wait instead (`EBADF` / `POLLNVAL`, reported on its key).
    fn trust_open_descriptors(&mut self) {}
}

/// Packs a token and its interest into the 64-bit word a backend carries per event
/// (`epoll_event.data.u64`, mio's token, polling's key): the interest goes in the
/// top two bits, so translation needs no lookup. Tokens use at most 62 bits.
pub(crate) fn pack(token: Token, interest: Interest) -> u64 {
    ((interest.is_readable() as u64) << 63)
        | ((interest.is_writable() as u64) << 62)
        | token.0 as u64
}

pub(crate) fn unpack(data: u64) -> (Token, Interest) {
    if data == Token::WAKER.0 as u64 {
        return (Token::WAKER, Interest::READABLE);
    }
    let token = Token((data & !(3 << 62)) as usize);
    let interest = match (data >> 63 != 0, (data >> 62) & 1 != 0) {
        (true, true) => Interest::BOTH,
        (true, false) => Interest::READABLE,
        _ => Interest::WRITABLE,
    };
    (token, interest)
}

/// Refuses a negative descriptor with the same `InvalidInput` error on every backend
/// (the kernel would say `EBADF`, select's range check would blame `FD_SETSIZE`).
pub(crate) fn check_fd(fd: RawFd) -> io::Result<()> {
    if fd < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid fd {fd}: descriptors are never negative"),
        ));
    }
    Ok(())
}

pub(crate) fn check_token(token: Token) -> io::Result<()> {
    if (token.0 as u64) >> 62 != 0 && token != Token::WAKER {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("token {token:?} uses more than 62 bits"),
        ));
    }
    Ok(())
}

/// The error for a mode a backend cannot run.
pub(crate) fn unsupported(backend: &str, trigger: Trigger) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("backend {backend} does not support {trigger:?}-triggered mode"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_round_trip() {
        for b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>().unwrap(), b);
        }
        let err = "kqueue".parse::<Backend>().unwrap_err().to_string();
        assert!(err.contains("epoll-et"), "{err}");
    }

    #[test]
    fn interest_is_never_empty() {
        assert_eq!(Interest::READABLE.remove(Interest::READABLE), None);
        assert_eq!(
            Interest::BOTH.remove(Interest::READABLE),
            Some(Interest::WRITABLE)
        );
    }

    #[test]
    fn translation_table() {
        let error = Reported {
            error: true,
            ..Reported::default()
        };
        let r = Readiness::translate(Interest::READABLE, error);
        assert!(r.is_readable() && !r.is_writable() && r.is_error());
        let hangup = Reported {
            hangup: true,
            ..Reported::default()
        };
        let r = Readiness::translate(Interest::BOTH, hangup);
        assert!(r.is_readable() && r.is_writable() && r.is_hangup() && r.is_read_closed());
        let half_closed = Reported {
            readable: true,
            read_closed: true,
            ..Reported::default()
        };
        let r = Readiness::translate(Interest::WRITABLE, half_closed);
        assert!(!r.is_readable() && !r.is_writable() && r.is_read_closed());
        let urgent = Reported {
            readable: true,
            priority: true,
            ..Reported::default()
        };
        let r = Readiness::translate(Interest::READABLE, urgent);
        assert!(r.is_readable() && r.is_priority());
        assert_eq!(
            Readiness::translate(
                Interest::READABLE,
                Reported {
                    readable: true,
                    ..Reported::default()
                }
            ),
            Readiness::READABLE
        );
    }

    #[test]
    fn unsupported_modes_are_refused() {
        for (b, t) in [
            (Backend::Select, Trigger::Edge),
            (Backend::Poll, Trigger::Edge),
            (Backend::Mio, Trigger::Level),
        ] {
            let err = b.open_with(t).err().expect("must be refused");
            assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        }
    }
}
