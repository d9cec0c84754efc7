//! `portcullis requests`: the request queue for people and for tools:
//! grant requests and held commands, in one id space, oldest first.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::clock::rfc3339_seconds;
use crate::grants::db::HoldRecord;
use crate::grants::{admin, RequestRecord};

/// One entry of the queue; `--json` tags it with its `kind`.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Listed<'a> {
    Grant(&'a RequestRecord),
    Command(&'a HoldRecord),
}

impl Listed<'_> {
    fn id(&self) -> i64 {
        match self {
            Listed::Grant(r) => r.id,
            Listed::Command(h) => h.id,
        }
    }
}

/// This store's requests and holds (pending ones unless `all`).
pub fn local(store: &Path, all: bool) -> anyhow::Result<(Vec<RequestRecord>, Vec<HoldRecord>)> {
    Ok((admin::requests(store, all)?, admin::holds(store, all)?))
}

pub fn list(
    (requests, holds): (Vec<RequestRecord>, Vec<HoldRecord>),
    all: bool,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut listed: Vec<Listed<'_>> = requests.iter().map(Listed::Grant).collect();
    listed.extend(holds.iter().map(Listed::Command));
    listed.sort_by_key(Listed::id);
    if json {
        serde_json::to_writer_pretty(&mut *out, &listed)?;
        writeln!(out)?;
        return Ok(());
    }
    if listed.is_empty() {
        writeln!(out, "no {}requests", if all { "" } else { "pending " })?;
    }
    for entry in &listed {
        let line = match entry {
            Listed::Grant(r) => grant_line(r),
            Listed::Command(h) => hold_line(h),
        };
        writeln!(out, "{}", crate::replay::sanitize(&line))?;
    }
    Ok(())
}

fn grant_line(r: &RequestRecord) -> String {
    let s = &r.scope;
    format!(
        "{id:>5}  {at}  {status:<8} grant   {identity} role={role} ttl={ttl}s targets={targets:?} exec={exec:?} open={open:?} listen={listen:?} sftp={sftp:?} task={task} reason={reason}",
        id = r.id,
        at = rfc3339_seconds(r.created_at_us),
        status = r.status.to_string(),
        identity = r.identity,
        role = r.role,
        ttl = s.ttl_secs,
        targets = s.targets,
        exec = s.exec,
        open = s.open,
        listen = s.listen,
        sftp = s.sftp,
        task = r.task.as_deref().unwrap_or("-"),
        reason = r.reason.as_deref().unwrap_or("-"),
    )
}

fn hold_line(h: &HoldRecord) -> String {
    format!(
        "{id:>5}  {at}  {status:<8} command {identity} target={target} command={command:?} session={session} role={role} task={task} expires={expires}",
        id = h.id,
        at = rfc3339_seconds(h.created_at_us),
        status = h.status.to_string(),
        identity = h.identity,
        target = h.target,
        command = h.command,
        session = match &h.replica {
            Some(replica) => format!("{} replica={replica}", h.session),
            None => h.session.to_string(),
        },
        role = h.role.as_deref().unwrap_or("-"),
        task = h.task.as_deref().unwrap_or("-"),
        expires = rfc3339_seconds(h.expires_at_us),
    )
}
