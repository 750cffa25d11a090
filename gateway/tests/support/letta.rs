//! A Letta stand-in on 127.0.0.1: the block and message endpoints of Letta's REST API
//! (paths, bodies, status codes), a concurrent PATCH of one block answered 409 with
//! `Retry-After: 1`, and injectable faults. The texts are Letta 0.16.8's, read in its
//! source (`letta/server/rest_api/app.py`: the 409 of a locked row;
//! `services/agent_manager.py`: the 404 of a missing block). Unlike Letta it takes any
//! agent id (Letta wants `agent-<uuid4>` and answers 422 otherwise), and it refuses a value
//! over the block's limit (0.16.8 does not check it on PATCH; the gateway never sends one).

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One injected fault, consumed by the next block PATCH or message POST.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer 500.
    ServerError,
    /// Answer 429 with `Retry-After: secs`.
    TooMany(u64),
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// Close the connection without an answer (nothing applied).
    Drop,
    /// Answer 409 as Letta does when another write of the block is in progress.
    Conflict,
}

/// What the stand-in holds and saw.
#[derive(Default)]
pub struct LettaState {
    /// (agent, label) -> (value, limit).
    pub blocks: HashMap<(String, String), (String, usize)>,
    /// Every value PATCHed, per block, in order.
    pub history: HashMap<(String, String), Vec<String>>,
    /// Blocks with a PATCH in progress.
    in_flight: HashSet<(String, String)>,
    /// Faults to inject, in order.
    pub faults: VecDeque<Fault>,
    /// Time each PATCH takes (Letta needs 0.15 to 0.3 s on this machine).
    pub patch_delay: Duration,
    /// Answers given: status counts.
    pub statuses: HashMap<u16, u64>,
    /// PATCHes answered 409 because another write of the block was in progress.
    pub conflicts: u64,
    /// Message requests received: (agent, body).
    pub messages: Vec<(String, Value)>,
    /// Authorization headers seen (to check the API key is sent).
    pub auth: HashSet<String>,
}

/// A running stand-in.
pub struct FakeLetta {
    /// Its base URL.
    pub url: String,
    /// Its state.
    pub state: Arc<Mutex<LettaState>>,
}

impl FakeLetta {
    /// Starts it on a free port with the given blocks (all agents, all labels).
    pub async fn start() -> FakeLetta {
        let state = Arc::new(Mutex::new(LettaState::default()));
        let app = Router::new()
            .route(
                "/v1/health/",
                get(|| async { Json(json!({"version": "0.16.8", "status": "ok"})) }),
            )
            .route(
                "/v1/agents/{agent}/core-memory/blocks/{label}",
                get(get_block).patch(patch_block),
            )
            .route("/v1/agents/{agent}/messages", post(messages))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeLetta { url, state }
    }

    /// Creates (or replaces) a block.
    pub fn put_block(&self, agent: &str, label: &str, value: &str, limit: usize) {
        self.state
            .lock()
            .unwrap()
            .blocks
            .insert((agent.into(), label.into()), (value.into(), limit));
    }

    /// A block's value.
    pub fn block(&self, agent: &str, label: &str) -> Option<String> {
        self.state
            .lock()
            .unwrap()
            .blocks
            .get(&(agent.into(), label.into()))
            .map(|b| b.0.clone())
    }

    /// Queues faults.
    pub fn fault(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state.lock().unwrap().faults.extend(faults);
    }

    /// Sets the PATCH duration.
    pub fn set_patch_delay(&self, d: Duration) {
        self.state.lock().unwrap().patch_delay = d;
    }

    /// How many answers had this status.
    pub fn count(&self, status: u16) -> u64 {
        self.state
            .lock()
            .unwrap()
            .statuses
            .get(&status)
            .copied()
            .unwrap_or(0)
    }
}

impl LettaState {
    /// Whether a PATCH is being handled right now.
    pub fn busy(&self) -> bool {
        !self.in_flight.is_empty()
    }
}

type Shared = State<Arc<Mutex<LettaState>>>;

fn not_found(agent: &str, label: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"detail": format!("No block with label '{label}' found for agent '{agent}'")})),
    )
        .into_response()
}

