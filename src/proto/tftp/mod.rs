//! A TFTP server: RFC 1350, with option negotiation (RFC 2347), `blksize` (RFC 2348),
//! `timeout` and `tsize` (RFC 2349) and `windowsize` (RFC 7440).
//!
//! [`TftpServer`] is the protocol of the well-known socket: it answers read (RRQ) and
//! write (WRQ) requests by opening a new UDP socket on an ephemeral port, registered
//! with the same reactor, for each transfer (its transfer ID, as RFC 1350 says). The
//! transfer runs there (see `transfer` for the state machines), driven by datagrams
//! and the reactor's timers: no thread per transfer.
//!
//! # Examples
//!
//! A server on a free port; a client on another thread reads one short file (one
//! DATA block, answered by one ACK) and stops the reactor.
//!
//! ```
//! use std::io;
//! use std::net::{SocketAddr, UdpSocket};
//! use std::time::Duration;
//! use readyloop::net::Listen;
//! use readyloop::proto::tftp::{TftpConfig, TftpServer};
//! use readyloop::reactor::Reactor;
//! use readyloop::selector::Backend;
//!
//! let root = std::env::temp_dir().join(format!("readyloop-doc-tftp-{}", std::process::id()));
//! std::fs::create_dir_all(&root)?;
//! std::fs::write(root.join("hello.txt"), "hello\n")?;
//!
//! let mut reactor = Reactor::new(Backend::Epoll)?;
//! let server = TftpServer::new(TftpConfig::new(&root))?;
//! let (_, addr) = reactor.bind_udp("127.0.0.1:0", server)?;
//!
//! fn read_file(server: SocketAddr) -> io::Result<Vec<u8>> {
//!     let sock = UdpSocket::bind("127.0.0.1:0")?;
//!     sock.set_read_timeout(Some(Duration::from_secs(5)))?;
//!     sock.send_to(b"\x00\x01hello.txt\x00octet\x00", server)?; // RRQ
//!     let mut buf = [0; 516];
//!     let (n, transfer) = sock.recv_from(&mut buf)?; // DATA 1, from the transfer's port
//!     assert_eq!(&buf[..4], b"\x00\x03\x00\x01");
//!     sock.send_to(b"\x00\x04\x00\x01", transfer)?; // ACK 1: a short block ends it
//!     Ok(buf[4..n].to_vec())
//! }
//! let handle = reactor.handle();
//! let client = std::thread::spawn(move || {
//!     let got = read_file(addr);
//!     let _ = handle.stop(); // whatever happened: the loop below must end
//!     got
//! });
//! reactor.run()?;
//! let got = client.join().expect("client thread")?;
//! std::fs::remove_dir_all(&root)?;
//! assert_eq!(got, b"hello\n");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Behaviour, in short:
//!
//! * Modes `octet` and `netascii` (converted both ways); `mail` and others: ERROR 4.
//! * Names are relative to the root; absolute names, `..`, symlinks leading out and
//!   anything but a regular file are an access violation (ERROR 2); a missing file is
//!   ERROR 1.
//! * Writes only with [`TftpConfig::allow_write`] (else ERROR 2), never over an
//!   existing file (ERROR 6), into an existing directory. An upload is written to a
//!   hidden temporary file next to its target and linked into place only once
//!   complete; an upload that fails or is abandoned leaves nothing.
//! * At most [`TftpConfig::max_transfers`] at once; beyond, ERROR 0 with a message. A
//!   request repeated by a peer whose transfer is running is ignored (the transfer's
//!   own retransmission answers it).
//! * On the well-known socket: a malformed request gets ERROR 4 (or ERROR 8 for a
//!   refused option, see [`options`]); DATA or ACK gets ERROR 5; an ERROR is never
//!   answered; at most [`MAX_ERRORS_PER_SEC`] error replies a second.
//! * Memory per transfer is bounded by the window (clamped to
//!   [`TftpConfig::max_window_bytes`]); nothing a client sends is buffered beyond one
//!   datagram.

