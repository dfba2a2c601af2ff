//! Networking on the reactor: listeners (TCP and Unix), buffered stream connections,
//! UDP sockets. Protocols plug in through [`Protocol`] (streams) and
//! [`DatagramProtocol`] (UDP) and never touch a descriptor.
//!
//! # Examples
//!
//! ```
//! use readyloop::net::{Conn, Listen, Protocol};
//! use readyloop::reactor::Reactor;
//! use readyloop::selector::Backend;
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
//!         conn.write(data);
//!     }
//! }
//!
//! let mut reactor = Reactor::new(Backend::Epoll)?;
//! let (_, addr) = reactor.listen_tcp("127.0.0.1:0", |_| Some(Box::new(Echo)))?;
//! assert_ne!(addr.port(), 0);
//! # Ok::<(), std::io::Error>(())
//! ```

mod buffer;
mod listener;
mod multi;
mod ratelimit;
mod readbuf;
mod stream;
mod udp;

pub use crate::sys::socket::PeerAddr;
pub use buffer::OutBuf;
pub use listener::{Factory, ListenConfig, Listener};
pub use multi::{AcceptStrategy, PoolListener, UnknownStrategy};
pub use ratelimit::WarnLimit;
pub use readbuf::READ_BUFFER_SIZE;
pub use stream::{notify, write_shared_to, write_to, Conn, Protocol, Stream, StreamConfig};
pub use udp::{send_via, udp_socket, DatagramProtocol, DatagramSocket, Datagrams, UdpConfig};

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use crate::reactor::{Ctx, HandlerId, Reactor};
use crate::selector::Interest;

