//! Calls between connections ([`write_to`](fn@write_to), [`notify`](fn@notify)) and
//! the mail that keeps them for a connection busy further up the call stack.

use std::any::Any;

use bytes::Bytes;

use super::handler::Stream;
use super::output::Data;
#[cfg(doc)]
use super::Protocol;
use crate::reactor::{Ctx, HandlerId};

/// What a connection that was busy when another reached for it finds left for it
/// ([`Ctx::post`]); collected when its running callback returns.
pub(super) enum Mail {
    /// Bytes to queue (a copy of a slice written, or a shared chunk).
    Write(Bytes),
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
pub(super) fn reach(
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
pub(super) fn pace(ctx: &mut Ctx<'_>, producer: HandlerId, pause: bool) {
    reach(
        ctx,
        producer,
        |s, ctx| {
            s.transport.consumer_pause(ctx, pause);
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
        |s, ctx| s.transport.queue_write(ctx, Data::Copy(data)),
        || Mail::Write(Bytes::copy_from_slice(data)),
    )
}

/// Queues the shared chunk `data` on the stream connection `id` by reference (no
/// copy: the connection holds a reference count until the bytes are sent; a chunk of
/// at most 1 KiB is copied, which measured cheaper), as
/// [`write_to`](fn@write_to) does with a copy; the same rules for a busy `id` apply.
/// `data.len()` counts in full against `id`'s [`max_output`] however many
/// connections share it. Returns `false` if `id` is gone, closing, or not a stream
/// connection.
///
/// [`max_output`]: super::StreamConfig::max_output
///
/// # Examples
///
/// Render once, queue everywhere:
///
/// ```no_run
/// use bytes::Bytes;
/// use readyloop::net::write_shared_to;
/// use readyloop::reactor::{Ctx, HandlerId};
///
/// fn broadcast(ctx: &mut Ctx<'_>, members: &[HandlerId], text: &str) {
///     let line = Bytes::from(format!("{text}\r\n"));
///     for &id in members {
///         write_shared_to(ctx, id, &line);
///     }
/// }
/// ```
pub fn write_shared_to(ctx: &mut Ctx<'_>, id: HandlerId, data: &Bytes) -> bool {
    reach(
        ctx,
        id,
        |s, ctx| s.transport.queue_write(ctx, Data::Shared(data)),
        || Mail::Write(data.clone()),
    )
}

/// Delivers `event` to the stream connection `id`'s protocol ([`Protocol::event`]):
/// now, or, if `id` is busy (as for [`write_to`]), as soon as its running callback
/// returns. Returns `false` if `id` is gone or not a stream connection.
pub fn notify(ctx: &mut Ctx<'_>, id: HandlerId, event: Box<dyn Any>) -> bool {
    let mut event = Some(event);
    let delivered = ctx.with_handler::<Stream, _>(id, |s, ctx| {
        if let Some(e) = event.take() {
            if !s.transport.state.is_closed() {
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