pub use crate::proto::jail;
pub mod netascii;
pub mod options;
pub mod packet;
mod transfer;

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::net::{DatagramProtocol, DatagramSocket, Datagrams};
use jail::{Jail, JailError};
use options::Limits;
use packet::{ErrorCode, Mode, Packet, Request};
use transfer::{Reader, Shared, Side, Source, Transfer, Writer};

/// Server settings.
#[derive(Clone, Debug)]
pub struct TftpConfig {
    /// The directory served.
    pub root: PathBuf,
    /// Accept write requests.
    pub allow_write: bool,
    /// Most transfers at once.
    pub max_transfers: usize,
    /// Retransmission timeout when the client does not negotiate one.
    pub timeout: Duration,
    /// Retransmissions without progress before a transfer is abandoned.
    pub retries: u32,
    /// Largest block size granted (at most 65464).
    pub max_blksize: usize,
    /// Largest window granted (RFC 7440).
    pub max_window: u16,
    /// Most bytes one transfer's window may hold; the window is clamped to fit.
    pub max_window_bytes: usize,
    /// Largest file accepted by a write.
    pub max_file_size: u64,
}

impl TftpConfig {
    /// Defaults for serving `root`: read-only, 64 transfers, 1 s timeout, 5 retries,
    /// windows up to 64 blocks and 1 MiB, uploads up to 4 GiB.
    pub fn new(root: impl Into<PathBuf>) -> TftpConfig {
        TftpConfig {
            root: root.into(),
            allow_write: false,
            max_transfers: 64,
            timeout: Duration::from_secs(1),
            retries: 5,
            max_blksize: options::MAX_BLKSIZE,
            max_window: 64,
            max_window_bytes: 1 << 20,
            max_file_size: 4 << 30,
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            max_blksize: self.max_blksize,
            max_window: self.max_window,
            max_window_bytes: self.max_window_bytes,
            max_file_size: self.max_file_size,
            timeout: self.timeout,
        }
    }
}

/// Counters of a running server ([`TftpServer::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TftpStats {
    /// Transfers in progress.
    pub active: usize,
    /// Transfers that completed.
    pub completed: u64,
    /// Transfers that ended in an error or a timeout.
    pub failed: u64,
}

/// A handle on a server's counters, usable after the server moved into the reactor.
#[derive(Clone, Debug)]
pub struct StatsHandle(Rc<RefCell<Shared>>);

impl StatsHandle {
    /// The counters now.
    pub fn get(&self) -> TftpStats {
        let s = self.0.borrow();
        TftpStats {
            active: s.active,
            completed: s.completed,
            failed: s.failed,
        }
    }
}

/// Most ERROR packets the well-known socket sends per second; beyond, refusals are
/// dropped (logged once per second), so spoofed requests cannot turn the server
/// into a steady source of datagrams towards a victim.
pub const MAX_ERRORS_PER_SEC: u32 = 200;

/// The protocol of the well-known TFTP socket.
pub struct TftpServer {
    cfg: TftpConfig,
    jail: Jail,
    shared: Rc<RefCell<Shared>>,
    /// Start of the current one-second window of error replies, and the count in it.
    errors: (Instant, u32),
    dropped_errors: u64,
}

impl std::fmt::Debug for TftpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TftpServer")
            .field("root", &self.jail.root())
            .field("active", &self.shared.borrow().active)
            .finish_non_exhaustive()
    }
}

/// A refusal of a request: the code and the message for the ERROR packet.
type Refusal = (ErrorCode, String);

fn refusal(code: ErrorCode, msg: &str) -> Refusal {
    (code, msg.to_string())
}

fn jail_refusal(e: JailError) -> Refusal {
    match e {
        JailError::Escape => refusal(ErrorCode::AccessViolation, "access violation"),
        JailError::NotFound => refusal(ErrorCode::NotFound, "file not found"),
        JailError::Io(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            refusal(ErrorCode::AccessViolation, "permission denied")
        }
        JailError::Io(_) => refusal(ErrorCode::AccessViolation, "cannot open the file"),
    }
}

