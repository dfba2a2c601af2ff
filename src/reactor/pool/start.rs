//! Starting a pool: the body of each reactor thread and the two phases of the start
//! (every reactor built, every `setup` done) before any of them serves.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use super::{join_all, panic_message, run_loop, Exit, ExitGuard, Member, Setup};
use crate::reactor::{Config, Handle, Reactor};
use crate::selector::Backend;

/// The channels of one reactor thread: what it reports on, and what it waits for.
pub(super) struct ThreadChans {
    pub(super) ready: mpsc::Sender<(usize, io::Result<Handle>)>,
    pub(super) setup: mpsc::Sender<(usize, io::Result<()>)>,
    pub(super) exit: mpsc::Sender<(usize, Exit)>,
    pub(super) go: mpsc::Receiver<Option<Member>>,
    pub(super) run: mpsc::Receiver<bool>,
}

/// The body of reactor thread `index`: build the reactor, report its handle, wait
/// for its [`Member`], run `setup`, wait for the go, run the loop; report how it
/// ended (through the exit guard, whatever happens).
pub(super) fn member_thread(
    index: usize,
    backend: Backend,
    config: Config,
    setup: Arc<Setup>,
    chans: ThreadChans,
) {
    let ThreadChans {
        ready: ready_tx,
        setup: setup_tx,
        exit: exit_tx,
        go: go_rx,
        run: run_rx,
    } = chans;
    let mut guard = ExitGuard {
        index,
        tx: exit_tx,
        exit: None,
    };
    let mut reactor = match Reactor::with_config(backend, config) {
        Ok(r) => r,
        Err(e) => {
            let _ = ready_tx.send((index, Err(e)));
            guard.exit = Some(Exit::Finished);
            return;
        }
    };
    let _ = ready_tx.send((index, Ok(reactor.handle())));
    // Drop the senders once used: a thread that dies (a panic in
    // `setup`) must not leave the starter waiting on its channel.
    drop(ready_tx);
    let Ok(Some(member)) = go_rx.recv() else {
        guard.exit = Some(Exit::Finished);
        return;
    };
    let _ = setup_tx.send((index, setup(&mut reactor, &member)));
    drop((setup, setup_tx));
    if run_rx.recv() != Ok(true) {
        guard.exit = Some(Exit::Finished);
        return;
    }
    let run = panic::catch_unwind(AssertUnwindSafe(|| run_loop(&mut reactor, member.stats())));
    guard.exit = Some(match run {
        Ok(Ok(())) => Exit::Finished,
        Ok(Err(e)) => Exit::Failed(e),
        Err(payload) => Exit::Panicked(format!("panicked: {}", panic_message(&*payload))),
    });
}

/// Phase 1 of a start: the handles of all `n` reactors, or the first error (after
/// hearing from every thread still alive).
pub(super) fn collect_handles(
    n: usize,
    ready_rx: &mpsc::Receiver<(usize, io::Result<Handle>)>,
) -> io::Result<Arc<[Handle]>> {
    let mut handles: Vec<Option<Handle>> = (0..n).map(|_| None).collect();
    let mut first_err = None;
    for _ in 0..n {
        match ready_rx.recv() {
            Ok((i, Ok(h))) => handles[i] = Some(h),
            Ok((i, Err(e))) => {
                first_err.get_or_insert(io::Error::new(e.kind(), format!("reactor {i}: {e}")));
            }
            Err(_) => {
                first_err.get_or_insert(io::Error::other("a reactor thread died"));
                break;
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(handles.into_iter().flatten().collect()),
    }
}

/// Phase 2 of a start: every reactor's `setup` succeeded, or the first error.
pub(super) fn await_setups(
    n: usize,
    setup_rx: &mpsc::Receiver<(usize, io::Result<()>)>,
) -> io::Result<()> {
    let mut first_err = None;
    for _ in 0..n {
        match setup_rx.recv() {
            Ok((_, Ok(()))) => {}
            Ok((i, Err(e))) => {
                first_err.get_or_insert(io::Error::new(
                    e.kind(),
                    format!("setup of reactor {i}: {e}"),
                ));
            }
            Err(_) => {
                first_err.get_or_insert(io::Error::other("a reactor thread died in setup"));
                break;
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// A start that failed: tell every thread still waiting to give up, join them all,
/// and return `e`.
pub(super) fn abort<T>(
    gos: Vec<mpsc::Sender<Option<Member>>>,
    runs: Vec<mpsc::Sender<bool>>,
    joins: Vec<JoinHandle<()>>,
    e: io::Error,
) -> io::Result<T> {
    for g in gos {
        let _ = g.send(None);
    }
    for r in runs {
        let _ = r.send(false);
    }
    join_all(joins);
    Err(e)
}
