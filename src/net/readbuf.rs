//! The read buffer that every stream connection and datagram socket of a thread
//! shares.
//!
//! Input is read into one buffer per thread (a reactor runs on one thread, so in
//! practice one per reactor) and handed to the protocol for the duration of its
//! callback: ten thousand idle connections cost no read buffers, and protocols copy
//! what they keep. It lives in `net`, which reads, not in the reactor, which knows
//! nothing about bytes.

use std::cell::Cell;

/// Size of the shared read buffer: the most one `recv` reads.
pub const READ_BUFFER_SIZE: usize = 64 * 1024;

thread_local! {
    /// The thread's buffer while nobody has it out (empty until the first read).
    static SHARED: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Borrows the thread's read buffer ([`READ_BUFFER_SIZE`] bytes); give it back with
/// [`give`]. A nested taker (a callback that reads another socket while this one's
/// buffer is out) gets a fresh buffer.
pub(crate) fn take() -> Vec<u8> {
    let mut buf = SHARED.take();
    if buf.len() < READ_BUFFER_SIZE {
        buf.resize(READ_BUFFER_SIZE, 0);
    }
    buf
}

/// Returns a buffer taken with [`take`] (the larger one stays if a nested taker gave
/// one back first).
pub(crate) fn give(buf: Vec<u8>) {
    SHARED.with(|shared| {
        let held = shared.take();
        shared.set(if held.capacity() < buf.capacity() {
            buf
        } else {
            held
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_buffers_are_full_size_and_come_back() {
        let a = take();
        assert_eq!(a.len(), READ_BUFFER_SIZE);
        let ptr = a.as_ptr();
        // Nested: a fresh one while `a` is out.
        let b = take();
        assert_eq!(b.len(), READ_BUFFER_SIZE);
        assert_ne!(b.as_ptr(), ptr);
        give(b);
        give(a);
        // One of the two is kept and handed out again, no new allocation.
        let c = take();
        assert_eq!(c.len(), READ_BUFFER_SIZE);
        give(c);
    }
}
