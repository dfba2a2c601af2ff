//! UDP sockets on the reactor.
//!
//! [`DatagramSocket`] is the handler for one bound socket; its protocol
//! ([`DatagramProtocol`]) sees datagrams, timers and events. Sockets are usually bound
//! through [`Listen::bind_udp`](super::Listen::bind_udp), or
//! [`Listen::bind_udp_with`](super::Listen::bind_udp_with) and [`udp_socket`] with a
//! [`UdpConfig`] for broadcast (`SO_BROADCAST`) and shared ports (`SO_REUSEADDR`). A
//! protocol may open more sockets from its callbacks (`dg.reactor()` is a
//! [`Ctx`], which implements `Listen`): the TFTP server opens one per transfer.

use std::any::Any;
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use crate::reactor::{Ctx, Handler, HandlerId, PanicPolicy, TimerId};
use crate::selector::{Interest, Readiness};
use crate::sys::stats::{self, Syscall};

/// How a UDP socket is set up before it is bound ([`udp_socket`],
/// [`Listen::bind_udp_with`](super::Listen::bind_udp_with)).
///
/// # Examples
///
/// Two sockets sharing one port (`reuse_addr`), allowed to send broadcasts:
///
/// ```
/// use readyloop::net::{udp_socket, UdpConfig};
///
/// let cfg = UdpConfig { broadcast: true, reuse_addr: true };
/// let a = udp_socket("127.0.0.1:0".parse().unwrap(), cfg)?;
/// let b = udp_socket(a.local_addr()?, cfg)?; // same port: SO_REUSEADDR on both
/// assert_eq!(a.local_addr()?, b.local_addr()?);
/// assert!(a.broadcast()?);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpConfig {
    /// `SO_BROADCAST`: may send to broadcast addresses (`255.255.255.255`, a subnet's
    /// broadcast address, `127.255.255.255` on loopback).
    pub broadcast: bool,
    /// `SO_REUSEADDR`: several sockets may bind the same address and port, and each
    /// gets a copy of every broadcast datagram (several discovery servers on one
    /// host). Unicast datagrams go to one of them only.
    pub reuse_addr: bool,
}

/// A bound, non-blocking UDP socket set up per `cfg`. To receive broadcasts, bind the
/// wildcard address (`0.0.0.0:PORT`): a socket bound to a unicast address does not
/// see datagrams sent to the broadcast address.
///
/// # Errors
///
/// The socket cannot be made (out of descriptors), a socket option of `cfg` is
/// refused, or `bind` fails (`AddrInUse` without `reuse_addr` on both sockets,
/// `AddrNotAvailable`, `PermissionDenied`).
pub fn udp_socket(addr: SocketAddr, cfg: UdpConfig) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if cfg.reuse_addr {
        sock.set_reuse_address(true)?;
    }
    if cfg.broadcast {
        sock.set_broadcast(true)?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    Ok(sock.into())
}

/// A protocol over datagrams. All methods but `datagram_received` have defaults.
///
/// # Examples
///
/// A UDP echo server; the loop runs until a client got its answer back.
///
/// ```
/// use std::net::{SocketAddr, UdpSocket};
/// use std::time::Duration;
/// use readyloop::net::{Datagrams, DatagramProtocol, Listen};
/// use readyloop::reactor::Reactor;
/// use readyloop::selector::Backend;
///
/// struct UdpEcho;
/// impl DatagramProtocol for UdpEcho {
///     fn datagram_received(&mut self, dg: &mut Datagrams<'_, '_>, data: &[u8], from: SocketAddr) {
///         dg.send_to(data, from);
///     }
/// }
///
/// let mut reactor = Reactor::new(Backend::Poll)?;
/// let (_, addr) = reactor.bind_udp("127.0.0.1:0", UdpEcho)?;
/// let client = UdpSocket::bind("127.0.0.1:0")?;
/// client.send_to(b"ping", addr)?;
/// client.set_nonblocking(true)?;
/// let mut buf = [0; 16];
/// let mut got = None;
/// for _ in 0..100 {
///     reactor.run_once(Some(Duration::from_millis(50)))?;
///     if let Ok((n, _)) = client.recv_from(&mut buf) {
///         got = Some(buf[..n].to_vec());
///         break;
///     }
/// }
/// assert_eq!(got.as_deref(), Some(&b"ping"[..]));
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait DatagramProtocol {
    /// The socket is registered.
    fn started(&mut self, _dg: &mut Datagrams<'_, '_>) {}
    /// A datagram arrived from `from`.
    fn datagram_received(&mut self, dg: &mut Datagrams<'_, '_>, data: &[u8], from: SocketAddr);
    /// A timer set with [`Datagrams::set_timer`] fired.
    fn timer(&mut self, _dg: &mut Datagrams<'_, '_>, _id: TimerId) {}
    /// The socket is closing (reactor shutdown or stop).
    fn stopped(&mut self, _dg: &mut Datagrams<'_, '_>) {}
}

