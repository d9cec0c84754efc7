//! `portcullis grant`: the operator signs a task certificate within a role.
//!
//! Invariant: this is the grant@ request flow's issuing path
//! (`grants::issue`) with the operator as approver: the cert names its
//! role, carries the role's whole scope (or the operator's narrowing of
//! it), lives at most the role's max_ttl, is on record before it is
//! written out, and is refused for a suspended identity.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::audit::{Abort, DirectWriter};
use crate::cert::keyfile;
use crate::clock;
use crate::config::Config;
use crate::grants::request::{narrow, Narrowing};
use crate::grants::{admin, issue, issue::Asked, order_for, GrantError};
use crate::policy::Policy;

#[derive(clap::Args, Debug)]
pub struct GrantArgs {
    /// Identity the cert is for (its key id)
    #[arg(long)]
    pub identity: String,
    /// Role whose scope the cert carries (and names)
    #[arg(long)]
    pub role: String,
    /// Lifetime, e.g. 10m, 1h30m (at most the role's max_ttl)
    #[arg(long)]
    pub ttl: String,
    /// The agent's public key; the cert is written beside it as NAME-cert.pub
    #[arg(long)]
    pub pubkey: PathBuf,
    /// Task id recorded with every session of this cert
    #[arg(long)]
    pub task: Option<String>,
    #[command(flatten)]
    pub narrowing: Narrowing,
}

pub fn run(config: &Config, args: &GrantArgs) -> anyhow::Result<()> {
    let policy = Policy::load(&config.policy_dir)
        .map_err(|e| anyhow::anyhow!("policy {}:\n{e}", config.policy_dir.display()))?;
    let Some(role) = policy.roles.get(&args.role) else {
        bail!("role {:?} is not in the policy", args.role);
    };
    let scope = narrow(role, &args.ttl, &args.narrowing).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pubkey = keyfile::read_public(&args.pubkey)?;
    let order = order_for(
        &policy,
        Asked {
            identity: &args.identity,
            role: &args.role,
            task: args.task.clone(),
            reason: None,
            scope,
            pubkey,
            approver: admin::operator(),
        },
    )?;
    // The store checks its own suspensions; a cluster's are in its database.
    if let Some(cluster) = &config.cluster {
        if super::cluster::is_suspended(cluster, order.identity())? {
            bail!("{}", GrantError::Suspended(order.identity().to_owned()));
        }
    }
    let ca = keyfile::read_private(&config.task_ca_key)?;
    let mut writer = DirectWriter::open(&config.store)
        .with_context(|| format!("opening the store {}", config.store.display()))?;
    let issued = writer
        .transact(|txn| issue(txn, &ca, &order))
        .map_err(|e: Abort<_>| anyhow::anyhow!("{e}"))?;
    // Every replica learns when it was issued before anyone has the cert.
    if let Some(cluster) = &config.cluster {
        super::cluster::record_grant(cluster, order.identity(), &issued)?;
    }
    let out = cert_path(&args.pubkey);
    keyfile::write_file(&out, format!("{}\n", issued.cert).as_bytes(), 0o644)?;
    println!("{}", out.display());
    eprintln!(
        "portcullis: signed serial {} ({}) for {} (role {}, targets {}), valid until {}",
        issued.serial,
        issued.fingerprint,
        order.identity(),
        order.role(),
        order.scope().targets.join(","),
        clock::format_unix(issued.valid_before)
    );
    Ok(())
}

/// `key.pub` -> `key-cert.pub`, as `ssh-keygen -s` names it.
fn cert_path(pubkey: &Path) -> PathBuf {
    let text = pubkey.to_string_lossy();
    let stem = text.strip_suffix(".pub").unwrap_or(&text);
    PathBuf::from(format!("{stem}-cert.pub"))
}
