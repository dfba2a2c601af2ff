//! Socket calls that `std` does not offer in the shape a reactor needs:
//! `accept4` with non-blocking and close-on-exec flags, `send` with `MSG_NOSIGNAL`,
//! `shutdown` on a raw descriptor, `listen` with a large backlog, socket options.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

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
pub fn local_addr(fd: BorrowedFd<'_>) -> io::Result<PeerAddr> {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` is a writable sockaddr_storage of `len` bytes; the kernel
    // writes at most `len` bytes and updates `len`.
    syscall!(
        Other,
        getsockname(fd.as_raw_fd(), storage.as_mut_ptr().cast(), &mut len)
    )?;
    // SAFETY: the storage was zero-initialised, and the kernel filled in the address.
    let storage = unsafe { storage.assume_init() };
    Ok(to_peer(&storage))
}

/// `send(fd, buf, MSG_NOSIGNAL)`: a write to a reset peer returns `EPIPE` instead of
/// raising `SIGPIPE` and killing the process.
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

/// `writev`-style send of two slices with `MSG_NOSIGNAL` (`sendmsg`).
pub fn send2(fd: BorrowedFd<'_>, a: &[u8], b: &[u8]) -> io::Result<usize> {
    if b.is_empty() {
        return send(fd, a);
    }
    #[cfg(feature = "fault-injection")]
    let (a, b) = {
        let n = super::fault_len!(Write, a.len() + b.len());
        if n <= a.len() {
            (&a[..n], &b[..0])
        } else {
            (a, &b[..n - a.len()])
        }
    };
    let mut iov = [
        libc::iovec {
            iov_base: a.as_ptr() as *mut libc::c_void,
            iov_len: a.len(),
        },
        libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        },
    ];
    // SAFETY: an all-zero msghdr is a valid "no name, no control data" header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: `msg` points at two iovecs describing live, readable slices.
    let n = syscall!(Write, sendmsg(fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL))
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
pub fn shutdown(fd: BorrowedFd<'_>, how: std::net::Shutdown) -> io::Result<()> {
    let how = match how {
        std::net::Shutdown::Read => libc::SHUT_RD,
        std::net::Shutdown::Write => libc::SHUT_WR,
        std::net::Shutdown::Both => libc::SHUT_RDWR,
    };
    // SAFETY: no pointer arguments.
    syscall!(Close, shutdown(fd.as_raw_fd(), how))?;
    Ok(())
}

/// `listen(fd, backlog)`. Calling it again on a listening socket changes the backlog,
/// which is how we raise std's default of 128 (the kernel caps it at `somaxconn`).
pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    // SAFETY: no pointer arguments.
    syscall!(Other, listen(fd.as_raw_fd(), backlog))?;
    Ok(())
}

fn setsockopt_int(fd: BorrowedFd<'_>, level: i32, name: i32, value: i32) -> io::Result<()> {
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

fn getsockopt_int(fd: BorrowedFd<'_>, level: i32, name: i32) -> io::Result<i32> {
    let mut value: i32 = 0;
    let mut len = size_of::<i32>() as libc::socklen_t;
    // SAFETY: the option buffer is a writable int of `len` bytes.
    syscall!(
        Other,
        getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut i32).cast(),
            &mut len
        )
    )?;
    Ok(value)
}

/// `TCP_NODELAY`.
pub fn set_nodelay(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, on as i32)
}

/// `TCP_DEFER_ACCEPT` on a listening socket: a connection reaches the accept queue
/// only once it has data to read (or after about `secs` seconds without any); 0 turns
/// it off.
pub fn set_defer_accept(fd: BorrowedFd<'_>, secs: i32) -> io::Result<()> {
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, secs)
}

/// Whether `TCP_NODELAY` is set.
pub fn nodelay(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(getsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY)? != 0)
}

/// `SO_OOBINLINE`: TCP urgent data stays in the normal byte stream (an FTP client's
/// `ABOR` sent with `MSG_OOB` then arrives whole instead of losing its last byte).
pub fn set_oob_inline(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_OOBINLINE, on as i32)
}

/// `SO_RCVBUF` / `SO_SNDBUF` (the kernel doubles the value it is given).
pub fn set_buffer_sizes(
    fd: BorrowedFd<'_>,
    recv: Option<i32>,
    send: Option<i32>,
) -> io::Result<()> {
    if let Some(r) = recv {
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, r)?;
    }
    if let Some(s) = send {
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, s)?;
    }
    Ok(())
}

/// `SO_LINGER` with a zero timeout: `close` then sends RST instead of FIN.
pub fn set_linger_zero(fd: BorrowedFd<'_>) -> io::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the option value points at a linger struct that outlives the call.
    syscall!(
        Other,
        setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t
        )
    )?;
    Ok(())
}

/// `SO_ERROR`: the pending error of a socket, if any (and clears it).
pub fn take_error(fd: BorrowedFd<'_>) -> io::Result<Option<io::Error>> {
    let e = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR)?;
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
pub fn send_urgent(fd: BorrowedFd<'_>, byte: u8) -> io::Result<usize> {
    // SAFETY: the buffer is one readable byte on our stack.
    let n = syscall!(
        Write,
        send(
            fd.as_raw_fd(),
            (&byte as *const u8).cast(),
            1,
            libc::MSG_OOB | libc::MSG_NOSIGNAL
        )
    )?;
    Ok(n as usize)
}

/// Sends `data` with descriptor `pass` attached (`SCM_RIGHTS`) over a Unix socket.
pub fn send_with_fd(sock: BorrowedFd<'_>, data: &[u8], pass: BorrowedFd<'_>) -> io::Result<usize> {
    let fd_len = size_of::<libc::c_int>() as u32;
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(fd_len) } as usize;
    let mut cbuf = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: an all-zero msghdr is a valid "no name, no control data" header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` has a control buffer of CMSG_SPACE(sizeof(int)) bytes, so the first
    // header exists and its data has room for one int (written unaligned).
    unsafe {
        let cm = libc::CMSG_FIRSTHDR(&msg);
        (*cm).cmsg_level = libc::SOL_SOCKET;
        (*cm).cmsg_type = libc::SCM_RIGHTS;
        (*cm).cmsg_len = libc::CMSG_LEN(fd_len) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cm) as *mut libc::c_int, pass.as_raw_fd());
    }
    // SAFETY: `msg` points at one iovec over `data` and at `cbuf`, both alive.
    let n = syscall!(Write, sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL))?;
    Ok(n as usize)
}
