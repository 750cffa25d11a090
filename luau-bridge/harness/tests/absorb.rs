//! Absorption through the bridge (luau-bridge/ABI.md, "Absorption"): seeded random
//! sequences of `NpcSync` calls (per-frame changes of pending status fields, interleaved
//! with decisions, chat, health, dependencies on kept changes, atomic groups, removals,
//! steps with acks and failures, stats) replayed through `pkg/roblox` in Luau and through
//! the native `Queue`; every handle's seq, decision, request and the metrics must match,
//! and most per-frame changes must never cross into the core (`nsq_set` counted through a
//! wrapper of the generated module).
//!
//! Bounded here (`SEQUENCES` sequences); longer:
//! `ABSORB_SEQUENCES=2000 cargo test --release -p npc-sync-luau-harness --test absorb`.

use mlua::IntoLuaMulti;
use npc_sync::{Change, ChangeId, Config, Decision, Priority, Queue, RequestKind, Value};
use npc_sync_luau_harness::{roblox::repo_root, Options, Roblox};
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::fmt::Write;

const SEQUENCES: u64 = 300;
const AGENTS: [&str; 4] = ["npc-1", "npc-2", "npc-3", "npc-4"];

/// xorshift64*: the same sequence on every machine.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

type Last = HashMap<(usize, &'static str), Json>;

/// A value for the slot other than the last one passed (the bridge skips an equal one).
fn fresh(
    last: &mut Last,
    r: &mut Rng,
    a: usize,
    f: &'static str,
    make: &dyn Fn(&mut Rng) -> Json,
) -> Json {
    loop {
        let v = make(r);
        if last.get(&(a, f)) != Some(&v) {
            last.insert((a, f), v.clone());
            return v;
        }
    }
}

/// One sequence of bridge-level calls, as JSON ops (times are multiples of 1/16 s, values
/// of 1/4: exact in binary, printed alike by Rust and Luau).
fn ops(seed: u64) -> Vec<Json> {
    let mut r = Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1);
    let mut out = Vec::new();
    let mut last: Last = HashMap::new();
    let mut removed = [false; AGENTS.len()];
    let mut labels = 0u32;
    // labels of changes whose agent was not removed since (a dependency on a removed
    // agent's change is an error; errors are not what this test compares)
    let mut live_labels: Vec<(u32, usize)> = Vec::new();
    let mut t = 0.0f64;
    let num = |r: &mut Rng| json!((r.below(24) as f64 - 8.0) * 0.25);
    for _ in 0..40 {
        t += (1 + r.below(4)) as f64 * 0.0625;
        let live: Vec<usize> = (0..AGENTS.len()).filter(|a| !removed[*a]).collect();
        for &a in &live {
            let v = fresh(&mut last, &mut r, a, "x", &num);
            let prio = match r.below(20) {
                0 => "low",
                1 => "high",
                _ => "normal",
            };
            let label = if r.chance(10) {
                labels += 1;
                live_labels.push((labels, a));
                Json::from(labels)
            } else {
                Json::Null
            };
            out.push(
                json!({"op": "set", "t": t, "a": a, "f": "x", "v": v, "p": prio, "as": label}),
            );
            if r.chance(30) {
                let b = fresh(&mut last, &mut r, a, "armed", &|r: &mut Rng| {
                    json!(r.chance(50))
                });
                out.push(json!({"op": "set", "t": t, "a": a, "f": "armed", "v": b, "p": "normal", "as": null}));
            }
        }
        let a = live[r.below(live.len() as u64) as usize];
        match r.below(20) {
            0 | 1 => out.push(json!({"op": "decide", "t": t, "a": a})),
            2 => out.push(json!({"op": "chat", "t": t, "a": a})),
            3 => {
                let h = fresh(&mut last, &mut r, a, "health", &|r: &mut Rng| {
                    json!([100.0, 85.0, 60.0, 95.0][r.below(4) as usize])
                });
                out.push(json!({"op": "health", "t": t, "a": a, "v": h}));
            }
            4 if !live_labels.is_empty() => {
                let v = fresh(&mut last, &mut r, a, "torch", &|r: &mut Rng| {
                    json!(r.chance(50))
                });
                let on = live_labels[r.below(live_labels.len() as u64) as usize].0;
                out.push(json!({"op": "after", "t": t, "a": a, "v": v, "on": on}));
            }
            5 => {
                let other = live[r.below(live.len() as u64) as usize];
                let v = fresh(&mut last, &mut r, a, "x", &num);
                let loc = fresh(&mut last, &mut r, other, "location", &|r: &mut Rng| {
                    json!(["gate", "dock", "cave"][r.below(3) as usize])
                });
                out.push(json!({"op": "atomic", "t": t, "a": a, "v": v, "b": other, "loc": loc}));
            }
            6 if live.len() > 2 => {
                removed[a] = true;
                last.retain(|k, _| k.0 != a);
                live_labels.retain(|l| l.1 != a);
                out.push(json!({"op": "remove", "a": a}));
            }
            7 => {
                if let Some(back) = (0..AGENTS.len()).find(|b| removed[*b]) {
                    removed[back] = false;
                }
            }
            8 => out.push(json!({"op": "stats"})),
            _ => {}
        }
        // outcomes about as often as a game sees them (an ack ends every grant)
        let outcome = match r.below(40) {
            0..=2 => "ack",
            3 => "fail",
            _ => "none",
        };
        out.push(json!({"op": "step", "t": t, "outcome": outcome}));
    }
    out.push(json!({"op": "step", "t": t + 40.0, "outcome": "ack"}));
    out.push(json!({"op": "step", "t": t + 80.0, "outcome": "ack"}));
    out.push(json!({"op": "stats"}));
    out
}

