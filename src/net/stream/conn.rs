//! [`Conn`]: what a protocol sees of its connection (and, through it, of the
//! reactor).

use std::any::Any;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::handler::Stream;
use super::mail::{notify, reach, write_shared_to, write_to, Mail};
use super::output::Data;
use super::state::{Idle, StreamTransport};
use super::{Protocol, StreamConfig};
use crate::net::Listen;
use crate::reactor::{Ctx, HandlerId, TimerId};
use crate::selector::Backend;
use crate::sys::socket::{self, PeerAddr};

/// What a protocol sees of its connection (and, through it, of the reactor).
pub struct Conn<'a, 'b> {
    pub(super) st: &'a mut StreamTransport,
    pub(super) ctx: &'a mut Ctx<'b>,
}

impl<'a, 'b> Conn<'a, 'b> {
    /// This connection's id (to address it from other handlers).
    pub fn id(&self) -> HandlerId {
        self.ctx.id()
    }

    /// The peer's address.
    pub fn peer(&self) -> &PeerAddr {
        &self.st.peer
    }

    /// The local address of the connection (`getsockname`; `PeerAddr::Unix` for a
    /// Unix socket): the address a client was connected from, or which of a server's
    /// addresses a client reached.
    ///
    /// # Errors
    ///
    /// `getsockname` failed (the socket is gone).
    pub fn local_addr(&self) -> io::Result<PeerAddr> {
        socket::local_addr(self.st.fd.as_fd())
    }

    /// Whether `TCP_NODELAY` is set on the socket ([`StreamConfig::nodelay`]).
    ///
    /// # Errors
    ///
    /// `getsockopt` failed (not a TCP socket).
    pub fn nodelay(&self) -> io::Result<bool> {
        socket::nodelay(self.st.fd.as_fd())
    }

    /// Keeps TCP urgent data in the normal byte stream (`SO_OOBINLINE`).
    ///
    /// # Errors
    ///
    /// `setsockopt(SO_OOBINLINE)` failed (not expected on an open socket).
    pub fn set_oob_inline(&mut self, on: bool) -> io::Result<()> {
        socket::set_oob_inline(self.st.fd.as_fd(), on)
    }

    /// Queues `data` for sending; it is flushed after the current event batch.
    /// Returns `false` (and drops the data) if the connection is closing or gone.
    pub fn write(&mut self, data: &[u8]) -> bool {
        self.st.queue_write(self.ctx, Data::Copy(data))
    }

    /// Queues the shared chunk `data` by reference: no copy is made, the connection
    /// holds a reference count until the bytes are sent, and the flush sends it
    /// straight from `data`'s memory (gathered with whatever else is pending); a chunk
    /// of at most 1 KiB is copied instead (measured cheaper than the reference). For
    /// bytes that go to many connections (a chat message rendered once): each gets a
    /// clone of the same [`Bytes`]. Order with [`write`](Self::write) is kept.
    /// `data.len()` counts in full against this connection's
    /// [`max_output`](StreamConfig::max_output), however many connections share it.
    /// Returns `false` (and drops the reference) if the connection is closing or gone.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use readyloop::net::{Conn, Protocol};
    ///
    /// /// Answers every read with the same banner, rendered once.
    /// struct Banner(Bytes);
    ///
    /// impl Protocol for Banner {
    ///     fn data_received(&mut self, conn: &mut Conn<'_, '_>, _data: &[u8]) {
    ///         conn.write(b"> ");
    ///         conn.write_shared(&self.0);
    ///     }
    /// }
    /// let _ = Banner(Bytes::from_static(b"hello\r\n"));
    /// ```
    pub fn write_shared(&mut self, data: &Bytes) -> bool {
        self.st.queue_write(self.ctx, Data::Shared(data))
    }

    /// Queues the shared chunk `data` on another connection by reference, as
    /// [`write_shared`](Self::write_shared) does on this one; the rules of
    /// [`write_to`](Self::write_to) apply. Returns `false` if `id` is gone or closing.
    pub fn write_shared_to(&mut self, id: HandlerId, data: &Bytes) -> bool {
        if id == self.id() {
            return self.write_shared(data);
        }
        write_shared_to(self.ctx, id, data)
    }

