//! The demo's timeline measured through the real path: a small hand-written scenario driven
//! through pkg/roblox's NpcSync in Luau (timeline mode: the driver steps and times the
//! queue), against the Letta stand-in (no other binary needed), then built into the
//! `npc-sync-timeline/1` document.

use npc_sync_e2e::check::Target;
use npc_sync_e2e::run::{self, RunConfig};
use npc_sync_e2e::runtime::Runtime;
use npc_sync_e2e::scenario::Scenario;
use std::time::Duration;

/// Agent a walks, enters combat at frame 118 and decides on every frame from 120 to 150 (an
/// NPC waiting for its sync); agent b moves at frames 10 and 20 (routine: not sent within
/// the 5 s) and decides at frame 200; b gets one chat message.
fn calls() -> String {
    let mut lines = vec![
        r#"{"f":0,"op":"location","agent":"a","value":"gate","seq":1}"#.to_string(),
        r#"{"f":10,"op":"location","agent":"b","value":"x0","seq":2}"#.into(),
        r#"{"f":20,"op":"location","agent":"b","value":"x1","seq":3}"#.into(),
        r#"{"f":118,"op":"state","agent":"a","value":"Combat","seq":4}"#.into(),
    ];
    for f in 120..=150 {
        lines.push(format!(r#"{{"f":{f},"op":"decide","agent":"a"}}"#));
    }
    lines.push(r#"{"f":200,"op":"decide","agent":"b"}"#.into());
    lines.push(r#"{"f":250,"op":"chat","agent":"b","sender":"p","text":"hi"}"#.into());
    lines.push(r#"{"f":299,"op":"location","agent":"a","value":"moat","seq":5}"#.into());
    lines.join("\n") + "\n"
}

/// The scenario of [`calls`] on `runtime`, faults off, Letta's API, timeline asked for.
fn run_with_timeline(runtime: Runtime) -> Result<run::RunResult, String> {
    let text = calls();
    let sc = Scenario::parse(&text).unwrap();
    let cfg = RunConfig {
        scenario: "hand-written".into(),
        faults: false,
        target: Target::Letta,
        runtime,
        seed: 1,
        http_timeout: Duration::from_millis(2000),
        timeline: true,
    };
    run::run(&cfg, &text, &sc)
}

#[test]
fn a_luau_run_measures_its_timeline() {
    let r = run_with_timeline(Runtime::Luau).unwrap();
    assert!(r.verdict.passed(), "{:?}", r.verdict);
    let t = r.timeline.expect("a timeline was asked for");

    // one row per second of play (frames 0 to 299)
    let ts: Vec<f64> = t.seconds.iter().map(|s| s.t).collect();
    assert_eq!(ts, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
    // naive: 5 changes and 1 chat message
    assert_eq!(t.seconds.iter().map(|s| s.naive).sum::<f64>(), 6.0);
    // every HTTP call that reached the proxy is in a row, the shutdown's in the last
    let calls: f64 = t.seconds.iter().map(|s| s.calls).sum();
    assert_eq!(calls, r.verdict.requests as f64);
    for s in &t.seconds {
        assert!(s.frame_ms > 0.0 && s.frame_ms <= s.frame_ms_max, "{s:?}");
        let step = s.step_ms.expect("the Luau run times the step");
        assert!(step <= s.frame_ms, "{s:?}");
    }

    // a's attempt proceeds (its critical change went out at once), in combat, with
    // nothing left unsent; b's at once, out of combat,
    // with its two routine location changes still unsent (the oldest from frame 10)
    assert_eq!(t.decisions.len(), 2, "{:?}", t.decisions);
    let (da, db) = (&t.decisions[0], &t.decisions[1]);
    assert_eq!(da.agent, "a");
    assert!(da.combat);
    assert_eq!(da.threshold_s, 1.0);
    assert!(da.t >= 120.0 / 60.0 && da.t <= 150.0 / 60.0, "{da:?}");
    assert_eq!(da.staleness_s, 0.0, "{da:?}");
    assert_eq!(db.agent, "b");
    assert!(!db.combat);
    assert_eq!(db.threshold_s, 15.0);
    assert_eq!(db.t, 200.0 / 60.0);
    assert!((db.staleness_s - 190.0 / 60.0).abs() < 1e-9, "{db:?}");
    assert_eq!(t.num("decisions_abandoned"), Some(0.0));
    assert_eq!(t.num("lost"), Some(0.0));
    assert!(t.num("critical_latency_p50_s").is_some());
    assert_eq!(t.run["runtime"], "luau-native");
}

#[test]
fn the_node_driver_measures_no_timeline_and_says_so() {
    let e = match run_with_timeline(Runtime::Node) {
        Ok(_) => panic!("a Node run cannot give a timeline"),
        Err(e) => e,
    };
    assert!(e.contains("node driver does not measure a timeline"), "{e}");
}
