//! Checks of the idempotency records that every store must pass (SQLite and PostgreSQL
//! run the same ones): claims of requests that must run once, answers, pruning.

use npc_sync_gateway::store::{Record, Store, StoredAnswer};

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
