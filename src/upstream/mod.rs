//! The upstream side: dialing a target, pinning its host key, logging in
//! with a per-session credential.
//!
//! Invariant: a connection is only made for an [`AuthorizedSession`], to the
//! address its target names, and only completes when the target proves the
//! host key pinned in the policy.

mod pinned;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey};

use crate::cert::{keyfile, sign};
use crate::clock;
use crate::gateway::auth::AuthorizedSession;
use crate::policy::UpstreamAuth;
use crate::proxy::permit::Recorded;
use crate::proxy::terminal::ChannelSetup;
use crate::scope::{ExecDecision, SftpDecision, ShellDecision};
use pinned::PinnedHostKey;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("target {target} has no pinned host_key in the policy")]
    NotPinned { target: String },
    #[error("target {target}: pinned host_key in the policy is not an OpenSSH public key")]
    BadPin { target: String },
    #[error("target {target} ({address}) is unreachable: {reason}")]
    Unreachable {
        target: String,
        address: String,
        reason: String,
    },
    #[error(
        "target {target} presented host key {seen}, which does not match the pinned key {pinned}"
    )]
    HostKeyMismatch {
        target: String,
        seen: String,
        pinned: String,
    },
    #[error("target {target} refused the bastion's login as {user}")]
    LoginRefused { target: String, user: String },
    #[error("target {target}: upstream credential: {reason}")]
    Credential { target: String, reason: String },
    #[error("target {target}: {reason}")]
    Protocol { target: String, reason: String },
}

/// The signing key targets trust, held by the server for the whole run.
pub struct UpstreamAuthority {
    pub ca: PrivateKey,
    pub config: Arc<client::Config>,
}

impl UpstreamAuthority {
    pub fn new(ca: PrivateKey) -> Self {
        UpstreamAuthority {
            ca,
            config: Arc::new(client_config()),
        }
    }
}

fn client_config() -> client::Config {
    client::Config {
        nodelay: true,
        window_size: crate::gateway::WINDOW_SIZE,
        maximum_packet_size: crate::gateway::MAX_PACKET_SIZE,
        keepalive_interval: Some(Duration::from_secs(30)),
        preferred: crate::gateway::preferred_algorithms(),
        ..Default::default()
    }
}

/// A logged-in connection to one target.
pub struct Upstream {
    handle: client::Handle<PinnedHostKey>,
}

impl Upstream {
    pub async fn dial(
        session: &AuthorizedSession,
        authority: &UpstreamAuthority,
    ) -> Result<Upstream, UpstreamError> {
        let target = session.scope().target();
        let name = target.name.clone();
        let pinned_text = target
            .host_key
            .as_deref()
            .ok_or_else(|| UpstreamError::NotPinned {
                target: name.clone(),
            })?;
        let pinned =
            PublicKey::from_openssh(pinned_text.trim()).map_err(|_| UpstreamError::BadPin {
                target: name.clone(),
            })?;
        let mismatch = Arc::new(Mutex::new(None));
        let handler = PinnedHostKey::new(pinned, mismatch.clone());
        let connecting =
            client::connect(authority.config.clone(), target.address.as_str(), handler);
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, connecting).await;
        let mut handle = match connected {
            Ok(Ok(handle)) => handle,
            failed => {
                if let Some(m) = mismatch.lock().ok().and_then(|mut m| m.take()) {
                    return Err(UpstreamError::HostKeyMismatch {
                        target: name,
                        seen: m.seen,
                        pinned: m.pinned,
                    });
                }
                let reason = match failed {
                    Err(_) => "connection timed out".to_string(),
                    Ok(Err(e)) => e.to_string(),
                    Ok(Ok(_)) => String::new(),
                };
                return Err(UpstreamError::Unreachable {
                    target: name,
                    address: target.address.clone(),
                    reason,
                });
            }
        };
        let accepted = match &target.auth {
            UpstreamAuth::Certificate => {
                let key_id = format!(
                    "portcullis session={} identity={} target={}",
                    session.id(),
                    session.identity(),
                    name
                );
                let credential = sign::issue_upstream_credential(
                    &authority.ca,
                    &target.user,
                    &key_id,
                    sign::UpstreamGrants {
                        pty: session.scope().allows_pty(),
                    },
                    clock::now_unix(),
                )
                .map_err(|e| UpstreamError::Credential {
                    target: name.clone(),
                    reason: e.to_string(),
                })?;
                handle
                    .authenticate_openssh_cert(
                        target.user.clone(),
                        Arc::new(credential.key),
                        credential.cert,
                    )
                    .await
            }
            UpstreamAuth::KeyFile(path) => {
                let key = keyfile::read_private(path).map_err(|e| UpstreamError::Credential {
                    target: name.clone(),
                    reason: e.to_string(),
                })?;
                let hash = if key.algorithm().is_rsa() {
                    handle
                        .best_supported_rsa_hash()
                        .await
                        .ok()
                        .flatten()
                        .flatten()
                } else {
                    None
                };
                let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
                handle
                    .authenticate_publickey(target.user.clone(), key)
                    .await
            }
        };
        match accepted {
            Ok(result) if result.success() => Ok(Upstream { handle }),
            Ok(_) => Err(UpstreamError::LoginRefused {
                target: name,
                user: target.user.clone(),
            }),
            Err(e) => Err(UpstreamError::Protocol {
                target: name,
                reason: e.to_string(),
            }),
        }
    }

    /// Starts a recorded command on the target, after the client's granted
    /// terminal and environment. The [`Recorded`] permit is the proof that
    /// the command is in the store first.
    pub async fn start_exec(
        &self,
        permit: &Recorded<ExecDecision>,
        setup: &ChannelSetup,
    ) -> Result<russh::Channel<client::Msg>, russh::Error> {
        let channel = self.handle.channel_open_session().await?;
        setup.replay(&channel).await?;
        channel.exec(true, permit.action().run()).await?;
        Ok(channel)
    }

    /// Whether the target dropped the connection (or it was closed).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Opens a recorded interactive shell on the target, after the client's
    /// granted terminal and environment. The [`Recorded`] permit carries
    /// nothing to send: holding one is the proof that the shell is in the
    /// store first, and only `Scope::authorize_shell` can start one.
    pub async fn start_shell(
        &self,
        _permit: &Recorded<ShellDecision>,
        setup: &ChannelSetup,
    ) -> Result<russh::Channel<client::Msg>, russh::Error> {
        let channel = self.handle.channel_open_session().await?;
        setup.replay(&channel).await?;
        channel.request_shell(true).await?;
        Ok(channel)
    }

    /// Opens the sftp subsystem on the target for a recorded sftp
    /// decision; the target's success or failure arrives on the channel.
    pub async fn start_sftp(
        &self,
        _permit: &Recorded<SftpDecision>,
    ) -> Result<russh::Channel<client::Msg>, russh::Error> {
        let channel = self.handle.channel_open_session().await?;
        channel.request_subsystem(true, "sftp").await?;
        Ok(channel)
    }

    pub async fn close(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "session ended", "en")
            .await;
    }
}
