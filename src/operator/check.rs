//! `portcullis check`: every problem in the config and the policy, the
//! store's health (and the cluster database's, with `[cluster]`), and warnings an operator should act on.
//!
//! Invariant: problems make the command fail; warnings never do.

use std::io::Write;

use rusqlite::{Connection, OpenFlags};

use crate::audit;
use crate::config::Config;
use crate::policy::Policy;

/// Prints problems and warnings; true when there is no problem.
pub fn run(config: &Config, out: &mut dyn Write) -> anyhow::Result<bool> {
    let mut ok = true;
    if let Err(problems) = Policy::load(&config.policy_dir) {
        writeln!(out, "{problems}")?;
        ok = false;
    }
    if let Some(Err(problem)) = config.notify.as_ref().map(|n| n.read_secret()) {
        writeln!(out, "{}: {problem}", config.file.display())?;
        ok = false;
    }
    if config.store.exists() {
        if let Err(e) = audit::probe_writable(&config.store) {
            writeln!(
                out,
                "{}: the store cannot write: {e}",
                config.store.display()
            )?;
            ok = false;
        }
        for warning in serial_zero_warnings(&config.store).unwrap_or_default() {
            writeln!(out, "{}: warning: {warning}", config.store.display())?;
        }
    }
    if let Some(cluster) = &config.cluster {
        if let Err(e) = super::cluster::probe(cluster) {
            writeln!(out, "{}: [cluster] database: {e:#}", config.file.display())?;
            ok = false;
        }
    }
    if ok {
        writeln!(out, "{}: ok", config.file.display())?;
    }
    Ok(ok)
}

/// CAs whose certs came with serial 0 (`ssh-keygen -s` without `-z`):
/// those certs cannot be told apart by serial, so revoking one by serial
/// would revoke them all.
fn serial_zero_warnings(store: &std::path::Path) -> rusqlite::Result<Vec<String>> {
    let conn = Connection::open_with_flags(store, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare(
        "SELECT ca_fingerprint, COUNT(*) FROM sessions WHERE cert_serial = 0
         GROUP BY ca_fingerprint ORDER BY ca_fingerprint",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
    })?;
    let mut warnings = Vec::new();
    for row in rows {
        let (ca, sessions) = row?;
        warnings.push(format!(
            "{sessions} session(s) used certificates with serial 0 from CA {ca}; \
             sign with a serial (ssh-keygen -s ... -z N) and revoke such certs by --fingerprint"
        ));
    }
    Ok(warnings)
}
