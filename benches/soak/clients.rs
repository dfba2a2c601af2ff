//! The clients: well-behaved ones, whose every failure counts, and misbehaving ones,
//! whose fate is only survived.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

/// What the clients did.
#[derive(Default)]
pub struct Tally {
    pub echo_trips: AtomicU64,
    pub http_requests: AtomicU64,
    pub chat_messages: AtomicU64,
    pub half_closes: AtomicU64,
    pub misbehaving: AtomicU64,
    pub errors: AtomicU64,
    pub first_errors: Mutex<Vec<String>>,
}

impl Tally {
    pub fn error(&self, what: String) {
        self.errors.fetch_add(1, Relaxed);
        let mut v = self.first_errors.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() < 10 {
            v.push(what);
        }
    }
}

/// xorshift64: the clients' choices, reproducible per thread.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between a well-behaved client's operations (the machine is shared).
pub const PACE: Duration = Duration::from_millis(2);

pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

pub fn echo_client(
    addr: SocketAddr,
    stop: &AtomicBool,
    t: &Tally,
    rng: &mut Rng,
) -> io::Result<()> {
    let mut c = connect(addr)?;
    for _ in 0..50 {
        if stop.load(Relaxed) {
            break;
        }
        let n = 1 + rng.below(16 << 10) as usize;
        let seed = rng.next() as u8;
        let msg: Vec<u8> = (0..n).map(|i| seed.wrapping_add(i as u8)).collect();
        c.write_all(&msg)?;
        let mut back = vec![0; n];
        c.read_exact(&mut back)?;
        if back != msg {
            return Err(io::Error::other("echo: wrong bytes"));
        }
        t.echo_trips.fetch_add(1, Relaxed);
        thread::sleep(PACE);
    }
    Ok(())
}

pub fn half_close_client(addr: SocketAddr, t: &Tally, rng: &mut Rng) -> io::Result<()> {
    let mut c = connect(addr)?;
    let msg: Vec<u8> = (0..1 + rng.below(32 << 10)).map(|i| i as u8).collect();
    c.write_all(&msg)?;
    c.shutdown(Shutdown::Write)?;
    let mut back = Vec::new();
    c.read_to_end(&mut back)?;
    if back != msg {
        return Err(io::Error::other(format!(
            "half-close: {} of {} bytes back",
            back.len(),
            msg.len()
        )));
    }
    t.half_closes.fetch_add(1, Relaxed);
    Ok(())
}

