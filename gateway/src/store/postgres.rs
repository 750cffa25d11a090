//! The shared store for several instances: PostgreSQL through a few connections. A field
//! moves only through `INSERT ... ON CONFLICT DO UPDATE ... WHERE fields.seq < EXCLUDED.seq`
//! (the row stays locked until commit), so two instances applying the same field at once
//! can never move it backwards; block leases are conditional updates too.

use super::{
    lock_order, merge_plan, outcome, Applied, Behind, BlockKey, FieldResult, Outcome, Record,
    Snapshot, Store, StoreError, StoreFuture, StoredAnswer, WantWrite, WriteClaim,
};
use crate::body::Change;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio_postgres::{Client, GenericClient, NoTls};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS blocks (
  agent TEXT NOT NULL, block TEXT NOT NULL,
  version BIGINT NOT NULL, written_version BIGINT NOT NULL, char_limit BIGINT NOT NULL,
  lease_owner TEXT, lease_until BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (agent, block));
CREATE TABLE IF NOT EXISTS fields (
  agent TEXT NOT NULL, block TEXT NOT NULL, field TEXT NOT NULL,
  value TEXT NOT NULL, seq BIGINT NOT NULL,
  PRIMARY KEY (agent, block, field));
CREATE TABLE IF NOT EXISTS answers (
  server TEXT NOT NULL, request_id BIGINT NOT NULL,
  body_hash BIGINT NOT NULL, status INTEGER NOT NULL, answer TEXT NOT NULL,
  created_ms BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (server, request_id));
ALTER TABLE answers ADD COLUMN IF NOT EXISTS created_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS answers_created ON answers (created_ms);
CREATE INDEX IF NOT EXISTS blocks_behind ON blocks (written_version, version);
";

/// PostgreSQL-backed store.
#[derive(Clone)]
pub struct PgStore {
    clients: Arc<Vec<Mutex<Client>>>,
    next: Arc<AtomicUsize>,
}

fn db(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
}

/// A transaction that lost a deadlock or serialization race is retried this many times.
const TX_ATTEMPTS: usize = 5;

impl PgStore {
    /// Connects `connections` clients to `url` (a libpq URL or key=value string) and
    /// creates the tables if needed.
    pub async fn connect(url: &str, connections: usize) -> Result<PgStore, StoreError> {
        let mut clients = Vec::new();
        for _ in 0..connections.max(1) {
            let (client, connection) = tokio_postgres::connect(url, NoTls)
                .await
                .map_err(|e| db(format!("connecting to PostgreSQL: {e}")))?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::error!(error = %e, "PostgreSQL connection closed");
                }
            });
            clients.push(Mutex::new(client));
        }
        // Two instances starting at once may race on CREATE TABLE IF NOT EXISTS.
        let c = clients[0].lock().await;
        c.batch_execute("SELECT pg_advisory_lock(727)")
            .await
            .map_err(db)?;
        let created = c.batch_execute(SCHEMA).await.map_err(db);
        c.batch_execute("SELECT pg_advisory_unlock(727)")
            .await
            .map_err(db)?;
        created?;
        drop(c);
        Ok(PgStore {
            clients: Arc::new(clients),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn client(&self) -> &Mutex<Client> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        &self.clients[i]
    }
}

async fn snapshot(c: &impl GenericClient, key: &BlockKey) -> Result<Snapshot, StoreError> {
    let row = c
        .query_one(
            "SELECT version, char_limit FROM blocks WHERE agent = $1 AND block = $2",
            &[&key.agent, &key.block],
        )
        .await
        .map_err(db)?;
    let rows = c
        .query(
            "SELECT field, value FROM fields WHERE agent = $1 AND block = $2 AND value <> 'null' ORDER BY field",
            &[&key.agent, &key.block],
        )
        .await
        .map_err(db)?;
    let fields = rows
        .iter()
        .map(|r| {
            Ok((
                r.get::<_, String>(0),
                serde_json::from_str(r.get::<_, &str>(1)).map_err(db)?,
            ))
        })
        .collect::<Result<Vec<(String, Json)>, StoreError>>()?;
    Ok(Snapshot {
        version: row.get(0),
        fields,
        limit: row.get::<_, i64>(1) as usize,
    })
}

