//! Framing helpers, written once for every protocol: lines with a maximum length
//! (CRLF or LF), as Twisted's `LineReceiver` with `MAX_LENGTH` ([`LineBuffer`]), and
//! length-prefixed frames ([`LengthPrefixed`], the FTP mini protocol's headers).

/// What [`LineBuffer::push`] found in the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete line without its terminator (`\r\n` or `\n`).
    Line(&'a [u8]),
    /// A line longer than the limit: its bytes up to the next newline are discarded.
    TooLong,
}

/// Splits a byte stream into lines. Bytes of a partial line are kept between calls;
/// a line longer than `max_len` is reported once as [`Line::TooLong`] and skipped, so
/// memory stays bounded whatever the peer sends.
///
/// Two ways to use it (pick one per buffer):
/// * push: [`push`](Self::push) calls a closure for each line of the new input;
/// * pull: [`feed`](Self::feed) the input, then take lines with
///   [`next_line`](Self::next_line) until it returns `None` (each call to `feed`
///   must be followed by that, or overflow is not detected).
///
/// # Examples
///
/// A line protocol in pull style, with the default limit (16 KiB, Twisted's
/// `LineReceiver.MAX_LENGTH`):
///
/// ```
/// use readyloop::net::{Conn, Protocol};
/// use readyloop::proto::framing::{Line, LineBuffer};
///
/// #[derive(Default)]
/// struct Upper {
///     lines: LineBuffer,
/// }
///
/// impl Protocol for Upper {
///     fn data_received(&mut self, conn: &mut Conn<'_, '_>, data: &[u8]) {
///         self.lines.feed(data);
///         while let Some(line) = self.lines.next_line() {
///             match line {
///                 Line::Line(l) => conn.write(&[&l.to_ascii_uppercase()[..], b"\n"].concat()),
///                 Line::TooLong => conn.write(b"line too long\n"),
///             };
///         }
///     }
/// }
///
/// let mut lb = LineBuffer::default();
/// lb.feed(b"get a\r\nset b");
/// assert_eq!(lb.next_line(), Some(Line::Line(b"get a")));
/// assert_eq!(lb.next_line(), None); // "set b" waits for its newline
/// lb.feed(b" 1\n");
/// assert_eq!(lb.next_line(), Some(Line::Line(b"set b 1")));
/// ```
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    max_len: usize,
    discarding: bool,
    /// Pull style: bytes of `buf` already handed out as lines.
    start: usize,
    /// Pull style: `buf[start..scan]` holds no newline (no need to search it again).
    scan: usize,
}

/// The default line limit (Twisted's `LineReceiver.MAX_LENGTH`).
pub const DEFAULT_MAX_LINE: usize = 16 * 1024;

impl Default for LineBuffer {
    /// A buffer for lines of at most [`DEFAULT_MAX_LINE`] bytes.
    fn default() -> LineBuffer {
        LineBuffer::new(DEFAULT_MAX_LINE)
    }
}

impl LineBuffer {
    /// A buffer for lines of at most `max_len` bytes (terminator excluded).
    pub fn new(max_len: usize) -> LineBuffer {
        LineBuffer {
            buf: Vec::new(),
            max_len,
            discarding: false,
            start: 0,
            scan: 0,
        }
    }

