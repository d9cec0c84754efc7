//! `portcullis requests`: the request queue for people and for tools.

use std::io::Write;
use std::path::Path;

use crate::clock::rfc3339_seconds;
use crate::grants::{admin, RequestRecord};

pub fn list(store: &Path, all: bool, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let requests = admin::requests(store, all)?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &requests)?;
        writeln!(out)?;
        return Ok(());
    }
    if requests.is_empty() {
        writeln!(out, "no {}requests", if all { "" } else { "pending " })?;
    }
    for r in &requests {
        writeln!(out, "{}", line(r))?;
    }
    Ok(())
}

fn line(r: &RequestRecord) -> String {
    let s = &r.scope;
    let line = format!(
        "{id:>5}  {at}  {status:<8} {identity} role={role} ttl={ttl}s targets={targets:?} exec={exec:?} open={open:?} listen={listen:?} sftp={sftp:?} task={task} reason={reason}",
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
    );
    crate::replay::sanitize(&line)
}
