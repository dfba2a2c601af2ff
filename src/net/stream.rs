//! A buffered stream connection (TCP or Unix) driving a [`Protocol`].
//!
//! * Input: read into the reactor's shared buffer and handed to
//!   [`Protocol::data_received`]; nothing is kept per connection.
//! * Output: [`Conn::write`] appends to the connection's [`OutBuf`] and asks for one
//!   flush after the event batch, so many writes in one batch cost one `send`.
//! * Write interest follows the output buffer (level-triggered backends): added when
//!   a flush leaves bytes behind, dropped when it drains. Edge-triggered backends
//!   register read and write once and never touch `epoll_ctl` again.
//! * Backpressure: past the high watermark the connection stops reading; below the low
//!   watermark it resumes and tells the protocol ([`Protocol::output_drained`]), so a
//!   peer that never reads cannot grow our memory. Past the hard limit (if set) the
//!   connection is dropped with a logged reason.
//! * Flow control between connections (a relay): a connection whose output another
//!   connection feeds registers it as its producer ([`Conn::produce_into`], Twisted's
//!   `registerProducer`); then the producer's reading pauses while the consumer's
//!   output is above the high watermark, instead of the consumer's own reading.
//!   [`StreamConfig::pause_reading_on_backpressure`] turns the self-pause off;
//!   [`Conn::output_len_of`], [`Conn::pause_reading_of`] and
//!   [`Conn::resume_reading_of`] do it by hand.
//! * Calls between connections ([`write_to`](fn@write_to), [`notify`](fn@notify),
//!   the `Conn` methods that reach another connection) never lose anything to a
//!   connection that is busy further up the call stack (B's callback, called from
//!   A's, writing to A): what they ask is kept and applied as soon as A's callback
//!   returns (a write of A's own first takes the earlier writes along, in order).
//! * Half-close: [`Conn::shutdown_write`] sends our FIN after the output; a
//!   protocol that keeps a half-closed connection ([`Protocol::eof_received`]
//!   returns `true`) is closed once both directions are done, in either order.
//! * Closing: [`Conn::close`] stops reading, flushes, then closes (bounded by
//!   [`StreamConfig::close_timeout`]); [`Conn::abort`] closes at once.
//! * Files: [`Conn::send_file`] queues a region of an open file behind the buffered
//!   output; the flush sends it with `sendfile(2)` (never through memory), then goes
//!   on with whatever was written after it. Its bytes count as pending output, so the
//!   watermarks pace a protocol that queues large files as they pace one that writes.

use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::buffer::OutBuf;
use super::ratelimit::WarnLimit;
use crate::reactor::{Ctx, Handler, HandlerId, TimerId};
use crate::selector::{Interest, Readiness};
use crate::sys::file;
use crate::sys::socket::{self, PeerAddr};

thread_local! {
    /// Warnings a peer causes at will (stop reading, open many connections): rate
    /// limited per reactor thread, so one client cannot fill the log.
    static OUTPUT_LIMIT_WARN: WarnLimit = const { WarnLimit::new(Duration::from_secs(1)) };
    static CLOSE_TIMEOUT_WARN: WarnLimit = const { WarnLimit::new(Duration::from_secs(1)) };
}

/// Per-connection settings.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// Stop reading when this many bytes wait to be written.
    pub high_watermark: usize,
    /// Resume reading when the pending output falls to this.
    pub low_watermark: usize,
    /// Drop the connection (logged) if pending output exceeds this; `None`: no limit
    /// beyond backpressure. Protocols that write without reading (chat fan-out) set it.
    pub max_output: Option<usize>,
    /// How long a graceful close may wait for the peer to take our output.
    pub close_timeout: Duration,
    /// Set `TCP_NODELAY` on TCP sockets (accepted and outgoing alike).
    pub nodelay: bool,
    /// Stop reading this connection while its own output is above the high
    /// watermark (the default: right for a protocol that writes in answer to what it
    /// reads). A connection whose output is fed by another connection (a relay) sets
    /// this to `false`, or registers its producer with [`Conn::produce_into`], which
    /// turns the self-pause off while a producer is registered: then the producer's
    /// reading is paused instead. The watermarks still drive
    /// [`Protocol::output_drained`] and the output buffer still shrinks.
    pub pause_reading_on_backpressure: bool,
}

impl Default for StreamConfig {
    fn default() -> StreamConfig {
        StreamConfig {
            high_watermark: 256 * 1024,
            low_watermark: 64 * 1024,
            max_output: None,
            close_timeout: Duration::from_secs(10),
            nodelay: true,
            pause_reading_on_backpressure: true,
        }
    }
}

/// A protocol over a byte stream, in Twisted's shape. All methods but
/// `data_received` have defaults.
pub trait Protocol {
    /// The connection is up. For an outgoing connection ([`Listen::connect_tcp`](super::Listen::connect_tcp))
    /// this is when the connect completed, never before.
    fn connection_made(&mut self, _conn: &mut Conn<'_, '_>) {}

    /// An outgoing connection could not be made (refused, unreachable, timed out,
    /// or abandoned because the reactor shut down), as Twisted's
    /// `clientConnectionFailed`. Neither `connection_made` nor `connection_lost` is
    /// called for it; the connection is gone, writes are ignored, but the context
    /// ([`Conn::reactor`]) can reach other handlers (close the client of a relay, say).
    fn connection_failed(&mut self, _conn: &mut Conn<'_, '_>, _reason: &io::Error) {}

