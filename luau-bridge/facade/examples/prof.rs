//! Scratch profiler (not part of the product): counts interrupts (calls, loop edges) per Luau function.
use mlua::{Function, Lua, Table, VmState};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
fn main() {
    let dir = std::env::args().nth(1).unwrap();
    let script = std::fs::read_to_string(std::env::args().nth(2).unwrap()).unwrap();
    let lua = Lua::new();
    lua.sandbox(true).unwrap();
    let parent = lua.create_table().unwrap();
    let d = dir.clone();
    let req = lua
        .create_function(move |lua, name: String| {
            let src = std::fs::read_to_string(format!("{d}/{name}.luau")).unwrap();
            lua.load(&src)
                .set_name(format!("={name}"))
                .eval::<mlua::Value>()
        })
        .unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let s = p.file_stem().unwrap().to_string_lossy().to_string();
        parent.set(s.clone(), s).unwrap();
    }
    let sc = lua.create_table().unwrap();
    sc.set("Parent", parent).unwrap();
    lua.globals().set("script", sc).unwrap();
    lua.globals().set("require", req.clone()).unwrap();
    let core: Table = req.call("NpcSyncCore").unwrap();
    let f: Function = lua.load(&script).into_function().unwrap();
    let counts: Arc<Mutex<HashMap<(String, i32), u64>>> = Default::default();
    let c2 = counts.clone();
    let on = Arc::new(Mutex::new(false));
    let on2 = on.clone();
    lua.set_interrupt(move |lua| {
        if *on2.lock().unwrap() {
            let key = lua.inspect_stack(0, |d| {
                let s = d.source();
                (
                    s.short_src.map(|x| x.to_string()).unwrap_or_default(),
                    s.line_defined.map(|x| x as i32).unwrap_or(-1),
                )
            });
            if let Some(key) = key {
                *c2.lock().unwrap().entry(key).or_default() += 1;
            }
        }
        Ok(VmState::Continue)
    });
    let setup: Function = f.call((core,)).unwrap();
    *on.lock().unwrap() = true;
    setup.call::<()>(()).unwrap();
    *on.lock().unwrap() = false;
    let mut v: Vec<_> = counts
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (*v, k.clone()))
        .collect();
    v.sort_by(|a, b| b.0.cmp(&a.0));
    let total: u64 = v.iter().map(|x| x.0).sum();
    println!("total {total}");
    for (n, (src, line)) in v.iter().take(40) {
        println!("{n:>8} {src}:{line}");
    }
}
