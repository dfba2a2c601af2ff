//! Netascii (RFC 764 as TFTP uses it) both ways, streaming across block boundaries.
//!
//! On the wire a line ends in CR LF and a bare CR is CR NUL. [`Encoder`] turns local
//! text (LF line ends) into wire bytes, [`Decoder`] turns wire bytes back. Either may
//! see a pair split between two blocks, so each keeps one byte of state.

/// Local bytes to netascii. Feed input with [`encode`](Self::encode); an expansion
/// that did not fit in `out` is kept and written first on the next call.
#[derive(Debug, Default)]
pub struct Encoder {
    /// The second byte of a pair whose first byte filled the last output.
    pending: Option<u8>,
}

impl Encoder {
    /// A new encoder.
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// Whether a byte is held back for the next output.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Encodes from `input` into `out` (appending) until `out` holds `limit` bytes or
    /// the input is used up. Returns how many input bytes were consumed.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> usize {
        if out.len() < limit {
            if let Some(b) = self.pending.take() {
                out.push(b);
            }
        }
        let mut used = 0;
        for &c in input {
            if out.len() >= limit {
                break;
            }
            used += 1;
            let second = match c {
                b'\n' => {
                    out.push(b'\r');
                    Some(b'\n')
                }
                b'\r' => {
                    out.push(b'\r');
                    Some(0)
                }
                c => {
                    out.push(c);
                    None
                }
            };
            if let Some(s) = second {
                if out.len() < limit {
                    out.push(s);
                } else {
                    self.pending = Some(s);
                    break;
                }
            }
        }
        used
    }
}

/// Netascii to local bytes.
#[derive(Debug, Default)]
pub struct Decoder {
    /// The last block ended in CR.
    cr: bool,
}

impl Decoder {
    /// A new decoder.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Decodes `input`, appending to `out`. CR LF becomes LF, CR NUL becomes CR; a CR
    /// followed by anything else (not netascii, but seen) is kept with that byte.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &c in input {
            if self.cr {
                self.cr = false;
                match c {
                    b'\n' => out.push(b'\n'),
                    0 => out.push(b'\r'),
                    b'\r' => {
                        out.push(b'\r');
                        self.cr = true;
                    }
                    c => out.extend_from_slice(&[b'\r', c]),
                }
            } else if c == b'\r' {
                self.cr = true;
            } else {
                out.push(c);
            }
        }
    }

    /// The end of the stream: a CR held back is written as is.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.cr) {
            out.push(b'\r');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_in_blocks(input: &[u8], block: usize) -> Vec<Vec<u8>> {
        let mut enc = Encoder::new();
        let mut rest = input;
        let mut blocks = Vec::new();
        loop {
            let mut out = Vec::new();
            let n = enc.encode(rest, &mut out, block);
            rest = &rest[n..];
            let last = out.len() < block;
            blocks.push(out);
            if last {
                return blocks;
            }
        }
    }

    #[test]
    fn encodes_line_ends_and_bare_cr() {
        let mut out = Vec::new();
        let n = Encoder::new().encode(b"a\nb\rc", &mut out, 100);
        assert_eq!(n, 5);
        assert_eq!(out, b"a\r\nb\r\0c");
    }

    #[test]
    fn round_trip_across_every_block_size() {
        let text: &[u8] = b"line one\nline two\r\n\rbare\r\r\n\n\nend\r";
        for block in 1..text.len() * 2 + 2 {
            let blocks = encode_in_blocks(text, block);
            assert!(blocks[..blocks.len() - 1].iter().all(|b| b.len() == block));
            let mut dec = Decoder::new();
            let mut back = Vec::new();
            for b in &blocks {
                dec.decode(b, &mut back);
            }
            dec.finish(&mut back);
            assert_eq!(back, text, "block size {block}");
        }
    }

    #[test]
    fn decodes_lenient_input() {
        let mut out = Vec::new();
        let mut d = Decoder::new();
        d.decode(b"a\r", &mut out);
        d.decode(b"\nb\rx\r", &mut out);
        d.finish(&mut out);
        assert_eq!(out, b"a\nb\rx\r");
    }
}
