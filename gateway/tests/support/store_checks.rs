//! Checks that every store must pass (SQLite and PostgreSQL run the same ones): claims of
//! requests that must run once, answers, pruning; fields and write leases.

use npc_sync_gateway::body::Change;
use npc_sync_gateway::store::{
    Applied, BlockKey, Outcome, Record, Store, StoredAnswer, WantWrite, WriteClaim,
};

fn answer(hash: i64, text: &str) -> StoredAnswer {
    StoredAnswer {
        body_hash: hash,
        status: 200,
        answer: text.into(),
    }
}

/// Claims: one owner, a replay sees the claim, a dead owner's claim is taken over, the
/// answer replaces the claim, a failed attempt's claim is dropped.
pub async fn claims(store: &dyn Store) {
    assert_eq!(store.claim("job-1", 1, 11, 1_000, 0).await.unwrap(), None);
    assert_eq!(
        store.claim("job-1", 1, 11, 1_100, 0).await.unwrap(),
        Some(Record::InProgress { body_hash: 11 }),
        "a second claim of a running request is refused"
    );
    assert_eq!(
        store.answer("job-1", 1).await.unwrap(),
        Some(Record::InProgress { body_hash: 11 })
    );
    // Another game server's request 1 is another request.
    assert_eq!(store.claim("job-2", 1, 11, 1_100, 0).await.unwrap(), None);
    // A claim made before `stale_before_ms` is a dead instance's: taken over.
    assert_eq!(
        store.claim("job-1", 1, 11, 9_000, 2_000).await.unwrap(),
        None
    );
    store
        .save_answer("job-1", 1, answer(11, "first"), 9_500)
        .await
        .unwrap();
    assert_eq!(
        store.claim("job-1", 1, 11, 20_000, 19_000).await.unwrap(),
        Some(Record::Done(answer(11, "first"))),
        "an answered request is never claimed again, however old"
    );
    // The first answer stored wins.
    store
        .save_answer("job-1", 1, answer(11, "second"), 9_600)
        .await
        .unwrap();
    store.abandon("job-1", 1).await.unwrap();
    assert_eq!(
        store.answer("job-1", 1).await.unwrap(),
        Some(Record::Done(answer(11, "first")))
    );
    // A failed attempt drops its claim: the retry runs it.
    store.abandon("job-2", 1).await.unwrap();
    assert_eq!(store.answer("job-2", 1).await.unwrap(), None);
    assert_eq!(store.claim("job-2", 1, 11, 9_700, 0).await.unwrap(), None);
}

/// Pruning deletes the records made before the cutoff, and only those.
pub async fn pruning(store: &dyn Store) {
    store
        .save_answer("job-p", 1, answer(1, "old"), 1_000)
        .await
        .unwrap();
    store
        .save_answer("job-p", 2, answer(2, "new"), 5_000)
        .await
        .unwrap();
    assert_eq!(store.claim("job-p", 3, 3, 2_000, 0).await.unwrap(), None);
    assert_eq!(store.prune(3_000).await.unwrap(), 2);
    assert_eq!(store.answer("job-p", 1).await.unwrap(), None);
    assert_eq!(store.answer("job-p", 3).await.unwrap(), None);
    assert_eq!(
        store.answer("job-p", 2).await.unwrap(),
        Some(Record::Done(answer(2, "new")))
    );
    assert_eq!(store.prune(3_000).await.unwrap(), 0);
}

fn key(agent: &str) -> BlockKey {
    BlockKey {
        agent: agent.into(),
        block: "status".into(),
    }
}

fn want(agent: &str, version: i64, owner: &str) -> WantWrite {
    WantWrite {
        key: key(agent),
        version,
        owner: owner.into(),
    }
}

/// Applies one change to a block.
async fn set(store: &dyn Store, agent: &str, field: &str, value: i64, seq: u64) -> Applied {
    let change: Change = serde_json::from_value(serde_json::json!(
        {"agent_id": agent, "block": "status", "field": field, "value": value, "seq": seq}
    ))
    .unwrap();
    store.apply(vec![change]).await.unwrap()
}

/// Fields and write leases: a field moves only to a higher `seq`; one lease holder per
/// block; finishing a write records the version Letta holds (never lower) and hands the
/// lease on while a newer version waits; releasing by owner prefix frees only that
/// owner's leases.
pub async fn fields_and_leases(store: &dyn Store) {
    let a = set(store, "a", "hp", 5, 2).await;
    assert_eq!(a.results[0].outcome, Outcome::Applied);
    assert_eq!(a.versions, vec![(key("a"), 1)]);
    let older = set(store, "a", "hp", 4, 1).await;
    assert_eq!(
        (older.results[0].outcome, older.results[0].seq),
        (Outcome::Rejected, 2)
    );
    let again = set(store, "a", "hp", 5, 2).await;
    assert_eq!(again.results[0].outcome, Outcome::AlreadyApplied);
    assert_eq!(again.versions, vec![(key("a"), 1)], "nothing new to write");
    set(store, "b", "hp", 1, 1).await;

    let claims = store
        .claim_writes(
            vec![want("a", 1, "gw-1/x"), want("b", 1, "gw-2/y")],
            100,
            1_000,
        )
        .await
        .unwrap();
    assert!(matches!(&claims[0], WriteClaim::Leased(s) if s.version == 1));
    assert!(matches!(&claims[1], WriteClaim::Leased(_)));
    let busy = store
        .claim_writes(vec![want("a", 1, "gw-3/z")], 200, 1_000)
        .await
        .unwrap();
    assert_eq!(busy, vec![WriteClaim::Busy]);

    // A newer version while the write is in flight: finishing keeps the lease, returns it.
    set(store, "a", "hp", 6, 3).await;
    let next = store
        .finish_write(key("a"), "gw-1/x".into(), 1, 2_000)
        .await
        .unwrap();
    assert!(matches!(&next, Some(s) if s.version == 2), "{next:?}");
    let done = store
        .finish_write(key("a"), "gw-1/x".into(), 2, 2_000)
        .await
        .unwrap();
    assert_eq!(done, None);
    // An older write finishing late never moves the written version back.
    assert_eq!(
        store
            .finish_write(key("a"), "gw-1/x".into(), 1, 2_000)
            .await
            .unwrap(),
        None
    );
    let after = store
        .claim_writes(vec![want("a", 2, "gw-3/z")], 300, 1_000)
        .await
        .unwrap();
    assert_eq!(after, vec![WriteClaim::Done]);
    assert_eq!(store.behind_count().await.unwrap(), 1, "only b is behind");

    // Releasing gw-1's leases leaves gw-2's: b stays leased until gw-2 lets go.
    store.release_all("gw-1/".into()).await.unwrap();
    assert_eq!(
        store
            .claim_writes(vec![want("b", 1, "gw-3/z")], 300, 1_000)
            .await
            .unwrap(),
        vec![WriteClaim::Busy]
    );
    assert!(
        store.behind(300).await.unwrap().is_empty(),
        "b's lease holds"
    );
    store.release_all("gw-2/".into()).await.unwrap();
    let behind = store.behind(300).await.unwrap();
    assert_eq!(behind.len(), 1);
    assert_eq!((behind[0].key.clone(), behind[0].version), (key("b"), 1));
}
