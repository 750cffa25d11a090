//! The game side: NPCs that move, fight, run tool chains, gain and lose group members,
//! get chatted to and make LLM decisions, telling the queue every change as it happens.
//! The world also keeps its own record of every change, to judge the backend independently
//! of the queue.

use crate::backend::{Backend, FieldName};
use crate::calls::{CallLog, GameCall, GroupChange};
use crate::rng::Rng;
use crate::timeline::DecisionSample;
use npc_sync::{Change, ChangeId, Decision, Queue, Value};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behavior {
    Patrol,
    Combat,
    ToolChain,
    GroupChurn,
    Chat,
}

pub struct Npc {
    pub agent: npc_sync::AgentId,
    pub behavior: Behavior,
    x: f64,
    y: f64,
    tx: f64,
    ty: f64,
    idle_until: f64,
    health: f64,
    fight_until: f64,
    next_fight_at: f64,
    next_hit_at: f64,
    next_action_at: f64,
    next_heal_at: f64,
    next_decision_at: f64,
    waiting_since: Option<f64>,
    next_event_at: f64,
    members: BTreeSet<String>,
    pending_leaves: Vec<(f64, String)>,
    chat_left: u32,
    location: String,
}

/// What the world measured.
#[derive(Default)]
pub struct Tally {
    pub changes: u64,
    pub naive: u64,
    pub chat_sent: u64,
    pub decisions: u64,
    pub decisions_abandoned: u64,
    pub decision_waits: Vec<f64>,
    pub staleness_max: f64,
    pub staleness_max_combat: f64,
    pub freshness_violations: u64,
    pub groups: u64,
    pub dependencies: u64,
    /// Every decision that proceeded, for `--timeline`.
    pub decision_log: Vec<DecisionSample>,
}

pub struct World {
    pub npcs: Vec<Npc>,
    rng: Rng,
    /// The game's truth: every field's latest value.
    pub truth: BTreeMap<FieldName, Value>,
    /// Changes per field the backend may not have yet: (seq, made at, value).
    log: BTreeMap<FieldName, Vec<(u64, f64, Value)>>,
    pub tally: Tally,
    chat_counter: u64,
    combat_threshold: f64,
    threshold: f64,
    /// `--calls`: every call the game makes, for replaying the scenario elsewhere.
    pub calls: Option<CallLog>,
}

const DECISION_TIMEOUT_S: f64 = 5.0;

/// Every scenario `World::new` knows, in the order tools list them (`--list-scenarios`
/// prints them: the end-to-end runner and the benches ask the simulator instead of keeping
/// their own list).
pub const SCENARIOS: [&str; 6] = [
    "patrol",
    "combat",
    "tool-chain",
    "group-churn",
    "chat",
    "mixed",
];

impl World {
    pub fn new(q: &mut Queue, scenario: &str, npcs: u32, seed: u64) -> Result<World, String> {
        let mut rng = Rng::new(seed);
        let kinds: &[Behavior] = match scenario {
            "patrol" => &[Behavior::Patrol],
            "combat" => &[Behavior::Combat],
            "tool-chain" => &[Behavior::ToolChain],
            "group-churn" => &[Behavior::GroupChurn],
            "chat" => &[Behavior::Chat],
            "mixed" => &[
                Behavior::Patrol,
                Behavior::Combat,
                Behavior::ToolChain,
                Behavior::GroupChurn,
                Behavior::Chat,
            ],
            other => {
                return Err(format!(
                    "unknown scenario '{other}': use one of {}",
                    SCENARIOS.join(", ")
                ))
            }
        };
        let mut list = Vec::new();
        for i in 0..npcs {
            let agent = q
                .agent(&format!("agent-npc-{i:04}"))
                .map_err(|e| e.to_string())?;
            let behavior = kinds[i as usize % kinds.len()];
            list.push(Npc {
                agent,
                behavior,
                x: rng.range(0.0, 500.0),
                y: rng.range(0.0, 500.0),
                tx: rng.range(0.0, 500.0),
                ty: rng.range(0.0, 500.0),
                idle_until: 0.0,
                health: 100.0,
                fight_until: -1.0,
                next_fight_at: rng.range(0.0, 10.0),
                next_hit_at: 0.0,
                next_action_at: 0.0,
                next_heal_at: 0.0,
                next_decision_at: rng.range(0.0, 5.0),
                waiting_since: None,
                next_event_at: rng.range(0.0, 5.0),
                members: BTreeSet::new(),
                pending_leaves: Vec::new(),
                chat_left: 0,
                location: String::new(),
            });
        }
        let cfg = q.config();
        Ok(World {
            npcs: list,
            rng,
            truth: BTreeMap::new(),
            log: BTreeMap::new(),
            tally: Tally::default(),
            chat_counter: 0,
            combat_threshold: cfg.combat_freshness_s,
            threshold: cfg.freshness_s,
            calls: None,
        })
    }

