//! The embedded store: one SQLite file in WAL mode, one connection used from the blocking
//! pool. Durability is chosen per transaction: what an acknowledgement rests on (applied
//! fields, seeded blocks, stored answers) commits with `synchronous = FULL` (an fsync of
//! the WAL: survives a crash of the process and of the machine); the write bookkeeping
//! (leases, the version Letta holds) commits with `NORMAL` (no fsync: survives a crash of
//! the process; on power loss it can fall back, which only makes the gateway write a block
//! to Letta again). WAL frames are fsynced in order, so a FULL commit also makes every
//! NORMAL commit before it durable.

use super::{
    lock_order, merge_plan, outcome, Applied, Behind, BlockKey, FieldResult, Outcome, Record,
    Snapshot, Store, StoreError, StoreFuture, StoredAnswer, WantWrite, WriteClaim,
};
use crate::body::Change;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS blocks (
  agent TEXT NOT NULL, block TEXT NOT NULL,
  version INTEGER NOT NULL, written_version INTEGER NOT NULL, char_limit INTEGER NOT NULL,
  lease_owner TEXT, lease_until INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (agent, block));
CREATE TABLE IF NOT EXISTS fields (
  agent TEXT NOT NULL, block TEXT NOT NULL, field TEXT NOT NULL,
  value TEXT NOT NULL, seq INTEGER NOT NULL,
  PRIMARY KEY (agent, block, field));
CREATE TABLE IF NOT EXISTS answers (
  server TEXT NOT NULL, request_id INTEGER NOT NULL,
  body_hash INTEGER NOT NULL, status INTEGER NOT NULL, answer TEXT NOT NULL,
  created_ms INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (server, request_id));
";

/// Indexes, made after [`SCHEMA`] and the migration of a database made before them.
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS answers_created ON answers (created_ms);
CREATE INDEX IF NOT EXISTS blocks_behind ON blocks (written_version, version);
";

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
        conn.execute_batch(SCHEMA).map_err(db)?;
        // A database made before idempotency records carried their time.
        let has_created: bool = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('answers') WHERE name = 'created_ms'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(db)?
            == 1;
        if !has_created {
            conn.execute_batch(
                "ALTER TABLE answers ADD COLUMN created_ms INTEGER NOT NULL DEFAULT 0",
            )
            .map_err(db)?;
        }
        conn.execute_batch(INDEXES).map_err(db)?;
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

