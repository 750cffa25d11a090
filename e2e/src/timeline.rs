//! The demo's input (`npc-sync-timeline/1`, `docs/demo-timeline.md`) from one end-to-end
//! run: what the game did (the [`Scenario`]: the naive request count), what the driver
//! measured ([`DriverTimeline`]: the queue's counters at the end of each second, the wall
//! time of each frame's calls plus `sync:step()`, every decide answer) and what crossed the
//! proxy (the HTTP calls, and what the backend held when each decision proceeded).
//!
//! Decisions: the scenario's `decide` calls are the simulator's NPCs deciding; an NPC
//! waiting for a sync asks again every frame, so a run of one agent's `decide` calls on
//! consecutive frames is one decision attempt. The attempt proceeds at its first answer
//! `fresh` (later asks of the same run are the simulator's, not this run's, and are not
//! counted); an attempt with no `fresh` answer is abandoned.

use crate::check::{self, frame_of, Target};
use crate::proxy::Record;
use crate::scenario::Scenario;
use npc_sync_demo::timeline::{DecisionPoint, Limits, Second, Timeline, FORMAT};
use serde::Deserialize;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap};

/// HttpService's limit on a game server's requests, drawn on the report.
pub const HTTP_PER_MINUTE: f64 = npc_sync::HTTP_SERVICE_LIMIT_PER_MINUTE as f64;
const FPS: f64 = 60.0;

/// What the Luau driver reports in timeline mode (`luau/driver.luau`).
#[derive(Debug, Deserialize)]
pub struct DriverTimeline {
    /// One sample at the end of every second of play (the last one may close a partial
    /// second).
    pub seconds: Vec<DriverSecond>,
    /// Every `decide` call's answer, in call order.
    pub decisions: Vec<DecideAnswer>,
    /// `sync:stats()` after `flushAll`.
    pub stats: Map<String, Json>,
}

/// The queue's counters at the end of one second, and that second's frame cost.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriverSecond {
    /// The second (0, 1, ...).
    pub t: f64,
    /// Requests emitted so far (batch + urgent + inference).
    pub requests: f64,
    /// Fields waiting to be sent.
    pub queue_depth: f64,
    /// Requests in flight.
    pub in_flight: f64,
    /// Mean wall-clock ms of the second's frames (the calls plus `sync:step()`).
    pub frame_ms: f64,
    /// The slowest of them.
    pub frame_ms_max: f64,
    /// Of `frame_ms`, the mean wall-clock ms of `sync:step()`.
    pub step_ms: f64,
}

/// One `decide` answer.
#[derive(Debug, Deserialize)]
pub struct DecideAnswer {
    /// The frame of the call.
    pub f: u64,
    /// The agent.
    pub agent: String,
    /// `decide(...).fresh`.
    pub fresh: bool,
    /// A fresh answer given in combat (the queue's own count of decisions in combat,
    /// `stats().stalenessCombatCount`, went up); false for a syncing answer.
    pub combat: bool,
}

/// What the run was, for the report's "Run" table.
pub struct RunInfo {
    /// Shown as given.
    pub run: Map<String, Json>,
    /// The checks' verdict and the run's other counters, for the summary.
    pub summary: Map<String, Json>,
}

/// Requests the naive integration sends for one call: one per change, one per message.
fn naive_of(call: &Json) -> f64 {
    match call["op"].as_str() {
        Some("decide") | None => 0.0,
        Some("atomic") => call["changes"].as_array().map_or(0, Vec::len) as f64,
        Some(_) => 1.0,
    }
}

/// The backend's view of each field: (frame of arrival, newest history index held from
/// then on), frames ascending, from the requests the backend applied.
fn held_by_field(
    sc: &Scenario,
    target: Target,
    records: &[Record],
) -> HashMap<crate::scenario::FieldKey, Vec<(u64, usize)>> {
    let mut out = HashMap::new();
    for (key, seen) in check::deliveries(sc, target, records) {
        let mut list: Vec<(u64, usize)> = seen
            .iter()
            .filter(|s| s.applied)
            .map(|s| (s.frame, s.index))
            .collect();
        list.sort_unstable();
        // a field never moves back at the backend (sequence numbers): keep the running max
        let mut best = 0;
        for e in &mut list {
            best = best.max(e.1);
            e.1 = best;
        }
        out.insert(key, list);
    }
    out
}