    /// Queues `data` on another connection. Returns `false` if it is gone or
    /// closing. A connection busy further up the call stack (the one whose callback
    /// led to this one's) gets the bytes as soon as its callback returns: see
    /// [`write_to`](fn@write_to).
    pub fn write_to(&mut self, id: HandlerId, data: &[u8]) -> bool {
        if id == self.id() {
            return self.write(data);
        }
        write_to(self.ctx, id, data)
    }

    /// Queues `len` bytes of `file` from `offset`, behind everything written so far;
    /// later writes go out after it. The flush sends the region with `sendfile(2)`
    /// (the bytes never enter memory) under the same backpressure as written bytes.
    /// The protocol never sees a descriptor; the connection holds `file` open until
    /// the region is sent. If the file turns out shorter than promised, the connection
    /// is dropped (its framing could not be kept). Returns `false` if the connection is
    /// closing or gone.
    pub fn send_file(&mut self, file: Rc<File>, offset: u64, len: u64) -> bool {
        self.st.queue_file(self.ctx, file, offset, len)
    }

    /// Bytes handed to the kernel so far on this connection (written bytes and file
    /// regions alike). Queued bytes a peer never took because it went away are not
    /// counted: `bytes_sent() + output_len()` is everything queued.
    pub fn bytes_sent(&self) -> u64 {
        self.st.sent
    }

    /// Asks for one [`Protocol::output_drained`] call once everything queued so far
    /// has been handed to the kernel (at once, at the end of the batch, if the socket
    /// takes it all). Not called if the connection goes first:
    /// [`Protocol::connection_lost`] is.
    pub fn notify_drained(&mut self) {
        self.st.state.drain_notify = true;
        if !self.st.state.flush_queued {
            self.st.state.flush_queued = true;
            self.ctx.defer(self.ctx.id());
        }
    }

    /// Bytes queued and not yet sent (file regions included).
    pub fn output_len(&self) -> usize {
        self.st.pending()
    }

    /// Whether pending output passed the high watermark (and has not yet fallen to
    /// the low one): reading is paused then, unless
    /// [`StreamConfig::pause_reading_on_backpressure`] is off or producers are paced
    /// instead ([`produce_into`](Self::produce_into)). A producer (e.g. pipelined
    /// requests answered from one read) should stop producing;
    /// [`Protocol::output_drained`] says when to go on.
    pub fn is_backpressured(&self) -> bool {
        self.st.state.bp_paused
    }

    /// Stops reading, flushes what is queued, then closes. Writes after it are
    /// refused (they return `false`).
    pub fn close(&mut self) {
        self.st.close(self.ctx);
    }

    /// Closes now, discarding queued output.
    pub fn abort(&mut self) {
        self.st.abort(self.ctx);
    }

    /// Shuts our write side (sends FIN) once queued output is flushed; reading goes on.
    pub fn shutdown_write(&mut self) {
        self.st.state.shut_write_after_flush();
        if !self.st.state.flush_queued {
            self.st.state.flush_queued = true;
            self.ctx.defer(self.ctx.id());
        }
    }

    /// Stops reading until [`resume_reading`](Self::resume_reading).
    pub fn pause_reading(&mut self) {
        self.st.set_user_paused(self.ctx, true);
    }

    /// Resumes reading after [`pause_reading`](Self::pause_reading).
    pub fn resume_reading(&mut self) {
        self.st.set_user_paused(self.ctx, false);
    }

    /// Whether our write side is shut ([`shutdown_write`](Self::shutdown_write) was
    /// called: the FIN is sent, or goes once queued output is flushed). Writes are
    /// refused from then on.
    pub fn is_write_shut(&self) -> bool {
        self.st.state.is_write_shut()
    }

    /// Pending output of another connection (as [`output_len`](Self::output_len)),
    /// or `None` if it is gone, busy further up the call stack, or not a stream
    /// connection.
    pub fn output_len_of(&mut self, id: HandlerId) -> Option<usize> {
        if id == self.id() {
            return Some(self.output_len());
        }
        self.ctx
            .with_handler::<Stream, _>(id, |s, _| s.transport.pending())
    }

