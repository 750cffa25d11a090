//! `tests/bench/HandQueue.luau`, the hand-written queue the frame bench compares npc-sync
//! with, does the job its header claims (so the comparison prices equal work): coalescing
//! per NPC, critical changes at the next step, a periodic batch, decision syncs, a failed
//! request's fields sent again.

use mlua::{FromLuaMulti, IntoLuaMulti};
use npc_sync_luau_harness::server::{Answer, TestServer};
use npc_sync_luau_harness::{roblox::repo_root, Options, Roblox};
use serde_json::Value as Json;

const PRELUDE: &str = r#"local base = ...
local HandQueue = require(game:GetService("ReplicatedStorage").HandQueue)
local now = 0
local q = HandQueue.new({ url = base .. "/batch", clock = function() return now end })
local function frames(n)
	for _ = 1, n do
		now += 1 / 60
		q:step(now)
		task.wait()
	end
end
"#;

fn run<T: FromLuaMulti>(server: &TestServer, body: &str) -> T {
    let r = Roblox::new(Options {
        mounts: vec![(
            "ReplicatedStorage.HandQueue".into(),
            repo_root().join("tests/bench/HandQueue.luau"),
        )],
        ..Options::default()
    })
    .unwrap();
    let src = format!("{PRELUDE}{body}");
    let args = server.base.clone().into_lua_multi(&r.lua).unwrap();
    let out = r
        .run("test", &src, args, 60 * 120)
        .unwrap_or_else(|e| panic!("script failed: {e}"));
    T::from_lua_multi(out, &r.lua).unwrap()
}

/// Every request body the server received, in order, with its answer.
fn bodies(server: &TestServer) -> Vec<(Json, Answer)> {
    server.with(|s| {
        s.log
            .iter()
            .map(|l| (serde_json::from_str(&l.body).unwrap(), l.answer.clone()))
            .collect()
    })
}

/// (agent, field, value) of a body's changes, sorted.
fn changes(body: &Json) -> Vec<(String, String, Json)> {
    let mut v: Vec<_> = body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["agent_id"].as_str().unwrap().to_string(),
                c["field"].as_str().unwrap().to_string(),
                c["value"].clone(),
            )
        })
        .collect();
    v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    v
}

#[test]
fn routine_changes_coalesce_into_the_periodic_batch() {
    let server = TestServer::start();
    let sent: f64 = run(
        &server,
        r#"
for f = 1, 120 do
	q:setStatus("npc-1", "x", f)
	q:setStatus("npc-2", "x", 1000 + f)
	frames(1)
end
frames(60 * 29) -- the batch is due 30 s after the start
return q.stats.changesSent
"#,
    );
    let b = bodies(&server);
    assert_eq!(b.len(), 1, "one batch: {b:?}");
    assert_eq!(b[0].0["kind"], "batch");
    assert_eq!(
        changes(&b[0].0),
        vec![
            ("npc-1".into(), "x".into(), Json::from(120)),
            ("npc-2".into(), "x".into(), Json::from(1120)),
        ]
    );
    assert_eq!(sent, 2.0);
}

#[test]
fn critical_changes_go_at_the_next_step_small_ones_wait() {
    let server = TestServer::start();
    let _: () = run(
        &server,
        r#"
q:setHealth("npc-1", 100)
q:setState("npc-1", "Idle")
frames(1) -- leaving nothing: Idle is not critical, and nothing was sent before
q:setState("npc-2", "Combat")
frames(2)
q:setHealth("npc-3", 95) -- no health sent yet for npc-3: not a drop
frames(2)
"#,
    );
    let b = bodies(&server);
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].0["kind"], "urgent");
    assert_eq!(
        changes(&b[0].0),
        vec![("npc-2".into(), "state".into(), Json::from("Combat"))]
    );
}

#[test]
fn a_health_drop_of_20_from_what_was_sent_is_critical() {
    let server = TestServer::start();
    let _: () = run(
        &server,
        r#"
q:setHealth("npc-1", 100)
q:setState("npc-1", "Combat") -- critical: sends health 100 along
frames(2)
q:setHealth("npc-1", 90) -- 10 points: waits
frames(2)
q:setHealth("npc-1", 79) -- 21 points below the 100 sent
frames(2)
"#,
    );
    let b = bodies(&server);
    assert_eq!(b.len(), 2, "{b:?}");
    assert_eq!(
        changes(&b[1].0),
        vec![("npc-1".into(), "health".into(), Json::from(79))]
    );
}

#[test]
fn a_stale_decision_syncs_the_npc_and_is_fresh_once_acknowledged() {
    let server = TestServer::start();
    let (first, before, after): (bool, bool, bool) = run(
        &server,
        r#"
q:setStatus("npc-1", "x", 1)
local first = q:decide("npc-1") -- the change is new: fresh enough
frames(60 * 16) -- 16 s later, still unsent (the batch is at 30 s)
local before = q:decide("npc-1")
frames(3) -- sent at the next step, answered in the next frame
return first, before, q:decide("npc-1")
"#,
    );
    assert!(first);
    assert!(
        !before,
        "a 16 s old unsent change is over the 15 s threshold"
    );
    assert!(after);
    let b = bodies(&server);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].0["kind"], "urgent");
}

#[test]
fn a_failed_request_is_sent_again_unless_a_newer_value_waits() {
    let server = TestServer::start();
    server.inject(&[Answer::Status(503)]);
    let failures: f64 = run(
        &server,
        r#"
q:setState("npc-1", "Combat")
q:setStatus("npc-1", "x", 1)
frames(2) -- sent, answered 503
q:setStatus("npc-1", "x", 2) -- newer than the failed 1
q:setState("npc-1", "Idle") -- critical again
frames(2)
return q.stats.failures
"#,
    );
    assert_eq!(failures, 1.0);
    let b = bodies(&server);
    assert_eq!(b.len(), 2, "{b:?}");
    assert_eq!(b[0].1, Answer::Status(503));
    assert_eq!(
        changes(&b[1].0),
        vec![
            ("npc-1".into(), "state".into(), Json::from("Idle")),
            ("npc-1".into(), "x".into(), Json::from(2)),
        ]
    );
}
