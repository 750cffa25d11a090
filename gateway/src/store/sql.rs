//! The one owner of the store's SQL: the schema and every statement, written once for both
//! databases. Statements are written with PostgreSQL's `$N` placeholders; SQLite's text is
//! made from it at compile time with `?N` (SQLite numbers `?N` as written, while its `$N`
//! would be named parameters numbered by first appearance). Everything else is SQL both
//! accept (SQLite 3.35 or newer: upserts, `RETURNING`). What differs between the two is
//! in the last section of this file, and nowhere else.

/// One statement in both dialects.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sql {
    /// PostgreSQL's text (`$N` placeholders).
    pub pg: &'static str,
    /// SQLite's text (`?N` placeholders).
    pub sqlite: &'static str,
}

/// `text` with every `$` made `?` (no statement has a `$` other than a placeholder's).
const fn sqlite_placeholders<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = if bytes[i] == b'$' { b'?' } else { bytes[i] };
        i += 1;
    }
    out
}

/// Declares a statement from its PostgreSQL text.
macro_rules! sql {
    ($(#[$doc:meta])* $name:ident = $text:expr;) => {
        $(#[$doc])*
        pub(crate) const $name: Sql = Sql {
            pg: $text,
            sqlite: {
                const BYTES: [u8; $text.len()] = sqlite_placeholders($text);
                match core::str::from_utf8(&BYTES) {
                    Ok(s) => s,
                    Err(_) => panic!("a statement is not UTF-8"),
                }
            },
        };
    };
}

// ---- Schema -------------------------------------------------------------------------

/// The tables (SQLite gives `BIGINT` columns integer affinity: the same 64-bit integers).
pub(crate) const TABLES: &str = "
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
";

/// Indexes, made after [`TABLES`] and the migration of a database made before them.
pub(crate) const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS answers_created ON answers (created_ms);
CREATE INDEX IF NOT EXISTS blocks_behind ON blocks (written_version, version);
";

// ---- Idempotency records ------------------------------------------------------------

sql! {
    /// A request id's record: body hash, status (0: in progress), answer.
    SELECT_ANSWER = "SELECT body_hash, status, answer FROM answers WHERE server = $1 AND request_id = $2";
}
sql! {
    /// Claims a request id ($3 body hash, $4 now), or takes over a claim made before $5.
    CLAIM_ANSWER = "INSERT INTO answers (server, request_id, body_hash, status, answer, created_ms)
     VALUES ($1, $2, $3, 0, '', $4)
     ON CONFLICT (server, request_id) DO UPDATE SET body_hash = EXCLUDED.body_hash,
       created_ms = EXCLUDED.created_ms
     WHERE answers.status = 0 AND answers.created_ms < $5";
}
sql! {
    /// Stores an answer unless one is stored (replaces an in-progress claim).
    SAVE_ANSWER = "INSERT INTO answers (server, request_id, body_hash, status, answer, created_ms)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (server, request_id) DO UPDATE SET body_hash = EXCLUDED.body_hash,
       status = EXCLUDED.status, answer = EXCLUDED.answer, created_ms = EXCLUDED.created_ms
     WHERE answers.status = 0";
}
sql! {
    /// Drops an in-progress claim.
    ABANDON_ANSWER = "DELETE FROM answers WHERE server = $1 AND request_id = $2 AND status = 0";
}
sql! {
    /// Deletes the records made before $1.
    PRUNE_ANSWERS = "DELETE FROM answers WHERE created_ms < $1";
}

// ---- Blocks and fields --------------------------------------------------------------

sql! {
    /// Every agent-block, in order.
    KNOWN_BLOCKS = "SELECT agent, block FROM blocks ORDER BY agent, block";
}
sql! {
    /// Whether an agent-block exists.
    BLOCK_EXISTS = "SELECT 1 FROM blocks WHERE agent = $1 AND block = $2";
}
sql! {
    /// Creates an agent-block at version 0 with limit $3, unless it exists.
    INSERT_BLOCK = "INSERT INTO blocks (agent, block, version, written_version, char_limit)
     VALUES ($1, $2, 0, 0, $3) ON CONFLICT DO NOTHING";
}
sql! {
    /// A block's version and limit.
    BLOCK_HEAD = "SELECT version, char_limit FROM blocks WHERE agent = $1 AND block = $2";
}
sql! {
    /// A block's non-cleared fields, by name.
    BLOCK_FIELDS = "SELECT field, value FROM fields WHERE agent = $1 AND block = $2 AND value <> 'null' ORDER BY field";
}
sql! {
    /// A block's fields with their `seq`, cleared ones too.
    BLOCK_FIELDS_WITH_SEQ = "SELECT field, value, seq FROM fields WHERE agent = $1 AND block = $2";
}
sql! {
    /// One field's value and `seq`.
    FIELD = "SELECT value, seq FROM fields WHERE agent = $1 AND block = $2 AND field = $3";
}
sql! {
    /// Applies a change ($4 value, $5 seq) only when its `seq` is higher than the stored
    /// one; returns a row when it did. The row stays locked until commit, so two instances
    /// applying one field at once can never move it backwards.
    APPLY_FIELD = "INSERT INTO fields (agent, block, field, value, seq) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (agent, block, field) DO UPDATE SET value = EXCLUDED.value, seq = EXCLUDED.seq
     WHERE fields.seq < EXCLUDED.seq RETURNING seq";
}
sql! {
    /// Records a field read from Letta ($4 value) at `seq` 0, unless it exists.
    SEED_FIELD = "INSERT INTO fields (agent, block, field, value, seq) VALUES ($1, $2, $3, $4, 0)
     ON CONFLICT DO NOTHING";
}
sql! {
    /// Takes a field's value ($4) from Letta unless the game wrote the field.
    MERGE_FIELD = "INSERT INTO fields (agent, block, field, value, seq) VALUES ($1, $2, $3, $4, 0)
     ON CONFLICT (agent, block, field) DO UPDATE SET value = EXCLUDED.value WHERE fields.seq = 0";
}
sql! {
    /// Sets a block's limit ($3).
    SET_LIMIT = "UPDATE blocks SET char_limit = $3 WHERE agent = $1 AND block = $2";
}
sql! {
    /// Makes a new version of a block.
    BUMP_VERSION = "UPDATE blocks SET version = version + 1 WHERE agent = $1 AND block = $2";
}
sql! {
    /// Makes a new version of a block unless Letta is behind it already.
    BUMP_VERSION_IF_WRITTEN = "UPDATE blocks SET version = version + 1 WHERE agent = $1 AND block = $2
     AND written_version >= version";
}
sql! {
    /// Whether Letta is behind a block.
    IS_BEHIND = "SELECT written_version < version FROM blocks WHERE agent = $1 AND block = $2";
}

// ---- Writes to Letta ----------------------------------------------------------------

sql! {
    /// The version Letta holds of a block.
    WRITTEN_VERSION = "SELECT written_version FROM blocks WHERE agent = $1 AND block = $2";
}
sql! {
    /// Takes a block's lease for $3 until $4 when Letta holds less than version $6 and the
    /// lease is free or expired at $5; returns a row when it did.
    TAKE_LEASE = "UPDATE blocks SET lease_owner = $3, lease_until = $4
     WHERE agent = $1 AND block = $2 AND written_version < $6
     AND (lease_owner IS NULL OR lease_until < $5) RETURNING 1";
}
sql! {
    /// Records that Letta holds version $3 (written by lease owner $4); returns the newest
    /// version.
    FINISH_WRITE = "UPDATE blocks SET written_version = CASE WHEN written_version > $3
       THEN written_version ELSE $3 END
     WHERE agent = $1 AND block = $2 AND lease_owner = $4 RETURNING version";
}
sql! {
    /// Extends a block's lease to $3.
    EXTEND_LEASE = "UPDATE blocks SET lease_until = $3 WHERE agent = $1 AND block = $2";
}
sql! {
    /// Frees a block's lease.
    DROP_LEASE = "UPDATE blocks SET lease_owner = NULL WHERE agent = $1 AND block = $2";
}
sql! {
    /// Frees a block's lease if owner $3 holds it.
    RELEASE = "UPDATE blocks SET lease_owner = NULL WHERE agent = $1 AND block = $2 AND lease_owner = $3";
}
sql! {
    /// Frees every lease whose owner starts with $1.
    RELEASE_ALL = "UPDATE blocks SET lease_owner = NULL
     WHERE substr(lease_owner, 1, length(CAST($1 AS TEXT))) = $1";
}
sql! {
    /// The blocks Letta is behind on whose lease is free or expired at $1.
    BEHIND = "SELECT agent, block, version FROM blocks WHERE written_version < version
     AND (lease_owner IS NULL OR lease_until < $1) ORDER BY agent, block";
}
sql! {
    /// How many blocks Letta is behind on.
    BEHIND_COUNT = "SELECT COUNT(*) FROM blocks WHERE written_version < version";
}

// ---- What differs between the two ---------------------------------------------------

/// SQLite: the connection's journal (WAL) and default durability (see `sqlite.rs`).
pub(crate) const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL;\nPRAGMA synchronous = NORMAL;";

/// SQLite has no `ADD COLUMN IF NOT EXISTS`: whether `answers.created_ms` exists (a
/// database made before idempotency records carried their time lacks it).
pub(crate) const SQLITE_HAS_CREATED_MS: &str =
    "SELECT COUNT(*) FROM pragma_table_info('answers') WHERE name = 'created_ms'";

/// Adds `answers.created_ms` (SQLite: run when [`SQLITE_HAS_CREATED_MS`] finds none).
pub(crate) const SQLITE_ADD_CREATED_MS: &str =
    "ALTER TABLE answers ADD COLUMN created_ms INTEGER NOT NULL DEFAULT 0";

/// Adds `answers.created_ms` when missing (PostgreSQL).
pub(crate) const PG_ADD_CREATED_MS: &str =
    "ALTER TABLE answers ADD COLUMN IF NOT EXISTS created_ms BIGINT NOT NULL DEFAULT 0;";

/// PostgreSQL: two instances starting at once may race on `CREATE TABLE IF NOT EXISTS`;
/// the schema is made under this advisory lock.
pub(crate) const PG_SCHEMA_LOCK: &str = "SELECT pg_advisory_lock(727)";
/// Releases [`PG_SCHEMA_LOCK`].
pub(crate) const PG_SCHEMA_UNLOCK: &str = "SELECT pg_advisory_unlock(727)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_placeholders_are_numbered_as_written() {
        assert_eq!(
            RELEASE.sqlite,
            "UPDATE blocks SET lease_owner = NULL WHERE agent = ?1 AND block = ?2 AND lease_owner = ?3"
        );
        assert!(!TAKE_LEASE.sqlite.contains('$'));
        assert_eq!(TAKE_LEASE.pg.replace('$', "?"), TAKE_LEASE.sqlite);
    }
}
