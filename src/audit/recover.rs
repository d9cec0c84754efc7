//! Crash recovery on open (SPEC guarantee 4).
//!
//! Invariant: after [`close_interrupted`] no session is open that this
//! process did not begin. A session left open by a crash keeps every row it
//! committed and is ended with reason [`INTERRUPTED`] at the time of its last
//! committed row, through the same chained `session.end` event as a normal
//! end, so the chain stays whole.

use rusqlite::{Connection, TransactionBehavior};

use super::chain::{self, ChainHead};
use super::ops::{self, OpError};
use super::{SessionId, StoreError};

/// The end reason of a session whose bastion died under it.
pub const INTERRUPTED: &str = "interrupted";

/// Ends every open session; returns the ids it ended.
pub(crate) fn close_interrupted(
    conn: &mut Connection,
    head: &mut ChainHead,
) -> Result<Vec<SessionId>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let open: Vec<(i64, i64)> = {
        let mut stmt = tx.prepare(
            "SELECT s.id, COALESCE((SELECT MAX(e.at_us) FROM events e WHERE e.session_id = s.id),
                                   s.started_at_us)
             FROM sessions s WHERE s.ended_at_us IS NULL ORDER BY s.id",
        )?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    if open.is_empty() {
        return Ok(Vec::new());
    }
    let mut next = *head;
    let mut ended = Vec::with_capacity(open.len());
    for (id, last_at) in open {
        let id = SessionId(id);
        match ops::end(&tx, &mut next, last_at, id, INTERRUPTED) {
            Ok(()) => ended.push(id),
            Err(OpError::Rejected(e)) => return Err(e),
            Err(OpError::Store(e)) => return Err(e.into()),
            Err(OpError::Payload(e)) => return Err(StoreError::Unavailable(e)),
        }
    }
    chain::store_head(&tx, &next)?;
    tx.commit()?;
    *head = next;
    for id in &ended {
        tracing::warn!(
            session = id.0,
            "audit: session was interrupted; marked ended"
        );
    }
    Ok(ended)
}
