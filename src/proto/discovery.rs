//! Service discovery by UDP broadcast: one probe, an answer from every server that
//! hears it.
//!
//! A finder ([`Finder`]) sends a probe to a broadcast address (its socket needs
//! `SO_BROADCAST`: [`UdpConfig::broadcast`](crate::net::UdpConfig)); every
//! [`DiscoveryServer`] bound to the wildcard address on that port answers the sender
//! directly with its name and the addresses of the services it offers. The finder
//! collects the answers that arrive within its timeout.
//!
//! The wire format is text, one item per line, at most [`MAX_DATAGRAM`] bytes:
//!
//! ```text
//! probe:  READYLOOP-DISCOVER 1 <nonce>
//! answer: READYLOOP-HERE 1 <nonce>
//!         name <server name>
//!         offer <url>          (zero or more, at most MAX_OFFERS)
//! ```
//!
//! The nonce (1 to 32 letters and digits) ties answers to one probe. Anything else is
//! ignored without an answer, so the server cannot be used to reflect arbitrary
//! traffic; an answer is at most [`MAX_DATAGRAM`] bytes.
//!
//! # Examples
//!
//! A server and a finder on one reactor. On a network the finder probes a broadcast
//! address (`255.255.255.255:PORT`, with [`UdpConfig::broadcast`](crate::net::UdpConfig))
//! and servers bind the wildcard address; here, on loopback, it probes the server's
//! address directly.
//!
//! ```
//! use std::cell::RefCell;
//! use std::rc::Rc;
//! use std::time::Duration;
//! use readyloop::net::Listen;
//! use readyloop::proto::discovery::{DiscoveryServer, Finder};
//! use readyloop::reactor::Reactor;
//! use readyloop::selector::Backend;
//!
//! let mut reactor = Reactor::new(Backend::Epoll)?;
//! let server = DiscoveryServer::new("lab-1", vec!["tftp://127.0.0.1:6969".into()]);
//! let (_, at) = reactor.bind_udp("127.0.0.1:0", server)?;
//!
//! let found = Rc::new(RefCell::new(Vec::new()));
//! let keep = found.clone();
//! let finder = Finder::new(at, Duration::from_millis(200), move |ctx, servers| {
//!     *keep.borrow_mut() = servers; // every answer that came within the timeout
//!     ctx.stop();
//! });
//! reactor.bind_udp("127.0.0.1:0", finder)?; // probes as soon as it is bound
//! reactor.run()?;
//!
//! let found = found.borrow();
//! assert_eq!(found.len(), 1);
//! assert_eq!((found[0].from, found[0].name.as_str()), (at, "lab-1"));
//! assert_eq!(found[0].offers, ["tftp://127.0.0.1:6969"]);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use crate::net::{DatagramProtocol, Datagrams};
use crate::reactor::{Ctx, TimerId};

/// First line of a probe, before the nonce.
pub const PROBE: &str = "READYLOOP-DISCOVER 1";
/// First line of an answer, before the nonce.
pub const ANSWER: &str = "READYLOOP-HERE 1";
/// Largest datagram either side sends or accepts.
pub const MAX_DATAGRAM: usize = 1400;
/// Most offers in an answer.
pub const MAX_OFFERS: usize = 16;
/// Most characters of a name in an answer (longer names are cut).
pub const MAX_NAME: usize = 256;
/// Longest nonce.
pub const MAX_NONCE: usize = 32;

fn valid_nonce(n: &[u8]) -> bool {
    !n.is_empty() && n.len() <= MAX_NONCE && n.iter().all(u8::is_ascii_alphanumeric)
}

/// A probe datagram with `nonce` (letters and digits, at most [`MAX_NONCE`]).
pub fn probe(nonce: &str) -> Vec<u8> {
    format!("{PROBE} {nonce}\n").into_bytes()
}

/// The nonce of a probe, if `b` is one.
pub fn parse_probe(b: &[u8]) -> Option<&[u8]> {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    let rest = b.strip_prefix(PROBE.as_bytes())?.strip_prefix(b" ")?;
    valid_nonce(rest).then_some(rest)
}

/// A parsed answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The nonce of the probe it answers.
    pub nonce: String,
    /// The server's name.
    pub name: String,
    /// The services it offers (URLs, as configured).
    pub offers: Vec<String>,
}

/// Why an answer was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerError {
    /// Larger than [`MAX_DATAGRAM`].
    TooLong,
    /// Not an answer (first line) or a bad nonce.
    NotAnAnswer,
    /// A line that is neither `name` nor `offer`, has control characters, or the
    /// datagram is not UTF-8.
    BadLine,
    /// No `name` line, or two.
    BadName,
    /// More than [`MAX_OFFERS`] offers.
    TooManyOffers,
}

