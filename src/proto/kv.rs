//! A small key-value server over lines: the recipe for state shared by every
//! connection of one reactor (`Rc<RefCell<..>>`: handlers run on one thread and need
//! not be `Send`), a line protocol on [`LineBuffer`], and an idle timeout.
//!
//! ```text
//! SET key value...   -> OK                  (the value is the rest of the line)
//! GET key            -> VALUE value | NOT_FOUND
//! DEL key            -> DELETED | NOT_FOUND
//! KEYS               -> KEYS n
//! QUIT               -> BYE, then the server closes
//! ```
//!
//! Commands are case-insensitive; lines end in `\n` or `\r\n`; replies end in
//! `\r\n`. Bad input gets `ERROR reason` and the connection goes on: an unknown
//! command, a missing key or value, a key longer than [`MAX_KEY`] or with control
//! bytes, a line longer than the limit (skipped whole), a full store. A client
//! silent for the idle timeout gets `ERROR idle timeout` and is closed.
//!
//! # Examples
//!
//! A server on a free port; a client on another thread sets and reads a key, quits,
//! and stops the reactor. The store outlives the connections.
//!
//! ```
//! use std::io::{self, Read, Write};
//! use std::net::{SocketAddr, TcpStream};
//! use std::time::Duration;
//! use readyloop::net::Listen;
//! use readyloop::proto::kv::{Kv, KvOptions, Store};
//! use readyloop::reactor::Reactor;
//! use readyloop::selector::Backend;
//!
//! let mut reactor = Reactor::new(Backend::Epoll)?;
//! let store = Store::shared(10_000);                  // Rc<RefCell<Store>>
//! let opts = KvOptions::default();
//! let (_, addr) = reactor.listen_tcp("127.0.0.1:0", Kv::factory(store.clone(), opts))?;
//!
//! fn talk(addr: SocketAddr) -> io::Result<String> {
//!     let mut c = TcpStream::connect(addr)?;
//!     c.set_read_timeout(Some(Duration::from_secs(5)))?;
//!     c.write_all(b"SET greeting hello world\r\nGET greeting\r\nQUIT\r\n")?;
//!     let mut replies = String::new();
//!     c.read_to_string(&mut replies)?; // the server closes after BYE
//!     Ok(replies)
//! }
//! let handle = reactor.handle();
//! let client = std::thread::spawn(move || {
//!     let replies = talk(addr);
//!     let _ = handle.stop(); // whatever happened: the loop below must end
//!     replies
//! });
//! reactor.run()?;
//! let replies = client.join().expect("client thread")?;
//! assert_eq!(replies, "OK\r\nVALUE hello world\r\nBYE\r\n");
//! assert_eq!(store.borrow().get(b"greeting"), Some(&b"hello world"[..]));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use super::framing::{Line, LineBuffer};
use crate::net::{Conn, PeerAddr, Protocol};

/// Longest key, in bytes.
pub const MAX_KEY: usize = 250;

/// One request line, parsed (borrowing the line).
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `GET key`.
    Get(&'a [u8]),
    /// `SET key value`: the value is everything after the key's separating space.
    Set(&'a [u8], &'a [u8]),
    /// `DEL key`.
    Del(&'a [u8]),
    /// `KEYS`: how many keys are stored.
    Keys,
    /// `QUIT`.
    Quit,
}

/// Parses one line (without its terminator). The error is the reply's reason.
///
/// # Errors
///
/// A blank line, an unknown command, a missing or malformed key (empty, longer
/// than [`MAX_KEY`], with control bytes), a `SET` without a value, or arguments
/// after `KEYS`/`QUIT`/a key.
pub fn parse(line: &[u8]) -> Result<Command<'_>, &'static str> {
    let (verb, rest) = split_word(line);
    if verb.is_empty() {
        return Err("empty command");
    }
    let upper = |w: &[u8]| -> Option<&'static str> {
        ["GET", "SET", "DEL", "KEYS", "QUIT"]
            .into_iter()
            .find(|v| w.eq_ignore_ascii_case(v.as_bytes()))
    };
    match upper(verb) {
        Some("KEYS") | Some("QUIT") if !rest.is_empty() => Err("unexpected arguments"),
        Some("KEYS") => Ok(Command::Keys),
        Some("QUIT") => Ok(Command::Quit),
        Some(v) => {
            let (key, rest) = split_word(rest);
            check_key(key)?;
            match v {
                "SET" if rest.is_empty() => Err("missing value"),
                "SET" => Ok(Command::Set(key, rest)),
                _ if !rest.is_empty() => Err("unexpected arguments"),
                "GET" => Ok(Command::Get(key)),
                _ => Ok(Command::Del(key)),
            }
        }
        None => Err("unknown command"),
    }
}

