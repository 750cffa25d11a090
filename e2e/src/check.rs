//! The checks of one run, from what the game did ([`Scenario`]), what crossed the proxy
//! ([`Record`]s) and what the backend's Letta holds at the end.
//!
//! - `lost`: fields whose final value at Letta differs from the game's (Letta's block text
//!   parsed with `npc_sync::block_text`; an unreadable line counts too), plus chat messages
//!   never delivered.
//! - `stale_overwrites`: block writes at Letta that move a field back: the values each field
//!   takes at Letta, in arrival order, must follow the game's own order of values.
//! - `split_groups`: atomic groups whose changes did not first reach the wire together
//!   (batch: in one request, in the group's order; Letta: in the calls of one frame, since
//!   its API has one call per agent-block), or never did.
//! - `dependency_violations`: a change first sent neither after its dependency in the same
//!   request (Letta: the same frame) nor after the dependency was acknowledged.
//! - the budget: the most HTTP calls in any 60 s of simulated time.

use crate::budget::max_in_window;
use crate::proxy::Record;
use crate::scenario::{FieldKey, Scenario};
use npc_sync::{block_text, Value};
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The backend a run talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// bridge -> proxy -> the batch endpoint server -> Letta stand-in.
    Batch,
    /// bridge -> proxy -> Letta stand-in.
    Letta,
}

impl Target {
    /// `batch` or `letta`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Batch => "batch",
            Target::Letta => "letta",
        }
    }
}

/// What Letta (the stand-in) holds and received.
pub struct LettaView {
    /// (agent, label) -> block text, at the end.
    pub blocks: BTreeMap<(String, String), String>,
    /// Every block write it applied, in order: (agent, label, text).
    pub writes: Vec<(String, String, String)>,
    /// Chat messages delivered: (agent, text).
    pub messages: Vec<(String, String)>,
}

/// The verdict of one run.
#[derive(Debug, Default)]
pub struct Verdict {
    /// HTTP requests that reached the proxy (retries included).
    pub requests: usize,
    /// See the module doc.
    pub lost: usize,
    /// See the module doc.
    pub stale_overwrites: usize,
    /// See the module doc.
    pub split_groups: usize,
    /// See the module doc.
    pub dependency_violations: usize,
    /// Most HTTP calls in any 60 s window.
    pub max_calls_per_minute: usize,
    /// The budget the run was configured with.
    pub budget: usize,
    /// `flushAll` finished within its time and the backend equals the game.
    pub converged: bool,
    /// Examples of what went wrong (a few per kind).
    pub details: Vec<String>,
}

impl Verdict {
    /// Whether every check holds.
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.stale_overwrites == 0
            && self.split_groups == 0
            && self.dependency_violations == 0
            && self.max_calls_per_minute <= self.budget
            && self.converged
    }
}

/// One field value seen on the wire.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    /// Index of the request among the proxy's records.
    pub record: usize,
    /// Frame (60 a second) the request reached the proxy in.
    pub frame: u64,
    /// Position in the field's history: the newest change with this value made by then.
    pub index: usize,
    /// Position in the request body.
    pub pos: usize,
    /// The client got a 2xx answer.
    pub acked: bool,
    /// The backend answered 2xx (it holds the value, whether or not the client heard).
    pub applied: bool,
}

/// The frame (60 a second) of a simulated time.
pub fn frame_of(t: f64) -> u64 {
    (t * 60.0).round().max(0.0) as u64
}

/// The (agent, block) a Letta block path names.
fn block_path(path: &str) -> Option<(String, String)> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["v1", "agents", agent, "core-memory", "blocks", label] => {
            Some((agent.to_string(), label.to_string()))
        }
        _ => None,
    }
}

/// A block's fields by name, and how many lines could not be read.
fn read_block(text: &str) -> (BTreeMap<String, Value>, usize) {
    let p = block_text::parse(text);
    (p.fields.into_iter().collect(), p.errors.len())
}

