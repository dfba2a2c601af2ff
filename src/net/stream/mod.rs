//! A buffered stream connection (TCP or Unix) driving a [`Protocol`].
//!
//! * Input: read into the thread's shared read buffer (`net::readbuf`) and handed to
//!   [`Protocol::data_received`]; nothing is kept per connection.
//! * Output: [`Conn::write`] copies into the connection's [`OutBuf`],
//!   [`Conn::write_shared`] queues a shared [`Bytes`](bytes::Bytes) chunk by reference
//!   (render once, queue on many connections); either asks for one flush after the
//!   event batch, which hands the whole backlog (up to `IOV_MAX`, 1024 chunks) to one
//!   gathered `sendmsg`, so many writes in one batch cost one syscall.
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

mod conn;
mod handler;
mod mail;
mod output;
mod phase;
mod protocol;
mod state;

pub use conn::Conn;
pub use handler::Stream;
pub use mail::{notify, write_shared_to, write_to};
pub use protocol::{Protocol, StreamConfig};
