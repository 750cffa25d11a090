//! The send, answer and ack of an urgent request through the bridge's own functions (issue
//! 10: the versus trace's urgent-send and ack frames), for counting CPU instructions under
//! cachegrind (load-independent; the difference between two phases is that phase's cost)
//! or timing each part:
//!
//! ```text
//! cargo build --release -p npc-sync-luau-harness --example ack_count
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/ack_count NATIVE PHASE [ROUNDS]
//! target/release/examples/ack_count NATIVE time [ROUNDS]
//! ```
//!
//! 1,000 NPCs with a pending `status.x` (as `support/npcs.luau`), then ROUNDS rounds (default
//! 20), one a second, of two frames as the versus trace has them. The send's frame: every
//! NPC's `x` changes (kept), one NPC goes into or out of combat (an urgent request is due;
//! the other NPCs' units ride along until it is full), the core is polled (`Core.poll`: the
//! drain, `nsq_poll`, the records read) and the batch endpoint's answer to each request is
//! made (the test server's answer: every change confirmed as sent, `{"confirmed": [...]}`).
//! The ack's frame: every NPC's `x` changes again (each slot's first kept change since the
//! poll's drain), the kept changes that start units are taken in (`Absorb.sync`: in the
//! trace the frame's first crossing or decision does it), each request is acknowledged and
//! the events drained. PHASE adds, in order:
//!
//! - 0: nothing more (the baseline: each request acknowledged without confirmations);
//! - 1: the wire form (`Batch.calls`: the JSON body, `HttpService:JSONEncode` included);
//! - 2: 1, and the answer read (`Batch.confirmed`: `HttpService:JSONDecode` included);
//! - 3: 2, and the ack with those confirmations (`Core.ack`) instead of without;
//! - 4: 3, and the body's table encoded once more by `HttpService:JSONEncode` (4 - 3 is the
//!   stand-in's share of 1: the platform's, not the bridge's);
//! - 5: 4, and the answer decoded once more by `HttpService:JSONDecode` (5 - 4: the
//!   stand-in's share of 2).
//!
//! A confirmation of exactly what was sent changes nothing in the core, so every phase
//! sends the same requests (the script prints their count and changes to check). `time`
//! runs phase 5's work with each part timed on the thread's CPU clock and prints us a
//! round per part. `NSQ_DIR` loads another `pkg/roblox`.
#[path = "support/cpu_clock.rs"]
mod cpu_clock;
use cpu_clock::thread_cpu_seconds;
use mlua::IntoLuaMulti;
#[path = "support/vm.rs"]
mod vm;
use vm::package_vm;