    /// Bytes arrived. `data` is only valid during the call.
    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]);

    /// The peer shut its write side (read returned 0). Return `true` to keep the
    /// connection open for writing; the default `false` flushes pending output and
    /// closes.
    fn eof_received(&mut self, _conn: &mut Conn<'_, '_>) -> bool {
        false
    }

    /// The connection is gone: `reason` is `None` for a clean close, or the error.
    /// Queued output that never left makes it an error (`TimedOut` when a graceful
    /// close timed out, `Other` when the reactor stopped or its shutdown deadline
    /// passed), except after [`Conn::abort`], which discards it on purpose.
    /// Also `Other` after one of this protocol's callbacks panicked and the reactor
    /// contained the panic ([`PanicPolicy::Contain`](crate::reactor::PanicPolicy)):
    /// the state may be half-updated, but this is the place to remove the connection
    /// from shared state as if the peer had gone.
    /// Writes are ignored from here on.
    fn connection_lost(&mut self, _conn: &mut Conn<'_, '_>, _reason: Option<&io::Error>) {}

    /// A timer set with [`Conn::set_timer`] fired.
    fn timer(&mut self, _conn: &mut Conn<'_, '_>, _id: TimerId) {}

    /// Nothing arrived for the idle timeout set with [`Conn::set_idle_timeout`]
    /// (Twisted's `TimeoutMixin.timeoutConnection`). The timeout is disarmed; the
    /// default closes the connection gracefully (flush, then close). A protocol
    /// may write a goodbye first, or set the timeout again to keep waiting.
    fn idle_timeout(&mut self, conn: &mut Conn<'_, '_>) {
        conn.close();
    }

    /// Pending output fell to the low watermark after reading had been paused
    /// (a producer can write more now), or all of it was handed to the kernel after
    /// [`Conn::notify_drained`] asked to hear of it.
    fn output_drained(&mut self, _conn: &mut Conn<'_, '_>) {}

    /// A message from another handler ([`Conn::notify`]).
    fn event(&mut self, _conn: &mut Conn<'_, '_>, _event: Box<dyn Any>) {}

    /// The reactor is shutting down gracefully. The default closes after flushing.
    fn shutdown(&mut self, conn: &mut Conn<'_, '_>) {
        conn.close();
    }
}

/// A boxed protocol is a protocol (so `Box<dyn Protocol>` can be passed where an
/// `impl Protocol` is expected, e.g. to [`Listen::connect_tcp`](super::Listen::connect_tcp)).
impl<P: Protocol + ?Sized> Protocol for Box<P> {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        (**self).connection_made(conn)
    }
    fn connection_failed(&mut self, conn: &mut Conn<'_, '_>, reason: &io::Error) {
        (**self).connection_failed(conn, reason)
    }
    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
        (**self).data_received(conn, data)
    }
    fn eof_received(&mut self, conn: &mut Conn<'_, '_>) -> bool {
        (**self).eof_received(conn)
    }
    fn connection_lost(&mut self, conn: &mut Conn<'_, '_>, reason: Option<&io::Error>) {
        (**self).connection_lost(conn, reason)
    }
    fn timer(&mut self, conn: &mut Conn<'_, '_>, id: TimerId) {
        (**self).timer(conn, id)
    }
    fn idle_timeout(&mut self, conn: &mut Conn<'_, '_>) {
        (**self).idle_timeout(conn)
    }
    fn output_drained(&mut self, conn: &mut Conn<'_, '_>) {
        (**self).output_drained(conn)
    }
    fn event(&mut self, conn: &mut Conn<'_, '_>, event: Box<dyn Any>) {
        (**self).event(conn, event)
    }
    fn shutdown(&mut self, conn: &mut Conn<'_, '_>) {
        (**self).shutdown(conn)
    }
}

/// The state bits of a connection.
#[derive(Debug, Default)]
struct Flags {
    /// Pending output passed the high watermark and has not yet fallen to the low
    /// one (reading is paused then, unless the connection opted out or has producers).
    bp_paused: bool,
    /// How many consumers ([`Conn::produce_into`]) have paused our reading.
    consumer_pauses: u32,
    /// Reading paused by the protocol.
    user_paused: bool,
    /// Read returned 0.
    eof: bool,
    /// Graceful close in progress: flush, then close.
    closing: bool,
    /// Call `output_drained` once everything queued is sent (`Conn::notify_drained`).
    drain_notify: bool,
    /// Graceful close, output done: our FIN is sent and we read and discard until
    /// the peer's FIN (or the close timeout), so closing with unread input does not
    /// make the kernel send RST and destroy output the peer has not read yet.
    lingering: bool,
    /// Shut our write side once the output drains.
    shutdown_after_flush: bool,
    /// Our write side is shut.
    write_shut: bool,
    /// A flush is queued for the end of the batch.
    flush_queued: bool,
    /// Removal requested; writes are ignored.
    dead: bool,
    /// An outgoing connect is in progress (watching for writability).
    connecting: bool,
    /// The backend has reported the peer's FIN (read-closed, hang-up or error) at
    /// some point. Sticky: an edge seen while reading was paused is not seen again.
    peer_closed: bool,
}

