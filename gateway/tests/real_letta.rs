//! Against a real Letta server (not run by `./build.sh test`; no Letta is installed there):
//!
//! ```sh
//! LETTA_URL=http://127.0.0.1:8283 LETTA_AGENT_ID=agent-... [LETTA_API_KEY=...] \
//!   cargo test --release -p npc-sync-gateway --test real_letta -- --ignored
//! ```
//!
//! The agent needs a core memory block labelled `npc_sync_test` that is empty or in the
//! block format; the test overwrites it.

mod support;

use serde_json::json;
use support::{batch, change, post, sqlite_url, Gateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real Letta server: set LETTA_URL and LETTA_AGENT_ID, run with --ignored"]
async fn real_letta_holds_what_the_gateway_confirms() {
    let url = std::env::var("LETTA_URL").expect("set LETTA_URL");
    let agent = std::env::var("LETTA_AGENT_ID").expect("set LETTA_AGENT_ID");
    let key = std::env::var("LETTA_API_KEY").unwrap_or_default();
    let mut extra = vec![];
    if !key.is_empty() {
        extra.push(("letta-api-key", key.as_str()));
    }
    let gw = Gateway::start(&url, &sqlite_url("real"), &extra).await;
    let c = reqwest::Client::new();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (s, _, a) = post(
        &c,
        &gw.url,
        "real-test",
        &batch(
            stamp,
            vec![
                change(&agent, "npc_sync_test", "location", json!("gate"), stamp),
                change(&agent, "npc_sync_test", "health", json!(62), stamp + 1),
            ],
        ),
    )
    .await;
    assert_eq!(s, 200, "{a}");
    let mut req = c.get(format!(
        "{}/v1/agents/{agent}/core-memory/blocks/npc_sync_test",
        url.trim_end_matches('/')
    ));
    if !key.is_empty() {
        req = req.bearer_auth(&key);
    }
    let block: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
    let parsed = npc_sync::block_text::parse(block["value"].as_str().unwrap());
    assert!(parsed.errors.is_empty());
    assert!(parsed
        .fields
        .contains(&("location".into(), npc_sync::Value::str("gate"))));
    assert!(parsed
        .fields
        .contains(&("health".into(), npc_sync::Value::Number(62.0))));
    gw.stop().await;
}
