//! `npc-sync-sim --timeline FILE`: the demo report's input (docs/demo-timeline.md) agrees
//! with the run's own report, second by second and decision by decision.

use serde_json::Value;
use std::process::Command;

fn timeline(args: &[&str], name: &str) -> Value {
    let dir = std::env::temp_dir().join(format!("npc-sync-timeline-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("timeline.json");
    let out = Command::new(env!("CARGO_BIN_EXE_npc-sync-sim"))
        .args(args)
        .arg("--timeline")
        .arg(&file)
        .output()
        .expect("run npc-sync-sim");
    assert!(
        out.status.success(),
        "npc-sync-sim failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    v
}

fn sum(v: &Value, key: &str) -> f64 {
    v["seconds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[key].as_f64().unwrap())
        .sum()
}

#[test]
fn timeline_adds_up_to_the_runs_report() {
    let v = timeline(
        &[
            "--scenario",
            "combat",
            "--npcs",
            "20",
            "--seconds",
            "30",
            "--fail-rate",
            "0.2",
        ],
        "combat",
    );
    assert_eq!(v["format"], "npc-sync-timeline/1");
    assert_eq!(v["run"]["scenario"], "combat");
    assert_eq!(v["run"]["runtime"], "native");
    assert_eq!(v["limits"]["http_per_minute"], 500);
    assert_eq!(v["limits"]["budget_per_minute"], 400);
    assert_eq!(v["limits"]["combat_freshness_s"], 1.0);
    let s = &v["summary"];
    // every request and change of the run falls in exactly one second
    assert_eq!(sum(&v, "naive"), s["requests_naive"].as_f64().unwrap());
    assert_eq!(sum(&v, "requests"), s["requests"].as_f64().unwrap());
    assert_eq!(sum(&v, "calls"), s["calls"].as_f64().unwrap());
    let rows = v["seconds"].as_array().unwrap();
    // 30 s played, then the drain
    assert!(rows.len() >= 30, "{} rows", rows.len());
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["t"].as_f64().unwrap(), i as f64);
        assert!(r["frame_ms"].as_f64().unwrap() >= 0.0);
        assert!(r["frame_ms_max"].as_f64().unwrap() >= r["frame_ms"].as_f64().unwrap());
    }
    // queue empty once drained
    assert_eq!(rows.last().unwrap()["queue_depth"], 0);
    let d = v["decisions"].as_array().unwrap();
    assert_eq!(d.len() as f64, s["decisions"].as_f64().unwrap());
    let max = d
        .iter()
        .map(|x| x["staleness_s"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(max, s["decision_staleness_max_s"].as_f64().unwrap());
    for x in d {
        let (st, th) = (
            x["staleness_s"].as_f64().unwrap(),
            x["threshold_s"].as_f64().unwrap(),
        );
        assert!(st <= th + 1e-9, "decision over its threshold: {x}");
        let want = if x["combat"].as_bool().unwrap() {
            1.0
        } else {
            15.0
        };
        assert_eq!(th, want, "{x}");
    }
    assert!(d.iter().any(|x| x["combat"] == true));
}

#[test]
fn timeline_to_an_unwritable_path_fails_naming_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_npc-sync-sim"))
        .args(["--scenario", "patrol", "--npcs", "2", "--seconds", "1"])
        .args(["--timeline", "/nonexistent-dir/timeline.json"])
        .output()
        .expect("run npc-sync-sim");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--timeline /nonexistent-dir/timeline.json: cannot write"),
        "{err}"
    );
}
