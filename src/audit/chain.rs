//! The hash chain over `events` (SPEC guarantee 5).
//!
//! Invariant: row `n` stores `prev_hash = hash(n-1)` (32 zero bytes for the
//! first row) and `hash = H(encode(prev_hash, seq, session_id, channel,
//! at_us, kind, detail, stream, data))`, where every field is tagged and
//! length-prefixed so that no two different rows encode alike, and `H` is
//! the store's one [`ChainAlgorithm`] (recorded in `chain_format`). Rows are
//! only ever appended through [`append`], which also advances the in-memory
//! [`ChainHead`]; [`store_head`] writes that head in the same transaction.

use rusqlite::{params, Connection, OptionalExtension, ToSql};
use sha2::{Digest, Sha256};

use super::payload::PayloadRef;

pub(crate) type Hash = [u8; 32];

/// The `prev_hash` of the first row.
pub(crate) const GENESIS: Hash = [0u8; 32];

/// The hash function of a store's chain, fixed when its first row is
/// written. BLAKE3 for every store since schema 2: the writer hashes every
/// recorded byte, and SHA-256 (even with SHA-NI, ~1.3 GB/s here) was a
/// quarter of its CPU on bulk streams; BLAKE3 is several times faster.
/// Stores whose chain began with SHA-256 keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChainAlgorithm {
    Sha256,
    Blake3,
}

impl ChainAlgorithm {
    /// Domain separation: a hash from this chain can't be mistaken for
    /// another, nor one algorithm's for the other's.
    fn domain(self) -> &'static [u8] {
        match self {
            ChainAlgorithm::Sha256 => b"portcullis.audit.v1",
            ChainAlgorithm::Blake3 => b"portcullis.audit.v2.blake3",
        }
    }

    /// The store's algorithm, from `chain_format`; SHA-256 for a schema 1
    /// store (opened read-only, not migrated), which has no such table. An
    /// unknown name is an error, never a silent fallback; a removed table
    /// makes every BLAKE3 row fail verification.
    pub(crate) fn of_store(conn: &Connection) -> rusqlite::Result<ChainAlgorithm> {
        let recorded: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'chain_format')",
            [],
            |row| row.get(0),
        )?;
        if !recorded {
            return Ok(ChainAlgorithm::Sha256);
        }
        let name: Option<String> = conn
            .query_row(
                "SELECT algorithm FROM chain_format WHERE id = 1",
                [],
                |row| row.get(0),
            )
            .optional()?;
        match name.as_deref() {
            Some("blake3") => Ok(ChainAlgorithm::Blake3),
            Some("sha256") => Ok(ChainAlgorithm::Sha256),
            other => Err(rusqlite::Error::InvalidColumnType(
                0,
                format!("chain_format.algorithm = {other:?}"),
                rusqlite::types::Type::Text,
            )),
        }
    }
}

/// One row's hash being computed, in the store's algorithm.
enum RowHasher {
    Sha256(Sha256),
    Blake3(Box<blake3::Hasher>),
}

impl RowHasher {
    fn new(algorithm: ChainAlgorithm) -> RowHasher {
        let mut h = match algorithm {
            ChainAlgorithm::Sha256 => RowHasher::Sha256(Sha256::new()),
            ChainAlgorithm::Blake3 => RowHasher::Blake3(Box::new(blake3::Hasher::new())),
        };
        h.update(algorithm.domain());
        h
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            RowHasher::Sha256(h) => h.update(bytes),
            RowHasher::Blake3(h) => {
                h.update(bytes);
            }
        }
    }

    fn finalize(self) -> Hash {
        match self {
            RowHasher::Sha256(h) => h.finalize().into(),
            RowHasher::Blake3(h) => *h.finalize().as_bytes(),
        }
    }
}

/// The fields of one chained row, as stored.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChainRow<'a> {
    pub seq: i64,
    pub session_id: Option<i64>,
    pub channel: Option<i64>,
    pub at_us: i64,
    pub kind: &'a str,
    pub detail: &'a str,
    pub stream: Option<&'a str>,
    pub data: Option<&'a [u8]>,
}

/// The last row of the chain: where the next row hangs, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChainHead {
    pub seq: i64,
    pub hash: Hash,
    pub algorithm: ChainAlgorithm,
}