/// A file region queued with [`Conn::send_file`], and the bytes written after it.
struct FileSegment {
    file: Rc<File>,
    offset: u64,
    remaining: u64,
    /// Output queued behind this file (sent once the region is done).
    after: OutBuf,
}

/// The state of a connection other than its protocol (split so the protocol can be
/// called with a [`Conn`] that borrows the rest).
pub struct StreamCore {
    fd: OwnedFd,
    peer: PeerAddr,
    out: OutBuf,
    /// File regions (and the bytes behind each), sent after `out`; usually empty.
    files: VecDeque<FileSegment>,
    /// Sum of the files' remaining bytes.
    file_pending: u64,
    /// Bytes handed to the kernel so far (`send` and `sendfile`).
    sent: u64,
    flags: Flags,
    registered: Option<Interest>,
    close_timer: Option<TimerId>,
    /// The connect timeout of an outgoing connection still connecting.
    connect_timer: Option<TimerId>,
    /// The idle timeout ([`Conn::set_idle_timeout`]), if armed.
    idle: Option<Idle>,
    error: Option<io::Error>,
    cfg: Rc<StreamConfig>,
    /// Connections that produce into this one ([`Conn::produce_into`]): paused while
    /// our output is above the high watermark.
    producers: Vec<HandlerId>,
    open: Option<Rc<Cell<usize>>>,
    /// Dropped with the connection (a reactor pool's global connection count).
    guard: Option<Box<dyn Any>>,
    /// The descriptor came from our own `accept4` and was never duplicated, so the
    /// reactor may skip `epoll_ctl(DEL)` before closing it. False for sockets handed
    /// in through [`Stream::new`]: the caller may hold a `try_clone`, and a closed
    /// but still-open-elsewhere file stays in a level-triggered epoll set forever.
    exclusive: bool,
    /// Not a plain TCP byte stream (Unix: SCM_RIGHTS/credential boundaries end a read
    /// early), or TCP urgent data was seen: a short read does not prove the socket
    /// drained, so the edge-triggered shortcut is off.
    no_shortcut: bool,
}

impl Drop for StreamCore {
    /// Uncounts the connection from its listener's total, whether it was registered
    /// and removed or refused at registration (select's `FD_SETSIZE`, say).
    fn drop(&mut self) {
        if let Some(open) = self.open.take() {
            open.set(open.get().saturating_sub(1));
        }
    }
}

/// An armed idle timeout: one reactor timer, re-armed for the remainder when it
/// fires early (input moved `last` on), so input costs no timer-heap work.
#[derive(Debug)]
struct Idle {
    timeout: Duration,
    timer: TimerId,
    /// When input last arrived (or the timeout was set or reset).
    last: Instant,
}

/// A buffered connection: the reactor handler for one stream socket.
pub struct Stream {
    core: StreamCore,
    proto: Box<dyn Protocol>,
}

/// What a protocol sees of its connection (and, through it, of the reactor).
pub struct Conn<'a, 'b> {
    st: &'a mut StreamCore,
    ctx: &'a mut Ctx<'b>,
}

impl StreamCore {
    /// Whether anything (bytes or file regions) waits to be sent.
    fn has_pending(&self) -> bool {
        !self.out.is_empty() || !self.files.is_empty()
    }

    /// Bytes held in memory for sending (the `max_output` limit applies to these).
    fn buffered(&self) -> usize {
        self.out.len() + self.files.iter().map(|f| f.after.len()).sum::<usize>()
    }

    /// Everything waiting to be sent, file regions included (the watermarks apply).
    fn pending(&self) -> usize {
        let files = usize::try_from(self.file_pending).unwrap_or(usize::MAX);
        self.buffered().saturating_add(files)
    }

    fn want(&self) -> Option<Interest> {
        let f = &self.flags;
        if f.connecting {
            return (!f.dead).then_some(Interest::WRITABLE);
        }
        let read = !f.eof && !f.dead && (f.lingering || (!self.read_paused() && !f.closing));
        let write = self.has_pending() && !f.write_shut;
        match (read, write) {
            (true, true) => Some(Interest::BOTH),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        }
    }

    /// Whether reading is paused: by the protocol, by a consumer, or by our own
    /// output above the high watermark (unless opted out, or producers are paced
    /// instead).
    fn read_paused(&self) -> bool {
        let f = &self.flags;
        f.user_paused
            || f.consumer_pauses > 0
            || (f.bp_paused && self.cfg.pause_reading_on_backpressure && self.producers.is_empty())
    }

    /// Edge-triggered: edges that arrived while reading was paused were consumed
    /// unread; redeliver one.
    fn requeue_read(&self, ctx: &mut Ctx<'_>) {
        if ctx.is_edge() && !self.flags.dead {
            ctx.requeue(
                ctx.id(),
                Readiness::from_parts(Interest::READABLE, true, false, false, false, false),
            );
        }
    }

    /// Pauses or resumes reading at the protocol's request (this connection's or,
    /// through [`Conn::pause_reading_of`], another's).
    fn set_user_paused(&mut self, ctx: &mut Ctx<'_>, pause: bool) {
        if self.flags.user_paused == pause {
            return;
        }
        self.flags.user_paused = pause;
        self.update_interest(ctx);
        if !pause {
            self.requeue_read(ctx);
        }
    }

