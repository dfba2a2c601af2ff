//! Listening sockets: the accept loop, connection limits and fd exhaustion.

use std::any::Any;
use std::cell::Cell;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use super::multi::PoolHooks;
use super::ratelimit::WarnLimit;
use super::stream::{Protocol, Stream, StreamConfig};
use crate::reactor::{Ctx, Handler, TimerId};
use crate::selector::{Interest, Readiness};
use crate::sys::socket::{self, PeerAddr};

/// Builds a protocol per accepted connection, as Twisted's `Factory.forProtocol` or
/// asyncio's `lambda: Proto()`: any closure `FnMut(&PeerAddr) -> Option<Box<dyn Protocol>>`
/// is one, written plainly (`|_| Some(Box::new(Echo))`: the argument and return
/// types are inferred, no annotation or cast needed). Returning `None` refuses the
/// connection (the socket is closed at once).
///
/// It is an alias of that closure type (a supertrait with a blanket impl), which is
/// what lets the compiler infer a closure's signature from it when the closure is
/// written in the call; a factory with state is a `move` closure over that state (or
/// calls a method of a struct). A closure stored in a variable first has no expected
/// type: annotate it (`|_: &PeerAddr| Some(Box::new(Echo) as Box<dyn Protocol>)`), or
/// return it from a function as `impl FnMut(&PeerAddr) -> Option<Box<dyn Protocol>>`.
///
/// # Examples
///
/// ```
/// use readyloop::net::{Conn, Listen, Protocol};
/// use readyloop::reactor::Reactor;
/// use readyloop::selector::Backend;
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
///         conn.write(data);
///     }
/// }
///
/// let mut reactor = Reactor::new(Backend::Poll)?;
/// reactor.listen_tcp("127.0.0.1:0", |_| Some(Box::new(Echo)))?;
/// // With state: count the connections, refuse the peer after the hundredth.
/// let mut n = 0;
/// reactor.listen_tcp("127.0.0.1:0", move |_peer| {
///     n += 1;
///     (n <= 100).then(|| Box::new(Echo) as Box<dyn Protocol>)
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Factory: FnMut(&PeerAddr) -> Option<Box<dyn Protocol>> {
    /// A protocol for a new connection from `peer` (calls the closure).
    fn build(&mut self, peer: &PeerAddr) -> Option<Box<dyn Protocol>> {
        self(peer)
    }
}

impl<F> Factory for F where F: FnMut(&PeerAddr) -> Option<Box<dyn Protocol>> {}

/// Listener settings.
#[derive(Clone, Debug)]
pub struct ListenConfig {
    /// Connections beyond this are accepted and closed at once (logged).
    pub max_connections: usize,
    /// Backlog passed to `listen(2)` (the kernel caps it at `somaxconn`). With the
    /// common 128, a burst of a few thousand connects overflows the queue and clients
    /// stall in SYN retries.
    pub backlog: i32,
    /// Settings for each accepted connection.
    pub stream: StreamConfig,
    /// How long to stop accepting when descriptors run out and no spare is left.
    pub emfile_pause: Duration,
    /// `TCP_DEFER_ACCEPT` (TCP only; `None`: off, the default): the kernel queues a
    /// connection for `accept` only once its first bytes have arrived, and the
    /// listener reads them at once instead of waiting for a readiness report. A
    /// client that sends nothing is held by the kernel (not by the server) for about
    /// this long, then accepted as usual; timeouts such as the HTTP header timeout
    /// count from the accept. The HTTP server turns it on (1 s); for protocols where
    /// the server speaks first (IRC, FTP greetings) it must stay off.
    pub defer_accept: Option<Duration>,
    /// Most connections accepted per readiness report on a level-triggered backend
    /// (`select`, `poll`, `epoll`): `Some(1)` is nginx's default (no `accept` that
    /// ends in `EAGAIN`; a queue of several waits for the next report), `None` drains
    /// the queue up to the event budget. Edge-triggered backends always drain (an
    /// edge is not reported again).
    pub accept_per_ready: Option<usize>,
}

impl Default for ListenConfig {
    fn default() -> ListenConfig {
        ListenConfig {
            max_connections: 100_000,
            backlog: 4096,
            stream: StreamConfig::default(),
            emfile_pause: Duration::from_millis(100),
            defer_accept: None,
            accept_per_ready: None,
        }
    }
}

