//! What a stream connection drives: the [`Protocol`] trait (Twisted's shape) and the
//! per-connection settings ([`StreamConfig`]).

use std::any::Any;
use std::io;
use std::time::Duration;

use super::Conn;
use crate::reactor::TimerId;

/// Per-connection settings.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// Stop reading when this many bytes wait to be written.
    pub high_watermark: usize,
    /// Resume reading when the pending output falls to this.
    pub low_watermark: usize,
    /// Drop the connection (logged) if pending output exceeds this; `None`: no limit
    /// beyond backpressure. Protocols that write without reading (chat fan-out) set it.
    /// It counts the bytes queued in user space, not those the kernel already took: a
    /// peer that stops reading first fills the socket's send buffer (on loopback Linux
    /// autotunes it up to `net.ipv4.tcp_wmem`'s maximum, several MiB), and only then
    /// does the queue here grow towards this limit.
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
///
/// # Examples
///
/// A server that greets, counts what the client sends until it half-closes, answers
/// with the count, and closes; the last connection's `connection_lost` stops the
/// loop.
///
/// ```
/// use std::io::{self, Read, Write};
/// use std::net::{Shutdown, SocketAddr, TcpStream};
/// use std::time::Duration;
/// use readyloop::net::{Conn, Listen, Protocol};
/// use readyloop::reactor::Reactor;
/// use readyloop::selector::Backend;
///
/// #[derive(Default)]
/// struct Count(usize);
///
/// impl Protocol for Count {
///     fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
///         conn.write(b"send bytes, then shut your write side\n");
///     }
///     fn data_received(&mut self, _conn: &mut Conn<'_, '_>, data: &[u8]) {
///         self.0 += data.len(); // `data` is only valid during the call
///     }
///     fn eof_received(&mut self, conn: &mut Conn<'_, '_>) -> bool {
///         conn.write(format!("{} bytes\n", self.0).as_bytes());
///         false // flush what is queued, then close
///     }
///     fn connection_lost(&mut self, conn: &mut Conn<'_, '_>, reason: Option<&io::Error>) {
///         assert!(reason.is_none(), "a clean close");
///         conn.stop_reactor();
///     }
/// }
///
/// let mut reactor = Reactor::new(Backend::Epoll)?;
/// let (_, addr) = reactor.listen_tcp("127.0.0.1:0", |_| Some(Box::new(Count::default())))?;
///
/// fn client(addr: SocketAddr) -> io::Result<String> {
///     let mut c = TcpStream::connect(addr)?;
///     c.set_read_timeout(Some(Duration::from_secs(5)))?;
///     c.write_all(b"hello, ")?;
///     c.write_all(b"world")?;
///     c.shutdown(Shutdown::Write)?;
///     let mut all = String::new();
///     c.read_to_string(&mut all)?;
///     Ok(all)
/// }
/// let handle = reactor.handle();
/// let t = std::thread::spawn(move || {
///     let got = client(addr);
///     let _ = handle.stop(); // in case the server never saw the client
///     got
/// });
/// reactor.run()?;
/// let got = t.join().expect("client thread")?;
/// assert_eq!(got, "send bytes, then shut your write side\n12 bytes\n");
/// # Ok::<(), io::Error>(())
/// ```
pub trait Protocol {
    /// The connection is up. For an outgoing connection ([`Listen::connect_tcp`](crate::net::Listen::connect_tcp))
    /// this is when the connect completed, never before.
    fn connection_made(&mut self, _conn: &mut Conn<'_, '_>) {}

    /// An outgoing connection could not be made (refused, unreachable, timed out,
    /// or abandoned because the reactor shut down), as Twisted's
    /// `clientConnectionFailed`. Neither `connection_made` nor `connection_lost` is
    /// called for it; the connection is gone, writes are ignored, but `conn` can
    /// still reach other handlers ([`Conn::write_to`], [`Conn::remove_handler`]:
    /// close the client of a relay, say).
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
/// `impl Protocol` is expected, e.g. to [`Listen::connect_tcp`](crate::net::Listen::connect_tcp)).
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