/// Age in seconds of the agent's oldest change the backend did not hold at `frame`
/// (requests that arrived in earlier frames were answered before it), judged from the
/// backend's side only; 0 when it held everything. A change is held when the backend holds
/// it or a later one, or holds a later change's equal value.
fn staleness(
    sc: &Scenario,
    held: &HashMap<crate::scenario::FieldKey, Vec<(u64, usize)>>,
    agent: &str,
    frame: u64,
) -> f64 {
    let lo = (agent.to_string(), String::new(), String::new());
    let mut oldest: Option<u64> = None;
    for (key, h) in sc.history.range(lo..).take_while(|(k, _)| k.0 == agent) {
        let made = h.partition_point(|(f, _)| *f <= frame);
        let at = held.get(key).map_or(0, |list| {
            let n = list.partition_point(|(f, _)| *f < frame);
            if n == 0 {
                0
            } else {
                list[n - 1].1
            }
        });
        if at + 1 >= made {
            continue;
        }
        let value = &h[at].1;
        let had = (at..made).rev().find(|i| h[*i].1 == *value).unwrap_or(at);
        if had + 1 < made {
            let first = h[had + 1].0;
            oldest = Some(oldest.map_or(first, |o| o.min(first)));
        }
    }
    oldest.map_or(0.0, |o| frame.saturating_sub(o) as f64 / FPS)
}

/// The decisions that proceeded, and how many attempts were abandoned.
fn decisions(
    sc: &Scenario,
    target: Target,
    records: &[Record],
    answers: &[DecideAnswer],
    cfg: &npc_sync::Config,
) -> (Vec<DecisionPoint>, u64) {
    let held = held_by_field(sc, target, records);
    let mut out = Vec::new();
    // per agent: (frame of its last ask, whether that attempt proceeded)
    let mut last: HashMap<&str, (u64, bool)> = HashMap::new();
    let mut abandoned = 0;
    for a in answers {
        let proceeded = match last.get(a.agent.as_str()) {
            Some((f, done)) if a.f == f + 1 => *done,
            Some((_, done)) => {
                abandoned += u64::from(!done);
                false
            }
            None => false,
        };
        let mut done = proceeded;
        if a.fresh && !proceeded {
            done = true;
            out.push(DecisionPoint {
                t: a.f as f64 / FPS,
                agent: a.agent.clone(),
                staleness_s: staleness(sc, &held, &a.agent, a.f),
                threshold_s: if a.combat {
                    cfg.combat_freshness_s
                } else {
                    cfg.freshness_s
                },
                combat: a.combat,
            });
        }
        last.insert(&a.agent, (a.f, done));
    }
    abandoned += last.values().filter(|(_, done)| !done).count() as u64;
    (out, abandoned)
}

/// Builds the timeline of a run. `calls` come from the proxy (what reached the wire, when);
/// the last row of `driver.seconds` also takes what was emitted and sent after it, while
/// `flushAll` ran at shutdown.
pub fn build(
    sc: &Scenario,
    target: Target,
    records: &[Record],
    driver: &DriverTimeline,
    info: RunInfo,
) -> Result<Timeline, String> {
    let cfg = npc_sync::Config::default();
    let rows = &driver.seconds;
    let Some(last) = rows.last() else {
        return Err("the driver reported no second of play".into());
    };
    let index_of = |t: f64| -> usize {
        let i = rows.partition_point(|r| r.t <= t.floor()).max(1) - 1;
        i.min(rows.len() - 1)
    };
    let mut naive = vec![0.0; rows.len()];
    for c in &sc.calls {
        let f = c["f"].as_u64().unwrap_or(0);
        naive[index_of(f as f64 / FPS)] += naive_of(c);
    }
    let mut calls = vec![0.0; rows.len()];
    for r in records {
        calls[index_of(frame_of(r.time) as f64 / FPS)] += 1.0;
    }
    let stat = |k: &str| driver.stats.get(k).and_then(Json::as_f64);
    let emitted_total = ["requestsBatch", "requestsUrgent", "requestsInference"]
        .iter()
        .map(|k| stat(k).unwrap_or(0.0))
        .sum::<f64>()
        .max(last.requests);
    let mut seconds = Vec::with_capacity(rows.len());
    let mut before = 0.0;
    for (i, r) in rows.iter().enumerate() {
        let upto = if i + 1 == rows.len() {
            emitted_total
        } else {
            r.requests
        };
        seconds.push(Second {
            t: r.t,
            naive: naive[i],
            requests: upto - before,
            calls: calls[i],
            queue_depth: r.queue_depth,
            in_flight: r.in_flight,
            frame_ms: r.frame_ms,
            frame_ms_max: r.frame_ms_max,
            step_ms: Some(r.step_ms),
        });
        before = upto;
    }
    let (decisions, abandoned) = decisions(sc, target, records, &driver.decisions, &cfg);
    let mut summary = info.summary;
    summary.insert("decisions_abandoned".into(), abandoned.into());
    for (key, stat_name) in [
        ("critical_latency_p50_s", "criticalLatencyP50"),
        ("critical_latency_p99_s", "criticalLatencyP99"),
    ] {
        if let Some(v) = stat(stat_name) {
            summary.insert(key.into(), v.into());
        }
    }
    let t = Timeline {
        format: FORMAT.into(),
        run: info.run,
        limits: Limits {
            http_per_minute: HTTP_PER_MINUTE,
            budget_per_minute: f64::from(cfg.budget_per_minute),
            freshness_s: cfg.freshness_s,
            combat_freshness_s: cfg.combat_freshness_s,
        },
        seconds,
        decisions,
        summary,
    };
    // the same checks the report makes when it reads the file
    t.to_json().map_err(|e| format!("timeline: {e}"))?;
    Ok(t)
}

