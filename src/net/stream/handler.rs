//! [`Stream`]: the reactor handler for one stream socket (construction,
//! registration, connect completion, reading, and its [`Handler`] callbacks).

use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::mail::Mail;
use super::output::Data;
use super::phase::{Phase, State, WriteSide};
use super::state::{Idle, StreamTransport};
use super::{Conn, Protocol, StreamConfig};
use crate::net::buffer::OutBuf;
use crate::net::ratelimit::WarnLimit;
use crate::reactor::{Ctx, Handler, HandlerId, TimerId};
use crate::selector::{Interest, Readiness};
use crate::sys::socket::{self, PeerAddr};

thread_local! {
    /// Warnings a peer causes at will (stop reading, open many connections): rate
    /// limited per reactor thread, so one client cannot fill the log.
    static CLOSE_TIMEOUT_WARN: WarnLimit = const { WarnLimit::new(Duration::from_secs(1)) };
}

/// A buffered connection: the reactor handler for one stream socket.
pub struct Stream {
    pub(super) transport: StreamTransport,
    pub(super) proto: Box<dyn Protocol>,
}

impl Stream {
    /// Wraps a connected socket (made non-blocking here, if it is not already).
    /// Register it with [`Stream::register`].
    ///
    /// # Errors
    ///
    /// Making `fd` non-blocking failed (`fcntl`: not an open descriptor). `fd` is
    /// closed and `proto` dropped then.
    pub fn new(
        fd: OwnedFd,
        peer: PeerAddr,
        proto: Box<dyn Protocol>,
        cfg: Rc<StreamConfig>,
    ) -> io::Result<Stream> {
        crate::sys::set_nonblocking(fd.as_fd(), true)?;
        Ok(Self::accepted(fd, peer, proto, cfg))
    }

    /// Wraps a socket that `accept4(SOCK_NONBLOCK)` returned.
    pub(crate) fn accepted(
        fd: OwnedFd,
        peer: PeerAddr,
        proto: Box<dyn Protocol>,
        cfg: Rc<StreamConfig>,
    ) -> Stream {
        Stream {
            transport: StreamTransport {
                fd,
                peer: peer.clone(),
                out: OutBuf::default(),
                files: VecDeque::new(),
                file_pending: 0,
                sent: 0,
                state: State::new(Phase::Open),
                registered: None,
                close_timer: None,
                connect_timer: None,
                idle: None,
                error: None,
                no_shortcut: !matches!(peer, PeerAddr::Inet(_)),
                cfg,
                producers: Vec::new(),
                open: None,
                guard: None,
                exclusive: false,
            },
            proto,
        }
    }

    /// Keeps `guard` until the connection is dropped (its `Drop` uncounts it from
    /// counters shared across reactors).
    pub(crate) fn guarded(mut self, guard: Box<dyn Any>) -> Stream {
        self.transport.guard = Some(guard);
        self
    }

    /// Counts this connection in `open` while it lives (a listener's limit).
    pub(crate) fn counted(mut self, open: Rc<Cell<usize>>) -> Stream {
        open.set(open.get() + 1);
        self.transport.open = Some(open);
        self.transport.exclusive = true;
        self
    }

    /// Registers the connection and calls [`Protocol::connection_made`].
    ///
    /// # Errors
    ///
    /// The backend refuses the descriptor (as [`Ctx::insert`]: `select` and a
    /// descriptor at or above `FD_SETSIZE`, say). The connection is closed and its
    /// protocol dropped without a callback then.
    pub fn register(self, ctx: &mut Ctx<'_>) -> io::Result<HandlerId> {
        let interest = if ctx.is_edge() {
            Interest::BOTH
        } else {
            Interest::READABLE
        };
        let id = ctx.insert(Box::new(self), Some(interest))?;
        ctx.with_handler::<Stream, _>(id, |s, ctx| {
            s.transport.registered = Some(interest);
            s.proto.connection_made(&mut Conn {
                st: &mut s.transport,
                ctx,
            });
            s.drain_mail(ctx);
        });
        Ok(id)
    }

