//! `poll`: decides what goes out now, in which requests, in which order.
//!
//! Each poll, in this order: urgent requests (due critical changes and decision syncs,
//! with the agents' other pending fields riding along), inference requests (aggregated
//! chat), then batches (due high-priority changes, the routine batch, due retries). Each
//! request respects the size caps and the budget; atomic groups are never split and a
//! change never precedes its dependency.
//!
//! Filling requests (a build pass) is two steps: `plan` decides a whole pass reading the queue
//! only (later decisions of the pass see the earlier ones as done), then `commit` carries
//! the decisions out in the order they were made (units dropped, dependencies released,
//! units taken into requests) and `emit` sends the requests.

use super::outcome::{InFlightRequest, SentUnit};
use super::pending::OrderKey;
use super::state::{Dep, FieldKey, InFlightValue, Unit};
use super::{Priority, Queue};
use crate::budget::{Budget, Pool};
use crate::config::{Config, Target};
use crate::error::Error;
use crate::ids::{AgentId, RequestId, Seq, Sym, UnitId};
use crate::request::{Request, RequestKind, SentChange};
use crate::value::{json_string_bytes, Value};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

/// Upper bound of a request's JSON envelope (batch endpoint encoding, see README):
/// `{"request_id":N,"kind":"inference","changes":[]}` with N up to 20 digits is 67 bytes;
/// an inference request's `"agent_id":,"messages":[]` besides the id's string is 26 more.
pub(crate) const REQUEST_OVERHEAD_BYTES: usize = 128;
/// Upper bound of one change's JSON punctuation and keys, besides its strings and value:
/// `{"agent_id":,"block":,"field":,"value":,"seq":,"group":},` is 57 bytes, plus up to 20
/// digits each for `seq` and `group`.
const CHANGE_OVERHEAD_BYTES: usize = 97;
/// Upper bound of one chat message's punctuation and keys: `{"sender":,"text":},`.
const MESSAGE_OVERHEAD_BYTES: usize = 20;

/// Upper bound of one change's bytes in a batch endpoint body.
pub(crate) fn change_bytes(agent: &str, block: &str, field: &str, value: &Value) -> usize {
    change_bytes_escaped(
        json_string_bytes(agent),
        json_string_bytes(block),
        json_string_bytes(field),
        value,
    )
}

/// [`change_bytes`] from its names' escaped lengths ([`json_string_bytes`], which
/// [`crate::symbols::Symbols::json_bytes`] keeps per symbol so the planner measures a
/// change without reading its names' text).
fn change_bytes_escaped(agent: usize, block: usize, field: usize, value: &Value) -> usize {
    CHANGE_OVERHEAD_BYTES + 2 + agent + 2 + block + 2 + field + value.json_bytes()
}

/// Upper bound of one chat message's bytes in an inference body.
fn message_bytes(m: &crate::request::ChatMessage) -> usize {
    MESSAGE_OVERHEAD_BYTES + 2 + json_string_bytes(&m.sender) + 2 + json_string_bytes(&m.text)
}

/// One unit's changes as [`Queue::materialize`] finds them, with the agent-blocks they
/// write (in order of first appearance) and their bytes in a request. One per `plan`,
/// refilled for each unit, so measuring a unit allocates nothing.
#[derive(Default)]
struct Materialized {
    changes: Vec<SentChange>,
    blocks: Vec<(AgentId, Sym)>,
    bytes: usize,
}

/// The agent-blocks a request writes, as a sorted list: a request holds at most
/// `max_agent_blocks_per_request` of them, and units come mostly in agent order (one
/// past the last is answered without a search), so searching it and adding to it is
/// cheaper than a B-tree's nodes.
#[derive(Default)]
struct AgentBlocks(Vec<(AgentId, Sym)>);

impl AgentBlocks {
    fn contains(&self, b: &(AgentId, Sym)) -> bool {
        self.0.last().is_some_and(|last| last >= b) && self.0.binary_search(b).is_ok()
    }

    fn insert(&mut self, b: (AgentId, Sym)) {
        if self.0.last().is_none_or(|last| *last < b) {
            self.0.push(b);
        } else if let Err(at) = self.0.binary_search(&b) {
            self.0.insert(at, b);
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn iter(&self) -> impl Iterator<Item = &(AgentId, Sym)> {
        self.0.iter()
    }
}

/// A request being filled.
#[derive(Default)]
struct Draft {
    changes: Vec<SentChange>,
    units: Vec<SentUnit>,
    agent_blocks: AgentBlocks,
    bytes: usize,
    /// The sequence each field goes with in this request, for the dependencies of units
    /// taken later; recorded only when some candidate has dependencies.
    fields: BTreeMap<FieldKey, Seq>,
    /// Units the plan takes into it (`commit` makes room for their `units` at once).
    taken: usize,
}

/// The units one build pass may take, in the order it takes them, each with its need;
/// and whether any of them has dependencies (without any, the pass needs no dependency
/// bookkeeping: no promotion, no draft's fields, no cycle to break).
/// Each unit comes with its pending state, borrowed from the queue for the pass (`plan`
/// reads the queue only), so planning looks no unit up again.
#[derive(Default)]
struct Candidates<'a> {
    list: Vec<(UnitId, &'a Unit, Need)>,
    with_deps: bool,
}

impl<'a> Candidates<'a> {
    fn push(&mut self, id: UnitId, unit: &'a Unit, need: Need) {
        self.with_deps |= !unit.deps.is_empty();
        self.list.push((id, unit, need));
    }
}

/// The agents an urgent request is for now ([`Queue::urgent_agents`]), sorted, each once:
/// found per poll (a poll waiting for the budget finds them every frame of a fight), so a
/// vector sorted once rather than a tree built entry by entry. With the earliest retry
/// backoff of a critical unit that ends after now, noted on the way (the urgent pass's
/// wake, [`Queue::wake_at_backoffs`], without looking at the critical units again).
struct Urgent {
    agents: Vec<AgentId>,
    critical_backoff: f64,
}

impl Urgent {
    fn contains(&self, a: &AgentId) -> bool {
        self.agents.binary_search(a).is_ok()
    }

    fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    fn iter(&self) -> core::slice::Iter<'_, AgentId> {
        self.agents.iter()
    }
}

/// Whether a unit may open a request of its own or only fill one for free.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Mandatory,
    RideAlong,
}

/// What one `poll` works with: its time, its mode, and the earliest time something may
/// be due that it found so far (the next wake).
struct Tick {
    now: f64,
    flushing: bool,
    paused: bool,
    wake: f64,
    /// The earliest end of a critical unit's debounce after `now`: a wake that waits for
    /// the next reserved call too, asked once the poll has spent what it spends.
    critical_ready: f64,
}

/// What the budget allows one build pass, asked before it plans.
struct Allowance {
    /// Calls the pool has now.
    remaining: u32,
    /// A unit that costs more calls than the pacing burst (a group of many agent-blocks
    /// on Letta's API) could never go by the tokens alone: it may go with a full bucket
    /// if the rolling window has room, and pacing then recovers from the debt.
    burst: u32,
    burst_full: bool,
    window_room: u32,
    /// Requests the pass may open ([`Config::batch_requests_per_poll`] for batches); one
    /// more needed holds the rest back as the budget does, until the next poll.
    requests: usize,
}

impl Allowance {
    /// What the budget allows a pass taking from `pool` at `now`. The budget's queries
    /// bring its window up to `now`: asked once per pass, before planning. (Fields of the
    /// queue, not the queue: the candidates hold its pending units meanwhile.)
    fn at(budget: &mut Budget, cfg: &Config, now: f64, pool: Pool) -> Allowance {
        Allowance {
            remaining: budget.available(now, pool),
            burst: cfg.budget_burst,
            burst_full: budget.burst_full(now),
            window_room: budget.window_available(now, pool),
            requests: usize::MAX,
        }
    }
}

/// One build pass being decided ([`Queue::consider`] per candidate): the plan so far,
/// what the allowance still lets it spend, the caps, and one unit's changes at a time
/// (reused for every unit).
struct Filling {
    p: Plan,
    remaining: u32,
    start_remaining: u32,
    burst: u32,
    burst_full: bool,
    window_room: u32,
    requests: usize,
    max_blocks: usize,
    max_bytes: usize,
    /// Letta's API: each agent-block a request writes costs a call.
    per_block: bool,
    /// Some candidate has dependencies (the drafts then record their fields).
    with_deps: bool,
    scratch: Materialized,
}

