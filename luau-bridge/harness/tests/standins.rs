//! The stand-ins themselves: real HTTP through RequestAsync, JSON quirks, the test clock.

use mlua::{FromLuaMulti, IntoLuaMulti, MultiValue};
use npc_sync_luau_harness::server::{Answer, TestServer};
use npc_sync_luau_harness::{Options, Roblox};
use std::time::Duration;

fn vm() -> Roblox {
    Roblox::new(Options {
        secrets: vec![("letta".into(), "k-123".into())],
        http_timeout: Duration::from_millis(300),
        ..Options::default()
    })
    .unwrap()
}

/// Runs `src` as a script in a fresh [`vm`] with `arg` as its `...`, for at most
/// `max_frames` frames, and reads what it returns as `T`.
fn run<T: FromLuaMulti>(src: &str, arg: impl IntoLuaMulti, max_frames: u32) -> T {
    let r = vm();
    let args = arg.into_lua_multi(&r.lua).unwrap();
    let out = r.run("t", src, args, max_frames).unwrap();
    T::from_lua_multi(out, &r.lua).unwrap()
}

#[test]
fn request_async_yields_until_the_real_answer() {
    let server = TestServer::start();
    let v: (u32, f64, String, String) = run(
        r#"
local base = ...
local Http = game:GetService("HttpService")
local secret = Http:GetSecret("letta"):AddPrefix("Bearer ")
local res = Http:RequestAsync({ Url = base .. "/batch", Method = "POST",
	Headers = { ["Content-Type"] = "application/json", Authorization = secret },
	Body = Http:JSONEncode({ request_id = 1, kind = "batch", changes = { { agent_id = "a", block = "status", field = "x", value = 3, seq = 1 } } }) })
assert(res.Success and res.StatusCode == 200, "status " .. res.StatusCode)
local body = Http:JSONDecode(res.Body)
return #body.confirmed, body.confirmed[1].seq, tostring(secret), typeof(secret)
"#,
        server.base.clone(),
        600,
    );
    assert_eq!(v, (1, 1.0, "Secret".into(), "Secret".into()));
    server.with(|s| {
        assert_eq!(s.log.len(), 1);
        assert_eq!(s.log[0].headers["authorization"], "Bearer k-123");
        assert_eq!(s.log[0].path, "/batch");
    });
}

#[test]
fn failures_surface_as_roblox_reports_them() {
    let server = TestServer::start();
    server.inject(&[
        Answer::TooMany(2),
        Answer::Status(503),
        Answer::Hang(Duration::from_millis(900)),
    ]);
    let v: (bool, u16, String, u16, bool, String) = run(
        r#"
local base = ...
local Http = game:GetService("HttpService")
local function call()
	return Http:RequestAsync({ Url = base .. "/batch", Method = "POST", Body = "{}" })
end
local a = call()
local b = call()
local ok, err = pcall(call)
return a.Success, a.StatusCode, a.Headers["retry-after"], b.StatusCode, ok, err
"#,
        server.base.clone(),
        600,
    );
    assert!(!v.0);
    assert_eq!((v.1, v.2.as_str(), v.3, v.4), (429, "2", 503, false));
    assert!(v.5.contains("HttpError: Timedout"), "{}", v.5);
}

#[test]
fn json_encode_has_roblox_quirks() {
    let v: (String, String, String, bool) = run(
        r#"
local Http = game:GetService("HttpService")
local ok = pcall(function() return Http:JSONEncode({ 1, x = 2 }) end)
return Http:JSONEncode({}), Http:JSONEncode({ a = 0 / 0, b = math.huge, c = nil }), Http:JSONEncode({ 1, 2.5, "x" }), ok
"#,
        (),
        10,
    );
    assert_eq!(
        v,
        (
            "[]".into(),
            r#"{"a":nan,"b":inf}"#.into(),
            r#"[1,2.5,"x"]"#.into(),
            false
        )
    );
}

#[test]
fn task_and_heartbeat_run_on_the_test_clock() {
    let v: (bool, bool, bool, String) = run(
        r#"
local RunService = game:GetService("RunService")
local beats, order = 0, {}
local conn = RunService.Heartbeat:Connect(function(dt) beats += 1 end)
task.delay(0.5, function() table.insert(order, "delay") end)
task.defer(function() table.insert(order, "defer") end)
local t0 = os.clock()
task.wait(1)
conn:Disconnect()
local b = beats
task.wait(0.2)
return os.clock() - t0 >= 1, b >= 59 and b <= 61, beats == b, table.concat(order, ",")
"#,
        (),
        200,
    );
    assert_eq!(v, (true, true, true, "defer,delay".into()));
}

#[test]
fn an_error_in_a_spawned_thread_fails_the_run() {
    let r = vm();
    let err = r
        .run(
            "t",
            "task.spawn(function() error('boom') end) task.wait(0.1)",
            MultiValue::new(),
            60,
        )
        .unwrap_err();
    assert!(err.to_string().contains("boom"), "{err}");
}
