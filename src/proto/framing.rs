//! Framing helpers, written once for every protocol: lines with a maximum length
//! (CRLF or LF), as Twisted's `LineReceiver` with `MAX_LENGTH`.

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
