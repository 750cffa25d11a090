//! The urgent poll at 1,000 pending units (issue 10: the versus trace's urgent-send frames)
//! through `NpcSync`, in cumulative phases, for counting CPU instructions under cachegrind
//! (load-independent; the difference between two phases is that phase's cost):
//!
//! ```text
//! cargo build --release -p npc-sync-luau-harness --example urgent_count
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/urgent_count NATIVE PHASE
//! ```
//!
//! 1,000 NPCs with a pending `status.x` (normal priority: the routine batch is 30 s away),
//! three frames of one change per NPC, then at 5 s NPC 500 enters combat (a critical
//! change: an urgent request is due, the other NPCs' units ride along until it is full)
//! and the kept changes are drained. PHASE adds in order:
//!
//! - 0: nothing more (the baseline);
//! - 1: the core's poll (`nsq_poll`: the urgent request built, its records written);
//! - 2: 1, then at 5.5 s NPC 900 asks for a decision (a decision sync of a unit in the
//!   middle of the build order: units before it ride along only in a second pass) and
//!   NPC 10 enters combat, drained, and the core polled again.

#[path = "support/phases.rs"]
mod phases;
use phases::run_phase;
#[path = "support/vm.rs"]
mod vm;
const SCRIPT: &str = concat!(
    include_str!("support/npcs.luau"),
    r#"
local PHASE = ...
warmUp()
local core = sync._core
now = 5
sync:setState(ids[500], "Combat")
core.absorb:drainAll()
if PHASE >= 1 then
	assert(core.X.nsq_poll(now) > 0, "the urgent request is due")
end
if PHASE >= 2 then
	now = 5.5
	sync:decide(ids[900])
	sync:setState(ids[10], "Combat")
	core.absorb:drainAll()
	assert(core.X.nsq_poll(now) > 0, "the second urgent request is due")
end
"#
);

fn main() {
    run_phase("urgent_count", SCRIPT, 2);
}
