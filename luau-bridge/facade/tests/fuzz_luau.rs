//! Fuzzing the Luau facade on the stable toolchain: random scenarios of ABI calls (every
//! op of the scenario language in `abi_script`, with bad input among them: NaN, negative
//! health, time going backwards, removed agents, unknown change handles and request ids,
//! out-of-range priorities, over-long strings, joins inside an open atomic group) run
//! through the generated `pkg/roblox` core in a sandboxed Luau VM, interpreted and with
//! native code, and through the native facade: every output line must be byte-identical.
//!
//! The bounded run here is a few seeded scenarios; a failure names its seed and case and
//! writes the scenario to `target/fuzz-luau-failure.txt`. Long runs:
//!
//! ```text
//! NPC_FUZZ_LUAU_CASES=500 NPC_FUZZ_SEED=7 cargo test --release -p npc-sync-luau --test fuzz_luau
//! ```

#[path = "../../../tests/common/mod.rs"]
mod common;

mod abi_script;
mod luau_core;

use abi_script::{native, DRIVER};
use common::Lcg;
use luau_core::core_vm;
use mlua::{Lua, Table};
use std::fmt::Write as _;

/// Scenarios of the bounded run, and calls per scenario.
const DEFAULT_CASES: u64 = 6;
const CALLS: u64 = 400;

const AGENTS: [&str; 4] = ["npc-0", "npc-1", "npc-2", "npc-3"];
const BLOCKS: [&str; 3] = ["status", "mood", "tools"];
const FIELDS: [&str; 4] = ["location", "x", "state", "result"];
const STATES: [&str; 3] = ["Idle", "Patrol", "Combat"];

/// Writes one random scenario of `calls` lines.
struct Writer {
    rng: Lcg,
    /// Time in 1/16 s, so that both sides parse it to the same f64.
    ticks: u64,
    /// Changes accepted so far, roughly: dependencies name one of these seqs or a bit
    /// beyond (unknown).
    changes: u64,
    out: String,
}

impl Writer {
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.rng.below(xs.len() as u64) as usize]
    }

    /// Mostly forward by up to a second, sometimes a minute or more, rarely backwards
    /// (refused by the queue, on both sides alike).
    fn now(&mut self) -> String {
        match self.rng.below(40) {
            0 if self.ticks > 16 => return format!("{}", (self.ticks - 16) as f64 / 16.0),
            1..=2 => self.ticks += 16 * (30 + self.rng.below(120)),
            _ => self.ticks += self.rng.below(17),
        }
        format!("{}", self.ticks as f64 / 16.0)
    }

    /// A token without spaces: short words, and sometimes one longer than the limits.
    fn word(&mut self) -> String {
        match self.rng.below(30) {
            0 => "w".repeat(2100 + 15_000 * self.rng.below(2) as usize),
            _ => {
                let n = 1 + self.rng.below(10);
                (0..n)
                    .map(|_| (b'a' + self.rng.below(26) as u8) as char)
                    .collect()
            }
        }
    }

    fn number(&mut self) -> String {
        match self.rng.below(12) {
            0 => "nan".into(),
            1 => "-3".into(),
            2 => "1e300".into(),
            3 => format!("{}", self.rng.below(1600) as f64 / 16.0),
            _ => format!("{}", self.rng.below(101)),
        }
    }

    fn value(&mut self) -> String {
        match self.rng.below(5) {
            0 => format!("num {}", self.number()),
            1 => format!("bool {}", self.rng.below(2)),
            2 => format!("text {}", self.word()),
            3 => format!("sym {}", self.pick(&STATES)),
            _ => "clear 0".into(),
        }
    }

    fn line(&mut self) -> String {
        let a = self.pick(&AGENTS);
        match self.rng.below(40) {
            0..=9 => {
                self.changes += 1;
                let (b, f, t, v) = (
                    self.pick(&BLOCKS),
                    self.pick(&FIELDS),
                    self.now(),
                    self.value(),
                );
                // 0 to 3 are the priorities; 4 is out of range.
                let p = self.rng.below(5);
                format!("set {t} {a} {b} {f} {v} {p}")
            }
            10..=12 => {
                self.changes += 1;
                let hp = match self.rng.below(10) {
                    0 => "nan".into(),
                    1 => "-5".into(),
                    _ => format!("{}", self.rng.below(101)),
                };
                format!("health {} {a} {hp}", self.now())
            }
            13..=14 => {
                self.changes += 1;
                format!("state {} {a} {}", self.now(), self.pick(&STATES))
            }
            15..=20 => format!("poll {}", self.now()),
            21..=23 => "ackall".into(),
            24..=25 => {
                let ra = match self.rng.below(3) {
                    0 => "-1".to_string(),
                    _ => format!("{}", self.rng.below(40)),
                };
                format!("failall {} {ra}", self.now())
            }
            26 => "begin".into(),
            27 => format!("commit {}", self.now()),
            28 => {
                let seq = 1 + self.rng.below(self.changes + 3);
                let (b, f) = (self.pick(&BLOCKS), self.pick(&FIELDS));
                format!("after {} {seq} {a} {b} {f}", self.now())
            }
            29 => {
                self.changes += 2;
                let m = format!("m{}", self.rng.below(3));
                format!("join {} {a} {m} health {}", self.now(), self.rng.below(101))
            }
            30 => format!("leave {} {a} m{}", self.now(), self.rng.below(3)),
            31..=33 => {
                let from = self.pick(&["player-1", "npc-9"]);
                format!("chat {} {a} {from} {}", self.now(), self.word())
            }
            34..=35 => format!("decide {} {a}", self.now()),
            36 => format!("remove {a}"),
            37..=38 => "events".into(),
            _ => "metrics".into(),
        }
    }
}

