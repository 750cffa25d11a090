//! Frame cost of npc-sync against the queue a Roblox developer would write by hand
//! (`tests/bench/HandQueue.luau`), on the same generated trace (issue 10, item 3).
//!
//! In this one process: the ModuleScript a developer requires (`pkg/roblox`'s `NpcSync`) and
//! the hand-written queue, each in its own sandboxed Luau 0.740 VM with Roblox's services
//! stood in (HttpService doing real HTTP to a local server that answers at once),
//! interpreted and with native code generation; then the Rust core natively on the same
//! trace. Node (`pkg/node`) runs the same trace in a child process (`benches/trace_frame.mjs`),
//! and the simulator (`npc-sync-sim`, built by `./build.sh bench`) gives requests per minute
//! naive (one call per change) against npc-sync for every scenario.
//!
//! Trace ([`trace::Trace`]): N NPCs (100 and 1,000) each change `status.x` to a new number
//! every frame (the `RunService.Stepped` worst case), one NPC in five fights (state `Combat`
//! in and out, hits of 1 to 35 points, heals out of fights), every NPC makes LLM decisions
//! (every 1.5 to 3 s in a fight, 4 to 8 s otherwise), 60 frames a second, 1,900 frames
//! (`NSQ_FRAMES`) so one periodic batch of every NPC falls inside. Timed per frame with the
//! real clock: the trace's calls plus the queue's step (`ms`); `ms_with_http` adds the
//! harness frame in which the HTTP answers reach the sender threads (both queues handle
//! their answers there; it includes the harness's own stand-in work, the same for both).
//! The Luau cases run alternately, twice each, each in a fresh VM against a fresh local
//! server (one that saw the trace already would confirm none of a second run's fields),
//! and keep their faster run (the machine is shared).
//!
//! Writes `target/bench/summary.json` (format in `tests/bench/README.md`) and prints a
//! table. `NSQ_SIM_SECONDS` (default 600) sets the simulated seconds per scenario.

#[path = "versus/luau_run.rs"]
mod luau_run;
#[path = "versus/native.rs"]
mod native;
#[path = "versus/sim.rs"]
mod sim;
#[path = "versus/trace.rs"]
mod trace;

use luau_run::{script_args, versus_vm};
use npc_sync_luau_harness::roblox::{package_mount, repo_root};
use npc_sync_luau_harness::server::TestServer;
use serde_json::{json, Value as Json};
use std::path::Path;
use std::process::Command;
use trace::Trace;

const FRAME_MS: f64 = 16.7;
const ROUNDS: usize = 2;

/// Drives one queue (`impl` = "npcsync" or "hand") through the trace; both queues answer
/// the same method names (`setStatus`, `setHealth`, `setState`, `decide`, `step`).
const SCRIPT: &str = r#"
local impl, base, N, FRAMES, starts, kinds, who, vals = ...
local now = 0
local function clock()
	return now
end
local q
if impl == "npcsync" then
	local NpcSync = require(game:GetService("ReplicatedStorage").Packages.NpcSync)
	q = NpcSync.new({ target = { kind = "batch", url = base .. "/batch" }, clock = clock })
else
	local HandQueue = require(game:GetService("ReplicatedStorage").HandQueue)
	q = HandQueue.new({ url = base .. "/batch", clock = clock })
end
local ids = table.create(N)
for i = 1, N do
	ids[i] = "npc-" .. i
end
local fresh = 0
-- frame 0 (not timed): every NPC's first values, so names and slots are resolved
local function events(f)
	for e = starts[f + 1], starts[f + 2] - 1 do
		local k, id, v = kinds[e], ids[who[e]], vals[e]
		if k == 2 then
			q:setHealth(id, v)
		elseif k == 3 then
			q:setState(id, if v == 1 then "Combat" else "Idle")
		else
			local d = q:decide(id)
			if d == true or (type(d) == "table" and d.fresh) then
				fresh += 1
			end
		end
	end
end
for i = 1, N do
	q:setStatus(ids[i], "x", 0)