fn fmt_num(x: f64) -> String {
    format!("{x}")
}

fn fmt_value(v: &Value) -> String {
    match v {
        Value::Number(x) => fmt_num(*x),
        Value::Bool(b) => b.to_string(),
        Value::Str(s) => s.to_string(),
        Value::Cleared => "nil".into(),
    }
}

/// The native replay: the same calls on `npc_sync::Queue`, in the canonical text.
fn native(ops: &[Json]) -> String {
    let mut q = Queue::new(Config::default()).unwrap();
    let mut out = String::new();
    let mut labels: HashMap<u64, ChangeId> = HashMap::new();
    let mut outstanding: Vec<u64> = Vec::new();
    let prio = |p: &str| match p {
        "low" => Priority::Low,
        "high" => Priority::High,
        _ => Priority::Normal,
    };
    let val = |j: &Json| match j {
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Value::Number(n.as_f64().unwrap()),
        Json::String(s) => Value::Str(s.as_str().into()),
        _ => Value::Cleared,
    };
    for o in ops {
        let t = o["t"].as_f64().unwrap_or(0.0);
        let agent =
            |q: &mut Queue, i: &Json| q.agent(AGENTS[i.as_u64().unwrap() as usize]).unwrap();
        match o["op"].as_str().unwrap() {
            "set" => {
                let a = agent(&mut q, &o["a"]);
                let c = Change::new(a, "status", o["f"].as_str().unwrap(), val(&o["v"]))
                    .priority(prio(o["p"].as_str().unwrap()));
                let id = q.set(t, c).unwrap();
                if let Some(l) = o["as"].as_u64() {
                    labels.insert(l, id);
                }
                writeln!(out, "seq {}", id.seq().0).unwrap();
            }
            "after" => {
                let a = agent(&mut q, &o["a"]);
                let dep = labels[&o["on"].as_u64().unwrap()];
                let c = Change::new(a, "status", "torch", val(&o["v"])).after(dep);
                match q.set(t, c) {
                    Ok(id) => writeln!(out, "seq {}", id.seq().0).unwrap(),
                    Err(e) => writeln!(out, "error {}", e.kind()).unwrap(),
                }
            }
            "health" => {
                let a = agent(&mut q, &o["a"]);
                let id = q.set_health(t, a, o["v"].as_f64().unwrap()).unwrap();
                writeln!(out, "seq {}", id.seq().0).unwrap();
            }
            "decide" => {
                let a = agent(&mut q, &o["a"]);
                match q.decide(a, t).unwrap() {
                    Decision::Fresh { staleness } => writeln!(out, "fresh {}", fmt_num(staleness)),
                    Decision::Syncing { staleness, .. } => {
                        writeln!(out, "syncing {}", fmt_num(staleness))
                    }
                }
                .unwrap();
            }
            "chat" => {
                let a = agent(&mut q, &o["a"]);
                q.chat(t, a, "player_1", "hi").unwrap();
                writeln!(out, "ok").unwrap();
            }
            "atomic" => {
                let a = agent(&mut q, &o["a"]);
                let b = agent(&mut q, &o["b"]);
                let ids = q
                    .atomic(
                        t,
                        &[
                            Change::new(a, "status", "x", val(&o["v"])),
                            Change::new(b, "status", "location", val(&o["loc"])),
                        ],
                    )
                    .unwrap();
                writeln!(out, "seq {} {}", ids[0].seq().0, ids[1].seq().0).unwrap();
            }
            "remove" => {
                let a = agent(&mut q, &o["a"]);
                q.remove_agent(a).unwrap();
                q.drain_events();
                writeln!(out, "ok").unwrap();
            }
            "stats" => {
                let m = q.metrics();
                writeln!(
                    out,
                    "stats in={} coalesced={} sent={} depth={} batch={} urgent={} inference={} fresh={} synced={} failures={} calls={} last_minute={}",
                    m.changes_in, m.coalesced, m.changes_sent, m.queue_depth, m.requests_batch,
                    m.requests_urgent, m.requests_inference, m.decisions_fresh, m.decisions_synced,
                    m.failures, m.calls, m.calls_last_minute
                )
                .unwrap();
            }
            "step" => {
                let outcome = o["outcome"].as_str().unwrap();
                if outcome != "none" {
                    for id in std::mem::take(&mut outstanding) {
                        let rid = npc_sync::RequestId(id);
                        if outcome == "ack" {
                            q.ack(rid, &[]).unwrap();
                        } else {
                            q.fail(t, rid, None).unwrap();
                        }
                    }
                }
                for req in q.poll(t).unwrap() {
                    outstanding.push(req.id.0);
                    let kind = match req.kind {
                        RequestKind::Batch => "batch",
                        RequestKind::Urgent => "urgent",
                        RequestKind::Inference => "inference",
                    };
                    writeln!(out, "request {} {kind} {}", req.id.0, req.changes.len()).unwrap();
                    for c in &req.changes {
                        writeln!(
                            out,
                            "change {} {}.{} {} {}",
                            q.text(c.agent_name),
                            q.text(c.block),
                            q.text(c.field),
                            fmt_value(&c.value),
                            c.seq.0
                        )
                        .unwrap();
                    }
                }
                q.drain_events();
            }
            op => panic!("unknown op {op}"),
        }
    }
    out
}

