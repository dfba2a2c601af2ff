//! The output buffer of a connection: a queue of chunks, written with one gathered
//! send.
//!
//! Two kinds of bytes wait in it. *Owned* bytes ([`OutBuf::extend`], what
//! [`Conn::write`](crate::net::Conn::write) copies) are coalesced into one growing
//! tail, so many small writes cost one buffer. *Shared* bytes ([`OutBuf::push_shared`],
//! [`Conn::write_shared`](crate::net::Conn::write_shared)) are a reference-counted
//! [`Bytes`] queued as is: a message rendered once and queued on a thousand
//! connections is one allocation and a thousand reference counts, not a thousand
//! copies. Small shared chunks (at most `COPY_BELOW`, 1 KiB) are copied into the
//! tail instead: measured, copying them is cheaper than the reference. Order is kept across both kinds: a shared chunk closes the owned tail
//! before it (the tail becomes a chunk of its own, without a copy) and owned bytes
//! after it start a new tail.
//!
//! [`OutBuf::write_with`] hands the pending chunks (up to `IOV_MAX`, 1024) as slices to one
//! gathered send (`sendmsg`, i.e. `writev` with `MSG_NOSIGNAL`) and
//! [`OutBuf::consume`]s what it took: a partial write may end inside any chunk.
//! [`OutBuf::len`] counts every pending byte, shared chunks at their full length per
//! connection, so a per-connection limit on it is exact.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use bytes::{Buf, Bytes, BytesMut};

/// How many slices one gathered send takes at most (Linux's `IOV_MAX`): a bigger
/// backlog goes out in several sends of this many chunks each.
pub const MAX_IOV: usize = 1024;

/// Shared chunks up to this size are copied into the owned tail instead of queued by
/// reference: measured on loopback TCP (batches of 30 messages,
/// `examples/outbuf_micro.rs`, figures in `docs/lab/chat-fanout.md`), a 120-byte message costs 32 ns
/// copied and 96 ns by reference (the reference count, the `VecDeque` entry and one
/// more iovec segment for the kernel to walk cost more than copying 120 bytes); the
/// two are even around 1-2 KiB and the reference wins above (8 KiB: 0.90 vs 1.02 µs).
pub const COPY_BELOW: usize = 1024;

/// Up to this many slices are gathered on the stack; more (a backlog of small chunks
/// a slow reader let grow) in one short-lived allocation.
const STACK_IOV: usize = 64;

/// Bytes waiting to be written: chunks (frozen owned bytes and shared ones) followed
/// by an owned tail.
///
/// Consumption advances through the chunks and the tail; a drained tail keeps its
/// allocation for the next writes, and after a burst a drained buffer gives back
/// memory above `keep` ([`OutBuf::shrink_if_idle`]).
#[derive(Debug, Default)]
pub struct OutBuf {
    /// Chunks queued before `tail`, oldest first; none is empty.
    chunks: VecDeque<Bytes>,
    /// Owned bytes written after the last chunk.
    tail: BytesMut,
    /// Pending bytes in all (`chunks` and `tail`).
    len: usize,
}

