//! The output buffer of a connection.

/// Bytes waiting to be written: a `Vec` with a read offset, compacted lazily.
///
/// Appends copy at the end; consumption advances the offset; the consumed prefix is
/// dropped when it passes half the buffer, so each byte is moved at most once more
/// on average. After a burst, a drained buffer gives back memory above `keep`.
#[derive(Debug, Default)]
pub struct OutBuf {
    buf: Vec<u8>,
    start: usize,
}

impl OutBuf {
    /// Bytes not yet written.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// How many bytes are pending.
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends bytes.
    pub fn extend(&mut self, data: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Marks `n` bytes written.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Drops everything pending.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// Gives back memory above `keep` bytes when the buffer is empty.
    pub fn shrink_if_idle(&mut self, keep: usize) {
        if self.is_empty() && self.buf.capacity() > keep {
            self.buf = Vec::with_capacity(keep.min(4096));
        }
    }

    /// Allocated bytes (for memory accounting in tests).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_consume_compact() {
        let mut b = OutBuf::default();
        b.extend(b"hello ");
        b.extend(b"world");
        assert_eq!(b.as_slice(), b"hello world");
        b.consume(6);
        assert_eq!(b.as_slice(), b"world");
        b.extend(b"!");
        assert_eq!(b.as_slice(), b"world!");
        b.consume(100);
        assert!(b.is_empty());
        b.extend(&vec![0; 1 << 20]);
        b.consume(1 << 20);
        b.shrink_if_idle(64 * 1024);
        assert!(b.capacity() <= 64 * 1024);
    }
}