async fn lookup(
    c: &impl GenericClient,
    server: &str,
    request_id: u64,
) -> Result<Option<Record>, StoreError> {
    let row = c
        .query_opt(
            "SELECT body_hash, status, answer FROM answers WHERE server = $1 AND request_id = $2",
            &[&server, &(request_id as i64)],
        )
        .await
        .map_err(db)?;
    Ok(row.map(|r| {
        let status = r.get::<_, i32>(1);
        if status == 0 {
            Record::InProgress {
                body_hash: r.get(0),
            }
        } else {
            Record::Done(StoredAnswer {
                body_hash: r.get(0),
                status: status as u16,
                answer: r.get(2),
            })
        }
    }))
}

fn retryable(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    matches!(e.code(), Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE)
}

async fn apply_once(
    client: &mut Client,
    changes: &[Change],
) -> Result<Result<Applied, StoreError>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let mut results: Vec<Option<FieldResult>> = vec![None; changes.len()];
    let mut touched: BTreeMap<BlockKey, bool> = BTreeMap::new();
    for i in lock_order(changes) {
        let ch = &changes[i];
        let key = BlockKey {
            agent: ch.agent_id.clone(),
            block: ch.block.clone(),
        };
        let value = ch.value.to_string();
        let seq = ch.seq as i64;
        let applied_row = tx
            .query_opt(
                "INSERT INTO fields (agent, block, field, value, seq) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (agent, block, field) DO UPDATE SET value = EXCLUDED.value, seq = EXCLUDED.seq
                 WHERE fields.seq < EXCLUDED.seq RETURNING seq",
                &[&ch.agent_id, &ch.block, &ch.field, &value, &seq],
            )
            .await?;
        let result = if applied_row.is_some() {
            FieldResult {
                outcome: Outcome::Applied,
                value: ch.value.clone(),
                seq: ch.seq,
            }
        } else {
            let row = tx
                .query_one(
                    "SELECT value, seq FROM fields WHERE agent = $1 AND block = $2 AND field = $3",
                    &[&ch.agent_id, &ch.block, &ch.field],
                )
                .await?;
            let held: Json = match serde_json::from_str(row.get::<_, &str>(0)) {
                Ok(v) => v,
                Err(e) => return Ok(Err(db(e))),
            };
            let held_seq = row.get::<_, i64>(1) as u64;
            FieldResult {
                outcome: outcome(ch, held_seq, &held),
                value: held,
                seq: held_seq,
            }
        };
        *touched.entry(key).or_insert(false) |= result.outcome == Outcome::Applied;
        results[i] = Some(result);
    }
    let mut versions = Vec::new();
    for (key, applied) in touched {
        tx.execute(
            "INSERT INTO blocks (agent, block, version, written_version, char_limit) VALUES ($1, $2, 0, 0, $3)
             ON CONFLICT DO NOTHING",
            &[&key.agent, &key.block, &(crate::letta::DEFAULT_BLOCK_LIMIT as i64)],
        )
        .await?;
        if applied {
            tx.execute(
                "UPDATE blocks SET version = version + 1 WHERE agent = $1 AND block = $2",
                &[&key.agent, &key.block],
            )
            .await?;
        }
        let snap = match snapshot(&tx, &key).await {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        if applied {
            if let Err(e) = snap.render(&key.block) {
                return Ok(Err(StoreError::BlockTooLarge(format!(
                    "agent '{}': {e}",
                    key.agent
                ))));
            }
        }
        versions.push((key, snap.version));
    }
    tx.commit().await?;
    Ok(Ok(Applied {
        results: results
            .into_iter()
            .map(|r| r.expect("every change has a result"))
            .collect(),
        versions,
    }))
}