    fn record(&mut self, id: ChangeId, block: &str, field: &str, value: Value, now: f64) {
        let name = (id.agent().index(), block.to_string(), field.to_string());
        self.log
            .entry(name.clone())
            .or_default()
            .push((id.seq().0, now, value.clone()));
        self.truth.insert(name, value);
        self.tally.changes += 1;
        self.tally.naive += 1;
    }

    /// Notes a call for `--calls` (a no-op without it).
    fn note(&mut self, now: f64, call: impl FnOnce() -> GameCall) {
        if let Some(log) = self.calls.as_mut() {
            log.note(now, call());
        }
    }

    fn set(&mut self, q: &mut Queue, now: f64, c: Change<'_>) -> ChangeId {
        let (block, field, value) = (c.block.to_string(), c.field.to_string(), c.value.clone());
        let (priority, after) = (c.priority, c.depends_on.first().map(|d| d.seq().0));
        let id = q.set(now, c).expect("valid change");
        self.note(now, || GameCall::Set {
            agent: name(q, id.agent()),
            block: block.clone(),
            field: field.clone(),
            value: value.clone(),
            priority,
            after,
            seq: id.seq().0,
        });
        self.record(id, &block, &field, value, now);
        id
    }

    fn set_health(&mut self, q: &mut Queue, now: f64, i: usize, h: f64) {
        let a = self.npcs[i].agent;
        self.npcs[i].health = h;
        let id = q.set_health(now, a, h).expect("valid health");
        self.note(now, || GameCall::Health {
            agent: name(q, a),
            value: h,
            seq: id.seq().0,
        });
        self.record(id, "status", "health", Value::Number(h), now);
    }

    fn set_state(&mut self, q: &mut Queue, now: f64, i: usize, s: &str) {
        let a = self.npcs[i].agent;
        let id = q.set_state(now, a, s).expect("valid state");
        self.note(now, || GameCall::State {
            agent: name(q, a),
            value: s.to_string(),
            seq: id.seq().0,
        });
        self.record(id, "status", "state", Value::str(s), now);
    }

    fn join(&mut self, q: &mut Queue, now: f64, i: usize, member: &str) {
        let a = self.npcs[i].agent;
        let id = q.join_group(now, a, member, &[]).expect("valid join");
        self.note(now, || GameCall::Join {
            agent: name(q, a),
            member: member.to_string(),
            seq: id.seq().0,
        });
        self.npcs[i].members.insert(member.to_string());
        self.record(
            id,
            "group_members",
            &format!("{member}.is_present"),
            Value::Bool(true),
            now,
        );
    }

    fn leave(&mut self, q: &mut Queue, now: f64, i: usize, member: &str) {
        let a = self.npcs[i].agent;
        let id = q.leave_group(now, a, member).expect("valid leave");
        self.note(now, || GameCall::Leave {
            agent: name(q, a),
            member: member.to_string(),
            seq: id.seq().0,
        });
        self.npcs[i].members.remove(member);
        self.record(
            id,
            "group_members",
            &format!("{member}.is_present"),
            Value::Cleared,
            now,
        );
    }

    /// One frame of game logic for every NPC.
    pub fn step(&mut self, q: &mut Queue, backend: &mut Backend, now: f64, dt: f64) {
        for i in 0..self.npcs.len() {
            self.walk(q, now, dt, i);
            match self.npcs[i].behavior {
                Behavior::Patrol => self.patrol(q, now, i),
                Behavior::Combat => self.combat(q, now, i),
                Behavior::ToolChain => self.tool_chain(q, backend, now, i),
                Behavior::GroupChurn => self.group_churn(q, now, i),
                Behavior::Chat => self.chat(q, now, i),
            }
            self.decide(q, backend, now, i);
        }
    }

