//! The reactor: a loop over a [`KeyedSelector`] that dispatches readiness to handlers.
//!
//! Loop order, fixed (Redis `ae.c` style: timers after I/O):
//!
//! 1. compute the wait timeout from the earliest timer (zero if events were requeued or
//!    deferred work is left over);
//! 2. `select`; run the remote calls of a [`Handle`] if it woke the loop;
//! 3. dispatch each event to its handler;
//! 4. run the timers that are due (those that came due during the wait included);
//! 5. run the handlers' deferred work (a buffered connection flushes its output once
//!    per batch, not once per write): what step 3 *and* step 4 wrote leaves now, so a
//!    timer-driven write costs one wait, not a second zero-timeout one.
//!
//! Handlers ([`Handler`]) own their descriptors. They are kept in a generational slab:
//! a [`HandlerId`] that outlives its handler never reaches the handler that reuses the
//! slot, and an event queued for a removed handler is dropped. Removal requested during
//! dispatch (by the handler itself or by another) takes effect after the callback that
//! asked for it returns, so no callback ever runs on a half-removed handler.
//!
//! The reactor knows nothing about bytes or protocols: buffered connections, listeners
//! and datagram sockets are handlers defined in [`crate::net`].
//!
//! # Panics in handlers
//!
//! A panic in user code the loop calls (a handler callback, a timer closure, a remote
//! call from a [`Handle`]) is handled by [`Config::panic_policy`]:
//!
//! * [`PanicPolicy::Contain`] (the default): the panic is caught where the loop called
//!   in. The handler that was running is removed: its descriptor deregistered, its
//!   pending timers cancelled, then [`Handler::removed`] is called as for any removal,
//!   with [`Ctx::removed_after_panic`] true (a [`crate::net`] connection tells its
//!   protocol `connection_lost` with an error, so the protocol drops the connection
//!   from whatever shared state tracks it: the chat's rooms and nickname table, say),
//!   and finally the handler is dropped, closing its descriptor. The failure is logged
//!   at error level (handler id, what the handler says it serves, e.g. the peer
//!   address, and the panic message) and counted ([`Ctx::panics_contained`],
//!   [`Reactor::panics_contained`]; [`panics_contained_total`] sums every reactor of
//!   the process, a [`pool`]'s included); the loop goes on serving everyone else. A panic inside that `removed` call is caught too (logged,
//!   counted, the handler dropped without a second try). A panicking timer closure or
//!   remote call loses only itself. A panic in a handler reached through
//!   [`Ctx::with_handler`] (a connection writing to or notifying another) is caught
//!   there: that handler is removed, and the caller goes on as if it were gone (`None`).
//!   A UDP socket ([`crate::net`]) contains a panic of its protocol's
//!   `datagram_received` itself: that datagram is lost, the socket serves the next
//!   ([`Ctx::contained_panic`]); the protocol's state is as the unwinding left it.
//! * [`PanicPolicy::Propagate`]: the panic unwinds out of [`Reactor::run`] (or
//!   [`Reactor::run_once`]). On its way out the handler that panicked (and any handler
//!   it was reaching into) is deregistered and dropped, closing its descriptor,
//!   *without* a `removed` call; the reactor stays consistent, so a caller that catches
//!   the panic may run it again.
//!
//! What a contained panic can leave behind: the reactor's own state is always
//! consistent (no registered descriptor without a handler, no timer for a removed
//! handler, no leaked descriptor). What the panicking callback had half-done to state
//! *outside* its handler (a shared table it was updating when it panicked) is only as
//! consistent as that code's own unwinding makes it: `RefCell` borrows are released,
//! but a multi-step update may stop half-way. The `removed`/`connection_lost` call is
//! the protocol's chance to remove the connection from shared state as if the peer had
//! gone; state tracked *only* inside the dropped handler goes with it. Output queued
//! on the panicking connection is discarded. Nothing is retried.

mod ctx;
mod dispatch;
mod handle;
mod handler;
pub mod pool;
mod signals;
mod timers;

pub use ctx::Ctx;
pub use dispatch::panics_contained_total;
pub(crate) use dispatch::LoopState;
pub use handle::Handle;
pub use handler::{Handler, HandlerId};
pub use timers::{TimerId, Timers};

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::selector::{Backend, Interest, KeyedSelector, Readiness, Token, Trigger};
use crate::slab::Slab;
use ctx::NO_HANDLER;

/// What the loop does with a panic in a handler, timer closure or remote call (see
/// the [module docs](self#panics-in-handlers)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PanicPolicy {
    /// Catch it, remove the handler that panicked (telling it through
    /// [`Handler::removed`]), log and count it, and go on serving the others.
    #[default]
    Contain,
    /// Let it unwind out of [`Reactor::run`] (after dropping the handler that
    /// panicked): for tests, and for servers that prefer to crash.
    Propagate,
}