end
events(0)
q:step(now)
local realClock = harness.realClock
local tCalls, tStep, tAll, worst = 0, 0, 0, 0
for f = 1, FRAMES do
	now = f / 60
	local t0 = realClock()
	for i = 1, N do
		q:setStatus(ids[i], "x", f + i)
	end
	events(f)
	local t1 = realClock()
	q:step(now)
	local t2 = realClock()
	task.wait() -- one harness frame: HTTP answers reach the sender threads
	local t3 = realClock()
	tCalls += t1 - t0
	tStep += t2 - t1
	tAll += t3 - t0
	if t2 - t0 > worst then
		worst = t2 - t0
	end
end
local requests, sent
if impl == "npcsync" then
	local s = q:stats()
	requests, sent = s.httpCalls, s.changesSent
else
	requests, sent = q.stats.requests, q.stats.changesSent
end
return tCalls, tStep, tAll, worst, requests, sent, fresh
"#;

/// One timed run of a queue in a fresh VM.
struct Run {
    calls_s: f64,
    step_s: f64,
    all_s: f64,
    worst_s: f64,
    requests: f64,
    changes_sent: f64,
    fresh: f64,
}

/// One run in a fresh VM against a fresh server: the batch endpoint confirms a field only
/// for a seq higher than the one it holds, so a server that saw an earlier run of the
/// same trace would confirm nothing and make that run's acks cheaper.
fn run_luau(tr: &Trace, imp: &str, native: bool) -> Run {
    let server = TestServer::start();
    let r = versus_vm(native, package_mount());
    let lua = &r.lua;
    let args = script_args(lua, imp, &server.base, tr, ());
    let out = r
        .run(imp, SCRIPT, args, tr.frames + 10)
        .unwrap_or_else(|e| panic!("{imp} (native={native}): {e}"));
    let v: (f64, f64, f64, f64, f64, f64, f64) =
        mlua::FromLuaMulti::from_lua_multi(out, lua).expect("results");
    Run {
        calls_s: v.0,
        step_s: v.1,
        all_s: v.2,
        worst_s: v.3,
        requests: v.4,
        changes_sent: v.5,
        fresh: v.6,
    }
}

fn row(runtime: &str, imp: &str, tr: &Trace, r: &Run) -> Json {
    let n = f64::from(tr.frames);
    let ms = (r.calls_s + r.step_s) / n * 1e3;
    json!({
        "runtime": runtime,
        "queue": imp,
        "npcs": tr.npcs,
        "frames": tr.frames,
        "ms": ms,
        "share": ms / FRAME_MS,
        "ms_calls": r.calls_s / n * 1e3,
        "ms_step": r.step_s / n * 1e3,
        "ms_with_http": if r.all_s > 0.0 { Json::from(r.all_s / n * 1e3) } else { Json::Null },
        "worst_ms": r.worst_s * 1e3,
        "requests": r.requests,
        "changes_sent": r.changes_sent,
        "decisions_fresh": r.fresh,
    })
}

