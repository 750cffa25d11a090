//! Keeps Letta's blocks equal to the store: reads a block the store has never seen (and,
//! while the start-up sweep runs, a known block before its first write), and writes each
//! agent-block through a database lease, so across all instances at most one write per
//! agent-block is in flight. The lease holder always renders the newest stored version
//! and writes again while a newer one arrived meanwhile: writes coalesce, and a request
//! only waits until Letta holds the version its batch produced. The catch-up writes, in
//! the background, every block Letta is behind on (a write that failed).

use crate::body::from_core;
use crate::letta::{Letta, LettaError};
use crate::metrics::Metrics;
use crate::shutdown::{Phase, Shutdown};
use crate::store::{BlockKey, Snapshot, Store, StoreError, WantWrite, WriteClaim};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    /// The gateway is shutting down: the write was given up.
    ShuttingDown(BlockKey),
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
            SyncError::ShuttingDown(k) => write!(f, "agent '{}' block `{}`: the gateway is shutting down before Letta took the write", k.agent, k.block),
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
    shutdown: Shutdown,
    /// Which known blocks must be read from Letta before their next write.
    sweep: Arc<Mutex<Sweep>>,
}

/// Which known blocks this run has not read from Letta yet.
#[derive(Debug)]
enum Sweep {
    /// The sweep has not listed the known blocks yet: all of them but these.
    Listing {
        /// Read already.
        done: HashSet<BlockKey>,
    },
    /// These, listed by the sweep and not read yet (the sweep is over once `running` is
    /// false; what it could not read stays here for the next request).
    Pending {
        /// Still to read.
        unread: HashSet<BlockKey>,
        /// Whether the sweep task still runs.
        running: bool,
    },
}

