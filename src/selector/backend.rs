//! [`Backend`]: the backends by name, what each can do, and how to open one
//! (moved out of `selector/mod.rs`, which keeps the types every backend shares).

use std::fmt;
use std::io;
use std::str::FromStr;

use super::*;

/// The backends, by the names used on command lines and in the lab's tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `select(2)`, level-triggered, descriptors below `FD_SETSIZE` only.
    Select,
    /// `poll(2)`, level-triggered.
    Poll,
    /// `epoll(7)`, level-triggered.
    Epoll,
    /// `epoll(7)` with `EPOLLET`, edge-triggered.
    EpollEt,
    /// The `mio` crate (edge-triggered epoll), as a reference.
    Mio,
    /// The `polling` crate (level-triggered epoll), as a reference.
    Polling,
}

impl Backend {
    /// Every backend, in the order tables list them.
    pub const ALL: [Backend; 6] = [
        Backend::Select,
        Backend::Poll,
        Backend::Epoll,
        Backend::EpollEt,
        Backend::Mio,
        Backend::Polling,
    ];

    /// The backend's name: `select`, `poll`, `epoll`, `epoll-et`, `mio`, `polling`.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Select => "select",
            Backend::Poll => "poll",
            Backend::Epoll => "epoll",
            Backend::EpollEt => "epoll-et",
            Backend::Mio => "mio",
            Backend::Polling => "polling",
        }
    }

    /// The platform's best backend for the reactor: `epoll-et` on Linux
    /// (edge-triggered: fewer events; the reactor's handlers read until `WouldBlock`).
    pub const fn best() -> Backend {
        Backend::EpollEt
    }

    /// The platform's best level-triggered backend: `epoll` on Linux. What
    /// [`KeyedSelector::best`] (Python's `DefaultSelector()`) opens.
    pub const fn best_level() -> Backend {
        Backend::Epoll
    }

    /// The trigger mode the backend runs in under its name.
    pub const fn trigger(self) -> Trigger {
        match self {
            Backend::EpollEt | Backend::Mio => Trigger::Edge,
            _ => Trigger::Level,
        }
    }

    /// Opens the kernel side of this backend in its own trigger mode.
    ///
    /// # Errors
    ///
    /// The kernel refused the selector (out of descriptors or memory).
    pub fn open(self) -> io::Result<Box<dyn Selector>> {
        self.open_with(self.trigger())
    }

    /// Opens the backend's kernel mechanism in `trigger` mode, or fails with
    /// `ErrorKind::Unsupported` if it cannot run that mode (select and poll have no
    /// edge mode; mio has no level mode). Never silently runs another mode.
    ///
    /// # Errors
    ///
    /// `Unsupported` if the backend cannot run `trigger`; otherwise as [`open`](Self::open).
    pub fn open_with(self, trigger: Trigger) -> io::Result<Box<dyn Selector>> {
        Ok(match self {
            Backend::Select => Box::new(SelectSelector::new(trigger)?),
            Backend::Poll => Box::new(PollSelector::new(trigger)?),
            Backend::Epoll | Backend::EpollEt => Box::new(EpollSelector::new(trigger)?),
            Backend::Mio => Box::new(MioSelector::new(trigger)?),
            Backend::Polling => Box::new(PollingSelector::new(trigger)?),
        })
    }
}

impl Default for Backend {
    fn default() -> Backend {
        Backend::best()
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error returned when a backend name is not known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownBackend(pub String);

impl fmt::Display for UnknownBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Backend::ALL.iter().map(|b| b.name()).collect();
        write!(
            f,
            "unknown backend {:?}; expected one of: {}",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownBackend {}

impl FromStr for Backend {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Backend, UnknownBackend> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| UnknownBackend(s.to_string()))
    }
}
