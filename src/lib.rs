//! # readyloop
//!
//! An event-loop reactor written by hand on the operating system's readiness APIs
//! (`select`, `poll`, `epoll`), with protocol servers on top and a lab to compare the
//! backends. See the README for a tour and `docs/ARCHITECTURE.md` for the design of
//! record.
//!
//! # Platform
//!
//! **Linux only.** The backends and the networking layer use Linux interfaces
//! directly (`epoll`, `eventfd`, `accept4`, `sendfile`, `SO_REUSEPORT`,
//! `EPOLLEXCLUSIVE`, `TCP_DEFER_ACCEPT`); building for another OS stops with a
//! compile error saying so.
//!
//! # Examples
//!
//! An echo server on a free port, and a client on another thread that gets its line
//! back and stops the reactor:
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//! use std::time::Duration;
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
//! let mut reactor = Reactor::new(Backend::EpollEt)?;
//! let (_, addr) = reactor.listen_tcp("127.0.0.1:0", |_| Some(Box::new(Echo)))?;
//! let handle = reactor.handle();
//! let client = std::thread::spawn(move || -> std::io::Result<String> {
//!     let talk = || {
//!         let mut c = TcpStream::connect(addr)?;
//!         c.set_read_timeout(Some(Duration::from_secs(5)))?;
//!         c.write_all(b"hello\n")?;
//!         let mut line = String::new();
//!         BufReader::new(c).read_line(&mut line)?;
//!         Ok(line)
//!     };
//!     let line = talk();
//!     handle.stop()?; // whatever happened: `run` below must return
//!     line
//! });
//! reactor.run()?;
//! assert_eq!(client.join().expect("client thread")?, "hello\n");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Layers, bottom up (imports point down only; `net` calls [`sys`] directly for
//! socket calls, besides the reactor):
//! * [`sys`]: the only module with `unsafe`: thin wrappers over libc.
//! * [`selector`]: the `Selector` backends and the Python-shaped [`selector::KeyedSelector`].
//! * [`reactor`]: the loop: dispatch, timers, waker, signals, shutdown.
//! * [`net`]: listeners, buffered stream connections, UDP, Unix sockets.
//! * [`proto`]: protocols (echo, HTTP, chat, FTP, TFTP, ...), no socket syscalls of
//!   their own.
//!
//! [`recipes`]: short compiled programs for shared state, a client with a connect
//! timeout, a relay with flow control, an idle timeout, lines, a custom graceful
//! shutdown, and selectors with tokens.

#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "readyloop is Linux only: it uses epoll, eventfd, accept4, sendfile and \
     other Linux interfaces directly"
);

pub mod net;
pub mod proto;
pub mod reactor;
#[doc = include_str!("../docs/recipes.md")]
pub mod recipes {}
pub mod selector;
pub mod slab;
#[allow(unsafe_code)]
pub mod sys;
