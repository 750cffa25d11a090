//! What happens when the bridge reports a request's outcome.

use super::state::{Dep, FieldKey, Merged, Reconciled, Unit};
use super::{Priority, Queue, Recency};
use crate::backoff::retry_delay;
use crate::error::Error;
use crate::ids::{AgentId, GroupId, RequestId, Seq};
use crate::request::{ChatMessage, Confirmed, ConfirmedKey, RequestKind};
use crate::symbols::Symbols;
use crate::value::Value;
use alloc::vec::Vec;
use core::ops::Range;

/// A unit as it was sent, kept until the outcome is known so that a failure can put it
/// back whole.
#[derive(Clone, Debug)]
pub(crate) struct SentUnit {
    /// Its changes: a range of its request's ([`InFlightRequest::entries`]; one list per
    /// request rather than one per unit).
    pub(crate) changes: Range<u32>,
    pub(crate) group: Option<GroupId>,
    pub(crate) priority: Priority,
    pub(crate) deps: Vec<Dep>,
    pub(crate) order: u64,
    pub(crate) attempts: u32,
    /// When its oldest critical change not yet delivered was made.
    pub(crate) critical_since: Option<f64>,
}

impl SentUnit {
    /// Where its changes are in its request's [`InFlightRequest::entries`].
    pub(crate) fn range(&self) -> Range<usize> {
        self.changes.start as usize..self.changes.end as usize
    }
}

#[derive(Clone, Debug)]
pub(crate) struct InFlightRequest {
    pub(crate) kind: RequestKind,
    pub(crate) units: Vec<SentUnit>,
    /// The field and sequence of each change the request carries, in its order: the
    /// units' changes one after the other.
    pub(crate) entries: Vec<(FieldKey, Seq)>,
    /// Agents whose decision sync this request carries.
    pub(crate) synced: Vec<AgentId>,
    pub(crate) inference: Option<(AgentId, Vec<ChatMessage>, u32)>,
    /// When it was emitted (critical latency is measured to the attempt that lands).
    pub(crate) emitted_at: f64,
}

impl Queue {
    /// Reports that a request succeeded. `confirmed` is the backend's state of any fields
    /// it reported back; each is merged if it is not older than what the queue holds.
    pub fn ack(&mut self, request: RequestId, confirmed: &[Confirmed]) -> Result<(), Error> {
        if !self.in_flight.contains_key(&request) {
            return Err(Error::UnknownRequest { request });
        }
        for c in confirmed {
            self.check_confirmed(c.agent, &c.block, &c.field, &c.value)?;
        }
        let issued = self.move_counter_past(confirmed.iter().map(|c| c.seq));
        // Names are interned once every confirmation passed, in their order and only for
        // live agents (a removed agent's part is moot): symbol numbers order each agent's
        // fields, so they stay what the inputs make them.
        let mut keyed = Vec::with_capacity(confirmed.len());
        for c in confirmed {
            if self.agent_state(c.agent).is_none() {
                continue;
            }
            keyed.push(ConfirmedKey {
                agent: c.agent,
                block: self.symbols.intern(&c.block),
                field: self.symbols.intern(&c.field),
                value: c.value.clone(),
                seq: c.seq,
            });
        }
        self.merge_ack(request, &keyed, issued);
        Ok(())
    }

    /// [`Queue::ack`] with the confirmed fields named by symbols (no string per field: the
    /// Luau facade's form). The same checks, after each symbol's own (a symbol this queue
    /// never issued is an error naming it), and the same merge.
    pub fn ack_keyed(
        &mut self,
        request: RequestId,
        confirmed: &[ConfirmedKey],
    ) -> Result<(), Error> {
        if !self.in_flight.contains_key(&request) {
            return Err(Error::UnknownRequest { request });
        }
        for c in confirmed {
            match (self.symbols.get(c.block), self.symbols.get(c.field)) {
                (Some(block), Some(field)) => {
                    self.check_confirmed(c.agent, block, field, &c.value)?
                }
                _ => {
                    self.sym_text(c.block)?;
                    self.sym_text(c.field)?;
                }
            }
        }
        let issued = self.move_counter_past(confirmed.iter().map(|c| c.seq));
        self.merge_ack(request, confirmed, issued);
        Ok(())
    }

