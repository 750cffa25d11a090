//! What every Luau run of the versus trace starts from (the bench, its profiler, the
//! profiler's test): a sandboxed VM with the package and the hand-written queue mounted, and
//! the trace's columns as Luau arrays, in the order the scripts take them after the queue's
//! name and the server's base URL.
use crate::trace::Trace;
use mlua::{IntoLuaMulti, Lua, MultiValue};
use npc_sync_luau_harness::{roblox::repo_root, Options, Roblox};
use std::path::PathBuf;

/// A VM with `package` (a `roblox::package_mount*`) and `tests/bench/HandQueue.luau` as
/// `ReplicatedStorage.HandQueue`; `native` turns on native code generation.
pub fn versus_vm(native: bool, package: (String, PathBuf)) -> Roblox {
    Roblox::new(Options {
        native,
        mounts: vec![
            package,
            (
                "ReplicatedStorage.HandQueue".into(),
                repo_root().join("tests/bench/HandQueue.luau"),
            ),
        ],
        ..Options::default()
    })
    .expect("Luau VM")
}

/// The scripts' arguments: `imp` (which queue), the server's `base` URL, then `npcs, frames,
/// starts, kinds, who, vals` (the columns as Luau arrays), then `extra`'s values.
pub fn script_args(
    lua: &Lua,
    imp: &str,
    base: &str,
    tr: &Trace,
    extra: impl IntoLuaMulti,
) -> MultiValue {
    let seq = |v: &[f64]| lua.create_sequence_from(v.iter().copied()).expect("table");
    let mut args = (
        imp,
        base,
        tr.npcs,
        tr.frames,
        seq(&tr.starts),
        seq(&tr.kinds),
        seq(&tr.who),
        seq(&tr.vals),
    )
        .into_lua_multi(lua)
        .expect("arguments");
    args.extend(extra.into_lua_multi(lua).expect("arguments"));
    args
}
