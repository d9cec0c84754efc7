//! Held commands: a command outside a session's scope that a role's `ask`
//! pattern holds for an operator, in one id space with grant requests.
//!
//! Invariant: a hold names the exact command bytes and the cert (by
//! fingerprint) and target it was held for; it runs at most once (only
//! the transition `approved` -> `ran` hands it out, and only before it
//! expires), and every transition chains its event in the same
//! transaction.

use rusqlite::{params, Connection, OptionalExtension};

use super::{refused, sql, Op};
use crate::audit::{Event, SessionId, Txn};
use crate::grants::GrantError;

/// What a hold records when it is made.
#[derive(Debug, Clone)]
pub struct NewHold {
    pub session: SessionId,
    pub channel: Option<u32>,
    pub identity: String,
    pub role: Option<String>,
    pub task: Option<String>,
    pub target: String,
    pub cert_fingerprint: String,
    pub command: String,
    pub expires_at_us: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldStatus {
    Pending,
    Approved,
    Denied,
    Expired,
    Ran,
}

impl HoldStatus {
    pub fn parse(s: &str) -> Option<HoldStatus> {
        match s {
            "pending" => Some(HoldStatus::Pending),
            "approved" => Some(HoldStatus::Approved),
            "denied" => Some(HoldStatus::Denied),
            "expired" => Some(HoldStatus::Expired),
            "ran" => Some(HoldStatus::Ran),
            _ => None,
        }
    }
}

impl std::fmt::Display for HoldStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HoldStatus::Pending => "pending",
            HoldStatus::Approved => "approved",
            HoldStatus::Denied => "denied",
            HoldStatus::Expired => "expired",
            HoldStatus::Ran => "ran",
        })
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct HoldRecord {
    pub id: i64,
    pub created_at_us: i64,
    pub expires_at_us: i64,
    pub session: i64,
    /// The replica whose session `session` is (in a cluster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    pub channel: Option<u32>,
    pub identity: String,
    pub role: Option<String>,
    pub task: Option<String>,
    pub target: String,
    pub cert_fingerprint: String,
    pub command: String,
    pub status: HoldStatus,
    pub decided_by: Option<String>,
    pub decided_at_us: Option<i64>,
    pub decision_reason: Option<String>,
    pub ran_session: Option<i64>,
    pub ran_at_us: Option<i64>,
}

/// Which kind of request an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Grant,
    Command,
}

/// A fresh id from the one id space of requests.
pub(in crate::grants) fn next_request_id(txn: &mut Txn<'_>, kind: RequestKind) -> Op<i64> {
    let kind = match kind {
        RequestKind::Grant => "grant",
        RequestKind::Command => "command",
    };
    txn.conn()
        .execute("INSERT INTO request_ids (kind) VALUES (?1)", [kind])
        .map_err(sql)?;
    Ok(txn.conn().last_insert_rowid())
}

/// The kind of request `id` is, if there is one.
pub fn request_kind(conn: &Connection, id: i64) -> Result<Option<RequestKind>, GrantError> {
    let kind: Option<String> = conn
        .query_row("SELECT kind FROM request_ids WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    match kind.as_deref() {
        None => Ok(None),
        Some("grant") => Ok(Some(RequestKind::Grant)),
        Some("command") => Ok(Some(RequestKind::Command)),
        Some(_) => Err(GrantError::Corrupt("request kind")),
    }
}

/// Records a new hold and its `command.held` event.
pub fn create_hold(txn: &mut Txn<'_>, hold: &NewHold) -> Op<i64> {
    let id = next_request_id(txn, RequestKind::Command)?;
    txn.conn()
        .execute(
            "INSERT INTO held_commands (id, created_at_us, expires_at_us, session_id, channel,
                 identity, role, task, target, cert_fingerprint, command, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'pending')",
            params![
                id,
                txn.at_us(),
                hold.expires_at_us,
                hold.session.0,
                hold.channel,
                hold.identity,
                hold.role,
                hold.task,
                hold.target,
                hold.cert_fingerprint,
                hold.command.as_bytes(),
            ],
        )
        .map_err(sql)?;
    txn.record(Some(hold.session), hold.channel, &held_event(id, hold))?;
    Ok(id)
}