    /// The checks of one confirmed field, for both forms of the ack: its agent was issued
    /// (a removed one is fine: its part of the answer is moot), its names are names, a
    /// number is finite.
    fn check_confirmed(
        &self,
        agent: AgentId,
        block: &str,
        field: &str,
        value: &Value,
    ) -> Result<(), Error> {
        // `x - x == 0.0` is finiteness as one float operation (`is_finite` is 64-bit
        // integer work, which costs far more in Luau).
        #[allow(clippy::eq_op)]
        let finite = match value {
            Value::Number(n) => *n - *n == 0.0,
            _ => true,
        };
        if finite
            && Symbols::is_name(block)
            && Symbols::is_name(field)
            && self.agent_state(agent).is_some()
        {
            // The common confirmation: no error built (or dropped) on the way.
            return Ok(());
        }
        if self.agent_state(agent).is_none() {
            match self.check_agent(agent) {
                Err(Error::AgentRemoved { .. }) => {}
                other => {
                    other?;
                }
            }
        }
        Symbols::check_name("block label", block)?;
        Symbols::check_name("field name", field)?;
        if let Value::Number(n) = value {
            if !finite {
                return Err(Error::BadNumber {
                    agent: alloc::string::String::from(self.agent_name(agent).unwrap_or("?")),
                    field: alloc::format!("{block}.{field}"),
                    value: *n,
                });
            }
        }
        Ok(())
    }

    /// Sequence numbers beyond any this queue issued come from an earlier run of the
    /// server (a restart): the counter moves past every confirmed one (a removed agent's
    /// too), so what this run sends is applied, and values this run set are renumbered
    /// (`FieldState::merge_confirmed`). Returns the counter before: what this run issued.
    fn move_counter_past(&mut self, confirmed: impl Iterator<Item = Seq>) -> u64 {
        let issued = self.next_seq;
        for seq in confirmed {
            if seq.0 >= self.next_seq {
                self.next_seq = seq.0 + 1;
            }
        }
        issued
    }

    /// The ack of a request in flight whose confirmations passed their checks (the counter
    /// already moved past them, `issued` is where it stood): the request's own values are
    /// acknowledged, then each confirmation of a live agent merged in its order, then
    /// every field touched is reconciled (once).
    fn merge_ack(&mut self, request: RequestId, confirmed: &[ConfirmedKey], issued: u64) {
        let req = self.in_flight.remove(&request).expect("checked");
        self.dirty = true;
        self.release_blocks(request, &req);
        if one_pass(&req, confirmed) {
            self.merge_ack_one_pass(request, &req, confirmed, issued);
        } else {
            self.merge_ack_passes(request, req, confirmed, issued);
        }
        self.drop_stale_suspects();
    }

    /// [`Queue::merge_ack`] in three passes: the request's values acknowledged, the
    /// confirmations merged, the touched fields reconciled.
    fn merge_ack_passes(
        &mut self,
        request: RequestId,
        req: InFlightRequest,
        confirmed: &[ConfirmedKey],
        issued: u64,
    ) {
        let mut touched: Vec<FieldKey> = Vec::with_capacity(req.entries.len() + confirmed.len());
        for unit in &req.units {
            if let Some(since) = unit.critical_since {
                self.rec.critical_latency.record(req.emitted_at - since);
            }
            for (key, seq) in &req.entries[unit.range()] {
                let Some(a) = self.agent_state_mut(key.agent) else {
                    continue;
                };
                // A field's record lives while a value of it is in flight: without one
                // there is nothing to take (the reconcile below settles the field).
                let settled = a
                    .fields
                    .get_mut(&(key.block, key.field))
                    .is_some_and(|f| f.acknowledge_sent(request, *seq));
                if settled {
                    self.suspect_stale(*key);
                }
                touched.push(*key);
            }
        }
        // The request's fields in its order: a confirmation of one of them (the common
        // answer confirms what was sent, in order) is touched already; reconciling a field
        // twice after every change is the same as once.
        let mut sent = req.entries.iter().peekable();
        for c in confirmed {
            if self.agent_state(c.agent).is_none() {
                continue;
            }
            let key = FieldKey {
                agent: c.agent,
                block: c.block,
                field: c.field,
            };
            let listed = sent.next_if(|(k, s)| *k == key && *s == c.seq).is_some();
            let renumber = self.next_seq;
            let merged = self
                .field_mut(key)
                .merge_confirmed(&c.value, c.seq, issued, renumber);
            if merged.target_moved {
                self.suspect_stale(key);
            }
            self.apply_merged(merged);
            if !listed {
                touched.push(key);
            }
        }
        for key in touched {
            // Its values in flight, acknowledged value or doubt moved.
            self.grant_may_change(key);
            self.reconcile(key);
        }
    }