    /// A consumer we produce into crossed its high watermark (`pause`) or drained.
    fn consumer_pause(&mut self, ctx: &mut Ctx<'_>, pause: bool) {
        if pause {
            self.flags.consumer_pauses += 1;
        } else if self.flags.consumer_pauses > 0 {
            self.flags.consumer_pauses -= 1;
            if self.flags.consumer_pauses == 0 {
                self.update_interest(ctx);
                self.requeue_read(ctx);
            }
            return;
        }
        self.update_interest(ctx);
    }

    /// Registers `producer` (its reading is paced by our output level).
    fn add_producer(&mut self, ctx: &mut Ctx<'_>, producer: HandlerId) {
        if self.flags.dead || self.producers.contains(&producer) {
            return;
        }
        let was_paused = self.read_paused();
        self.producers.push(producer);
        if self.flags.bp_paused {
            pace(ctx, producer, true);
        }
        if was_paused && !self.read_paused() {
            // The self-pause is off now that a producer is paced instead.
            self.update_interest(ctx);
            self.requeue_read(ctx);
        }
    }

    /// Pauses (or resumes) every registered producer.
    fn pace_producers(&mut self, ctx: &mut Ctx<'_>, pause: bool) {
        for i in 0..self.producers.len() {
            pace(ctx, self.producers[i], pause);
        }
    }

    /// Level-triggered: make the kernel interest match the state. Edge-triggered:
    /// registered for both once, nothing to do.
    fn update_interest(&mut self, ctx: &mut Ctx<'_>) {
        if ctx.is_edge() || self.flags.dead {
            return;
        }
        let want = self.want();
        if want != self.registered {
            match ctx.set_interest(ctx.id(), want) {
                Ok(_) => self.registered = want,
                Err(e) => self.fail(ctx, e),
            }
        }
    }

    /// Whether output queued now would be dropped: the connection is gone, closing
    /// (`close` sends what was queued before it, nothing after) or its write side is
    /// shut or about to be.
    fn refuses_output(&self) -> bool {
        let f = &self.flags;
        f.dead || f.closing || f.write_shut || f.shutdown_after_flush
    }

    fn queue_write(&mut self, ctx: &mut Ctx<'_>, data: &[u8]) -> bool {
        // Writes other connections left for us while we were busy go first: they
        // were asked for earlier.
        while let Some(m) = ctx.take_mail(ctx.id(), |m| {
            matches!(m.downcast_ref::<Mail>(), Some(Mail::Write(_)))
        }) {
            if let Ok(m) = m.downcast::<Mail>() {
                if let Mail::Write(early) = *m {
                    self.queue_write_now(ctx, &early);
                }
            }
        }
        self.queue_write_now(ctx, data)
    }

    fn queue_write_now(&mut self, ctx: &mut Ctx<'_>, data: &[u8]) -> bool {
        if self.refuses_output() {
            log::debug!(
                "{}: write of {} bytes after close ignored",
                self.peer,
                data.len()
            );
            return false;
        }
        if data.is_empty() {
            return true;
        }
        match self.files.back_mut() {
            Some(seg) => seg.after.extend(data),
            None => self.out.extend(data),
        }
        if let Some(max) = self.cfg.max_output {
            // Over the limit before the end-of-batch flush: offer the backlog to the
            // socket first, so a peer that keeps reading is not taken for one that
            // stopped (one read of a chat sender can queue more than the limit).
            if self.buffered() > max {
                if !self.flush(ctx) {
                    return false;
                }
                if self.flags.dead {
                    // Sent, and the closing connection finished.
                    return true;
                }
            }
            let buffered = self.buffered();
            if buffered > max {
                OUTPUT_LIMIT_WARN.with(|w| {
                    w.warn(
                        module_path!(),
                        format_args!(
                            "{}: output buffer {buffered} bytes > limit {max}: peer is not reading; disconnecting",
                            self.peer
                        ),
                    )
                });
                self.out.clear();
                self.files.clear();
                self.file_pending = 0;
                self.fail(
                    ctx,
                    io::Error::new(io::ErrorKind::OutOfMemory, "output buffer limit exceeded"),
                );
                return false;
            }
        }
        self.queued(ctx);
        true
    }

    fn queue_file(&mut self, ctx: &mut Ctx<'_>, file: Rc<File>, offset: u64, len: u64) -> bool {
        if self.refuses_output() {
            log::debug!("{}: file send after close ignored", self.peer);
            return false;
        }
        if len == 0 {
            return true;
        }
        self.files.push_back(FileSegment {
            file,
            offset,
            remaining: len,
            after: OutBuf::default(),
        });
        self.file_pending += len;
        self.queued(ctx);
        true
    }

    /// After output was queued: backpressure and the end-of-batch flush.
    fn queued(&mut self, ctx: &mut Ctx<'_>) {
        if !self.flags.bp_paused && self.pending() > self.cfg.high_watermark {
            log::trace!(
                "{}: output {} > high watermark, pausing reads",
                self.peer,
                self.pending()
            );
            self.flags.bp_paused = true;
            self.pace_producers(ctx, true);
        }
        if !self.flags.flush_queued {
            self.flags.flush_queued = true;
            ctx.defer(ctx.id());
        }
    }

    fn fail(&mut self, ctx: &mut Ctx<'_>, e: io::Error) {
        if self.flags.dead {
            return;
        }
        log::debug!("{}: connection error: {e}", self.peer);
        self.error = Some(e);
        self.abort(ctx);
    }

