//! `npc-sync-e2e`: the end-to-end runs of issue 10, one line per run.
//!
//! ```text
//! npc-sync-e2e [--scenarios patrol,combat,...] [--npcs N] [--seconds S] [--seed K]
//!              [--faults off,on] [--targets batch,letta] [--runtimes luau,node]
//!              [--timeline FILE]
//! ```
//!
//! `--timeline FILE` (one run, runtime `luau`) also writes the run's timeline for the demo
//! report (`npc-sync-timeline/1`, docs/demo-timeline.md): `./build.sh`'s demo.
//!
//! Defaults: every scenario, 600 simulated seconds, the NPC counts of [`default_npcs`],
//! faults off and on, both targets, both runtimes (48 runs). Needs the release binaries
//! `npc-sync-sim` and `npc-sync-gateway` and pkg/node built (`./build.sh e2e` does all).
//! Exits 1 if any run fails a check.

use npc_sync_e2e::check::Target;
use npc_sync_e2e::run::{self, RunConfig};
use npc_sync_e2e::runtime::Runtime;
use npc_sync_e2e::scenario::Scenario;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// NPCs per scenario for the default set: chosen so the 48 runs take about 9 minutes on two
/// shared cores (`--npcs` runs bigger ones).
fn default_npcs(scenario: &str) -> u32 {
    match scenario {
        // combat spends the whole budget with few NPCs; its runs are the longest
        "combat" => 4,
        // one NPC of each behaviour
        _ => 5,
    }
}

struct Args {
    scenarios: Vec<String>,
    npcs: Option<u32>,
    seconds: f64,
    seed: u64,
    faults: Vec<bool>,
    targets: Vec<Target>,
    runtimes: Vec<Runtime>,
    timeline: Option<std::path::PathBuf>,
}

fn list<T>(v: &str, name: &str, f: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
    v.split(',')
        .map(|s| f(s.trim()).ok_or_else(|| format!("{name}: unknown value '{s}'")))
        .collect()
}

fn parse() -> Result<Args, String> {
    let known = run::scenarios()?;
    let mut a = Args {
        scenarios: known.clone(),
        npcs: None,
        seconds: 600.0,
        seed: 1,
        faults: vec![false, true],
        targets: vec![Target::Batch, Target::Letta],
        runtimes: vec![Runtime::Luau, Runtime::Node],
        timeline: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--scenarios" => {
                a.scenarios = list(&value()?, "--scenarios", |s| {
                    known.iter().any(|k| k == s).then(|| s.to_string())
                })?
            }
            "--npcs" => {
                let n: u32 = value()?
                    .parse()
                    .map_err(|_| "--npcs must be a whole number")?;
                if n == 0 || n > 1000 {
                    return Err("--npcs must be from 1 to 1000".into());
                }
                a.npcs = Some(n)
            }
            "--seconds" => {
                let s: f64 = value()?.parse().map_err(|_| "--seconds must be a number")?;
                if !(s > 0.0 && s <= 86_400.0) {
                    return Err("--seconds must be above 0 and at most 86400".into());
                }
                a.seconds = s
            }
            "--seed" => {
                a.seed = value()?
                    .parse()
                    .map_err(|_| "--seed must be a whole number")?
            }
            "--faults" => {
                a.faults = list(&value()?, "--faults", |s| match s {
                    "off" => Some(false),
                    "on" => Some(true),
                    _ => None,
                })?
            }
            "--targets" => {
                a.targets = list(&value()?, "--targets", |s| match s {
                    "batch" => Some(Target::Batch),
                    "letta" => Some(Target::Letta),
                    _ => None,
                })?
            }
            "--runtimes" => {
                a.runtimes = list(&value()?, "--runtimes", |s| match s {
                    "luau" => Some(Runtime::Luau),
                    "node" => Some(Runtime::Node),
                    _ => None,
                })?
            }
            "--timeline" => a.timeline = Some(value()?.into()),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if a.timeline.is_some() {
        let runs = a.scenarios.len() * a.faults.len() * a.targets.len() * a.runtimes.len();
        if runs != 1 {
            return Err(format!(
                "--timeline describes one run: pick one scenario, one --faults, one --targets and one --runtimes ({runs} runs selected)"
            ));
        }
        if !a.runtimes.iter().all(|r| r.measures_timeline()) {
            return Err(
                "--timeline: only the Luau driver measures a timeline (--runtimes luau)".into(),
            );
        }
    }
    Ok(a)
}

fn write_timeline(t: &npc_sync_demo::Timeline, path: &std::path::Path) -> Result<(), String> {
    let text = t.to_json().map_err(|e| format!("--timeline: {e}"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("--timeline {}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("--timeline {}: {e}", path.display()))
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("npc-sync-e2e: {e}");
            return ExitCode::from(2);
        }
    };
    let mut failed = 0;
    let mut runs = 0;
    let started = Instant::now();
    for scenario in &args.scenarios {
        let npcs = args.npcs.unwrap_or_else(|| default_npcs(scenario));
        let calls = match run::generate_calls(scenario, npcs, args.seconds, args.seed) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("npc-sync-e2e: {e}");
                return ExitCode::FAILURE;
            }
        };
        let sc = match Scenario::parse(&calls) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("npc-sync-e2e: {scenario}: {e}");
                return ExitCode::FAILURE;
            }
        };
        for &faults in &args.faults {
            for &target in &args.targets {
                for &runtime in &args.runtimes {
                    let cfg = RunConfig {
                        scenario: scenario.clone(),
                        faults,
                        target,
                        runtime,
                        seed: args.seed,
                        http_timeout: Duration::from_millis(300),
                        timeline: args.timeline.is_some(),
                    };
                    let t0 = Instant::now();
                    runs += 1;
                    match run::run(&cfg, &calls, &sc) {
                        Ok(r) => {
                            println!("{}", r.line());
                            let v = &r.verdict;
                            eprintln!(
                                "  {npcs} NPCs, {} s; max calls in 60 s {} of {}; dependency violations {}; flushAll {:.2} s; HTTP calls made {}; {:.1} s wall",
                                args.seconds,
                                v.max_calls_per_minute,
                                v.budget,
                                v.dependency_violations,
                                r.flush_seconds,
                                r.http_calls,
                                t0.elapsed().as_secs_f64()
                            );
                            if let (Some(t), Some(path)) = (&r.timeline, &args.timeline) {
                                if let Err(e) = write_timeline(t, path) {
                                    eprintln!("npc-sync-e2e: {e}");
                                    return ExitCode::FAILURE;
                                }
                                eprintln!("  timeline: {}", path.display());
                            }
                            if !v.passed() {
                                failed += 1;
                                for d in &v.details {
                                    eprintln!("  FAIL {d}");
                                }
                                if v.max_calls_per_minute > v.budget {
                                    eprintln!(
                                        "  FAIL budget: {} calls in 60 s, over {}",
                                        v.max_calls_per_minute, v.budget
                                    );
                                }
                            }
                        }
                        Err(e) => {
                            failed += 1;
                            println!(
                                "e2e {scenario} faults={} target={} runtime={} error: {e}",
                                if faults { "on" } else { "off" },
                                target.name(),
                                runtime.name()
                            );
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "e2e: {runs} runs, {} passed, {failed} failed, {:.0} s",
        runs - failed,
        started.elapsed().as_secs_f64()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