fn open_refusal(e: io::Error) -> Refusal {
    match e.kind() {
        io::ErrorKind::NotFound => refusal(ErrorCode::NotFound, "file not found"),
        io::ErrorKind::AlreadyExists => refusal(ErrorCode::FileExists, "file already exists"),
        _ if e.raw_os_error() == Some(libc::ENOSPC) => refusal(ErrorCode::DiskFull, "disk full"),
        _ => refusal(ErrorCode::AccessViolation, "access violation"),
    }
}

/// A name for logs: the requested name, lossy and cut short.
fn display_name(name: &[u8]) -> String {
    let n = &name[..name.len().min(200)];
    String::from_utf8_lossy(n).into_owned()
}

impl TftpServer {
    /// A server for `cfg` (its root must be an existing directory). Bind it with
    /// [`Listen::bind_udp`](crate::net::Listen::bind_udp).
    ///
    /// # Errors
    ///
    /// `cfg.root` cannot be resolved (missing: `NotFound`, permissions) or is not a
    /// directory (`InvalidInput`); the message names the root.
    pub fn new(cfg: TftpConfig) -> io::Result<TftpServer> {
        let jail = Jail::new(&cfg.root).map_err(|e| {
            io::Error::new(e.kind(), format!("tftp root {}: {e}", cfg.root.display()))
        })?;
        Ok(TftpServer {
            cfg,
            jail,
            shared: Rc::default(),
            errors: (Instant::now(), 0),
            dropped_errors: 0,
        })
    }

    /// The server's counters, readable while it runs (on the reactor's thread).
    pub fn stats(&self) -> StatsHandle {
        StatsHandle(self.shared.clone())
    }

    /// Sends an ERROR to `to`, within [`MAX_ERRORS_PER_SEC`].
    fn send_error(
        &mut self,
        dg: &mut Datagrams<'_, '_>,
        to: SocketAddr,
        code: ErrorCode,
        msg: &str,
    ) {
        let now = Instant::now();
        if now.duration_since(self.errors.0) >= Duration::from_secs(1) {
            if self.dropped_errors > 0 {
                log::warn!(
                    "tftp: {} error replies dropped (over {MAX_ERRORS_PER_SEC}/s)",
                    self.dropped_errors
                );
                self.dropped_errors = 0;
            }
            self.errors = (now, 0);
        }
        if self.errors.1 >= MAX_ERRORS_PER_SEC {
            self.dropped_errors += 1;
            return;
        }
        self.errors.1 += 1;
        dg.send_to(&packet::error(code, msg), to);
    }

