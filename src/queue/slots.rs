//! Field slots: one field of one agent (agent, block, field) resolved once to a small
//! integer, so a change call from a facade (the Luau bridge) carries numbers only: no name
//! is interned, checked or compared per call.

use super::state::{AgentState, FieldKey, FieldState};
use super::{Priority, Queue};
use crate::error::Error;
use crate::ids::{AgentId, ChangeId, Sym, UnitId};
use crate::symbols::{Limits, Symbols};
use crate::value::Value;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// One field of one agent, resolved by [`Queue::slot`]. Dead once its agent is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot(pub(crate) u32);

impl Slot {
    /// The handle as a small integer (stable for the queue's lifetime).
    pub fn index(self) -> u32 {
        self.0
    }

    /// The handle with this index (for facades that pass handles as numbers; the queue
    /// checks it before use).
    pub fn from_index(index: u32) -> Slot {
        Slot(index)
    }
}

/// What a change learnt about its field's pending unit: that unit, and a priority it had
/// then. A unit's priority only rises while it exists and unit ids are never reused, so
/// while the field still names that unit, a change of at most that priority (and of at
/// most normal priority, which never starts the high or critical clocks) with no
/// dependency leaves the unit as it is: the change need not look the unit up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UnitHint {
    unit: UnitId,
    priority: Priority,
}

impl UnitHint {
    pub(crate) fn new(unit: UnitId, priority: Priority) -> Self {
        UnitHint { unit, priority }
    }

    /// The unit the hint is about.
    pub(crate) fn unit(self) -> UnitId {
        self.unit
    }

    /// Whether a change of `priority` to a field whose unit is `unit` leaves it unchanged.
    pub(crate) fn covers(self, unit: UnitId, priority: Priority) -> bool {
        self.unit == unit && priority <= self.priority && priority <= Priority::Normal
    }

    /// The highest priority a change may have and still leave the unit unchanged.
    pub(crate) fn priority(self) -> Priority {
        self.priority
    }
}

/// Every slot issued, and the slot of each field that has one.
#[derive(Default)]
pub(crate) struct SlotTable {
    keys: Vec<FieldKey>,
    /// Per slot, what its last change learnt about the field's unit.
    hints: Vec<Option<UnitHint>>,
    /// Per slot, the queue's latest time when it was last found absorbable
    /// ([`Queue::grant_absorb`]); absorbed changes cannot be older. NaN: never.
    pub(crate) granted_at: Vec<f64>,
    /// Per slot, the pending unit its last grant found absorbable and the agent's unit
    /// revision then (`Units::rev`): while both still hold, the unit is as that grant saw
    /// it (`absorb.rs`). `None`: the last grant found no pending unit, or none yet.
    pub(crate) granted_unit: Vec<Option<(UnitId, u64)>>,
    /// Per slot, the number of the last grant report that listed it (`absorb.rs`: a slot
    /// is listed once per report however often its field was touched).
    pub(crate) listed: Vec<u32>,
    /// While a facade watches a call for the grants it may change
    /// ([`Queue::watch_grants`]): what the call touched.
    pub(crate) log: Option<super::absorb::GrantLog>,
    /// The number of the last grant report.
    pub(crate) reports: u32,
    /// Per agent (by index), the slots issued for its fields: a few each, so finding a
    /// field's slot among them is cheaper than searching `index` (in Luau a tree search
    /// costs about ten times a short scan; a grant report finds one per touched field).
    by_agent: Vec<Vec<Slot>>,
    index: BTreeMap<FieldKey, Slot>,
}

impl SlotTable {
    /// How many slots were issued (slot indices are below it).
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The field a slot names (`None`: never issued).
    pub(crate) fn key(&self, slot: Slot) -> Option<FieldKey> {
        self.keys.get(slot.0 as usize).copied()
    }

    /// What the slot's last change learnt about its field's unit.
    pub(crate) fn hint(&self, slot: Slot) -> Option<UnitHint> {
        self.hints.get(slot.0 as usize).copied().flatten()
    }

    /// Sets what the slot's field's changes learnt about its unit (a unit started for
    /// changes kept outside the core and taken in, `absorb.rs`).
    pub(crate) fn set_hint(&mut self, slot: Slot, hint: UnitHint) {
        self.hints[slot.0 as usize] = Some(hint);
    }

    /// The slot of a field, if one was issued.
    pub(crate) fn slot_of(&self, key: &FieldKey) -> Option<Slot> {
        self.slots_of_agent(key.agent)
            .iter()
            .copied()
            .find(|s| self.keys[s.0 as usize] == *key)
    }

