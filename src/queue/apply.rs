//! The generic change path: a validated change becomes the field's latest local value
//! and joins (or starts, or stops needing) the field's pending unit.

use super::slots::UnitHint;
use super::state::{Dep, FieldKey, FieldState, Local, Unit};
use super::{Change, Priority, Queue};
use crate::error::Error;
use crate::ids::{AgentId, ChangeId, Seq, UnitId};
use crate::value::Value;
use alloc::vec::Vec;

/// What a change does to the queue's wake ([`Queue::note_due`]).
enum Wake {
    /// The next poll looks at everything.
    Dirty,
    /// Nothing moves.
    Keep,
    /// For a change whose unit is due (now or later), that moves the agent's combat mode,
    /// or that changes an agent waiting for a decision sync or an urgent request: where
    /// [`Queue::urgent_wake`] answers, `At` the later of `then`'s time and the next reserved
    /// call (`Dirty`: the call), else `then` (`Dirty` or `At`).
    Urgent {
        now: f64,
        agent: AgentId,
        then: Then,
    },
}

/// What [`Wake::Urgent`] does where [`Queue::urgent_wake`] does not answer.
enum Then {
    Dirty,
    At(f64),
}

impl Queue {
    /// Queues one field change. Returns its handle (for dependencies).
    pub fn set(&mut self, now: f64, change: Change<'_>) -> Result<ChangeId, Error> {
        self.check_time("now", now)?;
        self.check_change(&change)?;
        self.check_block_texts(&[(change.agent, change.block, change.field, &change.value)])?;
        self.observe_time(now);
        Ok(self.apply(now, &change))
    }

    /// Records a change as the field's latest local value and issues its handle; returns
    /// its priority under [`Queue::field_rules`].
    pub(crate) fn record_local(&mut self, now: f64, c: &Change<'_>) -> (FieldKey, u64, Priority) {
        let key = self.resolve(c);
        let priority = self.field_rules(now, key, &c.value, c.priority);
        (key, self.record_key(key, c.value.clone()).0, priority)
    }

    /// The field a change names, interning its block and field names.
    pub(crate) fn resolve(&mut self, c: &Change<'_>) -> FieldKey {
        FieldKey {
            agent: c.agent,
            block: self.symbols.intern(c.block),
            field: self.symbols.intern(c.field),
        }
    }

    /// Records a value as the field's latest local value; returns its sequence number and
    /// the field (one lookup for the whole change: lookups dominate its cost in Luau).
    pub(crate) fn record_key(&mut self, key: FieldKey, value: Value) -> (u64, &mut FieldState) {
        // The field reached through `self.agents` directly, so that the counters beside it
        // can be borrowed at the same time (`agent_mut` would borrow the whole queue).
        let fs = self.agents[key.agent.0 as usize]
            .as_mut()
            .expect("agent checked live before mutation")
            .fields
            .entry((key.block, key.field))
            .or_default();
        let seq = record_local(&mut self.next_seq, &mut self.rec.m.changes_in, fs, value);
        (seq, fs)
    }

    /// Applies one validated standalone change: coalesces it into the field's pending
    /// unit, or drops what no longer needs sending.
    pub(crate) fn apply(&mut self, now: f64, c: &Change<'_>) -> ChangeId {
        let key = self.resolve(c);
        self.apply_key(now, key, c.value.clone(), c.priority, &c.depends_on, None)
            .0
    }

    /// [`Queue::apply`] of a field already resolved (the slot path of `slots.rs`).
    ///
    /// `hint` is what an earlier change of this field learnt about its pending unit (see
    /// [`UnitHint`]); the hint after this change is returned with the handle.
    pub(crate) fn apply_key(
        &mut self,
        now: f64,
        key: FieldKey,
        value: Value,
        priority: Priority,
        depends_on: &[ChangeId],
        hint: Option<UnitHint>,
    ) -> (ChangeId, Option<UnitHint>) {
        let priority = self.field_rules(now, key, &value, priority);
        let (seq, f) = self.record_key(key, value);
        let needs = f.needs_send();
        let existing = f.unit;
        let id = change_id(key, seq);
        let deps: Vec<Dep> = if depends_on.is_empty() {
            Vec::new()
        } else {
            depends_on
                .iter()
                .map(|d| Dep {
                    on: *d,
                    dependent: id,
                })
                .collect()
        };
        let hint = match existing {
            Some(uid) => {
                // Coalesce: the unit sends the latest value. A group keeps the field even if
                // it now equals the backend's value, so it stays whole.
                self.rec.m.coalesced += 1;
                if needs && deps.is_empty() && hint.is_some_and(|h| h.covers(uid, priority)) {
                    // Raising the unit would change nothing: skip looking it up.
                    hint
                } else {
                    let kept = self
                        .units
                        .update(uid, |unit| {
                            (needs || unit.group.is_some()).then(|| {
                                // The one merge rule: the change, as a unit, merges in.
                                unit.absorb(Unit::of_change(key, seq, priority, now, deps));
                                UnitHint::new(uid, unit.priority)
                            })
                        })
                        .flatten();
                    if kept.is_none() {
                        // A lone field's unit the change made needless.
                        self.drop_needless(uid);
                    }
                    kept
                }
            }
            None if needs => Some(self.start_unit(key, seq, priority, now, deps)),
            None => {
                // Equal to what the backend has or will have: nothing to send. If that
                // value is still in flight, the dependencies ride with it, so that a
                // failure brings them back with the value instead of losing them.
                self.rec.m.coalesced += 1;
                if !deps.is_empty() {
                    self.attach_deps_in_flight(key, deps);
                }
                self.settle(key);
                None
            }
        };
        // A hint is kept exactly while the field has a pending unit, and names it.
        self.note_due(now, key, hint.map(UnitHint::unit));
        (id, hint)
    }

