//! The report from small hand-made timelines: what it computes, what it draws, what it
//! refuses.

use npc_sync_demo::{render, summary, BenchSummary, Timeline};
use serde_json::{json, Value};

/// 120 seconds: 1,000 naive requests a second, 5 npc-sync calls a second except a burst of
/// 50 at t = 70; three decisions, one over its threshold.
fn sample() -> Value {
    let seconds: Vec<Value> = (0..120)
        .map(|t| {
            json!({"t": t, "naive": 1000, "requests": if t == 70 { 50 } else { 5 },
                   "calls": if t == 70 { 50 } else { 5 }, "queue_depth": 100 + t,
                   "in_flight": 1, "frame_ms": 0.5, "frame_ms_max": 2.0})
        })
        .collect();
    json!({
        "format": "npc-sync-timeline/1",
        "run": {"source": "test", "runtime": "luau-native", "scenario": "combat", "npcs": 10},
        "limits": {"http_per_minute": 500, "budget_per_minute": 400, "freshness_s": 15, "combat_freshness_s": 1},
        "seconds": seconds,
        "decisions": [
            {"t": 1.0, "agent": "a", "staleness_s": 0.25, "threshold_s": 1, "combat": true},
            {"t": 2.0, "agent": "b", "staleness_s": 4.0, "threshold_s": 15, "combat": false},
            {"t": 3.0, "agent": "a", "staleness_s": 1.5, "threshold_s": 1, "combat": true}
        ],
        "summary": {"lost": 0, "stale_overwrites": 0, "split_groups": 0, "converged": true,
                    "critical_latency_p50_s": 0.06, "critical_latency_p99_s": 0.7}
    })
}

fn parse(v: &Value) -> Result<Timeline, String> {
    Timeline::parse(&v.to_string()).map_err(|e| e.to_string())
}

fn row<'a>(rows: &'a [(String, String)], starts: &str) -> &'a str {
    &rows
        .iter()
        .find(|(k, _)| k.starts_with(starts))
        .unwrap_or_else(|| panic!("no row {starts}"))
        .1
}

#[test]
fn summary_counts_requests_budget_and_staleness_from_the_timeline() {
    let t = parse(&sample()).unwrap();
    // the busiest 60 s window holds the burst: 59 * 5 + 50
    assert_eq!(summary::peak_calls_per_minute(&t), 345.0);
    let rows = summary::rows(&t);
    assert_eq!(row(&rows, "requests, naive"), "120000");
    assert_eq!(row(&rows, "requests, npc-sync"), "645 (645)");
    assert_eq!(row(&rows, "npc-sync calls / naive"), "0.0054");
    assert!(row(&rows, "budget used").starts_with("345 (69.0 % of HttpService's 500"));
    assert_eq!(row(&rows, "decisions over their threshold"), "1");
    assert_eq!(row(&rows, "staleness max in combat"), "1.500 s");
    assert_eq!(row(&rows, "critical latency"), "0.060 s / 0.700 s");
    assert_eq!(row(&rows, "lost"), "0");
    assert_eq!(row(&rows, "decisions abandoned"), "n/a");
    assert_eq!(row(&rows, "converged"), "true");
}

#[test]
fn report_draws_every_plot_with_its_limits() {
    let t = parse(&sample()).unwrap();
    let r = render(&t, None).unwrap();
    for id in ["requests", "staleness", "queue-depth", "frame-cost"] {
        assert!(
            r.html.contains(&format!("<div id=\"{id}\"><svg")),
            "{id} missing"
        );
    }
    assert!(r
        .html
        .contains("HttpService limit: 500 a minute (8.33 a second)"));
    assert!(r.html.contains("threshold in combat: 1 s"));
    assert!(r.html.contains("threshold out of combat: 15 s"));
    assert!(r.html.contains("10 % of a 60 Hz frame (1.67 ms)"));
    // one point per decision (plus one legend marker per kind)
    let staleness = r.html.split("<div id=\"staleness\">").nth(1).unwrap();
    let staleness = staleness.split("</div>").next().unwrap();
    assert_eq!(staleness.matches("<circle").count(), 3 + 2);
    assert!(!r.html.contains("bench-cost"));
    // no producer timed the step apart: no line for it
    assert!(!r.html.contains("of which the queue step"));
}