    /// [`Queue::merge_ack`] in one pass over the request's fields, each looked up once:
    /// taking its value out of flight, merging its confirmation, reconciling it. Exactly
    /// what the three passes do when [`one_pass`] holds: each field is in the request once
    /// and confirmed at most once, in the request's order, so no later step touches a field
    /// once it is done (a unit a reconcile creates, and the counter a renumbering moves,
    /// follow the same order).
    fn merge_ack_one_pass(
        &mut self,
        request: RequestId,
        req: &InFlightRequest,
        confirmed: &[ConfirmedKey],
        issued: u64,
    ) {
        for (i, unit) in req.units.iter().enumerate() {
            if let Some(since) = unit.critical_since {
                self.rec.critical_latency.record(req.emitted_at - since);
            }
            let (key, seq) = req.entries[unit.range().start];
            // Its values in flight, acknowledged value or doubt move (as in `merge_ack`).
            self.grant_may_change(key);
            let (now, renumber) = (self.latest_now, self.next_seq);
            let Some(a) = self.agent_state_mut(key.agent) else {
                continue;
            };
            let name = (key.block, key.field);
            let f = a.fields.entry(name).or_default();
            let settled = f.acknowledge_sent(request, seq);
            let merged = match confirmed.get(i) {
                Some(c) => f.merge_confirmed(&c.value, c.seq, issued, renumber),
                None => Merged::default(),
            };
            let moved = settled || merged.target_moved;
            if merged.renumbered || merged.drop_unit.is_some() {
                self.apply_merged(merged);
                self.reconcile(key);
            } else {
                match f.reconcile(now) {
                    Reconciled::NeedsUnit(order) => self.attach_own_unit(key, order),
                    Reconciled::Vacant => {
                        a.fields.remove(&name);
                    }
                    Reconciled::Kept => {}
                }
            }
            if moved {
                self.suspect_stale(key);
            }
        }
    }

    /// The queue's part of a merged confirmation: the counter after a renumbering, the
    /// field's pending unit dropped when the backend holds a newer value (not an atomic
    /// group's: the group stays whole).
    fn apply_merged(&mut self, merged: Merged) {
        if merged.renumbered {
            self.next_seq += 1;
        }
        if let Some(uid) = merged.drop_unit {
            if self.units.get(uid).is_some_and(|u| u.group.is_none()) {
                self.detach_unit(uid);
            }
        }
    }

    /// Reports that a request failed. Every change in it returns to pending (unless a
    /// newer value of the same field is already pending: the newer wins), atomic groups
    /// whole, with exponential backoff; `retry_after` (seconds, from the response's
    /// `Retry-After`) pauses all traffic at least that long.
    pub fn fail(
        &mut self,
        now: f64,
        request: RequestId,
        retry_after: Option<f64>,
    ) -> Result<(), Error> {
        self.check_time("now", now)?;
        if let Some(ra) = retry_after {
            if !ra.is_finite() || ra < 0.0 {
                return Err(Error::BadRetryAfter { value: ra });
            }
        }
        let req = self
            .in_flight
            .remove(&request)
            .ok_or(Error::UnknownRequest { request })?;
        self.observe_time(now);
        self.dirty = true;
        self.rec.m.failures += 1;
        self.release_blocks(request, &req);
        if let Some(ra) = retry_after {
            self.paused_until = self.paused_until.max(now + ra);
        }
        for sent in req.units {
            let attempts = sent.attempts + 1;
            let delay = retry_delay(&self.cfg, &mut self.rng, attempts, retry_after);
            let mut live: Vec<(FieldKey, Seq)> = Vec::new();
            for (key, seq) in &req.entries[sent.range()] {
                if self.agent_state(key.agent).is_none() {
                    continue;
                }
                let f = self.field_mut(*key);
                let mut oldest = None;
                let mut failed_value = None;
                f.in_flight.retain(|v| {
                    if v.request == request && v.seq == *seq {
                        oldest = Some(v.oldest);
                        failed_value = Some(v.value.clone());
                        false
                    } else {
                        true
                    }
                });
                if let Some(v) = failed_value.filter(|_| *seq > f.acked_seq()) {
                    f.mark_unsure(*seq, v);
                }
                if let Some(o) = oldest {
                    if f.needs_send() || sent.group.is_some() {
                        f.pending_since = Some(f.pending_since.map_or(o, |p: f64| p.min(o)));
                    } else {
                        // A newer value in flight supersedes this one.
                        f.inherit_age(o);
                    }
                }
                // Its value in flight, doubt or age moved.
                self.grant_may_change(*key);
                live.push((*key, *seq));
            }
            if live.is_empty() {
                continue;
            }
            // A dependency whose agent was removed while both were in flight will never
            // be delivered now: released, with a report.
            let mut deps = Vec::with_capacity(sent.deps.len());
            for d in sent.deps {
                if self.agent_state(d.on.agent).is_some() {
                    deps.push(d);
                } else {
                    self.events.push(super::Event::DependencyReleased {
                        dependent: d.dependent,
                        dependency: d.on,
                    });
                }
            }
            let mut unit = Unit::new(
                live.iter().map(|(k, _)| *k).collect(),
                sent.group,
                sent.order,
            );
            unit.priority = sent.priority;
            unit.deps = deps;
            if sent.priority >= Priority::High {
                unit.high_since = Some(now);
            }
            unit.critical_since = sent.critical_since;
            unit.not_before = now + delay;
            unit.attempts = attempts;
            if unit.group.is_none() {
                let key = unit.entries[0];
                if !self.field_mut(key).needs_send() {
                    // A newer value is already in flight or acknowledged, or the backend
                    // already holds this one. A newer value in flight delivers a seq above
                    // this unit's changes: their dependencies ride with it.
                    if !unit.deps.is_empty() {
                        self.attach_deps_in_flight(key, core::mem::take(&mut unit.deps));
                    }
                    self.settle(key);
                    continue;
                }
            }
            // The caps are hard caps: if merging with the newer pending units that share
            // its fields would exceed them, the merge is refused and the returning group
            // gives up the fields those units carry (their values supersede its own) and
            // keeps the rest whole.
            if unit.group.is_some() && !self.merge_fits(&unit.entries) {
                unit.entries
                    .retain(|k| self.field(*k).is_none_or(|f| f.unit.is_none()));
                if unit.entries.is_empty() {
                    continue;
                }
            }
            // It keeps its place and its backoff; the newer units' order wins.
            self.place_unit(unit, Recency::Older);
        }
        for agent in req.synced {
            if let Some(a) = self.agent_state_mut(agent) {
                a.sync_requested = true;
                self.syncing.insert(agent);
                self.agent_grants_may_change(agent);
            }
        }
        if let Some((agent, mut messages, attempts)) = req.inference {
            let attempts = attempts + 1;
            let delay = retry_delay(&self.cfg, &mut self.rng, attempts, retry_after);
            if let Some(a) = self.agent_state_mut(agent) {
                messages.append(&mut a.chat.messages);
                a.chat.messages = messages;
                a.chat.not_before = now + delay;
                a.chat.attempts = attempts;
                self.chatting.insert(agent);
                self.agent_grants_may_change(agent);
            }
        }
        Ok(())
    }

