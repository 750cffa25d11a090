//! The per-change and per-frame cost of the core through the generated ModuleScript(s) of
//! `pkg/roblox`, in Luau 0.740 (mlua), sandboxed as Roblox runs scripts, interpreted and
//! with native code generation; and the same workload natively through the facade.
//!
//! Workload: N NPCs, each changing a number field of its status block every frame (the
//! bridge's skip of equal values never fires: every value is new), one poll per frame,
//! every request acknowledged at once, 60 frames a second with the default config (so
//! routine batches go out every 30 s of simulated time).
//!
//! `cargo bench -p npc-sync-luau --bench luau_frame` (env: `NSQ_FRAMES`, default 1900;
//! `NSQ_DIR`, default `pkg/roblox`). Prints one line per case:
//! `facade runtime=luau-interp|luau-native|native-facade npcs=N ms=X share=Y us_per_change=Z`.
//! These are the bare facade's figures, extra information beside the `frame ...` lines of
//! `./build.sh bench`: the Luau `frame` lines come from the path a game uses, `NpcSync`
//! over the core (`luau-bridge/harness/benches/bridge_frame.rs`), the native one from
//! `benches/frame.rs` (the public Rust API).

#[path = "../tests/luau_core/mod.rs"]
mod luau_core;

use luau_core::core_vm;
use mlua::Function;
use npc_sync_luau::Facade;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The bridge side of the benchmark: what `luau-bridge/src` does per change and per frame.
const DRIVER: &str = r#"
local Core, N, FRAMES = ...
local inst = Core.instantiate({})
local X = inst.exports
local mem = X.memory
assert(X.nsq_init() == 0, "init")
local scratch = X.nsq_scratch_ptr()
local function intern(s)
	buffer.writestring(mem.buffer, scratch, s)
	local sym = X.nsq_intern(#s)
	assert(sym >= 0, "intern")
	return sym
end
local status, field = intern("status"), intern("x")
local slots, last = table.create(N), table.create(N)
for i = 1, N do
	local a = X.nsq_agent(intern("npc-" .. i))
	slots[i] = X.nsq_slot(a, status, field)
end
local set = X.nsq_set
local function change(i, v, now)
	if last[i] == v then return end
	last[i] = v
	local seq = set(now, slots[i], 1, 0, v, 1)
	if seq < 0 then error("nsq_set failed: " .. seq) end
end
local poll, ack, outp = X.nsq_poll, X.nsq_ack, X.nsq_out_ptr()
local clock = os.clock
local tChange, tPoll, worst, sent = 0, 0, 0, 0
for f = 1, FRAMES do
	local now = f / 60
	local t0 = clock()
	for i = 1, N do
		change(i, f + i, now)
	end
	local t1 = clock()
	local n = poll(now)
	if n < 0 then error("nsq_poll failed") end
	if n > 0 then
		local b = mem.buffer
		local reqs = buffer.readu32(b, outp + 4)
		sent += buffer.readu32(b, outp + 8)
		local ids = table.create(n)
		for r = 0, n - 1 do
			ids[r + 1] = buffer.readf64(b, reqs + 56 * r) -- request records are 56 bytes (ABI v2)
		end
		for _, id in ids do
			assert(ack(id) == 0, "ack")
		end
	end
	local t2 = clock()
	tChange += t1 - t0
	tPoll += t2 - t1
	if t2 - t0 > worst then worst = t2 - t0 end
end
return tChange, tPoll, worst, sent
"#;

struct Run {
    change_s: f64,
    poll_s: f64,
    worst_s: f64,
    sent: f64,
}

fn luau_run(dir: &Path, native: bool, npcs: u32, frames: u32) -> Run {
    let (lua, core) = core_vm(dir, native);
    let driver: Function = lua
        .load(DRIVER)
        .set_name("=driver")
        .into_function()
        .unwrap();
    let (change_s, poll_s, worst_s, sent): (f64, f64, f64, f64) =
        driver.call((core, npcs, frames)).unwrap();
    Run {
        change_s,
        poll_s,
        worst_s,
        sent,
    }
}

fn native_run(npcs: u32, frames: u32) -> Run {
    let mut f = Facade::new();
    assert_eq!(f.init(), 0);
    let intern = |f: &mut Facade, s: &str| {
        f.scratch()[..s.len()].copy_from_slice(s.as_bytes());
        f.intern(s.len() as i32)
    };
    let status = intern(&mut f, "status");
    let field = intern(&mut f, "x");
    let mut slots = Vec::new();
    for i in 1..=npcs {
        let name = format!("npc-{i}");
        let id = intern(&mut f, &name);
        let a = f.agent_handle(id);
        slots.push(f.slot(a, status, field));
    }
    let (mut change_s, mut poll_s, mut worst_s, mut sent) = (0.0, 0.0, 0.0f64, 0.0);
    for frame in 1..=frames {
        let now = frame as f64 / 60.0;
        let t0 = Instant::now();
        for (i, s) in slots.iter().enumerate() {
            let seq = f.set(now, *s, 1, 0, (frame + i as u32 + 1) as f64, 1);
            assert!(seq > 0.0);
        }
        let t1 = Instant::now();
        let n = f.poll(now);
        assert!(n >= 0);
        let (reqs, changes, _) = f.poll_records();
        sent += (changes.len() / npc_sync_luau::CHANGE_RECORD) as f64;
        let ids: Vec<f64> = reqs
            .chunks(npc_sync_luau::REQUEST_RECORD)
            .map(|r| f64::from_le_bytes(r[..8].try_into().unwrap()))
            .collect();
        for id in ids {
            assert_eq!(f.ack(id), 0);
        }
        let t2 = Instant::now();
        change_s += (t1 - t0).as_secs_f64();
        poll_s += (t2 - t1).as_secs_f64();
        worst_s = worst_s.max((t2 - t0).as_secs_f64());
    }
    Run {
        change_s,
        poll_s,
        worst_s,
        sent,
    }
}

fn main() {
    let frames: u32 = std::env::var("NSQ_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1900);
    let root = npc_sync_testkit::repo_root();
    let dir = std::env::var("NSQ_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("pkg/roblox"));
    let only: Option<String> = std::env::var("NSQ_RUNTIME").ok();
    println!(
        "{:<12} {:>5} {:>9} {:>7} {:>14} {:>13} {:>12} {:>9}",
        "runtime", "npcs", "frame ms", "share", "us/change", "poll ms/frame", "worst ms", "sent"
    );
    for npcs in [100u32, 1000] {
        for runtime in ["native", "luau-native", "luau-interp"] {
            if only.as_deref().is_some_and(|o| o != runtime) {
                continue;
            }
            let r = match runtime {
                "native" => native_run(npcs, frames),
                "luau-native" => luau_run(&dir, true, npcs, frames),
                _ => luau_run(&dir, false, npcs, frames),
            };
            let f = frames as f64;
            let ms = (r.change_s + r.poll_s) / f * 1e3;
            let us = r.change_s / (f * npcs as f64) * 1e6;
            println!(
                "{:<12} {:>5} {:>9.3} {:>7.3} {:>14.3} {:>13.3} {:>12.3} {:>9}",
                runtime,
                npcs,
                ms,
                ms / 16.7,
                us,
                r.poll_s / f * 1e3,
                r.worst_s * 1e3,
                r.sent
            );
            let label = if runtime == "native" {
                "native-facade"
            } else {
                runtime
            };
            println!(
                "facade runtime={label} npcs={npcs} ms={ms:.3} share={:.4} us_per_change={us:.3}",
                ms / 16.7
            );
        }
    }
}
