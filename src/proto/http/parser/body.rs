//! The request-body stage: an incremental decoder for `Content-Length` and chunked
//! bodies, with a size limit.

use super::{BodyFraming, HttpError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex size; `digits` so far.
    Size { digits: u8 },
    /// After the size, whitespace: only `;` (an extension) or the line end may follow
    /// (RFC 9112 7.1.1; anything else is refused, not skipped: a proxy in front may
    /// read such a line differently, which is how requests get smuggled).
    SizeBws,
    /// Skipping a chunk extension up to the line end.
    Ext,
    /// Expecting LF after CR in a size line.
    SizeLf,
    /// Reading chunk data.
    Data,
    /// Expecting CR (or LF) after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// Reading trailer lines; `line` bytes in the current one.
    Trailer { line: usize },
    /// Expecting LF after CR in a trailer line.
    TrailerLf { line: usize },
    /// The body is complete.
    Done,
}

/// Most bytes of chunk extensions and trailers taken together.
const MAX_CHUNK_META: usize = 8 * 1024;

/// An incremental body decoder (`Content-Length` or chunked) with a size limit.
#[derive(Clone, Debug)]
pub struct BodyDecoder {
    chunked: bool,
    state: ChunkState,
    /// Bytes left in the body (length) or in the current chunk (chunked).
    remaining: u64,
    /// Chunk sizes announced so far (checked against `max` before the data comes).
    announced: u64,
    /// Body bytes decoded so far.
    decoded: u64,
    max: u64,
    meta: usize,
}

impl BodyDecoder {
    /// A decoder for `framing`, refusing bodies over `max` bytes.
    pub fn new(framing: BodyFraming, max: u64) -> BodyDecoder {
        let (chunked, state, remaining) = match framing {
            BodyFraming::None => (false, ChunkState::Done, 0),
            BodyFraming::Length(0) => (false, ChunkState::Done, 0),
            BodyFraming::Length(n) => (false, ChunkState::Data, n),
            BodyFraming::Chunked => (true, ChunkState::Size { digits: 0 }, 0),
        };
        BodyDecoder {
            chunked,
            state,
            remaining,
            announced: 0,
            decoded: 0,
            max,
            meta: 0,
        }
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decoded body bytes so far.
    pub fn total(&self) -> u64 {
        self.decoded
    }

    /// Decodes from `input`, appending body bytes to `out`. Returns how many input
    /// bytes were used (less than `input.len()` only once the body is done: the rest
    /// belongs to the next request).
    ///
    /// # Errors
    /// 400 for a malformed chunked body (size line, extension, data longer than its
    /// size, line ends, NUL), 413 once the sizes announced pass the decoder's
    /// maximum, 431 for trailers over 8 KiB. The decoder is then unusable.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, HttpError> {
        let mut i = 0;
        while i < input.len() && self.state != ChunkState::Done {
            if self.state == ChunkState::Data {
                i += self.data(&input[i..], out);
            } else {
                self.step(input[i])?;
                i += 1;
            }
        }
        Ok(i)
    }

    /// Takes body bytes from the start of `input`; returns how many.
    fn data(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let take = input
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        out.extend_from_slice(&input[..take]);
        self.remaining -= take as u64;
        self.decoded += take as u64;
        if self.remaining == 0 {
            self.state = if self.chunked {
                ChunkState::DataCr
            } else {
                ChunkState::Done
            };
        }
        take
    }

    /// Takes one byte of chunk framing (every state but `Data` and `Done`).
    fn step(&mut self, b: u8) -> Result<(), HttpError> {
        match self.state {
            ChunkState::Size { digits } => self.size_byte(digits, b)?,
            state @ (ChunkState::SizeBws | ChunkState::Ext) => self.ext_byte(state, b)?,
            ChunkState::SizeLf => {
                expect_lf(b, "CR without LF in chunk size line")?;
                self.end_size_line();
            }
            ChunkState::DataCr => match b {
                b'\r' => self.state = ChunkState::DataLf,
                b'\n' => self.state = ChunkState::Size { digits: 0 },
                _ => return Err(HttpError::bad("chunk data longer than its size")),
            },
            ChunkState::DataLf => {
                expect_lf(b, "CR without LF after chunk data")?;
                self.remaining = 0;
                self.state = ChunkState::Size { digits: 0 };
            }
            ChunkState::Trailer { line } => self.trailer_byte(line, b)?,
            ChunkState::TrailerLf { line } => {
                expect_lf(b, "CR without LF in trailer")?;
                self.end_trailer_line(line);
            }
            ChunkState::Data | ChunkState::Done => {}
        }
        Ok(())
    }

    /// A byte of the hex chunk size (`digits` read so far), or the one that ends it.
    fn size_byte(&mut self, digits: u8, b: u8) -> Result<(), HttpError> {
        match (b as char).to_digit(16) {
            Some(d) => {
                if digits >= 15 {
                    return Err(HttpError::bad("chunk size too long"));
                }
                self.remaining = self.remaining * 16 + u64::from(d);
                self.state = ChunkState::Size { digits: digits + 1 };
            }
            None if digits == 0 => return Err(HttpError::bad("invalid chunk size")),
            None => {
                self.announced += self.remaining;
                if self.announced > self.max {
                    return Err(HttpError::new(413, "chunked body too large"));
                }
                match b {
                    b'\r' => self.state = ChunkState::SizeLf,
                    b'\n' => self.end_size_line(),
                    b';' => self.state = ChunkState::Ext,
                    b' ' | b'\t' => self.state = ChunkState::SizeBws,
                    _ => return Err(HttpError::bad("invalid chunk size line")),
                }
            }
        }
        Ok(())
    }