    fn abort(&mut self, ctx: &mut Ctx<'_>) {
        self.flags.dead = true;
        ctx.remove(ctx.id());
    }

    fn close(&mut self, ctx: &mut Ctx<'_>) {
        if self.flags.dead || self.flags.closing {
            return;
        }
        if self.flags.connecting {
            self.fail(
                ctx,
                io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "closed before the connection was made",
                ),
            );
            return;
        }
        self.flags.closing = true;
        if !self.has_pending() {
            self.finish_close(ctx);
        } else {
            self.close_timer = Some(ctx.set_timer(self.cfg.close_timeout));
            self.update_interest(ctx);
        }
    }

    /// The output of a closing connection is all sent: close now if the peer has
    /// closed too, else linger (FIN, then discard input until EOF or the timeout).
    fn finish_close(&mut self, ctx: &mut Ctx<'_>) {
        if self.flags.eof || self.flags.lingering {
            self.abort(ctx);
            return;
        }
        // Linger only for a peer that is still sending: an idle peer's socket has
        // nothing unread, so closing sends a plain FIN (nginx's heuristic too).
        let mut probe = [0u8; 4096];
        match socket::recv(self.fd.as_fd(), &mut probe) {
            Ok(n) if n > 0 => {}
            _ => {
                self.abort(ctx);
                return;
            }
        }
        self.flags.lingering = true;
        if !self.flags.write_shut {
            self.flags.write_shut = true;
            if let Err(e) = socket::shutdown(self.fd.as_fd(), Shutdown::Write) {
                log::debug!("{}: shutdown(write): {e}", self.peer);
                self.abort(ctx);
                return;
            }
        }
        if self.close_timer.is_none() {
            self.close_timer = Some(ctx.set_timer(self.cfg.close_timeout));
        }
        self.update_interest(ctx);
        if ctx.is_edge() {
            // Input that arrived while we were closing raised edges we did not read.
            ctx.requeue(
                ctx.id(),
                Readiness::from_parts(Interest::READABLE, true, false, false, false, false),
            );
        }
    }

    /// Writes as much pending output as the socket takes. Returns `false` if the
    /// connection failed.
    fn flush(&mut self, ctx: &mut Ctx<'_>) -> bool {
        if self.flags.connecting {
            // Output queued before the connect completed waits for it.
            return true;
        }
        while !self.flags.dead {
            if self.out.is_empty() {
                if self.files.is_empty() {
                    break;
                }
                match self.send_file_segment() {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        self.fail(ctx, e);
                        return false;
                    }
                }
            }
            let pending = self.out.len();
            // Bytes right before a file region (an HTTP head before its body): let
            // them leave with the region's first bytes, not in a small segment alone.
            // The region is non-empty, so its `sendfile` (no `MSG_MORE`) follows and
            // pushes; were the socket full, the ACKs that free it send the rest.
            let more = self.files.front().is_some_and(|s| s.remaining > 0);
            let sent = if more {
                socket::send_more(self.fd.as_fd(), self.out.as_slice())
            } else {
                socket::send(self.fd.as_fd(), self.out.as_slice())
            };
            match sent {
                Ok(n) => {
                    self.sent += n as u64;
                    self.out.consume(n);
                    if n < pending {
                        // Short write: the send buffer is full; wait for writability.
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.fail(ctx, e);
                    return false;
                }
            }
        }
        if !self.has_pending() {
            self.out.shrink_if_idle(self.cfg.high_watermark);
            if let Some(t) = self.close_timer.take() {
                ctx.cancel_timer(t);
            }
            if self.flags.closing {
                self.finish_close(ctx);
                return true;
            }
            if self.flags.shutdown_after_flush && !self.flags.write_shut {
                self.flags.write_shut = true;
                if let Err(e) = socket::shutdown(self.fd.as_fd(), Shutdown::Write) {
                    log::debug!("{}: shutdown(write): {e}", self.peer);
                }
                if self.flags.eof {
                    // Both directions are done.
                    self.abort(ctx);
                    return true;
                }
            }
        }
        true
    }
}