fn f(v: &Json, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

fn main() {
    let frames: u32 = std::env::var("NSQ_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1900);
    let sim_seconds: f64 = std::env::var("NSQ_SIM_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600.0);
    let root = repo_root();
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir).expect("create target/bench");
    let mut rows = Vec::new();
    let mut ratios = Vec::new();
    for npcs in [100u32, 1000] {
        let tr = Trace::generate(npcs, frames, 1);
        let trace_file = out_dir.join(format!("trace-{npcs}.json"));
        std::fs::write(&trace_file, tr.to_json().to_string()).expect("write trace");
        for (native, runtime) in [(false, "luau-interp"), (true, "luau-native")] {
            let mut best: [Option<Run>; 2] = [None, None];
            for _ in 0..ROUNDS {
                for (k, imp) in ["npcsync", "hand"].into_iter().enumerate() {
                    let r = run_luau(&tr, imp, native);
                    eprintln!(
                        "  {runtime} {imp} {npcs} NPCs: {:.3} ms per frame",
                        (r.calls_s + r.step_s) / f64::from(frames) * 1e3
                    );
                    let faster = best[k]
                        .as_ref()
                        .is_none_or(|b| r.calls_s + r.step_s < b.calls_s + b.step_s);
                    if faster {
                        best[k] = Some(r);
                    }
                }
            }
            let [Some(ms), Some(hand)] = best else {
                unreachable!("ROUNDS >= 1")
            };
            let (a, b) = (
                row(runtime, "npcsync", &tr, &ms),
                row(runtime, "hand", &tr, &hand),
            );
            ratios.push(json!({
                "runtime": runtime,
                "npcs": npcs,
                "modulescript_over_hand": f(&a, "ms") / f(&b, "ms"),
                "modulescript_over_hand_with_http": f(&a, "ms_with_http") / f(&b, "ms_with_http"),
            }));
            rows.push(a);
            rows.push(b);
        }
        let nat = native::run_best(&tr, 3);
        rows.push(row("native", "npcsync", &tr, &nat));
        match node_row(&root, &trace_file) {
            Ok(r) => rows.push(row("node", "npcsync", &tr, &r)),
            Err(e) => eprintln!("node row skipped for {npcs} NPCs: {e}"),
        }
    }
    let scenarios = sim::requests_per_minute(&root, sim_seconds);
    let summary = json!({
        "format": "npc-sync-bench-summary/1",
        "frame_ms": FRAME_MS,
        "frames": frames,
        "workload": "N NPCs change status.x every frame; 1 in 5 fights (state Combat in/out, hits 1-35, heals); decisions every 1.5-3 s in fights, 4-8 s otherwise; 60 Hz; requests acknowledged at once",
        "frame_cost": rows,
        "ratios": ratios,
        "scenarios": scenarios,
    });
    let path = out_dir.join("summary.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&summary).expect("json") + "\n",
    )
    .expect("write summary.json");
    print_tables(&summary);
    println!("\nwrote {}", path.display());
}

/// Node on the same trace: `node benches/trace_frame.mjs TRACE` prints one JSON object.
fn node_row(root: &Path, trace_file: &Path) -> Result<Run, String> {
    let out = Command::new("node")
        .arg(root.join("benches/trace_frame.mjs"))
        .arg(trace_file)
        .output()
        .map_err(|e| format!("cannot run node: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: Json = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("benches/trace_frame.mjs printed no JSON: {e}"))?;
    Ok(Run {
        calls_s: f(&v, "calls_s"),
        step_s: f(&v, "step_s"),
        all_s: 0.0,
        worst_s: f(&v, "worst_s"),
        requests: f(&v, "requests"),
        changes_sent: f(&v, "changes_sent"),
        fresh: f(&v, "decisions_fresh"),
    })
}

fn print_tables(s: &Json) {
    println!("\n| runtime | queue | npcs | ms per frame | share of 16.7 ms | ms with HTTP answers | worst frame ms | requests | changes sent | fresh decisions |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in s["frame_cost"].as_array().into_iter().flatten() {
        let with_http = r["ms_with_http"]
            .as_f64()
            .map_or("-".to_string(), |v| format!("{v:.3}"));
        println!(
            "| {} | {} | {} | {:.3} | {:.4} | {with_http} | {:.2} | {} | {} | {} |",
            r["runtime"].as_str().unwrap_or(""),
            if r["queue"] == "hand" {
                "hand-written"
            } else {
                "npc-sync"
            },
            r["npcs"],
            f(r, "ms"),
            f(r, "share"),
            f(r, "worst_ms"),
            r["requests"],
            r["changes_sent"],
            r["decisions_fresh"],
        );
    }
    println!("\n| runtime | npcs | ModuleScript / hand-written | same, with HTTP answers |");
    println!("|---|---|---|---|");
    for r in s["ratios"].as_array().into_iter().flatten() {
        println!(
            "| {} | {} | {:.2} | {:.2} |",
            r["runtime"].as_str().unwrap_or(""),
            r["npcs"],
            f(r, "modulescript_over_hand"),
            f(r, "modulescript_over_hand_with_http"),
        );
    }
    println!("\n| scenario | npcs | simulated s | requests per minute naive | npc-sync | npc-sync / naive |");
    println!("|---|---|---|---|---|---|");
    for r in s["scenarios"].as_array().into_iter().flatten() {
        println!(
            "| {} | {} | {} | {:.0} | {:.1} | {:.4} |",
            r["scenario"].as_str().unwrap_or(""),
            r["npcs"],
            r["seconds"],
            f(r, "naive_per_min"),
            f(r, "calls_per_min"),
            f(r, "calls_over_naive"),
        );
    }
}
