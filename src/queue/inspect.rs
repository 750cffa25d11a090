//! Read-only questions about the queue (names, values, counters, idleness) and the
//! accessors to agents and fields the other modules use.

use super::state::{AgentState, FieldKey, FieldState};
use super::{Event, Queue};
use crate::ids::{AgentId, RequestId, Seq, Sym};
use crate::metrics::Metrics;
use crate::value::Value;
use alloc::vec::Vec;

impl Queue {
    /// The backend id of an agent (also of a removed one).
    pub fn agent_name(&self, agent: AgentId) -> Option<&str> {
        self.agent_sym(agent).map(|s| self.symbols.text(s))
    }

    /// The interned backend id of an agent (also of a removed one).
    pub fn agent_sym(&self, agent: AgentId) -> Option<Sym> {
        self.agent_names.get(agent.0 as usize).copied()
    }

    /// The text of an interned name (agent id, block label, field name).
    pub fn text(&self, sym: Sym) -> &str {
        self.symbols.text(sym)
    }

    /// Whether the agent is in combat mode at `now`.
    pub fn in_combat(&self, agent: AgentId, now: f64) -> bool {
        self.agent_state(agent)
            .map(|a| a.in_combat(now))
            .unwrap_or(false)
    }

    /// A snapshot of the counters.
    pub fn metrics(&mut self) -> Metrics {
        let mut m = self.rec.snapshot();
        m.calls_last_minute = self.budget.used(self.latest_now);
        m.in_flight = self.in_flight.len() as u64;
        m.queue_depth = self.units.values().map(|u| u.entries.len() as u64).sum();
        m
    }

    /// Field records the queue holds: of live agents, and what it remembers of removed
    /// agents' backend state (for a respawn). Bounded by what the game and the backend
    /// hold, not by history: departed group members and cleared fields are freed once
    /// the backend has them.
    pub fn tracked_fields(&self) -> usize {
        let live: usize = self.agents.iter().flatten().map(|a| a.fields.len()).sum();
        let retired: usize = self.retired.values().map(|r| r.len()).sum();
        live + retired
    }

    /// Events since the last call, oldest first.
    pub fn drain_events(&mut self) -> Vec<Event> {
        core::mem::take(&mut self.events)
    }

    /// The latest local value of a field, if it was ever set.
    pub fn local_value(&self, agent: AgentId, block: &str, field: &str) -> Option<&Value> {
        let f = self.field_state(agent, block, field)?;
        f.local.as_ref().map(|l| &l.value)
    }

    /// The value the backend acknowledged for a field, with its sequence number.
    pub fn acked_value(&self, agent: AgentId, block: &str, field: &str) -> Option<(&Value, Seq)> {
        let f = self.field_state(agent, block, field)?;
        f.acked.as_ref().map(|(v, s)| (v, *s))
    }

    /// The kind of a request that is in flight.
    pub fn in_flight_kind(&self, request: RequestId) -> Option<crate::request::RequestKind> {
        self.in_flight.get(&request).map(|r| r.kind)
    }

    /// Number of requests emitted and not yet reported.
    pub fn in_flight_count(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether nothing is waiting: no pending field, no chat, nothing in flight.
    pub fn is_idle(&self) -> bool {
        self.units.is_empty()
            && self.in_flight.is_empty()
            && self
                .agents
                .iter()
                .flatten()
                .all(|a| a.chat.messages.is_empty())
    }

    pub(crate) fn field_state(
        &self,
        agent: AgentId,
        block: &str,
        field: &str,
    ) -> Option<&FieldState> {
        let a = self.agent_state(agent)?;
        let b = self.symbols.lookup(block)?;
        let f = self.symbols.lookup(field)?;
        a.fields.get(&(b, f))
    }

    pub(crate) fn agent_state(&self, agent: AgentId) -> Option<&AgentState> {
        self.agents.get(agent.0 as usize).and_then(|a| a.as_ref())
    }

    /// [`Queue::agent_state`], to change: `None` for an agent removed or never issued.
    pub(crate) fn agent_state_mut(&mut self, agent: AgentId) -> Option<&mut AgentState> {
        self.agents
            .get_mut(agent.0 as usize)
            .and_then(|a| a.as_mut())
    }

    pub(crate) fn agent_mut(&mut self, agent: AgentId) -> &mut AgentState {
        self.agents[agent.0 as usize]
            .as_mut()
            .expect("agent checked live before mutation")
    }

    pub(crate) fn field_mut(&mut self, key: FieldKey) -> &mut FieldState {
        self.agent_mut(key.agent)
            .fields
            .entry((key.block, key.field))
            .or_default()
    }

    pub(crate) fn field(&self, key: FieldKey) -> Option<&FieldState> {
        self.agent_state(key.agent)?
            .fields
            .get(&(key.block, key.field))
    }
}
