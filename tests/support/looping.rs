//! A reactor running `run()` on a background thread ([`LoopThread`]), and a
//! [`Watchdog`] that stops a loop which overstays.

use std::io;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use readyloop::reactor::{Config, Ctx, Handle, Reactor};
use readyloop::selector::Backend;

use super::{init_logging, DEADLINE};

/// A reactor running `run()` on its own thread. Dropping it stops the loop.
pub struct LoopThread {
    /// The reactor's cross-thread handle.
    pub handle: Handle,
    done: mpsc::Receiver<io::Result<()>>,
    thread: Option<JoinHandle<()>>,
    result: Option<io::Result<()>>,
}

/// Builds a reactor on `backend` in a new thread, runs `setup` on it (listeners...),
/// hands `setup`'s result back, and runs the loop.
pub fn spawn_loop<T: Send + 'static>(
    backend: Backend,
    config: Config,
    setup: impl FnOnce(&mut Reactor) -> T + Send + 'static,
) -> (LoopThread, T) {
    init_logging();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    let thread = thread::Builder::new()
        .name(format!("reactor-{backend}"))
        .spawn(move || {
            let mut reactor = Reactor::with_config(backend, config)
                .unwrap_or_else(|e| panic!("reactor on {backend}: {e}"));
            let t = setup(&mut reactor);
            let _ = ready_tx.send((reactor.handle(), t));
            let r = reactor.run();
            drop(reactor);
            let _ = done_tx.send(r);
        })
        .unwrap();
    let (handle, t) = ready_rx
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|e| panic!("{backend}: reactor set-up failed: {e}"));
    (
        LoopThread {
            handle,
            done,
            thread: Some(thread),
            result: None,
        },
        t,
    )
}

impl LoopThread {
    /// Runs `f` on the loop and returns its result (bounded wait).
    pub fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut Ctx<'_>) -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::channel();
        self.handle
            .call(move |ctx| {
                let _ = tx.send(f(ctx));
            })
            .expect("handle.call");
        rx.recv_timeout(DEADLINE)
            .expect("the loop ran the call within the deadline")
    }

    /// Waits (at most `within`) for `run()` to return, and returns its result.
    pub fn join(&mut self, within: Duration) -> io::Result<()> {
        if let Some(r) = self.result.take() {
            return r;
        }
        let r = self
            .done
            .recv_timeout(within)
            .unwrap_or_else(|e| panic!("run() did not return within {within:?}: {e}"));
        if let Some(t) = self.thread.take() {
            t.join().expect("reactor thread panicked");
        }
        r
    }

    /// Whether `run()` has returned (without waiting).
    pub fn finished(&mut self) -> bool {
        if self.thread.is_none() || self.result.is_some() {
            return true;
        }
        match self.done.try_recv() {
            Ok(r) => {
                self.result = Some(r);
                true
            }
            Err(_) => false,
        }
    }

    /// `handle.stop()`, then waits for `run()` to return (a loop that already ended
    /// and dropped its reactor answers `NotConnected`: then only the join is left).
    pub fn stop(mut self) -> io::Result<()> {
        if let Err(e) = self.handle.stop() {
            assert_eq!(e.kind(), io::ErrorKind::NotConnected, "handle.stop: {e}");
        }
        self.join(DEADLINE)
    }
}

impl Drop for LoopThread {
    fn drop(&mut self) {
        if self.thread.is_some() && self.result.is_none() {
            let _ = self.handle.stop();
            if self.done.recv_timeout(Duration::from_secs(5)).is_ok() {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
        }
    }
}

/// Stops a reactor through its handle if the test has not disarmed it in time, so a
/// loop that never returns fails the case instead of hanging it.
pub struct Watchdog {
    cancel: mpsc::Sender<()>,
    thread: JoinHandle<bool>,
}

impl Watchdog {
    /// Arms a watchdog that calls `handle.stop()` after `after`.
    pub fn arm(handle: Handle, after: Duration) -> Watchdog {
        let (cancel, rx) = mpsc::channel::<()>();
        let thread = thread::spawn(move || match rx.recv_timeout(after) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = handle.stop();
                true
            }
            _ => false,
        });
        Watchdog { cancel, thread }
    }

    /// Disarms it; returns whether it had fired.
    pub fn disarm(self) -> bool {
        let _ = self.cancel.send(());
        self.thread.join().unwrap_or(true)
    }
}
