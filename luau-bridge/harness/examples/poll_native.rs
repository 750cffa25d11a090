//! The routine batch's poll in the Rust core itself (no transpiler, no VM), to compare with
//! `batch_count`'s phase 2 and to see which of the core's functions the poll spends in:
//!
//! ```text
//! cargo build --release -p npc-sync-luau-harness --example poll_native
//! valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=cg.P target/release/examples/poll_native P
//! cg_annotate cg.1
//! ```
//!
//! 1,000 agents with a pending `status.x` (normal priority), a first poll, three rounds of
//! changes, then with P = 1 the poll at the batch's time (P = 0: not; the difference is
//! the poll's cost).
#[path = "support/native_queue.rs"]
mod native_queue;
use native_queue::{queue_with_slots, three_rounds};

fn main() {
    let poll = std::env::args().nth(1).as_deref() == Some("1");
    let (mut q, slots) = queue_with_slots();
    three_rounds(&mut q, &slots);
    if poll {
        let reqs = q.poll(30.02).expect("the batch's poll");
        assert!(!reqs.is_empty(), "the batch is due");
        std::hint::black_box(reqs);
    }
}
