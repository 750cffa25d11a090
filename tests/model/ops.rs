//! One method per operation kind of [`Op`]: each makes its call, records what the queue
//! accepted in the model, and checks at once what can be checked then (a refusal needs a
//! reason, a decision's freshness).

use super::*;

impl Sim {
    /// A change of any block and field, with a priority and maybe a dependency.
    pub(super) fn set_field(
        &mut self,
        slot: u8,
        block: u8,
        field: u8,
        v: u8,
        prio: u8,
        dep: Option<u16>,
    ) {
        let now = self.now;
        let a = self.agent(slot);
        let (b, f) = (BLOCKS[block as usize], FIELDS[field as usize]);
        let mut c = npc_sync::Change::new(a, b, f, value(v)).priority(priority(prio));
        let dep_on = dep.and_then(|d| {
            (!self.handles.is_empty()).then(|| self.handles[d as usize % self.handles.len()])
        });
        if let Some(d) = dep_on {
            c = c.after(d);
        }
        let r = self.q.set(now, c);
        writeln!(self.log, "set {r:?}").unwrap();
        if r.is_ok() {
            self.seen = now;
        }
        if let Ok(id) = r {
            let k = key(&self.name(a), b, f);
            self.record(k.clone(), value(v), id.seq().0);
            self.handles.push(id);
            if let Some(d) = dep_on {
                self.add_dep(k, id.seq().0, d);
            }
        } else {
            let e = r.unwrap_err();
            assert!(
                dep_on.is_some_and(|d| !self.names.contains_key(&d.agent())
                    || self.removed.contains(&self.names[&d.agent()])),
                "set refused without reason: {e:?}"
            );
        }
    }

    /// A health change (small, notable or critical, as the step makes it).
    pub(super) fn set_health(&mut self, slot: u8, hp: u8) {
        let now = self.now;
        let a = self.agent(slot);
        let r = self.q.set_health(now, a, hp as f64);
        writeln!(self.log, "health {r:?}").unwrap();
        if r.is_ok() {
            self.seen = now;
        }
        let id = r.expect("valid health");
        let k = key(&self.name(a), "status", "health");
        self.record(k, Value::Number(hp as f64), id.seq().0);
        self.handles.push(id);
    }

    /// A state change (into or out of `Combat` among them).
    pub(super) fn set_state(&mut self, slot: u8, state: u8) {
        let now = self.now;
        let a = self.agent(slot);
        let s = STATES[state as usize];
        let r = self.q.set_state(now, a, s);
        writeln!(self.log, "state {r:?}").unwrap();
        if r.is_ok() {
            self.seen = now;
        }
        let id = r.expect("valid state");
        let name = self.name(a);
        self.state.insert(name.clone(), s.to_string());
        self.record(key(&name, "status", "state"), Value::str(s), id.seq().0);
        self.handles.push(id);
    }

    /// A member joins the agent's group: two field changes.
    pub(super) fn join(&mut self, slot: u8, member: u8, role: u8) {
        let now = self.now;
        let a = self.agent(slot);
        let m = MEMBERS[member as usize];
        let before = self.changes_in();
        let r = self.q.join_group(now, a, m, &[("role", value(role))]);
        writeln!(self.log, "join {r:?}").unwrap();
        if r.is_ok() {
            self.seen = now;
        }
        let id = r.expect("valid join");
        assert_eq!(self.changes_in() - before, 2);
        let name = self.name(a);
        let s = id.seq().0;
        self.record(
            key(&name, "group_members", &format!("{m}.is_present")),
            Value::Bool(true),
            s,
        );
        self.record(
            key(&name, "group_members", &format!("{m}.role")),
            value(role),
            s + 1,
        );
        self.handles.push(id);
    }

    /// A member leaves: every field it has is cleared.
    pub(super) fn leave(&mut self, slot: u8, member: u8) {
        let now = self.now;
        let a = self.agent(slot);
        let m = MEMBERS[member as usize];
        let before = self.changes_in();
        let r = self.q.leave_group(now, a, m);
        writeln!(self.log, "leave {r:?}").unwrap();
        if r.is_ok() {
            self.seen = now;
        }
        let id = r.expect("valid leave");
        let n = self.changes_in() - before;
        let name = self.name(a);
        let role = key(&name, "group_members", &format!("{m}.role"));
        let role_set = self
            .local
            .get(&role)
            .is_some_and(|(v, _)| *v != Value::Cleared);
        assert!(
            n == 2 || (n == 1 && !role_set),
            "leave must clear every field the member has ({n} changes)"
        );
        let s = id.seq().0;
        self.record(
            key(&name, "group_members", &format!("{m}.is_present")),
            Value::Cleared,
            s,
        );
        if n == 2 {
            self.record(role, Value::Cleared, s + 1);
        }
        self.handles.push(id);
    }

