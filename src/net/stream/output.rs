//! The output side of a stream connection: queueing bytes (copied or shared) and file
//! regions, backpressure, and the flush (one gathered `sendmsg` of the pending chunks,
//! `sendfile`).

use std::fs::File;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::Duration;

use super::mail::Mail;
use super::phase::WriteSide;
use super::state::StreamTransport;
use crate::net::buffer::OutBuf;
use crate::net::ratelimit::WarnLimit;
use crate::reactor::Ctx;
use crate::sys::file;
use crate::sys::socket;
use bytes::Bytes;

thread_local! {
    /// Warnings a peer causes at will (stop reading, open many connections): rate
    /// limited per reactor thread, so one client cannot fill the log.
    static OUTPUT_LIMIT_WARN: WarnLimit = const { WarnLimit::new(Duration::from_secs(1)) };
}

/// A file region queued with [`Conn::send_file`], and the bytes written after it.
pub(super) struct FileSegment {
    pub(super) file: Rc<File>,
    pub(super) offset: u64,
    pub(super) remaining: u64,
    /// Output queued behind this file (sent once the region is done).
    pub(super) after: OutBuf,
}

/// Bytes to queue: a slice to copy, or a shared chunk to queue by reference.
pub(super) enum Data<'d> {
    Copy(&'d [u8]),
    Shared(&'d Bytes),
}

impl Data<'_> {
    fn len(&self) -> usize {
        match self {
            Data::Copy(d) => d.len(),
            Data::Shared(b) => b.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl StreamTransport {
    pub(super) fn queue_write(&mut self, ctx: &mut Ctx<'_>, data: Data<'_>) -> bool {
        // Writes other connections left for us while we were busy go first: they
        // were asked for earlier.
        while let Some(m) = ctx.take_mail(ctx.id(), |m| {
            matches!(m.downcast_ref::<Mail>(), Some(Mail::Write(_)))
        }) {
            if let Ok(m) = m.downcast::<Mail>() {
                if let Mail::Write(early) = *m {
                    self.queue_write_now(ctx, Data::Shared(&early));
                }
            }
        }
        self.queue_write_now(ctx, data)
    }

    pub(super) fn queue_write_now(&mut self, ctx: &mut Ctx<'_>, data: Data<'_>) -> bool {
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
        let buf = match self.files.back_mut() {
            Some(seg) => &mut seg.after,
            None => &mut self.out,
        };
        match data {
            Data::Copy(d) => buf.extend(d),
            // Counted at its full length here, whoever else holds it: the limit below
            // is exact per connection.
            Data::Shared(b) => buf.push_shared(b),
        }
        if let Some(max) = self.cfg.max_output {
            // Over the limit before the end-of-batch flush: offer the backlog to the
            // socket first, so a peer that keeps reading is not taken for one that
            // stopped (one read of a chat sender can queue more than the limit).
            if self.buffered() > max {
                if !self.flush(ctx) {
                    return false;
                }
                if self.state.is_closed() {
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

    pub(super) fn queue_file(
        &mut self,
        ctx: &mut Ctx<'_>,
        file: Rc<File>,
        offset: u64,
        len: u64,
    ) -> bool {
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
        if !self.state.bp_paused && self.pending() > self.cfg.high_watermark {
            log::trace!(
                "{}: output {} > high watermark, pausing reads",
                self.peer,
                self.pending()
            );
            self.state.bp_paused = true;
            self.pace_producers(ctx, true);
        }
        if !self.state.flush_queued {
            self.state.flush_queued = true;
            ctx.defer(ctx.id());
        }
    }

    /// Writes as much pending output as the socket takes. Returns `false` if the
    /// connection failed.
    pub(super) fn flush(&mut self, ctx: &mut Ctx<'_>) -> bool {
        if self.state.is_connecting() {
            // Output queued before the connect completed waits for it.
            return true;
        }
        while !self.state.is_closed() {
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
            // Bytes right before a file region (an HTTP head before its body): let
            // them leave with the region's first bytes, not in a small segment alone.
            // The region is non-empty, so its `sendfile` (no `MSG_MORE`) follows and
            // pushes; were the socket full, the ACKs that free it send the rest.
            let more = self.files.front().is_some_and(|s| s.remaining > 0);
            // The backlog (up to IOV_MAX chunks) in one gathered send.
            let fd = self.fd.as_fd();
            match self
                .out
                .write_with(|iov| socket::send_vectored(fd, iov, more))
            {
                Ok((n, offered)) => {
                    self.sent += n as u64;
                    if n < offered {
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
            if self.state.is_closing() {
                self.finish_close(ctx);
                return true;
            }
            if self.state.write == WriteSide::ShutAfterFlush {
                self.state.write = WriteSide::Shut;
                if let Err(e) = socket::shutdown(self.fd.as_fd(), Shutdown::Write) {
                    log::debug!("{}: shutdown(write): {e}", self.peer);
                }
                if self.state.eof {
                    // Both directions are done.
                    self.abort(ctx);
                    return true;
                }
            }
        }
        true
    }
}

impl StreamTransport {
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
