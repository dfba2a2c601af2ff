//! Socket calls that `std` does not offer in the shape a reactor needs:
//! `accept4` with non-blocking and close-on-exec flags, `send` with `MSG_NOSIGNAL`,
//! `shutdown` on a raw descriptor, `listen` with a large backlog, socket options.
//!
//! The calls on the data path (`accept4`, `send`, `recv`) and `listen` are written
//! on `libc` (they carry the syscall counters and the fault injector, and `accept4`
//! returns the peer's address in the same call, which `nix`'s does not); socket
//! options, `getsockname`, `shutdown` and the test kit's senders go through `nix`.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{sockopt, GetSockOpt, SetSockOpt, SockaddrStorage};

use super::stats::{count, Syscall};
use super::syscall;

/// The peer address that `accept4` returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerAddr {
    /// An IPv4 or IPv6 peer.
    Inet(SocketAddr),
    /// A Unix-domain peer (usually unnamed).
    Unix,
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerAddr::Inet(a) => write!(f, "{a}"),
            PeerAddr::Unix => write!(f, "unix"),
        }
    }
}

fn to_peer(storage: &libc::sockaddr_storage) -> PeerAddr {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which is smaller
            // than sockaddr_storage and has no stricter alignment.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            PeerAddr::Inet(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which is smaller
            // than sockaddr_storage and has no stricter alignment.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            PeerAddr::Inet(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => PeerAddr::Unix,
    }
}

/// `accept4(fd, .., SOCK_NONBLOCK | SOCK_CLOEXEC)`: the new socket is non-blocking
/// and close-on-exec in one syscall.
///
/// # Errors
///
/// The kernel's error: `WouldBlock` when no connection is pending, `EMFILE`/`ENFILE`
/// when out of descriptors, `ECONNABORTED` for a connection reset while queued.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<(OwnedFd, PeerAddr)> {
    #[cfg(feature = "fault-injection")]
    super::fault_len!(Accept, 0);
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` is a writable sockaddr_storage of `len` bytes; the kernel
    // writes at most `len` bytes and updates `len`.
    let fd = syscall!(
        Accept,
        accept4(
            listener.as_raw_fd(),
            storage.as_mut_ptr().cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC
        )
    )
    .inspect_err(super::stats::note_error)?;
    let fd = super::owned(fd);
    // SAFETY: the storage was zero-initialised, and the kernel filled in the address.
    let storage = unsafe { storage.assume_init() };
    Ok((fd, to_peer(&storage)))
}

/// `getsockname`: the local address a socket is bound to (`PeerAddr::Unix` for Unix sockets).
///
/// # Errors
///
/// The kernel's error (`ENOTSOCK` on a descriptor that is not a socket).
pub fn local_addr(fd: BorrowedFd<'_>) -> io::Result<PeerAddr> {
    count(Syscall::Other);
    let addr: SockaddrStorage = nix::sys::socket::getsockname(fd.as_raw_fd())?;
    Ok(if let Some(a) = addr.as_sockaddr_in() {
        PeerAddr::Inet(SocketAddr::V4((*a).into()))
    } else if let Some(a) = addr.as_sockaddr_in6() {
        PeerAddr::Inet(SocketAddr::V6((*a).into()))
    } else {
        PeerAddr::Unix
    })
}

/// `send(fd, buf, MSG_NOSIGNAL)`: a write to a reset peer returns `EPIPE` instead of
/// raising `SIGPIPE` and killing the process.
///
/// # Errors
///
/// The kernel's error: `WouldBlock` on a full send buffer, `EPIPE`/`ECONNRESET` when
/// the peer is gone.
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    #[cfg(feature = "fault-injection")]
    let buf = &buf[..super::fault_len!(Write, buf.len())];
    // SAFETY: `buf` is valid for `buf.len()` readable bytes.
    let n = syscall!(
        Write,
        send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL
        )
    )
    .inspect_err(super::stats::note_error)?;
    Ok(n as usize)
}

/// `send(fd, buf, MSG_NOSIGNAL | MSG_MORE)`: like [`send`], but tells TCP that more
/// data follows at once (a `sendfile` of the body after its head), so the two leave
/// in full segments instead of a small one first (what nginx gets from `TCP_CORK`
/// with `tcp_nopush on`, without the two `setsockopt` calls). The next send without
/// the flag pushes everything out.
///
/// # Errors
///
/// As [`send`].
pub fn send_more(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    #[cfg(feature = "fault-injection")]
    let buf = &buf[..super::fault_len!(Write, buf.len())];
    // SAFETY: `buf` is valid for `buf.len()` readable bytes.
    let n = syscall!(
        Write,
        send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL | libc::MSG_MORE
        )
    )
    .inspect_err(super::stats::note_error)?;
    Ok(n as usize)
}

/// Linux's `IOV_MAX`: the most slices one `sendmsg` takes.
pub const IOV_MAX: usize = 1024;

/// A gathered send: `sendmsg(fd, {iov: bufs}, MSG_NOSIGNAL)` (with `MSG_MORE` if
/// `more`), i.e. `writev(2)` with the flags `writev` cannot pass (a peer that went away
/// gives `EPIPE`, not `SIGPIPE`). One slice goes through [`send`]/[`send_more`]; past
/// [`IOV_MAX`] slices only the first `IOV_MAX` are offered. Returns the bytes the
/// kernel took, from the first slice on: a short count may end inside any slice.
///
/// # Errors
///
/// The `sendmsg` error (`EAGAIN` when the socket buffer is full, `EPIPE`/`ECONNRESET`
/// when the peer is gone), or one the fault injector made up.
pub fn send_vectored(
    fd: BorrowedFd<'_>,
    bufs: &[io::IoSlice<'_>],
    more: bool,
) -> io::Result<usize> {
    match bufs {
        [] => return Ok(0),
        [one] if more => return send_more(fd, one),
        [one] => return send(fd, one),
        _ => {}
    }
    let bufs = &bufs[..bufs.len().min(IOV_MAX)];
    #[cfg(feature = "fault-injection")]
    let cut = {
        let total = bufs.iter().map(|b| b.len()).sum::<usize>();
        truncate_slices(bufs, super::fault_len!(Write, total))
    };
    #[cfg(feature = "fault-injection")]
    let bufs = &cut[..];
    // SAFETY: an all-zero msghdr is a valid "no name, no control data" header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSlice` is ABI-compatible with `iovec` on Unix (std's guarantee); sendmsg only
    // reads through the pointer, whatever its constness.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len() as _;
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    // SAFETY: `msg` points at `bufs.len()` (at most IOV_MAX) iovecs describing live,
    // readable slices borrowed for this call.
    let n = syscall!(Write, sendmsg(fd.as_raw_fd(), &msg, flags))
        .inspect_err(super::stats::note_error)?;
    Ok(n as usize)
}