    /// A change that needs sending, of a field with no pending unit, starts one: the
    /// unit's order is the change's `seq`, the field waits from `now`. The one owner of
    /// that step, for a change made ([`Queue::apply_key`]) and for the first of a field's
    /// changes kept outside the core, taken in later ([`Queue::absorb`]). Returns the
    /// hint a change of the field learns.
    pub(crate) fn start_unit(
        &mut self,
        key: FieldKey,
        seq: u64,
        priority: Priority,
        now: f64,
        deps: Vec<Dep>,
    ) -> UnitHint {
        let unit = Unit::of_change(key, seq, priority, now, deps);
        self.attach_started(key, unit, now)
    }

    /// [`Queue::start_unit`] of a unit of low or normal priority with no dependency, and
    /// [`Queue::note_due`] for the change that starts it, the wake rule read from the unit
    /// before it joins the unit map (no search for it; `absorb.rs`, where a record that
    /// starts a unit costs several tree operations in Luau). The same answer as after: the
    /// rule reads the agent's other units only for a ready critical one, which this unit is
    /// not, and attaching it changes nothing else the rule reads (the field has no unit, so
    /// none merges with it).
    pub(crate) fn start_routine_unit(
        &mut self,
        key: FieldKey,
        seq: u64,
        priority: Priority,
        now: f64,
    ) -> UnitHint {
        debug_assert!(priority <= Priority::Normal);
        let unit = Unit::of_change(key, seq, priority, now, Vec::new());
        let wake = self.wake_after(now, key, Some(&unit));
        let hint = self.attach_started(key, unit, now);
        self.apply_wake(wake);
        hint
    }

    /// The rest of [`Queue::start_unit`]: the unit (of `key` alone) attached under a new
    /// id, the field waiting from `now` unless it already was (written as the field is
    /// attached: one search of it).
    fn attach_started(&mut self, key: FieldKey, unit: Unit, now: f64) -> UnitHint {
        debug_assert_eq!(unit.entries, [key]);
        let uid = self.new_unit_id();
        let hint = UnitHint::new(uid, unit.priority);
        self.attach_unit_then(uid, unit, |f| {
            if f.pending_since.is_none() {
                f.pending_since = Some(now);
            }
        });
        hint
    }

    /// A change can make something due before the queue's next wake: lower the wake to
    /// when its unit is due, so that `poll` in a frame with nothing due returns at once
    /// instead of looking at every pending unit (the hot path: a location set every
    /// frame is due only with the routine batch, already in the wake). Where the effect
    /// is not local to the change's unit (combat mode moved, a decision or chat waiting
    /// on the agent, no schedule yet) the next poll looks at everything, except that for
    /// combat mode moved, a decision sync or urgent request waiting on the agent, the
    /// wake moves to the next reserved call instead, and a unit's due time to that call
    /// if it is later ([`Queue::urgent_wake`]): a poll before it would build nothing.
    ///
    /// `unit` is the field's pending unit after the change (the caller has it at hand: one
    /// lookup less on the hot path).
    pub(crate) fn note_due(&mut self, now: f64, key: FieldKey, unit: Option<UnitId>) {
        let wake = self.wake_after(now, key, unit.and_then(|id| self.units.get(id)));
        self.apply_wake(wake);
    }