impl Filling {
    fn new(cfg: &Config, allowance: Allowance, with_deps: bool) -> Filling {
        Filling {
            p: Plan::default(),
            remaining: allowance.remaining,
            start_remaining: allowance.remaining,
            burst: allowance.burst,
            burst_full: allowance.burst_full,
            window_room: allowance.window_room,
            requests: allowance.requests,
            max_blocks: cfg.max_agent_blocks_per_request as usize,
            max_bytes: cfg.max_request_bytes as usize,
            per_block: cfg.target == Target::LettaApi,
            with_deps,
            scratch: Materialized::default(),
        }
    }

    /// Whether a unit riding along may join `d` only with agent-blocks `d` writes already:
    /// a new one costs a call (Letta's API) or `d` has all it may have. The one owner of
    /// that rule, for [`Queue::may_ride`] and the urgent pass that skips the units it
    /// rules out ([`Queue::plan_urgent`]).
    fn closed(&self, d: &Draft) -> bool {
        self.closing()(d)
    }

    /// [`Filling::closed`] as a function of the request alone (no borrow of the pass).
    fn closing(&self) -> impl Fn(&Draft) -> bool + Copy {
        let (per_block, max_blocks) = (self.per_block, self.max_blocks);
        move |d: &Draft| per_block || d.agent_blocks.len() >= max_blocks
    }
}

/// One decision of [`Queue::plan`], carried out by [`Queue::commit`].
enum Step {
    /// A lone unit whose field needs no send any more: dropped, its field settled.
    Drop(UnitId),
    /// A dependency of a unit, released to break a cycle.
    Release(UnitId, Dep),
    /// A unit taken into request `draft`, with the number of its changes (the draft's
    /// changes it appended, after those of the units taken into it before).
    Take {
        draft: usize,
        unit: UnitId,
        changes: u32,
    },
}

/// What `plan` decided for one pass, before any of it happened: the requests, the steps
/// in the order they were decided, and what later decisions of the pass must see as done.
#[derive(Default)]
struct Plan {
    drafts: Vec<Draft>,
    steps: Vec<Step>,
    dropped: BTreeSet<UnitId>,
    released: Vec<(UnitId, Dep)>,
    budget_blocked: bool,
    /// A request more was needed than the pass may open (`Allowance::requests`).
    capped: bool,
}

impl Plan {
    /// A unit's dependencies still binding: those the plan has not released.
    fn deps<'a>(&'a self, uid: UnitId, unit: &'a Unit) -> impl Iterator<Item = &'a Dep> + 'a {
        unit.deps
            .iter()
            .filter(move |d| !self.released.contains(&(uid, **d)))
    }
}

/// The requests of a committed plan, and whether the budget or the cap on requests held
/// some units back.
struct Built {
    drafts: Vec<Draft>,
    budget_blocked: bool,
    capped: bool,
}

impl Queue {
    /// Emits what is due at `now`. Call it every frame (Heartbeat); it returns at once
    /// when nothing can be due.
    pub fn poll(&mut self, now: f64) -> Result<Vec<Request>, Error> {
        Ok(self.poll_unless(now, false)?.unwrap_or_default())
    }

    /// [`Queue::poll`], except that a poll about to build a request (an urgent one, a
    /// batch) stops first and returns `None`, having changed nothing a poll depends on.
    /// For a facade keeping changes outside the core ([`Queue::absorb`]): they must be
    /// taken in before a request is built (it may carry their fields), but a poll that
    /// builds nothing does not need them (kept changes move no unit, no due time, no
    /// size bound: what a poll decides does not depend on them), so the facade takes
    /// them in only when this returns `None`, then polls.
    pub fn poll_before_build(&mut self, now: f64) -> Result<Option<Vec<Request>>, Error> {
        self.poll_unless(now, true)
    }

    /// A poll that looks at everything, whatever the wake says and without any shortcut
    /// (every pass looks at every unit): the oracle the tests compare [`Queue::poll`] with
    /// (a poll may skip work only when this would do nothing either). Not for use in a
    /// game: it costs a full scan every call.
    #[doc(hidden)]
    pub fn poll_everything(&mut self, now: f64) -> Result<Vec<Request>, Error> {
        self.check_time("now", now)?;
        self.dirty = true;
        self.scan_all = true;
        let out = self.poll(now);
        self.scan_all = false;
        out
    }

    fn poll_unless(
        &mut self,
        now: f64,
        stop_before_build: bool,
    ) -> Result<Option<Vec<Request>>, Error> {
        self.check_time("now", now)?;
        self.observe_time(now);
        let mut out = Vec::new();
        if !self.dirty && now < self.next_wake {
            return Ok(Some(out));
        }
        self.dirty = false;
        // A `Retry-After` holds routine batches and inference; critical changes and
        // decision syncs still go, one urgent request per combat debounce window at most.
        let paused = now < self.paused_until;
        let interval = self.cfg.batch_interval_s;
        let next_batch_at = *self.next_batch_at.get_or_insert(now + interval);
        let routine_due = (now >= next_batch_at || self.flushing) && !paused;
        // During a pause, everything held is looked at again when it ends. A routine batch
        // due now sets its own wake below (sent, capped, or held by the budget).
        let mut t = Tick {
            now,
            flushing: self.flushing,
            paused,
            wake: if paused {
                self.paused_until
            } else if routine_due {
                f64::INFINITY
            } else {
                next_batch_at
            },
            critical_ready: f64::INFINITY,
        };
        let chat_due = self.chat_due(&mut t);
        let urgent = self.urgent_agents(&mut t, &chat_due)?;
        // Everything so far is bookkeeping a second poll at `now` repeats to the same
        // effect; nothing has been built or emitted yet.
        if stop_before_build && self.may_build(now, &urgent, routine_due, paused) {
            self.dirty = true;
            return Ok(None);
        }
        let mut budget_blocked_reserved = self.send_urgent(&mut t, urgent, &mut out);
        // Inference, one request per agent.
        for a in chat_due {
            if !self.is_fresh(a, now)? {
                // Its freshness sync is not acknowledged yet (in flight, failed, waiting
                // for a dependency or the budget): the agent would answer on stale memory.
                // The messages wait; the sync's ack wakes the queue, and so does the end
                // of combat mode, which raises the threshold (tests/wake.rs found it).
                if let Some(end) = self.agent_state(a).and_then(|s| s.combat_ends_at(now)) {
                    t.wake = t.wake.min(end);
                }
                continue;
            }
            if self.budget.available(now, Pool::Reserved) < 1 {
                budget_blocked_reserved = true;
                break;
            }
            self.emit_inference(now, a, &mut out);
            if let Some(due) = self.agent_state(a).and_then(|s| s.chat.due_at(&self.cfg)) {
                t.wake = t.wake.min(due);
            }
        }

        // Batches: due high-priority changes and retries, and the routine batch.
        let (budget_blocked_routine, capped) = self.send_batches(&mut t, routine_due, &mut out);
        let mut wake = t.wake;
        if capped {
            // The rest of the due batch goes at the next poll.
            wake = wake.min(now);
        } else if routine_due && !budget_blocked_routine {
            let at = now + interval;
            self.next_batch_at = Some(at);
            self.batch_cohort = None;
            wake = wake.min(at);
        }
        if budget_blocked_routine {
            // A routine batch held by the budget waits for its next call, not for its
            // time, which has passed (each poll until then found the budget holding it).
            wake = wake.min(self.budget.next_free(now, Pool::Routine));
        }
        if budget_blocked_reserved {
            wake = wake.min(self.budget.next_free(now, Pool::Reserved));
        }
        if t.critical_ready < wake {
            // A critical unit's debounce ending makes its agents urgent: a poll then can
            // only send them with a reserved call.
            wake = wake.min(match self.first_call(now) {
                Some(call) => t.critical_ready.max(call),
                None => t.critical_ready,
            });
        }
        if !out.is_empty() && self.units.any_deps() {
            // What this poll sent (in flight, its blocks busy on Letta's API) can let the
            // next poll release a dependency with no call free (tests/wake.rs, seed 978):
            // it looks at everything.
            wake = now;
        }
        self.next_wake = wake;
        Ok(Some(out))
    }

