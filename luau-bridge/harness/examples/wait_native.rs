//! A poll waiting for the budget with many urgent agents (the versus trace's
//! `nsq_poll_before_build`, 1,553 calls at 1,000 NPCs) in the Rust core itself, to see which
//! of the core's functions it spends in:
//!
//! ```text
//! cargo build --release -p npc-sync-luau-harness --example wait_native
//! valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=cg.P target/release/examples/wait_native PHASE
//! cg_annotate cg.1
//! ```
//!
//! 1,000 agents with a pending `status.x`; 200 of them take a critical hit and 100 of those
//! ask for a decision; the budget has one call (1 a minute). PHASE adds in order:
//!
//! - 0: nothing more (the baseline);
//! - 1: the urgent poll (one request: 100 agent-blocks of the urgent agents, the other
//!   urgent agents' units held back by the budget);
//! - 2: 1, then ten polls waiting for the budget, 1/60 s apart, each after a new hit
//!   (`poll_before_build`, as the bridge calls it);
//! - 3: 2, then ten frames from 1.2 s, each with a hit of an agent already in combat, a
//!   decision sync of another (in combat: stale after 1 s) and a poll waiting for the
//!   budget (the versus trace's usual waiting frame: a fight's hits and decisions).
use npc_sync::{Config, Decision, Queue};

#[path = "support/native_queue.rs"]
mod native_queue;
use native_queue::{agents_and_slots, three_rounds};

fn main() {
    let phase: u32 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("usage: wait_native PHASE(0..3)");
    let cfg = Config {
        budget_per_minute: 1,
        budget_burst: 1,
        ..Config::default()
    };
    let mut q = Queue::new(cfg).expect("config");
    let (agents, slots) = agents_and_slots(&mut q);
    for a in &agents {
        q.set_health(0.0, *a, 100.0).expect("health");
    }
    let first = q.poll(0.01).expect("first poll");
    for r in &first {
        q.ack(r.id, &[]).expect("ack");
    }
    three_rounds(&mut q, &slots);
    for a in agents.iter().step_by(5) {
        q.set_health(0.1, *a, 50.0).expect("hit");
    }
    for a in agents.iter().step_by(10) {
        q.decide(*a, 0.1).expect("decide");
    }
    if phase < 1 {
        return;
    }
    let sent = q.poll(0.2).expect("the urgent poll");
    assert_eq!(sent.len(), 1, "an urgent request spends the budget");
    if phase < 2 {
        return;
    }
    for f in 0..10u32 {
        let now = 0.3 + f64::from(f) / 60.0;
        q.set_health(now, agents[(f * 5 + 1) as usize], 40.0)
            .expect("hit");
        let r = q.poll_before_build(now).expect("a waiting poll");
        assert_eq!(r.map(|r| r.len()), Some(0), "waiting for the budget");
    }
    if phase < 3 {
        return;
    }
    for f in 0..10u32 {
        let now = 1.2 + f64::from(f) / 60.0;
        // Hit at 0.1 s (in combat), again; decided at 0.1 s, stale again.
        q.set_health(now, agents[(f * 5 + 100) as usize], 20.0)
            .expect("hit");
        let d = q
            .decide(agents[(f * 10 + 500) as usize], now)
            .expect("decide");
        assert!(matches!(d, Decision::Syncing { .. }), "{d:?}");
        let r = q.poll_before_build(now).expect("a waiting poll");
        assert_eq!(r.map(|r| r.len()), Some(0), "waiting for the budget");
    }
}
