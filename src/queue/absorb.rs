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
//! A field with no pending unit (its value in flight or acknowledged) is granted too: its
//! kept changes start the unit when they are taken in, as the first of them would have.
//! The contract the facade keeps between the two (which calls need the kept values first,
//! which grants a call may change: [`Queue::watch_grants`]) is written in
//! `luau-bridge/ABI.md`, "Absorption".

use super::slots::Slot;
use super::state::{FieldKey, FieldState, Local};
use super::{Priority, Queue};
use crate::config::Target;
use crate::error::Error;
use crate::ids::{AgentId, Seq, UnitId};
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
    /// Whether the field has no pending unit (its value in flight or acknowledged, or never
    /// set): the slot's kept changes, taken in, start one ([`Queue::absorb`]); otherwise
    /// they join the field's pending unit. A facade that takes some kept changes in before a
    /// call and leaves others (the Luau bridge's ack) needs it: a record that starts a unit
    /// gets the unit's id when it is taken in, so it must not be left behind a call that
    /// issues ids (luau-bridge/ABI.md, "Absorption").
    pub starts_unit: bool,
}

/// A value a facade may keep outside the core: only numbers and bools are ever granted
/// (a string's bytes count against a block's limit; a cleared field is absent). `Copy`, so
/// a list of [`Absorbed`] records needs no drop (in Luau a drop of a `Value` per record is
/// a loop over the records).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeptValue {
    /// A number (taken in only when finite).
    Number(f64),
    /// A bool.
    Bool(bool),
}

impl From<KeptValue> for Value {
    fn from(v: KeptValue) -> Value {
        match v {
            KeptValue::Number(x) => Value::Number(x),
            KeptValue::Bool(b) => Value::Bool(b),
        }
    }
}

/// The latest of `count` changes of one slot kept outside the core.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Absorbed {
    /// The slot.
    pub slot: Slot,
    /// The latest value.
    pub value: KeptValue,
    /// Its sequence number, reserved by the facade (below the `next_seq` it passes).
    pub seq: Seq,
    /// The sequence number of the first of them (`seq` when one change was kept): the
    /// order of the unit they start when the field has none.
    pub first_seq: Seq,
    /// The highest priority among them (at most the grant's): the priority of the unit
    /// they start when the field has none.
    pub priority: Priority,
    /// How many changes were kept (each one counts in `changes_in`; each but the one that
    /// starts a unit in `coalesced`).
    pub count: u32,
    /// When the first of them was made.
    pub first_at: f64,
    /// When the latest was made.
    pub last_at: f64,
}

/// A slot's grant after a call that may have changed it ([`Queue::watch_grants`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GrantChange {
    /// The slot.
    pub slot: Slot,
    /// Its grant now (`None`: its changes go to the core again).
    pub grant: Option<Absorbable>,
}

/// What a watched call touched that [`Queue::grant_absorb`]'s rule reads: fields whose
/// pending unit, values in flight, acknowledged value or doubt moved, and agents whose
/// decision sync or chat moved. Filled where those change: `units.rs` (a unit attached or
/// detached: every send, merge, drop and return of a unit), `outcome.rs` (an ack's or a
/// failure's fields, a failure's synced and chatting agents). The rule's other inputs
/// cannot end a grant in the calls a facade watches: the target is fixed, a routine batch
/// once scheduled stays scheduled, the queue's time only grows (a backoff only ends), a
/// decision or chat is asked for by calls about one agent (the facade ends that agent's
/// grants itself), and a unit's priority, fields and group move only with a change of its
/// own fields or a merge (which detaches it).
#[derive(Default)]
pub(crate) struct GrantLog {
    fields: Vec<FieldKey>,
    agents: Vec<AgentId>,
}

/// A slot found absorbable (what the facade learns), with what [`Queue::absorb`] needs of
/// its field and unit, read in the rule's own lookups (one search of the field, at most one
/// of the unit map).
struct Checked<'a> {
    absorbable: Absorbable,
    /// The field's pending unit (`None`: the kept changes start one).
    unit: Option<UnitId>,
    /// The field (`None`: never set).
    field: Option<&'a FieldState>,
    /// The agent's unit revision ([`super::pending::Units::rev`]) when checked.
    rev: u64,
    /// When the field's unit is due for a change made at the time asked
    /// ([`Queue::unit_due`]; `None` when not asked, or due with the routine batch).
    due: Option<f64>,
}

/// Why a slot is not absorbable (the message of [`Error::Absorb`]).
type Why = &'static str;