/// Reactor settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long a graceful shutdown may take before connections are cut.
    pub shutdown_timeout: Duration,
    /// Most events one handler processes per readiness report before it is requeued
    /// (read calls; listeners and UDP sockets take four times as many accepted
    /// connections or datagrams). Stops one busy peer starving others. 0 counts as 1;
    /// `usize::MAX` means no limit.
    pub event_budget: usize,
    /// What a panic in a handler, timer closure or remote call does (default:
    /// contained, costing only the handler that panicked).
    pub panic_policy: PanicPolicy,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            shutdown_timeout: Duration::from_secs(5),
            event_budget: 16,
            panic_policy: PanicPolicy::Contain,
        }
    }
}

/// The event loop.
///
/// # Examples
///
/// ```
/// use readyloop::reactor::Reactor;
/// use readyloop::selector::Backend;
/// use std::time::Duration;
///
/// let mut reactor = Reactor::new(Backend::Poll)?;
/// reactor.call_later(Duration::from_millis(5), |ctx| ctx.stop());
/// reactor.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Panics
///
/// By default ([`PanicPolicy::Contain`]) a panic in a handler (a protocol callback),
/// a timer closure or a remote call costs only that handler or closure: it is
/// removed, logged and counted ([`panics_contained`](Self::panics_contained)), and
/// the loop goes on. With [`PanicPolicy::Propagate`] it unwinds out of
/// [`run`](Self::run) or [`run_once`](Self::run_once), after the handler that
/// panicked is deregistered and dropped; the reactor stays consistent, so a caller
/// that catches the panic may run it again. The [module docs](self#panics-in-handlers)
/// say what is cleaned up.
pub struct Reactor {
    state: LoopState,
    ready: Vec<(Token, Readiness)>,
    events: VecDeque<(HandlerId, Readiness)>,
    handle: Handle,
}

impl Reactor {
    /// A reactor on `backend` with default settings.
    ///
    /// # Errors
    ///
    /// As [`with_config`](Self::with_config).
    pub fn new(backend: Backend) -> io::Result<Reactor> {
        Self::with_config(backend, Config::default())
    }

    /// A reactor on `backend` with `config`.
    ///
    /// # Errors
    ///
    /// The backend cannot be opened (`epoll_create1`, or the `mio`/`polling`
    /// poller: out of descriptors or memory), or the waker cannot be made (its
    /// eventfd) or registered.
    pub fn with_config(backend: Backend, config: Config) -> io::Result<Reactor> {
        Self::with_selector(KeyedSelector::new(backend)?, config)
    }

    /// A reactor on an already opened selector (e.g. a backend in a non-default mode).
    ///
    /// # Errors
    ///
    /// `sel` has no waker yet and one cannot be made (its eventfd: out of
    /// descriptors) or registered with it (`select`: a descriptor at or above
    /// `FD_SETSIZE`).
    pub fn with_selector(
        mut sel: KeyedSelector<HandlerId>,
        mut config: Config,
    ) -> io::Result<Reactor> {
        // A zero budget would requeue every handler without doing any work: a spin.
        config.event_budget = config.event_budget.max(1);
        // Handlers own their descriptors, open while registered: select and poll
        // need not check each one with a syscall.
        sel.trust_open_descriptors();
        let waker = sel.waker()?;
        let remote = Arc::new(Mutex::new(Vec::new()));
        log::debug!("reactor on backend {}", sel.backend());
        let edge = sel.capabilities().trigger == Trigger::Edge;
        Ok(Reactor {
            state: LoopState {
                sel,
                handlers: Slab::default(),
                timers: Timers::default(),
                deferred: Vec::new(),
                to_remove: Vec::new(),
                requeued: Vec::new(),
                stop: false,
                shutting_down: false,
                config,
                now: Instant::now(),
                remote: remote.clone(),
                edge,
                panics: 0,
                mail: Vec::new(),
            },
            ready: Vec::with_capacity(1024),
            events: VecDeque::with_capacity(1024),
            handle: Handle {
                waker,
                remote: Arc::downgrade(&remote),
            },
        })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.state.sel.backend()
    }

