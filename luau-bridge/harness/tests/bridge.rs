//! The bridge (`pkg/roblox`: the generated core plus luau-bridge/src) in a sandboxed Luau VM
//! with Roblox's services stood in, talking real HTTP to a local test server.

use mlua::{FromLuaMulti, IntoLuaMulti};
use npc_sync_luau_harness::server::{Answer, TestServer};
use npc_sync_luau_harness::{roblox::repo_root, Options, Roblox};
use serde_json::Value as Json;
use std::time::Duration;

const PRELUDE: &str = "local base = ...\nlocal NpcSync = require(game:GetService(\"ReplicatedStorage\").Packages.NpcSync)\n";

fn vm(native: bool) -> Roblox {
    Roblox::new(Options {
        native,
        mounts: vec![(
            "ReplicatedStorage.Packages.NpcSync".into(),
            repo_root().join("pkg/roblox"),
        )],
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
    assert_eq!(
        field(&server, "npc-1", "status", "location"),
        Some(Json::from("market"))
    );
    assert_eq!(
        field(&server, "npc-1", "status", "torch"),
        Some(Json::from(true))
    );
    assert_eq!(
        field(&server, "npc-1", "status", "gold"),
        Some(Json::from(12.5))
    );
    assert_eq!(
        field(&server, "npc-2", "persona", "title"),
        Some(Json::from("Smith"))
    );
    assert_eq!(
        field(&server, "npc-2", "status", "crafted"),
        Some(Json::from("sword"))
    );
    assert_eq!(
        field(&server, "npc-1", "status", "description"),
        Some(Json::from("tall, ".repeat(20)))
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