    fn walk(&mut self, q: &mut Queue, now: f64, dt: f64, i: usize) {
        let n = &mut self.npcs[i];
        if now < n.idle_until {
            return;
        }
        let (dx, dy) = (n.tx - n.x, n.ty - n.y);
        let dist = (dx * dx + dy * dy).sqrt();
        let speed = 12.0;
        if dist < speed * dt {
            n.x = n.tx;
            n.y = n.ty;
            n.tx = self.rng.range(0.0, 500.0);
            n.ty = self.rng.range(0.0, 500.0);
            n.idle_until = now + self.rng.range(1.0, 5.0);
        } else {
            n.x += dx / dist * speed * dt;
            n.y += dy / dist * speed * dt;
        }
        let zone = ((n.x / 100.0) as i32) * 5 + (n.y / 100.0) as i32;
        let loc = format!("zone-{zone} ({},{})", n.x as i32, n.y as i32);
        if loc != n.location {
            n.location = loc.clone();
            let a = n.agent;
            let id = q.set_location(now, a, &loc).expect("valid location");
            self.note(now, || GameCall::Location {
                agent: name(q, a),
                value: loc.clone(),
                seq: id.seq().0,
            });
            self.record(id, "status", "location", Value::Str(loc), now);
        }
    }

    fn patrol(&mut self, q: &mut Queue, now: f64, i: usize) {
        if now >= self.npcs[i].next_event_at {
            self.npcs[i].next_event_at = now + self.rng.range(8.0, 20.0);
            let s = if self.rng.chance(0.5) {
                "Patrolling"
            } else {
                "Idle"
            };
            self.set_state(q, now, i, s);
            if self.rng.chance(0.3) {
                let a = self.npcs[i].agent;
                let text = format!("watching the gate, shift {}", self.rng.below(100));
                self.set(
                    q,
                    now,
                    Change::new(a, "status", "description", Value::Str(text)),
                );
            }
        }
    }

    fn combat(&mut self, q: &mut Queue, now: f64, i: usize) {
        let in_fight = now < self.npcs[i].fight_until;
        if !in_fight && self.npcs[i].fight_until > 0.0 {
            // The fight just ended.
            self.npcs[i].fight_until = -1.0;
            self.set_state(q, now, i, "Idle");
            self.npcs[i].next_fight_at = now + self.rng.range(5.0, 20.0);
            self.npcs[i].next_heal_at = now + 0.5;
        } else if !in_fight && now >= self.npcs[i].next_fight_at {
            self.npcs[i].fight_until = now + self.rng.range(15.0, 40.0);
            self.npcs[i].next_hit_at = now + self.rng.range(0.2, 1.0);
            self.npcs[i].next_action_at = now + self.rng.range(1.0, 3.0);
            self.set_state(q, now, i, "Combat");
        }
        if now < self.npcs[i].fight_until {
            if now >= self.npcs[i].next_hit_at {
                self.npcs[i].next_hit_at = now + self.rng.range(0.4, 1.5);
                let r = self.rng.unit();
                let dmg = if r < 0.7 {
                    self.rng.range(1.0, 9.0)
                } else if r < 0.9 {
                    self.rng.range(10.0, 19.0)
                } else {
                    self.rng.range(20.0, 35.0)
                };
                let h = (self.npcs[i].health - dmg.round()).max(0.0);
                let h = if h == 0.0 { 100.0 } else { h }; // respawn
                self.set_health(q, now, i, h);
            }
            if now >= self.npcs[i].next_action_at {
                self.npcs[i].next_action_at = now + self.rng.range(2.0, 4.0);
                let a = self.npcs[i].agent;
                let critical = self.rng.chance(0.05);
                let action = if critical { "flee" } else { "attack" };
                let id = q
                    .tool_result(
                        now,
                        a,
                        "status",
                        "last_action",
                        Value::str(action),
                        critical,
                    )
                    .expect("valid tool result");
                self.note(now, || GameCall::Tool {
                    agent: name(q, a),
                    block: "status".into(),
                    field: "last_action".into(),
                    value: Value::str(action),
                    critical,
                    seq: id.seq().0,
                });
                self.record(id, "status", "last_action", Value::str(action), now);
            }
        } else if self.npcs[i].health < 100.0 && now >= self.npcs[i].next_heal_at {
            self.npcs[i].next_heal_at = now + 0.5;
            let h = (self.npcs[i].health + 2.0).min(100.0);
            self.set_health(q, now, i, h);
        }
    }

