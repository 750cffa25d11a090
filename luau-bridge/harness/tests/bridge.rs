//! The bridge (`pkg/roblox`: the generated core plus luau-bridge/src) in a sandboxed Luau VM
//! with Roblox's services stood in, talking real HTTP to a local test server.

use mlua::{FromLuaMulti, IntoLuaMulti};
use npc_sync_luau_harness::server::{Answer, TestServer};
use npc_sync_luau_harness::{roblox::package_mount, Options, Roblox};
use serde_json::Value as Json;
use std::time::Duration;

const PRELUDE: &str = "local base = ...\nlocal NpcSync = require(game:GetService(\"ReplicatedStorage\").Packages.NpcSync)\n";

fn vm(native: bool) -> Roblox {
    Roblox::new(Options {
        native,
        mounts: vec![package_mount()],
        secrets: vec![("letta_key".into(), "sk-test-1".into())],
        http_timeout: Duration::from_millis(400),
    })
    .unwrap()
}

/// Runs `body` (after PRELUDE) against `server`; returns what it returns.
fn run<T: FromLuaMulti>(r: &Roblox, server: &TestServer, body: &str) -> T {
    let src = format!("{PRELUDE}{body}");
    let args = server.base.clone().into_lua_multi(&r.lua).unwrap();
    let out = r
        .run("test", &src, args, 60 * 120)
        .unwrap_or_else(|e| panic!("script failed: {e}"));
    T::from_lua_multi(out, &r.lua).unwrap()
}

fn bodies(server: &TestServer) -> Vec<Json> {
    server.with(|s| {
        s.log
            .iter()
            .filter(|l| l.answer == Answer::Normal)
            .map(|l| serde_json::from_str(&l.body).unwrap())
            .collect()
    })
}

fn field(server: &TestServer, agent: &str, block: &str, f: &str) -> Option<Json> {
    server.with(|s| {
        s.fields
            .get(&(agent.into(), block.into(), f.into()))
            .map(|(v, _)| v.clone())
    })
}

/// Asserts that the backend stand-in holds `expected` for the field `agent`/`block`.`f`.
fn assert_holds(server: &TestServer, agent: &str, block: &str, f: &str, expected: impl Into<Json>) {
    assert_eq!(
        field(server, agent, block, f),
        Some(expected.into()),
        "{agent}/{block}.{f} at the backend"
    );
}

#[test]
fn config_errors_name_the_bad_option_and_create_nothing() {
    let server = TestServer::start();
    let r = vm(false);
    let msgs: String = run(
        &r,
        &server,
        r#"
local out = {}
local function try(cfg)
	local ok, err = pcall(NpcSync.new, cfg)
	assert(not ok, "accepted a bad config")
	table.insert(out, tostring(err))
end
try(nil)
try({})
try({ target = { kind = "rest", url = "http://x" } })
try({ target = { kind = "batch", url = "ftp://x" } })
try({ target = { kind = "batch", url = base, extra = 1 } })
try({ target = { kind = "letta", baseUrl = base } })
try({ target = { kind = "batch", url = base }, settings = { debounce = -1 } })
try({ target = { kind = "batch", url = base }, settings = { budgetPerMinute = 900 } })
try({ target = { kind = "batch", url = base }, settings = { bogus = 1 } })
try({ target = { kind = "batch", url = base }, settings = { seed = "1" } })
try({ target = { kind = "batch", url = base }, settings = { batchRequestsPerPoll = 0 } })
try({ target = { kind = "batch", url = base }, maxInFlight = 0 })
try({ target = { kind = "batch", url = base }, clock = 3 })
try({ target = { kind = "letta", baseUrl = base, apiKey = "k", blockLimit = 0 } })
return table.concat(out, "\n")
"#,
    );
    let lines: Vec<&str> = msgs.lines().collect();
    let expect = [
        "config: a table expected",
        "target: a table expected",
        "target.kind: \"batch\" or \"letta\" expected, got rest",
        "target.url: must start with http:// or https://",
        "target.extra: unknown option",
        "target.apiKey: a string or a Secret",
        "settings.debounce",
        "budget",
        "settings.bogus: unknown setting",
        "settings.seed: a number expected, got string",
        "settings.batchRequestsPerPoll",
        "maxInFlight: a whole number from 1 to 64",
        "clock: a function",
        "target.blockLimit",
    ];
    assert_eq!(lines.len(), expect.len(), "{msgs}");
    for (line, want) in lines.iter().zip(expect) {
        assert!(line.contains("NpcSync.new"), "{line}");
        assert!(line.contains(want), "expected {want:?} in {line:?}");
    }
    assert!(server.with(|s| s.log.is_empty()));
}

