//! The urgent poll of `urgent_count` in the Rust core itself (no transpiler, no VM), to see
//! which of the core's functions it spends in:
//!
//! ```text
//! cargo build --release -p npc-sync-luau-harness --example urgent_native
//! valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=cg.P target/release/examples/urgent_native P
//! cg_annotate cg.1
//! ```
//!
//! 1,000 agents with a pending `status.x` (normal priority), a first poll, three rounds of
//! changes, then at 5 s agent 500 enters combat; with P = 1 the poll that builds the urgent
//! request (P = 0: not; the difference is the poll's cost).
use npc_sync::{Config, Priority, Queue, Value};

fn main() {
    let poll = std::env::args().nth(1).as_deref() == Some("1");
    let mut q = Queue::new(Config::default()).expect("default config");
    let status = q.intern("status").expect("intern");
    let x = q.intern("x").expect("intern");
    let mut agents = Vec::new();
    let mut slots = Vec::new();
    for i in 0..1000 {
        let a = q.agent(&format!("npc-{i}")).expect("agent");
        agents.push(a);
        slots.push(q.slot(a, status, x).expect("slot"));
    }
    q.poll(0.01).expect("first poll");
    for r in 1..4u32 {
        for (i, s) in slots.iter().enumerate() {
            let v = f64::from(r * 1000) + i as f64;
            q.set_slot(
                f64::from(r) / 60.0 + 0.01,
                *s,
                Value::Number(v),
                Priority::Normal,
                &[],
            )
            .expect("set");
        }
    }
    q.set_state(5.0, agents[500], "Combat").expect("combat");
    if poll {
        let reqs = q.poll(5.0).expect("the urgent poll");
        assert!(!reqs.is_empty(), "the urgent request is due");
        std::hint::black_box(reqs);
    }
}
