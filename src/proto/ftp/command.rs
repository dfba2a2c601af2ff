//! FTP command lines, parsed on bytes (never on `&str` slices of network input).
//!
//! Pure functions with no I/O, the entry points for fuzzing:
//! [`parse_command`], [`parse_port`], [`parse_eprt`], [`parse_epsv`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The commands the server knows (RFC 959, 2389, 2428, 3659), and `Unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Verb {
    User,
    Pass,
    Acct,
    Quit,
    Noop,
    Syst,
    Feat,
    Opts,
    Help,
    Stat,
    Pwd,
    Cwd,
    Cdup,
    Mkd,
    Rmd,
    Dele,
    Rnfr,
    Rnto,
    Type,
    Mode,
    Stru,
    Pasv,
    Epsv,
    Port,
    Eprt,
    List,
    Nlst,
    Mlsd,
    Mlst,
    Retr,
    Stor,
    Appe,
    Stou,
    Rest,
    Size,
    Mdtm,
    Abor,
    Allo,
    Site,
    Smnt,
    Rein,
    /// Not a command this server knows (answered 500).
    Unknown,
}

impl Verb {
    /// Whether RFC 959 lists it but this server does not implement it (answered 502).
    pub fn not_implemented(self) -> bool {
        matches!(self, Verb::Acct | Verb::Site | Verb::Smnt | Verb::Rein)
    }
}

const VERBS: &[(&[u8], Verb)] = &[
    (b"USER", Verb::User),
    (b"PASS", Verb::Pass),
    (b"ACCT", Verb::Acct),
    (b"QUIT", Verb::Quit),
    (b"NOOP", Verb::Noop),
    (b"SYST", Verb::Syst),
    (b"FEAT", Verb::Feat),
    (b"OPTS", Verb::Opts),
    (b"HELP", Verb::Help),
    (b"STAT", Verb::Stat),
    (b"PWD", Verb::Pwd),
    (b"XPWD", Verb::Pwd),
    (b"CWD", Verb::Cwd),
    (b"XCWD", Verb::Cwd),
    (b"CDUP", Verb::Cdup),
    (b"XCUP", Verb::Cdup),
    (b"MKD", Verb::Mkd),
    (b"XMKD", Verb::Mkd),
    (b"RMD", Verb::Rmd),
    (b"XRMD", Verb::Rmd),
    (b"DELE", Verb::Dele),
    (b"RNFR", Verb::Rnfr),
    (b"RNTO", Verb::Rnto),
    (b"TYPE", Verb::Type),
    (b"MODE", Verb::Mode),
    (b"STRU", Verb::Stru),
    (b"PASV", Verb::Pasv),
    (b"EPSV", Verb::Epsv),
    (b"PORT", Verb::Port),
    (b"EPRT", Verb::Eprt),
    (b"LIST", Verb::List),
    (b"NLST", Verb::Nlst),
    (b"MLSD", Verb::Mlsd),
    (b"MLST", Verb::Mlst),
    (b"RETR", Verb::Retr),
    (b"STOR", Verb::Stor),
    (b"APPE", Verb::Appe),
    (b"STOU", Verb::Stou),
    (b"REST", Verb::Rest),
    (b"SIZE", Verb::Size),
    (b"MDTM", Verb::Mdtm),
    (b"ABOR", Verb::Abor),
    (b"ALLO", Verb::Allo),
    (b"SITE", Verb::Site),
    (b"SMNT", Verb::Smnt),
    (b"REIN", Verb::Rein),
];

/// The verbs `HELP` lists.
pub fn verb_names() -> impl Iterator<Item = &'static [u8]> {
    VERBS.iter().map(|(n, _)| *n)
}

/// One command line, telnet sequences removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The verb, or [`Verb::Unknown`].
    pub verb: Verb,
    /// The verb as sent, upper-cased (at most 4 bytes kept), for replies and logs.
    pub name: Vec<u8>,
    /// Everything after the first space (may be empty; may contain spaces).
    pub arg: Vec<u8>,
}

