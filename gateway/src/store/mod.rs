//! Persistent state behind one trait: field values and their sequence numbers, block
//! versions and write leases, idempotency records. SQLite is the embedded default (one
//! instance); PostgreSQL serves several instances. Every rule that must hold across
//! instances (a field only moves to a higher `seq`; one writer per agent-block) is a
//! conditional statement in the database, never an in-process lock.

mod postgres;
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

/// Store failures.
#[derive(Debug)]
pub enum StoreError {
    /// The database failed (message without secrets).
    Db(String),
    /// Applying the batch would make a block's text longer than its limit: nothing applied.
    BlockTooLarge(String),
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
    /// The answer stored for a game server's request id.
    fn answer<'a>(
        &'a self,
        server: &'a str,
        request_id: u64,
    ) -> StoreFuture<'a, Option<StoredAnswer>>;
    /// Stores the answer to a request id (the first one stored wins).
    fn save_answer<'a>(
        &'a self,
        server: &'a str,
        request_id: u64,
        answer: StoredAnswer,
    ) -> StoreFuture<'a, ()>;
    /// Which of these blocks the store has never seen (they must be read from Letta first).
    fn unknown_blocks(&self, keys: Vec<BlockKey>) -> StoreFuture<'_, Vec<BlockKey>>;
    /// Records a block read from Letta: its fields at `seq` 0, already written. A block
    /// known already is left as it is.
    fn seed_block(
        &self,
        key: BlockKey,
        fields: Vec<(String, Json)>,
        limit: usize,
    ) -> StoreFuture<'_, ()>;
    /// Applies a batch in one transaction: each change only if its `seq` is higher than
    /// the stored one.
    fn apply(&self, changes: Vec<Change>) -> StoreFuture<'_, Applied>;
    /// The highest block version Letta is known to hold.
    fn written_version(&self, key: BlockKey) -> StoreFuture<'_, i64>;
    /// Takes the block's write lease if it is free or expired, and returns its fields.
    fn try_lease(
        &self,
        key: BlockKey,
        owner: String,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreFuture<'_, Option<Snapshot>>;
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
    /// Gives up every lease whose owner starts with `prefix` (this instance's, at start).
    fn release_all(&self, prefix: String) -> StoreFuture<'_, ()>;
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
