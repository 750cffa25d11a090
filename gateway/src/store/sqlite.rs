//! The embedded store: one SQLite file in WAL mode, one connection used from the blocking
//! pool. Durability is chosen per transaction: what an acknowledgement rests on (applied
//! fields, seeded blocks, stored answers) commits with `synchronous = FULL` (an fsync of
//! the WAL: survives a crash of the process and of the machine); the write bookkeeping
//! (leases, the version Letta holds) commits with `NORMAL` (no fsync: survives a crash of
//! the process; on power loss it can fall back, which only makes the gateway write a block
//! to Letta again). WAL frames are fsynced in order, so a FULL commit also makes every
//! NORMAL commit before it durable.

use super::sql;
use super::{
    claim_without_lease, field_result, lock_order, merge_plan, Applied, Behind, BlockKey,
    FieldResult, Outcome, Record, Snapshot, Store, StoreError, StoreFuture, StoredAnswer,
    WantWrite, WriteClaim,
};
use crate::body::Change;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// SQLite-backed store.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

fn db(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file.
    pub fn open(path: &str) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path).map_err(|e| db(format!("opening {path}: {e}")))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        conn.execute_batch(sql::SQLITE_PRAGMAS).map_err(db)?;
        conn.execute_batch(sql::TABLES).map_err(db)?;
        let has_created: bool = conn
            .query_row(sql::SQLITE_HAS_CREATED_MS, [], |r| r.get::<_, i64>(0))
            .map_err(db)?
            == 1;
        if !has_created {
            conn.execute_batch(sql::SQLITE_ADD_CREATED_MS).map_err(db)?;
        }
        conn.execute_batch(sql::INDEXES).map_err(db)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn run<'a, T: Send + 'static>(
        &'a self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'a, T> {
        let conn = self.conn.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
                f(&mut guard)
            })
            .await
            .map_err(db)?
        })
    }

    /// Like [`SqliteStore::run`], committing with an fsync (`synchronous = FULL`).
    fn run_durable<'a, T: Send + 'static>(
        &'a self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'a, T> {
        self.run(move |c| {
            c.execute_batch("PRAGMA synchronous = FULL").map_err(db)?;
            let r = f(c);
            let reset = c.execute_batch("PRAGMA synchronous = NORMAL").map_err(db);
            let r = r?;
            reset?;
            Ok(r)
        })
    }
}

