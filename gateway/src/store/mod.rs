//! Persistent state behind one trait: field values and their sequence numbers, block
//! versions and write leases, idempotency records. SQLite is the embedded default (one
//! instance); PostgreSQL serves several instances. Every rule that must hold across
//! instances (a field only moves to a higher `seq`; one writer per agent-block) is a
//! conditional statement in the database, never an in-process lock.

mod postgres;
mod sql;
mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::body::{to_core, Change};
use serde_json::Value as Json;
use std::future::Future;
use std::pin::Pin;

/// A boxed future of a store operation.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// One agent-block.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockKey {
    /// Letta agent id.
    pub agent: String,
    /// Block label.
    pub block: String,
}

/// What happened to one change of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its `seq` was higher than the stored one: applied.
    Applied,
    /// The same `seq` and value are stored already (a retry): nothing to do.
    AlreadyApplied,
    /// Its `seq` was not higher than the stored one (older, or the same seq with another
    /// value): not applied.
    Rejected,
}

/// One change's result, with what the store holds for its field afterwards.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldResult {
    /// What happened.
    pub outcome: Outcome,
    /// The value held now.
    pub value: Json,
    /// The `seq` held now.
    pub seq: u64,
}

/// The result of applying a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// One per change, in body order.
    pub results: Vec<FieldResult>,
    /// Every touched block's version after the batch: Letta must hold at least this
    /// version before the batch is acknowledged.
    pub versions: Vec<(BlockKey, i64)>,
}

/// A block's fields at one version, to render and write.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The block version these fields are.
    pub version: i64,
    /// Non-cleared fields.
    pub fields: Vec<(String, Json)>,
    /// The block's character limit in Letta.
    pub limit: usize,
}

impl Snapshot {
    /// The block's text in the core's block format.
    pub fn render(&self, block: &str) -> Result<String, npc_sync::block_text::BlockTextError> {
        let values: Vec<(&str, npc_sync::Value)> = self
            .fields
            .iter()
            .map(|(k, v)| (k.as_str(), to_core(v)))
            .collect();
        npc_sync::block_text::render(block, values.iter().map(|(k, v)| (*k, v)), self.limit)
    }
}

/// A stored answer to a request id.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredAnswer {
    /// Hash of the request body it answered (a reused id with another body is refused).
    pub body_hash: i64,
    /// HTTP status.
    pub status: u16,
    /// Answer body.
    pub answer: String,
}

/// What the store holds for a game server's request id.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// Answered: a replay gets this answer again.
    Done(StoredAnswer),
    /// Claimed by a request still running (an inference whose messages are with Letta):
    /// a replay waits for it rather than sending the messages again.
    InProgress {
        /// Hash of the body being answered.
        body_hash: i64,
    },
}

impl Record {
    /// The record of an `answers` row (status 0: a claim still in progress).
    pub(crate) fn from_row(body_hash: i64, status: i64, answer: String) -> Record {
        if status == 0 {
            Record::InProgress { body_hash }
        } else {
            Record::Done(StoredAnswer {
                body_hash,
                status: status as u16,
                answer,
            })
        }
    }
}

/// A write a request needs: Letta must hold `version` of the block; `owner` takes the
/// lease if it is free.
#[derive(Clone, Debug, PartialEq)]
pub struct WantWrite {
    /// The block.
    pub key: BlockKey,
    /// The version Letta must hold.
    pub version: i64,
    /// The lease owner to record.
    pub owner: String,
}

/// What [`Store::claim_writes`] found for one block.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteClaim {
    /// Letta holds the version asked for already.
    Done,
    /// The lease is ours: write this snapshot.
    Leased(Snapshot),
    /// Another writer holds the lease.
    Busy,
}

/// An agent-block Letta does not hold the newest version of.
#[derive(Clone, Debug, PartialEq)]
pub struct Behind {
    /// The block.
    pub key: BlockKey,
    /// Its newest version in the store.
    pub version: i64,
}

/// Store failures.
#[derive(Debug)]
pub enum StoreError {
    /// The database failed (message without secrets).
    Db(String),
    /// Applying the batch would make a block's text longer than its limit: nothing applied.
    BlockTooLarge(String),
}

impl StoreError {
    /// A block that would not fit its limit.
    pub(crate) fn too_large(key: &BlockKey, e: npc_sync::block_text::BlockTextError) -> StoreError {
        StoreError::BlockTooLarge(format!("agent '{}': {e}", key.agent))
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Db(m) => write!(f, "database error: {m}"),
            StoreError::BlockTooLarge(m) => write!(f, "{m}"),
        }
    }
}

