//! The pending units and the indexes that let `poll` find what is due without looking at
//! every unit: the one owner of the unit map (by id: [`unit_map::UnitMap`], a vector in id
//! order, its invariants written there). Every insertion, removal and change of a unit goes
//! through [`Units`], so the indexes always say exactly what the map holds.
//!
//! Indexes (each entry names a unit of the map, and every unit has exactly the entries
//! its fields call for):
//! - `order`: every unit in the order `build` fills requests (priority, highest first,
//!   then the unit's first change, then its id; [`order_index::OrderIndex`], a sorted list
//!   per priority, its invariants written there); the critical units are its prefix;
//! - `by_agent`: the units that carry a field of each agent (by agent index, each list
//!   in id order; a list left empty keeps its room, so a routine batch that takes every
//!   agent's unit and the changes after it neither free nor allocate);
//! - `backoff`: units tried before, not critical, by the end of their retry backoff
//!   (`not_before`; only such units have one: a critical change clears it);
//! - `high`: high-priority units not tried yet, by when their first high change joined
//!   (they are due alone `high_priority_delay_s` after it);
//! - `with_deps`: how many units have dependencies (a pass with none needs no dependency
//!   bookkeeping, and a poll waiting for the budget need not look at the units).
//!
//! And per agent a revision: it moves whenever a unit carrying one of the agent's fields is
//! added, taken out or changed. While it stands still, every unit of the agent is as it
//! was (the absorption check, `absorb.rs`, relies on it to skip searching the unit map).

mod order_index;
mod unit_map;

use super::state::{Dep, Unit};
use super::Priority;
use crate::ids::{AgentId, UnitId};
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::cmp::{Ordering, Reverse};
use order_index::OrderIndex;
use unit_map::UnitMap;

/// A time as an index key (times in the queue are finite and not negative).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct At(pub(crate) f64);

impl Eq for At {}

impl PartialOrd for At {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for At {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// [`Units::remove_many`] takes units out in bulk, without moving the agents' revisions,
/// when it takes at least one unit in this many (the bulk path once rebuilt the order
/// index; it now differs from [`Units::remove`]s only by the revisions, kept as they were
/// so that the queue behaves exactly as before).
const BULK_SHARE: usize = 4;

/// A unit's place in the order `build` fills requests.
pub(crate) type OrderKey = (Reverse<Priority>, u64, UnitId);

/// A unit's place in the order `build` fills requests: the one owner of that order.
fn order_key(id: UnitId, u: &Unit) -> OrderKey {
    (Reverse(u.priority), u.order, id)
}

/// What of a unit its index entries depend on.
#[derive(Clone, Copy, PartialEq)]
struct Keys {
    order: OrderKey,
    backoff: Option<At>,
    high: Option<At>,
}

impl Keys {
    fn of(id: UnitId, u: &Unit) -> Keys {
        Keys {
            order: order_key(id, u),
            backoff: (u.priority != Priority::Critical && u.attempts > 0)
                .then_some(At(u.not_before)),
            high: match (u.priority, u.attempts, u.high_since) {
                (Priority::High, 0, Some(t)) => Some(At(t)),
                _ => None,
            },
        }
    }
}

/// The pending units, by id, with their indexes.
#[derive(Default)]
pub(crate) struct Units {
    /// The units by id (ids only grow: an insertion is at the end; see [`UnitMap`]).
    map: UnitMap,
    next: u64,
    order: OrderIndex,
    by_agent: Vec<Vec<UnitId>>,
    backoff: BTreeSet<(At, UnitId)>,
    high: BTreeSet<(At, UnitId)>,
    with_deps: usize,
    /// Per agent (by index), its revision (see the module's doc; 0 before any change).
    revs: Vec<u64>,
}

impl Units {
    /// A fresh id (ids are never reused, so a hint naming one stays unambiguous).
    pub(crate) fn new_id(&mut self) -> UnitId {
        self.next += 1;
        UnitId(self.next)
    }

    /// Adds a unit under an id from [`Units::new_id`]. Only through
    /// [`super::Queue::attach_unit`], which points the unit's fields at it.
    pub(crate) fn insert(&mut self, id: UnitId, unit: Unit) {
        touch(&mut self.revs, &unit);
        self.index(id, Keys::of(id, &unit));
        self.with_deps += usize::from(!unit.deps.is_empty());
        for e in &unit.entries {
            let i = e.agent.0 as usize;
            if self.by_agent.len() <= i {
                self.by_agent.resize_with(i + 1, Vec::new);
            }
            let list = &mut self.by_agent[i];
            // A fresh id is above every id listed: it goes at the end (the search is for
            // a unit with two fields of the agent, listed once).
            if list.last().is_none_or(|l| *l < id) {
                list.push(id);
            } else if let Err(at) = list.binary_search(&id) {
                list.insert(at, id);
            }
        }
        self.map.insert(id, unit);
    }