impl StreamCore {
    /// One `sendfile` of the first file segment (`out` is empty). `Ok(true)`: go on
    /// flushing; `Ok(false)`: the socket is full.
    fn send_file_segment(&mut self) -> io::Result<bool> {
        let Some(seg) = self.files.front_mut() else {
            return Ok(false);
        };
        if seg.remaining > 0 {
            let want = usize::try_from(seg.remaining).unwrap_or(usize::MAX);
            match file::sendfile(self.fd.as_fd(), seg.file.as_fd(), seg.offset, want) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    ))
                }
                Ok(n) => {
                    self.sent += n as u64;
                    seg.offset += n as u64;
                    seg.remaining -= n as u64;
                    self.file_pending -= n as u64;
                    // A short count usually means a full socket; the next call (EAGAIN)
                    // proves it, so an odd short count can never stall the transfer.
                    if seg.remaining > 0 {
                        return Ok(true);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
                Err(e) => return Err(e),
            }
        }
        // Region done: what was written behind it comes next.
        if let Some(seg) = self.files.pop_front() {
            self.out = seg.after;
        }
        Ok(true)
    }
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
    pub fn set_oob_inline(&mut self, on: bool) -> io::Result<()> {
        socket::set_oob_inline(self.st.fd.as_fd(), on)
    }

    /// Queues `data` for sending; it is flushed after the current event batch.
    /// Returns `false` (and drops the data) if the connection is closing or gone.
    pub fn write(&mut self, data: &[u8]) -> bool {
        self.st.queue_write(self.ctx, data)
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
        self.st.flags.drain_notify = true;
        if !self.st.flags.flush_queued {
            self.st.flags.flush_queued = true;
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
        self.st.flags.bp_paused
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
        self.st.flags.shutdown_after_flush = true;
        if !self.st.flags.flush_queued {
            self.st.flags.flush_queued = true;
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
        self.st.flags.write_shut || self.st.flags.shutdown_after_flush
    }

    /// Pending output of another connection (as [`output_len`](Self::output_len)),
    /// or `None` if it is gone, busy further up the call stack, or not a stream
    /// connection.
    pub fn output_len_of(&mut self, id: HandlerId) -> Option<usize> {
        if id == self.id() {
            return Some(self.output_len());
        }
        self.ctx
            .with_handler::<Stream, _>(id, |s, _| s.core.pending())
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
                s.core.add_producer(ctx, me);
                !s.core.flags.dead
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
                s.core.set_user_paused(ctx, pause);
                !s.core.flags.dead
            },
            || Mail::UserPause(pause),
        )
    }

    /// Whether the connection is closing or gone (further writes are dropped).
    pub fn is_closing(&self) -> bool {
        self.st.flags.closing || self.st.flags.dead
    }

    /// Sets a timer; [`Protocol::timer`] runs after `delay`. Timers still pending
    /// when the connection goes are cancelled with it.
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

    /// The reactor context (timers, other handlers, stop, backend).
    pub fn reactor(&mut self) -> &mut Ctx<'b> {
        self.ctx
    }
}

/// What a connection that was busy when another reached for it finds left for it
/// ([`Ctx::post`]); collected when its running callback returns.
enum Mail {
    Write(Vec<u8>),
    Event(Box<dyn Any>),
    /// A consumer paused (`true`) or resumed our reading.
    ConsumerPause(bool),
    /// Another connection paused or resumed our reading ([`Conn::pause_reading_of`]).
    UserPause(bool),
    /// Register this producer ([`Conn::produce_into`]).
    Producer(HandlerId),
}

