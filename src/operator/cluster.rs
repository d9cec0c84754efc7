//! The operator's commands against the cluster's shared database
//! (`[cluster]`): revoke and reinstate there, so every replica applies
//! them; list every replica's sessions; check the shared chain.

use std::io::Write;

use anyhow::Context;

use crate::archive::Remote;
use crate::audit::{SessionFilter, SessionId, Transcript};
use crate::cluster::{ChainReport, Cluster};
use crate::config::{ClusterSettings, Config};
use crate::grants::admin::{self, operator};
use crate::grants::db::HoldRecord;
use crate::grants::krl::Revoked;
use crate::grants::{Issued, RequestRecord, RevokeSelector};
use crate::replay::{self, SessionsArgs};

/// Runs `op` to its end on a runtime of its own, from a plain CLI process.
fn block_on<T>(op: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(op)
}

/// Runs `op` on a fresh connection to the cluster, from a plain CLI process.
pub(super) fn with_cluster<T>(
    settings: &ClusterSettings,
    op: impl AsyncFnOnce(&Cluster) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let cluster = Cluster::new(settings)?;
    block_on(op(&cluster))
}

pub fn revoke(
    settings: &ClusterSettings,
    selector: RevokeSelector,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    let by = operator();
    let id = with_cluster(settings, async |cluster| {
        Ok(cluster.revoke(&selector, &by, reason).await??)
    })?;
    eprintln!(
        "portcullis: revoked {selector} (revocation {id}) in the cluster; live sessions using it end within a second on every replica"
    );
    if let RevokeSelector::Identity(identity) = &selector {
        eprintln!(
            "portcullis: identity {identity} is suspended: no new sessions until `portcullis reinstate {identity}`"
        );
    }
    Ok(())
}

pub fn reinstate(settings: &ClusterSettings, identity: &str) -> anyhow::Result<()> {
    let by = operator();
    with_cluster(settings, async |cluster| {
        Ok(cluster.reinstate(identity, &by).await??)
    })?;
    eprintln!("portcullis: identity {identity} reinstated in the cluster by {by}");
    Ok(())
}

/// `portcullis approve` / `deny` with `[cluster]`: request `id` (a grant
/// request or a held command) of any replica.
pub fn decide(
    settings: &ClusterSettings,
    id: i64,
    approve: bool,
    reason: Option<&str>,
    expiry: std::time::Duration,
) -> anyhow::Result<()> {
    let by = operator();
    with_cluster(settings, async |cluster| {
        Ok(cluster.decide(id, approve, &by, reason, expiry).await??)
    })?;
    admin::said_decided(id, approve, &by);
    Ok(())
}

/// Whether `identity` is suspended in the cluster.
pub fn is_suspended(settings: &ClusterSettings, identity: &str) -> anyhow::Result<bool> {
    with_cluster(settings, async |cluster| {
        Ok(cluster.is_suspended(identity).await?)
    })
}

/// Records a cert `portcullis grant` issued in the cluster.
pub fn record_grant(
    settings: &ClusterSettings,
    identity: &str,
    issued: &Issued,
) -> anyhow::Result<()> {
    with_cluster(settings, async |cluster| {
        Ok(cluster.record_grant(identity, issued).await?)
    })
}

/// Every replica's grant requests and held commands (pending ones unless
/// `all`).
pub fn requests(
    settings: &ClusterSettings,
    all: bool,
) -> anyhow::Result<(Vec<RequestRecord>, Vec<HoldRecord>)> {
    with_cluster(settings, async |cluster| {
        Ok((cluster.requests(!all).await?, cluster.holds(!all).await?))
    })
}

/// `portcullis sessions` with `[cluster]`: the index of every replica
/// (`--refused` stays this replica's store: refusals open no session).
pub fn sessions(
    settings: &ClusterSettings,
    args: &SessionsArgs,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let filter = SessionFilter {
        identity: args.identity.clone(),
        task: args.task.clone(),
        target: args.target.clone(),
        since_us: args.since,
        ..SessionFilter::default()
    };
    let list = with_cluster(settings, async |cluster| {
        Ok(cluster.sessions(&filter).await?)
    })?;
    match args.json {
        true => replay::write_cluster_sessions_json(&list, out)?,
        false => replay::write_cluster_sessions(&list, out)?,
    }
    Ok(())
}

/// Everything the cluster revokes now, for a KRL.
pub fn revoked(settings: &ClusterSettings) -> anyhow::Result<Revoked> {
    with_cluster(settings, async |cluster| Ok(cluster.revoked().await?))
}

/// Whether the cluster's database answers (its schema brought up to date).
pub fn probe(settings: &ClusterSettings) -> anyhow::Result<()> {
    with_cluster(settings, async |cluster| {
        cluster.last_revocation_id().await?;
        Ok(())
    })
}

/// Walks the shared chain and prints its line (`cluster chain: ...`) to
/// `out`; returns whether it is intact.
pub fn verify_chain(settings: &ClusterSettings, out: &mut dyn Write) -> anyhow::Result<bool> {
    let report: ChainReport =
        with_cluster(settings, async |cluster| Ok(cluster.verify_chain().await?))?;
    match &report.broken {
        None => writeln!(out, "cluster chain: {} events, intact", report.events)?,
        Some((seq, problem)) => writeln!(out, "cluster chain: BROKEN at event {seq}: {problem}")?,
    }
    Ok(report.broken.is_none())
}

/// With `--replica NAME` naming another replica than this config's: that
/// replica's session `id` from the archive (see [`archived_transcript`]);
/// `None`: the session is this replica's, in the local store.
pub fn from_archive(
    config: &Config,
    replica: Option<&str>,
    id: i64,
) -> anyhow::Result<Option<Transcript>> {
    match replica.filter(|name| config.cluster.as_ref().is_none_or(|c| c.replica != *name)) {
        Some(replica) => archived_transcript(config, replica, id).map(Some),
        None => Ok(None),
    }
}

/// The transcript of `replica`'s session `id`, read from the archive and
/// checked against the seal chained in the cluster's database
/// ([`Remote::transcript`]).
pub fn archived_transcript(config: &Config, replica: &str, id: i64) -> anyhow::Result<Transcript> {
    block_on(async {
        let remote = Remote::open(config)?
            .context("--replica reads another replica's session: it needs [cluster]")?;
        if !remote.has_archive() {
            anyhow::bail!(
                "--replica reads another replica's session from the archive: it needs [archive]"
            );
        }
        Ok(remote.transcript(replica, SessionId(id)).await?)
    })
}
