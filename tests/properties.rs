//! Property tests over random traces: invariants 1 to 7 of `semantics.md` checked against
//! an independent model kept by the test (local values, a simulated backend that applies a
//! field only when its sequence number is higher, every change's time), plus determinism
//! (invariant 8, natively) and "nothing panics".
//!
//! Case counts are modest by default; `PROPTEST_CASES` overrides them.

use npc_sync::{
    AgentId, ChangeId, Config, Confirmed, Decision, Queue, RequestId, RequestKind, Seq, Value,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

mod model;
use model::*;

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
