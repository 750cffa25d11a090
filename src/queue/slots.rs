//! Field slots: one field of one agent (agent, block, field) resolved once to a small
//! integer, so a change call from a facade (the Luau bridge) carries numbers only: no name
//! is interned, checked or compared per call.

use super::state::FieldKey;
use super::{Priority, Queue};
use crate::error::Error;
use crate::ids::{AgentId, ChangeId, Sym};
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

/// Every slot issued, and the slot of each field that has one.
#[derive(Default)]
pub(crate) struct SlotTable {
    keys: Vec<FieldKey>,
    index: BTreeMap<FieldKey, Slot>,
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

    /// The handle of change `seq` of a slot's field, for dependencies (checked when used).
    pub fn change_handle(&self, seq: crate::ids::Seq, slot: Slot) -> Result<ChangeId, Error> {
        let k = self.slot_key(slot)?;
        Ok(ChangeId {
            seq: seq.0,
            agent: k.agent,
            block: k.block,
            field: k.field,
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
        self.observe_time(now);
        Ok(self.apply_key(now, key, value, priority, depends_on))
    }
}