/// Runs `f` on the stream connection `id` if it can be reached now; if it is busy
/// (its callback is running further up the stack: it called us, directly or not),
/// leaves `mail` for it, applied as soon as that callback returns. Returns `f`'s
/// answer, `true` for mail left, `false` if `id` is gone or not a connection.
fn reach(
    ctx: &mut Ctx<'_>,
    id: HandlerId,
    f: impl FnOnce(&mut Stream, &mut Ctx<'_>) -> bool,
    mail: impl FnOnce() -> Mail,
) -> bool {
    match ctx.with_handler::<Stream, _>(id, f) {
        Some(r) => r,
        None if ctx.is_busy(id) => ctx.post(id, Box::new(mail())),
        None => false,
    }
}

/// Pauses or resumes the reading of `producer` on behalf of a consumer.
fn pace(ctx: &mut Ctx<'_>, producer: HandlerId, pause: bool) {
    reach(
        ctx,
        producer,
        |s, ctx| {
            s.core.consumer_pause(ctx, pause);
            true
        },
        || Mail::ConsumerPause(pause),
    );
}

/// Queues `data` on the stream connection `id` from any context. Returns `false` if
/// `id` is gone, closing, or not a stream connection.
///
/// If `id` is busy (its callback is running further up the call stack: it called,
/// directly or not, the handler that writes), the bytes are kept and queued as soon
/// as that callback returns (or as soon as it writes itself, ahead of its own bytes),
/// and this returns `true`; should `id` close meanwhile they are dropped as any
/// write after a close is.
pub fn write_to(ctx: &mut Ctx<'_>, id: HandlerId, data: &[u8]) -> bool {
    reach(
        ctx,
        id,
        |s, ctx| s.core.queue_write(ctx, data),
        || Mail::Write(data.to_vec()),
    )
}

/// Delivers `event` to the stream connection `id`'s protocol ([`Protocol::event`]):
/// now, or, if `id` is busy (as for [`write_to`]), as soon as its running callback
/// returns. Returns `false` if `id` is gone or not a stream connection.
pub fn notify(ctx: &mut Ctx<'_>, id: HandlerId, event: Box<dyn Any>) -> bool {
    let mut event = Some(event);
    let delivered = ctx.with_handler::<Stream, _>(id, |s, ctx| {
        if let Some(e) = event.take() {
            if !s.core.flags.dead {
                let (proto, mut conn) = s.conn(ctx);
                proto.event(&mut conn, e);
            }
        }
        s.drain_mail(ctx);
    });
    match (delivered, event) {
        (Some(()), _) => true,
        (None, Some(e)) if ctx.is_busy(id) => ctx.post(id, Box::new(Mail::Event(e))),
        _ => false,
    }
}

impl Stream {
    /// Wraps a connected socket (made non-blocking here, if it is not already).
    /// Register it with [`Stream::register`].
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
            core: StreamCore {
                fd,
                peer: peer.clone(),
                out: OutBuf::default(),
                files: VecDeque::new(),
                file_pending: 0,
                sent: 0,
                flags: Flags::default(),
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
        self.core.guard = Some(guard);
        self
    }

    /// Counts this connection in `open` while it lives (a listener's limit).
    pub(crate) fn counted(mut self, open: Rc<Cell<usize>>) -> Stream {
        open.set(open.get() + 1);
        self.core.open = Some(open);
        self.core.exclusive = true;
        self
    }

    /// Registers the connection and calls [`Protocol::connection_made`].
    pub fn register(self, ctx: &mut Ctx<'_>) -> io::Result<HandlerId> {
        let interest = if ctx.is_edge() {
            Interest::BOTH
        } else {
            Interest::READABLE
        };
        let id = ctx.insert(Box::new(self), Some(interest))?;
        ctx.with_handler::<Stream, _>(id, |s, ctx| {
            s.core.registered = Some(interest);
            s.proto.connection_made(&mut Conn {
                st: &mut s.core,
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
        self.core.flags.connecting = true;
        let interest = if ctx.is_edge() {
            Interest::BOTH
        } else {
            Interest::WRITABLE
        };
        let id = ctx.insert(Box::new(self), Some(interest))?;
        ctx.with_handler::<Stream, _>(id, |s, ctx| {
            s.core.registered = Some(interest);
            s.core.connect_timer = Some(ctx.set_timer(timeout));
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
        let err = match socket::take_error(self.core.fd.as_fd()) {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) if failed => Some(io::Error::new(
                io::ErrorKind::NotConnected,
                "the socket hung up while connecting",
            )),
            Ok(None) => None,
        };
        if let Some(e) = err {
            let e = io::Error::new(e.kind(), format!("connect to {}: {e}", self.core.peer));
            self.core.fail(ctx, e);
            return false;
        }
        self.core.flags.connecting = false;
        if let Some(t) = self.core.connect_timer.take() {
            ctx.cancel_timer(t);
        }
        log::debug!("connected to {}", self.core.peer);
        let (proto, mut conn) = self.conn(ctx);
        proto.connection_made(&mut conn);
        if self.core.flags.dead {
            return false;
        }
        // Reading starts now; output queued before the connect goes out (and a
        // `shutdown_write` or `notify_drained` asked for meanwhile takes effect).
        self.core.update_interest(ctx);
        if !self.core.flags.flush_queued {
            self.core.flags.flush_queued = true;
            ctx.defer(ctx.id());
        }
        true
    }

    /// Applies what other connections left for this one while it was busy.
    fn drain_mail(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(m) = ctx.take_mail(ctx.id(), |_| true) {
            let Ok(m) = m.downcast::<Mail>() else {
                continue;
            };
            match *m {
                Mail::Write(data) => {
                    self.core.queue_write_now(ctx, &data);
                }
                Mail::Event(e) => {
                    if !self.core.flags.dead {
                        let (proto, mut conn) = self.conn(ctx);
                        proto.event(&mut conn, e);
                    }
                }
                Mail::ConsumerPause(p) => self.core.consumer_pause(ctx, p),
                Mail::UserPause(p) => self.core.set_user_paused(ctx, p),
                Mail::Producer(p) => self.core.add_producer(ctx, p),
            }
        }
    }

    fn conn<'a, 'b>(&'a mut self, ctx: &'a mut Ctx<'b>) -> (&'a mut dyn Protocol, Conn<'a, 'b>) {
        (
            self.proto.as_mut(),
            Conn {
                st: &mut self.core,
                ctx,
            },
        )
    }

    fn read(&mut self, ctx: &mut Ctx<'_>, r: Readiness) {
        let budget = ctx.config().event_budget;
        let mut buf = ctx.take_scratch();
        let mut reads = 0;
        // A short read proves the socket drained at that moment, so the read that
        // would only return EAGAIN is skipped: the next arrival raises a new edge.
        // Not when the peer has closed: its FIN raised no separate edge (or one we
        // consumed while paused), so read on until EOF. Backends that cannot report
        // read-closed never take the shortcut.
        let shortcut = !self.core.flags.peer_closed
            && !self.core.no_shortcut
            && (!ctx.is_edge() || ctx.capabilities().reports_read_closed);
        loop {
            let f = &self.core.flags;
            if f.eof || f.dead || (!f.lingering && (self.core.read_paused() || f.closing)) {
                break;
            }
            if reads == budget {
                if ctx.is_edge() {
                    ctx.requeue(ctx.id(), r);
                }
                break;
            }
            match socket::recv(self.core.fd.as_fd(), &mut buf) {
                Ok(0) if self.core.flags.lingering => {
                    self.core.flags.eof = true;
                    self.core.abort(ctx);
                    break;
                }
                Ok(n) if self.core.flags.lingering => {
                    log::trace!("{}: discarding {n} bytes while closing", self.core.peer);
                    reads += 1;
                }
                Ok(0) => {
                    self.core.flags.eof = true;
                    let (proto, mut conn) = self.conn(ctx);
                    let keep = proto.eof_received(&mut conn);
                    // Our write side already shut: both directions are done.
                    if keep && !self.core.flags.write_shut {
                        self.core.update_interest(ctx);
                    } else {
                        self.core.close(ctx);
                    }
                    break;
                }
                Ok(n) => {
                    reads += 1;
                    if let Some(idle) = &mut self.core.idle {
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
                    self.core.fail(ctx, e);
                    break;
                }
            }
        }
        ctx.give_scratch(buf);
        if self.core.read_paused() {
            self.core.update_interest(ctx);
        }
    }

    fn flush_and_resume(&mut self, ctx: &mut Ctx<'_>) {
        if !self.core.flush(ctx) || self.core.flags.dead {
            return;
        }
        let resumed =
            self.core.flags.bp_paused && self.core.pending() <= self.core.cfg.low_watermark;
        let drained = self.core.flags.drain_notify && !self.core.has_pending();
        if resumed || drained {
            let was_paused = self.core.read_paused();
            self.core.flags.bp_paused &= !resumed;
            self.core.flags.drain_notify &= !drained;
            if resumed {
                self.core.pace_producers(ctx, false);
            }
            let (proto, mut conn) = self.conn(ctx);
            proto.output_drained(&mut conn);
            if was_paused && !self.core.read_paused() {
                self.core.requeue_read(ctx);
            }
        }
        self.core.update_interest(ctx);
    }
}

impl Stream {
    fn on_ready(&mut self, ctx: &mut Ctx<'_>, r: Readiness) {
        if self.core.flags.connecting && !self.connect_ready(ctx, r) {
            return;
        }
        if r.is_read_closed() || r.is_hangup() || r.is_error() {
            self.core.flags.peer_closed = true;
        }
        if r.is_priority() {
            // TCP urgent data: recv stops at the mark with bytes still queued.
            self.core.no_shortcut = true;
        }
        if r.is_readable() {
            self.read(ctx, r);
        }
        if r.is_writable() && self.core.has_pending() && !self.core.flags.dead {
            self.flush_and_resume(ctx);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, id: TimerId) {
        if self.core.idle.as_ref().is_some_and(|i| i.timer == id) {
            let Some(idle) = self.core.idle.take() else {
                return;
            };
            let quiet = Instant::now().saturating_duration_since(idle.last);
            if quiet < idle.timeout {
                self.core.idle = Some(Idle {
                    timer: ctx.set_timer(idle.timeout - quiet),
                    ..idle
                });
            } else if !self.core.flags.dead {
                log::debug!("{}: idle for {quiet:?}", self.core.peer);
                let (proto, mut conn) = self.conn(ctx);
                proto.idle_timeout(&mut conn);
            }
            return;
        }
        if self.core.connect_timer == Some(id) {
            self.core.connect_timer = None;
            let e = io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect to {} timed out", self.core.peer),
            );
            self.core.fail(ctx, e);
            return;
        }
        if self.core.close_timer == Some(id) {
            CLOSE_TIMEOUT_WARN.with(|w| {
                w.warn(
                    module_path!(),
                    format_args!(
                        "{}: close timed out with {} bytes unsent; dropping",
                        self.core.peer,
                        self.core.pending()
                    ),
                )
            });
            self.core.close_timer = None;
            let unsent = self.core.pending();
            if unsent == 0 {
                // Lingering: everything was sent; the peer just never closed.
                self.core.abort(ctx);
            } else {
                self.core.fail(
                    ctx,
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("close timed out with {unsent} bytes unsent"),
                    ),
                );
            }
            return;
        }
        if !self.core.flags.dead {
            let (proto, mut conn) = self.conn(ctx);
            proto.timer(&mut conn, id);
        }
    }

    fn on_shutdown(&mut self, ctx: &mut Ctx<'_>) {
        if self.core.flags.connecting {
            let e = io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!(
                    "connect to {} abandoned: the reactor is shutting down",
                    self.core.peer
                ),
            );
            self.core.fail(ctx, e);
            return;
        }
        if !self.core.flags.dead {
            let (proto, mut conn) = self.conn(ctx);
            proto.shutdown(&mut conn);
        }
    }
}

impl Handler for Stream {
    fn fd(&self) -> RawFd {
        self.core.fd.as_raw_fd()
    }

    fn ready(&mut self, ctx: &mut Ctx<'_>, r: Readiness) {
        self.on_ready(ctx, r);
        self.drain_mail(ctx);
    }

    fn deferred(&mut self, ctx: &mut Ctx<'_>) {
        self.core.flags.flush_queued = false;
        if !self.core.flags.dead {
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
            self.core.error = Some(io::Error::other(
                "the connection's protocol panicked; connection dropped",
            ));
        }
        // Producers paused on our account go on reading (to see their own EOF, say).
        if self.core.flags.bp_paused {
            self.core.pace_producers(ctx, false);
        }
        self.core.producers.clear();
        // Not asked for by the connection (the loop stopped, or a graceful shutdown
        // ran out of time) and output left behind: not a clean close.
        if !self.core.flags.dead && self.core.error.is_none() && self.core.has_pending() {
            self.core.error = Some(io::Error::other(format!(
                "closed by the reactor with {} bytes unsent",
                self.core.pending()
            )));
        }
        self.core.flags.dead = true;
        if let Some(t) = self.core.close_timer.take() {
            ctx.cancel_timer(t);
        }
        if let Some(t) = self.core.connect_timer.take() {
            ctx.cancel_timer(t);
        }
        let err = self.core.error.take();
        if self.core.flags.connecting {
            let err = err.unwrap_or_else(|| {
                io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    format!(
                        "connect to {} abandoned: the reactor closed it",
                        self.core.peer
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
        self.core.exclusive
    }

    fn describe(&self) -> Option<String> {
        Some(format!("peer {}", self.core.peer))
    }

    fn keeps_alive(&self) -> bool {
        !self.core.flags.dead
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
