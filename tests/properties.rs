//! Property tests over random traces: invariants 1 to 7 of `semantics.md` checked against
//! an independent model kept by the test (local values, a simulated backend that applies a
//! field only when its sequence number is higher, every change's time), plus determinism
//! (invariant 8, natively) and "nothing panics".
//!
//! Case counts are modest by default; `PROPTEST_CASES` overrides them.

use npc_sync::{
    AgentId, ChangeId, Config, Confirmed, Decision, Priority, Queue, Request, RequestId,
    RequestKind, Seq, Target, Value,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

const SLOTS: u8 = 4;
const BLOCKS: [&str; 3] = ["status", "persona", "mood"];
const FIELDS: [&str; 3] = ["location", "x", "y"];
const MEMBERS: [&str; 2] = ["p1", "p2"];
const STATES: [&str; 3] = ["Idle", "Patrol", "Combat"];
const EPS: f64 = 1e-9;

fn value(v: u8) -> Value {
    match v % 10 {
        0..=3 => Value::Number((v % 10) as f64),
        4..=6 => Value::Str(format!("s{}", v % 10)),
        7 => Value::Bool(true),
        8 => Value::Bool(false),
        _ => Value::Cleared,
    }
}

fn priority(p: u8) -> Priority {
    match p % 4 {
        0 => Priority::Low,
        1 => Priority::Normal,
        2 => Priority::High,
        _ => Priority::Critical,
    }
}

#[derive(Clone, Debug)]
enum Op {
    Set {
        slot: u8,
        block: u8,
        field: u8,
        value: u8,
        prio: u8,
        dep: Option<u16>,
    },
    Health {
        slot: u8,
        hp: u8,
    },
    State {
        slot: u8,
        state: u8,
    },
    Join {
        slot: u8,
        member: u8,
        role: u8,
    },
    Leave {
        slot: u8,
        member: u8,
    },
    Tool {
        slot: u8,
        field: u8,
        value: u8,
        critical: bool,
    },
    Atomic {
        changes: Vec<(u8, u8, u8, u8)>,
        dep: Option<u16>,
    },
    Decide {
        slot: u8,
    },
    Chat {
        slot: u8,
        n: u8,
    },
    Remove {
        slot: u8,
    },
    Advance {
        dt: f64,
    },
    Poll,
    /// Report one in-flight request: 0 ack, 1 ack with the backend's confirmed state,
    /// 2 fail, 3 fail after the backend applied it (the response was lost).
    Outcome {
        pick: u16,
        kind: u8,
        retry_after: Option<u8>,
    },
    Bad {
        which: u8,
    },
}

fn slot() -> impl Strategy<Value = u8> {
    0..SLOTS
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (slot(), 0..3u8, 0..3u8, any::<u8>(), any::<u8>(), proptest::option::weighted(0.3, any::<u16>()))
            .prop_map(|(slot, block, field, value, prio, dep)| Op::Set { slot, block, field, value, prio, dep }),
        3 => (slot(), 0..=100u8).prop_map(|(slot, hp)| Op::Health { slot, hp }),
        2 => (slot(), 0..3u8).prop_map(|(slot, state)| Op::State { slot, state }),
        1 => (slot(), 0..2u8, any::<u8>()).prop_map(|(slot, member, role)| Op::Join { slot, member, role }),
        1 => (slot(), 0..2u8).prop_map(|(slot, member)| Op::Leave { slot, member }),
        2 => (slot(), 0..3u8, any::<u8>(), any::<bool>())
            .prop_map(|(slot, field, value, critical)| Op::Tool { slot, field, value, critical }),
        2 => (proptest::collection::vec((slot(), 0..3u8, 0..3u8, any::<u8>()), 1..5), proptest::option::weighted(0.3, any::<u16>()))
            .prop_map(|(changes, dep)| Op::Atomic { changes, dep }),
        2 => slot().prop_map(|slot| Op::Decide { slot }),
        1 => (slot(), 1..20u8).prop_map(|(slot, n)| Op::Chat { slot, n }),
        1 => slot().prop_map(|slot| Op::Remove { slot }),
        5 => prop_oneof![
            8 => 0.0..2.0f64,
            1 => 10.0..200.0f64,
        ].prop_map(|dt| Op::Advance { dt }),
        5 => Just(Op::Poll),
        5 => (any::<u16>(), 0..4u8, proptest::option::weighted(0.2, 0..40u8))
            .prop_map(|(pick, kind, retry_after)| Op::Outcome { pick, kind, retry_after }),
        1 => (0..8u8).prop_map(|which| Op::Bad { which }),
    ]
}

