//! TFTP packets on bytes: [`parse`] a datagram into a [`Packet`] borrowing from it,
//! and serialise packets into a caller's buffer.
//!
//! The parser is a pure function over `&[u8]`: it never panics and never allocates
//! more than the bounded option list ([`MAX_OPTIONS`]). What it refuses comes back as
//! a [`ParseError`] whose [`code`](ParseError::code) is the TFTP error to answer with.

use std::fmt;

/// Opcodes (RFC 1350, RFC 2347).
pub const RRQ: u16 = 1;
/// Write request.
pub const WRQ: u16 = 2;
/// Data block.
pub const DATA: u16 = 3;
/// Acknowledgement.
pub const ACK: u16 = 4;
/// Error.
pub const ERROR: u16 = 5;
/// Option acknowledgement (RFC 2347).
pub const OACK: u16 = 6;

/// Most options a request may carry; more is an illegal operation. Five are defined
/// (blksize, timeout, tsize, windowsize, multicast), so 32 leaves room for unknown
/// ones while keeping what a request costs bounded.
pub const MAX_OPTIONS: usize = 32;

/// TFTP error codes (RFC 1350 and RFC 2347).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// Not defined, see the message.
    Undefined = 0,
    /// File not found.
    NotFound = 1,
    /// Access violation.
    AccessViolation = 2,
    /// Disk full or allocation exceeded.
    DiskFull = 3,
    /// Illegal TFTP operation.
    IllegalOperation = 4,
    /// Unknown transfer ID.
    UnknownTid = 5,
    /// File already exists.
    FileExists = 6,
    /// No such user.
    NoSuchUser = 7,
    /// Option negotiation refused (RFC 2347).
    OptionRefused = 8,
}

impl ErrorCode {
    /// The code for a number (unknown numbers are `Undefined`).
    pub fn from_u16(n: u16) -> ErrorCode {
        match n {
            1 => ErrorCode::NotFound,
            2 => ErrorCode::AccessViolation,
            3 => ErrorCode::DiskFull,
            4 => ErrorCode::IllegalOperation,
            5 => ErrorCode::UnknownTid,
            6 => ErrorCode::FileExists,
            7 => ErrorCode::NoSuchUser,
            8 => ErrorCode::OptionRefused,
            _ => ErrorCode::Undefined,
        }
    }
}

/// Transfer mode of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Text: lines end in CR LF on the wire, a bare CR is CR NUL.
    Netascii,
    /// Bytes as they are.
    Octet,
}

/// Options as (name, value) pairs, in the order sent.
pub type Options<'a> = Vec<(&'a [u8], &'a [u8])>;

/// A read or write request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The file name as sent (no NUL; not validated as a path here).
    pub filename: &'a [u8],
    /// The transfer mode.
    pub mode: Mode,
    /// Options in the order sent, names and values as bytes (at most [`MAX_OPTIONS`]).
    pub options: Options<'a>,
}

/// A parsed packet, borrowing from the datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Read request.
    Rrq(Request<'a>),
    /// Write request.
    Wrq(Request<'a>),
    /// A data block.
    Data {
        /// Block number (wraps to 0 after 65535).
        block: u16,
        /// The payload (0 to blksize bytes).
        data: &'a [u8],
    },
    /// Acknowledgement of a block.
    Ack {
        /// Block number acknowledged.
        block: u16,
    },
    /// An error from the peer.
    Error {
        /// The code as sent.
        code: u16,
        /// The message (without its NUL; lenient if the NUL is missing).
        message: &'a [u8],
    },
    /// Option acknowledgement.
    Oack {
        /// Accepted options.
        options: Options<'a>,
    },
}

/// Why a datagram is not a valid packet; [`code`](Self::code) says what to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Fewer than two bytes, or shorter than the opcode requires.
    Truncated,
    /// An opcode outside 1..=6.
    UnknownOpcode(u16),
    /// A string field without its terminating NUL.
    Unterminated,
    /// An empty file name.
    EmptyFilename,
    /// A mode other than netascii and octet (mail included: obsolete).
    BadMode,
    /// An option name without a value, or an empty option name.
    BadOption,
    /// More than [`MAX_OPTIONS`] options.
    TooManyOptions,
}