    /// [`Queue::note_due`]'s rule: what a change of `key` at `now`, whose field's pending
    /// unit is then `u`, does to the wake.
    #[inline(always)]
    fn wake_after(&self, now: f64, key: FieldKey, u: Option<&Unit>) -> Wake {
        let Some(a) = self.agent_state(key.agent) else {
            return Wake::Keep;
        };
        // A chat waits on the agent: its freshness decides whether the messages go.
        // (Marking the queue dirty only when the change made a new unit is not enough:
        // tests/wake.rs finds a change joining a unit that must still wake it.)
        // A pending unit has dependencies: a change may let it go (a unit of the field it
        // waits on, to ride with), release one (a dependency on its own field's earlier
        // change) or break a cycle, wherever the change is (tests/wake.rs with dependencies
        // found each; an index of depended-on fields would be needed to tell).
        if !a.chat.messages.is_empty() || self.next_batch_at.is_none() || self.units.any_deps() {
            return Wake::Dirty;
        }
        // Combat mode moves on any change of `status.state`, and on a critical health drop
        // of an agent not in combat yet (in combat, one only extends it): every unit of
        // the agent may then be due at another time, but none goes before the next call
        // (with no chat waiting, what else combat mode moves is not a poll's).
        let combat_moves = self.is_state_field(key)
            || (self.is_combat_field(key)
                && u.is_some_and(|u| u.priority == Priority::Critical)
                && !a.in_combat(now));
        // A decision sync waits on the agent (the same).
        let sync_waiting = a.sync_requested;
        // A unit this change started, of an agent whose critical change is ready but could
        // not go (its block busy on Letta's API, a dependency): the urgent request it waits
        // for may carry this one now.
        let new_unit = u.is_some_and(|u| u.order + 1 == self.next_seq);
        let urgent_waiting = new_unit
            && self.units.touching(key.agent).any(|id| {
                self.units.get(id).is_some_and(|w| {
                    w.priority == Priority::Critical && self.critical_ready(w, now) <= now
                })
            });
        let then = if combat_moves || sync_waiting || urgent_waiting {
            Then::Dirty
        } else {
            match u.and_then(|u| self.unit_due(u, now)) {
                Some(due) => Then::At(due),
                None => return Wake::Keep,
            }
        };
        Wake::Urgent {
            now,
            agent: key.agent,
            then,
        }
    }

    /// Carries out what [`Queue::wake_after`] decided.
    #[inline(always)]
    fn apply_wake(&mut self, wake: Wake) {
        let then = match wake {
            Wake::Dirty => Then::Dirty,
            Wake::Keep => return,
            // Due after the wake: the later time moves nothing either (no budget asked).
            Wake::Urgent {
                then: Then::At(due),
                ..
            } if due >= self.next_wake => return,
            Wake::Urgent { now, agent, then } => match (self.urgent_wake(now, agent), then) {
                (Some(call), Then::At(due)) => Then::At(due.max(call)),
                (Some(call), Then::Dirty) => Then::At(call),
                (None, then) => then,
            },
        };
        match then {
            Then::Dirty => self.dirty = true,
            Then::At(due) => self.wake_by(due),
        }
    }

    /// Lowers the wake to `at` if it is earlier.
    #[inline(always)]
    pub(crate) fn wake_by(&mut self, at: f64) {
        if at < self.next_wake {
            self.next_wake = at;
        }
    }

    /// [`Queue::note_due`]'s rule for the unit itself: when `u`, changed at `now`, is due
    /// (`None`: with the routine batch or its retry, already in the wake). For a caller
    /// that holds the unit already and knows the agent's part of the rule does not apply
    /// (`Queue::absorb`, whose grant excludes it). Inlined: `note_due` is on every
    /// change's path, where a call costs in Luau.
    #[inline(always)]
    pub(crate) fn unit_due(&self, u: &Unit, now: f64) -> Option<f64> {
        if u.not_before > now {
            return Some(u.not_before);
        }
        match u.priority {
            Priority::Critical => Some(self.critical_ready(u, now)),
            Priority::High if u.attempts == 0 => Some(
                u.high_since
                    .map_or(now, |t| t + self.cfg.high_priority_delay_s),
            ),
            // Due with the routine batch (or its retry), already in the wake.
            _ => None,
        }
    }

    pub(crate) fn attach_deps_in_flight(&mut self, key: FieldKey, deps: Vec<Dep>) {
        let Some(newest) = self
            .field(key)
            .and_then(|f| f.in_flight.iter().max_by_key(|v| v.seq))
            .map(|v| v.request)
        else {
            return;
        };
        if let Some(req) = self.in_flight.get_mut(&newest) {
            if let Some(u) = req
                .units
                .iter_mut()
                .find(|u| req.entries[u.range()].iter().any(|(k, _)| *k == key))
            {
                u.deps.extend(deps);
            }
        }
    }
}

/// Records `value` as a field's latest local value under the next sequence number and
/// counts it in `changes_in`: the one owner of that bookkeeping, for the general path
/// ([`Queue::record_key`]) and the slot path's one-pass shortcut, which holds the field
/// already. Inlined: a call here costs the shortcut about 3 % native in Luau.
#[inline(always)]
pub(crate) fn record_local(
    next_seq: &mut u64,
    changes_in: &mut u64,
    f: &mut FieldState,
    value: Value,
) -> u64 {
    let seq = *next_seq;
    *next_seq += 1;
    *changes_in += 1;
    f.local = Some(Local {
        value,
        seq: Seq(seq),
    });
    seq
}

pub(crate) fn change_id(key: FieldKey, seq: u64) -> ChangeId {
    ChangeId {
        seq,
        agent: key.agent,
        block: key.block,
        field: key.field,
    }
}