/// A field, named by text so that the model is independent of the queue's handles.
type FKey = (String, String, String);

fn key(agent: &str, block: &str, field: &str) -> FKey {
    (agent.to_string(), block.to_string(), field.to_string())
}

struct Group {
    changes: Vec<(FKey, u64)>,
    emitted: bool,
}

struct DepRec {
    dependent: FKey,
    dseq: u64,
    on: FKey,
    on_seq: u64,
    checked: bool,
}

/// The queue, a simulated backend and the test's own model of what must be true.
struct Sim {
    q: Queue,
    now: f64,
    slots: Vec<Option<AgentId>>,
    gens: Vec<u32>,
    dead_agents: Vec<AgentId>,
    names: BTreeMap<AgentId, String>,
    handles: Vec<ChangeId>,
    in_flight: Vec<Request>,
    log: String,
    /// Latest local value of each field: (value, seq).
    local: BTreeMap<FKey, (Value, u64)>,
    /// What each sequence number set.
    seq_value: BTreeMap<u64, (FKey, Value)>,
    /// Changes made since the field was last seen in sync with the backend: (seq, time).
    unsynced: BTreeMap<FKey, Vec<(u64, f64)>>,
    /// The local seq at the last moment the backend held the local value.
    synced_seq: BTreeMap<FKey, u64>,
    /// The simulated backend: (value, seq) per field.
    backend: BTreeMap<FKey, (Value, u64)>,
    /// Highest seq the queue sent per field.
    max_sent: BTreeMap<FKey, u64>,
    groups: Vec<Group>,
    deps: Vec<DepRec>,
    /// (time, calls, kind) of every request.
    calls: Vec<(f64, u32, RequestKind)>,
    removed: BTreeSet<String>,
    state: BTreeMap<String, String>,
    chat_sent: BTreeMap<String, Vec<String>>,
    chat_delivered: BTreeMap<String, Vec<String>>,
    chat_counter: u32,
    cfg: Config,
    /// The latest time the queue accepted.
    seen: f64,
    /// Dependencies the queue reported released: (dependent seq, dependency seq).
    released: BTreeSet<(u64, u64)>,
}

impl Sim {
    fn new(cfg: Config) -> Sim {
        Sim {
            q: Queue::new(cfg.clone()).unwrap(),
            now: 0.0,
            slots: vec![None; SLOTS as usize],
            gens: vec![0; SLOTS as usize],
            dead_agents: Vec::new(),
            names: BTreeMap::new(),
            handles: Vec::new(),
            in_flight: Vec::new(),
            log: String::new(),
            local: BTreeMap::new(),
            seq_value: BTreeMap::new(),
            unsynced: BTreeMap::new(),
            synced_seq: BTreeMap::new(),
            backend: BTreeMap::new(),
            max_sent: BTreeMap::new(),
            groups: Vec::new(),
            deps: Vec::new(),
            calls: Vec::new(),
            removed: BTreeSet::new(),
            state: BTreeMap::new(),
            chat_sent: BTreeMap::new(),
            chat_delivered: BTreeMap::new(),
            chat_counter: 0,
            cfg,
            seen: 0.0,
            released: BTreeSet::new(),
        }
    }

    /// The live agent in a slot, registered on first use.
    fn agent(&mut self, slot: u8) -> AgentId {
        let s = slot as usize;
        if let Some(a) = self.slots[s] {
            return a;
        }
        let name = format!("npc-{s}-{}", self.gens[s]);
        self.gens[s] += 1;
        let a = self.q.agent(&name).unwrap();
        self.names.insert(a, name);
        self.slots[s] = Some(a);
        a
    }

    fn name(&self, a: AgentId) -> String {
        self.names[&a].clone()
    }

    fn changes_in(&mut self) -> u64 {
        self.q.metrics().changes_in
    }

    /// Records one change the queue accepted.
    fn record(&mut self, k: FKey, v: Value, seq: u64) {
        assert!(!self.seq_value.contains_key(&seq), "seq {seq} issued twice");
        self.seq_value.insert(seq, (k.clone(), v.clone()));
        self.local.insert(k.clone(), (v, seq));
        self.unsynced.entry(k).or_default().push((seq, self.now));
    }

    fn backend_value(&self, k: &FKey) -> (Value, u64) {
        self.backend.get(k).cloned().unwrap_or((Value::Cleared, 0))
    }