/// The field values a request carries, in body order.
fn carried(sc: &Scenario, target: Target, r: &Record) -> Vec<(FieldKey, Value)> {
    match target {
        Target::Batch => {
            let Ok(body) = serde_json::from_str::<Json>(&r.body) else {
                return Vec::new();
            };
            let Some(changes) = body["changes"].as_array() else {
                return Vec::new();
            };
            changes
                .iter()
                .filter_map(|c| {
                    let key = (
                        c["agent_id"].as_str()?.to_string(),
                        c["block"].as_str()?.to_string(),
                        c["field"].as_str()?.to_string(),
                    );
                    let v =
                        crate::scenario::value_of(c.get("value").unwrap_or(&Json::Null)).ok()?;
                    Some((key, v))
                })
                .collect()
        }
        Target::Letta => {
            if r.method != "PATCH" {
                return Vec::new();
            }
            let Some((agent, block)) = block_path(&r.path) else {
                return Vec::new();
            };
            let Ok(body) = serde_json::from_str::<Json>(&r.body) else {
                return Vec::new();
            };
            let (fields, _) = read_block(body["value"].as_str().unwrap_or(""));
            // every field of the block the game knows: absent means cleared
            let lo = (agent.clone(), block.clone(), String::new());
            let mut out: Vec<(FieldKey, Value)> = sc
                .history
                .range(lo..)
                .take_while(|(k, _)| k.0 == agent && k.1 == block)
                .map(|(k, _)| {
                    (
                        k.clone(),
                        fields.get(&k.2).cloned().unwrap_or(Value::Cleared),
                    )
                })
                .collect();
            for (name, v) in fields {
                let key = (agent.clone(), block.clone(), name);
                if !sc.history.contains_key(&key) {
                    out.push((key, v));
                }
            }
            out
        }
    }
}

/// Every field value the requests carried, per field in arrival order, placed in the
/// field's history (values the game never set are left out).
pub fn deliveries(
    sc: &Scenario,
    target: Target,
    records: &[Record],
) -> HashMap<FieldKey, Vec<Seen>> {
    let ok = |s: Option<u16>| s.is_some_and(|s| (200..300).contains(&s));
    let mut seen: HashMap<FieldKey, Vec<Seen>> = HashMap::new();
    for (ri, r) in records.iter().enumerate() {
        let frame = frame_of(r.time);
        for (pos, (key, val)) in carried(sc, target, r).into_iter().enumerate() {
            let Some(h) = sc.history.get(&key) else {
                continue;
            };
            // the newest change with this value made by then (frames ascend in a history)
            let made = h.partition_point(|(f, _)| *f <= frame);
            if let Some(index) = (0..made).rev().find(|i| h[*i].1 == val) {
                seen.entry(key).or_default().push(Seen {
                    record: ri,
                    frame,
                    index,
                    pos,
                    acked: ok(r.client_status),
                    applied: ok(r.upstream_status),
                });
            }
        }
    }
    seen
}

