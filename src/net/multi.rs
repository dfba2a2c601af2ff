//! Listening on one address from every reactor of a [`Pool`](crate::reactor::pool::Pool):
//! three ways to share the accepts ([`AcceptStrategy`]), one global connection limit.
//!
//! * `reuseport` (the default): every reactor has its own listening socket, bound to
//!   the same address with `SO_REUSEPORT`; the kernel hashes each new connection to
//!   one socket, so exactly one reactor wakes per connection. A connection waiting in
//!   the queue of a reactor that is busy waits for that reactor (the kernel does not
//!   rebalance), and the queue of a socket that closes is lost (at shutdown only).
//! * `shared`: one listening socket registered with every reactor. On the epoll
//!   backends it is registered with `EPOLLEXCLUSIVE`, so the kernel wakes one waiting
//!   reactor (sometimes a few) per connection. `select`, `poll`, `mio` and `polling`
//!   cannot ask for that: every reactor wakes for every connection and all but one
//!   find nothing to accept: the thundering herd, kept on purpose for the lab.
//! * `handoff`: reactor 0 alone accepts and hands each connection to a reactor in
//!   turn (itself included) through the cross-thread [`Handle`](crate::reactor::Handle):
//!   balanced by construction, at the price of a queue lock and a wake-up of the
//!   receiving reactor per connection. `handoff-least` hands it to the reactor with
//!   the fewest connections instead (open ones, read from the reactors' counters,
//!   plus those handed over and not yet registered), for connections of unequal
//!   lifetimes.
//!
//! Per-reactor state stays per reactor: each reactor's listener has its own factory
//! (built on its thread), its own spare descriptor for `EMFILE`, its own counters.
//! What is global is one atomic: the number of open connections, checked against
//! [`ListenConfig::max_connections`] across all reactors.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::listener::{Factory, ListenConfig, Listener};
use crate::reactor::pool::{Member, ReactorStats};
use crate::reactor::{Handle, HandlerId, Reactor};
use crate::selector::Interest;
use crate::sys::socket::PeerAddr;

/// How the reactors of a pool share the connections arriving on one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AcceptStrategy {
    /// A `SO_REUSEPORT` socket per reactor; the kernel picks one per connection.
    ReusePort,
    /// One socket watched by every reactor (`EPOLLEXCLUSIVE` where the backend can).
    Shared,
    /// Reactor 0 accepts and hands connections round-robin to every reactor.
    Handoff,
    /// As `Handoff`, to the reactor with the fewest connections (open, plus handed
    /// over and not yet registered); ties go round-robin. `handoff-least`.
    HandoffLeastLoaded,
}

impl AcceptStrategy {
    /// The three designs, in table order (the lab and the tests run these;
    /// [`HandoffLeastLoaded`](Self::HandoffLeastLoaded) is a variant of `Handoff`).
    pub const ALL: [AcceptStrategy; 3] = [
        AcceptStrategy::ReusePort,
        AcceptStrategy::Shared,
        AcceptStrategy::Handoff,
    ];

    /// `reuseport`, `shared`, `handoff`.
    pub const fn name(self) -> &'static str {
        match self {
            AcceptStrategy::ReusePort => "reuseport",
            AcceptStrategy::Shared => "shared",
            AcceptStrategy::Handoff => "handoff",
            AcceptStrategy::HandoffLeastLoaded => "handoff-least",
        }
    }

    /// Whether reactor 0 accepts and hands connections over.
    pub const fn is_handoff(self) -> bool {
        matches!(
            self,
            AcceptStrategy::Handoff | AcceptStrategy::HandoffLeastLoaded
        )
    }
}

impl Default for AcceptStrategy {
    /// `reuseport` (Linux has had it since 3.9).
    fn default() -> AcceptStrategy {
        AcceptStrategy::ReusePort
    }
}

impl fmt::Display for AcceptStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for an unknown strategy name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownStrategy(pub String);

impl fmt::Display for UnknownStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown accept strategy {:?}; expected reuseport, shared, handoff or handoff-least",
            self.0
        )
    }
}

impl std::error::Error for UnknownStrategy {}

impl FromStr for AcceptStrategy {
    type Err = UnknownStrategy;
    fn from_str(s: &str) -> Result<AcceptStrategy, UnknownStrategy> {
        AcceptStrategy::ALL
            .into_iter()
            .chain([AcceptStrategy::HandoffLeastLoaded])
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownStrategy(s.to_string()))
    }
}

