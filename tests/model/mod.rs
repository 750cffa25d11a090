//! The model the property tests and the core fuzz driver check the queue against: random
//! operations ([`Op`]) applied to the queue and to an independent model kept by the test
//! (local values, a simulated backend that applies a field only when its sequence number
//! is higher, every change's time), with invariants 1 to 5 and 7 of `docs/semantics.md`
//! checked after every step and at the end. Written once, driven by proptest
//! (`tests/properties.rs`) and by a seeded byte fuzzer (`tests/fuzz_core.rs`).
#![allow(dead_code)]

mod backend;
mod checks;
mod ops;

use npc_sync::{
    AgentId, ChangeId, Config, Confirmed, Decision, Priority, Queue, Request, RequestId,
    RequestKind, RollingWindow, Seq, Target, Value,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

pub const SLOTS: u8 = 4;
pub const BLOCKS: [&str; 3] = ["status", "persona", "mood"];
pub const FIELDS: [&str; 3] = ["location", "x", "y"];
pub const MEMBERS: [&str; 2] = ["p1", "p2"];
pub const STATES: [&str; 3] = ["Idle", "Patrol", "Combat"];
pub const EPS: f64 = 1e-9;

pub fn value(v: u8) -> Value {
    match v % 10 {
        0..=3 => Value::Number((v % 10) as f64),
        4..=6 => Value::Str(format!("s{}", v % 10)),
        7 => Value::Bool(true),
        8 => Value::Bool(false),
        _ => Value::Cleared,
    }
}

pub fn priority(p: u8) -> Priority {
    match p % 4 {
        0 => Priority::Low,
        1 => Priority::Normal,
        2 => Priority::High,
        _ => Priority::Critical,
    }
}

#[derive(Clone, Debug)]
pub enum Op {
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

/// A field, named by text so that the model is independent of the queue's handles.
pub type FKey = (String, String, String);

pub fn key(agent: &str, block: &str, field: &str) -> FKey {
    (agent.to_string(), block.to_string(), field.to_string())
}

pub struct Group {
    changes: Vec<(FKey, u64)>,
    emitted: bool,
}

pub struct DepRec {
    dependent: FKey,
    dseq: u64,
    on: FKey,
    on_seq: u64,
    checked: bool,
}

/// The queue, a simulated backend and the test's own model of what must be true.
pub struct Sim {
    pub q: Queue,
    pub now: f64,
    pub slots: Vec<Option<AgentId>>,
    pub gens: Vec<u32>,
    pub dead_agents: Vec<AgentId>,
    pub names: BTreeMap<AgentId, String>,
    pub handles: Vec<ChangeId>,
    pub in_flight: Vec<Request>,
    pub log: String,
    /// Latest local value of each field: (value, seq).
    pub local: BTreeMap<FKey, (Value, u64)>,
    /// What each sequence number set.
    pub seq_value: BTreeMap<u64, (FKey, Value)>,
    /// Changes made since the field was last seen in sync with the backend: (seq, time).
    pub unsynced: BTreeMap<FKey, Vec<(u64, f64)>>,
    /// The local seq at the last moment the backend held the local value.
    pub synced_seq: BTreeMap<FKey, u64>,
    /// The simulated backend: (value, seq) per field.
    pub backend: BTreeMap<FKey, (Value, u64)>,
    /// Highest seq the queue sent per field.
    pub max_sent: BTreeMap<FKey, u64>,
    pub groups: Vec<Group>,
    pub deps: Vec<DepRec>,
    /// Calls of every request, and of routine batches, over the rolling minute.
    pub calls: RollingWindow,
    pub routine_calls: RollingWindow,
    pub removed: BTreeSet<String>,
    pub state: BTreeMap<String, String>,
    pub chat_sent: BTreeMap<String, Vec<String>>,
    pub chat_delivered: BTreeMap<String, Vec<String>>,
    pub chat_counter: u32,
    pub cfg: Config,
    /// The latest time the queue accepted.
    pub seen: f64,
    /// Dependencies the queue reported released: (dependent seq, dependency seq).
    pub released: BTreeSet<(u64, u64)>,
}

impl Sim {
    pub fn new(cfg: Config) -> Sim {
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
            calls: RollingWindow::new(),
            routine_calls: RollingWindow::new(),
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
    pub fn agent(&mut self, slot: u8) -> AgentId {
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

    pub fn name(&self, a: AgentId) -> String {
        self.names[&a].clone()
    }

    pub fn changes_in(&mut self) -> u64 {
        self.q.metrics().changes_in
    }

    /// Records one change the queue accepted.
    pub fn record(&mut self, k: FKey, v: Value, seq: u64) {
        assert!(!self.seq_value.contains_key(&seq), "seq {seq} issued twice");
        self.seq_value.insert(seq, (k.clone(), v.clone()));
        self.local.insert(k.clone(), (v, seq));
        self.unsynced.entry(k).or_default().push((seq, self.now));
    }

    pub fn backend_value(&self, k: &FKey) -> (Value, u64) {
        self.backend.get(k).cloned().unwrap_or((Value::Cleared, 0))
    }

    /// After every step: fields whose backend value equals the local one are in sync.
    pub fn observe_sync(&mut self) {
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
    pub fn model_staleness(&self, name: &str) -> f64 {
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

    /// One operation, then the model's view of which fields are in sync.
    pub fn step(&mut self, op: &Op) {
        match op {
            Op::Set {
                slot,
                block,
                field,
                value,
                prio,
                dep,
            } => self.set_field(*slot, *block, *field, *value, *prio, *dep),
            Op::Health { slot, hp } => self.set_health(*slot, *hp),
            Op::State { slot, state } => self.set_state(*slot, *state),
            Op::Join { slot, member, role } => self.join(*slot, *member, *role),
            Op::Leave { slot, member } => self.leave(*slot, *member),
            Op::Tool {
                slot,
                field,
                value,
                critical,
            } => self.tool_result(*slot, *field, *value, *critical),
            Op::Atomic { changes, dep } => self.atomic(changes, *dep),
            Op::Decide { slot } => self.decide(*slot),
            Op::Chat { slot, n } => self.chat(*slot, *n),
            Op::Remove { slot } => self.remove_agent(*slot),
            Op::Advance { dt } => self.now += dt,
            Op::Poll => self.poll(),
            Op::Outcome {
                pick,
                kind,
                retry_after,
            } => self.outcome(*pick, *kind, *retry_after),
            Op::Bad { which } => self.bad(*which),
        }
        self.observe_sync();
    }
}

/// The project's batch endpoint with a small budget and small requests, so that pacing,
/// the rolling window and the size caps all bite.
pub fn small_config() -> Config {
    Config {
        budget_per_minute: 12,
        budget_burst: 3,
        max_agent_blocks_per_request: 3,
        ..Config::default()
    }
}

pub fn tight_config() -> Config {
    Config {
        target: Target::LettaApi,
        budget_per_minute: 30,
        budget_burst: 6,
        ..Config::default()
    }
}

pub fn run(cfg: Config, ops: &[Op]) -> Sim {
    let mut sim = Sim::new(cfg);
    for op in ops {
        sim.step(op);
    }
    sim
}
