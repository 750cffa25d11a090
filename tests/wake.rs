//! The wake: a poll returns at once while nothing can be due (the queue is not dirty and
//! its wake is later), so the per-frame poll costs nothing in a quiet frame. That is only
//! right if such a poll would have done nothing anyway: random traces of every kind of
//! call, polled every frame through `poll` and through `poll_everything` (a full poll every
//! time, with no pass taking a shortcut), must give the same requests, answers, events and
//! metrics. With a tight budget too (most polls then wait for a call: a poll waiting for the
//! budget does not look at the units), and with acks whose confirmations name other values
//! than the ones sent (a pending unit may then need no send any more, without a change).

use npc_sync::{
    AgentId, Change, ChangeId, Config, Confirmed, Priority, Queue, Request, RequestId, Target,
    Value,
};

mod common;
use common::Lcg;

/// The random traces' setting.
#[derive(Clone, Copy, Debug)]
struct Setting {
    target: Target,
    /// 20 calls a minute, a burst of 2 (else 400 and 40): most polls wait for a call.
    tight: bool,
    /// Requests of at most two agent-blocks.
    small: bool,
    /// Hits, combat states and decisions where other steps would do nothing.
    fight: bool,
    /// Now and then a change that depends on an earlier one. While a pending unit has
    /// dependencies a change may let it go (a new unit of the field it waits on, which it
    /// may ride with), release one (a dependency on its own field's earlier change) or break
    /// a cycle, wherever the change is: every change then makes the queue dirty
    /// (`wake_after`), a poll that sent something wakes the next one, and neither a
    /// decision sync nor a critical unit's debounce end waits for the budget's next call
    /// (`first_call`; the case `a_decision_sync_with_a_dependency_cycle_polls_at_once`). Before that rule these settings differed
    /// from the full poll at the first seeds (seed 3: an urgent request a frame late, its
    /// unit waiting on a field that a change gave a new unit); with the queue made dirty
    /// only for a change starting a unit, seed 73 still did (a change joining its field's
    /// unit with a dependency on that field's earlier change: released a poll late).
    deps: bool,
}

const FIELDS: [(&str, &str); 3] = [("status", "location"), ("status", "x"), ("mood", "level")];

fn value(rng: &mut Lcg) -> Value {
    match rng.below(6) {
        0 => Value::Cleared,
        1 => Value::Bool(rng.below(2) == 0),
        2 => Value::str(["gate", "market"][rng.below(2) as usize]),
        _ => Value::Number(rng.below(4) as f64),
    }
}

fn priority(rng: &mut Lcg) -> Priority {
    match rng.below(12) {
        0 => Priority::Critical,
        1 | 2 => Priority::High,
        3 => Priority::Low,
        _ => Priority::Normal,
    }
}