/// Builds an answer (`nonce` as [`parse_probe`] returned it; the name cut to
/// [`MAX_NAME`] characters; at most [`MAX_DATAGRAM`] bytes, offers that do not fit dropped;
/// control characters, line breaks included, in `name` or offers become spaces).
pub fn answer(nonce: &str, name: &str, offers: &[String]) -> Vec<u8> {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    };
    let name: String = clean(name).chars().take(MAX_NAME).collect();
    let mut out = format!("{ANSWER} {nonce}\nname {name}\n").into_bytes();
    for o in offers.iter().take(MAX_OFFERS) {
        let line = format!("offer {}\n", clean(o));
        if out.len() + line.len() > MAX_DATAGRAM {
            break;
        }
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// Parses an answer datagram (pure: never panics on any input).
///
/// # Errors
///
/// The [`AnswerError`] for the first fault found: [`TooLong`](AnswerError::TooLong)
/// over [`MAX_DATAGRAM`] bytes; [`NotAnAnswer`](AnswerError::NotAnAnswer) when the
/// first line is not an answer with a valid nonce (or there is none);
/// [`BadLine`](AnswerError::BadLine) for bytes that are not UTF-8, a line with
/// control characters or an unknown line; [`BadName`](AnswerError::BadName) for no
/// `name` line or two; [`TooManyOffers`](AnswerError::TooManyOffers) past
/// [`MAX_OFFERS`].
pub fn parse_answer(b: &[u8]) -> Result<Answer, AnswerError> {
    if b.len() > MAX_DATAGRAM {
        return Err(AnswerError::TooLong);
    }
    let text = std::str::from_utf8(b).map_err(|_| AnswerError::BadLine)?;
    let mut lines = text.lines();
    let first = lines.next().ok_or(AnswerError::NotAnAnswer)?;
    let nonce = first
        .strip_prefix(ANSWER)
        .and_then(|r| r.strip_prefix(' '))
        .filter(|n| valid_nonce(n.as_bytes()))
        .ok_or(AnswerError::NotAnAnswer)?;
    let mut name = None;
    let mut offers = Vec::new();
    for line in lines {
        if line.chars().any(char::is_control) {
            return Err(AnswerError::BadLine);
        }
        if let Some(n) = line.strip_prefix("name ") {
            if name.replace(n.to_string()).is_some() {
                return Err(AnswerError::BadName);
            }
        } else if let Some(o) = line.strip_prefix("offer ") {
            if offers.len() == MAX_OFFERS {
                return Err(AnswerError::TooManyOffers);
            }
            offers.push(o.to_string());
        } else if !line.is_empty() {
            return Err(AnswerError::BadLine);
        }
    }
    Ok(Answer {
        nonce: nonce.to_string(),
        name: name.ok_or(AnswerError::BadName)?,
        offers,
    })
}

/// Answers probes with a name and a list of offered services.
#[derive(Debug)]
pub struct DiscoveryServer {
    name: String,
    offers: Vec<String>,
}

impl DiscoveryServer {
    /// A server called `name` offering `offers` (URLs such as `tftp://10.0.0.2:6969`).
    pub fn new(name: impl Into<String>, offers: Vec<String>) -> DiscoveryServer {
        DiscoveryServer {
            name: name.into(),
            offers,
        }
    }
}

impl DatagramProtocol for DiscoveryServer {
    fn datagram_received(&mut self, dg: &mut Datagrams<'_, '_>, data: &[u8], from: SocketAddr) {
        let Some(nonce) = parse_probe(data) else {
            log::debug!("discovery: ignored {} bytes from {from}", data.len());
            return;
        };
        // The nonce is ASCII alphanumeric (checked), so this is lossless.
        let nonce = String::from_utf8_lossy(nonce);
        log::info!("discovery: probe from {from}; answering as {}", self.name);
        dg.send_to(&answer(&nonce, &self.name, &self.offers), from);
    }
}

/// One server found: where the answer came from, and what it said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The answer's source address (the server's address on that network).
    pub from: SocketAddr,
    /// Its name.
    pub name: String,
    /// What it offers.
    pub offers: Vec<String>,
}

/// What the finder calls when its time is up, with every server found.
pub type OnDone = Box<dyn FnOnce(&mut Ctx<'_>, Vec<Found>)>;

/// Sends a probe (twice: at once and halfway through the timeout, in case one is lost)
/// to a broadcast address and collects the answers until the timeout; then calls its
/// callback and closes its socket. Bind it with
/// [`UdpConfig { broadcast: true, .. }`](crate::net::UdpConfig).
pub struct Finder {
    target: SocketAddr,
    timeout: Duration,
    nonce: String,
    found: Vec<Found>,
    seen: HashSet<(SocketAddr, String)>,
    resend: Option<TimerId>,
    end: Option<TimerId>,
    on_done: Option<OnDone>,
}

impl std::fmt::Debug for Finder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finder")
            .field("target", &self.target)
            .field("found", &self.found)
            .finish_non_exhaustive()
    }
}

