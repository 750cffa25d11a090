//! Where a change's time goes in the generated core: counts Luau interrupts (function
//! entries and loop back-edges) per function of `pkg/roblox` while 1,000 NPCs each change a
//! number field once (after a first change made their fields pending).
//!
//! `cargo run --release -p npc-sync-luau --example luau_profile [DIR [poll|urgent|wait|absorb|absorb0|ack
//! [lines]]]` (DIR defaults to pkg/roblox). With `poll`, the measured part is instead the routine batch's
//! poll with those 1,000 fields pending (a first poll schedules it; the fields change after
//! it); with `urgent`, an urgent poll at those 1,000 pending fields (one NPC enters combat);
//! with `wait`, an urgent poll held by the budget (one call a minute, every fifth NPC hit). With `absorb`, it is taking in 1,000 kept records, one per granted slot (written
//! into the scratch area, `nsq_absorb` each time it is full); with `ack`, that batch's ack
//! confirming every field it carried (`nsq_confirm_records`, `nsq_ack`); with `absorb0`,
//! 1,000 calls `nsq_absorb(0, next_seq, now)` (no record: the counter and the time only).
//! With `lines` (mode `none` for the change), the count is instead of Luau statements run,
//! per function and per line of the generated core (each statement line of a function
//! body is prefixed with a counter when loaded; a finer picture than interrupts, which
//! count only calls and loop back-edges).
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
/// As [`ABSORB_WORKLOAD`]'s setup, but the measured part is 1,000 calls of `nsq_absorb`
/// with no record (what the bridge's `Absorb.sync` does: the counter and the time only).
const ABSORB0_WORKLOAD: &str = r#"
assert(X.nsq_poll(0.01) == 0)
for i = 1, 1000 do
	assert(X.nsq_set(0.5, slots[i], 1, 0, -i, 1) > 0)
end
local first = X.nsq_next_seq()
return function()
	for i = 1, 1000 do
		if X.nsq_absorb(0, first + i, 0.5 + i / 1000) ~= 0 then
			error(buffer.readstring(mem.buffer, X.nsq_error_ptr(), X.nsq_error_len()))
		end
	end
end
"#;
/// As [`POLL_WORKLOAD`]'s setup, but the measured part is an urgent poll (the versus trace's
/// urgent sends, as `urgent_count` phase 1): NPC 500 enters combat (a critical change) at 5 s
/// and the poll builds its urgent request, the other NPCs' units riding along until it is
/// full.
const URGENT_WORKLOAD: &str = r#"
assert(X.nsq_poll(0.01) == 0)
for i = 1, 1000 do
	assert(X.nsq_set(0.5, slots[i], 1, 0, -i, 1) > 0)
end
local agent500 = X.nsq_agent(intern("npc-500"))
assert(X.nsq_set_state(5, agent500, intern("Combat")) > 0)
return function()
	assert(X.nsq_poll(5) > 0, "the urgent request is due")