impl ChainHead {
    pub fn empty(algorithm: ChainAlgorithm) -> ChainHead {
        ChainHead {
            seq: 0,
            hash: GENESIS,
            algorithm,
        }
    }
}

/// The hash of `row` chained after `prev`.
pub(crate) fn row_hash(algorithm: ChainAlgorithm, prev: &[u8], row: &ChainRow<'_>) -> Hash {
    hash_row(
        algorithm,
        prev,
        row,
        row.data.as_ref().map(std::slice::from_ref),
    )
}

/// [`row_hash`] with the row's data given as consecutive parts (`row.data`
/// is ignored): the same hash as the parts joined, without joining them.
fn hash_row(
    algorithm: ChainAlgorithm,
    prev: &[u8],
    row: &ChainRow<'_>,
    data: Option<&[&[u8]]>,
) -> Hash {
    let len = data.map(|parts| parts.iter().map(|p| p.len()).sum());
    let mut h = hash_fields(algorithm, prev, row, len);
    for part in data.unwrap_or_default() {
        h.update(part);
    }
    h.finalize()
}

/// The hasher fed with everything of a row but its data bytes, which are
/// `data_len` long (`None`: the row has no data).
fn hash_fields(
    algorithm: ChainAlgorithm,
    prev: &[u8],
    row: &ChainRow<'_>,
    data_len: Option<usize>,
) -> RowHasher {
    let mut h = RowHasher::new(algorithm);
    put_bytes(&mut h, prev);
    h.update(&row.seq.to_be_bytes());
    put_opt_int(&mut h, row.session_id);
    put_opt_int(&mut h, row.channel);
    h.update(&row.at_us.to_be_bytes());
    put_bytes(&mut h, row.kind.as_bytes());
    put_bytes(&mut h, row.detail.as_bytes());
    put_opt_bytes(&mut h, row.stream.map(str::as_bytes));
    match data_len {
        None => h.update(&[0u8]),
        Some(len) => {
            h.update(&[1u8]);
            h.update(&(len as u64).to_be_bytes());
        }
    }
    h
}

fn put_bytes(h: &mut RowHasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

fn put_opt_int(h: &mut RowHasher, v: Option<i64>) {
    match v {
        None => h.update(&[0u8]),
        Some(v) => {
            h.update(&[1u8]);
            h.update(&v.to_be_bytes());
        }
    }
}

fn put_opt_bytes(h: &mut RowHasher, v: Option<&[u8]>) {
    match v {
        None => h.update(&[0u8]),
        Some(v) => {
            h.update(&[1u8]);
            put_bytes(h, v);
        }
    }
}

/// Where the writer continues the chain: the recorded head, unless rows
/// past it exist (then the last row). A tail removed below the recorded head
/// is kept visible: the next row continues from the recorded head, leaving a
/// gap that `verify` reports.
pub(crate) fn load_head(conn: &Connection) -> rusqlite::Result<ChainHead> {
    let algorithm = ChainAlgorithm::of_store(conn)?;
    let recorded = read_recorded_head(conn, algorithm)?;
    let last = conn
        .query_row(
            "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)),
        )
        .optional()?
        .map(|(seq, hash)| ChainHead {
            seq,
            hash: to_hash(&hash),
            algorithm,
        });
    Ok(match (recorded, last) {
        (Some(r), Some(l)) if l.seq > r.seq => {
            tracing::error!(
                recorded = r.seq,
                last = l.seq,
                "audit chain head is behind the last row"
            );
            l
        }
        (Some(r), Some(l)) => {
            if r != l {
                tracing::error!(
                    recorded = r.seq,
                    last = l.seq,
                    "audit chain head does not match the last row"
                );
            }
            r
        }
        (Some(r), None) => r,
        (None, Some(l)) => {
            tracing::error!(last = l.seq, "audit chain head is missing");
            l
        }
        (None, None) => ChainHead::empty(algorithm),
    })
}

/// Brings `head` up to date when another connection appended since it was
/// read: one indexed row read in the common case, a full [`load_head`]
/// only when the recorded head moved.
pub(crate) fn refresh_head(conn: &Connection, head: &mut ChainHead) -> rusqlite::Result<()> {
    let recorded = read_recorded_head(conn, head.algorithm)?;
    let current = recorded.map_or(head.seq == 0, |r| r.seq == head.seq && r.hash == head.hash);
    if !current {
        *head = load_head(conn)?;
    }
    Ok(())
}

/// The head recorded in `chain_head`, if any.
pub(crate) fn read_recorded_head(
    conn: &Connection,
    algorithm: ChainAlgorithm,
) -> rusqlite::Result<Option<ChainHead>> {
    conn.query_row("SELECT seq, hash FROM chain_head WHERE id = 1", [], |row| {
        Ok(ChainHead {
            seq: row.get(0)?,
            hash: to_hash(&row.get::<_, Vec<u8>>(1)?),
            algorithm,
        })
    })
    .optional()
}

/// A stored hash as a fixed array; a wrong length (tampering) becomes a
/// value that matches nothing real.
pub(crate) fn to_hash(bytes: &[u8]) -> Hash {
    let mut out = [0xffu8; 32];
    if bytes.len() == out.len() {
        out.copy_from_slice(bytes);
    }
    out
}

/// Appends the row described by `row` (its `seq` is ignored and assigned
/// here) after `head`, and advances `head`.
pub(crate) fn append(
    conn: &Connection,
    head: &mut ChainHead,
    row: ChainRow<'_>,
) -> rusqlite::Result<i64> {
    let row = ChainRow {
        seq: head.seq.saturating_add(1),
        ..row
    };
    let hash = row_hash(head.algorithm, &head.hash, &row);
    insert(conn, &row, &row.data, &head.hash, &hash)?;
    head.seq = row.seq;
    head.hash = hash;
    Ok(row.seq)
}

/// A stream row whose bytes go to a payload segment: its hash covers the
/// bytes themselves, fed in pieces as they are copied out (while they are
/// still in cache, not in a second pass); the row stores where they are.
pub(crate) struct PayloadRow<'a> {
    row: ChainRow<'a>,
    hasher: RowHasher,
    unfed: usize,
}

