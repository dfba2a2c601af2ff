//! Rate-limited warnings: for conditions a peer can cause at will (connections past
//! the limit, descriptor exhaustion, requests for a symlink out of a document root),
//! where one log line per occurrence would let a client fill the log.

use std::cell::Cell;
use std::fmt;
use std::time::{Duration, Instant};

/// Logs at most one warning per period; the next one logged says how many were
/// dropped meanwhile. Interior mutability, so a `&self` service can hold one.
#[derive(Debug)]
pub struct WarnLimit {
    period: Duration,
    last: Cell<Option<Instant>>,
    suppressed: Cell<u64>,
}

impl Default for WarnLimit {
    /// One warning a second.
    fn default() -> WarnLimit {
        WarnLimit::new(Duration::from_secs(1))
    }
}

impl WarnLimit {
    /// At most one warning per `period`.
    pub const fn new(period: Duration) -> WarnLimit {
        WarnLimit {
            period,
            last: Cell::new(None),
            suppressed: Cell::new(0),
        }
    }

    /// Logs `msg` at `warn` on `target`, unless a warning went out less than a period
    /// ago (then it is only counted). Returns whether it was logged.
    pub fn warn(&self, target: &str, msg: fmt::Arguments<'_>) -> bool {
        let now = Instant::now();
        if self
            .last
            .get()
            .is_some_and(|t| now.duration_since(t) < self.period)
        {
            self.suppressed.set(self.suppressed.get() + 1);
            return false;
        }
        self.last.set(Some(now));
        match self.suppressed.replace(0) {
            0 => log::warn!(target: target, "{msg}"),
            n => log::warn!(target: target, "{msg} ({n} similar warnings suppressed)"),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_period() {
        let w = WarnLimit::new(Duration::from_secs(3600));
        assert!(w.warn("t", format_args!("a")));
        assert!(!w.warn("t", format_args!("b")));
        assert!(!w.warn("t", format_args!("c")));
        assert_eq!(w.suppressed.get(), 2);
        let w = WarnLimit::new(Duration::ZERO);
        assert!(w.warn("t", format_args!("a")));
        assert!(w.warn("t", format_args!("b")));
    }
}
