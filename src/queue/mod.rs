//! The queue: what game code calls.

mod absorb;
mod decide;
mod letta;
mod outcome;
mod planner;
mod slots;
mod state;

use crate::backoff::Rng;
use crate::budget::Budget;
use crate::config::Config;
use crate::error::Error;
use crate::ids::{AgentId, ChangeId, GroupId, RequestId, Seq, Sym, UnitId};
use crate::metrics::{Metrics, Recorder};
use crate::names;
use crate::symbols::{Limits, Symbols};
use crate::value::{json_string_bytes, Value};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

pub use absorb::{AbsorbTarget, Absorbable, Absorbed};
pub use decide::Decision;
use letta::READING;
use outcome::InFlightRequest;
pub use slots::Slot;
use slots::UnitHint;
use state::{AgentState, Dep, FieldKey, FieldState, Local, Unit};

/// How urgently a change must reach the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Routine refreshes: next routine batch, first to wait when the budget is tight.
    Low,
    /// Location, state, description: next routine batch.
    Normal,
    /// Notable health changes, group joins and leaves, tool results: within 1 s.
    High,
    /// Combat health drops, entering or leaving `Combat`, critical tool results: next poll.
    Critical,
}

/// One field change, for [`Queue::set`] and [`Queue::atomic`].
///
/// ```
/// use npc_sync::{Change, Priority, Queue, Config, Value};
/// let mut q = Queue::new(Config::default()).unwrap();
/// let a = q.agent("npc-1").unwrap();
/// let moved = q.set(0.0, Change::new(a, "status", "location", "cave".into())).unwrap();
/// let c = Change::new(a, "status", "torch", Value::Bool(true))
///     .priority(Priority::High)
///     .after(moved);
/// q.set(0.0, c).unwrap();
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Change<'a> {
    /// The agent.
    pub agent: AgentId,
    /// Block label.
    pub block: &'a str,
    /// Field name.
    pub field: &'a str,
    /// New value.
    pub value: Value,
    /// Priority (default normal).
    pub priority: Priority,
    /// Changes that must be delivered before this one.
    pub depends_on: Vec<ChangeId>,
}

impl<'a> Change<'a> {
    /// A normal-priority change with no dependency.
    pub fn new(agent: AgentId, block: &'a str, field: &'a str, value: Value) -> Self {
        Change {
            agent,
            block,
            field,
            value,
            priority: Priority::Normal,
            depends_on: Vec::new(),
        }
    }

    /// Sets the priority.
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = p;
        self
    }

    /// Adds a dependency.
    pub fn after(mut self, dep: ChangeId) -> Self {
        self.depends_on.push(dep);
        self
    }
}

/// Something the queue reports that is not a request: never a silent drop.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// An agent was removed; what it still had waiting is dropped.
    AgentRemoved {
        /// The agent.
        agent: AgentId,
        /// Its backend id.
        name: String,
        /// Fields that were waiting to be sent.
        pending_fields: u32,
        /// Chat messages that were waiting for inference.
        chat_messages: u32,
    },
    /// A change depended on one that will never be delivered (its agent was removed); the
    /// dependency is released and the dependent goes on its own.
    DependencyReleased {
        /// The dependent change.
        dependent: ChangeId,
        /// The change it waited for.
        dependency: ChangeId,
    },
    /// A pending atomic group lost the changes of a removed agent; the rest stays whole.
    GroupTrimmed {
        /// The group.
        group: GroupId,
        /// The removed agent.
        agent: AgentId,
    },
    /// Letta's API: a block read from Letta ([`Queue::load_block`]) has lines that are
    /// not fields of the block format (written by someone else). The fields that parsed
    /// were taken in; the next write of the block replaces the whole text, these lines
    /// included.
    BlockUnreadable {
        /// The agent.
        agent: AgentId,
        /// Block label.
        block: String,
        /// The lines that could not be read.
        lines: Vec<crate::block_text::LineError>,
    },
}