    /// Registers a socket whose non-blocking connect is in progress: it is watched
    /// for writability, and [`Protocol::connection_made`] runs once the connect
    /// completes ([`Protocol::connection_failed`] if it fails or `timeout` passes).
    pub(crate) fn register_connecting(
        mut self,
        ctx: &mut Ctx<'_>,
        timeout: Duration,
    ) -> io::Result<HandlerId> {
        self.transport.state.phase = Phase::Connecting;
        let interest = if ctx.is_edge() {
            Interest::BOTH
        } else {
            Interest::WRITABLE
        };
        let id = ctx.insert(Box::new(self), Some(interest))?;
        ctx.with_handler::<Stream, _>(id, |s, ctx| {
            s.transport.registered = Some(interest);
            s.transport.connect_timer = Some(ctx.set_timer(timeout));
        });
        Ok(id)
    }

    /// A readiness report while connecting: finish the connect (success or failure).
    /// Returns whether the connection is now up.
    fn connect_ready(&mut self, ctx: &mut Ctx<'_>, r: Readiness) -> bool {
        let failed = r.is_error() || r.is_hangup();
        if !r.is_writable() && !failed {
            return false;
        }
        let err = match socket::take_error(self.transport.fd.as_fd()) {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) if failed => Some(io::Error::new(
                io::ErrorKind::NotConnected,
                "the socket hung up while connecting",
            )),
            Ok(None) => None,
        };
        if let Some(e) = err {
            let e = io::Error::new(e.kind(), format!("connect to {}: {e}", self.transport.peer));
            self.transport.fail(ctx, e);
            return false;
        }
        self.transport.state.phase = Phase::Open;
        if let Some(t) = self.transport.connect_timer.take() {
            ctx.cancel_timer(t);
        }
        log::debug!("connected to {}", self.transport.peer);
        let (proto, mut conn) = self.conn(ctx);
        proto.connection_made(&mut conn);
        if self.transport.state.is_closed() {
            return false;
        }
        // Reading starts now; output queued before the connect goes out (and a
        // `shutdown_write` or `notify_drained` asked for meanwhile takes effect).
        self.transport.update_interest(ctx);
        if !self.transport.state.flush_queued {
            self.transport.state.flush_queued = true;
            ctx.defer(ctx.id());
        }
        true
    }

    /// Applies what other connections left for this one while it was busy.
    pub(super) fn drain_mail(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(m) = ctx.take_mail(ctx.id(), |_| true) {
            let Ok(m) = m.downcast::<Mail>() else {
                continue;
            };
            match *m {
                Mail::Write(data) => {
                    self.transport.queue_write_now(ctx, Data::Shared(&data));
                }
                Mail::Event(e) => {
                    if !self.transport.state.is_closed() {
                        let (proto, mut conn) = self.conn(ctx);
                        proto.event(&mut conn, e);
                    }
                }
                Mail::ConsumerPause(p) => self.transport.consumer_pause(ctx, p),
                Mail::UserPause(p) => self.transport.set_user_paused(ctx, p),
                Mail::Producer(p) => self.transport.add_producer(ctx, p),
            }
        }
    }

    pub(super) fn conn<'a, 'b>(
        &'a mut self,
        ctx: &'a mut Ctx<'b>,
    ) -> (&'a mut dyn Protocol, Conn<'a, 'b>) {
        (
            self.proto.as_mut(),
            Conn {
                st: &mut self.transport,
                ctx,
            },
        )
    }

    fn read(&mut self, ctx: &mut Ctx<'_>, r: Readiness) {
        let budget = ctx.config().event_budget;
        let mut buf = crate::net::readbuf::take();
        let mut reads = 0;
        // A short read proves the socket drained at that moment, so the read that
        // would only return EAGAIN is skipped: the next arrival raises a new edge.
        // Not when the peer has closed: its FIN raised no separate edge (or one we
        // consumed while paused), so read on until EOF. Backends that cannot report
        // read-closed never take the shortcut.
        let shortcut = !self.transport.state.peer_closed
            && !self.transport.no_shortcut
            && (!ctx.is_edge() || ctx.capabilities().reports_read_closed);
        loop {
            if !self.transport.reads() {
                break;
            }
            if reads == budget {
                if ctx.is_edge() {
                    ctx.requeue(ctx.id(), r);
                }
                break;
            }
            match socket::recv(self.transport.fd.as_fd(), &mut buf) {
                Ok(0) if self.transport.state.is_lingering() => {
                    self.transport.state.eof = true;
                    self.transport.abort(ctx);
                    break;
                }
                Ok(n) if self.transport.state.is_lingering() => {
                    log::trace!(
                        "{}: discarding {n} bytes while closing",
                        self.transport.peer
                    );
                    reads += 1;
                }
                Ok(0) => {
                    self.transport.state.eof = true;
                    let (proto, mut conn) = self.conn(ctx);
                    let keep = proto.eof_received(&mut conn);
                    // Our write side already shut: both directions are done.
                    if keep && self.transport.state.write != WriteSide::Shut {
                        self.transport.update_interest(ctx);
                    } else {
                        self.transport.close(ctx);
                    }
                    break;
                }
                Ok(n) => {
                    reads += 1;
                    if let Some(idle) = &mut self.transport.idle {
                        idle.last = ctx.now();
                    }
                    let (proto, mut conn) = self.conn(ctx);
                    proto.data_received(&mut conn, &buf[..n]);
                    // A consumer this read fed may have paused us meanwhile.
                    self.drain_mail(ctx);
                    if n < buf.len() && shortcut {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.transport.fail(ctx, e);
                    break;
                }
            }
        }
        crate::net::readbuf::give(buf);
        if self.transport.read_paused() {
            self.transport.update_interest(ctx);
        }
    }

    fn flush_and_resume(&mut self, ctx: &mut Ctx<'_>) {
        if !self.transport.flush(ctx) || self.transport.state.is_closed() {
            return;
        }
        let resumed = self.transport.state.bp_paused
            && self.transport.pending() <= self.transport.cfg.low_watermark;
        let drained = self.transport.state.drain_notify && !self.transport.has_pending();
        if resumed || drained {
            let was_paused = self.transport.read_paused();
            self.transport.state.bp_paused &= !resumed;
            self.transport.state.drain_notify &= !drained;
            if resumed {
                self.transport.pace_producers(ctx, false);
            }
            let (proto, mut conn) = self.conn(ctx);
            proto.output_drained(&mut conn);
            if was_paused && !self.transport.read_paused() {
                self.transport.requeue_read(ctx);
            }
        }
        self.transport.update_interest(ctx);
    }
}

