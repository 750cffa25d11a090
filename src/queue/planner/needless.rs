//! Units that need not go: a unit whose every field already holds its value at the backend
//! (or is in flight with it) is dropped instead of sent; fields suspected stale are rechecked.

use super::*;

impl Queue {
    /// A field's pending unit may have stopped needing a send although the field did not
    /// change: its acknowledged value moved (a confirmation of another value, a block read
    /// from Letta), or the doubt of a failed send was settled (the same seq sent again and
    /// acknowledged: while in doubt every value needs a send). The call that found it
    /// drops such units before it returns ([`Queue::drop_stale_suspects`]).
    pub(crate) fn suspect_stale(&mut self, key: FieldKey) {
        self.stale_suspects.push(key);
    }

    /// Drops the lone pending units of the suspects' fields that need no send any more, as
    /// a change making its field's unit needless does: so between calls no lone pending
    /// unit needs no send, and a poll waiting for the budget need not look for one.
    pub(crate) fn drop_stale_suspects(&mut self) {
        for key in core::mem::take(&mut self.stale_suspects) {
            let Some(uid) = self.field(key).and_then(|f| f.unit) else {
                continue;
            };
            if self.units.get(uid).is_some_and(|u| self.is_needless(u)) {
                self.drop_needless(uid);
                self.rec.m.coalesced += 1;
            }
        }
    }

    /// Whether a pending unit is a lone field (no atomic group: a group stays whole) whose
    /// value needs no send any more: the one rule for `plan`'s drop and the suspects'.
    pub(super) fn is_needless(&self, unit: &Unit) -> bool {
        unit.group.is_none() && !self.field(unit.entries[0]).is_some_and(|f| f.needs_send())
    }

    /// Drops a lone pending unit whose field needs no send any more, settling the field.
    /// Its dependencies ride with the value in flight the field now equals, if any (that
    /// send delivers a seq above its changes': it must not overtake what they wait for).
    /// A unit gone may free a dependent: the next poll looks at everything. The one owner
    /// of that step, for a change that makes its field's unit needless (`apply_key`), a
    /// call that moves what the backend holds (`drop_stale_suspects`) and `plan`.
    pub(crate) fn drop_needless(&mut self, uid: UnitId) {
        if let Some(unit) = self.detach_unit(uid) {
            self.drop_detached_needless(unit);
        }
    }

    /// [`Queue::drop_needless`] of a unit already detached (`commit` detaches a pass's
    /// units together).
    pub(super) fn drop_detached_needless(&mut self, unit: Unit) {
        let key = unit.entries[0];
        if !unit.deps.is_empty() {
            self.attach_deps_in_flight(key, unit.deps);
        }
        self.settle(key);
        self.dirty = true;
    }
}
