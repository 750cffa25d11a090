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
#[derive(Clone, Copy)]
struct Seen {
    record: usize,
    frame: u64,
    /// Position in the field's history.
    index: usize,
    /// Position in the request body.
    pos: usize,
    acked: bool,
}

fn frame_of(t: f64) -> u64 {
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
    let mut seen: HashMap<FieldKey, Vec<Seen>> = HashMap::new();
    for (ri, r) in records.iter().enumerate() {
        let frame = frame_of(r.time);
        let acked = r.client_status.is_some_and(|s| (200..300).contains(&s));
        for (pos, (key, val)) in carried(sc, target, r).into_iter().enumerate() {
            let Some(h) = sc.history.get(&key) else {
                continue;
            };
            // the newest change with this value made by then
            if let Some(index) = (0..h.len())
                .rev()
                .find(|i| h[*i].0 <= frame && h[*i].1 == val)
            {
                seen.entry(key).or_default().push(Seen {
                    record: ri,
                    frame,
                    index,
                    pos,
                    acked,
                });
            }
        }
    }
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