fn batch_round_trip(native: bool) {
    let server = TestServer::start();
    let r = vm(native);
    let (same, changes_in, emitted): (bool, f64, f64) = run(
        &r,
        &server,
        r#"
local sync = NpcSync.new({ target = { kind = "batch", url = base .. "/batch" }, settings = { batchInterval = 1 } })
sync:start()
local a = sync:setLocation("npc-1", "market")
local b = sync:setLocation("npc-1", "market") -- equal to the last value passed: skipped
sync:setStatus("npc-1", "torch", true)
sync:setStatus("npc-1", "gold", 12.5)
sync:setStatus("npc-1", "mood", "calm")
sync:setStatus("npc-1", "mood", nil) -- cleared
sync:setDescription("npc-1", string.rep("tall, ", 20))
sync:set("npc-2", "persona", "title", "Smith")
sync:toolResult("npc-2", "status", "crafted", "sword")
task.wait(2)
local s = sync:stats()
return a == b, s.changesIn, s.requestsEmitted
"#,
    );
    assert!(same, "an equal value returns the slot's last handle");
    assert_eq!(changes_in, 8.0, "the skipped call never reached the core");
    assert!(emitted >= 1.0);
    assert_holds(&server, "npc-1", "status", "location", "market");
    assert_holds(&server, "npc-1", "status", "torch", true);
    assert_holds(&server, "npc-1", "status", "gold", 12.5);
    assert_holds(&server, "npc-2", "persona", "title", "Smith");
    assert_holds(&server, "npc-2", "status", "crafted", "sword");
    assert_holds(
        &server,
        "npc-1",
        "status",
        "description",
        "tall, ".repeat(20),
    );
    // "mood" was set and cleared before anything was sent: nothing to send for it.
    assert_eq!(field(&server, "npc-1", "status", "mood"), None);
    for b in bodies(&server) {
        assert!(b["request_id"].as_f64().unwrap() >= 1.0);
        assert!(
            ["batch", "urgent"].contains(&b["kind"].as_str().unwrap()),
            "{b}"
        );
        for c in b["changes"].as_array().unwrap() {
            assert!(c["seq"].as_f64().unwrap() >= 1.0);
            assert!(c.get("group").is_none(), "no group outside atomic(): {c}");
        }
    }
}

#[test]
fn batch_target_round_trip_interpreted() {
    batch_round_trip(false);
}

#[test]
fn batch_target_round_trip_native() {
    batch_round_trip(true);
}

