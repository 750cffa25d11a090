//! A simulated memory backend: answers after a latency, fails at a given rate, applies a
//! field only when its sequence number is higher, and checks what a real backend would
//! notice: split atomic groups, changes delivered before their dependencies, values older
//! than ones it holds.

use crate::rng::Rng;
use npc_sync::{Request, RequestId, RequestKind, Value};
use std::collections::BTreeMap;

/// (agent index, block, field)
pub type FieldName = (u32, String, String);

#[derive(Clone, Debug)]
pub enum Outcome {
    Ok,
    /// 5xx: nothing applied.
    ServerError,
    /// 429 with Retry-After: nothing applied.
    RateLimited(f64),
    /// Applied, but the response was lost (timeout): the queue sees a failure.
    LostResponse,
}

pub struct InFlight {
    pub request: Request,
    pub arrive_at: f64,
    pub respond_at: f64,
    pub outcome: Outcome,
    pub applied: bool,
}

struct GroupWatch {
    members: Vec<(FieldName, u64)>,
    undelivered: usize,
    delivered: Vec<bool>,
}

struct DepWatch {
    dependent: (FieldName, u64),
    dependency: (FieldName, u64, Value),
    checked: bool,
}

#[derive(Default)]
pub struct Checks {
    pub stale_overwrites: u64,
    pub rejected_late: u64,
    pub split_groups: u64,
    pub groups_delivered: u64,
    pub dependency_violations: u64,
    pub dependencies_delivered: u64,
    pub chat_delivered: u64,
}

pub struct Backend {
    rng: Rng,
    fail_rate: f64,
    pub fields: BTreeMap<FieldName, (Value, u64)>,
    pub in_flight: Vec<InFlight>,
    groups: Vec<GroupWatch>,
    group_watch: BTreeMap<FieldName, Vec<usize>>,
    deps: Vec<DepWatch>,
    dep_watch: BTreeMap<FieldName, Vec<usize>>,
    /// Chat message ids delivered (a lost response may deliver twice; counted once).
    pub chat_seen: std::collections::BTreeSet<String>,
    pub checks: Checks,
    /// Highest seq the queue has been told is acknowledged, per field (the queue must never
    /// send older than that).
    acked_known: BTreeMap<FieldName, u64>,
}

pub fn field_name(
    q: &npc_sync::Queue,
    agent: u32,
    block: npc_sync::Sym,
    field: npc_sync::Sym,
) -> FieldName {
    (agent, q.text(block).to_string(), q.text(field).to_string())
}

impl Backend {
    pub fn new(seed: u64, fail_rate: f64) -> Self {
        Backend {
            rng: Rng::new(seed.wrapping_mul(31).wrapping_add(7)),
            fail_rate,
            fields: BTreeMap::new(),
            in_flight: Vec::new(),
            groups: Vec::new(),
            group_watch: BTreeMap::new(),
            deps: Vec::new(),
            dep_watch: BTreeMap::new(),
            chat_seen: Default::default(),
            checks: Checks::default(),
            acked_known: BTreeMap::new(),
        }
    }

    pub fn watch_group(&mut self, members: Vec<(FieldName, u64)>) {
        let i = self.groups.len();
        for (f, _) in &members {
            self.group_watch.entry(f.clone()).or_default().push(i);
        }
        let n = members.len();
        self.groups.push(GroupWatch {
            members,
            undelivered: n,
            delivered: vec![false; n],
        });
    }

    pub fn watch_dependency(
        &mut self,
        dependent: (FieldName, u64),
        dependency: (FieldName, u64, Value),
    ) {
        let i = self.deps.len();
        self.dep_watch
            .entry(dependent.0.clone())
            .or_default()
            .push(i);
        self.deps.push(DepWatch {
            dependent,
            dependency,
            checked: false,
        });
    }

    /// The bridge sends a request: it arrives after a latency and is answered after another.
    pub fn send(&mut self, q: &npc_sync::Queue, now: f64, request: Request) {
        for c in &request.changes {
            let name = field_name(q, c.agent.index(), c.block, c.field);
            if let Some(k) = self.acked_known.get(&name) {
                if c.seq.0 < *k {
                    self.checks.stale_overwrites += 1;
                }
            }
        }
        let up = self.rng.range(0.03, 0.15);
        let down = self.rng.range(0.03, 0.15);
        let outcome = if self.rng.chance(self.fail_rate) {
            let r = self.rng.unit();
            if r < 0.6 {
                Outcome::ServerError
            } else if r < 0.85 {
                Outcome::RateLimited(self.rng.range(1.0, 3.0))
            } else {
                Outcome::LostResponse
            }
        } else {
            Outcome::Ok
        };
        self.in_flight.push(InFlight {
            request,
            arrive_at: now + up,
            respond_at: now + up + down,
            outcome,
            applied: false,
        });
    }

