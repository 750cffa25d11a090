//! Letta's API as a target. A PATCH replaces a block's whole text and Letta checks no
//! sequence number, so the queue (not the bridge) renders each written block with
//! [`block_text::render`], keeps every block within its `limit` from the change call on,
//! and takes in the blocks read from Letta at start as acknowledged state.
//!
//! The limit is checked at the call against the longest text the block can be written
//! with while changes are in the air: a write renders the acknowledged fields overlaid
//! with what it sends, so each field may appear with its acknowledged value, a value in
//! flight or its latest local value. A change is refused when that bound goes over the
//! limit and grows (a block read from Letta that is already over its limit may still
//! shrink). So rendering at `poll` never fails on the limit.

use super::state::FieldKey;
use super::{Event, Queue};
use crate::block_text::{self, BlockTextError};
use crate::config::Target;
use crate::error::Error;
use crate::ids::{AgentId, RequestId, Seq, Sym};
use crate::request::{BlockWrite, SentChange};
use crate::symbols::Symbols;
use crate::value::Value;
use alloc::string::String;
use alloc::vec::Vec;

/// In `Queue::busy_blocks`: the block's text is being read from Letta (no request has
/// id 0), so nothing of it is written until `load_block`.
pub(crate) const READING: RequestId = RequestId(0);

/// A proposed value of one field of one block, checked by [`Queue::check_block_texts`].
pub(crate) type Proposed<'a> = (AgentId, &'a str, &'a str, &'a Value);

/// Sum of line lengths and number of lines: the text's length once joined by `\n`.
#[derive(Default)]
struct Bound {
    chars: usize,
    lines: usize,
}

impl Bound {
    fn add(&mut self, line: Option<usize>) {
        if let Some(n) = line {
            self.chars += n;
            self.lines += 1;
        }
    }

    fn total(&self) -> usize {
        self.chars + self.lines.saturating_sub(1)
    }
}

