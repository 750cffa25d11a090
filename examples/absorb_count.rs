//! Where `Queue::absorb`'s instructions go natively: 1,000 agents, each with a pending
//! `status.x` granted for absorption, then one `absorb` of 1,000 kept records (each slot's
//! latest of 10 kept changes). For counting CPU instructions (load-independent):
//!
//! ```text
//! cargo build --release -p npc-sync --example absorb_count
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/absorb_count PHASE
//! ```
//!
//! PHASE 0 stops before the `absorb` call (the baseline), 1 makes it: the difference is its
//! cost. Under `valgrind --tool=callgrind --toggle-collect='*Queue::absorb*'` the per-function
//! split of the call alone.
use npc_sync::{Absorbed, Config, Priority, Queue, Seq, Value};

const N: u32 = 1000;

fn main() {
    let phase: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .expect("usage: absorb_count PHASE (0 baseline, 1 with the absorb)");
    let mut q = Queue::new(Config::default()).expect("default config");
    let status = q.intern("status").expect("name");
    let x = q.intern("x").expect("name");
    q.poll(0.0).expect("first poll");
    let mut slots = Vec::with_capacity(N as usize);
    for i in 0..N {
        let a = q.agent(&format!("npc-{i}")).expect("agent");
        let s = q.slot(a, status, x).expect("slot");
        q.set_slot(0.5, s, Value::Number(-f64::from(i)), Priority::Normal, &[])
            .expect("first change");
        assert!(q.grant_absorb(s).is_some(), "slot {i} is granted");
        slots.push(s);
    }
    let first = q.next_seq().0;
    let records: Vec<Absorbed> = slots
        .iter()
        .enumerate()
        .map(|(i, &slot)| Absorbed {
            slot,
            value: Value::Number(f64::from(i as u32) + 0.25),
            // Ten kept changes each, numbered one after another per slot.
            first_seq: Seq(first + 10 * i as u64),
            seq: Seq(first + 10 * i as u64 + 9),
            priority: Priority::Normal,
            count: 10,
            first_at: 0.6,
            last_at: 0.7,
        })
        .collect();
    if phase >= 1 {
        q.absorb(0.8, first + 10 * u64::from(N), &records)
            .expect("every record is valid");
        assert_eq!(q.next_seq().0, first + 10 * u64::from(N));
    }
    std::hint::black_box(&q);
}