impl Finder {
    /// A finder probing `target` for `timeout`, then calling `on_done`.
    pub fn new(
        target: SocketAddr,
        timeout: Duration,
        on_done: impl FnOnce(&mut Ctx<'_>, Vec<Found>) + 'static,
    ) -> Finder {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let nonce = format!("{:x}{:x}", std::process::id(), t & 0xffff_ffff_ffff);
        Finder {
            target,
            timeout,
            nonce,
            found: Vec::new(),
            seen: HashSet::new(),
            resend: None,
            end: None,
            on_done: Some(Box::new(on_done)),
        }
    }

    fn send_probe(&self, dg: &mut Datagrams<'_, '_>) {
        if !dg.send_to(&probe(&self.nonce), self.target) {
            log::warn!("discovery: probe to {} not sent", self.target);
        }
    }
}

impl DatagramProtocol for Finder {
    fn started(&mut self, dg: &mut Datagrams<'_, '_>) {
        self.send_probe(dg);
        self.resend = Some(dg.set_timer(self.timeout / 2));
        self.end = Some(dg.set_timer(self.timeout));
    }

    fn datagram_received(&mut self, _dg: &mut Datagrams<'_, '_>, data: &[u8], from: SocketAddr) {
        match parse_answer(data) {
            Ok(a) if a.nonce == self.nonce => {
                if self.seen.insert((from, a.name.clone())) {
                    log::debug!("discovery: {} at {from}", a.name);
                    self.found.push(Found {
                        from,
                        name: a.name,
                        offers: a.offers,
                    });
                }
            }
            Ok(_) => log::debug!("discovery: answer from {from} to another probe"),
            // Our own probe comes back when we are on the broadcast domain too.
            Err(e) => log::debug!("discovery: ignored datagram from {from}: {e:?}"),
        }
    }

    fn timer(&mut self, dg: &mut Datagrams<'_, '_>, id: TimerId) {
        if Some(id) == self.resend {
            self.resend = None;
            self.send_probe(dg);
        } else if Some(id) == self.end {
            self.end = None;
            let found = std::mem::take(&mut self.found);
            let me = dg.id();
            if let Some(f) = self.on_done.take() {
                f(dg.reactor(), found);
            }
            dg.reactor().remove(me);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_round_trip() {
        assert_eq!(parse_probe(&probe("abc123")), Some(&b"abc123"[..]));
        assert_eq!(parse_probe(b"READYLOOP-DISCOVER 1 abc"), Some(&b"abc"[..]));
        for bad in [
            &b""[..],
            b"READYLOOP-DISCOVER 1",
            b"READYLOOP-DISCOVER 1 ",
            b"READYLOOP-DISCOVER 1 a b",
            b"READYLOOP-DISCOVER 2 abc",
            b"READYLOOP-DISCOVER 1 \xff",
            b"READYLOOP-DISCOVER 1 0123456789abcdef0123456789abcdef0",
        ] {
            assert_eq!(parse_probe(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn answer_round_trip() {
        let offers = vec!["tftp://10.0.0.2:6969".to_string(), "echo://x:7".to_string()];
        let a = parse_answer(&answer("n1", "host\none", &offers)).unwrap();
        assert_eq!(
            a,
            Answer {
                nonce: "n1".into(),
                name: "host one".into(),
                offers
            }
        );
        let many: Vec<String> = (0..100).map(|i| format!("offer-{i}")).collect();
        let a = parse_answer(&answer("n", "x", &many)).unwrap();
        assert_eq!(a.offers.len(), MAX_OFFERS);
        let long = vec!["y".repeat(2000)];
        let b = answer("n", "x", &long);
        assert!(b.len() <= MAX_DATAGRAM);
        assert!(parse_answer(&b).unwrap().offers.is_empty());
    }

    #[test]
    fn bad_answers() {
        assert_eq!(parse_answer(b""), Err(AnswerError::NotAnAnswer));
        assert_eq!(parse_answer(&probe("n")), Err(AnswerError::NotAnAnswer));
        assert_eq!(
            parse_answer(b"READYLOOP-HERE 1 n\n"),
            Err(AnswerError::BadName)
        );
        assert_eq!(
            parse_answer(b"READYLOOP-HERE 1 n\nname a\nname b\n"),
            Err(AnswerError::BadName)
        );
        assert_eq!(
            parse_answer(b"READYLOOP-HERE 1 n\nname a\nwhat\n"),
            Err(AnswerError::BadLine)
        );
        assert_eq!(
            parse_answer(b"READYLOOP-HERE 1 n\nname \xff\n"),
            Err(AnswerError::BadLine)
        );
        assert_eq!(
            parse_answer(b"READYLOOP-HERE 1 n\nname a\rb\n"),
            Err(AnswerError::BadLine)
        );
        assert_eq!(parse_answer(&[b'a'; 2000]), Err(AnswerError::TooLong));
        let mut many = b"READYLOOP-HERE 1 n\nname a\n".to_vec();
        for _ in 0..=MAX_OFFERS {
            many.extend_from_slice(b"offer o\n");
        }
        assert_eq!(parse_answer(&many), Err(AnswerError::TooManyOffers));
    }
}