/// The queue. See the crate documentation for an example.
pub struct Queue {
    pub(crate) cfg: Config,
    pub(crate) symbols: Symbols,
    pub(crate) agents: Vec<Option<AgentState>>,
    /// Backend id of every agent ever registered, removed ones included.
    pub(crate) agent_names: Vec<Sym>,
    pub(crate) agent_index: BTreeMap<Sym, AgentId>,
    pub(crate) units: BTreeMap<UnitId, Unit>,
    pub(crate) next_unit: u64,
    pub(crate) next_seq: u64,
    pub(crate) next_group: u64,
    pub(crate) next_request: u64,
    pub(crate) in_flight: BTreeMap<RequestId, InFlightRequest>,
    pub(crate) budget: Budget,
    pub(crate) rng: Rng,
    pub(crate) latest_now: f64,
    /// Routine batch schedule (set at the first poll).
    pub(crate) next_batch_at: Option<f64>,
    /// A `Retry-After` holds routine batches and inference until this time; urgent
    /// requests go on at most once per combat debounce window.
    pub(crate) paused_until: f64,
    /// When the last urgent request was emitted (paces them during a pause).
    pub(crate) last_urgent_at: Option<f64>,
    /// Letta's API: the agent-blocks that may not be written now, and why: the request
    /// writing each (at most one write per agent-block in flight), or [`READING`] while
    /// its text is being read from Letta ([`Queue::await_block`], [`Queue::load_block`]).
    pub(crate) busy_blocks: BTreeMap<(AgentId, Sym), RequestId>,
    /// Set during [`Queue::flush`]: everything pending is due now.
    pub(crate) flushing: bool,
    /// Nothing can be due before this time unless `dirty`.
    pub(crate) next_wake: f64,
    pub(crate) dirty: bool,
    pub(crate) events: Vec<Event>,
    /// What the backend holds for removed agents, by backend id, for when one comes back.
    pub(crate) retired: BTreeMap<Sym, BTreeMap<(Sym, Sym), FieldState>>,
    pub(crate) rec: Recorder,
    /// Field slots issued to facades.
    pub(crate) slots: slots::SlotTable,
}

