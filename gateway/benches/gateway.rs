//! `cargo bench -p npc-sync-gateway`: batches a second and the latency the gateway adds
//! (p50, p99) for batches of 1, 10 and 100 agent-blocks, one batch at a time, against the
//! Letta stand-in answering at once, on the embedded store (SQLite, synchronous FULL).

#[path = "../tests/support/mod.rs"]
mod support;

use npc_sync_testkit::server::TestServer;
use serde_json::json;
use std::time::{Duration, Instant};
use support::{batch, change, post, sqlite_url, Gateway};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for (blocks, batches) in [(1usize, 400usize), (10, 200), (100, 40)] {
            let letta = TestServer::start_like_letta();
            for a in 0..blocks {
                letta.put_block(&format!("agent-{a}"), "status", "", 5000);
            }
            let gw = Gateway::start(&letta.base, &sqlite_url(&format!("bench{blocks}")), &[]).await;
            let c = reqwest::Client::new();
            let mut seq = 0u64;
            let mut body = |request_id: u64| {
                let changes = (0..blocks)
                    .flat_map(|a| {
                        seq += 2;
                        [
                            change(
                                &format!("agent-{a}"),
                                "status",
                                "health",
                                json!(seq % 100),
                                seq - 1,
                            ),
                            change(
                                &format!("agent-{a}"),
                                "status",
                                "location",
                                json!(format!("zone-{seq}")),
                                seq,
                            ),
                        ]
                    })
                    .collect();
                batch(request_id, changes)
            };
            // The first batch reads every block from Letta; it is not measured.
            let (s, _, _) = post(&c, &gw.url, "bench", &body(0)).await;
            assert_eq!(s, 200);
            let mut took: Vec<Duration> = Vec::with_capacity(batches);
            let started = Instant::now();
            for i in 1..=batches as u64 {
                let b = body(i);
                let t = Instant::now();
                let (s, _, a) = post(&c, &gw.url, "bench", &b).await;
                took.push(t.elapsed());
                assert_eq!(s, 200, "{a}");
            }
            let total = started.elapsed();
            took.sort();
            let pct = |p: f64| {
                took[((took.len() as f64 * p).ceil() as usize).clamp(1, took.len()) - 1]
                    .as_secs_f64()
                    * 1000.0
            };
            println!(
                "gateway batch_blocks={blocks} batches_per_s={:.1} p50_ms={:.2} p99_ms={:.2}",
                batches as f64 / total.as_secs_f64(),
                pct(0.5),
                pct(0.99)
            );
            gw.stop().await;
        }
    });
}
