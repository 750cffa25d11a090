//! The shared store for several instances: PostgreSQL through a few connections. A field
//! moves only through `INSERT ... ON CONFLICT DO UPDATE ... WHERE fields.seq < EXCLUDED.seq`
//! (the row stays locked until commit), so two instances applying the same field at once
//! can never move it backwards; block leases are conditional updates too.

use super::sql;
use super::{
    claim_without_lease, field_result, lock_order, merge_plan, Applied, Behind, BlockKey,
    FieldResult, Outcome, Record, Snapshot, Store, StoreError, StoreFuture, StoredAnswer,
    WantWrite, WriteClaim,
};
use crate::body::Change;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio_postgres::{Client, GenericClient, NoTls};

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
        let c = clients[0].lock().await;
        c.batch_execute(sql::PG_SCHEMA_LOCK).await.map_err(db)?;
        let schema = [sql::TABLES, sql::PG_ADD_CREATED_MS, sql::INDEXES].concat();
        let created = c.batch_execute(&schema).await.map_err(db);
        c.batch_execute(sql::PG_SCHEMA_UNLOCK).await.map_err(db)?;
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
        .query_one(sql::BLOCK_HEAD.pg, &[&key.agent, &key.block])
        .await
        .map_err(db)?;
    let rows = c
        .query(sql::BLOCK_FIELDS.pg, &[&key.agent, &key.block])
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
        .query_opt(sql::SELECT_ANSWER.pg, &[&server, &(request_id as i64)])
        .await
        .map_err(db)?;
    Ok(row.map(|r| Record::from_row(r.get(0), i64::from(r.get::<_, i32>(1)), r.get(2))))
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
        let value = ch.value.to_string();
        let seq = ch.seq as i64;
        let took = tx
            .query_opt(
                sql::APPLY_FIELD.pg,
                &[&ch.agent_id, &ch.block, &ch.field, &value, &seq],
            )
            .await?
            .is_some();
        let held = if took {
            None
        } else {
            let row = tx
                .query_one(sql::FIELD.pg, &[&ch.agent_id, &ch.block, &ch.field])
                .await?;
            match serde_json::from_str(row.get::<_, &str>(0)) {
                Ok(v) => Some((v, row.get::<_, i64>(1) as u64)),
                Err(e) => return Ok(Err(db(e))),
            }
        };
        let result = field_result(ch, held);
        let key = BlockKey {
            agent: ch.agent_id.clone(),
            block: ch.block.clone(),
        };
        *touched.entry(key).or_insert(false) |= result.outcome == Outcome::Applied;
        results[i] = Some(result);
    }
    let mut versions = Vec::new();
    for (key, applied) in touched {
        tx.execute(
            sql::INSERT_BLOCK.pg,
            &[
                &key.agent,
                &key.block,
                &(crate::letta::DEFAULT_BLOCK_LIMIT as i64),
            ],
        )
        .await?;
        if applied {
            tx.execute(sql::BUMP_VERSION.pg, &[&key.agent, &key.block])
                .await?;
        }
        let snap = match snapshot(&tx, &key).await {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        if applied {
            if let Err(e) = snap.render(&key.block) {
                return Ok(Err(StoreError::too_large(&key, e)));
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
                    sql::CLAIM_ANSWER.pg,
                    &[
                        &server,
                        &(request_id as i64),
                        &body_hash,
                        &now_ms,
                        &stale_before_ms,
                    ],
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
                sql::SAVE_ANSWER.pg,
                &[
                    &server,
                    &(request_id as i64),
                    &a.body_hash,
                    &(a.status as i32),
                    &a.answer,
                    &now_ms,
                ],
            )
            .await
            .map(|_| ())
            .map_err(db)
        })
    }

    fn abandon<'a>(&'a self, server: &'a str, request_id: u64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let c = self.client().lock().await;
            c.execute(sql::ABANDON_ANSWER.pg, &[&server, &(request_id as i64)])
                .await
                .map(|_| ())
                .map_err(db)
        })
    }

    fn prune(&self, before_ms: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let c = self.client().lock().await;
            c.execute(sql::PRUNE_ANSWERS.pg, &[&before_ms])
                .await
                .map_err(db)
        })
    }

    fn known_blocks(&self) -> StoreFuture<'_, Vec<BlockKey>> {
        Box::pin(async move {
            let c = self.client().lock().await;
            let rows = c.query(sql::KNOWN_BLOCKS.pg, &[]).await.map_err(db)?;
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
                .query(sql::BLOCK_FIELDS_WITH_SEQ.pg, &[&key.agent, &key.block])
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
                    sql::MERGE_FIELD.pg,
                    &[&key.agent, &key.block, &f, &v.to_string()],
                )
                .await
                .map_err(db)?;
            }
            tx.execute(
                sql::SET_LIMIT.pg,
                &[&key.agent, &key.block, &(limit as i64)],
            )
            .await
            .map_err(db)?;
            let snap = snapshot(&tx, &key).await?;
            let text = snap
                .render(&key.block)
                .map_err(|e| StoreError::too_large(&key, e))?;
            if text != letta_text {
                tx.execute(sql::BUMP_VERSION_IF_WRITTEN.pg, &[&key.agent, &key.block])
                    .await
                    .map_err(db)?;
            }
            let behind: bool = tx
                .query_one(sql::IS_BEHIND.pg, &[&key.agent, &key.block])
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
                    .query_opt(sql::BLOCK_EXISTS.pg, &[&k.agent, &k.block])
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
                    sql::INSERT_BLOCK.pg,
                    &[&key.agent, &key.block, &(limit as i64)],
                )
                .await
                .map_err(db)?;
            if created == 1 {
                for (f, v) in fields {
                    tx.execute(
                        sql::SEED_FIELD.pg,
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
                        sql::TAKE_LEASE.pg,
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
                        .query_one(sql::WRITTEN_VERSION.pg, &[&w.key.agent, &w.key.block])
                        .await
                        .map_err(db)?
                        .get(0);
                    claim_without_lease(written, w.version)
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
                    sql::FINISH_WRITE.pg,
                    &[&key.agent, &key.block, &version, &owner],
                )
                .await
                .map_err(db)?
                .map(|r| r.get::<_, i64>(0));
            let next = match current {
                Some(v) if v > version => {
                    tx.execute(sql::EXTEND_LEASE.pg, &[&key.agent, &key.block, &until_ms])
                        .await
                        .map_err(db)?;
                    Some(snapshot(&tx, &key).await?)
                }
                Some(_) => {
                    tx.execute(sql::DROP_LEASE.pg, &[&key.agent, &key.block])
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
            c.execute(sql::RELEASE.pg, &[&key.agent, &key.block, &owner])
                .await
                .map(|_| ())
                .map_err(db)
        })
    }

    fn release_all(&self, prefix: String) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let c = self.client().lock().await;
            c.execute(sql::RELEASE_ALL.pg, &[&prefix])
                .await
                .map(|_| ())
                .map_err(db)
        })
    }

    fn behind(&self, now_ms: i64) -> StoreFuture<'_, Vec<Behind>> {
        Box::pin(async move {
            let c = self.client().lock().await;
            let rows = c.query(sql::BEHIND.pg, &[&now_ms]).await.map_err(db)?;
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
                .query_one(sql::BEHIND_COUNT.pg, &[])
                .await
                .map_err(db)?
                .get(0);
            Ok(n as u64)
        })
    }
}
