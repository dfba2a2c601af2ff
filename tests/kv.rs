//! The `kv_server` example as a child process: state shared across connections, a
//! line protocol (pipelined, CRLF or LF, bad input answered and survived), the idle
//! timeout, QUIT. Every case runs on every backend.

#[macro_use]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use readyloop::selector::Backend;

use support::*;

fn server(backend: Backend, idle_ms: &str) -> (ServerProcess, SocketAddr) {
    let mut p = ServerProcess::example_server(
        "kv_server",
        backend,
        &[
            "--listen",
            "127.0.0.1:0",
            "--idle-timeout-ms",
            idle_ms,
            "--max-keys",
            "3",
        ],
        None,
    );
    let addr = p.tcp_addr();
    (p, addr)
}

/// Sends `req` and reads `n` reply lines.
fn ask(c: &mut BufReader<TcpStream>, req: &[u8], n: usize) -> Vec<String> {
    c.get_mut().write_all(req).unwrap();
    (0..n)
        .map(|_| {
            let mut l = String::new();
            c.read_line(&mut l).unwrap();
            assert!(l.ends_with("\r\n"), "{l:?}");
            l.trim_end().to_string()
        })
        .collect()
}

per_backend!(
    fn shared_state_and_pipelining(backend: Backend) {
        let (_p, addr) = server(backend, "0");
        let mut a = BufReader::new(connect(addr));
        let mut b = BufReader::new(connect(addr));
        assert_eq!(ask(&mut a, b"SET greeting hello world\r\n", 1), ["OK"]);
        // Another connection sees it; three commands in one write, LF and CRLF.
        assert_eq!(
            ask(&mut b, b"get greeting\nDEL nothing\r\nKEYS\n", 3),
            ["VALUE hello world", "NOT_FOUND", "KEYS 1"]
        );
        // Bad input gets an error and the connection goes on.
        let long = [b"GET ".as_slice(), &vec![b'k'; 40_000], b"\n"].concat();
        assert_eq!(ask(&mut b, &long, 1), ["ERROR line too long"]);
        assert_eq!(
            ask(&mut b, b"FLY away\nSET k\nGET a b\n\n", 4),
            [
                "ERROR unknown command",
                "ERROR missing value",
                "ERROR unexpected arguments",
                "ERROR empty command"
            ]
        );
        assert_eq!(
            ask(&mut b, b"SET x 1\nSET y 2\nSET z 3\n", 3),
            ["OK", "OK", "ERROR store full"]
        );
        assert_eq!(
            ask(&mut a, b"DEL greeting\nGET greeting\n", 2),
            ["DELETED", "NOT_FOUND"]
        );
        assert_eq!(ask(&mut a, b"QUIT\nKEYS\n", 1), ["BYE"]);
        assert_eq!(read_to_eof(&mut a).unwrap(), b"", "nothing after BYE");
    }

    fn idle_timeout_closes(backend: Backend) {
        let (_p, addr) = server(backend, "300");
        let mut c = BufReader::new(connect(addr));
        let start = Instant::now();
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(150));
            assert_eq!(ask(&mut c, b"KEYS\n", 1), ["KEYS 0"]);
        }
        let mut rest = String::new();
        c.read_line(&mut rest).unwrap();
        assert_eq!(rest, "ERROR idle timeout\r\n");
        assert_eq!(read_to_eof(&mut c).unwrap(), b"");
        assert!(start.elapsed() >= Duration::from_millis(900));
    }
);
