//! The Node runtime: `node/driver.mjs` (pkg/node's `SyncQueue` and `fetch`).

use crate::runtime::{Outcome, RunSpec};
use std::path::Path;
use std::process::Command;

/// Runs the scenario through pkg/node; returns what the driver reported.
pub fn run(spec: &RunSpec) -> Result<Outcome, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pkg = root.join("../pkg/node/npc_sync_node.js");
    if !pkg.exists() {
        return Err(format!(
            "{} is missing: build pkg/node first (./build.sh build)",
            pkg.display()
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let calls = dir.path().join("calls.jsonl");
    std::fs::write(&calls, &spec.calls_text).map_err(|e| e.to_string())?;
    let out = Command::new("node")
        .arg(root.join("node/driver.mjs"))
        .arg(&calls)
        .arg(spec.options_json("e2e-node"))
        .output()
        .map_err(|e| format!("cannot run node: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "Node driver failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        eprintln!("  node: {line}");
    }
    let last = stdout.lines().last().unwrap_or("");
    Outcome::from_json(last)
}