impl Queue {
    /// A queue with the given settings, validated as a whole.
    pub fn new(cfg: Config) -> Result<Queue, Error> {
        cfg.validate()?;
        Ok(Queue {
            budget: Budget::new(&cfg),
            rng: Rng::new(cfg.seed),
            cfg,
            symbols: Symbols::default(),
            agents: Vec::new(),
            agent_names: Vec::new(),
            agent_index: BTreeMap::new(),
            units: BTreeMap::new(),
            next_unit: 1,
            next_seq: 1,
            next_group: 1,
            next_request: 1,
            in_flight: BTreeMap::new(),
            latest_now: 0.0,
            next_batch_at: None,
            paused_until: 0.0,
            last_urgent_at: None,
            busy_blocks: BTreeMap::new(),
            flushing: false,
            next_wake: 0.0,
            dirty: true,
            events: Vec::new(),
            retired: BTreeMap::new(),
            rec: Recorder::new(),
            slots: slots::SlotTable::default(),
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

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

    fn field_state(&self, agent: AgentId, block: &str, field: &str) -> Option<&FieldState> {
        let a = self.agent_state(agent)?;
        let b = self.symbols.lookup(block)?;
        let f = self.symbols.lookup(field)?;
        a.fields.get(&(b, f))
    }

    pub(crate) fn agent_state(&self, agent: AgentId) -> Option<&AgentState> {
        self.agents.get(agent.0 as usize).and_then(|a| a.as_ref())
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

    // ----- validation: every check happens before any mutation -----

    pub(crate) fn check_time(&self, what: &'static str, now: f64) -> Result<(), Error> {
        if !now.is_finite() || now < 0.0 {
            return Err(Error::BadTime { what, value: now });
        }
        if now < self.latest_now {
            return Err(Error::TimeWentBackwards {
                now,
                latest: self.latest_now,
            });
        }
        Ok(())
    }

    pub(crate) fn observe_time(&mut self, now: f64) {
        if now > self.latest_now {
            self.latest_now = now;
        }
    }

    pub(crate) fn check_agent(&self, agent: AgentId) -> Result<&AgentState, Error> {
        match self.agents.get(agent.0 as usize) {
            None => Err(Error::UnknownAgent { index: agent.0 }),
            Some(None) => Err(Error::AgentRemoved {
                agent: String::from(self.agent_name(agent).unwrap_or("?")),
            }),
            Some(Some(a)) => Ok(a),
        }
    }

    fn check_change(&self, c: &Change<'_>) -> Result<(), Error> {
        self.check_agent(c.agent)?;
        Symbols::check_name("block label", c.block)?;
        Symbols::check_name("field name", c.field)?;
        self.check_value(c.agent, c.block, c.field, &c.value)?;
        for d in &c.depends_on {
            self.check_dependency(*d)?;
        }
        Ok(())
    }

    /// A value may be stored: numbers finite, strings within the limit.
    pub(crate) fn check_value(
        &self,
        agent: AgentId,
        block: &str,
        field: &str,
        value: &Value,
    ) -> Result<(), Error> {
        match value {
            Value::Number(n) if !n.is_finite() => {
                return Err(Error::BadNumber {
                    agent: String::from(self.agent_name(agent).unwrap_or("?")),
                    field: format!("{block}.{field}"),
                    value: *n,
                })
            }
            // The limit counts the value as the request body carries it (JSON-escaped),
            // so that one change of maximal size always fits the body cap.
            Value::Str(s) if json_string_bytes(s) > Limits::VALUE_BYTES => {
                return Err(Error::BadString {
                    what: "string value",
                    len: s.len(),
                    reason: "longer than the 16 KiB limit once JSON-escaped (control characters take 6 bytes, quotes and backslashes 2)",
                })
            }
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn check_dependency(&self, d: ChangeId) -> Result<(), Error> {
        if d.seq == 0 || d.seq >= self.next_seq || d.agent.0 as usize >= self.agents.len() {
            return Err(Error::UnknownChange { seq: d.seq });
        }
        if self.agents[d.agent.0 as usize].is_none() {
            return Err(Error::DependencyRemoved {
                seq: d.seq,
                agent: String::from(self.agent_name(d.agent).unwrap_or("?")),
            });
        }
        Ok(())
    }

    // ----- change calls -----

    /// Queues one field change. Returns its handle (for dependencies).
    pub fn set(&mut self, now: f64, change: Change<'_>) -> Result<ChangeId, Error> {
        self.check_time("now", now)?;
        self.check_change(&change)?;
        self.check_block_texts(&[(change.agent, change.block, change.field, &change.value)])?;
        self.observe_time(now);
        Ok(self.apply(now, &change))
    }

    /// Sets `status.location` (normal priority).
    pub fn set_location(
        &mut self,
        now: f64,
        agent: AgentId,
        location: &str,
    ) -> Result<ChangeId, Error> {
        self.set(
            now,
            Change::new(agent, names::STATUS, names::LOCATION, Value::str(location)),
        )
    }

    /// Sets `status.description` (normal priority).
    pub fn set_description(
        &mut self,
        now: f64,
        agent: AgentId,
        text: &str,
    ) -> Result<ChangeId, Error> {
        self.set(
            now,
            Change::new(agent, names::STATUS, names::DESCRIPTION, Value::str(text)),
        )
    }

    /// Sets `status.health`. The change's size against what the backend has (or will have
    /// once in-flight sends land) picks the priority: a drop of 20 points or more is
    /// critical and enters combat mode, a drop or a heal of 10 points or more is high
    /// (a heal is never critical), less is kept for the next routine batch.
    pub fn set_health(&mut self, now: f64, agent: AgentId, health: f64) -> Result<ChangeId, Error> {
        if !health.is_finite() || health < 0.0 {
            return Err(Error::BadNumber {
                agent: String::from(self.agent_name(agent).unwrap_or("?")),
                field: String::from("status.health"),
                value: health,
            });
        }
        self.check_time("now", now)?;
        self.check_agent(agent)?;
        let reference = self.health_reference(agent);
        let priority = match reference {
            None => Priority::Normal,
            // A heal is never a combat health drop: at most high priority.
            Some(r) if health > r => {
                if health - r >= self.cfg.health_notable_points {
                    Priority::High
                } else {
                    Priority::Normal
                }
            }
            Some(r) => {
                let drop = r - health;
                if drop >= self.cfg.health_critical_points {
                    Priority::Critical
                } else if drop >= self.cfg.health_notable_points {
                    Priority::High
                } else {
                    Priority::Normal
                }
            }
        };
        let id = self.set(
            now,
            Change::new(agent, names::STATUS, names::HEALTH, Value::Number(health))
                .priority(priority),
        )?;
        if priority == Priority::Critical {
            let until = now + self.cfg.combat_exit_s;
            self.agent_mut(agent).combat_until = until;
        }
        Ok(id)
    }

    fn health_reference(&self, agent: AgentId) -> Option<f64> {
        let a = self.agent_state(agent)?;
        let b = self.symbols.lookup(names::STATUS)?;
        let f = self.symbols.lookup(names::HEALTH)?;
        let fs = a.fields.get(&(b, f))?;
        let v = fs.target().or(fs.local.as_ref().map(|l| &l.value));
        match v {
            Some(Value::Number(n)) => Some(*n),
            _ => None,
        }
    }

    /// Sets `status.state`. Entering or leaving `Combat` is critical; entering it starts
    /// combat mode, which lasts while the state is `Combat` and `combat_exit_s` after.
    ///
    /// The rule holds for every change of `status.state`, however it is made (`set`,
    /// `atomic`): this call is a shorthand.
    pub fn set_state(&mut self, now: f64, agent: AgentId, state: &str) -> Result<ChangeId, Error> {
        self.set(
            now,
            Change::new(agent, names::STATUS, names::STATE, Value::str(state)),
        )
    }

    /// A group member joins: `group_members.<member>.is_present = true`, plus the given
    /// fields of that member (high priority). Returns the handle of `is_present`.
    pub fn join_group(
        &mut self,
        now: f64,
        agent: AgentId,
        member: &str,
        fields: &[(&str, Value)],
    ) -> Result<ChangeId, Error> {
        // A member's fields are `<member>.<field>`: a field name without a dot keeps the
        // member part unambiguous even when member ids contain dots (`guard`, `guard.2`).
        for (f, _) in fields {
            if f.contains('.') || f.is_empty() {
                return Err(Error::BadString {
                    what: "group member field",
                    len: f.len(),
                    reason:
                        "must be non-empty and contain no '.' (it follows the member id after one)",
                });
            }
        }
        let present = format!("{member}.{}", names::IS_PRESENT);
        let mut all = Vec::with_capacity(fields.len() + 1);
        let named: Vec<String> = fields
            .iter()
            .map(|(f, _)| format!("{member}.{f}"))
            .collect();
        all.push(
            Change::new(agent, names::GROUP_MEMBERS, &present, Value::Bool(true))
                .priority(Priority::High),
        );
        for ((_, v), name) in fields.iter().zip(&named) {
            all.push(
                Change::new(agent, names::GROUP_MEMBERS, name, v.clone()).priority(Priority::High),
            );
        }
        self.check_time("now", now)?;
        Symbols::check_name("group member", member)?;
        for c in &all {
            self.check_change(c)?;
        }
        let proposed: Vec<letta::Proposed<'_>> = all
            .iter()
            .map(|c| (c.agent, c.block, c.field, &c.value))
            .collect();
        self.check_block_texts(&proposed)?;
        self.observe_time(now);
        let mut first = None;
        for c in &all {
            let id = self.apply(now, c);
            first.get_or_insert(id);
        }
        Ok(first.expect("join always sets is_present"))
    }

    /// A group member leaves: every field of that member is cleared (high priority). A
    /// member who joined and left before anything was sent leaves nothing to send if the
    /// backend never had them. Returns the handle of clearing `is_present`.
    pub fn leave_group(
        &mut self,
        now: f64,
        agent: AgentId,
        member: &str,
    ) -> Result<ChangeId, Error> {
        self.check_time("now", now)?;
        Symbols::check_name("group member", member)?;
        let a = self.check_agent(agent)?;
        let present = format!("{member}.{}", names::IS_PRESENT);
        let mut others: Vec<String> = Vec::new();
        if let Some(gm) = self.symbols.lookup(names::GROUP_MEMBERS) {
            for ((b, f), fs) in &a.fields {
                let name = self.symbols.text(*f);
                let set = fs.local.as_ref().is_some_and(|l| l.value != Value::Cleared)
                    || fs.acked.as_ref().is_some_and(|(v, _)| *v != Value::Cleared);
                // The member is everything before the last dot (field names have none).
                let of_member = name.rsplit_once('.').is_some_and(|(m, _)| m == member);
                if *b == gm && set && of_member && name != present {
                    others.push(String::from(name));
                }
            }
        }
        let first = Change::new(agent, names::GROUP_MEMBERS, &present, Value::Cleared)
            .priority(Priority::High);
        self.check_change(&first)?;
        self.observe_time(now);
        let id = self.apply(now, &first);
        for f in &others {
            let c = Change::new(agent, names::GROUP_MEMBERS, f, Value::Cleared)
                .priority(Priority::High);
            self.apply(now, &c);
        }
        Ok(id)
    }

    /// A tool's result written to a block field: high priority, or critical if marked.
    pub fn tool_result(
        &mut self,
        now: f64,
        agent: AgentId,
        block: &str,
        field: &str,
        value: Value,
        critical: bool,
    ) -> Result<ChangeId, Error> {
        let p = if critical {
            Priority::Critical
        } else {
            Priority::High
        };
        self.set(now, Change::new(agent, block, field, value).priority(p))
    }

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

    /// Puts a unit among the pending ones. A field has at most one pending unit, so the
    /// units already carrying any of its fields merge into it ([`Unit::absorb`]: the
    /// rules on priority, backoff and latency of a merge live there). Where the two
    /// orders contradict, the newer changes' order wins: the fields both hold carry the
    /// newer values, so the older unit's changes to them are superseded and never sent;
    /// every other change keeps its place in its own unit's order. Every path that merges
    /// units (`atomic`, a failed unit coming back) comes through here. Returns how many
    /// pending units merged in.
    pub(crate) fn place_unit(&mut self, mut unit: Unit, recency: Recency) -> u64 {
        let uid = self.new_unit_id();
        let mut merged = 0;
        // Only the unit's own fields can belong to other units: a merged unit's fields
        // pointed at it, and it is gone.
        for key in unit.entries.clone() {
            let Some(other) = self.field(key).and_then(|f| f.unit) else {
                continue;
            };
            let Some(o) = self.units.remove(&other) else {
                continue;
            };
            for e in &o.entries {
                self.field_mut(*e).unit = None;
            }
            let order = match recency {
                Recency::Newer => {
                    let mut m = unit.entries.clone();
                    state::merge_order(&mut m, &o.entries);
                    m
                }
                Recency::Older => {
                    let mut m = o.entries.clone();
                    state::merge_order(&mut m, &unit.entries);
                    m
                }
            };
            unit.absorb(o);
            unit.entries = order;
            merged += 1;
        }
        for e in &unit.entries {
            self.field_mut(*e).unit = Some(uid);
        }
        self.units.insert(uid, unit);
        merged
    }

    /// A dependency on a field this same group sets again later would be delivered after
    /// its dependent (the group travels in the order given): refused, naming both.
    fn check_group_order(&self, changes: &[Change<'_>]) -> Result<(), Error> {
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
    fn check_group_caps(&self, what: &str, blocks: usize, bytes: usize) -> Result<(), Error> {
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
    fn units_merging_with(&self, changes: &[Change<'_>]) -> BTreeSet<UnitId> {
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

    pub(crate) fn new_unit_id(&mut self) -> UnitId {
        let u = UnitId(self.next_unit);
        self.next_unit += 1;
        u
    }

    /// Records a change as the field's latest local value and issues its handle; returns
    /// its priority under [`Queue::field_rules`].
    fn record_local(&mut self, now: f64, c: &Change<'_>) -> (FieldKey, u64, Priority) {
        let key = self.resolve(c);
        let priority = self.field_rules(now, key, &c.value, c.priority);
        (key, self.record_key(key, c.value.clone()).0, priority)
    }

    /// The field a change names, interning its block and field names.
    fn resolve(&mut self, c: &Change<'_>) -> FieldKey {
        FieldKey {
            agent: c.agent,
            block: self.symbols.intern(c.block),
            field: self.symbols.intern(c.field),
        }
    }

    /// Whether a field is the agent's `status.state` (the field combat mode follows).
    pub(crate) fn is_state_field(&self, key: FieldKey) -> bool {
        let k = self.symbols.known();
        k.status == Some(key.block) && k.state == Some(key.field)
    }

    /// Whether a field is `status.state` or `status.health` (changes of either may move
    /// combat mode, which changes when the agent's critical changes are due).
    pub(crate) fn is_combat_field(&self, key: FieldKey) -> bool {
        let k = self.symbols.known();
        k.status == Some(key.block) && (k.state == Some(key.field) || k.health == Some(key.field))
    }

    /// The rules a change's field implies, owned here for every path that takes in a
    /// change (`set` and its conveniences, the slot path, `atomic`, group joins and
    /// leaves): a change of `status.state` into or out of `Combat` is critical and moves
    /// combat mode. Returns the change's priority. (The slot path's one-pass shortcut never
    /// runs for `status.state`: `slots.rs` keeps no unit hint for it.)
    pub(crate) fn field_rules(
        &mut self,
        now: f64,
        key: FieldKey,
        value: &Value,
        priority: Priority,
    ) -> Priority {
        if !self.is_state_field(key) {
            return priority;
        }
        let is_combat = matches!(value, Value::Str(s) if s == names::COMBAT_STATE);
        let exit = self.cfg.combat_exit_s;
        let a = self.agent_mut(key.agent);
        let was = a.in_combat_state;
        a.in_combat_state = is_combat;
        if was || is_combat {
            a.combat_until = now + exit;
        }
        if was != is_combat {
            Priority::Critical
        } else {
            priority
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
    fn apply(&mut self, now: f64, c: &Change<'_>) -> ChangeId {
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
                    let kept = match self.units.get_mut(&uid) {
                        Some(unit) if needs || unit.group.is_some() => {
                            unit.raise(priority, now);
                            unit.deps.extend(deps);
                            Some(UnitHint::new(uid, unit.priority))
                        }
                        _ => None,
                    };
                    if kept.is_none() {
                        // A unit gone may free a dependent: look at everything again.
                        self.units.remove(&uid);
                        self.field_mut(key).unit = None;
                        self.settle(key);
                        self.dirty = true;
                    }
                    kept
                }
            }
            None if needs => {
                let uid = self.new_unit_id();
                let mut unit = Unit::new(alloc::vec![key], None, seq);
                unit.deps = deps;
                unit.raise(priority, now);
                let hint = UnitHint::new(uid, unit.priority);
                self.units.insert(uid, unit);
                let f = self.field_mut(key);
                f.unit = Some(uid);
                if f.pending_since.is_none() {
                    f.pending_since = Some(now);
                }
                Some(hint)
            }
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

    /// A change can make something due before the queue's next wake: lower the wake to
    /// when its unit is due, so that `poll` in a frame with nothing due returns at once
    /// instead of looking at every pending unit (the hot path: a location set every
    /// frame is due only with the routine batch, already in the wake). Where the effect
    /// is not local to the change's unit (combat mode moved, a decision or chat waiting
    /// on the agent, no schedule yet) the next poll looks at everything.
    ///
    /// `unit` is the field's pending unit after the change (the caller has it at hand: one
    /// lookup less on the hot path).
    pub(crate) fn note_due(&mut self, now: f64, key: FieldKey, unit: Option<UnitId>) {
        let combat_field = self.is_combat_field(key);
        let Some(a) = self.agent_state(key.agent) else {
            return;
        };
        if combat_field
            || a.sync_requested
            || !a.chat.messages.is_empty()
            || self.next_batch_at.is_none()
        {
            self.dirty = true;
            return;
        }
        let Some(u) = unit.and_then(|id| self.units.get(&id)) else {
            return;
        };
        let due = if u.not_before > now {
            u.not_before
        } else {
            match u.priority {
                Priority::Critical => {
                    let mut ready = u.not_before;
                    for e in &u.entries {
                        if let Some(a) = self.agent_state(e.agent) {
                            if let Some(last) = a.last_critical_emit {
                                let window = if a.in_combat(now) {
                                    self.cfg.combat_debounce_s
                                } else {
                                    self.cfg.debounce_s
                                };
                                ready = ready.max(last + window.min(a.last_critical_window));
                            }
                        }
                    }
                    ready
                }
                Priority::High if u.attempts == 0 => u
                    .high_since
                    .map_or(now, |t| t + self.cfg.high_priority_delay_s),
                // Due with the routine batch (or its retry), already in the wake.
                _ => return,
            }
        };
        if due < self.next_wake {
            self.next_wake = due;
        }
    }

    fn attach_deps_in_flight(&mut self, key: FieldKey, deps: Vec<Dep>) {
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
                .find(|u| u.entries.iter().any(|(k, _)| *k == key))
            {
                u.deps.extend(deps);
            }
        }
    }

    /// After a field stopped needing a send: nothing of it is waiting any more. What it
    /// waited for is delivered by the send in flight (which inherits its age), or already
    /// held by the backend. A record left saying nothing is freed.
    pub(crate) fn settle(&mut self, key: FieldKey) {
        let Some(f) = self
            .agents
            .get_mut(key.agent.0 as usize)
            .and_then(|a| a.as_mut())
            .and_then(|a| a.fields.get_mut(&(key.block, key.field)))
        else {
            return;
        };
        if f.unit.is_some() {
            return;
        }
        if !f.needs_send() {
            if let Some(p) = f.pending_since.take() {
                f.inherit_age(p);
            }
        }
        if f.is_vacant() {
            self.agent_mut(key.agent)
                .fields
                .remove(&(key.block, key.field));
        }
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
            let (unsure, unsure_value) = match (f.unsure, in_flight) {
                (Some(a), Some(b)) if a >= b.seq => (Some(a), f.unsure_value.clone()),
                (_, Some(b)) => (Some(b.seq), Some(b.value.clone())),
                (a, None) => (a, f.unsure_value.clone()),
            };
            // A field the backend holds as absent needs no record: no record means absent.
            let held = f.acked.as_ref().is_some_and(|(v, _)| *v != Value::Cleared);
            if held || unsure.is_some() {
                known.insert(
                    *k,
                    FieldState {
                        acked: f.acked.clone(),
                        unsure,
                        unsure_value,
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
        let touching: Vec<UnitId> = self
            .units
            .iter()
            .filter(|(_, u)| u.touches(agent))
            .map(|(id, _)| *id)
            .collect();
        for uid in touching {
            let unit = self.units.get_mut(&uid).expect("listed");
            let before = unit.entries.len();
            unit.entries.retain(|e| e.agent != agent);
            pending_fields += (before - unit.entries.len()) as u32;
            if unit.entries.is_empty() {
                self.units.remove(&uid);
            } else if let Some(g) = unit.group {
                self.events.push(Event::GroupTrimmed { group: g, agent });
            }
        }
        // Changes that waited for this agent's changes will never see them delivered.
        for unit in self.units.values_mut() {
            let mut released = Vec::new();
            unit.deps.retain(|d| {
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
                self.events.push(Event::DependencyReleased {
                    dependent: d.dependent,
                    dependency: d.on,
                });
            }
        }
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

/// Whether a unit being placed holds newer changes than the pending units it merges with
/// (a new atomic group) or older ones (a failed unit coming back).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recency {
    Newer,
    Older,
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

fn change_id(key: FieldKey, seq: u64) -> ChangeId {
    ChangeId {
        seq,
        agent: key.agent,
        block: key.block,
        field: key.field,
    }
}
