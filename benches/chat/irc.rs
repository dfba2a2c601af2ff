//! The pure parts of the clients' side: IRC lines and the latency stamp each
//! benchmark message carries.

use crate::TAG;

/// An IRC line split into prefix, command and the rest (parameters).
pub fn split_irc(line: &str) -> (Option<&str>, &str, &str) {
    let line = line.trim_end_matches(['\r', '\n']);
    let (prefix, rest) = match line.strip_prefix(':') {
        Some(r) => match r.split_once(' ') {
            Some((p, rest)) => (Some(p), rest),
            None => (Some(r), ""),
        },
        None => (None, line),
    };
    let rest = rest.trim_start_matches(' ');
    match rest.split_once(' ') {
        Some((cmd, params)) => (prefix, cmd, params),
        None => (prefix, rest, ""),
    }
}

/// The trailing parameter (after ` :`), or the last parameter.
pub fn trailing(params: &str) -> &str {
    if let Some(t) = params.strip_prefix(':') {
        return t;
    }
    match params.find(" :") {
        Some(i) => &params[i + 2..],
        None => params.rsplit(' ').next().unwrap_or(""),
    }
}

/// What a benchmark message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub phase: u32,
    pub sender: u32,
    pub seq: u32,
    /// Send time: nanoseconds since the fleet's epoch.
    pub nanos: u64,
}

impl Stamp {
    pub fn encode(&self) -> String {
        format!(
            "{TAG} {} {} {} {}",
            self.phase, self.sender, self.seq, self.nanos
        )
    }

    pub fn decode(text: &str) -> Option<Stamp> {
        Self::decode_bytes(text.as_bytes())
    }

    /// Decodes from bytes (the client's hot path: no UTF-8 check, no allocation).
    pub fn decode_bytes(text: &[u8]) -> Option<Stamp> {
        let mut it = text.split(|&b| b == b' ');
        if it.next()? != TAG.as_bytes() {
            return None;
        }
        let s = Stamp {
            phase: u32::try_from(decimal(it.next()?)?).ok()?,
            sender: u32::try_from(decimal(it.next()?)?).ok()?,
            seq: u32::try_from(decimal(it.next()?)?).ok()?,
            nanos: decimal(it.next()?)?,
        };
        // Padding may follow.
        Some(s)
    }
}

/// An unsigned decimal number (digits only; `None` past `u64::MAX`).
pub fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The trailing parameter of a `PRIVMSG` line, found on the bytes (the client's hot
/// path); `None` for every other command (those go through [`split_irc`]).
pub fn privmsg_trailing(line: &[u8]) -> Option<&[u8]> {
    let rest = match line.strip_prefix(b":") {
        Some(r) => &r[memchr::memchr(b' ', r)? + 1..],
        None => line,
    };
    let rest = rest.strip_prefix(b"PRIVMSG ")?;
    let at = memchr::memmem::find(rest, b" :")?;
    let t = &rest[at + 2..];
    Some(t.strip_suffix(b"\r").unwrap_or(t))
}
