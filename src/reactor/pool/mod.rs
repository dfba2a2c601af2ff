//! A pool of reactors, one per thread, started and stopped together.
//!
//! Each reactor keeps its own selector (of the backend the pool was given), its own
//! handlers and timers: nothing is shared between them on the hot path except the
//! per-reactor counters ([`ReactorStats`], relaxed atomics written by their own
//! thread only) and whatever the user shares on purpose (a global connection limit,
//! see [`crate::net::PoolListener`]). Handlers are not `Send`, so a reactor is built
//! on its thread and filled by a `setup` closure run there, once per reactor.
//!
//! * [`Pool::start`] creates the reactors, runs `setup` on each (all of them finish
//!   their setup before any starts serving, and [`Member::handles`] reaches every
//!   reactor of the pool from there), then runs them.
//! * [`RunningPool::wait`] returns when every reactor has finished. SIGINT/SIGTERM
//!   ([`Pool::handle_signals`]) start a graceful shutdown of all of them; a second
//!   signal stops them all at once.
//! * Panics follow the reactors' [`PanicPolicy`](super::PanicPolicy) (see
//!   [`Pool::config`]): under `Contain` (the default) a panicking handler is removed
//!   and its reactor goes on serving; under `Propagate` the panic ends that reactor's
//!   thread.
//! * When one reactor ends for any reason (its graceful shutdown completed, it was
//!   stopped, its loop failed, or a panic ended its thread), the others are shut
//!   down gracefully: the pool never keeps serving with a reactor missing, and never
//!   hangs on one that died. `wait` reports the failures.
//!
//! # Examples
//!
//! ```
//! use readyloop::reactor::pool::Pool;
//! use readyloop::selector::Backend;
//! use std::time::Duration;
//!
//! let pool = Pool::new(Backend::Poll, 2).start(|reactor, member| {
//!     // Each reactor stops itself after a moment; the pool ends when all have.
//!     let _ = member.index();
//!     reactor.call_later(Duration::from_millis(5), |ctx| ctx.stop());
//!     Ok(())
//! })?;
//! pool.wait()?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};

use crate::reactor::{Config, Handle, Reactor};
use crate::selector::Backend;

mod start;

use start::{abort, await_setups, collect_handles, member_thread, ThreadChans};

/// Counters of one reactor of a pool, readable from any thread (relaxed atomics,
/// written by the reactor's own thread only: no lock, no shared cache line).
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct ReactorStats {
    waits: AtomicU64,
    accepts_empty: AtomicU64,
    accepted: AtomicU64,
    served: AtomicU64,
    open: AtomicUsize,
    /// Connections handed to this reactor by a `handoff` acceptor (run or refused).
    received: AtomicU64,
}

/// A copy of a reactor's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Waits (`select`/`poll`/`epoll_wait`) that returned: loop iterations.
    pub waits: u64,
    /// Times a listener of this reactor was reported ready and its first `accept`
    /// found no connection (`EAGAIN`): wake-ups of a thundering herd that lost the
    /// race (the `EAGAIN` that ends a successful accept loop is not counted).
    pub accepts_empty: u64,
    /// Connections this reactor's `accept` calls returned.
    pub accepted: u64,
    /// Connections served by this reactor (accepted here or handed to it).
    pub served: u64,
    /// Connections open on this reactor now.
    pub open: usize,
}

impl StatsSnapshot {
    /// The counts since `earlier` (`open` is the current value).
    pub fn since(&self, earlier: &StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            waits: self.waits.saturating_sub(earlier.waits),
            accepts_empty: self.accepts_empty.saturating_sub(earlier.accepts_empty),
            accepted: self.accepted.saturating_sub(earlier.accepted),
            served: self.served.saturating_sub(earlier.served),
            open: self.open,
        }
    }
}