/// `command.held` for `hold`, recorded as request `id`.
pub fn held_event(id: i64, hold: &NewHold) -> Event {
    Event::CommandHeld {
        request_id: id,
        command: hold.command.clone(),
        identity: hold.identity.clone(),
        target: hold.target.clone(),
        role: hold.role.clone(),
        task: hold.task.clone(),
        expires_at_us: hold.expires_at_us,
    }
}

/// Approves or denies a pending hold (and chains `command.approved` or
/// `command.denied` into the session that held it).
pub fn decide_hold(
    txn: &mut Txn<'_>,
    id: i64,
    approve: bool,
    by: &str,
    reason: Option<&str>,
) -> Op<()> {
    let status = if approve { "approved" } else { "denied" };
    let changed = txn
        .conn()
        .execute(
            "UPDATE held_commands SET status = ?1, decided_by = ?2, decided_at_us = ?3,
                 decision_reason = ?4
             WHERE id = ?5 AND status = 'pending' AND expires_at_us > ?3",
            params![status, by, txn.at_us(), reason, id],
        )
        .map_err(sql)?;
    let held = hold(txn.conn(), id).map_err(crate::audit::Abort::Refused)?;
    match held {
        Some(held) if changed == 1 => {
            let event = decision_event(&held, approve, by, reason);
            record_for_session(txn, held.session, held.channel, &event)
        }
        held => refused(undecidable_hold(id, held.as_ref())),
    }
}

/// Why hold `id` could not be decided, from what it is now.
pub fn undecidable_hold(id: i64, now: Option<&HoldRecord>) -> GrantError {
    match now {
        None => GrantError::NoSuchRequest(id),
        Some(held) => {
            let status = match held.status {
                // Not swept yet, but past its time all the same.
                HoldStatus::Pending => "expired".to_owned(),
                other => other.to_string(),
            };
            GrantError::HoldNotPending { id, status }
        }
    }
}

/// `command.approved` or `command.denied` for `held`.
pub fn decision_event(held: &HoldRecord, approve: bool, by: &str, reason: Option<&str>) -> Event {
    let (request_id, held_session) = (held.id, held.session);
    let (by, reason) = (by.to_owned(), reason.map(str::to_owned));
    match approve {
        true => Event::CommandApproved {
            request_id,
            held_session,
            by,
            reason,
        },
        false => Event::CommandDenied {
            request_id,
            held_session,
            by,
            reason,
        },
    }
}

/// Why hold `id` could not be taken to run, from what it is now.
pub fn unclaimable(id: i64, now: Option<&HoldRecord>) -> GrantError {
    match now {
        None => GrantError::NoSuchRequest(id),
        Some(held) => GrantError::HoldNotPending {
            id,
            status: held.status.to_string(),
        },
    }
}

/// Chains `event` into the session that held the command while it is
/// open (its transcript then shows the step); an ended session takes no
/// more rows, so the event stands alone and names it in `held_session`.
fn record_for_session(
    txn: &mut Txn<'_>,
    session: i64,
    channel: Option<u32>,
    event: &Event,
) -> Op<()> {
    let open: bool = txn
        .conn()
        .query_row(
            "SELECT ended_at_us IS NULL FROM sessions WHERE id = ?1",
            [session],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql)?
        .unwrap_or(false);
    match open {
        true => txn.record(Some(SessionId(session)), channel, event)?,
        false => txn.record(None, None, event)?,
    }
    Ok(())
}

/// Takes an approved hold to run it, once: `approved` -> `ran`, for the
/// same cert, target and exact command, before it expires.
pub fn claim_approved(
    txn: &mut Txn<'_>,
    id: i64,
    cert_fingerprint: &str,
    target: &str,
    command: &str,
    session: SessionId,
) -> Op<HoldRecord> {
    let changed = txn
        .conn()
        .execute(
            "UPDATE held_commands SET status = 'ran', ran_session_id = ?1, ran_at_us = ?2
             WHERE id = ?3 AND status = 'approved' AND expires_at_us > ?2
               AND cert_fingerprint = ?4 AND target = ?5 AND command = ?6",
            params![
                session.0,
                txn.at_us(),
                id,
                cert_fingerprint,
                target,
                command.as_bytes()
            ],
        )
        .map_err(sql)?;
    let held = hold(txn.conn(), id).map_err(crate::audit::Abort::Refused)?;
    match held {
        Some(held) if changed == 1 => Ok(held),
        held => refused(unclaimable(id, held.as_ref())),
    }
}

