//! A connection's state as types: where it is in its life ([`Phase`]), what its
//! write side does ([`WriteSide`]), and the few bits that are truly independent of
//! both ([`State`]). Illegal combinations (lingering but not closing, connecting
//! and closing, a write side shut "after the flush" and shut already) cannot be
//! represented.

#[cfg(doc)]
use super::Conn;

/// Where a connection is in its life. It only moves forward,
/// `Connecting -> Open -> Closing -> Lingering -> Closed`, and may skip steps (an
/// accepted connection starts `Open`; an abort goes straight to `Closed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// An outgoing connect is in progress (watching for writability).
    Connecting,
    /// Up: reading (unless paused) and writing.
    Open,
    /// Graceful close in progress ([`Conn::close`]): reading stopped, flushing,
    /// then close (or linger).
    Closing,
    /// Graceful close, output done: our FIN is sent and we read and discard until
    /// the peer's FIN (or the close timeout), so closing with unread input does not
    /// make the kernel send RST and destroy output the peer has not read yet.
    Lingering,
    /// Removal requested (or done); writes are ignored. `connected` is false for an
    /// outgoing connection that died before its connect completed: its protocol
    /// hears `connection_failed`, not `connection_lost`.
    Closed {
        /// Whether the connection was ever up.
        connected: bool,
    },
}

/// Our write side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WriteSide {
    /// Open for writes.
    Open,
    /// [`Conn::shutdown_write`]: shut it (send our FIN) once the output drains;
    /// writes are refused already.
    ShutAfterFlush,
    /// Shut: our FIN is sent.
    Shut,
}

/// The state of a connection: its [`Phase`] and [`WriteSide`], plus what is
/// independent of them.
#[derive(Debug)]
pub(super) struct State {
    /// Where the connection is in its life.
    pub(super) phase: Phase,
    /// Our write side.
    pub(super) write: WriteSide,
    /// Read returned 0: the peer's FIN was read (our read side is done).
    pub(super) eof: bool,
    /// The backend has reported the peer's FIN (read-closed, hang-up or error) at
    /// some point. Sticky: an edge seen while reading was paused is not seen again.
    pub(super) peer_closed: bool,
    /// Pending output passed the high watermark and has not yet fallen to the low
    /// one (reading is paused then, unless the connection opted out or has producers).
    pub(super) bp_paused: bool,
    /// How many consumers ([`Conn::produce_into`]) have paused our reading.
    pub(super) consumer_pauses: u32,
    /// Reading paused by the protocol.
    pub(super) user_paused: bool,
    /// Call `output_drained` once everything queued is sent (`Conn::notify_drained`).
    pub(super) drain_notify: bool,
    /// A flush is queued for the end of the batch.
    pub(super) flush_queued: bool,
}

impl State {
    /// A connection in `phase` (`Open` when accepted, `Connecting` when outgoing).
    pub(super) fn new(phase: Phase) -> State {
        State {
            phase,
            write: WriteSide::Open,
            eof: false,
            peer_closed: false,
            bp_paused: false,
            consumer_pauses: 0,
            user_paused: false,
            drain_notify: false,
            flush_queued: false,
        }
    }

    /// Removal requested (or done): writes are ignored, nothing more is read.
    pub(super) fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed { .. })
    }

    /// An outgoing connect is in progress.
    pub(super) fn is_connecting(&self) -> bool {
        self.phase == Phase::Connecting
    }

    /// A graceful close is under way (flushing or lingering).
    pub(super) fn is_closing(&self) -> bool {
        matches!(self.phase, Phase::Closing | Phase::Lingering)
    }

    /// Output done, FIN sent, discarding input until the peer's FIN.
    pub(super) fn is_lingering(&self) -> bool {
        self.phase == Phase::Lingering
    }

    /// Moves to `Closed`, remembering whether the connection was ever up. Closing
    /// a closed connection changes nothing.
    pub(super) fn set_closed(&mut self) {
        if !self.is_closed() {
            let connected = self.phase != Phase::Connecting;
            self.phase = Phase::Closed { connected };
        }
    }

    /// Whether our write side is shut or will be once the output drains.
    pub(super) fn is_write_shut(&self) -> bool {
        self.write != WriteSide::Open
    }

    /// [`Conn::shutdown_write`]: shut the write side once the output drains (no
    /// effect if it is shut or about to be already).
    pub(super) fn shut_write_after_flush(&mut self) {
        if self.write == WriteSide::Open {
            self.write = WriteSide::ShutAfterFlush;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_that_never_completed_is_closed_unconnected() {
        let mut s = State::new(Phase::Connecting);
        assert!(s.is_connecting() && !s.is_closing() && !s.is_closed());
        s.set_closed();
        assert_eq!(s.phase, Phase::Closed { connected: false });
        assert!(!s.is_connecting() && s.is_closed());
    }

    #[test]
    fn closing_then_lingering_then_closed() {
        let mut s = State::new(Phase::Open);
        assert!(!s.is_closing());
        s.phase = Phase::Closing;
        assert!(s.is_closing() && !s.is_lingering());
        s.phase = Phase::Lingering;
        assert!(s.is_closing() && s.is_lingering());
        s.set_closed();
        assert_eq!(s.phase, Phase::Closed { connected: true });
        assert!(!s.is_closing() && s.is_closed());
        // Closed stays closed (and keeps what it knew).
        s.set_closed();
        assert_eq!(s.phase, Phase::Closed { connected: true });
    }

    #[test]
    fn shut_after_flush_never_reopens_a_shut_write_side() {
        let mut s = State::new(Phase::Open);
        assert!(!s.is_write_shut());
        s.shut_write_after_flush();
        assert_eq!(s.write, WriteSide::ShutAfterFlush);
        assert!(s.is_write_shut());
        s.write = WriteSide::Shut;
        s.shut_write_after_flush();
        assert_eq!(s.write, WriteSide::Shut);
    }
}
