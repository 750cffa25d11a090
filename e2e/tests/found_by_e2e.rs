//! Bugs the end-to-end runs found, each kept as a regression test once fixed.

use mlua::IntoLuaMulti;
use npc_sync::{block_text, Value};
use npc_sync_luau_harness::roblox::repo_root;
use npc_sync_luau_harness::server::TestServer;
use npc_sync_luau_harness::{Options, Roblox};

/// FIXED (the core renders Letta blocks now, issue 8 item 2). The Luau bridge's Letta
/// target rendered a block with Luau's `tostring`, so strings went out unquoted
/// (`location: north gate`) instead of the documented format
/// (`docs/letta-block-format.md`, `location: "north gate"`), which `block_text::parse` (and
/// the batch endpoint server, which reads blocks back before writing them) cannot read:
/// every `target=letta runtime=luau` e2e run ended with `lost=36`.
#[test]
fn luau_bridge_letta_blocks_follow_the_block_format() {
    let letta = TestServer::start();
    let vm = Roblox::new(Options {
        mounts: vec![(
            "ReplicatedStorage.Packages.NpcSync".into(),
            repo_root().join("pkg/roblox"),
        )],
        ..Options::default()
    })
    .unwrap();
    let src = r#"
        local base = ...
        local NpcSync = require(game:GetService("ReplicatedStorage").Packages.NpcSync)
        local sync = NpcSync.new({ target = { kind = "letta", baseUrl = base, apiKey = "k" } })
        sync:setLocation("npc-1", "north gate")
        sync:setHealth("npc-1", 62)
        local ok = sync:flushAll(30)
        return ok
    "#;
    let args = (letta.base.as_str(),).into_lua_multi(&vm.lua).unwrap();
    let out = vm.run("letta-format", src, args, 60 * 40).unwrap();
    assert_eq!(
        out.front().and_then(|v| v.as_boolean()),
        Some(true),
        "flushAll"
    );
    let text = letta.with(|s| s.blocks[&("npc-1".to_string(), "status".to_string())].clone());
    let parsed = block_text::parse(&text);
    assert!(
        parsed.errors.is_empty(),
        "unreadable block text {text:?}: {:?}",
        parsed.errors
    );
    assert_eq!(
        parsed.fields,
        vec![
            ("health".to_string(), Value::Number(62.0)),
            ("location".to_string(), Value::str("north gate")),
        ]
    );
}