/// A TCP address listened on by every reactor of a pool, with an accept strategy.
///
/// Bind it before starting the pool (so the port is known, port 0 included), then
/// [`attach`](Self::attach) it in the pool's setup, once per reactor, with that
/// reactor's factory.
///
/// # Examples
///
/// ```
/// use readyloop::net::{AcceptStrategy, ListenConfig, PoolListener};
/// use readyloop::proto::echo::{Echo, EchoOptions};
/// use readyloop::reactor::pool::Pool;
/// use readyloop::selector::Backend;
///
/// let l = PoolListener::bind("127.0.0.1:0", AcceptStrategy::ReusePort, 2, ListenConfig::default())?;
/// assert_ne!(l.local_addr().port(), 0);
/// let attach = l.clone();
/// let pool = Pool::new(Backend::Epoll, 2).start(move |reactor, member| {
///     attach.attach(reactor, member, Echo::factory(EchoOptions::default()))?;
///     Ok(())
/// })?;
/// pool.shutdown();
/// pool.wait()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct PoolListener {
    strategy: AcceptStrategy,
    addr: SocketAddr,
    /// `reuseport`: one socket per reactor, taken by its setup. Otherwise one, shared.
    sockets: Mutex<Vec<Option<OwnedFd>>>,
    shared: Option<OwnedFd>,
    cfg: ListenConfig,
    open: Arc<AtomicUsize>,
    /// `handoff`: each reactor's receiving listener (parked), by reactor index.
    sinks: Arc<[OnceLock<HandlerId>]>,
}

impl fmt::Debug for PoolListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolListener")
            .field("strategy", &self.strategy)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Binds `addr` (the first of its resolutions that works) without `SO_REUSEPORT`
/// (`shared`, `handoff`) or with it.
fn bind_first(addrs: &[SocketAddr], reuseport: bool) -> io::Result<(OwnedFd, SocketAddr)> {
    let mut last = None;
    for &a in addrs {
        match crate::sys::listen::bind_tcp(a, reuseport) {
            Ok(fd) => {
                let l = TcpListener::from(fd);
                let local = l.local_addr()?;
                return Ok((l.into(), local));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address")))
}

impl PoolListener {
    /// Binds `addr` for a pool of `reactors` reactors. With `reuseport` it binds
    /// `reactors` sockets: the first on `addr` (port 0 picks a free port), the rest on
    /// the port the first got.
    ///
    /// # Errors
    ///
    /// `addr` does not resolve (`InvalidInput` when it resolves to nothing), `bind`
    /// fails for every address (`AddrInUse`, ...; the message names the addresses
    /// and the strategy), a further `reuseport` socket cannot bind the port the first
    /// got (`AddrInUse` if a socket without `SO_REUSEPORT` took it meanwhile), or
    /// `listen` fails.
    pub fn bind(
        addr: impl ToSocketAddrs,
        strategy: AcceptStrategy,
        reactors: usize,
        cfg: ListenConfig,
    ) -> io::Result<Arc<PoolListener>> {
        let reactors = reactors.max(1);
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        let reuse = strategy == AcceptStrategy::ReusePort;
        let (first, local) = bind_first(&addrs, reuse).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("listen on tcp {addrs:?} ({strategy}): {e}"),
            )
        })?;
        // Listening from now on: a client told the address may connect before the
        // reactors run (its connection waits in the queue).
        let backlog = cfg.backlog.min(crate::sys::socket::somaxconn()).max(1);
        crate::sys::socket::listen(first.as_fd(), backlog)?;
        let (sockets, shared) = if reuse {
            let mut v = vec![Some(first)];
            for _ in 1..reactors {
                let fd = crate::sys::listen::bind_tcp(local, true).map_err(|e| {
                    io::Error::new(e.kind(), format!("listen on tcp {local} (reuseport): {e}"))
                })?;
                crate::sys::socket::listen(fd.as_fd(), backlog)?;
                v.push(Some(fd));
            }
            (v, None)
        } else {
            (Vec::new(), Some(first))
        };
        Ok(Arc::new(PoolListener {
            strategy,
            addr: local,
            sockets: Mutex::new(sockets),
            shared,
            cfg,
            open: Arc::new(AtomicUsize::new(0)),
            sinks: (0..reactors).map(|_| OnceLock::new()).collect(),
        }))
    }

    /// The bound address (with the port picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The strategy.
    pub fn strategy(&self) -> AcceptStrategy {
        self.strategy
    }

    /// Connections open now, across all reactors.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Adds this address to `reactor` (pool member `member`), serving with `factory`
    /// (built on the reactor's thread). Call once per reactor, from the pool's setup.
    /// Returns the listener's handler id on this reactor.
    ///
    /// # Errors
    ///
    /// * `InvalidInput`: `member`'s index is beyond the `reactors` the listener was
    ///   bound for, or this reactor's `reuseport` socket was already attached.
    /// * duplicating the shared socket failed (`shared`, `handoff`: out of
    ///   descriptors), `listen` failed, or the backend refuses the descriptor.
    /// * `Other`: the lock over the sockets is poisoned (another reactor's setup
    ///   panicked while holding it).
    pub fn attach(
        &self,
        reactor: &mut Reactor,
        member: &Member,
        factory: impl Factory + 'static,
    ) -> io::Result<HandlerId> {
        let i = member.index();
        if i >= self.sinks.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "reactor {i}: the listener was bound for {} reactor(s)",
                    self.sinks.len()
                ),
            ));
        }
        let fd = match &self.shared {
            Some(fd) => fd.try_clone()?,
            None => self
                .sockets
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .get_mut(i)
                .and_then(Option::take)
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("reactor {i}: this listener is already attached"),
                    )
                })?,
        };
        let handoff = (self.strategy.is_handoff() && i == 0).then(|| Handoff {
            handles: member.handles().clone(),
            sinks: self.sinks.clone(),
            next: Cell::new(0),
            stats: member.all_stats().clone(),
            least_loaded: self.strategy == AcceptStrategy::HandoffLeastLoaded,
            sent: vec![0; member.threads()],
        });
        let hooks = PoolHooks {
            stats: member.stats().clone(),
            open: self.open.clone(),
            max: self.cfg.max_connections,
            handoff,
        };
        let name = format!("tcp://{} ({}, reactor {i})", self.addr, self.strategy);
        let listener =
            Listener::new(fd, name, Box::new(factory), self.cfg.clone(), None)?.in_pool(hooks);
        let id = reactor.with_ctx(|ctx| -> io::Result<HandlerId> {
            match self.strategy {
                AcceptStrategy::ReusePort => {
                    ctx.insert(Box::new(listener), Some(Interest::READABLE))
                }
                AcceptStrategy::Shared => {
                    let (id, exclusive) =
                        ctx.insert_exclusive(Box::new(listener), Interest::READABLE)?;
                    log::debug!(
                        "reactor {i}: shared listener registered {}",
                        if exclusive {
                            "with EPOLLEXCLUSIVE"
                        } else {
                            "without EPOLLEXCLUSIVE (herd)"
                        }
                    );
                    Ok(id)
                }
                // Reactor 0 accepts; the others only receive (parked, never watched).
                AcceptStrategy::Handoff | AcceptStrategy::HandoffLeastLoaded if i == 0 => {
                    ctx.insert(Box::new(listener), Some(Interest::READABLE))
                }
                AcceptStrategy::Handoff | AcceptStrategy::HandoffLeastLoaded => {
                    ctx.insert(Box::new(listener), None)
                }
            }
        })?;
        let _ = self.sinks[i].set(id);
        Ok(id)
    }
}