#[test]
fn change_call_errors_name_agent_and_field_and_change_nothing() {
    let server = TestServer::start();
    let r = vm(false);
    let (msgs, changes_in): (String, f64) = run(
        &r,
        &server,
        r#"
local sync = NpcSync.new({ target = { kind = "batch", url = base } })
local out = {}
local function try(f, ...)
	local ok, err = pcall(f, sync, ...)
	assert(not ok, "accepted bad input #" .. (#out + 1))
	table.insert(out, tostring(err))
end
sync:setLocation("npc-1", "gate")
try(sync.setHealth, "npc-1", 0 / 0)
try(sync.setStatus, "npc-1", "x", { 1 })
try(sync.setStatus, "npc-1", "x", 1, "urgentest")
try(sync.setLocation, "npc-1", 5)
try(function(s)
	s:after({ seq = 99999, slot = 0 }):setStatus("npc-1", "y", 1)
end)
try(sync.removeAgent, "npc-404")
try(sync.step, -1)
try(sync.waitFresh, "npc-1", -1)
try(sync.leaveGroup, "npc-1", 7)
try(sync.setStatus, "", "x", 1)
return table.concat(out, "\n"), sync:stats().changesIn
"#,
    );
    let lines: Vec<&str> = msgs.lines().collect();
    let expect = [
        ("NpcSync:setHealth", "npc-1"),
        (
            "NpcSync:setStatus",
            "a number, boolean, string or nil expected, got table",
        ),
        (
            "NpcSync:setStatus",
            "priority must be low, normal, high or critical",
        ),
        ("NpcSync:setLocation", "location must be a string"),
        ("NpcSync:", "99999"),
        ("NpcSync:removeAgent", "npc-404"),
        ("NpcSync:step", ""),
        ("NpcSync:waitFresh", "timeout"),
        ("NpcSync:leaveGroup", "member id must be a string"),
        ("NpcSync:setStatus", ""),
    ];
    assert_eq!(lines.len(), expect.len(), "{msgs}");
    for (line, (call, detail)) in lines.iter().zip(expect) {
        assert!(line.contains(call), "expected {call:?} in {line:?}");
        assert!(line.contains(detail), "expected {detail:?} in {line:?}");
    }
    assert!(lines[0].contains("health"), "{}", lines[0]);
    assert_eq!(changes_in, 1.0, "no failed call queued anything");
}

/// The kept path (a change of a granted slot: a table write in the bridge, no core call)
/// keeps every check of a change call and the queue's time order: bad values and
/// priorities on a granted slot raise the same errors and change nothing, a clock that
/// goes back is read as the latest time (the core refuses kept times that go backwards),
/// and the backend ends with the last good value.
fn kept_changes_check_input_and_keep_time_order(native: bool) {
    let server = TestServer::start();
    let r = vm(native);
    let (msgs, kept, changes_in): (String, f64, f64) = run(
        &r,
        &server,
        r#"
local t = 0
local sync = NpcSync.new({ target = { kind = "batch", url = base }, clock = function()
	return t
end })
local out = {}
local function try(f, ...)
	local ok, err = pcall(f, sync, ...)
	assert(not ok, "accepted bad input #" .. (#out + 1))
	table.insert(out, tostring(err))
end
sync:setStatus("npc-1", "x", 1)
t = 1
sync:step()
-- the first change after the poll brings the slot's grant back, the next ones are kept
sync:setStatus("npc-1", "x", 2)
local h3 = sync:setStatus("npc-1", "x", 3)
assert(sync._absorb.kept == 1, "x kept")
try(sync.setStatus, "npc-1", "x", 0 / 0)
try(sync.setStatus, "npc-1", "x", math.huge)
try(sync.setStatus, "npc-1", "x", { 1 })
try(sync.setStatus, "npc-1", "x", 4, "urgentest")
try(sync.set, "npc-1", "status", "x", -math.huge)
try(sync.setStatus, "", "x", 4)
-- the clock goes back: the kept changes' times stay in order
t = 0.5
sync:setStatus("npc-1", "x", 5)
local h6 = sync:setStatus("npc-1", "x", 6)
assert(h6.seq > h3.seq and h6.slot == h3.slot, "a new handle per change")
assert(h3.seq < h6.seq and sync:setStatus("npc-1", "x", 6) == h6, "an equal value keeps the handle")
local kept = sync._absorb.kept
t = 2
assert(sync:flushAll(5), "flushed")
return table.concat(out, "\n"), kept, sync:stats().changesIn
"#,
    );
    let lines: Vec<&str> = msgs.lines().collect();
    let expect = [
        ("NpcSync:setStatus", "npc-1"),
        ("NpcSync:setStatus", "npc-1"),
        (
            "NpcSync:setStatus",
            "a number, boolean, string or nil expected, got table",
        ),
        (
            "NpcSync:setStatus",
            "priority must be low, normal, high or critical",
        ),
        ("NpcSync:set", "npc-1"),
        ("NpcSync:setStatus", ""),
    ];
    assert_eq!(lines.len(), expect.len(), "{msgs}");
    for (line, (call, detail)) in lines.iter().zip(expect) {
        assert!(line.contains(call), "expected {call:?} in {line:?}");
        assert!(line.contains(detail), "expected {detail:?} in {line:?}");
    }
    assert_eq!(kept, 1.0, "x stayed kept through the errors");
    // 1, 2 through the core; 3, 5, 6 kept; no failed call counted
    assert_eq!(changes_in, 5.0, "{msgs}");
    assert_holds(&server, "npc-1", "status", "x", 6);
}

#[test]
fn kept_changes_check_input_and_keep_time_order_interpreted() {
    kept_changes_check_input_and_keep_time_order(false);
}

#[test]
fn kept_changes_check_input_and_keep_time_order_native() {
    kept_changes_check_input_and_keep_time_order(true);
}

#[test]
fn atomic_groups_travel_whole_and_dependencies_in_order() {
    let server = TestServer::start();
    let r = vm(false);
    let (n, rejected, changes_before, changes_after): (u32, String, f64, f64) = run(
        &r,
        &server,
        r#"
local sync = NpcSync.new({ target = { kind = "batch", url = base .. "/batch" }, settings = { batchInterval = 1 } })
local hs = sync:atomic(function(tx)
	tx:setLocation("npc-1", "forge")
	tx:setState("npc-1", "Crafting")
	tx:joinGroup("npc-1", "player_7", { role = "buyer" })
end)
local before = sync:stats().changesIn
local ok, err = pcall(sync.atomic, sync, function(tx)
	tx:setLocation("npc-1", "nowhere")
	error("tool failed")
end)
assert(not ok)
local okLeave, errLeave = pcall(sync.atomic, sync, function(tx)
	tx:leaveGroup("npc-1", "player_7")
end)
assert(not okLeave)
local after = sync:stats().changesIn
local crafted = sync:after(hs[1]):toolResult("npc-1", "status", "crafted", "sword")
assert(crafted.seq > hs[#hs].seq)
sync:start()
task.wait(2.5)
return #hs, tostring(err) .. " | " .. tostring(errLeave), before, after
"#,
    );
    assert_eq!(n, 4, "location, state, is_present, role");
    assert!(rejected.contains("tool failed"), "{rejected}");
    assert!(rejected.contains("NpcSync:leaveGroup"), "{rejected}");
    assert_eq!(
        changes_before, changes_after,
        "a failed atomic() queues nothing"
    );
    let bodies = bodies(&server);
    // the group's four changes in one request, in the order given, under one group id
    let group: Vec<&Json> = bodies
        .iter()
        .flat_map(|b| b["changes"].as_array().unwrap())
        .filter(|c| c.get("group").is_some())
        .collect();
    assert_eq!(group.len(), 4, "{bodies:?}");
    let gid = group[0]["group"].clone();
    assert!(group.iter().all(|c| c["group"] == gid));
    let fields: Vec<&str> = group.iter().map(|c| c["field"].as_str().unwrap()).collect();
    assert_eq!(
        fields,
        ["location", "state", "player_7.is_present", "player_7.role"]
    );
    let seqs: Vec<f64> = group.iter().map(|c| c["seq"].as_f64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    // the tool result is never delivered before the location it depends on
    let pos = |f: &str| {
        bodies.iter().enumerate().find_map(|(i, b)| {
            b["changes"]
                .as_array()
                .unwrap()
                .iter()
                .position(|c| c["field"] == f)
                .map(|j| (i, j))
        })
    };
    assert!(pos("location").unwrap() < pos("crafted").unwrap());
    assert_holds(&server, "npc-1", "status", "crafted", "sword");
    assert_holds(&server, "npc-1", "group_members", "player_7.role", "buyer");
}

#[test]
fn failures_are_retried_until_the_backend_has_everything() {
    let server = TestServer::start();
    // 503, then 429 with Retry-After 2, then no answer within the client's timeout
    server.inject(&[
        Answer::Status(503),
        Answer::TooMany(2),
        Answer::Hang(Duration::from_millis(700)),
    ]);
    let r = vm(false);
    let (failures, http_failures, http_errors, depth): (f64, f64, f64, f64) = run(
        &r,
        &server,
        r#"
local sync = NpcSync.new({ target = { kind = "batch", url = base .. "/batch" }, settings = { batchInterval = 1 } })
sync:start()
sync:setLocation("npc-1", "gate")
sync:setHealth("npc-1", 80)
task.wait(3)
sync:setLocation("npc-1", "wall") -- newer value while retries go on
local ok = sync:flushAll(40)
assert(ok, "flushAll timed out")
local s = sync:stats()
return s.failures, s.httpFailures, s.httpErrors, s.queueDepth
"#,
    );
    assert_eq!(
        failures, 3.0,
        "each injected fault is reported as a failure"
    );
    assert_eq!(http_failures, 2.0, "503 and 429 are answers");
    assert_eq!(http_errors, 1.0, "the timeout is an error");
    assert_eq!(depth, 0.0);
    assert_holds(&server, "npc-1", "status", "location", "wall");
    assert_holds(&server, "npc-1", "status", "health", 80);
    // The hung request is logged when its handler wakes, which may be after flushAll
    // (a flush does not wait out the retry backoff): three answers at least.
    let answers: Vec<Answer> = server.with(|s| s.log.iter().map(|l| l.answer.clone()).collect());
    assert!(answers.len() >= 3, "{answers:?}");
    assert!(answers.contains(&Answer::Normal), "{answers:?}");
}

#[test]
fn retry_after_holds_traffic_back() {
    let server = TestServer::start();
    server.inject(&[Answer::TooMany(3)]);
    let r = vm(false);
    let times: Vec<f64> = {
        let t: mlua::Table = run(
            &r,
            &server,
            r#"
local sync = NpcSync.new({ target = { kind = "batch", url = base .. "/batch" }, settings = { batchInterval = 1 } })
local times = {}
sync:setLocation("npc-1", "gate")
local calls = 0
for _ = 1, 60 * 8 do
	sync:step()
	local c = sync:stats().httpCalls
	if c > calls then
		calls = c
		table.insert(times, os.clock())
	end
	task.wait()
end
return times
"#,
        );
        t.sequence_values::<f64>().map(|v| v.unwrap()).collect()
    };
    assert_eq!(times.len(), 2, "one 429, one retry: {times:?}");
    assert!(
        times[1] - times[0] >= 3.0,
        "the retry waited for Retry-After: {times:?}"
    );
}

#[test]
fn wait_fresh_says_fresh_or_timeout() {
    let server = TestServer::start();
    let r = vm(false);
    let (a, a_why, b, b_why, c, c_why, d_why): (bool, String, bool, String, bool, String, String) =
        run(
            &r,
            &server,
            r#"
local sync = NpcSync.new({ target = { kind = "batch", url = base .. "/batch" },
	settings = { debounce = 0.5, combatDebounce = 0.5, freshness = 1, combatFreshness = 1 } })
sync:start()
sync:setLocation("npc-1", "gate")
local a, aWhy = sync:waitFresh("npc-1", 5) -- young changes: fresh at once
sync:setLocation("npc-2", "wall")
task.wait(1.5)
local d = sync:decide("npc-2")
assert(not d.fresh and d.threshold == 1, "a 1.5 s old change is stale under freshness 1")
local b, bWhy = sync:waitFresh("npc-2", 5) -- stale: synced urgently, then fresh
sync:setLocation("npc-3", "moat")
task.wait(1.5)
harness.holdHttp(true) -- the backend never answers
local c, cWhy = sync:waitFresh("npc-3", 0.5)
harness.holdHttp(false)
sync:setLocation("npc-4", "keep")
task.wait(1.5)
harness.holdHttp(true)
local dWhy
task.spawn(function()
	local _, why = sync:waitFresh("npc-4", 10)
	dWhy = why
end)
task.wait(0.1)
sync:removeAgent("npc-4")
task.wait(0.1)
harness.holdHttp(false)
return a, aWhy, b, bWhy, c, cWhy, dWhy
"#,
        );
    assert_eq!((a, a_why.as_str()), (true, "fresh"));
    assert_eq!((b, b_why.as_str()), (true, "fresh"));
    assert_eq!((c, c_why.as_str()), (false, "timeout"));
    assert_eq!(d_why, "removed");
    assert_holds(&server, "npc-2", "status", "location", "wall");
}

#[test]
fn flush_all_sends_every_pending_change_and_chat() {
    let server = TestServer::start();
    let r = vm(false);
    let (ok, why, idle_calls): (bool, String, f64) = run(
        &r,
        &server,
        r#"
local sync = NpcSync.new({ target = { kind = "batch", url = base .. "/batch" } })
for i = 1, 20 do
	sync:setLocation("npc-" .. i, "square")
	sync:setStatus("npc-" .. i, "coins", i)
end
sync:chat("npc-3", "player_1", "hello there")
local ok, why = sync:flushAll(25) -- routine batches are 30 s apart: flushAll does not wait for one
return ok, why, sync:stats().httpCalls
"#,
    );
    assert!(ok, "{why}");
    assert!(idle_calls >= 2.0);
    for i in 1..=20 {
        let a = format!("npc-{i}");
        assert_holds(&server, &a, "status", "location", "square");
        assert_holds(&server, &a, "status", "coins", i);
    }
    let inference: Vec<Json> = bodies(&server)
        .into_iter()
        .filter(|b| b["kind"] == "inference")
        .collect();
    assert_eq!(inference.len(), 1);
    assert_eq!(inference[0]["agent_id"], "npc-3");
    assert_eq!(inference[0]["messages"][0]["sender"], "player_1");
    assert_eq!(inference[0]["messages"][0]["text"], "hello there");
}

#[test]
fn letta_target_patches_whole_blocks_and_posts_messages() {
    let server = TestServer::start();
    let r = vm(false);
    let _: () = run(
        &r,
        &server,
        r#"
local Http = game:GetService("HttpService")
local sync = NpcSync.new({ target = { kind = "letta", baseUrl = base, apiKey = Http:GetSecret("letta_key") } })
sync:setLocation("agent-1", "market")
sync:setStatus("agent-1", "torch", true)
sync:setHealth("agent-1", 90)
sync:joinGroup("agent-1", "player_2", { role = "guard" })
sync:chat("agent-1", "player_2", "follow me")
assert(sync:flushAll(25))
sync:setLocation("agent-1", "gate")
assert(sync:flushAll(25))
"#,
    );
    server.with(|s| {
        for l in &s.log {
            assert_eq!(l.headers["authorization"], "Bearer sk-test-1");
        }
        // The core's rendering (docs/letta-block-format.md), not the bridge's.
        assert_eq!(
            s.blocks[&("agent-1".to_string(), "status".to_string())],
            "health: 90\nlocation: \"gate\"\ntorch: true"
        );
        assert_eq!(
            s.blocks[&("agent-1".to_string(), "group_members".to_string())],
            "player_2.is_present: true\nplayer_2.role: \"guard\""
        );
        assert_eq!(s.messages.len(), 1);
        assert_eq!(s.messages[0].0, "agent-1");
        assert_eq!(s.messages[0].1["messages"][0]["content"], "follow me");
        assert_eq!(s.messages[0].1["messages"][0]["name"], "player_2");
        // Each agent-block is read once (404: empty), before its first write (the two reads
        // run at once: sorted, their arrival order is not fixed).
        let mut gets: Vec<&str> = s
            .log
            .iter()
            .filter(|l| l.method == "GET")
            .map(|l| l.path.as_str())
            .collect();
        gets.sort();
        assert_eq!(
            gets,
            [
                "/v1/agents/agent-1/core-memory/blocks/group_members",
                "/v1/agents/agent-1/core-memory/blocks/status"
            ]
        );
        let first_patch = s.log.iter().position(|l| l.method == "PATCH").unwrap();
        assert!(
            s.log[..first_patch]
                .iter()
                .filter(|l| l.method == "GET")
                .count()
                == 2
        );
        assert!(s
            .log
            .iter()
            .all(|l| l.method == "PATCH" || l.method == "POST" || l.method == "GET"));
    });
}

#[test]
fn letta_target_reads_blocks_first_and_keeps_what_letta_holds() {
    let server = TestServer::start();
    // A restarted server: Letta holds what an earlier run wrote, plus a line of free text.
    server.set_block(
        "agent-1",
        "status",
        "health: 90\nlocation: \"market\"\nmood: \"calm\"\nI wrote this myself",
    );
    let r = vm(false);
    let (unreadable, first): (f64, f64) = run(
        &r,
        &server,
        r#"
local sync = NpcSync.new({ target = { kind = "letta", baseUrl = base, apiKey = "k", blockLimits = { persona = 30 } } })
local seen = {}
sync.events:Connect(function(e)
	if e.kind == "blockUnreadable" then
		table.insert(seen, e)
	end
end)
sync:setLocation("agent-1", "market") -- what Letta holds: nothing to send
sync:setHealth("agent-1", 70)
local ok, err = pcall(sync.setStatus, sync, "agent-1", "mood", string.rep("x", 5000))
assert(not ok and string.find(err, "over its limit of 5000", 1, true), err)
ok, err = pcall(function()
	sync:toolResult("agent-1", "persona", "goal", "a goal far too long for thirty")
end)
assert(not ok and string.find(err, "block `persona`", 1, true), err)
assert(sync:flushAll(25))
assert(#seen == 1 and seen[1].block == "status", "one unreadable event")
return seen[1].lines, seen[1].firstLine
"#,
    );
    assert_eq!((unreadable, first), (1.0, 4.0));
    server.with(|s| {
        assert_eq!(
            s.blocks[&("agent-1".to_string(), "status".to_string())],
            "health: 70\nlocation: \"market\"\nmood: \"calm\""
        );
        let patches: Vec<&str> = s
            .log
            .iter()
            .filter(|l| l.method == "PATCH")
            .map(|l| l.path.as_str())
            .collect();
        assert_eq!(patches, ["/v1/agents/agent-1/core-memory/blocks/status"]);
    });
}

#[test]
fn http_calls_in_flight_stay_within_the_bound() {
    let server = TestServer::start();
    let r = vm(false);
    let (held, max_seen, calls): (u32, f64, f64) = run(
        &r,
        &server,
        r#"
local Http = game:GetService("HttpService")
local sync = NpcSync.new({ target = { kind = "letta", baseUrl = base, apiKey = "k" }, maxInFlight = 2 })
for i = 1, 5 do
	sync:setLocation("agent-" .. i, "hall")
end
harness.holdHttp(true)
sync:flushAll(0) -- emits the requests, returns at once
local held = harness.httpWaiting()
harness.holdHttp(false)
assert(sync:flushAll(25))
local s = sync:stats()
return held, s.httpMaxInFlight, s.httpCalls
"#,
    );
    assert_eq!(
        held, 2,
        "only maxInFlight calls start while answers are outstanding"
    );
    assert_eq!(max_seen, 2.0);
    // Two block reads per agent (status, group_members), then one write each.
    assert_eq!(calls, 15.0);
    server.with(|s| {
        assert!(s.max_concurrent <= 2);
        assert_eq!(s.log.iter().filter(|l| l.method == "PATCH").count(), 5);
    });
}

/// The batch endpoint's answer as `Batch.confirmed` reads it (the decoded entries
/// themselves when the array is clean, the usable ones in order otherwise, nil without
/// `confirmed`), and those entries, wire names and all, through the driver's step into the
/// core's ack: a restart's seq moves the core's counter past it.
fn confirmed_answers_reach_the_ack_as_decoded(native: bool) {
    let server = TestServer::start();
    let r = vm(native);
    let (shapes, restart, plain): (String, f64, f64) = run(
        &r,
        &server,
        concat!(
            include_str!("../examples/support/fake_sender.luau"),
            r#"
local Batch = require(game:GetService("ReplicatedStorage").Packages.NpcSync.batch)
local shapes = {}
local function shape(body)
	local list = Batch.confirmed(body)
	if list == nil then
		table.insert(shapes, "nil")
		return
	end
	local names = {}
	for _, c in list do
		table.insert(names, c.agent_id .. "/" .. c.seq)
	end
	table.insert(shapes, #list .. ":" .. table.concat(names, ","))
end
shape('{"confirmed":[{"agent_id":"npc-1","block":"status","field":"x","value":1,"seq":3},{"agent_id":"npc-2","seq":4}]}')
shape('{"confirmed":[null,{"agent_id":"npc-1","seq":2},{"seq":3},5,{"agent_id":"npc-3","seq":"4"},{"agent_id":"npc-4","seq":6}]}')
shape('{"confirmed":{"a":{"agent_id":"npc-5","seq":7}}}')
shape('{"confirmed":[]}')
shape('{"ok":true}')
shape("not json")

-- one urgent request of npc-1's status.x acknowledged with an answer text: the sender is
-- replaced by one that hands the answer on as the HTTP sender does
local function afterAnswer(answer)
	local T = 1
	local sync = NpcSync.new({ target = { kind = "batch", url = base .. "/batch" }, clock = function()
		return T
	end })
	local sent = nil
	local fake = fakeSender(sync, function(req)
		sent = req
	end)
	sync:setStatus("npc-1", "x", 1)
	sync:setState("npc-1", "Combat")
	sync:step(T)
	assert(sent ~= nil, "the urgent request went")
	local text = string.gsub(answer, "ID", tostring(sent.id))
	table.insert(fake.outcomes, { id = sent.id, ok = true, confirmed = Batch.confirmed(text) })
	T = 2
	sync:step(T)
	return sync:setStatus("npc-1", "x", 2).seq
end
local restart = afterAnswer('{"confirmed":[{"agent_id":"npc-1","block":"status","field":"x","value":9,"seq":1000000}]}')
local plain = afterAnswer('{"confirmed":[]}')
return table.concat(shapes, " | "), restart, plain
"#
        ),
    );
    assert_eq!(
        shapes,
        "2:npc-1/3,npc-2/4 | 2:npc-1/2,npc-4/6 | 1:npc-5/7 | 0: | nil | nil"
    );
    assert!(
        restart > 1_000_000.0,
        "a confirmed seq of an earlier run moves the counter past it: {restart}"
    );
    assert!(plain < 100.0, "without it the counter stays: {plain}");
}

#[test]
fn confirmed_answers_reach_the_ack_as_decoded_interpreted() {
    confirmed_answers_reach_the_ack_as_decoded(false);
}

#[test]
fn confirmed_answers_reach_the_ack_as_decoded_native() {
    confirmed_answers_reach_the_ack_as_decoded(true);
}

#[test]
fn removals_and_released_dependencies_are_reported() {
    let server = TestServer::start();
    let r = vm(false);
    let (kinds, dropped): (String, f64) = run(
        &r,
        &server,
        r#"
local sync = NpcSync.new({ target = { kind = "batch", url = base .. "/batch" } })
local seen = {}
sync.events:Connect(function(e)
	table.insert(seen, e)
end)
local moved = sync:setLocation("npc-1", "gate")
sync:after(moved):setStatus("npc-2", "follows", "npc-1")
sync:removeAgent("npc-1")
task.wait()
sync:step()
task.wait()
local kinds, dropped = {}, 0
for _, e in seen do
	table.insert(kinds, e.kind .. ":" .. e.agentId)
	if e.kind == "agentRemoved" then
		dropped = e.fieldsDropped
	end
end
table.sort(kinds)
return table.concat(kinds, ","), dropped
"#,
    );
    assert_eq!(kinds, "agentRemoved:npc-1,dependencyReleased:npc-2");
    assert_eq!(dropped, 1.0);
}

#[test]
fn combat_and_critical_changes_leave_at_the_next_step() {
    let server = TestServer::start();
    let r = vm(true);
    let (urgent, in_combat_frames): (f64, u32) = run(
        &r,
        &server,
        r#"
local sync = NpcSync.new({ target = { kind = "batch", url = base .. "/batch" } })
sync:setHealth("npc-1", 100)
sync:setLocation("npc-1", "gate")
assert(sync:flushAll(25))
sync:setState("npc-1", "Combat") -- critical: leaves at the next step, with no batch wait
sync:setStatus("npc-1", "target", "wolf") -- rides along with it
local frames = 0
while sync:stats().requestsUrgent == 0 and frames < 10 do
	sync:step()
	task.wait()
	frames += 1
end
task.wait()
sync:step()
sync:setHealth("npc-1", 70) -- a 30 point drop: critical, after the 1 s combat debounce
sync:start()
task.wait(1.5)
return sync:stats().requestsUrgent, frames
"#,
    );
    assert!(
        urgent >= 2.0,
        "the Combat state and the health drop each went urgent"
    );
    assert!(
        in_combat_frames <= 2,
        "no batch wait: {in_combat_frames} frames"
    );
    assert_holds(&server, "npc-1", "status", "state", "Combat");
    assert_holds(&server, "npc-1", "status", "target", "wolf");
    assert_holds(&server, "npc-1", "status", "health", 70);
    let kinds: Vec<String> = bodies(&server)
        .iter()
        .filter(|b| {
            b["changes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["field"] == "state")
        })
        .map(|b| b["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["urgent"]);
}

#[test]
fn long_text_values_survive_interning_in_the_same_call() {
    let server = TestServer::start();
    let r = vm(false);
    let _: () = run(
        &r,
        &server,
        r#"
local sync = NpcSync.new({ target = { kind = "batch", url = base .. "/batch" } })
-- over 64 bytes: passed as one-off text in the scratch, next to names being interned
sync:joinGroup("npc-1", "player_5", { bio = string.rep("brave and loyal; ", 8) })
assert(sync:flushAll(25))
"#,
    );
    assert_holds(
        &server,
        "npc-1",
        "group_members",
        "player_5.bio",
        "brave and loyal; ".repeat(8),
    );
}

#[test]
fn a_removed_agent_can_come_back_under_the_same_id() {
    let server = TestServer::start();
    let r = vm(false);
    let _: () = run(
        &r,
        &server,
        r#"
local sync = NpcSync.new({ target = { kind = "batch", url = base .. "/batch" } })
sync:setStatus("npc-1", "hp", 5)
sync:removeAgent("npc-1")
-- the caches forgot it: the same value is a new change for the new agent, not skipped
local h = sync:setStatus("npc-1", "hp", 5)
assert(h.seq == 2, "a new change, got seq " .. h.seq)
assert(sync:flushAll(25))
"#,
    );
    assert_holds(&server, "npc-1", "status", "hp", 5);
}

#[test]
fn letta_block_reads_wait_for_the_budget() {
    let server = TestServer::start();
    let r = vm(false);
    let (early, later): (f64, f64) = run(
        &r,
        &server,
        r#"
-- 5 calls a minute, 2 of them routine: the block reads (two per agent) take the budget
-- one by one and never exceed it; the rest wait, without blocking the frame.
local sync = NpcSync.new({
	target = { kind = "letta", baseUrl = base, apiKey = "k" },
	settings = { budgetPerMinute = 5, budgetBurst = 5, routineShare = 0.4 },
})
for i = 1, 3 do
	sync:setLocation("agent-" .. i, "hall")
end
sync:step()
task.wait(1)
sync:step()
local early = sync:stats().httpCalls
return early, sync:stats().calls
"#,
    );
    assert_eq!(early, 2.0, "two routine calls of budget: two reads");
    assert_eq!(later, 2.0, "the core counted them");
    server.with(|s| {
        assert_eq!(s.log.len(), 2);
        assert!(s.log.iter().all(|l| l.method == "GET"));
    });
}
