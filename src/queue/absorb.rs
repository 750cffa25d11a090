//! Absorption: changes of a pending field kept outside the core (by the Luau bridge) and
//! taken in later, once per field, as if each had been made at its time.
//!
//! The per-frame case (a number field of every NPC changed every frame) costs a whole core
//! call per change in Luau, although the core does nothing with it but remember the latest
//! value and count it (the one-pass path of `slots.rs`). This module owns the rule of when
//! that is all a change would do, so that a facade may keep the value itself and hand the
//! core the field's latest value once: [`Queue::grant_absorb`] says whether a slot's next
//! changes may be kept outside (and what the backend has or will have for the field, so an
//! equal value is not kept), [`Queue::absorb`] takes them in and checks everything again.
//! The contract the facade keeps between the two (which calls end a grant, which need the
//! kept values first) is written in `luau-bridge/ABI.md`, "Absorption".

use super::slots::Slot;
use super::state::{FieldState, Local};
use super::{Priority, Queue};
use crate::config::Target;
use crate::error::Error;
use crate::ids::{Seq, UnitId};
use crate::value::Value;
use alloc::vec;
use alloc::vec::Vec;

/// What the backend has or will have for a field, as far as a number or a bool may equal
/// it: a kept change equal to it would make the core drop the field's unit, so the facade
/// sends such a change down the ordinary path instead of keeping it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AbsorbTarget {
    /// The field is absent at the backend (a cleared value equals it).
    Absent,
    /// A number.
    Number(f64),
    /// A bool.
    Bool(bool),
    /// A string, or not known (a failed send may have landed): no number or bool equals it.
    Other,
}

/// A slot whose changes may be kept outside the core until they are taken in by
/// [`Queue::absorb`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Absorbable {
    /// The highest priority a kept change may have (a higher one would raise the unit).
    pub max_priority: Priority,
    /// What a kept value must differ from.
    pub target: AbsorbTarget,
}

/// The latest of `count` changes of one slot kept outside the core.
#[derive(Clone, Debug, PartialEq)]
pub struct Absorbed {
    /// The slot.
    pub slot: Slot,
    /// The latest value: a number or a bool.
    pub value: Value,
    /// Its sequence number, reserved by the facade (below the `next_seq` it passes).
    pub seq: Seq,
    /// How many changes were kept (each one counts in `changes_in` and `coalesced`).
    pub count: u32,
    /// When the first of them was made.
    pub first_at: f64,
    /// When the latest was made.
    pub last_at: f64,
}

/// Why a slot is not absorbable (the message of [`Error::Absorb`]).
type Why = &'static str;

/// A slot found absorbable, with what [`Queue::absorb`] needs of its field and unit, read
/// in the same lookups as the rule (one search of the unit map per record).
struct Checked {
    /// What the facade learns.
    grant: Absorbable,
    /// The seq of the field's latest local value (0: none).
    latest: u64,
    /// When the field's unit is due for a change made at the time asked
    /// ([`Queue::unit_due`]; `None` when not asked).
    due: Option<f64>,
    /// The field's unit and its agent's unit revision (`SlotTable::granted_unit`).
    unit: (UnitId, u64),
}

impl Queue {
    /// The one owner of "a change of this slot may be kept outside the core until it is
    /// taken in by [`Queue::absorb`]": exactly when the change would take the one-pass path
    /// (the field's pending unit is covered by the slot's hint) and, in addition, when taking
    /// it in later is the same as taking it at its time:
    ///
    /// - the unit has low or normal priority, holds this field alone and is no atomic group
    ///   (no later change of another field can move it);
    /// - the field is not `status.health` or `status.state` (their changes move combat mode);
    /// - the target is the batch endpoint (Letta's API checks the block's limit at each
    ///   change: not absorbable for now);
    /// - nothing about the agent makes a change mark the queue dirty or lower its wake
    ///   ([`Queue::note_due`]): no decision sync requested, no chat waiting, a routine
    ///   batch scheduled, and the unit is not waiting out a retry backoff (a backoff's end
    ///   is the one due time of a routine unit a change notes).
    ///
    /// So a kept change never changes when a poll can do anything ([`Queue::next_poll`]).
    /// Records the grant's time: kept changes cannot be older.
    pub fn grant_absorb(&mut self, slot: Slot) -> Option<Absorbable> {
        let c = self.absorb_check(slot, None).ok()?;
        let i = slot.0 as usize;
        // Issued: the check found its field.
        self.slots.granted_at[i] = self.latest_now;
        self.slots.granted_unit[i] = Some(c.unit);
        Some(c.grant)
    }