fn scenario(seed: u64, case: u64) -> String {
    let mut w = Writer {
        rng: Lcg(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ case),
        ticks: 0,
        changes: 0,
        out: String::new(),
    };
    for _ in 0..CALLS {
        let line = w.line();
        writeln!(w.out, "{line}").unwrap();
    }
    w.out
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got '{v}'")),
        Err(_) => default,
    }
}

/// Runs `scenario` on the Luau side and compares it with the native output, naming the
/// first differing line.
fn compare(lua: &Lua, core: &Table, scenario: &str, expected: &str, label: &str) {
    let got: String = lua
        .load(DRIVER)
        .set_name("=driver")
        .call((core.clone(), scenario))
        .unwrap_or_else(|e| fail(scenario, &format!("{label}: the Luau side raised {e}")));
    if got == expected {
        return;
    }
    let at = got
        .lines()
        .zip(expected.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(got.lines().count().min(expected.lines().count()));
    let line = |s: &str| s.lines().nth(at).unwrap_or("<end>").to_string();
    fail(
        scenario,
        &format!(
            "{label}: output line {at} differs\n  luau:   {}\n  native: {}",
            line(&got),
            line(expected)
        ),
    );
}

fn fail(scenario: &str, msg: &str) -> ! {
    let path = npc_sync_testkit::repo_root().join("target/fuzz-luau-failure.txt");
    let _ = std::fs::write(&path, scenario);
    panic!("{msg}\n(scenario written to {})", path.display());
}

#[test]
fn random_abi_calls_give_the_same_output_in_luau_and_natively() {
    let dir = npc_sync_testkit::repo_root().join("pkg/roblox");
    let cases = env_u64("NPC_FUZZ_LUAU_CASES", DEFAULT_CASES);
    let seed = env_u64("NPC_FUZZ_SEED", 1);
    let scenarios: Vec<(String, String)> = (0..cases)
        .map(|case| {
            let s = scenario(seed, case);
            let expected = native(&s);
            (s, expected)
        })
        .collect();
    // The scenarios reach what they should: requests of each kind, errors, retries,
    // groups, chat and events.
    let all: String = scenarios.iter().map(|(_, e)| e.as_str()).collect();
    for needle in [
        "kind=0",
        "kind=1",
        "kind=2",
        "err 3 ",
        "err 4 ",
        "err 5 ",
        "err 7 ",
        "err 14 ",
        "attempt=2",
        "  msg ",
        "  event ",
    ] {
        assert!(all.contains(needle), "the scenarios never produce {needle}");
    }
    assert!(
        all.lines()
            .any(|l| l.contains("  chg ") && !l.contains(" group=0 ")),
        "the scenarios never send an atomic group"
    );
    for native_code in [false, true] {
        let (lua, core) = core_vm(&dir, native_code);
        for (case, (s, expected)) in scenarios.iter().enumerate() {
            let label = format!("seed {seed} case {case} (native code: {native_code})");
            compare(&lua, &core, s, expected, &label);
        }
    }
    eprintln!("fuzz_luau: {cases} scenarios of {CALLS} calls, seed {seed}, interpreted and native");
}
