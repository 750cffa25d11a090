//! The gateway's life around its requests, against the Letta stand-in on SQLite: the
//! start-up sweep of known blocks, the background catch-up of blocks Letta is behind on,
//! and a shutdown that finishes or hands back the requests in flight.

mod support;

use npc_sync_testkit::server::{Answer, TestServer};
use serde_json::json;
use std::time::Duration;
use support::{
    batch, change, eventually, metrics, post, post_while_letta_holds, ready, sqlite_url, Gateway,
};

const FAST_CATCH_UP: (&str, &str) = ("catch-up-interval-ms", "100");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_sweep_keeps_memory_changed_in_letta_while_the_gateway_was_down() {
    let letta = TestServer::start_like_letta();
    letta.put_block("agent-1", "status", "mood: \"calm\"", 5000);
    let db = sqlite_url("sweep");
    let c = reqwest::Client::new();
    let gw = Gateway::start(&letta.base, &db, &[FAST_CATCH_UP]).await;
    let (s, _, a) = post(
        &c,
        &gw.url,
        "job-1",
        &batch(
            1,
            vec![change("agent-1", "status", "location", json!("gate"), 5)],
        ),
    )
    .await;
    assert_eq!(s, 200, "{a}");
    gw.stop().await;
    // While no gateway runs, the agent rewrites its mood through its memory tools, and the
    // block loses the game's field (restored from an older backup, say).
    letta.put_block("agent-1", "status", "mood: \"angry\"", 5000);

    let gw = Gateway::start(&letta.base, &db, &[FAST_CATCH_UP]).await;
    eventually("the sweep is done and Letta is caught up", || async {
        let (_, r) = ready(&c, &gw.url).await;
        r["start_sweep"] == "done" && r["blocks_behind"] == 0
    })
    .await;
    // Without any request: the game's field is back, the agent's mood is kept.
    assert_eq!(
        letta.block("agent-1", "status").unwrap(),
        "location: \"gate\"\nmood: \"angry\""
    );
    let m = metrics(&c, &gw.url).await;
    assert!(
        m.contains("npc_sync_gateway_sweep_blocks_total{outcome=\"read\"} 1"),
        "{m}"
    );
    // The next write keeps the mood too.
    let (s, _, a) = post(
        &c,
        &gw.url,
        "job-1",
        &batch(2, vec![change("agent-1", "status", "health", json!(7), 6)]),
    )
    .await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(
        letta.block("agent-1", "status").unwrap(),
        "health: 7\nlocation: \"gate\"\nmood: \"angry\""
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_whose_write_failed_is_caught_up_in_the_background() {
    let letta = TestServer::start_like_letta();
    letta.put_block("agent-1", "status", "", 5000);
    let c = reqwest::Client::new();
    let gw = Gateway::start(
        &letta.base,
        &sqlite_url("catchup"),
        &[
            FAST_CATCH_UP,
            ("answer-timeout-ms", "300"),
            ("letta-call-timeout-ms", "100"),
            ("lease-ms", "200"),
        ],
    )
    .await;
    letta.inject_writes(std::iter::repeat_n(Answer::Status(500), 100_000));
    let (s, h, a) = post(
        &c,
        &gw.url,
        "job-1",
        &batch(1, vec![change("agent-1", "status", "health", json!(3), 4)]),
    )
    .await;
    assert_eq!(s, 503, "{a}");
    assert!(h.get("retry-after").is_some());
    // Letta keeps failing: the block shows as behind, and the catch-up keeps trying.
    eventually("the catch-up has tried and failed", || async {
        metrics(&c, &gw.url)
            .await
            .contains("npc_sync_gateway_catch_up_writes_total{outcome=\"failed\"}")
            && !metrics(&c, &gw.url)
                .await
                .contains("npc_sync_gateway_catch_up_writes_total{outcome=\"failed\"} 0")
    })
    .await;
    let (status, r) = ready(&c, &gw.url).await;
    assert_eq!((status, &r["blocks_behind"]), (200, &json!(1)), "{r}");
    assert!(metrics(&c, &gw.url)
        .await
        .contains("npc_sync_gateway_blocks_behind 1"));
    // Letta recovers: the catch-up writes the block though the game never retried.
    letta.clear_faults();
    eventually("Letta holds the stored value", || async {
        letta.block("agent-1", "status").as_deref() == Some("health: 3")
    })
    .await;
    eventually("no block is behind", || async {
        ready(&c, &gw.url).await.1["blocks_behind"] == 0
    })
    .await;
    assert!(!metrics(&c, &gw.url)
        .await
        .contains("npc_sync_gateway_catch_up_writes_total{outcome=\"written\"} 0"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_request_in_flight_finish_within_the_grace() {
    let letta = TestServer::start_like_letta();
    letta.put_block("agent-1", "status", "", 5000);
    let c = reqwest::Client::new();
    let gw = Gateway::start(
        &letta.base,
        &sqlite_url("drain"),
        &[("shutdown-grace-ms", "20000")],
    )
    .await;
    letta.set_patch_delay(Duration::from_millis(500));
    let url = gw.url.clone();
    let in_flight = tokio::spawn({
        let c = c.clone();
        async move {
            post(
                &c,
                &url,
                "job-1",
                &batch(1, vec![change("agent-1", "status", "health", json!(9), 2)]),
            )
            .await
        }
    });
    eventually("the write is inside Letta", || async {
        letta.with(|s| s.busy())
    })
    .await;
    let stopped = tokio::spawn(gw.stop());
    let (s, _, a) = in_flight.await.unwrap();
    assert_eq!(s, 200, "{a}");
    stopped.await.unwrap();
    assert_eq!(letta.block("agent-1", "status").unwrap(), "health: 9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hands_back_what_letta_did_not_take_within_the_grace() {
    let letta = TestServer::start_like_letta();
    letta.put_block("agent-1", "status", "", 5000);
    let db = sqlite_url("handback");
    let c = reqwest::Client::new();
    let gw = Gateway::start(
        &letta.base,
        &db,
        &[
            ("shutdown-grace-ms", "200"),
            ("answer-timeout-ms", "60000"),
            ("letta-call-timeout-ms", "30000"),
            ("lease-ms", "60000"),
        ],
    )
    .await;
    // Letta hangs on this write far longer than the shutdown grace.
    let body = batch(
        1,
        vec![change("agent-1", "status", "location", json!("moat"), 3)],
    );
    let in_flight =
        post_while_letta_holds(&letta, &c, &gw.url, &body, Duration::from_secs(20)).await;
    let stopped = tokio::spawn(gw.stop());
    let (s, h, a) = in_flight.await.unwrap();
    assert_eq!(s, 503, "unfinished work is handed back: {a}");
    assert!(h.get("retry-after").is_some());
    assert!(
        a["error"].as_str().unwrap().contains("shutting down"),
        "{a}"
    );
    stopped.await.unwrap();
    assert_eq!(letta.block("agent-1", "status").unwrap(), "");

    // The next instance on the same database writes what was stored, and the queue's
    // retry finds it applied.
    let gw = Gateway::start(&letta.base, &db, &[FAST_CATCH_UP]).await;
    eventually("the catch-up wrote the stored value", || async {
        letta.block("agent-1", "status").as_deref() == Some("location: \"moat\"")
    })
    .await;
    let (s, _, a) = post(&c, &gw.url, "job-1", &body).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["already_applied"], 1, "{a}");
    gw.stop().await;
}
