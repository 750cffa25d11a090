//! ModuleScripts as files, the way Rojo maps them: a `.luau` file is a ModuleScript named
//! after the file, a folder is a Folder, and a folder holding `init.luau` is a ModuleScript
//! (that file's source) whose children are the folder's other entries. `require(instance)`
//! runs a module once, with `script` set to its instance, and returns its value.

use mlua::{Function, Lua, Table, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Sources and results of every mounted ModuleScript, keyed by the instance table.
#[derive(Default)]
pub struct Modules {
    sources: HashMap<usize, PathBuf>,
    loaded: HashMap<usize, Value>,
    loading: Vec<usize>,
}

/// Builds the instance for `path` (file or folder) named `name` under `parent`.
pub fn mount(
    lua: &Lua,
    modules: &Rc<RefCell<Modules>>,
    instance_mt: &Table,
    parent: &Table,
    name: &str,
    path: &Path,
) -> mlua::Result<Table> {
    let inst = lua.create_table()?;
    inst.raw_set("Name", name)?;
    inst.raw_set("Parent", parent.clone())?;
    let children = lua.create_table()?;
    inst.raw_set("__children", children.clone())?;
    inst.set_metatable(Some(instance_mt.clone()))?;
    let class = if path.is_dir() {
        let init = path.join("init.luau");
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(mlua::Error::external)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            let file = entry.file_name().unwrap().to_string_lossy().to_string();
            if file == "init.luau" {
                continue;
            }
            let child_name = if entry.is_dir() {
                file
            } else if let Some(stem) = file.strip_suffix(".luau") {
                stem.to_string()
            } else {
                continue; // README.md and the like are not scripts
            };
            let child = mount(lua, modules, instance_mt, &inst, &child_name, &entry)?;
            children.raw_set(child_name, child)?;
        }
        if init.is_file() {
            modules
                .borrow_mut()
                .sources
                .insert(inst.to_pointer() as usize, init);
            "ModuleScript"
        } else {
            "Folder"
        }
    } else {
        modules
            .borrow_mut()
            .sources
            .insert(inst.to_pointer() as usize, path.to_path_buf());
        "ModuleScript"
    };
    inst.raw_set("ClassName", class)?;
    Ok(inst)
}

/// A script's environment: every global of `base` copied in, plus `script`, marked safe.
/// The globals are copied rather than reached through `__index` so that Luau resolves
/// imports (`buffer.readu32`, `math.floor`) when a closure is made and takes the fast
/// builtin calls, as it does in Roblox; through a metatable every such access would be a
/// slow lookup and the benchmarks would measure the stand-in, not the code.
pub fn script_env(lua: &Lua, base: &Table, script: Table) -> mlua::Result<Table> {
    let env = lua.create_table()?;
    for pair in base.pairs::<Value, Value>() {
        let (k, v) = pair?;
        env.raw_set(k, v)?;
    }
    env.raw_set("script", script)?;
    env.set_safeenv(true);
    Ok(env)
}

/// The global `require`: runs a mounted ModuleScript once, in its own environment
/// ([`script_env`] over `base`, the globals), and caches its value.
pub fn require_fn(lua: &Lua, modules: Rc<RefCell<Modules>>, base: Table) -> mlua::Result<Function> {
    lua.create_function(move |lua, inst: Table| {
        let key = inst.to_pointer() as usize;
        let path = {
            let m = modules.borrow();
            if let Some(v) = m.loaded.get(&key) {
                return Ok(v.clone());
            }
            if m.loading.contains(&key) {
                return Err(mlua::Error::runtime(
                    "Requested module was required recursively",
                ));
            }
            m.sources.get(&key).cloned().ok_or_else(|| {
                mlua::Error::runtime("Attempted to call require with invalid argument(s).")
            })?
        };
        let src = std::fs::read_to_string(&path).map_err(mlua::Error::external)?;
        let env = script_env(lua, &base, inst.clone())?;
        modules.borrow_mut().loading.push(key);
        let name: String = inst.raw_get("Name")?;
        let result = lua
            .load(&src)
            .set_name(format!("={name}"))
            .set_environment(env)
            .call::<Value>(());
        modules.borrow_mut().loading.retain(|k| *k != key);
        let v = result?;
        if v.is_nil() {
            return Err(mlua::Error::runtime(format!(
                "Module code did not return exactly one value ({})",
                path.display()
            )));
        }
        modules.borrow_mut().loaded.insert(key, v.clone());
        Ok(v)
    })
}
