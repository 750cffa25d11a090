//! The pending units by id: a vector in id order, with a hole where a unit left.
//!
//! Ids only grow ([`super::Units::new_id`]) and a unit joins the pending ones under the id
//! it was just given, so an insertion is always at the end: a push, where a B-tree of
//! these large values searched, and split and copied its nodes (in Luau, where every load
//! and call costs, several times a push). A lookup is a binary search over the ids. A unit
//! taken out leaves a hole (no shift of the entries after it); the holes are squeezed out
//! when they outnumber the units, so the vector holds at most about twice the pending
//! units and a removal costs amortized constant time beyond its search.
//!
//! Invariants: `slots` is in strictly increasing id order; `live` is the number of slots
//! holding a unit; the holes (`slots.len() - live`) are at most `max(live, SQUEEZE_AT)`
//! (a removal squeezes them out beyond that; an insertion adds none).

use super::Unit;
use crate::ids::UnitId;
use alloc::vec::Vec;

/// Up to this many holes stay whatever the units (squeezing a few costs more than it saves).
const SQUEEZE_AT: usize = 32;

/// The pending units, by id (see the module's documentation).
#[derive(Default)]
pub(super) struct UnitMap {
    slots: Vec<(UnitId, Option<Unit>)>,
    live: usize,
}

impl UnitMap {
    /// Adds a unit under an id above every id it held so far.
    ///
    /// # Panics
    /// If `id` is not above the last id it held (a caller's bug: ids come from
    /// [`super::Units::new_id`], and each is inserted once).
    pub(super) fn insert(&mut self, id: UnitId, unit: Unit) {
        assert!(
            self.slots.last().is_none_or(|(last, _)| *last < id),
            "a unit id inserted out of order"
        );
        self.slots.push((id, Some(unit)));
        self.live += 1;
    }

    /// The slot of `id`, if the vector has one (a unit or a hole).
    fn position(&self, id: UnitId) -> Option<usize> {
        self.slots.binary_search_by_key(&id, |(i, _)| *i).ok()
    }

    pub(super) fn get(&self, id: UnitId) -> Option<&Unit> {
        self.slots[self.position(id)?].1.as_ref()
    }

    pub(super) fn get_mut(&mut self, id: UnitId) -> Option<&mut Unit> {
        let at = self.position(id)?;
        self.slots[at].1.as_mut()
    }

    /// Takes a unit out, leaving a hole (squeezed out when holes outnumber the units).
    pub(super) fn remove(&mut self, id: UnitId) -> Option<Unit> {
        let at = self.position(id)?;
        let unit = self.slots[at].1.take()?;
        self.live -= 1;
        let holes = self.slots.len() - self.live;
        if holes > self.live.max(SQUEEZE_AT) {
            // `retain` keeps the order and the vector's room.
            self.slots.retain(|(_, u)| u.is_some());
        }
        Some(unit)
    }

    pub(super) fn len(&self) -> usize {
        self.live
    }

    pub(super) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Every unit with its id, in id order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (UnitId, &Unit)> + Clone {
        Self::live_of(&self.slots)
    }

    /// The units whose id is `from` or above, with their ids, in id order.
    pub(super) fn iter_from(&self, from: UnitId) -> impl Iterator<Item = (UnitId, &Unit)> {
        let start = self.slots.partition_point(|(i, _)| *i < from);
        Self::live_of(&self.slots[start..])
    }

    fn live_of(slots: &[(UnitId, Option<Unit>)]) -> impl Iterator<Item = (UnitId, &Unit)> + Clone {
        slots
            .iter()
            .filter_map(|(id, u)| u.as_ref().map(|u| (*id, u)))
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Unit> {
        self.slots.iter().filter_map(|(_, u)| u.as_ref())
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut Unit> {
        self.slots.iter_mut().filter_map(|(_, u)| u.as_mut())
    }
}

impl core::ops::Index<UnitId> for UnitMap {
    type Output = Unit;
    /// # Panics
    /// If no pending unit has `id`.
    fn index(&self, id: UnitId) -> &Unit {
        self.get(id).expect("a pending unit")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(order: u64) -> Unit {
        Unit::new(Vec::new(), None, order)
    }

    /// Against a `BTreeMap` (what the map replaced): the same units by id and in id order
    /// through insertions and removals in any order, holes squeezed out or not, and never
    /// more holes than units once there are holes to squeeze.
    #[test]
    fn behaves_as_an_ordered_map() {
        let mut m = UnitMap::default();
        let mut want: alloc::collections::BTreeMap<UnitId, u64> = Default::default();
        let mut next = 0u64;
        // A fixed pseudo-random walk (no dependency): inserts mostly, removals in any order.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for step in 0..4000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let remove = x % 5 < 2 || (step > 3000 && x % 5 < 4);
            if remove && !want.is_empty() {
                let k = *want.keys().nth((x >> 8) as usize % want.len()).unwrap();
                assert_eq!(m.remove(k).map(|u| u.order), want.remove(&k));
                assert!(m.remove(k).is_none(), "taken out twice");
            } else {
                next += 1 + x % 3;
                m.insert(UnitId(next), unit(next * 10));
                want.insert(UnitId(next), next * 10);
            }
            assert_eq!(m.len(), want.len());
            assert_eq!(m.is_empty(), want.is_empty());
            assert!(m.slots.len() - m.live <= m.live.max(SQUEEZE_AT));
            if step % 97 == 0 {
                let got: Vec<(UnitId, u64)> = m.iter().map(|(i, u)| (i, u.order)).collect();
                let exp: Vec<(UnitId, u64)> = want.iter().map(|(i, o)| (*i, *o)).collect();
                assert_eq!(got, exp);
                let from = UnitId(next / 2);
                let got: Vec<UnitId> = m.iter_from(from).map(|(i, _)| i).collect();
                let exp: Vec<UnitId> = want.range(from..).map(|(i, _)| *i).collect();
                assert_eq!(got, exp);
                for probe in 0..=next + 1 {
                    let id = UnitId(probe);
                    assert_eq!(m.get(id).map(|u| u.order), want.get(&id).copied());
                }
            }
        }
        assert_eq!(m.values().count(), want.len());
        for u in m.values_mut() {
            u.order += 1;
        }
        for (i, o) in &want {
            assert_eq!(m.get_mut(*i).map(|u| u.order), Some(o + 1));
        }
    }

    #[test]
    #[should_panic(expected = "out of order")]
    fn an_id_out_of_order_is_refused() {
        let mut m = UnitMap::default();
        m.insert(UnitId(5), unit(1));
        m.insert(UnitId(5), unit(2));
    }
}
