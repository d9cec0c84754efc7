//! The shared tables, created (under an advisory lock, so replicas
//! starting together do not race) by whichever connects first.

use tokio_postgres::Client;

use super::ClusterError;

/// The version these tables are at; a database at a later one refuses.
const VERSION: i32 = 1;
/// Any number, the same in every replica: the lock the migration holds.
const MIGRATION_LOCK: i64 = 0x706f_7274_6375;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
-- One row: the last revocation id. Taking it FOR UPDATE numbers
-- revocations in commit order.
CREATE TABLE IF NOT EXISTS revocation_head (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    id BIGINT NOT NULL
);
INSERT INTO revocation_head (one, id) VALUES (TRUE, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS revocations (
    id BIGINT PRIMARY KEY,
    at_us BIGINT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    by TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS revocations_by_value ON revocations (kind, value);
CREATE TABLE IF NOT EXISTS suspensions (
    id BIGSERIAL PRIMARY KEY,
    identity TEXT NOT NULL,
    at_us BIGINT NOT NULL,
    by TEXT NOT NULL,
    reason TEXT,
    lifted_at_us BIGINT,
    lifted_by TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS suspensions_in_force ON suspensions (identity)
    WHERE lifted_at_us IS NULL;
CREATE TABLE IF NOT EXISTS claims (
    cert_fingerprint TEXT PRIMARY KEY,
    replica TEXT NOT NULL,
    local_id BIGINT,
    claimed_at_us BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS replicas (
    name TEXT PRIMARY KEY,
    started_at_us BIGINT NOT NULL,
    heartbeat_at_us BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    replica TEXT NOT NULL,
    local_id BIGINT NOT NULL,
    started_at_us BIGINT NOT NULL,
    ended_at_us BIGINT,
    end_reason TEXT,
    identity TEXT NOT NULL,
    key_id TEXT NOT NULL,
    task TEXT,
    cert_serial TEXT NOT NULL,
    ca_fingerprint TEXT NOT NULL,
    cert_fingerprint TEXT,
    role TEXT,
    client_addr TEXT NOT NULL,
    target TEXT NOT NULL,
    login TEXT NOT NULL,
    PRIMARY KEY (replica, local_id)
);
CREATE INDEX IF NOT EXISTS sessions_by_start ON sessions (started_at_us);
CREATE INDEX IF NOT EXISTS sessions_open ON sessions (replica) WHERE ended_at_us IS NULL;
-- Sessions sealed into the archive: the object and the digest of its
-- bytes (the same digest is chained as archive.sealed).
CREATE TABLE IF NOT EXISTS archived (
    replica TEXT NOT NULL,
    local_id BIGINT NOT NULL,
    object_key TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    sealed_at_us BIGINT NOT NULL,
    PRIMARY KEY (replica, local_id)
);
-- One id space for grant requests and held commands, as in the store.
CREATE TABLE IF NOT EXISTS request_ids (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('grant', 'command'))
);
CREATE TABLE IF NOT EXISTS grant_requests (
    id BIGINT PRIMARY KEY REFERENCES request_ids (id),
    replica TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    identity TEXT NOT NULL,
    role TEXT NOT NULL,
    task TEXT,
    reason TEXT,
    scope TEXT NOT NULL,
    pubkey TEXT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'approved', 'denied', 'issued', 'expired')),
    decided_by TEXT,
    decided_at_us BIGINT,
    decision_reason TEXT,
    serial TEXT
);
CREATE INDEX IF NOT EXISTS grant_requests_pending ON grant_requests (id) WHERE status = 'pending';
-- Every cert the signing node issued (its store keeps them too): what
-- `grant status` hands out again from any replica, and when each was
-- issued, which identity and task revocations compare with.
CREATE TABLE IF NOT EXISTS grants (
    cert_fingerprint TEXT PRIMARY KEY,
    request_id BIGINT UNIQUE REFERENCES grant_requests (id),
    serial TEXT NOT NULL,
    replica TEXT NOT NULL,
    identity TEXT NOT NULL,
    issued_at_us BIGINT NOT NULL,
    valid_before BIGINT NOT NULL,
    cert TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS held_commands (
    id BIGINT PRIMARY KEY REFERENCES request_ids (id),
    replica TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    session_id BIGINT NOT NULL,
    channel BIGINT,
    identity TEXT NOT NULL,
    role TEXT,
    task TEXT,
    target TEXT NOT NULL,
    cert_fingerprint TEXT NOT NULL,
    command BYTEA NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'ran')),
    decided_by TEXT,
    decided_at_us BIGINT,
    decision_reason TEXT,
    ran_replica TEXT,
    ran_session_id BIGINT,
    ran_at_us BIGINT
);
CREATE INDEX IF NOT EXISTS held_commands_cert ON held_commands (cert_fingerprint, target);
CREATE INDEX IF NOT EXISTS held_commands_live ON held_commands (id)
    WHERE status IN ('pending', 'approved');
-- Token buckets of the per-identity rate limits, one per (limit, identity).
CREATE TABLE IF NOT EXISTS rate_buckets (
    limit_name TEXT NOT NULL,
    identity TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    refilled_at_us BIGINT NOT NULL,
    PRIMARY KEY (limit_name, identity)
);
-- The control decisions, hash-chained; the one head row is taken FOR
-- UPDATE by every append.
CREATE TABLE IF NOT EXISTS chain_head (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO chain_head (one, seq, hash) VALUES (TRUE, 0, '') ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS events (
    seq BIGINT PRIMARY KEY,
    at_us BIGINT NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
";

pub(super) async fn migrate(client: &Client) -> Result<(), ClusterError> {
    client
        .batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({MIGRATION_LOCK}); {TABLES}"
        ))
        .await?;
    let found: Option<i32> = client
        .query_opt("SELECT max(version) FROM schema_version", &[])
        .await?
        .and_then(|row| row.get(0));
    match found {
        Some(version) if version > VERSION => {
            client.batch_execute("ROLLBACK").await?;
            return Err(ClusterError::NewerSchema(version));
        }
        Some(_) => {}
        None => {
            client
                .execute(
                    "INSERT INTO schema_version (version) VALUES ($1)",
                    &[&VERSION],
                )
                .await?;
        }
    }
    client.batch_execute("COMMIT").await?;
    Ok(())
}
