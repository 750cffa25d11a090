//! The counting examples' command line, `NAME NATIVE(0|1) PHASE(0..LAST)`: the workload
//! script run once in the package's VM (`vm.rs`, which the example declares too) with PHASE
//! as its argument. Phases are cumulative, so under cachegrind phase N minus phase N-1 is
//! what phase N adds.
use super::vm::package_vm;
use mlua::IntoLuaMulti;

/// Parses the command line (exits with the usage on a bad one) and runs `script`.
pub fn run_phase(name: &str, script: &str, last: u32) {
    let args: Vec<String> = std::env::args().collect();
    let phase = match args.as_slice() {
        [_, native, phase] if native == "0" || native == "1" => {
            phase.parse::<u32>().ok().filter(|p| *p <= last)
        }
        _ => None,
    };
    let Some(phase) = phase else {
        eprintln!("usage: {name} NATIVE(0|1) PHASE(0..{last})");
        std::process::exit(2);
    };
    let r = package_vm(args[1] == "1");
    let a = phase
        .into_lua_multi(&r.lua)
        .expect("the phase as a Luau value");
    r.run(name, script, a, 10).expect("workload");
}