impl Store for PgStore {
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.client()
                .lock()
                .await
                .simple_query("SELECT 1")
                .await
                .map(|_| ())
                .map_err(db)
        })
    }

    fn answer<'a>(&'a self, server: &'a str, request_id: u64) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async move {
            let c = self.client().lock().await;
            lookup(&*c, server, request_id).await
        })
    }

    fn claim<'a>(
        &'a self,
        server: &'a str,
        request_id: u64,
        body_hash: i64,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async move {
            let c = self.client().lock().await;
            // Insert a claim, or take over one left by a dead instance; the row lock of
            // ON CONFLICT makes one of two racing instances the owner.
            let got = c
                .execute(
                    "INSERT INTO answers (server, request_id, body_hash, status, answer, created_ms)
                     VALUES ($1, $2, $3, 0, '', $4)
                     ON CONFLICT (server, request_id) DO UPDATE SET body_hash = EXCLUDED.body_hash,
                       created_ms = EXCLUDED.created_ms
                     WHERE answers.status = 0 AND answers.created_ms < $5",
                    &[&server, &(request_id as i64), &body_hash, &now_ms, &stale_before_ms],
                )
                .await
                .map_err(db)?;
            if got == 1 {
                return Ok(None);
            }
            lookup(&*c, server, request_id).await
        })
    }

    fn save_answer<'a>(
        &'a self,
        server: &'a str,
        request_id: u64,
        a: StoredAnswer,
        now_ms: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let c = self.client().lock().await;
            c.execute(
                "INSERT INTO answers (server, request_id, body_hash, status, answer, created_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (server, request_id) DO UPDATE SET body_hash = EXCLUDED.body_hash,
                   status = EXCLUDED.status, answer = EXCLUDED.answer, created_ms = EXCLUDED.created_ms
                 WHERE answers.status = 0",
                &[&server, &(request_id as i64), &a.body_hash, &(a.status as i32), &a.answer, &now_ms],
            )
            .await
            .map(|_| ())
            .map_err(db)
        })
    }

    fn abandon<'a>(&'a self, server: &'a str, request_id: u64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let c = self.client().lock().await;
            c.execute(
                "DELETE FROM answers WHERE server = $1 AND request_id = $2 AND status = 0",
                &[&server, &(request_id as i64)],
            )
            .await
            .map(|_| ())
            .map_err(db)
        })
    }

    fn prune(&self, before_ms: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let c = self.client().lock().await;
            c.execute("DELETE FROM answers WHERE created_ms < $1", &[&before_ms])
                .await
                .map_err(db)
        })
    }

    fn known_blocks(&self) -> StoreFuture<'_, Vec<BlockKey>> {
        Box::pin(async move {
            let c = self.client().lock().await;
            let rows = c
                .query("SELECT agent, block FROM blocks ORDER BY agent, block", &[])
                .await
                .map_err(db)?;
            Ok(rows
                .iter()
                .map(|r| BlockKey {
                    agent: r.get(0),
                    block: r.get(1),
                })
                .collect())
        })
    }

    fn merge_letta(
        &self,
        key: BlockKey,
        letta: Vec<(String, Json)>,
        limit: usize,
        letta_text: String,
    ) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let mut c = self.client().lock().await;
            let tx = c.transaction().await.map_err(db)?;
            // Rows are locked in a batch's order (fields by name, then the block), so this
            // never deadlocks with one; a field a batch wrote meanwhile keeps its value
            // (`WHERE fields.seq = 0`).
            let rows = tx
                .query(
                    "SELECT field, value, seq FROM fields WHERE agent = $1 AND block = $2",
                    &[&key.agent, &key.block],
                )
                .await
                .map_err(db)?;
            let mut held = Vec::new();
            for r in &rows {
                held.push((
                    r.get::<_, String>(0),
                    serde_json::from_str(r.get::<_, &str>(1)).map_err(db)?,
                    r.get::<_, i64>(2) as u64,
                ));
            }
            for (f, v) in merge_plan(&held, &letta) {
                tx.execute(
                    "INSERT INTO fields (agent, block, field, value, seq) VALUES ($1, $2, $3, $4, 0)
                     ON CONFLICT (agent, block, field) DO UPDATE SET value = EXCLUDED.value WHERE fields.seq = 0",
                    &[&key.agent, &key.block, &f, &v.to_string()],
                )
                .await
                .map_err(db)?;
            }
            tx.execute(
                "UPDATE blocks SET char_limit = $3 WHERE agent = $1 AND block = $2",
                &[&key.agent, &key.block, &(limit as i64)],
            )
            .await
            .map_err(db)?;
            let snap = snapshot(&tx, &key).await?;
            let text = snap
                .render(&key.block)
                .map_err(|e| StoreError::BlockTooLarge(format!("agent '{}': {e}", key.agent)))?;
            if text != letta_text {
                tx.execute(
                    "UPDATE blocks SET version = version + 1 WHERE agent = $1 AND block = $2
                     AND written_version >= version",
                    &[&key.agent, &key.block],
                )
                .await
                .map_err(db)?;
            }
            let behind: bool = tx
                .query_one(
                    "SELECT written_version < version FROM blocks WHERE agent = $1 AND block = $2",
                    &[&key.agent, &key.block],
                )
                .await
                .map_err(db)?
                .get(0);
            tx.commit().await.map_err(db)?;
            Ok(behind)
        })
    }

    fn unknown_blocks(&self, keys: Vec<BlockKey>) -> StoreFuture<'_, Vec<BlockKey>> {
        Box::pin(async move {
            let c = self.client().lock().await;
            let mut out = Vec::new();
            for k in keys {
                let row = c
                    .query_opt(
                        "SELECT 1 FROM blocks WHERE agent = $1 AND block = $2",
                        &[&k.agent, &k.block],
                    )
                    .await
                    .map_err(db)?;
                if row.is_none() {
                    out.push(k);
                }
            }
            Ok(out)
        })
    }

    fn seed_block(
        &self,
        key: BlockKey,
        fields: Vec<(String, Json)>,
        limit: usize,
    ) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut c = self.client().lock().await;
            let tx = c.transaction().await.map_err(db)?;
            let created = tx
                .execute(
                    "INSERT INTO blocks (agent, block, version, written_version, char_limit) VALUES ($1, $2, 0, 0, $3)
                     ON CONFLICT DO NOTHING",
                    &[&key.agent, &key.block, &(limit as i64)],
                )
                .await
                .map_err(db)?;
            if created == 1 {
                for (f, v) in fields {
                    tx.execute(
                        "INSERT INTO fields (agent, block, field, value, seq) VALUES ($1, $2, $3, $4, 0) ON CONFLICT DO NOTHING",
                        &[&key.agent, &key.block, &f, &v.to_string()],
                    )
                    .await
                    .map_err(db)?;
                }
            }
            tx.commit().await.map_err(db)
        })
    }

    fn apply(&self, changes: Vec<Change>) -> StoreFuture<'_, Applied> {
        Box::pin(async move {
            let mut c = self.client().lock().await;
            let mut attempt = 0;
            loop {
                attempt += 1;
                match apply_once(&mut c, &changes).await {
                    Ok(r) => return r,
                    Err(e) if retryable(&e) && attempt < TX_ATTEMPTS => continue,
                    Err(e) => return Err(db(e)),
                }
            }
        })
    }

    fn claim_writes(
        &self,
        wanted: Vec<WantWrite>,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreFuture<'_, Vec<WriteClaim>> {
        Box::pin(async move {
            // Rows locked in block order, as every other transaction does.
            let mut order: Vec<usize> = (0..wanted.len()).collect();
            order.sort_by(|&a, &b| wanted[a].key.cmp(&wanted[b].key));
            let mut c = self.client().lock().await;
            let tx = c.transaction().await.map_err(db)?;
            let mut out: Vec<Option<WriteClaim>> = vec![None; wanted.len()];
            for i in order {
                let w = &wanted[i];
                let got = tx
                    .query_opt(
                        "UPDATE blocks SET lease_owner = $3, lease_until = $4
                         WHERE agent = $1 AND block = $2 AND written_version < $6
                         AND (lease_owner IS NULL OR lease_until < $5) RETURNING 1",
                        &[
                            &w.key.agent,
                            &w.key.block,
                            &w.owner,
                            &until_ms,
                            &now_ms,
                            &w.version,
                        ],
                    )
                    .await
                    .map_err(db)?;
                out[i] = Some(if got.is_some() {
                    WriteClaim::Leased(snapshot(&tx, &w.key).await?)
                } else {
                    let written: i64 = tx
                        .query_one(
                            "SELECT written_version FROM blocks WHERE agent = $1 AND block = $2",
                            &[&w.key.agent, &w.key.block],
                        )
                        .await
                        .map_err(db)?
                        .get(0);
                    if written >= w.version {
                        WriteClaim::Done
                    } else {
                        WriteClaim::Busy
                    }
                });
            }
            tx.commit().await.map_err(db)?;
            Ok(out
                .into_iter()
                .map(|c| c.expect("every wanted write has a claim"))
                .collect())
        })
    }

    fn finish_write(
        &self,
        key: BlockKey,
        owner: String,
        version: i64,
        until_ms: i64,
    ) -> StoreFuture<'_, Option<Snapshot>> {
        Box::pin(async move {
            let mut c = self.client().lock().await;
            let tx = c.transaction().await.map_err(db)?;
            let current = tx
                .query_opt(
                    "UPDATE blocks SET written_version = GREATEST(written_version, $3)
                     WHERE agent = $1 AND block = $2 AND lease_owner = $4 RETURNING version",
                    &[&key.agent, &key.block, &version, &owner],
                )
                .await
                .map_err(db)?
                .map(|r| r.get::<_, i64>(0));
            let next = match current {
                Some(v) if v > version => {
                    tx.execute(
                        "UPDATE blocks SET lease_until = $3 WHERE agent = $1 AND block = $2",
                        &[&key.agent, &key.block, &until_ms],
                    )
                    .await
                    .map_err(db)?;
                    Some(snapshot(&tx, &key).await?)
                }
                Some(_) => {
                    tx.execute(
                        "UPDATE blocks SET lease_owner = NULL WHERE agent = $1 AND block = $2",
                        &[&key.agent, &key.block],
                    )
                    .await
                    .map_err(db)?;
                    None
                }
                None => None,
            };
            tx.commit().await.map_err(db)?;
            Ok(next)
        })
    }

    fn release(&self, key: BlockKey, owner: String) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let c = self.client().lock().await;
            c.execute(
                "UPDATE blocks SET lease_owner = NULL WHERE agent = $1 AND block = $2 AND lease_owner = $3",
                &[&key.agent, &key.block, &owner],
            )
            .await
            .map(|_| ())
            .map_err(db)
        })
    }

    fn release_all(&self, prefix: String) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let c = self.client().lock().await;
            c.execute(
                "UPDATE blocks SET lease_owner = NULL WHERE starts_with(lease_owner, $1)",
                &[&prefix],
            )
            .await
            .map(|_| ())
            .map_err(db)
        })
    }

    fn behind(&self, now_ms: i64) -> StoreFuture<'_, Vec<Behind>> {
        Box::pin(async move {
            let c = self.client().lock().await;
            let rows = c
                .query(
                    "SELECT agent, block, version FROM blocks WHERE written_version < version
                     AND (lease_owner IS NULL OR lease_until < $1) ORDER BY agent, block",
                    &[&now_ms],
                )
                .await
                .map_err(db)?;
            Ok(rows
                .iter()
                .map(|r| Behind {
                    key: BlockKey {
                        agent: r.get(0),
                        block: r.get(1),
                    },
                    version: r.get(2),
                })
                .collect())
        })
    }

    fn behind_count(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let c = self.client().lock().await;
            let n: i64 = c
                .query_one(
                    "SELECT COUNT(*) FROM blocks WHERE written_version < version",
                    &[],
                )
                .await
                .map_err(db)?
                .get(0);
            Ok(n as u64)
        })
    }
}
