//! The registry shared by every backend: keys, tokens, the fd map and the waker.

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{Backend, Capabilities, Events, Interest, Readiness, Selector, Token, Trigger};
use crate::slab::{Slab, SlabId};
use crate::sys::waker::WakeFd;

/// Generations wrap below 2^30 so a token (generation << 32 | slot) fits in 62 bits.
const GENERATION_MASK: u32 = (1 << 30) - 1;

/// One registration: Python's `SelectorKey(fileobj, fd, events, data)`, typed.
#[derive(Debug)]
pub struct SelectorKey<T> {
    /// The registered descriptor.
    pub fd: RawFd,
    /// The token events for this key carry (slot and generation).
    pub token: Token,
    /// What the key waits for.
    pub interest: Interest,
    /// The caller's data, returned with every event.
    pub data: T,
    /// Registered with [`KeyedSelector::register_exclusive`] and the backend honoured
    /// it (`EPOLLEXCLUSIVE`).
    pub exclusive: bool,
}

struct WakerInner {
    fd: WakeFd,
    pending: AtomicBool,
    /// The selector is gone: nobody will ever read a wake-up.
    closed: AtomicBool,
}

/// Wakes a blocked [`KeyedSelector::select`] from any thread.
///
/// Repeated wakes before the selector runs coalesce into one write.
///
/// # Examples
///
/// A `select` with no timeout, ended by another thread:
///
/// ```
/// use readyloop::selector::{Backend, KeyedSelector};
///
/// let mut sel: KeyedSelector<()> = KeyedSelector::new(Backend::Poll)?;
/// let waker = sel.waker()?; // Clone + Send
/// let t = std::thread::spawn(move || waker.wake());
/// let ready = sel.select(None)?.count(); // returns once woken
/// assert_eq!(ready, 0); // the waker's own event is consumed
/// assert!(sel.take_woken());
/// t.join().expect("waking thread")?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Waker {
    inner: Arc<WakerInner>,
}

impl Waker {
    /// Makes the selector's current or next `select` return. Fails with
    /// `NotConnected` once the selector has been closed or dropped.
    ///
    /// # Errors
    ///
    /// `NotConnected` once the selector is closed or dropped; the write to its
    /// eventfd or pipe failed otherwise.
    pub fn wake(&self) -> io::Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the selector has been closed",
            ));
        }
        if !self.inner.pending.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.inner.fd.wake() {
                // Nothing was written: let the next wake try again.
                self.inner.pending.store(false, Ordering::Release);
                return Err(e);
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waker").finish_non_exhaustive()
    }
}

/// A selector in the shape of Python's `selectors`: register a descriptor with an
/// interest and data, modify, unregister, and `select` to get `(key, readiness)` pairs.
///
/// # Examples
///
/// ```
/// use readyloop::selector::{Backend, Interest, KeyedSelector};
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::time::Duration;
///
/// let mut sel = KeyedSelector::new(Backend::Poll)?;
/// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
/// sel.register(a.as_raw_fd(), Interest::READABLE, "a")?;
/// b.write_all(b"ping")?;
/// let ready: Vec<_> = sel
///     .select(Some(Duration::from_secs(1)))?
///     .map(|(key, r)| (key.data, r.is_readable()))
///     .collect();
/// assert_eq!(ready, vec![("a", true)]);
/// sel.unregister(a.as_raw_fd())?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Notes
/// * Tokens carry a generation: an event queued for a descriptor that was closed and
///   reused is dropped instead of reaching the new key.
/// * Bookkeeping changes only after the kernel call succeeds: a failed `register`
///   leaves no key behind.
/// * Unregister a descriptor before closing it.
pub struct KeyedSelector<T> {
    sel: Box<dyn Selector>,
    keys: Slab<SelectorKey<T>>,
    by_fd: HashMap<RawFd, Token>,
    events: Events,
    waker: Option<Waker>,
    woken: bool,
}