impl Stream {
    fn on_ready(&mut self, ctx: &mut Ctx<'_>, r: Readiness) {
        if self.transport.state.is_connecting() && !self.connect_ready(ctx, r) {
            return;
        }
        if r.is_read_closed() || r.is_hangup() || r.is_error() {
            self.transport.state.peer_closed = true;
        }
        if r.is_priority() {
            // TCP urgent data: recv stops at the mark with bytes still queued.
            self.transport.no_shortcut = true;
        }
        if r.is_readable() {
            self.read(ctx, r);
        }
        if r.is_writable() && self.transport.has_pending() && !self.transport.state.is_closed() {
            self.flush_and_resume(ctx);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, id: TimerId) {
        if self.transport.idle.as_ref().is_some_and(|i| i.timer == id) {
            let Some(idle) = self.transport.idle.take() else {
                return;
            };
            let quiet = Instant::now().saturating_duration_since(idle.last);
            if quiet < idle.timeout {
                self.transport.idle = Some(Idle {
                    timer: ctx.set_timer(idle.timeout - quiet),
                    ..idle
                });
            } else if !self.transport.state.is_closed() {
                log::debug!("{}: idle for {quiet:?}", self.transport.peer);
                let (proto, mut conn) = self.conn(ctx);
                proto.idle_timeout(&mut conn);
            }
            return;
        }
        if self.transport.connect_timer == Some(id) {
            self.transport.connect_timer = None;
            let e = io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect to {} timed out", self.transport.peer),
            );
            self.transport.fail(ctx, e);
            return;
        }
        if self.transport.close_timer == Some(id) {
            CLOSE_TIMEOUT_WARN.with(|w| {
                w.warn(
                    module_path!(),
                    format_args!(
                        "{}: close timed out with {} bytes unsent; dropping",
                        self.transport.peer,
                        self.transport.pending()
                    ),
                )
            });
            self.transport.close_timer = None;
            let unsent = self.transport.pending();
            if unsent == 0 {
                // Lingering: everything was sent; the peer just never closed.
                self.transport.abort(ctx);
            } else {
                self.transport.fail(
                    ctx,
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("close timed out with {unsent} bytes unsent"),
                    ),
                );
            }
            return;
        }
        if !self.transport.state.is_closed() {
            let (proto, mut conn) = self.conn(ctx);
            proto.timer(&mut conn, id);
        }
    }

    fn on_shutdown(&mut self, ctx: &mut Ctx<'_>) {
        if self.transport.state.is_connecting() {
            let e = io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!(
                    "connect to {} abandoned: the reactor is shutting down",
                    self.transport.peer
                ),
            );
            self.transport.fail(ctx, e);
            return;
        }
        if !self.transport.state.is_closed() {
            let (proto, mut conn) = self.conn(ctx);
            proto.shutdown(&mut conn);
        }
    }
}

