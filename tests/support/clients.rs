//! Clients: TCP connections with timeouts, round trips, reads to EOF, writes until
//! the peer stops taking bytes, temporary socket paths and free ports.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{pattern_at, CHUNK, IO_TIMEOUT};

/// A TCP client with read and write timeouts ([`IO_TIMEOUT`]) and `TCP_NODELAY`.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = connect_within(addr, Duration::from_secs(5));
    timeouts(&s);
    s
}

/// A TCP client with `TCP_NODELAY` whose connect, reads and writes each time out
/// after `timeout`.
pub fn connect_within(addr: SocketAddr, timeout: Duration) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, timeout)
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(timeout)).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Sets [`IO_TIMEOUT`] on both directions.
pub fn timeouts(s: &TcpStream) {
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
}

/// Writes `msg` and reads back exactly as many bytes.
pub fn round_trip(s: &mut (impl Read + Write), msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).expect("write");
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).expect("read the echo");
    back
}

/// One attempt at an echo from a new client: connect (1 s), write `msg`, read as many
/// bytes back (500 ms). `None` on any failure, for [`eventually`] loops that wait for a
/// server to take clients again.
pub fn try_echo(addr: SocketAddr, msg: &[u8]) -> Option<Vec<u8>> {
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    c.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    c.write_all(msg).ok()?;
    let mut buf = vec![0u8; msg.len()];
    c.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// Reads until EOF (bounded by the socket's read timeout).
pub fn read_to_eof(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

/// The end of a descriptor-exhaustion case against an echo server: `first`, accepted
/// before the limit, is still served; once the `flood` is dropped, a new client is
/// served again (within [`DEADLINE`](super::DEADLINE)). `what` names the case.
pub fn served_after_flood(
    first: &mut TcpStream,
    flood: Vec<TcpStream>,
    addr: SocketAddr,
    what: &str,
) {
    assert_eq!(round_trip(first, b"still"), b"still", "{what}");
    drop(flood);
    let echoed = super::eventually(super::DEADLINE, "served after the flood", || {
        try_echo(addr, b"again")
    });
    assert_eq!(echoed, b"again", "{what}");
}

/// Sends `msg` to a UDP echo at `addr` from a new socket and returns the first reply,
/// sending again up to five times (500 ms each): loopback practically never drops,
/// but UDP may.
pub fn udp_round_trip(addr: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = vec![0u8; 65_536];
    (0..5)
        .find_map(|_| {
            u.send_to(msg, addr).unwrap();
            u.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec())
        })
        .unwrap_or_else(|| panic!("no UDP reply from {addr}"))
}

/// Reads what comes until EOF or the first error (with a read timeout set: until the
/// peer has been quiet that long), for "what arrived in the end" checks.
pub fn read_until_quiet(r: &mut impl Read) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// Expects the server to have closed the connection with nothing more to read: EOF,
/// or a reset (it closed with input unread). Bytes, a timeout or another error fail
/// the case, named by `what`.
pub fn expect_closed(r: &mut impl Read, what: &str) {
    match read_to_eof(r) {
        Ok(rest) => assert!(
            rest.is_empty(),
            "{what}: unexpected bytes {:?}",
            String::from_utf8_lossy(&rest)
        ),
        Err(e) => assert_eq!(
            e.kind(),
            io::ErrorKind::ConnectionReset,
            "{what}: not closed: {e}"
        ),
    }
}

/// Bytes as text, invalid UTF-8 replaced (for messages and `contains` checks).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Whether an error is what a blocking socket with a timeout returns on timeout.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Writes pattern bytes until the peer stops taking them (a write blocks for
/// `stall`) or `limit` bytes are sent. Returns the bytes sent and whether it stalled.
pub fn send_until_blocked(s: &mut TcpStream, stall: Duration, limit: u64) -> (u64, bool) {
    s.set_write_timeout(Some(stall)).unwrap();
    let mut sent = 0u64;
    let stalled = loop {
        if sent >= limit {
            break false;
        }
        let n = (limit - sent).min(CHUNK as u64) as usize;
        match s.write(pattern_at(sent, n)) {
            Ok(0) => panic!("write returned 0"),
            Ok(n) => sent += n as u64,
            Err(e) if is_timeout(&e) => break true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("write after {sent} bytes: {e}"),
        }
    };
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    (sent, stalled)
}

/// A Unix socket path in the temp dir, unique in this run; any stale file is removed.
pub fn temp_socket_path(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("readyloop-{}-{tag}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// The first of `n` consecutive TCP ports on 127.0.0.1 that were all free a moment
/// ago, for a server that takes a port range (FTP passive ports). Tried from a
/// pseudo-random start in 20000..30000, below the kernel's ephemeral range, so test
/// runs in parallel (and other worktrees) rarely meet; the range can still be taken
/// between this check and its use.
pub fn free_port_range(n: u16) -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let call = NEXT.fetch_add(1, Ordering::Relaxed) as u64;
    let mut x = (nanos ^ (u64::from(std::process::id()) << 20) ^ (call << 40)) | 1;
    for _ in 0..200 {
        // xorshift64: the next candidate start.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let lo = 20_000 + (x % 10_000) as u16;
        let free = (lo..lo + n).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return lo;
        }
    }
    panic!("no {n} consecutive free ports in 20000..30000 after 200 tries");
}
