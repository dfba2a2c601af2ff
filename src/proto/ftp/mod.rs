//! An FTP server (RFC 959, with RFC 2389 `FEAT`/`OPTS`, RFC 2428 `EPSV`/`EPRT`,
//! RFC 3659 `SIZE`/`MDTM`/`REST`/`MLST`/`MLSD`) on the reactor, and the classroom's
//! length-prefixed "mini" file protocol on the same store.
//!
//! * [`command`]: the command-line parser and the `PORT`/`EPRT`/`EPSV` argument
//!   parsers, pure functions on bytes.
//! * [`reply`]: replies, one-line and multi-line, as RFC 959 4.2 writes them.
//! * [`jail`]: virtual paths to real paths that never leave the user's root (the
//!   shared [`crate::proto::jail`], re-exported here).
//! * [`store`]: atomic uploads (temporary file renamed into place), listings, times.
//! * [`accounts`]: the users file, Argon2id password hashes.
//! * `data` (private): passive listeners, active connects and the data connection,
//!   each its own handler on the same reactor.
//! * `session` (private): the control connection's state machine.
//! * [`mini`]: the mini protocol's front end.
//!
//! # Semantics in brief
//! * Anonymous logins (`anonymous` or `ftp`, any password) are read-only unless
//!   [`FtpConfig::anonymous_upload`]; they are allowed when
//!   [`FtpConfig::anonymous`] is set.
//! * Passive mode binds one listener per transfer on the control connection's local
//!   address, on a port of [`FtpConfig::passive_ports`]; the first connection from
//!   the control peer's address is the data connection, any other is refused.
//!   `PORT`/`EPRT` to an address other than the client's, or to a port below 1024,
//!   is refused (501, RFC 2577 bounce attack).
//! * Data setup (listener waiting, connect in progress, connection waiting for a
//!   command) is bounded by [`FtpConfig::data_setup_timeout`] (then 425); a transfer
//!   that moves no byte for [`FtpConfig::stall_timeout`] is aborted (426).
//! * Uploads go to a temporary file in the target directory, renamed over the target
//!   only once the client closed the data connection cleanly: a reset, `ABOR`, a
//!   timeout or a write error leaves any old file intact and removes the temporary
//!   one. `ENOSPC`/`EDQUOT` answer 452, permission errors 550.
//! * Logs: `readyloop::ftp::access` (logins, changes) and `readyloop::ftp::xfer`
//!   (one line per transfer: peer, user, command, path, bytes, seconds, outcome).
//!
//! # Examples
//!
//! An anonymous, read-only server on a free port; a client on another thread logs
//! in, asks for the size of a file, quits, and stops the reactor.
//!
//! ```
//! use std::io::{self, Read, Write};
//! use std::net::{SocketAddr, TcpStream};
//! use std::time::Duration;
//! use readyloop::proto::ftp::{FtpConfig, FtpServer};
//! use readyloop::reactor::Reactor;
//! use readyloop::selector::Backend;
//!
//! let root = std::env::temp_dir().join(format!("readyloop-doc-ftp-{}", std::process::id()));
//! std::fs::create_dir_all(&root)?;
//! std::fs::write(root.join("hello.txt"), "hello\n")?;
//!
//! let cfg = FtpConfig { anonymous: true, ..FtpConfig::new(root.clone()) };
//! let server = FtpServer::new(cfg)?;
//! let mut reactor = Reactor::new(Backend::EpollEt)?;
//! let (_, addr) = server.listen(&mut reactor, "127.0.0.1:0")?;
//!
//! fn session(addr: SocketAddr) -> io::Result<String> {
//!     let mut c = TcpStream::connect(addr)?;
//!     c.set_read_timeout(Some(Duration::from_secs(5)))?;
//!     c.write_all(b"USER anonymous\r\nPASS guest\r\nSIZE hello.txt\r\nQUIT\r\n")?;
//!     let mut replies = String::new();
//!     c.read_to_string(&mut replies)?; // the server closes after QUIT
//!     Ok(replies)
//! }
//! let handle = reactor.handle();
//! let client = std::thread::spawn(move || {
//!     let replies = session(addr);
//!     let _ = handle.stop(); // whatever happened: the loop below must end
//!     replies
//! });
//! reactor.run()?;
//! let replies = client.join().expect("client thread")?;
//! std::fs::remove_dir_all(&root)?;
//! assert!(replies.starts_with("220 "), "{replies}");
//! assert!(replies.contains("\r\n230 "), "{replies}"); // logged in
//! assert!(replies.contains("\r\n213 6\r\n"), "{replies}"); // SIZE
//! assert!(replies.contains("\r\n221 "), "{replies}"); // goodbye
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod accounts;
pub mod command;
mod data;
pub use crate::proto::jail;
pub mod mini;
pub mod reply;
mod session;
pub mod store;

