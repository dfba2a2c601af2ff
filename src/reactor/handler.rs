//! The [`Handler`] trait: what the reactor dispatches readiness, timers and deferred
//! work to, and the [`HandlerId`] that names a registered handler.

use std::any::Any;
use std::os::fd::RawFd;

use super::{Ctx, TimerId};
use crate::selector::Readiness;
use crate::slab::SlabId;

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

    /// For downcasting to the concrete handler type (`Ctx::with_handler`).
    fn as_any_mut(&mut self) -> &mut dyn Any;
}
