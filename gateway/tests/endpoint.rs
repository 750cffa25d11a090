//! The batch endpoint against the Letta stand-in, on the embedded store (SQLite).

mod support;

use npc_sync_testkit::server::{Answer, TestServer};
use serde_json::{json, Value};
use support::{batch, change, post, post_with, sqlite_url, Gateway, TOKEN};

fn fields_of(text: &str) -> Vec<(String, npc_sync::Value)> {
    let p = npc_sync::block_text::parse(text);
    assert!(
        p.errors.is_empty(),
        "Letta holds unreadable text {text:?}: {:?}",
        p.errors
    );
    p.fields
}

async fn setup(name: &str, extra: &[(&str, &str)]) -> (TestServer, Gateway, reqwest::Client) {
    let letta = TestServer::start_like_letta();
    letta.put_block("agent-1", "status", "mood: \"calm\"", 5000);
    letta.put_block("agent-2", "status", "", 5000);
    let gw = Gateway::start(&letta.base, &sqlite_url(name), extra).await;
    (letta, gw, reqwest::Client::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_writes_letta_and_confirms_keeping_earlier_memory() {
    let (letta, gw, c) = setup("apply", &[]).await;
    let body = batch(
        12,
        vec![
            change("agent-1", "status", "location", json!("gate"), 1041),
            change("agent-1", "status", "health", json!(62), 1043),
            change("agent-2", "status", "location", json!("market"), 7),
        ],
    );
    let (status, _, answer) = post(&c, &gw.url, "job-1", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["applied"], 3);
    assert_eq!(answer["rejected"], json!([]));
    let confirmed = answer["confirmed"].as_array().unwrap();
    assert_eq!(confirmed.len(), 3);
    assert!(confirmed.contains(&json!({"agent_id": "agent-1", "block": "status", "field": "health", "value": 62, "seq": 1043})));
    // The mood written before the gateway started is kept.
    assert_eq!(
        letta.block("agent-1", "status").unwrap(),
        "health: 62\nlocation: \"gate\"\nmood: \"calm\""
    );
    assert_eq!(
        letta.block("agent-2", "status").unwrap(),
        "location: \"market\""
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_seq_is_rejected_and_confirmed_with_the_newer_value() {
    let (letta, gw, c) = setup("older", &[]).await;
    let (s, _, _) = post(
        &c,
        &gw.url,
        "job-1",
        &batch(
            1,
            vec![change("agent-1", "status", "location", json!("gate"), 10)],
        ),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, a) = post(
        &c,
        &gw.url,
        "job-1",
        &batch(
            2,
            vec![
                change("agent-1", "status", "location", json!("plaza"), 5),
                change("agent-1", "status", "health", json!(50.5), 6),
            ],
        ),
    )
    .await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["applied"], 1);
    assert_eq!(
        a["rejected"],
        json!([{"agent_id": "agent-1", "block": "status", "field": "location", "seq": 5, "held_seq": 10}])
    );
    assert!(a["confirmed"].as_array().unwrap().contains(&json!({"agent_id": "agent-1", "block": "status", "field": "location", "value": "gate", "seq": 10})));
    assert_eq!(
        letta.block("agent-1", "status").unwrap(),
        "health: 50.5\nlocation: \"gate\"\nmood: \"calm\""
    );
    // A cleared field (null) leaves the block.
    let (s, _, _) = post(
        &c,
        &gw.url,
        "job-1",
        &batch(
            3,
            vec![change("agent-1", "status", "mood", Value::Null, 11)],
        ),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        letta.block("agent-1", "status").unwrap(),
        "health: 50.5\nlocation: \"gate\""
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_request_is_answered_again_without_applying_twice() {
    let (letta, gw, c) = setup("replay", &[]).await;
    let body = batch(
        7,
        vec![change("agent-1", "status", "location", json!("gate"), 3)],
    );
    let (s1, h1, a1) = post(&c, &gw.url, "job-1", &body).await;
    assert_eq!(s1, 200);
    assert!(h1.get("idempotent-replay").is_none());
    let patches = letta.count(200);
    let (s2, h2, a2) = post(&c, &gw.url, "job-1", &body).await;
    assert_eq!((s2, &a2), (200, &a1));
    assert_eq!(h2.get("idempotent-replay").unwrap(), "true");
    assert_eq!(letta.count(200), patches, "a replay writes nothing");
    // The same id from another game server is another request.
    let (s3, h3, _) = post(&c, &gw.url, "job-2", &body).await;
    assert_eq!(s3, 200);
    assert!(h3.get("idempotent-replay").is_none());
    // The same id with another body is refused, and nothing of it applied.
    let other = batch(
        7,
        vec![change("agent-1", "status", "location", json!("moat"), 4)],
    );
    let (s4, _, a4) = post(&c, &gw.url, "job-1", &other).await;
    assert_eq!(s4, 409, "{a4}");
    assert!(a4["error"].as_str().unwrap().contains("request_id 7"));
    assert_eq!(
        letta.block("agent-1", "status").unwrap(),
        "location: \"gate\"\nmood: \"calm\""
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_and_applies_nothing() {
    let (letta, gw, c) = setup("bad", &[("max-body-bytes", "4096")]).await;
    let good = change("agent-1", "status", "location", json!("gate"), 1);
    let long = "x".repeat(16 * 1024 + 1);
    let cases: Vec<(String, u16, &str)> = vec![
        ("{not json".into(), 400, "invalid JSON"),
        (json!({"request_id": "one", "kind": "urgent", "changes": [good.clone()]}).to_string(), 400, "invalid JSON"),
        (json!({"request_id": 1, "kind": "urgent", "changes": [good.clone()], "extra": 1}).to_string(), 400, "unknown field `extra`"),
        (json!({"request_id": 1, "kind": "urgent", "changes": [{"agent_id": "agent-1", "block": "status", "field": "x", "value": 1, "seq": 1, "colour": 2}]}).to_string(), 400, "unknown field `colour`"),
        (r#"{"request_id": 1, "kind": "urgent", "changes": [{"agent_id": "agent-1", "block": "status", "field": "h", "value": NaN, "seq": 1}]}"#.into(), 400, "invalid JSON"),
        (r#"{"request_id": 1, "kind": "urgent", "changes": [{"agent_id": "agent-1", "block": "status", "field": "h", "value": 1e400, "seq": 1}]}"#.into(), 400, "invalid JSON"),
        (json!({"request_id": 1, "kind": "urgent", "changes": [good.clone(), change("agent-1", "status", "h", json!([1]), 2)]}).to_string(), 400, "changes[1]: `value` must be null"),
        (json!({"request_id": 1, "kind": "urgent", "changes": [good.clone(), change("agent-1", "status", "a:b", json!(1), 2)]}).to_string(), 400, "changes[1]: `field`"),
        (json!({"request_id": 1, "kind": "urgent", "changes": [good.clone(), change("", "status", "h", json!(1), 2)]}).to_string(), 400, "changes[1]: `agent_id`"),
        (json!({"request_id": 1, "kind": "urgent", "changes": [good.clone(), change("agent-1", "status", "h", json!(1), 0)]}).to_string(), 400, "changes[1]: `seq` must be 1 or more"),
        (json!({"request_id": 1, "kind": "sideways", "changes": [good.clone()]}).to_string(), 400, "unknown variant `sideways`"),
        (json!({"request_id": 1, "kind": "urgent"}).to_string(), 400, "missing field `changes`"),
        (json!({"request_id": 1, "kind": "urgent", "changes": [good.clone(), change("agent-1", "status", "d", json!(long), 2)]}).to_string(), 413, "larger than 4096"),
    ];
    for (body, want, says) in cases {
        let (s, _, a) = post(&c, &gw.url, "job-1", &body).await;
        assert_eq!(s, want, "{body:.200} -> {a}");
        let msg = a["error"].as_str().unwrap_or_default();
        assert!(
            msg.contains(says),
            "{body:.200}: answer {msg:?} should say {says:?}"
        );
    }
    let body = batch(1, vec![good.clone()]);
    for (token, server, want) in [
        (None, Some("job-1"), 401),
        (Some("wrong-token-0123456789abcdef"), Some("job-1"), 401),
        (Some(&TOKEN[..TOKEN.len() - 1]), Some("job-1"), 401),
        (Some(TOKEN), None, 400),
    ] {
        let (s, _, a) = post_with(&c, &gw.url, token, server, &body).await;
        assert_eq!(s, want, "{a}");
    }
    assert!(
        letta.with(|s| s.history.is_empty()),
        "nothing reached Letta"
    );
    // Nothing was stored either: seq 1 is still new.
    let (s, _, a) = post(&c, &gw.url, "job-1", &body).await;
    assert_eq!((s, &a["applied"]), (200, &json!(1)), "{a}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn letta_faults_are_retried_until_it_holds_the_value() {
    let (letta, gw, c) = setup("faults", &[]).await;
    letta.inject_writes([
        Answer::Status(500),
        Answer::TooMany(1),
        Answer::Drop,
        Answer::Conflict,
        Answer::Slow(std::time::Duration::from_millis(300)),
    ]);
    let (s, _, a) = post(
        &c,
        &gw.url,
        "job-1",
        &batch(1, vec![change("agent-1", "status", "health", json!(40), 9)]),
    )
    .await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(
        fields_of(&letta.block("agent-1", "status").unwrap())[0],
        ("health".to_string(), npc_sync::Value::Number(40.0))
    );
    assert_eq!(
        (letta.count(500), letta.count(429), letta.count(409)),
        (1, 1, 1)
    );
    assert!(letta.with(|s| s.write_faults.is_empty()));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn letta_down_gives_503_with_retry_after_and_the_retry_converges() {
    let (letta, gw, c) = setup(
        "down",
        &[
            ("answer-timeout-ms", "300"),
            ("letta-call-timeout-ms", "100"),
            ("lease-ms", "200"),
        ],
    )
    .await;
    letta.inject_writes(std::iter::repeat_n(Answer::Status(500), 1000));
    let body = batch(
        5,
        vec![change("agent-1", "status", "location", json!("gate"), 2)],
    );
    let (s, h, a) = post(&c, &gw.url, "job-1", &body).await;
    assert_eq!(s, 503, "{a}");
    assert!(h.get("retry-after").is_some());
    assert!(a["error"].as_str().unwrap().contains("Letta"), "{a}");
    letta.clear_faults();
    let (s, h, a) = post(&c, &gw.url, "job-1", &body).await;
    assert_eq!(s, 200, "{a}");
    assert!(
        h.get("idempotent-replay").is_none(),
        "a failed request is not recorded as answered"
    );
    assert_eq!(a["already_applied"], 1);
    assert_eq!(
        letta.block("agent-1", "status").unwrap(),
        "location: \"gate\"\nmood: \"calm\""
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_letta_lacks_or_that_are_not_in_the_format_are_refused_whole() {
    let (letta, gw, c) = setup("refused", &[]).await;
    letta.put_block("agent-3", "persona", "I am a guard.\nI like bread.", 5000);
    letta.put_block("agent-4", "status", "", 30);
    let ok = change("agent-1", "status", "location", json!("gate"), 1);
    for (bad, says) in [
        (
            change("agent-9", "status", "x", json!(1), 1),
            "agent 'agent-9' has no block `status` in Letta",
        ),
        (
            change("agent-3", "persona", "x", json!(1), 1),
            "not in the npc-sync block format (line 1",
        ),
        (
            change(
                "agent-4",
                "status",
                "x",
                json!("a long text, far over the limit"),
                1,
            ),
            "over its limit of 30",
        ),
    ] {
        let (s, _, a) = post(&c, &gw.url, "job-1", &batch(1, vec![ok.clone(), bad])).await;
        assert_eq!(s, 422, "{a}");
        assert!(a["error"].as_str().unwrap().contains(says), "{a}");
    }
    assert_eq!(
        letta.block("agent-1", "status").unwrap(),
        "mood: \"calm\"",
        "nothing of a refused batch applied"
    );
    assert_eq!(
        letta.block("agent-3", "persona").unwrap(),
        "I am a guard.\nI like bread."
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_goes_to_letta_messages_once() {
    let (letta, gw, c) = setup("chat", &[]).await;
    let body = json!({"request_id": 3, "kind": "inference", "agent_id": "agent-1",
        "messages": [{"sender": "player_1", "text": "hi"}, {"sender": "player_2", "text": "hello"}]}).to_string();
    let (s, _, a) = post(&c, &gw.url, "job-1", &body).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(
        a["response"]["messages"][0]["content"],
        "agent-1 heard 2 messages"
    );
    let (s, _, _) = post(&c, &gw.url, "job-1", &body).await;
    assert_eq!(s, 200);
    let seen = letta.with(|s| s.messages.clone());
    assert_eq!(seen.len(), 1, "a replayed inference is not sent twice");
    assert_eq!(
        seen[0].1["messages"][1],
        json!({"role": "user", "name": "player_2", "content": "hello"})
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_per_game_server() {
    let (_letta, gw, c) = setup("rate", &[("rate-per-s", "0.5"), ("rate-burst", "2")]).await;
    let mut statuses = Vec::new();
    for i in 1..=3 {
        let (s, h, _) = post(
            &c,
            &gw.url,
            "job-1",
            &batch(i, vec![change("agent-1", "status", "n", json!(i), i)]),
        )
        .await;
        statuses.push(s);
        if s == 429 {
            assert!(h.get("retry-after").is_some());
        }
    }
    assert_eq!(statuses, vec![200, 200, 429]);
    let (s, _, _) = post(
        &c,
        &gw.url,
        "job-2",
        &batch(1, vec![change("agent-2", "status", "n", json!(1), 1)]),
    )
    .await;
    assert_eq!(s, 200, "another game server has its own bucket");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_the_api_key_stays_secret() {
    let letta = TestServer::start_like_letta();
    letta.put_block("agent-1", "status", "", 5000);
    let key = "sk-letta-secret-key-42";
    let gw = Gateway::start(&letta.base, &sqlite_url("ops"), &[("letta-api-key", key)]).await;
    let c = reqwest::Client::new();
    assert_eq!(
        c.get(format!("{}/healthz", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(format!("{}/readyz", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (s, _, _) = post(
        &c,
        &gw.url,
        "job-1",
        &batch(1, vec![change("agent-1", "status", "x", json!(1), 1)]),
    )
    .await;
    assert_eq!(s, 200);
    let bearer = format!("Bearer {key}");
    assert!(letta.with(|s| s
        .log
        .iter()
        .any(|r| r.method == "PATCH" && r.headers.get("authorization") == Some(&bearer))));
    // A refused call's answer carries Letta's detail, never the key.
    let (s, _, a) = post(
        &c,
        &gw.url,
        "job-1",
        &batch(2, vec![change("agent-1", "nope", "x", json!(1), 1)]),
    )
    .await;
    assert_eq!(s, 422);
    assert!(!a.to_string().contains(key));
    let m = c
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("npc_sync_gateway_fields_total{outcome=\"applied\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("npc_sync_gateway_letta_calls_total{op=\"patch_block\",status=\"200\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("npc_sync_gateway_requests_total{status=\"422\"} 1"),
        "{m}"
    );
    assert!(!m.contains(key));
    gw.stop().await;
    // Letta gone: not ready.
    let gw = Gateway::start(
        "http://127.0.0.1:9",
        &sqlite_url("ops2"),
        &[("letta-call-timeout-ms", "200")],
    )
    .await;
    assert_eq!(
        c.get(format!("{}/readyz", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inference_replay_during_the_first_attempt_waits_for_its_answer() {
    let (letta, gw, c) = setup("chat-concurrent", &[]).await;
    let body = json!({"request_id": 4, "kind": "inference", "agent_id": "agent-1",
        "messages": [{"sender": "player_1", "text": "hi"}]})
    .to_string();
    // Letta takes its time answering the first attempt; the queue's retry comes meanwhile.
    let first = support::post_while_letta_holds(
        &letta,
        &c,
        &gw.url,
        &body,
        std::time::Duration::from_millis(800),
    )
    .await;
    let (s2, h2, a2) = post(&c, &gw.url, "job-1", &body).await;
    let (s1, h1, a1) = first.await.unwrap();
    assert_eq!((s1, s2), (200, 200), "{a1} {a2}");
    assert_eq!(a1, a2, "the replay gets the first attempt's answer");
    assert!(h1.get("idempotent-replay").is_none());
    assert_eq!(h2.get("idempotent-replay").unwrap(), "true");
    assert_eq!(
        letta.with(|s| s.messages.len()),
        1,
        "the messages went to Letta once"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inference_replay_past_its_deadline_gets_503_and_later_the_answer() {
    let (letta, gw, c) = setup("chat-slow", &[("answer-timeout-ms", "300")]).await;
    let body = json!({"request_id": 5, "kind": "inference", "agent_id": "agent-2",
        "messages": [{"sender": "player_1", "text": "hello"}]})
    .to_string();
    let first = support::post_while_letta_holds(
        &letta,
        &c,
        &gw.url,
        &body,
        std::time::Duration::from_millis(1500),
    )
    .await;
    let (s2, h2, a2) = post(&c, &gw.url, "job-1", &body).await;
    assert_eq!(s2, 503, "{a2}");
    assert!(h2.get("retry-after").is_some());
    assert!(
        a2["error"]
            .as_str()
            .unwrap()
            .contains("still being answered"),
        "{a2}"
    );
    let (s1, _, a1) = first.await.unwrap();
    assert_eq!(s1, 200, "{a1}");
    let (s3, _, a3) = post(&c, &gw.url, "job-1", &body).await;
    assert_eq!((s3, &a3), (200, &a1));
    assert_eq!(letta.with(|s| s.messages.len()), 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_would_overflow_a_block_stores_nothing() {
    let (letta, gw, c) = setup("limit", &[]).await;
    letta.put_block("agent-4", "status", "", 40);
    let (s, _, a) = post(
        &c,
        &gw.url,
        "job-1",
        &batch(
            1,
            vec![change("agent-4", "status", "mood", json!("calm"), 1)],
        ),
    )
    .await;
    assert_eq!(s, 200, "{a}");
    // Fits alone, but not with what the block holds: refused whole.
    let refused = batch(
        2,
        vec![
            change("agent-1", "status", "location", json!("gate"), 2),
            change("agent-4", "status", "mood", json!("furious"), 2),
            change(
                "agent-4",
                "status",
                "plan",
                json!("storm the gate at dawn"),
                3,
            ),
        ],
    );
    let (s, _, a) = post(&c, &gw.url, "job-1", &refused).await;
    assert_eq!(s, 422, "{a}");
    let msg = a["error"].as_str().unwrap();
    for says in [
        "agent 'agent-4'",
        "block `status`",
        "limit of 40",
        "nothing applied",
    ] {
        assert!(msg.contains(says), "{msg:?} should say {says:?}");
    }
    // Nothing of it was stored: the same seqs are new, not already applied.
    let (s, _, a) = post(
        &c,
        &gw.url,
        "job-1",
        &batch(
            3,
            vec![
                change("agent-1", "status", "location", json!("gate"), 2),
                change("agent-4", "status", "mood", json!("furious"), 2),
            ],
        ),
    )
    .await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(
        (&a["applied"], &a["already_applied"]),
        (&json!(2), &json!(0)),
        "{a}"
    );
    assert_eq!(
        letta.block("agent-4", "status").unwrap(),
        "mood: \"furious\""
    );
    gw.stop().await;
}