impl ParseError {
    /// The TFTP error code to answer with.
    pub fn code(self) -> ErrorCode {
        ErrorCode::IllegalOperation
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Truncated => f.write_str("truncated packet"),
            ParseError::UnknownOpcode(op) => write!(f, "unknown opcode {op}"),
            ParseError::Unterminated => f.write_str("string field without NUL terminator"),
            ParseError::EmptyFilename => f.write_str("empty file name"),
            ParseError::BadMode => f.write_str("unsupported transfer mode"),
            ParseError::BadOption => f.write_str("malformed option"),
            ParseError::TooManyOptions => f.write_str("too many options"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Splits off a NUL-terminated string: `(string, rest after the NUL)`.
fn cstr(b: &[u8]) -> Result<(&[u8], &[u8]), ParseError> {
    let nul = b
        .iter()
        .position(|&c| c == 0)
        .ok_or(ParseError::Unterminated)?;
    Ok((&b[..nul], &b[nul + 1..]))
}

/// Parses name/value pairs until the end of the packet.
fn options(mut rest: &[u8]) -> Result<Options<'_>, ParseError> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (name, r) = cstr(rest)?;
        if r.is_empty() || name.is_empty() {
            return Err(ParseError::BadOption);
        }
        let (value, r) = cstr(r)?;
        if out.len() == MAX_OPTIONS {
            return Err(ParseError::TooManyOptions);
        }
        out.push((name, value));
        rest = r;
    }
    Ok(out)
}

fn request(body: &[u8]) -> Result<Request<'_>, ParseError> {
    let (filename, rest) = cstr(body)?;
    if filename.is_empty() {
        return Err(ParseError::EmptyFilename);
    }
    let (mode, rest) = cstr(rest)?;
    let mode = if mode.eq_ignore_ascii_case(b"octet") {
        Mode::Octet
    } else if mode.eq_ignore_ascii_case(b"netascii") {
        Mode::Netascii
    } else {
        return Err(ParseError::BadMode);
    };
    Ok(Request {
        filename,
        mode,
        options: options(rest)?,
    })
}

fn u16_at(b: &[u8], i: usize) -> Result<u16, ParseError> {
    match b.get(i..i + 2) {
        Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(ParseError::Truncated),
    }
}

/// Parses one datagram (pure: never panics on any input).
///
/// # Errors
///
/// The [`ParseError`] for the first fault: [`Truncated`](ParseError::Truncated)
/// (no opcode, or no block or error code where the opcode needs one),
/// [`UnknownOpcode`](ParseError::UnknownOpcode), and for RRQ/WRQ/OACK an
/// unterminated string, an empty file name, a mode other than `octet`/`netascii`,
/// a bad option or more than [`MAX_OPTIONS`] options. Each is answered with
/// [`ParseError::code`].
///
/// # Examples
///
/// ```
/// use readyloop::proto::tftp::packet::{parse, Mode, Packet, ParseError};
///
/// match parse(b"\x00\x01boot.img\x00octet\x00blksize\x001428\x00") {
///     Ok(Packet::Rrq(r)) => {
///         assert_eq!((r.filename, r.mode), (&b"boot.img"[..], Mode::Octet));
///         assert_eq!(r.options, [(&b"blksize"[..], &b"1428"[..])]);
///     }
///     other => panic!("{other:?}"),
/// }
/// assert_eq!(parse(b"\x00\x04\x00").unwrap_err(), ParseError::Truncated);
/// ```
pub fn parse(b: &[u8]) -> Result<Packet<'_>, ParseError> {
    let op = u16_at(b, 0)?;
    let body = &b[2..];
    match op {
        RRQ => Ok(Packet::Rrq(request(body)?)),
        WRQ => Ok(Packet::Wrq(request(body)?)),
        DATA => Ok(Packet::Data {
            block: u16_at(b, 2)?,
            data: &b[4..],
        }),
        ACK => Ok(Packet::Ack {
            block: u16_at(b, 2)?,
        }),
        ERROR => {
            let code = u16_at(b, 2)?;
            let msg = &b[4..];
            let message = match msg.iter().position(|&c| c == 0) {
                Some(n) => &msg[..n],
                None => msg,
            };
            Ok(Packet::Error { code, message })
        }
        OACK => Ok(Packet::Oack {
            options: options(body)?,
        }),
        other => Err(ParseError::UnknownOpcode(other)),
    }
}

/// Writes a DATA header for `block` into `out` (cleared first); append the payload.
pub fn data_header(out: &mut Vec<u8>, block: u16) {
    out.clear();
    out.extend_from_slice(&DATA.to_be_bytes());
    out.extend_from_slice(&block.to_be_bytes());
}

/// An ACK packet.
pub fn ack(block: u16) -> [u8; 4] {
    let [a, b] = ACK.to_be_bytes();
    let [c, d] = block.to_be_bytes();
    [a, b, c, d]
}

/// An ERROR packet with `message` (NUL bytes in it are dropped).
pub fn error(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.extend_from_slice(&ERROR.to_be_bytes());
    out.extend_from_slice(&(code as u16).to_be_bytes());
    out.extend(message.bytes().filter(|&c| c != 0));
    out.push(0);
    out
}

/// An OACK packet with `options` (name, value).
pub fn oack(options: &[(&str, String)]) -> Vec<u8> {
    let mut out = OACK.to_be_bytes().to_vec();
    push_options(&mut out, options.iter().map(|(n, v)| (*n, v.as_str())));
    out
}

/// Appends each option as `name NUL value NUL`.
fn push_options<'a>(out: &mut Vec<u8>, options: impl IntoIterator<Item = (&'a str, &'a str)>) {
    for (name, value) in options {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
}

