//! The embedded store: one SQLite file (WAL, synchronous FULL so an acknowledged batch
//! survives a kill), one connection used from the blocking pool.

use super::{
    lock_order, outcome, Applied, BlockKey, FieldResult, Outcome, Snapshot, Store, StoreError,
    StoreFuture, StoredAnswer,
};
use crate::body::Change;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
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
  PRIMARY KEY (server, request_id));
";

/// A block created by a batch without having been read from Letta gets this limit
/// (Letta's default block limit); the server always reads blocks first.
pub(crate) const DEFAULT_LIMIT: usize = 5000;

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

    fn answer<'a>(
        &'a self,
        server: &'a str,
        request_id: u64,
    ) -> StoreFuture<'a, Option<StoredAnswer>> {
        let server = server.to_string();
        self.run(move |c| {
            c.query_row(
                "SELECT body_hash, status, answer FROM answers WHERE server = ?1 AND request_id = ?2",
                params![server, request_id as i64],
                |r| {
                    Ok(StoredAnswer {
                        body_hash: r.get(0)?,
                        status: r.get::<_, i64>(1)? as u16,
                        answer: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(db)
        })
    }

    fn save_answer<'a>(
        &'a self,
        server: &'a str,
        request_id: u64,
        a: StoredAnswer,
    ) -> StoreFuture<'a, ()> {
        let server = server.to_string();
        self.run(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO answers (server, request_id, body_hash, status, answer) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![server, request_id as i64, a.body_hash, a.status as i64, a.answer],
            )
            .map(|_| ())
            .map_err(db)
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
        self.run(move |c| {
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
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
            let mut results: Vec<Option<FieldResult>> = vec![None; changes.len()];
            let mut touched: BTreeMap<BlockKey, bool> = BTreeMap::new();
            for i in lock_order(&changes) {
                let ch = &changes[i];
                let key = BlockKey { agent: ch.agent_id.clone(), block: ch.block.clone() };
                tx.execute(
                    "INSERT OR IGNORE INTO blocks (agent, block, version, written_version, char_limit) VALUES (?1, ?2, 0, 0, ?3)",
                    params![key.agent, key.block, super::sqlite::DEFAULT_LIMIT as i64],
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

    fn written_version(&self, key: BlockKey) -> StoreFuture<'_, i64> {
        self.run(move |c| {
            c.query_row(
                "SELECT written_version FROM blocks WHERE agent = ?1 AND block = ?2",
                params![key.agent, key.block],
                |r| r.get(0),
            )
            .map_err(db)
        })
    }

    fn try_lease(
        &self,
        key: BlockKey,
        owner: String,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreFuture<'_, Option<Snapshot>> {
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            let got = tx
                .execute(
                    "UPDATE blocks SET lease_owner = ?3, lease_until = ?4
                     WHERE agent = ?1 AND block = ?2 AND (lease_owner IS NULL OR lease_until < ?5)",
                    params![key.agent, key.block, owner, until_ms, now_ms],
                )
                .map_err(db)?;
            let snap = if got == 1 {
                Some(snapshot(&tx, &key)?)
            } else {
                None
            };
            tx.commit().map_err(db)?;
            Ok(snap)
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
}