impl OutBuf {
    /// How many bytes are pending (shared chunks counted at their full length).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many slices the pending bytes are in (chunks, and the tail if not empty).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len() + usize::from(!self.tail.is_empty())
    }

    /// Appends a copy of `data` to the owned tail.
    pub fn extend(&mut self, data: &[u8]) {
        self.tail.extend_from_slice(data);
        self.len += data.len();
    }

    /// Queues `data` by reference, after everything pending (an owned tail before it
    /// is closed into a chunk of its own, without a copy). A chunk of at most
    /// `COPY_BELOW` (1 KiB) bytes is copied into the owned tail instead (cheaper than a
    /// reference for small messages); either way it counts `data.len()` bytes.
    pub fn push_shared(&mut self, data: &Bytes) {
        if data.len() <= COPY_BELOW {
            self.extend(data);
            return;
        }
        self.close_tail();
        self.len += data.len();
        self.chunks.push_back(data.clone());
    }

    /// Moves the owned tail into the chunk queue (no copy: the frozen bytes keep
    /// their allocation, and the tail keeps any capacity left after them).
    fn close_tail(&mut self) {
        if !self.tail.is_empty() {
            self.chunks.push_back(self.tail.split().freeze());
        }
    }

    /// Fills `dst` with the first pending slices, in order; returns how many (at
    /// most `dst.len()`). Together they hold the first bytes pending, not
    /// necessarily all of them.
    pub fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        let tail = (!self.tail.is_empty()).then_some(&self.tail[..]);
        for s in self.chunks.iter().map(|c| &c[..]).chain(tail) {
            let Some(slot) = dst.get_mut(n) else {
                break;
            };
            *slot = IoSlice::new(s);
            n += 1;
        }
        n
    }

    /// Offers the first pending bytes (at most `IOV_MAX`, 1024 chunks) to `send` as
    /// slices, in order, and consumes what it took. Returns `(taken, offered)`:
    /// `taken < offered` is a short write (the socket is full).
    ///
    /// # Errors
    ///
    /// `send`'s error; nothing is consumed then.
    pub fn write_with(
        &mut self,
        send: impl FnOnce(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<(usize, usize)> {
        let count = self.chunk_count().min(MAX_IOV);
        let (taken, offered) = if count == 1 {
            // The common case (one coalesced tail: a small response): no array of
            // `STACK_IOV` slices to fill (1 KiB of stores per flush).
            let one = self.first_slice();
            (send(&[IoSlice::new(one)])?, one.len())
        } else if count <= STACK_IOV {
            let mut iov = [IoSlice::new(&[]); STACK_IOV];
            let k = self.io_slices(&mut iov);
            let offered = iov[..k].iter().map(|s| s.len()).sum();
            (send(&iov[..k])?, offered)
        } else {
            let mut iov = vec![IoSlice::new(&[]); count];
            let k = self.io_slices(&mut iov);
            let offered = iov[..k].iter().map(|s| s.len()).sum();
            (send(&iov[..k])?, offered)
        };
        self.consume(taken);
        Ok((taken, offered))
    }

    /// The first pending slice (empty if nothing is pending).
    pub fn first_slice(&self) -> &[u8] {
        match self.chunks.front() {
            Some(c) => c,
            None => &self.tail,
        }
    }

    /// Marks `n` bytes written: drops the chunks they cover and advances into the
    /// next (a partial write may end anywhere).
    pub fn consume(&mut self, n: usize) {
        let mut n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.chunks.pop_front();
        }
        if n > 0 {
            self.tail.advance(n);
        }
        if self.tail.is_empty() {
            // Rewind into the allocation, so the next writes reuse it.
            self.tail.clear();
        }
    }

    /// Drops everything pending.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.tail.clear();
        self.len = 0;
    }

    /// Gives back memory above `keep` bytes when the buffer is empty.
    pub fn shrink_if_idle(&mut self, keep: usize) {
        if self.is_empty() {
            if self.tail.capacity() > keep {
                self.tail = BytesMut::with_capacity(keep.min(4096));
            }
            if self.chunks.capacity() > STACK_IOV {
                self.chunks = VecDeque::new();
            }
        }
    }

    /// Allocated bytes of the owned tail (for memory accounting in tests; shared
    /// chunks belong to whoever made them).
    pub fn capacity(&self) -> usize {
        self.tail.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything pending, in order, as the gathered send would see it.
    fn pending(b: &OutBuf) -> Vec<u8> {
        let mut iov = vec![IoSlice::new(&[]); b.chunk_count() + 1];
        let n = b.io_slices(&mut iov);
        iov[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn append_consume_compact() {
        let mut b = OutBuf::default();
        b.extend(b"hello ");
        b.extend(b"world");
        assert_eq!(pending(&b), b"hello world");
        assert_eq!(b.chunk_count(), 1, "owned writes coalesce");
        b.consume(6);
        assert_eq!(pending(&b), b"world");
        b.extend(b"!");
        assert_eq!(pending(&b), b"world!");
        b.consume(100);
        assert!(b.is_empty());
        b.extend(&vec![0; 1 << 20]);
        b.consume(1 << 20);
        b.shrink_if_idle(64 * 1024);
        assert!(b.capacity() <= 64 * 1024);
    }

    #[test]
    fn small_shared_chunks_are_copied_into_the_tail() {
        let small = Bytes::from_static(b"<small>");
        let mut b = OutBuf::default();
        b.extend(b"a ");
        b.push_shared(&small);
        b.extend(b" b");
        assert_eq!(pending(&b), b"a <small> b");
        assert_eq!(b.chunk_count(), 1, "one coalesced tail");
        assert_eq!(b.len(), 11);
    }

    #[test]
    fn mixed_owned_and_shared_keep_order() {
        let shared = Bytes::from(vec![b'S'; COPY_BELOW + 1]);
        let s = &shared[..];
        let mut b = OutBuf::default();
        b.extend(b"a1 ");
        b.extend(b"a2 ");
        b.push_shared(&shared);
        b.extend(b" b1");
        b.push_shared(&shared);
        b.push_shared(&Bytes::new());
        b.extend(b" c1");
        assert_eq!(pending(&b), [&b"a1 a2 "[..], s, b" b1", s, b" c1"].concat());
        assert_eq!(b.len(), pending(&b).len());
        assert_eq!(b.chunk_count(), 5);
        assert_eq!(b.first_slice(), b"a1 a2 ");
    }

    #[test]
    fn partial_consumption_walks_the_chunks() {
        let big = |c: u8| Bytes::from(vec![c; COPY_BELOW + 3]);
        let mut b = OutBuf::default();
        b.push_shared(&big(b'0'));
        b.extend(b"45");
        b.push_shared(&big(b'6'));
        let all = pending(&b);
        assert_eq!(b.chunk_count(), 3);
        for n in [1, COPY_BELOW + 2, 1, 1, COPY_BELOW, 3] {
            let before = pending(&b);
            b.consume(n);
            assert_eq!(pending(&b), before[n..], "after consuming {n}");
            assert_eq!(b.len(), before.len() - n);
        }
        assert!(b.is_empty());
        assert_eq!(
            all,
            [big(b'0'), Bytes::from_static(b"45"), big(b'6')].concat()
        );
        b.extend(b"x");
        assert_eq!(pending(&b), b"x");
    }

    #[test]
    fn shared_chunks_are_counted_per_buffer_and_not_copied() {
        let msg = Bytes::from(vec![b'm'; 2000]);
        let mut a = OutBuf::default();
        let mut c = OutBuf::default();
        for _ in 0..10 {
            a.push_shared(&msg);
            c.push_shared(&msg);
        }
        assert_eq!(a.len(), 20_000);
        assert_eq!(c.len(), 20_000);
        assert_eq!(a.capacity(), 0, "no owned copy was made");
        let mut iov = [IoSlice::new(&[]); 4];
        assert_eq!(a.io_slices(&mut iov), 4, "bounded by the slots given");
        assert_eq!(
            iov[0].as_ptr(),
            msg.as_ptr(),
            "the very bytes, by reference"
        );
        a.clear();
        assert!(a.is_empty() && a.chunk_count() == 0);
        assert_eq!(c.len(), 20_000, "other buffers keep theirs");
    }
}
