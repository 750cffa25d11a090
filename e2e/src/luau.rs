//! The Luau runtime: pkg/roblox in the harness's sandboxed Luau VM (Roblox stand-ins,
//! HttpService doing real HTTP), driven by `luau/driver.luau`.

use crate::proxy::SimClock;
use crate::runtime::{Outcome, RunSpec};
use mlua::{IntoLuaMulti, MultiValue};
use npc_sync_luau_harness::roblox::repo_root;
use npc_sync_luau_harness::{Options, Roblox};

/// Runs the scenario through NpcSync; returns what the driver reported.
pub fn run(spec: &RunSpec, clock: &SimClock) -> Result<Outcome, String> {
    let vm = Roblox::new(Options {
        native: true,
        mounts: vec![(
            "ReplicatedStorage.Packages.NpcSync".into(),
            repo_root().join("pkg/roblox"),
        )],
        secrets: Vec::new(),
        http_timeout: spec.http_timeout,
    })
    .map_err(|e| format!("Luau VM: {e}"))?;
    let c = clock.clone();
    let set_clock = vm
        .lua
        .create_function(move |_, t: f64| {
            c.set(t);
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    // real time for the frame cost (os.clock is the simulated clock in the harness)
    let start = std::time::Instant::now();
    let wall_clock = vm
        .lua
        .create_function(move |_, ()| Ok(start.elapsed().as_secs_f64()))
        .map_err(|e| e.to_string())?;
    let opts = spec.options_json("e2e-luau");
    let args: MultiValue = (
        spec.calls_text.as_str(),
        opts.as_str(),
        set_clock,
        wall_clock,
    )
        .into_lua_multi(&vm.lua)
        .map_err(|e| e.to_string())?;
    let max_frames = (spec.frames + (spec.flush_timeout_s as u64 + 5) * 60) as u32;
    let out = vm
        .run(
            "e2e-driver",
            include_str!("../luau/driver.luau"),
            args,
            max_frames,
        )
        .map_err(|e| format!("Luau driver: {e}"))?;
    let text = match out.front() {
        Some(mlua::Value::String(s)) => s.to_str().map_err(|e| e.to_string())?.to_string(),
        other => return Err(format!("Luau driver returned {other:?}")),
    };
    Outcome::from_json(&text)
}