    /// The agents whose chat must flush now, longest waiting first: the reserve is shared
    /// fairly, whatever the agents' order. Agents with nothing waiting leave `chatting`.
    fn chat_due(&mut self, t: &mut Tick) -> Vec<AgentId> {
        let (now, flushing, paused) = (t.now, t.flushing, t.paused);
        let mut chat_due: Vec<(f64, AgentId)> = Vec::new();
        // One inference request per agent at a time: a second one could overtake a first
        // that fails and is retried, and the agent would read its messages out of order.
        // The ack or fail of the one in flight wakes the queue again.
        let inferring: BTreeSet<AgentId> = self
            .in_flight
            .values()
            .filter_map(|r| r.inference.as_ref().map(|i| i.0))
            .collect();
        let mut quiet: Vec<AgentId> = Vec::new();
        for &id in &self.chatting {
            let Some(a) = self.agent_state(id).filter(|a| !a.chat.messages.is_empty()) else {
                quiet.push(id);
                continue;
            };
            if paused || inferring.contains(&id) {
                continue;
            }
            if let Some(due) = a.chat.due_at(&self.cfg) {
                if due <= now || flushing {
                    let waiting_since = a.chat.messages.first().map_or(due, |m| m.at);
                    chat_due.push((waiting_since, id));
                } else {
                    t.wake = t.wake.min(due);
                }
            }
        }
        for id in quiet {
            self.chatting.remove(&id);
        }
        chat_due.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        chat_due.into_iter().map(|(_, a)| a).collect()
    }

    /// The agents an urgent request is for now: due critical changes, decision syncs, and
    /// syncs ahead of inference (none during a pause within the combat debounce window
    /// of the last urgent request). Agents no longer asking for a sync leave `syncing`.
    fn urgent_agents(&mut self, t: &mut Tick, chat_due: &[AgentId]) -> Result<Urgent, Error> {
        let (now, flushing, paused) = (t.now, t.flushing, t.paused);
        let mut urgent: Vec<AgentId> = Vec::new();
        let mut critical_backoff = f64::INFINITY;
        for uid in self.units.critical() {
            let u = &self.units[&uid];
            if u.not_before > now {
                critical_backoff = critical_backoff.min(u.not_before);
            }
            let ready = self.critical_ready(u, now);
            if ready <= now || flushing {
                for e in &u.entries {
                    urgent.push(e.agent);
                }
            } else {
                t.critical_ready = t.critical_ready.min(ready);
            }
        }
        let mut settled: Vec<AgentId> = Vec::new();
        for &a in &self.syncing {
            if self.agent_state(a).is_some_and(|s| s.sync_requested) {
                urgent.push(a);
            } else {
                settled.push(a);
            }
        }
        for a in settled {
            self.syncing.remove(&a);
        }
        for a in chat_due {
            if !self.is_fresh(*a, now)? {
                urgent.push(*a);
            }
        }
        if paused && !urgent.is_empty() {
            if let Some(last) = self.last_urgent_at {
                let next = last + self.cfg.combat_debounce_s;
                if now < next {
                    t.wake = t.wake.min(next);
                    urgent.clear();
                }
            }
        }
        urgent.sort_unstable();
        urgent.dedup();
        Ok(Urgent {
            agents: urgent,
            critical_backoff,
        })
    }

    /// The urgent requests for `urgent`; returns whether the budget held some back.
    fn send_urgent(&mut self, t: &mut Tick, urgent: Urgent, out: &mut Vec<Request>) -> bool {
        if urgent.is_empty() {
            return false;
        }
        let (now, flushing) = (t.now, t.flushing);
        let allowance = Allowance::at(&mut self.budget, &self.cfg, now, Pool::Reserved);
        let built = match self.held_by_budget(t, &urgent, allowance.remaining) {
            Some(budget_blocked) => Built {
                drafts: Vec::new(),
                budget_blocked,
                capped: false,
            },
            None => {
                // Other agents' pending changes fill the urgent requests where that costs
                // no call (the batch endpoint's request costs one call whatever it holds):
                // it keeps every agent fresher for free.
                let plan = if flushing || self.scan_all || self.units.any_deps() {
                    let mut candidates = Candidates::default();
                    for (id, u) in self.units.in_order() {
                        if let Some(need) = urgent_need(t, u, &urgent) {
                            candidates.push(id, u, need);
                        }
                    }
                    self.plan(allowance, candidates)
                } else {
                    self.plan_urgent(t, allowance, &urgent)
                };
                self.commit(plan)
            }
        };
        self.emit(now, RequestKind::Urgent, built.drafts, &urgent.agents, out);
        for a in urgent.agents {
            if !self.units.any_touching(a) {
                if let Some(s) = self.agent_state_mut(a) {
                    s.sync_requested = false;
                }
            }
        }
        built.budget_blocked
    }

    /// What `plan` would decide for [`Queue::send_urgent`]'s candidates when it can open no
    /// request (the batch endpoint, no reserved call left), found without looking at every
    /// pending unit: a poll that waits for the budget comes every frame in a fight. `plan`
    /// would then only drop lone units that need no send (none, unless a suspect is stale),
    /// release dependencies (none without any) and find the budget holding back a unit that
    /// must go (one touching an urgent agent, past its backoff): the returned value. The
    /// wake the candidates' loop lowers to each unit's `not_before` comes from the backoff
    /// index and the critical units: a unit has a `not_before` only after a failed send
    /// (`fail` sets it with `attempts`, [`super::state::Unit::absorb`] keeps both), in the
    /// backoff index unless critical. `None`: look at the units (Letta's API skips units
    /// whose blocks are busy, which needs their blocks; a flush ignores backoffs).
    fn held_by_budget(&mut self, t: &mut Tick, urgent: &Urgent, remaining: u32) -> Option<bool> {
        if remaining > 0
            || t.flushing
            || self.scan_all
            || self.cfg.target == Target::LettaApi
            || self.units.any_deps()
        {
            return None;
        }
        let now = t.now;
        self.wake_at_backoffs(t, urgent);
        Some(urgent.iter().any(|a| {
            self.units
                .touching(*a)
                .any(|id| self.units[&id].not_before <= now)
        }))
    }

    /// When a poll can first send `agent`'s units, for a change or a decision that makes
    /// the agent urgent (a ready critical unit, a decision sync), changes one that is, or
    /// moves its combat mode (when its critical units are due): the next reserved call
    /// (now if one is free, [`Queue::first_call`]), which the wake moves to instead of the
    /// queue being made dirty, and a unit's due time when that is later (in a fight, hits,
    /// combat states and decisions come every frame and the budget lets an urgent request
    /// go about every tenth: each made the next poll look at everything, to find the
    /// budget holding the agents back). The one owner of that rule (`decide`,
    /// [`Queue::note_due`]). Until that call a poll builds nothing, so a poll before it
    /// could only note the agent as urgent. `None` (the queue is made dirty, or the wake
    /// moves to the unit's due time) unless:
    ///
    /// - no pending unit has dependencies (a poll releases some);
    /// - the agent has a pending unit: a poll clears the decision sync of an urgent agent
    ///   with none (`send_urgent`), which a later `decide` counts again.
    ///
    /// What else a change moves stays with its caller (chat waiting on the agent, no
    /// routine batch scheduled yet: `wake_after`).
    pub(crate) fn urgent_wake(&mut self, now: f64, agent: AgentId) -> Option<f64> {
        if !self.units.any_touching(agent) {
            return None;
        }
        self.first_call(now)
    }

    /// The first time a poll can send anything: the reserve's next call (now if one is
    /// free; the routine share draws on the same calls and pacing, and no request goes
    /// without a call). Before it a poll builds nothing, and changes nothing either unless
    /// a pending unit has dependencies (a poll releases some to break a cycle): `None`
    /// then. What else a poll does at a time (chat, a decision sync of an agent with no
    /// pending unit, a pause) stays with the callers.
    fn first_call(&mut self, now: f64) -> Option<f64> {
        if self.units.any_deps() {
            return None;
        }
        Some(self.budget.next_free(now, Pool::Reserved))
    }