impl ReactorStats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            waits: self.waits.load(Relaxed),
            accepts_empty: self.accepts_empty.load(Relaxed),
            accepted: self.accepted.load(Relaxed),
            served: self.served.load(Relaxed),
            open: self.open.load(Relaxed),
        }
    }

    /// Connections open on this reactor now.
    pub fn open(&self) -> usize {
        self.open.load(Relaxed)
    }

    pub(crate) fn count_wait(&self) {
        self.waits.fetch_add(1, Relaxed);
    }

    pub(crate) fn count_accept_empty(&self) {
        self.accepts_empty.fetch_add(1, Relaxed);
    }

    pub(crate) fn count_accepted(&self) {
        self.accepted.fetch_add(1, Relaxed);
    }

    pub(crate) fn count_opened(&self) {
        self.served.fetch_add(1, Relaxed);
        self.open.fetch_add(1, Relaxed);
    }

    pub(crate) fn count_received(&self) {
        self.received.fetch_add(1, Relaxed);
    }

    pub(crate) fn received(&self) -> u64 {
        self.received.load(Relaxed)
    }

    pub(crate) fn count_closed(&self) {
        self.open.fetch_sub(1, Relaxed);
    }
}

/// What `setup` knows about the reactor it fills: its place in the pool, its
/// counters, and handles to every reactor (for handing work across).
#[derive(Clone, Debug)]
pub struct Member {
    index: usize,
    handles: Arc<[Handle]>,
    stats: Arc<[Arc<ReactorStats>]>,
}

impl Member {
    /// This reactor's index, `0..threads`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many reactors the pool runs.
    pub fn threads(&self) -> usize {
        self.handles.len()
    }

    /// Handles to every reactor of the pool, by index (this one included).
    pub fn handles(&self) -> &Arc<[Handle]> {
        &self.handles
    }

    /// This reactor's counters.
    pub fn stats(&self) -> &Arc<ReactorStats> {
        &self.stats[self.index]
    }

    /// Every reactor's counters, by index.
    pub fn all_stats(&self) -> &Arc<[Arc<ReactorStats>]> {
        &self.stats
    }
}

/// Builds a pool: backend, number of reactors, reactor settings, signals.
#[derive(Clone, Debug)]
pub struct Pool {
    backend: Backend,
    threads: usize,
    config: Config,
    signals: bool,
}

/// How a reactor thread ended.
enum Exit {
    Finished,
    Failed(io::Error),
    Panicked(String),
}

/// Sends the thread's exit on every way out, unwinding included.
struct ExitGuard {
    index: usize,
    tx: mpsc::Sender<(usize, Exit)>,
    exit: Option<Exit>,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let exit = self.exit.take().unwrap_or_else(|| {
            Exit::Panicked(if thread::panicking() {
                "panicked".to_string()
            } else {
                "ended without a report".to_string()
            })
        });
        let _ = self.tx.send((self.index, exit));
    }
}

type Setup = dyn Fn(&mut Reactor, &Member) -> io::Result<()> + Send + Sync;

impl Pool {
    /// `threads` reactors (at least one) on `backend`, default settings, no signals.
    pub fn new(backend: Backend, threads: usize) -> Pool {
        Pool {
            backend,
            threads: threads.max(1),
            config: Config::default(),
            signals: false,
        }
    }

    /// Settings for every reactor.
    #[must_use]
    pub fn config(mut self, config: Config) -> Pool {
        self.config = config;
        self
    }

    /// Installs SIGINT and SIGTERM handlers while the pool runs: the first signal
    /// shuts every reactor down gracefully, a second stops them at once.
    /// Process-wide: for a server's `main`, not a library.
    #[must_use]
    pub fn handle_signals(mut self, on: bool) -> Pool {
        self.signals = on;
        self
    }

