//! The stream state machine: a connection's state other than its protocol
//! ([`StreamTransport`]: its [`State`], timers, producers), its read interest, pausing, and
//! closing (graceful close, lingering, abort).

use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::mail::pace;
use super::output::FileSegment;
use super::phase::{Phase, State, WriteSide};
use super::StreamConfig;
use crate::net::buffer::OutBuf;
use crate::reactor::{Ctx, HandlerId, TimerId};
use crate::selector::{Interest, Readiness};
use crate::sys::socket::{self, PeerAddr};

/// A connection without its protocol, what Twisted calls the transport: the socket,
/// the output buffer, the state and the timers (split from the protocol so the
/// protocol can be called with a [`Conn`] that borrows the rest).
pub struct StreamTransport {
    pub(super) fd: OwnedFd,
    pub(super) peer: PeerAddr,
    pub(super) out: OutBuf,
    /// File regions (and the bytes behind each), sent after `out`; usually empty.
    pub(super) files: VecDeque<FileSegment>,
    /// Sum of the files' remaining bytes.
    pub(super) file_pending: u64,
    /// Bytes handed to the kernel so far (`send` and `sendfile`).
    pub(super) sent: u64,
    pub(super) state: State,
    pub(super) registered: Option<Interest>,
    pub(super) close_timer: Option<TimerId>,
    /// The connect timeout of an outgoing connection still connecting.
    pub(super) connect_timer: Option<TimerId>,
    /// The idle timeout ([`Conn::set_idle_timeout`]), if armed.
    pub(super) idle: Option<Idle>,
    pub(super) error: Option<io::Error>,
    pub(super) cfg: Rc<StreamConfig>,
    /// Connections that produce into this one ([`Conn::produce_into`]): paused while
    /// our output is above the high watermark.
    pub(super) producers: Vec<HandlerId>,
    pub(super) open: Option<Rc<Cell<usize>>>,
    /// Dropped with the connection (a reactor pool's global connection count).
    pub(super) guard: Option<Box<dyn Any>>,
    /// The descriptor came from our own `accept4` and was never duplicated, so the
    /// reactor may skip `epoll_ctl(DEL)` before closing it. False for sockets handed
    /// in through [`Stream::new`]: the caller may hold a `try_clone`, and a closed
    /// but still-open-elsewhere file stays in a level-triggered epoll set forever.
    pub(super) exclusive: bool,
    /// Not a plain TCP byte stream (Unix: SCM_RIGHTS/credential boundaries end a read
    /// early), or TCP urgent data was seen: a short read does not prove the socket
    /// drained, so the edge-triggered shortcut is off.
    pub(super) no_shortcut: bool,
}

impl Drop for StreamTransport {
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
pub(super) struct Idle {
    pub(super) timeout: Duration,
    pub(super) timer: TimerId,
    /// When input last arrived (or the timeout was set or reset).
    pub(super) last: Instant,
}

impl StreamTransport {
    /// Whether anything (bytes or file regions) waits to be sent.
    pub(super) fn has_pending(&self) -> bool {
        !self.out.is_empty() || !self.files.is_empty()
    }

    /// Bytes held in memory for sending (the `max_output` limit applies to these).
    pub(super) fn buffered(&self) -> usize {
        self.out.len() + self.files.iter().map(|f| f.after.len()).sum::<usize>()
    }

    /// Everything waiting to be sent, file regions included (the watermarks apply).
    pub(super) fn pending(&self) -> usize {
        let files = usize::try_from(self.file_pending).unwrap_or(usize::MAX);
        self.buffered().saturating_add(files)
    }

    fn want(&self) -> Option<Interest> {
        if self.state.is_connecting() {
            return Some(Interest::WRITABLE);
        }
        let read = self.reads();
        let write = self.has_pending() && self.state.write != WriteSide::Shut;
        match (read, write) {
            (true, true) => Some(Interest::BOTH),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        }
    }

    /// Whether the connection reads now: not at EOF nor closed, and lingering
    /// (reading to discard) or up and not paused.
    pub(super) fn reads(&self) -> bool {
        let s = &self.state;
        !s.eof
            && match s.phase {
                Phase::Lingering => true,
                Phase::Connecting | Phase::Open => !self.read_paused(),
                Phase::Closing | Phase::Closed { .. } => false,
            }
    }