    /// A byte after the chunk size: whitespace (`SizeBws`) or an extension (`Ext`).
    fn ext_byte(&mut self, state: ChunkState, b: u8) -> Result<(), HttpError> {
        self.meta += 1;
        if self.meta > MAX_CHUNK_META {
            return Err(HttpError::bad("chunk extensions too long"));
        }
        match (state, b) {
            (_, b'\r') => self.state = ChunkState::SizeLf,
            (_, b'\n') => self.end_size_line(),
            (ChunkState::SizeBws, b' ' | b'\t') => {}
            (ChunkState::SizeBws, b';') => self.state = ChunkState::Ext,
            (ChunkState::SizeBws, _) => return Err(HttpError::bad("invalid chunk size line")),
            (_, 0) => return Err(HttpError::bad("NUL in chunk extension")),
            _ => {}
        }
        Ok(())
    }

    /// A byte of a trailer line (`line` bytes into it).
    fn trailer_byte(&mut self, line: usize, b: u8) -> Result<(), HttpError> {
        match b {
            b'\r' => self.state = ChunkState::TrailerLf { line },
            b'\n' => self.end_trailer_line(line),
            0 => return Err(HttpError::bad("NUL in trailer")),
            _ => {
                self.meta += 1;
                if self.meta > MAX_CHUNK_META {
                    return Err(HttpError::new(431, "trailers too large"));
                }
                self.state = ChunkState::Trailer { line: line + 1 };
            }
        }
        Ok(())
    }

    fn end_size_line(&mut self) {
        self.state = if self.remaining == 0 {
            ChunkState::Trailer { line: 0 }
        } else {
            ChunkState::Data
        };
    }

    fn end_trailer_line(&mut self, line: usize) {
        self.state = if line == 0 {
            ChunkState::Done
        } else {
            ChunkState::Trailer { line: 0 }
        };
    }
}

/// `Ok` for LF, else the refusal (400) with `reason`.
fn expect_lf(b: u8, reason: &'static str) -> Result<(), HttpError> {
    if b == b'\n' {
        Ok(())
    } else {
        Err(HttpError::bad(reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http::parser::{parse_head, Head, Limits};

    fn decode(
        framing: BodyFraming,
        max: u64,
        input: &[u8],
    ) -> Result<(Vec<u8>, usize, bool), HttpError> {
        let mut d = BodyDecoder::new(framing, max);
        let mut out = Vec::new();
        let n = d.feed(input, &mut out)?;
        Ok((out, n, d.is_done()))
    }

    #[test]
    fn content_length_body() {
        let (out, n, done) = decode(BodyFraming::Length(5), 100, b"helloGET").unwrap();
        assert_eq!((out.as_slice(), n, done), (&b"hello"[..], 5, true));
        let (out, n, done) = decode(BodyFraming::Length(5), 100, b"hel").unwrap();
        assert_eq!((out.as_slice(), n, done), (&b"hel"[..], 3, false));
    }

    #[test]
    fn chunked_body_in_every_split() {
        let raw = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        let body_len = raw.len() - 4;
        for cut in 0..=raw.len() {
            let mut d = BodyDecoder::new(BodyFraming::Chunked, 100);
            let mut out = Vec::new();
            let a = d.feed(&raw[..cut], &mut out).unwrap();
            let b = d.feed(&raw[a..], &mut out).unwrap();
            assert!(d.is_done(), "cut {cut}");
            assert_eq!(a + b, body_len, "cut {cut}");
            assert_eq!(out, b"hello, world");
        }
        // Bare LF line ends are accepted.
        let (out, _, done) = decode(BodyFraming::Chunked, 100, b"3\nabc\n0\n\n").unwrap();
        assert_eq!((out.as_slice(), done), (&b"abc"[..], true));
        // Whitespace before an extension or the line end (BWS) is accepted.
        let (out, _, done) =
            decode(BodyFraming::Chunked, 100, b"3 ;e=1\r\nabc\r\n0\t \r\n\r\n").unwrap();
        assert_eq!((out.as_slice(), done), (&b"abc"[..], true));
    }

    #[test]
    fn chunked_errors() {
        for raw in [
            &b"x\r\n"[..],
            b"\r\n",
            b"3\r\nabcd\r\n",
            b"3\rX",
            b"fffffffffffffffff\r\n",
            b"3\r\nabc\rX",
            b"3 junk\r\nabc\r\n0\r\n\r\n",
            b"3\tx;e\r\nabc\r\n0\r\n\r\n",
        ] {
            let e = decode(BodyFraming::Chunked, u64::MAX, raw).unwrap_err();
            assert_eq!(e.status, 400, "{:?}", String::from_utf8_lossy(raw));
        }
        assert_eq!(
            decode(BodyFraming::Chunked, 4, b"5\r\nhello\r\n0\r\n\r\n")
                .unwrap_err()
                .status,
            413
        );
        assert_eq!(
            decode(BodyFraming::Chunked, 4, b"3\r\nabc\r\n2\r\nde\r\n")
                .unwrap_err()
                .status,
            413
        );
    }

    #[test]
    fn fuzz_never_panics() {
        // A cheap deterministic fuzz: mutate a valid request byte by byte.
        let base = b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n";
        let mut x: u32 = 12345;
        for _ in 0..20_000 {
            let mut v = base.to_vec();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = (x as usize) % v.len();
                v[i] = (x >> 8) as u8;
            }
            let mut h = Head::default();
            if let Ok(Some(n)) = parse_head(&v, &Limits::default(), &mut h) {
                let mut d = BodyDecoder::new(h.body, 1 << 20);
                let mut out = Vec::new();
                let _ = d.feed(&v[n..], &mut out);
            }
        }
    }
}