    /// A tool result, critical or not.
    pub(super) fn tool_result(&mut self, slot: u8, field: u8, v: u8, critical: bool) {
        let now = self.now;
        let a = self.agent(slot);
        let f = FIELDS[field as usize];
        let r = self
            .q
            .tool_result(now, a, "inventory", f, value(v), critical);
        writeln!(self.log, "tool {r:?}").unwrap();
        if r.is_ok() {
            self.seen = now;
        }
        let id = r.expect("valid tool result");
        self.record(key(&self.name(a), "inventory", f), value(v), id.seq().0);
        self.handles.push(id);
    }

    /// An atomic group, maybe depending on an earlier change; a refusal must have a reason.
    pub(super) fn atomic(&mut self, changes: &[(u8, u8, u8, u8)], dep: Option<u16>) {
        let now = self.now;
        let agents: Vec<AgentId> = changes.iter().map(|c| self.agent(c.0)).collect();
        let dep_on = dep.and_then(|d| {
            (!self.handles.is_empty()).then(|| self.handles[d as usize % self.handles.len()])
        });
        let list: Vec<npc_sync::Change> = changes
            .iter()
            .zip(&agents)
            .enumerate()
            .map(|(i, ((_, b, f, v), a))| {
                let c =
                    npc_sync::Change::new(*a, BLOCKS[*b as usize], FIELDS[*f as usize], value(*v));
                match (i, dep_on) {
                    (0, Some(d)) => c.after(d),
                    _ => c,
                }
            })
            .collect();
        let r = self.q.atomic(now, &list);
        writeln!(self.log, "atomic {r:?}").unwrap();
        if r.is_ok() {
            self.seen = now;
        }
        match r {
            Ok(ids) => {
                let mut g = Vec::new();
                for (c, id) in list.iter().zip(&ids) {
                    let k = key(&self.name(c.agent), c.block, c.field);
                    self.record(k.clone(), c.value.clone(), id.seq().0);
                    g.push((k, id.seq().0));
                    self.handles.push(*id);
                }
                if let Some(d) = dep_on {
                    self.add_dep(g[0].0.clone(), g[0].1, d);
                }
                self.groups.push(Group {
                    changes: g,
                    emitted: false,
                });
            }
            Err(e) => {
                let mut seen = BTreeSet::new();
                let dup = list
                    .iter()
                    .any(|c| !seen.insert((c.agent, c.block, c.field)));
                let blocks: BTreeSet<(AgentId, &str)> =
                    list.iter().map(|c| (c.agent, c.block)).collect();
                let too_big = blocks.len() > self.cfg.max_agent_blocks_per_request as usize;
                // A dependency on a field the group sets again after its dependent
                // (change 0) would be delivered after it.
                let dep_later = dep_on
                    .and_then(|d| self.seq_value.get(&d.seq().0))
                    .is_some_and(|(k, _)| {
                        list.iter()
                            .skip(1)
                            .any(|c| key(&self.name(c.agent), c.block, c.field) == *k)
                    });
                // Merged with the pending groups it shares fields with, it would
                // exceed the caps.
                let merge_too_big = matches!(&e, npc_sync::Error::BadGroup { reason } if reason.starts_with("merged with"));
                assert!(
                    dup || too_big
                        || dep_later
                        || merge_too_big
                        || dep_on
                            .is_some_and(|d| { self.removed.contains(&self.names[&d.agent()]) }),
                    "atomic refused without reason: {e:?}"
                );
            }
        }
    }

    /// A decision: invariant 7 (freshness) against the model's staleness.
    pub(super) fn decide(&mut self, slot: u8) {
        let now = self.now;
        let a = self.agent(slot);
        let r = self.q.decide(a, now);
        writeln!(self.log, "decide {r:?}").unwrap();
        if r.is_ok() {
            self.seen = now;
        }
        let name = self.name(a);
        let model = self.model_staleness(&name);
        let combat =
            self.q.in_combat(a, now) || self.state.get(&name).is_some_and(|s| s == "Combat");
        let threshold = if combat {
            self.cfg.combat_freshness_s
        } else {
            self.cfg.freshness_s
        };
        match r.expect("valid decide") {
            Decision::Fresh { staleness } => {
                // Invariant 7: no decision proceeds on data staler than allowed.
                assert!(
                    model <= threshold + EPS,
                    "fresh decision of {name} at {now} with staleness {model} > {threshold}"
                );
                assert!(
                    staleness + EPS >= model,
                    "staleness under-reported: {staleness} < {model}"
                );
            }
            Decision::Syncing { staleness, .. } => {
                assert!(staleness + EPS >= model);
            }
        }
    }

