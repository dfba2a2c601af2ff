//! An HTTP/1.1 server on the reactor: static files and simple data.
//!
//! * [`parser`]: the pure request parser (heads on `httparse`, bodies with
//!   `Content-Length` or chunked), every limit checked, unit-tested without sockets.
//! * [`response`]: [`Response`] and [`Body`], and the head writer.
//! * [`router`]: handlers for paths ([`Router`]); built in: `POST /echo`,
//!   `GET /api/stats`, `GET /plaintext`.
//! * [`files`]: the static-file service ([`FileService`]): safe paths, MIME types,
//!   index files, listings, validators, 304, ranges, `sendfile(2)`, a small cache.
//! * `conn` (private): the [`Protocol`] per connection:
//!   keep-alive (HTTP/1.1 by default, HTTP/1.0 on request), pipelining (answers in
//!   order, paced by backpressure), `Expect: 100-continue`, timeouts (header read,
//!   body, keep-alive idle, lingering close), access log.
//!
//! # Semantics in brief
//! * The path is percent-decoded, then its `.` and `..` segments are resolved (RFC 3986
//!   5.2.4) before anything sees it, so routes, handlers and files all get one spelling
//!   of a path; a `..` that climbs above `/` is 400.
//! * A request goes to the router first; a path no route claims goes to the files
//!   (when a root is set) or gets 404. A method outside [`router::KNOWN_METHODS`]
//!   gets 501; a known method a resource does not take gets 405 with `Allow`;
//!   `OPTIONS` gets 204 with `Allow` (`OPTIONS *`: the server's methods), or the
//!   status `GET` would get when the file is missing or refused (404, 403...).
//! * Every response carries `Date`, `Server` and (but for 1xx, 204 and 304)
//!   `Content-Length`; responses are never chunked. `HEAD` gets the `GET` head.
//! * A refused request (400, 408, 413, 414, 417, 431, 505, and 501 for a transfer
//!   coding; 501 for an unknown method keeps the connection, its framing being
//!   known) is answered with `Connection: close`; the server then shuts its write side and discards input for
//!   at most [`HttpConfig::linger_timeout`] before closing (a lingering close, so the
//!   client reads the answer instead of a reset).
//! * Access log: one line per response in the combined log format, at `info` level on
//!   the log target `readyloop::http::access` (times in UTC, the time the request was
//!   answered). The line is written once the response has been handed to the kernel
//!   (or the connection is lost), and its size is the body bytes that actually left.
//!
//! # Examples
//!
//! A server with a route of its own and a directory of files, on a free port; a
//! client on another thread asks for both on one keep-alive connection, then stops
//! the reactor.
//!
//! ```
//! use std::io::{self, Read, Write};
//! use std::net::{SocketAddr, TcpStream};
//! use std::time::Duration;
//! use readyloop::proto::http::{HttpConfig, HttpServer, Response, Router};
//! use readyloop::reactor::Reactor;
//! use readyloop::selector::Backend;
//!
//! let site = std::env::temp_dir().join(format!("readyloop-doc-http-{}", std::process::id()));
//! std::fs::create_dir_all(&site)?;
//! std::fs::write(site.join("index.html"), "<p>home</p>\n")?;
//!
//! let mut router = Router::with_builtins();
//! router.get("/hello", |_| Response::text(200, "hi\n"));
//! let cfg = HttpConfig { root: Some(site.clone()), ..HttpConfig::default() };
//! let server = HttpServer::new(cfg, router)?;
//! let mut reactor = Reactor::new(Backend::EpollEt)?;
//! let (_, addr) = server.listen(&mut reactor, "127.0.0.1:0")?;
//!
//! fn get_both(addr: SocketAddr) -> io::Result<String> {
//!     let mut c = TcpStream::connect(addr)?;
//!     c.set_read_timeout(Some(Duration::from_secs(5)))?;
//!     c.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")?;
//!     c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
//!     let mut answers = String::new();
//!     c.read_to_string(&mut answers)?; // the server closes after the second
//!     Ok(answers)
//! }
//! let handle = reactor.handle();
//! let client = std::thread::spawn(move || {
//!     let answers = get_both(addr);
//!     let _ = handle.stop(); // whatever happened: the loop below must end
//!     answers
//! });
//! reactor.run()?;
//! let answers = client.join().expect("client thread")?;
//! std::fs::remove_dir_all(&site)?;
//! assert!(answers.starts_with("HTTP/1.1 200 OK\r\n"), "{answers}");
//! assert!(answers.contains("\r\n\r\nhi\n"), "{answers}"); // the route
//! assert!(answers.ends_with("\r\n\r\n<p>home</p>\n"), "{answers}"); // the index file
//! assert_eq!(server.stats().requests.get(), 2);
//! # Ok::<(), std::io::Error>(())
//! ```

