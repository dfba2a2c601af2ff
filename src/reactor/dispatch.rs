//! The reactor's state ([`LoopState`]) and dispatch: the handler slab, timers, removal
//! after the callback that asked for it, deferred work, and panic containment.

use std::any::Any;
use std::io;
use std::os::fd::RawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::ctx::{deadline, NO_HANDLER};
use super::handle::RemoteCall;
#[cfg(doc)]
use super::Reactor;
use super::{Config, Ctx, Handler, HandlerId, PanicPolicy, TimerId, Timers};
use crate::selector::{Interest, KeyedSelector, Readiness, Token};
use crate::slab::Slab;

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

pub(super) enum TimerOwner {
    Handler(HandlerId),
    Call(Box<dyn FnOnce(&mut Ctx<'_>)>),
    ShutdownDeadline,
}

pub(super) struct Entry {
    /// Set while `removed()` runs: no new registration may outlive the entry.
    pub(super) removing: bool,
    /// Being removed because one of its callbacks panicked (contained).
    pub(super) panicked: bool,
    pub(super) handler: Option<Box<dyn Handler>>,
    pub(super) fd: RawFd,
    pub(super) token: Option<Token>,
    /// Registered with [`Ctx::insert_exclusive`]: re-registrations stay exclusive.
    pub(super) exclusive: bool,
    /// Its pending timers ([`Ctx::set_timer`]), cancelled when it goes: a protocol
    /// that forgets to cancel must not leave them in the heap until they fire.
    pub(super) timers: Vec<TimerId>,
}

/// The loop's state, which handlers reach through [`Ctx`]: the selector, the
/// handler slab, timers, deferred work and removals, mail, the configuration.
pub(crate) struct LoopState {
    pub(super) sel: KeyedSelector<HandlerId>,
    pub(super) handlers: Slab<Entry>,
    pub(super) timers: Timers<TimerOwner>,
    pub(super) deferred: Vec<HandlerId>,
    pub(super) to_remove: Vec<HandlerId>,
    pub(super) requeued: Vec<(HandlerId, Readiness)>,
    pub(super) stop: bool,
    pub(super) shutting_down: bool,
    pub(super) config: Config,
    pub(super) now: Instant,
    pub(super) remote: Arc<Mutex<Vec<RemoteCall>>>,
    /// Cached from the backend's capabilities: asked on every read and write.
    pub(super) edge: bool,
    /// Panics contained so far.
    pub(super) panics: u64,
    /// Messages for handlers that were busy (out of their slot further up the call
    /// stack) when another handler tried to reach them ([`Ctx::post`]), oldest first.
    pub(super) mail: Vec<(HandlerId, Box<dyn Any>)>,
}

impl LoopState {
    pub(super) fn insert(
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

    pub(super) fn set_interest(
        &mut self,
        id: HandlerId,
        interest: Option<Interest>,
    ) -> io::Result<bool> {
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

    pub(super) fn begin_shutdown(&mut self) {
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
    pub(super) fn call(&mut self, id: HandlerId, f: impl FnOnce(&mut dyn Handler, &mut Ctx<'_>)) {
        let Some(entry) = self.handlers.get_mut(id) else {
            return;
        };
        let Some(mut h) = entry.handler.take() else {
            return;
        };
        let res = panic::catch_unwind(AssertUnwindSafe(|| {
            f(
                h.as_mut(),
                &mut Ctx {
                    state: self,
                    me: id,
                },
            )
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
    pub(super) fn contained(&mut self, payload: &(dyn Any + Send), what: impl FnOnce() -> String) {
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
                state: self,
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
    pub(super) fn forget_timer(&mut self, h: HandlerId, tid: TimerId) {
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

    pub(super) fn process_removals(&mut self) {
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
                h.removed(&mut Ctx {
                    state: self,
                    me: id,
                })
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

    pub(super) fn run_timers(&mut self) {
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

    pub(super) fn run_remote(&mut self) {
        let calls: Vec<RemoteCall> = match self.remote.lock() {
            Ok(mut q) => std::mem::take(&mut *q),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for f in calls {
            self.call_closure("remote call", f);
        }
    }

    pub(super) fn run_deferred(&mut self) {
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

    pub(super) fn alive_for_shutdown(&self) -> bool {
        self.handlers
            .iter()
            .any(|(_, e)| e.handler.as_ref().is_some_and(|h| h.keeps_alive()))
    }
}