    /// Takes a unit out. Only through [`super::Queue::detach_unit`], which clears the
    /// unit's fields' pointer to it.
    pub(crate) fn remove(&mut self, id: UnitId) -> Option<Unit> {
        self.take(id, true)
    }

    /// [`Units::remove`], moving the agents' revisions only when `touch_revs` (the one
    /// owner of taking a unit out, for both removals).
    fn take(&mut self, id: UnitId, touch_revs: bool) -> Option<Unit> {
        let unit = self.map.remove(id)?;
        if touch_revs {
            touch(&mut self.revs, &unit);
        }
        self.unindex(id, Keys::of(id, &unit));
        self.with_deps -= usize::from(!unit.deps.is_empty());
        for e in &unit.entries {
            self.drop_agent_entry(e.agent, id);
        }
        Some(unit)
    }

    /// Takes units out, as many [`Units::remove`]s would, and returns them in the order of
    /// `ids` (each id names a pending unit, once; each comes back as `Some`). A build pass
    /// takes many units at once (the routine batch takes every one); the map's and the
    /// order index's removals leave holes, squeezed out in passes of their own. When they
    /// are a good part of the units ([`BULK_SHARE`]) the agents' revisions do not move: a
    /// grant's memo names a unit taken out, whose id no field names any more.
    pub(crate) fn remove_many(&mut self, ids: &[UnitId]) -> Vec<Option<Unit>> {
        let touch_revs = ids.len() * BULK_SHARE < self.map.len();
        ids.iter()
            .map(|&id| {
                let unit = self.take(id, touch_revs);
                Some(unit.expect("remove_many: an id not pending, or twice"))
            })
            .collect()
    }

    /// Changes a unit's schedule or dependencies (not its fields); the indexes follow.
    pub(crate) fn update<R>(&mut self, id: UnitId, f: impl FnOnce(&mut Unit) -> R) -> Option<R> {
        let unit = self.map.get_mut(id)?;
        touch(&mut self.revs, unit);
        let before = Keys::of(id, unit);
        let (len, had_deps) = (unit.entries.len(), !unit.deps.is_empty());
        let r = f(unit);
        debug_assert_eq!(len, unit.entries.len(), "update may not change the fields");
        let has_deps = !unit.deps.is_empty();
        self.with_deps = self.with_deps + usize::from(has_deps) - usize::from(had_deps);
        let after = Keys::of(id, unit);
        if before != after {
            self.unindex(id, before);
            self.index(id, after);
        }
        Some(r)
    }

    /// Drops an agent's fields from a unit; returns how many it carried.
    pub(crate) fn drop_agent(&mut self, id: UnitId, agent: AgentId) -> usize {
        let Some(unit) = self.map.get_mut(id) else {
            return 0;
        };
        touch(&mut self.revs, unit);
        let before = unit.entries.len();
        unit.entries.retain(|e| e.agent != agent);
        let dropped = before - unit.entries.len();
        self.drop_agent_entry(agent, id);
        dropped
    }

    /// Calls `f` on the dependencies of every unit, to release some (they are not
    /// indexed; the count of units with any follows; no revision moves: neither
    /// absorption's rule nor a unit's due time reads them).
    pub(crate) fn for_each_deps(&mut self, mut f: impl FnMut(&mut Vec<Dep>)) {
        for u in self.map.values_mut() {
            f(&mut u.deps);
        }
        self.with_deps = self.map.values().filter(|u| !u.deps.is_empty()).count();
    }

    /// Whether any pending unit has dependencies.
    pub(crate) fn any_deps(&self) -> bool {
        self.with_deps > 0
    }

    pub(crate) fn get(&self, id: UnitId) -> Option<&Unit> {
        self.map.get(id)
    }

    /// The agent's revision: it moves whenever a unit carrying one of its fields is added,
    /// taken out or changed (priority, schedule, fields), so two equal readings mean its
    /// units are as they were.
    pub(crate) fn rev(&self, agent: AgentId) -> u64 {
        self.revs.get(agent.0 as usize).copied().unwrap_or(0)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Unit> {
        self.map.values()
    }

    /// The units carrying a field of `agent`, by id.
    pub(crate) fn touching(&self, agent: AgentId) -> impl Iterator<Item = UnitId> + '_ {
        self.by_agent
            .get(agent.0 as usize)
            .into_iter()
            .flatten()
            .copied()
    }

