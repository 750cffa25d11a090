//! A fixed amount of work through the generated core, for counting CPU instructions with
//! `perf stat` (a measure the shared machine's load does not disturb):
//!
//! `perf stat -e instructions:u target/release/examples/luau_count DIR NATIVE ROUNDS POLL`
//!
//! sets up 1,000 NPCs with a pending number field, then runs ROUNDS frames of one change
//! per NPC (and one poll per frame when POLL is 1). The difference between two ROUNDS
//! values, divided by the changes added, is the cost of one change (or one frame). A fifth
//! argument `empty` calls `nsq_in_flight` instead (the cost of crossing into the core),
//! `lua` a plain Luau function with the same arguments.
#[path = "../tests/luau_core/mod.rs"]
mod luau_core;

use luau_core::{core_vm, workload};
use mlua::Function;

/// After the shared setup (`luau_core::workload`): the measured rounds.
const WORKLOAD: &str = r#"
local set, poll = X.nsq_set, X.nsq_poll
for i = 1, 1000 do
	set(0.01, slots[i], 1, 0, -i, 1)
end
for r = 1, ROUNDS do
	local now = 0.01 + r / 60
	if OP == "empty" then
		local f = X.nsq_in_flight
		for i = 1, 1000 do
			f()
		end
	elseif OP == "lua" then
		local t = 0
		local function g(a, b, c, d, e, h) t += b end
		for i = 1, 1000 do
			g(now, slots[i], 1, 0, r + i, 1)
		end
	else
		for i = 1, 1000 do
			set(now, slots[i], 1, 0, r + i, 1)
		end
	end
	if POLL == 1 then
		assert(poll(now) == 0)
	end
end
"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args[1].clone();
    let native = args[2] == "1";
    let rounds: u32 = args[3].parse().unwrap();
    let poll: u32 = args[4].parse().unwrap();
    let op = args.get(5).cloned().unwrap_or_else(|| "set".into());
    let (lua, core) = core_vm(std::path::Path::new(&dir), native);
    let f: Function = lua
        .load(workload("Core, ROUNDS, POLL, OP", WORKLOAD))
        .into_function()
        .unwrap();
    f.call::<()>((core, rounds, poll, op)).unwrap();
}
