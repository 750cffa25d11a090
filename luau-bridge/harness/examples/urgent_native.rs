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
use npc_sync::{Config, Queue};

#[path = "support/native_queue.rs"]
mod native_queue;
use native_queue::{agents_and_slots, three_rounds};

fn main() {
    let poll = std::env::args().nth(1).as_deref() == Some("1");
    let mut q = Queue::new(Config::default()).expect("default config");
    let (agents, slots) = agents_and_slots(&mut q);
    q.poll(0.01).expect("first poll");
    three_rounds(&mut q, &slots);
    q.set_state(5.0, agents[500], "Combat").expect("combat");
    if poll {
        let reqs = q.poll(5.0).expect("the urgent poll");
        assert!(!reqs.is_empty(), "the urgent request is due");
        std::hint::black_box(reqs);
    }
}
