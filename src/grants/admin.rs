//! The operator's side of grants: the pending queue, approve, deny, revoke.
//! These run as separate processes against the same store as the server;
//! the server sees their effect within its poll interval.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use super::{GrantsDb, RequestRecord, RevokeSelector};
use crate::replay::time::rfc3339_seconds;

/// Who is acting, for the record: the login that ran the command.
pub fn operator() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "operator".to_string())
}

fn open(store: &Path) -> anyhow::Result<GrantsDb> {
    GrantsDb::open(store)
        .with_context(|| format!("opening the grants tables in {}", store.display()))
}

pub fn list_requests(
    store: &Path,
    all: bool,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let requests = open(store)?.requests(!all)?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &requests)?;
        writeln!(out)?;
        return Ok(());
    }
    if requests.is_empty() {
        writeln!(out, "no {}requests", if all { "" } else { "pending " })?;
    }
    for r in &requests {
        writeln!(out, "{}", request_line(r))?;
    }
    Ok(())
}

fn request_line(r: &RequestRecord) -> String {
    let line = format!(
        "{id:>5}  {at}  {status:<8} {identity} role={role} ttl={ttl}s targets={targets:?} exec={exec:?} open={open:?} task={task} reason={reason}",
        id = r.id,
        at = rfc3339_seconds(r.created_at_us),
        status = r.status.to_string(),
        identity = r.identity,
        role = r.role,
        ttl = r.scope.ttl_secs,
        targets = r.scope.targets,
        exec = r.scope.exec,
        open = r.scope.open,
        task = r.task.as_deref().unwrap_or("-"),
        reason = r.reason.as_deref().unwrap_or("-"),
    );
    crate::replay::sanitize(&line)
}

pub fn decide(store: &Path, id: i64, approve: bool, reason: Option<&str>) -> anyhow::Result<()> {
    let by = operator();
    open(store)?.decide(id, approve, &by, reason)?;
    let verb = if approve { "approved" } else { "denied" };
    eprintln!("portcullis: request {id} {verb} by {by}");
    Ok(())
}

pub fn revoke(store: &Path, selector: RevokeSelector, reason: Option<&str>) -> anyhow::Result<()> {
    let by = operator();
    let id = open(store)?.revoke(&selector, &by, reason)?;
    eprintln!(
        "portcullis: revoked {selector} (revocation {id}); live sessions using it end within a second"
    );
    Ok(())
}