/// Everything observable of one run, as text. With `small`, a request holds at most two
/// agent-blocks (of the five agents' ten), so requests fill up and units of agents already
/// in a full one ride along (the urgent pass then looks at those only).
///
/// With `fight`, the steps that would do nothing are hits, combat states and decisions
/// instead: the urgent agents outnumber the tight budget's calls, as in a fight (polls
/// then mostly wait for the budget, and hits and decisions come while they do).
fn run(seed: u64, setting: Setting, full: bool) -> Vec<String> {
    let Setting {
        target,
        tight,
        small,
        fight,
        deps,
    } = setting;
    let mut rng = Lcg(seed);
    let (budget_per_minute, budget_burst) = if tight { (20, 2) } else { (400, 40) };
    let defaults = Config::default();
    let cfg = Config {
        target,
        budget_per_minute,
        budget_burst,
        max_agent_blocks_per_request: if small {
            2
        } else {
            defaults.max_agent_blocks_per_request
        },
        ..defaults
    };
    let mut q = Queue::new(cfg).unwrap();
    let mut log = Vec::new();
    let agents: Vec<AgentId> = (0..5)
        .map(|i| q.agent(&format!("npc-{i}")).unwrap())
        .collect();
    let (status, x) = (q.intern("status").unwrap(), q.intern("x").unwrap());
    let x_slots: Vec<_> = agents
        .iter()
        .map(|a| q.slot(*a, status, x).unwrap())
        .collect();
    let mut health = [100.0f64; 5];
    let mut now = 0.0;
    let mut ids: Vec<ChangeId> = Vec::new();
    let mut in_flight: Vec<Request> = Vec::new();
    for step in 0..1500 {
        // Mostly frames; now and then a long quiet stretch.
        now += if rng.below(40) == 0 {
            rng.below(20_000) as f64 / 1000.0
        } else {
            1.0 / 60.0
        };
        let i = rng.below(5) as usize;
        let a = agents[i];
        let r = match rng.below(100) {
            r @ 64.. if fight => 30 + (r - 64) % 20,
            r => r,
        };
        let entry = match r {
            0..=14 => {
                // The per-frame change, through the slot path (its one-pass shortcut).
                let r = q.set_slot(
                    now,
                    x_slots[i],
                    Value::Number(rng.below(50) as f64),
                    Priority::Normal,
                    &[],
                );
                format!("slot {r:?}")
            }
            15..=29 => {
                let (b, f) = FIELDS[rng.below(3) as usize];
                let mut c = Change::new(a, b, f, value(&mut rng)).priority(priority(&mut rng));
                if deps && !ids.is_empty() && rng.below(8) == 0 {
                    c.depends_on = vec![ids[rng.below(ids.len() as u64) as usize]];
                }
                let r = q.set(now, c);
                if let Ok(id) = &r {
                    ids.push(*id);
                }
                format!("set {r:?}")
            }
            30..=41 => {
                // Hits of 1 to 35 points and heals, as in a fight.
                health[i] = if rng.below(5) == 0 {
                    (health[i] + rng.below(30) as f64).min(100.0)
                } else {
                    (health[i] - 1.0 - rng.below(35) as f64).max(0.0)
                };
                format!("health {:?}", q.set_health(now, a, health[i]))
            }
            42..=44 => {
                let s = ["Combat", "Idle", "Patrol"][rng.below(3) as usize];
                format!("state {:?}", q.set_state(now, a, s))
            }
            45..=49 => format!("decide {:?}", q.decide(a, now)),
            50..=51 => format!("chat {:?}", q.chat(now, a, "player", "hi")),
            52 if rng.below(4) == 0 => {
                let member = ["guard", "scout"][rng.below(2) as usize];
                if rng.below(2) == 0 {
                    format!("join {:?}", q.join_group(now, a, member, &[]))
                } else {
                    format!("leave {:?}", q.leave_group(now, a, member))
                }
            }
            53..=60 if !in_flight.is_empty() => {
                let r = in_flight.remove(rng.below(in_flight.len() as u64) as usize);
                // Now and then the backend holds another value than the one sent.
                let confirmed: Vec<Confirmed> = if rng.below(3) == 0 {
                    r.changes
                        .iter()
                        .map(|c| Confirmed {
                            agent: c.agent,
                            block: q.text(c.block).to_string(),
                            field: q.text(c.field).to_string(),
                            value: if rng.below(2) == 0 {
                                value(&mut rng)
                            } else {
                                c.value.clone()
                            },
                            seq: c.seq,
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                format!("ack {:?}", q.ack(r.id, &confirmed))
            }
            61..=63 if !in_flight.is_empty() => {
                let id: RequestId = in_flight
                    .remove(rng.below(in_flight.len() as u64) as usize)
                    .id;
                let ra = match rng.below(4) {
                    0 => Some(2.0),
                    1 => Some(0.0),
                    _ => None,
                };
                format!("fail {:?}", q.fail(now, id, ra))
            }
            _ => String::new(),
        };
        // Every frame polls, as the Heartbeat does.
        let reqs = if full {
            q.poll_everything(now).unwrap()
        } else {
            q.poll(now).unwrap()
        };
        in_flight.extend(reqs.iter().cloned());
        log.push(format!(
            "{step} {entry} poll {reqs:?} events {:?}",
            q.drain_events()
        ));
    }
    log.push(format!("metrics {:?}", q.metrics()));
    log
}

/// `run` through `poll` and through `poll_everything` gives the same, line by line.
fn same_as_full_polls(seed: u64, setting: Setting) {
    let gated = run(seed, setting, false);
    let full = run(seed, setting, true);
    assert_eq!(gated.len(), full.len());
    for (g, f) in gated.iter().zip(&full) {
        assert_eq!(g, f, "seed {seed}, {setting:?}");
    }
}

/// Seeds per setting: 150, or `WAKE_SEEDS` (the heavy setting: `WAKE_SEEDS=1500 cargo
/// test --release -p npc-sync --test wake`, once before a change of the wake is merged).
fn seeds() -> u64 {
    std::env::var("WAKE_SEEDS").map_or(150, |s| s.parse().expect("WAKE_SEEDS: a number"))
}

/// Every target, tight budget or not, over the seeds, with `small`, `fight` and `deps`.
fn each_setting(small: bool, fight: bool, deps: bool, tights: &[bool]) {
    for target in [Target::BatchEndpoint, Target::LettaApi] {
        for &tight in tights {
            for seed in 0..seeds() {
                let setting = Setting {
                    target,
                    tight,
                    small,
                    fight,
                    deps,
                };
                same_as_full_polls(seed, setting);
            }
        }
    }
}

#[test]
fn a_poll_skipped_by_the_wake_would_have_done_nothing() {
    each_setting(false, false, false, &[false, true]);
}

/// The urgent pass looks at few units once a request is full (`plan_urgent`): with
/// requests of two agent-blocks most urgent requests fill up, and the full poll (which
/// looks at every unit in every pass) must decide the same.
#[test]
fn full_requests_take_what_a_full_poll_takes() {
    each_setting(true, false, false, &[false, true]);
}

/// A fight under a tight budget: hits, combat states and decisions every few frames, most
/// polls waiting for a call. A hit, a combat state or a decision of an agent with a
/// pending unit then does not bring the next poll before the next reserved call
/// ([`Queue::next_poll`]; `Queue::urgent_wake` in the core), nor does a critical unit's
/// debounce end, and the full poll must agree that the polls skipped would have done
/// nothing: with retries after failures (backoffs), chat and Letta's API (where every poll
/// looks at the units) in the mix, requests of two agent-blocks or not.
#[test]
fn a_fight_waiting_for_the_budget_polls_as_a_full_poll() {
    each_setting(false, true, false, &[true]);
    each_setting(true, true, false, &[true]);
}

/// The settings above with dependencies (`Setting::deps`): a fight under the tight budget,
/// and the plain traces with either budget; and the seeds past the default count that found
/// a difference, every time. Seed 978 (Letta's API, tight budget; found at
/// `WAKE_SEEDS=1500`): the poll after one that sent an urgent request releases a
/// dependency (an event, no request) with nothing changed in between (what was sent is in
/// flight, its blocks busy), so while a unit has dependencies a poll that sent something
/// wakes the next one (`poll_unless`).
#[test]
fn dependencies_wake_as_a_full_poll() {
    each_setting(false, true, true, &[true]);
    each_setting(false, false, true, &[false, true]);
    each_setting(true, false, true, &[false]);
    let found = Setting {
        target: Target::LettaApi,
        tight: true,
        small: false,
        fight: false,
        deps: true,
    };
    same_as_full_polls(978, found);
}

/// What `held` below does at `now`, as text (an error is part of the answer).
type Step = fn(&mut Queue, &[AgentId], f64) -> String;

/// Ten agents in combat, health 100, all delivered; a budget of one call every 5.45 s
/// (12 a minute, a burst of 1). At 20 s agent 0 is hit: an urgent request spends the call.
/// Then `steps` at their times (each in the first frame at or after it), and a poll
/// (through `poll`, or `poll_everything` with `full`) every frame until 27 s.
/// Returns everything observable, [`Queue::next_poll`] after each step, and the urgent
/// requests' agents (by number, in the requests' order).
fn held(steps: &[(f64, Step)], full: bool) -> (Vec<String>, Vec<f64>, Vec<Vec<usize>>) {
    let cfg = Config {
        budget_per_minute: 12,
        budget_burst: 1,
        ..Config::default()
    };
    let mut q = Queue::new(cfg).unwrap();
    let agents: Vec<AgentId> = (0..10)
        .map(|i| q.agent(&format!("npc-{i}")).unwrap())
        .collect();
    for a in &agents {
        q.set_state(0.0, *a, "Combat").unwrap();
        q.set_health(0.0, *a, 100.0).unwrap();
    }
    let first = q.flush(0.0).unwrap();
    assert_eq!(first.len(), 1, "one request delivers the start");
    q.ack(first[0].id, &[]).unwrap();
    let mut log = Vec::new();
    let mut wakes = Vec::new();
    let mut urgent = Vec::new();
    let mut poll = |q: &mut Queue, now: f64, log: &mut Vec<String>| {
        let reqs = if full {
            q.poll_everything(now).unwrap()
        } else {
            q.poll(now).unwrap()
        };
        for r in &reqs {
            if r.kind == npc_sync::RequestKind::Urgent {
                let number = |a: AgentId| agents.iter().position(|x| *x == a).unwrap();
                urgent.push(r.changes.iter().map(|c| number(c.agent)).collect());
            }
        }
        log.push(format!("{now} poll {reqs:?} events {:?}", q.drain_events()));
    };
    q.set_health(20.0, agents[0], 50.0).unwrap();
    poll(&mut q, 20.0, &mut log);
    let mut steps = steps.iter().peekable();
    let mut now = 20.0;
    while now < 27.0 {
        now += 1.0 / 60.0;
        while let Some((_, step)) = steps.next_if(|(at, _)| *at <= now) {
            log.push(format!("{now} {}", step(&mut q, &agents, now)));
            wakes.push(q.next_poll());
        }
        poll(&mut q, now, &mut log);
    }
    log.push(format!("metrics {:?}", q.metrics()));
    (log, wakes, urgent)
}

/// While no reserved call is free, hits of agents in combat (a new critical unit, a unit
/// hit again) and a decision sync of an agent with a pending unit move the next poll to
/// the budget's next call, not to now; a decision sync of an agent with none brings it to
/// now (the poll clears that sync: a later decision counts again). The requests, events
/// and metrics are a full poll's every frame, and the request at the next call carries
/// what came while waiting.
#[test]
fn hits_and_decisions_wait_with_the_budget() {
    let steps: [(f64, Step); 6] = [
        (20.1, |q, a, now| {
            format!("hit {:?}", q.set_health(now, a[1], 50.0))
        }),
        (20.2, |q, a, now| {
            format!("hit {:?}", q.set_health(now, a[2], 40.0))
        }),
        (20.3, |q, a, now| {
            format!("hit {:?}", q.set_health(now, a[1], 30.0))
        }),
        (20.4, |q, a, now| {
            let x = Change::new(a[3], "status", "x", Value::Number(1.0));
            format!("set {:?}", q.set(now, x))
        }),
        (21.5, |q, a, now| {
            format!("decide {:?}", q.decide(a[3], now))
        }),
        (21.6, |q, a, now| {
            format!("decide {:?}", q.decide(a[0], now))
        }),
    ];
    let (gated, wakes, urgent) = held(&steps, false);
    let (full, _, _) = held(&steps, true);
    assert_eq!(gated, full);
    let waiting = wakes[0];
    assert!(waiting > 25.0 && waiting < 26.0, "the next call: {waiting}");
    assert_eq!(wakes[..5], [waiting; 5], "{gated:#?}");
    let decisions: Vec<&String> = gated.iter().filter(|l| l.contains("decide")).collect();
    assert!(
        decisions.iter().all(|l| l.contains("Syncing")),
        "{decisions:#?}"
    );
    assert_eq!(wakes[5], 0.0, "agent 0's unit is in flight: poll now");
    assert_eq!(urgent.len(), 2, "{gated:#?}");
    assert_eq!(urgent[0], [0]);
    // Agent 1's first hit, agent 2's, agent 1's second (its unit), agent 3's `status.x`.
    let mut second = urgent[1].clone();
    second.dedup();
    assert_eq!(second, [1, 2, 3]);
}

/// While no reserved call is free, a critical unit whose debounce ends before the next call
/// (agent 0 hit again 0.1 s after its urgent request: due at 21 s), combat mode moving (agent
/// 4 leaves combat, agent 5 enters `Patrol`: state changes, critical) and a hit of agent 6
/// leave `next_poll` at the next call: no poll comes before it, and the full poll every
/// frame finds nothing to do either. The request at the next call carries them all.
#[test]
fn combat_and_debounce_wait_with_the_budget() {
    let steps: [(f64, Step); 4] = [
        (20.1, |q, a, now| {
            format!("hit {:?}", q.set_health(now, a[0], 10.0))
        }),
        (20.2, |q, a, now| {
            format!("state {:?}", q.set_state(now, a[4], "Idle"))
        }),
        (20.3, |q, a, now| {
            format!("state {:?}", q.set_state(now, a[5], "Patrol"))
        }),
        (20.4, |q, a, now| {
            format!("hit {:?}", q.set_health(now, a[6], 50.0))
        }),
    ];
    let (gated, wakes, urgent) = held(&steps, false);
    let (full, _, _) = held(&steps, true);
    assert_eq!(gated, full);
    let waiting = wakes[0];
    assert!(waiting > 25.0 && waiting < 26.0, "the next call: {waiting}");
    assert_eq!(wakes, [waiting; 4], "{gated:#?}");
    assert_eq!(urgent.len(), 2, "{gated:#?}");
    let mut second = urgent[1].clone();
    second.dedup();
    assert_eq!(second, [0, 4, 5, 6]);
}

/// A routine batch the budget holds at its time waits for the routine share's next call:
/// `next_poll` moves there, not to every frame after the batch's time (each such poll found
/// the budget holding the batch again), and the batch goes at that call, as with a full
/// poll every frame. One call (12 a minute, a burst of 1), spent at 29.9 s by an urgent
/// request; then three agents' `status.x` pending (29.95 s); the batch is due at 30 s.
#[test]
fn a_routine_batch_held_by_the_budget_waits_for_its_call() {
    let run = |full: bool| {
        let cfg = Config {
            budget_per_minute: 12,
            budget_burst: 1,
            ..Config::default()
        };
        let mut q = Queue::new(cfg).unwrap();
        let agents: Vec<AgentId> = (0..3)
            .map(|i| q.agent(&format!("npc-{i}")).unwrap())
            .collect();
        assert!(
            q.poll(0.0).unwrap().is_empty(),
            "the batch is scheduled at 30 s"
        );
        let mood = Change::new(agents[0], "mood", "level", Value::Number(1.0));
        q.set(29.9, mood.priority(Priority::Critical)).unwrap();
        let mut log = Vec::new();
        let mut wakes = Vec::new();
        for frame in 0..420 {
            let now = 29.9 + f64::from(frame) / 60.0;
            if frame == 3 {
                for (i, a) in agents.iter().enumerate() {
                    let x = Change::new(*a, "status", "x", Value::Number(i as f64));
                    log.push(format!("set {:?}", q.set(now, x)));
                }
            }
            let reqs = if full {
                q.poll_everything(now).unwrap()
            } else {
                q.poll(now).unwrap()
            };
            let kinds: Vec<_> = reqs.iter().map(|r| (r.kind, r.changes.len())).collect();
            log.push(format!("{now} {reqs:?} {:?}", q.drain_events()));
            wakes.push((now, q.next_poll(), kinds));
        }
        log.push(format!("metrics {:?}", q.metrics()));
        (log, wakes)
    };
    let (gated, wakes) = run(false);
    let (full, _) = run(true);
    assert_eq!(gated, full);
    let sent: Vec<_> = wakes.iter().filter(|w| !w.2.is_empty()).collect();
    assert_eq!(
        sent.len(),
        2,
        "the urgent request, then the batch: {sent:?}"
    );
    assert_eq!(sent[0].2, [(npc_sync::RequestKind::Urgent, 1)]);
    assert_eq!(sent[1].2, [(npc_sync::RequestKind::Batch, 3)]);
    // The first poll at or after 30 s found the batch held: the wake is the next call,
    // where the batch goes (the frame at or after it).
    let held = wakes.iter().find(|w| w.0 >= 30.0).unwrap();
    assert!(held.2.is_empty());
    let call = held.1;
    assert!(call > 35.0 && call < 35.5, "the next call: {call}");
    assert!(wakes
        .iter()
        .filter(|w| w.0 >= 30.0 && w.0 < call)
        .all(|w| w.1 == call));
    assert!(
        sent[1].0 >= call && sent[1].0 < call + 1.0 / 60.0,
        "{sent:?}"
    );
}

/// A decision sync waits for the budget's next call only while no pending unit has
/// dependencies (`first_call`): a poll releases a dependency of a cycle among the urgent
/// agent's units with no call free. Agent 0's `status.x` and `status.y` wait on each other
/// (x, then y after x, then x again after y: the x unit waits on y's change and y's on x's);
/// the one call (2 a minute, a burst of 1: the next in 60 s) went at 0 s to agent 1. At
/// 16 s agent 0's decision is stale (a sync): the poll then releases a dependency, as a full
/// poll every frame does, not at the routine batch (30 s).
#[test]
fn a_decision_sync_with_a_dependency_cycle_polls_at_once() {
    let run = |full: bool| {
        let cfg = Config {
            budget_per_minute: 2,
            budget_burst: 1,
            ..Config::default()
        };
        let mut q = Queue::new(cfg).unwrap();
        let (a, b) = (q.agent("npc-0").unwrap(), q.agent("npc-1").unwrap());
        q.set(0.0, Change::new(b, "status", "x", Value::Number(1.0)))
            .unwrap();
        let first = q.flush(0.0).unwrap();
        assert_eq!(first.len(), 1, "the one call");
        let x1 = q
            .set(0.1, Change::new(a, "status", "x", Value::Number(1.0)))
            .unwrap();
        let mut y = Change::new(a, "status", "y", Value::Number(1.0));
        y.depends_on = vec![x1];
        let y1 = q.set(0.1, y).unwrap();
        let mut x = Change::new(a, "status", "x", Value::Number(2.0));
        x.depends_on = vec![y1];
        q.set(0.1, x).unwrap();
        let mut log = Vec::new();
        let mut released_at = None;
        for frame in 6..(20 * 60) {
            let now = f64::from(frame) / 60.0;
            if frame == 16 * 60 {
                log.push(format!("decide {:?}", q.decide(a, now)));
            }
            let reqs = if full {
                q.poll_everything(now).unwrap()
            } else {
                q.poll(now).unwrap()
            };
            let events = q.drain_events();
            if released_at.is_none()
                && events
                    .iter()
                    .any(|e| matches!(e, npc_sync::Event::DependencyReleased { .. }))
            {
                released_at = Some(frame);
            }
            log.push(format!("{now} {reqs:?} {events:?}"));
        }
        log.push(format!("metrics {:?}", q.metrics()));
        (log, released_at)
    };
    let (gated, released_at) = run(false);
    let (full, _) = run(true);
    assert_eq!(gated, full);
    assert_eq!(released_at, Some(16 * 60), "{gated:#?}");
}

/// 150 agents in `q`, a first poll at 0 s, then each agent's `status.x` pending (set at 0.1 s).
fn agents_with_x(q: &mut Queue) -> Vec<AgentId> {
    let agents: Vec<AgentId> = (0..150)
        .map(|i| q.agent(&format!("npc-{i}")).unwrap())
        .collect();
    q.poll(0.0).unwrap();
    for (i, a) in agents.iter().enumerate() {
        q.set(0.1, Change::new(*a, "status", "x", Value::Number(i as f64)))
            .unwrap();
    }
    agents
}

/// 150 agents, each with a pending `status.x` and, later in the build order, a pending
/// `status.location`; agent 0 enters combat (a critical change: an urgent request is due).
fn full_urgent_queue() -> (Queue, Vec<AgentId>) {
    let mut q = Queue::new(Config::default()).unwrap();
    let agents = agents_with_x(&mut q);
    for a in &agents {
        q.set(
            0.2,
            Change::new(*a, "status", "location", Value::str("gate")),
        )
        .unwrap();
    }
    q.set_state(0.3, agents[0], "Combat").unwrap();
    (q, agents)
}

/// A full urgent request still takes the later units of the agents already in it: once
/// the request holds its 100 agent-blocks (agent 0's combat state, then 100 agents'
/// `status.x`), each of those agents' `status.location` (further in the build order, with
/// no new agent-block) rides along, and no other unit does. The same as a full poll's.
#[test]
fn a_full_urgent_request_takes_later_units_of_its_agents() {
    let (mut q, agents) = full_urgent_queue();
    let reqs = q.poll(0.4).unwrap();
    let (mut full, _) = full_urgent_queue();
    assert_eq!(
        format!("{reqs:?}"),
        format!("{:?}", full.poll_everything(0.4).unwrap())
    );
    assert_eq!(reqs.len(), 1, "one urgent request");
    let r = &reqs[0];
    assert_eq!(r.kind, npc_sync::RequestKind::Urgent);
    let named = |field: &str| -> Vec<AgentId> {
        r.changes
            .iter()
            .filter(|c| q.text(c.field) == field)
            .map(|c| c.agent)
            .collect()
    };
    assert_eq!(named("state"), [agents[0]]);
    assert_eq!(named("x"), agents[..100]);
    assert_eq!(named("location"), agents[..100]);
    assert_eq!(r.changes.len(), 201);
}

/// An urgent request that fills up holds back a unit that must go and would add an
/// agent-block, when no call is left for a second request: the budget holds it (decided
/// without materialising it), so the queue wakes when the next call is free, not at the
/// routine batch.
#[test]
fn a_full_urgent_request_with_no_call_left_wakes_for_the_budget() {
    let cfg = Config {
        budget_per_minute: 60,
        budget_burst: 1,
        ..Config::default()
    };
    let mut q = Queue::new(cfg).unwrap();
    let agents = agents_with_x(&mut q);
    let level = Change::new(agents[120], "mood", "level", Value::Number(3.0));
    q.set(0.2, level.priority(Priority::Critical)).unwrap();
    q.set_state(0.3, agents[0], "Combat").unwrap();
    let reqs = q.poll(0.4).unwrap();
    assert_eq!(reqs.len(), 1, "one call: one urgent request");
    // Agent 120's mood and agent 0's state (critical first), then agents 0 to 98's
    // `status.x`: 100 agent-blocks. Agent 120's `status.x` must go (its agent is urgent)
    // but would be the 101st.
    let changes = &reqs[0].changes;
    assert_eq!(changes.len(), 101);
    assert_eq!(q.text(changes[0].block), "mood");
    let x = q.intern("x").unwrap();
    let x_of = |c: &npc_sync::SentChange| c.field == x;
    assert!(!changes.iter().any(|c| c.agent == agents[120] && x_of(c)));
    let wake = q.next_poll();
    assert!(
        wake > 0.4 && wake < 2.0,
        "woken by the budget, not the batch: {wake}"
    );
}
