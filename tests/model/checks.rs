//! The invariants of `docs/semantics.md` checked on every emitted request and at the end
//! of a run (after a backend that always succeeds has caught up).

use super::*;

impl Sim {
    /// An inference request goes out on fresh data, or after a freshness sync in the same
    /// poll that carries every change of the agent not yet sent.
    pub(super) fn check_chat_freshness(&self, out: &[Request]) {
        for (i, r) in out.iter().enumerate() {
            let Some(a) = r.inference_agent else { continue };
            let name = self.name(a);
            let combat = self.q.in_combat(a, self.now)
                || self.state.get(&name).is_some_and(|s| s == "Combat");
            let threshold = if combat {
                self.cfg.combat_freshness_s
            } else {
                self.cfg.freshness_s
            };
            if self.model_staleness(&name) <= threshold + EPS {
                continue;
            }
            for (k, (v, seq)) in &self.local {
                if k.0 != name || self.backend_value(k).0 == *v {
                    continue;
                }
                // Changes already on their way count as synced; what is not yet sent must
                // be young, or go in an urgent request ahead of the inference.
                let sent = self.max_sent.get(k).copied().unwrap_or(0);
                let sent_value = self.seq_value.get(&sent).map(|(_, v)| v);
                // The start of the latest run of changes that differ from what was sent (a
                // change back to the sent value needs nothing).
                let mut oldest_unsent = None;
                for (s, t) in self.unsynced.get(k).into_iter().flatten() {
                    if *s <= sent {
                        continue;
                    }
                    if sent_value == Some(&self.seq_value[s].1) {
                        oldest_unsent = None;
                    } else if oldest_unsent.is_none() {
                        oldest_unsent = Some(*t);
                    }
                }
                if oldest_unsent.is_none_or(|t| self.now - t <= threshold + EPS) {
                    continue;
                }
                let synced = out[..i].iter().any(|u| {
                    u.kind == RequestKind::Urgent
                        && u.changes.iter().any(|c| {
                            c.seq.0 >= *seq
                                && self.q.text(c.agent_name) == k.0
                                && self.q.text(c.block) == k.1
                                && self.q.text(c.field) == k.2
                        })
                });
                assert!(
                    synced,
                    "inference for {name} at {} on stale data: {k:?} not synced first",
                    self.now
                );
            }
        }
    }

    /// Checks of one emitted request: caps, seqs, atomic groups, dependencies.
    pub(super) fn check_request(&mut self, r: &Request) {
        let keys: Vec<FKey> = r
            .changes
            .iter()
            .map(|c| {
                key(
                    self.q.text(c.agent_name),
                    self.q.text(c.block),
                    self.q.text(c.field),
                )
            })
            .collect();
        self.check_caps(r, &keys);
        self.check_seqs(r, &keys);
        self.check_groups(r, &keys);
        self.check_dependencies(r, &keys);
    }

    /// The size caps and the cost of a request in calls.
    fn check_caps(&self, r: &Request, keys: &[FKey]) {
        let mut blocks: BTreeSet<(String, String)> = BTreeSet::new();
        for k in keys {
            blocks.insert((k.0.clone(), k.1.clone()));
        }
        // The size caps are hard caps, merged atomic groups included.
        assert!(
            blocks.len() <= self.cfg.max_agent_blocks_per_request as usize,
            "{} agent-blocks in {r:?}",
            blocks.len()
        );
        assert!(r.body_bytes <= self.cfg.max_request_bytes);
        match (self.cfg.target, r.kind) {
            (_, RequestKind::Inference) => assert_eq!(r.calls, 1),
            (Target::LettaApi, _) => assert_eq!(r.calls as usize, blocks.len()),
            (Target::BatchEndpoint, _) => assert_eq!(r.calls, 1),
        }
        if r.kind == RequestKind::Inference {
            assert!(r.changes.is_empty() && !r.messages.is_empty());
            assert!(r.messages.len() <= self.cfg.chat_max_messages as usize);
        } else {
            assert!(!r.changes.is_empty(), "empty request {r:?}");
        }
    }

    /// Each field once, never a removed agent's, the value its seq set, and per field
    /// never a seq lower than one already sent.
    fn check_seqs(&mut self, r: &Request, keys: &[FKey]) {
        let mut seen = BTreeSet::new();
        for (c, k) in r.changes.iter().zip(keys) {
            assert!(seen.insert(k.clone()), "field {k:?} twice in one request");
            assert!(!self.removed.contains(&k.0), "removed agent's field sent");
            // The value is the one its seq set.
            let (sk, sv) = self
                .seq_value
                .get(&c.seq.0)
                .unwrap_or_else(|| panic!("unknown seq {:?}", c.seq));
            assert_eq!(
                (sk, sv),
                (k, &c.value),
                "seq {} carries the wrong value",
                c.seq.0
            );
            // Invariant 2, queue side: never a seq lower than one already sent.
            let m = self.max_sent.entry(k.clone()).or_insert(0);
            assert!(
                c.seq.0 >= *m,
                "field {k:?}: sent seq {} after {}",
                c.seq.0,
                *m
            );
            *m = c.seq.0;
        }
    }