    /// The wake [`urgent_need`] sets when it looks at every pending unit (not flushing):
    /// the earliest `not_before` after `now`, from the backoff index and the critical units
    /// (`urgent_agents` noted theirs). A unit has a `not_before` only after a failed send
    /// (`fail` sets it with `attempts`, [`super::state::Unit::absorb`] keeps both), in the
    /// backoff index unless critical.
    fn wake_at_backoffs(&self, t: &mut Tick, urgent: &Urgent) {
        if let Some(end) = self.units.next_backoff_after(t.now) {
            t.wake = t.wake.min(end);
        }
        t.wake = t.wake.min(urgent.critical_backoff);
    }

    /// [`Queue::plan`] of the urgent pass (every pending unit a candidate, in build order,
    /// as [`urgent_need`] says), deciding the same while looking at few units, for a pass
    /// whose units have no dependencies (not flushing; the oracle poll takes the full
    /// walk). At 1,000 pending units an urgent request holds about a hundred: the rest
    /// were looked at for nothing, in every pass. What it skips, and why `plan` would
    /// place none of it:
    ///
    /// - ride-along units while no request is open (`may_ride`), and while the last one
    ///   is closed ([`Filling::closed`]) those not touching one of its agents: a unit
    ///   rides then only if each agent-block it writes is in the request already (every
    ///   field of a pending unit has a local value). So where the last request is
    ///   closed the pass goes to the next unit touching an urgent agent or one of the
    ///   request's agents, and walks every unit again only once a request is open;
    /// - a lone unit needing no send, which `plan` drops: none is pending between calls
    ///   (the call that makes one so drops it, [`Queue::drop_stale_suspects`]);
    /// - the wake of a unit's backoff: [`Queue::wake_at_backoffs`];
    /// - the passes after the first: without dependencies every unit that must go was
    ///   placed in the first pass (or the budget or the cap on requests held it back,
    ///   and then there is no second pass), so a second pass only lets ride-along units
    ///   join the last request, and only those looked at before it was opened can: a
    ///   unit after that one failed to join it while it was smaller (fewer agent-blocks,
    ///   fewer bytes) and fails again. The second pass looks at those (where the last
    ///   request is closed, only those touching its agents); whatever it leaves, it
    ///   left against a smaller request, so a third pass would place nothing.
    fn plan_urgent(&self, t: &mut Tick, allowance: Allowance, urgent: &Urgent) -> Plan {
        self.wake_at_backoffs(t, urgent);
        let mut f = Filling::new(&self.cfg, allowance, false);
        // What the first pass must look at wherever it is, in build order: every unit
        // touching an urgent agent, and (added as the last request closes) those touching
        // its agents; those before `seen` are behind the pass (a unit is added only ahead
        // of it, so `seen` stays right).
        let mut visit: Vec<OrderKey> = Vec::new();
        for a in urgent.iter() {
            for id in self.units.touching(*a) {
                visit.push(self.units.with_key(id).0);
            }
        }
        visit.sort_unstable();
        visit.dedup();
        let mut seen = 0;
        // The last request's agents whose units `visit` holds (when it had `covered_blocks`
        // agent-blocks: a request's agent-blocks only grow), and the unit that opened it.
        let mut covered: Vec<AgentId> = Vec::new();
        let mut covered_blocks = 0;
        let mut opened_by: Option<OrderKey> = None;
        let mut at: Option<OrderKey> = None;
        let mut walk = None;
        let mut progress = false;
        // The units the first pass placed (taken or dropped: every step of this plan), in
        // build order: the pass looks at units in build order (`at` only grows), so pushing
        // each as it is placed keeps the list sorted, for the second pass to search.
        let mut placed: Vec<OrderKey> = Vec::new();
        loop {
            let open = f.p.drafts.last().is_some_and(|d| !f.closed(d));
            let next = if open {
                walk.get_or_insert_with(|| self.units.in_order_after(at))
                    .next()
            } else {
                walk = None;
                while at.is_some_and(|at| visit.get(seen).is_some_and(|k| *k <= at)) {
                    seen += 1;
                }
                visit.get(seen).map(|k| (*k, &self.units[&k.2]))
            };
            let Some((key, unit)) = next else { break };
            at = Some(key);
            let Some(need) = urgent_need(t, unit, urgent) else {
                continue;
            };
            let drafts = f.p.drafts.len();
            if !self.consider_one(&mut f, key.2, unit, need) {
                continue;
            }
            placed.push(key);
            progress = true;
            if f.p.drafts.len() > drafts {
                opened_by = Some(key);
                covered.clear();
                covered_blocks = 0;
            }
            if let Some(d) =
                f.p.drafts
                    .last()
                    .filter(|d| d.agent_blocks.len() > covered_blocks && f.closed(d))
            {
                covered_blocks = d.agent_blocks.len();
                for (a, _) in d.agent_blocks.iter() {
                    let Err(i) = covered.binary_search(a) else {
                        continue;
                    };
                    covered.insert(i, *a);
                    if self.only_unit_placed(*a) {
                        continue;
                    }
                    for id in self.units.touching(*a) {
                        let k = self.units.with_key(id).0;
                        if k > key {
                            if let Err(i) = visit.binary_search(&k) {
                                visit.insert(i, k);
                            }
                        }
                    }
                }
            }
        }
        if f.p.budget_blocked || f.p.capped || !progress {
            return f.p;
        }
        let (Some(d), Some(end)) = (f.p.drafts.last(), opened_by) else {
            return f.p;
        };
        // The second pass: units before the one that opened the last request, not placed.
        if f.closed(d) {
            let mut keys: Vec<OrderKey> = Vec::new();
            let mut last = None;
            for (a, _) in d.agent_blocks.iter() {
                if last.replace(*a) == Some(*a) || self.only_unit_placed(*a) {
                    continue;
                }
                for id in self.units.touching(*a) {
                    let k = self.units.with_key(id).0;
                    if k < end && placed.binary_search(&k).is_err() {
                        keys.push(k);
                    }
                }
            }
            keys.sort_unstable();
            keys.dedup();
            for k in keys {
                let unit = &self.units[&k.2];
                if let Some(need) = urgent_need(t, unit, urgent) {
                    self.consider_one(&mut f, k.2, unit, need);
                }
            }
        } else {
            // Both in build order: the placed units are skipped by walking them alongside.
            let mut next_placed = placed.iter().peekable();
            for (k, unit) in self.units.in_order_after(None) {
                if k >= end {
                    break;
                }
                while next_placed.next_if(|p| **p < k).is_some() {}
                if next_placed.next_if(|p| **p == k).is_some() {
                    continue;
                }
                if let Some(need) = urgent_need(t, unit, urgent) {
                    self.consider_one(&mut f, k.2, unit, need);
                }
            }
        }
        f.p
    }

    /// Whether `agent`, an agent of the urgent pass's last request, has one pending unit
    /// only: then that unit is the one the pass placed in the request (an agent-block gets
    /// into a request only with a unit placed there that writes it, a unit the pass reads
    /// from the pending ones), so it is behind the pass and placed: neither the first pass
    /// (units ahead) nor the second (units not placed) needs its place in the build order,
    /// a search of the unit map per agent of a full request.
    fn only_unit_placed(&self, agent: AgentId) -> bool {
        self.units.touching(agent).nth(1).is_none()
    }

    /// [`Queue::consider`] out of line, for the urgent pass (one more copy of it in the code).
    #[inline(never)]
    fn consider_one(&self, f: &mut Filling, uid: UnitId, unit: &Unit, need: Need) -> bool {
        self.consider(f, uid, unit, need, usize::MAX)
    }

    /// A field's pending unit may have stopped needing a send although the field did not
    /// change: its acknowledged value moved (a confirmation of another value, a block read
    /// from Letta), or the doubt of a failed send was settled (the same seq sent again and
    /// acknowledged: while in doubt every value needs a send). The call that found it
    /// drops such units before it returns ([`Queue::drop_stale_suspects`]).
    pub(crate) fn suspect_stale(&mut self, key: FieldKey) {
        self.stale_suspects.push(key);
    }