    /// The request's outcome is known: the agent-blocks it wrote may be written again.
    fn release_blocks(&mut self, request: RequestId, req: &InFlightRequest) {
        if self.busy_blocks.is_empty() {
            return;
        }
        for (k, _) in &req.entries {
            if self.busy_blocks.get(&(k.agent, k.block)) == Some(&request) {
                self.busy_blocks.remove(&(k.agent, k.block));
            }
        }
    }

    /// Restores the rule that a field whose local value must be sent has a pending unit.
    /// One lookup of the field ([`FieldState::reconcile`]).
    pub(crate) fn reconcile(&mut self, key: FieldKey) {
        let now = self.latest_now;
        let Some(a) = self.agent_state_mut(key.agent) else {
            return;
        };
        let name = (key.block, key.field);
        match a.fields.entry(name).or_default().reconcile(now) {
            Reconciled::NeedsUnit(order) => self.attach_own_unit(key, order),
            Reconciled::Vacant => {
                a.fields.remove(&name);
            }
            Reconciled::Kept => {}
        }
    }

    /// A unit of normal priority for one field alone, ordered by `order` (its local seq).
    fn attach_own_unit(&mut self, key: FieldKey, order: u64) {
        let uid = self.new_unit_id();
        let mut unit = Unit::new(alloc::vec![key], None, order);
        unit.priority = Priority::Normal;
        self.attach_unit(uid, unit);
    }
}

/// Whether an ack may take [`Queue::merge_ack_one_pass`]: no atomic group (so each field is
/// in the request once: a field has one pending unit, and a unit of no group holds one
/// field), and the confirmations are none, or exactly the request's fields in its order
/// under the seqs it sent (the batch endpoint's common answer; the values may differ).
fn one_pass(req: &InFlightRequest, confirmed: &[ConfirmedKey]) -> bool {
    if !req
        .units
        .iter()
        .all(|u| u.group.is_none() && u.range().len() == 1)
    {
        return false;
    }
    confirmed.is_empty()
        || (confirmed.len() == req.units.len()
            && confirmed.iter().zip(&req.units).all(|(c, u)| {
                let (k, s) = req.entries[u.range().start];
                c.agent == k.agent && c.block == k.block && c.field == k.field && c.seq == s
            }))
}
