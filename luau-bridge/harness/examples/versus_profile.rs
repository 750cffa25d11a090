//! Where the ModuleScript's time goes on the versus bench's trace (issue 10): the trace of
//! `benches/versus.rs` (same generator, seed 1) through `pkg/roblox`'s `NpcSync`, with a
//! profiler in the same Luau VM (`versus_profile.luau`; no shipped file changes):
//!
//! ```text
//! cargo build --release -p npc-sync-luau-harness --example versus_profile
//! target/release/examples/versus_profile NPCS NATIVE [RUNS]
//! ```
//!
//! NPCS is the number of NPCs (the bench uses 100 and 1000), NATIVE 0 (interpreted) or 1
//! (native code generation), RUNS a comma list of `plain` (the ModuleScript as the bench
//! runs it: the figure to compare), `profile` (the same, profiled), `light` (profiled, but
//! the functions called per change counted, not timed: a timer per call distorts them; the
//! crossings' cost then comes from a per-frame fit) and `hand`
//! (`tests/bench/HandQueue.luau`, per frame kind); default all three, each once in a
//! fresh VM against a fresh local server; a run named twice keeps the faster. `NSQ_FRAMES` (default 1900) and `NSQ_DIR` (another `pkg/roblox`) as in the
//! other examples. `NSQ_CLOCK` = `cpu` (default: the VM thread's CPU time, which the
//! shared machine's other processes do not advance) or `wall` (the real clock, as the bench).
//! `NSQ_BALLAST` = N keeps N arrays of 10,000 numbers alive in the VM (the garbage
//! collector paces its cycles by the heap's size; the profiler's own rows are such a
//! ballast, so a plain run with one compares at the same heap). `NSQ_GC=stop` stops the
//! VM's garbage collector for the runs (to tell its share in a frame kind from the rest;
//! the heap then grows to about 290 MB at 1,000 NPCs). `NSQ_BODIES=PREFIX` writes every
//! request body the server received, in order, one a line, to `PREFIX-RUN.txt` (to compare
//! the requests of two `pkg/roblox`s byte for byte).
//!
//! The profiler times every `nsq_*` export of the generated core and the bridge's phases
//! (`NpcSync`, `Process`, `Sender`, `Core`, `Batch`, `Absorb` functions, by name; a phase
//! that no longer exists is listed as missing) with the real clock, and takes its own cost
//! out of every figure: the cost of a wrapper is calibrated in the VM before the run and
//! subtracted per wrapped call, hooks that count (grants ended) time themselves. The
//! difference between the profiled run's corrected figure and the plain run's is what the
//! correction misses plus the machine's noise (both printed).
//!
//! Prints Markdown tables (the run, the exports, the bridge's phases, causes of drains,
//! grant ends and crossings, the ModuleScript's and the hand-written queue's frame kinds,
//! the slowest frames, and what a cut of each part would save) and writes them as JSON to
//! `target/bench/versus-profile-NPCS-MODE.json`; the runs' raw rows go to
//! `versus-profile-NPCS-MODE-raw.json`, which RUNS = `reuse` reads instead of running.

#[path = "../benches/versus/luau_run.rs"]
mod luau_run;
#[allow(dead_code)]
#[path = "../benches/versus/trace.rs"]
mod trace;

#[path = "support/cpu_clock.rs"]
mod cpu_clock;
use cpu_clock::thread_cpu_seconds;
use luau_run::{script_args, versus_vm};
use npc_sync_luau_harness::roblox::{package_mount_or_env, repo_root};
use npc_sync_luau_harness::server::TestServer;
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use trace::Trace;

const FRAME_MS: f64 = 16.7;
const SCRIPT: &str = include_str!("versus_profile.luau");
/// Functions that run in the harness frame with the HTTP answers (the sender's threads),
/// outside the frame time (calls + step).
const IN_HTTP_FRAME: [&str; 1] = ["Batch.confirmed"];

/// Which queue a run drives, and how.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RunKind {
    /// The ModuleScript without the profiler.
    Plain,
    /// The ModuleScript with the profiler.
    Profile,
    /// The same with the per-change functions counted, not timed.
    Light,
    /// The hand-written queue.
    Hand,
}