/// The first `n` bytes of `bufs`, as slices (a fault-injected short write).
#[cfg(feature = "fault-injection")]
fn truncate_slices<'b>(bufs: &'b [io::IoSlice<'_>], mut n: usize) -> Vec<io::IoSlice<'b>> {
    let mut out = Vec::new();
    for b in bufs {
        if n == 0 {
            break;
        }
        let take = n.min(b.len());
        out.push(io::IoSlice::new(&b[..take]));
        n -= take;
    }
    out
}

/// `recv(fd, buf, 0)`.
///
/// # Errors
///
/// The kernel's error: `WouldBlock` when nothing is waiting, `ECONNRESET`.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    #[cfg(feature = "fault-injection")]
    let buf = {
        let n = super::fault_len!(Read, buf.len());
        &mut buf[..n]
    };
    // SAFETY: `buf` is valid for `buf.len()` writable bytes.
    let n = syscall!(
        Read,
        recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
    )
    .inspect_err(super::stats::note_error)?;
    Ok(n as usize)
}

/// `shutdown(fd, how)`.
///
/// # Errors
///
/// The kernel's error (`ENOTCONN` on a socket that is not connected).
pub fn shutdown(fd: BorrowedFd<'_>, how: std::net::Shutdown) -> io::Result<()> {
    use nix::sys::socket::Shutdown;
    let how = match how {
        std::net::Shutdown::Read => Shutdown::Read,
        std::net::Shutdown::Write => Shutdown::Write,
        std::net::Shutdown::Both => Shutdown::Both,
    };
    count(Syscall::Close);
    nix::sys::socket::shutdown(fd.as_raw_fd(), how)?;
    Ok(())
}

/// `listen(fd, backlog)`. Calling it again on a listening socket changes the backlog,
/// which is how we raise std's default of 128 (the kernel caps it at `somaxconn`).
///
/// # Errors
///
/// The kernel's error (`EOPNOTSUPP` on a socket that cannot listen).
pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    // SAFETY: no pointer arguments.
    syscall!(Other, listen(fd.as_raw_fd(), backlog))?;
    Ok(())
}

/// `TCP_DEFER_ACCEPT`, which `nix` does not define: added with `nix`'s own macro
/// for the purpose (it expands to the same checked `setsockopt` as `nix`'s options).
mod defer_accept {
    use nix::{setsockopt_impl, sockopt_impl};

    sockopt_impl!(
        TcpDeferAccept,
        SetOnly,
        libc::IPPROTO_TCP,
        libc::TCP_DEFER_ACCEPT,
        i32
    );
}
use defer_accept::TcpDeferAccept;

/// `setsockopt` through `nix`, counted as [`Syscall::Other`](super::stats::Syscall::Other).
fn set<O: SetSockOpt>(fd: BorrowedFd<'_>, opt: O, value: &O::Val) -> io::Result<()> {
    count(Syscall::Other);
    Ok(nix::sys::socket::setsockopt(&fd, opt, value)?)
}

