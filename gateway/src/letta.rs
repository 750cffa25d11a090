//! Letta's REST API as the gateway uses it: read a block, replace a block's value, send
//! messages. Retries with exponential backoff on 409 (Letta 0.16.8 answers a write of a
//! block whose row another write holds with "The resource is currently locked by another
//! operation. Please retry shortly." and `Retry-After: 1`), 429 and 5xx and on lost
//! connections, honouring `Retry-After`. The API key goes only into the `Authorization`
//! header, never into a log line or an error text.

use crate::metrics::Metrics;
use crate::shutdown::{Phase, Shutdown};
use serde_json::{json, Value as Json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Letta 0.16.8's block limit when none is set (`CORE_MEMORY_BLOCK_CHAR_LIMIT` in its
/// `constants.py`): taken for a block read without a `limit`, and for a block a batch
/// creates without reading it (the server always reads blocks first).
pub const DEFAULT_BLOCK_LIMIT: usize = 100_000;

/// Why a Letta call failed for good.
#[derive(Debug, Clone)]
pub enum LettaError {
    /// Letta answered with a status that retrying cannot fix (4xx other than 409/429).
    Refused {
        /// HTTP status.
        status: u16,
        /// What was asked (method and path).
        call: String,
        /// Letta's answer body, cut short.
        detail: String,
    },
    /// Retries did not succeed before the deadline.
    Unavailable {
        /// What was asked.
        call: String,
        /// The last failure.
        last: String,
        /// Seconds to wait before retrying, from Letta's `Retry-After` if it gave one.
        retry_after: Option<u64>,
    },
}

impl std::fmt::Display for LettaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LettaError::Refused {
                status,
                call,
                detail,
            } => {
                write!(f, "Letta refused {call} with {status}: {detail}")
            }
            LettaError::Unavailable { call, last, .. } => {
                write!(f, "Letta did not accept {call} in time (last: {last})")
            }
        }
    }
}

/// Letta client settings.
#[derive(Clone, Debug)]
pub struct LettaConfig {
    /// Base URL, e.g. `http://127.0.0.1:8283`.
    pub url: String,
    /// API key (sent as a bearer token), if the server needs one.
    pub api_key: Option<String>,
    /// Most Letta calls in flight at once.
    pub concurrency: usize,
    /// Timeout of one HTTP call.
    pub call_timeout: Duration,
    /// First retry delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

/// A block as read from Letta.
#[derive(Clone, Debug)]
pub struct LettaBlock {
    /// The block's text.
    pub value: String,
    /// Its character limit.
    pub limit: usize,
}

/// The client.
#[derive(Clone)]
pub struct Letta {
    http: reqwest::Client,
    cfg: Arc<LettaConfig>,
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
}

impl Letta {
    /// Builds the client; its calls give up when `shutdown` reaches
    /// [`Phase::Abandoning`].
    pub fn new(
        cfg: LettaConfig,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
    ) -> Result<Letta, String> {
        let http = reqwest::Client::builder()
            .timeout(cfg.call_timeout)
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Letta {
            http,
            slots: Arc::new(Semaphore::new(cfg.concurrency)),
            cfg: Arc::new(cfg),
            metrics,
            shutdown,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.url.trim_end_matches('/'))
    }

