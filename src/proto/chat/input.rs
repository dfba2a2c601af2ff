//! What every front end does to input: decoding, the flood gate, the client's host
//! name, and rate-limited warnings about misbehaving clients.

use std::time::{Duration, Instant};

use crate::net::PeerAddr;

use super::{ChatConfig, TokenBucket};

thread_local! {
    /// Warnings a client causes at will (flooding, filling the UDP member table):
    /// at most one a second per reactor thread, so clients cannot fill the log.
    static CLIENT_WARN: crate::net::WarnLimit =
        const { crate::net::WarnLimit::new(Duration::from_secs(1)) };
}

/// Logs a warning a client caused, rate-limited (see `CLIENT_WARN`).
pub(crate) fn client_warn(msg: std::fmt::Arguments<'_>) {
    CLIENT_WARN.with(|w| w.warn(module_path!(), msg));
}

/// The host part of a stream member's `user@host`: the peer's IP, or `local`.
pub(crate) fn peer_host(peer: &PeerAddr) -> String {
    match peer {
        PeerAddr::Inet(a) => a.ip().to_string(),
        PeerAddr::Unix => "local".to_string(),
    }
}

/// Decodes a received line: UTF-8 (lossy), control characters neutralised.
pub(crate) fn decode(line: &[u8]) -> String {
    crate::proto::chat::state::sanitize(&String::from_utf8_lossy(line))
}

/// What the flood gate says about one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Process it.
    Pass,
    /// Drop it; tell the client (first drop of an episode).
    DropAndWarn,
    /// Drop it silently.
    Drop,
    /// Too many drops in a row: disconnect.
    Disconnect,
}

/// A client's flood state: the bucket and the drops since the last accepted line.
#[derive(Clone, Debug)]
pub(crate) struct Flood {
    bucket: TokenBucket,
    dropped: u32,
    limit: u32,
}

impl Flood {
    pub(crate) fn new(cfg: &ChatConfig) -> Flood {
        Flood {
            bucket: TokenBucket::new(cfg.flood_burst, cfg.flood_rate),
            dropped: 0,
            limit: cfg.flood_disconnect,
        }
    }

    pub(crate) fn check(&mut self, now: Instant) -> Gate {
        if self.bucket.take(now) {
            self.dropped = 0;
            return Gate::Pass;
        }
        self.dropped += 1;
        if self.dropped >= self.limit {
            Gate::Disconnect
        } else if self.dropped == 1 {
            Gate::DropAndWarn
        } else {
            Gate::Drop
        }
    }
}
