//! Requests per minute naive (one call per change and per chat message) against npc-sync,
//! per simulator scenario, from `npc-sync-sim --json` (batch endpoint, no failures,
//! 100 NPCs, seed 1).

use serde_json::{json, Value as Json};
use std::path::Path;
use std::process::Command;

pub fn requests_per_minute(root: &Path, seconds: f64) -> Vec<Json> {
    let bin = root.join("target/release/npc-sync-sim");
    let mut out = Vec::new();
    // The simulator owns the list of scenarios.
    let names = match Command::new(&bin).arg("--list-scenarios").output() {
        Ok(r) if r.status.success() => String::from_utf8_lossy(&r.stdout).into_owned(),
        _ => {
            eprintln!(
                "{}: cannot list scenarios (build it: cargo build --release --bin npc-sync-sim)",
                bin.display()
            );
            return out;
        }
    };
    for s in names.lines() {
        let run = Command::new(&bin)
            .args(["--scenario", s, "--npcs", "100", "--seconds"])
            .arg(seconds.to_string())
            .arg("--json")
            .output();
        let run = match run {
            Ok(r) if r.status.success() => r,
            Ok(r) => {
                eprintln!("npc-sync-sim {s}: {}", String::from_utf8_lossy(&r.stderr));
                continue;
            }
            Err(e) => {
                eprintln!(
                    "{}: {e} (build it: cargo build --release --bin npc-sync-sim)",
                    bin.display()
                );
                return out;
            }
        };
        let text = String::from_utf8_lossy(&run.stdout);
        let Some(v) = text
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Json>(l).ok())
        else {
            eprintln!("npc-sync-sim {s}: no JSON line in its output");
            continue;
        };
        let num = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let per_min = 60.0 / seconds;
        out.push(json!({
            "scenario": s,
            "npcs": 100,
            "seconds": seconds,
            "naive_per_min": num("requests_naive") * per_min,
            "calls_per_min": num("calls") * per_min,
            "max_calls_per_min": num("max_requests_per_min"),
            "calls_over_naive": num("calls") / num("requests_naive"),
            "lost": num("lost"),
            "converged": v["converged"],
        }));
    }
    out
}
