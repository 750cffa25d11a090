//! Atomic groups: changes that travel in one request, in order, or not at all; their
//! checks against the hard caps of one request.

use super::apply::change_id;
use super::letta::{self};
use super::state::{Dep, FieldKey, Unit};
use super::{planner, Change, Queue, Recency};
use crate::error::Error;
use crate::ids::{AgentId, ChangeId, GroupId, Sym, UnitId};
use crate::value::Value;
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

impl Queue {
    /// Queues changes that travel in one request, in the order given, or not at all. They
    /// may span blocks and agents. Returns one handle per change.
    pub fn atomic(&mut self, now: f64, changes: &[Change<'_>]) -> Result<Vec<ChangeId>, Error> {
        self.check_time("now", now)?;
        if changes.is_empty() {
            return Err(Error::BadGroup {
                reason: String::from("it has no change"),
            });
        }
        let mut seen: BTreeSet<(AgentId, &str, &str)> = BTreeSet::new();
        let mut blocks: BTreeSet<(AgentId, &str)> = BTreeSet::new();
        let mut bytes = 0usize;
        for (i, c) in changes.iter().enumerate() {
            self.check_change(c).map_err(|e| match e {
                Error::AgentRemoved { agent } => Error::BadGroup {
                    reason: format!("change {i} names agent '{agent}', which was removed"),
                },
                other => other,
            })?;
            if !seen.insert((c.agent, c.block, c.field)) {
                return Err(Error::BadGroup {
                    reason: format!(
                        "change {i} sets {}.{} of agent '{}' a second time",
                        c.block,
                        c.field,
                        self.agent_name(c.agent).unwrap_or("?")
                    ),
                });
            }
            blocks.insert((c.agent, c.block));
            bytes += planner::change_bytes(
                self.agent_name(c.agent).unwrap_or(""),
                c.block,
                c.field,
                &c.value,
            );
        }
        self.check_group_order(changes)?;
        self.check_group_caps("it", blocks.len(), bytes)?;
        let proposed: Vec<letta::Proposed<'_>> = changes
            .iter()
            .map(|c| (c.agent, c.block, c.field, &c.value))
            .collect();
        self.check_block_texts(&proposed)?;
        // A group that shares a field with pending units merges with them: the merged
        // unit must fit the caps too, or the group is refused (the caps are hard caps).
        let merging = self.units_merging_with(changes);
        if !merging.is_empty() {
            let mut all_blocks: BTreeSet<(AgentId, Sym)> = BTreeSet::new();
            let mut merged_bytes = bytes;
            let own: BTreeSet<(AgentId, Option<Sym>, Option<Sym>)> = changes
                .iter()
                .map(|c| {
                    (
                        c.agent,
                        self.symbols.lookup(c.block),
                        self.symbols.lookup(c.field),
                    )
                })
                .collect();
            for c in changes {
                if let Some(b) = self.symbols.lookup(c.block) {
                    all_blocks.insert((c.agent, b));
                }
            }
            let mut new_blocks = blocks.len();
            for uid in &merging {
                for e in &self.units[uid].entries {
                    if !own.contains(&(e.agent, Some(e.block), Some(e.field))) {
                        merged_bytes += self.entry_bytes(*e);
                    }
                    if all_blocks.insert((e.agent, e.block)) {
                        new_blocks += 1;
                    }
                }
            }
            let what = format!(
                "merged with the {} pending unit(s) it shares fields with, it",
                merging.len()
            );
            self.check_group_caps(&what, new_blocks, merged_bytes)?;
        }
        self.observe_time(now);

        let gid = GroupId(self.next_group);
        self.next_group += 1;
        let mut unit = Unit::new(Vec::new(), Some(gid), self.next_seq);
        let mut ids = Vec::with_capacity(changes.len());
        for c in changes {
            let (key, seq, priority) = self.record_local(now, c);
            let id = change_id(key, seq);
            ids.push(id);
            unit.raise(priority, now);
            for d in &c.depends_on {
                unit.deps.push(Dep {
                    on: *d,
                    dependent: id,
                });
            }
            unit.entries.push(key);
            let field = self.field_mut(key);
            if field.pending_since.is_none() {
                field.pending_since = Some(now);
            }
        }
        let merged = self.place_unit(unit, Recency::Newer);
        self.rec.m.coalesced += merged;
        self.dirty = true;
        Ok(ids)
    }

    /// A dependency on a field this same group sets again later would be delivered after
    /// its dependent (the group travels in the order given): refused, naming both.
    pub(crate) fn check_group_order(&self, changes: &[Change<'_>]) -> Result<(), Error> {
        for (i, c) in changes.iter().enumerate() {
            for d in &c.depends_on {
                let later = changes.iter().enumerate().skip(i + 1).find(|(_, o)| {
                    o.agent == d.agent
                        && self.symbols.lookup(o.block) == Some(d.block)
                        && self.symbols.lookup(o.field) == Some(d.field)
                });
                if let Some((j, o)) = later {
                    return Err(Error::BadGroup {
                        reason: format!(
                            "change {i} depends on {d} of {}.{}, which change {j} of this group sets again after it: the group would deliver the dependency after its dependent (put change {j} first)",
                            o.block, o.field
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// The caps one atomic group (alone or merged) must fit: they are hard caps.
    pub(crate) fn check_group_caps(
        &self,
        what: &str,
        blocks: usize,
        bytes: usize,
    ) -> Result<(), Error> {
        if blocks > self.cfg.max_agent_blocks_per_request as usize {
            return Err(Error::BadGroup {
                reason: format!(
                    "{what} writes {blocks} agent-blocks; one request holds at most {} (max_agent_blocks_per_request)",
                    self.cfg.max_agent_blocks_per_request
                ),
            });
        }
        // On Letta's API each agent-block is one call: a group costing more calls than
        // routine traffic may spend in a minute could never be sent.
        if self.cfg.target == crate::config::Target::LettaApi
            && blocks > self.cfg.routine_calls() as usize
        {
            return Err(Error::BadGroup {
                reason: format!(
                    "{what} writes {blocks} agent-blocks, each one call on Letta's API; routine traffic may spend at most {} calls a minute (budget_per_minute, routine_share)",
                    self.cfg.routine_calls()
                ),
            });
        }
        let body = bytes + planner::REQUEST_OVERHEAD_BYTES;
        if body > self.cfg.max_request_bytes as usize {
            return Err(Error::BadGroup {
                reason: format!(
                    "{what} would make a body of up to {body} bytes; one request holds at most {} (max_request_bytes)",
                    self.cfg.max_request_bytes
                ),
            });
        }
        Ok(())
    }

    /// Whether these fields, merged with the pending units that carry any of them, fit
    /// the caps of one request.
    pub(crate) fn merge_fits(&self, entries: &[FieldKey]) -> bool {
        let mut keys: BTreeSet<FieldKey> = entries.iter().copied().collect();
        for k in entries {
            if let Some(u) = self.field(*k).and_then(|f| f.unit) {
                keys.extend(self.units[&u].entries.iter().copied());
            }
        }
        let blocks: BTreeSet<(AgentId, Sym)> = keys.iter().map(|k| (k.agent, k.block)).collect();
        let bytes = keys.iter().map(|k| self.entry_bytes(*k)).sum();
        self.check_group_caps("", blocks.len(), bytes).is_ok()
    }

    /// The pending units an atomic group of these changes would merge with.
    pub(crate) fn units_merging_with(&self, changes: &[Change<'_>]) -> BTreeSet<UnitId> {
        let mut out = BTreeSet::new();
        for c in changes {
            let (Some(block), Some(field)) =
                (self.symbols.lookup(c.block), self.symbols.lookup(c.field))
            else {
                continue;
            };
            let key = FieldKey {
                agent: c.agent,
                block,
                field,
            };
            if let Some(u) = self.field(key).and_then(|f| f.unit) {
                out.insert(u);
            }
        }
        out
    }

    /// Upper bound of one pending field's bytes in a request, at its latest value.
    pub(crate) fn entry_bytes(&self, key: FieldKey) -> usize {
        let value = self
            .field(key)
            .and_then(|f| f.local.as_ref())
            .map(|l| &l.value)
            .unwrap_or(&Value::Cleared);
        planner::change_bytes(
            self.agent_name(key.agent).unwrap_or(""),
            self.symbols.text(key.block),
            self.symbols.text(key.field),
            value,
        )
    }
}
