//! A generational slab: slots reused after removal, ids stamped with a generation so
//! an id kept past its entry's removal never resolves to the entry that reuses the slot.

/// An id into a [`Slab`]: slot index (low 32 bits) and generation (high bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlabId(pub u64);

impl SlabId {
    /// The slot index.
    pub fn index(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }
}

/// `index.generation`, e.g. `7.2`: short enough for a log line, and two ids that
/// shared a slot at different times read differently.
impl std::fmt::Display for SlabId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.index(), self.0 >> 32)
    }
}

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// A generational slab. Generations wrap at `generation_mask + 1`.
pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
    generation_mask: u32,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self::new(u32::MAX)
    }
}

impl<T> Slab<T> {
    /// An empty slab whose generations wrap at `generation_mask + 1`.
    pub fn new(generation_mask: u32) -> Slab<T> {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            generation_mask,
        }
    }

    /// The id the next `insert` will return.
    pub fn next_id(&self) -> SlabId {
        match self.free.last() {
            Some(&i) => Self::id(i as usize, self.slots[i as usize].generation),
            None => Self::id(self.slots.len(), 0),
        }
    }

    fn id(index: usize, generation: u32) -> SlabId {
        SlabId(((generation as u64) << 32) | index as u64)
    }

    /// Stores `value` and returns its id.
    pub fn insert(&mut self, value: T) -> SlabId {
        let id = self.next_id();
        match self.free.pop() {
            Some(i) => self.slots[i as usize].value = Some(value),
            None => self.slots.push(Slot {
                generation: 0,
                value: Some(value),
            }),
        }
        self.len += 1;
        id
    }

    fn live(&self, id: SlabId) -> bool {
        self.slots
            .get(id.index())
            .is_some_and(|s| s.value.is_some() && Self::id(id.index(), s.generation) == id)
    }

    /// The entry behind `id`, if it is still the same entry.
    pub fn get(&self, id: SlabId) -> Option<&T> {
        if self.live(id) {
            self.slots[id.index()].value.as_ref()
        } else {
            None
        }
    }

    /// Mutable access to the entry behind `id`.
    pub fn get_mut(&mut self, id: SlabId) -> Option<&mut T> {
        if self.live(id) {
            self.slots[id.index()].value.as_mut()
        } else {
            None
        }
    }

    /// Removes and returns the entry behind `id`; its slot's generation moves on.
    pub fn remove(&mut self, id: SlabId) -> Option<T> {
        if !self.live(id) {
            return None;
        }
        let slot = &mut self.slots[id.index()];
        let v = slot.value.take();
        slot.generation = slot.generation.wrapping_add(1) & self.generation_mask;
        self.free.push(id.index() as u32);
        self.len -= 1;
        v
    }

    /// How many entries are stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the slab is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every live entry with its id.
    pub fn iter(&self) -> impl Iterator<Item = (SlabId, &T)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.value.as_ref().map(|v| (Self::id(i, s.generation), v)))
    }

    /// Every live id.
    pub fn ids(&self) -> Vec<SlabId> {
        self.iter().map(|(id, _)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_shows_index_and_generation() {
        assert_eq!(SlabId((2 << 32) | 7).to_string(), "7.2");
        assert_eq!(SlabId(0).to_string(), "0.0");
    }

    #[test]
    fn reused_slot_gets_a_new_generation() {
        let mut s = Slab::new(3);
        let a = s.insert("a");
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_eq!(a.index(), b.index());
        assert_ne!(a, b);
        assert_eq!(s.get(a), None);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.remove(a), None);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn generations_wrap_at_the_mask() {
        let mut s = Slab::new(1);
        let ids: Vec<_> = (0..3)
            .map(|_| {
                let id = s.insert(());
                s.remove(id);
                id
            })
            .collect();
        assert_eq!(ids[0], ids[2]);
    }
}