/// Most datagrams queued while the socket's send buffer is full; beyond, new ones are
/// dropped (UDP promises no delivery; memory stays bounded).
const MAX_QUEUED: usize = 1024;

/// A UDP socket without its protocol (Twisted's transport): the socket and the
/// queue of datagrams waiting for room in the send buffer.
pub struct DatagramTransport {
    sock: UdpSocket,
    queue: VecDeque<(SocketAddr, Vec<u8>)>,
    registered: Interest,
    dropped: u64,
}

/// The handler for one UDP socket.
pub struct DatagramSocket {
    transport: DatagramTransport,
    proto: Box<dyn DatagramProtocol>,
}

/// What a datagram protocol sees of its socket and the reactor.
pub struct Datagrams<'a, 'b> {
    transport: &'a mut DatagramTransport,
    ctx: &'a mut Ctx<'b>,
}

impl DatagramTransport {
    fn send_to(&mut self, ctx: &mut Ctx<'_>, data: &[u8], to: SocketAddr) -> bool {
        if self.queue.is_empty() {
            stats::count(Syscall::Write);
            match self.sock.send_to(data, to) {
                Ok(_) => return true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    log::debug!("udp send_to {to}: {e}");
                    return false;
                }
            }
        }
        if self.queue.len() >= MAX_QUEUED {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                log::warn!("udp: send queue full; {} datagrams dropped", self.dropped);
            }
            return false;
        }
        self.queue.push_back((to, data.to_vec()));
        self.update_interest(ctx);
        true
    }

    fn drain(&mut self, ctx: &mut Ctx<'_>) {
        while let Some((to, data)) = self.queue.front() {
            stats::count(Syscall::Write);
            match self.sock.send_to(data, *to) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => log::debug!("udp send_to {to}: {e}"),
            }
            self.queue.pop_front();
        }
        self.update_interest(ctx);
    }

    fn update_interest(&mut self, ctx: &mut Ctx<'_>) {
        if ctx.is_edge() {
            return;
        }
        let want = if self.queue.is_empty() {
            Interest::READABLE
        } else {
            Interest::BOTH
        };
        if want != self.registered {
            match ctx.set_interest(ctx.id(), Some(want)) {
                Ok(_) => self.registered = want,
                Err(e) => log::error!("udp: set interest: {e}"),
            }
        }
    }
}

impl<'a, 'b> Datagrams<'a, 'b> {
    /// This socket's handler id.
    pub fn id(&self) -> HandlerId {
        self.ctx.id()
    }

    /// The socket's local address.
    ///
    /// # Errors
    ///
    /// `getsockname` failed (the kernel reports no error for a bound socket in
    /// practice).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.transport.sock.local_addr()
    }

    /// Sends (or queues, if the socket is full) one datagram. Returns `false` if it
    /// was dropped.
    pub fn send_to(&mut self, data: &[u8], to: SocketAddr) -> bool {
        self.transport.send_to(self.ctx, data, to)
    }

    /// Queues `data` on a stream connection (for protocols that bridge UDP and TCP).
    pub fn write_to(&mut self, id: HandlerId, data: &[u8]) -> bool {
        super::stream::write_to(self.ctx, id, data)
    }

    /// Sets a timer; [`DatagramProtocol::timer`] runs after `delay`.
    pub fn set_timer(&mut self, delay: Duration) -> TimerId {
        self.ctx.set_timer(delay)
    }

    /// Cancels a timer.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.ctx.cancel_timer(id)
    }

    /// The reactor context.
    pub fn reactor(&mut self) -> &mut Ctx<'b> {
        self.ctx
    }
}

