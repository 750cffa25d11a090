//! Where a change's time goes in the generated core: counts Luau interrupts (function
//! entries and loop back-edges) per function of `pkg/roblox` while 1,000 NPCs each change a
//! number field once (after a first change made their fields pending).
//!
//! `cargo run --release -p npc-sync-luau --example luau_profile [DIR [poll|absorb|ack]]` (DIR
//! defaults to pkg/roblox). With `poll`, the measured part is instead the routine batch's
//! poll with those 1,000 fields pending (a first poll schedules it; the fields change after
//! it). With `absorb`, it is taking in 1,000 kept records, one per granted slot (written
//! into the scratch area, `nsq_absorb` each time it is full); with `ack`, that batch's ack
//! confirming every field it carried (`nsq_confirm_records`, `nsq_ack`).
//! Lines are `count module:line`; the function defined at that line of the module is the
//! one counted. To name functions, build the core without `strip` and map
//! function indices (`fN` / `F[N+1]`) through the wasm name section.
#[path = "../tests/luau_core/mod.rs"]
mod luau_core;

use luau_core::{load_core, workload};
use mlua::{Function, Lua, VmState};

/// After the shared setup (`luau_core::workload`): makes the 1,000 fields pending and returns
/// the measured part.
const WORKLOAD: &str = r#"
for i = 1, 1000 do
	X.nsq_set(0.5, slots[i], 1, 0, -i, 1)
end
return function()
	for i = 1, 1000 do
		X.nsq_set(1, slots[i], 1, 0, i, 1)
	end
end
"#;

/// As [`WORKLOAD`], but the measured part is the routine batch's `nsq_poll`.
const POLL_WORKLOAD: &str = r#"
assert(X.nsq_poll(0.01) == 0)
for i = 1, 1000 do
	assert(X.nsq_set(0.5, slots[i], 1, 0, -i, 1) > 0)
end
return function()
	assert(X.nsq_poll(30.02) > 0, "the batch is due")
end
"#;
/// As [`POLL_WORKLOAD`]'s setup (every slot granted after its change), but the measured part
/// is taking in 1,000 kept-change records as the bridge does (ABI.md, "Absorption"): as
/// many records as the scratch area holds written, one `nsq_absorb` each time.
const ABSORB_WORKLOAD: &str = r#"
assert(X.nsq_poll(0.01) == 0)
local out = X.nsq_out_ptr()
for i = 1, 1000 do
	assert(X.nsq_set(0.5, slots[i], 1, 0, -i, 1) > 0)
	assert(buffer.readu32(mem.buffer, out + 64) ~= 0, "granted")
end
local first = X.nsq_next_seq()
local per = X.nsq_scratch_cap() // 56
return function()
	local i = 1
	while i <= 1000 do
		local k = math.min(per, 1001 - i)
		-- the memory may have grown in the last call (a new buffer)
		local b = mem.buffer
		for j = 0, k - 1 do
			local at = scratch + 56 * j
			buffer.writeu32(b, at, slots[i + j])
			buffer.writeu32(b, at + 4, 1)
			buffer.writef64(b, at + 8, i + j + 0.25)
			buffer.writef64(b, at + 16, first + i + j - 1)
			buffer.writef64(b, at + 24, 0.6)
			buffer.writef64(b, at + 32, 0.7)
			-- one kept change each (v4 record: priority normal at 44, first seq at 48)
			buffer.writeu32(b, at + 40, 1)
			buffer.writeu32(b, at + 44, 1)
			buffer.writef64(b, at + 48, first + i + j - 1)
		end
		if X.nsq_absorb(k, first + 1000, 0.8) ~= 0 then
			error(buffer.readstring(mem.buffer, X.nsq_error_ptr(), X.nsq_error_len()))
		end
		i += k
	end
