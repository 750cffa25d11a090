//! The versus profiler (`examples/versus_profile.luau`, run by `examples/versus_profile.rs`)
//! on a short stretch of the versus trace: it wraps the core's exports and the bridge's
//! phases without changing what the queue does, and its counts agree with the queue's own.

#[path = "../benches/versus/luau_run.rs"]
mod luau_run;
#[allow(dead_code)]
#[path = "../benches/versus/trace.rs"]
mod trace;

use luau_run::{script_args, versus_vm};
use npc_sync_luau_harness::roblox::package_mount;
use npc_sync_luau_harness::server::TestServer;
use serde_json::Value as Json;
use trace::Trace;

const SCRIPT: &str = include_str!("../examples/versus_profile.luau");
const NPCS: u32 = 30;
const FRAMES: u32 = 300;

fn run(tr: &Trace, imp: &str) -> Json {
    let server = TestServer::start();
    let r = versus_vm(false, package_mount());
    let lua = &r.lua;
    let args = script_args(lua, imp, &server.base, tr, ());
    let out = r
        .run(imp, SCRIPT, args, tr.frames + 10)
        .unwrap_or_else(|e| panic!("{imp}: {e}"));
    let text: String = mlua::FromLuaMulti::from_lua_multi(out, lua).expect("JSON text");
    serde_json::from_str(&text).expect("JSON")
}

/// calls and items of one wrapped function (0 when it was never called).
fn func(r: &Json, name: &str) -> (f64, f64) {
    r["functions"]
        .as_array()
        .expect("functions")
        .iter()
        .find(|f| f["name"] == name)
        .map_or((0.0, 0.0), |f| {
            (
                f["calls"].as_f64().unwrap_or(0.0),
                f["items"].as_f64().unwrap_or(0.0),
            )
        })
}

fn sent(r: &Json) -> (f64, f64) {
    r["functions"]
        .as_array()
        .expect("functions")
        .iter()
        .filter(|f| f["name"].as_str().unwrap_or("").starts_with("(sent "))
        .fold((0.0, 0.0), |acc, f| {
            (
                acc.0 + f["calls"].as_f64().unwrap_or(0.0),
                acc.1 + f["items"].as_f64().unwrap_or(0.0),
            )
        })
}

#[test]
fn profiled_runs_count_what_the_queue_did() {
    let tr = Trace::generate(NPCS, FRAMES, 1);
    let plain = run(&tr, "plain");
    for imp in ["profile", "light"] {
        let r = run(&tr, imp);
        // the wrappers change nothing the queue does
        assert_eq!(r["requests"], plain["requests"], "{imp}: requests");
        assert_eq!(
            r["changes_sent"], plain["changes_sent"],
            "{imp}: changes sent"
        );
        assert_eq!(r["fresh"], plain["fresh"], "{imp}: fresh decisions");
        assert!(
            r["requests"].as_f64().unwrap_or(0.0) > 0.0,
            "{imp}: the stretch sends requests"
        );
        assert_eq!(
            r["calls_ms"].as_array().map(Vec::len),
            Some(FRAMES as usize),
            "{imp}: one row per frame"
        );
        // every request went through the wire form, counted with its changes (the plain
        // run's stats count every request emitted by the end)
        let (requests, changes) = sent(&r);
        assert_eq!(requests, r["requests"].as_f64().unwrap(), "{imp}: requests");
        assert_eq!(
            changes,
            r["changes_sent"].as_f64().unwrap(),
            "{imp}: changes"
        );
        // every status change of frames 1..FRAMES went through setStatus and tryKeep once;
        // each one not kept crossed with one nsq_set
        let (status, _) = func(&r, "NpcSync.setStatus");
        let (keeps, kept) = func(&r, "Absorb.tryKeep");
        let (crossings, _) = func(&r, "Core.set");
        let (sets, _) = func(&r, "nsq_set");
        assert_eq!(status, f64::from(NPCS * FRAMES), "{imp}: setStatus calls");
        assert_eq!(keeps, status, "{imp}: tryKeep calls");
        assert_eq!(crossings, status - kept, "{imp}: crossings");
        assert_eq!(sets, crossings, "{imp}: nsq_set calls");
        // the core's exports were found by name
        assert!(func(&r, "nsq_poll").0 > 0.0, "{imp}: nsq_poll wrapped");
        // a poll's drain took records in, and the grants decisions ended were counted
        // (since ABI v4 sends and acks replace only the grants they change: no voidAll)
        assert!(
            func(&r, "Absorb.drainAll").1 > 0.0,
            "{imp}: records drained"
        );
        assert!(func(&r, "Absorb.voidAgent").1 > 0.0, "{imp}: grants ended");
    }
}
