//! What the measuring examples share: loading the generated core the way Roblox does.

use mlua::{Lua, Table, Value};

/// Makes every ModuleScript of `dir` (a `pkg/roblox` build) a sibling of `script`, installs a
/// `require` that loads `dir/NAME.luau` by name, and returns the required `NpcSyncCore`.
pub fn load_core(lua: &Lua, dir: &str) -> Table {
    let parent = lua.create_table().unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let s = p.file_stem().unwrap().to_string_lossy().to_string();
        parent.set(s.clone(), s).unwrap();
    }
    let script = lua.create_table().unwrap();
    script.set("Parent", parent).unwrap();
    let d = dir.to_string();
    let require = lua
        .create_function(move |lua, name: String| {
            let src = std::fs::read_to_string(format!("{d}/{name}.luau")).unwrap();
            lua.load(&src).set_name(format!("={name}")).eval::<Value>()
        })
        .unwrap();
    lua.globals().set("script", script).unwrap();
    lua.globals().set("require", require.clone()).unwrap();
    require.call("NpcSyncCore").unwrap()
}