/// Opening listeners, outgoing connections and sockets on a [`Reactor`] or from
/// inside a handler ([`Ctx`]). A protocol opens outgoing connections with
/// [`Conn::connect_tcp`].
///
/// # Examples
///
/// A TCP echo server and a UDP socket on one reactor, opened before it runs; a
/// protocol connects from its callbacks with `conn.connect_tcp(..)` the same way.
///
/// ```
/// use std::net::SocketAddr;
/// use readyloop::net::{Datagrams, DatagramProtocol, Listen};
/// use readyloop::proto::echo::{Echo, EchoOptions};
/// use readyloop::reactor::Reactor;
/// use readyloop::selector::Backend;
///
/// struct Ignore;
/// impl DatagramProtocol for Ignore {
///     fn datagram_received(&mut self, _: &mut Datagrams<'_, '_>, _: &[u8], _: SocketAddr) {}
/// }
///
/// let mut reactor = Reactor::new(Backend::EpollEt)?;
/// let (_, tcp) = reactor.listen_tcp("127.0.0.1:0", Echo::factory(EchoOptions::default()))?;
/// let (_, udp) = reactor.bind_udp("127.0.0.1:0", Ignore)?;
/// assert!(tcp.port() != 0 && udp.port() != 0);
/// assert_eq!(reactor.handler_count(), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Listen {
    /// Runs `f` with a reactor context.
    fn with_net<R>(&mut self, f: impl FnOnce(&mut Ctx<'_>) -> R) -> R;

    /// Listens on TCP `addr` (port 0 picks a free port) with default settings.
    /// Returns the handler id and the bound address.
    ///
    /// # Errors
    ///
    /// `addr` does not resolve (or resolves to nothing: `InvalidInput`), `bind`
    /// fails for every address it resolves to (`AddrInUse`, `PermissionDenied` for a
    /// privileged port, ...; the message names the addresses), `listen` fails, or
    /// the backend refuses the descriptor (`select`: descriptor at or above
    /// `FD_SETSIZE`).
    ///
    /// # Examples
    ///
    /// An echo server on a free port, one client, then the loop runs until the
    /// client has its answer.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::time::Duration;
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
    /// let mut reactor = Reactor::new(Backend::Epoll)?;
    /// let (_, addr) = reactor.listen_tcp("127.0.0.1:0", |_| Some(Box::new(Echo)))?;
    /// let mut client = std::net::TcpStream::connect(addr)?;
    /// client.write_all(b"ping")?;
    /// client.set_nonblocking(true)?;
    /// let mut got = Vec::new();
    /// for _ in 0..100 {
    ///     reactor.run_once(Some(Duration::from_millis(50)))?;
    ///     let mut buf = [0; 16];
    ///     match client.read(&mut buf) {
    ///         Ok(n) => got.extend_from_slice(&buf[..n]),
    ///         Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
    ///         Err(e) => return Err(e),
    ///     }
    ///     if got.len() >= 4 {
    ///         break;
    ///     }
    /// }
    /// assert_eq!(got, b"ping");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn listen_tcp(
        &mut self,
        addr: impl ToSocketAddrs,
        factory: impl Factory + 'static,
    ) -> io::Result<(HandlerId, SocketAddr)> {
        self.listen_tcp_with(addr, factory, ListenConfig::default())
    }

    /// Listens on TCP `addr` with `cfg`.
    ///
    /// # Errors
    ///
    /// As [`listen_tcp`](Self::listen_tcp). `cfg.defer_accept` and `cfg.stream.nodelay`
    /// are best effort: a socket that refuses them is logged, not an error.
    fn listen_tcp_with(
        &mut self,
        addr: impl ToSocketAddrs,
        factory: impl Factory + 'static,
        cfg: ListenConfig,
    ) -> io::Result<(HandlerId, SocketAddr)> {
        let addrs = resolve(addr)?;
        let l = TcpListener::bind(&addrs[..])
            .map_err(|e| context(e, format_args!("listen on tcp {}", Addrs(&addrs))))?;
        l.set_nonblocking(true)?;
        let local = l.local_addr()?;
        let fd: OwnedFd = l.into();
        let listener = Listener::new(fd, format!("tcp://{local}"), Box::new(factory), cfg, None)?;
        let id = self.with_net(|ctx| ctx.insert(Box::new(listener), Some(Interest::READABLE)))?;
        Ok((id, local))
    }

    /// Listens on a Unix-domain stream socket at `path`. A stale socket file left by
    /// a dead server (a connection to it is refused) is replaced; a live one (it
    /// accepts, or its queue is full) is an `AddrInUse` error; any other failure of
    /// the probe (permission denied, say) is returned: the file is never removed
    /// unless it is provably stale. The file is removed when the listener closes.
    ///
    /// # Errors
    ///
    /// * `InvalidInput`: `path` is empty.
    /// * `AlreadyExists`: something that is not a socket exists at `path`.
    /// * `AddrInUse`: a live server listens at `path`.
    /// * the probe of an existing socket failed otherwise, or removing a stale one,
    ///   `bind` (missing directory, permissions, a path longer than `sun_path`) or
    ///   `listen` failed, or the backend refuses the descriptor.
    ///
    /// # Examples
    ///
    /// An echo server on a Unix socket and a client connected to it from the same
    /// reactor ([`connect_unix`](Self::connect_unix)); the socket file goes when the
    /// listener closes.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use readyloop::net::{Conn, Listen, ListenConfig, Protocol, StreamConfig};
    /// use readyloop::proto::echo::{Echo, EchoOptions};
    /// use readyloop::reactor::Reactor;
    /// use readyloop::selector::Backend;
    ///
    /// struct Hello(Rc<RefCell<Vec<u8>>>);
    /// impl Protocol for Hello {
    ///     fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
    ///         conn.write(b"hello\n");
    ///     }
    ///     fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
    ///         self.0.borrow_mut().extend_from_slice(data);
    ///         conn.stop_reactor();
    ///     }
    /// }
    ///
    /// let path = std::env::temp_dir().join(format!("readyloop-doc-{}.sock", std::process::id()));
    /// let mut reactor = Reactor::new(Backend::Poll)?;
    /// let echo = Echo::factory(EchoOptions::default());
    /// reactor.listen_unix(&path, echo, ListenConfig::default())?;
    /// let got = Rc::new(RefCell::new(Vec::new()));
    /// reactor.connect_unix(&path, Hello(got.clone()), StreamConfig::default())?;
    /// reactor.call_later(Duration::from_secs(5), |ctx| ctx.stop()); // in case
    /// reactor.run()?; // stopped by `Hello`; then every handler is removed
    /// assert_eq!(*got.borrow(), b"hello\n");
    /// assert!(!path.exists());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn listen_unix(
        &mut self,
        path: impl AsRef<Path>,
        factory: impl Factory + 'static,
        cfg: ListenConfig,
    ) -> io::Result<HandlerId> {
        let path = path.as_ref();
        if path.as_os_str().is_empty() {
            // bind(2) would autobind to a random abstract address no client can find.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "listen on unix: empty path",
            ));
        }
        let in_context = |e| context(e, format_args!("listen on unix {}", path.display()));
        let l = match UnixListener::bind(path) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                use std::os::unix::fs::FileTypeExt;
                let is_socket =
                    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
                if !is_socket {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!(
                            "{} exists and is not a socket; not replacing it",
                            path.display()
                        ),
                    ));
                }
                // A non-blocking probe: a blocking connect to a live server whose
                // accept queue is full would wait until it accepts (forever, if
                // it is stuck). Only a refused connection proves the file stale.
                match mio::net::UnixStream::connect(path) {
                    Ok(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::AddrInUse,
                            format!("{} is in use by a running server", path.display()),
                        ))
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Err(io::Error::new(
                            io::ErrorKind::AddrInUse,
                            format!(
                                "{} is in use by a running server (its accept queue is full)",
                                path.display()
                            ),
                        ))
                    }
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                    Err(e) => {
                        return Err(context(
                            e,
                            format_args!(
                                "listen on unix {}: cannot tell whether the existing socket \
                                 is stale; not replacing it",
                                path.display()
                            ),
                        ))
                    }
                }
                log::info!("removing stale socket {}", path.display());
                std::fs::remove_file(path).map_err(in_context)?;
                UnixListener::bind(path).map_err(in_context)?
            }
            Err(e) => return Err(in_context(e)),
        };
        l.set_nonblocking(true)?;
        let fd: OwnedFd = l.into();
        let listener = Listener::new(
            fd,
            format!("unix:{}", path.display()),
            Box::new(factory),
            cfg,
            Some(path.to_path_buf()),
        )?;
        self.with_net(|ctx| ctx.insert(Box::new(listener), Some(Interest::READABLE)))
    }

    /// Connects to TCP `addr` without blocking, as Twisted's `connectTCP`, asyncio's
    /// `create_connection` or tokio's `TcpStream::connect`, with default
    /// [`StreamConfig`] settings (`TCP_NODELAY` on). Returns the id the connection
    /// will have at once: other handlers can address it (writes queued before the
    /// connect completes are sent after it).
    ///
    /// The connect runs on the reactor: completion is detected when the socket turns
    /// writable (its `SO_ERROR` tells success from failure). Then
    /// [`Protocol::connection_made`] runs, and the connection behaves as an
    /// accepted one. If the connect fails (refused, unreachable), `timeout` passes
    /// first (a reactor timer), or the reactor shuts down meanwhile,
    /// [`Protocol::connection_failed`] runs instead with the error (`TimedOut` for
    /// the timeout) and the connection is gone.
    ///
    /// If `addr` resolves to several addresses they are tried in order while
    /// `connect` fails at once; the first one whose connect starts is the one used
    /// (there is no fallback after an asynchronous failure).
    ///
    /// # Errors
    ///
    /// Only what happens before the connect is under way: `addr` does not resolve,
    /// no socket can be made (out of descriptors), `connect` fails at once for every
    /// address, or the backend refuses the descriptor (select's `FD_SETSIZE`). The
    /// protocol is dropped without a callback then.
    ///
    /// # Examples
    ///
    /// A client that sends a line, prints what comes back, and stops the loop; an
    /// echo server on the same reactor answers it.
    ///
    /// ```
    /// use std::io;
    /// use std::time::Duration;
    /// use readyloop::net::{Conn, Listen, Protocol};
    /// use readyloop::proto::echo::{Echo, EchoOptions};
    /// use readyloop::reactor::Reactor;
    /// use readyloop::selector::Backend;
    ///
    /// struct Hello;
    /// impl Protocol for Hello {
    ///     fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
    ///         conn.write(b"hello\n");
    ///     }
    ///     fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
    ///         assert_eq!(data, b"hello\n");
    ///         conn.stop_reactor();
    ///     }
    ///     fn connection_failed(&mut self, conn: &mut Conn<'_, '_>, reason: &io::Error) {
    ///         eprintln!("cannot connect: {reason}");
    ///         conn.stop_reactor();
    ///     }
    /// }
    ///
    /// let mut reactor = Reactor::new(Backend::Poll)?;
    /// let (_, addr) = reactor.listen_tcp("127.0.0.1:0", Echo::factory(EchoOptions::default()))?;
    /// reactor.connect_tcp(addr, Duration::from_secs(5), Hello)?;
    /// reactor.call_later(Duration::from_secs(10), |ctx| ctx.stop()); // in case
    /// reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn connect_tcp(
        &mut self,
        addr: impl ToSocketAddrs,
        timeout: Duration,
        proto: impl Protocol + 'static,
    ) -> io::Result<HandlerId> {
        self.connect_tcp_with(addr, timeout, proto, StreamConfig::default())
    }

    /// [`connect_tcp`](Self::connect_tcp) with connection settings `cfg`
    /// (watermarks, output limit, close timeout, `TCP_NODELAY`).
    ///
    /// # Errors
    ///
    /// As [`connect_tcp`](Self::connect_tcp).
    fn connect_tcp_with(
        &mut self,
        addr: impl ToSocketAddrs,
        timeout: Duration,
        proto: impl Protocol + 'static,
        cfg: StreamConfig,
    ) -> io::Result<HandlerId> {
        let addrs = resolve(addr)?;
        let mut last = None;
        for &a in &addrs {
            match mio::net::TcpStream::connect(a) {
                Ok(sock) => {
                    if cfg.nodelay {
                        if let Err(e) = sock.set_nodelay(true) {
                            log::debug!("{a}: TCP_NODELAY: {e}");
                        }
                    }
                    let fd: OwnedFd = sock.into();
                    let stream =
                        Stream::accepted(fd, PeerAddr::Inet(a), Box::new(proto), Rc::new(cfg));
                    return self.with_net(|ctx| stream.register_connecting(ctx, timeout));
                }
                Err(e) => {
                    log::debug!("connect to {a}: {e}");
                    last = Some(context(e, format_args!("connect to tcp {a}")));
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the address resolved to nothing",
            )
        }))
    }

    /// Connects to the Unix-domain stream socket at `path`. A local connect
    /// completes (or fails) at once, so [`Protocol::connection_made`] runs before
    /// this returns.
    ///
    /// # Errors
    ///
    /// The connect failed (no such socket, refused, the server's accept queue is
    /// full: `WouldBlock`), or the backend refuses the descriptor. The protocol is
    /// dropped without a callback then.
    fn connect_unix(
        &mut self,
        path: impl AsRef<Path>,
        proto: impl Protocol + 'static,
        cfg: StreamConfig,
    ) -> io::Result<HandlerId> {
        let path = path.as_ref();
        let sock = mio::net::UnixStream::connect(path)
            .map_err(|e| context(e, format_args!("connect to unix {}", path.display())))?;
        let fd: OwnedFd = sock.into();
        let stream = Stream::accepted(fd, PeerAddr::Unix, Box::new(proto), Rc::new(cfg));
        self.with_net(|ctx| stream.register(ctx))
    }

    /// Binds a UDP socket at `addr` for `proto` (port 0 picks a free port), then
    /// calls [`DatagramProtocol::started`]. Returns the handler id and address.
    ///
    /// # Errors
    ///
    /// `addr` does not resolve (or resolves to nothing: `InvalidInput`), `bind`
    /// fails for every address (`AddrInUse`, `PermissionDenied`, ...; the message
    /// names the addresses), or the backend refuses the descriptor. `proto` is
    /// dropped without a callback then.
    fn bind_udp(
        &mut self,
        addr: impl ToSocketAddrs,
        proto: impl DatagramProtocol + 'static,
    ) -> io::Result<(HandlerId, SocketAddr)> {
        let addrs = resolve(addr)?;
        let sock = UdpSocket::bind(&addrs[..])
            .map_err(|e| context(e, format_args!("bind udp {}", Addrs(&addrs))))?;
        let local = sock.local_addr()?;
        let handler = DatagramSocket::new(sock, Box::new(proto))?;
        let id = self.with_net(|ctx| handler.register(ctx))?;
        Ok((id, local))
    }

    /// Binds a UDP socket at `addr` set up per `cfg` (broadcast, shared address) for
    /// `proto`. Returns the handler id and address.
    ///
    /// # Errors
    ///
    /// As [`bind_udp`](Self::bind_udp); also a socket option of `cfg` the socket
    /// refuses. When no address binds, the first address's error is returned.
    fn bind_udp_with(
        &mut self,
        addr: impl ToSocketAddrs,
        proto: impl DatagramProtocol + 'static,
        cfg: UdpConfig,
    ) -> io::Result<(HandlerId, SocketAddr)> {
        let addrs = resolve(addr)?;
        // The first address that binds, as `UdpSocket::bind` does; else the first error.
        let mut first_err = None;
        let mut bound = None;
        for a in &addrs {
            match udp_socket(*a, cfg) {
                Ok(s) => {
                    bound = Some(s);
                    break;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        let sock = match (bound, first_err) {
            (Some(s), _) => s,
            (None, e) => {
                let e = e.unwrap_or_else(|| io::Error::other("no address"));
                return Err(context(e, format_args!("bind udp {}", Addrs(&addrs))));
            }
        };
        let local = sock.local_addr()?;
        let handler = DatagramSocket::new(sock, Box::new(proto))?;
        let id = self.with_net(|ctx| handler.register(ctx))?;
        Ok((id, local))
    }
}

/// Resolves `addr` once, so a failed bind can name what it tried.
fn resolve(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        ));
    }
    Ok(addrs)
}

/// `e` with what we were doing in front of its message (same kind).
fn context(e: io::Error, what: std::fmt::Arguments<'_>) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Displays resolved addresses as `a, b`.
struct Addrs<'a>(&'a [SocketAddr]);

impl std::fmt::Display for Addrs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl Listen for Reactor {
    fn with_net<R>(&mut self, f: impl FnOnce(&mut Ctx<'_>) -> R) -> R {
        self.with_ctx(f)
    }
}

impl Listen for Ctx<'_> {
    fn with_net<R>(&mut self, f: impl FnOnce(&mut Ctx<'_>) -> R) -> R {
        f(self)
    }
}
