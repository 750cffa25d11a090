//! Keeps Letta's blocks equal to the store: reads a block the store has never seen, and
//! writes each agent-block through a database lease, so across all instances at most one
//! write per agent-block is in flight. The lease holder always renders the newest stored
//! version and writes again while a newer one arrived meanwhile: writes coalesce, and a
//! request only waits until Letta holds the version its batch produced.

use crate::body::from_core;
use crate::letta::{Letta, LettaError};
use crate::metrics::Metrics;
use crate::store::{BlockKey, Snapshot, Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Why Letta could not be brought to a version.
#[derive(Debug)]
pub enum SyncError {
    /// Letta failed.
    Letta(LettaError),
    /// The store failed.
    Store(StoreError),
    /// The deadline passed while another writer held the block.
    Timeout(BlockKey),
    /// Letta has no such block for the agent.
    NoSuchBlock(BlockKey),
    /// The block's text in Letta is not in the block format: writing would clobber it.
    Unreadable {
        /// The block.
        key: BlockKey,
        /// The first unreadable line and why.
        detail: String,
    },
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::Letta(e) => e.fmt(f),
            SyncError::Store(e) => e.fmt(f),
            SyncError::Timeout(k) => write!(f, "agent '{}' block `{}`: Letta did not take the write in time", k.agent, k.block),
            SyncError::NoSuchBlock(k) => write!(f, "agent '{}' has no block `{}` in Letta", k.agent, k.block),
            SyncError::Unreadable { key, detail } => write!(
                f,
                "agent '{}' block `{}` in Letta is not in the npc-sync block format ({detail}); refusing to overwrite it",
                key.agent, key.block
            ),
        }
    }
}

/// The block synchroniser.
#[derive(Clone)]
pub struct Writer {
    store: Arc<dyn Store>,
    letta: Letta,
    metrics: Arc<Metrics>,
    lease: Duration,
    instance: String,
    next_owner: Arc<AtomicU64>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Writer {
    /// A writer whose leases carry `instance` (see [`Writer::lease_prefix`]).
    pub fn new(
        store: Arc<dyn Store>,
        letta: Letta,
        metrics: Arc<Metrics>,
        lease: Duration,
        instance: String,
    ) -> Writer {
        Writer {
            store,
            letta,
            metrics,
            lease,
            instance,
            next_owner: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The prefix of every lease owner of this instance.
    pub fn lease_prefix(&self) -> String {
        format!("{}:", self.instance)
    }

    /// Reads from Letta every block the store has never seen, so a first write never
    /// clobbers memory written before.
    pub async fn load(&self, keys: Vec<BlockKey>, deadline: Instant) -> Result<(), SyncError> {
        let unknown = self
            .store
            .unknown_blocks(keys)
            .await
            .map_err(SyncError::Store)?;
        for key in unknown {
            let block = self
                .letta
                .get_block(&key.agent, &key.block, deadline)
                .await
                .map_err(SyncError::Letta)?
                .ok_or_else(|| SyncError::NoSuchBlock(key.clone()))?;
            let parsed = npc_sync::block_text::parse(&block.value);
            if let Some(e) = parsed.errors.first() {
                return Err(SyncError::Unreadable {
                    key,
                    detail: format!(
                        "line {}: {} ({:?})",
                        e.line,
                        e.reason,
                        e.text.chars().take(80).collect::<String>()
                    ),
                });
            }
            let fields = parsed
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), from_core(v)))
                .collect();
            self.store
                .seed_block(key, fields, block.limit)
                .await
                .map_err(SyncError::Store)?;
        }
        Ok(())
    }

    /// Returns once Letta holds at least `version` of the block, writing it when no other
    /// writer (of any instance) holds its lease.
    pub async fn ensure(
        &self,
        key: BlockKey,
        version: i64,
        deadline: Instant,
    ) -> Result<(), SyncError> {
        self.metrics.waiting(&key, 1);
        let r = self.ensure_inner(&key, version, deadline).await;
        self.metrics.waiting(&key, -1);
        r
    }

    async fn ensure_inner(
        &self,
        key: &BlockKey,
        version: i64,
        deadline: Instant,
    ) -> Result<(), SyncError> {
        let mut poll = Duration::from_millis(1);
        loop {
            if self
                .store
                .written_version(key.clone())
                .await
                .map_err(SyncError::Store)?
                >= version
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(SyncError::Timeout(key.clone()));
            }
            let owner = format!(
                "{}{}",
                self.lease_prefix(),
                self.next_owner.fetch_add(1, Ordering::Relaxed)
            );
            let now = now_ms();
            let until = now + self.lease.as_millis() as i64;
            if let Some(snap) = self
                .store
                .try_lease(key.clone(), owner.clone(), now, until)
                .await
                .map_err(SyncError::Store)?
            {
                if let Err(e) = self.write(key, &owner, snap, deadline).await {
                    let _ = self.store.release(key.clone(), owner).await;
                    return Err(e);
                }
                poll = Duration::from_millis(1);
                continue;
            }
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(Duration::from_millis(20));
        }
    }

    /// Writes the snapshot, then any newer version stored meanwhile, then gives the lease up.
    async fn write(
        &self,
        key: &BlockKey,
        owner: &str,
        mut snap: Snapshot,
        deadline: Instant,
    ) -> Result<(), SyncError> {
        loop {
            let text = snap.render(&key.block).map_err(|e| {
                SyncError::Store(StoreError::BlockTooLarge(format!(
                    "agent '{}': {e}",
                    key.agent
                )))
            })?;
            // A write may run past the caller's deadline but never past the lease.
            let lease_end = Instant::now() + self.lease.mul_f64(0.8);
            self.letta
                .patch_block(
                    &key.agent,
                    &key.block,
                    &text,
                    deadline.max(Instant::now()).min(lease_end),
                )
                .await
                .map_err(SyncError::Letta)?;
            let until = now_ms() + self.lease.as_millis() as i64;
            match self
                .store
                .finish_write(key.clone(), owner.to_string(), snap.version, until)
                .await
                .map_err(SyncError::Store)?
            {
                Some(next) => snap = next,
                None => return Ok(()),
            }
        }
    }
}