    /// How many reactors the pool runs.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Creates the reactors on their threads, runs `setup` on each, and starts them
    /// once every setup has succeeded. If a reactor cannot be created or its setup
    /// fails, nothing starts serving and the first error is returned.
    ///
    /// # Errors
    ///
    /// Nothing is left running when this fails (every thread started is joined):
    ///
    /// * a thread cannot be spawned (the OS error);
    /// * a reactor cannot be created (its selector or its waker: out of
    ///   descriptors; "reactor N: ..." with the kind of the underlying error);
    /// * `setup` returned an error on a reactor ("setup of reactor N: ...", the same
    ///   kind as `setup`'s error), or panicked (`Other`, "a reactor thread died in
    ///   setup");
    /// * with [`handle_signals`](Self::handle_signals), the SIGINT/SIGTERM handlers
    ///   cannot be installed.
    pub fn start<F>(self, setup: F) -> io::Result<RunningPool>
    where
        F: Fn(&mut Reactor, &Member) -> io::Result<()> + Send + Sync + 'static,
    {
        let setup: Arc<Setup> = Arc::new(setup);
        let n = self.threads;
        let stats: Arc<[Arc<ReactorStats>]> =
            (0..n).map(|_| Arc::new(ReactorStats::default())).collect();
        let (ready_tx, ready_rx) = mpsc::channel::<(usize, io::Result<Handle>)>();
        let (setup_tx, setup_rx) = mpsc::channel::<(usize, io::Result<()>)>();
        let (exit_tx, exit_rx) = mpsc::channel::<(usize, Exit)>();
        let mut gos = Vec::with_capacity(n);
        let mut runs = Vec::with_capacity(n);
        let mut joins = Vec::with_capacity(n);
        for index in 0..n {
            let (go_tx, go_rx) = mpsc::channel::<Option<Member>>();
            let (run_tx, run_rx) = mpsc::channel::<bool>();
            gos.push(go_tx);
            runs.push(run_tx);
            let (backend, config) = (self.backend, self.config.clone());
            let chans = ThreadChans {
                ready: ready_tx.clone(),
                setup: setup_tx.clone(),
                exit: exit_tx.clone(),
                go: go_rx,
                run: run_rx,
            };
            let setup = setup.clone();
            let spawned = thread::Builder::new()
                .name(format!("reactor-{index}"))
                .spawn(move || member_thread(index, backend, config, setup, chans));
            match spawned {
                Ok(j) => joins.push(j),
                Err(e) => {
                    drop(gos);
                    drop(runs);
                    join_all(joins);
                    return Err(e);
                }
            }
        }
        drop((ready_tx, setup_tx));
        // Phase 1: every reactor exists; hand each the full list of handles.
        let handles = match collect_handles(n, &ready_rx) {
            Ok(h) => h,
            Err(e) => return abort(gos, runs, joins, e),
        };
        for (index, g) in gos.iter().enumerate() {
            let _ = g.send(Some(Member {
                index,
                handles: handles.clone(),
                stats: stats.clone(),
            }));
        }
        // Phase 2: every setup done (listeners bound) before anyone serves.
        if let Err(e) = await_setups(n, &setup_rx) {
            return abort(Vec::new(), runs, joins, e);
        }
        let shutting = Arc::new(AtomicBool::new(false));
        let signals = if self.signals {
            match start_signals(handles.clone(), shutting.clone()) {
                Ok(s) => Some(s),
                Err(e) => return abort(Vec::new(), runs, joins, e),
            }
        } else {
            None
        };
        for r in runs {
            let _ = r.send(true);
        }
        log::info!("{n} reactor(s) on backend {} running", self.backend.name());
        Ok(RunningPool {
            handles,
            stats,
            joins,
            exits: exit_rx,
            shutting,
            signals,
        })
    }

    /// [`start`](Self::start), then [`RunningPool::wait`].
    ///
    /// # Errors
    ///
    /// What [`start`](Self::start) returns, else what [`RunningPool::wait`] returns.
    pub fn run<F>(self, setup: F) -> io::Result<()>
    where
        F: Fn(&mut Reactor, &Member) -> io::Result<()> + Send + Sync + 'static,
    {
        self.start(setup)?.wait()
    }
}

/// The reactor's own `run`, counting the waits that returned.
fn run_loop(reactor: &mut Reactor, stats: &ReactorStats) -> io::Result<()> {
    let res = loop {
        if let Err(e) = reactor.run_once(None) {
            break Err(e);
        }
        stats.count_wait();
        if reactor.is_stopped() {
            break Ok(());
        }
    };
    reactor.close_all();
    res
}

/// The message of a panic payload (`&str` or `String`), or a placeholder.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)")
}

fn join_all(joins: Vec<JoinHandle<()>>) {
    for j in joins {
        let _ = j.join();
    }
}