    /// After every step: fields whose backend value equals the local one are in sync.
    fn observe_sync(&mut self) {
        for (k, (v, seq)) in &self.local {
            if self.backend.get(k).map(|b| &b.0).unwrap_or(&Value::Cleared) == v {
                self.unsynced.remove(k);
                self.synced_seq.insert(k.clone(), *seq);
            }
        }
        // A dependent change that needed no send (its field already held its value) has
        // nothing left to order; later changes of that field do not inherit its dependency.
        for d in &mut self.deps {
            if self
                .synced_seq
                .get(&d.dependent)
                .is_some_and(|s| *s >= d.dseq)
            {
                d.checked = true;
            }
        }
    }

    /// Staleness as the model sees it: the age of the oldest change the backend does not
    /// hold, over the agent's fields that differ from the backend.
    fn model_staleness(&self, name: &str) -> f64 {
        let mut worst: f64 = 0.0;
        for (k, (v, _)) in &self.local {
            if k.0 != name {
                continue;
            }
            let (bv, bseq) = self.backend_value(k);
            if &bv == v {
                continue;
            }
            if let Some(list) = self.unsynced.get(k) {
                // A change the backend lacks by seq but whose value it holds is not missing.
                if let Some(t) = list
                    .iter()
                    .filter(|(s, _)| *s > bseq && self.seq_value[s].1 != bv)
                    .map(|(_, t)| *t)
                    .reduce(f64::min)
                {
                    worst = worst.max(self.now - t);
                }
            }
        }
        worst
    }

