//! One end-to-end run: backends up, proxy in front, a runtime drives the scenario, checks.

use crate::backend::{self, Gateway};
use crate::check::{self, Target, Verdict};
use crate::faults::{FaultPlan, FaultRates};
use crate::proxy::{Proxy, ProxyConfig, SimClock};
use crate::runtime::{RunSpec, Runtime};
use crate::scenario::Scenario;
use crate::timeline::{self, RunInfo};
use npc_sync_demo::Timeline;
use npc_sync_luau_harness::server::TestServer;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The budget the queue is configured with (the default of docs/semantics.md).
pub const BUDGET_PER_MINUTE: usize = 400;
/// A server gets 30 s at shutdown (`game:BindToClose`).
pub const FLUSH_TIMEOUT_S: f64 = 30.0;

/// What to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Simulator scenario name.
    pub scenario: String,
    /// Faults on (every kind, [`FaultRates::ON`]) or off.
    pub faults: bool,
    /// The backend.
    pub target: Target,
    /// The runtime.
    pub runtime: Runtime,
    /// The proxy's seed.
    pub seed: u64,
    /// The HTTP client's timeout.
    pub http_timeout: Duration,
    /// Also measure the demo's timeline (`docs/demo-timeline.md`; the Luau driver only).
    pub timeline: bool,
}

/// One finished run.
pub struct RunResult {
    /// What ran.
    pub config: RunConfig,
    /// The checks.
    pub verdict: Verdict,
    /// Simulated seconds `flushAll` took.
    pub flush_seconds: f64,
    /// HTTP calls the runtime says it made (the proxy's `requests` should match).
    pub http_calls: u64,
    /// The demo's timeline, when [`RunConfig::timeline`] asked for it.
    pub timeline: Option<Timeline>,
}

impl RunResult {
    /// The run's line, exactly as issue 10 asks.
    pub fn line(&self) -> String {
        let (c, v) = (&self.config, &self.verdict);
        format!(
            "e2e {} faults={} target={} runtime={} requests={} lost={} stale_overwrites={} split_groups={} converged={}",
            c.scenario,
            if c.faults { "on" } else { "off" },
            c.target.name(),
            c.runtime.name(),
            v.requests,
            v.lost,
            v.stale_overwrites,
            v.split_groups,
            v.converged
        )
    }
}

/// The simulator's scenarios (`npc-sync-sim --list-scenarios`): it owns the list.
pub fn scenarios() -> Result<Vec<String>, String> {
    let bin = sim_bin()?;
    let out = Command::new(&bin)
        .arg("--list-scenarios")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "npc-sync-sim --list-scenarios: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

fn sim_bin() -> Result<std::path::PathBuf, String> {
    let bin = backend::release_bin("npc-sync-sim");
    if !bin.exists() {
        return Err(format!(
            "{} is missing: build it first (cargo build --release --bin npc-sync-sim)",
            bin.display()
        ));
    }
    Ok(bin)
}

/// Writes a scenario's calls with the simulator binary (`npc-sync-sim --calls`).
pub fn generate_calls(
    scenario: &str,
    npcs: u32,
    seconds: f64,
    seed: u64,
) -> Result<String, String> {
    let bin = sim_bin()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("calls.jsonl");
    let out = Command::new(&bin)
        .args(["--scenario", scenario, "--npcs", &npcs.to_string()])
        .args([
            "--seconds",
            &seconds.to_string(),
            "--seed",
            &seed.to_string(),
            "--json",
        ])
        .arg("--calls")
        .arg(&path)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "npc-sync-sim {scenario}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::read_to_string(Path::new(&path)).map_err(|e| e.to_string())
}

/// Runs one configuration over a scenario's calls.
pub fn run(cfg: &RunConfig, calls_text: &str, sc: &Scenario) -> Result<RunResult, String> {
    // Refused before anything starts: a whole run would be wasted first otherwise.
    if cfg.timeline && !cfg.runtime.measures_timeline() {
        return Err(format!(
            "the {} driver does not measure a timeline",
            cfg.runtime.name()
        ));
    }
    let letta = TestServer::start();
    backend::create_blocks(&letta, &sc.agents, &sc.blocks);
    let gateway = match cfg.target {
        Target::Batch => Some(Gateway::start(&letta.base)?),
        Target::Letta => None,
    };
    let upstream = match &gateway {
        Some(g) => g.addr,
        None => letta
            .base
            .trim_start_matches("http://")
            .parse()
            .map_err(|e| format!("stand-in address: {e}"))?,
    };
    let load_at_start = load_average();
    let clock = SimClock::default();
    let proxy = Proxy::start(
        ProxyConfig {
            upstream,
            plan: FaultPlan {
                seed: cfg.seed,
                rates: if cfg.faults {
                    FaultRates::ON
                } else {
                    FaultRates::OFF
                },
            },
            slow_delay: cfg.http_timeout + Duration::from_millis(200),
            upstream_timeout: Duration::from_secs(30),
        },
        clock.clone(),
    )?;
    let spec = RunSpec {
        calls_text: calls_text.to_string(),
        frames: sc.frames,
        target: cfg.target,
        proxy: proxy.base.clone(),
        http_timeout: cfg.http_timeout,
        flush_timeout_s: FLUSH_TIMEOUT_S,
        max_in_flight: 64,
        timeline: cfg.timeline,
    };
    let outcome = match cfg.runtime {
        Runtime::Luau => crate::luau::run(&spec, &clock)?,
        Runtime::Node => crate::node::run(&spec)?,
    };
    let records = proxy.settle(cfg.http_timeout * 4);
    let view = backend::letta_view(&letta);
    drop(gateway);
    if let Some(dir) = std::env::var_os("E2E_DUMP") {
        dump(Path::new(&dir), cfg, &records, &view);
    }
    let verdict = check::check(
        sc,
        cfg.target,
        &records,
        &view,
        outcome.flushed,
        BUDGET_PER_MINUTE,
    );
    let timeline = match (&outcome.timeline, cfg.timeline) {
        (Some(driver), true) => Some(timeline::build(
            sc,
            cfg.target,
            &records,
            driver,
            RunInfo {
                run: run_info(cfg, sc, load_at_start),
                summary: timeline::verdict_summary(&verdict, outcome.flush_seconds),
            },
        )?),
        (None, true) => {
            return Err(format!(
                "the {} driver reported no timeline although it measures one",
                cfg.runtime.name()
            ))
        }
        (_, false) => None,
    };
    Ok(RunResult {
        config: cfg.clone(),
        verdict,
        flush_seconds: outcome.flush_seconds,
        http_calls: outcome.http_calls,
        timeline,
    })
}

/// The machine's load average over the last minute (Linux), to read wall-clock figures by.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next().map(str::to_string)
}

