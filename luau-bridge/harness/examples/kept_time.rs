//! The kept path's CPU time per change (issue 10): `NpcSync:setStatus` of a field whose
//! slot is granted ("Absorption" in `luau-bridge/ABI.md`), so the change is a table write in
//! the bridge and no core call:
//!
//! ```text
//! cargo build --release -p npc-sync-luau-harness --example kept_time
//! target/release/examples/kept_time NATIVE ROUNDS [OP]
//! ```
//!
//! sets up 1,000 NPCs with `status.x` granted (a change each, a step, a change each: that
//! one goes to the core and brings the grant back, and a step), then runs
//! ROUNDS frames of one change per NPC and one `sync:step(now)` (nothing is due: routine
//! batches every 30 s), and prints the thread's CPU time per change, counting only the
//! change loops (the steps are outside). NATIVE is 0 (interpreted) or 1 (native code
//! generation). OP is `status` (default: `sync:setStatus(id, "x", v)`), `set`
//! (`sync:set(id, "status", "x", v)`) or `hand` (what `tests/bench/HandQueue.luau` does per
//! change: `dirty[id].x = v`, in a table of its own, for scale). `NSQ_DIR` loads another
//! `pkg/roblox`. The machine is shared: compare alternating runs, or count instructions
//! under cachegrind: `(ROUNDS 100 - ROUNDS 0) / 100,000` is the instructions of one kept
//! change plus a thousandth of a frame's step (OP `hand` gives that step's share with the
//! hand-written queue's write instead):
//!
//! ```text
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/kept_time NATIVE ROUNDS [OP]
//! ```
//!
//! `NSQ_EVICT` = N (default 0) reads every eighth entry of an N-entry array between frames
//! (outside the counted loops), as the rest of a game's frame would: with 1000000 (16 MB)
//! the kept path's tables and records are no longer in the caches at the next frame, as in
//! the versus trace (ABI.md "Measured", "The kept path inside the trace").
#[path = "support/cpu_clock.rs"]
mod cpu_clock;
use cpu_clock::thread_cpu_seconds;
use mlua::IntoLuaMulti;
#[path = "support/vm.rs"]
mod vm;
use vm::package_vm;

const SCRIPT: &str = concat!(
    include_str!("support/npcs.luau"),
    r#"
local ROUNDS, OP, cpu, EVICT = ...
local ballast = table.create(EVICT, 0)
-- what the rest of a frame reads: every eighth entry (16 bytes each: every other 64-byte line)
local function evict()
	local s = 0
	for i = 1, EVICT, 8 do
		s += ballast[i]
	end
	return s
end
local dirty = {}
for i = 1, N do
	dirty[ids[i]] = {}
end
now = 0.01
sync:step(now)
-- the first change after the first poll goes to the core and brings the slot's grant back
for i = 1, N do
	sync:setStatus(ids[i], "x", -i)
end
sync:step(now)
assert(sync._absorb.kept == 0, "the warm-up changes go to the core")
local spent = 0
for r = 1, ROUNDS do
	now = 0.01 + r / 60
	local t0 = cpu()
	if OP == "hand" then
		for i = 1, N do
			dirty[ids[i]].x = r + i
		end
	elseif OP == "health" or not changeAll(OP, r) then
		error("OP: status, set or hand")
	end
	spent += cpu() - t0
	sync:step(now)
	evict()
end
if OP ~= "hand" then
	-- every counted change was kept (none went to the core)
	local absorb = sync._absorb
	local counted = 0
	if type(absorb.count) == "table" then
		-- a bridge with a table per kept quantity (before session 17)
		for _, c in absorb.count do
			counted += c
		end
	else
		for _, list in absorb.dirty do
			for _, slot in list do
				counted += absorb:keptCount(slot)
			end
		end
	end
	assert(counted == N * ROUNDS, "the counted changes must all be kept")
end
-- (`stats()` would take the kept changes in: its cost is not the kept path's)
assert(sync._process.requests == 0, "nothing may be due in the counted frames")
return spent
"#
);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 && args.len() != 4 {
        eprintln!("usage: kept_time NATIVE(0|1) ROUNDS [status|set|hand]");
        std::process::exit(2);
    }
    let native = args[1] == "1";
    let rounds: u32 = args[2].parse().expect("ROUNDS is a number");
    let op = args.get(3).cloned().unwrap_or_else(|| "status".into());
    let r = package_vm(native);
    let cpu = r
        .lua
        .create_function(|_, ()| Ok(thread_cpu_seconds()))
        .expect("clock function");
    let evict: u32 = std::env::var("NSQ_EVICT")
        .ok()
        .map(|v| v.parse().expect("NSQ_EVICT is a number of entries"))
        .unwrap_or(0);
    let a = (rounds, op.clone(), cpu, evict)
        .into_lua_multi(&r.lua)
        .unwrap();
    let out = r
        .run("kept_time", SCRIPT, a, rounds + 10)
        .expect("workload");
    let spent: f64 = mlua::FromLuaMulti::from_lua_multi(out, &r.lua).expect("seconds");
    let changes = f64::from(rounds) * 1000.0;
    println!(
        "{op} native={} changes={changes} cpu_s={spent:.4} us_per_change={:.4}",
        u8::from(native),
        spent * 1e6 / changes
    );
}