    fn step(&mut self, op: &Op) {
        let now = self.now;
        match op {
            Op::Set {
                slot,
                block,
                field,
                value: v,
                prio,
                dep,
            } => {
                let a = self.agent(*slot);
                let (b, f) = (BLOCKS[*block as usize], FIELDS[*field as usize]);
                let mut c = npc_sync::Change::new(a, b, f, value(*v)).priority(priority(*prio));
                let dep_on = dep.and_then(|d| {
                    (!self.handles.is_empty())
                        .then(|| self.handles[d as usize % self.handles.len()])
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
                    self.record(k.clone(), value(*v), id.seq().0);
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
            Op::Health { slot, hp } => {
                let a = self.agent(*slot);
                let r = self.q.set_health(now, a, *hp as f64);
                writeln!(self.log, "health {r:?}").unwrap();
                if r.is_ok() {
                    self.seen = now;
                }
                let id = r.expect("valid health");
                let k = key(&self.name(a), "status", "health");
                self.record(k, Value::Number(*hp as f64), id.seq().0);
                self.handles.push(id);
            }
            Op::State { slot, state } => {
                let a = self.agent(*slot);
                let s = STATES[*state as usize];
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
            Op::Join { slot, member, role } => {
                let a = self.agent(*slot);
                let m = MEMBERS[*member as usize];
                let before = self.changes_in();
                let r = self.q.join_group(now, a, m, &[("role", value(*role))]);
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
                    value(*role),
                    s + 1,
                );
                self.handles.push(id);
            }
            Op::Leave { slot, member } => {
                let a = self.agent(*slot);
                let m = MEMBERS[*member as usize];
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
            Op::Tool {
                slot,
                field,
                value: v,
                critical,
            } => {
                let a = self.agent(*slot);
                let f = FIELDS[*field as usize];
                let r = self
                    .q
                    .tool_result(now, a, "inventory", f, value(*v), *critical);
                writeln!(self.log, "tool {r:?}").unwrap();
                if r.is_ok() {
                    self.seen = now;
                }
                let id = r.expect("valid tool result");
                self.record(key(&self.name(a), "inventory", f), value(*v), id.seq().0);
                self.handles.push(id);
            }
            Op::Atomic { changes, dep } => {
                let agents: Vec<AgentId> = changes.iter().map(|c| self.agent(c.0)).collect();
                let dep_on = dep.and_then(|d| {
                    (!self.handles.is_empty())
                        .then(|| self.handles[d as usize % self.handles.len()])
                });
                let list: Vec<npc_sync::Change> = changes
                    .iter()
                    .zip(&agents)
                    .enumerate()
                    .map(|(i, ((_, b, f, v), a))| {
                        let c = npc_sync::Change::new(
                            *a,
                            BLOCKS[*b as usize],
                            FIELDS[*f as usize],
                            value(*v),
                        );
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
                                || dep_on.is_some_and(|d| {
                                    self.removed.contains(&self.names[&d.agent()])
                                }),
                            "atomic refused without reason: {e:?}"
                        );
                    }
                }
            }
            Op::Decide { slot } => {
                let a = self.agent(*slot);
                let r = self.q.decide(a, now);
                writeln!(self.log, "decide {r:?}").unwrap();
                if r.is_ok() {
                    self.seen = now;
                }
                let name = self.name(a);
                let model = self.model_staleness(&name);
                let combat = self.q.in_combat(a, now)
                    || self.state.get(&name).is_some_and(|s| s == "Combat");
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
            Op::Chat { slot, n } => {
                let a = self.agent(*slot);
                let name = self.name(a);
                for _ in 0..*n {
                    let text = format!("m{}", self.chat_counter);
                    self.chat_counter += 1;
                    self.q.chat(now, a, "player", &text).unwrap();
                    self.seen = now;
                    self.chat_sent.entry(name.clone()).or_default().push(text);
                }
            }
            Op::Remove { slot } => {
                if let Some(a) = self.slots[*slot as usize].take() {
                    self.q.remove_agent(a).unwrap();
                    self.removed.insert(self.name(a));
                    self.dead_agents.push(a);
                }
                self.drain_events();
            }
            Op::Advance { dt } => {
                self.now += dt;
            }
            Op::Poll => self.poll(),
            Op::Outcome {
                pick,
                kind,
                retry_after,
            } => {
                if self.in_flight.is_empty() {
                    return;
                }
                let i = *pick as usize % self.in_flight.len();
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
            Op::Bad { which } => self.bad(*which),
        }
        self.observe_sync();
    }

    fn drain_events(&mut self) {
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

    fn add_dep(&mut self, dependent: FKey, dseq: u64, on: ChangeId) {
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

    fn bad(&mut self, which: u8) {
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

    /// The backend applies each field only if its seq is higher than the one it holds.
    fn apply(&mut self, r: &Request) {
        for c in &r.changes {
            let k = key(
                self.q.text(c.agent_name),
                self.q.text(c.block),
                self.q.text(c.field),
            );
            let held = self.backend.get(&k).map(|b| b.1).unwrap_or(0);
            if c.seq.0 > held {
                // Invariant 2: what the backend accepts per field only rises (by this rule),
                // and the value is the one that seq set.
                self.backend.insert(k, (c.value.clone(), c.seq.0));
            }
        }
    }

    fn ack(&mut self, r: &Request, confirmed: bool) {
        self.apply(r);
        if r.kind == RequestKind::Inference {
            let name = self.name(r.inference_agent.unwrap());
            let d = self.chat_delivered.entry(name).or_default();
            d.extend(r.messages.iter().map(|m| m.text.clone()));
        }
        let mut conf = Vec::new();
        if confirmed {
            for c in &r.changes {
                if self
                    .q
                    .agent_name(c.agent)
                    .is_none_or(|n| self.removed.contains(n))
                {
                    continue;
                }
                let k = key(
                    self.q.text(c.agent_name),
                    self.q.text(c.block),
                    self.q.text(c.field),
                );
                let (v, s) = self.backend_value(&k);
                conf.push(Confirmed {
                    agent: c.agent,
                    block: k.1.clone(),
                    field: k.2.clone(),
                    value: v,
                    seq: Seq(s),
                });
            }
        }
        let res = self.q.ack(r.id, &conf);
        writeln!(self.log, "ack {res:?}").unwrap();
        res.unwrap();
    }

    fn poll(&mut self) {
        let now = self.now;
        let out = self.q.poll(now).expect("valid poll");
        self.seen = now;
        self.drain_events();
        self.check_chat_freshness(&out);
        for r in &out {
            writeln!(self.log, "{now}: {r:?}").unwrap();
            self.check_request(r);
            self.calls.push((now, r.calls, r.kind));
        }
        self.check_budget();
        self.in_flight.extend(out);
    }

    /// An inference request goes out on fresh data, or after a freshness sync in the same
    /// poll that carries every change of the agent not yet sent.
    fn check_chat_freshness(&self, out: &[Request]) {
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
    fn check_request(&mut self, r: &Request) {
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
        let mut blocks: BTreeSet<(String, String)> = BTreeSet::new();
        for k in &keys {
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

        let mut seen = BTreeSet::new();
        for (c, k) in r.changes.iter().zip(&keys) {
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
    /// traffic never more than its share.
    fn check_budget(&self) {
        let limit = self.cfg.budget_per_minute;
        let routine = ((limit as f64) * self.cfg.routine_share) as u32;
        let n = self.calls.len();
        for i in 0..n {
            let t = self.calls[i].0;
            if t + 60.0 <= self.now - 60.0 {
                continue;
            }
            let mut all = 0;
            let mut batch = 0;
            for (u, c, k) in &self.calls[i..] {
                if *u >= t + 60.0 {
                    break;
                }
                all += c;
                if *k == RequestKind::Batch {
                    batch += c;
                }
            }
            assert!(all <= limit, "{all} calls in the 60 s from {t}");
            assert!(
                batch <= routine,
                "{batch} routine calls in the 60 s from {t}"
            );
        }
    }

    /// Lets a backend that always succeeds catch up, then checks that nothing was lost.
    fn drain_and_check(&mut self) {
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

/// The project's batch endpoint with a small budget and small requests, so that pacing,
/// the rolling window and the size caps all bite.
fn small_config() -> Config {
    Config {
        budget_per_minute: 12,
        budget_burst: 3,
        max_agent_blocks_per_request: 3,
        ..Config::default()
    }
}

fn tight_config() -> Config {
    Config {
        target: Target::LettaApi,
        budget_per_minute: 30,
        budget_burst: 6,
        ..Config::default()
    }
}

fn run(cfg: Config, ops: &[Op]) -> Sim {
    let mut sim = Sim::new(cfg);
    for op in ops {
        sim.step(op);
    }
    sim
}

fn cases(n: u32) -> ProptestConfig {
    // `ProptestConfig::default()` reads PROPTEST_CASES; with_cases would override it.
    match std::env::var("PROPTEST_CASES") {
        Ok(_) => ProptestConfig::default(),
        Err(_) => ProptestConfig::with_cases(n),
    }
}

proptest! {
    #![proptest_config(cases(128))]

    /// Invariants 1 to 5 and 7 with the default settings.
    #[test]
    fn invariants_hold_over_random_traces(ops in proptest::collection::vec(op(), 1..120)) {
        let mut sim = run(Config::default(), &ops);
        sim.drain_and_check();
    }

    /// The same with a tight budget on Letta's API, where the budget and the per-block cost
    /// bite.
    #[test]
    fn invariants_hold_with_a_tight_budget(ops in proptest::collection::vec(op(), 1..120)) {
        let mut sim = run(tight_config(), &ops);
        sim.drain_and_check();
    }

    /// The same with few calls a minute and requests of at most 3 agent-blocks.
    #[test]
    fn invariants_hold_with_small_requests(ops in proptest::collection::vec(op(), 1..120)) {
        let mut sim = run(small_config(), &ops);
        sim.drain_and_check();
    }

    /// Invariant 8, natively: one trace gives identical output.
    #[test]
    fn same_trace_same_output(ops in proptest::collection::vec(op(), 1..80)) {
        let mut a = run(Config::default(), &ops);
        let mut b = run(Config::default(), &ops);
        a.drain_and_check();
        b.drain_and_check();
        prop_assert_eq!(&a.log, &b.log);
        prop_assert_eq!(format!("{:?}", a.q.metrics()), format!("{:?}", b.q.metrics()));
    }
}

// ---------------------------------------------------------------------------------------
// Invariant 6: critical latency
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum CritOp {
    State { slot: u8, state: u8 },
    Health { slot: u8, hp: u8 },
    Tool { slot: u8, field: u8, value: u8 },
    Set { slot: u8, field: u8, value: u8 },
    Decide { slot: u8 },
    Advance { dt: f64 },
}

fn crit_op() -> impl Strategy<Value = CritOp> {
    let s = 0..3u8;
    prop_oneof![
        3 => (s.clone(), 0..3u8).prop_map(|(slot, state)| CritOp::State { slot, state }),
        3 => (s.clone(), 0..=100u8).prop_map(|(slot, hp)| CritOp::Health { slot, hp }),
        2 => (s.clone(), 0..3u8, 0..4u8).prop_map(|(slot, field, value)| CritOp::Tool { slot, field, value }),
        2 => (s.clone(), 0..3u8, 0..4u8).prop_map(|(slot, field, value)| CritOp::Set { slot, field, value }),
        1 => s.prop_map(|slot| CritOp::Decide { slot }),
        6 => (0.05..0.6f64).prop_map(|dt| CritOp::Advance { dt }),
    ]
}

/// A critical change waiting to be emitted: agent slot, field, seq, when it was made,
/// whether its agent was in combat then.
struct PendingCritical {
    slot: usize,
    field: (String, String),
    seq: u64,
    made: f64,
    in_combat: bool,
}

/// Runs a trace with budget to spare, polling after every step and acknowledging every
/// request at once, and checks that each critical change is emitted, in an urgent
/// request, at the first poll its agent's debounce window allows.
fn check_critical_latency(ops: &[CritOp]) {
    let cfg = Config {
        budget_burst: 400,
        ..Config::default()
    };
    let mut q = Queue::new(cfg.clone()).unwrap();
    let agents: Vec<AgentId> = (0..3)
        .map(|i| q.agent(&format!("npc-{i}")).unwrap())
        .collect();
    let mut now = 0.0;
    let mut state: Vec<bool> = vec![false; 3]; // in state Combat
    let mut local: BTreeMap<(usize, String, String), Value> = BTreeMap::new();
    let mut backend: BTreeMap<(usize, String, String), Value> = BTreeMap::new();
    // Last critical emission per agent, and the debounce window it opened.
    let mut last_emit: Vec<Option<(f64, f64)>> = vec![None; 3];
    let mut pending: Vec<PendingCritical> = Vec::new();
    let mut calls = 0u32;
    for op in ops {
        let mut syncing: Option<usize> = None;
        // Make the change; classify it independently of the queue.
        let made = match op {
            CritOp::State { slot, state: s } => {
                let i = *slot as usize;
                let name = STATES[*s as usize];
                let id = q.set_state(now, agents[i], name).unwrap();
                let is = name == "Combat";
                let critical = is != state[i];
                state[i] = is;
                Some((
                    i,
                    "status",
                    "state".to_string(),
                    Value::str(name),
                    id,
                    critical,
                ))
            }
            CritOp::Health { slot, hp } => {
                let i = *slot as usize;
                let k = (i, "status".to_string(), "health".to_string());
                let reference = backend.get(&k).or(local.get(&k)).cloned();
                let id = q.set_health(now, agents[i], *hp as f64).unwrap();
                // Only a drop is a combat health change; a heal is never critical.
                let critical =
                    matches!(reference, Some(Value::Number(r)) if r - *hp as f64 >= 20.0);
                Some((
                    i,
                    "status",
                    "health".to_string(),
                    Value::Number(*hp as f64),
                    id,
                    critical,
                ))
            }
            CritOp::Tool { slot, field, value } => {
                let i = *slot as usize;
                let f = FIELDS[*field as usize];
                let v = Value::Number(*value as f64);
                let id = q
                    .tool_result(now, agents[i], "inventory", f, v.clone(), true)
                    .unwrap();
                Some((i, "inventory", f.to_string(), v, id, true))
            }
            CritOp::Set { slot, field, value } => {
                let i = *slot as usize;
                let f = FIELDS[*field as usize];
                let v = Value::Number(*value as f64);
                let id = q
                    .set(
                        now,
                        npc_sync::Change::new(agents[i], "inventory", f, v.clone()),
                    )
                    .unwrap();
                Some((i, "inventory", f.to_string(), v, id, false))
            }
            CritOp::Decide { slot } => {
                if let Decision::Syncing { .. } = q.decide(agents[*slot as usize], now).unwrap() {
                    syncing = Some(*slot as usize);
                }
                None
            }
            CritOp::Advance { dt } => {
                now += dt;
                None
            }
        };
        if let Some((i, b, f, v, id, critical)) = made {
            local.insert((i, b.to_string(), f.clone()), v);
            if critical {
                pending.push(PendingCritical {
                    slot: i,
                    field: (b.to_string(), f),
                    seq: id.seq().0,
                    made: now,
                    in_combat: q.in_combat(agents[i], now),
                });
            }
        }

        let out = q.poll(now).unwrap();
        if let Some(i) = syncing {
            // A decision sync goes out urgent at the next poll, with every change of the
            // agent the backend lacks; once acknowledged, the decision is fresh.
            for (k, v) in &local {
                if k.0 != i || backend.get(k).unwrap_or(&Value::Cleared) == v {
                    continue;
                }
                let carried = out.iter().any(|r| {
                    r.kind == RequestKind::Urgent
                        && r.changes.iter().any(|c| {
                            c.agent == agents[i]
                                && q.text(c.block) == k.1
                                && q.text(c.field) == k.2
                                && c.value == *v
                        })
                });
                assert!(
                    carried,
                    "decision sync of npc-{i} at {now} left {k:?} behind"
                );
            }
        }
        for r in &out {
            calls += r.calls;
            for c in &r.changes {
                let i = agents.iter().position(|a| *a == c.agent).unwrap();
                let field = (q.text(c.block).to_string(), q.text(c.field).to_string());
                pending.retain(|p| {
                    let hit = p.slot == i && p.field == field && c.seq.0 >= p.seq;
                    if hit {
                        assert_eq!(r.kind, RequestKind::Urgent, "critical change in {r:?}");
                        let w = if q.in_combat(agents[i], now) {
                            cfg.combat_debounce_s
                        } else {
                            cfg.debounce_s
                        };
                        last_emit[i] = Some((now, w));
                        if p.in_combat {
                            // With budget to spare, at most 1 s (plus one poll step).
                            assert!(now - p.made <= cfg.combat_debounce_s + 0.6 + EPS);
                        }
                    }
                    !hit
                });
                backend.insert((i, field.0, field.1), c.value.clone());
            }
            q.ack(r.id, &[]).unwrap();
        }
        assert!(calls < 300, "the test means budget to spare");
        if let Some(i) = syncing {
            let d = q.decide(agents[i], now).unwrap();
            assert!(
                matches!(d, Decision::Fresh { .. }),
                "npc-{i} still {d:?} after its sync was acknowledged"
            );
        }
        // What went back to the backend's value needs no send.
        pending.retain(|p| {
            let k = (p.slot, p.field.0.clone(), p.field.1.clone());
            local.get(&k) != Some(backend.get(&k).unwrap_or(&Value::Cleared))
        });
        for p in &pending {
            let window = if q.in_combat(agents[p.slot], now) {
                cfg.combat_debounce_s
            } else {
                cfg.debounce_s
            };
            // Entering combat shortens an open window, leaving it does not lengthen it.
            let due = match last_emit[p.slot] {
                Some((t, w)) => p.made.max(t + window.min(w)),
                None => p.made,
            };
            assert!(
                now < due - EPS,
                "critical change {:?}@{} of npc-{} made at {} not emitted at {now} (due {due})",
                p.field,
                p.seq,
                p.slot,
                p.made
            );
        }
    }
}

proptest! {
    #![proptest_config(cases(64))]

    /// Invariant 6: a critical change goes out at the first poll its agent's debounce
    /// window allows (budget to spare), within 1 s in combat.
    #[test]
    fn critical_changes_go_out_at_the_first_allowed_poll(
        ops in proptest::collection::vec(crit_op(), 1..150)
    ) {
        check_critical_latency(&ops);
    }
}

// ---------------------------------------------------------------------------------------
// Nothing panics, whatever the input
// ---------------------------------------------------------------------------------------

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => 0.0..100.0f64,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => -100.0..0.0f64,
        1 => Just(f64::MAX),
        1 => Just(1e-300),
    ]
}

fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any_f64().prop_map(Value::Number),
        "[a-z]{0,8}".prop_map(Value::Str),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Cleared),
        (0usize..3).prop_map(|n| Value::Str("v".repeat(8 * 1024 * n + 1))),
    ]
}

fn any_name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-c]{1,2}",
        1 => Just(String::new()),
        1 => Just("n".repeat(300)),
    ]
}

#[derive(Clone, Debug)]
enum Raw {
    Agent(String),
    Set(u32, String, String, Value, u8, Option<usize>, f64),
    Health(u32, f64, f64),
    State(u32, String, f64),
    Join(u32, String, String, Value, f64),
    Leave(u32, String, f64),
    Atomic(Vec<(u32, String, String, Value)>, f64),
    Decide(u32, f64),
    Chat(u32, String, String, f64),
    Remove(u32),
    Poll(f64),
    Ack(u64, Vec<(u32, String, String, Value, u64)>),
    Fail(u64, f64, Option<f64>),
}

fn raw() -> impl Strategy<Value = Raw> {
    let idx = 0..6u32;
    prop_oneof![
        any_name().prop_map(Raw::Agent),
        (
            idx.clone(),
            any_name(),
            any_name(),
            any_value(),
            any::<u8>(),
            proptest::option::of(any::<usize>()),
            any_f64()
        )
            .prop_map(|(a, b, f, v, p, d, t)| Raw::Set(a, b, f, v, p, d, t)),
        (idx.clone(), any_f64(), any_f64()).prop_map(|(a, h, t)| Raw::Health(a, h, t)),
        (
            idx.clone(),
            prop_oneof![Just("Combat".to_string()), any_name()],
            any_f64()
        )
            .prop_map(|(a, s, t)| Raw::State(a, s, t)),
        (idx.clone(), any_name(), any_name(), any_value(), any_f64())
            .prop_map(|(a, m, f, v, t)| Raw::Join(a, m, f, v, t)),
        (idx.clone(), any_name(), any_f64()).prop_map(|(a, m, t)| Raw::Leave(a, m, t)),
        (
            proptest::collection::vec((idx.clone(), any_name(), any_name(), any_value()), 0..4),
            any_f64()
        )
            .prop_map(|(c, t)| Raw::Atomic(c, t)),
        (idx.clone(), any_f64()).prop_map(|(a, t)| Raw::Decide(a, t)),
        (idx.clone(), any_name(), "[a-z ]{0,30}", any_f64())
            .prop_map(|(a, s, x, t)| Raw::Chat(a, s, x, t)),
        idx.clone().prop_map(Raw::Remove),
        any_f64().prop_map(Raw::Poll),
        (
            0..8u64,
            proptest::collection::vec(
                (idx.clone(), any_name(), any_name(), any_value(), 0..40u64),
                0..3
            )
        )
            .prop_map(|(r, c)| Raw::Ack(r, c)),
        (0..8u64, any_f64(), proptest::option::of(any_f64()))
            .prop_map(|(r, t, ra)| Raw::Fail(r, t, ra)),
    ]
}

proptest! {
    #![proptest_config(cases(128))]

    /// Any sequence of calls with any arguments: errors are fine, panics are not, and the
    /// queue keeps working afterwards.
    #[test]
    fn nothing_panics_on_any_input(
        calls in proptest::collection::vec(raw(), 1..80),
        tight in any::<bool>(),
    ) {
        let mut q = Queue::new(if tight { tight_config() } else { Config::default() }).unwrap();
        let mut handles: Vec<ChangeId> = Vec::new();
        // Handles from another queue: unknown to this one.
        let mut other = Queue::new(Config::default()).unwrap();
        for i in 0..3 {
            let a = other.agent(&format!("o{i}")).unwrap();
            handles.push(other.set_location(0.0, a, "x").unwrap());
        }
        for c in &calls {
            match c {
                Raw::Agent(n) => { let _ = q.agent(n); }
                Raw::Set(a, b, f, v, p, d, t) => {
                    let mut ch = npc_sync::Change::new(AgentId::from_index(*a), b, f, v.clone())
                        .priority(priority(*p));
                    if let Some(d) = d {
                        ch = ch.after(handles[d % handles.len()]);
                    }
                    if let Ok(id) = q.set(*t, ch) {
                        handles.push(id);
                    }
                }
                Raw::Health(a, h, t) => { let _ = q.set_health(*t, AgentId::from_index(*a), *h); }
                Raw::State(a, s, t) => { let _ = q.set_state(*t, AgentId::from_index(*a), s); }
                Raw::Join(a, m, f, v, t) => {
                    let _ = q.join_group(*t, AgentId::from_index(*a), m, &[(f.as_str(), v.clone())]);
                }
                Raw::Leave(a, m, t) => { let _ = q.leave_group(*t, AgentId::from_index(*a), m); }
                Raw::Atomic(cs, t) => {
                    let list: Vec<npc_sync::Change> = cs
                        .iter()
                        .map(|(a, b, f, v)| npc_sync::Change::new(AgentId::from_index(*a), b, f, v.clone()))
                        .collect();
                    if let Ok(ids) = q.atomic(*t, &list) {
                        handles.extend(ids);
                    }
                }
                Raw::Decide(a, t) => { let _ = q.decide(AgentId::from_index(*a), *t); }
                Raw::Chat(a, s, x, t) => { let _ = q.chat(*t, AgentId::from_index(*a), s, x); }
                Raw::Remove(a) => { let _ = q.remove_agent(AgentId::from_index(*a)); }
                Raw::Poll(t) => { let _ = q.poll(*t); }
                Raw::Ack(r, cs) => {
                    let conf: Vec<Confirmed> = cs
                        .iter()
                        .map(|(a, b, f, v, s)| Confirmed {
                            agent: AgentId::from_index(*a),
                            block: b.clone(),
                            field: f.clone(),
                            value: v.clone(),
                            seq: Seq(*s),
                        })
                        .collect();
                    let _ = q.ack(RequestId(*r), &conf);
                }
                Raw::Fail(r, t, ra) => { let _ = q.fail(*t, RequestId(*r), *ra); }
            }
            let _ = q.metrics();
            let _ = q.drain_events();
        }
        // Still usable: a poll at the latest possible time answers.
        prop_assert!(q.poll(f64::MAX).is_ok());
    }
}
