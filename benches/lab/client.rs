//! A minimal blocking HTTP/1.1 client: readiness checks (nginx's start), warm-up, the
//! self-test. Its own module so that `http.rs` (the workload) and `nginx.rs` (a
//! contender it starts) both use it without importing each other.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One response as the client saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub server: String,
    pub body: Vec<u8>,
}

/// A keep-alive connection.
pub struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        s.set_nodelay(true)?;
        Ok(Client {
            s,
            buf: Vec::with_capacity(8192),
        })
    }

    /// `GET path`, reading the whole response (`Content-Length` framing only).
    pub fn get(&mut self, path: &str) -> io::Result<Reply> {
        write!(self.s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
        let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
        let mut chunk = [0u8; 16 * 1024];
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > 64 * 1024 {
                return Err(bad("response head too long"));
            }
            let n = self.s.read(&mut chunk)?;
            if n == 0 {
                return Err(bad("connection closed before a response"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|_| bad("head not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let (mut len, mut server) = (None, String::new());
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse::<usize>().ok();
                } else if k.eq_ignore_ascii_case("server") {
                    server = v.trim().to_string();
                }
            }
        }
        let len = len.ok_or_else(|| bad("no Content-Length"))?;
        self.buf.drain(..head_end);
        while self.buf.len() < len {
            let n = self.s.read(&mut chunk)?;
            if n == 0 {
                return Err(bad("connection closed in a body"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let body: Vec<u8> = self.buf.drain(..len).collect();
        Ok(Reply {
            status,
            server,
            body,
        })
    }
}