/// A request packet (for clients and tests): `op` is [`RRQ`] or [`WRQ`].
pub fn request_packet(op: u16, filename: &[u8], mode: Mode, options: &[(&str, &str)]) -> Vec<u8> {
    let mut out = op.to_be_bytes().to_vec();
    out.extend_from_slice(filename);
    out.push(0);
    out.extend_from_slice(match mode {
        Mode::Octet => b"octet",
        Mode::Netascii => b"netascii",
    });
    out.push(0);
    push_options(&mut out, options.iter().copied());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_with_options_round_trip() {
        let p = request_packet(
            RRQ,
            b"dir/file.bin",
            Mode::Octet,
            &[("blksize", "1428"), ("tsize", "0")],
        );
        match parse(&p).unwrap() {
            Packet::Rrq(r) => {
                assert_eq!(r.filename, b"dir/file.bin");
                assert_eq!(r.mode, Mode::Octet);
                assert_eq!(
                    r.options,
                    vec![(&b"blksize"[..], &b"1428"[..]), (&b"tsize"[..], &b"0"[..])]
                );
            }
            other => panic!("{other:?}"),
        }
        let p = request_packet(WRQ, b"x", Mode::Netascii, &[]);
        assert!(matches!(parse(&p), Ok(Packet::Wrq(r)) if r.mode == Mode::Netascii));
        // Mode is case-insensitive.
        assert!(parse(b"\x00\x01f\x00OcTeT\x00").is_ok());
    }

    #[test]
    fn data_ack_error_oack() {
        assert_eq!(
            parse(b"\x00\x03\xff\xffabc"),
            Ok(Packet::Data {
                block: 65535,
                data: b"abc"
            })
        );
        assert_eq!(
            parse(b"\x00\x03\x00\x01"),
            Ok(Packet::Data {
                block: 1,
                data: b""
            })
        );
        assert_eq!(parse(&ack(7)), Ok(Packet::Ack { block: 7 }));
        assert_eq!(
            parse(&error(ErrorCode::NotFound, "no\0pe")),
            Ok(Packet::Error {
                code: 1,
                message: b"nope"
            })
        );
        // An ERROR without its NUL is still understood.
        assert_eq!(
            parse(b"\x00\x05\x00\x02denied"),
            Ok(Packet::Error {
                code: 2,
                message: b"denied"
            })
        );
        let o = oack(&[("blksize", "512".into())]);
        assert_eq!(
            parse(&o),
            Ok(Packet::Oack {
                options: vec![(&b"blksize"[..], &b"512"[..])]
            })
        );
    }

    #[test]
    fn malformed_is_an_error_not_a_panic() {
        assert_eq!(parse(b""), Err(ParseError::Truncated));
        assert_eq!(parse(b"\x00"), Err(ParseError::Truncated));
        assert_eq!(parse(b"\x00\x04\x00"), Err(ParseError::Truncated));
        assert_eq!(parse(b"\x00\x03"), Err(ParseError::Truncated));
        assert_eq!(parse(b"\x00\x05\x00"), Err(ParseError::Truncated));
        assert_eq!(
            parse(b"\x00\x09\x00\x01"),
            Err(ParseError::UnknownOpcode(9))
        );
        assert_eq!(parse(b"\x00\x00"), Err(ParseError::UnknownOpcode(0)));
        assert_eq!(parse(b"\x00\x01file"), Err(ParseError::Unterminated));
        assert_eq!(
            parse(b"\x00\x01file\x00octet"),
            Err(ParseError::Unterminated)
        );
        assert_eq!(
            parse(b"\x00\x01\x00octet\x00"),
            Err(ParseError::EmptyFilename)
        );
        assert_eq!(parse(b"\x00\x01f\x00mail\x00"), Err(ParseError::BadMode));
        assert_eq!(
            parse(b"\x00\x01f\x00octet\x00blksize\x00"),
            Err(ParseError::BadOption)
        );
        assert_eq!(
            parse(b"\x00\x01f\x00octet\x00blksize\x00512"),
            Err(ParseError::Unterminated)
        );
        assert_eq!(
            parse(b"\x00\x01f\x00octet\x00\x00512\x00"),
            Err(ParseError::BadOption)
        );
        let many: Vec<(&str, &str)> = (0..=MAX_OPTIONS).map(|_| ("x", "1")).collect();
        let p = request_packet(RRQ, b"f", Mode::Octet, &many);
        assert_eq!(parse(&p), Err(ParseError::TooManyOptions));
        let p = request_packet(RRQ, b"f", Mode::Octet, &many[1..]);
        assert!(parse(&p).is_ok());
        assert_eq!(ParseError::BadMode.code(), ErrorCode::IllegalOperation);
    }

    #[test]
    fn every_short_prefix_parses_or_errs() {
        let p = request_packet(WRQ, b"name", Mode::Octet, &[("windowsize", "16")]);
        for n in 0..p.len() {
            let _ = parse(&p[..n]);
        }
        for op in 0..=10u16 {
            for len in 0..6 {
                let mut b = op.to_be_bytes().to_vec();
                b.resize(2 + len, 0);
                let _ = parse(&b);
            }
        }
    }
}