    /// A handle usable from other threads.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs `f` with a context, outside any handler (to register handlers before
    /// `run`, for instance).
    pub fn with_ctx<R>(&mut self, f: impl FnOnce(&mut Ctx<'_>) -> R) -> R {
        let r = f(&mut Ctx {
            state: &mut self.state,
            me: NO_HANDLER,
        });
        self.state.process_removals();
        r
    }

    /// Registers a handler (see [`Ctx::insert`]).
    ///
    /// # Errors
    ///
    /// The backend refuses the descriptor: `AlreadyExists` if another handler has it
    /// registered, `InvalidInput` if it is negative, the selector's own waker or (on
    /// `select`) at or above `FD_SETSIZE`, or the kernel's error (`epoll_ctl`:
    /// `EBADF` for a closed descriptor, `EPERM` for a regular file). Nothing is
    /// registered then and `handler` is dropped (closing its descriptor) without a
    /// callback. With `interest: None` nothing is registered, so nothing can fail.
    ///
    /// # Examples
    ///
    /// A hand-written [`Handler`] (what `net` builds its listeners and connections
    /// on): it owns a socket, reads what arrives, and stops the loop.
    ///
    /// ```
    /// use std::any::Any;
    /// use std::cell::RefCell;
    /// use std::io::{Read, Write};
    /// use std::os::fd::{AsRawFd, RawFd};
    /// use std::os::unix::net::UnixStream;
    /// use std::rc::Rc;
    /// use readyloop::reactor::{Ctx, Handler, Reactor};
    /// use readyloop::selector::{Backend, Interest, Readiness};
    ///
    /// struct Reader {
    ///     sock: UnixStream,
    ///     got: Rc<RefCell<Vec<u8>>>,
    /// }
    ///
    /// impl Handler for Reader {
    ///     fn fd(&self) -> RawFd {
    ///         self.sock.as_raw_fd() // open as long as the handler lives
    ///     }
    ///     fn ready(&mut self, ctx: &mut Ctx<'_>, readiness: Readiness) {
    ///         let mut buf = [0; 64];
    ///         if readiness.is_readable() {
    ///             if let Ok(n) = self.sock.read(&mut buf) {
    ///                 self.got.borrow_mut().extend_from_slice(&buf[..n]);
    ///             }
    ///         }
    ///         ctx.stop();
    ///     }
    ///     fn as_any_mut(&mut self) -> &mut dyn Any {
    ///         self
    ///     }
    /// }
    ///
    /// let (sock, mut peer) = UnixStream::pair()?;
    /// sock.set_nonblocking(true)?;
    /// let got = Rc::new(RefCell::new(Vec::new()));
    /// let mut reactor = Reactor::new(Backend::Epoll)?;
    /// let reader = Reader { sock, got: got.clone() };
    /// reactor.insert(Box::new(reader), Some(Interest::READABLE))?;
    /// peer.write_all(b"ping")?;
    /// reactor.run()?; // and on return every handler is removed (the socket closed)
    /// assert_eq!(*got.borrow(), b"ping");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn insert(
        &mut self,
        handler: Box<dyn Handler>,
        interest: Option<Interest>,
    ) -> io::Result<HandlerId> {
        self.state.insert(handler, interest, false)
    }