/// The report's "Run" table: what ran, on what path, on how loaded a machine.
fn run_info(
    cfg: &RunConfig,
    sc: &Scenario,
    load_at_start: Option<String>,
) -> serde_json::Map<String, serde_json::Value> {
    let runtime = match cfg.runtime {
        // the harness's VM compiles with native code generation (luau.rs)
        Runtime::Luau => "luau-native",
        Runtime::Node => "node",
    };
    let path = match (cfg.runtime, cfg.target) {
        (Runtime::Luau, Target::Batch) => {
            "pkg/roblox NpcSync in Luau 0.740 (harness VM, HttpService doing real HTTP) -> fault proxy -> npc-sync-gateway (SQLite) -> Letta stand-in"
        }
        (Runtime::Luau, Target::Letta) => {
            "pkg/roblox NpcSync in Luau 0.740 (harness VM, HttpService doing real HTTP) -> fault proxy -> Letta stand-in"
        }
        (Runtime::Node, Target::Batch) => {
            "pkg/node SyncQueue with fetch -> fault proxy -> npc-sync-gateway (SQLite) -> Letta stand-in"
        }
        (Runtime::Node, Target::Letta) => "pkg/node SyncQueue with fetch -> fault proxy -> Letta stand-in",
    };
    let mut info = serde_json::json!({
        "source": "npc-sync-e2e",
        "runtime": runtime,
        "scenario": cfg.scenario,
        "npcs": sc.agents.len(),
        "seconds": sc.frames as f64 / 60.0,
        "seed": cfg.seed,
        "faults": if cfg.faults { "on" } else { "off" },
        "target": cfg.target.name(),
        "path": path,
        "calls": "the scenario's calls from npc-sync-sim --calls (its NPCs, its decisions); naive = one request per change and per chat message of those calls",
    });
    if let Some(load) = load_at_start {
        info["load_average_at_start"] = format!(
            "{load} ({} cores; the frame cost is wall-clock time)",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        )
        .into();
    }
    info.as_object().cloned().unwrap_or_default()
}

/// `E2E_DUMP=DIR`: every proxy record and every Letta write of the run as text, to study a
/// failing run.
fn dump(dir: &Path, cfg: &RunConfig, records: &[crate::proxy::Record], view: &check::LettaView) {
    let name = format!(
        "{}-{}-{}-{}",
        cfg.scenario,
        if cfg.faults { "on" } else { "off" },
        cfg.target.name(),
        cfg.runtime.name()
    );
    let mut out = String::new();
    for r in records {
        out.push_str(&format!(
            "{} t={:.3} f={} {} {} {:?} up={:?} client={:?} {}\n",
            r.order,
            r.time,
            (r.time * 60.0).round(),
            r.method,
            r.path,
            r.fault,
            r.upstream_status,
            r.client_status,
            r.body
        ));
    }
    out.push_str("---- letta writes\n");
    for (a, b, t) in &view.writes {
        out.push_str(&format!("{a}/{b}: {t:?}\n"));
    }
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(dir.join(format!("{name}.txt")), out);
}