/// The first space-separated word and what follows its one separating space.
fn split_word(s: &[u8]) -> (&[u8], &[u8]) {
    match s.iter().position(|&b| b == b' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &[]),
    }
}

fn check_key(key: &[u8]) -> Result<(), &'static str> {
    if key.is_empty() {
        Err("missing key")
    } else if key.len() > MAX_KEY {
        Err("key too long")
    } else if key.iter().any(|b| b.is_ascii_control()) {
        Err("bad key")
    } else {
        Ok(())
    }
}

/// The store every connection shares.
#[derive(Debug, Default)]
pub struct Store {
    map: HashMap<Vec<u8>, Vec<u8>>,
    max_keys: usize,
}

impl Store {
    /// An empty store of at most `max_keys` keys, shared by reference counting
    /// (one reactor thread: `Rc<RefCell<..>>` is enough).
    pub fn shared(max_keys: usize) -> Rc<RefCell<Store>> {
        Rc::new(RefCell::new(Store {
            map: HashMap::new(),
            max_keys,
        }))
    }

    /// How many keys are stored.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.map.get(key).map(Vec::as_slice)
    }

    /// Executes `cmd` and appends the reply line (with `\r\n`) to `out`. Returns
    /// `false` for `QUIT`.
    pub fn execute(&mut self, cmd: Command<'_>, out: &mut Vec<u8>) -> bool {
        match cmd {
            Command::Get(k) => match self.map.get(k) {
                Some(v) => {
                    out.extend_from_slice(b"VALUE ");
                    out.extend_from_slice(v);
                    out.extend_from_slice(b"\r\n");
                }
                None => out.extend_from_slice(b"NOT_FOUND\r\n"),
            },
            Command::Set(k, v) => {
                if self.map.len() >= self.max_keys && !self.map.contains_key(k) {
                    out.extend_from_slice(b"ERROR store full\r\n");
                } else {
                    self.map.insert(k.to_vec(), v.to_vec());
                    out.extend_from_slice(b"OK\r\n");
                }
            }
            Command::Del(k) => match self.map.remove(k) {
                Some(_) => out.extend_from_slice(b"DELETED\r\n"),
                None => out.extend_from_slice(b"NOT_FOUND\r\n"),
            },
            Command::Keys => out.extend_from_slice(format!("KEYS {}\r\n", self.len()).as_bytes()),
            Command::Quit => {
                out.extend_from_slice(b"BYE\r\n");
                return false;
            }
        }
        true
    }
}

/// Server settings.
#[derive(Clone, Copy, Debug)]
pub struct KvOptions {
    /// Close a connection after this long without input (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Longest request line (longer ones are answered with an error and skipped).
    pub max_line: usize,
}

impl Default for KvOptions {
    fn default() -> KvOptions {
        KvOptions {
            idle_timeout: Some(Duration::from_secs(300)),
            max_line: super::framing::DEFAULT_MAX_LINE,
        }
    }
}

/// One connection of the key-value server.
pub struct Kv {
    store: Rc<RefCell<Store>>,
    lines: LineBuffer,
    opts: KvOptions,
    reply: Vec<u8>,
}

