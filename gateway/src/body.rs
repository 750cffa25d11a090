//! The batch endpoint's JSON body (README, "The batch endpoint's JSON body"), parsed and
//! fully validated before anything is applied.

use npc_sync::{block_text, Limits};
use serde::Deserialize;
use serde_json::Value as Json;

/// One field change of a batch.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// Letta agent id.
    pub agent_id: String,
    /// Block label.
    pub block: String,
    /// Field name inside the block.
    pub field: String,
    /// `null` (cleared), a string, a finite number or a boolean. A missing `value` is a
    /// cleared field too: Roblox's `HttpService:JSONEncode` cannot write `null`, so the Luau
    /// bridge leaves the key out.
    #[serde(default)]
    pub value: Json,
    /// The game's sequence number of this change; applied only when higher than stored.
    pub seq: u64,
    /// Atomic group id (informational: a request is applied in one transaction anyway).
    #[serde(default)]
    pub group: Option<u64>,
}

/// One chat message of an inference request.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// Who spoke (player name or id).
    pub sender: String,
    /// What they said.
    pub text: String,
}

/// The kind of a request (the core's `RequestKind`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Routine batch.
    Batch,
    /// Urgent (critical) changes.
    Urgent,
    /// Aggregated chat for one agent.
    Inference,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    request_id: u64,
    kind: Kind,
    #[serde(default)]
    changes: Option<Vec<Change>>,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    messages: Option<Vec<Message>>,
}

/// A validated request.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// Field changes (`batch` or `urgent`).
    Changes {
        /// The queue's request id.
        request_id: u64,
        /// The changes, in body order.
        changes: Vec<Change>,
    },
    /// Chat for one agent.
    Inference {
        /// The queue's request id.
        request_id: u64,
        /// The agent spoken to.
        agent_id: String,
        /// The messages, in order.
        messages: Vec<Message>,
    },
}

impl Body {
    /// The queue's request id.
    pub fn request_id(&self) -> u64 {
        match self {
            Body::Changes { request_id, .. } | Body::Inference { request_id, .. } => *request_id,
        }
    }
}

/// Most changes one request may carry (the core caps a request at 100 agent-blocks; a
/// block holds few fields).
pub const MAX_CHANGES: usize = 4096;
/// Most messages of one inference request.
pub const MAX_MESSAGES: usize = 64;

/// Parses and validates a body. The error says what is wrong, naming the change by index.
pub fn parse(bytes: &[u8]) -> Result<Body, String> {
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON body: {e}"))?;
    match raw.kind {
        Kind::Batch | Kind::Urgent => {
            if raw.agent_id.is_some() || raw.messages.is_some() {
                return Err(format!(
                    "a `{}` request carries `changes` only, not `agent_id` or `messages`",
                    kind_name(raw.kind)
                ));
            }
            let changes = raw
                .changes
                .ok_or_else(|| "missing field `changes`".to_string())?;
            if changes.len() > MAX_CHANGES {
                return Err(format!(
                    "`changes` has {} entries, more than {MAX_CHANGES}",
                    changes.len()
                ));
            }
            for (i, c) in changes.iter().enumerate() {
                check_change(c).map_err(|e| format!("changes[{i}]: {e}"))?;
            }
            Ok(Body::Changes {
                request_id: raw.request_id,
                changes,
            })
        }
        Kind::Inference => {
            if raw.changes.is_some() {
                return Err("an `inference` request carries no `changes`".to_string());
            }
            let agent_id = raw
                .agent_id
                .ok_or_else(|| "missing field `agent_id`".to_string())?;
            check_name("agent_id", &agent_id)?;
            let messages = raw
                .messages
                .ok_or_else(|| "missing field `messages`".to_string())?;
            if messages.is_empty() || messages.len() > MAX_MESSAGES {
                return Err(format!(
                    "`messages` must hold 1 to {MAX_MESSAGES} messages, has {}",
                    messages.len()
                ));
            }
            for (i, m) in messages.iter().enumerate() {
                check_name("sender", &m.sender).map_err(|e| format!("messages[{i}]: {e}"))?;
                if m.text.len() > Limits::CHAT_BYTES {
                    return Err(format!(
                        "messages[{i}]: `text` is {} bytes, more than {}",
                        m.text.len(),
                        Limits::CHAT_BYTES
                    ));
                }
            }
            Ok(Body::Inference {
                request_id: raw.request_id,
                agent_id,
                messages,
            })
        }
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Batch => "batch",
        Kind::Urgent => "urgent",
        Kind::Inference => "inference",
    }
}

fn check_name(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > Limits::NAME_BYTES {
        return Err(format!(
            "`{what}` must be 1 to {} bytes, is {}",
            Limits::NAME_BYTES,
            s.len()
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("`{what}` {s:?} contains control characters"));
    }
    Ok(())
}

fn check_change(c: &Change) -> Result<(), String> {
    check_name("agent_id", &c.agent_id)?;
    check_name("block", &c.block)?;
    if c.agent_id.contains('/') || c.block.contains('/') {
        return Err("`agent_id` and `block` must not contain `/` (they are URL path parts)".into());
    }
    check_name("field", &c.field)?;
    block_text::check_field_name(&c.field).map_err(|e| format!("`field` {:?} {e}", c.field))?;
    if c.seq == 0 {
        return Err("`seq` must be 1 or more (0 is what a field never written holds)".into());
    }
    if c.seq > i64::MAX as u64 {
        return Err(format!("`seq` {} is above {}", c.seq, i64::MAX));
    }
    match &c.value {
        Json::Null | Json::Bool(_) => Ok(()),
        Json::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(()),
            _ => Err(format!("`value` {n} is not a finite number")),
        },
        Json::String(s) if s.len() > Limits::VALUE_BYTES => Err(format!(
            "`value` is a string of {} bytes, more than {}",
            s.len(),
            Limits::VALUE_BYTES
        )),
        Json::String(_) => Ok(()),
        Json::Array(_) | Json::Object(_) => {
            Err("`value` must be null, a string, a number or a boolean".into())
        }
    }
}

/// A stored JSON value as the core's value (for rendering a block).
pub fn to_core(v: &Json) -> npc_sync::Value {
    match v {
        Json::Null => npc_sync::Value::Cleared,
        Json::Bool(b) => npc_sync::Value::Bool(*b),
        Json::Number(n) => npc_sync::Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => npc_sync::Value::Str(s.clone()),
        Json::Array(_) | Json::Object(_) => npc_sync::Value::Cleared,
    }
}

/// The core's value as JSON (for fields read back from Letta).
pub fn from_core(v: &npc_sync::Value) -> Json {
    match v {
        npc_sync::Value::Cleared => Json::Null,
        npc_sync::Value::Bool(b) => Json::Bool(*b),
        npc_sync::Value::Number(n) => serde_json::Number::from_f64(*n)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        npc_sync::Value::Str(s) => Json::String(s.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_without_value_is_a_cleared_field() {
        let body = br#"{"request_id": 3, "kind": "batch", "changes": [
            {"agent_id": "a", "block": "group_members", "field": "p1.present", "seq": 9}]}"#;
        let parsed = parse(body).expect("a missing value is accepted");
        let Body::Changes { changes, .. } = &parsed else {
            panic!("a batch body parses as changes: {parsed:?}");
        };
        assert_eq!(changes[0].value, Json::Null);
        assert_eq!(to_core(&changes[0].value), npc_sync::Value::Cleared);
    }
}
