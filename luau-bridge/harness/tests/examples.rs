//! The examples (luau-bridge/examples) as a game server runs them: required from
//! ServerScriptService, NpcSync from ReplicatedStorage.Packages (where Wally puts it).

use mlua::IntoLuaMulti;
use npc_sync_luau_harness::server::TestServer;
use npc_sync_luau_harness::{
    roblox::{package_mount, repo_root},
    Options, Roblox,
};
use serde_json::Value as Json;

#[test]
fn npc_manager_and_action_router_reach_the_backend_through_npc_sync() {
    let server = TestServer::start();
    let r = Roblox::new(Options {
        mounts: vec![
            package_mount(),
            (
                "ServerScriptService.Examples".into(),
                repo_root().join("luau-bridge/examples"),
            ),
        ],
        ..Options::default()
    })
    .unwrap();
    let src = r#"
local base = ...
local Examples = game:GetService("ServerScriptService").Examples
local GameStateService = require(Examples.GameStateService)
local NPCManagerV3 = require(Examples.NPCManagerV3)
local ActionRouter = require(Examples.ActionRouter)
GameStateService.start({ kind = "batch", url = base .. "/batch" })
ActionRouter.register("goTo", function(_id, args)
	return { ok = true, output = args.place, updates = {
		{ field = "location", value = args.place },
		{ field = "state", value = "Traveling" },
		{ group = "group_members", member = "player_9", present = true, info = { role = "escort" } },
	} }
end)
NPCManagerV3.updateNPCStatus("agent-1", { location = "market", mood = "calm" })
NPCManagerV3.updateHealth("agent-1", 100)
NPCManagerV3.updateGroupMember("agent-1", "player_2", true, { role = "buyer" })
NPCManagerV3.updateGroupMember("agent-1", "player_3", true)
ActionRouter.routeAction("agent-1", { tool = "goTo", args = { place = "gate" } })
local ok = pcall(ActionRouter.routeAction, "agent-1", { tool = "fly" })
assert(not ok, "an unknown tool is an error")
task.wait(20)
local ready = NPCManagerV3.prepareForAction("agent-1", 5)
NPCManagerV3.chat("agent-1", "player_2", "where to?")
harness.close() -- BindToClose: flushAll
return ready
"#;
    let out = r
        .run(
            "Main",
            src,
            server.base.clone().into_lua_multi(&r.lua).unwrap(),
            60 * 120,
        )
        .unwrap();
    let ready: bool = mlua::FromLuaMulti::from_lua_multi(out, &r.lua).unwrap();
    assert!(ready, "prepareForAction synced the agent and proceeded");
    let get = |b: &str, f: &str| {
        server.with(|s| {
            s.fields
                .get(&("agent-1".to_string(), b.to_string(), f.to_string()))
                .map(|(v, _)| v.clone())
        })
    };
    assert_eq!(get("status", "location"), Some(Json::from("gate")));
    assert_eq!(get("status", "state"), Some(Json::from("Traveling")));
    assert_eq!(get("status", "mood"), Some(Json::from("calm")));
    assert_eq!(get("status", "health"), Some(Json::from(100)));
    assert_eq!(get("status", "last_action"), Some(Json::from("goTo: ok")));
    assert_eq!(
        get("group_members", "player_2.role"),
        Some(Json::from("buyer"))
    );
    assert_eq!(
        get("group_members", "player_3.is_present"),
        Some(Json::from(true))
    );
    assert_eq!(
        get("group_members", "player_9.role"),
        Some(Json::from("escort"))
    );
    let chats = server.with(|s| {
        s.log
            .iter()
            .filter(|l| l.body.contains("\"inference\""))
            .count()
    });
    assert_eq!(chats, 1, "the chat left on BindToClose");
}