/// The handler for a listening socket (TCP or Unix).
pub struct Listener {
    fd: OwnedFd,
    name: String,
    factory: Box<dyn Factory>,
    cfg: ListenConfig,
    stream_cfg: Rc<StreamConfig>,
    open: Rc<Cell<usize>>,
    unix_path: Option<PathBuf>,
    /// A descriptor held in reserve: on EMFILE it is closed so one pending connection
    /// can be accepted and closed (instead of the listener staying readable forever).
    spare: Option<File>,
    resume_timer: Option<TimerId>,
    warnings: WarnLimit,
    shed: u64,
    is_tcp: bool,
    /// Set when the listener belongs to a reactor pool ([`super::PoolListener`]).
    pool: Option<PoolHooks>,
    /// `TCP_NODELAY` is set on the listening socket, and accepted sockets inherit it
    /// (Linux copies the listener's TCP options into each connection): no
    /// `setsockopt` per connection.
    nodelay_inherited: bool,
    /// `TCP_DEFER_ACCEPT` is on: an accepted connection has data waiting.
    deferred: bool,
}

fn open_spare() -> Option<File> {
    File::open("/dev/null").ok()
}

impl Listener {
    /// Wraps a bound, listening, non-blocking socket.
    pub(crate) fn new(
        fd: OwnedFd,
        name: String,
        factory: Box<dyn Factory>,
        cfg: ListenConfig,
        unix_path: Option<PathBuf>,
    ) -> io::Result<Listener> {
        let backlog = cfg.backlog.min(socket::somaxconn()).max(1);
        let is_tcp = unix_path.is_none();
        let nodelay_inherited =
            is_tcp && cfg.stream.nodelay && socket::set_nodelay(fd.as_fd(), true).is_ok();
        let deferred = match cfg.defer_accept {
            Some(d) if is_tcp => {
                let secs = i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX);
                match socket::set_defer_accept(fd.as_fd(), secs) {
                    Ok(()) => true,
                    Err(e) => {
                        log::warn!("{name}: TCP_DEFER_ACCEPT: {e}; accepting at once");
                        false
                    }
                }
            }
            _ => false,
        };
        socket::listen(fd.as_fd(), backlog)?;
        Ok(Listener {
            fd,
            name,
            factory,
            stream_cfg: Rc::new(cfg.stream.clone()),
            cfg,
            open: Rc::new(Cell::new(0)),
            is_tcp,
            nodelay_inherited,
            deferred,
            unix_path,
            spare: open_spare(),
            resume_timer: None,
            warnings: WarnLimit::default(),
            shed: 0,
            pool: None,
        })
    }

    /// Makes the listener part of a reactor pool: global limit, per-reactor
    /// counters, and (for the acceptor of the `handoff` strategy) where to send
    /// accepted connections.
    pub(crate) fn in_pool(mut self, hooks: PoolHooks) -> Listener {
        self.pool = Some(hooks);
        self
    }

    /// Logs at most once a second (a flood of connections must not flood the log).
    fn warn(&mut self, msg: std::fmt::Arguments<'_>) {
        self.warnings
            .warn(module_path!(), format_args!("{}: {msg}", self.name));
    }

    fn accepted(&mut self, ctx: &mut Ctx<'_>, fd: OwnedFd, peer: PeerAddr) {
        if let Some(pool) = &mut self.pool {
            pool.stats.count_accepted();
            if let Err((fd, peer)) = pool.hand_off(fd, peer) {
                self.serve(ctx, fd, peer);
            }
            return;
        }
        self.serve(ctx, fd, peer);
    }

    /// Builds the protocol for an accepted connection and registers it here.
    pub(crate) fn serve(&mut self, ctx: &mut Ctx<'_>, fd: OwnedFd, peer: PeerAddr) {
        let mut guard = None;
        if let Some(pool) = &self.pool {
            match pool.reserve() {
                Some(g) => guard = Some(g),
                None => {
                    let max = pool.max;
                    self.warn(format_args!(
                        "connection limit {max} (all reactors) reached; refusing {peer}"
                    ));
                    return;
                }
            }
        } else if self.open.get() >= self.cfg.max_connections {
            let max = self.cfg.max_connections;
            self.warn(format_args!(
                "connection limit {max} reached; refusing {peer}"
            ));
            return; // dropping `fd` closes it
        }
        if self.is_tcp && self.stream_cfg.nodelay && !self.nodelay_inherited {
            if let Err(e) = socket::set_nodelay(fd.as_fd(), true) {
                log::debug!("{peer}: TCP_NODELAY: {e}");
            }
        }
        let Some(proto) = self.factory.build(&peer) else {
            log::debug!("{}: factory refused {peer}", self.name);
            return;
        };
        log::debug!("{}: accepted {peer}", self.name);
        let mut stream =
            Stream::accepted(fd, peer, proto, self.stream_cfg.clone()).counted(self.open.clone());
        if let Some(g) = guard {
            stream = stream.guarded(Box::new(g));
        }
        match stream.register(ctx) {
            // TCP_DEFER_ACCEPT: the request is already there; read it now rather than
            // after another wait.
            Ok(id) if self.deferred => ctx
                .with_handler::<Stream, _>(id, |s, ctx| Handler::ready(s, ctx, Readiness::READABLE))
                .unwrap_or_default(),
            Ok(_) => {}
            // E.g. the select backend refusing fd >= FD_SETSIZE: one line a second at
            // most, however many connections a burst brings.
            Err(e) => self.warn(format_args!("cannot register connection: {e}; closed it")),
        }
    }

    /// EMFILE/ENFILE: shed one pending connection with the spare descriptor, or stop
    /// accepting for a moment. Never leaves the listener spinning.
    fn exhausted(&mut self, ctx: &mut Ctx<'_>, e: io::Error) -> bool {
        // `accept4` fails with EMFILE before it looks at the queue, so whether a
        // connection is pending at all shows only once the spare is closed.
        let mut pending = true;
        if self.spare.take().is_some() {
            let got = socket::accept(self.fd.as_fd());
            pending = !matches!(&got, Err(e) if e.kind() == io::ErrorKind::WouldBlock);
            if got.is_ok() {
                self.shed += 1;
            }
            drop(got); // close the connection we could not serve
            self.spare = open_spare();
        }
        let shed = self.shed;
        self.warn(format_args!(
            "accept: {e}: out of file descriptors ({shed} connections shed so far)"
        ));
        if self.spare.is_some() {
            // Keep accepting while each round removes one pending connection; with the
            // queue empty, stop: the next connection raises a new readiness. (Going on
            // regardless made an edge-triggered listener use up its budget and requeue
            // itself on every iteration: a spin for as long as the table stayed full.)
            return pending;
        }
        // No spare: pause accepting and retry on a timer.
        match ctx.set_interest(ctx.id(), None) {
            Ok(_) => {
                self.resume_timer = Some(ctx.set_timer(self.cfg.emfile_pause));
            }
            Err(e) => log::error!("{}: cannot pause accepting: {e}", self.name),
        }
        false
    }
}