impl<'a> PayloadRow<'a> {
    /// The row after `head`, its bytes `len` long.
    pub fn start(head: &ChainHead, row: ChainRow<'a>, len: usize) -> PayloadRow<'a> {
        let row = ChainRow {
            seq: head.seq.saturating_add(1),
            data: None,
            ..row
        };
        PayloadRow {
            hasher: hash_fields(head.algorithm, &head.hash, &row, Some(len)),
            row,
            unfed: len,
        }
    }

    /// The next of the row's bytes, in order.
    pub fn feed(&mut self, piece: &[u8]) {
        self.unfed = self.unfed.saturating_sub(piece.len());
        self.hasher.update(piece);
    }

    /// Inserts the row, its bytes at `located`, and moves `head` to it.
    pub fn insert(
        self,
        conn: &Connection,
        head: &mut ChainHead,
        located: PayloadRef,
    ) -> rusqlite::Result<i64> {
        let row = self.row;
        let fed_all = self.unfed == 0 && located.len >= 0;
        if !fed_all || row.seq != head.seq.saturating_add(1) {
            // A bug, not input: refuse rather than chain a wrong hash.
            return Err(rusqlite::Error::InvalidQuery);
        }
        let hash = self.hasher.finalize();
        conn.prepare_cached(
            "INSERT INTO events (seq, session_id, channel, at_us, kind, detail, stream, data,
                                 prev_hash, hash, payload_segment, payload_offset, payload_len)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            row.seq,
            row.session_id,
            row.channel,
            row.at_us,
            row.kind,
            row.detail,
            row.stream,
            &head.hash[..],
            &hash[..],
            located.segment,
            located.offset,
            located.len,
        ])?;
        head.seq = row.seq;
        head.hash = hash;
        Ok(row.seq)
    }
}

fn insert(
    conn: &Connection,
    row: &ChainRow<'_>,
    data: &dyn ToSql,
    prev: &Hash,
    hash: &Hash,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO events (seq, session_id, channel, at_us, kind, detail, stream, data, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        row.seq,
        row.session_id,
        row.channel,
        row.at_us,
        row.kind,
        row.detail,
        row.stream,
        data,
        &prev[..],
        &hash[..],
    ])?;
    Ok(())
}

/// Records `head` as the chain's head (call in the appending transaction).
pub(crate) fn store_head(conn: &Connection, head: &ChainHead) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO chain_head (id, seq, hash) VALUES (1, ?1, ?2)")?
        .execute(params![head.seq, &head.hash[..]])?;
    Ok(())
}
