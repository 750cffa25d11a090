//! A scenario as the game played it: the calls file `npc-sync-sim --calls` writes (format in
//! `src/bin/npc-sync-sim/calls.rs`), read into what the checks need: each field's history
//! of values, the final state, the atomic groups, the dependencies and the chat messages.

use npc_sync::Value;
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// (agent id, block, field)
pub type FieldKey = (String, String, String);

/// One field's values over the run: the frame each was set in, oldest first, starting
/// with (0, cleared) before the game set anything. A change to the value it already had
/// adds nothing (the backend cannot tell it apart, and the bridges skip it).
pub type History = Vec<(u64, Value)>;

/// A change at a place in its field's history.
#[derive(Clone, Debug, PartialEq)]
pub struct At {
    /// The field.
    pub key: FieldKey,
    /// Index into the field's history.
    pub index: usize,
}

/// An atomic group: its changes that changed something, in order.
#[derive(Clone, Debug)]
pub struct Group {
    /// Frame of the `atomic` call.
    pub frame: u64,
    /// The changes.
    pub changes: Vec<At>,
}

/// A change that must not be delivered before another.
#[derive(Clone, Debug)]
pub struct Dependency {
    /// The change that waits.
    pub dependent: At,
    /// The change it waits for.
    pub dependency: At,
}

/// What the game did.
#[derive(Default, Debug)]
pub struct Scenario {
    /// Every call, as written (`f` is the frame), in order.
    pub calls: Vec<Json>,
    /// The last frame with a call, plus one.
    pub frames: u64,
    /// Each field's history.
    pub history: BTreeMap<FieldKey, History>,
    /// The atomic groups.
    pub groups: Vec<Group>,
    /// The dependencies.
    pub dependencies: Vec<Dependency>,
    /// Chat messages sent: (agent, text).
    pub chat: Vec<(String, String)>,
    /// Agents, sorted.
    pub agents: Vec<String>,
    /// Blocks the game wrote, sorted.
    pub blocks: Vec<String>,
}

/// A JSON value of the calls file as a field value (`null`: cleared).
pub fn value_of(j: &Json) -> Result<Value, String> {
    Ok(match j {
        Json::Null => Value::Cleared,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Value::Number(n.as_f64().ok_or("number out of range")?),
        Json::String(s) => Value::Str(s.clone()),
        other => return Err(format!("not a field value: {other}")),
    })
}

