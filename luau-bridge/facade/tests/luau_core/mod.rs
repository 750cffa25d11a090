//! Loads the generated core (`pkg/roblox`'s `.luau` files) into a bare Luau VM as Roblox
//! would: `script.Parent.<Module>` for every file and a `require` that runs a module once
//! and hands every later caller the same value. One loader for the facade's tests, bench
//! and examples (included by `#[path]` where it is not a test).

use mlua::{Lua, Table, Value};
use std::path::Path;

/// A Luau VM sandboxed as Roblox runs scripts, with native code generation on or off, and
/// the core of `dir` loaded in it.
#[allow(dead_code)] // the profiling example keeps the VM's default code generation
pub fn core_vm(dir: &Path, native: bool) -> (Lua, Table) {
    let lua = Lua::new();
    lua.enable_jit(native);
    lua.sandbox(true).unwrap();
    let core = load_core(&lua, dir);
    (lua, core)
}

/// Sets up `script` and `require` over the `.luau` files of `dir` and requires
/// `NpcSyncCore`. Each chunk is named after its module (`=Name`), as the profiler reads.
pub fn load_core(lua: &Lua, dir: &Path) -> Table {
    load_core_with(lua, dir, |_, src| src)
}

/// [`load_core`] with each module's source passed through `edit(name, source)` before it
/// is loaded (the profiler's statement counts instrument it).
pub fn load_core_with(
    lua: &Lua,
    dir: &Path,
    edit: impl Fn(&str, String) -> String + mlua::MaybeSend + 'static,
) -> Table {
    let parent = lua.create_table().unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "luau") {
            let stem = p.file_stem().unwrap().to_string_lossy().to_string();
            parent.set(stem.clone(), stem).unwrap();
        }
    }
    let script = lua.create_table().unwrap();
    script.set("Parent", parent).unwrap();
    let cache = lua.create_table().unwrap();
    let dir = dir.to_path_buf();
    let require = lua
        .create_function(move |lua, name: String| {
            let cache: Table = lua.named_registry_value("modules")?;
            if let Ok(v @ Value::Table(_)) | Ok(v @ Value::Function(_)) =
                cache.get::<Value>(name.as_str())
            {
                return Ok(v);
            }
            let src = std::fs::read_to_string(dir.join(format!("{name}.luau")))
                .map_err(mlua::Error::external)?;
            let src = edit(&name, src);
            let v: Value = lua.load(&src).set_name(format!("={name}")).eval()?;
            cache.set(name.as_str(), v.clone())?;
            Ok(v)
        })
        .unwrap();
    lua.set_named_registry_value("modules", cache).unwrap();
    lua.globals().set("script", script).unwrap();
    lua.globals().set("require", require.clone()).unwrap();
    require.call::<Table>("NpcSyncCore").unwrap()
}

/// A measuring script over the core: `args` names what the script is called with (its first
/// value is the core's module), then the setup every workload shares (the core instantiated
/// as `X`, 1,000 agents with a `status.x` slot each in `slots`, `intern`), then `body`.
#[allow(dead_code)] // only the examples build workloads
pub fn workload(args: &str, body: &str) -> String {
    format!("local {args} = ...\n{SETUP}{body}")
}

#[allow(dead_code)]
const SETUP: &str = r#"local X = Core.instantiate({}).exports
local mem = X.memory
assert(X.nsq_init() == 0)
local scratch = X.nsq_scratch_ptr()
local function intern(s)
	buffer.writestring(mem.buffer, scratch, s)
	return X.nsq_intern(#s)
end
local status, field = intern("status"), intern("x")
local slots = {}
for i = 1, 1000 do
	slots[i] = X.nsq_slot(X.nsq_agent(intern("npc-" .. i)), status, field)
end
"#;