    /// Whether reading is paused: by the protocol, by a consumer, or by our own
    /// output above the high watermark (unless opted out, or producers are paced
    /// instead).
    pub(super) fn read_paused(&self) -> bool {
        let f = &self.state;
        f.user_paused
            || f.consumer_pauses > 0
            || (f.bp_paused && self.cfg.pause_reading_on_backpressure && self.producers.is_empty())
    }

    /// Edge-triggered: edges that arrived while reading was paused were consumed
    /// unread; redeliver one.
    pub(super) fn requeue_read(&self, ctx: &mut Ctx<'_>) {
        if ctx.is_edge() && !self.state.is_closed() {
            ctx.requeue(ctx.id(), Readiness::READABLE);
        }
    }

    /// Pauses or resumes reading at the protocol's request (this connection's or,
    /// through [`Conn::pause_reading_of`], another's).
    pub(super) fn set_user_paused(&mut self, ctx: &mut Ctx<'_>, pause: bool) {
        if self.state.user_paused == pause {
            return;
        }
        self.state.user_paused = pause;
        self.update_interest(ctx);
        if !pause {
            self.requeue_read(ctx);
        }
    }

    /// A consumer we produce into crossed its high watermark (`pause`) or drained.
    pub(super) fn consumer_pause(&mut self, ctx: &mut Ctx<'_>, pause: bool) {
        if pause {
            self.state.consumer_pauses += 1;
        } else if self.state.consumer_pauses > 0 {
            self.state.consumer_pauses -= 1;
            if self.state.consumer_pauses == 0 {
                self.update_interest(ctx);
                self.requeue_read(ctx);
            }
            return;
        }
        self.update_interest(ctx);
    }

    /// Registers `producer` (its reading is paced by our output level).
    pub(super) fn add_producer(&mut self, ctx: &mut Ctx<'_>, producer: HandlerId) {
        if self.state.is_closed() || self.producers.contains(&producer) {
            return;
        }
        let was_paused = self.read_paused();
        self.producers.push(producer);
        if self.state.bp_paused {
            pace(ctx, producer, true);
        }
        if was_paused && !self.read_paused() {
            // The self-pause is off now that a producer is paced instead.
            self.update_interest(ctx);
            self.requeue_read(ctx);
        }
    }

    /// Pauses (or resumes) every registered producer.
    pub(super) fn pace_producers(&mut self, ctx: &mut Ctx<'_>, pause: bool) {
        for i in 0..self.producers.len() {
            pace(ctx, self.producers[i], pause);
        }
    }

    /// Level-triggered: make the kernel interest match the state. Edge-triggered:
    /// registered for both once, nothing to do.
    pub(super) fn update_interest(&mut self, ctx: &mut Ctx<'_>) {
        if ctx.is_edge() || self.state.is_closed() {
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
    pub(super) fn refuses_output(&self) -> bool {
        let s = &self.state;
        s.is_closed() || s.is_closing() || s.is_write_shut()
    }

    pub(super) fn fail(&mut self, ctx: &mut Ctx<'_>, e: io::Error) {
        if self.state.is_closed() {
            return;
        }
        log::debug!("{}: connection error: {e}", self.peer);
        self.error = Some(e);
        self.abort(ctx);
    }

    pub(super) fn abort(&mut self, ctx: &mut Ctx<'_>) {
        self.state.set_closed();
        ctx.remove(ctx.id());
    }

    pub(super) fn close(&mut self, ctx: &mut Ctx<'_>) {
        if self.state.is_closed() || self.state.is_closing() {
            return;
        }
        if self.state.is_connecting() {
            self.fail(
                ctx,
                io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "closed before the connection was made",
                ),
            );
            return;
        }
        self.state.phase = Phase::Closing;
        if !self.has_pending() {
            self.finish_close(ctx);
        } else {
            self.close_timer = Some(ctx.set_timer(self.cfg.close_timeout));
            self.update_interest(ctx);
        }
    }

    /// The output of a closing connection is all sent: close now if the peer has
    /// closed too, else linger (FIN, then discard input until EOF or the timeout).
    pub(super) fn finish_close(&mut self, ctx: &mut Ctx<'_>) {
        if self.state.eof || self.state.is_lingering() {
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
        self.state.phase = Phase::Lingering;
        if self.state.write != WriteSide::Shut {
            self.state.write = WriteSide::Shut;
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
            ctx.requeue(ctx.id(), Readiness::READABLE);
        }
    }
}