    /// Runs `f` after `delay` on the loop. Returns an id for
    /// [`Ctx::cancel_timer`]. A `delay` too large for the clock (`Duration::MAX` as
    /// "never") saturates; it never panics.
    ///
    /// # Examples
    ///
    /// A timer that fires and stops the loop, and one cancelled before it fires:
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::time::{Duration, Instant};
    /// use readyloop::reactor::Reactor;
    /// use readyloop::selector::Backend;
    ///
    /// let mut reactor = Reactor::new(Backend::Poll)?;
    /// let fired = Rc::new(Cell::new(false));
    /// let f = fired.clone();
    /// reactor.call_later(Duration::from_millis(10), move |ctx| {
    ///     f.set(true);
    ///     ctx.stop();
    /// });
    /// let never = reactor.call_later(Duration::from_secs(3600), |_| unreachable!());
    /// assert!(reactor.with_ctx(|ctx| ctx.cancel_timer(never)));
    /// let start = Instant::now();
    /// reactor.run()?;
    /// assert!(fired.get() && start.elapsed() >= Duration::from_millis(10));
    /// assert_eq!(reactor.pending_timers(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn call_later(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut Ctx<'_>) + 'static,
    ) -> TimerId {
        self.with_ctx(|ctx| ctx.call_later(delay, f))
    }

    /// How many handlers are registered.
    pub fn handler_count(&self) -> usize {
        self.state.handlers.len()
    }

    /// How many timers are pending (handler timers and `call_later` closures).
    pub fn pending_timers(&self) -> usize {
        self.state.timers.len()
    }

    /// How many panics this reactor has contained so far ([`PanicPolicy::Contain`]).
    pub fn panics_contained(&self) -> u64 {
        self.state.panics
    }

    /// Whether the loop has been asked to stop.
    pub fn is_stopped(&self) -> bool {
        self.state.stop
    }

    /// Runs until stopped, or until a graceful shutdown completes.
    ///
    /// On return every handler has been removed ([`close_all`](Self::close_all)):
    /// listeners are closed and connections dropped without flushing (after a
    /// graceful shutdown, only those still open at its deadline). A later `run`
    /// starts with no handlers, and with the stop flag cleared: a
    /// [`Ctx::stop`] asked for before `run` (from [`with_ctx`](Self::with_ctx)) is
    /// forgotten; stop a loop that has not started with [`Handle::stop`], which runs
    /// on its first iteration.
    ///
    /// # Errors
    ///
    /// The wait failed: the backend's `select`/`poll`/`epoll_wait` (or the `mio` or
    /// `polling` poller) returned an error other than `EINTR` (which is no events),
    /// or draining the waker failed. The loop stops at the first; the handlers stay
    /// registered (run again, or drop the reactor to close them).
    ///
    /// # Panics
    ///
    /// Only under [`PanicPolicy::Propagate`]: a panic in a handler, timer closure or
    /// remote call unwinds out of `run` (see [`Reactor`]'s `# Panics`). Under the
    /// default [`PanicPolicy::Contain`] nothing a handler does makes `run` panic.
    ///
    /// # Examples
    ///
    /// A server stopped gracefully from another thread (as SIGTERM would, with
    /// [`handle_signals`](Self::handle_signals)): the listener closes, connections
    /// flush, then `run` returns with every handler gone.
    ///
    /// ```
    /// use readyloop::net::Listen;
    /// use readyloop::proto::echo::{Echo, EchoOptions};
    /// use readyloop::reactor::Reactor;
    /// use readyloop::selector::Backend;
    ///
    /// let mut reactor = Reactor::new(Backend::EpollEt)?;
    /// reactor.listen_tcp("127.0.0.1:0", Echo::factory(EchoOptions::default()))?;
    /// let handle = reactor.handle();
    /// let stopper = std::thread::spawn(move || handle.shutdown());
    /// reactor.run()?;
    /// stopper.join().expect("stopper thread")?;
    /// assert_eq!(reactor.handler_count(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run(&mut self) -> io::Result<()> {
        self.state.stop = false;
        // A finished graceful shutdown must not end the next run at once (its
        // deadline timer, if still queued, is ignored once this is false).
        self.state.shutting_down = false;
        while !self.state.stop {
            self.run_once(None)?;
        }
        self.close_all();
        Ok(())
    }

    /// One loop iteration: a wait of at most `max_wait` (and no longer than the next
    /// timer), dispatch, due timers (one that came due during the wait runs in this
    /// iteration), deferred work. Once the loop is stopped (by [`Ctx::stop`], a
    /// [`Handle`], or a finished graceful shutdown) it returns at once without
    /// waiting or running timers: a caller looping on it checks
    /// [`Reactor::is_stopped`].
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run); the handlers stay registered.
    ///
    /// # Panics
    ///
    /// As [`run`](Self::run): only under [`PanicPolicy::Propagate`].
    pub fn run_once(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
        let state = &mut self.state;
        if state.stop {
            return Ok(());
        }
        if state.shutting_down && !state.alive_for_shutdown() {
            log::info!("graceful shutdown complete");
            state.stop = true;
            return Ok(());
        }
        // Requeued events, and deferred work left over from the last batch (past the
        // round limit, or asked for outside the loop), must not wait for a new event.
        let timeout = if !state.requeued.is_empty() || !state.deferred.is_empty() {
            Some(Duration::ZERO)
        } else {
            let until_timer = state
                .timers
                .next_deadline()
                .map(|at| at.saturating_duration_since(Instant::now()));
            match (until_timer, max_wait) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        self.ready.clear();
        state.sel.select_into(timeout, &mut self.ready)?;
        state.now = Instant::now();
        if state.sel.take_woken() {
            state.run_remote();
        }
        self.events.clear();
        self.events.extend(state.requeued.drain(..));
        for &(token, r) in &self.ready {
            if let Some(k) = state.sel.get(token) {
                self.events.push_back((k.data, r));
            }
        }
        for (id, r) in self.events.drain(..) {
            state.call(id, |h, ctx| h.ready(ctx, r));
        }
        // After I/O, as Redis `ae.c` does: a timer that came due during the wait runs
        // in this iteration, and what it writes leaves in the deferred pass below
        // (no second, zero-timeout wait for it).
        state.run_timers();
        state.run_deferred();
        Ok(())
    }

    /// Removes every handler (telling each it is gone) — what `run` does on exit.
    pub fn close_all(&mut self) {
        let ids = self.state.handlers.ids();
        self.state.to_remove.extend(ids);
        self.state.process_removals();
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        self.close_all();
    }
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("backend", &self.backend())
            .field("handlers", &self.state.handlers.len())
            .finish()
    }
}