impl RunKind {
    fn name(self) -> &'static str {
        match self {
            RunKind::Plain => "plain",
            RunKind::Profile => "profile",
            RunKind::Light => "light",
            RunKind::Hand => "hand",
        }
    }

    fn parse(s: &str) -> Result<RunKind, String> {
        match s {
            "plain" => Ok(RunKind::Plain),
            "profile" => Ok(RunKind::Profile),
            "light" => Ok(RunKind::Light),
            "hand" => Ok(RunKind::Hand),
            other => Err(format!(
                "RUNS: unknown run '{other}' (plain, profile, light or hand)"
            )),
        }
    }
}

fn clock_name(cpu: bool) -> &'static str {
    if cpu {
        "thread CPU time"
    } else {
        "wall"
    }
}

/// One run in a fresh VM against a fresh server: the batch endpoint confirms a field only
/// for a seq higher than the one it holds, so a server that saw an earlier run of the same
/// trace would confirm nothing and make the acks cheaper.
fn run(tr: &Trace, kind: RunKind, native: bool, ballast: u32, cpu_clock: bool) -> Json {
    let server = TestServer::start();
    let r = versus_vm(native, package_mount_or_env());
    let lua = &r.lua;
    if std::env::var("NSQ_GC").as_deref() == Ok("stop") {
        lua.gc_stop();
    }
    let clock = if cpu_clock {
        Some(
            lua.create_function(|_, ()| Ok(thread_cpu_seconds()))
                .expect("clock function"),
        )
    } else {
        None
    };
    let args = script_args(lua, kind.name(), &server.base, tr, (ballast, clock));
    let out = r
        .run(kind.name(), SCRIPT, args, tr.frames + 10)
        .unwrap_or_else(|e| panic!("{} (native={native}): {e}", kind.name()));
    let text: String = mlua::FromLuaMulti::from_lua_multi(out, lua).expect("JSON text");
    if let Ok(prefix) = std::env::var("NSQ_BODIES") {
        let bodies: Vec<String> = server.with(|s| s.log.iter().map(|l| l.body.clone()).collect());
        let path = format!("{prefix}-{}.txt", kind.name());
        std::fs::write(&path, bodies.join("\n") + "\n").expect("NSQ_BODIES: the file is writable");
    }
    serde_json::from_str(&text).expect("the profile script returns JSON")
}

fn nums(v: &Json) -> Vec<f64> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(0.0)).collect())
        .unwrap_or_default()
}

fn num(v: &Json, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}

/// Per-frame milliseconds (calls + step) of a run.
fn frame_ms(r: &Json) -> Vec<f64> {
    nums(&r["calls_ms"])
        .iter()
        .zip(nums(&r["step_ms"]))
        .map(|(a, b)| a + b)
        .collect()
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// One wrapped function's whole-run figures.
struct Func {
    name: String,
    calls: f64,
    ms: f64,
    self_ms: f64,
    items: f64,
    nonzero: f64,
    max_items: f64,
    causes: Vec<(String, f64, f64, f64)>,
    /// Counted, not timed (light runs' per-change functions).
    counted: bool,
}

fn functions(r: &Json) -> BTreeMap<String, Func> {
    let mut out = BTreeMap::new();
    for f in r["functions"].as_array().into_iter().flatten() {
        let name = f["name"].as_str().unwrap_or("?").to_string();
        let causes = f["causes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["cause"].as_str().unwrap_or("?").to_string(),
                    num(c, "calls"),
                    num(c, "ms"),
                    num(c, "items"),
                )
            })
            .collect();
        out.insert(
            name.clone(),
            Func {
                name,
                calls: num(f, "calls"),
                ms: num(f, "ms"),
                self_ms: num(f, "self_ms"),
                items: num(f, "items"),
                nonzero: num(f, "nonzero"),
                max_items: num(f, "max_items"),
                causes,
                counted: f["counted"] == json!(true),
            },
        );
    }
    out
}

/// What `items` counts for a function (empty: nothing).
fn items_meaning(name: &str) -> &'static str {
    match name {
        "Core.ack" => "confirmed fields",
        "Core.pollRaw" => "requests",
        "Batch.calls" => "changes",
        "Absorb.tryKeep" => "kept",
        "Absorb.voidAll" | "Absorb.voidAgent" => "grants ended",
        n if n.starts_with("Absorb.drain") || n == "Absorb.sync" => "records",
        n if n.starts_with("(sent ") => "changes",
        _ => "",
    }
}