impl Queue {
    /// The one owner of "a change of this slot may be kept outside the core until it is
    /// taken in by [`Queue::absorb`]": when taking it in later is the same as taking it at
    /// its time:
    ///
    /// - the target is the batch endpoint (Letta's API checks the block's limit at each
    ///   change: not absorbable for now);
    /// - the field is not `status.health` or `status.state` (their changes move combat mode);
    /// - nothing about the agent makes a change mark the queue dirty or lower its wake
    ///   ([`Queue::note_due`]): no decision sync requested, no chat waiting, a routine
    ///   batch scheduled;
    /// - either the change would take the one-pass path (the field's pending unit is
    ///   covered by the slot's hint), the unit has low or normal priority, holds this field
    ///   alone, is no atomic group (no later change of another field can move it) and is not
    ///   waiting out a retry backoff (a backoff's end is the one due time of a routine unit
    ///   a change notes);
    /// - or the field has no pending unit (its value in flight or acknowledged, or never
    ///   set): the first kept change would start one of its own priority, at most normal,
    ///   due with the routine batch, which no wake needs lowering for. Taken in, the
    ///   changes start exactly that unit ([`Queue::absorb`]). The grant says which of the
    ///   two holds ([`Absorbable::starts_unit`], from the same lookup of the field).
    ///
    /// So a kept change never changes when a poll can do anything ([`Queue::next_poll`]),
    /// and every call that reads the field takes the kept changes in first (the facade's
    /// contract). Records the grant's time: kept changes cannot be older.
    pub fn grant_absorb(&mut self, slot: Slot) -> Option<Absorbable> {
        let c = self.absorb_check(slot, None).ok()?;
        let (unit, rev, absorbable) = (c.unit, c.rev, c.absorbable);
        // Issued: the check found its field's key.
        let i = slot.0 as usize;
        self.slots.granted_at[i] = self.latest_now;
        self.slots.granted_unit[i] = unit.map(|u| (u, rev));
        Some(absorbable)
    }