/// Letta's answer when the block's row is locked by another write.
fn locked() -> Response {
    let mut r = (
        StatusCode::CONFLICT,
        Json(json!({"detail": "The resource is currently locked by another operation. Please retry shortly."})),
    )
        .into_response();
    r.headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    r
}

fn block_json(agent: &str, label: &str, value: &str, limit: usize) -> Value {
    json!({"id": format!("block-{agent}-{label}"), "label": label, "value": value, "limit": limit,
           "description": null, "metadata": {}, "read_only": false})
}

async fn get_block(State(s): Shared, Path((agent, label)): Path<(String, String)>) -> Response {
    let st = s.lock().unwrap();
    match st.blocks.get(&(agent.clone(), label.clone())) {
        Some((v, l)) => Json(block_json(&agent, &label, v, *l)).into_response(),
        None => not_found(&agent, &label),
    }
}

/// Takes the next fault, applying Slow and Drop here; returns an error answer for the rest.
async fn fault(s: &Arc<Mutex<LettaState>>) -> Option<Response> {
    let f = s.lock().unwrap().faults.pop_front();
    match f {
        None => None,
        Some(Fault::Slow(d)) => {
            tokio::time::sleep(d).await;
            None
        }
        Some(Fault::ServerError) => Some(
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"detail": "Internal server error"})),
            )
                .into_response(),
        ),
        Some(Fault::TooMany(secs)) => {
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"detail": "Rate limit exceeded"})),
            )
                .into_response();
            r.headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
            Some(r)
        }
        Some(Fault::Conflict) => Some(locked()),
        // A panic in a handler ends its connection task: the client sees the connection
        // close without an answer, as with a crashed or restarted Letta.
        Some(Fault::Drop) => panic!("stand-in Letta: injected dropped connection"),
    }
}

fn record(s: &Arc<Mutex<LettaState>>, r: Response) -> Response {
    *s.lock()
        .unwrap()
        .statuses
        .entry(r.status().as_u16())
        .or_default() += 1;
    r
}

async fn patch_block(
    State(s): Shared,
    Path((agent, label)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(a) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        s.lock().unwrap().auth.insert(a.to_string());
    }
    if let Some(r) = fault(&s).await {
        return record(&s, r);
    }
    let key = (agent.clone(), label.clone());
    let Some(value) = body
        .get("value")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return record(
            &s,
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"detail": "value: field required"})),
            )
                .into_response(),
        );
    };
    let delay = {
        let mut st = s.lock().unwrap();
        let Some((_, limit)) = st.blocks.get(&key).cloned() else {
            drop(st);
            return record(&s, not_found(&agent, &label));
        };
        if value.chars().count() > limit {
            drop(st);
            return record(
                &s,
                (
                    StatusCode::BAD_REQUEST,
                    Json(
                        json!({"detail": format!("Edit failed: Exceeds {limit} character limit")}),
                    ),
                )
                    .into_response(),
            );
        }
        if !st.in_flight.insert(key.clone()) {
            st.conflicts += 1;
            drop(st);
            return record(&s, locked());
        }
        st.patch_delay
    };
    // Like a real server, a write that started finishes even if the client hangs up.
    let task = tokio::spawn(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut st = s.lock().unwrap();
        st.in_flight.remove(&key);
        let limit = st.blocks[&key].1;
        st.blocks.insert(key.clone(), (value.clone(), limit));
        st.history.entry(key).or_default().push(value.clone());
        *st.statuses.entry(200).or_default() += 1;
        Json(block_json(&agent, &label, &value, limit)).into_response()
    });
    task.await.unwrap()
}

async fn messages(
    State(s): Shared,
    Path(agent): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = fault(&s).await {
        return record(&s, r);
    }
    let n = body["messages"].as_array().map(Vec::len).unwrap_or(0);
    s.lock().unwrap().messages.push((agent.clone(), body));
    record(&s, Json(json!({
        "messages": [{"id": "message-1", "message_type": "assistant_message", "content": format!("{agent} heard {n} messages")}],
        "stop_reason": {"message_type": "stop_reason", "stop_reason": "end_turn"},
        "usage": {"message_type": "usage_statistics", "step_count": 1}
    })).into_response())
}