    /// Drops the lone pending units of the suspects' fields that need no send any more, as
    /// a change making its field's unit needless does: so between calls no lone pending
    /// unit needs no send, and a poll waiting for the budget need not look for one.
    pub(crate) fn drop_stale_suspects(&mut self) {
        for key in core::mem::take(&mut self.stale_suspects) {
            let Some(uid) = self.field(key).and_then(|f| f.unit) else {
                continue;
            };
            if self.units.get(uid).is_some_and(|u| self.is_needless(u)) {
                self.drop_needless(uid);
                self.rec.m.coalesced += 1;
            }
        }
    }

    /// Whether a pending unit is a lone field (no atomic group: a group stays whole) whose
    /// value needs no send any more: the one rule for `plan`'s drop and the suspects'.
    fn is_needless(&self, unit: &Unit) -> bool {
        unit.group.is_none() && !self.field(unit.entries[0]).is_some_and(|f| f.needs_send())
    }

    /// Drops a lone pending unit whose field needs no send any more, settling the field.
    /// Its dependencies ride with the value in flight the field now equals, if any (that
    /// send delivers a seq above its changes': it must not overtake what they wait for).
    /// A unit gone may free a dependent: the next poll looks at everything. The one owner
    /// of that step, for a change that makes its field's unit needless (`apply_key`), a
    /// call that moves what the backend holds (`drop_stale_suspects`) and `plan`.
    pub(crate) fn drop_needless(&mut self, uid: UnitId) {
        if let Some(unit) = self.detach_unit(uid) {
            self.drop_detached_needless(unit);
        }
    }

    /// [`Queue::drop_needless`] of a unit already detached (`commit` detaches a pass's
    /// units together).
    fn drop_detached_needless(&mut self, unit: Unit) {
        let key = unit.entries[0];
        if !unit.deps.is_empty() {
            self.attach_deps_in_flight(key, unit.deps);
        }
        self.settle(key);
        self.dirty = true;
    }

    /// The batches: due high-priority changes and retries, and the routine batch when
    /// `routine_due`. Returns whether the budget held some back, and whether the cap on a
    /// poll's batch requests did ([`Config::batch_requests_per_poll`]): the rest then goes
    /// at the next polls, and the routine batch is the units pending when it was first
    /// held so (`batch_cohort`); units started since only ride along, or a batch of agents
    /// changing every frame would never end.
    fn send_batches(
        &mut self,
        t: &mut Tick,
        routine_due: bool,
        out: &mut Vec<Request>,
    ) -> (bool, bool) {
        let (now, flushing, paused) = (t.now, t.flushing, t.paused);
        let cohort = if flushing { None } else { self.batch_cohort };
        let in_batch = |u: &Unit| routine_due && cohort.is_none_or(|c| u.order < c);
        let seq_before = self.next_seq;
        let mut candidates = Candidates::default();
        let mut any_mandatory = false;
        // Without the routine batch only units due alone open a batch: a high-priority
        // unit past its delay or a retry past its backoff. The indexes say whether there is
        // one, and the wake the loop below would set otherwise, without looking at every
        // unit.
        let first_high = self.units.first_high_due(self.cfg.high_priority_delay_s);
        let idle = !self.batches_open(now, routine_due, false);
        if idle && !paused {
            t.wake = t.wake.min(first_high.unwrap_or(f64::INFINITY));
            t.wake = t
                .wake
                .min(self.units.next_backoff_after(now).unwrap_or(f64::INFINITY));
        }
        for (id, u) in self.units.in_order() {
            if paused || idle {
                break;
            }
            if u.priority == Priority::Critical {
                continue;
            }
            if u.not_before > now && !flushing {
                t.wake = t.wake.min(u.not_before);
                continue;
            }
            let due_alone = if u.attempts > 0 {
                Some(u.not_before)
            } else if u.priority == Priority::High {
                u.high_since.map(|t| t + self.cfg.high_priority_delay_s)
            } else {
                None
            };
            let need = match due_alone {
                Some(due) if due <= now => Need::Mandatory,
                Some(due) => {
                    t.wake = t.wake.min(due);
                    if in_batch(u) {
                        Need::Mandatory
                    } else {
                        Need::RideAlong
                    }
                }
                None if in_batch(u) => Need::Mandatory,
                None => Need::RideAlong,
            };
            any_mandatory |= need == Need::Mandatory;
            candidates.push(id, u, need);
        }
        let (mut budget_blocked_routine, mut capped) = (false, false);
        if any_mandatory {
            let mut allowance = Allowance::at(&mut self.budget, &self.cfg, now, Pool::Routine);
            if !flushing {
                allowance.requests = self.cfg.batch_requests_per_poll as usize;
            }
            let plan = self.plan(allowance, candidates);
            let built = self.commit(plan);
            budget_blocked_routine = built.budget_blocked;
            capped = built.capped;
            if capped && routine_due && self.batch_cohort.is_none() {
                self.batch_cohort = Some(seq_before);
            }
            self.emit(now, RequestKind::Batch, built.drafts, &[], out);
        }
        (budget_blocked_routine, capped)
    }

    /// Whether this poll may build a request: urgent agents or open batches, with a call
    /// left in their pool (with none, `plan` opens no request: a unit bigger than the
    /// pacing burst may go on a full bucket, but then the bucket is not what is empty).
    fn may_build(&mut self, now: f64, urgent: &Urgent, routine_due: bool, paused: bool) -> bool {
        (!urgent.is_empty() && self.budget.available(now, Pool::Reserved) >= 1)
            || (self.batches_open(now, routine_due, paused)
                && self.budget.available(now, Pool::Routine) >= 1)
    }

    /// Whether `send_batches` looks at the units at all (and may build a batch): the
    /// routine batch is due, a high-priority unit is past its delay, or a retry past its
    /// backoff; never during a pause.
    fn batches_open(&self, now: f64, routine_due: bool, paused: bool) -> bool {
        let first_high = self.units.first_high_due(self.cfg.high_priority_delay_s);
        !paused
            && (routine_due || first_high.is_some_and(|t| t <= now) || self.units.retry_due(now))
    }

    /// Emits everything pending at `now`, whatever its schedule: routine changes without
    /// waiting for the batch interval or the high-priority delay, critical changes without
    /// their debounce, retries without their backoff, chat without its window. The budget
    /// and a `Retry-After` pause still hold (call it again until [`Queue::is_idle`]). For
    /// a server shutting down (Roblox's `game:BindToClose`).
    pub fn flush(&mut self, now: f64) -> Result<Vec<Request>, Error> {
        self.check_time("now", now)?;
        self.dirty = true;
        self.flushing = true;
        let out = self.poll(now);
        self.flushing = false;
        // What the flush could not send (budget, pause) is looked at again at the next
        // poll, on its own schedule.
        self.dirty = true;
        out
    }

    /// Decides what a build pass does, filling requests from `candidates` (given in
    /// priority then change order, the order of [`super::pending::Units::in_order`])
    /// within the caps and the `allowance`, without changing the queue ([`Queue::commit`]
    /// carries it out). Ride-along units only fill
    /// requests that are opened anyway, and only where they cost no extra call. A later
    /// decision of the pass sees the earlier ones as done: the units dropped or taken
    /// are no longer candidates, a dropped unit no longer holds its field, a released
    /// dependency no longer binds.
    fn plan(&self, allowance: Allowance, candidates: Candidates<'_>) -> Plan {
        let Candidates {
            list: mut candidates,
            with_deps,
        } = candidates;
        if with_deps {
            self.promote_dependencies(&mut candidates);
        }
        let mut f = Filling::new(&self.cfg, allowance, with_deps);
        // Per candidate (same index): decided in this pass (taken, dropped or gone).
        let mut placed = alloc::vec![false; candidates.len()];
        loop {
            let mut progress = false;
            for (i, &(uid, unit, need)) in candidates.iter().enumerate() {
                if placed[i] {
                    continue;
                }
                if self.consider(&mut f, uid, unit, need, candidates.len() - i) {
                    placed[i] = true;
                    progress = true;
                }
            }
            if f.p.budget_blocked || f.p.capped {
                break;
            }
            if progress {
                continue;
            }
            // Without dependencies there is no cycle to break.
            if !with_deps {
                break;
            }
            let Some((owner, dep)) = self.dependency_to_release(&candidates, &placed, &f.p) else {
                break;
            };
            f.p.released.push((owner, dep));
            f.p.steps.push(Step::Release(owner, dep));
        }
        f.p
    }

