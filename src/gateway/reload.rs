//! Reloading the config and policy (SIGHUP, `portcullis reload`) without
//! dropping sessions.
//!
//! Invariants: a config or policy that does not load is never applied (the
//! one in force stays, and the refusal is logged and recorded); after a
//! reload every live session is one the new policy still covers (its
//! ceiling under the new policy covers the one it was admitted under,
//! `Ceiling::covers`), or it is ended with the reason. A session admitted
//! under the old policy but registered after the reload looked at the live
//! sessions is caught up with by [`catch_up`].

use std::sync::Arc;

use super::ServerContext;
use crate::audit::Event;
use crate::config::Config;
use crate::policy::{Policy, RoleClaim};
use crate::session::LiveSession;

/// What a reload did.
#[derive(Debug)]
pub enum Reloaded {
    Applied {
        sessions_ended: Vec<i64>,
        restart_needed: Vec<String>,
    },
    Refused(String),
}

/// [`reload`], one at a time (signals may come in bursts).
pub async fn reload_serially(ctx: Arc<ServerContext>) {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    reload(&ctx).await;
}

/// Re-reads the config file the server started with and the policy it
/// names; applies the policy when both load, then ends the live sessions
/// it no longer covers. Records the outcome.
pub async fn reload(ctx: &ServerContext) -> Reloaded {
    let loaded = Config::load(&ctx.config.file)
        .map_err(|e| e.to_string())
        .and_then(|config| {
            let policy = Policy::load(&config.policy_dir)
                .map_err(|e| format!("policy {}:\n{e}", config.policy_dir.display()))?;
            Ok((config, policy))
        });
    let (config, policy) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            tracing::error!(%error, "reload refused: the policy in force stays");
            let event = Event::PolicyReloadRefused {
                error: error.clone(),
            };
            if let Err(e) = ctx.store.record(None, None, event).await {
                tracing::error!(error = %e, "could not record a refused reload");
            }
            return Reloaded::Refused(error);
        }
    };
    ctx.replace_policy(policy);
    let policy = ctx.policy();
    let mut sessions_ended = Vec::new();
    for live in ctx.live.snapshot() {
        if let Err(reason) = judge(&policy, &live) {
            live.terminate(&reason);
            sessions_ended.push(live.id().0);
        }
    }
    let restart_needed = restart_needed(&ctx.config, &config);
    tracing::info!(
        sessions_ended = ?sessions_ended,
        restart_needed = ?restart_needed,
        "reloaded the policy"
    );
    let event = Event::PolicyReloaded {
        sessions_ended: sessions_ended.clone(),
        restart_needed: restart_needed.clone(),
    };
    if let Err(e) = ctx.store.record(None, None, event).await {
        tracing::error!(error = %e, "could not record a reload");
    }
    Reloaded::Applied {
        sessions_ended,
        restart_needed,
    }
}

/// For a session just registered: when a reload happened since its
/// admission read the policy (generation `admitted_under`), judges it
/// against the policy in force now.
pub fn catch_up(ctx: &ServerContext, live: &Arc<LiveSession>, admitted_under: u64) {
    let (generation, policy) = ctx.policy_now();
    if generation == admitted_under {
        return;
    }
    if let Err(reason) = judge(&policy, live) {
        live.terminate(&reason);
    }
}

/// `Err(reason)` when `policy` no longer covers what `live` was admitted to.
fn judge(policy: &Policy, live: &LiveSession) -> Result<(), String> {
    let cert = live.cert();
    let claim = match &cert.scope().role {
        Some(role) => RoleClaim::Named(role),
        None => RoleClaim::Unnamed,
    };
    let target = &live.scope().target().name;
    match policy.ceiling(cert.key_id(), target, cert.lifetime(), claim) {
        Err(refusal) => Err(format!("policy reloaded: {refusal}")),
        Ok(ceiling) if ceiling.covers(live.scope().ceiling()) => Ok(()),
        Ok(_) => Err(format!(
            "policy reloaded: what {} may do on {target} narrowed",
            cert.key_id()
        )),
    }
}

/// The settings that differ between the running config and the file,
/// which only a restart applies (everything but the policy).
fn restart_needed(running: &Config, file: &Config) -> Vec<String> {
    let mut changed = Vec::new();
    let mut note = |name: &str, differs: bool| {
        if differs {
            changed.push(name.to_string());
        }
    };
    note("listen", running.listen != file.listen);
    note("host_keys", running.host_keys != file.host_keys);
    note("store", running.store != file.store);
    note(
        "ca",
        running.task_ca_key != file.task_ca_key
            || running.upstream_ca_key != file.upstream_ca_key
            || running.trusted_ca_files != file.trusted_ca_files
            || running.revoked_keys != file.revoked_keys
            || running.write_krl != file.write_krl,
    );
    note("limits", running.limits != file.limits);
    note(
        "worker_threads",
        running.worker_threads != file.worker_threads,
    );
    note(
        "shutdown_drain",
        running.shutdown_drain != file.shutdown_drain,
    );
    note("notify", running.notify != file.notify);
    note("metrics", running.metrics_listen != file.metrics_listen);
    // Review links name the viewer's address and scheme as `serve`
    // started, and a viewer `serve` runs keeps its listener and key.
    note(
        "web",
        running.web_listen != file.web_listen
            || running.web_tls != file.web_tls
            || running.web_serve != file.web_serve,
    );
    note("syslog", running.syslog != file.syslog);
    note(
        "trusted_proxies",
        running.trusted_proxies != file.trusted_proxies,
    );
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_web_change_needs_a_restart() {
        let path = std::path::Path::new("/etc/portcullis/portcullis.toml");
        let text = crate::config::default_config_text("127.0.0.1:2222");
        let with = |lines: &str| {
            let changed = text.replacen("[web]\n", &format!("[web]\n{lines}\n"), 1);
            Config::parse(path, &changed).map_err(|e| e.to_string())
        };
        let running = with("").unwrap_or_else(|e| panic!("{e}"));
        for lines in [
            "listen = \"127.0.0.1:2281\"",
            "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"",
            "serve = true",
        ] {
            let file = with(lines).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(restart_needed(&running, &file), ["web"], "{lines}");
        }
        assert!(restart_needed(&running, &running).is_empty());
    }
}
