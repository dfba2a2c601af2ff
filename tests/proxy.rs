//! The `proxy` example (a TCP relay) as a child process, in front of `echo_server`
//! or of a backend played by the test: bulk data with bounded memory, a client that
//! stops reading, half-close forwarded in both orders, refused and timed-out
//! backends, graceful shutdown.
//!
//! Every case runs on every backend (each case is written inside `per_backend!`): the
//! proxy and the echo server both run on it.

#[macro_use]
mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::thread;
use std::time::{Duration, Instant};

use readyloop::selector::Backend;

use support::*;

/// Starts the proxy in front of `to`.
fn proxy(backend: Backend, to: SocketAddr, extra: &[&str]) -> (ServerProcess, SocketAddr) {
    let to = to.to_string();
    let mut args = vec!["--listen", "127.0.0.1:0", "--to", to.as_str()];
    args.extend_from_slice(extra);
    let mut p = ServerProcess::example_server("proxy", backend, &args, None);
    let addr = p.tcp_addr();
    (p, addr)
}

/// The proxy's peak resident memory may grow by this much over its idle size while
/// 64 MiB pass: a few watermarks' worth per connection, nowhere near the data.
const RSS_GROWTH_LIMIT: u64 = 24 << 20;

per_backend!(
    /// 64 MiB through the proxy to `echo_server` and back, read concurrently: every
    /// byte returns in order, the client's half-close travels to the echo server and
    /// its close comes back as EOF, and the proxy's memory stays bounded.
    fn bulk_through_echo_server(backend: Backend) {
        let mut echo = ServerProcess::echo_server(backend, &["--listen", "127.0.0.1:0"], None);
        let (p, addr) = proxy(backend, echo.tcp_addr(), &[]);
        let idle_rss = p.rss();
        let total: u64 = 64 << 20;
        let mut c = connect(addr);
        let mut reader = c.try_clone().unwrap();
        let rx = thread::spawn(move || check_pattern_until_eof(&mut reader));
        send_pattern(&mut c, total).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let (got, end) = rx.join().unwrap();
        end.unwrap_or_else(|e| panic!("after {got} bytes: {e}"));
        assert_eq!(got, total);
        let growth = p.peak_rss().saturating_sub(idle_rss);
        assert!(
            growth <= RSS_GROWTH_LIMIT,
            "proxy peak RSS grew by {growth} bytes moving {total}"
        );
        assert!(!p.stderr().contains("ERROR"), "{}", p.stderr());
    }

    /// A client that sends without reading: the chain stalls (nothing deadlocks, nothing
    /// is buffered without bound), then reading resumes and everything comes back.
    fn client_that_stops_reading_throttles_the_backend(backend: Backend) {
        let mut echo = ServerProcess::echo_server(backend, &["--listen", "127.0.0.1:0"], None);
        let (p, addr) = proxy(backend, echo.tcp_addr(), &[]);
        let idle_rss = p.rss();
        let mut c = connect(addr);
        let (sent, stalled) = send_until_blocked(&mut c, Duration::from_millis(500), 256 << 20);
        assert!(stalled, "256 MiB went in with nobody reading");
        let growth = p.rss().saturating_sub(idle_rss);
        assert!(
            growth <= RSS_GROWTH_LIMIT,
            "proxy RSS grew by {growth} bytes"
        );
        let mut reader = c.try_clone().unwrap();
        let rx = thread::spawn(move || check_pattern_until_eof(&mut reader));
        c.shutdown(Shutdown::Write).unwrap();
        let (got, end) = rx.join().unwrap();
        end.unwrap_or_else(|e| panic!("after {got} bytes: {e}"));
        assert_eq!(got, sent);
    }

    /// The backend shuts its write side first (after a greeting) and keeps reading: the
    /// client sees the greeting and EOF, can still send, and its EOF reaches the
    /// backend. Then the other order: the client shuts first, the backend answers.
    fn half_close_both_orders(backend: Backend) {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let (_p, addr) = proxy(backend, server.local_addr().unwrap(), &[]);

        // Backend first.
        let mut c = connect(addr);
        let (mut b, _) = server.accept().unwrap();
        timeouts(&b);
        b.write_all(b"greeting").unwrap();
        b.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_eof(&mut c).unwrap(), b"greeting");
        c.write_all(b"still talking").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_eof(&mut b).unwrap(), b"still talking");

        // Client first.
        let mut c = connect(addr);
        let (mut b, _) = server.accept().unwrap();
        timeouts(&b);
        c.write_all(b"request").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_eof(&mut b).unwrap(), b"request");
        b.write_all(b"response").unwrap();
        b.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_eof(&mut c).unwrap(), b"response");
    }

    /// A refused backend: the client's connection is closed cleanly (EOF, no reset),
    /// and the proxy goes on serving.
    fn refused_backend_closes_the_client(backend: Backend) {
        let dead = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let (p, addr) = proxy(backend, dead, &[]);
        for _ in 0..3 {
            let mut c = connect(addr);
            assert_eq!(read_to_eof(&mut c).unwrap(), b"");
        }
        eventually(DEADLINE, "the refusal logged", || {
            p.stderr().contains("refused").then_some(())
        });
    }

    /// A backend whose accept queue is full never answers the SYN: the connect times
    /// out (`--connect-timeout-ms`) and the client is closed cleanly.
    fn timed_out_backend_closes_the_client(backend: Backend) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        readyloop::sys::socket::listen(l.as_fd(), 0).unwrap();
        let to = l.local_addr().unwrap();
        let mut filled = Vec::new();
        loop {
            match TcpStream::connect_timeout(&to, Duration::from_millis(300)) {
                Ok(s) => filled.push(s),
                Err(e) if is_timeout(&e) => break,
                Err(e) => panic!("filling the accept queue: {e}"),
            }
            assert!(filled.len() < 16, "the accept queue never filled");
        }
        let (p, addr) = proxy(backend, to, &["--connect-timeout-ms", "300"]);
        let start = Instant::now();
        let mut c = connect(addr);
        assert_eq!(read_to_eof(&mut c).unwrap(), b"");
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(300), "closed after {took:?}");
        eventually(DEADLINE, "the timeout logged", || {
            p.stderr().contains("timed out").then_some(())
        });
    }

    /// SIGTERM while a backend is not reading: the proxy flushes what it holds for the
    /// backend and closes both sides cleanly (the backend reads a correct prefix, then
    /// EOF, not a reset; the client gets EOF), and exits 0.
    fn graceful_shutdown_flushes_both_sides(backend: Backend) {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let (mut p, addr) = proxy(backend, server.local_addr().unwrap(), &[]);
        let mut c = connect(addr);
        let (mut b, _) = server.accept().unwrap();
        timeouts(&b);
        b.write_all(b"hello").unwrap();
        let mut hello = [0u8; 5];
        c.read_exact(&mut hello).unwrap();
        // Fill the chain towards the backend, which does not read yet.
        let (sent, stalled) = send_until_blocked(&mut c, Duration::from_millis(300), 64 << 20);
        assert!(stalled);
        p.terminate();
        let (got, end) = check_pattern_until_eof(&mut b);
        end.unwrap_or_else(|e| panic!("backend: after {got} of {sent} bytes: {e}"));
        assert!(got > 0 && got <= sent, "backend got {got} of {sent}");
        assert_eq!(read_to_eof(&mut c).unwrap(), b"");
        let st = p.wait_exit(DEADLINE).expect("proxy exits after SIGTERM");
        assert!(st.success(), "{st}: {}", p.stderr_to_end());
    }
);