    /// One candidate of a build pass looked at (`plan`'s step, the one owner of where a
    /// unit goes): dropped when it needs no send, taken into the current request or a new
    /// one, or left (`false`) for a later pass or poll. `left` bounds the candidates still
    /// to come, this one included (a new request's room for changes).
    ///
    /// Inlined into `plan`'s loop (the routine batch looks at every unit); the urgent pass
    /// calls [`Queue::consider_one`].
    #[inline(always)]
    fn consider(&self, f: &mut Filling, uid: UnitId, unit: &Unit, need: Need, left: usize) -> bool {
        // A lone field whose value needs no send any more: drop it.
        if self.is_needless(unit) {
            f.p.dropped.insert(uid);
            f.p.steps.push(Step::Drop(uid));
            return true;
        }
        // Whatever the current request satisfies is a superset of what a new one
        // would: a unit still waiting for a dependency is skipped before it is
        // materialised (its strings cloned) on every pass.
        if !self.deps_satisfied(uid, unit, f.p.drafts.last(), &f.p) {
            return false;
        }
        // A unit riding along only fills the current request: skipped before it is
        // materialised when it cannot (no request open yet, or one of its agent-blocks
        // would be new where a new one is not allowed).
        let closing = f.closing();
        if need == Need::RideAlong && !self.may_ride(unit, f.p.drafts.last(), closing) {
            return false;
        }
        // No call to open a request with, and the unit cannot join the current one (none
        // is open, or it is closed and the unit would add an agent-block: `may_ride`):
        // the unit cannot be placed, and one that must go is held by the budget (what
        // the branches below decide, without materialising it; a poll that waits for the
        // budget comes every frame in a fight, and an urgent request that fills up holds
        // back every other urgent agent's unit). A new request costs one call here, and
        // the pacing burst is at least one, so no unit is oversized. Letta's API first
        // skips units whose block is busy, which needs the unit's blocks: not taken there.
        if !f.per_block
            && f.remaining == 0
            && f.p
                .drafts
                .last()
                .is_none_or(|d| !self.may_ride(unit, Some(d), closing))
        {
            if need == Need::Mandatory && self.deps_satisfied(uid, unit, None, &f.p) {
                f.p.budget_blocked = true;
            }
            return false;
        }
        let per_block = f.per_block;
        let p = &mut f.p;
        self.materialize(unit, &mut f.scratch);
        let (blocks, bytes) = (&f.scratch.blocks, f.scratch.bytes);
        // Letta's PATCH replaces a whole block and checks no sequence number: one
        // write per agent-block in flight, so no retry or slow answer can land
        // after a newer write. The outcome of the one in flight wakes the queue; a
        // block still being read from Letta waits for the read (`load_block` wakes
        // the queue).
        if per_block && blocks.iter().any(|b| self.busy_blocks.contains_key(b)) {
            return false;
        }
        let (max_blocks, max_bytes) = (f.max_blocks, f.max_bytes);
        let mut target: Option<usize> = None;
        if let Some(d) = p.drafts.last() {
            // Whether it fits, and with how many new agent-blocks (written out here: a
            // closure was kept out of line, a call per unit in the transpiled core).
            let new_blocks = blocks
                .iter()
                .filter(|b| !d.agent_blocks.contains(b))
                .count();
            if d.agent_blocks.len() + new_blocks <= max_blocks && d.bytes + bytes <= max_bytes {
                let new_blocks = new_blocks as u32;
                let cost = if per_block { new_blocks } else { 0 };
                let free = cost == 0;
                if self.deps_satisfied(uid, unit, Some(d), p)
                    && (need == Need::Mandatory || free)
                    && cost <= f.remaining
                {
                    f.remaining -= cost;
                    target = Some(p.drafts.len() - 1);
                }
            }
        }
        if target.is_none() && need == Need::Mandatory && self.deps_satisfied(uid, unit, None, p) {
            // A new request; a unit bigger than the caps (only a merged group can
            // be) goes alone rather than being split.
            let cost = if per_block { blocks.len() as u32 } else { 1 };
            let oversized = cost > f.burst
                && f.burst_full
                && f.remaining == f.start_remaining
                && cost <= f.window_room;
            let affordable = cost <= f.remaining || oversized;
            if affordable && p.drafts.len() < f.requests {
                f.remaining = f.remaining.saturating_sub(cost);
                // Room for a change per agent-block it may hold (most units are
                // one field), at most one per candidate left: no growing copies.
                let room = max_blocks.min(left);
                p.drafts.push(Draft {
                    bytes: REQUEST_OVERHEAD_BYTES,
                    changes: Vec::with_capacity(room),
                    ..Draft::default()
                });
                target = Some(p.drafts.len() - 1);
            } else if affordable {
                p.capped = true;
            } else {
                p.budget_blocked = true;
            }
        }
        let Some(t) = target else { return false };
        let d = &mut p.drafts[t];
        for b in &f.scratch.blocks {
            d.agent_blocks.insert(*b);
        }
        d.bytes += bytes;
        let changes = f.scratch.changes.len() as u32;
        for c in f.scratch.changes.drain(..) {
            // Only dependencies read them.
            if f.with_deps {
                let key = FieldKey {
                    agent: c.agent,
                    block: c.block,
                    field: c.field,
                };
                d.fields.insert(key, c.seq);
            }
            d.changes.push(c);
        }
        d.taken += 1;
        p.steps.push(Step::Take {
            draft: t,
            unit: uid,
            changes,
        });
        true
    }

    /// Carries out a plan of [`Queue::plan`]: releases the dependencies, then drops the
    /// stale units (settling their fields) and takes the units into their requests, each
    /// kind of step in the order it was decided. The dropped and taken units leave the
    /// pending ones together ([`Queue::detach_units`]). Doing the releases first changes
    /// nothing: a plan only releases a dependency of a unit it has not placed yet, and a
    /// dropped unit's field is no other unit's.
    fn commit(&mut self, plan: Plan) -> Built {
        let mut drafts = plan.drafts;
        for d in &mut drafts {
            d.units.reserve_exact(d.taken);
        }
        let mut gone: Vec<UnitId> = Vec::with_capacity(plan.steps.len() - plan.released.len());
        for step in &plan.steps {
            match *step {
                Step::Release(owner, d) => {
                    self.units.update(owner, |u| u.deps.retain(|x| *x != d));
                    self.events.push(super::Event::DependencyReleased {
                        dependent: d.dependent,
                        dependency: d.on,
                    });
                }
                Step::Drop(uid) | Step::Take { unit: uid, .. } => gone.push(uid),
            }
        }
        // Per draft, how many of its changes the units taken so far hold.
        let mut filled: Vec<u32> = alloc::vec![0; drafts.len()];
        let mut placed = plan
            .steps
            .into_iter()
            .filter(|s| !matches!(s, Step::Release(..)));
        self.detach_units(&gone, |q, unit| {
            match placed.next().expect("a step per unit") {
                Step::Drop(_) => {
                    q.drop_detached_needless(unit);
                    q.rec.m.coalesced += 1;
                }
                Step::Take { draft, changes, .. } => {
                    // Its fields' values go in flight in `emit`, which reads none of
                    // their units.
                    let start = filled[draft];
                    filled[draft] += changes;
                    drafts[draft].units.push(SentUnit {
                        changes: start..start + changes,
                        group: unit.group,
                        priority: unit.priority,
                        deps: unit.deps,
                        order: unit.order,
                        attempts: unit.attempts,
                        critical_since: unit.critical_since,
                    });
                }
                Step::Release(..) => unreachable!("filtered out"),
            }
        });
        Built {
            drafts,
            budget_blocked: plan.budget_blocked,
            capped: plan.capped,
        }
    }