impl Scenario {
    /// Reads a calls file's text.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let mut sc = Scenario::default();
        // native seq -> where that change sits
        let mut by_seq: BTreeMap<u64, At> = BTreeMap::new();
        let mut agents = std::collections::BTreeSet::new();
        let mut blocks = std::collections::BTreeSet::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at_line = |e: String| format!("calls line {}: {e}", n + 1);
            let c: Json = serde_json::from_str(line).map_err(|e| at_line(e.to_string()))?;
            let frame = c["f"]
                .as_u64()
                .ok_or_else(|| at_line("no frame `f`".into()))?;
            sc.frames = sc.frames.max(frame + 1);
            let s = |k: &str| -> Result<String, String> {
                c[k].as_str()
                    .map(str::to_string)
                    .ok_or_else(|| at_line(format!("`{k}` must be a string")))
            };
            let seq = c["seq"].as_u64();
            let op = s("op")?;
            if op != "atomic" {
                agents.insert(s("agent")?);
            }
            let mut set = |sc: &mut Scenario, key: FieldKey, v: Value| -> Option<At> {
                blocks.insert(key.1.clone());
                let h = sc
                    .history
                    .entry(key.clone())
                    .or_insert_with(|| vec![(0, Value::Cleared)]);
                if h.last().map(|(_, last)| last) == Some(&v) {
                    return None;
                }
                h.push((frame, v));
                Some(At {
                    index: h.len() - 1,
                    key,
                })
            };
            let status = |f: &str| -> Result<FieldKey, String> {
                Ok((s("agent")?, "status".into(), f.into()))
            };
            let note =
                |by_seq: &mut BTreeMap<u64, At>, at: Option<At>, key: FieldKey, sc: &Scenario| {
                    if let Some(seq) = seq {
                        let at = at.unwrap_or_else(|| At {
                            index: sc.history[&key].len() - 1,
                            key,
                        });
                        by_seq.insert(seq, at);
                    }
                };
            match op.as_str() {
                "location" | "state" => {
                    let key = status(&op)?;
                    let at = set(&mut sc, key.clone(), Value::Str(s("value")?));
                    note(&mut by_seq, at, key, &sc);
                }
                "health" => {
                    let key = status("health")?;
                    let v = value_of(&c["value"]).map_err(at_line)?;
                    let at = set(&mut sc, key.clone(), v);
                    note(&mut by_seq, at, key, &sc);
                }
                "set" | "tool" => {
                    let key = (s("agent")?, s("block")?, s("field")?);
                    let v = value_of(&c["value"]).map_err(at_line)?;
                    let at = set(&mut sc, key.clone(), v);
                    if let (Some(dep), Some(at)) = (c["after"].as_u64(), at.clone()) {
                        let dependency = by_seq.get(&dep).cloned().ok_or_else(|| {
                            at_line(format!("`after` {dep} names no earlier change"))
                        })?;
                        sc.dependencies.push(Dependency {
                            dependent: at,
                            dependency,
                        });
                    }
                    note(&mut by_seq, at, key, &sc);
                }
                "join" => {
                    let key = (
                        s("agent")?,
                        "group_members".into(),
                        format!("{}.is_present", s("member")?),
                    );
                    let at = set(&mut sc, key.clone(), Value::Bool(true));
                    note(&mut by_seq, at, key, &sc);
                }
                "leave" => {
                    let (agent, member) = (s("agent")?, s("member")?);
                    // every field of the member: everything before the last dot is the member
                    let keys: Vec<FieldKey> = sc
                        .history
                        .keys()
                        .filter(|(a, b, f)| {
                            *a == agent
                                && b == "group_members"
                                && f.rsplit_once('.').map(|(m, _)| m) == Some(member.as_str())
                        })
                        .cloned()
                        .collect();
                    for key in keys {
                        set(&mut sc, key, Value::Cleared);
                    }
                }
                "atomic" => {
                    let list = c["changes"]
                        .as_array()
                        .ok_or_else(|| at_line("`changes` must be a list".into()))?;
                    let mut changes = Vec::new();
                    for ch in list {
                        let g = |k: &str| {
                            ch[k].as_str().map(str::to_string).ok_or_else(|| {
                                at_line(format!("atomic change: `{k}` must be a string"))
                            })
                        };
                        let key = (g("agent")?, g("block")?, g("field")?);
                        agents.insert(key.0.clone());
                        let v = value_of(&ch["value"]).map_err(at_line)?;
                        let at = set(&mut sc, key.clone(), v);
                        if let Some(at) = &at {
                            changes.push(at.clone());
                        }
                        if let Some(seq) = ch["seq"].as_u64() {
                            let at = at.unwrap_or_else(|| At {
                                index: sc.history[&key].len() - 1,
                                key,
                            });
                            by_seq.insert(seq, at);
                        }
                    }
                    if !changes.is_empty() {
                        sc.groups.push(Group { frame, changes });
                    }
                }
                "chat" => sc.chat.push((s("agent")?, s("text")?)),
                "decide" => {}
                other => return Err(at_line(format!("unknown op `{other}`"))),
            }
            sc.calls.push(c);
        }
        sc.agents = agents.into_iter().collect();
        sc.blocks = blocks.into_iter().collect();
        Ok(sc)
    }

    /// The game's final value of every field it ever set (cleared ones included).
    pub fn truth(&self) -> BTreeMap<&FieldKey, &Value> {
        self.history
            .iter()
            .map(|(k, h)| (k, &h.last().expect("a history starts with cleared").1))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLS: &str = r#"{"f":0,"op":"location","agent":"a","value":"gate","seq":1}
{"f":1,"op":"atomic","changes":[{"agent":"a","block":"status","field":"location","value":"forge","priority":"high","seq":2},{"agent":"a","block":"status","field":"state","value":"Working","priority":"high","seq":3},{"agent":"a","block":"group_members","field":"b.is_present","value":true,"priority":"high","seq":4}]}
{"f":1,"op":"set","agent":"a","block":"inventory","field":"last_tool","value":"x","priority":"high","after":3,"seq":5}
{"f":2,"op":"location","agent":"a","value":"forge","seq":6}
{"f":3,"op":"leave","agent":"a","member":"b","seq":7}
{"f":4,"op":"chat","agent":"a","sender":"p","text":"hi"}
{"f":5,"op":"health","agent":"a","value":62,"seq":8}
"#;

    #[test]
    fn histories_groups_dependencies_truth() {
        let sc = Scenario::parse(CALLS).unwrap();
        let loc = (
            "a".to_string(),
            "status".to_string(),
            "location".to_string(),
        );
        // the repeated "forge" adds nothing
        assert_eq!(sc.history[&loc].len(), 3);
        assert_eq!(sc.groups.len(), 1);
        assert_eq!(sc.groups[0].changes.len(), 3);
        assert_eq!(sc.dependencies.len(), 1);
        assert_eq!(sc.dependencies[0].dependency.key.2, "state");
        let member = (
            "a".to_string(),
            "group_members".to_string(),
            "b.is_present".to_string(),
        );
        assert_eq!(sc.truth()[&member], &Value::Cleared);
        assert_eq!(sc.truth()[&loc], &Value::str("forge"));
        assert_eq!(sc.chat, vec![("a".to_string(), "hi".to_string())]);
        assert_eq!(sc.frames, 6);
        assert_eq!(sc.blocks, vec!["group_members", "inventory", "status"]);
    }

    #[test]
    fn bad_lines_are_named() {
        let e = Scenario::parse("{\"f\":0,\"op\":\"fly\",\"agent\":\"a\"}").unwrap_err();
        assert!(e.contains("line 1") && e.contains("fly"), "{e}");
        let e = Scenario::parse("{\"f\":0,\"op\":\"set\",\"agent\":\"a\",\"block\":\"s\",\"field\":\"x\",\"value\":1,\"after\":9}").unwrap_err();
        assert!(e.contains("`after` 9"), "{e}");
    }
}