    /// [`Queue::grant_absorb`]'s rule, with the reason when it does not hold. `taken_at`:
    /// the first time of a record being taken in ([`Queue::absorb`]), whose unit's due time
    /// is asked and whose unit's part of the rule may come from the slot's last grant.
    /// Inlined into its two callers: in Luau a call and the `Checked` it hands back through
    /// memory cost about a third of a record's check.
    #[inline(always)]
    fn absorb_check(&self, slot: Slot, taken_at: Option<f64>) -> Result<Checked<'_>, Why> {
        if self.cfg.target == Target::LettaApi {
            return Err("Letta's API checks the block's limit at every change");
        }
        let key = self.slots.key(slot).ok_or("the slot was never issued")?;
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
        let f = a.fields.get(&(key.block, key.field));
        let target = f.map_or(AbsorbTarget::Absent, target_of);
        let rev = self.units.rev(key.agent);
        let Some(unit) = f.and_then(|f| f.unit) else {
            return Ok(Checked {
                unit: None,
                absorbable: Absorbable {
                    max_priority: Priority::Normal,
                    target,
                    starts_unit: true,
                },
                field: f,
                rev,
                due: None,
            });
        };
        let hint = self
            .slots
            .hint(slot)
            .filter(|h| h.covers(unit, Priority::Low))
            .ok_or("its field's pending unit is not the one the slot's last change saw")?;
        // The unit's part of the rule, for a record taken in, holds without searching the
        // unit map when the slot's last grant found this very unit absorbable and none of
        // the agent's units was added, taken out or changed since (ids are never reused):
        // the unit is as that grant saw it, and the queue's time only grew (a backoff over
        // then is over now). Its due time is none then: it has low or normal priority and
        // its backoff was over by the grant's time, which no record's first time may be
        // before (`absorb_valid` refuses one).
        let due = if taken_at.is_some()
            && self.slots.granted_unit[slot.0 as usize] == Some((unit, rev))
        {
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
            taken_at.and_then(|t| self.unit_due(u, t))
        };
        Ok(Checked {
            unit: Some(unit),
            absorbable: Absorbable {
                max_priority: hint.priority(),
                target,
                starts_unit: false,
            },
            field: f,
            rev,
            due,
        })
    }

    /// Runs `call` (a poll, a flush, an ack, a failure, an atomic group) and returns, with
    /// its result, every slot whose grant it may have changed, each with its grant now (in
    /// the order their fields were first touched). A facade that keeps changes replaces
    /// exactly those slots' grants; every other grant still holds. A call that fails
    /// changes nothing and lists nothing.
    pub fn watch_grants<R>(&mut self, call: impl FnOnce(&mut Queue) -> R) -> (R, Vec<GrantChange>) {
        self.slots.log = Some(GrantLog::default());
        let r = call(self);
        let log = self.slots.log.take().unwrap_or_default();
        (r, self.grants_after(log))
    }

    /// The slots of what a watched call touched, once each, with their grants now.
    fn grants_after(&mut self, log: GrantLog) -> Vec<GrantChange> {
        if log.fields.is_empty() && log.agents.is_empty() {
            return Vec::new();
        }
        let mut report = self.slots.reports.wrapping_add(1);
        if report == 0 {
            // Wrapped: no stamp may look current.
            self.slots.listed.fill(0);
            report = 1;
        }
        self.slots.reports = report;
        let mut slots: Vec<Slot> = Vec::with_capacity(log.fields.len());
        let mut list = |table: &mut super::slots::SlotTable, s: Slot| {
            let stamp = &mut table.listed[s.0 as usize];
            if *stamp != report {
                *stamp = report;
                slots.push(s);
            }
        };
        for key in &log.fields {
            if let Some(s) = self.slots.slot_of(key) {
                list(&mut self.slots, s);
            }
        }
        for a in &log.agents {
            for i in 0..self.slots.slots_of_agent(*a).len() {
                let s = self.slots.slots_of_agent(*a)[i];
                list(&mut self.slots, s);
            }
        }
        slots
            .into_iter()
            .map(|slot| GrantChange {
                slot,
                grant: self.grant_absorb(slot),
            })
            .collect()
    }

    /// A field's grant may change (see [`GrantLog`]); noted while a call is watched.
    #[inline(always)]
    pub(crate) fn grant_may_change(&mut self, key: FieldKey) {
        if let Some(log) = &mut self.slots.log {
            log.fields.push(key);
        }
    }

    /// The grants of an agent's fields may change (see [`GrantLog`]).
    pub(crate) fn agent_grants_may_change(&mut self, agent: AgentId) {
        if let Some(log) = &mut self.slots.log {
            log.agents.push(agent);
        }
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
    /// their times: the latest value becomes the field's local value under its reserved
    /// `seq` and `changes_in` counts every change. A field with a pending unit keeps it (the
    /// one-pass path: every change counts in `coalesced`); a field without one gets the
    /// unit its first kept change would have started (its order `first_seq`, its priority
    /// the record's, the field pending since `first_at`, the slot's hint naming it; every
    /// later change counts in `coalesced`). The wake is noted as at the first change. Then
    /// the counter moves to `next_seq` (the facade's, above every number it reserved; with
    /// no records this only moves the counter) and `now` (the facade's latest time) is
    /// observed.
    ///
    /// Everything is checked before anything changes: a slot not absorbable any more (the
    /// facade kept a change it should have sent), a value that is not a finite number or a
    /// bool or that equals the target, a priority above the grant's, seqs not above the
    /// field's latest or not below `next_seq` or not fitting the count, a `next_seq`
    /// behind the queue's, times backwards (before the grant, the last before the first,
    /// after `now`), a slot twice: an error naming the slot and why, and nothing is
    /// applied.
    ///
    /// With no records (the facade only moves the counter: most calls) this is a few
    /// comparisons, inlined into the caller; the records' work is out of line (in Luau a
    /// call costs by the size of the function it enters).
    #[inline(always)]
    pub fn absorb(&mut self, now: f64, next_seq: u64, records: &[Absorbed]) -> Result<(), Error> {
        self.check_time("now", now)?;
        if next_seq < self.next_seq {
            return Err(Error::Absorb {
                slot: None,
                reason: "the facade's next seq is behind the queue's",
            });
        }
        if !records.is_empty() {
            self.absorb_records(now, next_seq, records)?;
        }
        self.next_seq = next_seq;
        self.observe_time(now);
        Ok(())
    }

    /// [`Queue::absorb`]'s records, once the time and the counter are checked: everything
    /// checked, then applied (the counter and the time are the caller's to move).
    #[inline(never)]
    fn absorb_records(
        &mut self,
        now: f64,
        next_seq: u64,
        records: &[Absorbed],
    ) -> Result<(), Error> {
        if let Some(slot) = self.repeated_slot(records) {
            return Err(Error::Absorb {
                slot: Some(slot),
                reason: "the slot appears twice",
            });
        }
        // Every record checked first; the wake noted once for the call.
        let mut wake = self.next_wake;
        for r in records {
            let due = self
                .absorb_valid(now, next_seq, r)
                .map_err(|reason| Error::Absorb {
                    slot: Some(r.slot.0),
                    reason,
                })?;
            // `note_due`'s rule for a change that leaves its unit as it is (the one-pass
            // path, as each of these changes would have been made): its agent part cannot
            // apply (the grant excludes combat fields and agents waited on, and such a
            // change, whose seq is above its unit's first, never starts a unit); its unit
            // part is `unit_due`, which `absorb_check` answered with its one unit lookup
            // (none at all when the slot's grant vouches for the unit).
            if let Some(due) = due {
                if due < wake {
                    wake = due;
                }
            }
        }
        self.next_wake = wake;
        for r in records {
            // Checked above: an issued slot of a live agent, each slot (so each field) once.
            let Some(key) = self.slots.key(r.slot) else {
                continue;
            };
            let local = Local {
                value: Value::from(r.value),
                seq: r.seq,
            };
            self.rec.m.changes_in += u64::from(r.count);
            // One search of the agent's fields: a pending field (most records) or one in
            // flight or acknowledged exists, no entry to make; a field never set gets its
            // record.
            let name = (key.block, key.field);
            let fields = &mut self.agent_mut(key.agent).fields;
            match fields.get_mut(&name) {
                Some(f) if f.unit.is_some() => {
                    f.local = Some(local);
                    self.rec.m.coalesced += u64::from(r.count);
                    continue;
                }
                Some(f) => f.local = Some(local),
                None => {
                    fields.insert(
                        name,
                        FieldState {
                            local: Some(local),
                            ..FieldState::default()
                        },
                    );
                }
            }
            // The first kept change started the unit (`apply_key`'s step); the later ones
            // took the one-pass path or raised it to their priority, which leaves what
            // starting it at the highest priority leaves.
            // Its wake as `note_due` notes it for that change (a no-op by the grant's rule
            // but for a unit whose order is the core's last seq), with no search for the
            // unit just started (the grant's priority is at most normal).
            let hint = self.start_routine_unit(key, r.first_seq.0, r.priority, r.first_at);
            self.slots.set_hint(r.slot, hint);
            self.rec.m.coalesced += u64::from(r.count - 1);
        }
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

    /// One record of [`Queue::absorb`] checked against the queue as it is; returns when its
    /// unit is due for a change at its first time ([`Queue::unit_due`]).
    fn absorb_valid(&self, now: f64, next_seq: u64, r: &Absorbed) -> Result<Option<f64>, Why> {
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
        if r.priority > c.absorbable.max_priority {
            return Err("its priority is above the slot's grant");
        }
        let equal = match (r.value, c.absorbable.target) {
            (KeptValue::Number(x), _) if !super::validate::finite(x) => {
                return Err("its number is not finite");
            }
            (KeptValue::Number(x), AbsorbTarget::Number(t)) => x == t,
            (KeptValue::Bool(x), AbsorbTarget::Bool(t)) => x == t,
            _ => false,
        };
        if equal {
            return Err("its value equals what the backend has or will have");
        }
        let f = c.field;
        let latest = f.and_then(|f| f.local.as_ref()).map_or(0, |l| l.seq.0);
        if r.seq.0 <= latest || r.seq.0 >= next_seq {
            return Err("its seq is not above the field's latest or not below the next seq");
        }
        let (first, seq) = (r.first_seq.0, r.seq.0);
        // `count` changes hold `count` distinct seqs from `first` to `seq`.
        if first <= latest
            || first > seq
            || seq - first < u64::from(r.count - 1)
            || (r.count == 1) != (first == seq)
        {
            return Err(
                "its first seq is not above the field's latest, or does not fit its seq and count",
            );
        }
        if c.unit.is_none() && f.is_some_and(|f| !f.sends(&Value::from(r.value), r.seq)) {
            return Err("its value would not need sending");
        }
        Ok(c.due)
    }
}

/// The field's target as [`AbsorbTarget`]: the same comparison as `FieldState::equals_target`
/// for numbers and bools, with one look at the values in flight.
#[inline(always)]
fn target_of(f: &FieldState) -> AbsorbTarget {
    // `in_doubt` owns the doubt after a failed send: no value equals the target then.
    if f.in_doubt() {
        return AbsorbTarget::Other;
    }
    match f.target() {
        None | Some(Value::Cleared) => AbsorbTarget::Absent,
        // A NaN equals nothing (not even itself): no kept value equals it.
        Some(Value::Number(x)) if !x.is_nan() => AbsorbTarget::Number(*x),
        Some(Value::Bool(b)) => AbsorbTarget::Bool(*b),
        _ => AbsorbTarget::Other,
    }
}