    /// Applies what has arrived by `now` and returns the responses due, in order.
    pub fn step(&mut self, q: &npc_sync::Queue, now: f64) -> Vec<(RequestId, Outcome)> {
        let mut arrivals: Vec<usize> = (0..self.in_flight.len())
            .filter(|&i| !self.in_flight[i].applied && self.in_flight[i].arrive_at <= now)
            .collect();
        arrivals.sort_by(|a, b| {
            let (x, y) = (&self.in_flight[*a], &self.in_flight[*b]);
            x.arrive_at
                .total_cmp(&y.arrive_at)
                .then(x.request.id.cmp(&y.request.id))
        });
        for i in arrivals {
            self.in_flight[i].applied = true;
            let applies = matches!(
                self.in_flight[i].outcome,
                Outcome::Ok | Outcome::LostResponse
            );
            if applies {
                let req = self.in_flight[i].request.clone();
                self.apply(q, &req);
            }
        }
        let mut responses = Vec::new();
        let mut keep = Vec::new();
        let mut due: Vec<InFlight> = Vec::new();
        for f in self.in_flight.drain(..) {
            if f.applied && f.respond_at <= now {
                due.push(f);
            } else {
                keep.push(f);
            }
        }
        self.in_flight = keep;
        due.sort_by(|x, y| {
            x.respond_at
                .total_cmp(&y.respond_at)
                .then(x.request.id.cmp(&y.request.id))
        });
        for f in due {
            if matches!(f.outcome, Outcome::Ok) {
                for c in &f.request.changes {
                    let name = field_name(q, c.agent.index(), c.block, c.field);
                    let k = self.acked_known.entry(name).or_insert(0);
                    *k = (*k).max(c.seq.0);
                }
            }
            responses.push((f.request.id, f.outcome));
        }
        responses
    }

    fn apply(&mut self, q: &npc_sync::Queue, req: &Request) {
        if req.kind == RequestKind::Inference {
            for m in &req.messages {
                if self.chat_seen.insert(m.text.clone()) {
                    self.checks.chat_delivered += 1;
                }
            }
            return;
        }
        let names: Vec<FieldName> = req
            .changes
            .iter()
            .map(|c| field_name(q, c.agent.index(), c.block, c.field))
            .collect();
        let mut completed_groups: Vec<usize> = Vec::new();
        for (c, name) in req.changes.iter().zip(&names) {
            let held = self.fields.get(name).map(|v| v.1).unwrap_or(0);
            if c.seq.0 <= held {
                self.checks.rejected_late += 1;
                continue;
            }
            // Dependencies of this change must already be there.
            if let Some(ws) = self.dep_watch.get(name) {
                for &w in ws {
                    let d = &mut self.deps[w];
                    if !d.checked && d.dependent.1 <= c.seq.0 {
                        d.checked = true;
                        self.checks.dependencies_delivered += 1;
                        let (pf, ps, pv) = &d.dependency;
                        let ok = match self.fields.get(pf) {
                            Some((v, s)) => *s >= *ps || v == pv,
                            None => *pv == Value::Cleared,
                        };
                        if !ok {
                            self.checks.dependency_violations += 1;
                        }
                    }
                }
            }
            self.fields.insert(name.clone(), (c.value.clone(), c.seq.0));
            if let Some(ws) = self.group_watch.get(name) {
                for &w in ws {
                    let g = &mut self.groups[w];
                    for (m, (mf, ms)) in g.members.iter().enumerate() {
                        if !g.delivered[m] && mf == name && *ms <= c.seq.0 {
                            g.delivered[m] = true;
                            g.undelivered -= 1;
                            if g.undelivered == 0 {
                                completed_groups.push(w);
                            }
                        }
                    }
                }
            }
        }
        // A group is whole if the request that completed it holds every member, in order.
        for w in completed_groups {
            self.checks.groups_delivered += 1;
            let g = &self.groups[w];
            let mut last = None;
            let mut whole = true;
            for (mf, ms) in &g.members {
                let pos = req
                    .changes
                    .iter()
                    .zip(&names)
                    .position(|(c, n)| n == mf && c.seq.0 >= *ms);
                match (pos, last) {
                    (None, _) => whole = false,
                    (Some(p), Some(l)) if p < l => whole = false,
                    (Some(p), _) => last = Some(p),
                }
            }
            if !whole {
                self.checks.split_groups += 1;
                if std::env::var("SIM_DEBUG").is_ok() {
                    eprintln!(
                        "split group {:?} completed by request {:?}:",
                        g.members, req.id
                    );
                    for (c, n) in req.changes.iter().zip(&names) {
                        eprintln!("    {n:?} seq {} group {:?}", c.seq.0, c.group);
                    }
                }
            }
        }
    }
}
