//! The shape of the echo example in Python's `selectors` documentation, on this
//! crate's [`KeyedSelector`]: the listening socket is registered with an `accept`
//! callback as its data; each ready key's data is called with the socket and the mask.
//!
//! ```text
//! cargo run --example selectors_echo -- --backend poll --listen 127.0.0.1:1234
//! ```
//!
//! Rust differences from the Python original: sockets live in a map owned by the
//! state (the selector keeps descriptors, not objects); events are collected before
//! the callbacks run, because a callback changes the selector; and a reply the socket
//! cannot take at once is kept and sent when the key reports writable (`modify`),
//! where the Python example would silently drop it.

mod common;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

use clap::Parser;
use readyloop::selector::{Backend, Interest, KeyedSelector, Readiness};

#[derive(Parser, Debug)]
#[command(about = "Python's selectors echo example, in Rust on readyloop")]
struct Args {
    /// Readiness backend: select, poll, epoll, epoll-et, mio, polling.
    #[arg(long, default_value = "epoll")]
    backend: Backend,
    /// TCP address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:1234")]
    listen: String,
}

/// What a key's data is: the callback to run when it is ready.
type Callback = fn(&mut State, RawFd, Readiness);

struct State {
    sel: KeyedSelector<Callback>,
    listener: TcpListener,
    conns: HashMap<RawFd, (TcpStream, Vec<u8>)>,
}

fn accept(st: &mut State, _fd: RawFd, _mask: Readiness) {
    loop {
        match st.listener.accept() {
            Ok((conn, addr)) => {
                log::info!("accepted {addr}");
                if let Err(e) = conn.set_nonblocking(true) {
                    log::warn!("{addr}: {e}");
                    continue;
                }
                let fd = conn.as_raw_fd();
                match st.sel.register(fd, Interest::READABLE, read) {
                    Ok(_) => {
                        st.conns.insert(fd, (conn, Vec::new()));
                    }
                    Err(e) => log::warn!("{addr}: cannot register: {e}"), // conn dropped: closed
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                log::warn!("accept: {e}");
                return;
            }
        }
    }
}

fn close(st: &mut State, fd: RawFd) {
    // Unregister before close.
    if let Err(e) = st.sel.unregister(fd) {
        log::warn!("unregister {fd}: {e}");
    }
    st.conns.remove(&fd);
}

fn read(st: &mut State, fd: RawFd, mask: Readiness) {
    let Some((conn, pending)) = st.conns.get_mut(&fd) else {
        return;
    };
    if mask.is_writable() && !pending.is_empty() {
        match conn.write(pending) {
            Ok(n) => {
                pending.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return close(st, fd),
        }
    }
    let mut buf = [0u8; 1000];
    if mask.is_readable() && pending.is_empty() {
        loop {
            match conn.read(&mut buf) {
                Ok(0) => return close(st, fd),
                Ok(n) => match conn.write(&buf[..n]) {
                    Ok(w) => pending.extend_from_slice(&buf[w..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        pending.extend_from_slice(&buf[..n])
                    }
                    Err(_) => return close(st, fd),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return close(st, fd),
            }
            if !pending.is_empty() {
                break;
            }
        }
    }
    // Wait for room while a reply is pending, for data otherwise.
    let want = if pending.is_empty() {
        Interest::READABLE
    } else {
        Interest::WRITABLE
    };
    if let Err(e) = st.sel.modify(fd, want) {
        log::warn!("modify {fd}: {e}");
        close(st, fd);
    }
}

fn main() {
    common::init_logging();
    let args = Args::parse();
    let listener = TcpListener::bind(&args.listen).unwrap_or_else(|e| common::die("bind", e));
    listener
        .set_nonblocking(true)
        .unwrap_or_else(|e| common::die("set_nonblocking", e));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| common::die("local_addr", e));
    let mut st = State {
        sel: KeyedSelector::new(args.backend).unwrap_or_else(|e| common::die("selector", e)),
        listener,
        conns: HashMap::new(),
    };
    let lfd = st.listener.as_raw_fd();
    st.sel
        .register(lfd, Interest::READABLE, accept)
        .unwrap_or_else(|e| common::die("register", e));
    common::announce(&format!("tcp://{addr}"), args.backend);
    let mut ready: Vec<(RawFd, Callback, Readiness)> = Vec::new();
    loop {
        ready.clear();
        match st.sel.select(None) {
            Ok(events) => ready.extend(events.map(|(key, mask)| (key.fd, key.data, mask))),
            Err(e) => common::die("select", e),
        }
        for &(fd, callback, mask) in &ready {
            callback(&mut st, fd, mask);
        }
    }
}