/// Runs every check.
pub fn check(
    sc: &Scenario,
    target: Target,
    records: &[Record],
    letta: &LettaView,
    flushed: bool,
    budget: usize,
) -> Verdict {
    let mut v = Verdict {
        requests: records.len(),
        budget,
        ..Verdict::default()
    };
    let note = |v: &mut Verdict, kind: &str, text: String| {
        if v.details.iter().filter(|d| d.starts_with(kind)).count() < 5 {
            v.details.push(format!("{kind}: {text}"));
        }
    };

    // ---- final state
    let mut pairs: BTreeSet<(String, String)> = sc
        .history
        .keys()
        .map(|(a, b, _)| (a.clone(), b.clone()))
        .collect();
    pairs.extend(
        letta
            .blocks
            .keys()
            .filter(|(a, _)| sc.agents.contains(a))
            .cloned(),
    );
    for (agent, block) in &pairs {
        let text = letta
            .blocks
            .get(&(agent.clone(), block.clone()))
            .map(String::as_str)
            .unwrap_or("");
        let (fields, errors) = read_block(text);
        if errors > 0 {
            v.lost += errors;
            note(
                &mut v,
                "lost",
                format!("{agent}/{block}: {errors} unreadable line(s) in {text:?}"),
            );
        }
        let lo = (agent.clone(), block.clone(), String::new());
        let known: Vec<(&FieldKey, &Value)> = sc
            .history
            .range(lo..)
            .take_while(|(k, _)| &k.0 == agent && &k.1 == block)
            .map(|(k, h)| (k, &h.last().unwrap().1))
            .collect();
        for (k, truth) in &known {
            let got = fields.get(&k.2).unwrap_or(&Value::Cleared);
            if got != *truth {
                v.lost += 1;
                note(
                    &mut v,
                    "lost",
                    format!("{k:?}: game {truth:?}, backend {got:?}"),
                );
            }
        }
        for name in fields.keys() {
            if !known.iter().any(|(k, _)| &k.2 == name) {
                v.lost += 1;
                note(
                    &mut v,
                    "lost",
                    format!("{agent}/{block}.{name}: never set by the game"),
                );
            }
        }
    }
    let delivered: BTreeSet<&(String, String)> = letta.messages.iter().collect();
    for m in &sc.chat {
        if !delivered.contains(m) {
            v.lost += 1;
            note(
                &mut v,
                "lost",
                format!("chat to {} never delivered: {:?}", m.0, m.1),
            );
        }
    }

    // ---- stale overwrites at Letta
    let mut pos: HashMap<FieldKey, usize> = HashMap::new();
    for (agent, block, text) in &letta.writes {
        let (fields, _) = read_block(text);
        let lo = (agent.clone(), block.clone(), String::new());
        for (k, h) in sc
            .history
            .range(lo..)
            .take_while(|(k, _)| &k.0 == agent && &k.1 == block)
        {
            let now = fields.get(&k.2).unwrap_or(&Value::Cleared);
            let p = pos.entry(k.clone()).or_insert(0);
            match (*p..h.len()).find(|i| &h[*i].1 == now) {
                Some(i) => *p = i,
                None => {
                    v.stale_overwrites += 1;
                    note(
                        &mut v,
                        "stale",
                        format!("{k:?} went back to {now:?} (or never had it)"),
                    );
                }
            }
        }
    }

    // ---- what reached the wire first: groups and dependencies
    let seen = deliveries(sc, target, records);
    let first = |key: &FieldKey, index: usize| -> Option<Seen> {
        seen.get(key)?.iter().find(|s| s.index >= index).copied()
    };
    for g in &sc.groups {
        let firsts: Vec<Option<Seen>> = g.changes.iter().map(|c| first(&c.key, c.index)).collect();
        let whole = firsts.iter().all(Option::is_some) && {
            let f: Vec<Seen> = firsts.iter().map(|s| s.unwrap()).collect();
            match target {
                Target::Batch => {
                    f.iter().all(|s| s.record == f[0].record)
                        && f.windows(2).all(|w| w[0].pos < w[1].pos)
                }
                Target::Letta => f.iter().all(|s| s.frame == f[0].frame),
            }
        };
        if !whole {
            v.split_groups += 1;
            note(
                &mut v,
                "split",
                format!(
                    "group of frame {} ({:?})",
                    g.frame,
                    g.changes.iter().map(|c| &c.key.2).collect::<Vec<_>>()
                ),
            );
        }
    }
    for d in &sc.dependencies {
        let Some(sd) = first(&d.dependent.key, d.dependent.index) else {
            continue; // never sent: counted as lost
        };
        let ok = seen.get(&d.dependency.key).is_some_and(|list| {
            list.iter()
                .filter(|s| s.index >= d.dependency.index)
                .any(|s| match target {
                    Target::Batch => {
                        (s.record == sd.record && s.pos < sd.pos) || (s.acked && s.frame < sd.frame)
                    }
                    Target::Letta => s.frame == sd.frame || (s.acked && s.frame < sd.frame),
                })
        });
        if !ok {
            v.dependency_violations += 1;
            note(
                &mut v,
                "dependency",
                format!(
                    "{:?} sent at frame {} before {:?}",
                    d.dependent.key, sd.frame, d.dependency.key
                ),
            );
        }
    }

    // ---- budget
    let mut times: Vec<f64> = records.iter().map(|r| r.time).collect();
    times.sort_by(f64::total_cmp);
    v.max_calls_per_minute = max_in_window(&times, 60.0);
    v.converged = flushed && v.lost == 0;
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Fault;

    const CALLS: &str = r#"{"f":0,"op":"location","agent":"a","value":"gate","seq":1}
{"f":60,"op":"atomic","changes":[{"agent":"a","block":"status","field":"location","value":"forge","priority":"high","seq":2},{"agent":"a","block":"status","field":"state","value":"Working","priority":"high","seq":3},{"agent":"a","block":"group_members","field":"b.is_present","value":true,"priority":"high","seq":4}]}
{"f":60,"op":"set","agent":"a","block":"inventory","field":"last_tool","value":"x","priority":"high","after":3,"seq":5}
{"f":61,"op":"chat","agent":"a","sender":"p","text":"hi"}
"#;

    fn rec(order: u64, time: f64, body: serde_json::Value, status: u16) -> Record {
        Record {
            order,
            time,
            method: "POST".into(),
            path: "/v1/batch".into(),
            body: body.to_string(),
            fault: Fault::Pass,
            upstream_status: Some(status),
            client_status: Some(status),
        }
    }

    fn change(block: &str, field: &str, value: serde_json::Value, seq: u64) -> serde_json::Value {
        serde_json::json!({"agent_id": "a", "block": block, "field": field, "value": value, "seq": seq})
    }

    fn full_letta() -> LettaView {
        let mut blocks = BTreeMap::new();
        let status = "location: \"forge\"\nstate: \"Working\"";
        blocks.insert(("a".into(), "status".into()), status.into());
        blocks.insert(
            ("a".into(), "group_members".into()),
            "b.is_present: true".into(),
        );
        blocks.insert(("a".into(), "inventory".into()), "last_tool: \"x\"".into());
        LettaView {
            writes: vec![
                ("a".into(), "status".into(), "location: \"gate\"".into()),
                ("a".into(), "status".into(), status.into()),
            ],
            blocks,
            messages: vec![("a".into(), "hi".into())],
        }
    }

    #[test]
    fn a_clean_run_passes() {
        let sc = Scenario::parse(CALLS).unwrap();
        let records = vec![
            rec(
                0,
                0.5,
                serde_json::json!({"changes": [change("status", "location", "gate".into(), 1)]}),
                200,
            ),
            rec(
                1,
                1.5,
                serde_json::json!({"changes": [
                    change("status", "location", "forge".into(), 2),
                    change("status", "state", "Working".into(), 3),
                    change("group_members", "b.is_present", true.into(), 4),
                    change("inventory", "last_tool", "x".into(), 5),
                ]}),
                200,
            ),
        ];
        let v = check(&sc, Target::Batch, &records, &full_letta(), true, 400);
        assert!(v.passed(), "{v:?}");
        assert_eq!(v.requests, 2);
    }

    #[test]
    fn each_failure_is_counted() {
        let sc = Scenario::parse(CALLS).unwrap();
        // the group split over two requests, its dependent sent before the state
        let records = vec![
            rec(
                0,
                1.5,
                serde_json::json!({"changes": [
                    change("status", "location", "forge".into(), 2),
                    change("inventory", "last_tool", "x".into(), 5),
                ]}),
                200,
            ),
            rec(
                1,
                1.5,
                serde_json::json!({"changes": [
                    change("status", "state", "Working".into(), 3),
                    change("group_members", "b.is_present", true.into(), 4),
                ]}),
                200,
            ),
        ];
        let mut letta = full_letta();
        // a write that moves location back to "gate", and a chat never delivered
        letta.writes.push((
            "a".into(),
            "status".into(),
            "location: \"gate\"\nstate: \"Working\"".into(),
        ));
        letta.blocks.insert(
            ("a".into(), "status".into()),
            "location: \"gate\"\nstate: \"Working\"".into(),
        );
        letta.messages.clear();
        let v = check(&sc, Target::Batch, &records, &letta, true, 400);
        assert_eq!(v.lost, 2, "{v:?}");
        assert_eq!(v.stale_overwrites, 1);
        assert_eq!(v.split_groups, 1);
        assert_eq!(v.dependency_violations, 1);
        assert!(!v.converged && !v.passed());
        // the budget: 3 calls in a minute over a budget of 2
        let v = check(
            &sc,
            Target::Batch,
            &[records[0].clone(), records[1].clone(), records[1].clone()],
            &full_letta(),
            true,
            2,
        );
        assert_eq!(v.max_calls_per_minute, 3);
        assert!(!v.passed());
    }

    #[test]
    fn unreadable_block_text_counts_as_lost() {
        let sc = Scenario::parse(CALLS).unwrap();
        let mut letta = full_letta();
        // unquoted strings (not the block format): neither line can be read
        letta.blocks.insert(
            ("a".into(), "status".into()),
            "location: forge\nstate: Working".into(),
        );
        let v = check(&sc, Target::Letta, &[], &letta, true, 400);
        assert_eq!(v.lost, 4, "{v:?}"); // 2 unreadable lines + 2 fields not at the backend
    }
}