/// Why a line is not a command at all (answered 500).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// Nothing but telnet bytes or white space.
    Empty,
    /// The verb is not 3 or 4 ASCII letters.
    BadVerb,
}

/// Removes telnet commands (`IAC x`; `IAC IAC` is a literal 0xFF) and a lone Data
/// Mark byte that arrived as inline urgent data (an `ABOR` preceded by `IP`/`Synch`).
pub fn strip_telnet(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if b == 0xFF {
            match line.get(i + 1) {
                Some(0xFF) => {
                    out.push(0xFF);
                    i += 2;
                }
                Some(_) => i += 2,
                None => i += 1,
            }
            continue;
        }
        if b == 0xF2 && out.is_empty() {
            // The urgent Data Mark of a Synch, kept inline by SO_OOBINLINE.
            i += 1;
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Parses one command line (without its CRLF). Telnet commands are removed
/// first ([`strip_telnet`]); a verb the server does not know is
/// [`Verb::Unknown`], not an error.
///
/// # Errors
///
/// [`CommandError::Empty`] if nothing but spaces and telnet bytes is left;
/// [`CommandError::BadVerb`] if the verb is not 3 or 4 ASCII letters.
///
/// # Examples
///
/// ```
/// use readyloop::proto::ftp::command::{parse_command, CommandError, Verb};
///
/// let c = parse_command(b"retr notes.txt").unwrap();
/// assert_eq!((c.verb, c.arg.as_slice()), (Verb::Retr, &b"notes.txt"[..]));
/// assert_eq!(parse_command(b"XYZZY").unwrap_err(), CommandError::BadVerb);
/// ```
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let line = strip_telnet(line);
    let start = line
        .iter()
        .position(|&b| b != b' ')
        .ok_or(CommandError::Empty)?;
    let line = &line[start..];
    let (verb, arg) = match line.iter().position(|&b| b == b' ') {
        Some(sp) => (&line[..sp], &line[sp + 1..]),
        None => (line, &line[line.len()..]),
    };
    if verb.len() < 3 || verb.len() > 4 || !verb.iter().all(u8::is_ascii_alphabetic) {
        return Err(CommandError::BadVerb);
    }
    let upper = verb.to_ascii_uppercase();
    let v = VERBS
        .iter()
        .find(|(n, _)| *n == upper.as_slice())
        .map(|(_, v)| *v)
        .unwrap_or(Verb::Unknown);
    Ok(Command {
        verb: v,
        name: upper,
        arg: arg.to_vec(),
    })
}

/// Parses a decimal number of at most `max_digits` digits (no sign, no spaces).
fn decimal(s: &[u8], max_digits: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max_digits || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// A `REST` offset (decimal, at most 19 digits).
pub fn parse_rest(arg: &[u8]) -> Option<u64> {
    decimal(arg.trim_ascii(), 19)
}

/// `PORT h1,h2,h3,h4,p1,p2` (RFC 959).
pub fn parse_port(arg: &[u8]) -> Option<SocketAddr> {
    let mut n = [0u8; 6];
    let mut parts = arg.trim_ascii().split(|&b| b == b',');
    for slot in n.iter_mut() {
        let v = decimal(parts.next()?.trim_ascii(), 3)?;
        *slot = u8::try_from(v).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    let ip = Ipv4Addr::new(n[0], n[1], n[2], n[3]);
    let port = u16::from(n[4]) << 8 | u16::from(n[5]);
    Some(SocketAddr::new(IpAddr::V4(ip), port))
}

/// `EPRT |proto|addr|port|` (RFC 2428): any delimiter in 33..=126.
pub fn parse_eprt(arg: &[u8]) -> Option<SocketAddr> {
    let arg = arg.trim_ascii();
    let &d = arg.first()?;
    if !(33..=126).contains(&d) || arg.last() != Some(&d) || arg.len() < 2 {
        return None;
    }
    let inner = &arg[1..arg.len() - 1];
    let mut parts = inner.split(|&b| b == d);
    let proto = parts.next()?;
    let addr = parts.next()?;
    let port = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let port = u16::try_from(decimal(port, 5)?).ok()?;
    let addr = std::str::from_utf8(addr).ok()?;
    let ip: IpAddr = match proto {
        b"1" => IpAddr::V4(addr.parse::<Ipv4Addr>().ok()?),
        b"2" => IpAddr::V6(addr.parse::<Ipv6Addr>().ok()?),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The argument of `EPSV`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpsvArg {
    /// No argument: a passive port on the control connection's protocol.
    Any,
    /// `EPSV 1` / `EPSV 2`: that network protocol.
    Proto(u8),
    /// `EPSV ALL`: from now on only EPSV (PORT, EPRT and PASV are refused).
    All,
}

/// Parses `EPSV`'s argument; `None` is a syntax error.
pub fn parse_epsv(arg: &[u8]) -> Option<EpsvArg> {
    let arg = arg.trim_ascii();
    if arg.is_empty() {
        Some(EpsvArg::Any)
    } else if arg.eq_ignore_ascii_case(b"ALL") {
        Some(EpsvArg::All)
    } else {
        let n = decimal(arg, 3)?;
        u8::try_from(n).ok().map(EpsvArg::Proto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_on_bytes() {
        let c = parse_command(b"retr my file.txt").unwrap();
        assert_eq!(c.verb, Verb::Retr);
        assert_eq!(c.arg, b"my file.txt");
        let c = parse_command(b"NOOP").unwrap();
        assert_eq!((c.verb, c.arg.len()), (Verb::Noop, 0));
        assert_eq!(parse_command(b"XYZW a").unwrap().verb, Verb::Unknown);
        assert_eq!(parse_command(b""), Err(CommandError::Empty));
        assert_eq!(parse_command(b"   "), Err(CommandError::Empty));
        assert_eq!(parse_command(b"LONGER"), Err(CommandError::BadVerb));
        assert_eq!(parse_command(b"R\xc3\xa9T a"), Err(CommandError::BadVerb));
        // non-UTF-8 arguments survive as bytes
        assert_eq!(parse_command(b"CWD \xff\xff\xe9").unwrap().arg, b"\xff\xe9");
    }

    #[test]
    fn telnet_abort_sequence_is_removed() {
        let c = parse_command(b"\xff\xf4\xff\xf2ABOR").unwrap();
        assert_eq!(c.verb, Verb::Abor);
        let c = parse_command(b"\xf2ABOR").unwrap();
        assert_eq!(c.verb, Verb::Abor);
    }

    #[test]
    fn port_and_eprt() {
        assert_eq!(
            parse_port(b"127,0,0,1,4,1"),
            Some("127.0.0.1:1025".parse().unwrap())
        );
        assert_eq!(parse_port(b"127,0,0,1,4"), None);
        assert_eq!(parse_port(b"127,0,0,1,4,1,1"), None);
        assert_eq!(parse_port(b"256,0,0,1,4,1"), None);
        assert_eq!(parse_port(b"1,2,3,4,5,-1"), None);
        assert_eq!(
            parse_eprt(b"|1|127.0.0.1|6446|"),
            Some("127.0.0.1:6446".parse().unwrap())
        );
        assert_eq!(parse_eprt(b"!2!::1!80!"), Some("[::1]:80".parse().unwrap()));
        assert_eq!(parse_eprt(b"|3|127.0.0.1|1|"), None);
        assert_eq!(parse_eprt(b"|1|127.0.0.1|99999|"), None);
        assert_eq!(parse_eprt(b"|"), None);
        assert_eq!(parse_eprt(b""), None);
        assert_eq!(parse_eprt(b"|1|::1|80|"), None);
    }

    #[test]
    fn epsv_and_rest() {
        assert_eq!(parse_epsv(b""), Some(EpsvArg::Any));
        assert_eq!(parse_epsv(b"all"), Some(EpsvArg::All));
        assert_eq!(parse_epsv(b"2"), Some(EpsvArg::Proto(2)));
        assert_eq!(parse_epsv(b"x"), None);
        assert_eq!(parse_rest(b"100"), Some(100));
        assert_eq!(parse_rest(b"-1"), None);
        assert_eq!(parse_rest(b"99999999999999999999"), None);
    }
}
