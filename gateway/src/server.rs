//! The HTTP surface: `POST /v1/batch`, `/healthz`, `/readyz`, `/metrics`.

use crate::body::{self, Body};
use crate::config::Config;
use crate::letta::{Letta, LettaError};
use crate::metrics::Metrics;
use crate::rate::RateLimits;
use crate::shutdown::{Phase, Shutdown};
use crate::store::{BlockKey, Outcome, Record, Store, StoreError, StoredAnswer};
use crate::writer::{SyncError, Writer};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value as Json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;
use subtle::ConstantTimeEq;

/// The header naming the game server (Roblox's `game.JobId`); idempotency and rate limits
/// are per game server.
pub const SERVER_HEADER: &str = "x-game-server-id";
/// Longest game server id.
pub const MAX_SERVER_ID: usize = 128;

/// Everything a request needs.
pub struct AppState {
    /// Settings.
    pub config: Config,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Letta client.
    pub letta: Letta,
    /// Block synchroniser.
    pub writer: Writer,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Per game server rate limits.
    pub rates: RateLimits,
    /// The gateway's life phase.
    pub shutdown: Shutdown,
}

/// The router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/batch", post(batch))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// `/readyz`: 200 when the database answers and Letta's health endpoint does, else 503;
/// the JSON body also tells where the start-up sweep is and how many agent-blocks Letta
/// is behind on (the catch-up writes them).
async fn readyz(State(s): State<Arc<AppState>>) -> Response {
    let db = s.store.ping().await;
    let letta = s.letta.healthy().await;
    let behind = s.store.behind_count().await.ok();
    if let Some(n) = behind {
        s.metrics.set_behind(n);
    }
    let sweep = s.writer.sweep_status();
    let serving = s.shutdown.phase() == Phase::Serving;
    let ready = db.is_ok() && letta && serving;
    let body = json!({
        "ready": ready,
        "database": match &db { Ok(()) => "open".to_string(), Err(e) => e.to_string() },
        "letta": if letta { "reachable" } else { "unreachable" },
        "shutting_down": !serving,
        "start_sweep": if sweep.running { "running" } else { "done" },
        "blocks_unread": sweep.unread,
        "blocks_behind": behind,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

fn unavailable(message: String, retry_after: u64) -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    r
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
    else {
        return false;
    };
    // Constant time over the token's bytes; only a length difference returns early.
    given.len() == token.len() && bool::from(given.ct_eq(token.as_bytes()))
}

/// The game server id, or why the header is not one.
fn server_id(headers: &HeaderMap) -> Result<String, String> {
    let v = headers
        .get(SERVER_HEADER)
        .ok_or_else(|| format!("missing header `{SERVER_HEADER}` (the game server's JobId)"))?;
    let s = v
        .to_str()
        .map_err(|_| format!("header `{SERVER_HEADER}` must be visible ASCII"))?;
    if s.is_empty() || s.len() > MAX_SERVER_ID {
        return Err(format!(
            "header `{SERVER_HEADER}` must be 1 to {MAX_SERVER_ID} bytes"
        ));
    }
    Ok(s.to_string())
}

/// FNV-1a over the body: a reused request id with another body is told apart.
fn body_hash(bytes: &[u8]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

async fn batch(State(s): State<Arc<AppState>>, req: Request) -> Response {
    // Handled in its own task: a client that hangs up does not cut a write half way.
    let s2 = s.clone();
    let r = tokio::spawn(async move { handle(s2, req).await }).await;
    let r = r.unwrap_or_else(|e| {
        tracing::error!(error = %e, "batch handler failed");
        error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    });
    s.metrics.batch(r.status().as_u16());
    r
}

async fn handle(s: Arc<AppState>, req: Request) -> Response {
    let (parts, raw) = req.into_parts();
    if s.shutdown.phase() != Phase::Serving {
        return unavailable("the gateway is shutting down; retry".into(), 1);
    }
    if !authorized(&parts.headers, &s.config.token) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let server = match server_id(&parts.headers) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if let Err(wait) = s.rates.take(&server) {
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("game server '{server}' is over its rate limit"),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return r;
    }
    let bytes = match axum::body::to_bytes(raw, s.config.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body is larger than {} bytes (or was cut off)",
                    s.config.max_body_bytes
                ),
            )
        }
    };
    let body = match body::parse(&bytes) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let hash = body_hash(&bytes);
    let request_id = body.request_id();
    match s.store.answer(&server, request_id).await {
        // An inference still running is waited for below.
        Ok(Some(Record::InProgress { .. })) if matches!(body, Body::Inference { .. }) => {}
        Ok(Some(held)) => return replay(&server, request_id, hash, held),
        Ok(None) => {}
        Err(e) => return store_failure(e),
    }
    let deadline = Instant::now() + s.config.answer_timeout;
    let answer = match body {
        Body::Changes { changes, .. } => apply(&s, request_id, changes, deadline).await,
        Body::Inference {
            agent_id, messages, ..
        } => {
            return inference(
                &s, &server, request_id, hash, &agent_id, &messages, deadline,
            )
            .await
        }
    };
    let answer = match answer {
        Ok(a) => a.to_string(),
        Err(r) => return r,
    };
    save_and_answer(&s, &server, request_id, hash, answer).await
}