fn widest(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

impl Queue {
    fn letta(&self) -> bool {
        self.cfg.target == Target::LettaApi
    }

    /// The records of one agent-block's fields, by field name. (A filter over the agent's
    /// fields rather than a range query: the same iteration the rest of the core uses, so
    /// the Luau build gains no second copy of the map's search code.)
    fn block_fields(
        &self,
        agent: AgentId,
        block: Sym,
    ) -> impl Iterator<Item = (Sym, &super::state::FieldState)> {
        self.agent_state(agent)
            .into_iter()
            .flat_map(|a| a.fields.iter())
            .filter(move |((b, _), _)| *b == block)
            .map(|((_, f), fs)| (*f, fs))
    }

    /// Letta's API: refuses changes a block could not be rendered with: a field name the
    /// block format cannot hold, or a block whose longest possible text would go over its
    /// limit (see the module doc). All changes of one call are checked together, so an
    /// atomic group is refused whole. Nothing is changed.
    pub(crate) fn check_block_texts(&self, changes: &[Proposed<'_>]) -> Result<(), Error> {
        if !self.letta() {
            return Ok(());
        }
        let agent_err = |q: &Queue, agent: AgentId, error| Error::BlockText {
            agent: String::from(q.agent_name(agent).unwrap_or("?")),
            error,
        };
        let mut seen: Vec<(AgentId, &str)> = Vec::new();
        for &(agent, block, field, _) in changes {
            block_text::check_field_name(field).map_err(|reason| {
                agent_err(
                    self,
                    agent,
                    BlockTextError::BadFieldName {
                        block: String::from(block),
                        field: String::from(field),
                        reason,
                    },
                )
            })?;
            // One change whose field's longest line does not grow cannot lengthen the
            // block's longest text: no need to bound the whole block (the per-frame case).
            if changes.len() == 1 {
                let key = self.symbols.lookup(block).zip(self.symbols.lookup(field));
                if key.is_some_and(|(b, f)| !self.line_grows(agent, b, f, changes[0].3)) {
                    continue;
                }
            }
            if seen.contains(&(agent, block)) {
                continue;
            }
            seen.push((agent, block));
            let own: Vec<(&str, &Value)> = changes
                .iter()
                .filter(|c| c.0 == agent && c.1 == block)
                .map(|c| (c.2, c.3))
                .collect();
            let (before, after) = self.block_bound(agent, block, &own);
            let limit = self.cfg.block_limit(block);
            if after > limit as usize && after > before {
                return Err(agent_err(
                    self,
                    agent,
                    BlockTextError::TooLarge {
                        block: String::from(block),
                        chars: after,
                        limit: limit as usize,
                    },
                ));
            }
        }
        Ok(())
    }

    /// [`Queue::check_block_texts`] of one change of a field already resolved (the slot
    /// path): the common change, one whose line does not grow, costs no name lookup.
    pub(crate) fn check_block_text_of(&self, key: FieldKey, value: &Value) -> Result<(), Error> {
        if !self.letta() {
            return Ok(());
        }
        let named = block_text::check_field_name(self.symbols.text(key.field)).is_ok();
        if named && !self.line_grows(key.agent, key.block, key.field, value) {
            return Ok(());
        }
        self.check_block_texts(&[(
            key.agent,
            self.symbols.text(key.block),
            self.symbols.text(key.field),
            value,
        )])
    }

    /// Whether `value` would make the field's longest line (over its acknowledged value,
    /// values in flight and latest local value) longer. A field not held yet grows (and
    /// so meets the whole check, its name's included).
    fn line_grows(&self, agent: AgentId, block: Sym, field: Sym, value: &Value) -> bool {
        let Some(fs) = self
            .agent_state(agent)
            .and_then(|a| a.fields.get(&(block, field)))
        else {
            return true;
        };
        let field = self.symbols.text(field);
        let line = |v: &Value| block_text::line_chars(field, v);
        let mut longest = fs.acked.as_ref().and_then(|(v, _)| line(v));
        for v in &fs.in_flight {
            longest = widest(longest, line(&v.value));
        }
        longest = widest(longest, fs.local.as_ref().and_then(|l| line(&l.value)));
        match (line(value), longest) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(n), Some(m)) => n > m,
        }
    }

    /// The longest text a block can be written with, before and after the `own` changes.
    fn block_bound(&self, agent: AgentId, block: &str, own: &[(&str, &Value)]) -> (usize, usize) {
        let (mut before, mut after) = (Bound::default(), Bound::default());
        let mut matched = 0;
        if let Some(b) = self.symbols.lookup(block) {
            for (f, fs) in self.block_fields(agent, b) {
                let name = self.symbols.text(f);
                let line = |v: &Value| block_text::line_chars(name, v);
                let mut sent = fs.acked.as_ref().and_then(|(v, _)| line(v));
                for v in &fs.in_flight {
                    sent = widest(sent, line(&v.value));
                }
                let local = fs.local.as_ref().and_then(|l| line(&l.value));
                before.add(widest(sent, local));
                match own.iter().find(|(n, _)| *n == name) {
                    Some((_, v)) => {
                        matched += 1;
                        after.add(widest(sent, line(v)));
                    }
                    None => after.add(widest(sent, local)),
                }
            }
        }
        if matched < own.len() {
            for (name, v) in own {
                let known = self
                    .symbols
                    .lookup(name)
                    .zip(self.symbols.lookup(block))
                    .and_then(|(f, b)| self.agent_state(agent)?.fields.get(&(b, f)));
                if known.is_none() {
                    after.add(block_text::line_chars(name, v));
                }
            }
        }
        (before.total(), after.total())
    }

    /// Letta's API: the text of every agent-block a request writes, in the order the
    /// blocks first appear in its changes: what Letta may hold (the acknowledged fields, or
    /// the value of a failed write that may have landed) overlaid with the request's
    /// values. Called at emission, when no other write of these blocks is in flight (one
    /// write per agent-block).
    pub(crate) fn render_writes(&self, changes: &[SentChange]) -> Vec<BlockWrite> {
        if !self.letta() {
            return Vec::new();
        }
        let mut order: Vec<(AgentId, Sym)> = Vec::new();
        for c in changes {
            if !order.contains(&(c.agent, c.block)) {
                order.push((c.agent, c.block));
            }
        }
        let mut out = Vec::with_capacity(order.len());
        for (agent, block) in order {
            let mut fields: Vec<(&str, &Value)> = Vec::new();
            let sent = |f: Sym| {
                changes
                    .iter()
                    .any(|c| c.agent == agent && c.block == block && c.field == f)
            };
            for (f, fs) in self.block_fields(agent, block) {
                // What Letta may hold: a failed write may have landed, and writing the
                // acknowledged value over it would move the field back.
                if let Some(v) = fs.backend_value() {
                    // A name the format cannot hold can only come from confirmed state
                    // (`ack`); it is left out rather than fail the whole block's text.
                    let name = self.symbols.text(f);
                    if !sent(f) && block_text::check_field_name(name).is_ok() {
                        fields.push((name, v));
                    }
                }
            }
            for c in changes {
                if c.agent == agent && c.block == block {
                    fields.push((self.symbols.text(c.field), &c.value));
                }
            }
            let label = self.symbols.text(block);
            let limit = self.cfg.block_limit(label) as usize;
            // The change calls kept the text within the limit; a block Letta already held
            // over it (read at start) is written as it is rather than not at all.
            let text = block_text::render(label, fields.iter().copied(), limit)
                .or_else(|_| block_text::render(label, fields.iter().copied(), usize::MAX))
                .unwrap_or_default();
            out.push(BlockWrite {
                agent,
                agent_name: self.agent_names[agent.0 as usize],
                block,
                text,
            });
        }
        out
    }

    /// Letta's API: the agent-block's text is being read from Letta
    /// (`GET /v1/agents/{id}/core-memory/blocks/{label}`): nothing of it is written until
    /// [`Queue::load_block`] takes the answer in, so a restarted server never clobbers
    /// what Letta holds. Changes are still taken and coalesced meanwhile.
    pub fn await_block(&mut self, agent: AgentId, block: &str) -> Result<(), Error> {
        self.check_agent(agent)?;
        Symbols::check_name("block label", block)?;
        let b = self.symbols.intern(block);
        // On the batch endpoint the server applies fields by sequence number: nothing to
        // wait for.
        if self.letta() {
            self.busy_blocks.entry((agent, b)).or_insert(READING);
        }
        Ok(())
    }

    /// Letta's API: asks the budget for one block read (`GET` of an agent-block) at `now`.
    /// `true`: the call is counted (routine share of the budget, like the routine batches
    /// it precedes) and may be made now; `false`: the budget has no room, ask again later.
    /// Reads are HTTP calls like any other: the budget is never exceeded, whoever makes them.
    pub fn take_read_call(&mut self, now: f64) -> Result<bool, Error> {
        self.check_time("now", now)?;
        self.observe_time(now);
        if self.budget.available(now, crate::budget::Pool::Routine) < 1 {
            return Ok(false);
        }
        self.budget.spend(now, 1);
        self.rec.m.calls += 1;
        Ok(true)
    }

    /// Takes in an agent-block's text as read from Letta (a 404 is the empty text): its
    /// fields ([`block_text::parse`]) become the acknowledged state, and fields the text
    /// does not hold are acknowledged as absent. A field changed locally is still sent
    /// unless its value equals what Letta holds. Lines that are not fields of the format
    /// are reported in an [`Event::BlockUnreadable`] (the fields that parsed are taken
    /// in; the next write of the block replaces them). Returns the number of such lines.
    /// Refused while a write of the block is in flight. Ends [`Queue::await_block`].
    pub fn load_block(
        &mut self,
        now: f64,
        agent: AgentId,
        block: &str,
        text: &str,
    ) -> Result<usize, Error> {
        self.check_time("now", now)?;
        self.check_agent(agent)?;
        Symbols::check_name("block label", block)?;
        if let Some(b) = self.symbols.lookup(block) {
            if self
                .busy_blocks
                .get(&(agent, b))
                .is_some_and(|r| *r != READING)
            {
                return Err(Error::BlockBusy {
                    agent: String::from(self.agent_name(agent).unwrap_or("?")),
                    block: String::from(block),
                });
            }
        }
        let mut parsed = block_text::parse(text);
        // A field the queue could not hold as a value (a name or string over its limit)
        // is reported like a line of another format.
        let mut kept = Vec::with_capacity(parsed.fields.len());
        for (name, value) in parsed.fields.drain(..) {
            let fits = Symbols::check_name("field name", &name).is_ok()
                && self.check_value(agent, block, &name, &value).is_ok();
            if fits {
                kept.push((name, value));
            } else {
                let line = text
                    .split('\n')
                    .position(|l| {
                        l.strip_prefix(name.as_str())
                            .is_some_and(|r| r.starts_with(": "))
                    })
                    .map_or(0, |i| i + 1);
                // In line order among the other unreadable lines (no sort: it would add
                // a sort's code to the Luau build for a list that is almost always empty).
                let at = parsed.errors.partition_point(|e| e.line < line);
                parsed.errors.insert(
                    at,
                    block_text::LineError {
                        line,
                        text: name,
                        reason: "field name or value longer than the queue holds",
                    },
                );
            }
        }
        self.observe_time(now);
        self.dirty = true;
        let b = self.symbols.intern(block);
        if self.busy_blocks.get(&(agent, b)) == Some(&READING) {
            self.busy_blocks.remove(&(agent, b));
        }
        let mut touched: Vec<FieldKey> = Vec::new();
        let held: Vec<Sym> = self
            .block_fields(agent, b)
            .filter(|(_, fs)| fs.acked.is_some() || fs.unsure.is_some())
            .map(|(f, _)| f)
            .collect();
        for f in held {
            let name = self.symbols.text(f);
            if !kept.iter().any(|(n, _)| n == name) {
                touched.push(self.take_read(agent, b, f, Value::Cleared));
            }
        }
        for (name, value) in kept {
            let f = self.symbols.intern(&name);
            touched.push(self.take_read(agent, b, f, value));
        }
        for key in touched {
            self.reconcile(key);
        }
        self.drop_stale_suspects();
        let unreadable = parsed.errors.len();
        if unreadable > 0 {
            self.events.push(Event::BlockUnreadable {
                agent,
                block: String::from(block),
                lines: parsed.errors,
            });
        }
        Ok(unreadable)
    }

    /// One field as Letta holds it: acknowledged, known for sure, with sequence number 0
    /// (Letta holds none): every local value of this run is numbered above it, so it is
    /// sent exactly when it differs from what Letta holds.
    fn take_read(&mut self, agent: AgentId, block: Sym, field: Sym, value: Value) -> FieldKey {
        let key = FieldKey {
            agent,
            block,
            field,
        };
        let f = self.field_mut(key);
        f.acked = Some((value, Seq(0)));
        f.unsure = None;
        self.suspect_stale(key);
        key
    }
}
