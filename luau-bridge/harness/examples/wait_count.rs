//! Frames of a fight while the budget holds the urgent agents back (issue 10: the versus
//! trace's `nsq_poll_before_build` frames) through `NpcSync` and the bridge's poll path, in
//! cumulative phases, for counting CPU instructions under cachegrind (load-independent; the
//! difference between two phases is that phase's cost):
//!
//! ```text
//! cargo build --release -p npc-sync-luau-harness --example wait_count
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/wait_count NATIVE PHASE
//! ```
//!
//! 1,000 NPCs with a pending `status.x` (three frames of one change each) and health 100;
//! the budget has one call (1 a minute). At 0.1 s every fifth NPC takes a critical hit
//! (combat). PHASE adds in order:
//!
//! - 0: nothing more (the baseline);
//! - 1: the urgent poll at 0.2 s (one request: 100 agent-blocks; the other urgent NPCs'
//!   units held back by the budget);
//! - 2: 1, then at 0.3 s a hit of an NPC not in combat yet and the poll (it waits for the
//!   budget: nothing is built);
//! - 3: 2, then ten frames from 1.2 s, each with a hit of an NPC in combat, a decision of
//!   another (stale: a decision sync) and the bridge's poll when the core says it is due
//!   (`Core.pollDue`, then `Core.pollRaw` as `Process.step` calls them). Prints how many
//!   of the ten polled.

#[path = "support/phases.rs"]
mod phases;
use phases::run_phase;
#[path = "support/vm.rs"]
mod vm;
const SCRIPT: &str = r#"
local PHASE = ...
local NpcSync = require(game:GetService("ReplicatedStorage").Packages.NpcSync)
local now = 0
local sync = NpcSync.new({
	target = { kind = "batch", url = "http://127.0.0.1:9/batch" },
	settings = { budgetPerMinute = 1, budgetBurst = 1 },
	clock = function()
		return now
	end,
})
local N = 1000
local ids = table.create(N)
for i = 1, N do
	ids[i] = "npc-" .. i
	sync:setStatus(ids[i], "x", 0)
	sync:setHealth(ids[i], 100)
end
now = 0.01
sync:step(now)
for r = 1, 3 do
	now = 0.01 + r / 60
	for i = 1, N do
		sync:setStatus(ids[i], "x", r + i)
	end
	sync:step(now)
end
local core = sync._core
local process = sync._process
-- the bridge's time, as `Process.step` takes it before it polls
local function poll()
	now = process:now()
	return core:pollRaw(now, false)
end
now = 0.1
for i = 1, N, 5 do
	sync:setHealth(ids[i], 50)
end
if PHASE >= 1 then
	now = 0.2
	assert(poll() > 0, "the urgent request spends the budget")
end
if PHASE >= 2 then
	now = 0.3
	sync:setHealth(ids[3], 50)
	assert(poll() == 0, "waiting for the budget")
end
if PHASE >= 3 then
	local polled = 0
	for f = 0, 9 do
		now = 1.2 + f / 60
		-- hit at 0.1 s (in combat), again; in combat since 0.1 s, stale after 1 s
		sync:setHealth(ids[5 * f + 101], 20)
		assert(not sync:decide(ids[10 * f + 501]).fresh, "a decision sync")
		if core:pollDue(process:now(), false) then
			polled += 1
			assert(poll() == 0, "waiting for the budget")
		end
	end
	print("polled " .. polled .. " of 10 waiting frames")
end
"#;

fn main() {
    run_phase("wait_count", SCRIPT, 3);
}