/// Where the start-up sweep is (for `/readyz`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepStatus {
    /// Whether it still runs.
    pub running: bool,
    /// Known blocks it has not read (yet, or because Letta failed: read before their
    /// next write).
    pub unread: usize,
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
        shutdown: Shutdown,
    ) -> Writer {
        Writer {
            store,
            letta,
            metrics,
            lease,
            instance,
            next_owner: Arc::new(AtomicU64::new(0)),
            shutdown,
            // Until the sweep has read it, a known block is read before it is written.
            sweep: Arc::new(Mutex::new(Sweep::Listing {
                done: HashSet::new(),
            })),
        }
    }

    /// The prefix of every lease owner of this instance.
    pub fn lease_prefix(&self) -> String {
        format!("{}:", self.instance)
    }

    /// Reads from Letta every block the store has never seen, so a first write never
    /// clobbers memory written before; while the start-up sweep runs, also every known
    /// block it has not read yet.
    pub async fn load(&self, keys: Vec<BlockKey>, deadline: Instant) -> Result<(), SyncError> {
        let unknown = self
            .store
            .unknown_blocks(keys.clone())
            .await
            .map_err(SyncError::Store)?;
        // Read at once (the Letta client bounds the calls in flight); the first failure
        // in body order is the answer.
        let mut tasks = tokio::task::JoinSet::new();
        for (i, key) in keys.into_iter().enumerate() {
            let first_sight = unknown.contains(&key);
            if !first_sight && self.is_swept(&key) {
                continue;
            }
            let w = self.clone();
            tasks.spawn(async move {
                let r = if first_sight {
                    w.seed(&key, deadline).await
                } else {
                    w.sweep_one(&key, deadline).await
                };
                (i, r)
            });
        }
        let mut first_error: Option<(usize, SyncError)> = None;
        while let Some(done) = tasks.join_next().await {
            if let Ok((i, Err(e))) = done {
                if first_error.as_ref().is_none_or(|(j, _)| i < *j) {
                    first_error = Some((i, e));
                }
            }
        }
        match first_error {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Reads a block the store has never seen and records it.
    async fn seed(&self, key: &BlockKey, deadline: Instant) -> Result<(), SyncError> {
        let (limit, fields, _) = self.read(key, deadline).await?;
        self.store
            .seed_block(key.clone(), fields, limit)
            .await
            .map_err(SyncError::Store)?;
        self.mark_swept(key);
        Ok(())
    }

    fn sweep_state(&self) -> std::sync::MutexGuard<'_, Sweep> {
        self.sweep.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_swept(&self, key: &BlockKey) -> bool {
        match &*self.sweep_state() {
            Sweep::Listing { done } => done.contains(key),
            Sweep::Pending { unread, .. } => !unread.contains(key),
        }
    }

    fn mark_swept(&self, key: &BlockKey) {
        match &mut *self.sweep_state() {
            Sweep::Listing { done } => {
                done.insert(key.clone());
            }
            Sweep::Pending { unread, .. } => {
                unread.remove(key);
            }
        }
    }

    /// Where the start-up sweep is.
    pub fn sweep_status(&self) -> SweepStatus {
        match &*self.sweep_state() {
            Sweep::Listing { .. } => SweepStatus {
                running: true,
                unread: 0,
            },
            Sweep::Pending { unread, running } => SweepStatus {
                running: *running,
                unread: unread.len(),
            },
        }
    }

    /// Reads a block from Letta: its limit, its fields, its text.
    async fn read(
        &self,
        key: &BlockKey,
        deadline: Instant,
    ) -> Result<(usize, Vec<(String, serde_json::Value)>, String), SyncError> {
        let block = self
            .letta
            .get_block(&key.agent, &key.block, deadline)
            .await
            .map_err(SyncError::Letta)?
            .ok_or_else(|| SyncError::NoSuchBlock(key.clone()))?;
        let parsed = npc_sync::block_text::parse(&block.value);
        if let Some(e) = parsed.errors.first() {
            return Err(SyncError::Unreadable {
                key: key.clone(),
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
        Ok((block.limit, fields, block.value))
    }

    /// Reads a known block from Letta and takes in what changed there while no gateway
    /// wrote it ([`Store::merge_letta`]).
    async fn sweep_one(&self, key: &BlockKey, deadline: Instant) -> Result<(), SyncError> {
        let (limit, fields, text) = self.read(key, deadline).await?;
        let behind = self
            .store
            .merge_letta(key.clone(), fields, limit, text)
            .await
            .map_err(SyncError::Store)?;
        if behind {
            tracing::info!(agent = %key.agent, block = %key.block, "Letta is behind the store; the catch-up writes it");
        }
        self.mark_swept(key);
        Ok(())
    }

    /// The start-up sweep: reads every block the store knows from Letta (`parallel` at a
    /// time), so memory changed in Letta while no gateway ran is kept. A block that
    /// cannot be read is logged and counted; it is read again before its next write.
    pub async fn sweep(&self, parallel: usize, call_timeout: Duration) {
        let keys = match self.store.known_blocks().await {
            Ok(k) => k,
            Err(e) => {
                // Every known block stays unread: each is read before its next write.
                tracing::error!(error = %e, "start-up sweep: cannot list the blocks");
                return;
            }
        };
        tracing::info!(
            blocks = keys.len(),
            "start-up sweep: reading the known blocks from Letta"
        );
        {
            let mut state = self.sweep_state();
            if let Sweep::Listing { done } = &*state {
                let unread = keys
                    .iter()
                    .filter(|k| !done.contains(*k))
                    .cloned()
                    .collect();
                *state = Sweep::Pending {
                    unread,
                    running: true,
                };
            }
        }
        let mut pending = keys.into_iter();
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            while tasks.len() < parallel.max(1) && self.shutdown.phase() == Phase::Serving {
                let Some(key) = pending.next() else { break };
                if self.is_swept(&key) {
                    continue;
                }
                let w = self.clone();
                tasks.spawn(async move {
                    let r = w.sweep_one(&key, Instant::now() + call_timeout * 4).await;
                    (key, r)
                });
            }
            let Some(done) = tasks.join_next().await else {
                break;
            };
            let (ok, failed) = match done {
                Ok((_, Ok(()))) => (1, 0),
                Ok((key, Err(e))) => {
                    tracing::warn!(agent = %key.agent, block = %key.block, error = %e, "start-up sweep: block not read; it is read before its next write");
                    (0, 1)
                }
                Err(e) => {
                    tracing::error!(error = %e, "start-up sweep task failed");
                    (0, 1)
                }
            };
            self.metrics.swept(ok, failed);
        }
        if let Sweep::Pending { running, unread } = &mut *self.sweep_state() {
            *running = false;
            tracing::info!(unread = unread.len(), "start-up sweep done");
        }
    }

    /// One catch-up round: writes every block Letta is behind on whose lease is free,
    /// each within `deadline`; returns how many are still behind.
    pub async fn catch_up(&self, deadline: Instant) -> Result<u64, SyncError> {
        let behind = self
            .store
            .behind(now_ms())
            .await
            .map_err(SyncError::Store)?;
        // Each block through its own `ensure` (all at once, bounded by the Letta client),
        // so each failure is counted and logged.
        let mut tasks = tokio::task::JoinSet::new();
        for b in behind {
            let w = self.clone();
            tasks.spawn(async move {
                let r = w.ensure(b.key.clone(), b.version, deadline).await;
                (b.key, r)
            });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((_, Ok(()))) => self.metrics.catch_up(true),
                Ok((key, Err(e))) => {
                    self.metrics.catch_up(false);
                    tracing::warn!(agent = %key.agent, block = %key.block, error = %e, "catch-up write failed; retried next round");
                }
                Err(e) => tracing::error!(error = %e, "catch-up task failed"),
            }
        }
        let left = self.store.behind_count().await.map_err(SyncError::Store)?;
        self.metrics.set_behind(left);
        Ok(left)
    }

    fn owner(&self) -> String {
        format!(
            "{}{}",
            self.lease_prefix(),
            self.next_owner.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Returns once Letta holds at least the given version of every block: the leases of
    /// all of them are claimed in one transaction, the free ones written at once (the
    /// Letta client bounds the calls in flight), the busy ones waited for. The first
    /// failure is the answer.
    pub async fn ensure_all(
        &self,
        wants: Vec<(BlockKey, i64)>,
        deadline: Instant,
    ) -> Result<(), SyncError> {
        for (key, _) in &wants {
            self.metrics.waiting(key, 1);
        }
        let r = self.ensure_all_inner(&wants, deadline).await;
        for (key, _) in &wants {
            self.metrics.waiting(key, -1);
        }
        r
    }

    async fn ensure_all_inner(
        &self,
        wants: &[(BlockKey, i64)],
        deadline: Instant,
    ) -> Result<(), SyncError> {
        let wanted: Vec<WantWrite> = wants
            .iter()
            .map(|(key, version)| WantWrite {
                key: key.clone(),
                version: *version,
                owner: self.owner(),
            })
            .collect();
        let now = now_ms();
        let claims = self
            .store
            .claim_writes(wanted.clone(), now, now + self.lease.as_millis() as i64)
            .await
            .map_err(SyncError::Store)?;
        let mut tasks = tokio::task::JoinSet::new();
        for (want, claim) in wanted.into_iter().zip(claims) {
            let w = self.clone();
            match claim {
                WriteClaim::Done => {}
                WriteClaim::Leased(snap) => {
                    tasks.spawn(async move {
                        w.write_leased(&want.key, &want.owner, snap, deadline).await
                    });
                }
                WriteClaim::Busy => {
                    tasks.spawn(
                        async move { w.ensure_inner(&want.key, want.version, deadline).await },
                    );
                }
            }
        }
        let mut first_error = None;
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Ok(Ok(())) => {}
                Err(e) => tracing::error!(error = %e, "block write task failed"),
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Returns once Letta holds at least `version` of the block, writing it when no other
    /// writer (of any instance) holds its lease.
    pub async fn ensure(
        &self,
        key: BlockKey,
        version: i64,
        deadline: Instant,
    ) -> Result<(), SyncError> {
        self.ensure_all(vec![(key, version)], deadline).await
    }

    /// Writes a leased block; gives the lease up when the write fails.
    async fn write_leased(
        &self,
        key: &BlockKey,
        owner: &str,
        snap: Snapshot,
        deadline: Instant,
    ) -> Result<(), SyncError> {
        let r = self.write(key, owner, snap, deadline).await;
        if r.is_err() {
            let _ = self.store.release(key.clone(), owner.to_string()).await;
        }
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
            if self.shutdown.phase() >= Phase::Abandoning {
                return Err(SyncError::ShuttingDown(key.clone()));
            }
            let owner = self.owner();
            let now = now_ms();
            let until = now + self.lease.as_millis() as i64;
            let want = WantWrite {
                key: key.clone(),
                version,
                owner: owner.clone(),
            };
            let claim = self
                .store
                .claim_writes(vec![want], now, until)
                .await
                .map_err(SyncError::Store)?
                .pop();
            match claim {
                Some(WriteClaim::Done) => return Ok(()),
                Some(WriteClaim::Leased(snap)) => {
                    self.write_leased(key, &owner, snap, deadline).await?;
                    poll = Duration::from_millis(1);
                    continue;
                }
                Some(WriteClaim::Busy) | None => {}
            }
            if Instant::now() >= deadline {
                return Err(SyncError::Timeout(key.clone()));
            }
            tokio::select! {
                _ = self.shutdown.reached(Phase::Abandoning) => {}
                _ = tokio::time::sleep(poll) => {}
            }
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