/// `getsockopt` through `nix`, counted as [`Syscall::Other`](super::stats::Syscall::Other).
fn get<O: GetSockOpt>(fd: BorrowedFd<'_>, opt: O) -> io::Result<O::Val> {
    count(Syscall::Other);
    Ok(nix::sys::socket::getsockopt(&fd, opt)?)
}

/// `TCP_NODELAY`.
///
/// # Errors
///
/// The kernel's error (`EOPNOTSUPP` on a socket that is not TCP).
pub fn set_nodelay(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    set(fd, sockopt::TcpNoDelay, &on)
}

/// `TCP_DEFER_ACCEPT` on a listening socket: a connection reaches the accept queue
/// only once it has data to read (or after about `secs` seconds without any); 0 turns
/// it off.
///
/// # Errors
///
/// The kernel's error (`EOPNOTSUPP` on a socket that is not TCP).
pub fn set_defer_accept(fd: BorrowedFd<'_>, secs: i32) -> io::Result<()> {
    set(fd, TcpDeferAccept, &secs)
}

/// Whether `TCP_NODELAY` is set.
///
/// # Errors
///
/// The kernel's error (`EOPNOTSUPP` on a socket that is not TCP).
pub fn nodelay(fd: BorrowedFd<'_>) -> io::Result<bool> {
    get(fd, sockopt::TcpNoDelay)
}

/// `SO_OOBINLINE`: TCP urgent data stays in the normal byte stream (an FTP client's
/// `ABOR` sent with `MSG_OOB` then arrives whole instead of losing its last byte).
///
/// # Errors
///
/// The kernel's error (`ENOTSOCK` on a descriptor that is not a socket).
pub fn set_oob_inline(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    set(fd, sockopt::OobInline, &on)
}

/// `SO_RCVBUF` / `SO_SNDBUF` (the kernel doubles the value it is given). Feature
/// `testkit` (the tests shrink buffers to fill them quickly).
///
/// # Errors
///
/// The kernel's error (`ENOTSOCK` on a descriptor that is not a socket).
#[cfg(feature = "testkit")]
pub fn set_buffer_sizes(
    fd: BorrowedFd<'_>,
    recv: Option<usize>,
    send: Option<usize>,
) -> io::Result<()> {
    if let Some(r) = recv {
        set(fd, sockopt::RcvBuf, &r)?;
    }
    if let Some(s) = send {
        set(fd, sockopt::SndBuf, &s)?;
    }
    Ok(())
}

/// `SO_LINGER` with a zero timeout: `close` then sends RST instead of FIN. Feature
/// `testkit` (the tests and the lab reset connections on purpose).
///
/// # Errors
///
/// The kernel's error (`ENOTSOCK` on a descriptor that is not a socket).
#[cfg(feature = "testkit")]
pub fn set_linger_zero(fd: BorrowedFd<'_>) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    set(fd, sockopt::Linger, &linger)
}

/// `SO_ERROR`: the pending error of a socket, if any (and clears it).
///
/// # Errors
///
/// The kernel's error (`ENOTSOCK` on a descriptor that is not a socket).
pub fn take_error(fd: BorrowedFd<'_>) -> io::Result<Option<io::Error>> {
    let e = get(fd, sockopt::SocketError)?;
    Ok((e != 0).then(|| io::Error::from_raw_os_error(e)))
}

/// Reads `/proc/sys/net/core/somaxconn`, the kernel's cap on listen backlogs.
pub fn somaxconn() -> i32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

/// Sends one byte of TCP urgent data (`send(.., MSG_OOB)`), as telnet's "Synch" does.
/// Feature `testkit`.
///
/// # Errors
///
/// The kernel's error (`EPIPE` after a reset, `WouldBlock` on a full socket).
#[cfg(feature = "testkit")]
pub fn send_urgent(fd: BorrowedFd<'_>, byte: u8) -> io::Result<usize> {
    use nix::sys::socket::MsgFlags;
    count(Syscall::Write);
    let flags = MsgFlags::MSG_OOB | MsgFlags::MSG_NOSIGNAL;
    Ok(nix::sys::socket::send(fd.as_raw_fd(), &[byte], flags)?)
}

/// Sends `data` with descriptor `pass` attached (`SCM_RIGHTS`) over a Unix socket.
/// Feature `testkit`.
///
/// # Errors
///
/// The kernel's error (`EPIPE` after the peer closed, `WouldBlock` on a full socket).
#[cfg(feature = "testkit")]
pub fn send_with_fd(sock: BorrowedFd<'_>, data: &[u8], pass: BorrowedFd<'_>) -> io::Result<usize> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    count(Syscall::Write);
    let fds = [pass.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [io::IoSlice::new(data)];
    Ok(sendmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?)
}