    /// Registers this connection as a producer for `consumer`, as Twisted's
    /// `registerProducer`: while `consumer`'s pending output is above its high
    /// watermark, this connection stops reading; when it falls to the low watermark,
    /// reading resumes. A relay calls it both ways (A produces into B, B into A): the
    /// slowest reader then paces the whole chain and memory stays bounded. While it
    /// has a producer, `consumer` no longer pauses its own reading for its own
    /// output (that output is the producer's doing). Returns `false` if `consumer`
    /// is gone (or is this connection). The registration ends with either
    /// connection; a consumer that goes resumes the producers it had paused.
    pub fn produce_into(&mut self, consumer: HandlerId) -> bool {
        let me = self.id();
        if consumer == me {
            return false;
        }
        reach(
            self.ctx,
            consumer,
            |s, ctx| {
                s.transport.add_producer(ctx, me);
                !s.transport.state.is_closed()
            },
            || Mail::Producer(me),
        )
    }

    /// Pauses the reading of another connection (as its own
    /// [`pause_reading`](Self::pause_reading) would). Returns `false` if it is gone.
    pub fn pause_reading_of(&mut self, id: HandlerId) -> bool {
        self.set_reading_of(id, true)
    }

    /// Resumes the reading of another connection paused with
    /// [`pause_reading_of`](Self::pause_reading_of) (or by its own protocol).
    /// Returns `false` if it is gone.
    pub fn resume_reading_of(&mut self, id: HandlerId) -> bool {
        self.set_reading_of(id, false)
    }

    fn set_reading_of(&mut self, id: HandlerId, pause: bool) -> bool {
        if id == self.id() {
            self.st.set_user_paused(self.ctx, pause);
            return true;
        }
        reach(
            self.ctx,
            id,
            |s, ctx| {
                s.transport.set_user_paused(ctx, pause);
                !s.transport.state.is_closed()
            },
            || Mail::UserPause(pause),
        )
    }

    /// Whether the connection is closing or gone (further writes are dropped).
    pub fn is_closing(&self) -> bool {
        self.st.state.is_closing() || self.st.state.is_closed()
    }

