//! Pending units' bookkeeping: placing a unit among the pending ones (merging the units
//! that share its fields), attaching a unit to its fields and detaching it (the one owner
//! of a field's `unit`), unit ids, and settling a field that stopped waiting.

use super::state::{self, FieldKey, FieldState, Unit};
use super::Queue;
use crate::ids::UnitId;

/// Whether a unit being placed holds newer changes than the pending units it merges with
/// (a new atomic group) or older ones (a failed unit coming back).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recency {
    Newer,
    Older,
}

impl Queue {
    /// Puts a unit among the pending ones. A field has at most one pending unit, so the
    /// units already carrying any of its fields merge into it ([`Unit::absorb`]: the
    /// rules on priority, backoff and latency of a merge live there). Where the two
    /// orders contradict, the newer changes' order wins: the fields both hold carry the
    /// newer values, so the older unit's changes to them are superseded and never sent;
    /// every other change keeps its place in its own unit's order. Every path that merges
    /// units (`atomic`, a failed unit coming back) comes through here. Returns how many
    /// pending units merged in.
    pub(crate) fn place_unit(&mut self, mut unit: Unit, recency: Recency) -> u64 {
        let uid = self.new_unit_id();
        let mut merged = 0;
        // Only the unit's own fields can belong to other units: a merged unit's fields
        // pointed at it, and it is gone.
        for key in unit.entries.clone() {
            let Some(other) = self.field(key).and_then(|f| f.unit) else {
                continue;
            };
            let Some(o) = self.detach_unit(other) else {
                continue;
            };
            let order = match recency {
                Recency::Newer => {
                    let mut m = unit.entries.clone();
                    state::merge_order(&mut m, &o.entries);
                    m
                }
                Recency::Older => {
                    let mut m = o.entries.clone();
                    state::merge_order(&mut m, &unit.entries);
                    m
                }
            };
            unit.absorb(o);
            unit.entries = order;
            merged += 1;
        }
        self.attach_unit(uid, unit);
        merged
    }

    /// Adds a unit to the pending ones and attaches it to its fields (each field's `unit`
    /// names it). With [`Queue::detach_unit`] the one place where a field's pending unit
    /// changes, so the fields and [`super::pending::Units`] always agree, and where a
    /// watched call notes the fields whose grant may change (`absorb.rs`).
    pub(crate) fn attach_unit(&mut self, uid: UnitId, unit: Unit) {
        self.attach_unit_then(uid, unit, |_| {});
    }

    /// [`Queue::attach_unit`], calling `then` on each field's record as it is pointed at the
    /// unit: a caller with more to write there (a unit just started: the field waits from
    /// now) needs no search of its own.
    pub(crate) fn attach_unit_then(
        &mut self,
        uid: UnitId,
        unit: Unit,
        mut then: impl FnMut(&mut FieldState),
    ) {
        for e in &unit.entries {
            let f = self.field_mut(*e);
            f.unit = Some(uid);
            then(f);
            self.grant_may_change(*e);
        }
        self.units.insert(uid, unit);
    }

    /// Takes a unit out of the pending ones and detaches it from its fields (sent, merged
    /// into another, or no longer needed). A field whose agent is gone has nothing to
    /// detach.
    pub(crate) fn detach_unit(&mut self, uid: UnitId) -> Option<Unit> {
        let unit = self.units.remove(uid)?;
        self.unhook(&unit);
        Some(unit)
    }

    /// [`Queue::detach_unit`] of each of `ids` (pending units, each once), in that order,
    /// each unit then given to `then`, with the units taken out of the pending ones
    /// together ([`Units::remove_many`]: a build pass takes many).
    ///
    /// [`Units::remove_many`]: super::pending::Units::remove_many
    pub(crate) fn detach_units(&mut self, ids: &[UnitId], mut then: impl FnMut(&mut Queue, Unit)) {
        for unit in self.units.remove_many(ids) {
            let unit = unit.expect("remove_many gives every unit asked");
            self.unhook(&unit);
            then(self, unit);
        }
    }

    /// Clears the pointer of a unit's fields to it (the unit has left the pending ones).
    fn unhook(&mut self, unit: &Unit) {
        for e in &unit.entries {
            if let Some(f) = self
                .agent_state_mut(e.agent)
                .and_then(|a| a.fields.get_mut(&(e.block, e.field)))
            {
                f.unit = None;
            }
            self.grant_may_change(*e);
        }
    }

    /// When a critical unit may go: not before its retry backoff, nor inside the combat
    /// debounce window of any agent it touches that sent a critical change lately. The one
    /// owner of that rule, for `poll` and for the wake a change notes.
    pub(crate) fn critical_ready(&self, u: &Unit, now: f64) -> f64 {
        let mut ready = u.not_before;
        for e in &u.entries {
            if let Some(a) = self.agent_state(e.agent) {
                if let Some(last) = a.last_critical_emit {
                    // Entering combat shortens the open window; leaving it does not
                    // lengthen it.
                    let window = if a.in_combat(now) {
                        self.cfg.combat_debounce_s
                    } else {
                        self.cfg.debounce_s
                    };
                    ready = ready.max(last + window.min(a.last_critical_window));
                }
            }
        }
        ready
    }

    pub(crate) fn new_unit_id(&mut self) -> UnitId {
        self.units.new_id()
    }

    /// After a field stopped needing a send: nothing of it is waiting any more. What it
    /// waited for is delivered by the send in flight (which inherits its age), or already
    /// held by the backend. A record left saying nothing is freed.
    pub(crate) fn settle(&mut self, key: FieldKey) {
        let Some(a) = self.agent_state_mut(key.agent) else {
            return;
        };
        let name = (key.block, key.field);
        if a.fields.get_mut(&name).is_some_and(|f| f.settle()) {
            a.fields.remove(&name);
        }
    }
}
