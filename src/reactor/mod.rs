//! The reactor: a loop over a [`KeyedSelector`] that dispatches readiness to handlers.
//!
//! Loop order, fixed (Redis `ae.c` style):
//!
//! 1. run due timers;
//! 2. compute the wait timeout from the earliest timer (zero if events were requeued or
//!    deferred work is left over);
//! 3. `select`;
//! 4. dispatch each event to its handler, then run the handlers' deferred work
//!    (a buffered connection flushes its output once per batch, not once per write).
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

pub mod pool;
mod timers;

pub use timers::{TimerId, Timers};

use std::any::Any;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::selector::{
    Backend, Capabilities, Interest, KeyedSelector, Readiness, Token, Trigger, Waker,
};
use crate::slab::{Slab, SlabId};

/// Identifies a handler registered with the reactor.
pub type HandlerId = SlabId;

/// Something the reactor dispatches readiness to. Implemented by the `net` layer.
pub trait Handler: Any {
    /// The descriptor to watch. Must stay open while the handler is registered.
    fn fd(&self) -> RawFd;

    /// The descriptor is ready (or a requeued event is redelivered).
    fn ready(&mut self, ctx: &mut Ctx<'_>, readiness: Readiness);

    /// A timer set for this handler fired.
    fn timer(&mut self, _ctx: &mut Ctx<'_>, _id: TimerId) {}

    /// Deferred work requested with [`Ctx::defer`], run once after the event batch.
    fn deferred(&mut self, _ctx: &mut Ctx<'_>) {}

    /// The reactor is shutting down gracefully: stop taking new work and finish (a
    /// listener closes; a connection flushes and closes). The default removes the
    /// handler at once.
    fn shutdown(&mut self, ctx: &mut Ctx<'_>) {
        let id = ctx.id();
        ctx.remove(id);
    }

    /// The handler has been deregistered and is about to be dropped (closing its
    /// descriptor). Last chance to tell a protocol the connection is gone.
    fn removed(&mut self, _ctx: &mut Ctx<'_>) {}

    /// Whether the reactor should wait for this handler during a graceful shutdown
    /// (connections with output to flush say yes; listeners no).
    fn keeps_alive(&self) -> bool {
        false
    }

    /// Whether the handler owns its descriptor exclusively (never duplicated) and
    /// closes it when dropped. Then the reactor may skip the explicit deregistration
    /// on backends whose kernel forgets closed descriptors by itself (epoll).
    fn owns_fd(&self) -> bool {
        false
    }

    /// What the handler serves, for log lines about it (a connection's peer
    /// address, a listener's local address); `None` if nothing useful.
    fn describe(&self) -> Option<String> {
        None
    }

    /// For downcasting to the concrete handler type (`Ctx::handler_mut`).
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

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

/// Panics contained by every reactor of this process so far.
static PANICS_CONTAINED: AtomicU64 = AtomicU64::new(0);

/// How many panics the reactors of this process have contained so far (the sum of
/// every reactor's [`Reactor::panics_contained`]).
pub fn panics_contained_total() -> u64 {
    PANICS_CONTAINED.load(Ordering::Relaxed)
}

/// The message of a panic payload (`panic!` with a literal or a format string).
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
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

enum TimerOwner {
    Handler(HandlerId),
    Call(Box<dyn FnOnce(&mut Ctx<'_>)>),
    ShutdownDeadline,
}

type RemoteCall = Box<dyn FnOnce(&mut Ctx<'_>) + Send>;

struct Entry {
    /// Set while `removed()` runs: no new registration may outlive the entry.
    removing: bool,
    /// Being removed because one of its callbacks panicked (contained).
    panicked: bool,
    handler: Option<Box<dyn Handler>>,
    fd: RawFd,
    token: Option<Token>,
    /// Registered with [`Ctx::insert_exclusive`]: re-registrations stay exclusive.
    exclusive: bool,
    /// Its pending timers ([`Ctx::set_timer`]), cancelled when it goes: a protocol
    /// that forgets to cancel must not leave them in the heap until they fire.
    timers: Vec<TimerId>,
}

/// The reactor state handlers reach through [`Ctx`].
pub struct Core {
    sel: KeyedSelector<HandlerId>,
    handlers: Slab<Entry>,
    timers: Timers<TimerOwner>,
    deferred: Vec<HandlerId>,
    to_remove: Vec<HandlerId>,
    requeued: Vec<(HandlerId, Readiness)>,
    stop: bool,
    shutting_down: bool,
    config: Config,
    now: Instant,
    remote: Arc<Mutex<Vec<RemoteCall>>>,
    scratch: Vec<u8>,
    /// Cached from the backend's capabilities: asked on every read and write.
    edge: bool,
    /// Panics contained so far.
    panics: u64,
    /// Messages for handlers that were busy (out of their slot further up the call
    /// stack) when another handler tried to reach them ([`Ctx::post`]), oldest first.
    mail: Vec<(HandlerId, Box<dyn Any>)>,
}

/// Size of the reactor's shared read buffer (see [`Ctx::take_scratch`]).
pub const SCRATCH_SIZE: usize = 64 * 1024;

/// What a handler (or a timer callback) can do to the reactor while it runs.
pub struct Ctx<'a> {
    core: &'a mut Core,
    me: HandlerId,
}

/// `now + delay`, saturating instead of panicking for huge delays (`Duration::MAX` as
/// "never"): the loop then wakes at most every `i32::MAX` ms and recomputes.
fn deadline(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay)
        .or_else(|| now.checked_add(Duration::from_secs(u32::MAX as u64)))
        .unwrap_or(now)
}

/// The id used for callbacks that belong to no handler (timer closures, remote calls).
const NO_HANDLER: HandlerId = SlabId(u64::MAX);

impl<'a> Ctx<'a> {
    /// The handler being called (a dead id for closures).
    pub fn id(&self) -> HandlerId {
        self.me
    }

    /// Registers a new handler. `interest: None` keeps it parked (not watched) until
    /// [`set_interest`](Self::set_interest) gives it one.
    pub fn insert(
        &mut self,
        handler: Box<dyn Handler>,
        interest: Option<Interest>,
    ) -> io::Result<HandlerId> {
        self.core.insert(handler, interest, false)
    }

    /// Registers a handler whose descriptor (a listening socket) other reactors watch
    /// too, asking the backend to wake only one of them per event
    /// ([`KeyedSelector::register_exclusive`]: `EPOLLEXCLUSIVE` on the epoll backends;
    /// the others wake every reactor). Returns the id and whether the backend honoured
    /// it. Parking and resuming it ([`set_interest`](Self::set_interest)) keeps it
    /// exclusive.
    pub fn insert_exclusive(
        &mut self,
        handler: Box<dyn Handler>,
        interest: Interest,
    ) -> io::Result<(HandlerId, bool)> {
        let id = self.core.insert(handler, Some(interest), true)?;
        let exclusive = self
            .core
            .handlers
            .get(id)
            .and_then(|e| e.token)
            .and_then(|t| self.core.sel.get(t))
            .is_some_and(|k| k.exclusive);
        Ok((id, exclusive))
    }

    /// Changes what the kernel watches for `id`; `None` parks it (deregisters the
    /// descriptor but keeps the handler). Returns `Ok(false)` for an unknown `id`.
    pub fn set_interest(&mut self, id: HandlerId, interest: Option<Interest>) -> io::Result<bool> {
        self.core.set_interest(id, interest)
    }

    /// The interest `id` is registered with (`None`: parked or unknown).
    pub fn interest(&self, id: HandlerId) -> Option<Interest> {
        let e = self.core.handlers.get(id)?;
        self.core.sel.get(e.token?).map(|k| k.interest)
    }

    /// Removes `id` after the current callback: deregister, `removed()`, drop.
    pub fn remove(&mut self, id: HandlerId) {
        if self.core.handlers.get(id).is_some() && !self.core.to_remove.contains(&id) {
            self.core.to_remove.push(id);
        }
    }

    /// Asks for `id`'s [`Handler::deferred`] to run once after the current batch.
    pub fn defer(&mut self, id: HandlerId) {
        self.core.deferred.push(id);
    }

    /// Redelivers `readiness` to `id` on the next loop iteration (which then does not
    /// block). Used by edge-triggered handlers that stop before `WouldBlock`.
    pub fn requeue(&mut self, id: HandlerId, readiness: Readiness) {
        self.core.requeued.push((id, readiness));
    }

    /// Access to another live handler of type `H` (not the one being called).
    pub fn handler_mut<H: Handler>(&mut self, id: HandlerId) -> Option<&mut H> {
        self.core
            .handlers
            .get_mut(id)?
            .handler
            .as_mut()?
            .as_any_mut()
            .downcast_mut::<H>()
    }

    /// Calls `f` with another live handler of type `H` and a context in which that
    /// handler is the current one (so it can defer work or set timers for itself).
    /// Returns `None` if `id` is gone, is the caller, or is not an `H`, or if `f`
    /// panicked under [`PanicPolicy::Contain`] (then `id` is removed after the
    /// current callback, as if one of its own callbacks had panicked).
    pub fn with_handler<H: Handler, R>(
        &mut self,
        id: HandlerId,
        f: impl FnOnce(&mut H, &mut Ctx<'_>) -> R,
    ) -> Option<R> {
        let mut h = self.core.handlers.get_mut(id)?.handler.take()?;
        let Some(typed) = h.as_any_mut().downcast_mut::<H>() else {
            if let Some(e) = self.core.handlers.get_mut(id) {
                e.handler = Some(h);
            }
            return None;
        };
        let res = panic::catch_unwind(AssertUnwindSafe(|| {
            f(
                typed,
                &mut Ctx {
                    core: self.core,
                    me: id,
                },
            )
        }));
        match res {
            Ok(out) => {
                if let Some(e) = self.core.handlers.get_mut(id) {
                    e.handler = Some(h);
                }
                Some(out)
            }
            Err(payload) => {
                if self.core.config.panic_policy == PanicPolicy::Propagate {
                    // Dropped on the way out, like the caller (see `Core::call`).
                    drop(h);
                    panic::resume_unwind(payload);
                }
                // Contained here: the caller goes on as if `id` were gone; `id`
                // is removed after the current callback, like any removal.
                self.core.contained(&*payload, || {
                    format!(
                        "handler {id:?} (fd {}{}), called from handler {:?},",
                        h.fd(),
                        h.describe().map(|d| format!(", {d}")).unwrap_or_default(),
                        self.me
                    )
                });
                if let Some(e) = self.core.handlers.get_mut(id) {
                    e.handler = Some(h);
                    e.panicked = true;
                    if !self.core.to_remove.contains(&id) {
                        self.core.to_remove.push(id);
                    }
                }
                None
            }
        }
    }

    /// Whether `id` is registered but busy: taken out of its slot because one of its
    /// callbacks is running further up the call stack (it called, directly or not,
    /// the handler that asks). [`with_handler`](Self::with_handler) cannot reach it
    /// then; [`post`](Self::post) a message for it instead.
    pub fn is_busy(&self, id: HandlerId) -> bool {
        self.core
            .handlers
            .get(id)
            .is_some_and(|e| e.handler.is_none() && !e.removing)
    }

    /// Leaves `msg` for handler `id` to collect with [`take_mail`](Self::take_mail)
    /// (the `net` layer's connections collect theirs as soon as their running
    /// callback returns). Returns `false` if `id` is gone or being removed. Mail
    /// left for a handler is dropped with it.
    pub fn post(&mut self, id: HandlerId, msg: Box<dyn Any>) -> bool {
        match self.core.handlers.get(id) {
            Some(e) if !e.removing => {
                self.core.mail.push((id, msg));
                true
            }
            _ => false,
        }
    }

    /// The oldest message [`post`](Self::post)ed for `id` that `pick` accepts
    /// (cheap when there is no mail at all).
    pub fn take_mail(
        &mut self,
        id: HandlerId,
        pick: impl Fn(&dyn Any) -> bool,
    ) -> Option<Box<dyn Any>> {
        if self.core.mail.is_empty() {
            return None;
        }
        let i = self
            .core
            .mail
            .iter()
            .position(|(to, m)| *to == id && pick(m.as_ref()))?;
        Some(self.core.mail.remove(i).1)
    }

    /// Sets a timer for the current handler; its [`Handler::timer`] runs after `delay`.
    /// Pending timers are cancelled when the handler is removed. Outside a handler (a
    /// timer closure, a remote call) there is nothing to call back: use
    /// [`call_later`](Self::call_later).
    pub fn set_timer(&mut self, delay: Duration) -> TimerId {
        let at = deadline(delay);
        let id = self.core.timers.insert(at, TimerOwner::Handler(self.me));
        match self.core.handlers.get_mut(self.me) {
            Some(e) => e.timers.push(id),
            // A timer closure or remote call has no handler to call back.
            None => log::warn!("set_timer outside a handler never fires; use call_later"),
        }
        id
    }

    /// Runs `f` after `delay`.
    pub fn call_later(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut Ctx<'_>) + 'static,
    ) -> TimerId {
        let at = deadline(delay);
        self.core.timers.insert(at, TimerOwner::Call(Box::new(f)))
    }

    /// Cancels a pending timer. Returns whether it was pending.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        match self.core.timers.cancel(id) {
            Some(TimerOwner::Handler(h)) => {
                self.core.forget_timer(h, id);
                true
            }
            Some(_) => true,
            None => false,
        }
    }

    /// Stops the loop after the current iteration, without flushing anything.
    pub fn stop(&mut self) {
        self.core.stop = true;
    }

    /// Starts a graceful shutdown (as SIGINT/SIGTERM do): every handler gets
    /// [`Handler::shutdown`]; the loop ends when the handlers that keep it alive are
    /// gone, or after [`Config::shutdown_timeout`]. A second call stops at once.
    pub fn shutdown(&mut self) {
        self.core.begin_shutdown();
    }

    /// Whether the current handler is being removed because one of its callbacks
    /// panicked (asked in [`Handler::removed`]; see [`PanicPolicy::Contain`]).
    pub fn removed_after_panic(&self) -> bool {
        self.core
            .handlers
            .get(self.me)
            .is_some_and(|e| e.removing && e.panicked)
    }

    /// How many panics this reactor has contained so far ([`PanicPolicy::Contain`]).
    pub fn panics_contained(&self) -> u64 {
        self.core.panics
    }

    /// Logs and counts a panic a handler contained itself, at a finer grain than the
    /// handler (a datagram socket drops the one datagram whose protocol callback
    /// panicked and serves the next): as the reactor does for its own ([`PanicPolicy`];
    /// call it only under [`PanicPolicy::Contain`]). `what` names what was lost.
    pub fn contained_panic(&mut self, payload: &(dyn Any + Send), what: &str) {
        let me = self.me;
        self.core
            .contained(payload, || format!("handler {me:?}: {what}"));
    }

    /// Whether a graceful shutdown is under way.
    pub fn is_shutting_down(&self) -> bool {
        self.core.shutting_down
    }

    /// The backend's capabilities (trigger mode, limits).
    pub fn capabilities(&self) -> Capabilities {
        self.core.sel.capabilities()
    }

    /// Whether the backend is edge-triggered.
    pub fn is_edge(&self) -> bool {
        self.core.edge
    }

    /// The backend's name.
    pub fn backend(&self) -> Backend {
        self.core.sel.backend()
    }

    /// The loop's clock, read once per iteration (cheap; use `Instant::now()` for
    /// precision).
    pub fn now(&self) -> Instant {
        self.core.now
    }

    /// The reactor's settings.
    pub fn config(&self) -> &Config {
        &self.core.config
    }

    /// How many handlers are registered (listeners and connections).
    pub fn handler_count(&self) -> usize {
        self.core.handlers.len()
    }

    /// How many timers are pending (handler timers and `call_later` closures).
    pub fn pending_timers(&self) -> usize {
        self.core.timers.len()
    }

    /// Borrows the reactor's shared read buffer ([`SCRATCH_SIZE`] bytes): one buffer
    /// for every connection, so ten thousand idle connections cost no read buffers.
    /// Give it back with [`give_scratch`](Self::give_scratch). A nested taker gets a
    /// fresh buffer.
    pub fn take_scratch(&mut self) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.core.scratch);
        if buf.len() < SCRATCH_SIZE {
            buf.resize(SCRATCH_SIZE, 0);
        }
        buf
    }

    /// Returns the buffer taken with [`take_scratch`](Self::take_scratch).
    pub fn give_scratch(&mut self, buf: Vec<u8>) {
        if self.core.scratch.capacity() < buf.capacity() {
            self.core.scratch = buf;
        }
    }
}

impl Core {
    fn insert(
        &mut self,
        handler: Box<dyn Handler>,
        interest: Option<Interest>,
        exclusive: bool,
    ) -> io::Result<HandlerId> {
        let fd = handler.fd();
        let id = self.handlers.next_id();
        let token = match interest {
            Some(i) if exclusive => Some(self.sel.register_exclusive(fd, i, id)?.token),
            Some(i) => Some(self.sel.register(fd, i, id)?.token),
            None => None,
        };
        let got = self.handlers.insert(Entry {
            removing: false,
            panicked: false,
            handler: Some(handler),
            fd,
            token,
            exclusive,
            timers: Vec::new(),
        });
        debug_assert_eq!(got, id);
        Ok(id)
    }

    fn set_interest(&mut self, id: HandlerId, interest: Option<Interest>) -> io::Result<bool> {
        let Some(e) = self.handlers.get_mut(id) else {
            return Ok(false);
        };
        if e.removing {
            return Ok(false);
        }
        match (e.token, interest) {
            (Some(t), Some(i)) => {
                self.sel.modify_token(t, i)?;
            }
            (Some(t), None) => {
                self.sel.unregister_token(t)?;
                e.token = None;
            }
            (None, Some(i)) if e.exclusive => {
                e.token = Some(self.sel.register_exclusive(e.fd, i, id)?.token);
            }
            (None, Some(i)) => {
                e.token = Some(self.sel.register(e.fd, i, id)?.token);
            }
            (None, None) => {}
        }
        Ok(true)
    }

    fn begin_shutdown(&mut self) {
        if self.shutting_down {
            log::info!("second shutdown request: stopping now");
            self.stop = true;
            return;
        }
        log::info!(
            "graceful shutdown: no new work, flushing (at most {:?})",
            self.config.shutdown_timeout
        );
        self.shutting_down = true;
        let at = deadline(self.config.shutdown_timeout);
        self.timers.insert(at, TimerOwner::ShutdownDeadline);
        for id in self.handlers.ids() {
            self.call(id, |h, ctx| h.shutdown(ctx));
        }
    }

    /// Calls `f` on handler `id` with the handler taken out of its slot (so the
    /// context can reach every other handler), then puts it back if still registered.
    fn call(&mut self, id: HandlerId, f: impl FnOnce(&mut dyn Handler, &mut Ctx<'_>)) {
        let Some(entry) = self.handlers.get_mut(id) else {
            return;
        };
        let Some(mut h) = entry.handler.take() else {
            return;
        };
        let res = panic::catch_unwind(AssertUnwindSafe(|| {
            f(h.as_mut(), &mut Ctx { core: self, me: id })
        }));
        if let Err(payload) = res {
            if self.config.panic_policy == PanicPolicy::Propagate {
                // The handler's descriptor is still open (we hold it): deregister it
                // properly, then drop the handler (closing it) and any other handler
                // the unwinding took out of its slot, and let the panic go on.
                if let Some(t) = self.handlers.get_mut(id).and_then(|e| e.token.take()) {
                    if let Err(e) = self.sel.unregister_token(t) {
                        log::warn!("unregister fd {}: {e}", h.fd());
                    }
                }
                self.forget_orphans();
                drop(h);
                panic::resume_unwind(payload);
            }
            self.contained(&*payload, || {
                format!(
                    "handler {id:?} (fd {}{})",
                    h.fd(),
                    h.describe().map(|d| format!(", {d}")).unwrap_or_default()
                )
            });
            if let Some(e) = self.handlers.get_mut(id) {
                e.panicked = true;
                if !self.to_remove.contains(&id) {
                    self.to_remove.push(id);
                }
            }
        }
        if let Some(e) = self.handlers.get_mut(id) {
            e.handler = Some(h);
        }
        self.process_removals();
    }

    /// Counts and logs a contained panic; `what` names the code that panicked.
    fn contained(&mut self, payload: &(dyn Any + Send), what: impl FnOnce() -> String) {
        self.panics += 1;
        PANICS_CONTAINED.fetch_add(1, Ordering::Relaxed);
        log::error!(
            "{} panicked: {}; dropped it and went on ({} panic(s) contained so far)",
            what(),
            panic_message(payload),
            self.panics
        );
    }

    /// Runs user code that belongs to no handler (a timer closure, a remote call)
    /// under the same panic guard as [`call`](Self::call).
    fn call_closure(&mut self, what: &str, f: impl FnOnce(&mut Ctx<'_>)) {
        let res = panic::catch_unwind(AssertUnwindSafe(|| {
            f(&mut Ctx {
                core: self,
                me: NO_HANDLER,
            })
        }));
        if let Err(payload) = res {
            if self.config.panic_policy == PanicPolicy::Propagate {
                self.forget_orphans();
                panic::resume_unwind(payload);
            }
            self.contained(&*payload, || what.to_string());
        }
        self.process_removals();
    }

    /// After a panic in user code: every handler that is out of its slot was being
    /// called further up the unwinding stack and has been (or is about to be)
    /// dropped. Remove their entries and keys, so the loop neither dispatches to a
    /// slot with no handler (a spin on level-triggered backends) nor refuses a new
    /// descriptor that reuses the number.
    fn forget_orphans(&mut self) {
        let orphans: Vec<HandlerId> = self
            .handlers
            .iter()
            .filter(|(_, e)| e.handler.is_none())
            .map(|(id, _)| id)
            .collect();
        for id in orphans {
            let Some(entry) = self.remove_entry(id) else {
                continue;
            };
            log::error!(
                "handler for fd {} panicked (or was in use when a panic unwound); removed it",
                entry.fd
            );
            if let Some(t) = entry.token {
                // Its descriptor is closed already: no `epoll_ctl` on a stale number.
                if let Err(e) = self.sel.unregister_before_close(t) {
                    log::warn!("unregister fd {}: {e}", entry.fd);
                }
            }
        }
    }

    /// Drops `tid` from handler `h`'s pending timers (it fired or was cancelled).
    fn forget_timer(&mut self, h: HandlerId, tid: TimerId) {
        if let Some(e) = self.handlers.get_mut(h) {
            if let Some(i) = e.timers.iter().position(|&t| t == tid) {
                e.timers.swap_remove(i);
            }
        }
    }

    /// Removes handler `id`'s entry and cancels its pending timers.
    fn remove_entry(&mut self, id: HandlerId) -> Option<Entry> {
        let entry = self.handlers.remove(id)?;
        if !self.mail.is_empty() {
            self.mail.retain(|(to, _)| *to != id);
        }
        for &t in &entry.timers {
            self.timers.cancel(t);
        }
        Some(entry)
    }

    fn process_removals(&mut self) {
        let mut busy = Vec::new();
        while let Some(id) = self.to_remove.pop() {
            let Some(entry) = self.handlers.get_mut(id) else {
                continue;
            };
            // The handler may be out of its slot if it is running further up the stack
            // (a nested call during its own callback); `call` puts it back and the
            // removal pass after that callback finishes the job.
            let Some(mut h) = entry.handler.take() else {
                busy.push(id);
                continue;
            };
            if let Some(t) = entry.token.take() {
                let res = if h.owns_fd() {
                    self.sel.unregister_before_close(t)
                } else {
                    self.sel.unregister_token(t)
                };
                if let Err(e) = res {
                    log::warn!("unregister fd {}: {e}", entry.fd);
                }
            }
            entry.removing = true;
            let res = panic::catch_unwind(AssertUnwindSafe(|| {
                h.removed(&mut Ctx { core: self, me: id })
            }));
            self.remove_entry(id);
            if let Err(payload) = res {
                if self.config.panic_policy == PanicPolicy::Propagate {
                    drop(h);
                    self.to_remove.append(&mut busy);
                    panic::resume_unwind(payload);
                }
                self.contained(&*payload, || {
                    format!(
                        "handler {id:?} (fd {}{}) in removed()",
                        h.fd(),
                        h.describe().map(|d| format!(", {d}")).unwrap_or_default()
                    )
                });
            }
            drop(h);
        }
        self.to_remove = busy;
    }

    fn run_timers(&mut self) {
        let now = Instant::now();
        self.now = now;
        while let Some((tid, owner)) = self.timers.pop_due(now) {
            match owner {
                TimerOwner::Handler(id) => {
                    self.forget_timer(id, tid);
                    self.call(id, |h, ctx| h.timer(ctx, tid));
                }
                TimerOwner::Call(f) => self.call_closure("timer closure", f),
                TimerOwner::ShutdownDeadline => {
                    if self.shutting_down {
                        log::warn!(
                            "shutdown deadline passed with {} handler(s) still open; closing them",
                            self.handlers.len()
                        );
                        self.stop = true;
                    }
                }
            }
        }
    }

    fn run_remote(&mut self) {
        let calls: Vec<RemoteCall> = match self.remote.lock() {
            Ok(mut q) => std::mem::take(&mut *q),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for f in calls {
            self.call_closure("remote call", f);
        }
    }

    fn run_deferred(&mut self) {
        // Deferred work can defer more (a flush that frees room resumes a reader);
        // bound the rounds so a handler that defers itself forever cannot hang the loop.
        for _ in 0..4 {
            if self.deferred.is_empty() {
                return;
            }
            let mut batch = std::mem::take(&mut self.deferred);
            batch.sort_unstable();
            batch.dedup();
            for &id in &batch {
                self.call(id, |h, ctx| h.deferred(ctx));
            }
            batch.clear();
            if self.deferred.is_empty() {
                self.deferred = batch;
            }
        }
    }

    fn alive_for_shutdown(&self) -> bool {
        self.handlers
            .iter()
            .any(|(_, e)| e.handler.as_ref().is_some_and(|h| h.keeps_alive()))
    }
}

/// A cross-thread handle to a running reactor: wake it, run a closure on its thread,
/// stop it, or shut it down gracefully.
#[derive(Clone)]
pub struct Handle {
    waker: Waker,
    /// Weak: the reactor owns the queue, so a handle cannot keep a dropped reactor's
    /// queue alive and calls into it fail instead of vanishing.
    remote: Weak<Mutex<Vec<RemoteCall>>>,
}

impl Handle {
    /// Runs `f` on the reactor's thread during its next iteration (or its next run,
    /// if the loop is not running now). Fails with `NotConnected` once the reactor
    /// has been dropped; a call that races the drop is dropped unrun.
    pub fn call(&self, f: impl FnOnce(&mut Ctx<'_>) + Send + 'static) -> io::Result<()> {
        let remote = self.remote.upgrade().ok_or_else(gone)?;
        match remote.lock() {
            Ok(mut q) => q.push(Box::new(f)),
            Err(poisoned) => poisoned.into_inner().push(Box::new(f)),
        }
        self.waker.wake()
    }

    /// Wakes the reactor's `select` without queueing anything. Fails with
    /// `NotConnected` once the reactor has been dropped.
    pub fn wake(&self) -> io::Result<()> {
        if self.remote.strong_count() == 0 {
            return Err(gone());
        }
        self.waker.wake()
    }

    /// Stops the loop at once.
    pub fn stop(&self) -> io::Result<()> {
        self.call(|ctx| ctx.stop())
    }

    /// Starts a graceful shutdown (like SIGTERM).
    pub fn shutdown(&self) -> io::Result<()> {
        self.call(|ctx| ctx.shutdown())
    }
}

/// The error of a [`Handle`] whose reactor has been dropped.
fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the reactor has been dropped")
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

/// The handler for the signal pipe: a byte arrives per SIGINT/SIGTERM.
struct SignalHandler {
    rx: UnixStream,
    ids: Vec<signal_hook::SigId>,
}

impl Handler for SignalHandler {
    fn fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }

    fn ready(&mut self, ctx: &mut Ctx<'_>, _r: Readiness) {
        let mut buf = [0u8; 64];
        let mut got = false;
        loop {
            match crate::sys::read(std::os::fd::AsFd::as_fd(&self.rx), &mut buf) {
                Ok(0) => break,
                Ok(_) => got = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if got {
            log::info!("received SIGINT/SIGTERM");
            ctx.shutdown();
        }
    }

    fn shutdown(&mut self, _ctx: &mut Ctx<'_>) {
        // Stay registered: a second signal during the graceful phase stops at once.
    }

    fn removed(&mut self, _ctx: &mut Ctx<'_>) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
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
    core: Core,
    ready: Vec<(Token, Readiness)>,
    events: VecDeque<(HandlerId, Readiness)>,
    handle: Handle,
}

impl Reactor {
    /// A reactor on `backend` with default settings.
    pub fn new(backend: Backend) -> io::Result<Reactor> {
        Self::with_config(backend, Config::default())
    }

    /// A reactor on `backend` with `config`.
    pub fn with_config(backend: Backend, config: Config) -> io::Result<Reactor> {
        Self::with_selector(KeyedSelector::new(backend)?, config)
    }

    /// A reactor on an already opened selector (e.g. a backend in a non-default mode).
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
            core: Core {
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
                scratch: vec![0; SCRATCH_SIZE],
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
        self.core.sel.backend()
    }

    /// A handle usable from other threads.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs `f` with a context, outside any handler (to register handlers before
    /// `run`, for instance).
    pub fn with_ctx<R>(&mut self, f: impl FnOnce(&mut Ctx<'_>) -> R) -> R {
        let r = f(&mut Ctx {
            core: &mut self.core,
            me: NO_HANDLER,
        });
        self.core.process_removals();
        r
    }

    /// Registers a handler (see [`Ctx::insert`]).
    pub fn insert(
        &mut self,
        handler: Box<dyn Handler>,
        interest: Option<Interest>,
    ) -> io::Result<HandlerId> {
        self.core.insert(handler, interest, false)
    }

    /// Runs `f` after `delay` on the loop.
    pub fn call_later(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut Ctx<'_>) + 'static,
    ) -> TimerId {
        self.with_ctx(|ctx| ctx.call_later(delay, f))
    }

    /// Installs SIGINT and SIGTERM handlers that start a graceful shutdown (a second
    /// signal stops at once). Process-wide: call it from a server's `main`, not a library.
    pub fn handle_signals(&mut self) -> io::Result<()> {
        let (rx, tx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        let tx: OwnedFd = tx.into();
        let tx2 = tx.try_clone()?;
        let ids = vec![
            signal_hook::low_level::pipe::register(signal_hook::consts::SIGINT, tx)?,
            signal_hook::low_level::pipe::register(signal_hook::consts::SIGTERM, tx2)?,
        ];
        self.insert(
            Box::new(SignalHandler { rx, ids }),
            Some(Interest::READABLE),
        )?;
        Ok(())
    }

    /// How many handlers are registered.
    pub fn handler_count(&self) -> usize {
        self.core.handlers.len()
    }

    /// How many timers are pending (handler timers and `call_later` closures).
    pub fn pending_timers(&self) -> usize {
        self.core.timers.len()
    }

    /// How many panics this reactor has contained so far ([`PanicPolicy::Contain`]).
    pub fn panics_contained(&self) -> u64 {
        self.core.panics
    }

    /// Whether the loop has been asked to stop.
    pub fn is_stopped(&self) -> bool {
        self.core.stop
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
    pub fn run(&mut self) -> io::Result<()> {
        self.core.stop = false;
        // A finished graceful shutdown must not end the next run at once (its
        // deadline timer, if still queued, is ignored once this is false).
        self.core.shutting_down = false;
        while !self.core.stop {
            self.run_once(None)?;
        }
        self.close_all();
        Ok(())
    }

    /// One loop iteration: due timers, a wait of at most `max_wait` (and no longer than
    /// the next timer), dispatch, deferred work. Once the loop is stopped (by
    /// [`Ctx::stop`], a [`Handle`], or a finished graceful shutdown) it returns at once
    /// without waiting: a caller looping on it checks [`Reactor::is_stopped`].
    pub fn run_once(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
        let core = &mut self.core;
        core.run_timers();
        if core.stop {
            return Ok(());
        }
        if core.shutting_down && !core.alive_for_shutdown() {
            log::info!("graceful shutdown complete");
            core.stop = true;
            return Ok(());
        }
        // Requeued events, and deferred work left over from the last batch (past the
        // round limit, or asked for outside the loop), must not wait for a new event.
        let timeout = if !core.requeued.is_empty() || !core.deferred.is_empty() {
            Some(Duration::ZERO)
        } else {
            let until_timer = core
                .timers
                .next_deadline()
                .map(|at| at.saturating_duration_since(Instant::now()));
            match (until_timer, max_wait) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        self.ready.clear();
        core.sel.select_into(timeout, &mut self.ready)?;
        core.now = Instant::now();
        if core.sel.take_woken() {
            core.run_remote();
        }
        self.events.clear();
        self.events.extend(core.requeued.drain(..));
        for &(token, r) in &self.ready {
            if let Some(k) = core.sel.get(token) {
                self.events.push_back((k.data, r));
            }
        }
        for (id, r) in self.events.drain(..) {
            core.call(id, |h, ctx| h.ready(ctx, r));
        }
        core.run_deferred();
        Ok(())
    }

    /// Removes every handler (telling each it is gone) — what `run` does on exit.
    pub fn close_all(&mut self) {
        let ids = self.core.handlers.ids();
        self.core.to_remove.extend(ids);
        self.core.process_removals();
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
            .field("handlers", &self.core.handlers.len())
            .finish()
    }
}