    /// Builds the transfer for a request, or says why not.
    fn prepare(
        &self,
        req: &Request<'_>,
        write: bool,
        peer: SocketAddr,
    ) -> Result<Transfer, Refusal> {
        let netascii = req.mode == Mode::Netascii;
        let name = display_name(req.filename);
        let limits = self.cfg.limits();
        let (side, params, oack) = if write {
            if !self.cfg.allow_write {
                return Err(refusal(ErrorCode::AccessViolation, "writes are disabled"));
            }
            let (dir, file) = self.jail.new_file(req.filename).map_err(jail_refusal)?;
            let dest = dir.join(&file);
            if std::fs::symlink_metadata(&dest).is_ok() {
                return Err(refusal(ErrorCode::FileExists, "file already exists"));
            }
            let (params, oack) = options::negotiate(&req.options, false, None, &limits)?;
            let (tmp, f) = temp_file(&dir, &file).map_err(open_refusal)?;
            let w = Writer::new(f, tmp, dest, netascii, self.cfg.max_file_size);
            (Side::Write(w), params, oack)
        } else {
            let path = self.jail.existing(req.filename).map_err(jail_refusal)?;
            // Only regular files: opening a FIFO would block the loop. O_NOFOLLOW: the
            // path is canonical, so a symlink in its place now was swapped in since;
            // O_NONBLOCK: should a FIFO be swapped in, the open does not wait.
            if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                return Err(refusal(ErrorCode::AccessViolation, "not a regular file"));
            }
            let f = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&path)
                .map_err(open_refusal)?;
            let meta = f.metadata().map_err(open_refusal)?;
            if !meta.is_file() {
                return Err(refusal(ErrorCode::AccessViolation, "not a regular file"));
            }
            let size = (!netascii).then_some(meta.len());
            let (params, oack) = options::negotiate(&req.options, true, size, &limits)?;
            (
                Side::Read(Reader::new(Source::new(f, netascii))),
                params,
                oack,
            )
        };
        let oack = (!oack.is_empty()).then(|| packet::oack(&oack));
        Ok(Transfer::new(
            peer,
            name,
            side,
            params,
            self.cfg.retries,
            oack,
            self.shared.clone(),
        ))
    }

    fn request(
        &mut self,
        dg: &mut Datagrams<'_, '_>,
        req: Request<'_>,
        write: bool,
        from: SocketAddr,
    ) {
        let (active, busy) = {
            let s = self.shared.borrow();
            (s.active, s.peers.contains(&from))
        };
        if busy {
            log::debug!("tftp: {from}: repeated request ignored");
            return;
        }
        if active >= self.cfg.max_transfers {
            log::warn!("tftp: {from}: refused, {active} transfers in progress");
            self.send_error(
                dg,
                from,
                ErrorCode::Undefined,
                "too many transfers; try again later",
            );
            return;
        }
        let what = if write { "write" } else { "read" };
        let t = match self.prepare(&req, write, from) {
            Ok(t) => t,
            Err((code, msg)) => {
                log::info!(
                    "tftp: {from}: {what} {} refused: {msg}",
                    display_name(req.filename)
                );
                self.send_error(dg, from, code, &msg);
                return;
            }
        };
        log::info!("tftp: {from}: {what} {} ({:?})", t.name, req.mode);
        // The transfer's socket: same address as ours, a new port (its TID).
        let ip = match dg.local_addr() {
            Ok(a) => a.ip(),
            Err(e) => {
                log::error!("tftp: local address: {e}");
                return;
            }
        };
        let started = UdpSocket::bind(SocketAddr::new(ip, 0))
            .and_then(|s| DatagramSocket::new(s, Box::new(t)))
            .and_then(|h| h.register(dg.reactor()));
        if let Err(e) = started {
            log::error!("tftp: {from}: cannot open a transfer socket: {e}");
            self.send_error(
                dg,
                from,
                ErrorCode::Undefined,
                "server cannot open a socket",
            );
        }
    }
}

/// Creates a new hidden temporary file in `dir` for an upload of `file`.
fn temp_file(dir: &std::path::Path, file: &std::path::Path) -> io::Result<(PathBuf, File)> {
    static N: AtomicU64 = AtomicU64::new(0);
    let base = file.to_string_lossy();
    let base: String = base.chars().take(64).collect();
    loop {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{base}.{}.{n}.tftp-part", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

impl DatagramProtocol for TftpServer {
    fn datagram_received(&mut self, dg: &mut Datagrams<'_, '_>, data: &[u8], from: SocketAddr) {
        match packet::parse(data) {
            Ok(Packet::Rrq(r)) => self.request(dg, r, false, from),
            Ok(Packet::Wrq(r)) => self.request(dg, r, true, from),
            Ok(Packet::Error { .. }) => {}
            Ok(Packet::Data { .. } | Packet::Ack { .. } | Packet::Oack { .. }) => {
                self.send_error(dg, from, ErrorCode::UnknownTid, "unknown transfer ID");
            }
            Err(e) => {
                // Never answer something that claims to be an ERROR (no error loops).
                if data.get(..2) != Some(&packet::ERROR.to_be_bytes()[..]) {
                    log::debug!("tftp: {from}: {e}");
                    self.send_error(dg, from, e.code(), &e.to_string());
                }
            }
        }
    }
}
