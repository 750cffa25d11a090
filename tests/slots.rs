//! Field slots: `set_slot` is `set` of the slot's field. The same random traces (changes of
//! every value kind and priority, dependencies, polls, acks, failures with and without
//! Retry-After, decisions, bad input) run once through `set` and once through `set_slot`
//! must give the same results, requests, errors and metrics.

use npc_sync::{AgentId, Change, ChangeId, Config, Priority, Queue, RequestId, Slot, Value};

mod common;
use common::Lcg;

const FIELDS: [(&str, &str); 3] = [("status", "location"), ("status", "x"), ("mood", "level")];

fn value(rng: &mut Lcg) -> Value {
    match rng.below(8) {
        0 => Value::Cleared,
        1 => Value::Bool(rng.below(2) == 0),
        2 => Value::str(["gate", "market"][rng.below(2) as usize]),
        3 if rng.below(10) == 0 => Value::Number(f64::NAN),
        _ => Value::Number(rng.below(4) as f64),
    }
}

fn priority(rng: &mut Lcg) -> Priority {
    match rng.below(10) {
        0 => Priority::Critical,
        1 | 2 => Priority::High,
        3 => Priority::Low,
        _ => Priority::Normal,
    }
}

/// Everything observable of one run, as text.
fn run(seed: u64, slots: bool) -> Vec<String> {
    let mut rng = Lcg(seed);
    let mut q = Queue::new(Config::default()).unwrap();
    let mut log = Vec::new();
    // The same symbols in the same order in both runs.
    let mut keys = Vec::new();
    let agents: Vec<AgentId> = (0..3)
        .map(|i| q.agent(&format!("npc-{i}")).unwrap())
        .collect();
    for a in &agents {
        for (b, f) in FIELDS {
            let (bs, fs) = (q.intern(b).unwrap(), q.intern(f).unwrap());
            keys.push((*a, b, f, q.slot(*a, bs, fs).unwrap()));
        }
    }
    let mut now = 0.0;
    let mut ids: Vec<ChangeId> = Vec::new();
    let mut in_flight: Vec<RequestId> = Vec::new();
    for step in 0..400 {
        now += rng.below(300) as f64 / 1000.0;
        match rng.below(12) {
            0..=6 => {
                let (a, b, f, slot): (AgentId, &str, &str, Slot) =
                    keys[rng.below(keys.len() as u64) as usize];
                let v = value(&mut rng);
                let p = priority(&mut rng);
                let deps: Vec<ChangeId> = if !ids.is_empty() && rng.below(5) == 0 {
                    vec![ids[rng.below(ids.len() as u64) as usize]]
                } else {
                    vec![]
                };
                // Now and then a time from the past: an error either way.
                let t = if rng.below(50) == 0 { now - 1.0 } else { now };
                let r = if slots {
                    q.set_slot(t, slot, v, p, &deps)
                } else {
                    let mut c = Change::new(a, b, f, v).priority(p);
                    c.depends_on = deps;
                    q.set(t, c)
                };
                if let Ok(id) = &r {
                    ids.push(*id);
                }
                log.push(format!("{step} set {r:?}"));
            }
            7 | 8 => {
                let r = q.poll(now).unwrap();
                in_flight.extend(r.iter().map(|x| x.id));
                log.push(format!("{step} poll {r:?}"));
            }
            9 if !in_flight.is_empty() => {
                let id = in_flight.remove(rng.below(in_flight.len() as u64) as usize);
                log.push(format!("{step} ack {:?}", q.ack(id, &[])));
            }
            10 if !in_flight.is_empty() => {
                let id = in_flight.remove(rng.below(in_flight.len() as u64) as usize);
                let ra = if rng.below(3) == 0 { Some(1.5) } else { None };
                log.push(format!("{step} fail {:?}", q.fail(now, id, ra)));
            }
            _ => {
                let a = agents[rng.below(3) as usize];
                log.push(format!("{step} decide {:?}", q.decide(a, now)));
            }
        }
    }
    log.push(format!("metrics {:?}", q.metrics()));
    log
}

#[test]
fn set_slot_is_set_of_the_slots_field() {
    for seed in 0..150 {
        let by_name = run(seed, false);
        let by_slot = run(seed, true);
        assert_eq!(by_name.len(), by_slot.len());
        for (a, b) in by_name.iter().zip(&by_slot) {
            assert_eq!(a, b, "seed {seed}");
        }
    }
}

#[test]
fn slots_are_checked() {
    let mut q = Queue::new(Config::default()).unwrap();
    let a = q.agent("npc-1").unwrap();
    let status = q.intern("status").unwrap();
    let empty = q.intern("").unwrap();
    let x = q.intern("x").unwrap();
    // The same field gives the same slot; names are checked once, here.
    assert_eq!(q.slot(a, status, x).unwrap(), q.slot(a, status, x).unwrap());
    let e = q.slot(a, status, empty).unwrap_err();
    assert!(e.to_string().contains("field name"), "{e}");
    let e = q
        .set_slot(
            0.0,
            Slot::from_index(99),
            Value::Bool(true),
            Priority::Normal,
            &[],
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "slot handle #99 was not issued by this queue"
    );
    let s = q.slot(a, status, x).unwrap();
    q.remove_agent(a).unwrap();
    let e = q
        .set_slot(0.0, s, Value::Bool(true), Priority::Normal, &[])
        .unwrap_err();
    assert_eq!(e.to_string(), "agent 'npc-1' was removed");
}
