//! The routine batch's frames through `NpcSync`, in cumulative phases, for counting CPU
//! instructions under cachegrind (load-independent; the difference between two phases is
//! that phase's cost):
//!
//! ```text
//! cargo build --release -p npc-sync-luau-harness --example batch_count
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/batch_count NATIVE PHASE
//! ```
//!
//! 1,000 NPCs with a pending status field, a first poll (the routine batch is scheduled
//! 30 s later), three frames of one change per NPC (from the second on, every change is
//! kept in the bridge). Then, at the batch's time, PHASE adds in order:
//!
//! - 0: nothing (the baseline);
//! - 1: the drain (`nsq_absorb` of the 1,000 kept records, through `Absorb.drainAll`);
//! - 2: the core's poll alone (`nsq_poll`: the batch built, records written);
//! - 3: instead of 2, the bridge's poll (`nsq_poll` and the records read into requests);
//! - 4: 3 plus the wire form of the requests (`process.wire`: the JSON body);
//! - 5: 4 plus the next frame's 1,000 changes (each goes to the core: nothing is granted);
//! - 6: 5 plus a second frame of changes (now kept again);
//! - 7: 6 plus the batch's ack (with the confirmed fields the answer would carry, as the
//!   sender hands them on; their tables are made in this phase);
//! - 8: 7 plus the frame after the ack's 1,000 changes;
//! - 9: 8 plus the drain at the next routine batch's time (30 s later);
//! - 10: 9 plus that batch's core poll (`nsq_poll`): 10 - 9 is the routine batch's poll
//!   in a queue that has sent and acknowledged every field before (2 - 1 is the first).
#[path = "support/phases.rs"]
mod phases;
use phases::run_phase;
#[path = "support/vm.rs"]
mod vm;

const SCRIPT: &str = concat!(
    include_str!("support/npcs.luau"),
    include_str!("support/echo.luau"),
    r#"
local PHASE = ...
warmUp()
local core = sync._core
local function frame(r)
	now = 30.02 + r / 60
	for i = 1, N do
		sync:setStatus(ids[i], "x", 1000 + r + i)
	end
end
now = 30.02
if PHASE >= 1 then
	core.absorb:drainAll()
end
if PHASE == 2 then
	assert(core.X.nsq_poll(now) > 0, "the batch is due")
	return
end
local reqs
if PHASE >= 3 then
	reqs = core:poll(now)
	assert(#reqs > 0, "the batch is due")
end
local bodies = {}
if PHASE >= 4 then
	for i, req in reqs do
		bodies[i] = sync._process.wire(req)
	end
end
if PHASE >= 5 then
	frame(1)
end
if PHASE >= 6 then
	frame(2)
end
if PHASE >= 7 then
	for _, req in reqs do
		-- the endpoint's confirmations, made here: counted in the phase
		core:ack(req.id, echoed(req.changes))
	end
end
if PHASE >= 8 then
	frame(3)
end
-- The next routine batch, 30 s later: the queue has sent and acknowledged every field once
-- (its memory and buffers are at their size, as in a running game).
if PHASE >= 9 then
	now = 60.03
	core.absorb:drainAll()
end
if PHASE >= 10 then
	assert(core.X.nsq_poll(now) > 0, "the second batch is due")
end
"#
);

fn main() {
    run_phase("batch_count", SCRIPT, 10);
}
