//! Test support: a PostgreSQL cluster, a gateway in process, a client. The Letta stand-in
//! is `npc_sync_testkit::server::TestServer` (shared with the Luau harness), started with
//! `start_like_letta`.
#![allow(dead_code)]

pub mod pg;
pub mod store_checks;

use npc_sync_gateway::config::Config;
use serde_json::Value;
use std::collections::BTreeMap;

/// The shared secret of the tests.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A gateway served in this process.
pub struct Gateway {
    /// Its base URL.
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl Gateway {
    /// Starts one against `letta_url` and `database`, with extra `--option value` pairs.
    pub async fn start(letta_url: &str, database: &str, extra: &[(&str, &str)]) -> Gateway {
        let mut args: Vec<String> = vec![
            "--letta-url".into(),
            letta_url.into(),
            "--token".into(),
            TOKEN.into(),
            "--database".into(),
            database.into(),
            "--min-backoff-ms".into(),
            "5".into(),
            "--max-backoff-ms".into(),
            "50".into(),
            "--rate-per-s".into(),
            "100000".into(),
            "--rate-burst".into(),
            "100000".into(),
        ];
        for (k, v) in extra {
            args.push(format!("--{k}"));
            args.push(v.to_string());
        }
        let config = Config::load(&args, &BTreeMap::new()).expect("test config is valid");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(npc_sync_gateway::serve(config, listener, async move {
            let _ = rx.await;
        }));
        Gateway {
            url,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops it gracefully and waits.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

/// `/readyz`: status and JSON body.
pub async fn ready(client: &reqwest::Client, gw: &str) -> (u16, Value) {
    let r = client
        .get(format!("{gw}/readyz"))
        .send()
        .await
        .expect("gateway answers /readyz");
    (
        r.status().as_u16(),
        r.json().await.expect("/readyz is JSON"),
    )
}

/// `/metrics` as text.
pub async fn metrics(client: &reqwest::Client, gw: &str) -> String {
    client
        .get(format!("{gw}/metrics"))
        .send()
        .await
        .expect("gateway answers /metrics")
        .text()
        .await
        .unwrap()
}

/// Polls `check` every 20 ms until it holds; panics naming `what` after 30 s (a bound
/// against hanging, not a timing assertion).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "never happened: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A temporary SQLite database URL (`sqlite:PATH`), unique per call.
pub fn sqlite_url(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "npc-sync-gw-{}-{name}-{}",
        std::process::id(),
        pg::free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite:{}", dir.join("gateway.db").display())
}

/// POSTs a body to `/v1/batch` as game server `server`; returns status, headers, JSON.
pub async fn post(
    client: &reqwest::Client,
    gw: &str,
    server: &str,
    body: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    post_with(client, gw, Some(TOKEN), Some(server), body).await
}

/// POST with an explicit token and server header (None: header left out).
pub async fn post_with(
    client: &reqwest::Client,
    gw: &str,
    token: Option<&str>,
    server: Option<&str>,
    body: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = client
        .post(format!("{gw}/v1/batch"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(s) = server {
        req = req.header("x-game-server-id", s);
    }
    let resp = req.send().await.expect("gateway answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, json)
}

/// One change as JSON.
pub fn change(agent: &str, block: &str, field: &str, value: Value, seq: u64) -> Value {
    serde_json::json!({"agent_id": agent, "block": block, "field": field, "value": value, "seq": seq})
}

/// A batch body.
pub fn batch(request_id: u64, changes: Vec<Value>) -> String {
    serde_json::json!({"request_id": request_id, "kind": "urgent", "changes": changes}).to_string()
}

/// POSTs `body` as game server `job-1` in a task while Letta holds its next write (block
/// PATCH or message POST) for `hold`; returns the task once that write reached Letta (the
/// stand-in took the injected slow answer).
pub async fn post_while_letta_holds(
    letta: &npc_sync_testkit::server::TestServer,
    client: &reqwest::Client,
    gw: &str,
    body: &str,
    hold: std::time::Duration,
) -> tokio::task::JoinHandle<(u16, reqwest::header::HeaderMap, Value)> {
    letta.inject_writes([npc_sync_testkit::server::Answer::Slow(hold)]);
    let task = tokio::spawn({
        let (c, gw, body) = (client.clone(), gw.to_string(), body.to_string());
        async move { post(&c, &gw, "job-1", &body).await }
    });
    eventually("the write reached Letta", || async {
        letta.with(|s| s.write_faults.is_empty())
    })
    .await;
    task
}