    fn tool_chain(&mut self, q: &mut Queue, backend: &mut Backend, now: f64, i: usize) {
        self.leave_due(q, now, i);
        if now < self.npcs[i].next_event_at {
            return;
        }
        self.npcs[i].next_event_at = now + self.rng.range(6.0, 15.0);
        let a = self.npcs[i].agent;
        let partner = format!("agent-npc-{:04}", self.rng.below(self.npcs.len() as u64));
        let dest = format!("workshop-{}", self.rng.below(8));
        let present = format!("{partner}.is_present");
        // ActionRouter's tool chain: location, then status, then group, together.
        let group = [
            Change::new(a, "status", "location", Value::str(&dest))
                .priority(npc_sync::Priority::High),
            Change::new(a, "status", "state", Value::str("Working"))
                .priority(npc_sync::Priority::High),
            Change::new(a, "group_members", &present, Value::Bool(true))
                .priority(npc_sync::Priority::High),
        ];
        let ids = match q.atomic(now, &group) {
            Ok(ids) => ids,
            Err(e) => panic!("tool chain rejected: {e}"),
        };
        self.note(now, || GameCall::Atomic {
            changes: group
                .iter()
                .zip(&ids)
                .map(|(c, id)| GroupChange {
                    agent: name(q, a),
                    block: c.block.to_string(),
                    field: c.field.to_string(),
                    value: c.value.clone(),
                    priority: c.priority,
                    seq: id.seq().0,
                })
                .collect(),
        });
        let mut members = Vec::new();
        for (c, id) in group.iter().zip(&ids) {
            self.record(*id, c.block, c.field, c.value.clone(), now);
            members.push((
                (id.agent().index(), c.block.to_string(), c.field.to_string()),
                id.seq().0,
            ));
        }
        self.npcs[i].location = dest.clone();
        self.npcs[i].members.insert(partner.clone());
        self.tally.groups += 1;
        backend.watch_group(members);
        // The tool's result depends on the chain having reached the backend.
        let result = format!("crafted item {}", self.rng.below(1000));
        let c = Change::new(a, "inventory", "last_tool", Value::Str(result.clone()))
            .priority(npc_sync::Priority::High)
            .after(ids[1]);
        let rid = self.set(q, now, c);
        self.tally.dependencies += 1;
        backend.watch_dependency(
            (
                (a.index(), "inventory".into(), "last_tool".into()),
                rid.seq().0,
            ),
            (
                (a.index(), "status".into(), "state".into()),
                ids[1].seq().0,
                Value::str("Working"),
            ),
        );
        let t = now + self.rng.range(2.0, 5.0);
        self.npcs[i].pending_leaves.push((t, partner));
        self.npcs[i].idle_until = now + 2.0;
    }

    /// Members whose scheduled leave time has come leave.
    fn leave_due(&mut self, q: &mut Queue, now: f64, i: usize) {
        let n = &mut self.npcs[i];
        let due: Vec<String> = n
            .pending_leaves
            .iter()
            .filter(|(t, _)| *t <= now)
            .map(|(_, m)| m.clone())
            .collect();
        n.pending_leaves.retain(|(t, _)| *t > now);
        for m in due {
            if self.npcs[i].members.contains(&m) {
                self.leave(q, now, i, &m);
            }
        }
    }

    fn group_churn(&mut self, q: &mut Queue, now: f64, i: usize) {
        self.leave_due(q, now, i);
        if now < self.npcs[i].next_event_at {
            return;
        }
        self.npcs[i].next_event_at = now + self.rng.range(0.5, 3.0);
        let player = format!("player_{}", self.rng.below(40));
        if self.npcs[i].members.contains(&player) {
            self.leave(q, now, i, &player);
        } else {
            self.join(q, now, i, &player);
            if self.rng.chance(0.2) {
                // Walks past: joins and leaves inside one window.
                let t = now + self.rng.range(0.05, 0.3);
                self.npcs[i].pending_leaves.push((t, player));
            }
        }
    }