/// The old name of [`KeyedSelector`]: it was a bare alias, not a "default" or
/// "best" choice of anything. Python's `DefaultSelector()` is
/// [`KeyedSelector::best`] (level-triggered `epoll` on Linux).
#[deprecated(
    since = "0.1.0",
    note = "a bare alias of KeyedSelector; open Python's DefaultSelector() with KeyedSelector::best()"
)]
pub type DefaultSelector<T> = KeyedSelector<T>;

impl<T> KeyedSelector<T> {
    /// Opens `backend` in its own trigger mode.
    ///
    /// # Errors
    ///
    /// The kernel refused the selector (out of descriptors).
    pub fn new(backend: Backend) -> io::Result<Self> {
        Ok(Self::with_selector(backend.open()?))
    }

    /// Opens the platform's best level-triggered backend ([`Backend::best_level`]:
    /// `epoll` on Linux), as Python's `DefaultSelector()`: a descriptor is reported
    /// again on every `select` while it is ready, so a port of a Python program
    /// behaves as it did.
    ///
    /// # Errors
    ///
    /// The kernel refused the selector (out of descriptors).
    pub fn best() -> io::Result<Self> {
        Self::new(Backend::best_level())
    }

    /// Opens the platform's best edge-triggered backend (`epoll-et` on Linux): a
    /// descriptor is reported once per change, so every callback must read (or
    /// write) until `WouldBlock`, or stall. Cheaper per event; the reactor's default.
    ///
    /// # Errors
    ///
    /// The kernel refused the selector (out of descriptors).
    pub fn best_edge() -> io::Result<Self> {
        Self::new(Backend::best())
    }

    /// Opens `backend` in `trigger` mode (`Unsupported` if it cannot run it).
    ///
    /// # Errors
    ///
    /// `Unsupported` if `backend` cannot run `trigger`; otherwise as [`new`](Self::new).
    pub fn with_trigger(backend: Backend, trigger: Trigger) -> io::Result<Self> {
        Ok(Self::with_selector(backend.open_with(trigger)?))
    }

    /// Wraps an already opened kernel side.
    pub fn with_selector(sel: Box<dyn Selector>) -> Self {
        KeyedSelector {
            sel,
            keys: Slab::new(GENERATION_MASK),
            by_fd: HashMap::new(),
            events: Events::with_capacity(1024),
            waker: None,
            woken: false,
        }
    }

    /// Which backend runs underneath.
    pub fn backend(&self) -> Backend {
        self.sel.backend()
    }

    /// What the backend can do.
    pub fn capabilities(&self) -> Capabilities {
        self.sel.capabilities()
    }

    /// Registers `fd` for `interest` with `data`. Fails with `AlreadyExists` if `fd`
    /// is registered, or with the backend's error (e.g. select's `FD_SETSIZE` limit);
    /// on failure nothing is recorded.
    ///
    /// # Errors
    ///
    /// `AlreadyExists` if `fd` is registered, `InvalidInput` for the selector's own
    /// waker descriptor, or the backend's error ([`Selector::register`]).
    pub fn register(
        &mut self,
        fd: RawFd,
        interest: Interest,
        data: T,
    ) -> io::Result<&SelectorKey<T>> {
        self.register_opt(fd, interest, data, false)
    }

    /// Registers `fd` (a listening socket that other selectors, on other threads,
    /// also watch) so that a new connection wakes one of them only, where the
    /// backend can ([`Selector::register_exclusive`]; the key's `exclusive` says
    /// whether it did). Modifying the key later re-registers it exclusively.
    ///
    /// # Errors
    ///
    /// As [`register`](Self::register).
    pub fn register_exclusive(
        &mut self,
        fd: RawFd,
        interest: Interest,
        data: T,
    ) -> io::Result<&SelectorKey<T>> {
        self.register_opt(fd, interest, data, true)
    }

