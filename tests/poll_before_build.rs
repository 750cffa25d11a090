//! `poll_before_build` stops before building a request and changes nothing a poll depends
//! on: a queue polled through it (and through `poll` when it stops) gives exactly what a
//! queue polled through `poll` gives, over random traces of every kind of call.

use npc_sync::{
    AgentId, Change, ChangeId, Config, Priority, Queue, RequestId, RequestKind, Target, Value,
};

mod common;
use common::Lcg;

const FIELDS: [(&str, &str); 4] = [
    ("status", "location"),
    ("status", "x"),
    ("status", "health"),
    ("mood", "level"),
];

fn value(rng: &mut Lcg, field: &str) -> Value {
    if field == "health" {
        return Value::Number(rng.below(100) as f64);
    }
    match rng.below(6) {
        0 => Value::Cleared,
        1 => Value::Bool(rng.below(2) == 0),
        2 => Value::str(["gate", "market"][rng.below(2) as usize]),
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

/// Everything observable of one run, as text, and how often the poll stopped.
fn run(seed: u64, target: Target, tight: bool, stop_first: bool) -> (Vec<String>, u32) {
    let mut rng = Lcg(seed);
    // A tight budget makes many polls wait for a call: those must not stop.
    let (budget_per_minute, budget_burst) = if tight { (12, 2) } else { (400, 40) };
    let cfg = Config {
        target,
        budget_per_minute,
        budget_burst,
        ..Config::default()
    };
    let mut q = Queue::new(cfg).unwrap();
    let mut log = Vec::new();
    let agents: Vec<AgentId> = (0..4)
        .map(|i| q.agent(&format!("npc-{i}")).unwrap())
        .collect();
    let (mut now, mut stops) = (0.0, 0);
    let mut ids: Vec<ChangeId> = Vec::new();
    let mut in_flight: Vec<RequestId> = Vec::new();
    for step in 0..600 {
        now += rng.below(400) as f64 / 1000.0;
        match rng.below(16) {
            0..=7 => {
                let a = agents[rng.below(4) as usize];
                let (b, f) = FIELDS[rng.below(FIELDS.len() as u64) as usize];
                let mut c = Change::new(a, b, f, value(&mut rng, f)).priority(priority(&mut rng));
                if !ids.is_empty() && rng.below(6) == 0 {
                    c.depends_on = vec![ids[rng.below(ids.len() as u64) as usize]];
                }
                let r = q.set(now, c);
                if let Ok(id) = &r {
                    ids.push(*id);
                }
                log.push(format!("{step} set {r:?}"));
            }
            8 => {
                let a = agents[rng.below(4) as usize];
                let r = q.set_health(now, a, rng.below(100) as f64);
                log.push(format!("{step} health {r:?}"));
            }
            9 => {
                let a = agents[rng.below(4) as usize];
                let r = q.chat(now, a, "player", "hello");
                log.push(format!("{step} chat {r:?}"));
            }
            10..=12 => {
                let r = if stop_first {
                    match q.poll_before_build(now).unwrap() {
                        Some(r) => {
                            // It stops before any request that carries changes.
                            assert!(r.iter().all(|x| x.kind == RequestKind::Inference), "{r:?}");
                            r
                        }
                        None => {
                            stops += 1;
                            q.poll(now).unwrap()
                        }
                    }
                } else {
                    q.poll(now).unwrap()
                };
                in_flight.extend(r.iter().map(|x| x.id));
                log.push(format!("{step} poll {r:?} next {}", q.next_poll()));
            }
            13 if !in_flight.is_empty() => {
                let id = in_flight.remove(rng.below(in_flight.len() as u64) as usize);
                log.push(format!("{step} ack {:?}", q.ack(id, &[])));
            }
            14 if !in_flight.is_empty() => {
                let id = in_flight.remove(rng.below(in_flight.len() as u64) as usize);
                let ra = if rng.below(3) == 0 { Some(1.5) } else { None };
                log.push(format!("{step} fail {:?}", q.fail(now, id, ra)));
            }
            _ => {
                let a = agents[rng.below(4) as usize];
                log.push(format!("{step} decide {:?}", q.decide(a, now)));
            }
        }
    }
    log.push(format!("metrics {:?}", q.metrics()));
    (log, stops)
}

#[test]
fn a_poll_that_stops_before_building_changes_nothing() {
    let mut stops = 0;
    for target in [Target::BatchEndpoint, Target::LettaApi] {
        for tight in [false, true] {
            for seed in 0..80 {
                let (plain, _) = run(seed, target, tight, false);
                let (stopping, n) = run(seed, target, tight, true);
                stops += n;
                assert_eq!(plain.len(), stopping.len());
                for (a, b) in plain.iter().zip(&stopping) {
                    assert_eq!(a, b, "seed {seed}, {target:?}, tight budget {tight}");
                }
            }
        }
    }
    // The traces do reach the stop (else the comparison above proves nothing).
    assert!(stops > 1000, "only {stops} polls stopped before building");
}

#[test]
fn a_poll_with_nothing_to_build_does_not_stop() {
    let mut q = Queue::new(Config::default()).unwrap();
    let a = q.agent("npc-1").unwrap();
    q.set_location(0.0, a, "gate").unwrap();
    // The first poll schedules the routine batch; nothing is due yet.
    assert_eq!(q.poll_before_build(0.0).unwrap(), Some(vec![]));
    assert_eq!(q.poll_before_build(1.0).unwrap(), Some(vec![]));
    // The routine batch is due at 30 s: the poll stops, then `poll` builds it.
    assert_eq!(q.poll_before_build(30.0).unwrap(), None);
    let sent = q.poll(30.0).unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].changes.len(), 1);
    // A decision sync opens an urgent request.
    q.set_location(31.0, a, "market").unwrap();
    let _ = q.decide(a, 50.0).unwrap();
    assert_eq!(q.poll_before_build(50.0).unwrap(), None);
}
