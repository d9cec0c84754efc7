//! `portcullis grant`: the operator signs a task certificate within a role.
//!
//! Invariant: a cert signed here never exceeds the role: its principals are
//! the role's targets, its exec/open options the role's patterns, its
//! lifetime at most the role's max_ttl, and its key id an identity that
//! holds the role.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::cert::keyfile;
use crate::cert::sign::{sign_task_cert, TaskCertSpec};
use crate::clock;
use crate::config::Config;
use crate::grants::{admin, GrantScope, GrantsDb, IssuedGrant};
use crate::policy::{self, Policy};

#[derive(clap::Args, Debug)]
pub struct GrantArgs {
    /// Identity the cert is for (its key id)
    #[arg(long)]
    pub identity: String,
    /// Role whose scope the cert carries
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
}

pub fn run(config: &Config, args: &GrantArgs) -> anyhow::Result<()> {
    let policy = Policy::load(&config.policy_dir)
        .map_err(|e| anyhow::anyhow!("policy {}:\n{e}", config.policy_dir.display()))?;
    let Some(role) = policy.roles.get(&args.role) else {
        bail!("role {:?} is not in the policy", args.role);
    };
    let Some(identity) = policy.identities.get(&args.identity) else {
        bail!("identity {:?} is not in the policy", args.identity);
    };
    if !identity.roles.contains(&role.name) {
        bail!(
            "identity {:?} does not hold role {:?}",
            identity.name,
            role.name
        );
    }
    let ttl = policy::parse_duration(&args.ttl).map_err(|e| anyhow::anyhow!("--ttl: {e}"))?;
    if ttl > role.max_ttl {
        bail!(
            "--ttl {} exceeds max_ttl {} of role {}",
            args.ttl,
            policy::format_duration(role.max_ttl),
            role.name
        );
    }
    let subject = keyfile::read_public(&args.pubkey)?;
    let ca = keyfile::read_private(&config.task_ca_key)?;
    let now = clock::now_unix();
    let spec = TaskCertSpec {
        key_id: identity.name.clone(),
        principals: role.targets.clone(),
        valid_after: now,
        valid_before: now.saturating_add(ttl.as_secs()),
        exec: role.exec.to_strings(),
        open: role.open.clone(),
        permit_pty: role.pty,
        permit_port_forwarding: !role.open.is_empty() || !role.channels.listen.is_empty(),
        task: args.task.clone(),
    };
    let cert = sign_task_cert(&ca, &subject, &spec)?;
    let out = cert_path(&args.pubkey);
    let text = cert.to_openssh().context("encoding the certificate")?;
    // Every issued cert is on record before it is handed out.
    let grants = GrantsDb::open(&config.store)
        .with_context(|| format!("opening the grants tables in {}", config.store.display()))?;
    grants.record_grant(&IssuedGrant {
        serial: cert.serial(),
        request_id: None,
        identity: identity.name.clone(),
        role: role.name.clone(),
        task: args.task.clone(),
        reason: None,
        scope: GrantScope {
            targets: spec.principals.clone(),
            exec: spec.exec.clone(),
            open: spec.open.clone(),
            pty: spec.permit_pty,
            ttl_secs: ttl.as_secs(),
        },
        valid_after: spec.valid_after,
        valid_before: spec.valid_before,
        approver: admin::operator(),
        cert: text.clone(),
    })?;
    keyfile::write_file(&out, format!("{text}\n").as_bytes(), 0o644)?;
    println!("{}", out.display());
    eprintln!(
        "portcullis: signed serial {} for {} (role {}, targets {}), valid until {}",
        cert.serial(),
        identity.name,
        role.name,
        role.targets.join(","),
        clock::format_unix(spec.valid_before)
    );
    Ok(())
}

/// `key.pub` -> `key-cert.pub`, as `ssh-keygen -s` names it.
fn cert_path(pubkey: &Path) -> PathBuf {
    let text = pubkey.to_string_lossy();
    let stem = text.strip_suffix(".pub").unwrap_or(&text);
    PathBuf::from(format!("{stem}-cert.pub"))
}
