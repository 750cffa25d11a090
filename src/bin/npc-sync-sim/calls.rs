//! `--calls FILE`: the game's calls to the queue, frame by frame, as JSON lines, so the same
//! scenario can drive another runtime (the Luau bridge, `pkg/node`) end to end
//! (`e2e/`, issue 10). The world notes each call as it makes it; nothing here decides
//! anything.
//!
//! One line per call: `{"f": FRAME, "op": OP, ...}`, frames at 60 a second, in call order.
//! Every change carries `seq`, the sequence number this run's queue gave it, so that a
//! dependency (`after`) can name the change it waits for.
//!
//! | op | fields |
//! |---|---|
//! | `location`, `state` | `agent`, `value` (string), `seq` |
//! | `health` | `agent`, `value` (number), `seq` |
//! | `set` | `agent`, `block`, `field`, `value`, `priority` (`normal`/`high`/...), `after` (seq or null), `seq` |
//! | `tool` | `agent`, `block`, `field`, `value`, `critical`, `seq` |
//! | `join`, `leave` | `agent`, `member`, `seq` |
//! | `atomic` | `changes`: `[{agent, block, field, value, priority, seq}]` |
//! | `chat` | `agent`, `sender`, `text` |
//! | `decide` | `agent` |
//!
//! A value is a JSON number, string, boolean, or `null` for a cleared field.

use npc_sync::{Priority, Value};
use std::fmt::Write;

/// One change of an atomic group.
pub struct GroupChange {
    pub agent: String,
    pub block: String,
    pub field: String,
    pub value: Value,
    pub priority: Priority,
    pub seq: u64,
}

/// One call the game made to the queue.
pub enum GameCall {
    Location {
        agent: String,
        value: String,
        seq: u64,
    },
    State {
        agent: String,
        value: String,
        seq: u64,
    },
    Health {
        agent: String,
        value: f64,
        seq: u64,
    },
    Set {
        agent: String,
        block: String,
        field: String,
        value: Value,
        priority: Priority,
        after: Option<u64>,
        seq: u64,
    },
    Tool {
        agent: String,
        block: String,
        field: String,
        value: Value,
        critical: bool,
        seq: u64,
    },
    Join {
        agent: String,
        member: String,
        seq: u64,
    },
    Leave {
        agent: String,
        member: String,
        seq: u64,
    },
    Atomic {
        changes: Vec<GroupChange>,
    },
    Chat {
        agent: String,
        sender: String,
        text: String,
    },
    Decide {
        agent: String,
    },
}

/// The calls of a run, with the frame each was made in.
#[derive(Default)]
pub struct CallLog {
    calls: Vec<(u64, GameCall)>,
}

impl CallLog {
    /// Notes `call`, made at `now` seconds.
    pub fn note(&mut self, now: f64, call: GameCall) {
        let frame = (now * crate::FPS).round() as u64;
        self.calls.push((frame, call));
    }

    /// The JSON lines (see the module doc).
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for (frame, call) in &self.calls {
            let _ = write!(out, "{{\"f\":{frame},");
            write_call(&mut out, call);
            out.push_str("}\n");
        }
        out
    }
}

fn write_call(o: &mut String, call: &GameCall) {
    match call {
        GameCall::Location { agent, value, seq } => {
            one_text(o, "location", agent, "value", value, *seq)
        }
        GameCall::State { agent, value, seq } => one_text(o, "state", agent, "value", value, *seq),
        GameCall::Health { agent, value, seq } => {
            op(o, "health", agent);
            kv_num(o, "value", *value);
            kv_num(o, "seq", *seq as f64);
        }
        GameCall::Set {
            agent,
            block,
            field,
            value,
            priority,
            after,
            seq,
        } => {
            op(o, "set", agent);
            target(o, block, field, value);
            kv_str(o, "priority", priority_name(*priority));
            match after {
                Some(a) => kv_num(o, "after", *a as f64),
                None => o.push_str(",\"after\":null"),
            }
            kv_num(o, "seq", *seq as f64);
        }
        GameCall::Tool {
            agent,
            block,
            field,
            value,
            critical,
            seq,
        } => {
            op(o, "tool", agent);
            target(o, block, field, value);
            let _ = write!(o, ",\"critical\":{critical}");
            kv_num(o, "seq", *seq as f64);
        }
        GameCall::Join { agent, member, seq } => one_text(o, "join", agent, "member", member, *seq),
        GameCall::Leave { agent, member, seq } => {
            one_text(o, "leave", agent, "member", member, *seq)
        }
        GameCall::Atomic { changes } => {
            o.push_str("\"op\":\"atomic\",\"changes\":[");
            for (i, c) in changes.iter().enumerate() {
                if i > 0 {
                    o.push(',');
                }
                o.push('{');
                o.push_str("\"agent\":");
                json_str(o, &c.agent);
                target(o, &c.block, &c.field, &c.value);
                kv_str(o, "priority", priority_name(c.priority));
                kv_num(o, "seq", c.seq as f64);
                o.push('}');
            }
            o.push(']');
        }
        GameCall::Chat {
            agent,
            sender,
            text,
        } => {
            op(o, "chat", agent);
            kv_str(o, "sender", sender);
            kv_str(o, "text", text);
        }
        GameCall::Decide { agent } => op(o, "decide", agent),
    }
}

fn priority_name(p: Priority) -> &'static str {
    match p {
        Priority::Low => "low",
        Priority::Normal => "normal",
        Priority::High => "high",
        Priority::Critical => "critical",
    }
}

fn op(o: &mut String, name: &str, agent: &str) {
    let _ = write!(o, "\"op\":\"{name}\",\"agent\":");
    json_str(o, agent);
}

/// The calls that carry one text besides the agent (location, state, join, leave): the
/// op, that text under `key`, then the sequence number.
fn one_text(o: &mut String, name: &str, agent: &str, key: &str, value: &str, seq: u64) {
    op(o, name, agent);
    kv_str(o, key, value);
    kv_num(o, "seq", seq as f64);
}

/// The field a set, tool result or atomic member writes, and its value.
fn target(o: &mut String, block: &str, field: &str, value: &Value) {
    kv_str(o, "block", block);
    kv_str(o, "field", field);
    kv_value(o, "value", value);
}

fn kv_str(o: &mut String, k: &str, v: &str) {
    let _ = write!(o, ",\"{k}\":");
    json_str(o, v);
}

fn kv_num(o: &mut String, k: &str, v: f64) {
    // Rust's shortest round-trip form; every number here is finite.
    let _ = write!(o, ",\"{k}\":{v}");
}

fn kv_value(o: &mut String, k: &str, v: &Value) {
    match v {
        Value::Number(n) => kv_num(o, k, *n),
        Value::Str(s) => kv_str(o, k, s),
        Value::Bool(b) => {
            let _ = write!(o, ",\"{k}\":{b}");
        }
        Value::Cleared => {
            let _ = write!(o, ",\"{k}\":null");
        }
    }
}

fn json_str(o: &mut String, s: &str) {
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
}
