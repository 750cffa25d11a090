//! Where `Queue::absorb`'s instructions go natively: 1,000 agents, each with a pending
//! `status.x` granted for absorption, then one `absorb` of 1,000 kept records (each slot's
//! latest of 10 kept changes). For counting CPU instructions (load-independent):
//!
//! ```text
//! cargo build --release -p npc-sync --example absorb_count
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/absorb_count PHASE [SENT]
//! ```
//!
//! PHASE 0 stops before the `absorb` call (the baseline), 1 makes it: the difference is its
//! cost. SENT 1: the routine batch sent every field before the kept changes (each record
//! then starts its field's unit, as the drain before the batch's ack does); 0 (default):
//! every field is pending (each record joins its unit, as the drain before a poll does). Under `valgrind --tool=callgrind --toggle-collect='*Queue::absorb*'` the per-function
//! split of the call alone.
use npc_sync::{Absorbed, Config, KeptValue, Priority, Queue, Seq, Value};

const N: u32 = 1000;

fn main() {
    let phase: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .expect("usage: absorb_count PHASE (0 baseline, 1 with the absorb) [SENT (0|1)]");
    let sent = std::env::args().nth(2).is_some_and(|a| a == "1");
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
        slots.push(s);
    }
    let at = if sent {
        // The routine batch, in as many requests (and polls) as its limits make it.
        let (mut n, mut t) = (0, 31.0);
        while n < N as usize && t < 60.0 {
            let reqs = q.poll(t).expect("the routine batch");
            n += reqs.iter().map(|r| r.changes.len()).sum::<usize>();
            t += 1.0;
        }
        assert_eq!(n, N as usize, "every field sent");
        t
    } else {
        0.5
    };
    for (i, &s) in slots.iter().enumerate() {
        assert!(q.grant_absorb(s).is_some(), "slot {i} is granted");
    }
    let first = q.next_seq().0;
    let records: Vec<Absorbed> = slots
        .iter()
        .enumerate()
        .map(|(i, &slot)| Absorbed {
            slot,
            value: KeptValue::Number(f64::from(i as u32) + 0.25),
            // Ten kept changes each, numbered one after another per slot.
            first_seq: Seq(first + 10 * i as u64),
            seq: Seq(first + 10 * i as u64 + 9),
            priority: Priority::Normal,
            count: 10,
            first_at: at + 0.1,
            last_at: at + 0.2,
        })
        .collect();
    if phase >= 1 {
        q.absorb(at + 0.3, first + 10 * u64::from(N), &records)
            .expect("every record is valid");
        assert_eq!(q.next_seq().0, first + 10 * u64::from(N));
    }
    std::hint::black_box(&q);
}
