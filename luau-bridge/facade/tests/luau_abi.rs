//! The generated `pkg/roblox` core in a real Luau VM (Luau 0.740 through mlua, sandboxed as
//! Roblox runs scripts; interpreted and with native code) against the same facade built
//! natively: one scenario of ABI calls, written once as text, run by a small interpreter
//! on each side; every result, error message and decoded output record must be the same.

mod abi_script;
mod luau_core;

use abi_script::{native, DRIVER};
use luau_core::core_vm;

/// One call per line: `op now args...`. Names are interned on first use on both sides.
const SCENARIO: &str = "\
set 0.5 npc-1 status location sym gate 1
set 0.5 npc-1 status x num 62.5 1
set 0.5 npc-2 status description text a_long_walk 0
health 0.6 npc-1 100
health 0.7 npc-2 100
poll 0.7
ackall
health 1.0 npc-1 70
set 1.0 npc-2 status torch bool 1 3
set 1.0 npc-2 status torch num nan 1
set 0.9 npc-2 status torch bool 0 1
state 1.1 npc-1 Combat
poll 1.2
failall 1.2 2
poll 2.0
poll 3.5
ackall
begin
set 4.0 npc-1 status location sym cave 1
set 4.0 npc-1 status state sym Walking 1
commit 4.0
after 4.0 9 npc-1 status location
set 4.0 npc-1 tools result num 7 2
join 4.1 npc-2 ally health 80
chat 4.2 npc-1 player-9 hello_there
decide 4.3 npc-1
poll 5.0
ackall
leave 5.5 npc-2 ally
set 6.0 npc-2 status x clear 0 1
poll 7.0
failall 7.0 -1
remove npc-2
events
poll 40.0
ackall
decide 40.0 npc-1
set 40.0 npc-9 status x num 1 9
set 41.0 npc-2 status x num 1 1
metrics
";

#[test]
fn generated_module_equals_native_facade() {
    let dir = npc_sync_testkit::repo_root().join("pkg/roblox");
    let expected = native(SCENARIO);
    // The scenario covers what it should: every request kind, errors, groups, events.
    for needle in [
        "kind=0",
        "kind=1",
        "kind=2",
        "err 4 agent 'npc-2', field `status.torch`: number must be finite, got NaN",
        "err 3 `now` went backwards",
        "group=1",
        "msg player-9: hello_there",
        "event 1 agent=1",
        "attempt=2",
        "err 7 agent 'npc-2' was removed",
        "err 14 priority must be",
    ] {
        assert!(
            expected.contains(needle),
            "scenario lacks {needle}:\n{expected}"
        );
    }
    for native_code in [false, true] {
        let (lua, core) = core_vm(&dir, native_code);
        let got: String = lua
            .load(DRIVER)
            .set_name("=driver")
            .call((core, SCENARIO))
            .unwrap();
        if got != expected {
            for (i, (a, b)) in got.lines().zip(expected.lines()).enumerate() {
                assert_eq!(a, b, "line {i} (native code: {native_code})");
            }
            assert_eq!(got.lines().count(), expected.lines().count());
        }
    }
}
