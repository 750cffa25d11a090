//! The routine batch's ack in the Rust core itself (no transpiler, no VM), to compare with
//! `batch_count`'s phase 7 and to see which of the core's functions an ack spends in:
//!
//! ```text
//! cargo build --release -p npc-sync-luau-harness --example ack_native
//! valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=cg.A target/release/examples/ack_native A
//! cg_annotate cg.2
//! ```
//!
//! 1,000 agents with a pending `status.x` (normal priority), a first poll, three rounds of
//! changes, the routine batch's poll, two more rounds of changes (as `batch_count`), then
//! with A = 1 the batch's ack without confirmed fields, with A = 2 its ack confirming every
//! field it carried (seq and value as sent: what the batch endpoint answers) by strings
//! (`Queue::ack`), with A = 3 the same by symbols (`Queue::ack_keyed`, the Luau facade's
//! form). A = 0: no ack. The differences give the ack's cost and its confirmed fields'.
use npc_sync::{Confirmed, ConfirmedKey};

#[path = "support/native_queue.rs"]
mod native_queue;
use native_queue::{queue_with_slots, round, three_rounds};

fn main() {
    let a: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("usage: ack_native A(0|1|2|3)");
    let (mut q, slots) = queue_with_slots();
    three_rounds(&mut q, &slots);
    let reqs = q.poll(30.02).expect("the batch's poll");
    assert!(!reqs.is_empty(), "the batch is due");
    round(&mut q, &slots, 4, 30.04);
    round(&mut q, &slots, 5, 30.06);
    // Built before the measured part in every variant, so only the ack differs.
    let confirmed: Vec<Vec<Confirmed>> = reqs
        .iter()
        .map(|r| {
            r.changes
                .iter()
                .map(|c| Confirmed {
                    agent: c.agent,
                    block: q.sym_text(c.block).expect("sym").to_string(),
                    field: q.sym_text(c.field).expect("sym").to_string(),
                    value: c.value.clone(),
                    seq: c.seq,
                })
                .collect()
        })
        .collect();
    let keyed: Vec<Vec<ConfirmedKey>> = reqs
        .iter()
        .map(|r| {
            r.changes
                .iter()
                .map(|c| ConfirmedKey {
                    agent: c.agent,
                    block: c.block,
                    field: c.field,
                    value: c.value.clone(),
                    seq: c.seq,
                })
                .collect()
        })
        .collect();
    for (i, r) in reqs.iter().enumerate() {
        match a {
            0 => {}
            1 => q.ack(r.id, &[]).expect("ack"),
            2 => q.ack(r.id, &confirmed[i]).expect("ack"),
            _ => q.ack_keyed(r.id, &keyed[i]).expect("ack"),
        }
    }
    std::hint::black_box((q, confirmed, keyed));
}