/// Records the answer durably, then gives it.
async fn save_and_answer(
    s: &AppState,
    server: &str,
    request_id: u64,
    hash: i64,
    answer: String,
) -> Response {
    let stored = StoredAnswer {
        body_hash: hash,
        status: 200,
        answer: answer.clone(),
    };
    if let Err(e) = s
        .store
        .save_answer(server, request_id, stored, now_ms())
        .await
    {
        return store_failure(e);
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        answer,
    )
        .into_response()
}

/// The answer to a request id that has a record: the stored answer again, or 409 when
/// the id was used for another body, or 503 with `Retry-After` while the first attempt
/// is still running.
fn replay(server: &str, request_id: u64, hash: i64, held: Record) -> Response {
    let held_hash = match &held {
        Record::Done(a) => a.body_hash,
        Record::InProgress { body_hash } => *body_hash,
    };
    if held_hash != hash {
        return error(
            StatusCode::CONFLICT,
            format!("request_id {request_id} of game server '{server}' was already used for another body"),
        );
    }
    match held {
        Record::Done(stored) => {
            let mut r = (
                StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
                [(header::CONTENT_TYPE, "application/json")],
                stored.answer,
            )
                .into_response();
            r.headers_mut()
                .insert("idempotent-replay", HeaderValue::from_static("true"));
            r
        }
        Record::InProgress { .. } => unavailable(
            format!("request_id {request_id} of game server '{server}' is still being answered by an earlier attempt; retry for its answer"),
            1,
        ),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An inference runs once per request id across all instances: it claims the id in the
/// database first. A replay that finds the claim waits (until its own deadline) for the
/// first attempt's answer instead of sending the messages to Letta again; a claim left by
/// a dead instance is taken over once it is older than any attempt can run.
async fn inference(
    s: &AppState,
    server: &str,
    request_id: u64,
    hash: i64,
    agent_id: &str,
    messages: &[body::Message],
    deadline: Instant,
) -> Response {
    let stale = (s.config.answer_timeout + s.config.letta_call_timeout).as_millis() as i64 + 1000;
    let mut poll = std::time::Duration::from_millis(10);
    loop {
        let now = now_ms();
        match s
            .store
            .claim(server, request_id, hash, now, now - stale)
            .await
        {
            Ok(None) => break,
            Ok(Some(held @ Record::Done(_))) => return replay(server, request_id, hash, held),
            Ok(Some(held)) => {
                if Instant::now() + poll >= deadline || s.shutdown.phase() >= Phase::Abandoning {
                    return replay(server, request_id, hash, held);
                }
                if let Record::InProgress { body_hash } = held {
                    if body_hash != hash {
                        return replay(server, request_id, hash, held);
                    }
                }
            }
            Err(e) => return store_failure(e),
        }
        tokio::select! {
            _ = s.shutdown.reached(Phase::Abandoning) => {}
            _ = tokio::time::sleep(poll) => {}
        }
        poll = (poll * 2).min(std::time::Duration::from_millis(200));
    }
    match s.letta.send_messages(agent_id, messages, deadline).await {
        Ok(response) => {
            let answer = json!({ "request_id": request_id, "response": response }).to_string();
            save_and_answer(s, server, request_id, hash, answer).await
        }
        Err(e) => {
            if let Err(e) = s.store.abandon(server, request_id).await {
                tracing::error!(error = %e, "cannot drop the claim of a failed inference");
            }
            sync_failure(SyncError::Letta(e))
        }
    }
}

async fn apply(
    s: &AppState,
    request_id: u64,
    changes: Vec<body::Change>,
    deadline: Instant,
) -> Result<Json, Response> {
    let keys: BTreeSet<BlockKey> = changes
        .iter()
        .map(|c| BlockKey {
            agent: c.agent_id.clone(),
            block: c.block.clone(),
        })
        .collect();
    s.writer
        .load(keys.into_iter().collect(), deadline)
        .await
        .map_err(sync_failure)?;
    let applied = match s.store.apply(changes.clone()).await {
        Ok(a) => a,
        Err(e) => return Err(store_failure(e)),
    };
    s.writer
        .ensure_all(applied.versions.clone(), deadline)
        .await
        .map_err(sync_failure)?;
    let (mut n_applied, mut n_already) = (0u64, 0u64);
    let mut rejected = Vec::new();
    let mut confirmed = Vec::new();
    for (c, r) in changes.iter().zip(&applied.results) {
        match r.outcome {
            Outcome::Applied => n_applied += 1,
            Outcome::AlreadyApplied => n_already += 1,
            Outcome::Rejected => rejected.push(json!({
                "agent_id": c.agent_id, "block": c.block, "field": c.field,
                "seq": c.seq, "held_seq": r.seq,
            })),
        }
    }
    // What the store holds now for every field of the request (the last result per field
    // is the newest: changes to one field are applied in seq order).
    let mut latest = std::collections::BTreeMap::new();
    for (c, r) in changes.iter().zip(&applied.results) {
        let e = latest.entry((&c.agent_id, &c.block, &c.field)).or_insert(r);
        if r.seq > e.seq {
            *e = r;
        }
    }
    for ((agent, block, field), r) in latest {
        confirmed.push(json!({ "agent_id": agent, "block": block, "field": field, "value": r.value, "seq": r.seq }));
    }
    s.metrics
        .fields(n_applied, n_already, rejected.len() as u64);
    Ok(json!({
        "request_id": request_id,
        "applied": n_applied,
        "already_applied": n_already,
        "rejected": rejected,
        "confirmed": confirmed,
    }))
}

fn store_failure(e: StoreError) -> Response {
    match e {
        StoreError::BlockTooLarge(m) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{m}; nothing applied"),
        ),
        StoreError::Db(m) => {
            tracing::error!(error = %m, "database failure");
            unavailable("database unavailable".into(), 1)
        }
    }
}

fn sync_failure(e: SyncError) -> Response {
    tracing::warn!(error = %e, "Letta sync failed");
    let e = match e {
        // One owner for store failures: a block over its limit is a 422, the database a 503.
        SyncError::Store(e) => return store_failure(e),
        e => e,
    };
    match &e {
        SyncError::NoSuchBlock(_) | SyncError::Unreadable { .. } => {
            error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
        SyncError::Letta(LettaError::Refused { .. }) => {
            error(StatusCode::BAD_GATEWAY, e.to_string())
        }
        SyncError::Letta(LettaError::Unavailable { retry_after, .. }) => {
            unavailable(e.to_string(), retry_after.unwrap_or(1))
        }
        SyncError::Timeout(_) | SyncError::ShuttingDown(_) | SyncError::Store(_) => {
            unavailable(e.to_string(), 1)
        }
    }
}