end
"#;
/// An urgent poll held by the budget (`wait_count` phase 1, the versus trace's shape): a
/// fresh core with one call a minute, 1,000 pending `status.x` and health 100; every fifth
/// NPC takes a critical hit, and the measured poll builds one request (100 agent-blocks)
/// and holds the other urgent NPCs' units back.
const WAIT_WORKLOAD: &str = r#"
X = Core.instantiate({}).exports
mem = X.memory
assert(X.nsq_config(9, 1) == 0 and X.nsq_config(11, 1) == 0, "budget settings")
assert(X.nsq_init() == 0)
scratch = X.nsq_scratch_ptr()
local function name(s)
	buffer.writestring(mem.buffer, scratch, s)
	return X.nsq_intern(#s)
end
local status, field = name("status"), name("x")
local agents = {}
for i = 1, 1000 do
	agents[i] = X.nsq_agent(name("npc-" .. i))
	slots[i] = X.nsq_slot(agents[i], status, field)
	assert(X.nsq_set(0, slots[i], 1, 0, 0, 1) > 0)
	assert(X.nsq_set_health(0, agents[i], 100) > 0)
end
assert(X.nsq_poll(0.01) >= 0)
for i = 1, 1000 do
	assert(X.nsq_set(0.05, slots[i], 1, 0, i, 1) > 0)
end
for i = 1, 1000, 5 do
	assert(X.nsq_set_health(0.1, agents[i], 50) > 0)
end
return function()
	assert(X.nsq_poll(0.2) > 0, "the urgent request spends the budget")
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

/// Where each counter of [`instrument`] sits: module, line, and the line where its
/// function's definition starts.
type Sites = Arc<Mutex<Vec<(String, usize, usize)>>>;

/// Prefixes every statement line of each function body of a generated core module with
/// `__C[id] = (__C[id] or 0) + 1` (an `end`, `else`, `elseif` or `until` line starts no statement; the
/// prelude before the first function is left alone) and records where each id sits.
fn instrument(sites: &Sites, module: &str, src: String) -> String {
    if !module.starts_with("NpcSyncCore") {
        return src;
    }
    let is_def = |l: &str| {
        (l.starts_with("F[")
            || (l.starts_with('f') && l[1..].starts_with(|c: char| c.is_ascii_digit())))
            && l.contains(" = function(")
    };
    let mut sites = sites.lock().unwrap();
    let mut out = String::with_capacity(src.len() * 2);
    let mut def = None;
    for (i, line) in src.lines().enumerate() {
        let t = line.trim_start();
        let word = t
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .next()
            .unwrap_or("");
        if is_def(line) {
            def = Some(i + 1);
        } else if let (Some(d), false) = (
            def,
            t.is_empty() || matches!(word, "end" | "else" | "elseif" | "until"),
        ) {
            let id = sites.len() + 1;
            out.push_str(&format!("__C[{id}]=(__C[{id}] or 0)+1 "));
            sites.push((module.to_string(), i + 1, d));
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| npc_sync_testkit::repo_root().join("pkg/roblox"));
    let script = match std::env::args().nth(2).as_deref() {
        Some("poll") => POLL_WORKLOAD,
        Some("absorb") => ABSORB_WORKLOAD,
        Some("absorb0") => ABSORB0_WORKLOAD,
        Some("ack") => ACK_WORKLOAD,
        Some("urgent") => URGENT_WORKLOAD,
        Some("wait") => WAIT_WORKLOAD,
        None | Some("none") => WORKLOAD,
        Some(other) => {
            panic!("unknown mode {other:?}: poll, urgent, wait, absorb, absorb0, ack or none")
        }
    };
    let lines = std::env::args().nth(3).is_some_and(|a| a == "lines");
    let lua = Lua::new();
    lua.sandbox(true).unwrap();
    let sites: Sites = Default::default();
    let core = if lines {
        let s = sites.clone();
        lua.globals()
            .set("__C", lua.create_table().unwrap())
            .unwrap();
        luau_core::load_core_with(&lua, &dir, move |m, src| instrument(&s, m, src))
    } else {
        load_core(&lua, &dir)
    };
    let f: Function = lua.load(workload("Core", script)).into_function().unwrap();
    if lines {
        let setup: Function = f.call((core,)).unwrap();
        let counts: mlua::Table = lua.globals().get("__C").unwrap();
        counts.clear().unwrap();
        setup.call::<()>(()).unwrap();
        report_lines(&sites.lock().unwrap(), &counts);
        return;
    }
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

/// Prints the statement counts of [`instrument`]'s counters: the total, per function (by
/// the line of its definition) and every line run, busiest first.
fn report_lines(sites: &[(String, usize, usize)], counts: &mlua::Table) {
    let mut by_fn: HashMap<(String, usize), u64> = HashMap::new();
    let mut by_line = Vec::new();
    for pair in counts.pairs::<usize, u64>() {
        let (id, n) = pair.unwrap();
        let (m, line, def) = &sites[id - 1];
        *by_fn.entry((m.clone(), *def)).or_default() += n;
        by_line.push((n, m.clone(), *line));
    }
    let total: u64 = by_fn.values().sum();
    println!("statements {total}");
    let mut fns: Vec<_> = by_fn.into_iter().map(|(k, n)| (n, k)).collect();
    fns.sort_by_key(|x| std::cmp::Reverse(x.0));
    for (n, (m, def)) in fns.iter().take(30) {
        println!("{n:>8} {m}:{def}");
    }
    by_line.sort_by_key(|x| std::cmp::Reverse(x.0));
    println!("lines");
    for (n, m, line) in &by_line {
        println!("{n:>8} {m}:{line}");
    }
}