impl Handler for Stream {
    fn fd(&self) -> RawFd {
        self.transport.fd.as_raw_fd()
    }

    fn ready(&mut self, ctx: &mut Ctx<'_>, r: Readiness) {
        self.on_ready(ctx, r);
        self.drain_mail(ctx);
    }

    fn deferred(&mut self, ctx: &mut Ctx<'_>) {
        self.transport.state.flush_queued = false;
        if !self.transport.state.is_closed() {
            self.flush_and_resume(ctx);
        }
        self.drain_mail(ctx);
    }

    fn timer(&mut self, ctx: &mut Ctx<'_>, id: TimerId) {
        self.on_timer(ctx, id);
        self.drain_mail(ctx);
    }

    fn shutdown(&mut self, ctx: &mut Ctx<'_>) {
        self.on_shutdown(ctx);
        self.drain_mail(ctx);
    }

    fn removed(&mut self, ctx: &mut Ctx<'_>) {
        // A callback panicked (the reactor contained it): the protocol still hears
        // `connection_lost`, with an error, so it can drop the connection from any
        // shared state; whatever it had queued is discarded.
        if ctx.removed_after_panic() {
            self.transport.error = Some(io::Error::other(
                "the connection's protocol panicked; connection dropped",
            ));
        }
        // Producers paused on our account go on reading (to see their own EOF, say).
        if self.transport.state.bp_paused {
            self.transport.pace_producers(ctx, false);
        }
        self.transport.producers.clear();
        // Not asked for by the connection (the loop stopped, or a graceful shutdown
        // ran out of time) and output left behind: not a clean close.
        if !self.transport.state.is_closed()
            && self.transport.error.is_none()
            && self.transport.has_pending()
        {
            self.transport.error = Some(io::Error::other(format!(
                "closed by the reactor with {} bytes unsent",
                self.transport.pending()
            )));
        }
        self.transport.state.set_closed();
        if let Some(t) = self.transport.close_timer.take() {
            ctx.cancel_timer(t);
        }
        if let Some(t) = self.transport.connect_timer.take() {
            ctx.cancel_timer(t);
        }
        let err = self.transport.error.take();
        if self.transport.state.phase == (Phase::Closed { connected: false }) {
            let err = err.unwrap_or_else(|| {
                io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    format!(
                        "connect to {} abandoned: the reactor closed it",
                        self.transport.peer
                    ),
                )
            });
            let (proto, mut conn) = self.conn(ctx);
            proto.connection_failed(&mut conn, &err);
            return;
        }
        let (proto, mut conn) = self.conn(ctx);
        proto.connection_lost(&mut conn, err.as_ref());
    }

    fn owns_fd(&self) -> bool {
        self.transport.exclusive
    }

    fn describe(&self) -> Option<String> {
        Some(format!("peer {}", self.transport.peer))
    }

    fn keeps_alive(&self) -> bool {
        !self.transport.state.is_closed()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