    /// Bytes held of an incomplete line (pull style: and of lines not taken yet).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Pull style: appends `data` to what [`next_line`](Self::next_line) takes lines
    /// from.
    pub fn feed(&mut self, data: &[u8]) {
        if self.start > 0 {
            // Drop the lines already taken (what is left is at most one line's worth
            // when the caller drained with `next_line`, as it must).
            self.buf.drain(..self.start);
            self.scan -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Pull style: the next complete line fed so far (without `\r\n` or `\n`), a
    /// [`Line::TooLong`] once per overlong line, or `None` when no complete line is
    /// left (the partial one is kept for the next [`feed`](Self::feed)).
    pub fn next_line(&mut self) -> Option<Line<'_>> {
        loop {
            let newline = self.buf[self.scan..].iter().position(|&b| b == b'\n');
            let Some(pos) = newline.map(|p| self.scan + p) else {
                self.scan = self.buf.len();
                if self.discarding {
                    self.buf.truncate(self.start);
                    self.scan = self.start;
                } else if self.buf.len() - self.start > self.max_len.saturating_add(1) {
                    // +1: a trailing '\r' may still be followed by '\n'.
                    self.buf.truncate(self.start);
                    self.scan = self.start;
                    self.discarding = true;
                    return Some(Line::TooLong);
                }
                return None;
            };
            let from = self.start;
            self.start = pos + 1;
            self.scan = self.start;
            if self.discarding {
                self.discarding = false;
                continue;
            }
            let line = &self.buf[from..pos];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            return Some(if line.len() > self.max_len {
                Line::TooLong
            } else {
                Line::Line(line)
            });
        }
    }

    /// Feeds `data` and calls `f` for every complete line (or overflow) in order.
    /// `f` returns `false` to stop early; the unconsumed rest is dropped (the
    /// caller is closing the connection).
    pub fn push(&mut self, mut data: &[u8], mut f: impl FnMut(Line<'_>) -> bool) {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(pos) => {
                    let chunk = &data[..pos];
                    data = &data[pos + 1..];
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    let go_on = if self.buf.is_empty() {
                        Self::emit(chunk, self.max_len, &mut f)
                    } else {
                        self.buf.extend_from_slice(chunk);
                        let line = std::mem::take(&mut self.buf);
                        let go = Self::emit(&line, self.max_len, &mut f);
                        self.buf = line;
                        self.buf.clear();
                        go
                    };
                    if !go_on {
                        self.buf.clear();
                        return;
                    }
                }
                None => {
                    if !self.discarding {
                        if self.buf.len().saturating_add(data.len())
                            > self.max_len.saturating_add(1)
                        {
                            // +1: a trailing '\r' may still be followed by '\n'.
                            self.buf.clear();
                            self.discarding = true;
                            if !f(Line::TooLong) {
                                return;
                            }
                        } else {
                            self.buf.extend_from_slice(data);
                        }
                    }
                    return;
                }
            }
        }
    }

    fn emit(line: &[u8], max: usize, f: &mut impl FnMut(Line<'_>) -> bool) -> bool {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > max {
            f(Line::TooLong)
        } else {
            f(Line::Line(line))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(lb: &mut LineBuffer, data: &[u8]) -> Vec<Result<String, ()>> {
        let mut out = Vec::new();
        lb.push(data, |l| {
            out.push(match l {
                Line::Line(b) => Ok(String::from_utf8_lossy(b).into_owned()),
                Line::TooLong => Err(()),
            });
            true
        });
        out
    }

    #[test]
    fn splits_crlf_and_lf_across_pushes() {
        let mut lb = LineBuffer::new(16);
        assert_eq!(lines(&mut lb, b"ab"), vec![]);
        assert_eq!(
            lines(&mut lb, b"c\r\nde\nf"),
            vec![Ok("abc".into()), Ok("de".into())]
        );
        assert_eq!(lines(&mut lb, b"\r"), vec![]);
        assert_eq!(lines(&mut lb, b"\n"), vec![Ok("f".into())]);
        assert_eq!(lb.pending(), 0);
    }

    #[test]
    fn overlong_lines_are_reported_once_and_skipped() {
        let mut lb = LineBuffer::new(4);
        assert_eq!(lines(&mut lb, b"12345678"), vec![Err(())]);
        assert_eq!(lines(&mut lb, b"9999"), vec![]);
        assert!(lb.pending() == 0);
        assert_eq!(lines(&mut lb, b"\nok\n"), vec![Ok("ok".into())]);
        assert_eq!(
            lines(&mut lb, b"toolong\nyes\n"),
            vec![Err(()), Ok("yes".into())]
        );
        // exactly max length, with CRLF, is fine
        assert_eq!(lines(&mut lb, b"abcd\r\n"), vec![Ok("abcd".into())]);
    }

    fn pulled(lb: &mut LineBuffer, data: &[u8]) -> Vec<Result<String, ()>> {
        lb.feed(data);
        let mut out = Vec::new();
        while let Some(l) = lb.next_line() {
            out.push(match l {
                Line::Line(b) => Ok(String::from_utf8_lossy(b).into_owned()),
                Line::TooLong => Err(()),
            });
        }
        out
    }

    #[test]
    fn pull_style_matches_push_style() {
        let inputs: [&[u8]; 7] = [
            b"ab",
            b"c\r\nde\nf",
            b"\r",
            b"\n12345678",
            b"9999",
            b"\nok\ntoolong\nyes\n",
            b"abcd\r\n",
        ];
        let mut push = LineBuffer::new(4);
        let mut pull = LineBuffer::new(4);
        for data in inputs {
            assert_eq!(lines(&mut push, data), pulled(&mut pull, data), "{data:?}");
        }
        assert_eq!(pull.pending(), 0);
    }

    #[test]
    fn pull_style_bounds_memory() {
        let mut lb = LineBuffer::new(8);
        assert_eq!(pulled(&mut lb, &[b'x'; 100]), vec![Err(())]);
        assert_eq!(lb.pending(), 0);
        assert_eq!(pulled(&mut lb, &[b'x'; 100]), vec![]);
        assert_eq!(lb.pending(), 0);
        assert_eq!(pulled(&mut lb, b"x\nfine\n"), vec![Ok("fine".into())]);
        assert_eq!(LineBuffer::default().max_len, DEFAULT_MAX_LINE);
    }

    #[test]
    fn stops_when_asked() {
        let mut lb = LineBuffer::new(10);
        let mut n = 0;
        lb.push(b"a\nb\nc\n", |_| {
            n += 1;
            n < 2
        });
        assert_eq!(n, 2);
    }
}

/// Why [`LengthPrefixed::decode`] refused a frame. Either way the stream cannot be
/// resynchronized: close the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix is negative.
    Negative(i32),
    /// The length prefix is over the limit.
    TooLong(usize),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Negative(n) => write!(f, "negative frame length {n}"),
            FrameError::TooLong(n) => write!(f, "frame length {n} over the limit"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Length-prefixed frames: a 4-byte signed little-endian length (Python's
/// `struct.pack('i', n)` on x86-64), then that many bytes.
///
/// TCP is a byte stream: one read may hold two frames, or a piece of one, or end
/// inside the four length bytes (the "sticky packet" problem). The decoder keeps
/// what it has between reads and hands out whole frames only; it takes bytes off the
/// front of the caller's input just as far as the frame goes, so whatever follows a
/// frame (the raw body of a mini-protocol `put`, say) stays with the caller.
///
/// # Examples
///
/// Two frames arriving in pieces that do not match the frame boundaries:
///
/// ```
/// use readyloop::proto::framing::{FrameError, LengthPrefixed};
///
/// let mut wire = Vec::new();
/// LengthPrefixed::encode(b"hello", &mut wire)?;
/// LengthPrefixed::encode(b"world!", &mut wire)?;
/// let mut dec = LengthPrefixed::new(1024);
/// let mut frames = Vec::new();
/// for mut piece in wire.chunks(3) {
///     while let Some(frame) = dec.decode(&mut piece)? {
///         frames.push(frame);
///     }
/// }
/// assert_eq!(frames, [b"hello".to_vec(), b"world!".to_vec()]);
/// assert!(dec.is_idle());
/// # Ok::<(), FrameError>(())
/// ```
#[derive(Debug)]
pub struct LengthPrefixed {
    len_buf: [u8; 4],
    len_have: usize,
    want: Option<usize>,
    buf: Vec<u8>,
    max_len: usize,
}

impl LengthPrefixed {
    /// A decoder for frames of at most `max_len` bytes.
    pub fn new(max_len: usize) -> LengthPrefixed {
        LengthPrefixed {
            len_buf: [0; 4],
            len_have: 0,
            want: None,
            buf: Vec::new(),
            max_len,
        }
    }

    /// Whether no partial frame is held (a clean place for the stream to end).
    pub fn is_idle(&self) -> bool {
        self.len_have == 0 && self.want.is_none()
    }

    /// Takes bytes off the front of `input` until a frame is complete: `Ok(Some)`
    /// with its payload (the rest of `input` untouched), or `Ok(None)` with all of
    /// `input` consumed and kept. A negative or oversize length is an error (nothing
    /// of it is buffered).
    ///
    /// # Errors
    ///
    /// [`FrameError::Negative`] for a negative length prefix, [`FrameError::TooLong`]
    /// for one over `max_len`. The decoder cannot resynchronize after either: close
    /// the stream.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Vec<u8>>, FrameError> {
        let want = match self.want {
            Some(w) => w,
            None => {
                let n = (4 - self.len_have).min(input.len());
                self.len_buf[self.len_have..self.len_have + n].copy_from_slice(&input[..n]);
                self.len_have += n;
                *input = &input[n..];
                if self.len_have < 4 {
                    return Ok(None);
                }
                self.len_have = 0;
                let len = i32::from_le_bytes(self.len_buf);
                let len = usize::try_from(len).map_err(|_| FrameError::Negative(len))?;
                if len > self.max_len {
                    return Err(FrameError::TooLong(len));
                }
                self.want = Some(len);
                len
            }
        };
        let n = (want - self.buf.len()).min(input.len());
        self.buf.extend_from_slice(&input[..n]);
        *input = &input[n..];
        if self.buf.len() < want {
            return Ok(None);
        }
        self.want = None;
        Ok(Some(std::mem::take(&mut self.buf)))
    }

    /// Appends a frame for `payload` to `out`.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLong`] if `payload` is longer than `i32::MAX` bytes (the
    /// prefix cannot say it); `out` is left untouched then.
    pub fn encode(payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        let len = i32::try_from(payload.len()).map_err(|_| FrameError::TooLong(payload.len()))?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(payload);
        Ok(())
    }
}

#[cfg(test)]
mod length_prefixed_tests {
    use super::*;

    fn frame(p: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        LengthPrefixed::encode(p, &mut v).unwrap();
        v
    }

    fn all(d: &mut LengthPrefixed, mut input: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(f) = d.decode(&mut input).unwrap() {
            out.push(f);
        }
        assert!(input.is_empty());
        out
    }

    #[test]
    fn layout_is_struct_pack_i() {
        // struct.pack('i', 5) == b'\x05\x00\x00\x00'
        assert_eq!(frame(b"hello"), b"\x05\x00\x00\x00hello");
    }

    #[test]
    fn two_messages_in_one_read() {
        let mut d = LengthPrefixed::new(100);
        let mut data = frame(b"{\"a\":1}");
        data.extend(frame(b"{\"b\":2}"));
        assert_eq!(
            all(&mut d, &data),
            vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]
        );
        assert!(d.is_idle());
    }

    #[test]
    fn one_message_over_many_reads_even_inside_the_length() {
        let data = frame(b"split me please");
        for cut in [1, 2, 3] {
            // byte by byte, and split inside the 4 length bytes
            let mut d = LengthPrefixed::new(100);
            assert!(all(&mut d, &data[..cut]).is_empty());
            assert!(!d.is_idle());
            let mut got = Vec::new();
            for b in data[cut..].chunks(1) {
                got.extend(all(&mut d, b));
            }
            assert_eq!(got, vec![b"split me please".to_vec()]);
            assert!(d.is_idle());
        }
    }

    #[test]
    fn frame_then_raw_bytes_stay_with_the_caller() {
        let mut d = LengthPrefixed::new(100);
        let mut data = frame(b"hdr");
        data.extend_from_slice(b"RAWBODY");
        let mut input = &data[..];
        assert_eq!(d.decode(&mut input).unwrap(), Some(b"hdr".to_vec()));
        assert_eq!(input, b"RAWBODY");
        let mut empty = &b""[..];
        assert_eq!(d.decode(&mut empty).unwrap(), None);
        assert_eq!(frame(b"").len(), 4);
        let mut zero = &b"\0\0\0\0"[..];
        assert_eq!(d.decode(&mut zero).unwrap(), Some(Vec::new()));
    }

    #[test]
    fn negative_and_huge_lengths_are_refused() {
        let mut d = LengthPrefixed::new(100);
        let mut neg = &(-1i32).to_le_bytes()[..];
        assert_eq!(d.decode(&mut neg), Err(FrameError::Negative(-1)));
        let mut d = LengthPrefixed::new(100);
        let mut big = &101i32.to_le_bytes()[..];
        assert_eq!(d.decode(&mut big), Err(FrameError::TooLong(101)));
        let mut d = LengthPrefixed::new(100);
        let mut max = &i32::MAX.to_le_bytes()[..];
        assert!(d.decode(&mut max).is_err());
    }
}
