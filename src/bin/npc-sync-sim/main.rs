//! npc-sync-sim: runs a game scenario against the queue and a simulated backend, and
//! reports what the queue saved and whether anything went wrong.
//!
//! ```text
//! npc-sync-sim --scenario combat --npcs 100 --seconds 600 [--fail-rate 0.3] [--seed 7]
//!               [--target batch|letta] [--json] [--timeline FILE] [--calls FILE]
//! ```
//!
//! `--timeline FILE` also writes the run second by second and every decision as JSON (the
//! demo report's input, `docs/demo-timeline.md`). `--calls FILE` also writes every call the
//! game made to the queue, frame by frame, as JSON lines (`calls.rs`): the scenario's input
//! for the end-to-end runs (`e2e/`).

mod backend;
mod calls;
mod report;
mod rng;
mod timeline;
mod world;

use backend::{Backend, Outcome};
use npc_sync::{Config, Queue, RollingWindow, Target, Value};
use report::Report;
use std::process::ExitCode;
use world::World;

const FPS: f64 = 60.0;
/// After the game stops, keep polling this long at most for everything to be delivered.
const DRAIN_LIMIT_S: f64 = 900.0;

struct Args {
    scenario: String,
    npcs: u32,
    seconds: f64,
    fail_rate: f64,
    seed: u64,
    json: bool,
    target: Target,
    timeline: Option<std::path::PathBuf>,
    calls: Option<std::path::PathBuf>,
}