    /// Invariant 3 (and group ids contiguous in the request).
    fn check_groups(&mut self, r: &Request, keys: &[FKey]) {
        // Changes of one group id are contiguous.
        let mut closed = BTreeSet::new();
        let mut cur = None;
        for c in &r.changes {
            if c.group != cur {
                if let Some(g) = cur {
                    closed.insert(g);
                }
                cur = c.group;
                if let Some(g) = c.group {
                    assert!(!closed.contains(&g), "group {g:?} not contiguous");
                }
            }
        }

        // Invariant 3: an atomic group arrives whole, in order, in one request.
        let pos = |k: &FKey| keys.iter().position(|x| x == k);
        for g in &mut self.groups {
            if g.emitted {
                continue;
            }
            let hit = g
                .changes
                .iter()
                .any(|(k, s)| pos(k).is_some_and(|i| r.changes[i].seq.0 >= *s));
            if !hit {
                continue;
            }
            g.emitted = true;
            let mut last_exact = None;
            let mut gid = None;
            for (k, s) in &g.changes {
                if self.removed.contains(&k.0) {
                    continue;
                }
                let i = pos(k).unwrap_or_else(|| {
                    panic!(
                        "group split: {k:?} missing from {keys:?} (group {:?})",
                        g.changes
                    )
                });
                let c = &r.changes[i];
                assert!(c.seq.0 >= *s, "group member {k:?} older than the group");
                assert!(c.group.is_some(), "group member {k:?} sent outside a group");
                match gid {
                    None => gid = Some(c.group),
                    Some(x) => assert_eq!(x, c.group, "group members under two group ids"),
                }
                if c.seq.0 == *s {
                    if let Some(l) = last_exact {
                        assert!(i > l, "group out of order: {:?} in {keys:?}", g.changes);
                    }
                    last_exact = Some(i);
                }
            }
        }
    }

    /// Invariant 4.
    fn check_dependencies(&mut self, r: &Request, keys: &[FKey]) {
        let pos = |k: &FKey| keys.iter().position(|x| x == k);
        // Invariant 4: no change is delivered before its dependency.
        for d in &mut self.deps {
            if d.checked {
                continue;
            }
            let Some(i) = pos(&d.dependent) else { continue };
            if r.changes[i].seq.0 < d.dseq {
                continue;
            }
            d.checked = true;
            // The dependency's own field counts when sent earlier or by the dependent
            // itself (a newer value of the same field supersedes it).
            let earlier = keys[..=i]
                .iter()
                .zip(&r.changes)
                .any(|(k, c)| *k == d.on && c.seq.0 >= d.on_seq);
            // Both in one atomic group: delivered together, in the group's order (a
            // dependency on a later member of the same group cannot be honoured otherwise;
            // see the report).
            let same_group = r.changes[i].group.is_some()
                && keys.iter().zip(&r.changes).any(|(k, c)| {
                    *k == d.on && c.seq.0 >= d.on_seq && c.group == r.changes[i].group
                });
            let delivered = self.backend.get(&d.on).is_some_and(|b| b.1 >= d.on_seq);
            let released =
                self.removed.contains(&d.on.0) || self.released.contains(&(d.dseq, d.on_seq));
            let superseded = self.synced_seq.get(&d.on).is_some_and(|s| *s >= d.on_seq);
            assert!(
                earlier || same_group || delivered || released || superseded,
                "{:?}@{} delivered before its dependency {:?}@{}",
                d.dependent,
                d.dseq,
                d.on,
                d.on_seq
            );
        }
    }

    /// Invariant 5: in any 60 s window, never more calls than the budget, and routine
    /// traffic never more than its share (the share computed here, from the settings).
    pub(super) fn check_budget(&self) {
        let limit = self.cfg.budget_per_minute;
        let routine = ((limit as f64) * self.cfg.routine_share) as u32;
        let (all, batch) = (self.calls.peak(), self.routine_calls.peak());
        assert!(
            all <= limit,
            "{all} calls in one 60 s window, by {}",
            self.now
        );
        assert!(
            batch <= routine,
            "{batch} routine calls in one 60 s window, by {}",
            self.now
        );
    }

    /// Lets a backend that always succeeds catch up, then checks that nothing was lost.
    pub fn drain_and_check(&mut self) {
        let pending: Vec<Request> = std::mem::take(&mut self.in_flight);
        for r in &pending {
            self.ack(r, false);
        }
        self.observe_sync();
        let end = self.now + 600.0;
        while self.now < end {
            self.now += 0.5;
            self.poll();
            let out: Vec<Request> = std::mem::take(&mut self.in_flight);
            for r in &out {
                self.ack(r, false);
            }
            self.observe_sync();
            if out.is_empty() && self.q.is_idle() {
                break;
            }
        }
        assert!(
            self.q.is_idle(),
            "queue not idle after 10 minutes of polls: {:?}\nout of sync: {:?}\nlog:\n{}",
            self.q.metrics(),
            self.local
                .iter()
                .filter(|(k, (v, _))| !self.removed.contains(&k.0) && self.backend_value(k).0 != *v)
                .map(|(k, v)| (k, v, self.backend_value(k)))
                .collect::<Vec<_>>(),
            self.log
        );
        // Invariant 1: every live field's local value is at the backend.
        for (k, (v, _)) in &self.local {
            if self.removed.contains(&k.0) {
                continue;
            }
            assert_eq!(
                &self.backend_value(k).0,
                v,
                "field {k:?} lost: backend {:?}, local {v:?}",
                self.backend.get(k)
            );
            let a = *self.names.iter().find(|(_, n)| **n == k.0).unwrap().0;
            let ql = self.q.local_value(a, &k.1, &k.2).cloned();
            assert_eq!(
                ql.unwrap_or(Value::Cleared),
                *v,
                "queue's local value of {k:?}"
            );
        }
        for (name, sent) in &self.chat_sent {
            if self.removed.contains(name) {
                continue;
            }
            let got = self.chat_delivered.get(name).cloned().unwrap_or_default();
            assert_eq!(&got, sent, "chat of {name} lost or reordered");
        }
    }
}
