//! The build order of the pending units: the keys of [`super::order_key`], kept as one
//! sorted list per priority, with a hole where a unit left.
//!
//! A unit's key is its priority (highest first), then its first change's seq, then its id.
//! Seqs only grow, so a unit that starts goes after every unit of its priority: an
//! insertion is nearly always a push at the end of its priority's list, where a B-tree
//! searched from its root and split and copied its nodes (in Luau, where every load and
//! call costs, several times a push). A key out of order (a failed request's units coming
//! back with their first change's seq, a unit whose priority rises) is found by a binary
//! search and takes a hole next to its place when there is one, else shifts the entries
//! after it and opens a gap of up to [`GAP`] holes after itself: such keys come in
//! ascending runs (a request's units in build order), each landing right after the one
//! before, so the run takes the gap's holes one by one and shifts the tail once per gap,
//! not once per key. `build` takes from the front: a key taken out leaves a hole (no
//! shift), the list's start moves past the holes in front, and the holes are squeezed out
//! when they outnumber the keys, as [`super::unit_map::UnitMap`] does. Walks skip the holes.
//!
//! Invariants, per priority's list (a [`Lane`]):
//! - the slots' (seq, id) keys never decrease, and two neighbours have the same key only
//!   when the first is a hole: a hole keeps the key it held, a gap's holes the key of the
//!   slot after the gap (so binary searches need not tell holes apart, and a key is held
//!   at most once: by the last slot of its run);
//! - `live` is the number of slots holding a key;
//! - every slot before `head` is a hole (`head` is at most the first slot holding a key);
//! - the holes (`slots.len() - live`) are at most `max(live, SQUEEZE_AT)` (a removal squeezes
//!   them out beyond that; a gap is opened only within it); a list with no key left has no
//!   slot.
//!
//! And [`Priority`] orders the lists: `LANES[i]` is the priority of list `i`, highest first,
//! so walking the lists in turn walks the keys in [`OrderKey`]'s order (the test against a
//! `BTreeSet` checks it).

use super::{OrderKey, Priority};
use crate::ids::UnitId;
use alloc::vec::Vec;
use core::cmp::Reverse;

/// Up to this many holes stay in a list whatever its keys (squeezing a few costs more than
/// it saves).
const SQUEEZE_AT: usize = 32;

/// Up to this many holes open after a key that shifted the keys after it (the room for
/// the rest of an ascending run; more would only lengthen the walks).
const GAP: usize = 32;

/// The priority of each list, in build order (highest first).
const LANES: [Priority; 4] = [
    Priority::Critical,
    Priority::High,
    Priority::Normal,
    Priority::Low,
];

/// The list of a priority (the inverse of [`LANES`]).
fn lane_of(p: Priority) -> usize {
    match p {
        Priority::Critical => 0,
        Priority::High => 1,
        Priority::Normal => 2,
        Priority::Low => 3,
    }
}

/// A key within its priority's list, or a hole that held it.
#[derive(Clone, Copy)]
struct Slot {
    order: u64,
    id: UnitId,
    live: bool,
}

impl Slot {
    fn key(&self) -> (u64, UnitId) {
        (self.order, self.id)
    }
}

/// One priority's keys (see the module's invariants).
#[derive(Default)]
struct Lane {
    slots: Vec<Slot>,
    live: usize,
    head: usize,
}