    /// The slots issued for an agent's fields.
    pub(crate) fn slots_of_agent(&self, agent: crate::ids::AgentId) -> &[Slot] {
        self.by_agent
            .get(agent.0 as usize)
            .map_or(&[], |v| v.as_slice())
    }

    /// The one-pass path's precondition, owned here for it and for absorption
    /// (`absorb.rs`): the slot's field is live and pending, and its hint covers a change of
    /// `priority` (the change leaves the unit as it is). Returns the field, its unit, the
    /// hint and the field's state. Free of `Queue` so that the caller keeps its other
    /// fields (counters) borrowable beside the field.
    #[inline(always)]
    pub(crate) fn covered_field<'a>(
        &self,
        agents: &'a mut [Option<AgentState>],
        slot: Slot,
        priority: Priority,
    ) -> Option<(FieldKey, UnitId, UnitHint, &'a mut FieldState)> {
        let i = slot.0 as usize;
        let (Some(&key), Some(Some(hint))) = (self.keys.get(i), self.hints.get(i)) else {
            return None;
        };
        let Some(Some(agent)) = agents.get_mut(key.agent.0 as usize) else {
            return None;
        };
        let f = agent.fields.get_mut(&(key.block, key.field))?;
        let unit = f.unit?;
        if !hint.covers(unit, priority) {
            return None;
        }
        Some((key, unit, *hint, f))
    }
}

impl Queue {
    /// Interns a string (a name or a string value) and returns its symbol. Names are
    /// checked where a symbol is used as one ([`Queue::slot`]); here only the 16 KiB limit
    /// of string values applies.
    pub fn intern(&mut self, s: &str) -> Result<Sym, Error> {
        if s.len() > Limits::VALUE_BYTES {
            return Err(Error::BadString {
                what: "string",
                len: s.len(),
                reason: "longer than the 16 KiB limit",
            });
        }
        Ok(self.symbols.intern(s))
    }

    /// The text of a symbol this queue issued.
    pub fn sym_text(&self, sym: Sym) -> Result<&str, Error> {
        self.symbols.get(sym).ok_or(Error::UnknownHandle {
            what: "string",
            index: sym.0,
        })
    }

    /// A symbol checked as a name (non-empty, at most 256 bytes).
    pub(crate) fn name_sym(&self, what: &'static str, sym: Sym) -> Result<&str, Error> {
        let text = self.sym_text(sym)?;
        Symbols::check_name(what, text)?;
        Ok(text)
    }

    /// The slot of field `block.field` of a live agent; the same field always gives the
    /// same slot.
    pub fn slot(&mut self, agent: AgentId, block: Sym, field: Sym) -> Result<Slot, Error> {
        self.check_agent(agent)?;
        self.name_sym("block label", block)?;
        self.name_sym("field name", field)?;
        let key = FieldKey {
            agent,
            block,
            field,
        };
        if let Some(s) = self.slots.index.get(&key) {
            return Ok(*s);
        }
        let slot = Slot(self.slots.keys.len() as u32);
        self.slots.keys.push(key);
        self.slots.hints.push(None);
        self.slots.granted_at.push(f64::NAN);
        self.slots.granted_unit.push(None);
        self.slots.listed.push(0);
        let a = agent.0 as usize;
        if self.slots.by_agent.len() <= a {
            self.slots.by_agent.resize_with(a + 1, Vec::new);
        }
        self.slots.by_agent[a].push(slot);
        self.slots.index.insert(key, slot);
        Ok(slot)
    }

    fn slot_key(&self, slot: Slot) -> Result<FieldKey, Error> {
        self.slots
            .keys
            .get(slot.0 as usize)
            .copied()
            .ok_or(Error::UnknownHandle {
                what: "slot",
                index: slot.0,
            })
    }

    /// The agent, block label and field name of a slot.
    pub fn slot_names(&self, slot: Slot) -> Result<(AgentId, &str, &str), Error> {
        let k = self.slot_key(slot)?;
        Ok((
            k.agent,
            self.symbols.text(k.block),
            self.symbols.text(k.field),
        ))
    }

    /// The handle of change `seq` of a slot's field, for dependencies. A seq this queue
    /// never issued (0, or not issued yet), or one newer than the field's latest change,
    /// cannot name a change of this field: an error naming it.
    pub fn change_handle(&self, seq: crate::ids::Seq, slot: Slot) -> Result<ChangeId, Error> {
        let k = self.slot_key(slot)?;
        let latest = self.field(k).and_then(|f| f.local.as_ref()).map(|l| l.seq);
        if seq.0 == 0 || seq.0 >= self.next_seq || latest.is_some_and(|l| seq > l) {
            return Err(Error::UnknownChange { seq: seq.0 });
        }
        Ok(ChangeId {
            seq: seq.0,
            agent: k.agent,
            block: k.block,
            field: k.field,
        })
    }

