//! The shared store: two gateway instances on one PostgreSQL cluster (started by the test
//! from the system's PostgreSQL binaries) hammering the same agent-blocks with
//! conflicting, out-of-order writes. Final state equals the highest `seq` per field, in
//! the database and in Letta, and no field ever went backwards in Letta.

mod support;

use npc_sync_testkit::server::TestServer;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use support::pg::Postgres;
use support::{batch, change, post, Gateway};

const AGENTS: usize = 4;
const FIELDS: usize = 5;
const CLIENTS_PER_GATEWAY: usize = 6;
const PAIRS_PER_CLIENT: usize = 45;
const CHANGES_PER_BATCH: usize = 10;

/// A small deterministic generator (xorshift), one per client.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn field_key(agent: usize, field: usize) -> (String, String) {
    (format!("agent-{agent}"), format!("f{field}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_never_regress_a_field() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let letta = TestServer::start_like_letta();
    for a in 0..AGENTS {
        letta.put_block(&format!("agent-{a}"), "status", "", 100_000);
    }
    let gateways = [
        Gateway::start(
            &letta.base,
            &pg.url,
            &[("instance-id", "gw-a"), ("pg-connections", "6")],
        )
        .await,
        Gateway::start(
            &letta.base,
            &pg.url,
            &[("instance-id", "gw-b"), ("pg-connections", "6")],
        )
        .await,
    ];
    let seq = Arc::new(AtomicU64::new(0));
    let highest: Arc<Mutex<HashMap<(String, String), u64>>> = Arc::default();
    let rejected = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (g, gw) in gateways.iter().enumerate() {
        for t in 0..CLIENTS_PER_GATEWAY {
            let (url, seq, highest, rejected) = (
                gw.url.clone(),
                seq.clone(),
                highest.clone(),
                rejected.clone(),
            );
            let server = format!("job-{g}-{t}");
            tasks.push(tokio::spawn(async move {
                let c = reqwest::Client::new();
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((g * 100 + t + 1) as u64));
                let mut request_id = 0;
                for _ in 0..PAIRS_PER_CLIENT {
                    // Two batches whose seqs are taken in order, sent newest first: the
                    // older one then conflicts with what this and the other instance wrote.
                    let mut make = || {
                        (0..CHANGES_PER_BATCH)
                            .map(|_| {
                                let (a, f) = (rng.below(AGENTS), rng.below(FIELDS));
                                let s = seq.fetch_add(1, Ordering::SeqCst) + 1;
                                (a, f, s)
                            })
                            .collect::<Vec<_>>()
                    };
                    let older = make();
                    let newer = make();
                    for changes in [newer, older] {
                        request_id += 1;
                        {
                            let mut h = highest.lock().unwrap();
                            for (a, f, s) in &changes {
                                let e = h.entry(field_key(*a, *f)).or_default();
                                *e = (*e).max(*s);
                            }
                        }
                        let body = batch(
                            request_id,
                            changes
                                .iter()
                                .map(|(a, f, s)| {
                                    change(
                                        &format!("agent-{a}"),
                                        "status",
                                        &format!("f{f}"),
                                        json!(s),
                                        *s,
                                    )
                                })
                                .collect(),
                        );
                        loop {
                            let (status, _, answer) = post(&c, &url, &server, &body).await;
                            if status == 503 {
                                continue;
                            }
                            assert_eq!(status, 200, "{answer}");
                            // Every confirmed value is at least as new as what was sent.
                            for conf in answer["confirmed"].as_array().unwrap() {
                                let sent = changes
                                    .iter()
                                    .filter(|(a, f, _)| {
                                        conf["agent_id"] == format!("agent-{a}")
                                            && conf["field"] == format!("f{f}")
                                    })
                                    .map(|c| c.2)
                                    .max()
                                    .unwrap();
                                assert!(
                                    conf["seq"].as_u64().unwrap() >= sent,
                                    "{conf} older than sent {sent}"
                                );
                                assert_eq!(conf["value"], json!(conf["seq"]));
                            }
                            rejected.fetch_add(
                                answer["rejected"].as_array().unwrap().len() as u64,
                                Ordering::Relaxed,
                            );
                            break;
                        }
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let writes = seq.load(Ordering::SeqCst);
    assert!(writes >= 10_000, "only {writes} writes");
    let rejected = rejected.load(Ordering::Relaxed);
    assert!(rejected > 0, "the run produced no conflicting writes");
    let highest = highest.lock().unwrap().clone();
    // Letta holds the highest seq of every field, and no PATCH ever moved a field back.
    let patches = letta.with(|st| {
        for a in 0..AGENTS {
            let key = (format!("agent-{a}"), "status".to_string());
            let parsed = npc_sync::block_text::parse(&st.blocks[&key]);
            assert!(parsed.errors.is_empty());
            for f in 0..FIELDS {
                let want = highest.get(&field_key(a, f)).copied();
                let got = parsed
                    .fields
                    .iter()
                    .find(|(n, _)| *n == format!("f{f}"))
                    .map(|(_, v)| match v {
                        npc_sync::Value::Number(n) => *n as u64,
                        other => panic!("f{f} holds {other:?}"),
                    });
                assert_eq!(got, want, "agent-{a} f{f}");
            }
            let mut last: HashMap<String, f64> = HashMap::new();
            for value in &st.history[&key] {
                for (name, v) in npc_sync::block_text::parse(value).fields {
                    let npc_sync::Value::Number(n) = v else {
                        panic!()
                    };
                    let prev = last.insert(name.clone(), n).unwrap_or(0.0);
                    assert!(
                        n >= prev,
                        "agent-{a} {name} went back from {prev} to {n} in Letta"
                    );
                }
            }
        }
        st.history.values().map(Vec::len).sum::<usize>()
    });
    // The database agrees.
    let (client, conn) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    for row in client
        .query("SELECT agent, field, seq, value FROM fields", &[])
        .await
        .unwrap()
    {
        let key = (row.get::<_, String>(0), row.get::<_, String>(1));
        let seq: i64 = row.get(2);
        assert_eq!(Some(seq as u64), highest.get(&key).copied(), "{key:?}");
        assert_eq!(
            serde_json::from_str::<Value>(row.get(3)).unwrap(),
            json!(seq)
        );
    }
    println!("{writes} writes, {rejected} rejected as older, {patches} Letta PATCHes");
    for gw in gateways {
        gw.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_same_store_checks_as_sqlite() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let store = npc_sync_gateway::store::PgStore::connect(&pg.url, 2)
        .await
        .unwrap();
    support::store_checks::claims(&store).await;
    support::store_checks::pruning(&store).await;
    support::store_checks::fields_and_leases(&store).await;
}
