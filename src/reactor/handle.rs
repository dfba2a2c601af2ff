//! [`Handle`]: reaching a running reactor from other threads (remote calls and the
//! waker).

use std::io;
use std::sync::{Mutex, Weak};

use super::Ctx;
use crate::selector::Waker;

pub(super) type RemoteCall = Box<dyn FnOnce(&mut Ctx<'_>) + Send>;

/// A cross-thread handle to a running reactor: wake it, run a closure on its thread,
/// stop it, or shut it down gracefully.
#[derive(Clone)]
pub struct Handle {
    pub(super) waker: Waker,
    /// Weak: the reactor owns the queue, so a handle cannot keep a dropped reactor's
    /// queue alive and calls into it fail instead of vanishing.
    pub(super) remote: Weak<Mutex<Vec<RemoteCall>>>,
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