mod conn;
pub mod files;
pub mod parser;
pub mod response;
pub mod router;

pub use files::{FileOptions, FileService};
pub use parser::{HttpError, Limits};
pub use response::{Body, Response};
pub use router::{Request, Router, Stats};

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use crate::net::{Listen, ListenConfig, PeerAddr, Protocol};
use crate::reactor::HandlerId;
use response::DateCache;

/// Server settings. Every limit and timeout is configurable.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Request size limits (line 414, head 431, header count 431, body 413).
    pub limits: Limits,
    /// How long a client may take to send a whole request head, from its first byte
    /// (or from the connection's start): 408 beyond (slowloris).
    pub header_timeout: Duration,
    /// Longest pause while a request body arrives: 408 beyond.
    pub body_timeout: Duration,
    /// How long an idle keep-alive connection stays open.
    pub keepalive_timeout: Duration,
    /// How long to drain input after answering a refused request (or `Connection:
    /// close`) before closing.
    pub linger_timeout: Duration,
    /// Serve files under this directory; `None`: routes only.
    pub root: Option<PathBuf>,
    /// Static-file settings.
    pub files: FileOptions,
    /// The `Server` header.
    pub server_name: String,
    /// Write the access log (at `info` on target `readyloop::http::access`).
    pub access_log: bool,
    /// Listener settings (maximum connections, backlog, buffers and watermarks).
    pub listen: ListenConfig,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            limits: Limits::default(),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(75),
            linger_timeout: Duration::from_secs(2),
            root: None,
            files: FileOptions::default(),
            server_name: "readyloop".into(),
            access_log: true,
            // TCP_DEFER_ACCEPT: a connection is accepted with its request in hand.
            listen: ListenConfig {
                defer_accept: Some(Duration::from_secs(1)),
                ..ListenConfig::default()
            },
        }
    }
}

/// What every connection of a server shares (one reactor thread: no locks).
pub(crate) struct Shared {
    pub(crate) cfg: HttpConfig,
    pub(crate) router: Router,
    pub(crate) files: Option<FileService>,
    pub(crate) stats: Stats,
    pub(crate) date: RefCell<DateCache>,
}

/// An HTTP server: configuration, router, file service and counters. Build one,
/// then [`listen`](Self::listen) (or hand [`factory`](Self::factory) to a listener).
#[derive(Clone)]
pub struct HttpServer {
    shared: Rc<Shared>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("cfg", &self.shared.cfg)
            .field("router", &self.shared.router)
            .finish_non_exhaustive()
    }
}

impl HttpServer {
    /// A server with `cfg` and `router`.
    ///
    /// # Errors
    /// When `cfg.root` is set and cannot be resolved or is not a directory (the error
    /// names the root).
    pub fn new(cfg: HttpConfig, router: Router) -> io::Result<HttpServer> {
        let files = match &cfg.root {
            Some(root) => Some(FileService::new(root, cfg.files.clone()).map_err(|e| {
                io::Error::new(e.kind(), format!("document root {}: {e}", root.display()))
            })?),
            None => None,
        };
        Ok(HttpServer {
            shared: Rc::new(Shared {
                cfg,
                router,
                files,
                stats: Stats::default(),
                date: RefCell::new(DateCache::default()),
            }),
        })
    }

    /// A factory building one connection handler per accepted socket.
    pub fn factory(&self) -> impl FnMut(&PeerAddr) -> Option<Box<dyn Protocol>> {
        let shared = self.shared.clone();
        move |_| Some(Box::new(conn::HttpConn::new(shared.clone())) as Box<dyn Protocol>)
    }

    /// Listens on TCP `addr` with the configured listener settings.
    ///
    /// # Errors
    /// When `addr` does not resolve, or the socket cannot be created, bound or put
    /// to listen, or registered with the reactor.
    pub fn listen(
        &self,
        net: &mut impl Listen,
        addr: impl ToSocketAddrs,
    ) -> io::Result<(HandlerId, SocketAddr)> {
        net.listen_tcp_with(addr, self.factory(), self.shared.cfg.listen.clone())
    }

    /// The server's counters.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// The configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.shared.cfg
    }
}