    /// A unit that must go now takes the pending units it depends on with it: otherwise a
    /// high-priority change, a decision sync or a freshness sync ahead of inference would
    /// wait for the routine batch whenever it depends on a routine change. Dependencies go
    /// first in the request anyway, so this costs nothing but their earlier send.
    fn promote_dependencies(&self, candidates: &mut [(UnitId, &Unit, Need)]) {
        loop {
            let mut changed = false;
            for i in 0..candidates.len() {
                if candidates[i].2 != Need::Mandatory {
                    continue;
                }
                let unit = candidates[i].1;
                for d in &unit.deps {
                    let key = FieldKey {
                        agent: d.on.agent,
                        block: d.on.block,
                        field: d.on.field,
                    };
                    let Some(on) = self.field(key).and_then(|f| f.unit) else {
                        continue;
                    };
                    for c in candidates.iter_mut() {
                        if c.0 == on && c.2 == Need::RideAlong {
                            c.2 = Need::Mandatory;
                            changed = true;
                        }
                    }
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// Coalescing can tie dependencies into a cycle: `b` waits for `a@1`, then `a@5`
    /// (which supersedes `a@1`, so `a@1` is never sent on its own) waits for `b`; or a
    /// change joins a group that holds what its own dependency waits for. No unit of the
    /// cycle could ever go, and all would be lost. When pending units wait on each other in
    /// a cycle, one dependency of the cycle is released and reported: one on a superseded
    /// change if there is one (its change is never sent anyway), else the newest, which
    /// closed the cycle. Returns the dependency to release and the unit that owns it
    /// (`commit` releases it and reports it).
    fn dependency_to_release(
        &self,
        candidates: &[(UnitId, &Unit, Need)],
        placed: &[bool],
        plan: &Plan,
    ) -> Option<(UnitId, Dep)> {
        let stuck: BTreeSet<UnitId> = candidates
            .iter()
            .zip(placed)
            .filter(|(&(id, unit, _), placed)| {
                !**placed && !self.deps_satisfied(id, unit, None, plan)
            })
            .map(|((id, _, _), _)| *id)
            .collect();
        // Unit -> the stuck units it waits for, and through which dependency.
        let mut edges: BTreeMap<UnitId, Vec<(UnitId, Dep)>> = BTreeMap::new();
        for id in &stuck {
            for d in plan.deps(*id, &self.units[id]) {
                let key = FieldKey {
                    agent: d.on.agent,
                    block: d.on.block,
                    field: d.on.field,
                };
                let Some(f) = self.field(key) else { continue };
                if f.acked_seq().0 >= d.on.seq {
                    continue;
                }
                // A unit can wait for itself: a dependency it carries after its dependent.
                if let Some(v) = f.unit {
                    if stuck.contains(&v) {
                        edges.entry(*id).or_default().push((v, *d));
                    }
                }
            }
        }
        let mut state: BTreeMap<UnitId, u8> = BTreeMap::new();
        let mut path: Vec<(UnitId, Dep)> = Vec::new();
        let mut cycle = None;
        for id in edges.keys() {
            if !state.contains_key(id) {
                cycle = find_cycle(*id, &edges, &mut state, &mut path);
                if cycle.is_some() {
                    break;
                }
            }
        }
        let cycle = cycle?;
        let superseded = |q: &Queue, d: &Dep| {
            let key = FieldKey {
                agent: d.on.agent,
                block: d.on.block,
                field: d.on.field,
            };
            q.field(key)
                .and_then(|f| f.local.as_ref())
                .is_some_and(|l| l.seq.0 > d.on.seq)
        };
        let pick = cycle
            .iter()
            .find(|(_, d)| superseded(self, d))
            .or_else(|| cycle.iter().max_by_key(|(_, d)| d.dependent.seq))
            .copied();
        pick
    }

    /// Whether a ride-along unit might join `draft`, the request being filled: there is one,
    /// and every agent-block the unit would write is in it already when adding one costs a
    /// call (Letta's API) or the request has all the agent-blocks it may. Exactly what the
    /// placement test in `plan` would find, without materialising the unit.
    fn may_ride(
        &self,
        unit: &Unit,
        draft: Option<&Draft>,
        closed: impl Fn(&Draft) -> bool,
    ) -> bool {
        let Some(d) = draft else { return false };
        if !closed(d) {
            return true;
        }
        // `materialize` writes the agent-block of every entry whose field has a local value.
        unit.entries.iter().all(|k| {
            d.agent_blocks.contains(&(k.agent, k.block))
                || self.field(*k).is_none_or(|f| f.local.is_none())
        })
    }

    /// A unit's changes as they would be sent now: each field's latest local value, into
    /// `out` (cleared first).
    fn materialize(&self, unit: &Unit, out: &mut Materialized) {
        out.changes.clear();
        out.blocks.clear();
        out.bytes = 0;
        for key in &unit.entries {
            let Some(f) = self.field(*key) else { continue };
            let Some(local) = &f.local else { continue };
            let agent_name = self.agent_names[key.agent.0 as usize];
            out.bytes += change_bytes_escaped(
                self.symbols.json_bytes(agent_name),
                self.symbols.json_bytes(key.block),
                self.symbols.json_bytes(key.field),
                &local.value,
            );
            if !out.blocks.contains(&(key.agent, key.block)) {
                out.blocks.push((key.agent, key.block));
            }
            out.changes.push(SentChange {
                agent: key.agent,
                agent_name,
                block: key.block,
                field: key.field,
                value: local.value.clone(),
                seq: local.seq,
                group: unit.group,
            });
        }
    }

    /// A unit may go once each dependency is acknowledged, carried by the unit itself, or
    /// sent earlier in the request being filled. `plan`'s decisions so far count as done.
    ///
    /// Most units have no dependency: that answer is inlined where it is asked (a call
    /// per unit and question costs in the transpiled core), the rest is
    /// [`Queue::deps_bind`].
    #[inline(always)]
    fn deps_satisfied(&self, uid: UnitId, unit: &Unit, draft: Option<&Draft>, plan: &Plan) -> bool {
        unit.deps.is_empty() || self.deps_bind(uid, unit, draft, plan)
    }

    /// [`Queue::deps_satisfied`] for a unit with dependencies.
    fn deps_bind(&self, uid: UnitId, unit: &Unit, draft: Option<&Draft>, plan: &Plan) -> bool {
        plan.deps(uid, unit).all(|d| {
            let key = FieldKey {
                agent: d.on.agent,
                block: d.on.block,
                field: d.on.field,
            };
            let seq = d.on.seq;
            if self.field(key).is_some_and(|f| f.acked_seq().0 >= seq) {
                return true;
            }
            // Carried by the unit itself: delivered first only if it comes first.
            if let Some(p) = unit.entries.iter().position(|e| *e == key) {
                let dependent = FieldKey {
                    agent: d.dependent.agent,
                    block: d.dependent.block,
                    field: d.dependent.field,
                };
                return unit
                    .entries
                    .iter()
                    .position(|e| *e == dependent)
                    .is_none_or(|q| p <= q);
            }
            let Some(f) = self.field(key) else {
                // Its agent was removed (the dependency was released) or never had it.
                return true;
            };
            // A unit the plan drops no longer holds its field (`commit` detaches it).
            let held = f.unit.is_some_and(|u| !plan.dropped.contains(&u));
            if !held && f.in_flight.is_empty() {
                return true;
            }
            draft.is_some_and(|dr| dr.fields.get(&key).is_some_and(|s| s.0 >= seq))
        })
    }

    fn emit(
        &mut self,
        now: f64,
        kind: RequestKind,
        drafts: Vec<Draft>,
        synced: &[AgentId],
        out: &mut Vec<Request>,
    ) {
        let sorted = synced.is_sorted();
        for d in drafts {
            let id = RequestId(self.next_request);
            self.next_request += 1;
            let calls = match self.cfg.target {
                Target::BatchEndpoint => 1,
                Target::LettaApi => d.agent_blocks.len() as u32,
            };
            self.budget.spend(now, calls);
            self.rec.m.calls += calls as u64;
            match kind {
                RequestKind::Batch => self.rec.m.requests_batch += 1,
                RequestKind::Urgent => self.rec.m.requests_urgent += 1,
                RequestKind::Inference => self.rec.m.requests_inference += 1,
            }
            self.rec.m.changes_sent += d.changes.len() as u64;
            if kind == RequestKind::Urgent {
                self.last_urgent_at = Some(now);
            }
            // Rendered before the changes go in flight: the acknowledged state is what
            // Letta holds under this write.
            let blocks = self.render_writes(&d.changes);
            if self.cfg.target == Target::LettaApi {
                for b in d.agent_blocks.iter() {
                    self.busy_blocks.insert(*b, id);
                }
            }
            // The request's changes go in flight; their fields and sequences, in order, stay
            // with it (each unit's are a range of them), and so do the agents whose
            // decision sync it carries (a search per change: `synced` comes sorted from the
            // urgent agents' set).
            let mut carries = alloc::vec![false; synced.len()];
            let mut entries: Vec<(FieldKey, Seq)> = Vec::with_capacity(d.changes.len());
            for c in &d.changes {
                let key = FieldKey {
                    agent: c.agent,
                    block: c.block,
                    field: c.field,
                };
                let f = self.field_mut(key);
                let oldest = f.pending_since.take().unwrap_or(now);
                f.in_flight.push(InFlightValue {
                    request: id,
                    seq: c.seq,
                    value: c.value.clone(),
                    oldest,
                });
                entries.push((key, c.seq));
                let at = if sorted {
                    synced.binary_search(&c.agent).ok()
                } else {
                    synced.iter().position(|a| *a == c.agent)
                };
                if let Some(i) = at {
                    carries[i] = true;
                }
            }
            let (combat_window, window) = (self.cfg.combat_debounce_s, self.cfg.debounce_s);
            let mut attempt = 1;
            for u in &d.units {
                attempt = attempt.max(u.attempts + 1);
                if u.priority == Priority::Critical {
                    for (key, _) in &entries[u.range()] {
                        if let Some(a) = self.agent_state_mut(key.agent) {
                            a.last_critical_emit = Some(now);
                            a.last_critical_window = if a.in_combat(now) {
                                combat_window
                            } else {
                                window
                            };
                        }
                    }
                }
            }
            let carried: Vec<AgentId> = synced
                .iter()
                .zip(&carries)
                .filter(|(_, c)| **c)
                .map(|(a, _)| *a)
                .collect();
            self.in_flight.insert(
                id,
                InFlightRequest {
                    kind,
                    units: d.units,
                    entries,
                    synced: carried,
                    inference: None,
                    emitted_at: now,
                },
            );
            out.push(Request {
                id,
                kind,
                changes: d.changes,
                inference_agent: None,
                messages: Vec::new(),
                calls,
                body_bytes: d.bytes as u32,
                attempt,
                blocks,
            });
        }
    }

    fn emit_inference(&mut self, now: f64, agent: AgentId, out: &mut Vec<Request>) {
        let max = self.cfg.chat_max_messages as usize;
        let cap = self.cfg.max_request_bytes as usize;
        let mut bytes =
            REQUEST_OVERHEAD_BYTES + json_string_bytes(self.agent_name(agent).unwrap_or(""));
        let a = self.agent_mut(agent);
        // Up to the count and the body cap (a hard cap); one message always fits.
        let mut n = 0;
        for m in a.chat.messages.iter().take(max) {
            let b = message_bytes(m);
            if n > 0 && bytes + b > cap {
                break;
            }
            bytes += b;
            n += 1;
        }
        let messages: Vec<_> = a.chat.messages.drain(..n).collect();
        let attempts = a.chat.attempts;
        a.chat.attempts = 0;
        a.chat.not_before = 0.0;
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.budget.spend(now, 1);
        self.rec.m.calls += 1;
        self.rec.m.requests_inference += 1;
        self.in_flight.insert(
            id,
            InFlightRequest {
                kind: RequestKind::Inference,
                units: Vec::new(),
                entries: Vec::new(),
                synced: Vec::new(),
                inference: Some((agent, messages.clone(), attempts)),
                emitted_at: now,
            },
        );
        out.push(Request {
            id,
            kind: RequestKind::Inference,
            changes: Vec::new(),
            inference_agent: Some(agent),
            messages,
            calls: 1,
            body_bytes: bytes as u32,
            attempt: attempts + 1,
            blocks: Vec::new(),
        });
    }
}

/// Whether a pending unit is a candidate of the urgent pass, and how: it must go when it
/// touches an urgent agent, else it rides along, unless critical (a critical change
/// still waiting out its agent's debounce does not ride). None while its retry backoff
/// runs (unless flushing): the wake is then its end at the latest.
fn urgent_need(t: &mut Tick, u: &Unit, urgent: &Urgent) -> Option<Need> {
    if u.not_before > t.now && !t.flushing {
        t.wake = t.wake.min(u.not_before);
        return None;
    }
    if u.entries.iter().any(|e| urgent.contains(&e.agent)) {
        Some(Need::Mandatory)
    } else if u.priority != Priority::Critical {
        Some(Need::RideAlong)
    } else {
        None
    }
}

/// Depth-first search for a cycle in the waits-for graph; returns its edges, each with the
/// unit that owns the dependency. Iterative, so a long chain of dependencies cannot exhaust
/// a small WebAssembly stack.
fn find_cycle(
    root: UnitId,
    edges: &BTreeMap<UnitId, Vec<(UnitId, Dep)>>,
    state: &mut BTreeMap<UnitId, u8>,
    path: &mut Vec<(UnitId, Dep)>,
) -> Option<Vec<(UnitId, Dep)>> {
    // Each frame: a unit and the index of its next edge to follow.
    let mut stack: Vec<(UnitId, usize)> = Vec::new();
    stack.push((root, 0));
    state.insert(root, 1);
    while let Some(top) = stack.last_mut() {
        let (u, next) = (top.0, top.1);
        let out = edges.get(&u).map(|e| e.as_slice()).unwrap_or(&[]);
        let Some(&(v, d)) = out.get(next) else {
            state.insert(u, 2);
            stack.pop();
            path.pop();
            continue;
        };
        top.1 += 1;
        match state.get(&v) {
            Some(1) => {
                let start = path.iter().position(|(x, _)| *x == v).unwrap_or(path.len());
                let mut c: Vec<(UnitId, Dep)> = path[start..].to_vec();
                c.push((u, d));
                return Some(c);
            }
            Some(_) => {}
            None => {
                path.push((u, d));
                state.insert(v, 1);
                stack.push((v, 0));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request's agent-blocks behave as a set whatever order they come in: each once,
    /// found after it was added, counted once.
    #[test]
    fn agent_blocks_are_a_set_in_any_order() {
        let b = |a: u32, s: u32| (AgentId(a), Sym(s));
        let mut set = AgentBlocks::default();
        assert!(!set.contains(&b(1, 1)));
        for x in [
            b(2, 1),
            b(5, 0),
            b(1, 3),
            b(5, 0),
            b(3, 2),
            b(2, 1),
            b(9, 9),
            b(1, 3),
        ] {
            set.insert(x);
            assert!(set.contains(&x));
        }
        let all: Vec<_> = set.iter().copied().collect();
        assert_eq!(all, [b(1, 3), b(2, 1), b(3, 2), b(5, 0), b(9, 9)]);
        assert_eq!(set.len(), 5);
        for x in [b(0, 0), b(1, 2), b(4, 0), b(5, 1), b(10, 0)] {
            assert!(!set.contains(&x), "{x:?}");
        }
    }

    /// Whatever order agent-blocks come in (an urgent request's: its urgent agents first,
    /// then others ascending; runs going down; repeats; pseudo-random), the list answers and
    /// holds what a `BTreeSet` does after every step.
    #[test]
    fn agent_blocks_answer_as_a_tree_set_does() {
        let b = |a: u32, s: u32| (AgentId(a), Sym(s));
        let urgent_first: Vec<_> = [b(500, 1), b(20, 1)]
            .into_iter()
            .chain((0..700).map(|i| b(i, 1 + i % 2)))
            .collect();
        let descending: Vec<_> = (0..300).rev().map(|i| b(i / 3, i % 3)).collect();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let random: Vec<_> = (0..2_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b((x % 97) as u32, ((x >> 32) % 3) as u32)
            })
            .collect();
        for order in [urgent_first, descending, random] {
            let mut set = AgentBlocks::default();
            let mut tree = BTreeSet::new();
            for x in order {
                let probe = b(x.0 .0 + 1, x.1 .0);
                assert_eq!(set.contains(&x), tree.contains(&x), "{x:?}");
                assert_eq!(set.contains(&probe), tree.contains(&probe), "{probe:?}");
                set.insert(x);
                tree.insert(x);
                assert_eq!(set.len(), tree.len());
            }
            assert!(set.iter().eq(tree.iter()));
        }
    }
}
