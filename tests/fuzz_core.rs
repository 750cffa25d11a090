//! Fuzzing the core on the stable toolchain: random byte strings decoded into a settings
//! choice and a sequence of operations on the public API (changes of every kind, atomic
//! groups, dependencies, decisions, chat, agent removal, polls, acks with and without
//! confirmed state, failures with and without `Retry-After`, responses lost after the
//! backend applied them, time jumps, bad input such as NaN, backwards time, unknown and
//! removed agents), run against the property tests' model (`tests/model`): no panic, and
//! every invariant of `docs/semantics.md` checked after each step and once the backend has
//! caught up, and the same bytes give the same output twice (invariant 8, natively).
//!
//! `fuzz_one(bytes)` is the target: any byte source can drive it (a coverage-guided
//! fuzzer can wrap it as is). The bounded run here draws the bytes from a seeded
//! generator, so a failure names its seed and case and is replayed exactly:
//!
//! ```text
//! NPC_FUZZ_CASES=200000 NPC_FUZZ_SEED=7 cargo test --release -p npc-sync --test fuzz_core
//! NPC_FUZZ_REPLAY=<hex bytes printed by a failure> cargo test --release -p npc-sync --test fuzz_core
//! NPC_FUZZ_REPLAY=<hex> NPC_FUZZ_SHRINK=1 cargo test ... # also prints a smaller failing list
//! ```

mod common;
mod model;

use common::Lcg;
use model::{Op, Sim, SLOTS};
use npc_sync::{Config, Target};

/// Cases of the bounded run in `cargo test` (a few seconds in release).
const DEFAULT_CASES: u64 = 600;
/// Longest byte string the generator draws: up to a few hundred operations.
const MAX_LEN: u64 = 2048;

/// Reads the fuzz input; past its end every read is 0, so any byte string is an input.
struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn below(&mut self, n: u8) -> u8 {
        self.u8() % n
    }

    fn done(&self) -> bool {
        self.at >= self.data.len()
    }

    /// `Some` one time in `one_in`, as the next byte decides.
    fn maybe<T>(&mut self, one_in: u8, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        (self.below(one_in) == 0).then(|| f(self))
    }
}

/// Settings: the defaults, the property tests' small and tight ones, or drawn within the
/// ranges where a backend that always succeeds can drain everything within the model's
/// ten minutes: the budget at least 12 a minute on the batch endpoint and 30 on Letta's
/// API (where every agent-block is a call), and the pacing burst at most half of it. The
/// pacing refills `(budget - burst) / 60` calls a second, so a burst close to the budget
/// leaves a trickle (23 a minute with a burst of 21 sends one request every 30 s once the
/// burst is spent): valid settings, but a backlog of a few dozen requests then takes
/// longer than the model waits (the first long run found exactly that).
fn config(b: &mut Bytes) -> Config {
    let cfg = match b.below(4) {
        0 => Config::default(),
        1 => model::small_config(),
        2 => model::tight_config(),
        _ => {
            let target = if b.below(2) == 0 {
                Target::BatchEndpoint
            } else {
                Target::LettaApi
            };
            let floor = if target == Target::LettaApi { 30 } else { 12 };
            let budget = floor + b.u16() as u32 % (401 - floor);
            Config {
                target,
                budget_per_minute: budget,
                budget_burst: 1 + b.u16() as u32 % (budget / 2),
                max_agent_blocks_per_request: 1 + b.below(8) as u32,
                seed: b.u16() as u64,
                ..Config::default()
            }
        }
    };
    cfg.validate().expect("the fuzz settings are valid");
    cfg
}

fn slot(b: &mut Bytes) -> u8 {
    b.below(SLOTS)
}

/// A time step: mostly within a frame or two, sometimes a minute or more, rarely hours.
fn dt(b: &mut Bytes) -> f64 {
    match b.below(16) {
        0 => 10.0 + b.u16() as f64 % 190.0,
        1 => 1000.0 + b.u16() as f64 * 2.0,
        _ => b.u8() as f64 / 128.0,
    }
}

/// One operation, with the same weights as the property tests' strategy.
fn op(b: &mut Bytes) -> Op {
    match b.below(37) {
        0..=5 => Op::Set {
            slot: slot(b),
            block: b.below(3),
            field: b.below(3),
            value: b.u8(),
            prio: b.u8(),
            dep: b.maybe(3, |b| b.u16()),
        },
        6..=8 => Op::Health {
            slot: slot(b),
            hp: b.below(101),
        },
        9..=10 => Op::State {
            slot: slot(b),
            state: b.below(3),
        },
        11 => Op::Join {
            slot: slot(b),
            member: b.below(2),
            role: b.u8(),
        },
        12 => Op::Leave {
            slot: slot(b),
            member: b.below(2),
        },
        13..=14 => Op::Tool {
            slot: slot(b),
            field: b.below(3),
            value: b.u8(),
            critical: b.below(2) == 0,
        },
        15..=16 => {
            let n = 1 + b.below(4);
            Op::Atomic {
                changes: (0..n)
                    .map(|_| (slot(b), b.below(3), b.below(3), b.u8()))
                    .collect(),
                dep: b.maybe(3, |b| b.u16()),
            }
        }
        17..=18 => Op::Decide { slot: slot(b) },
        19 => Op::Chat {
            slot: slot(b),
            n: 1 + b.below(19),
        },
        20 => Op::Remove { slot: slot(b) },
        21..=25 => Op::Advance { dt: dt(b) },
        26..=30 => Op::Poll,
        31..=35 => Op::Outcome {
            pick: b.u16(),
            kind: b.below(4),
            retry_after: b.maybe(5, |b| b.below(40)),
        },
        _ => Op::Bad { which: b.below(8) },
    }
}