impl Lane {
    /// Adds a key; false if it was there already.
    fn insert(&mut self, key: (u64, UnitId)) -> bool {
        let slot = Slot {
            order: key.0,
            id: key.1,
            live: true,
        };
        if self.slots.last().is_none_or(|s| s.key() < key) {
            // The common case: a unit that just started, after every key of its priority.
            self.slots.push(slot);
            self.live += 1;
            return true;
        }
        // The slot holding `key` would be the last of those not above it.
        let above = self.slots.partition_point(|s| s.key() <= key);
        if above > 0 && self.slots[above - 1].key() == key {
            if self.slots[above - 1].live {
                return false;
            }
            return self.fill(above - 1, slot);
        }
        // A hole on either side of the place keeps the order when it takes the key (the
        // slot before holds a smaller key, the one after a larger one).
        if above > 0 && !self.slots[above - 1].live {
            return self.fill(above - 1, slot);
        }
        if !self.slots[above].live {
            return self.fill(above, slot);
        }
        // Shift the keys after it once, leaving a gap of holes carrying the next key.
        let room = self.live.max(SQUEEZE_AT) - (self.slots.len() - self.live);
        let gap = room.min(GAP);
        let next = Slot {
            live: false,
            ..self.slots[above]
        };
        self.slots.splice(
            above..above,
            core::iter::once(slot).chain(core::iter::repeat_n(next, gap)),
        );
        self.live += 1;
        if above <= self.head {
            self.head = above;
        }
        true
    }

    /// Puts a key into the hole at `at` (its place in the order).
    fn fill(&mut self, at: usize, slot: Slot) -> bool {
        self.slots[at] = slot;
        self.live += 1;
        self.head = self.head.min(at);
        true
    }

    /// Takes a key out; false if it was not there.
    fn remove(&mut self, key: (u64, UnitId)) -> bool {
        let above = self.slots.partition_point(|s| s.key() <= key);
        let Some(at) = above.checked_sub(1) else {
            return false;
        };
        if self.slots[at].key() != key || !self.slots[at].live {
            return false;
        }
        self.slots[at].live = false;
        self.live -= 1;
        if self.live == 0 {
            self.slots.clear();
            self.head = 0;
            return true;
        }
        if at == self.head {
            while !self.slots[self.head].live {
                self.head += 1;
            }
        }
        if self.slots.len() - self.live > self.live.max(SQUEEZE_AT) {
            // `retain` keeps the order and the vector's room.
            self.slots.retain(|s| s.live);
            self.head = 0;
        }
        true
    }

    /// The first slot at or after which every key is above `key` (holes included).
    fn after(&self, key: (u64, UnitId)) -> usize {
        self.head + self.slots[self.head..].partition_point(|s| s.key() <= key)
    }
}

/// The pending units' keys in build order (see the module's documentation).
#[derive(Default)]
pub(super) struct OrderIndex {
    lanes: [Lane; 4],
}

impl OrderIndex {
    /// Adds a key; false if it was there already.
    pub(super) fn insert(&mut self, key: OrderKey) -> bool {
        self.lanes[lane_of(key.0 .0)].insert((key.1, key.2))
    }

    /// Takes a key out; false if it was not there.
    pub(super) fn remove(&mut self, key: &OrderKey) -> bool {
        self.lanes[lane_of(key.0 .0)].remove((key.1, key.2))
    }

    /// Every key, in order.
    pub(super) fn iter(&self) -> Keys<'_> {
        Keys {
            lanes: &self.lanes,
            lane: 0,
            at: self.lanes[0].head,
        }
    }

    /// The keys after `key` (whether it is there or not), in order.
    pub(super) fn after(&self, key: &OrderKey) -> Keys<'_> {
        let lane = lane_of(key.0 .0);
        Keys {
            lanes: &self.lanes,
            lane,
            at: self.lanes[lane].after((key.1, key.2)),
        }
    }

    /// The ids of the critical units (the keys' prefix), in order.
    pub(super) fn critical(&self) -> impl Iterator<Item = UnitId> + '_ {
        let lane = &self.lanes[lane_of(Priority::Critical)];
        lane.slots[lane.head..]
            .iter()
            .filter(|s| s.live)
            .map(|s| s.id)
    }
}

/// A walk of the keys in order from a place, skipping the holes.
#[derive(Clone)]
pub(super) struct Keys<'a> {
    lanes: &'a [Lane; 4],
    /// The list walked, and the next slot in it.
    lane: usize,
    at: usize,
}

