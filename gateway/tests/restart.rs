//! The gateway binary killed mid-batch (SIGKILL while Letta is taking the write), then
//! restarted on the same SQLite file: nothing acknowledged is lost and the retry converges.

mod support;

use npc_sync_testkit::server::TestServer;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::pg::free_port;
use support::{batch, change, post, sqlite_url, TOKEN};

fn spawn(letta: &str, db: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_npc-sync-gateway"))
        .args([
            "--letta-url",
            letta,
            "--database",
            db,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("NPC_SYNC_GATEWAY_TOKEN", TOKEN)
        .env("NPC_SYNC_GATEWAY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting npc-sync-gateway")
}

async fn wait_healthy(c: &reqwest::Client, url: &str) {
    let started = Instant::now();
    loop {
        if let Ok(r) = c.get(format!("{url}/healthz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "gateway did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_batch_then_restarted_loses_nothing_acknowledged() {
    let letta = TestServer::start_like_letta();
    letta.put_block("agent-1", "status", "", 5000);
    let db = sqlite_url("restart");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let c = reqwest::Client::new();
    let mut gw = spawn(&letta.base, &db, port);
    wait_healthy(&c, &url).await;

    let first = batch(
        1,
        vec![change("agent-1", "status", "location", json!("gate"), 10)],
    );
    let (s, _, a) = post(&c, &url, "job-1", &first).await;
    assert_eq!(s, 200, "{a}");

    // Letta now takes 1 s per write: the kill lands while the second batch is in flight.
    letta.set_patch_delay(Duration::from_millis(1000));
    let second = batch(
        2,
        vec![
            change("agent-1", "status", "health", json!(30), 11),
            change("agent-1", "status", "location", json!("moat"), 12),
        ],
    );
    let in_flight = {
        let (c, url, second) = (c.clone(), url.clone(), second.clone());
        tokio::spawn(async move {
            c.post(format!("{url}/v1/batch"))
                .bearer_auth(TOKEN)
                .header("x-game-server-id", "job-1")
                .body(second)
                .send()
                .await
        })
    };
    // Wait until the second batch's write is inside Letta's handler.
    let started = Instant::now();
    while !letta_busy(&letta) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the second batch never reached Letta"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gw.kill().unwrap();
    gw.wait().unwrap();
    assert!(
        in_flight.await.unwrap().is_err(),
        "the killed gateway never answered"
    );

    letta.set_patch_delay(Duration::ZERO);
    let mut gw = spawn(&letta.base, &db, port);
    wait_healthy(&c, &url).await;
    // The acknowledged first batch survived: an older write of its field is rejected.
    let (s, _, a) = post(
        &c,
        &url,
        "job-1",
        &batch(
            3,
            vec![change("agent-1", "status", "location", json!("old"), 9)],
        ),
    )
    .await;
    assert_eq!(s, 200, "{a}");
    assert!(a["rejected"][0]["held_seq"].as_u64().unwrap() >= 10, "{a}");
    // The game retries the unanswered batch: it converges.
    let (s, _, a) = post(&c, &url, "job-1", &second).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(
        letta.block("agent-1", "status").unwrap(),
        "health: 30\nlocation: \"moat\""
    );
    gw.kill().unwrap();
    gw.wait().unwrap();
}

fn letta_busy(letta: &TestServer) -> bool {
    letta.with(|s| s.busy())
}