/// The per-frame column `what` ("calls", "items", "ms") of a function, or zeros.
fn col(r: &Json, name: &str, what: &str, frames: usize) -> Vec<f64> {
    let v = nums(&r["per_frame"][name][what]);
    if v.len() == frames {
        v
    } else {
        vec![0.0; frames]
    }
}

/// A ModuleScript frame's kind: whether its step polled, what it sent or acknowledged, and
/// whether most NPCs' changes crossed into the core.
fn ms_kinds(r: &Json, npcs: f64, frames: usize) -> Vec<String> {
    let acks = col(r, "Core.ack", "calls", frames);
    let urgent = col(r, "(sent urgent)", "calls", frames);
    let batch = col(r, "(sent batch)", "calls", frames);
    let sets = col(r, "Core.set", "calls", frames);
    let polls = col(r, "Core.pollRaw", "calls", frames);
    (0..frames)
        .map(|f| {
            let mut parts = Vec::new();
            if polls[f] > 0.0 && batch[f] == 0.0 && urgent[f] == 0.0 {
                parts.push("poll, nothing sent");
            }
            if batch[f] > 0.0 {
                parts.push("batch send");
            }
            if urgent[f] > 0.0 {
                parts.push("urgent send");
            }
            if acks[f] > 0.0 {
                parts.push("ack");
            }
            if sets[f] >= npcs / 2.0 {
                parts.push("mass crossing");
            }
            if parts.is_empty() {
                "no poll".to_string()
            } else {
                parts.join(" + ")
            }
        })
        .collect()
}

fn hand_kinds(r: &Json, frames: usize) -> Vec<String> {
    let req = nums(&r["hand"]["requests"]);
    let batch = nums(&r["hand"]["batch"]);
    (0..frames)
        .map(|f| {
            let b = batch.get(f).copied().unwrap_or(0.0) > 0.0;
            let q = req.get(f).copied().unwrap_or(0.0);
            match (b, q > 0.0) {
                (true, _) => "batch send (+ urgent)".to_string(),
                (false, true) => "urgent send".to_string(),
                (false, false) => "quiet".to_string(),
            }
        })
        .collect()
}

/// Per kind: frames, mean ms, max ms, share of the run's ms, frames over 16.7 ms, and the
/// mean of each extra column.
fn kind_table(kinds: &[String], ms: &[f64], extra: &[(&str, Vec<f64>)]) -> Vec<Json> {
    let total: f64 = ms.iter().sum();
    let mut by: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (f, k) in kinds.iter().enumerate() {
        by.entry(k).or_default().push(f);
    }
    let mut rows: Vec<Json> = by
        .into_iter()
        .map(|(k, fs)| {
            let v: Vec<f64> = fs.iter().map(|&f| ms[f]).collect();
            let mut row = json!({
                "kind": k,
                "frames": fs.len(),
                "mean_ms": mean(&v),
                "max_ms": v.iter().cloned().fold(0.0, f64::max),
                "share": v.iter().sum::<f64>() / total,
                "over_frame": v.iter().filter(|&&x| x > FRAME_MS).count(),
            });
            for (name, c) in extra {
                let m: Vec<f64> = fs.iter().map(|&f| c[f]).collect();
                row[*name] = json!(mean(&m));
            }
            row
        })
        .collect();
    rows.sort_by(|a, b| num(b, "share").total_cmp(&num(a, "share")));
    rows
}

