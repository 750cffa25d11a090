//! The queue: what game code calls. This file holds the `Queue` struct; its calls live in
//! the modules below, one job each.
//!
//! - `change.rs`, `event.rs`: the public types a caller hands in and gets back;
//! - `validate.rs`: the checks every call makes before it mutates anything;
//! - `apply.rs`: the generic change path (a change joins its field's pending unit);
//! - `npc.rs`: the NPC rules (health thresholds, state and combat, groups, tool results);
//! - `group.rs`: atomic groups and the caps they must fit;
//! - `units.rs`: the pending units' bookkeeping;
//! - `agents.rs`, `inspect.rs`: the agent registry, and read-only questions;
//! - `planner/` (the poll; `urgent.rs`, `wake.rs`, `build.rs`, `needless.rs` under it), `outcome.rs`, `decide.rs`, `slots.rs`, `letta.rs`, `state.rs`: see each.

mod absorb;
mod agents;
mod apply;
mod change;
mod decide;
mod event;
mod group;
mod inspect;
mod letta;
mod npc;
mod outcome;
mod pending;
mod planner;
mod slots;
mod state;
mod units;
mod validate;

use crate::backoff::Rng;
use crate::budget::Budget;
use crate::config::Config;
use crate::error::Error;
use crate::ids::{AgentId, RequestId, Sym};
use crate::metrics::Recorder;
use crate::symbols::Symbols;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

pub use absorb::{AbsorbTarget, Absorbable, Absorbed, GrantChange, KeptValue};
pub(crate) use apply::record_local;
pub use change::{Change, Priority};
pub use decide::Decision;
pub use event::Event;
use outcome::InFlightRequest;
pub use slots::Slot;
use state::{AgentState, FieldState};
pub(crate) use units::Recency;

/// The queue. See the crate documentation for an example.
pub struct Queue {
    pub(crate) cfg: Config,
    pub(crate) symbols: Symbols,
    pub(crate) agents: Vec<Option<AgentState>>,
    /// Backend id of every agent ever registered, removed ones included.
    pub(crate) agent_names: Vec<Sym>,
    pub(crate) agent_index: BTreeMap<Sym, AgentId>,
    /// The pending units and their indexes (their one owner).
    pub(crate) units: pending::Units,
    /// Agents that may have chat messages waiting: every agent that has some is here
    /// (`poll` drops the others), so `poll` need not look at every agent.
    pub(crate) chatting: BTreeSet<AgentId>,
    /// Agents that may have a decision sync requested, in the same way.
    pub(crate) syncing: BTreeSet<AgentId>,
    pub(crate) next_seq: u64,
    pub(crate) next_group: u64,
    pub(crate) next_request: u64,
    pub(crate) in_flight: BTreeMap<RequestId, InFlightRequest>,
    pub(crate) budget: Budget,
    pub(crate) rng: Rng,
    pub(crate) latest_now: f64,
    /// Routine batch schedule (set at the first poll).
    pub(crate) next_batch_at: Option<f64>,
    /// While a routine batch goes over several polls (`batch_requests_per_poll`): the
    /// changes it carries are those numbered below this (pending when it was first held).
    pub(crate) batch_cohort: Option<u64>,
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
    /// Fields whose pending unit may have stopped needing a send without a change of the
    /// field ([`Queue::suspect_stale`]); looked at again, and forgotten, by a poll that
    /// waits for the budget.
    pub(crate) stale_suspects: Vec<state::FieldKey>,
    /// Set by [`Queue::poll_everything`]: no poll takes a shortcut.
    pub(crate) scan_all: bool,
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
            units: pending::Units::default(),
            chatting: BTreeSet::new(),
            syncing: BTreeSet::new(),
            next_seq: 1,
            next_group: 1,
            next_request: 1,
            in_flight: BTreeMap::new(),
            latest_now: 0.0,
            next_batch_at: None,
            batch_cohort: None,
            paused_until: 0.0,
            last_urgent_at: None,
            busy_blocks: BTreeMap::new(),
            flushing: false,
            next_wake: 0.0,
            dirty: true,
            stale_suspects: Vec::new(),
            scan_all: false,
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
}