impl Kv {
    /// A protocol on `store`.
    pub fn new(store: Rc<RefCell<Store>>, opts: KvOptions) -> Kv {
        Kv {
            store,
            lines: LineBuffer::new(opts.max_line),
            opts,
            reply: Vec::new(),
        }
    }

    /// A factory for listeners: every connection shares `store`.
    pub fn factory(
        store: Rc<RefCell<Store>>,
        opts: KvOptions,
    ) -> impl FnMut(&PeerAddr) -> Option<Box<dyn Protocol>> {
        move |_| Some(Box::new(Kv::new(store.clone(), opts)) as Box<dyn Protocol>)
    }
}

impl Protocol for Kv {
    fn connection_made(&mut self, conn: &mut Conn<'_, '_>) {
        conn.set_idle_timeout(self.opts.idle_timeout);
    }

    fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
        self.lines.feed(data);
        self.reply.clear();
        let mut open = true;
        while let Some(line) = self.lines.next_line() {
            match line {
                Line::Line(l) => match parse(l) {
                    Ok(cmd) => open = self.store.borrow_mut().execute(cmd, &mut self.reply),
                    Err(why) => {
                        self.reply.extend_from_slice(b"ERROR ");
                        self.reply.extend_from_slice(why.as_bytes());
                        self.reply.extend_from_slice(b"\r\n");
                    }
                },
                Line::TooLong => self.reply.extend_from_slice(b"ERROR line too long\r\n"),
            }
            if !open {
                break;
            }
        }
        // One write for every reply of this read (pipelined requests).
        conn.write(&self.reply);
        if !open {
            conn.close();
        }
    }

    fn idle_timeout(&mut self, conn: &mut Conn<'_, '_>) {
        log::debug!("kv: {} idle; closing", conn.peer());
        conn.write(b"ERROR idle timeout\r\n");
        conn.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(parse(b"get a"), Ok(Command::Get(b"a")));
        assert_eq!(parse(b"SET a b c"), Ok(Command::Set(b"a", b"b c")));
        assert_eq!(parse(b"Del k"), Ok(Command::Del(b"k")));
        assert_eq!(parse(b"KEYS"), Ok(Command::Keys));
        assert_eq!(parse(b"quit"), Ok(Command::Quit));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(parse(b""), Err("empty command"));
        assert_eq!(parse(b" get a"), Err("empty command"));
        assert_eq!(parse(b"FLY a"), Err("unknown command"));
        assert_eq!(parse(b"GET"), Err("missing key"));
        assert_eq!(parse(b"GET a b"), Err("unexpected arguments"));
        assert_eq!(parse(b"SET a"), Err("missing value"));
        assert_eq!(parse(b"KEYS x"), Err("unexpected arguments"));
        assert_eq!(
            parse(&[b"GET ".as_slice(), &[b'k'; 251]].concat()),
            Err("key too long")
        );
        assert_eq!(parse(b"GET a\x01"), Err("bad key"));
        assert_eq!(parse(b"GET \xff\xfe"), Ok(Command::Get(b"\xff\xfe")));
    }

    #[test]
    fn store_executes_and_limits() {
        let store = Store::shared(1);
        let mut s = store.borrow_mut();
        let mut out = Vec::new();
        assert!(s.execute(Command::Set(b"a", b"1"), &mut out));
        assert!(s.execute(Command::Set(b"b", b"2"), &mut out));
        assert!(s.execute(Command::Set(b"a", b"3"), &mut out));
        assert!(s.execute(Command::Get(b"a"), &mut out));
        assert!(s.execute(Command::Keys, &mut out));
        assert!(s.execute(Command::Del(b"a"), &mut out));
        assert!(s.execute(Command::Del(b"a"), &mut out));
        assert!(!s.execute(Command::Quit, &mut out));
        assert_eq!(
            String::from_utf8_lossy(&out),
            "OK\r\nERROR store full\r\nOK\r\nVALUE 3\r\nKEYS 1\r\nDELETED\r\nNOT_FOUND\r\nBYE\r\n"
        );
    }
}
