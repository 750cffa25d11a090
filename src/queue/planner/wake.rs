//! When the next poll is due: the wake rules (nothing can go before the first call the
//! budget allows; backoff ends; whether batches may be built now).

use super::*;

impl Queue {
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
    pub(super) fn first_call(&mut self, now: f64) -> Option<f64> {
        if self.units.any_deps() {
            return None;
        }
        Some(self.budget.next_free(now, Pool::Reserved))
    }

    /// The wake [`urgent_need`] sets when it looks at every pending unit (not flushing):
    /// the earliest `not_before` after `now`, from the backoff index and the critical units
    /// (`urgent_agents` noted theirs). A unit has a `not_before` only after a failed send
    /// (`fail` sets it with `attempts`, [`crate::queue::state::Unit::absorb`] keeps both), in the
    /// backoff index unless critical.
    pub(super) fn wake_at_backoffs(&self, t: &mut Tick, urgent: &Urgent) {
        if let Some(end) = self.units.next_backoff_after(t.now) {
            t.wake = t.wake.min(end);
        }
        t.wake = t.wake.min(urgent.critical_backoff);
    }

    /// Whether this poll may build a request: urgent agents or open batches, with a call
    /// left in their pool (with none, `plan` opens no request: a unit bigger than the
    /// pacing burst may go on a full bucket, but then the bucket is not what is empty).
    pub(super) fn may_build(
        &mut self,
        now: f64,
        urgent: &Urgent,
        routine_due: bool,
        paused: bool,
    ) -> bool {
        (!urgent.is_empty() && self.budget.available(now, Pool::Reserved) >= 1)
            || (self.batches_open(now, routine_due, paused)
                && self.budget.available(now, Pool::Routine) >= 1)
    }

    /// Whether `send_batches` looks at the units at all (and may build a batch): the
    /// routine batch is due, a high-priority unit is past its delay, or a retry past its
    /// backoff; never during a pause.
    pub(super) fn batches_open(&self, now: f64, routine_due: bool, paused: bool) -> bool {
        let first_high = self.units.first_high_due(self.cfg.high_priority_delay_s);
        !paused
            && (routine_due || first_high.is_some_and(|t| t <= now) || self.units.retry_due(now))
    }
}
