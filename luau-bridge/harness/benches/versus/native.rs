//! The Rust core natively on the trace, through the public API, every request
//! acknowledged at once.

use crate::trace::{Kind, Trace};
use crate::Run;
use npc_sync::{AgentId, Change, Config, Decision, Queue, Value};
use std::hint::black_box;
use std::time::Instant;

fn run(tr: &Trace) -> Run {
    let mut q = Queue::new(Config::default()).expect("default config");
    let agents: Vec<AgentId> = (1..=tr.npcs)
        .map(|i| q.agent(&format!("npc-{i}")).expect("agent id"))
        .collect();
    let mut r = Run {
        calls_s: 0.0,
        step_s: 0.0,
        all_s: 0.0,
        worst_s: 0.0,
        requests: 0.0,
        changes_sent: 0.0,
        fresh: 0.0,
    };
    for f in 0..=tr.frames {
        let now = f64::from(f) / 60.0;
        let t0 = Instant::now();
        for (i, a) in agents.iter().enumerate() {
            let v = if f == 0 {
                0.0
            } else {
                f64::from(f) + i as f64 + 1.0
            };
            black_box(
                q.set(now, Change::new(*a, "status", "x", Value::Number(v)))
                    .expect("change"),
            );
        }
        for (k, i, v) in tr.events(f) {
            let a = agents[i];
            match k {
                Kind::Health => {
                    black_box(q.set_health(now, a, v).expect("health"));
                }
                Kind::State => {
                    let s = if v == 1.0 { "Combat" } else { "Idle" };
                    black_box(q.set_state(now, a, s).expect("state"));
                }
                Kind::Decide => {
                    if let Decision::Fresh { .. } = q.decide(a, now).expect("decide") {
                        r.fresh += 1.0;
                    }
                }
            }
        }
        let t1 = Instant::now();
        for req in q.poll(now).expect("poll") {
            r.requests += f64::from(req.calls);
            r.changes_sent += req.changes.len() as f64;
            q.ack(req.id, &[]).expect("ack");
        }
        let t2 = Instant::now();
        if f > 0 {
            r.calls_s += (t1 - t0).as_secs_f64();
            r.step_s += (t2 - t1).as_secs_f64();
            r.worst_s = r.worst_s.max((t2 - t0).as_secs_f64());
        }
    }
    r
}

/// The fastest of `runs` runs on fresh queues (the machine is shared).
pub fn run_best(tr: &Trace, runs: usize) -> Run {
    (0..runs)
        .map(|_| run(tr))
        .min_by(|a, b| (a.calls_s + a.step_s).total_cmp(&(b.calls_s + b.step_s)))
        .expect("at least one run")
}