/// One HTTP response with a `Content-Length` body.
pub fn http_response(r: &mut BufReader<TcpStream>) -> io::Result<(u16, Vec<u8>)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 || !line.ends_with('\n') {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let mut len = 0;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || !h.ends_with('\n') {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            if n.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().map_err(io::Error::other)?;
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok((status, body))
}

pub fn http_client(
    addr: SocketAddr,
    stop: &AtomicBool,
    t: &Tally,
    rng: &mut Rng,
) -> io::Result<()> {
    let mut r = BufReader::new(connect(addr)?);
    for i in 0..100 {
        if stop.load(Relaxed) {
            break;
        }
        let (req, want) = if i % 2 == 0 {
            (
                b"GET /plaintext HTTP/1.1\r\nHost: soak\r\n\r\n".to_vec(),
                b"Hello, World!".to_vec(),
            )
        } else {
            let body: Vec<u8> = (0..1 + rng.below(4096)).map(|j| j as u8).collect();
            let mut req = format!(
                "POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            req.extend(&body);
            (req, body)
        };
        r.get_mut().write_all(&req)?;
        let (status, body) = http_response(&mut r)?;
        if status != 200 || body != want {
            return Err(io::Error::other(format!(
                "http: status {status}, wrong body"
            )));
        }
        t.http_requests.fetch_add(1, Relaxed);
        thread::sleep(PACE);
    }
    Ok(())
}

pub struct ChatLine {
    pub r: BufReader<TcpStream>,
}

impl ChatLine {
    pub fn join(addr: SocketAddr, nick: &str, room: &str) -> io::Result<ChatLine> {
        let mut c = ChatLine {
            r: BufReader::new(connect(addr)?),
        };
        c.send(nick)?;
        c.until(|l| l.starts_with(&format!("* hello, {nick}!")))?;
        c.send(&format!("/join {room}"))?;
        c.until(|l| l.starts_with(&format!("* you are in {room}")))?;
        Ok(c)
    }

    pub fn send(&mut self, line: &str) -> io::Result<()> {
        self.r.get_mut().write_all(format!("{line}\n").as_bytes())
    }

    pub fn until(&mut self, pred: impl Fn(&str) -> bool) -> io::Result<String> {
        loop {
            let mut l = String::new();
            if self.r.read_line(&mut l)? == 0 || !l.ends_with('\n') {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let l = l.trim_end();
            if pred(l) {
                return Ok(l.to_string());
            }
        }
    }
}

/// A talker and a listener in a room of their own: the listener must see every
/// line, in order (the flood limit allows 20 at once).
pub fn chat_pair(addr: SocketAddr, id: u64, t: &Tally) -> io::Result<()> {
    let room = format!("soak{id}");
    let mut listener = ChatLine::join(addr, &format!("l{id}"), &room)?;
    let mut talker = ChatLine::join(addr, &format!("t{id}"), &room)?;
    for i in 0..10 {
        talker.send(&format!("line {i}"))?;
    }
    let prefix = format!("<t{id}> line ");
    for i in 0..10 {
        let l = listener.until(|l| l.starts_with(&prefix))?;
        if l[prefix.len()..] != i.to_string() {
            return Err(io::Error::other(format!("chat: {l:?}, expected line {i}")));
        }
        t.chat_messages.fetch_add(1, Relaxed);
    }
    talker.send("/quit")?;
    listener.send("/quit")?;
    Ok(())
}

/// One misbehaving action, chosen at random; whatever happens to it is fine.
pub fn misbehave(s: &Addrs, rng: &mut Rng, id: u64) {
    let _ = (|| -> io::Result<()> {
        match rng.below(8) {
            // Slow reader on echo: send a lot, never read, go away.
            0 => {
                let mut c = connect(s.echo)?;
                c.set_write_timeout(Some(Duration::from_secs(2)))?;
                let chunk = vec![b'x'; 64 << 10];
                for _ in 0..32 {
                    c.write_all(&chunk)?;
                }
                thread::sleep(Duration::from_secs(1));
            }
            // Slow reader in the chat lobby: registered, never reads.
            1 => {
                let mut c = connect(s.chat)?;
                c.write_all(format!("slow{id}\n").as_bytes())?;
                thread::sleep(Duration::from_secs(3));
            }
            // Slowloris: one header byte at a time.
            2 => {
                let mut c = connect(s.http)?;
                c.write_all(b"GET /plaintext HTTP/1.1\r\nX-Slow: ")?;
                for _ in 0..12 {
                    c.write_all(b"a")?;
                    thread::sleep(Duration::from_millis(250));
                }
            }
            // Chat flood: far more lines than the limit lets through.
            3 => {
                let mut c = connect(s.chat)?;
                let mut lines = format!("flood{id}\n");
                for i in 0..500 {
                    lines.push_str(&format!("flood line {i}\n"));
                }
                c.write_all(lines.as_bytes())?;
                c.set_read_timeout(Some(Duration::from_millis(500)))?;
                let mut sink = [0u8; 65536];
                while c.read(&mut sink)? > 0 {}
            }
            // A burst of connections, dropped at once.
            4 => {
                let held: Vec<TcpStream> = (0..50)
                    .filter_map(|i| connect([s.echo, s.http, s.chat][i % 3]).ok())
                    .collect();
                drop(held);
            }
            // A reset in the middle of a request.
            5 => {
                let mut c = connect(s.http)?;
                c.write_all(
                    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial",
                )?;
                readyloop::sys::socket::set_linger_zero(c.as_fd())?;
            }
            // Garbage to every server.
            6 => {
                for addr in [s.echo, s.http, s.chat] {
                    let mut c = connect(addr)?;
                    c.set_read_timeout(Some(Duration::from_millis(300)))?;
                    let junk: Vec<u8> =
                        (0..1 + rng.below(4096)).map(|_| rng.next() as u8).collect();
                    c.write_all(&junk)?;
                    let mut sink = [0u8; 65536];
                    while c.read(&mut sink)? > 0 {}
                }
            }
            // A half-closed chat client: says hello, shuts its write side.
            _ => {
                let mut c = connect(s.chat)?;
                c.write_all(format!("half{id}\nhello\n").as_bytes())?;
                c.shutdown(Shutdown::Write)?;
                c.set_read_timeout(Some(Duration::from_secs(2)))?;
                let mut sink = [0u8; 65536];
                while c.read(&mut sink)? > 0 {}
            }
        }
        Ok(())
    })();
}

#[derive(Clone, Copy)]
pub struct Addrs {
    pub echo: SocketAddr,
    pub http: SocketAddr,
    pub chat: SocketAddr,
}
