//! The project's batch endpoint, reduced to its rule (the real one is `npc-sync-gateway`):
//! a field is applied only when its `seq` is higher than the one held; the answer lists
//! what was confirmed.

use crate::server::State;
use crate::wire::Answer;
use serde_json::{json, Value as Json};

/// Applies a batch body to the held fields.
pub(crate) fn apply(s: &mut State, body: &str) -> Answer {
    let parsed: Json = match serde_json::from_str(body) {
        Ok(j) => j,
        Err(e) => return crate::letta::bad_json(&e),
    };
    let mut confirmed = Vec::new();
    for c in parsed
        .get("changes")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        let key = (
            c["agent_id"].as_str().unwrap_or("").to_string(),
            c["block"].as_str().unwrap_or("").to_string(),
            c["field"].as_str().unwrap_or("").to_string(),
        );
        let seq = c["seq"].as_f64().unwrap_or(0.0);
        let value = c.get("value").cloned().unwrap_or(Json::Null);
        let held = s.fields.get(&key).map(|(_, q)| *q).unwrap_or(0.0);
        if seq > held {
            s.fields.insert(key, (value, seq));
            confirmed.push(c.clone());
        }
    }
    Answer::json(200, json!({"confirmed": confirmed}))
}