    /// Whether any unit carries a field of `agent`.
    pub(crate) fn any_touching(&self, agent: AgentId) -> bool {
        self.by_agent
            .get(agent.0 as usize)
            .is_some_and(|l| !l.is_empty())
    }

    /// The critical units, in build order.
    pub(crate) fn critical(&self) -> impl Iterator<Item = UnitId> + '_ {
        self.order.critical()
    }

    /// Every unit in the order `build` fills requests.
    ///
    /// Units mostly come in that order by id too (within a priority, a unit's first change
    /// orders it, and ids are issued as units start), so the map is walked alongside the
    /// order index and a unit is looked up only when the walk does not have it: the walk
    /// skips ids the index gave earlier and never goes back, so it costs one pass over the
    /// map at most.
    pub(crate) fn in_order(&self) -> impl Iterator<Item = (UnitId, &Unit)> + '_ {
        let mut walk = self.map.iter().peekable();
        self.order.iter().map(move |k| {
            let id = k.2;
            while walk.next_if(|(w, _)| *w < id).is_some() {}
            match walk.next_if(|(w, _)| *w == id) {
                Some((_, u)) => (id, u),
                None => (id, &self.map[id]),
            }
        })
    }

    /// The units after `after` in the order `build` fills requests, each with its place,
    /// as [`Units::in_order`] walks them (the map's walk starts at the first unit's id: an
    /// id before it that comes later is looked up). With `None`, every unit.
    pub(crate) fn in_order_after(
        &self,
        after: Option<OrderKey>,
    ) -> impl Iterator<Item = (OrderKey, &Unit)> + '_ {
        let keys = match after {
            Some(k) => self.order.after(&k),
            None => self.order.iter(),
        };
        let first = keys.clone().next().map_or(UnitId(0), |k| k.2);
        let mut walk = self.map.iter_from(first).peekable();
        keys.map(move |k| {
            let id = k.2;
            while walk.next_if(|(w, _)| *w < id).is_some() {}
            match walk.next_if(|(w, _)| *w == id) {
                Some((_, u)) => (k, u),
                None => (k, &self.map[id]),
            }
        })
    }

    /// A pending unit with its place in the order `build` fills requests.
    pub(crate) fn with_key(&self, id: UnitId) -> (OrderKey, &Unit) {
        let u = &self.map[id];
        (order_key(id, u), u)
    }

    /// The earliest retry backoff of a unit not critical that ends after `now`.
    pub(crate) fn next_backoff_after(&self, now: f64) -> Option<f64> {
        self.backoff
            .range((At(now), UnitId(u64::MAX))..)
            .find(|(t, _)| t.0 > now)
            .map(|(t, _)| t.0)
    }

    /// Whether a unit not critical, tried before, may go again at `now` (it is then due
    /// alone).
    pub(crate) fn retry_due(&self, now: f64) -> bool {
        self.backoff.first().is_some_and(|(t, _)| t.0 <= now)
    }

    /// When the first high-priority unit not tried yet is due alone (`delay` after its
    /// first high change joined; the sum is the one `poll` computes per unit, and adding
    /// `delay` keeps the index's order, so the first entry is the earliest).
    pub(crate) fn first_high_due(&self, delay: f64) -> Option<f64> {
        self.high.first().map(|(t, _)| t.0 + delay)
    }

    fn index(&mut self, id: UnitId, k: Keys) {
        self.order.insert(k.order);
        if let Some(t) = k.backoff {
            self.backoff.insert((t, id));
        }
        if let Some(t) = k.high {
            self.high.insert((t, id));
        }
    }

    fn unindex(&mut self, id: UnitId, k: Keys) {
        self.order.remove(&k.order);
        if let Some(t) = k.backoff {
            self.backoff.remove(&(t, id));
        }
        if let Some(t) = k.high {
            self.high.remove(&(t, id));
        }
    }

    fn drop_agent_entry(&mut self, agent: AgentId, id: UnitId) {
        if let Some(list) = self.by_agent.get_mut(agent.0 as usize) {
            if let Ok(at) = list.binary_search(&id) {
                list.remove(at);
            }
        }
    }
}

/// Moves the revision of every agent `unit` carries a field of (a free function so that it
/// works beside a unit borrowed from the map).
fn touch(revs: &mut Vec<u64>, unit: &Unit) {
    for e in &unit.entries {
        let i = e.agent.0 as usize;
        if revs.len() <= i {
            revs.resize(i + 1, 0);
        }
        revs[i] += 1;
    }
}