/// Decodes `data` into settings and operations.
fn decode(data: &[u8]) -> (Config, Vec<Op>) {
    let mut b = Bytes { data, at: 0 };
    let cfg = config(&mut b);
    let mut ops = Vec::new();
    while !b.done() {
        ops.push(op(&mut b));
    }
    (cfg, ops)
}

/// The fuzz target: panics (with the model's message) on any broken invariant.
fn fuzz_one(data: &[u8]) {
    let (cfg, ops) = decode(data);
    check_ops(&cfg, &ops);
}

/// Runs `ops` twice against the model, checking every invariant and determinism.
fn check_ops(cfg: &Config, ops: &[Op]) {
    let run = || {
        let mut sim = Sim::new(cfg.clone());
        for op in ops {
            sim.step(op);
        }
        sim.drain_and_check();
        (sim.log, format!("{:?}", sim.q.metrics()))
    };
    let first = run();
    assert!(first == run(), "the same input gave two outputs");
}

/// A smaller list of operations that still fails: drops runs of operations, halving the
/// run length, for as long as the failure stays (to turn a finding into a test).
fn shrink(cfg: &Config, mut ops: Vec<Op>) -> Vec<Op> {
    let fails = |ops: &[Op]| std::panic::catch_unwind(|| check_ops(cfg, ops)).is_err();
    // Quiet while trying: every failing attempt would print its panic.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    loop {
        let before = ops.len();
        let mut chunk = ops.len().max(2) / 2;
        loop {
            let mut i = 0;
            while i < ops.len() {
                let mut fewer = ops.clone();
                fewer.drain(i..(i + chunk).min(ops.len()));
                if fails(&fewer) {
                    ops = fewer;
                } else {
                    i += chunk;
                }
            }
            if chunk == 1 {
                break;
            }
            chunk /= 2;
        }
        if ops.len() == before {
            break;
        }
    }
    std::panic::set_hook(hook);
    ops
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("NPC_FUZZ_REPLAY is hex"))
        .collect()
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got '{v}'")),
        Err(_) => default,
    }
}

/// Runs one input; on a failure prints what replays it, then fails with the model's
/// message.
fn run_case(label: &str, data: &[u8]) {
    if let Err(e) = std::panic::catch_unwind(|| fuzz_one(data)) {
        eprintln!(
            "fuzz_core: {label} failed; replay with NPC_FUZZ_REPLAY={}",
            hex(data)
        );
        std::panic::resume_unwind(e);
    }
}

#[test]
fn random_operation_sequences_keep_every_invariant() {
    if let Ok(h) = std::env::var("NPC_FUZZ_REPLAY") {
        let data = unhex(&h);
        if std::env::var("NPC_FUZZ_SHRINK").is_ok() {
            let (cfg, ops) = decode(&data);
            let small = shrink(&cfg, ops);
            eprintln!(
                "fuzz_core: shrunk to {} operations with {cfg:?}:\n{small:#?}",
                small.len()
            );
        }
        run_case("replay", &data);
        return;
    }
    let cases = env_u64("NPC_FUZZ_CASES", DEFAULT_CASES);
    let seed = env_u64("NPC_FUZZ_SEED", 1);
    let mut rng = Lcg(seed);
    let mut ops = 0usize;
    for case in 0..cases {
        let len = rng.below(MAX_LEN + 1) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        ops += decode(&data).1.len();
        run_case(&format!("seed {seed} case {case}"), &data);
    }
    eprintln!("fuzz_core: {cases} cases, {ops} operations, seed {seed}");
}

#[test]
fn every_byte_string_decodes_and_the_decoder_reaches_every_operation() {
    // The empty input and short ones are inputs too.
    for data in [&[][..], &[0], &[255, 255, 255]] {
        fuzz_one(data);
    }
    // Every operation kind and every settings choice is reachable from the bytes.
    let mut kinds = std::collections::BTreeSet::new();
    let mut targets = std::collections::BTreeSet::new();
    let mut rng = Lcg(3);
    for _ in 0..200 {
        let data: Vec<u8> = (0..256).map(|_| rng.next() as u8).collect();
        let (cfg, ops) = decode(&data);
        targets.insert(format!("{:?}", cfg.target));
        for o in ops {
            let d = format!("{o:?}");
            kinds.insert(d[..d.find([' ', '{']).unwrap_or(d.len())].to_string());
        }
    }
    assert_eq!(targets.len(), 2, "{targets:?}");
    assert_eq!(kinds.len(), 14, "{kinds:?}");
}