/// A pool listener's share of global state, held by each reactor's [`Listener`].
pub(crate) struct PoolHooks {
    pub(crate) stats: Arc<ReactorStats>,
    open: Arc<AtomicUsize>,
    pub(crate) max: usize,
    handoff: Option<Handoff>,
}

/// The acceptor's side of `handoff`.
struct Handoff {
    handles: Arc<[Handle]>,
    sinks: Arc<[OnceLock<HandlerId>]>,
    next: Cell<usize>,
    /// Every reactor's counters.
    stats: Arc<[Arc<ReactorStats>]>,
    /// `handoff-least`.
    least_loaded: bool,
    /// Connections this acceptor has sent to each reactor's queue (those not yet
    /// received there are in flight and count as load).
    sent: Vec<u64>,
}

impl Handoff {
    /// The next reactor: round-robin, or the least loaded (ties round-robin).
    fn pick(&mut self) -> usize {
        let n = self.handles.len();
        let start = self.next.get() % n;
        let i = if self.least_loaded {
            let load = |i: usize| {
                let s = &self.stats[i];
                let in_flight = self.sent[i].saturating_sub(s.received());
                s.open() as u64 + in_flight
            };
            (0..n)
                .map(|k| (start + k) % n)
                .min_by_key(|&i| load(i))
                .unwrap_or(start)
        } else {
            start
        };
        self.next.set((i + 1) % n);
        i
    }
}

/// Uncounts a connection from the global and per-reactor counts when dropped.
struct Counted {
    stats: Arc<ReactorStats>,
    open: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.stats.count_closed();
    }
}

impl PoolHooks {
    /// Counts one more connection if the global limit allows it.
    pub(crate) fn reserve(&self) -> Option<impl std::any::Any> {
        if self.open.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        self.stats.count_opened();
        Some(Counted {
            stats: self.stats.clone(),
            open: self.open.clone(),
        })
    }

    /// `handoff`: sends the connection to the next reactor; gives it back if it is
    /// this reactor's turn (or there is no hand-off).
    pub(crate) fn hand_off(
        &mut self,
        fd: OwnedFd,
        peer: PeerAddr,
    ) -> Result<(), (OwnedFd, PeerAddr)> {
        let Some(h) = &mut self.handoff else {
            return Err((fd, peer));
        };
        let i = h.pick();
        // Reactor 0 is this one: serve directly.
        let Some(&sink) = h.sinks.get(i).and_then(OnceLock::get).filter(|_| i != 0) else {
            return Err((fd, peer));
        };
        h.sent[i] += 1;
        let stats = h.stats[i].clone();
        let sent = h.handles[i].call(move |ctx| {
            // Gone (shutting down): the closure is dropped and the socket closed.
            ctx.with_handler::<Listener, _>(sink, |l, ctx| l.serve(ctx, fd, peer));
            // After `serve`: counted as open before it stops counting as in flight.
            stats.count_received();
        });
        if let Err(e) = sent {
            log::debug!("handoff to reactor {i}: {e}; connection closed");
        }
        Ok(())
    }
}