    /// [`Queue::grant_absorb`]'s rule, with the reason when it does not hold; `at`: the
    /// time of a change whose unit's due time is asked (`Checked::due`).
    fn absorb_check(&mut self, slot: Slot, at: Option<f64>) -> Result<Checked, Why> {
        if self.cfg.target == Target::LettaApi {
            return Err("Letta's API checks the block's limit at every change");
        }
        let Some((key, unit, hint, f)) =
            self.slots
                .covered_field(&mut self.agents, slot, Priority::Low)
        else {
            return Err("its field has no pending unit the slot's last change saw");
        };
        let target = target_of(f);
        let latest = f.local.as_ref().map_or(0, |l| l.seq.0);
        if self.is_combat_field(key) {
            return Err("status.health and status.state move combat mode");
        }
        let a = self.agent_state(key.agent).ok_or("its agent was removed")?;
        if a.sync_requested {
            return Err("a decision sync of its agent is requested");
        }
        if !a.chat.messages.is_empty() {
            return Err("chat to its agent is waiting");
        }
        if self.next_batch_at.is_none() {
            return Err("no routine batch is scheduled yet (no poll yet)");
        }
        let rev = self.units.rev(key.agent);
        // The unit's part of the rule, asked of a record taken in (`at` given), holds
        // without searching the unit map when the slot's last grant found this very unit
        // absorbable and none of the agent's units changed since: the unit is as the grant
        // saw it and the queue's time only grew (a backoff over then is over now). Its due
        // time is none then: its backoff was over by the grant's time, which no kept
        // change is older than (`absorb_valid` refuses one).
        let memo = self.slots.granted_unit[slot.0 as usize];
        let due = if at.is_some() && memo == Some((unit, rev)) {
            None
        } else {
            let u = self.units.get(unit).ok_or("its unit is gone")?;
            if u.priority > Priority::Normal {
                return Err("its unit has high or critical priority");
            }
            if u.group.is_some() || u.entries.len() != 1 {
                return Err("its unit is an atomic group");
            }
            if u.not_before > self.latest_now {
                return Err("its unit waits out a retry backoff");
            }
            at.and_then(|at| self.unit_due(u, at))
        };
        Ok(Checked {
            grant: Absorbable {
                max_priority: hint.priority(),
                target,
            },
            latest,
            due,
            unit: (unit, rev),
        })
    }

    /// The next sequence number this queue issues (a facade that keeps changes reserves
    /// numbers from here, see [`Queue::absorb`]).
    pub fn next_seq(&self) -> Seq {
        Seq(self.next_seq)
    }

    /// The earliest time at which [`Queue::poll`] can do anything: until then it returns
    /// nothing and changes nothing but the latest time seen (0 when the next poll looks at
    /// everything). A facade may skip polls before it; kept changes never move it.
    pub fn next_poll(&self) -> f64 {
        if self.dirty {
            0.0
        } else {
            self.next_wake
        }
    }

    /// Takes in changes kept outside the core (at most one record per slot: each slot's
    /// latest value), exactly as the `count` changes of each would have been taken at
    /// their times by the one-pass path: the latest value becomes the field's local value
    /// under its reserved `seq`, `changes_in` and `coalesced` count every change, the
    /// unit is unchanged, the wake is noted as at the first change. Then the counter moves
    /// to `next_seq` (the facade's, above every number it reserved; with no records this
    /// only moves the counter) and `now` (the facade's latest time) is observed.
    ///
    /// Everything is checked before anything changes: a slot not absorbable any more (the
    /// facade kept a change it should have sent), a value that is not a finite number or a
    /// bool or that equals the target, a seq not above the field's latest or not below
    /// `next_seq`, a `next_seq` behind the queue's, times backwards (before the grant, the
    /// last before the first, after `now`), a slot twice: an error naming the slot and
    /// why, and nothing is applied.
    pub fn absorb(&mut self, now: f64, next_seq: u64, records: &[Absorbed]) -> Result<(), Error> {
        self.check_time("now", now)?;
        if next_seq < self.next_seq {
            return Err(Error::Absorb {
                slot: None,
                reason: "the facade's next seq is behind the queue's",
            });
        }
        if let Some(slot) = self.repeated_slot(records) {
            return Err(Error::Absorb {
                slot: Some(slot),
                reason: "the slot appears twice",
            });
        }
        // Checked first, all of them; counted and the wake noted once for the call.
        let mut changes = 0u64;
        let mut wake = self.next_wake;
        for r in records {
            let due = self
                .absorb_valid(now, next_seq, r)
                .map_err(|reason| Error::Absorb {
                    slot: Some(r.slot.0),
                    reason,
                })?;
            changes += u64::from(r.count);
            // `note_due`'s rule (its agent part cannot apply: the grant excludes it); a
            // no-op by the grant's rule, kept so that the wake rule has one owner.
            if let Some(due) = due {
                if due < wake {
                    wake = due;
                }
            }
        }
        for r in records {
            // Checked above: the slot's field is pending under the unit its hint names.
            if let Some((_, _, _, f)) =
                self.slots
                    .covered_field(&mut self.agents, r.slot, Priority::Low)
            {
                f.local = Some(Local {
                    value: r.value.clone(),
                    seq: r.seq,
                });
            }
        }
        self.rec.m.changes_in += changes;
        self.rec.m.coalesced += changes;
        self.next_wake = wake;
        self.next_seq = next_seq;
        self.observe_time(now);
        Ok(())
    }