const LUAU: &str = r#"
local allJson = ...
local Http = game:GetService("HttpService")
local Packages = game:GetService("ReplicatedStorage").Packages
local NpcSync = require(Packages.NpcSync)
local Real = require(Packages.NpcSync.NpcSyncCore)
local AGENTS = { "npc-1", "npc-2", "npc-3", "npc-4" }

-- the generated module with nsq_set counted
local crossings = 0
local Counted = {
	instantiate = function(imports)
		local inst = Real.instantiate(imports)
		local X = inst.exports
		local W = setmetatable({}, { __index = X })
		W.nsq_set = function(...)
			crossings += 1
			return X.nsq_set(...)
		end
		return { exports = W }
	end,
}

-- one sequence on a fresh NpcSync (its own core instance); returns its output and how
-- many setStatus calls it made
local function sequence(ops)
	local T = 0
	local sync = NpcSync.new({ target = { kind = "batch", url = "http://127.0.0.1:9/" }, clock = function()
		return T
	end }, Counted)

	-- a sender standing in for HTTP: requests are printed, outcomes given by the ops
	local out = {}
	local function emit(s)
		table.insert(out, s)
	end
	local function fmt(v)
		if type(v) == "number" then
			if v == math.floor(v) and math.abs(v) < 1e15 then
				return string.format("%d", v)
			end
			return string.format("%.17g", v)
		end
		return tostring(v)
	end
	local outstanding, outcomes = {}, {}
	local fake = { stats = { httpCalls = 0, httpFailures = 0, httpErrors = 0, maxInFlightSeen = 0 }, inFlight = 0 }
	function fake.take(_)
		local o = outcomes
		outcomes = {}
		return o
	end
	function fake.submit(_, req)
		table.insert(outstanding, req.id)
		emit(string.format("request %d %s %d", req.id, req.kind, #req.changes))
		for _, c in req.changes do
			emit(string.format("change %s %s.%s %s %d", c.agentId, c.block, c.field, fmt(c.value), c.seq))
		end
	end
	function fake.busy(_)
		return false
	end
	sync._sender = fake
	sync._process.sender = fake

	local labels = {}
	local changes = 0
	for _, o in ops do
		if o.t then
			T = o.t
		end
		local op = o.op
		local id = if o.a ~= nil then AGENTS[o.a + 1] else nil
		if op == "set" then
			changes += 1
			local h = sync:setStatus(id, o.f, o.v, o.p)
			if o.as ~= nil then
				labels[o.as] = h
			end
			emit("seq " .. fmt(h.seq))
		elseif op == "after" then
			local ok, h = pcall(function()
				return sync:after(labels[o.on]):setStatus(id, "torch", o.v)
			end)
			emit(if ok then "seq " .. fmt(h.seq) else "error " .. tostring(h))
		elseif op == "health" then
			emit("seq " .. fmt(sync:setHealth(id, o.v).seq))
		elseif op == "decide" then
			local d = sync:decide(id)
			emit((if d.fresh then "fresh " else "syncing ") .. fmt(d.staleness))
		elseif op == "chat" then
			sync:chat(id, "player_1", "hi")
			emit("ok")
		elseif op == "atomic" then
			local hs = sync:atomic(function(tx)
				tx:setStatus(id, "x", o.v)
				tx:setLocation(AGENTS[o.b + 1], o.loc)
			end)
			emit(string.format("seq %s %s", fmt(hs[1].seq), fmt(hs[2].seq)))
		elseif op == "remove" then
			sync:removeAgent(id)
			emit("ok")
		elseif op == "stats" then
			local m = sync:stats()
			emit(
				string.format(
					"stats in=%s coalesced=%s sent=%s depth=%s batch=%s urgent=%s inference=%s fresh=%s synced=%s failures=%s calls=%s last_minute=%s",
					fmt(m.changesIn),
					fmt(m.coalesced),
					fmt(m.changesSent),
					fmt(m.queueDepth),
					fmt(m.requestsBatch),
					fmt(m.requestsUrgent),
					fmt(m.requestsInference),
					fmt(m.decisionsFresh),
					fmt(m.decisionsSynced),
					fmt(m.failures),
					fmt(m.calls),
					fmt(m.callsLastMinute)
				)
			)
		elseif op == "step" then
			if o.outcome ~= "none" then
				for _, rid in outstanding do
					table.insert(outcomes, { id = rid, ok = o.outcome == "ack" })
				end
				outstanding = {}
			end
			sync:step(o.t)
		end
	end
	return table.concat(out, "\n") .. "\n", changes
end

local outs, changes = {}, 0
for _, ops in Http:JSONDecode(allJson) do
	local o, c = sequence(ops)
	table.insert(outs, o)
	changes += c
end
return table.concat(outs, "=====\n"), crossings, changes
"#;

/// Runs sequences of ops in one VM (each on its own `NpcSync`); returns each output, the
/// `nsq_set` crossings and the `setStatus` calls.
fn luau(r: &Roblox, seqs: &[Vec<Json>]) -> (Vec<String>, u32, u32) {
    let args = serde_json::to_string(seqs)
        .unwrap()
        .into_lua_multi(&r.lua)
        .unwrap();
    let out = r
        .run("absorb", LUAU, args, 10)
        .unwrap_or_else(|e| panic!("script failed: {e}"));
    let (text, crossings, changes): (String, u32, u32) =
        mlua::FromLuaMulti::from_lua_multi(out, &r.lua).unwrap();
    (
        text.split("=====\n").map(String::from).collect(),
        crossings,
        changes,
    )
}

fn vm(native: bool) -> Roblox {
    Roblox::new(Options {
        native,
        mounts: vec![(
            "ReplicatedStorage.Packages.NpcSync".into(),
            repo_root().join("pkg/roblox"),
        )],
        ..Options::default()
    })
    .unwrap()
}

fn compare(seed: u64, got: &str, expected: &str) {
    if got != expected {
        let line = got
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        let ctx = |s: &str| {
            s.lines()
                .skip(line.saturating_sub(3))
                .take(6)
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "seed {seed}: Luau differs from native at output line {}:\nLuau:\n{}\nnative:\n{}",
            line + 1,
            ctx(got),
            ctx(expected)
        );
    }
}

#[test]
fn kept_changes_give_the_native_queues_seqs_requests_and_metrics() {
    let n = std::env::var("ABSORB_SEQUENCES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEQUENCES);
    let (mut crossings, mut changes) = (0u64, 0u64);
    // one VM interpreted and one with native code, every fourth sequence in the latter
    for native_code in [false, true] {
        let seeds: Vec<u64> = (0..n).filter(|s| (s % 4 == 3) == native_code).collect();
        let seqs: Vec<Vec<Json>> = seeds.iter().map(|s| ops(*s)).collect();
        let (outs, c, ch) = luau(&vm(native_code), &seqs);
        assert_eq!(outs.len(), seqs.len());
        for ((seed, ops), got) in seeds.iter().zip(&seqs).zip(&outs) {
            compare(*seed, got, &native(ops));
        }
        crossings += u64::from(c);
        changes += u64::from(ch);
    }
    // Without absorption every setStatus call crosses (the generator never repeats a
    // value). This mix ends grants often (a decision or chat ends its agent's grants, a
    // failure or an urgent request's retry puts units back in backoff, health and high
    // changes are never kept), yet sends and acks no longer end the grants of the fields
    // they carry: 27,426 crossings for 54,167 calls at 300 sequences (36,014 when every
    // send and ack ended every grant); the plain per-frame case is checked exactly below.
    assert!(
        crossings * 3 < changes * 2,
        "{crossings} nsq_set crossings for {changes} setStatus calls"
    );
    eprintln!("{n} sequences: {crossings} nsq_set crossings for {changes} setStatus calls");
}

/// The per-frame case alone: the NPCs changing `status.x` every frame and a step per frame,
/// each step acknowledging what was sent, over three routine batches (30 s apart). Each
/// slot crosses into the core at its first change (no poll yet: nothing granted) and at its
/// first change after the first poll (granted then); every later change is kept, also the
/// first after each batch is sent (the field's value in flight) and after its ack.
#[test]
fn the_per_frame_change_crosses_into_the_core_twice_per_field() {
    let frames = 1500usize;
    let mut ops = Vec::new();
    for f in 0..frames {
        let t = f as f64 * 0.0625;
        for a in 0..AGENTS.len() {
            ops.push(json!({"op": "set", "t": t, "a": a, "f": "x", "v": f as f64 + 0.25, "p": "normal", "as": null}));
        }
        ops.push(json!({"op": "step", "t": t, "outcome": "ack"}));
    }
    ops.push(json!({"op": "stats"}));
    // the batches were sent and acknowledged
    let expected = native(&ops);
    assert_eq!(
        expected.matches(" batch ").count(),
        3,
        "three routine batches:\n{expected}"
    );
    let (outs, crossings, changes) = luau(&vm(false), std::slice::from_ref(&ops));
    compare(0, &outs[0], &expected);
    let fields = AGENTS.len() as u32;
    assert_eq!(changes, fields * frames as u32);
    assert_eq!(
        crossings,
        2 * fields,
        "{crossings} crossings for {changes} changes"
    );
}
