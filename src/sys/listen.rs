//! Listening TCP (and bound UDP) sockets with options that must be set before `bind(2)`:
//! `SO_REUSEPORT`, so several sockets (one per reactor thread) can listen on the
//! same address and port and the kernel spreads incoming connections over them.
//! On `nix` (`socket`, `setsockopt`, `bind`), each call counted.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};

use super::stats::{count, Syscall};

/// A non-blocking, close-on-exec TCP socket bound to `addr` (not yet listening),
/// with `SO_REUSEADDR`, and `SO_REUSEPORT` if `reuseport`. Every socket bound with
/// `reuseport` to the same address (by the same user) shares the port; the kernel
/// hashes each incoming connection to one of them.
///
/// # Errors
///
/// The kernel's error: `EADDRINUSE` (the address is taken without `SO_REUSEPORT` on
/// both sides), `EADDRNOTAVAIL`, `EACCES` for a privileged port, `EMFILE`.
pub fn bind_tcp(addr: SocketAddr, reuseport: bool) -> io::Result<OwnedFd> {
    bind(addr, SockType::Stream, reuseport)
}

/// A non-blocking, close-on-exec UDP socket bound to `addr`, with `SO_REUSEADDR`, and
/// `SO_REUSEPORT` if `reuseport` (the kernel hashes each datagram's source address
/// and port to one of the sockets sharing the port, so one client's datagrams all
/// reach the same socket).
///
/// # Errors
///
/// As [`bind_tcp`].
pub fn bind_udp(addr: SocketAddr, reuseport: bool) -> io::Result<OwnedFd> {
    bind(addr, SockType::Datagram, reuseport)
}

fn bind(addr: SocketAddr, ty: SockType, reuseport: bool) -> io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    count(Syscall::Other);
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket::socket(family, ty, flags, None)?;
    count(Syscall::Other);
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if reuseport {
        count(Syscall::Other);
        socket::setsockopt(&fd, sockopt::ReusePort, &true)?;
    }
    count(Syscall::Other);
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(fd)
}
