//! Letta's block and message endpoints as Letta 0.16.8 answers them. The texts are read in
//! its source (`letta/server/rest_api/app.py`: the 409 of a locked row;
//! `services/agent_manager.py`: the 404 of a missing block). Unlike Letta it takes any
//! agent id (Letta wants `agent-<uuid4>` and answers 422 otherwise), and it refuses a value
//! over the block's limit (0.16.8 does not check it on PATCH; the gateway never sends one).

use crate::server::State;
use crate::wire::Answer;
use serde_json::{json, Value as Json};
use std::sync::Mutex;

/// The limit of a block made without one (Letta's default for a new block).
pub(crate) const DEFAULT_LIMIT: usize = 5000;

/// Whether a request is a Letta write (the requests [`State::write_faults`] apply to).
pub(crate) fn is_write(method: &str, path: &str) -> bool {
    matches!(
        (method, segments(path).as_slice()),
        ("PATCH", ["v1", "agents", _, "core-memory", "blocks", _])
            | ("POST", ["v1", "agents", _, "messages"])
    )
}

fn segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('/').split('/').collect()
}

/// Answers a Letta request; `None` when the path is not one of Letta's.
pub(crate) fn route(st: &Mutex<State>, method: &str, path: &str, body: &str) -> Option<Answer> {
    let segs = segments(path);
    Some(match (method, segs.as_slice()) {
        ("GET", ["v1", "health", ""] | ["v1", "health"]) => {
            Answer::json(200, json!({"version": "0.16.8", "status": "ok"}))
        }
        ("GET", ["v1", "agents", agent, "core-memory", "blocks", label]) => {
            let s = st.lock().unwrap();
            let key = (agent.to_string(), label.to_string());
            match s.blocks.get(&key) {
                Some(v) => Answer::json(200, block_json(agent, label, v, s.limit(&key))),
                None => not_found(agent, label),
            }
        }
        ("PATCH", ["v1", "agents", agent, "core-memory", "blocks", label]) => {
            patch_block(st, agent, label, body)
        }
        ("POST", ["v1", "agents", agent, "messages"]) => messages(st, agent, body),
        _ => return None,
    })
}

fn block_json(agent: &str, label: &str, value: &str, limit: usize) -> Json {
    json!({"id": format!("block-{agent}-{label}"), "label": label, "value": value, "limit": limit,
           "description": null, "metadata": {}, "read_only": false})
}

fn not_found(agent: &str, label: &str) -> Answer {
    Answer::json(
        404,
        json!({"detail": format!("No block with label '{label}' found for agent '{agent}'")}),
    )
}

/// Letta's answer when the block's row is locked by another write.
pub(crate) fn locked() -> Answer {
    Answer::json(
        409,
        json!({"detail": "The resource is currently locked by another operation. Please retry shortly."}),
    )
    .retry_after(1)
}

/// Bad JSON: the answer of a JSON body that does not parse.
pub(crate) fn bad_json(e: &serde_json::Error) -> Answer {
    Answer::json(400, json!({"detail": format!("bad JSON: {e}")}))
}

fn patch_block(st: &Mutex<State>, agent: &str, label: &str, body: &str) -> Answer {
    let parsed: Json = match serde_json::from_str(body) {
        Ok(j) => j,
        Err(e) => return bad_json(&e),
    };
    let Some(value) = parsed.get("value").and_then(Json::as_str) else {
        return Answer::json(422, json!({"detail": "value: field required"}));
    };
    let key = (agent.to_string(), label.to_string());
    let delay = {
        let mut s = st.lock().unwrap();
        if !s.blocks.contains_key(&key) {
            if !s.create_missing_blocks {
                return not_found(agent, label);
            }
            s.blocks.insert(key.clone(), String::new());
        }
        let limit = s.limit(&key);
        if value.chars().count() > limit {
            return Answer::json(
                400,
                json!({"detail": format!("Edit failed: Exceeds {limit} character limit")}),
            );
        }
        if !s.writing.insert(key.clone()) {
            s.conflicts += 1;
            return locked();
        }
        s.patch_delay
    };
    // Like a real server, a write that started finishes even if the client hangs up.
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let mut s = st.lock().unwrap();
    s.writing.remove(&key);
    s.blocks.insert(key.clone(), value.to_string());
    s.history
        .entry(key.clone())
        .or_default()
        .push(value.to_string());
    Answer::json(200, block_json(agent, label, value, s.limit(&key)))
}

fn messages(st: &Mutex<State>, agent: &str, body: &str) -> Answer {
    let parsed: Json = match serde_json::from_str(body) {
        Ok(j) => j,
        Err(e) => return bad_json(&e),
    };
    let n = parsed["messages"].as_array().map(Vec::len).unwrap_or(0);
    st.lock()
        .unwrap()
        .messages
        .push((agent.to_string(), parsed));
    Answer::json(
        200,
        json!({
            "messages": [{"id": "message-1", "message_type": "assistant_message",
                          "content": format!("{agent} heard {n} messages")}],
            "stop_reason": {"message_type": "stop_reason", "stop_reason": "end_turn"},
            "usage": {"message_type": "usage_statistics", "step_count": 1}
        }),
    )
}