    /// `n` chat messages to the agent.
    pub(super) fn chat(&mut self, slot: u8, n: u8) {
        let now = self.now;
        let a = self.agent(slot);
        let name = self.name(a);
        for _ in 0..n {
            let text = format!("m{}", self.chat_counter);
            self.chat_counter += 1;
            self.q.chat(now, a, "player", &text).unwrap();
            self.seen = now;
            self.chat_sent.entry(name.clone()).or_default().push(text);
        }
    }

    /// The agent leaves the game (its slot gets a new agent on next use).
    pub(super) fn remove_agent(&mut self, slot: u8) {
        if let Some(a) = self.slots[slot as usize].take() {
            self.q.remove_agent(a).unwrap();
            self.removed.insert(self.name(a));
            self.dead_agents.push(a);
        }
        self.drain_events();
    }

    /// The outcome of one in-flight request (see [`Op::Outcome`]).
    pub(super) fn outcome(&mut self, pick: u16, kind: u8, retry_after: Option<u8>) {
        let now = self.now;
        if self.in_flight.is_empty() {
            return;
        }
        let i = pick as usize % self.in_flight.len();
        let r = self.in_flight.remove(i);
        let ra = retry_after.map(|s| s as f64);
        match kind {
            0 => self.ack(&r, false),
            1 => self.ack(&r, true),
            2 => {
                let res = self.q.fail(now, r.id, ra);
                writeln!(self.log, "fail {res:?}").unwrap();
                self.seen = now;
                res.unwrap();
            }
            _ => {
                self.apply(&r);
                let res = self.q.fail(now, r.id, ra);
                writeln!(self.log, "fail {res:?}").unwrap();
                self.seen = now;
                res.unwrap();
            }
        }
    }

    pub(super) fn drain_events(&mut self) {
        let ev = self.q.drain_events();
        writeln!(self.log, "events {ev:?}").unwrap();
        for e in ev {
            if let npc_sync::Event::DependencyReleased {
                dependent,
                dependency,
            } = e
            {
                self.released
                    .insert((dependent.seq().0, dependency.seq().0));
            }
        }
    }

    pub(super) fn add_dep(&mut self, dependent: FKey, dseq: u64, on: ChangeId) {
        let Some((k, _)) = self.seq_value.get(&on.seq().0) else {
            return;
        };
        // A dependent whose value is already on its way (the latest value sent for its
        // field) needs no send: the queue drops it, and its dependency with it (see the
        // report: if that send then fails, the retry carries the value without it).
        let already_sent = self
            .max_sent
            .get(&dependent)
            .and_then(|s| self.seq_value.get(s))
            .is_some_and(|(_, v)| Some(v) == self.local.get(&dependent).map(|l| &l.0));
        self.deps.push(DepRec {
            dependent,
            dseq,
            on: k.clone(),
            on_seq: on.seq().0,
            checked: already_sent,
        });
    }

    pub(super) fn bad(&mut self, which: u8) {
        let now = self.now;
        let before = self.q.metrics();
        let a = self.slots.iter().flatten().next().copied();
        let r: Result<(), npc_sync::Error> = match which {
            0 => self.q.poll(self.seen - 1.0).map(|_| ()),
            1 => match a {
                Some(a) => self.q.set_health(now, a, f64::NAN).map(|_| ()),
                None => self.q.poll(f64::NAN).map(|_| ()),
            },
            2 => self.q.ack(RequestId(u64::MAX), &[]),
            3 => match self.dead_agents.last() {
                Some(d) => self.q.decide(*d, now).map(|_| ()),
                None => self.q.decide(AgentId::from_index(10_000), now).map(|_| ()),
            },
            4 => match a {
                Some(a) => self.q.set_location(f64::NAN, a, "x").map(|_| ()),
                None => self.q.poll(-1.0).map(|_| ()),
            },
            5 => match self.in_flight.first() {
                Some(r) => self.q.fail(now, r.id, Some(-1.0)),
                None => self.q.fail(now, RequestId(u64::MAX), None),
            },
            6 => match (a, self.dead_agents.last()) {
                (Some(a), Some(d)) => self
                    .q
                    .atomic(
                        now,
                        &[
                            npc_sync::Change::new(a, "status", "x", Value::Bool(true)),
                            npc_sync::Change::new(*d, "status", "x", Value::Bool(true)),
                        ],
                    )
                    .map(|_| ()),
                _ => self.q.atomic(now, &[]).map(|_| ()),
            },
            _ => match a {
                Some(a) => self.q.set_location(now, a, &"z".repeat(20_000)).map(|_| ()),
                None => self.q.agent("").map(|_| ()),
            },
        };
        writeln!(self.log, "bad {which}: {r:?}").unwrap();
        assert!(r.is_err(), "bad input {which} accepted");
        assert_eq!(
            self.q.metrics(),
            before,
            "refused input {which} changed the queue"
        );
    }
}