    /// The smallest slot that appears in more than one of `records`, if any. One bit per
    /// issued slot finds that none does without sorting; only then (or for a slot never
    /// issued) are the slots sorted to name the smallest.
    fn repeated_slot(&self, records: &[Absorbed]) -> Option<u32> {
        if records.len() < 2 {
            return None;
        }
        let mut seen = vec![0u32; self.slots.len().div_ceil(32)];
        let distinct = records.iter().all(|r| {
            let i = r.slot.0 as usize;
            let bit = 1u32 << (i % 32);
            match seen.get_mut(i / 32) {
                Some(w) if *w & bit == 0 => {
                    *w |= bit;
                    true
                }
                _ => false,
            }
        });
        if distinct {
            return None;
        }
        let mut all: Vec<u32> = records.iter().map(|r| r.slot.0).collect();
        all.sort_unstable();
        all.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
    }

    /// One record of [`Queue::absorb`] checked against the queue as it is; returns when
    /// its unit is due for a change at its first time ([`Queue::unit_due`]).
    fn absorb_valid(&mut self, now: f64, next_seq: u64, r: &Absorbed) -> Result<Option<f64>, Why> {
        let c = self.absorb_check(r.slot, Some(r.first_at))?;
        let granted = self.slots.granted_at[r.slot.0 as usize];
        // NaN (never granted) compares with nothing.
        if granted.is_nan() || r.first_at < granted || r.first_at.is_nan() {
            return Err("its first change is older than the slot's grant, or it was never granted");
        }
        if r.last_at.is_nan() || r.last_at < r.first_at || r.last_at > now {
            return Err("its times go backwards");
        }
        if r.count == 0 {
            return Err("it counts no change");
        }
        let equal = match (&r.value, c.grant.target) {
            (Value::Number(x), _) if !x.is_finite() => {
                return Err("its number is not finite");
            }
            (Value::Number(x), AbsorbTarget::Number(t)) => *x == t,
            (Value::Bool(x), AbsorbTarget::Bool(t)) => *x == t,
            (Value::Number(_) | Value::Bool(_), _) => false,
            _ => return Err("its value is not a number or a bool"),
        };
        if equal {
            return Err("its value equals what the backend has or will have");
        }
        if r.seq.0 <= c.latest || r.seq.0 >= next_seq {
            return Err("its seq is not above the field's latest or not below the next seq");
        }
        Ok(c.due)
    }
}

/// The field's target as [`AbsorbTarget`]: the same comparison as `FieldState::equals_target`
/// for numbers and bools.
fn target_of(f: &FieldState) -> AbsorbTarget {
    // `equals_target` owns the doubt after a failed send: it is false for every value then.
    match f.target() {
        None if f.equals_target(&Value::Cleared) => AbsorbTarget::Absent,
        Some(t) if !f.equals_target(t) => AbsorbTarget::Other,
        Some(Value::Cleared) => AbsorbTarget::Absent,
        Some(Value::Number(x)) => AbsorbTarget::Number(*x),
        Some(Value::Bool(b)) => AbsorbTarget::Bool(*b),
        _ => AbsorbTarget::Other,
    }
}