/// Sends a datagram through the UDP socket handler `id` from any context.
pub fn send_via(ctx: &mut Ctx<'_>, id: HandlerId, data: &[u8], to: SocketAddr) -> bool {
    ctx.with_handler::<DatagramSocket, _>(id, |s, ctx| s.transport.send_to(ctx, data, to))
        .unwrap_or(false)
}

impl DatagramSocket {
    /// Wraps a bound socket (made non-blocking here).
    ///
    /// # Errors
    ///
    /// Making the socket non-blocking failed (`fcntl`).
    pub fn new(sock: UdpSocket, proto: Box<dyn DatagramProtocol>) -> io::Result<DatagramSocket> {
        sock.set_nonblocking(true)?;
        Ok(DatagramSocket {
            transport: DatagramTransport {
                sock,
                queue: VecDeque::new(),
                registered: Interest::READABLE,
                dropped: 0,
            },
            proto,
        })
    }

    /// Registers the socket and calls [`DatagramProtocol::started`].
    ///
    /// # Errors
    ///
    /// The backend refuses the descriptor (`select`: at or above `FD_SETSIZE`; an
    /// `epoll_ctl` error). The handler is dropped without a callback then.
    pub fn register(self, ctx: &mut Ctx<'_>) -> io::Result<HandlerId> {
        let interest = if ctx.is_edge() {
            Interest::BOTH
        } else {
            Interest::READABLE
        };
        let id = ctx.insert(Box::new(self), Some(interest))?;
        ctx.with_handler::<DatagramSocket, _>(id, |s, ctx| {
            s.transport.registered = interest;
            s.proto.started(&mut Datagrams {
                transport: &mut s.transport,
                ctx,
            });
        });
        Ok(id)
    }
}

/// Whether the reactor contains panics ([`PanicPolicy::Contain`]).
fn ctx_contains(ctx: &Ctx<'_>) -> bool {
    ctx.config().panic_policy == PanicPolicy::Contain
}

impl Handler for DatagramSocket {
    fn fd(&self) -> RawFd {
        self.transport.sock.as_raw_fd()
    }

    fn ready(&mut self, ctx: &mut Ctx<'_>, r: Readiness) {
        if r.is_writable() && !self.transport.queue.is_empty() {
            self.transport.drain(ctx);
        }
        if !r.is_readable() {
            return;
        }
        let budget = ctx.config().event_budget.saturating_mul(4);
        let mut buf = super::readbuf::take();
        let mut n = 0;
        loop {
            if n == budget {
                if ctx.is_edge() {
                    ctx.requeue(ctx.id(), r);
                }
                break;
            }
            stats::count(Syscall::Read);
            match self.transport.sock.recv_from(&mut buf) {
                Ok((len, from)) => {
                    n += 1;
                    let contain = ctx_contains(ctx);
                    let mut call = || {
                        self.proto.datagram_received(
                            &mut Datagrams {
                                transport: &mut self.transport,
                                ctx,
                            },
                            &buf[..len],
                            from,
                        )
                    };
                    if contain {
                        // One datagram's failure must not take the socket (every
                        // peer's service) with it: drop that datagram only.
                        if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call))
                        {
                            ctx.contained_panic(&*p, &format!("datagram from {from}"));
                        }
                    } else {
                        call();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    stats::count(Syscall::WouldBlock);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ICMP errors (e.g. port unreachable from an earlier send) surface
                    // here; they concern one peer, not the socket.
                    log::debug!("udp recv_from: {e}");
                    n += 1;
                }
            }
        }
        super::readbuf::give(buf);
    }

    fn timer(&mut self, ctx: &mut Ctx<'_>, id: TimerId) {
        self.proto.timer(
            &mut Datagrams {
                transport: &mut self.transport,
                ctx,
            },
            id,
        );
    }

    fn removed(&mut self, ctx: &mut Ctx<'_>) {
        self.proto.stopped(&mut Datagrams {
            transport: &mut self.transport,
            ctx,
        });
        self.transport.drain(ctx);
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
