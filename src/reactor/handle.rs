//! [`Handle`]: reaching a running reactor from other threads (remote calls and the
//! waker).

use std::io;
use std::sync::{Mutex, Weak};

use super::Ctx;
use crate::selector::Waker;

pub(super) type RemoteCall = Box<dyn FnOnce(&mut Ctx<'_>) + Send>;

/// A cross-thread handle to a running reactor: wake it, run a closure on its thread,
/// stop it, or shut it down gracefully.
///
/// # Examples
///
/// Work done on another thread hands its result to the loop's thread, then stops
/// the loop; once the reactor is dropped, its handles fail with `NotConnected`.
///
/// ```
/// use std::io;
/// use std::sync::mpsc;
/// use readyloop::reactor::Reactor;
/// use readyloop::selector::Backend;
///
/// let mut reactor = Reactor::new(Backend::EpollEt)?;
/// let handle = reactor.handle();
/// let (tx, rx) = mpsc::channel();
/// let worker = std::thread::spawn(move || {
///     let answer = 6 * 7; // work done off the loop
///     handle.call(move |ctx| {
///         // On the reactor's thread: a handler or the reactor itself could be
///         // reached here through `ctx`.
///         tx.send(answer).expect("receiver alive");
///         ctx.stop();
///     })
/// });
/// reactor.run()?; // returns once the call ran
/// worker.join().expect("worker thread")?;
/// assert_eq!(rx.recv().expect("sent"), 42);
///
/// let handle = reactor.handle();
/// drop(reactor);
/// assert_eq!(handle.stop().unwrap_err().kind(), io::ErrorKind::NotConnected);
/// # Ok::<(), io::Error>(())
/// ```
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
    ///
    /// # Errors
    ///
    /// `NotConnected` once the reactor has been dropped (`f` is dropped unrun). If
    /// `f` was queued but waking the loop failed (a write to its eventfd failing
    /// otherwise than `WouldBlock`, not expected in practice), the error is returned
    /// and `f` still runs on the loop's next iteration.
    pub fn call(&self, f: impl FnOnce(&mut Ctx<'_>) + Send + 'static) -> io::Result<()> {
        let remote = self.remote.upgrade().ok_or_else(gone)?;
        match remote.lock() {
            Ok(mut q) => q.push(Box::new(f)),
            Err(poisoned) => poisoned.into_inner().push(Box::new(f)),
        }
        self.waker.wake()
    }

    /// Wakes the reactor's `select` without queueing anything.
    ///
    /// # Errors
    ///
    /// `NotConnected` once the reactor has been dropped (or its selector closed);
    /// otherwise the error of the write to its eventfd (`WouldBlock` is success:
    /// the loop is already due to wake).
    pub fn wake(&self) -> io::Result<()> {
        if self.remote.strong_count() == 0 {
            return Err(gone());
        }
        self.waker.wake()
    }

    /// Stops the loop at once (at its next iteration: the callback running now
    /// finishes), without flushing output: [`Ctx::stop`] from the loop's thread.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call): `NotConnected` once the reactor has been dropped.
    pub fn stop(&self) -> io::Result<()> {
        self.call(|ctx| ctx.stop())
    }

    /// Starts a graceful shutdown (like SIGTERM): [`Ctx::shutdown`] from the loop's
    /// thread. A second call stops at once.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call): `NotConnected` once the reactor has been dropped.
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