    fn register_opt(
        &mut self,
        fd: RawFd,
        interest: Interest,
        data: T,
        exclusive: bool,
    ) -> io::Result<&SelectorKey<T>> {
        if self.by_fd.contains_key(&fd) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("fd {fd} is already registered"),
            ));
        }
        if self
            .waker
            .as_ref()
            .is_some_and(|w| w.inner.fd.read_fd() == fd)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fd {fd} is the selector's own waker"),
            ));
        }
        let token = Token(self.keys.next_id().0 as usize);
        let exclusive = if exclusive {
            self.sel.register_exclusive(fd, token, interest)?
        } else {
            self.sel.register(fd, token, interest)?;
            false
        };
        let id = self.keys.insert(SelectorKey {
            fd,
            token,
            interest,
            data,
            exclusive,
        });
        self.by_fd.insert(fd, token);
        Ok(self.keys.get(id).expect("just stored"))
    }

    fn token_of(&self, fd: RawFd) -> io::Result<Token> {
        self.by_fd.get(&fd).copied().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("fd {fd} is not registered"),
            )
        })
    }

    fn not_found(token: Token) -> io::Error {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("token {token:?} is not registered"),
        )
    }

    /// Changes the interest of a registered `fd`.
    ///
    /// # Errors
    ///
    /// `NotFound` if `fd` is not registered; the backend's error (the key keeps its
    /// old interest).
    pub fn modify(&mut self, fd: RawFd, interest: Interest) -> io::Result<&mut SelectorKey<T>> {
        let token = self.token_of(fd)?;
        self.modify_token(token, interest)
    }

    /// Changes the interest of the key behind `token`. A no-op when it is unchanged.
    ///
    /// # Errors
    ///
    /// `NotFound` if `token` is stale or unknown; the backend's error (the key keeps
    /// its old interest).
    pub fn modify_token(
        &mut self,
        token: Token,
        interest: Interest,
    ) -> io::Result<&mut SelectorKey<T>> {
        let live = self.get(token).map(|k| (k.fd, k.interest, k.exclusive));
        let (fd, old, exclusive) = live.ok_or_else(|| Self::not_found(token))?;
        if old != interest {
            if exclusive {
                // epoll refuses EPOLL_CTL_MOD on an EPOLLEXCLUSIVE registration.
                self.sel.deregister(fd)?;
                if let Err(e) = self.sel.register_exclusive(fd, token, interest) {
                    // Put the old registration back: a failed call changes nothing.
                    if let Err(e2) = self.sel.register_exclusive(fd, token, old) {
                        log::error!("fd {fd}: lost its registration: {e2}");
                    }
                    return Err(e);
                }
            } else {
                self.sel.reregister(fd, token, interest)?;
            }
        }
        let key = self.get_mut(token).expect("checked live");
        key.interest = interest;
        Ok(key)
    }

    /// Unregisters `fd` and returns its key (with the data).
    ///
    /// # Errors
    ///
    /// `NotFound` if `fd` is not registered. A kernel refusal is logged, not
    /// returned: the key is removed anyway.
    pub fn unregister(&mut self, fd: RawFd) -> io::Result<SelectorKey<T>> {
        let token = self.token_of(fd)?;
        self.unregister_token(token)
    }

    /// Unregisters the key behind `token`.
    ///
    /// If the kernel refuses (the descriptor was already closed, a caller bug), the key
    /// is still removed: the kernel forgets closed descriptors on its own.
    ///
    /// # Errors
    ///
    /// `NotFound` if `token` is stale or unknown.
    pub fn unregister_token(&mut self, token: Token) -> io::Result<SelectorKey<T>> {
        self.remove_key(token, false)
    }

    /// Unregisters the key behind `token` whose descriptor the caller closes right
    /// after and never duplicated. Saves the `epoll_ctl(DEL)` on epoll (a close
    /// removes the descriptor from the interest list), which is one syscall per
    /// connection in a connect-request-close workload.
    ///
    /// # Errors
    ///
    /// `NotFound` if `token` is stale or unknown.
    pub fn unregister_before_close(&mut self, token: Token) -> io::Result<SelectorKey<T>> {
        self.remove_key(token, true)
    }

    fn remove_key(&mut self, token: Token, closing: bool) -> io::Result<SelectorKey<T>> {
        let fd = self.get(token).ok_or_else(|| Self::not_found(token))?.fd;
        let res = if closing {
            self.sel.deregister_before_close(fd)
        } else {
            self.sel.deregister(fd)
        };
        if let Err(e) = res {
            log::warn!("deregister fd {fd}: {e} (was it closed before being unregistered?)");
        }
        let key = self
            .keys
            .remove(SlabId(token.0 as u64))
            .expect("checked live");
        self.by_fd.remove(&fd);
        Ok(key)
    }

    /// The live key behind `token`, if the token is current (right slot and generation).
    pub fn get(&self, token: Token) -> Option<&SelectorKey<T>> {
        self.keys.get(SlabId(token.0 as u64))
    }

    /// Mutable access to the live key behind `token` (its data, typically).
    pub fn get_mut(&mut self, token: Token) -> Option<&mut SelectorKey<T>> {
        self.keys.get_mut(SlabId(token.0 as u64))
    }

    /// The key registered for `fd`, as Python's `get_key`.
    pub fn get_key(&self, fd: RawFd) -> Option<&SelectorKey<T>> {
        self.by_fd.get(&fd).and_then(|t| self.get(*t))
    }

    /// Mutable access to the key registered for `fd`.
    pub fn get_key_mut(&mut self, fd: RawFd) -> Option<&mut SelectorKey<T>> {
        let t = *self.by_fd.get(&fd)?;
        self.get_mut(t)
    }

    /// Every registered key, read-only, in no particular order: what Python's
    /// `get_map()` offers as a mapping from file object to key (look one key up by
    /// descriptor with [`get_key`](Self::get_key)).
    pub fn registrations(&self) -> impl Iterator<Item = &SelectorKey<T>> + '_ {
        self.keys.iter().map(|(_, k)| k)
    }

    /// How many keys are registered.
    pub fn len(&self) -> usize {
        self.by_fd.len()
    }

    /// Whether no key is registered.
    pub fn is_empty(&self) -> bool {
        self.by_fd.is_empty()
    }

    /// See [`Selector::trust_open_descriptors`]: for owners that guarantee every
    /// registered descriptor is open (the reactor).
    pub(crate) fn trust_open_descriptors(&mut self) {
        self.sel.trust_open_descriptors();
    }

    /// A waker for this selector, created (and registered under [`Token::WAKER`]) on
    /// first use.
    ///
    /// # Errors
    ///
    /// Creating the eventfd (or pipe) or registering it failed (out of descriptors).
    pub fn waker(&mut self) -> io::Result<Waker> {
        if let Some(w) = &self.waker {
            return Ok(w.clone());
        }
        let fd = WakeFd::new()?;
        self.sel
            .register(fd.read_fd(), Token::WAKER, Interest::READABLE)?;
        let w = Waker {
            inner: Arc::new(WakerInner {
                fd,
                pending: AtomicBool::new(false),
                closed: AtomicBool::new(false),
            }),
        };
        self.waker = Some(w.clone());
        Ok(w)
    }

    /// Whether the last `select` was woken by the [`Waker`] (cleared on read).
    pub fn take_woken(&mut self) -> bool {
        std::mem::take(&mut self.woken)
    }

    /// Waits up to `timeout` (`None`: until something is ready or the waker fires)
    /// and returns the ready keys with their readiness. Events for keys unregistered
    /// since the kernel queued them are dropped; the waker's own event is consumed.
    ///
    /// # Errors
    ///
    /// The wait failed ([`Selector::select`]; `EINTR` returns no events instead), or
    /// draining the waker failed.
    pub fn select(&mut self, timeout: Option<Duration>) -> io::Result<Ready<'_, T>> {
        self.poll_events(timeout)?;
        Ok(Ready { sel: self, pos: 0 })
    }

    /// Waits like [`select`](Self::select) and appends `(token, readiness)` pairs to
    /// `out`, for callers (like the reactor) that must mutate the selector while they
    /// handle the events. Returns how many were appended.
    ///
    /// Look each token up with [`get`](Self::get) / [`get_mut`](Self::get_mut) when
    /// its turn comes, not before: a token carries its key's generation, so after a
    /// callback unregistered a key (and its descriptor number was perhaps reused by
    /// a new registration) the stale token finds nothing and the event is skipped,
    /// instead of reaching the new key.
    ///
    /// # Errors
    ///
    /// As [`select`](Self::select): the wait failed (`EINTR` returns no events, not
    /// an error), or draining the waker failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use readyloop::selector::{Interest, KeyedSelector, Token, Readiness};
    /// use std::io::{Read, Write};
    /// use std::os::fd::AsRawFd;
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    ///
    /// let mut sel = KeyedSelector::best()?; // level-triggered, as Python's DefaultSelector()
    /// let (mut a, mut b) = UnixStream::pair()?;
    /// let (c, mut d) = UnixStream::pair()?;
    /// sel.register(a.as_raw_fd(), Interest::READABLE, "a")?;
    /// sel.register(c.as_raw_fd(), Interest::READABLE, "c")?;
    /// b.write_all(b"ping")?;
    /// d.write_all(b"pong")?;
    ///
    /// let mut events: Vec<(Token, Readiness)> = Vec::new();
    /// sel.select_into(Some(Duration::from_secs(1)), &mut events)?;
    /// assert_eq!(events.len(), 2);
    /// let mut seen = Vec::new();
    /// for &(token, _readiness) in &events {
    ///     // A stale token (its key unregistered by an earlier event) finds nothing.
    ///     let Some(key) = sel.get(token) else { continue };
    ///     seen.push(key.data);
    ///     // Handling one event may unregister another key: "a" drops "c".
    ///     if key.data == "a" {
    ///         sel.unregister(c.as_raw_fd())?;
    ///     }
    /// }
    /// assert_eq!(seen.len(), 1, "the second event's key was gone: skipped");
    /// let mut buf = [0u8; 4];
    /// a.read_exact(&mut buf)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn select_into(
        &mut self,
        timeout: Option<Duration>,
        out: &mut Vec<(Token, Readiness)>,
    ) -> io::Result<usize> {
        self.poll_events(timeout)?;
        let before = out.len();
        for (token, r) in self.events.iter() {
            if token != Token::WAKER && self.get(token).is_some() {
                out.push((token, r));
            }
        }
        Ok(out.len() - before)
    }

    fn poll_events(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.sel.select(&mut self.events, timeout)?;
        if self.events.is_empty() {
            crate::sys::stats::count(crate::sys::stats::Syscall::EmptyWait);
        }
        if let Some(w) = &self.waker {
            if self.events.iter().any(|(t, _)| t == Token::WAKER) {
                // Drain first, then clear `pending`: a wake that lands in between sees
                // `pending` still set and skips its write, but its effect is observed
                // by our caller, which runs after this select returns.
                w.inner.fd.reset()?;
                w.inner.pending.store(false, Ordering::Release);
                self.woken = true;
            }
        }
        Ok(())
    }

    /// Unregisters every key and closes the kernel side, as Python's `close`.
    /// Returns the keys' data.
    pub fn close(mut self) -> Vec<T> {
        let tokens: Vec<Token> = self.registrations().map(|k| k.token).collect();
        tokens
            .into_iter()
            .filter_map(|t| self.unregister_token(t).ok())
            .map(|k| k.data)
            .collect()
    }
}

impl<T> Drop for KeyedSelector<T> {
    /// Tells wakers that outlive the selector (they share its eventfd) that nobody
    /// listens any more.
    fn drop(&mut self) {
        if let Some(w) = &self.waker {
            w.inner.closed.store(true, Ordering::Release);
        }
    }
}

impl<T> std::fmt::Debug for KeyedSelector<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedSelector")
            .field("backend", &self.backend())
            .field("keys", &self.len())
            .finish()
    }
}

/// The ready keys of one [`KeyedSelector::select`], as `(key, readiness)` pairs.
pub struct Ready<'a, T> {
    sel: &'a KeyedSelector<T>,
    pos: usize,
}

impl<'a, T> Iterator for Ready<'a, T> {
    type Item = (&'a SelectorKey<T>, Readiness);

    fn next(&mut self) -> Option<Self::Item> {
        let sel = self.sel;
        while let Some((token, r)) = sel.events.list.get(self.pos).copied() {
            self.pos += 1;
            if token == Token::WAKER {
                continue;
            }
            if let Some(key) = sel.get(token) {
                return Some((key, r));
            }
        }
        None
    }
}
