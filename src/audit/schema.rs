//! The SQLite schema and the two ways to open the store.
//!
//! Invariant: the read-write connection always runs in WAL mode with
//! `synchronous=FULL` (a commit is on disk when it returns) and foreign keys
//! on, and the schema is at [`SCHEMA_VERSION`] (`PRAGMA user_version`) before
//! anything is written. Readers open read-only and never migrate.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::StoreError;

/// The schema this code writes. Bump it and add a step to [`MIGRATIONS`].
pub(crate) const SCHEMA_VERSION: i64 = 7;

/// Page size of a new store (an existing one keeps its own). Stream bytes
/// live in payload segments, so rows are small and a commit touches a few
/// pages: SQLite's default keeps each commit's WAL write (and its sync)
/// small. (Stores made when rows held their bytes inline use 64 KiB.)
const NEW_STORE_PAGE_SIZE: u32 = 4096;

/// The writer checkpoints the WAL itself once it holds this much: a guard,
/// since the checkpointer thread (checkpoint.rs) normally keeps it far
/// smaller. A checkpoint inside a commit stalls every caller waiting on it.
const CHECKPOINT_BYTES: i64 = 64 << 20;

/// `MIGRATIONS[n]` takes a store from version `n` to `n + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the first schema.
    "
    CREATE TABLE sessions (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at_us  INTEGER NOT NULL,
        ended_at_us    INTEGER,
        end_reason     TEXT,
        identity       TEXT NOT NULL,
        key_id         TEXT NOT NULL,
        task           TEXT,
        cert_serial    INTEGER NOT NULL, -- the u64 serial's bit pattern
        ca_fingerprint TEXT NOT NULL,
        client_addr    TEXT NOT NULL,
        target         TEXT NOT NULL,
        login          TEXT NOT NULL
    );
    CREATE INDEX sessions_identity ON sessions(identity);
    CREATE INDEX sessions_started ON sessions(started_at_us);

    CREATE TABLE events (
        seq        INTEGER PRIMARY KEY,
        session_id INTEGER REFERENCES sessions(id),
        channel    INTEGER,
        at_us      INTEGER NOT NULL,
        kind       TEXT NOT NULL,
        detail     TEXT NOT NULL,
        stream     TEXT CHECK (stream IN ('stdin', 'stdout', 'stderr')),
        data       BLOB,
        prev_hash  BLOB NOT NULL,
        hash       BLOB NOT NULL
    );
    CREATE INDEX events_session ON events(session_id, seq);
    CREATE INDEX events_kind ON events(kind, at_us);

    CREATE TABLE chain_head (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        seq  INTEGER NOT NULL,
        hash BLOB NOT NULL
    );
    ",
    // 1 -> 2: the chain's hash function is recorded (chain.rs,
    // ChainAlgorithm): a chain already begun keeps SHA-256, a new one is
    // BLAKE3.
    "
    CREATE TABLE chain_format (
        id        INTEGER PRIMARY KEY CHECK (id = 1),
        algorithm TEXT NOT NULL CHECK (algorithm IN ('sha256', 'blake3'))
    );
    INSERT INTO chain_format (id, algorithm)
        SELECT 1, CASE WHEN EXISTS (SELECT 1 FROM events) THEN 'sha256' ELSE 'blake3' END;
    ",
    // 2 -> 3: the grants tables join the schema (a store of schema 2 may
    // have them already: the grants module used to create them), claims
    // are keyed by the certificate's own fingerprint, revocations may name
    // a fingerprint, identities can be suspended, sessions say which cert
    // and role they ran under.
    "
    CREATE TABLE IF NOT EXISTS grant_requests (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at_us   INTEGER NOT NULL,
        identity        TEXT NOT NULL,
        role            TEXT NOT NULL,
        task            TEXT,
        reason          TEXT,
        scope           TEXT NOT NULL,
        pubkey          TEXT NOT NULL,
        status          TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'issued')),
        decided_by      TEXT,
        decided_at_us   INTEGER,
        decision_reason TEXT,
        serial          INTEGER
    );
    CREATE INDEX IF NOT EXISTS grant_requests_status ON grant_requests(status);
    CREATE TABLE IF NOT EXISTS grants (
        serial        INTEGER PRIMARY KEY,  -- the u64 serial's bit pattern
        request_id    INTEGER,
        identity      TEXT NOT NULL,
        role          TEXT NOT NULL,
        task          TEXT,
        reason        TEXT,
        scope         TEXT NOT NULL,
        valid_after   INTEGER NOT NULL,
        valid_before  INTEGER NOT NULL,
        approver      TEXT NOT NULL,
        issued_at_us  INTEGER NOT NULL,
        cert          TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS grants_identity ON grants(identity);
    ALTER TABLE grants ADD COLUMN cert_fingerprint TEXT;
    CREATE INDEX grants_fingerprint ON grants(cert_fingerprint);
    -- Claims of schema 2, by (CA, serial): still honoured for old certs.
    CREATE TABLE IF NOT EXISTS cert_uses (
        ca_fingerprint TEXT NOT NULL,
        serial         INTEGER NOT NULL,
        state          TEXT NOT NULL CHECK (state IN ('in_use', 'consumed')),
        claimed_at_us  INTEGER NOT NULL,
        PRIMARY KEY (ca_fingerprint, serial)
    );
    CREATE TABLE cert_claims (
        cert_fingerprint TEXT PRIMARY KEY,
        session_id       INTEGER REFERENCES sessions(id),
        state            TEXT NOT NULL CHECK (state IN ('in_use', 'consumed')),
        claimed_at_us    INTEGER NOT NULL
    );
    CREATE INDEX cert_claims_session ON cert_claims(session_id);
    CREATE TABLE IF NOT EXISTS revocations (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        at_us  INTEGER NOT NULL,
        kind   TEXT NOT NULL CHECK (kind IN ('serial', 'identity', 'task')),
        value  TEXT NOT NULL,
        by     TEXT NOT NULL,
        reason TEXT
    );
    CREATE TABLE revocations_v3 (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        at_us  INTEGER NOT NULL,
        kind   TEXT NOT NULL CHECK (kind IN ('serial', 'identity', 'task', 'fingerprint')),
        value  TEXT NOT NULL,
        by     TEXT NOT NULL,
        reason TEXT
    );
    INSERT INTO revocations_v3 (id, at_us, kind, value, by, reason)
        SELECT id, at_us, kind, value, by, reason FROM revocations;
    DROP TABLE revocations;
    ALTER TABLE revocations_v3 RENAME TO revocations;
    CREATE INDEX revocations_value ON revocations(kind, value);
    CREATE TABLE suspensions (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        identity      TEXT NOT NULL,
        at_us         INTEGER NOT NULL,
        by            TEXT NOT NULL,
        reason        TEXT,
        lifted_at_us  INTEGER,
        lifted_by     TEXT
    );
    CREATE INDEX suspensions_identity ON suspensions(identity);
    ALTER TABLE sessions ADD COLUMN cert_fingerprint TEXT;
    ALTER TABLE sessions ADD COLUMN role TEXT;
    ",
    // 3 -> 4: stream bytes live in payload segments beside the store
    // (payload.rs); a data row names them. Rows written before keep their
    // bytes inline in `data`.
    "
    ALTER TABLE events ADD COLUMN payload_segment INTEGER;
    ALTER TABLE events ADD COLUMN payload_offset INTEGER;
    ALTER TABLE events ADD COLUMN payload_len INTEGER;
    CREATE INDEX events_payload ON events(payload_segment, payload_offset)
        WHERE payload_segment IS NOT NULL;
    ",
    // 4 -> 5: held commands (a command outside the grant that waits for an
    // operator) share one id space with grant requests, so `approve ID`
    // names one thing; pending requests of either kind expire.
    "
    CREATE TABLE request_ids (
        id   INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('grant', 'command'))
    );
    INSERT INTO request_ids (id, kind) SELECT id, 'grant' FROM grant_requests;
    CREATE TABLE grant_requests_v5 (
        id              INTEGER PRIMARY KEY,
        created_at_us   INTEGER NOT NULL,
        identity        TEXT NOT NULL,
        role            TEXT NOT NULL,
        task            TEXT,
        reason          TEXT,
        scope           TEXT NOT NULL,
        pubkey          TEXT NOT NULL,
        status          TEXT NOT NULL
            CHECK (status IN ('pending', 'approved', 'denied', 'issued', 'expired')),
        decided_by      TEXT,
        decided_at_us   INTEGER,
        decision_reason TEXT,
        serial          INTEGER
    );
    INSERT INTO grant_requests_v5 (id, created_at_us, identity, role, task, reason, scope, pubkey,
                                   status, decided_by, decided_at_us, decision_reason, serial)
        SELECT id, created_at_us, identity, role, task, reason, scope, pubkey,
               status, decided_by, decided_at_us, decision_reason, serial FROM grant_requests;
    DROP TABLE grant_requests;
    ALTER TABLE grant_requests_v5 RENAME TO grant_requests;
    CREATE INDEX grant_requests_status ON grant_requests(status);
    CREATE TABLE held_commands (
        id               INTEGER PRIMARY KEY,
        created_at_us    INTEGER NOT NULL,
        expires_at_us    INTEGER NOT NULL,
        session_id       INTEGER NOT NULL REFERENCES sessions(id),
        channel          INTEGER,
        identity         TEXT NOT NULL,
        role             TEXT,
        task             TEXT,
        target           TEXT NOT NULL,
        cert_fingerprint TEXT NOT NULL,
        command          BLOB NOT NULL,
        status           TEXT NOT NULL
            CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'ran')),
        decided_by       TEXT,
        decided_at_us    INTEGER,
        decision_reason  TEXT,
        ran_session_id   INTEGER REFERENCES sessions(id),
        ran_at_us        INTEGER
    );
    CREATE INDEX held_commands_cert ON held_commands(cert_fingerprint, target);
    CREATE INDEX held_commands_status ON held_commands(status);
    ",
    // 5 -> 6: the web viewer's one-time sign-in links and browser
    // sessions (grants/review.rs). Only SHA-256 hashes of the secrets are
    // kept, so a copy of the store signs no one in.
    "
    CREATE TABLE review_links (
        token_hash    BLOB PRIMARY KEY,
        identity      TEXT NOT NULL,
        created_at_us INTEGER NOT NULL,
        expires_at_us INTEGER NOT NULL,
        used          INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1))
    );
    CREATE TABLE review_sessions (
        id_hash       BLOB PRIMARY KEY,
        identity      TEXT NOT NULL,
        csrf          TEXT NOT NULL,
        created_at_us INTEGER NOT NULL,
        expires_at_us INTEGER NOT NULL,
        ended         INTEGER NOT NULL DEFAULT 0 CHECK (ended IN (0, 1))
    );
    ",
    // 6 -> 7: the web viewer's sessions list filters by task and target
    // (indexes, so a filtered page walks its own rows) and searches the
    // commands a session ran or was refused and the command lines observed
    // on its terminal: a trigram full-text table (substring matches, any
    // language), kept by a trigger in the same transaction as the event,
    // and backfilled here. Its rowid is the event's seq.
    "
    CREATE INDEX sessions_task ON sessions(task);
    CREATE INDEX sessions_target ON sessions(target);
    CREATE VIRTUAL TABLE command_search
        USING fts5(text, session_id UNINDEXED, tokenize = 'trigram');
    CREATE TRIGGER events_command_search AFTER INSERT ON events
        WHEN NEW.session_id IS NOT NULL
         AND NEW.kind IN ('exec.allowed', 'exec.refused', 'command.held', 'command.observed')
         AND json_valid(NEW.detail)
    BEGIN
        INSERT INTO command_search (rowid, text, session_id) VALUES (
            NEW.seq,
            concat_ws(char(10), json_extract(NEW.detail, '$.command'),
                      json_extract(NEW.detail, '$.forced_command'),
                      json_extract(NEW.detail, '$.line')),
            NEW.session_id);
    END;
    INSERT INTO command_search (rowid, text, session_id)
        SELECT seq,
               concat_ws(char(10), json_extract(detail, '$.command'),
                         json_extract(detail, '$.forced_command'),
                         json_extract(detail, '$.line')),
               session_id
        FROM events
        WHERE session_id IS NOT NULL
          AND kind IN ('exec.allowed', 'exec.refused', 'command.held', 'command.observed')
          AND json_valid(detail);
    ",
];

