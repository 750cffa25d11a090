//! The Luau side of the differential traces (tests/traces/FORMAT.md): every trace replayed
//! through pkg/roblox (the generated core, through the bridge's core module) in Luau, its
//! output written to `target/traces/<name>.luau.out` for `./build.sh test` to compare with
//! the native one; where the native output is already there, compared here too.

use mlua::IntoLuaMulti;
use npc_sync_luau_harness::{
    roblox::{package_mount, repo_root},
    Options, Roblox,
};
use std::path::Path;

/// The trace's output, and how many of its changes the bridge kept outside the core.
fn replay_counting(trace: &str, native: bool) -> (String, u32) {
    let r = Roblox::new(Options {
        native,
        mounts: vec![package_mount()],
        ..Options::default()
    })
    .unwrap();
    let out = r
        .run(
            "replay",
            include_str!("../src/replay.luau"),
            trace.into_lua_multi(&r.lua).unwrap(),
            10,
        )
        .unwrap_or_else(|e| panic!("replay failed: {e}"));
    mlua::FromLuaMulti::from_lua_multi(out, &r.lua).unwrap()
}

fn replay(trace: &str, native: bool) -> String {
    replay_counting(trace, native).0
}

/// FORMAT.md's example: the shape and the numbers of a tiny trace, checked by hand.
#[test]
fn the_format_example_replays_as_documented() {
    let trace = r#"{"op":"config","config":{"target":"batch"}}
{"op":"health","now":0,"agent":"npc-1","value":100,"as":"h0"}
{"op":"poll","now":0}
{"op":"health","now":0.5,"agent":"npc-1","value":70}
{"op":"poll","now":0.5}
{"op":"ack","request":"all"}
{"op":"decide","now":1,"agent":"npc-1"}
{"op":"set","now":1,"agent":"npc-1","block":"status","field":"x","value":0.5,"after":["h0"]}
{"op":"remove","agent":"npc-1"}
{"op":"health","now":2,"agent":"npc-1","value":-5}
"#;
    for native in [false, true] {
        let out = replay(trace, native);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0..4],
            ["#1 config", "ok", "#2 health", "ok seq=1"],
            "{out}"
        );
        assert!(out.contains("\n#5 poll\nrequests n=1\nrequest id=1 kind=urgent agent=- changes=1 messages=0\nchange agent=\"npc-1\" block=\"status\" field=\"health\" value=70 seq=2 group=-\n"), "{out}");
        assert!(
            out.contains("\n#6 ack\nack id=1\n#7 decide\nfresh staleness=0\n"),
            "{out}"
        );
        assert!(out.contains("#8 set\nok seq=3\n"), "{out}");
        assert!(out.contains("#9 remove\nok\nevent agent_removed agent=\"npc-1\" pending_fields=1 chat_messages=0\n"), "{out}");
        assert!(out.ends_with("#10 health\nerror BadNumber\n"), "{out}");
    }
}

/// Every trace of tests/traces: replayed interpreted and native (identical), written out.
#[test]
fn every_trace_replays_in_luau() {
    let dir = repo_root().join("tests/traces");
    let out_dir = repo_root().join("target/traces");
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut traces: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect(),
        Err(_) => Vec::new(),
    };
    traces.sort();
    assert!(!traces.is_empty(), "no traces under {}", dir.display());
    let mut differences = Vec::new();
    for t in &traces {
        let name = t.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(t).unwrap();
        let (interp, kept) = replay_counting(&text, false);
        let native = replay(&text, true);
        assert_eq!(interp, native, "{name}: interpreted and native Luau differ");
        eprintln!("{name}: {kept} changes kept outside the core");
        if name == "absorb" {
            // the trace written for absorption (gen_absorb.mjs) must exercise it: a good
            // share of its per-frame changes (1,440 of `x`) are kept outside the core (558
            // when written; polls that send and acks end every grant)
            assert!(kept > 400, "absorb: only {kept} changes were kept");
        }
        std::fs::write(out_dir.join(format!("{name}.luau.out")), &interp).unwrap();
        let native_out = out_dir.join(format!("{name}.native.out"));
        if Path::new(&native_out).exists()
            && std::fs::read_to_string(&native_out).unwrap() != interp
        {
            differences.push(name);
        }
    }
    assert!(
        differences.is_empty(),
        "Luau output differs from the native one: {differences:?}"
    );
}