use std::cell::Cell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::net::{Listen, ListenConfig, PeerAddr, Protocol, StreamConfig};
use crate::reactor::HandlerId;
pub use accounts::{Account, Users};
pub use jail::Jail;

/// Server settings.
#[derive(Clone, Debug)]
pub struct FtpConfig {
    /// The root of anonymous sessions and of the mini front end.
    pub root: PathBuf,
    /// Named accounts; `None`: none.
    pub users: Option<Users>,
    /// Allow anonymous logins (`anonymous`/`ftp`), read-only by default.
    pub anonymous: bool,
    /// Let anonymous sessions upload, make directories, rename and delete.
    pub anonymous_upload: bool,
    /// Passive ports to use (inclusive); `None`: any free port.
    pub passive_ports: Option<(u16, u16)>,
    /// Longest command line (500 beyond; never buffered past this).
    pub max_line: usize,
    /// A control connection idle this long (no command, no transfer) gets 421.
    pub idle_timeout: Duration,
    /// How long a data connection may take to be set up and used.
    pub data_setup_timeout: Duration,
    /// A transfer that moves no byte for this long is aborted (426).
    pub stall_timeout: Duration,
    /// Delay before answering a failed login.
    pub login_delay: Duration,
    /// Failed logins allowed per connection (then 421 and close).
    pub max_login_attempts: u32,
    /// Control connections at once (then 421).
    pub max_connections: usize,
    /// Control connections at once from one address (then 421).
    pub max_per_address: usize,
    /// Most entries in one listing.
    pub max_listing: usize,
    /// The 220 greeting text.
    pub greeting: String,
    /// The mini front end's settings.
    pub mini: mini::MiniConfig,
    /// Settings of the control listener.
    pub listen: ListenConfig,
    /// Settings of data connections.
    pub data_stream: StreamConfig,
}

impl FtpConfig {
    /// Defaults, serving `root`.
    pub fn new(root: PathBuf) -> FtpConfig {
        FtpConfig {
            root,
            users: None,
            anonymous: false,
            anonymous_upload: false,
            passive_ports: None,
            max_line: 4096,
            idle_timeout: Duration::from_secs(300),
            data_setup_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(120),
            login_delay: Duration::from_secs(1),
            max_login_attempts: 3,
            max_connections: 1000,
            max_per_address: 50,
            max_listing: 100_000,
            greeting: "readyloop FTP server ready".into(),
            mini: mini::MiniConfig::default(),
            listen: ListenConfig::default(),
            data_stream: StreamConfig::default(),
        }
    }
}

/// What every session shares (one reactor thread: no locks).
pub(crate) struct Shared {
    pub(crate) cfg: FtpConfig,
    pub(crate) anon_jail: Rc<Jail>,
    pub(crate) data_stream: Rc<StreamConfig>,
    /// Sessions open (in all, and per address) and the next passive port: shared by
    /// the servers of a reactor pool ([`SessionCounts`]).
    pub(crate) counts: SessionCounts,
    /// Password checks running on their own threads (this reactor's).
    pub(crate) verifying: Cell<usize>,
}

/// What the [`FtpServer`]s of several reactors (a [`Pool`](crate::reactor::pool::Pool),
/// one server per reactor) share so that `max_connections` and `max_per_address`
/// hold across reactors, and passive ports rotate over one range: session counts,
/// updated under one mutex once per session start and end (never per command or
/// byte), and the next passive port. A single-reactor server has its own.
#[derive(Clone, Debug, Default)]
pub struct SessionCounts {
    open: Arc<AtomicUsize>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    next_port: Arc<AtomicU16>,
}

impl SessionCounts {
    /// Counts a new session from `ip` if both limits allow it.
    pub(crate) fn admit(&self, ip: Option<IpAddr>, max: usize, max_per_address: usize) -> bool {
        let mut m = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let from_ip = ip.map_or(0, |ip| m.get(&ip).copied().unwrap_or(0));
        if self.open.load(Relaxed) >= max || from_ip >= max_per_address {
            return false;
        }
        self.open.fetch_add(1, Relaxed);
        if let Some(ip) = ip {
            *m.entry(ip).or_insert(0) += 1;
        }
        true
    }

