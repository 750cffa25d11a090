//! The urgent pass of a poll: which agents are urgent, whether the budget holds them, and
//! the plan of their request (their units first, other agents' units riding along).

use super::*;

impl Queue {
    /// The agents an urgent request is for now: due critical changes, decision syncs, and
    /// syncs ahead of inference (none during a pause within the combat debounce window
    /// of the last urgent request). Agents no longer asking for a sync leave `syncing`.
    pub(super) fn urgent_agents(
        &mut self,
        t: &mut Tick,
        chat_due: &[AgentId],
    ) -> Result<Urgent, Error> {
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
    pub(super) fn send_urgent(
        &mut self,
        t: &mut Tick,
        urgent: Urgent,
        out: &mut Vec<Request>,
    ) -> bool {
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
    /// (`fail` sets it with `attempts`, [`crate::queue::state::Unit::absorb`] keeps both), in the
    /// backoff index unless critical. `None`: look at the units (Letta's API skips units
    /// whose blocks are busy, which needs their blocks; a flush ignores backoffs).
    pub(super) fn held_by_budget(
        &mut self,
        t: &mut Tick,
        urgent: &Urgent,
        remaining: u32,
    ) -> Option<bool> {
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
    pub(super) fn plan_urgent(&self, t: &mut Tick, allowance: Allowance, urgent: &Urgent) -> Plan {
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
    pub(super) fn only_unit_placed(&self, agent: AgentId) -> bool {
        self.units.touching(agent).nth(1).is_none()
    }

    /// [`Queue::consider`] out of line, for the urgent pass (one more copy of it in the code).
    #[inline(never)]
    pub(super) fn consider_one(
        &self,
        f: &mut Filling,
        uid: UnitId,
        unit: &Unit,
        need: Need,
    ) -> bool {
        self.consider(f, uid, unit, need, usize::MAX)
    }
}

/// Whether a pending unit is a candidate of the urgent pass, and how: it must go when it
/// touches an urgent agent, else it rides along, unless critical (a critical change
/// still waiting out its agent's debounce does not ride). None while its retry backoff
/// runs (unless flushing): the wake is then its end at the latest.
pub(super) fn urgent_need(t: &mut Tick, u: &Unit, urgent: &Urgent) -> Option<Need> {
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
