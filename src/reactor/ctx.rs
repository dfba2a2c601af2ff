//! [`Ctx`]: what a handler, timer closure or remote call can do to the reactor while
//! it runs (register and remove handlers, timers, reach other handlers, mail).

use std::any::Any;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::dispatch::{LoopState, TimerOwner};
use super::{Config, Handler, HandlerId, PanicPolicy, TimerId};
#[cfg(doc)]
use crate::selector::KeyedSelector;
use crate::selector::{Backend, Capabilities, Interest, Readiness};
use crate::slab::SlabId;

/// What a handler (or a timer callback) can do to the reactor while it runs.
pub struct Ctx<'a> {
    pub(super) state: &'a mut LoopState,
    pub(super) me: HandlerId,
}

/// `now + delay`, saturating instead of panicking for huge delays (`Duration::MAX` as
/// "never"): the loop then wakes at most every `i32::MAX` ms and recomputes.
pub(super) fn deadline(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay)
        .or_else(|| now.checked_add(Duration::from_secs(u32::MAX as u64)))
        .unwrap_or(now)
}

/// The id used for callbacks that belong to no handler (timer closures, remote calls).
pub(super) const NO_HANDLER: HandlerId = SlabId(u64::MAX);

impl<'a> Ctx<'a> {
    /// The handler being called (a dead id for closures).
    pub fn id(&self) -> HandlerId {
        self.me
    }

    /// Registers a new handler. `interest: None` keeps it parked (not watched) until
    /// [`set_interest`](Self::set_interest) gives it one.
    ///
    /// # Errors
    ///
    /// The backend refuses the descriptor: `AlreadyExists` if another handler has it
    /// registered, `InvalidInput` if it is negative, the selector's own waker or (on
    /// `select`) at or above `FD_SETSIZE`, or the kernel's error (`epoll_ctl`:
    /// `EBADF` for a closed descriptor, `EPERM` for a regular file). Nothing is
    /// registered then and `handler` is dropped (closing its descriptor) without a
    /// callback. With `interest: None` nothing is registered, so nothing can fail.
    pub fn insert(
        &mut self,
        handler: Box<dyn Handler>,
        interest: Option<Interest>,
    ) -> io::Result<HandlerId> {
        self.state.insert(handler, interest, false)
    }