fn lookup(c: &Connection, server: &str, request_id: u64) -> Result<Option<Record>, StoreError> {
    c.query_row(
        sql::SELECT_ANSWER.sqlite,
        params![server, request_id as i64],
        |r| Ok(Record::from_row(r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .optional()
    .map_err(db)
}

fn snapshot(conn: &Connection, key: &BlockKey) -> Result<Snapshot, StoreError> {
    let (version, limit): (i64, i64) = conn
        .query_row(sql::BLOCK_HEAD.sqlite, params![key.agent, key.block], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(db)?;
    let mut stmt = conn.prepare_cached(sql::BLOCK_FIELDS.sqlite).map_err(db)?;
    let fields = stmt
        .query_map(params![key.agent, key.block], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(db)?
        .map(|r| {
            let (k, v) = r.map_err(db)?;
            Ok((k, serde_json::from_str(&v).map_err(db)?))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Snapshot {
        version,
        fields,
        limit: limit as usize,
    })
}

impl Store for SqliteStore {
    fn ping(&self) -> StoreFuture<'_, ()> {
        self.run(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(db))
    }

    fn answer<'a>(&'a self, server: &'a str, request_id: u64) -> StoreFuture<'a, Option<Record>> {
        let server = server.to_string();
        self.run(move |c| lookup(c, &server, request_id))
    }

    fn claim<'a>(
        &'a self,
        server: &'a str,
        request_id: u64,
        body_hash: i64,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> StoreFuture<'a, Option<Record>> {
        let server = server.to_string();
        self.run_durable(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            // Insert a claim, or take over one left by a dead instance.
            let got = tx
                .execute(
                    sql::CLAIM_ANSWER.sqlite,
                    params![
                        server,
                        request_id as i64,
                        body_hash,
                        now_ms,
                        stale_before_ms
                    ],
                )
                .map_err(db)?;
            let held = if got == 1 {
                None
            } else {
                lookup(&tx, &server, request_id)?
            };
            tx.commit().map_err(db)?;
            Ok(held)
        })
    }

    fn save_answer<'a>(
        &'a self,
        server: &'a str,
        request_id: u64,
        a: StoredAnswer,
        now_ms: i64,
    ) -> StoreFuture<'a, ()> {
        let server = server.to_string();
        self.run_durable(move |c| {
            c.execute(
                sql::SAVE_ANSWER.sqlite,
                params![
                    server,
                    request_id as i64,
                    a.body_hash,
                    a.status as i64,
                    a.answer,
                    now_ms
                ],
            )
            .map(|_| ())
            .map_err(db)
        })
    }

    fn abandon<'a>(&'a self, server: &'a str, request_id: u64) -> StoreFuture<'a, ()> {
        let server = server.to_string();
        self.run(move |c| {
            c.execute(
                sql::ABANDON_ANSWER.sqlite,
                params![server, request_id as i64],
            )
            .map(|_| ())
            .map_err(db)
        })
    }

    fn prune(&self, before_ms: i64) -> StoreFuture<'_, u64> {
        self.run(move |c| {
            c.execute(sql::PRUNE_ANSWERS.sqlite, params![before_ms])
                .map(|n| n as u64)
                .map_err(db)
        })
    }

    fn known_blocks(&self) -> StoreFuture<'_, Vec<BlockKey>> {
        self.run(|c| {
            let mut stmt = c.prepare_cached(sql::KNOWN_BLOCKS.sqlite).map_err(db)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(BlockKey {
                        agent: r.get(0)?,
                        block: r.get(1)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db)
        })
    }

    fn merge_letta(
        &self,
        key: BlockKey,
        letta: Vec<(String, Json)>,
        limit: usize,
        letta_text: String,
    ) -> StoreFuture<'_, bool> {
        self.run_durable(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let held = {
                let mut stmt = tx
                    .prepare_cached(sql::BLOCK_FIELDS_WITH_SEQ.sqlite)
                    .map_err(db)?;
                let rows = stmt
                    .query_map(params![key.agent, key.block], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    })
                    .map_err(db)?;
                let mut held = Vec::new();
                for row in rows {
                    let (f, v, s) = row.map_err(db)?;
                    held.push((f, serde_json::from_str(&v).map_err(db)?, s as u64));
                }
                held
            };
            for (f, v) in merge_plan(&held, &letta) {
                tx.execute(
                    sql::MERGE_FIELD.sqlite,
                    params![key.agent, key.block, f, v.to_string()],
                )
                .map_err(db)?;
            }
            tx.execute(
                sql::SET_LIMIT.sqlite,
                params![key.agent, key.block, limit as i64],
            )
            .map_err(db)?;
            let snap = snapshot(&tx, &key)?;
            let text = snap
                .render(&key.block)
                .map_err(|e| StoreError::too_large(&key, e))?;
            if text != letta_text {
                tx.execute(
                    sql::BUMP_VERSION_IF_WRITTEN.sqlite,
                    params![key.agent, key.block],
                )
                .map_err(db)?;
            }
            let behind: bool = tx
                .query_row(sql::IS_BEHIND.sqlite, params![key.agent, key.block], |r| {
                    r.get(0)
                })
                .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(behind)
        })
    }

    fn unknown_blocks(&self, keys: Vec<BlockKey>) -> StoreFuture<'_, Vec<BlockKey>> {
        self.run(move |c| {
            let mut stmt = c.prepare_cached(sql::BLOCK_EXISTS.sqlite).map_err(db)?;
            let mut out = Vec::new();
            for k in keys {
                if !stmt.exists(params![k.agent, k.block]).map_err(db)? {
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
        self.run_durable(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let created = tx
                .execute(
                    sql::INSERT_BLOCK.sqlite,
                    params![key.agent, key.block, limit as i64],
                )
                .map_err(db)?;
            if created == 1 {
                for (f, v) in fields {
                    tx.execute(
                        sql::SEED_FIELD.sqlite,
                        params![key.agent, key.block, f, v.to_string()],
                    )
                    .map_err(db)?;
                }
            }
            tx.commit().map_err(db)
        })
    }

    fn apply(&self, changes: Vec<Change>) -> StoreFuture<'_, Applied> {
        self.run_durable(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let mut results: Vec<Option<FieldResult>> = vec![None; changes.len()];
            let mut touched: BTreeMap<BlockKey, bool> = BTreeMap::new();
            for i in lock_order(&changes) {
                let ch = &changes[i];
                let took = tx
                    .query_row(
                        sql::APPLY_FIELD.sqlite,
                        params![
                            ch.agent_id,
                            ch.block,
                            ch.field,
                            ch.value.to_string(),
                            ch.seq as i64
                        ],
                        |_| Ok(()),
                    )
                    .optional()
                    .map_err(db)?
                    .is_some();
                let held = if took {
                    None
                } else {
                    let (v, seq): (String, i64) = tx
                        .query_row(
                            sql::FIELD.sqlite,
                            params![ch.agent_id, ch.block, ch.field],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .map_err(db)?;
                    Some((serde_json::from_str(&v).map_err(db)?, seq as u64))
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
                    sql::INSERT_BLOCK.sqlite,
                    params![
                        key.agent,
                        key.block,
                        crate::letta::DEFAULT_BLOCK_LIMIT as i64
                    ],
                )
                .map_err(db)?;
                if applied {
                    tx.execute(sql::BUMP_VERSION.sqlite, params![key.agent, key.block])
                        .map_err(db)?;
                }
                let snap = snapshot(&tx, &key)?;
                if applied {
                    snap.render(&key.block)
                        .map_err(|e| StoreError::too_large(&key, e))?;
                }
                versions.push((key, snap.version));
            }
            tx.commit().map_err(db)?;
            Ok(Applied {
                results: results
                    .into_iter()
                    .map(|r| r.expect("every change has a result"))
                    .collect(),
                versions,
            })
        })
    }

    fn claim_writes(
        &self,
        wanted: Vec<WantWrite>,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreFuture<'_, Vec<WriteClaim>> {
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let mut out = Vec::with_capacity(wanted.len());
            for w in wanted {
                let took = tx
                    .prepare_cached(sql::TAKE_LEASE.sqlite)
                    .and_then(|mut st| {
                        st.query_row(
                            params![
                                w.key.agent,
                                w.key.block,
                                w.owner,
                                until_ms,
                                now_ms,
                                w.version
                            ],
                            |_| Ok(()),
                        )
                        .optional()
                    })
                    .map_err(db)?
                    .is_some();
                out.push(if took {
                    WriteClaim::Leased(snapshot(&tx, &w.key)?)
                } else {
                    let written: i64 = tx
                        .prepare_cached(sql::WRITTEN_VERSION.sqlite)
                        .and_then(|mut st| {
                            st.query_row(params![w.key.agent, w.key.block], |r| r.get(0))
                        })
                        .map_err(db)?;
                    claim_without_lease(written, w.version)
                });
            }
            tx.commit().map_err(db)?;
            Ok(out)
        })
    }

    fn finish_write(
        &self,
        key: BlockKey,
        owner: String,
        version: i64,
        until_ms: i64,
    ) -> StoreFuture<'_, Option<Snapshot>> {
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let current: Option<i64> = tx
                .query_row(
                    sql::FINISH_WRITE.sqlite,
                    params![key.agent, key.block, version, owner],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?;
            let next = match current {
                Some(v) if v > version => {
                    tx.execute(
                        sql::EXTEND_LEASE.sqlite,
                        params![key.agent, key.block, until_ms],
                    )
                    .map_err(db)?;
                    Some(snapshot(&tx, &key)?)
                }
                Some(_) => {
                    tx.execute(sql::DROP_LEASE.sqlite, params![key.agent, key.block])
                        .map_err(db)?;
                    None
                }
                None => None,
            };
            tx.commit().map_err(db)?;
            Ok(next)
        })
    }

    fn release(&self, key: BlockKey, owner: String) -> StoreFuture<'_, ()> {
        self.run(move |c| {
            c.execute(sql::RELEASE.sqlite, params![key.agent, key.block, owner])
                .map(|_| ())
                .map_err(db)
        })
    }

    fn release_all(&self, prefix: String) -> StoreFuture<'_, ()> {
        self.run(move |c| {
            c.execute(sql::RELEASE_ALL.sqlite, params![prefix])
                .map(|_| ())
                .map_err(db)
        })
    }

    fn behind(&self, now_ms: i64) -> StoreFuture<'_, Vec<Behind>> {
        self.run(move |c| {
            let mut stmt = c.prepare_cached(sql::BEHIND.sqlite).map_err(db)?;
            let rows = stmt
                .query_map(params![now_ms], |r| {
                    Ok(Behind {
                        key: BlockKey {
                            agent: r.get(0)?,
                            block: r.get(1)?,
                        },
                        version: r.get(2)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db)
        })
    }

    fn behind_count(&self) -> StoreFuture<'_, u64> {
        self.run(|c| {
            c.query_row(sql::BEHIND_COUNT.sqlite, [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(db)
        })
    }
}