impl Iterator for Keys<'_> {
    type Item = OrderKey;

    fn next(&mut self) -> Option<OrderKey> {
        loop {
            let lane = self.lanes.get(self.lane)?;
            match lane.slots.get(self.at) {
                Some(s) => {
                    self.at += 1;
                    if s.live {
                        return Some((Reverse(LANES[self.lane]), s.order, s.id));
                    }
                }
                None => {
                    self.lane += 1;
                    self.at = self.lanes.get(self.lane).map_or(0, |l| l.head);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Rng;
    use alloc::collections::BTreeSet;
    use core::ops::Bound::{Excluded, Unbounded};

    /// The module's invariants, as written there.
    fn check(ix: &OrderIndex) {
        for (i, lane) in ix.lanes.iter().enumerate() {
            assert_eq!(lane_of(LANES[i]), i);
            assert!(lane
                .slots
                .windows(2)
                .all(|w| w[0].key() < w[1].key() || (w[0].key() == w[1].key() && !w[0].live)));
            assert_eq!(lane.live, lane.slots.iter().filter(|s| s.live).count());
            assert!(lane.slots[..lane.head].iter().all(|s| !s.live));
            assert!(lane.head <= lane.slots.len());
            assert!(lane.slots.len() - lane.live <= lane.live.max(SQUEEZE_AT));
            if lane.live == 0 {
                assert!(lane.slots.is_empty());
            }
        }
    }

    /// Against a `BTreeSet<OrderKey>` (what the index replaced), through thousands of
    /// random operations shaped like the queue's: units starting after every key of their
    /// priority (most), keys out of order (a failed request's units back, a priority
    /// rising), keys inserted twice, removals from the front (a batch), from anywhere, of
    /// keys not there; each time the same answers, and now and then the same keys in
    /// order, the same keys after any key (there or not) and the same critical prefix.
    #[test]
    fn behaves_as_an_ordered_set() {
        for seed in [0x2545_f491_4f6c_dd1d_u64, 0x9e37_79b9_7f4a_7c15, 7] {
            let mut rng = Rng::new(seed);
            let mut ix = OrderIndex::default();
            let mut want: BTreeSet<OrderKey> = BTreeSet::new();
            let (mut seq, mut id) = (0u64, 0u64);
            for step in 0..6000u32 {
                let p = LANES[rng.below(4) as usize];
                // Phases: mostly growing, then mostly shrinking, then mixed.
                let shrink = match step % 1500 {
                    0..=599 => rng.below(10) < 3,
                    600..=999 => rng.below(10) < 8,
                    _ => rng.below(2) == 0,
                };
                let existing = |rng: &mut Rng, want: &BTreeSet<OrderKey>| {
                    let n = want.len() as u64;
                    (n > 0).then(|| *want.iter().nth(rng.below(n) as usize).unwrap())
                };
                let op = rng.below(10);
                if shrink && !want.is_empty() {
                    let k = match op {
                        // The front (`build` takes from there), by priority or overall.
                        0..=3 => *want.first().unwrap(),
                        4..=5 => want
                            .iter()
                            .find(|k| k.0 .0 == p)
                            .copied()
                            .unwrap_or(*want.last().unwrap()),
                        6 => (Reverse(p), rng.below(seq + 2), UnitId(rng.below(id + 2))),
                        _ => existing(&mut rng, &want).unwrap(),
                    };
                    assert_eq!(ix.remove(&k), want.remove(&k), "remove {k:?}");
                    assert!(!ix.remove(&k), "taken out twice");
                } else {
                    let k = match op {
                        // Out of order: an earlier seq (a unit back), a key there already,
                        // an existing unit's key at another priority (its priority rose).
                        0 => {
                            id += 1;
                            (Reverse(p), rng.below(seq + 1), UnitId(id))
                        }
                        1 => existing(&mut rng, &want).unwrap_or((Reverse(p), 0, UnitId(1))),
                        2 => {
                            let k = existing(&mut rng, &want).unwrap_or((Reverse(p), 0, UnitId(1)));
                            (Reverse(p), k.1, k.2)
                        }
                        // A failed request's units back: an ascending run of earlier seqs.
                        3 => {
                            let run = 1 + rng.below(40);
                            let from = rng.below(seq + 1);
                            for o in from..from + run {
                                id += 1;
                                let k = (Reverse(p), o, UnitId(id));
                                assert_eq!(ix.insert(k), want.insert(k), "insert {k:?}");
                                check(&ix);
                            }
                            id += 1;
                            (Reverse(p), from + run, UnitId(id))
                        }
                        // A unit starting: its first change's seq is the newest.
                        _ => {
                            seq += 1 + rng.below(3);
                            id += 1;
                            (Reverse(p), seq, UnitId(id))
                        }
                    };
                    assert_eq!(ix.insert(k), want.insert(k), "insert {k:?}");
                }
                check(&ix);
                if step % 37 == 0 {
                    let got: Vec<OrderKey> = ix.iter().collect();
                    let exp: Vec<OrderKey> = want.iter().copied().collect();
                    assert_eq!(got, exp);
                    let got: Vec<UnitId> = ix.critical().collect();
                    let exp: Vec<UnitId> = want
                        .iter()
                        .take_while(|k| k.0 .0 == Priority::Critical)
                        .map(|k| k.2)
                        .collect();
                    assert_eq!(got, exp);
                    // After a key there, and after one not there (between or beyond keys).
                    let probes = [
                        existing(&mut rng, &want),
                        Some((
                            Reverse(LANES[rng.below(4) as usize]),
                            rng.below(seq + 2),
                            UnitId(rng.below(id + 2)),
                        )),
                    ];
                    for k in probes.into_iter().flatten() {
                        let got: Vec<OrderKey> = ix.after(&k).collect();
                        let exp: Vec<OrderKey> =
                            want.range((Excluded(k), Unbounded)).copied().collect();
                        assert_eq!(got, exp, "after {k:?}");
                        // A walk's copy walks on its own.
                        let mut walk = ix.after(&k);
                        let first = walk.clone().next();
                        assert_eq!(walk.next(), first);
                    }
                }
            }
            // Emptied, the index is as new: no slot left.
            for k in core::mem::take(&mut want) {
                assert!(ix.remove(&k));
            }
            check(&ix);
            assert_eq!(ix.iter().next(), None);
            assert!(ix.lanes.iter().all(|l| l.slots.is_empty()));
        }
    }

    /// A batch's removals leave holes in front that the walks skip without visiting (the
    /// list's start moves past them), a unit back in its old place takes a hole instead of
    /// shifting the keys after it, and an ascending run of keys before every key shifts
    /// them once and fills the gap it opened.
    #[test]
    fn holes_in_front_are_skipped_and_reused() {
        let mut ix = OrderIndex::default();
        let key = |o: u64| (Reverse(Priority::Normal), o, UnitId(o));
        for o in 1..=20 {
            assert!(ix.insert(key(o)));
        }
        for o in 1..=10 {
            assert!(ix.remove(&key(o)));
        }
        let lane = &ix.lanes[lane_of(Priority::Normal)];
        assert_eq!((lane.head, lane.slots.len(), lane.live), (10, 20, 10));
        assert_eq!(ix.iter().next(), Some(key(11)));
        // Back with its seq but a new id: between the holes of 5 and 6.
        let back = (Reverse(Priority::Normal), 5, UnitId(30));
        assert!(ix.insert(back));
        let lane = &ix.lanes[lane_of(Priority::Normal)];
        assert_eq!((lane.head, lane.slots.len(), lane.live), (4, 20, 11));
        assert_eq!(ix.iter().take(2).collect::<Vec<_>>(), [back, key(11)]);

        let mut ix = OrderIndex::default();
        let low = |o: u64| (Reverse(Priority::Low), o, UnitId(o));
        for o in 100..200 {
            assert!(ix.insert(low(o)));
        }
        for o in 1..=10 {
            assert!(ix.insert(low(o)));
        }
        // The first shifted the 100 keys and left `GAP` holes; the other nine took nine.
        let lane = &ix.lanes[lane_of(Priority::Low)];
        assert_eq!((lane.slots.len(), lane.live), (110 + GAP - 9, 110));
        let want: Vec<OrderKey> = (1..=10).chain(100..200).map(low).collect();
        assert_eq!(ix.iter().collect::<Vec<_>>(), want);
    }
}
