//! Scratch measurement helper (not part of the product): per-call costs of single exports.
use mlua::{Function, Lua, Table};
fn main() {
    let dir = std::env::args().nth(1).unwrap();
    let script = std::fs::read_to_string(std::env::args().nth(2).unwrap()).unwrap();
    for native in [true, false] {
        for n in [1u32, 1000] {
            let lua = Lua::new();
            lua.enable_jit(native);
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
            let (a, b, c): (f64, f64, f64) = f.call((core, n, 100000)).unwrap();
            println!("native={native} n={n}: empty call {a:.3} us, nsq_set {b:.3} us, is_fresh {c:.3} us");
        }
    }
}
