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

mod build;
mod needless;
mod urgent;
mod wake;

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