const USAGE: &str =
    "usage: npc-sync-sim --scenario NAME (names: --list-scenarios) \
--npcs N --seconds S [--fail-rate F] [--seed K] [--target batch|letta] [--json] [--timeline FILE] [--calls FILE]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        scenario: String::new(),
        npcs: 0,
        seconds: 0.0,
        fail_rate: 0.0,
        seed: 1,
        json: false,
        target: Target::BatchEndpoint,
        timeline: None,
        calls: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--scenario" => a.scenario = value("--scenario")?,
            "--npcs" => {
                a.npcs = value("--npcs")?
                    .parse()
                    .map_err(|_| "--npcs must be a whole number".to_string())?
            }
            "--seconds" => {
                a.seconds = value("--seconds")?
                    .parse()
                    .map_err(|_| "--seconds must be a number".to_string())?
            }
            "--fail-rate" => {
                a.fail_rate = value("--fail-rate")?
                    .parse()
                    .map_err(|_| "--fail-rate must be a number".to_string())?
            }
            "--seed" => {
                a.seed = value("--seed")?
                    .parse()
                    .map_err(|_| "--seed must be a whole number".to_string())?
            }
            "--json" => a.json = true,
            "--timeline" => a.timeline = Some(value("--timeline")?.into()),
            "--calls" => a.calls = Some(value("--calls")?.into()),
            "--target" => {
                a.target = match value("--target")?.as_str() {
                    "batch" => Target::BatchEndpoint,
                    "letta" => Target::LettaApi,
                    other => {
                        return Err(format!(
                            "--target must be batch (the project's batch endpoint) or letta (Letta's API), got '{other}'"
                        ))
                    }
                }
            }
            "--list-scenarios" => {
                println!("{}", world::SCENARIOS.join("\n"));
                std::process::exit(0);
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
    }
    if a.scenario.is_empty() {
        return Err(format!("--scenario is required\n{USAGE}"));
    }
    if a.npcs == 0 || a.npcs > 10_000 {
        return Err("--npcs must be between 1 and 10000".into());
    }
    if !(a.seconds > 0.0 && a.seconds <= 86_400.0) {
        return Err("--seconds must be above 0 and at most 86400".into());
    }
    if !(0.0..1.0).contains(&a.fail_rate) {
        return Err(
            "--fail-rate must be at least 0 and below 1 (the backend must eventually succeed)"
                .into(),
        );
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(r) => {
            r.print_table();
            if args.json {
                println!("{}", r.json());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("npc-sync-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<Report, String> {
    let cfg = Config {
        seed: args.seed,
        target: args.target,
        ..Config::default()
    };
    let mut q = Queue::new(cfg).map_err(|e| e.to_string())?;
    let mut world = World::new(&mut q, &args.scenario, args.npcs, args.seed)?;
    if args.calls.is_some() {
        world.calls = Some(calls::CallLog::default());
    }
    let mut backend = Backend::new(args.seed, args.fail_rate);
    // Every call the bridge would make, to measure the fullest minute (invariant 5).
    let mut window = RollingWindow::new();
    let mut requests = 0u64;
    let mut calls = 0u64;
    let frames = (args.seconds * FPS).round() as u64;
    let drain_frames = (DRAIN_LIMIT_S * FPS) as u64;
    let progress_every = (frames / 10).max(1);
    let mut drained_at = None;
    // SIM_TRACE=1: every request on stderr (frame, id, kind, sequence numbers), to find
    // where two builds of the queue diverge.
    let trace = std::env::var("SIM_TRACE").is_ok();
    let mut timeline = args.timeline.as_ref().map(|_| timeline::Recorder::new());
    for frame in 0..frames + drain_frames {
        let now = frame as f64 / FPS;
        if let Some(t) = timeline.as_mut() {
            t.frame_start();
        }
        let playing = frame < frames;
        if playing {
            world.step(&mut q, &mut backend, now, 1.0 / FPS);
            if !args.json && frame > 0 && frame % progress_every == 0 {
                eprintln!(
                    "  {:>3} % of {} s simulated",
                    frame * 100 / frames,
                    args.seconds
                );
            }
        } else if q.is_idle() && backend.in_flight.is_empty() {
            drained_at = Some(now - args.seconds);
            break;
        }
        for r in q.poll(now).map_err(|e| e.to_string())? {
            if trace {
                eprintln!(
                    "{frame} {:?} {:?} {:?}",
                    r.id,
                    r.kind,
                    r.changes.iter().map(|c| c.seq.0).collect::<Vec<_>>()
                );
            }
            requests += 1;
            calls += r.calls as u64;
            debug_assert!(r.calls >= 1);
            window.record(now, r.calls);
            backend.send(&q, now, r);
        }
        for (id, outcome) in backend.step(&q, now) {
            match outcome {
                Outcome::Ok => q.ack(id, &[]),
                Outcome::ServerError | Outcome::LostResponse => q.fail(now, id, None),
                Outcome::RateLimited(after) => q.fail(now, id, Some(after)),
            }
            .map_err(|e| e.to_string())?;
        }
        if let Some(t) = timeline.as_mut() {
            t.frame_end(&mut q, &world, now);
        }
    }

    if let (Some(log), Some(path)) = (&world.calls, &args.calls) {
        std::fs::write(path, log.to_jsonl())
            .map_err(|e| format!("--calls {}: cannot write: {e}", path.display()))?;
    }

    // Converged: the backend holds exactly the game's final state.
    let mut lost = 0u64;
    for (name, value) in &world.truth {
        let held = backend
            .fields
            .get(name)
            .map(|v| v.0.clone())
            .unwrap_or(Value::Cleared);
        if held != *value {
            lost += 1;
            if std::env::var("SIM_DEBUG").is_ok() {
                let a = npc_sync::AgentId::from_index(name.0);
                eprintln!(
                    "lost: {name:?} truth {value:?} backend {:?} queue local {:?} acked {:?}",
                    backend.fields.get(name),
                    q.local_value(a, &name.1, &name.2),
                    q.acked_value(a, &name.1, &name.2)
                );
            }
        }
    }
    let chat_lost = world
        .tally
        .chat_sent
        .saturating_sub(backend.checks.chat_delivered);
    let m = q.metrics();
    let report = Report::new(
        args,
        &world,
        &backend,
        &m,
        report::Counts {
            requests,
            calls,
            max_per_min: window.peak(),
            lost: lost + chat_lost,
            drained_after_s: drained_at,
        },
    );
    if let (Some(t), Some(path)) = (timeline, &args.timeline) {
        let run = format!(
            "{{\"source\":\"npc-sync-sim\",\"runtime\":\"native\",\"scenario\":\"{}\",\"npcs\":{},\"seconds\":{},\"seed\":{},\"fail_rate\":{},\"target\":\"{}\"}}",
            args.scenario,
            args.npcs,
            args.seconds,
            args.seed,
            args.fail_rate,
            match args.target {
                Target::BatchEndpoint => "batch",
                Target::LettaApi => "letta",
            }
        );
        let text = t.finish(&mut q, &world, &run, &report.json());
        std::fs::write(path, text)
            .map_err(|e| format!("--timeline {}: cannot write: {e}", path.display()))?;
    }
    Ok(report)
}