/// The newest hold of this exact command for this cert on this target
/// that may still be decided or run (pending, approved or denied, and not
/// expired): what a retry of the same command waits on or runs.
pub fn hold_for_retry(
    conn: &Connection,
    cert_fingerprint: &str,
    target: &str,
    command: &str,
    now_us: i64,
) -> Result<Option<HoldRecord>, GrantError> {
    let sql = format!(
        "{HOLD_COLUMNS} WHERE cert_fingerprint = ?1 AND target = ?2 AND command = ?3
           AND status IN ('pending', 'approved', 'denied') AND expires_at_us > ?4
         ORDER BY id DESC LIMIT 1"
    );
    conn.query_row(
        &sql,
        params![cert_fingerprint, target, command.as_bytes(), now_us],
        hold_from_row,
    )
    .optional()?
    .transpose()
}

pub fn hold(conn: &Connection, id: i64) -> Result<Option<HoldRecord>, GrantError> {
    let sql = format!("{HOLD_COLUMNS} WHERE id = ?1");
    conn.query_row(&sql, [id], hold_from_row)
        .optional()?
        .transpose()
}

/// Holds, oldest first: pending ones only, or all.
pub fn holds(conn: &Connection, only_pending: bool) -> Result<Vec<HoldRecord>, GrantError> {
    let filter = match only_pending {
        true => " WHERE status = 'pending'",
        false => "",
    };
    let sql = format!("{HOLD_COLUMNS}{filter} ORDER BY id");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], hold_from_row)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

/// Marks every pending or approved hold past its time expired (with
/// `command.expired`); returns how many.
pub fn expire_holds(txn: &mut Txn<'_>) -> Op<usize> {
    let due: Vec<(i64, i64, Option<u32>)> = {
        let mut stmt = txn
            .conn()
            .prepare(
                "SELECT id, session_id, channel FROM held_commands
                 WHERE status IN ('pending', 'approved') AND expires_at_us <= ?1",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map([txn.at_us()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(sql)?;
        rows.collect::<rusqlite::Result<_>>().map_err(sql)?
    };
    for (id, session, channel) in &due {
        txn.conn()
            .execute(
                "UPDATE held_commands SET status = 'expired' WHERE id = ?1",
                [id],
            )
            .map_err(sql)?;
        let event = Event::CommandExpired {
            request_id: *id,
            held_session: *session,
        };
        record_for_session(txn, *session, *channel, &event)?;
    }
    Ok(due.len())
}

const HOLD_COLUMNS: &str = "SELECT id, created_at_us, expires_at_us, session_id, channel, identity,
    role, task, target, cert_fingerprint, command, status, decided_by, decided_at_us,
    decision_reason, ran_session_id, ran_at_us FROM held_commands";

fn hold_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<HoldRecord, GrantError>> {
    let command: Vec<u8> = row.get(10)?;
    let status: String = row.get(11)?;
    Ok((|| {
        Ok(HoldRecord {
            id: row.get(0)?,
            created_at_us: row.get(1)?,
            expires_at_us: row.get(2)?,
            session: row.get(3)?,
            replica: None,
            channel: row.get(4)?,
            identity: row.get(5)?,
            role: row.get(6)?,
            task: row.get(7)?,
            target: row.get(8)?,
            cert_fingerprint: row.get(9)?,
            command: String::from_utf8(command).map_err(|_| GrantError::Corrupt("held command"))?,
            status: HoldStatus::parse(&status).ok_or(GrantError::Corrupt("hold status"))?,
            decided_by: row.get(12)?,
            decided_at_us: row.get(13)?,
            decision_reason: row.get(14)?,
            ran_session: row.get(15)?,
            ran_at_us: row.get(16)?,
        })
    })())
}
