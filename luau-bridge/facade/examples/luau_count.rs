//! A fixed amount of work through the generated core, for counting CPU instructions with
//! `perf stat` (a measure the shared machine's load does not disturb):
//!
//! `perf stat -e instructions:u target/release/examples/luau_count DIR NATIVE ROUNDS POLL`
//!
//! sets up 1,000 NPCs with a pending number field, then runs ROUNDS frames of one change
//! per NPC (and one poll per frame when POLL is 1). The difference between two ROUNDS
//! values, divided by the changes added, is the cost of one change (or one frame). A fifth
//! argument `empty` calls `nsq_in_flight` instead (the cost of crossing into the core),
//! `lua` a plain Luau function with the same arguments. `absorb` makes every field granted
//! (a first poll, then the first changes) and runs ROUNDS takings-in of 1,000 kept records,
//! one per slot, each joining its field's pending unit (as the bridge's drain before a poll:
//! as many records as the scratch area holds a `nsq_absorb`); `absorb0` runs ROUNDS times
//! 1,000 calls `nsq_absorb(0, next_seq, now)` (no record: the bridge's `Absorb.sync`);
//! `absorbstart` first polls the routine batch out (every field in flight, none with a
//! pending unit, every slot granted again), then runs ROUNDS (0 or 1) takings-in of 1,000
//! records, each starting its field's unit (as the bridge's drain after a send).
//! `valgrind --tool=cachegrind --cache-sim=no` counts the same (POLL 0).
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

/// The `absorb` and `absorb0` operations (see the module's documentation).
const ABSORB_WORKLOAD: &str = r#"
assert(X.nsq_poll(0.01) == 0)
local out = X.nsq_out_ptr()
for i = 1, 1000 do
	assert(X.nsq_set(0.5, slots[i], 1, 0, -i, 1) > 0)
	assert(buffer.readu32(mem.buffer, out + 64) ~= 0, "granted")
end
local per = X.nsq_scratch_cap() // 56
local base = 0.5
if OP == "absorbstart" then
	-- The routine batch, in as many polls as its limits make it (examples/absorb_count's
	-- SENT mode, natively, asserts that these send every field).
	assert(ROUNDS <= 1, "absorbstart: ROUNDS 0 or 1 (a second round would join the units)")
	for t = 31, 59 do
		X.nsq_poll(t)
	end
	base = 60
end
for r = 1, ROUNDS do
	local first = X.nsq_next_seq()
	local now = base + r / 60
	if OP == "absorb0" then
		for i = 1, 1000 do
			if X.nsq_absorb(0, first + i, now) ~= 0 then
				error(buffer.readstring(mem.buffer, X.nsq_error_ptr(), X.nsq_error_len()))
			end
		end
	else
		local i = 1
		while i <= 1000 do
			local k = math.min(per, 1001 - i)
			local b = mem.buffer
			for j = 0, k - 1 do
				local at = scratch + 56 * j
				buffer.writeu32(b, at, slots[i + j])
				buffer.writeu32(b, at + 4, 1)
				buffer.writef64(b, at + 8, r * 1000 + i + j + 0.25)
				buffer.writef64(b, at + 16, first + i + j - 1)
				buffer.writef64(b, at + 24, now - 0.01)
				buffer.writef64(b, at + 32, now)
				buffer.writeu32(b, at + 40, 1)
				buffer.writeu32(b, at + 44, 1)
				buffer.writef64(b, at + 48, first + i + j - 1)
			end
			if X.nsq_absorb(k, first + 1000, now) ~= 0 then
				error(buffer.readstring(mem.buffer, X.nsq_error_ptr(), X.nsq_error_len()))
			end
			i += k
		end
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
    let body = if op.starts_with("absorb") {
        ABSORB_WORKLOAD
    } else {
        WORKLOAD
    };
    let f: Function = lua
        .load(workload("Core, ROUNDS, POLL, OP", body))
        .into_function()
        .unwrap();
    f.call::<()>((core, rounds, poll, op)).unwrap();
}