    /// Sets a timer; [`Protocol::timer`] runs after `delay`. Timers still pending
    /// when the connection goes are cancelled with it.
    ///
    /// # Examples
    ///
    /// A server that answers nothing at first: a timer set when the connection is
    /// made writes a line and closes.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::time::Duration;
    /// use readyloop::net::{Conn, Listen, Protocol};
    /// use readyloop::reactor::{Reactor, TimerId};
    /// use readyloop::selector::Backend;
    ///
    /// struct Later(Option<TimerId>);
    /// impl Protocol for Later {
    ///     fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
    ///         self.0 = Some(conn.set_timer(Duration::from_millis(20)));
    ///     }
    ///     fn data_received(&mut self, _: &mut Conn<'_, '_>, _: &[u8]) {}
    ///     fn timer(&mut self, conn: &mut Conn<'_, '_>, id: TimerId) {
    ///         if self.0 == Some(id) {
    ///             conn.write(b"later\n");
    ///             conn.close(); // after the line is sent
    ///         }
    ///     }
    /// }
    ///
    /// let mut reactor = Reactor::new(Backend::EpollEt)?;
    /// let (_, addr) = reactor.listen_tcp("127.0.0.1:0", |_| Some(Box::new(Later(None))))?;
    /// let handle = reactor.handle();
    /// let client = std::thread::spawn(move || -> std::io::Result<String> {
    ///     let read = || {
    ///         let mut c = std::net::TcpStream::connect(addr)?;
    ///         c.set_read_timeout(Some(Duration::from_secs(5)))?;
    ///         let mut got = String::new();
    ///         c.read_to_string(&mut got)?;
    ///         Ok(got)
    ///     };
    ///     let got = read();
    ///     handle.stop()?; // whatever happened: `run` below must return
    ///     got
    /// });
    /// reactor.run()?;
    /// assert_eq!(client.join().expect("client thread")?, "later\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_timer(&mut self, delay: Duration) -> TimerId {
        self.ctx.set_timer(delay)
    }

    /// Cancels a timer.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.ctx.cancel_timer(id)
    }

    /// Arms (or with `None` disarms) an idle timeout, as Twisted's
    /// `TimeoutMixin.setTimeout`: if no input arrives for `timeout`,
    /// [`Protocol::idle_timeout`] runs (the default closes the connection). Every
    /// read resets it; [`reset_idle_timeout`](Self::reset_idle_timeout) counts
    /// other activity. Setting it again replaces the previous one.
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        if let Some(old) = self.st.idle.take() {
            self.ctx.cancel_timer(old.timer);
        }
        if let Some(timeout) = timeout {
            self.st.idle = Some(Idle {
                timeout,
                timer: self.ctx.set_timer(timeout),
                last: self.ctx.now(),
            });
        }
    }

    /// Restarts the idle timeout's count from now (no effect if none is armed).
    pub fn reset_idle_timeout(&mut self) {
        let now = self.ctx.now();
        if let Some(idle) = &mut self.st.idle {
            idle.last = now;
        }
    }

    /// The loop's clock (read once per iteration; as [`Ctx::now`]), without a
    /// mutable borrow.
    pub fn now(&self) -> Instant {
        self.ctx.now()
    }

    /// Delivers `event` to another connection's [`Protocol::event`] now. Returns
    /// `false` if `id` is gone or is not a stream connection.
    pub fn notify(&mut self, id: HandlerId, event: Box<dyn Any>) -> bool {
        notify(self.ctx, id, event)
    }

    /// The reactor's backend (for log lines and per-backend choices).
    pub fn backend(&self) -> Backend {
        self.ctx.backend()
    }

    /// Whether the reactor is shutting down gracefully (a protocol stops keeping
    /// connections alive, say; [`Protocol::shutdown`] is called as well).
    pub fn is_shutting_down(&self) -> bool {
        self.ctx.is_shutting_down()
    }

    /// Stops the reactor after the current iteration, without flushing anything (as
    /// [`Ctx::stop`]): for a client whose work is done.
    pub fn stop_reactor(&mut self) {
        self.ctx.stop();
    }

    /// Removes another handler this protocol opened (an outgoing connection, a
    /// listener, a data channel) after the current callback: it is deregistered,
    /// told (a stream connection's protocol hears `connection_lost`), and closed,
    /// discarding its queued output (as [`Ctx::remove`]). No effect if `id` is gone.
    pub fn remove_handler(&mut self, id: HandlerId) {
        self.ctx.remove(id);
    }

    /// Opens an outgoing TCP connection driven by `proto` on this reactor, as
    /// [`Listen::connect_tcp`]: `proto` hears `connection_made` once it is up, or
    /// `connection_failed`. Returns its id (for [`write_to`](Self::write_to),
    /// [`produce_into`](Self::produce_into), [`remove_handler`](Self::remove_handler)).
    ///
    /// # Errors
    ///
    /// As [`Listen::connect_tcp`]: `addr` does not resolve, or the connect failed
    /// at once for every address.
    pub fn connect_tcp(
        &mut self,
        addr: impl ToSocketAddrs,
        timeout: Duration,
        proto: impl Protocol + 'static,
    ) -> io::Result<HandlerId> {
        Listen::connect_tcp(self.ctx, addr, timeout, proto)
    }

    /// [`connect_tcp`](Self::connect_tcp) with connection settings `cfg`.
    ///
    /// # Errors
    ///
    /// As [`Listen::connect_tcp`].
    pub fn connect_tcp_with(
        &mut self,
        addr: impl ToSocketAddrs,
        timeout: Duration,
        proto: impl Protocol + 'static,
        cfg: StreamConfig,
    ) -> io::Result<HandlerId> {
        Listen::connect_tcp_with(self.ctx, addr, timeout, proto, cfg)
    }

    /// Sends one datagram to `to` through the UDP socket handler `sock` (one this
    /// protocol's server opened, e.g. with [`Listen::bind_udp`]), as
    /// [`send_via`](crate::net::send_via). Returns `false` if `sock` is gone or the
    /// datagram could not be sent.
    pub fn send_via(&mut self, sock: HandlerId, data: &[u8], to: SocketAddr) -> bool {
        crate::net::send_via(self.ctx, sock, data, to)
    }

    /// The whole reactor context, for code in this crate whose protocols run
    /// handlers of their own on the reactor (FTP data channels, the chat's UDP
    /// socket).
    pub(crate) fn ctx(&mut self) -> &mut Ctx<'b> {
        self.ctx
    }

    /// The whole reactor context: the escape hatch this narrower `Conn` replaces.
    #[deprecated(
        since = "0.1.0",
        note = "use the Conn methods: now, backend, is_shutting_down, stop_reactor, \
                remove_handler, connect_tcp(_with), set_timer, write_to, notify"
    )]
    pub fn reactor(&mut self) -> &mut Ctx<'b> {
        self.ctx
    }
}
