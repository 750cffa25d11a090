//! The agent registry: registering an agent, removing one (what it had waiting is
//! dropped and reported), forgetting a removed one, and buffering chat to an agent.

use super::letta::READING;
use super::state::{AgentState, FieldState};
use super::{Event, Queue};
use crate::error::Error;
use crate::ids::{AgentId, Sym, UnitId};
use crate::symbols::{Limits, Symbols};
use crate::value::Value;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

impl Queue {
    /// The handle of the agent with this backend id, registering it if new.
    pub fn agent(&mut self, id: &str) -> Result<AgentId, Error> {
        Symbols::check_name("agent id", id)?;
        let sym = self.symbols.intern(id);
        if let Some(a) = self.agent_index.get(&sym) {
            return Ok(*a);
        }
        let a = AgentId(self.agents.len() as u32);
        let mut state = AgentState::new(sym);
        if let Some(known) = self.retired.remove(&sym) {
            // The same backend agent again: what its blocks hold did not change.
            state.fields = known;
        }
        self.agents.push(Some(state));
        self.agent_names.push(sym);
        self.agent_index.insert(sym, a);
        Ok(a)
    }

    /// Forgets what the queue remembers of a removed agent's backend state: call it when
    /// the backend agent is deleted and the id will not come back. An unknown or live id
    /// is an error naming it.
    pub fn forget_agent(&mut self, id: &str) -> Result<(), Error> {
        Symbols::check_name("agent id", id)?;
        let sym = self.symbols.lookup(id);
        if let Some(a) = sym.and_then(|s| self.agent_index.get(&s)) {
            return Err(Error::AgentLive {
                agent: String::from(self.agent_name(*a).unwrap_or(id)),
            });
        }
        if let Some(s) = sym {
            self.retired.remove(&s);
        }
        Ok(())
    }

    /// Removes an agent: whatever it still had waiting is dropped and reported, changes
    /// that depended on its changes are released (reported), and its pending atomic groups
    /// keep their other changes, whole.
    pub fn remove_agent(&mut self, agent: AgentId) -> Result<(), Error> {
        self.check_agent(agent)?;
        let state = self.agents[agent.0 as usize].take().expect("checked live");
        self.agent_index.remove(&state.name);
        // Keep what the backend is known to hold, in case the agent comes back (a
        // respawn): differential sync must not assume its blocks are empty. A send still
        // in flight may or may not land: those fields are unsure.
        let mut known = BTreeMap::new();
        for (k, f) in &state.fields {
            let in_flight = f.in_flight.iter().max_by_key(|v| v.seq);
            let unsure = match (&f.unsure, in_flight) {
                (Some((a, v)), Some(b)) if *a >= b.seq => Some((*a, v.clone())),
                (_, Some(b)) => Some((b.seq, b.value.clone())),
                (a, None) => a.clone(),
            };
            // A field the backend holds as absent needs no record: no record means absent.
            let held = f.acked.as_ref().is_some_and(|(v, _)| *v != Value::Cleared);
            if held || unsure.is_some() {
                known.insert(
                    *k,
                    FieldState {
                        acked: f.acked.clone(),
                        unsure,
                        ..FieldState::default()
                    },
                );
            }
        }
        if !known.is_empty() {
            self.retired.insert(state.name, known);
        }
        self.dirty = true;
        let mut pending_fields = 0u32;
        let touching: Vec<UnitId> = self.units.touching(agent).collect();
        for uid in touching {
            pending_fields += self.units.drop_agent(uid, agent) as u32;
            let unit = &self.units[&uid];
            if unit.entries.is_empty() {
                self.detach_unit(uid);
            } else if let Some(g) = unit.group {
                self.events.push(Event::GroupTrimmed { group: g, agent });
            }
        }
        // Changes that waited for this agent's changes will never see them delivered.
        let events = &mut self.events;
        self.units.for_each_deps(|deps| {
            let mut released = Vec::new();
            deps.retain(|d| {
                if d.on.agent != agent || d.dependent.agent == agent {
                    return true;
                }
                // Already delivered: nothing to release, nothing to report.
                let delivered = state.fields.get(&(d.on.block, d.on.field)).is_none_or(|f| {
                    f.acked_seq().0 >= d.on.seq || (f.unit.is_none() && f.in_flight.is_empty())
                });
                if !delivered {
                    released.push(*d);
                }
                false
            });
            for d in released {
                events.push(Event::DependencyReleased {
                    dependent: d.dependent,
                    dependency: d.on,
                });
            }
        });
        // A dependency travelling in flight with its dependent stays until the outcome: if
        // the request fails, the dependent returns without it and `fail` reports the
        // release. One already acknowledged is simply dropped.
        for req in self.in_flight.values_mut() {
            for u in &mut req.units {
                u.deps.retain(|d| {
                    d.on.agent != agent
                        || state
                            .fields
                            .get(&(d.on.block, d.on.field))
                            .is_some_and(|f| f.acked_seq().0 < d.on.seq)
                });
            }
        }
        let reading: Vec<(AgentId, Sym)> = self
            .busy_blocks
            .iter()
            .filter(|(k, r)| k.0 == agent && **r == READING)
            .map(|(k, _)| *k)
            .collect();
        for k in reading {
            self.busy_blocks.remove(&k);
        }
        self.rec.m.agents_removed += 1;
        self.events.push(Event::AgentRemoved {
            agent,
            name: String::from(self.symbols.text(state.name)),
            pending_fields,
            chat_messages: state.chat.messages.len() as u32,
        });
        Ok(())
    }

    /// Buffers a chat message to an agent; it leaves with the agent's other waiting
    /// messages as one inference request.
    pub fn chat(
        &mut self,
        now: f64,
        agent: AgentId,
        sender: &str,
        text: &str,
    ) -> Result<(), Error> {
        self.check_time("now", now)?;
        self.check_agent(agent)?;
        Symbols::check_name("chat sender", sender)?;
        if text.len() > Limits::CHAT_BYTES {
            return Err(Error::BadString {
                what: "chat text",
                len: text.len(),
                reason: "longer than the 2 KiB limit",
            });
        }
        self.observe_time(now);
        self.rec.m.chat_messages += 1;
        self.chatting.insert(agent);
        self.dirty = true;
        self.agent_mut(agent)
            .chat
            .messages
            .push(crate::request::ChatMessage {
                sender: String::from(sender),
                text: String::from(text),
                at: now,
            });
        Ok(())
    }
}
