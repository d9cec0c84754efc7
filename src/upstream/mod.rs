//! The upstream side: dialing a target, pinning its host key, logging in
//! with a per-session credential, opening channels for recorded actions.
//!
//! Invariant: a connection is only made for a [`LiveSession`] (an admitted
//! session), to the address its target names, and only completes when the
//! target proves the host key pinned in the policy. A channel is opened
//! only for a [`Recorded`] permit, after the client's recorded terminal and
//! environment.

mod pinned;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};

use crate::cert::{keyfile, sign};
use crate::clock;
use crate::policy::UpstreamAuth;
use crate::session::scope::{ExecDecision, SftpDecision, ShellDecision};
use crate::session::setup::ChannelSetup;
use crate::session::{LiveSession, Recorded};
use pinned::PinnedHostKey;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("target {target} has no pinned host_key in the policy")]
    NotPinned { target: String },
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
    #[error("the session has ended")]
    SessionEnded,
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
        window_size: crate::transport::WINDOW_SIZE,
        maximum_packet_size: crate::transport::MAX_PACKET_SIZE,
        keepalive_interval: Some(Duration::from_secs(30)),
        preferred: crate::transport::preferred_algorithms(),
        ..Default::default()
    }
}

pub type UpstreamResult = Result<Arc<Upstream>, Arc<UpstreamError>>;

/// A session's one connection to its target, dialled on first use (the
/// SSH front starts a dial as soon as the session is admitted) and again
/// only when the target dropped it, never once the session ended.
/// Channels asking at once share it.
pub struct Link {
    session: Arc<LiveSession>,
    authority: Arc<UpstreamAuthority>,
    slot: tokio::sync::Mutex<Slot>,
}

enum Slot {
    Empty,
    Dialled(UpstreamResult),
    Closed,
}

impl Link {
    pub fn new(session: Arc<LiveSession>, authority: Arc<UpstreamAuthority>) -> Link {
        Link {
            session,
            authority,
            slot: tokio::sync::Mutex::new(Slot::Empty),
        }
    }

    /// The live connection, or a new dial (the lock is held while dialling).
    pub async fn get(&self) -> UpstreamResult {
        let mut slot = self.slot.lock().await;
        match &*slot {
            Slot::Closed => return Err(Arc::new(UpstreamError::SessionEnded)),
            Slot::Dialled(Ok(upstream)) if !upstream.is_closed() => return Ok(upstream.clone()),
            _ => {}
        }
        let dialled = Upstream::dial(&self.session, &self.authority)
            .await
            .map(Arc::new)
            .map_err(Arc::new);
        *slot = Slot::Dialled(dialled.clone());
        dialled
    }

    /// Disconnects from the target for good (the session ended).
    pub async fn close(&self) {
        let previous = std::mem::replace(&mut *self.slot.lock().await, Slot::Closed);
        if let Slot::Dialled(Ok(upstream)) = previous {
            upstream.close().await;
        }
    }
}

/// A logged-in connection to one target.
pub struct Upstream {
    handle: client::Handle<PinnedHostKey>,
}

impl Upstream {
    async fn dial(
        session: &LiveSession,
        authority: &UpstreamAuthority,
    ) -> Result<Upstream, UpstreamError> {
        let target = session.scope().target();
        let name = target.name.clone();
        let pinned = target
            .host_key
            .clone()
            .ok_or_else(|| UpstreamError::NotPinned {
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
        let credential_error = |reason: String| UpstreamError::Credential {
            target: name.clone(),
            reason,
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
                .map_err(|e| credential_error(e.to_string()))?;
                handle
                    .authenticate_openssh_cert(
                        target.user.clone(),
                        Arc::new(credential.key),
                        credential.cert,
                    )
                    .await
            }
            UpstreamAuth::KeyFile(path) => {
                let key =
                    keyfile::read_private(path).map_err(|e| credential_error(e.to_string()))?;
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

    /// Starts a recorded command on the target, after the client's
    /// recorded terminal and environment.
    pub async fn start_exec(
        &self,
        permit: &Recorded<ExecDecision>,
        setup: &ChannelSetup,
    ) -> Result<russh::Channel<client::Msg>, russh::Error> {
        let channel = self.open_with(setup).await?;
        channel.exec(true, permit.action().run()).await?;
        Ok(channel)
    }

    /// Opens a recorded interactive shell on the target. The permit
    /// carries nothing to send: holding one proves the shell is on record.
    pub async fn start_shell(
        &self,
        _permit: &Recorded<ShellDecision>,
        setup: &ChannelSetup,
    ) -> Result<russh::Channel<client::Msg>, russh::Error> {
        let channel = self.open_with(setup).await?;
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

    /// A session channel with the recorded terminal and environment. The
    /// terminal wants a reply, so a target that refuses it shows up as a
    /// `Failure` in the splice instead of a shell silently without one.
    async fn open_with(
        &self,
        setup: &ChannelSetup,
    ) -> Result<russh::Channel<client::Msg>, russh::Error> {
        let channel = self.handle.channel_open_session().await?;
        if let Some(p) = setup.pty() {
            channel
                .request_pty(
                    true,
                    &p.term,
                    p.cols,
                    p.rows,
                    p.pix_width,
                    p.pix_height,
                    &p.modes,
                )
                .await?;
        }
        for env in setup.env() {
            channel.set_env(false, env.name(), env.value()).await?;
        }
        Ok(channel)
    }

    /// Whether the target dropped the connection (or it was closed).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    pub async fn close(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "session ended", "en")
            .await;
    }
}