end
"#;
/// As [`WORKLOAD`], but the measured part is the routine batch's ack, confirming every field
/// it carried (seq and value as sent) in confirmed-field records.
const ACK_WORKLOAD: &str = r#"
assert(X.nsq_poll(0.01) == 0)
for i = 1, 1000 do
	assert(X.nsq_set(0.5, slots[i], 1, 0, -i, 1) > 0)
end
local n = X.nsq_poll(30.02)
assert(n > 0, "the batch is due")
local b, h = mem.buffer, X.nsq_out_ptr()
local reqs, chg = buffer.readu32(b, h + 4), buffer.readu32(b, h + 12)
local acks = {}
for i = 0, n - 1 do
	local r = reqs + 56 * i
	local first, count = buffer.readu32(b, r + 12), buffer.readu32(b, r + 16)
	local conf = {}
	for j = first, first + count - 1 do
		local c = chg + 48 * j
		local agent, block, name = buffer.readu32(b, c + 16), buffer.readu32(b, c + 24), buffer.readu32(b, c + 28)
		table.insert(conf, { agent, block, name, buffer.readf64(b, c + 40), buffer.readf64(b, c) })
	end
	table.insert(acks, { id = buffer.readf64(b, r), conf = conf })
end
local per = X.nsq_scratch_cap() // 40
return function()
	for _, a in acks do
		local k = 0
		for _, c in a.conf do
			local buf, r = mem.buffer, scratch + 40 * k
			buffer.writeu32(buf, r, c[1])
			buffer.writeu32(buf, r + 4, c[2])
			buffer.writeu32(buf, r + 8, c[3])
			buffer.writeu32(buf, r + 12, 1)
			buffer.writeu32(buf, r + 16, 0)
			buffer.writef64(buf, r + 24, c[4])
			buffer.writef64(buf, r + 32, c[5])
			k += 1
			if k == per then
				assert(X.nsq_confirm_records(k) == 0)
				k = 0
			end
		end
		if k > 0 then
			assert(X.nsq_confirm_records(k) == 0)
		end
		assert(X.nsq_ack(a.id) == 0)
	end
end
"#;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| npc_sync_testkit::repo_root().join("pkg/roblox"));
    let script = match std::env::args().nth(2).as_deref() {
        Some("poll") => POLL_WORKLOAD,
        Some("absorb") => ABSORB_WORKLOAD,
        Some("ack") => ACK_WORKLOAD,
        None => WORKLOAD,
        Some(other) => panic!("unknown mode {other:?}: poll, absorb, ack or none"),
    };
    let lua = Lua::new();
    lua.sandbox(true).unwrap();
    let core = load_core(&lua, &dir);
    let f: Function = lua.load(workload("Core", script)).into_function().unwrap();
    let counts: Arc<Mutex<HashMap<(String, i32), u64>>> = Default::default();
    let c2 = counts.clone();
    let on = Arc::new(Mutex::new(false));
    let on2 = on.clone();
    lua.set_interrupt(move |lua| {
        if *on2.lock().unwrap() {
            let key = lua.inspect_stack(0, |d| {
                let s = d.source();
                (
                    s.short_src.map(|x| x.to_string()).unwrap_or_default(),
                    s.line_defined.map(|x| x as i32).unwrap_or(-1),
                )
            });
            if let Some(key) = key {
                *c2.lock().unwrap().entry(key).or_default() += 1;
            }
        }
        Ok(VmState::Continue)
    });
    let setup: Function = f.call((core,)).unwrap();
    *on.lock().unwrap() = true;
    setup.call::<()>(()).unwrap();
    *on.lock().unwrap() = false;
    let mut v: Vec<_> = counts
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (*v, k.clone()))
        .collect();
    v.sort_by_key(|x| std::cmp::Reverse(x.0));
    let total: u64 = v.iter().map(|x| x.0).sum();
    println!("total {total}");
    for (n, (src, line)) in v.iter().take(40) {
        println!("{n:>8} {src}:{line}");
    }
}