impl Handler for Listener {
    fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn ready(&mut self, ctx: &mut Ctx<'_>, r: Readiness) {
        if self.resume_timer.is_some() || ctx.is_shutting_down() {
            return;
        }
        let mut budget = ctx.config().event_budget.saturating_mul(4);
        if let (false, Some(n)) = (ctx.is_edge(), self.cfg.accept_per_ready) {
            budget = n.max(1);
        }
        for round in 0..budget {
            match socket::accept(self.fd.as_fd()) {
                Ok((fd, peer)) => self.accepted(ctx, fd, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Woken for a connection another reactor took: a herd wake-up.
                    if round == 0 {
                        if let Some(pool) = &self.pool {
                            pool.stats.count_accept_empty();
                        }
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // accept(2), NOTES: Linux passes pending network errors of the new
                // connection to accept; treat them like a connection that went away
                // (returning would strand the rest of the queue under edge triggering).
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(
                            libc::ECONNABORTED
                                | libc::EPROTO
                                | libc::EPERM
                                | libc::ENETDOWN
                                | libc::ENOPROTOOPT
                                | libc::EHOSTDOWN
                                | libc::ENONET
                                | libc::EHOSTUNREACH
                                | libc::EOPNOTSUPP
                                | libc::ENETUNREACH
                        )
                    ) =>
                {
                    continue
                }
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    ) =>
                {
                    if !self.exhausted(ctx, e) {
                        return;
                    }
                }
                Err(e) => {
                    log::error!("{}: accept: {e}", self.name);
                    return;
                }
            }
        }
        // Budget used up with connections still pending: let others run first.
        if ctx.is_edge() {
            ctx.requeue(ctx.id(), r);
        }
    }

    fn timer(&mut self, ctx: &mut Ctx<'_>, id: TimerId) {
        if self.resume_timer != Some(id) {
            return;
        }
        self.resume_timer = None;
        if self.spare.is_none() {
            self.spare = open_spare();
        }
        if let Err(e) = ctx.set_interest(ctx.id(), Some(Interest::READABLE)) {
            log::error!("{}: cannot resume accepting: {e}", self.name);
            return;
        }
        log::info!("{}: accepting again", self.name);
        if ctx.is_edge() {
            ctx.requeue(ctx.id(), Readiness::READABLE);
        }
    }

    fn shutdown(&mut self, ctx: &mut Ctx<'_>) {
        log::info!("{}: no longer accepting", self.name);
        let id = ctx.id();
        ctx.remove(id);
    }

    fn removed(&mut self, _ctx: &mut Ctx<'_>) {
        if let Some(path) = self.unix_path.take() {
            if let Err(e) = std::fs::remove_file(&path) {
                log::debug!("remove {}: {e}", path.display());
            }
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
