//! Listening TCP (and bound UDP) sockets with options that must be set before `bind(2)`:
//! `SO_REUSEPORT`, so several sockets (one per reactor thread) can listen on the
//! same address and port and the kernel spreads incoming connections over them.

use std::io;
use std::mem::size_of;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::syscall;

fn set_int_option(fd: BorrowedFd<'_>, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: the option value points at an int that outlives the call, with its size.
    syscall!(
        Other,
        setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            size_of::<i32>() as libc::socklen_t
        )
    )?;
    Ok(())
}

/// A non-blocking, close-on-exec TCP socket bound to `addr` (not yet listening),
/// with `SO_REUSEADDR`, and `SO_REUSEPORT` if `reuseport`. Every socket bound with
/// `reuseport` to the same address (by the same user) shares the port; the kernel
/// hashes each incoming connection to one of them.
pub fn bind_tcp(addr: SocketAddr, reuseport: bool) -> io::Result<OwnedFd> {
    bind(addr, libc::SOCK_STREAM, reuseport)
}

/// A non-blocking, close-on-exec UDP socket bound to `addr`, with `SO_REUSEADDR`, and
/// `SO_REUSEPORT` if `reuseport` (the kernel hashes each datagram's source address
/// and port to one of the sockets sharing the port, so one client's datagrams all
/// reach the same socket).
pub fn bind_udp(addr: SocketAddr, reuseport: bool) -> io::Result<OwnedFd> {
    bind(addr, libc::SOCK_DGRAM, reuseport)
}

fn bind(addr: SocketAddr, ty: libc::c_int, reuseport: bool) -> io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: no pointer arguments.
    let fd = syscall!(
        Other,
        socket(family, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0)
    )?;
    let fd = super::owned(fd);
    set_int_option(fd.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if reuseport {
        set_int_option(fd.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    // SAFETY: an all-zero sockaddr_storage is a valid (unspecified) address.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_in fits in sockaddr_storage, whose alignment is larger.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_in6 fits in sockaddr_storage, whose alignment is larger.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: `storage` holds an initialised address of `len` bytes.
    syscall!(
        Other,
        bind(
            fd.as_raw_fd(),
            (&storage as *const libc::sockaddr_storage).cast(),
            len as libc::socklen_t
        )
    )?;
    Ok(fd)
}