/// `summary` keys from the checks' verdict.
pub fn verdict_summary(v: &check::Verdict, flush_seconds: f64) -> Map<String, Json> {
    let mut m = BTreeMap::new();
    m.insert("lost", Json::from(v.lost));
    m.insert("stale_overwrites", v.stale_overwrites.into());
    m.insert("split_groups", v.split_groups.into());
    m.insert("dependency_violations", v.dependency_violations.into());
    m.insert("converged", v.converged.into());
    m.insert("http_requests_at_proxy", v.requests.into());
    m.insert("max_calls_per_minute", v.max_calls_per_minute.into());
    m.insert("budget_per_minute", v.budget.into());
    if flush_seconds.is_finite() {
        m.insert("flush_all_s", flush_seconds.into());
    }
    m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Fault;

    // agent a: location set at frames 0 and 120; a decides at frames 60 (asks twice: 60,
    // 61), 180 and 300 (never fresh)
    const CALLS: &str = r#"{"f":0,"op":"location","agent":"a","value":"gate","seq":1}
{"f":0,"op":"atomic","changes":[{"agent":"a","block":"status","field":"state","value":"Idle","priority":"high","seq":2},{"agent":"a","block":"status","field":"mood","value":"calm","priority":"high","seq":3}]}
{"f":60,"op":"decide","agent":"a"}
{"f":61,"op":"decide","agent":"a"}
{"f":120,"op":"location","agent":"a","value":"forge","seq":4}
{"f":130,"op":"chat","agent":"a","sender":"p","text":"hi"}
{"f":180,"op":"decide","agent":"a"}
{"f":300,"op":"decide","agent":"a"}
"#;

    fn batch(time: f64, changes: serde_json::Value, upstream: u16) -> Record {
        Record {
            order: 0,
            time,
            method: "POST".into(),
            path: "/v1/batch".into(),
            body: serde_json::json!({"changes": changes}).to_string(),
            fault: Fault::Pass,
            upstream_status: Some(upstream),
            client_status: Some(upstream),
        }
    }

    fn change(field: &str, value: &str) -> serde_json::Value {
        serde_json::json!({"agent_id": "a", "block": "status", "field": field, "value": value, "seq": 1})
    }

    fn answer(f: u64, fresh: bool) -> DecideAnswer {
        DecideAnswer {
            f,
            agent: "a".into(),
            fresh,
            combat: false,
        }
    }

    fn second(t: f64, requests: f64) -> DriverSecond {
        DriverSecond {
            t,
            requests,
            queue_depth: 2.0,
            in_flight: 0.0,
            frame_ms: 0.5,
            frame_ms_max: 1.0,
            step_ms: 0.25,
        }
    }

    #[test]
    fn staleness_is_judged_from_what_the_backend_applied() {
        let sc = Scenario::parse(CALLS).unwrap();
        // frame 30: the three fields applied; frame 150: "forge" sent but refused (503)
        let records = vec![
            batch(
                0.5,
                serde_json::json!([
                    change("location", "gate"),
                    change("state", "Idle"),
                    change("mood", "calm")
                ]),
                200,
            ),
            batch(2.5, serde_json::json!([change("location", "forge")]), 503),
        ];
        let answers = vec![
            answer(60, false),
            answer(61, true),
            answer(180, true),
            answer(300, false),
        ];
        let cfg = npc_sync::Config::default();
        let (d, abandoned) = decisions(&sc, Target::Batch, &records, &answers, &cfg);
        assert_eq!(d.len(), 2, "{d:?}");
        // the first attempt proceeds at its second ask, with everything held
        assert_eq!(d[0].t, 61.0 / 60.0);
        assert_eq!(d[0].staleness_s, 0.0);
        // at frame 180 the backend still lacks the location set at frame 120
        assert_eq!(d[1].staleness_s, 1.0);
        assert!(!d[1].combat);
        assert_eq!(d[1].threshold_s, cfg.freshness_s);
        // the ask at 300 never got a fresh answer
        assert_eq!(abandoned, 1);
        // before anything arrived, the changes of frame 0 were waiting
        let held = held_by_field(&sc, Target::Batch, &records);
        assert_eq!(staleness(&sc, &held, "a", 30), 0.5);
        // a request counts from the frame after it arrived
        assert_eq!(staleness(&sc, &held, "a", 31), 0.0);
    }

    #[test]
    fn a_value_set_back_to_what_the_backend_holds_is_not_stale() {
        let calls = r#"{"f":0,"op":"location","agent":"a","value":"gate","seq":1}
{"f":10,"op":"location","agent":"a","value":"moat","seq":2}
{"f":20,"op":"location","agent":"a","value":"gate","seq":3}
"#;
        let sc = Scenario::parse(calls).unwrap();
        let records = vec![batch(
            0.0,
            serde_json::json!([change("location", "gate")]),
            200,
        )];
        let held = held_by_field(&sc, Target::Batch, &records);
        assert_eq!(staleness(&sc, &held, "a", 15), 5.0 / 60.0);
        assert_eq!(staleness(&sc, &held, "a", 25), 0.0);
    }

    #[test]
    fn rows_count_naive_requests_calls_and_the_shutdown() {
        let sc = Scenario::parse(CALLS).unwrap();
        let records = vec![
            batch(0.5, serde_json::json!([change("location", "gate")]), 200),
            batch(2.5, serde_json::json!([change("location", "forge")]), 200),
            // during flushAll, after the last second of play
            batch(5.5, serde_json::json!([change("location", "forge")]), 200),
        ];
        let mut stats = Map::new();
        stats.insert("requestsBatch".into(), 2.into());
        stats.insert("requestsUrgent".into(), 1.into());
        stats.insert("requestsInference".into(), 0.into());
        stats.insert("criticalLatencyP50".into(), 0.25.into());
        let driver = DriverTimeline {
            seconds: (0..5)
                .map(|t| second(t as f64, if t < 2 { 1.0 } else { 2.0 }))
                .collect(),
            decisions: vec![answer(60, true)],
            stats,
        };
        let t = build(
            &sc,
            Target::Batch,
            &records,
            &driver,
            RunInfo {
                run: Map::new(),
                summary: Map::new(),
            },
        )
        .unwrap();
        let naive: Vec<f64> = t.seconds.iter().map(|s| s.naive).collect();
        // location + 2 atomic changes in second 0; location, chat in second 2
        assert_eq!(naive, vec![3.0, 0.0, 2.0, 0.0, 0.0]);
        let calls: Vec<f64> = t.seconds.iter().map(|s| s.calls).collect();
        assert_eq!(calls, vec![1.0, 0.0, 1.0, 0.0, 1.0]);
        let requests: Vec<f64> = t.seconds.iter().map(|s| s.requests).collect();
        // the last row takes the request emitted during flushAll
        assert_eq!(requests, vec![1.0, 0.0, 1.0, 0.0, 1.0]);
        assert_eq!(t.num("critical_latency_p50_s"), Some(0.25));
        assert_eq!(t.num("critical_latency_p99_s"), None);
        assert_eq!(t.limits.http_per_minute, 500.0);
        assert_eq!(t.decisions.len(), 1);
    }

    #[test]
    fn no_second_of_play_is_refused() {
        let sc = Scenario::parse(CALLS).unwrap();
        let driver = DriverTimeline {
            seconds: Vec::new(),
            decisions: Vec::new(),
            stats: Map::new(),
        };
        let info = RunInfo {
            run: Map::new(),
            summary: Map::new(),
        };
        let e = build(&sc, Target::Batch, &[], &driver, info).unwrap_err();
        assert!(e.contains("no second"), "{e}");
    }
}
