//! Filling requests: `plan` decides a pass reading the queue only, `commit` carries it out,
//! `emit` writes the requests (and inference requests for aggregated chat); dependencies
//! (promotion, release, cycles) and the size of a unit in a request.

use super::*;

impl Queue {
    /// Decides what a build pass does, filling requests from `candidates` (given in
    /// priority then change order, the order of [`crate::queue::pending::Units::in_order`])
    /// within the caps and the `allowance`, without changing the queue ([`Queue::commit`]
    /// carries it out). Ride-along units only fill
    /// requests that are opened anyway, and only where they cost no extra call. A later
    /// decision of the pass sees the earlier ones as done: the units dropped or taken
    /// are no longer candidates, a dropped unit no longer holds its field, a released
    /// dependency no longer binds.
    pub(super) fn plan(&self, allowance: Allowance, candidates: Candidates<'_>) -> Plan {
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
    pub(super) fn consider(
        &self,
        f: &mut Filling,
        uid: UnitId,
        unit: &Unit,
        need: Need,
        left: usize,
    ) -> bool {
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
    pub(super) fn commit(&mut self, plan: Plan) -> Built {
        let mut drafts = plan.drafts;
        for d in &mut drafts {
            d.units.reserve_exact(d.taken);
        }
        let mut gone: Vec<UnitId> = Vec::with_capacity(plan.steps.len() - plan.released.len());
        for step in &plan.steps {
            match *step {
                Step::Release(owner, d) => {
                    self.units.update(owner, |u| u.deps.retain(|x| *x != d));
                    self.events.push(crate::queue::Event::DependencyReleased {
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
    pub(super) fn promote_dependencies(&self, candidates: &mut [(UnitId, &Unit, Need)]) {
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
    pub(super) fn dependency_to_release(
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
    pub(super) fn may_ride(
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
    pub(super) fn materialize(&self, unit: &Unit, out: &mut Materialized) {
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
    pub(super) fn deps_satisfied(
        &self,
        uid: UnitId,
        unit: &Unit,
        draft: Option<&Draft>,
        plan: &Plan,
    ) -> bool {
        unit.deps.is_empty() || self.deps_bind(uid, unit, draft, plan)
    }

    /// [`Queue::deps_satisfied`] for a unit with dependencies.
    pub(super) fn deps_bind(
        &self,
        uid: UnitId,
        unit: &Unit,
        draft: Option<&Draft>,
        plan: &Plan,
    ) -> bool {
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

    pub(super) fn emit(
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

    pub(super) fn emit_inference(&mut self, now: f64, agent: AgentId, out: &mut Vec<Request>) {
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

/// Depth-first search for a cycle in the waits-for graph; returns its edges, each with the
/// unit that owns the dependency. Iterative, so a long chain of dependencies cannot exhaust
/// a small WebAssembly stack.
pub(super) fn find_cycle(
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