fn print_kinds(title: &str, rows: &[Json], extra: &[&str]) {
    println!("\n{title}\n");
    print!("| kind | frames | mean ms | max ms | share of the run's ms | frames > 16.7 ms |");
    for e in extra {
        print!(" mean {e} |");
    }
    println!();
    println!("|---|---|---|---|---|---|{}", "---|".repeat(extra.len()));
    for r in rows {
        print!(
            "| {} | {} | {:.3} | {:.2} | {:.1} % | {} |",
            r["kind"].as_str().unwrap_or(""),
            r["frames"],
            num(r, "mean_ms"),
            num(r, "max_ms"),
            100.0 * num(r, "share"),
            r["over_frame"],
        );
        for e in extra {
            print!(" {:.2} |", num(r, e));
        }
        println!();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: versus_profile NPCS NATIVE(0|1) [plain,profile,light,hand | reuse]");
        std::process::exit(2);
    }
    let npcs: u32 = args[0].parse().unwrap_or_else(|_| {
        eprintln!("NPCS: a positive whole number expected, got '{}'", args[0]);
        std::process::exit(2)
    });
    let native = match args[1].as_str() {
        "0" => false,
        "1" => true,
        other => {
            eprintln!("NATIVE: 0 or 1 expected, got '{other}'");
            std::process::exit(2)
        }
    };
    let runs_arg = args.get(2).map_or("plain,profile,hand", String::as_str);
    let reuse = runs_arg == "reuse";
    let runs: Vec<RunKind> = if reuse { "" } else { runs_arg }
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            RunKind::parse(s).unwrap_or_else(|e| {
                eprintln!("{e}");
                std::process::exit(2)
            })
        })
        .collect();
    let frames: u32 = std::env::var("NSQ_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1900);
    // arrays of 10,000 numbers kept alive in the VM (a larger heap spaces the garbage
    // collector's cycles out): to compare runs at the same heap size
    let ballast: u32 = std::env::var("NSQ_BALLAST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // the thread's CPU time (default) or the real clock (`NSQ_CLOCK=wall`, as the bench)
    let mut cpu_clock = match std::env::var("NSQ_CLOCK").as_deref() {
        Ok("wall") => false,
        Ok("cpu") | Err(_) => true,
        Ok(other) => {
            eprintln!("NSQ_CLOCK: cpu or wall expected, got '{other}'");
            std::process::exit(2)
        }
    };
    let mode = if native { "native" } else { "interp" };
    let tr = Trace::generate(npcs, frames, 1);
    let dir = repo_root().join("target/bench");
    std::fs::create_dir_all(&dir).expect("create target/bench");
    let raw_path = dir.join(format!("versus-profile-{npcs}-{mode}-raw.json"));
    let mut results: BTreeMap<&str, Json> = BTreeMap::new();
    if reuse {
        let text = std::fs::read_to_string(&raw_path).unwrap_or_else(|e| {
            eprintln!("reuse: cannot read {}: {e}", raw_path.display());
            std::process::exit(2)
        });
        let raw: BTreeMap<String, Json> = serde_json::from_str(&text).expect("raw runs");
        for (k, v) in raw {
            // the clock the runs were taken with, not this invocation's
            cpu_clock = v["clock"] == json!(clock_name(true));
            let name = RunKind::parse(&k).expect("a run name").name();
            results.insert(name, v);
        }
    }
    for k in runs {
        let mut r = run(&tr, k, native, ballast, cpu_clock);
        r["clock"] = json!(clock_name(cpu_clock));
        let ms = mean(&frame_ms(&r));
        eprintln!("  {} {npcs} NPCs {mode}: {ms:.3} ms per frame", k.name());
        // a run named twice: the faster one is kept (the machine is shared)
        let faster = results
            .get(k.name())
            .is_none_or(|old| ms < mean(&frame_ms(old)));
        if faster {
            results.insert(k.name(), r);
        }
    }
    if !reuse {
        std::fs::write(&raw_path, serde_json::to_string(&results).expect("json"))
            .expect("write the raw runs");
    }
    let n = frames as usize;
    let mut report = json!({
        "clock": clock_name(cpu_clock),
        "npcs": npcs,
        "frames": frames,
        "runtime": if native { "luau-native" } else { "luau-interp" },
    });

    println!(
        "\n## {npcs} NPCs, {mode}, {frames} frames, clock: {}\n",
        clock_name(cpu_clock)
    );
    println!("| run | ms per frame (calls + step) | median frame | calls | step | harness frame with HTTP answers | worst frame | frames > 16.7 ms | requests | changes sent | profiler's own ms per frame (taken out) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, r) in &results {
        let ms = frame_ms(r);
        let mut sorted = ms.clone();
        sorted.sort_by(f64::total_cmp);
        let row = json!({
            "ms": mean(&ms),
            "median_ms": sorted.get(sorted.len() / 2).copied().unwrap_or(0.0),
            "ms_calls": mean(&nums(&r["calls_ms"])),
            "ms_step": mean(&nums(&r["step_ms"])),
            "ms_http": mean(&nums(&r["http_ms"])),
            "worst_ms": ms.iter().cloned().fold(0.0, f64::max),
            "over_frame": ms.iter().filter(|&&x| x > FRAME_MS).count(),
            "requests": r["requests"],
            "changes_sent": r["changes_sent"],
            "profiler_ms": num(r, "profiler_ms") / frames as f64,
            "wrapper_us": r["wrapper_us"],
            "empty_us": r["empty_us"],
            "missing": r["missing"],
        });
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2} | {} | {} | {} | {:.3} |",
            num(&row, "ms"),
            num(&row, "median_ms"),
            num(&row, "ms_calls"),
            num(&row, "ms_step"),
            num(&row, "ms_http"),
            num(&row, "worst_ms"),
            row["over_frame"],
            row["requests"],
            row["changes_sent"],
            num(&row, "profiler_ms"),
        );
        report["runs"][*name] = row;
    }
    let plain_ms = results.get("plain").map(|r| mean(&frame_ms(r)));
    let hand_ms = results.get("hand").map(|r| mean(&frame_ms(r)));
    if let (Some(p), Some(h)) = (plain_ms, hand_ms) {
        println!("\nModuleScript / hand-written (plain runs): {:.1}", p / h);
    }

    for label in ["profile", "light"] {
        let Some(r) = results.get(label) else {
            continue;
        };
        let light = label == "light";
        println!("\n### The {label} run\n");
        println!(
            "\nProfiler: a wrapped call costs {:.3} us (calibrated, taken out per call); an empty wrapped call measures {:.3} us for itself (taken out). Missing phases: {}",
            num(r, "wrapper_us"),
            num(r, "empty_us"),
            r["missing"]
        );
        let funcs = functions(r);
        let fr = f64::from(frames);
        let profiled_ms = mean(&frame_ms(r));
        // the exports
        let mut ex: Vec<&Func> = funcs
            .values()
            .filter(|f| f.name.starts_with("nsq_") && f.calls > 0.0 && !f.counted)
            .collect();
        ex.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        println!("\nThe core's exports (frames 1..{frames}, profiler time taken out)\n");
        println!("| export | calls | calls per frame | total ms | ms per frame | share of the frame time | us per call |");
        println!("|---|---|---|---|---|---|---|");
        for f in &ex {
            println!(
                "| `{}` | {} | {:.1} | {:.1} | {:.3} | {:.1} % | {:.2} |",
                f.name,
                f.calls,
                f.calls / fr,
                f.ms,
                f.ms / fr,
                100.0 * f.ms / fr / profiled_ms,
                1e3 * f.ms / f.calls
            );
        }
        report[label]["exports"] = ex
            .iter()
            .map(|f| json!({"name": f.name, "calls": f.calls, "ms": f.ms, "us_per_call": 1e3 * f.ms / f.calls}))
            .collect();
        // the bridge's phases
        let mut ph: Vec<&Func> = funcs
            .values()
            .filter(|f| !f.name.starts_with("nsq_") && f.calls > 0.0)
            .collect();
        ph.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        println!("\nThe bridge's phases (inclusive of what they call; self = without other wrapped calls)\n");
        println!("| function | calls | total ms | ms per frame | share | self ms | us per call | items | items per call with any | most in one call |");
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for f in &ph {
            let meaning = items_meaning(&f.name);
            let (items, per, most) = if meaning.is_empty() {
                ("".to_string(), "".to_string(), "".to_string())
            } else {
                (
                    format!("{} {meaning}", f.items),
                    if f.nonzero > 0.0 {
                        format!("{:.1}", f.items / f.nonzero)
                    } else {
                        "-".into()
                    },
                    format!("{}", f.max_items),
                )
            };
            let timeless = f.name.starts_with("(sent ") || f.counted;
            let http = if IN_HTTP_FRAME.contains(&f.name.as_str()) {
                " (HTTP frame, not in the frame time)"
            } else {
                ""
            };
            println!(
                "| `{}`{http} | {} | {} | {} | {} | {} | {} | {items} | {per} | {most} |",
                f.name,
                f.calls,
                if timeless {
                    "-".into()
                } else {
                    format!("{:.1}", f.ms)
                },
                if timeless {
                    "-".into()
                } else {
                    format!("{:.3}", f.ms / fr)
                },
                if timeless {
                    "-".into()
                } else {
                    format!("{:.1} %", 100.0 * f.ms / fr / profiled_ms)
                },
                if timeless || f.name.starts_with('(') {
                    "-".into()
                } else {
                    format!("{:.1}", f.self_ms)
                },
                if timeless {
                    "-".into()
                } else {
                    format!("{:.2}", 1e3 * f.ms / f.calls)
                },
            );
        }
        report[label]["phases"] = ph
            .iter()
            .map(|f| json!({"name": f.name, "calls": f.calls, "ms": f.ms, "self_ms": f.self_ms, "items": f.items, "nonzero": f.nonzero, "max_items": f.max_items}))
            .collect();
        // causes
        println!("\nBy cause (the innermost bridge call that asked for it)\n");
        println!("| function | cause | calls | ms | items |");
        println!("|---|---|---|---|---|");
        let mut causes_json = Vec::new();
        for f in funcs.values() {
            let mut cs = f.causes.clone();
            cs.sort_by(|a, b| b.2.total_cmp(&a.2));
            for (c, calls, ms, items) in cs {
                println!(
                    "| `{}` | {c} | {calls} | {ms:.1} | {items} {} |",
                    f.name,
                    items_meaning(&f.name)
                );
                causes_json.push(json!({"function": f.name, "cause": c, "calls": calls, "ms": ms, "items": items}));
            }
        }
        report[label]["causes"] = Json::from(causes_json);

        // frame kinds
        let ms = frame_ms(r);
        let kinds = ms_kinds(r, f64::from(npcs), n);
        // light runs: the calls part without the timed event calls, fitted per frame as
        // a + b x crossings (a: the N kept changes, b: what a crossing costs more)
        let crossings = col(r, "Core.set", "calls", n);
        let (fit_a, fit_b) = if light {
            let mut y = nums(&r["calls_ms"]);
            for name in ["NpcSync.setHealth", "NpcSync.setState", "NpcSync.decide"] {
                for (f, v) in col(r, name, "ms", n).into_iter().enumerate() {
                    y[f] -= v;
                }
            }
            let (mx, my) = (mean(&crossings), mean(&y));
            let cov: f64 = crossings
                .iter()
                .zip(&y)
                .map(|(x, y)| (x - mx) * (y - my))
                .sum();
            let var: f64 = crossings.iter().map(|x| (x - mx) * (x - mx)).sum();
            let b = if var > 0.0 { cov / var } else { 0.0 };
            let a = my - b * mx;
            println!(
                "\nThe calls part without health, state and decisions, per frame: {a:.3} ms + {:.2} us per crossing ({} NPCs' changes kept: {:.2} us each; fitted over the {n} frames)",
                b * 1e3,
                npcs,
                a * 1e3 / f64::from(npcs),
            );
            report[label]["fit"] = json!({"kept_path_ms": a, "crossing_extra_us": b * 1e3});
            (a, b)
        } else {
            (0.0, 0.0)
        };
        let extra_names = [
            ("crossings", "Core.set", "calls"),
            ("kept", "Absorb.tryKeep", "items"),
            ("records drained", "(any drain)", "calls"),
            ("confirmed", "Core.ack", "items"),
            ("ack ms", "Core.ack", "ms"),
            ("poll ms", "nsq_poll", "ms"),
            ("drain ms", "(any drain)", "ms"),
            ("crossing ms", "Core.set", "ms"),
            ("nsq_absorb ms", "nsq_absorb", "ms"),
        ];
        let mut extra: Vec<(&str, Vec<f64>)> = extra_names
            .iter()
            .map(|(label, name, what)| (*label, col(r, name, what, n)))
            .collect();
        // records: the drains' items (the group row counts calls, not records)
        let mut recs = vec![0.0; n];
        for name in [
            "Absorb.drainAll",
            "Absorb.drainAgent",
            "Absorb.drainSlot",
            "Absorb.drainTouched",
            "Absorb.sync",
        ] {
            for (f, v) in col(r, name, "items", n).into_iter().enumerate() {
                recs[f] += v;
            }
        }
        extra[2].1 = recs;
        if light {
            // a light run times no crossing: each costs the fit's b
            extra[7].1 = crossings.iter().map(|x| x * fit_b).collect();
        }
        // the same frames of the plain run (the runs are deterministic: the harness delivers
        // every HTTP answer in the next frame, so frame f is the same kind in both)
        if let Some(p) = results.get("plain") {
            let pm = frame_ms(p);
            if pm.len() == n {
                let over = pm
                    .iter()
                    .map(|&x| f64::from(u8::from(x > FRAME_MS)))
                    .collect();
                extra.push(("plain run's ms", pm));
                extra.push(("plain run's frames > 16.7 ms (share)", over));
                // the changes and events before the step, and the step
                extra.push(("plain run's calls ms", nums(&p["calls_ms"])));
                extra.push(("plain run's step ms", nums(&p["step_ms"])));
            }
        }
        let rows = kind_table(&kinds, &ms, &extra);
        let labels: Vec<&str> = extra.iter().map(|e| e.0).collect();
        print_kinds(
            "The ModuleScript's frames by kind (profiled run, profiler time taken out)",
            &rows,
            &labels,
        );
        report[label]["frame_kinds"] = Json::from(rows);

        // the slowest frames
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| ms[b].total_cmp(&ms[a]));
        let phase_names: Vec<&String> = funcs
            .keys()
            .filter(|k| {
                !k.starts_with("(sent")
                    && !IN_HTTP_FRAME.contains(&k.as_str())
                    && k.as_str() != "Process.step"
            })
            .collect();
        println!("\nThe 10 slowest frames (profiled run) and their three largest timed parts (inclusive)\n");
        println!("| frame | ms | kind | largest parts (ms) |");
        println!("|---|---|---|---|");
        for &f in order.iter().take(10) {
            let mut parts: Vec<(&String, f64)> = phase_names
                .iter()
                .map(|k| (*k, col(r, k, "ms", n)[f]))
                .collect();
            parts.sort_by(|a, b| b.1.total_cmp(&a.1));
            let top: Vec<String> = parts
                .iter()
                .take(3)
                .map(|(k, v)| format!("`{k}` {v:.2}"))
                .collect();
            println!(
                "| {} | {:.2} | {} | {} |",
                f + 1,
                ms[f],
                kinds[f],
                top.join(", ")
            );
        }

        // cuts
        let get = |k: &str| funcs.get(k).map_or(0.0, |f| f.ms) / fr;
        let calls_of = |k: &str| funcs.get(k).map_or(0.0, |f| f.calls);
        let keep_us = if light {
            0.0 // the fit's b is already over a kept change
        } else if calls_of("Absorb.tryKeep") > 0.0 {
            get("Absorb.tryKeep") * fr / calls_of("Absorb.tryKeep")
        } else {
            0.0
        };
        let recross = |why: &str| -> (f64, f64) {
            funcs.get("Core.set").map_or((0.0, 0.0), |f| {
                f.causes
                    .iter()
                    .filter(|c| c.0 == format!("after a grant ended in {why}"))
                    .fold((0.0, 0.0), |acc, c| (acc.0 + c.1, acc.1 + c.2))
            })
        };
        // a light run times no crossing: each costs the fit's b
        let recross = |why: &str| -> (f64, f64) {
            let (calls, ms) = recross(why);
            if light {
                (calls, calls * fit_b)
            } else {
                (calls, ms)
            }
        };
        // of the grants a send (or ack) ended, the share that was not of a field it carried
        // (changes sent, confirmed fields): counted, not matched by slot
        let other_share = |why: &str, carried_by: &str| -> f64 {
            let ended = funcs.get("Absorb.voidAll").map_or(0.0, |f| {
                f.causes
                    .iter()
                    .filter(|c| c.0 == why)
                    .map(|c| c.3)
                    .sum::<f64>()
            });
            let carried = funcs.get(carried_by).map_or(0.0, |f| f.items);
            if ended > 0.0 {
                ((ended - carried) / ended).clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        let all_crossings: f64 = crossings.iter().sum();
        let crossing_ms = if light {
            all_crossings * fit_b / fr
        } else {
            get("Core.set") - all_crossings * keep_us * 1e-3 / fr
        };
        let kept_path_ms = if light {
            fit_a
        } else {
            get("NpcSync.setStatus") - get("Core.set")
        };
        let (send_n, send_ms) = recross("Core.pollRaw");
        let (ack_n, ack_ms) = recross("Core.ack");
        // polls that sent nothing: their drain and nsq_poll (a frame polls at most once)
        let polls = col(r, "Core.pollRaw", "calls", n);
        let poll_reqs = col(r, "Core.pollRaw", "items", n);
        let poll_ms = col(r, "Core.pollRaw", "ms", n);
        let drain_all = col(r, "Absorb.drainAll", "items", n);
        let idle: Vec<usize> = (0..n)
            .filter(|&f| polls[f] > 0.0 && poll_reqs[f] == 0.0)
            .collect();
        let idle_ms: f64 = idle.iter().map(|&f| poll_ms[f]).sum();
        let idle_records: f64 = idle.iter().map(|&f| drain_all[f]).sum();
        println!(
            "\nPolls: {} in {n} frames, {} of them sent requests; the {} that sent nothing took in {idle_records} kept records and cost {:.3} ms per frame (drain and `nsq_poll`).",
            polls.iter().sum::<f64>(),
            (0..n).filter(|&f| poll_reqs[f] > 0.0).count(),
            idle.len(),
            idle_ms / fr
        );
        report[label]["idle_polls"] = json!({"polls": polls.iter().sum::<f64>(), "idle": idle.len(), "records": idle_records, "ms": idle_ms});
        let cuts = vec![
            (
                "polls that send nothing cost nothing (their drain and `nsq_poll`)",
                idle_ms / fr,
            ),
            ("the core's poll (`nsq_poll`) were free", get("nsq_poll")),
            ("acks were free (`Core.ack`: its drain, `nsq_confirm`s, `nsq_ack`)", get("Core.ack")),
            ("only the confirmations were free (`nsq_confirm`)", get("nsq_confirm")),
            ("drains were free (every `Absorb` drain, outermost)", get("(any drain)")),
            (
                "sends and acks ended no grants (their fields' next changes kept, at tryKeep's cost, instead of crossing)",
                (send_ms + ack_ms - (send_n + ack_n) * keep_us * 1e-3) / fr,
            ),
            ("sends ended no grants (same, sends only)", (send_ms - send_n * keep_us * 1e-3) / fr),
            ("acks ended no grants (same, acks only)", (ack_ms - ack_n * keep_us * 1e-3) / fr),
            (
                "sends and acks ended only the grants of the fields they carried (the rest of their re-crossings kept)",
                (send_ms - send_n * keep_us * 1e-3) * other_share("Core.pollRaw", "Batch.calls") / fr
                    + (ack_ms - ack_n * keep_us * 1e-3) * other_share("Core.ack", "Core.ack") / fr,
            ),
            (
                "every crossing were kept instead (at a kept change's cost)",
                crossing_ms,
            ),
            ("decisions were free (`NpcSync.decide`)", get("NpcSync.decide")),
            ("health and state were free (`setHealth`, `setState`)", get("NpcSync.setHealth") + get("NpcSync.setState")),
            (
                "the kept path were free (`setStatus` of every NPC, crossings aside)",
                kept_path_ms,
            ),
            (
                "reading records, the wire form and the submit were free",
                get("Core.readRequests") + get("Batch.calls") + get("Sender.submit"),
            ),
        ];
        let mut cuts = cuts;
        cuts.sort_by(|a, b| b.1.total_cmp(&a.1));
        println!("\nWhat a cut would save (each alone; they overlap: the poll's and the ack's drains are in \"drains\"; the share is applied to the plain run, which no wrapper slowed)\n");
        println!("| if ... | saves, profiled ms per frame | share of the profiled frame time | that share of the plain run's ms per frame | ModuleScript / hand-written after (plain run minus that) |");
        println!("|---|---|---|---|---|");
        let mut cuts_json = Vec::new();
        for (what, saved) in &cuts {
            let share = saved / profiled_ms;
            let scaled = plain_ms.map(|p| share * p);
            let after = match (plain_ms, hand_ms) {
                (Some(p), Some(h)) => format!("{:.1}", p * (1.0 - share) / h),
                _ => "-".into(),
            };
            println!(
                "| {what} | {saved:.3} | {:.1} % | {} | {after} |",
                100.0 * share,
                scaled.map_or("-".into(), |v| format!("{v:.3}"))
            );
            cuts_json.push(
                json!({"cut": what, "saves_ms": saved, "share": share, "plain_ms_share": scaled}),
            );
        }
        report[label]["cuts"] = Json::from(cuts_json);
    }

    if let Some(r) = results.get("hand") {
        let ms = frame_ms(r);
        let kinds = hand_kinds(r, n);
        let extra = vec![
            ("requests", nums(&r["hand"]["requests"])),
            ("changes sent", nums(&r["hand"]["changes"])),
            ("HTTP frame ms", nums(&r["http_ms"])),
        ];
        let rows = kind_table(&kinds, &ms, &extra);
        print_kinds(
            "The hand-written queue's frames by kind",
            &rows,
            &["requests", "changes sent", "HTTP frame ms"],
        );
        report["hand_frame_kinds"] = Json::from(rows);
    }

    let path = dir.join(format!("versus-profile-{npcs}-{mode}.json"));
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&report).expect("json") + "\n",
    )
    .expect("write the report");
    println!("\nwrote {}", path.display());
}
