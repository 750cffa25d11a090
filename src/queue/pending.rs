//! The pending units and the indexes that let `poll` find what is due without looking at
//! every unit: the one owner of the unit map. Every insertion, removal and change of a
//! unit goes through [`Units`], so the indexes always say exactly what the map holds.
//!
//! Indexes (each entry names a unit of the map, and every unit has exactly the entries
//! its fields call for):
//! - `order`: every unit in the order `build` fills requests (priority, highest first,
//!   then the unit's first change, then its id); the critical units are its prefix;
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

use super::state::{Dep, Unit};
use super::Priority;
use crate::ids::{AgentId, UnitId};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::cmp::{Ordering, Reverse};

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

/// A unit's place in the order `build` fills requests.
pub(crate) type OrderKey = (Reverse<Priority>, u64, UnitId);

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
            order: (Reverse(u.priority), u.order, id),
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
    map: BTreeMap<UnitId, Unit>,
    next: u64,
    order: BTreeSet<OrderKey>,
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
            if let Err(at) = list.binary_search(&id) {
                list.insert(at, id);
            }
        }
        self.map.insert(id, unit);
    }

    /// Takes a unit out. Only through [`super::Queue::detach_unit`], which clears the
    /// unit's fields' pointer to it.
    pub(crate) fn remove(&mut self, id: UnitId) -> Option<Unit> {
        let unit = self.map.remove(&id)?;
        touch(&mut self.revs, &unit);
        self.unindex(id, Keys::of(id, &unit));
        self.with_deps -= usize::from(!unit.deps.is_empty());
        for e in &unit.entries {
            self.drop_agent_entry(e.agent, id);
        }
        Some(unit)
    }

    /// Changes a unit's schedule or dependencies (not its fields); the indexes follow.
    pub(crate) fn update<R>(&mut self, id: UnitId, f: impl FnOnce(&mut Unit) -> R) -> Option<R> {
        let unit = self.map.get_mut(&id)?;
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
        let Some(unit) = self.map.get_mut(&id) else {
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
        self.map.get(&id)
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
        self.order
            .iter()
            .take_while(|k| k.0 .0 == Priority::Critical)
            .map(|k| k.2)
    }

    /// Every unit in the order `build` fills requests.
    pub(crate) fn in_order(&self) -> impl Iterator<Item = (UnitId, &Unit)> + '_ {
        self.order.iter().map(|k| (k.2, &self.map[&k.2]))
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
        &self.map[id]
    }
}