    /// Registers a handler whose descriptor (a listening socket) other reactors watch
    /// too, asking the backend to wake only one of them per event
    /// ([`KeyedSelector::register_exclusive`]: `EPOLLEXCLUSIVE` on the epoll backends;
    /// the others wake every reactor). Returns the id and whether the backend honoured
    /// it. Parking and resuming it ([`set_interest`](Self::set_interest)) keeps it
    /// exclusive.
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert); a backend that cannot register exclusively
    /// registers normally (the `bool` is `false`), it does not fail.
    pub fn insert_exclusive(
        &mut self,
        handler: Box<dyn Handler>,
        interest: Interest,
    ) -> io::Result<(HandlerId, bool)> {
        let id = self.state.insert(handler, Some(interest), true)?;
        let exclusive = self
            .state
            .handlers
            .get(id)
            .and_then(|e| e.token)
            .and_then(|t| self.state.sel.get(t))
            .is_some_and(|k| k.exclusive);
        Ok((id, exclusive))
    }

    /// Changes what the kernel watches for `id`; `None` parks it (deregisters the
    /// descriptor but keeps the handler). Returns `Ok(false)` for an unknown `id`
    /// or one being removed.
    ///
    /// # Errors
    ///
    /// The backend refuses the change: the kernel's error for a modify or a
    /// deregistration (`epoll_ctl`), or, for a parked handler given an interest
    /// again, the errors of [`insert`](Self::insert) (its descriptor stays parked).
    pub fn set_interest(&mut self, id: HandlerId, interest: Option<Interest>) -> io::Result<bool> {
        self.state.set_interest(id, interest)
    }

    /// The interest `id` is registered with (`None`: parked or unknown).
    pub fn interest(&self, id: HandlerId) -> Option<Interest> {
        let e = self.state.handlers.get(id)?;
        self.state.sel.get(e.token?).map(|k| k.interest)
    }

    /// Removes `id` after the current callback: deregister, `removed()`, drop.
    pub fn remove(&mut self, id: HandlerId) {
        if self.state.handlers.get(id).is_some() && !self.state.to_remove.contains(&id) {
            self.state.to_remove.push(id);
        }
    }

    /// Asks for `id`'s [`Handler::deferred`] to run once after the current batch.
    pub fn defer(&mut self, id: HandlerId) {
        self.state.deferred.push(id);
    }

    /// Redelivers `readiness` to `id` on the next loop iteration (which then does not
    /// block). Used by edge-triggered handlers that stop before `WouldBlock`.
    pub fn requeue(&mut self, id: HandlerId, readiness: Readiness) {
        self.state.requeued.push((id, readiness));
    }

    /// Calls `f` with another live handler of type `H` and a context in which that
    /// handler is the current one (so it can defer work or set timers for itself).
    /// Returns `None` if `id` is gone, is the caller, or is not an `H`, or if `f`
    /// panicked under [`PanicPolicy::Contain`] (then `id` is removed after the
    /// current callback, as if one of its own callbacks had panicked).
    ///
    /// # Panics
    ///
    /// Under [`PanicPolicy::Propagate`] only: a panic in `f` goes on unwinding
    /// (after the handler `id` is dropped, closing its descriptor), out of the
    /// caller's callback and [`Reactor::run`](super::Reactor::run).
    pub fn with_handler<H: Handler, R>(
        &mut self,
        id: HandlerId,
        f: impl FnOnce(&mut H, &mut Ctx<'_>) -> R,
    ) -> Option<R> {
        let mut h = self.state.handlers.get_mut(id)?.handler.take()?;
        let Some(typed) = h.as_any_mut().downcast_mut::<H>() else {
            if let Some(e) = self.state.handlers.get_mut(id) {
                e.handler = Some(h);
            }
            return None;
        };
        let res = panic::catch_unwind(AssertUnwindSafe(|| {
            f(
                typed,
                &mut Ctx {
                    state: self.state,
                    me: id,
                },
            )
        }));
        match res {
            Ok(out) => {
                if let Some(e) = self.state.handlers.get_mut(id) {
                    e.handler = Some(h);
                }
                Some(out)
            }
            Err(payload) => {
                if self.state.config.panic_policy == PanicPolicy::Propagate {
                    // Dropped on the way out, like the caller (see `LoopState::call`).
                    drop(h);
                    panic::resume_unwind(payload);
                }
                // Contained here: the caller goes on as if `id` were gone; `id`
                // is removed after the current callback, like any removal.
                self.state.contained(&*payload, || {
                    format!(
                        "handler {id:?} (fd {}{}), called from handler {:?},",
                        h.fd(),
                        h.describe().map(|d| format!(", {d}")).unwrap_or_default(),
                        self.me
                    )
                });
                if let Some(e) = self.state.handlers.get_mut(id) {
                    e.handler = Some(h);
                    e.panicked = true;
                    if !self.state.to_remove.contains(&id) {
                        self.state.to_remove.push(id);
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
        self.state
            .handlers
            .get(id)
            .is_some_and(|e| e.handler.is_none() && !e.removing)
    }

    /// Leaves `msg` for handler `id` to collect with [`take_mail`](Self::take_mail)
    /// (the `net` layer's connections collect theirs as soon as their running
    /// callback returns). Returns `false` if `id` is gone or being removed. Mail
    /// left for a handler is dropped with it.
    pub fn post(&mut self, id: HandlerId, msg: Box<dyn Any>) -> bool {
        match self.state.handlers.get(id) {
            Some(e) if !e.removing => {
                self.state.mail.push((id, msg));
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
        if self.state.mail.is_empty() {
            return None;
        }
        let i = self
            .state
            .mail
            .iter()
            .position(|(to, m)| *to == id && pick(m.as_ref()))?;
        Some(self.state.mail.remove(i).1)
    }

    /// Sets a timer for the current handler; its [`Handler::timer`] runs after `delay`.
    /// Pending timers are cancelled when the handler is removed. Outside a handler (a
    /// timer closure, a remote call) there is nothing to call back: use
    /// [`call_later`](Self::call_later).
    pub fn set_timer(&mut self, delay: Duration) -> TimerId {
        let at = deadline(delay);
        let id = self.state.timers.insert(at, TimerOwner::Handler(self.me));
        match self.state.handlers.get_mut(self.me) {
            Some(e) => e.timers.push(id),
            // A timer closure or remote call has no handler to call back.
            None => log::warn!("set_timer outside a handler never fires; use call_later"),
        }
        id
    }

    /// Runs `f` on the loop after `delay` (from a handler, a timer closure or a
    /// remote call; before the loop runs,
    /// [`Reactor::call_later`](super::Reactor::call_later)). A `delay` too large for
    /// the clock (`Duration::MAX` as "never") saturates; it never panics.
    pub fn call_later(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut Ctx<'_>) + 'static,
    ) -> TimerId {
        let at = deadline(delay);
        self.state.timers.insert(at, TimerOwner::Call(Box::new(f)))
    }

    /// Cancels a pending timer. Returns whether it was pending.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        match self.state.timers.cancel(id) {
            Some(TimerOwner::Handler(h)) => {
                self.state.forget_timer(h, id);
                true
            }
            Some(_) => true,
            None => false,
        }
    }

    /// Stops the loop after the current iteration, without flushing anything.
    pub fn stop(&mut self) {
        self.state.stop = true;
    }

    /// Starts a graceful shutdown (as SIGINT/SIGTERM do): every handler gets
    /// [`Handler::shutdown`]; the loop ends when the handlers that keep it alive are
    /// gone, or after [`Config::shutdown_timeout`]. A second call stops at once.
    pub fn shutdown(&mut self) {
        self.state.begin_shutdown();
    }

    /// Whether the current handler is being removed because one of its callbacks
    /// panicked (asked in [`Handler::removed`]; see [`PanicPolicy::Contain`]).
    pub fn removed_after_panic(&self) -> bool {
        self.state
            .handlers
            .get(self.me)
            .is_some_and(|e| e.removing && e.panicked)
    }

    /// How many panics this reactor has contained so far ([`PanicPolicy::Contain`]).
    pub fn panics_contained(&self) -> u64 {
        self.state.panics
    }

    /// Logs and counts a panic a handler contained itself, at a finer grain than the
    /// handler (a datagram socket drops the one datagram whose protocol callback
    /// panicked and serves the next): as the reactor does for its own ([`PanicPolicy`];
    /// call it only under [`PanicPolicy::Contain`]). `what` names what was lost.
    pub fn contained_panic(&mut self, payload: &(dyn Any + Send), what: &str) {
        let me = self.me;
        self.state
            .contained(payload, || format!("handler {me:?}: {what}"));
    }

    /// Whether a graceful shutdown is under way.
    pub fn is_shutting_down(&self) -> bool {
        self.state.shutting_down
    }

    /// The backend's capabilities (trigger mode, limits).
    pub fn capabilities(&self) -> Capabilities {
        self.state.sel.capabilities()
    }

    /// Whether the backend is edge-triggered.
    pub fn is_edge(&self) -> bool {
        self.state.edge
    }

    /// The backend's name.
    pub fn backend(&self) -> Backend {
        self.state.sel.backend()
    }

    /// The loop's clock, read once per iteration (cheap; use `Instant::now()` for
    /// precision).
    pub fn now(&self) -> Instant {
        self.state.now
    }

    /// The reactor's settings.
    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// How many handlers are registered (listeners and connections).
    pub fn handler_count(&self) -> usize {
        self.state.handlers.len()
    }

    /// How many timers are pending (handler timers and `call_later` closures).
    pub fn pending_timers(&self) -> usize {
        self.state.timers.len()
    }
}