const SCRIPT: &str = concat!(
    include_str!("support/npcs.luau"),
    include_str!("support/echo.luau"),
    r#"
local PHASE, ROUNDS, cpu = ...
local HttpService = game:GetService("HttpService")
local pkg = game:GetService("ReplicatedStorage").Packages.NpcSync
local Batch = require(pkg.batch)
local core = sync._core
local target = { url = "http://127.0.0.1:9/batch" }
local timing = PHASE == "time"
local phase = if timing then 5 else tonumber(PHASE)
-- CPU seconds per part (time mode; PARTS is the order they are returned in)
local PARTS = {
	"poll",
	"calls",
	"encode",
	"changesAfter",
	"starting",
	"confirmed",
	"decode",
	"ack",
	"nsq_ack",
	"nsq_confirm_records",
	"drainTouched",
	"afterAny",
	"events",
	"changesBefore",
}
local spent = {}
for _, p in PARTS do
	spent[p] = 0
end
local clock = if timing then cpu else function()
	return 0
end
-- time mode: the parts of `Core.ack` that are calls of their own, timed inside it
local inAck = false
local function timedInside(name, f)
	return function(...)
		if not inAck then
			return f(...)
		end
		local t = clock()
		local r = f(...)
		spent[name] += clock() - t
		return r
	end
end
if timing then
	local X = {}
	for k, v in core.X do
		X[k] = v
	end
	X.nsq_ack = timedInside("nsq_ack", X.nsq_ack)
	X.nsq_confirm_records = timedInside("nsq_confirm_records", X.nsq_confirm_records)
	core.X = X
	core.absorb.drainTouched = timedInside("drainTouched", core.absorb.drainTouched)
	core.absorb.afterAny = timedInside("afterAny", core.absorb.afterAny)
end
-- one frame's changes, one per NPC (kept: every slot is granted)
local function changes(r: number, part: string)
	local t = clock()
	for i = 1, N do
		sync:setStatus(ids[i], "x", r * N + i)
	end
	spent[part] += clock() - t
end
now = 0.01
sync:step(now)
local requests, sent = 0, 0
for r = 1, ROUNDS do
	-- the send's frame: the changes, one NPC into or out of combat, the poll, the wire form
	now = r
	changes(2 * r, "changesBefore")
	sync:setState(ids[(r * 37) % N + 1], if r % 2 == 1 then "Combat" else "Idle")
	local t0 = clock()
	local reqs = core:poll(now)
	spent.poll += clock() - t0
	local answers = {}
	for _, req in reqs do
		requests += 1
		sent += #req.changes
		-- the test server's answer: every change confirmed as sent (made here, outside the
		-- counted parts; the same in every phase)
		local echo = echoed(req.changes)
		answers[req.id] = HttpService:JSONEncode({ confirmed = echo })
		local a0 = clock()
		if phase >= 1 then
			local calls = Batch.calls(target, req)
			assert(#calls == 1 and #calls[1].Body > 0, "one call with a body")
		end
		local a1 = clock()
		spent.calls += a1 - a0
		if phase >= 4 then
			HttpService:JSONEncode({ request_id = req.id, kind = req.kind, changes = echo })
		end
		spent.encode += clock() - a1
	end
	-- the next frame (the ack's, as in the versus trace): every NPC's change again (each
	-- slot's first kept change since the poll's drain; the fields sent start units), the
	-- kept changes that start units taken in (the trace's first crossing or decision does
	-- it), then the answers read and acknowledged
	now = r + 1 / 60
	changes(2 * r + 1, "changesAfter")
	local s0 = clock()
	core.absorb:sync()
	spent.starting += clock() - s0
	for _, req in reqs do
		local answer = answers[req.id]
		local confirmed = nil
		local a2 = clock()
		if phase >= 2 then
			confirmed = Batch.confirmed(answer)
			assert(confirmed ~= nil and #confirmed == #req.changes, "every change confirmed")
		end
		local a3 = clock()
		spent.confirmed += a3 - a2
		if phase >= 5 then
			HttpService:JSONDecode(answer)
		end
		local a4 = clock()
		spent.decode += a4 - a3
		inAck = true
		core:ack(req.id, if phase >= 3 then confirmed else nil)
		inAck = false
		spent.ack += clock() - a4
	end
	local e0 = clock()
	for _ in core:events() do
	end
	spent.events += clock() - e0
end
local out = { requests, sent }
for _, p in PARTS do
	table.insert(out, spent[p])
end
return out
"#
);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 && args.len() != 4 {
        eprintln!("usage: ack_count NATIVE(0|1) PHASE(0..5|time) [ROUNDS]");
        std::process::exit(2);
    }
    let native = args[1] == "1";
    let phase = args[2].clone();
    if phase != "time" && !matches!(phase.parse::<u32>(), Ok(0..=5)) {
        eprintln!("PHASE: 0 to 5, or time");
        std::process::exit(2);
    }
    let rounds: u32 = match args.get(3) {
        Some(s) => s.parse().expect("ROUNDS is a number"),
        None => 20,
    };
    let r = package_vm(native);
    let cpu = r
        .lua
        .create_function(|_, ()| Ok(thread_cpu_seconds()))
        .expect("clock function");
    let a = (phase.clone(), rounds, cpu).into_lua_multi(&r.lua).unwrap();
    let out = r.run("ack_count", SCRIPT, a, 10).expect("workload");
    let v: Vec<f64> = mlua::FromLuaMulti::from_lua_multi(out, &r.lua).expect("figures");
    println!(
        "phase={phase} native={} rounds={rounds} requests={} changes={}",
        u8::from(native),
        v[0],
        v[1]
    );
    if phase == "time" {
        let names = [
            "send frame: poll (Core.poll)",
            "send frame: wire form (Batch.calls)",
            "send frame: the body's JSONEncode alone (stand-in)",
            "ack frame: 1,000 changes, first kept since the poll",
            "ack frame: the kept changes that start units taken in (Absorb.sync)",
            "ack frame: answer read (Batch.confirmed)",
            "ack frame: the answer's JSONDecode alone (stand-in)",
            "ack frame: ack (Core.ack)",
            "  in the ack: nsq_ack",
            "  in the ack: nsq_confirm_records",
            "  in the ack: Absorb.drainTouched",
            "  in the ack: Absorb.afterAny (the grant records)",
            "ack frame: events (Core.events)",
            "send frame: 1,000 changes, kept (after the ack's frame)",
        ];
        for (name, s) in names.iter().zip(&v[2..]) {
            println!(
                "  {name}: {:.1} us a round, {:.1} us a request",
                s * 1e6 / f64::from(rounds),
                s * 1e6 / v[0].max(1.0)
            );
        }
    }
}
