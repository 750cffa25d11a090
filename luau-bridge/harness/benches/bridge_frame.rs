//! The Luau rows of the frame benchmark: the whole product path a game uses, `NpcSync`
//! (luau-bridge/src) over the generated core, both from `pkg/roblox`, in Luau 0.740
//! sandboxed as Roblox runs scripts, interpreted and with native code generation.
//!
//! Workload: N NPCs, each changing a status field every frame with a new value (so the
//! bridge's skip of equal values never fires), `sync:step(now)` once per frame (outcomes
//! in, poll, requests out through HttpService to a local test server that answers at once),
//! 60 frames a second, default settings (routine batches every 30 s of simulated time).
//! Timed with the real clock around the change calls and the step; the harness's own
//! frame (HTTP delivery) is outside the measurement.
//!
//! `cargo bench -p npc-sync-luau-harness --bench bridge_frame` (env `NSQ_FRAMES`, default
//! 1900). Prints a table, then one line per case:
//! `frame runtime=luau-interp|luau-native npcs=N ms=X share=Y us_per_change=Z`
//! (ms: mean cost of one frame; share = ms / 16.7). The table also shows the routine
//! batch's frames: the step that sends it and the frame after it (every slot's first change
//! after a send goes to the core: the hitch a developer would feel).

use mlua::IntoLuaMulti;
use npc_sync_luau_harness::server::TestServer;
use npc_sync_luau_harness::{roblox::package_mount, Options, Roblox};

const SCRIPT: &str = r#"
local base, N, FRAMES = ...
local NpcSync = require(game:GetService("ReplicatedStorage").Packages.NpcSync)
local now = 0
local sync = NpcSync.new({ target = { kind = "batch", url = base .. "/batch" }, clock = function()
	return now
end })
local ids = table.create(N)
for i = 1, N do
	ids[i] = "npc-" .. i
	sync:setStatus(ids[i], "x", 0) -- resolves and caches the agent and the slot
end
local clock = harness.realClock
local tChange, tStep, worst = 0, 0, 0
-- the routine batch's frames: the step that sends it (every kept change taken in first),
-- and the next frame's changes (each slot's first change after the send goes to the core)
local batchStep, afterBatch, sentAt = 0, 0, -1
for f = 1, FRAMES do
	now = f / 60
	local t0 = clock()
	for i = 1, N do
		sync:setStatus(ids[i], "x", f + i)
	end
	local t1 = clock()
	local before = sync._process.requests
	sync:step(now)
	local t2 = clock()
	tChange += t1 - t0
	tStep += t2 - t1
	if t2 - t0 > worst then
		worst = t2 - t0
	end
	if f == sentAt + 1 then
		afterBatch = math.max(afterBatch, t2 - t0)
	end
	if sync._process.requests > before and f > 1 then
		batchStep = math.max(batchStep, t2 - t0)
		sentAt = f
	end
	task.wait() -- one harness frame: HTTP answers arrive
end
local s = sync:stats()
return tChange, tStep, worst, s.changesSent, s.httpCalls, batchStep, afterBatch
"#;

fn main() {
    let frames: u32 = std::env::var("NSQ_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1900);
    let server = TestServer::start();
    let mut lines = Vec::new();
    println!("| runtime | npcs | frames | µs per change | step ms/frame | frame ms (mean) | worst frame ms | batch frame ms | frame after it ms | share of 16.7 ms | changes sent | HTTP calls |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (native, runtime) in [(false, "luau-interp"), (true, "luau-native")] {
        for npcs in [100u32, 1000] {
            let r = Roblox::new(Options {
                native,
                mounts: vec![package_mount()],
                ..Options::default()
            })
            .expect("vm");
            let args = (server.base.clone(), npcs, frames)
                .into_lua_multi(&r.lua)
                .unwrap();
            let out = r
                .run("bench", SCRIPT, args, frames + 10)
                .expect("bench script");
            let (t_change, t_step, worst, sent, calls, batch, after): (
                f64,
                f64,
                f64,
                f64,
                f64,
                f64,
                f64,
            ) = mlua::FromLuaMulti::from_lua_multi(out, &r.lua).unwrap();
            let n = f64::from(frames);
            let us_per_change = t_change / (n * f64::from(npcs)) * 1e6;
            let ms = (t_change + t_step) / n * 1e3;
            let share = ms / 16.7;
            println!(
                "| {runtime} | {npcs} | {frames} | {us_per_change:.3} | {:.3} | {ms:.3} | {:.2} | {:.2} | {:.2} | {share:.3} | {sent} | {calls} |",
                t_step / n * 1e3,
                worst * 1e3,
                batch * 1e3,
                after * 1e3
            );
            lines.push(format!(
                "frame runtime={runtime} npcs={npcs} ms={ms:.3} share={share:.3} us_per_change={us_per_change:.3}"
            ));
        }
    }
    println!();
    for l in lines {
        println!("{l}");
    }
}