    fn chat(&mut self, q: &mut Queue, now: f64, i: usize) {
        if now < self.npcs[i].next_event_at {
            return;
        }
        if self.npcs[i].chat_left == 0 {
            self.npcs[i].chat_left = 1 + self.rng.below(6) as u32;
        }
        self.chat_counter += 1;
        let a = self.npcs[i].agent;
        let sender = format!("player_{}", self.rng.below(40));
        let text = format!("msg-{} from {sender}", self.chat_counter);
        q.chat(now, a, &sender, &text).expect("valid chat");
        self.note(now, || GameCall::Chat {
            agent: name(q, a),
            sender: sender.clone(),
            text: text.clone(),
        });
        self.tally.chat_sent += 1;
        self.tally.naive += 1;
        self.npcs[i].chat_left -= 1;
        self.npcs[i].next_event_at = if self.npcs[i].chat_left > 0 {
            now + self.rng.range(0.05, 0.7)
        } else {
            // The NPC answers: a decision right after the burst.
            self.npcs[i].next_decision_at = self.npcs[i].next_decision_at.min(now + 0.8);
            now + self.rng.range(4.0, 15.0)
        };
    }

    fn decide(&mut self, q: &mut Queue, backend: &Backend, now: f64, i: usize) {
        let n = &self.npcs[i];
        if n.waiting_since.is_none() && now < n.next_decision_at {
            return;
        }
        let a = n.agent;
        let combat = q.in_combat(a, now);
        let cadence = if combat {
            self.rng.range(1.5, 3.0)
        } else {
            self.rng.range(4.0, 8.0)
        };
        self.note(now, || GameCall::Decide { agent: name(q, a) });
        match q.decide(a, now).expect("valid decide") {
            Decision::Fresh { .. } => {
                let s = self.staleness(backend, a.index(), now);
                let threshold = if combat {
                    self.combat_threshold
                } else {
                    self.threshold
                };
                if s > threshold + 1e-9 {
                    self.tally.freshness_violations += 1;
                    if std::env::var("SIM_DEBUG").is_ok() {
                        let lo = (a.index(), String::new(), String::new());
                        let hi = (a.index() + 1, String::new(), String::new());
                        for (n, log) in self.log.range(lo..hi) {
                            eprintln!(
                                "violation at {now:.3}: {n:?} {:?} held {:?}",
                                log.first(),
                                backend.fields.get(n)
                            );
                        }
                    }
                }
                self.tally.decision_log.push(DecisionSample {
                    t: now,
                    agent: i as u32,
                    staleness_s: s,
                    threshold_s: threshold,
                    combat,
                });
                self.tally.staleness_max = self.tally.staleness_max.max(s);
                if combat {
                    self.tally.staleness_max_combat = self.tally.staleness_max_combat.max(s);
                }
                if let Some(w) = self.npcs[i].waiting_since.take() {
                    self.tally.decision_waits.push(now - w);
                } else {
                    self.tally.decision_waits.push(0.0);
                }
                self.tally.decisions += 1;
                self.npcs[i].next_decision_at = now + cadence;
            }
            Decision::Syncing { .. } => match self.npcs[i].waiting_since {
                None => self.npcs[i].waiting_since = Some(now),
                Some(w) if now - w > DECISION_TIMEOUT_S => {
                    // The NPC gives up on this decision rather than act on stale data.
                    self.tally.decisions_abandoned += 1;
                    self.npcs[i].waiting_since = None;
                    self.npcs[i].next_decision_at = now + cadence;
                }
                Some(_) => {}
            },
        }
    }

    /// Age of the agent's oldest change the backend does not have, judged from the
    /// backend's own state (independent of the queue). The backend has a change if it
    /// holds that change's sequence number or a later one, or if a later change that it
    /// holds (by sequence number or by equal value) superseded it.
    fn staleness(&mut self, backend: &Backend, agent: u32, now: f64) -> f64 {
        let lo = (agent, String::new(), String::new());
        let hi = (agent + 1, String::new(), String::new());
        let mut oldest = f64::INFINITY;
        for (name, log) in self.log.range_mut(lo..hi) {
            let (held, held_seq) = backend
                .fields
                .get(name)
                .cloned()
                .unwrap_or((Value::Cleared, 0));
            // The newest change the backend has; everything up to it is had.
            let had = log
                .iter()
                .rposition(|(seq, _, v)| *seq <= held_seq || *v == held);
            if let Some(h) = had {
                log.drain(..=h);
            }
            if let Some((_, at, _)) = log.first() {
                oldest = oldest.min(*at);
            }
        }
        if oldest.is_finite() {
            (now - oldest).max(0.0)
        } else {
            0.0
        }
    }
}

/// The backend id of a world NPC (every one is registered in `World::new`).
fn name(q: &Queue, a: npc_sync::AgentId) -> String {
    q.agent_name(a).unwrap_or_default().to_string()
}