/// Opens (creating if needed) the store for writing and brings its schema
/// up to date.
pub(crate) fn open_writer(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(busy_timeout).map_err(open_err)?;
    // Only takes effect before the first write creates the file's header.
    conn.pragma_update(None, "page_size", NEW_STORE_PAGE_SIZE)
        .map_err(open_err)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
        .map_err(open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "cannot switch {} to WAL mode (got {mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_err)?;
    // Room for a whole batch of large stream rows (64 KiB pages), so that
    // no page is spilled to the WAL and then written again in one commit.
    conn.pragma_update(None, "cache_size", -8 * 1024)
        .map_err(open_err)?;
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .map_err(open_err)?;
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        (CHECKPOINT_BYTES / page_size.max(512)).max(1),
    )
    .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(open_err)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Opens an existing store read-only (the reviewer commands), safe to use
/// while a server writes.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(open_err)?;
    let version = user_version(&conn).map_err(open_err)?;
    if version == 0 {
        return Err(StoreError::NotAStore(path.to_path_buf()));
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(conn)
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found = user_version(&tx)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let start = usize::try_from(found).unwrap_or(0);
    for step in MIGRATIONS.iter().skip(start) {
        tx.execute_batch(step)?;
    }
    if found < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(())
}

/// Whether the store could take a write now (`portcullis check`): takes the
/// write lock and lets it go, writing nothing.
pub fn probe_writable(path: &Path) -> Result<(), StoreError> {
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(|source| {
            StoreError::Open {
                path: path.to_path_buf(),
                source,
            }
        })?;
    conn.busy_timeout(Duration::from_secs(1))?;
    conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")?;
    Ok(())
}
