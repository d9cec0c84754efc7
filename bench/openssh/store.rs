//! What the bastion recorded: read-only checks on its store, so that no
//! figure counts a run that lost a session, a command or a byte.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::lab::Lab;
use crate::report::Report;

/// What one session left in the store.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub ended: bool,
    pub exec_allowed: u64,
    pub exit_status: u64,
    pub exit_nonzero: u64,
    pub stdin: u64,
    pub stdout: u64,
    pub stderr: u64,
    pub data_rows: u64,
}

fn open(lab: &Lab) -> Result<Connection, String> {
    let conn = Connection::open_with_flags(
        lab.store_path(),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("open the store: {e}"))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// How long a row's stream bytes are: inline in `data`, or (stores since
/// payload segments) `payload_len`.
fn data_len(conn: &Connection) -> String {
    let has_payload = conn
        .prepare("SELECT payload_len FROM events LIMIT 0")
        .is_ok();
    if has_payload {
        "COALESCE(length(data), payload_len)".to_owned()
    } else {
        "length(data)".to_owned()
    }
}

/// The highest session id so far (0 for none): sessions above it are new.
pub fn last_session(lab: &Lab) -> Result<i64, String> {
    let conn = open(lab)?;
    conn.query_row("SELECT COALESCE(MAX(id), 0) FROM sessions", [], |r| {
        r.get(0)
    })
    .map_err(|e| e.to_string())
}

/// Sessions with id above `after`, once all of them have ended (the bastion
/// records the end after the last byte, so their rows are complete), or
/// whatever is there after `timeout`.
pub fn sessions_after(
    lab: &Lab,
    after: i64,
    expected: usize,
    timeout: Duration,
) -> Result<BTreeMap<i64, Recorded>, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = read_sessions(lab, after)?;
        let complete = found.len() >= expected && found.values().all(|r| r.ended);
        if complete || Instant::now() > deadline {
            return Ok(found);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn read_sessions(lab: &Lab, after: i64) -> Result<BTreeMap<i64, Recorded>, String> {
    let conn = open(lab)?;
    let mut out: BTreeMap<i64, Recorded> = BTreeMap::new();
    let mut sessions = conn
        .prepare("SELECT id, ended_at_us IS NOT NULL FROM sessions WHERE id > ?1")
        .map_err(|e| e.to_string())?;
    let rows = sessions
        .query_map([after], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?)))
        .map_err(|e| e.to_string())?;
    for row in rows {
        let (id, ended) = row.map_err(|e| e.to_string())?;
        out.insert(
            id,
            Recorded {
                ended,
                ..Recorded::default()
            },
        );
    }
    // length() of a blob reads the record header, not the overflow pages.
    let sql = "SELECT session_id, kind, stream, COUNT(*), COALESCE(SUM(DATA_LEN), 0),
                    SUM(kind = 'exit.status' AND detail <> '{\"status\":0}')
             FROM events WHERE session_id > ?1 GROUP BY session_id, kind, stream"
        .replace("DATA_LEN", &data_len(&conn));
    let mut events = conn.prepare(&sql).map_err(|e| e.to_string())?;
    let rows = events
        .query_map([after], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, u64>(3)?,
                r.get::<_, u64>(4)?,
                r.get::<_, Option<u64>>(5)?,
            ))
        })
        .map_err(|e| e.to_string())?;
    for row in rows {
        let (id, kind, stream, count, bytes, nonzero) = row.map_err(|e| e.to_string())?;
        let Some(rec) = out.get_mut(&id) else {
            continue;
        };
        match (kind.as_str(), stream.as_deref()) {
            ("exec.allowed", _) => rec.exec_allowed += count,
            ("exit.status", _) => {
                rec.exit_status += count;
                rec.exit_nonzero += nonzero.unwrap_or(0);
            }
            ("data", Some("stdin")) => {
                rec.stdin += bytes;
                rec.data_rows += count;
            }
            ("data", Some("stdout")) => {
                rec.stdout += bytes;
                rec.data_rows += count;
            }
            ("data", Some("stderr")) => {
                rec.stderr += bytes;
                rec.data_rows += count;
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Checks that `count` new sessions after `after` were recorded, ended, and
/// each satisfies `expect` (which names what is wrong).
pub fn check_sessions(
    lab: &Lab,
    after: i64,
    count: usize,
    expect: impl Fn(&Recorded) -> Result<(), String>,
) -> Result<String, String> {
    let timeout = Duration::from_secs(30 + count as u64 / 10);
    let found = sessions_after(lab, after, count, timeout)?;
    if found.len() != count {
        return Err(format!(
            "{} sessions recorded, {count} expected",
            found.len()
        ));
    }
    let mut problems = Vec::new();
    for (id, rec) in &found {
        if !rec.ended {
            problems.push(format!("session {id} has not ended"));
        } else if let Err(e) = expect(rec) {
            problems.push(format!("session {id}: {e} ({rec:?})"));
        }
    }
    if problems.is_empty() {
        let rows: u64 = found.values().map(|r| r.data_rows).sum();
        let bytes: u64 = found.values().map(|r| r.stdin + r.stdout + r.stderr).sum();
        Ok(format!(
            "{count} sessions, each ended and complete ({bytes} stream bytes in {rows} rows)"
        ))
    } else {
        let shown = problems.len().min(5);
        Err(format!(
            "{} problems: {}",
            problems.len(),
            problems[..shown].join("; ")
        ))
    }
}

/// Average stream bytes per recorded data row in the whole store.
pub fn average_row_bytes(lab: &Lab) -> Option<f64> {
    let conn = open(lab).ok()?;
    conn.query_row(
        &"SELECT AVG(DATA_LEN) FROM events WHERE kind = 'data'"
            .replace("DATA_LEN", &data_len(&conn)),
        [],
        |r| r.get::<_, Option<f64>>(0),
    )
    .optional()
    .ok()
    .flatten()
    .flatten()
}

/// `portcullis verify` over the whole store at the end of the run.
pub fn verify_chain(lab: &Lab, report: &mut Report) {
    report.section("Store integrity");
    let start = Instant::now();
    let out = lab.portcullis("verify").output();
    let result = match out {
        Ok(out) if out.status.success() => Ok(format!(
            "`portcullis verify` ok in {:.1} s: {}",
            start.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap_or("")
        )),
        Ok(out) => Err(format!(
            "`portcullis verify` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .take(10)
                .collect::<Vec<_>>()
                .join(" / ")
        )),
        Err(e) => Err(format!("cannot run portcullis verify: {e}")),
    };
    report.check("hash chain of the whole store", result);
    if let Some(avg) = average_row_bytes(lab) {
        report.note(&format!(
            "Average stream bytes per recorded row: {:.0}.",
            avg
        ));
    }
    let size = crate::workload::store_bytes(&lab.store_path());
    report.note(&format!("Store size on disk: {} MiB.", size >> 20));
}