#[test]
fn the_step_is_drawn_when_the_producer_timed_it() {
    let mut v = sample();
    for row in v["seconds"].as_array_mut().unwrap() {
        row["step_ms"] = json!(0.2);
    }
    let t = parse(&v).unwrap();
    let r = render(&t, None).unwrap();
    let plot = r.html.split("<div id=\"frame-cost\">").nth(1).unwrap();
    let plot = plot.split("</div>").next().unwrap();
    assert!(plot.contains("of which the queue step (mean)"));
    assert!(plot.contains("a 60 Hz frame (16.7 ms)"));
    // it reads back as written
    let again = parse(&serde_json::from_str(&t.to_json().unwrap()).unwrap()).unwrap();
    assert_eq!(again.seconds[0].step_ms, Some(0.2));
    v["seconds"][7]["step_ms"] = json!(-0.5);
    assert_eq!(
        parse(&v).unwrap_err(),
        "seconds[7].step_ms: must be a finite number >= 0, got -0.5"
    );
}

#[test]
fn bench_summary_adds_the_cost_by_runtime() {
    let t = parse(&sample()).unwrap();
    let b = BenchSummary::parse(
        &json!({"format": "npc-sync-bench-summary/1", "frame_cost": [
            {"runtime": "luau-native", "queue": "npcsync", "npcs": 1000, "ms": 1.2, "share": 0.072},
            {"runtime": "luau-native", "queue": "hand", "npcs": 1000, "ms": 0.8, "share": 0.048}],
            "ratios": [{"runtime": "luau-native", "npcs": 1000, "modulescript_over_hand": 1.5}]})
        .to_string(),
    )
    .unwrap();
    let r = render(&t, Some(&b)).unwrap();
    assert!(r.html.contains("<div id=\"bench-cost\"><svg"));
    assert!(r.html.contains("luau-native npc-sync 1000"));
    assert!(r.html.contains("<td>1.50</td>"));
}

#[test]
fn bad_timelines_are_refused_naming_the_field() {
    let mut v = sample();
    v["format"] = json!("other/2");
    assert!(parse(&v).unwrap_err().starts_with("format: expected"));
    let mut v = sample();
    v["seconds"][3]["frame_ms"] = json!(-1.0);
    assert_eq!(
        parse(&v).unwrap_err(),
        "seconds[3].frame_ms: must be a finite number >= 0, got -1"
    );
    let mut v = sample();
    v["seconds"][5]["t"] = json!(2);
    assert!(parse(&v)
        .unwrap_err()
        .starts_with("seconds[5].t: 2 is not after"));
    let mut v = sample();
    v["decisions"][2]["t"] = json!(0.5);
    assert!(parse(&v)
        .unwrap_err()
        .starts_with("decisions[2].t: 0.5 is before"));
    let mut v = sample();
    v["seconds"] = json!([]);
    assert!(parse(&v).unwrap_err().starts_with("seconds: has no rows"));
    let mut v = sample();
    v.as_object_mut().unwrap().remove("limits");
    assert!(parse(&v).unwrap_err().contains("missing field `limits`"));
    let bad = BenchSummary::parse(
        r#"{"format": "npc-sync-bench-summary/1", "frame_cost": [{"runtime": "x", "queue": "hand", "npcs": 1, "ms": -3, "share": 0}]}"#,
    );
    assert_eq!(
        bad.unwrap_err().to_string(),
        "frame_cost[0].ms: must be a finite number >= 0, got -3"
    );
}

#[test]
fn a_timeline_written_by_to_json_reads_back_the_same_and_bad_ones_are_not_written() {
    let t = parse(&sample()).unwrap();
    let text = t.to_json().unwrap();
    let back = Timeline::parse(&text).unwrap();
    assert_eq!(back.seconds.len(), 120);
    assert_eq!(back.decisions[2].staleness_s, 1.5);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        serde_json::from_str::<Value>(&back.to_json().unwrap()).unwrap()
    );
    let mut bad = back;
    bad.seconds[7].calls = f64::NAN;
    assert_eq!(
        bad.to_json().unwrap_err().to_string(),
        "seconds[7].calls: must be a finite number >= 0, got NaN"
    );
}