/// The signal thread: first SIGINT/SIGTERM shuts every reactor down, the next stops
/// them all.
fn start_signals(
    handles: Arc<[Handle]>,
    shutting: Arc<AtomicBool>,
) -> io::Result<(signal_hook::iterator::Handle, JoinHandle<()>)> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let handle = signals.handle();
    let join = thread::Builder::new()
        .name("pool-signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                if !shutting.swap(true, Relaxed) {
                    log::info!("received SIGINT/SIGTERM: shutting down every reactor");
                    for h in handles.iter() {
                        let _ = h.shutdown();
                    }
                } else {
                    log::info!("second signal: stopping every reactor now");
                    for h in handles.iter() {
                        let _ = h.stop();
                    }
                }
            }
        })?;
    Ok((handle, join))
}

/// A started pool: wait for it, or shut it down.
pub struct RunningPool {
    handles: Arc<[Handle]>,
    stats: Arc<[Arc<ReactorStats>]>,
    joins: Vec<JoinHandle<()>>,
    exits: mpsc::Receiver<(usize, Exit)>,
    shutting: Arc<AtomicBool>,
    signals: Option<(signal_hook::iterator::Handle, JoinHandle<()>)>,
}

impl std::fmt::Debug for RunningPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningPool")
            .field("threads", &self.handles.len())
            .finish_non_exhaustive()
    }
}

impl RunningPool {
    /// Handles to every reactor, by index.
    pub fn handles(&self) -> &Arc<[Handle]> {
        &self.handles
    }

    /// Every reactor's counters, by index.
    pub fn stats(&self) -> Vec<StatsSnapshot> {
        self.stats.iter().map(|s| s.snapshot()).collect()
    }

    /// The live counters, by index (to read after the pool is gone).
    pub fn stats_handles(&self) -> Arc<[Arc<ReactorStats>]> {
        self.stats.clone()
    }

    /// Starts a graceful shutdown of every reactor (as SIGTERM does); a second call
    /// stops them all at once.
    pub fn shutdown(&self) {
        let stop = self.shutting.swap(true, Relaxed);
        for h in self.handles.iter() {
            let _ = if stop { h.stop() } else { h.shutdown() };
        }
    }

    /// Stops every reactor at once.
    pub fn stop(&self) {
        self.shutting.store(true, Relaxed);
        for h in self.handles.iter() {
            let _ = h.stop();
        }
    }

    /// Waits until every reactor has finished. When the first one ends, the others
    /// are shut down gracefully. Returns an error naming every reactor whose loop
    /// failed or panicked.
    ///
    /// # Errors
    ///
    /// `Other`, once every reactor has ended, if any reactor's loop returned an error
    /// or panicked (under [`PanicPolicy::Propagate`](super::PanicPolicy), or outside
    /// a handler): the message lists each of them ("reactor N: ...").
    pub fn wait(mut self) -> io::Result<()> {
        let n = self.handles.len();
        let mut failures = Vec::new();
        for _ in 0..n {
            let Ok((i, exit)) = self.exits.recv() else {
                failures.push("a reactor thread vanished".to_string());
                break;
            };
            match exit {
                Exit::Finished => log::debug!("reactor {i} finished"),
                Exit::Failed(e) => {
                    log::error!("reactor {i} failed: {e}; shutting the others down");
                    failures.push(format!("reactor {i}: {e}"));
                }
                Exit::Panicked(why) => {
                    log::error!("reactor {i} {why}; shutting the others down");
                    failures.push(format!("reactor {i} {why}"));
                }
            }
            if !self.shutting.swap(true, Relaxed) {
                for h in self.handles.iter() {
                    let _ = h.shutdown();
                }
            }
        }
        self.finish();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(io::Error::other(failures.join("; ")))
        }
    }

    fn finish(&mut self) {
        join_all(std::mem::take(&mut self.joins));
        if let Some((h, j)) = self.signals.take() {
            h.close();
            let _ = j.join();
        }
    }
}

impl Drop for RunningPool {
    /// A pool dropped without [`wait`](RunningPool::wait) is stopped and joined.
    fn drop(&mut self) {
        if !self.joins.is_empty() {
            self.stop();
        }
        self.finish();
    }
}