/// The storage operations the server needs.
pub trait Store: Send + Sync {
    /// Checks the database answers.
    fn ping(&self) -> StoreFuture<'_, ()>;
    /// What is recorded for a game server's request id.
    fn answer<'a>(&'a self, server: &'a str, request_id: u64) -> StoreFuture<'a, Option<Record>>;
    /// Claims a request id for a request that must run once (an inference): records it as
    /// in progress unless something is recorded already (returned; `None`: claimed). An
    /// in-progress record claimed before `stale_before_ms` belongs to an instance that died
    /// and is taken over.
    fn claim<'a>(
        &'a self,
        server: &'a str,
        request_id: u64,
        body_hash: i64,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> StoreFuture<'a, Option<Record>>;
    /// Stores the answer to a request id, durably (the first answer stored wins; it
    /// replaces an in-progress claim).
    fn save_answer<'a>(
        &'a self,
        server: &'a str,
        request_id: u64,
        answer: StoredAnswer,
        now_ms: i64,
    ) -> StoreFuture<'a, ()>;
    /// Drops an in-progress claim of a request that failed (a retry may run it again).
    fn abandon<'a>(&'a self, server: &'a str, request_id: u64) -> StoreFuture<'a, ()>;
    /// Deletes idempotency records made before `before_ms`; returns how many.
    fn prune(&self, before_ms: i64) -> StoreFuture<'_, u64>;
    /// Which of these blocks the store has never seen (they must be read from Letta first).
    fn unknown_blocks(&self, keys: Vec<BlockKey>) -> StoreFuture<'_, Vec<BlockKey>>;
    /// Every agent-block the store knows (the start-up sweep reads them all from Letta).
    fn known_blocks(&self) -> StoreFuture<'_, Vec<BlockKey>>;
    /// Records a block read from Letta: its fields at `seq` 0, already written. A block
    /// known already is left as it is.
    fn seed_block(
        &self,
        key: BlockKey,
        fields: Vec<(String, Json)>,
        limit: usize,
    ) -> StoreFuture<'_, ()>;
    /// Takes in a known block as Letta holds it now (the start-up sweep): fields the game
    /// never wrote (`seq` 0) follow Letta (added, changed or cleared), fields the game
    /// wrote keep the store's value, the limit follows Letta. When the block's text then
    /// differs from `letta_text`, a new version is made so the catch-up writes it. Returns
    /// whether Letta is behind the store. Fails (changing nothing) when the block would
    /// not fit the limit.
    fn merge_letta(
        &self,
        key: BlockKey,
        fields: Vec<(String, Json)>,
        limit: usize,
        letta_text: String,
    ) -> StoreFuture<'_, bool>;
    /// Applies a batch in one durable transaction: each change only if its `seq` is higher
    /// than the stored one, and only if every touched block still renders within its
    /// limit (otherwise nothing is stored).
    fn apply(&self, changes: Vec<Change>) -> StoreFuture<'_, Applied>;
    /// In one transaction, for each wanted write: `Done` when Letta holds at least its
    /// version, else takes the block's write lease (for its owner) if it is free or
    /// expired and returns the fields to write. Answers in the order asked.
    fn claim_writes(
        &self,
        wanted: Vec<WantWrite>,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreFuture<'_, Vec<WriteClaim>>;
    /// Records that Letta holds `version`. When a newer version is stored, keeps (and
    /// extends) the lease and returns it; otherwise releases the lease.
    fn finish_write(
        &self,
        key: BlockKey,
        owner: String,
        version: i64,
        until_ms: i64,
    ) -> StoreFuture<'_, Option<Snapshot>>;
    /// Gives a lease up (after a failed write).
    fn release(&self, key: BlockKey, owner: String) -> StoreFuture<'_, ()>;
    /// Gives up every lease whose owner starts with `prefix` (this instance's, at start
    /// and at shutdown).
    fn release_all(&self, prefix: String) -> StoreFuture<'_, ()>;
    /// Agent-blocks whose newest version Letta does not hold, and whose lease is free or
    /// expired at `now_ms` (the catch-up writes them).
    fn behind(&self, now_ms: i64) -> StoreFuture<'_, Vec<Behind>>;
    /// How many agent-blocks Letta is behind on.
    fn behind_count(&self) -> StoreFuture<'_, u64>;
}

/// How a store merges a block read from Letta into what it holds (one rule for both
/// stores): returns the field writes to make, as (field, value) at `seq` 0.
pub(crate) fn merge_plan(
    held: &[(String, Json, u64)],
    letta: &[(String, Json)],
) -> Vec<(String, Json)> {
    let mut out = Vec::new();
    for (name, value) in letta {
        match held.iter().find(|(n, _, _)| n == name) {
            None => out.push((name.clone(), value.clone())),
            Some((_, v, 0)) if v != value => out.push((name.clone(), value.clone())),
            Some(_) => {}
        }
    }
    for (name, value, seq) in held {
        if *seq == 0 && !value.is_null() && !letta.iter().any(|(n, _)| n == name) {
            out.push((name.clone(), Json::Null));
        }
    }
    // In field order: the order a batch's transaction locks rows in.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The changes sorted by block and field, so every transaction takes row locks in one
/// order (no deadlocks between instances); the original index is kept.
pub(crate) fn lock_order(changes: &[Change]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..changes.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&changes[a], &changes[b]);
        (&x.agent_id, &x.block, &x.field, x.seq).cmp(&(&y.agent_id, &y.block, &y.field, y.seq))
    });
    order
}

/// Decides a change's outcome from what was stored before it.
pub(crate) fn outcome(change: &Change, held_seq: u64, held_value: &Json) -> Outcome {
    if change.seq > held_seq {
        Outcome::Applied
    } else if change.seq == held_seq && change.value == *held_value {
        Outcome::AlreadyApplied
    } else {
        Outcome::Rejected
    }
}

/// A change's result after its conditional write: `held` is `None` when the write took it
/// (its `seq` was higher), else the value and `seq` the store holds.
pub(crate) fn field_result(change: &Change, held: Option<(Json, u64)>) -> FieldResult {
    match held {
        None => FieldResult {
            outcome: Outcome::Applied,
            value: change.value.clone(),
            seq: change.seq,
        },
        Some((value, seq)) => FieldResult {
            outcome: outcome(change, seq, &value),
            value,
            seq,
        },
    }
}

/// What a wanted write is when its lease could not be taken: done when Letta holds the
/// version asked for, else another writer holds the lease.
pub(crate) fn claim_without_lease(written: i64, wanted: i64) -> WriteClaim {
    if written >= wanted {
        WriteClaim::Done
    } else {
        WriteClaim::Busy
    }
}
