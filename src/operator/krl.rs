//! `portcullis krl -o FILE`, and keeping `[ca] write_krl` current after
//! the CLI changes what is revoked (`revoke`, `reinstate`).

use std::path::Path;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};
use russh::keys::PublicKey;

use crate::cert::keyfile;
use crate::clock;
use crate::config::Config;
use crate::grants::krl::{self, StoreKrl};

/// Writes the KRL of the store's revocations (with `[cluster]`, the
/// cluster's) to `out`.
pub fn write(config: &Config, out: &Path) -> anyhow::Result<StoreKrl> {
    let conn = Connection::open_with_flags(&config.store, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("reading the store {}", config.store.display()))?;
    let cas = ca_keys(config)?;
    let built = match &config.cluster {
        // The cluster's revocations, naming the certs this store knows
        // (on the signing node: every cert it issued).
        Some(cluster) => {
            let revoked = super::cluster::revoked(cluster)?;
            krl::build_with(&conn, &cas, clock::now_unix(), &revoked)?
        }
        None => krl::build(&conn, &cas, clock::now_unix())?,
    };
    krl::write_atomically(out, &built.bytes)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(built)
}

/// Rewrites `[ca] write_krl` when the config names one; says so on stderr.
pub fn refresh_configured(config: &Config) -> anyhow::Result<()> {
    let Some(path) = &config.write_krl else {
        return Ok(());
    };
    let built = write(config, path)?;
    eprintln!(
        "portcullis: {} lists {} revocation(s)",
        path.display(),
        built.revocations
    );
    warn_unnamed(&built);
    Ok(())
}

pub fn warn_unnamed(built: &StoreKrl) {
    if built.unnamed > 0 {
        eprintln!(
            "portcullis: warning: {} revoked cert(s) have serial 0 and a key the store does not know: no KRL can name them",
            built.unnamed
        );
    }
}

/// The CAs whose certs the bastion accepts: the task CA and `trusted`.
fn ca_keys(config: &Config) -> anyhow::Result<Vec<PublicKey>> {
    let mut keys = vec![keyfile::read_ca_public(&config.task_ca_key)?];
    for file in &config.trusted_ca_files {
        keys.push(keyfile::read_public(file)?);
    }
    Ok(keys)
}
