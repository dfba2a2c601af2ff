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
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    max_len: usize,
    discarding: bool,
}

impl LineBuffer {
    /// A buffer for lines of at most `max_len` bytes (terminator excluded).
    pub fn new(max_len: usize) -> LineBuffer {
        LineBuffer {
            buf: Vec::new(),
            max_len,
            discarding: false,
        }
    }

    /// Bytes held of an incomplete line.
    pub fn pending(&self) -> usize {
        self.buf.len()
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