    /// One call with retries until `deadline`. `op` names the call in metrics.
    async fn call(
        &self,
        op: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Json>,
        deadline: Instant,
    ) -> Result<(u16, Json), LettaError> {
        let call = format!("{method} {path}");
        let mut backoff = self.cfg.min_backoff;
        loop {
            let mut req = self.http.request(method.clone(), self.url(path));
            if let Some(key) = &self.cfg.api_key {
                req = req.bearer_auth(key);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let abandoned = || LettaError::Unavailable {
                call: call.clone(),
                last: "the gateway is shutting down".into(),
                retry_after: Some(1),
            };
            // A call Letta may still be handling is cut when the gateway shuts down: the
            // caller answers 503, and the block stays behind in the store until written.
            let (permit, result, started) = tokio::select! {
                biased;
                _ = self.shutdown.reached(Phase::Abandoning) => return Err(abandoned()),
                r = async {
                    let permit = self.slots.acquire().await.expect("semaphore never closed");
                    let started = Instant::now();
                    (permit, req.send().await, started)
                } => r,
            };
            let (failure, retry_after) = match result {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let text = resp.text().await;
                    drop(permit);
                    self.metrics.letta_call(op, status, started.elapsed());
                    match text {
                        Ok(text) if (200..300).contains(&status) => {
                            let json = serde_json::from_str(&text).unwrap_or(Json::Null);
                            return Ok((status, json));
                        }
                        Ok(text) if status == 409 || status == 429 || status >= 500 => {
                            (format!("{status}: {}", cut(&text)), retry_after)
                        }
                        Ok(text) => {
                            return Err(LettaError::Refused {
                                status,
                                call,
                                detail: cut(&text),
                            })
                        }
                        Err(e) => (format!("{status}, body lost: {}", no_url(&e)), retry_after),
                    }
                }
                Err(e) => {
                    drop(permit);
                    self.metrics.letta_call(op, 0, started.elapsed());
                    (no_url(&e), None)
                }
            };
            let wait = retry_after.map(Duration::from_secs).unwrap_or(backoff);
            if Instant::now() + wait >= deadline {
                return Err(LettaError::Unavailable {
                    call,
                    last: failure,
                    retry_after,
                });
            }
            tracing::debug!(call = %call, failure = %failure, wait_ms = wait.as_millis() as u64, "Letta call retried");
            self.metrics.retry();
            tokio::select! {
                _ = self.shutdown.reached(Phase::Abandoning) => return Err(abandoned()),
                _ = tokio::time::sleep(wait) => {}
            }
            backoff = (backoff * 2).min(self.cfg.max_backoff);
        }
    }

    /// Reads a block; `Ok(None)` when the agent has no such block.
    pub async fn get_block(
        &self,
        agent: &str,
        label: &str,
        deadline: Instant,
    ) -> Result<Option<LettaBlock>, LettaError> {
        let path = format!("/v1/agents/{agent}/core-memory/blocks/{label}");
        match self
            .call("get_block", reqwest::Method::GET, &path, None, deadline)
            .await
        {
            Ok((_, json)) => Ok(Some(LettaBlock {
                value: json
                    .get("value")
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .to_string(),
                limit: json
                    .get("limit")
                    .and_then(Json::as_u64)
                    .unwrap_or(DEFAULT_BLOCK_LIMIT as u64) as usize,
            })),
            Err(LettaError::Refused { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces a block's value.
    pub async fn patch_block(
        &self,
        agent: &str,
        label: &str,
        value: &str,
        deadline: Instant,
    ) -> Result<(), LettaError> {
        let path = format!("/v1/agents/{agent}/core-memory/blocks/{label}");
        self.call(
            "patch_block",
            reqwest::Method::PATCH,
            &path,
            Some(&json!({ "value": value })),
            deadline,
        )
        .await
        .map(|_| ())
    }

    /// Sends chat messages to an agent; returns Letta's answer.
    pub async fn send_messages(
        &self,
        agent: &str,
        messages: &[crate::body::Message],
        deadline: Instant,
    ) -> Result<Json, LettaError> {
        let path = format!("/v1/agents/{agent}/messages");
        let body = json!({
            "messages": messages.iter().map(|m| json!({
                "role": "user",
                "name": m.sender,
                "content": m.text,
            })).collect::<Vec<_>>()
        });
        self.call(
            "send_messages",
            reqwest::Method::POST,
            &path,
            Some(&body),
            deadline,
        )
        .await
        .map(|(_, j)| j)
    }

    /// Whether Letta answers its health check.
    pub async fn healthy(&self) -> bool {
        let deadline = Instant::now() + self.cfg.call_timeout;
        self.call(
            "health",
            reqwest::Method::GET,
            "/v1/health/",
            None,
            deadline,
        )
        .await
        .is_ok()
    }
}

fn cut(text: &str) -> String {
    text.chars().take(300).collect()
}

/// A reqwest error without its URL (the URL carries no secret, but keep errors short).
fn no_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_request() {
        "request failed (connection dropped)"
    } else {
        "HTTP error"
    };
    let e = e.source_chain_text();
    format!("{kind}: {e}")
}

trait SourceChain {
    fn source_chain_text(&self) -> String;
}

impl SourceChain for reqwest::Error {
    fn source_chain_text(&self) -> String {
        let mut out = String::new();
        let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(self);
        while let Some(e) = cur {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&e.to_string());
            cur = e.source();
        }
        out
    }
}