impl core::ops::Index<&UnitId> for Units {
    type Output = Unit;
    fn index(&self, id: &UnitId) -> &Unit {
        &self.map[*id]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Sym;
    use crate::queue::state::FieldKey;

    /// Everything the map and its indexes hold, to compare two `Units`.
    type Snapshot = (
        Vec<(UnitId, Vec<FieldKey>, u64, u32)>,
        Vec<OrderKey>,
        Vec<(At, UnitId)>,
        Vec<(At, UnitId)>,
        Vec<Vec<UnitId>>,
        usize,
    );

    fn snapshot(u: &Units) -> Snapshot {
        (
            u.map
                .iter()
                .map(|(id, x)| (id, x.entries.clone(), x.order, x.attempts))
                .collect(),
            u.order.iter().collect(),
            u.backoff.iter().copied().collect(),
            u.high.iter().copied().collect(),
            u.by_agent.clone(),
            u.with_deps,
        )
    }

    /// 40 units of every kind the indexes tell apart: priorities mixed (so the build order
    /// is not the id order), retries (backoff), high-priority units not tried (high), some
    /// with dependencies, one to three fields over 7 agents, some agents' fields in several
    /// units.
    fn units() -> Units {
        let mut u = Units::default();
        for i in 0..40u32 {
            let id = u.new_id();
            let entries = (0..1 + i % 3)
                .map(|j| FieldKey {
                    agent: AgentId((i + j) % 7),
                    block: Sym(j),
                    field: Sym(i),
                })
                .collect();
            // Orders not in id order: later ids may come first.
            let mut unit = Unit::new(entries, None, u64::from((i * 17) % 40));
            unit.priority = [
                Priority::Low,
                Priority::Normal,
                Priority::High,
                Priority::Critical,
            ][(i % 4) as usize];
            if i % 5 == 0 {
                unit.attempts = 1;
                unit.not_before = f64::from(i);
            }
            if unit.priority == Priority::High {
                unit.high_since = Some(f64::from(40 - i));
            }
            if i % 6 == 1 {
                let k = unit.entries[0];
                let change = |seq| crate::ids::ChangeId {
                    seq,
                    agent: k.agent,
                    block: k.block,
                    field: k.field,
                };
                unit.deps.push(Dep {
                    on: change(1),
                    dependent: change(u64::from(i) + 2),
                });
            }
            u.insert(id, unit);
        }
        u
    }

    /// Taking units out together leaves exactly what taking them out one by one does, and
    /// returns them in the order asked, whether few (removed one by one) or many (the map
    /// and the order index rebuilt) are taken.
    #[test]
    fn remove_many_is_removes_one_by_one() {
        let picks: [&[u64]; 4] = [
            &[7, 2, 31],
            &[40, 1, 39, 2, 20, 3, 5, 8, 13, 21, 34, 6, 9, 12],
            &[
                10, 30, 11, 29, 12, 28, 13, 27, 14, 26, 15, 25, 16, 24, 17, 23, 18, 22, 19, 21,
            ],
            &[],
        ];
        let mut all: Vec<u64> = (1..=40).rev().collect();
        all.rotate_left(13);
        for ids in picks.iter().copied().chain([all.as_slice()]) {
            let ids: Vec<UnitId> = ids.iter().map(|i| UnitId(*i)).collect();
            let (mut one, mut many) = (units(), units());
            let removed: Vec<_> = ids.iter().map(|id| one.remove(*id).unwrap()).collect();
            let taken: Vec<Unit> = many.remove_many(&ids).into_iter().flatten().collect();
            assert_eq!(taken.len(), ids.len());
            assert_eq!(snapshot(&one), snapshot(&many), "{ids:?}");
            let key = |u: &Unit| (u.entries.clone(), u.order, u.priority, u.attempts);
            assert_eq!(
                removed.iter().map(key).collect::<Vec<_>>(),
                taken.iter().map(key).collect::<Vec<_>>()
            );
            // The indexes still serve the build order.
            let walked: Vec<UnitId> = many.in_order().map(|(id, _)| id).collect();
            let indexed: Vec<UnitId> = many.order.iter().map(|k| k.2).collect();
            assert_eq!(walked, indexed);
        }
    }

    /// The build order walks every unit once, each with its own state, whatever the
    /// relation between ids and the order.
    #[test]
    fn in_order_gives_each_unit_in_build_order() {
        let u = units();
        let walked: Vec<(UnitId, u64)> = u.in_order().map(|(id, x)| (id, x.order)).collect();
        let expected: Vec<(UnitId, u64)> =
            u.order.iter().map(|k| (k.2, u.map[k.2].order)).collect();
        assert_eq!(walked, expected);
        assert_eq!(walked.len(), 40);
        // Not the id order: the walk had to look units up.
        assert!(walked.windows(2).any(|w| w[0].0 > w[1].0));
    }
}