    /// Uncounts a session admitted from `ip`.
    pub(crate) fn release(&self, ip: Option<IpAddr>) {
        let mut m = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self
            .open
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
        if let Some(ip) = ip {
            if let Some(n) = m.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&ip);
                }
            }
        }
    }

    /// Sessions open now.
    pub fn open(&self) -> usize {
        self.open.load(Relaxed)
    }

    pub(crate) fn next_port(&self) -> u16 {
        self.next_port.load(Relaxed)
    }

    pub(crate) fn set_next_port(&self, port: u16) {
        self.next_port.store(port, Relaxed);
    }
}

/// An FTP server: configuration and shared state. Build one, then
/// [`listen`](Self::listen) (and [`listen_mini`](Self::listen_mini)).
#[derive(Clone)]
pub struct FtpServer {
    shared: Rc<Shared>,
}

impl std::fmt::Debug for FtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpServer")
            .field("cfg", &self.shared.cfg)
            .finish_non_exhaustive()
    }
}

impl FtpServer {
    /// A server with `cfg`.
    ///
    /// # Errors
    ///
    /// As [`with_counts`](Self::with_counts).
    pub fn new(cfg: FtpConfig) -> io::Result<FtpServer> {
        Self::with_counts(cfg, SessionCounts::default())
    }

    /// A server with `cfg` whose session limits and passive ports are shared with
    /// every other server built with a clone of `counts` (one per reactor of a pool).
    ///
    /// # Errors
    ///
    /// * `cfg.root` cannot be resolved (missing: `NotFound`, permissions) or is not a
    ///   directory (`InvalidInput`); the message names the root.
    /// * `InvalidInput`: `cfg.passive_ports` is `(A, B)` with `A > B` or `A == 0`.
    pub fn with_counts(cfg: FtpConfig, counts: SessionCounts) -> io::Result<FtpServer> {
        let anon_jail = Jail::new(&cfg.root)
            .map_err(|e| io::Error::new(e.kind(), format!("root {}: {e}", cfg.root.display())))?;
        if let Some((lo, hi)) = cfg.passive_ports {
            if lo > hi || lo == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "passive port range must be A-B with 0 < A <= B",
                ));
            }
        }
        let first = cfg.passive_ports.map_or(0, |(lo, _)| lo);
        // The first server of a pool starts the rotation; the others go on with it.
        let _ = counts
            .next_port
            .compare_exchange(0, first, Relaxed, Relaxed);
        Ok(FtpServer {
            shared: Rc::new(Shared {
                data_stream: Rc::new(cfg.data_stream.clone()),
                cfg,
                anon_jail: Rc::new(anon_jail),
                counts,
                verifying: Cell::new(0),
            }),
        })
    }

    /// A factory building one control session per accepted socket.
    pub fn factory(&self) -> impl FnMut(&PeerAddr) -> Option<Box<dyn Protocol>> {
        let shared = self.shared.clone();
        move |peer| Some(Box::new(session::Session::new(shared.clone(), peer)) as Box<dyn Protocol>)
    }

    /// Listens for FTP control connections on TCP `addr`. The server speaks first
    /// (the 220 greeting), so `TCP_DEFER_ACCEPT` is never used here, whatever
    /// [`ListenConfig::defer_accept`] says: the client would wait for the greeting and
    /// the kernel for the client.
    ///
    /// # Errors
    ///
    /// As [`Listen::listen_tcp`]: `addr` does not resolve, cannot be bound or
    /// listened on, or the backend refuses the descriptor.
    pub fn listen(
        &self,
        net: &mut impl Listen,
        addr: impl ToSocketAddrs,
    ) -> io::Result<(HandlerId, SocketAddr)> {
        let cfg = ListenConfig {
            defer_accept: None,
            ..self.shared.cfg.listen.clone()
        };
        net.listen_tcp_with(addr, self.factory(), cfg)
    }

    /// Listens for the mini protocol on TCP `addr` (same root and jail as anonymous
    /// FTP sessions).
    ///
    /// # Errors
    ///
    /// As [`listen`](Self::listen).
    pub fn listen_mini(
        &self,
        net: &mut impl Listen,
        addr: impl ToSocketAddrs,
    ) -> io::Result<(HandlerId, SocketAddr)> {
        let shared = self.shared.clone();
        let factory = move |_: &PeerAddr| {
            Some(Box::new(mini::MiniConn::new(shared.clone())) as Box<dyn Protocol>)
        };
        net.listen_tcp_with(addr, factory, self.shared.cfg.listen.clone())
    }

    /// Control sessions open now.
    pub fn sessions(&self) -> usize {
        self.shared.counts.open()
    }

    /// The configuration.
    pub fn config(&self) -> &FtpConfig {
        &self.shared.cfg
    }
}