fn record(status: i64, body_hash: i64, answer: String) -> Record {
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

fn lookup(c: &Connection, server: &str, request_id: u64) -> Result<Option<Record>, StoreError> {
    c.query_row(
        "SELECT body_hash, status, answer FROM answers WHERE server = ?1 AND request_id = ?2",
        params![server, request_id as i64],
        |r| Ok(record(r.get(1)?, r.get(0)?, r.get(2)?)),
    )
    .optional()
    .map_err(db)
}

fn snapshot(conn: &Connection, key: &BlockKey) -> Result<Snapshot, StoreError> {
    let (version, limit): (i64, i64) = conn
        .query_row(
            "SELECT version, char_limit FROM blocks WHERE agent = ?1 AND block = ?2",
            params![key.agent, key.block],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(db)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT field, value FROM fields WHERE agent = ?1 AND block = ?2 AND value <> 'null' ORDER BY field",
        )
        .map_err(db)?;
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
                    "INSERT INTO answers (server, request_id, body_hash, status, answer, created_ms)
                     VALUES (?1, ?2, ?3, 0, '', ?4)
                     ON CONFLICT (server, request_id) DO UPDATE SET body_hash = excluded.body_hash,
                       created_ms = excluded.created_ms
                     WHERE answers.status = 0 AND answers.created_ms < ?5",
                    params![server, request_id as i64, body_hash, now_ms, stale_before_ms],
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
                "INSERT INTO answers (server, request_id, body_hash, status, answer, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (server, request_id) DO UPDATE SET body_hash = excluded.body_hash,
                   status = excluded.status, answer = excluded.answer, created_ms = excluded.created_ms
                 WHERE answers.status = 0",
                params![server, request_id as i64, a.body_hash, a.status as i64, a.answer, now_ms],
            )
            .map(|_| ())
            .map_err(db)
        })
    }

    fn abandon<'a>(&'a self, server: &'a str, request_id: u64) -> StoreFuture<'a, ()> {
        let server = server.to_string();
        self.run(move |c| {
            c.execute(
                "DELETE FROM answers WHERE server = ?1 AND request_id = ?2 AND status = 0",
                params![server, request_id as i64],
            )
            .map(|_| ())
            .map_err(db)
        })
    }

    fn prune(&self, before_ms: i64) -> StoreFuture<'_, u64> {
        self.run(move |c| {
            c.execute(
                "DELETE FROM answers WHERE created_ms < ?1",
                params![before_ms],
            )
            .map(|n| n as u64)
            .map_err(db)
        })
    }

    fn known_blocks(&self) -> StoreFuture<'_, Vec<BlockKey>> {
        self.run(|c| {
            let mut stmt = c
                .prepare_cached("SELECT agent, block FROM blocks ORDER BY agent, block")
                .map_err(db)?;
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
                    .prepare_cached(
                        "SELECT field, value, seq FROM fields WHERE agent = ?1 AND block = ?2",
                    )
                    .map_err(db)?;
                let rows = stmt
                    .query_map(params![key.agent, key.block], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
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
                    "INSERT INTO fields (agent, block, field, value, seq) VALUES (?1, ?2, ?3, ?4, 0)
                     ON CONFLICT (agent, block, field) DO UPDATE SET value = excluded.value WHERE fields.seq = 0",
                    params![key.agent, key.block, f, v.to_string()],
                )
                .map_err(db)?;
            }
            tx.execute(
                "UPDATE blocks SET char_limit = ?3 WHERE agent = ?1 AND block = ?2",
                params![key.agent, key.block, limit as i64],
            )
            .map_err(db)?;
            let snap = snapshot(&tx, &key)?;
            let text = snap
                .render(&key.block)
                .map_err(|e| StoreError::BlockTooLarge(format!("agent '{}': {e}", key.agent)))?;
            if text != letta_text {
                tx.execute(
                    "UPDATE blocks SET version = version + 1 WHERE agent = ?1 AND block = ?2
                     AND written_version >= version",
                    params![key.agent, key.block],
                )
                .map_err(db)?;
            }
            let behind: bool = tx
                .query_row(
                    "SELECT written_version < version FROM blocks WHERE agent = ?1 AND block = ?2",
                    params![key.agent, key.block],
                    |r| r.get(0),
                )
                .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(behind)
        })
    }

    fn unknown_blocks(&self, keys: Vec<BlockKey>) -> StoreFuture<'_, Vec<BlockKey>> {
        self.run(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT 1 FROM blocks WHERE agent = ?1 AND block = ?2")
                .map_err(db)?;
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
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
            let created = tx
                .execute(
                    "INSERT OR IGNORE INTO blocks (agent, block, version, written_version, char_limit) VALUES (?1, ?2, 0, 0, ?3)",
                    params![key.agent, key.block, limit as i64],
                )
                .map_err(db)?;
            if created == 1 {
                for (f, v) in fields {
                    tx.execute(
                        "INSERT OR IGNORE INTO fields (agent, block, field, value, seq) VALUES (?1, ?2, ?3, ?4, 0)",
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
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
            let mut results: Vec<Option<FieldResult>> = vec![None; changes.len()];
            let mut touched: BTreeMap<BlockKey, bool> = BTreeMap::new();
            for i in lock_order(&changes) {
                let ch = &changes[i];
                let key = BlockKey { agent: ch.agent_id.clone(), block: ch.block.clone() };
                tx.execute(
                    "INSERT OR IGNORE INTO blocks (agent, block, version, written_version, char_limit) VALUES (?1, ?2, 0, 0, ?3)",
                    params![key.agent, key.block, crate::letta::DEFAULT_BLOCK_LIMIT as i64],
                )
                .map_err(db)?;
                let held: Option<(String, i64)> = tx
                    .query_row(
                        "SELECT value, seq FROM fields WHERE agent = ?1 AND block = ?2 AND field = ?3",
                        params![ch.agent_id, ch.block, ch.field],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(db)?;
                let (held_value, held_seq) = match held {
                    Some((v, s)) => (serde_json::from_str(&v).map_err(db)?, s as u64),
                    None => (Json::Null, 0),
                };
                let o = outcome(ch, held_seq, &held_value);
                let applied = o == Outcome::Applied;
                if applied {
                    tx.execute(
                        "INSERT INTO fields (agent, block, field, value, seq) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (agent, block, field) DO UPDATE SET value = excluded.value, seq = excluded.seq",
                        params![ch.agent_id, ch.block, ch.field, ch.value.to_string(), ch.seq as i64],
                    )
                    .map_err(db)?;
                }
                *touched.entry(key).or_insert(false) |= applied;
                results[i] = Some(if applied {
                    FieldResult { outcome: o, value: ch.value.clone(), seq: ch.seq }
                } else {
                    FieldResult { outcome: o, value: held_value, seq: held_seq }
                });
            }
            let mut versions = Vec::new();
            for (key, applied) in touched {
                if applied {
                    tx.execute(
                        "UPDATE blocks SET version = version + 1 WHERE agent = ?1 AND block = ?2",
                        params![key.agent, key.block],
                    )
                    .map_err(db)?;
                }
                let snap = snapshot(&tx, &key)?;
                if applied {
                    snap.render(&key.block)
                        .map_err(|e| StoreError::BlockTooLarge(format!("agent '{}': {e}", key.agent)))?;
                }
                versions.push((key, snap.version));
            }
            tx.commit().map_err(db)?;
            Ok(Applied {
                results: results.into_iter().map(|r| r.expect("every change has a result")).collect(),
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
                let written: i64 = tx
                    .prepare_cached(
                        "SELECT written_version FROM blocks WHERE agent = ?1 AND block = ?2",
                    )
                    .and_then(|mut s| s.query_row(params![w.key.agent, w.key.block], |r| r.get(0)))
                    .map_err(db)?;
                if written >= w.version {
                    out.push(WriteClaim::Done);
                    continue;
                }
                let got = tx
                    .prepare_cached(
                        "UPDATE blocks SET lease_owner = ?3, lease_until = ?4
                         WHERE agent = ?1 AND block = ?2 AND (lease_owner IS NULL OR lease_until < ?5)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![w.key.agent, w.key.block, w.owner, until_ms, now_ms])
                    })
                    .map_err(db)?;
                out.push(if got == 1 {
                    WriteClaim::Leased(snapshot(&tx, &w.key)?)
                } else {
                    WriteClaim::Busy
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
                    "UPDATE blocks SET written_version = MAX(written_version, ?3)
                     WHERE agent = ?1 AND block = ?2 AND lease_owner = ?4 RETURNING version",
                    params![key.agent, key.block, version, owner],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?;
            let next = match current {
                Some(v) if v > version => {
                    tx.execute(
                        "UPDATE blocks SET lease_until = ?3 WHERE agent = ?1 AND block = ?2",
                        params![key.agent, key.block, until_ms],
                    )
                    .map_err(db)?;
                    Some(snapshot(&tx, &key)?)
                }
                Some(_) => {
                    tx.execute(
                        "UPDATE blocks SET lease_owner = NULL WHERE agent = ?1 AND block = ?2",
                        params![key.agent, key.block],
                    )
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
            c.execute(
                "UPDATE blocks SET lease_owner = NULL WHERE agent = ?1 AND block = ?2 AND lease_owner = ?3",
                params![key.agent, key.block, owner],
            )
            .map(|_| ())
            .map_err(db)
        })
    }

    fn release_all(&self, prefix: String) -> StoreFuture<'_, ()> {
        self.run(move |c| {
            c.execute(
                "UPDATE blocks SET lease_owner = NULL WHERE substr(lease_owner, 1, length(?1)) = ?1",
                params![prefix],
            )
            .map(|_| ())
            .map_err(db)
        })
    }

    fn behind(&self, now_ms: i64) -> StoreFuture<'_, Vec<Behind>> {
        self.run(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT agent, block, version FROM blocks WHERE written_version < version
                     AND (lease_owner IS NULL OR lease_until < ?1) ORDER BY agent, block",
                )
                .map_err(db)?;
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
            c.query_row(
                "SELECT COUNT(*) FROM blocks WHERE written_version < version",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(db)
        })
    }
}
