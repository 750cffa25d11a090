//! A fixed amount of work through `NpcSync` (the bridge over the generated core, both from
//! `pkg/roblox`), for counting CPU instructions, a measure the shared machine's load does
//! not disturb:
//!
//! ```text
//! cargo build --release -p npc-sync-luau-harness --example bridge_count
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/bridge_count NATIVE ROUNDS OP
//! ```
//!
//! sets up 1,000 NPCs with a pending status field, then runs ROUNDS frames of one change per
//! NPC followed by one `sync:step(now)` (nothing is due: routine batches every 30 s). The
//! difference between two ROUNDS values, divided by the changes added, is the cost of one
//! change including the frame's step. OP picks the change call:
//!
//! - `status`: `sync:setStatus(id, "x", v)` (the per-frame case of a game);
//! - `set`: `sync:set(id, "status", "x", v)`;
//! - `health`: `sync:setHealth(id, v)` (changes of one point: normal priority);
//! - `core`: the core's `nsq_set` and `nsq_poll` called directly, without the bridge;
//! - `core-nopoll`: the same without the poll;
//! - `step`: no change, only the step (the cost of a frame's step with nothing new).
//!
//! `NSQ_DIR` names another folder to load instead of `pkg/roblox` (to compare builds).
use mlua::IntoLuaMulti;
#[path = "support/vm.rs"]
mod vm;
use vm::package_vm;

const SCRIPT: &str = concat!(
    include_str!("support/npcs.luau"),
    r#"
local ROUNDS, OP = ...
if OP == "health" then
	for i = 1, N do
		sync:setHealth(ids[i], 100)
	end
end
now = 0.01
sync:step(now)
if OP == "core" or OP == "core-nopoll" then
	local X = sync._core.X
	local set, poll = X.nsq_set, X.nsq_poll
	local slots = table.create(N)
	for i = 1, N do
		slots[i] = sync._core:slot(ids[i], "status", "x", "bench")
	end
	for r = 1, ROUNDS do
		now = 0.01 + r / 60
		for i = 1, N do
			assert(set(now, slots[i], 1, 0, r + i, 1) > 0)
		end
		if OP == "core" then
			assert(poll(now) == 0)
		end
	end
	return
end
for r = 1, ROUNDS do
	now = 0.01 + r / 60
	assert(changeAll(OP, r) or OP == "step", "OP: status, set, health, core, core-nopoll or step")
	sync:step(now)
end
assert(sync:stats().requestsEmitted == 0, "nothing may be due in the counted frames")
"#
);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: bridge_count NATIVE(0|1) ROUNDS status|set|health|core|core-nopoll|step");
        std::process::exit(2);
    }
    let native = args[1] == "1";
    let rounds: u32 = args[2].parse().expect("ROUNDS is a number");
    let op = args[3].clone();
    let r = package_vm(native);
    let a = (rounds, op).into_lua_multi(&r.lua).unwrap();
    r.run("bridge_count", SCRIPT, a, 10).expect("workload");
}
