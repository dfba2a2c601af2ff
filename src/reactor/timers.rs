//! Timers: a binary heap of deadlines with lazy cancellation and compaction.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use rustc_hash::FxHashMap;

/// Identifies a timer; returned by `set_timer`, passed back when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub u64);

/// A heap of `(deadline, id)` with the owners of live timers in a map. Cancelling
/// removes the owner only; the heap entry is skipped when it surfaces, and the heap is
/// rebuilt when dead entries outnumber live ones. The map hashes with FxHash: its
/// keys are ids this module hands out, not input, and the loop looks one up on every
/// iteration ([`next_deadline`](Self::next_deadline)), where SipHash cost more than
/// the rest of that call.
pub struct Timers<O> {
    heap: BinaryHeap<Reverse<(Instant, TimerId)>>,
    live: FxHashMap<TimerId, O>,
    next: u64,
}

impl<O> Default for Timers<O> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            live: FxHashMap::default(),
            next: 0,
        }
    }
}

impl<O> Timers<O> {
    /// Schedules `owner` at `deadline`.
    pub fn insert(&mut self, deadline: Instant, owner: O) -> TimerId {
        let id = TimerId(self.next);
        self.next += 1;
        self.heap.push(Reverse((deadline, id)));
        self.live.insert(id, owner);
        id
    }

    /// Cancels a timer; returns its owner if it was still pending.
    pub fn cancel(&mut self, id: TimerId) -> Option<O> {
        let owner = self.live.remove(&id);
        if self.heap.len() > 64 && self.heap.len() > 2 * self.live.len() {
            let live = &self.live;
            self.heap.retain(|Reverse((_, id))| live.contains_key(id));
        }
        owner
    }

    /// The earliest live deadline (pops cancelled entries off the top).
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.heap.peek() {
            if self.live.contains_key(id) {
                return Some(*at);
            }
            self.heap.pop();
        }
        None
    }

    /// Pops one timer due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(TimerId, O)> {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if at > now {
                return None;
            }
            self.heap.pop();
            if let Some(owner) = self.live.remove(&id) {
                return Some((id, owner));
            }
        }
        None
    }

    /// How many timers are pending.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Heap entries including cancelled ones not yet compacted (for tests).
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_order_and_skips_cancelled() {
        let mut t = Timers::default();
        let now = Instant::now();
        let a = t.insert(now + Duration::from_millis(30), "a");
        let _b = t.insert(now + Duration::from_millis(10), "b");
        let c = t.insert(now + Duration::from_millis(20), "c");
        assert_eq!(t.cancel(c), Some("c"));
        assert_eq!(t.next_deadline(), Some(now + Duration::from_millis(10)));
        let later = now + Duration::from_millis(100);
        assert_eq!(t.pop_due(later).map(|x| x.1), Some("b"));
        assert_eq!(t.pop_due(later), Some((a, "a")));
        assert_eq!(t.pop_due(later), None);
        assert!(t.is_empty());
    }

    #[test]
    fn not_due_yet() {
        let mut t = Timers::default();
        let now = Instant::now();
        t.insert(now + Duration::from_secs(1), ());
        assert!(t.pop_due(now).is_none());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn compaction_bounds_the_heap() {
        let mut t = Timers::default();
        let now = Instant::now();
        for _ in 0..10_000 {
            let id = t.insert(now + Duration::from_secs(60), ());
            t.cancel(id);
        }
        assert!(
            t.heap_len() <= 130,
            "heap kept {} dead entries",
            t.heap_len()
        );
    }
}