    /// The common change in one pass: a field already pending whose unit the slot's hint
    /// covers, and a value that still needs sending. Exactly what the general path does
    /// then (every check, a new seq, the local value, `changes_in` and `coalesced` counted,
    /// the unit unchanged), without its lookups and branches. Anything else, errors
    /// included, hands the value back for the general path.
    #[inline(always)]
    fn set_slot_fast(
        &mut self,
        now: f64,
        slot: Slot,
        value: Value,
        priority: Priority,
    ) -> Result<ChangeId, Value> {
        let finite = super::validate::finite;
        if !(finite(now) && now >= 0.0 && now >= self.latest_now) {
            return Err(value);
        }
        match &value {
            Value::Number(n) if !finite(*n) => return Err(value),
            Value::Str(s) if s.len() > Limits::VALUE_BYTES => return Err(value),
            _ => {}
        }
        // A new seq is above every seq sent, so the value needs sending exactly when it
        // differs from what the backend has or will have.
        let Some((key, unit, _, f)) = self.slots.covered_field(&mut self.agents, slot, priority)
        else {
            return Err(value);
        };
        // Nothing in flight and no doubt: the backend holds the acknowledged value.
        let equal = if f.in_flight.is_empty() && f.unsure.is_none() {
            match &f.acked {
                None => value == Value::Cleared,
                Some((v, _)) => *v == value,
            }
        } else {
            f.equals_target(&value)
        };
        if equal {
            return Err(value);
        }
        let seq = super::record_local(&mut self.next_seq, &mut self.rec.m.changes_in, f, value);
        if now > self.latest_now {
            self.latest_now = now;
        }
        self.rec.m.coalesced += 1;
        // The same wake rule as every other change (`Queue::note_due`). The unit is left
        // as it was, but the rule is not only about it: a change of an agent waiting for
        // a decision sync marks the queue dirty, and the full poll that follows may send
        // other units along (tests/slots.rs seed 78 without this call: the urgent request
        // of step 298 is missing).
        self.note_due(now, key, Some(unit));
        Ok(ChangeId {
            seq,
            agent: key.agent,
            block: key.block,
            field: key.field,
        })
    }

    /// The agent a slot belongs to.
    pub fn slot_agent(&self, slot: Slot) -> Option<AgentId> {
        self.slots.keys.get(slot.0 as usize).map(|k| k.agent)
    }

    /// Queues one change of a slot's field: exactly [`Queue::set`] of that field, with the
    /// names already resolved.
    pub fn set_slot(
        &mut self,
        now: f64,
        slot: Slot,
        value: Value,
        priority: Priority,
        depends_on: &[ChangeId],
    ) -> Result<ChangeId, Error> {
        let value = if depends_on.is_empty() {
            match self.set_slot_fast(now, slot, value, priority) {
                Ok(id) => return Ok(id),
                Err(value) => value,
            }
        } else {
            value
        };
        self.set_slot_general(now, slot, value, priority, depends_on)
    }

    /// Everything [`Queue::set_slot`] does besides its one-pass path; kept out of line so
    /// the hot function stays small (a transpiled function sets up all its locals on entry).
    #[inline(never)]
    fn set_slot_general(
        &mut self,
        now: f64,
        slot: Slot,
        value: Value,
        priority: Priority,
        depends_on: &[ChangeId],
    ) -> Result<ChangeId, Error> {
        self.check_time("now", now)?;
        let key = self.slot_key(slot)?;
        self.check_agent(key.agent)?;
        self.check_value(
            key.agent,
            self.symbols.text(key.block),
            self.symbols.text(key.field),
            &value,
        )?;
        for d in depends_on {
            self.check_dependency(*d)?;
        }
        self.check_block_text_of(key, &value)?;
        self.observe_time(now);
        let hint = self.slots.hints[slot.0 as usize];
        let (id, hint) = self.apply_key(now, key, value, priority, depends_on, hint);
        // `status.state` keeps no hint, so its changes always meet the combat rule of
        // `field_rules` on this path; nor does any field on Letta's API, so every change
        // meets the block limit check of `check_block_texts`.
        let keep = !self.is_state_field(key) && self.cfg.target != crate::config::Target::LettaApi;
        self.slots.hints[slot.0 as usize] = if keep { hint } else { None };
        Ok(id)
    }
}
