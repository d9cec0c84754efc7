//! The russh server handler: translates protocol callbacks into portcullis
//! decisions and replies. Policy lives elsewhere; this file only routes.
//!
//! Invariant: every channel and global request is answered (success or
//! failure), and everything the bastion does not support is refused and
//! recorded.

use std::net::SocketAddr;
use std::sync::Arc;

use russh::keys::ssh_key::Certificate;
use russh::server::{Auth, ChannelOpenHandle, Msg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure};

use super::auth::{self, AuthRefusal};
use super::limits::Unauthenticated;
use super::live::LiveSession;
use super::{channel, connection, Admitted, ServerContext, SessionSlot};
use crate::audit::Event;
use crate::grants::service::Requester;
use crate::policy::RESERVED_LOGIN;
use crate::proxy::forward::{self, ForwardRequest};
use crate::proxy::listen::RemoteForwards;
use crate::proxy::terminal;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct ConnectionHandler {
    ctx: Arc<ServerContext>,
    peer: Option<SocketAddr>,
    live: SessionSlot,
    /// Whether any certificate reached the handler on this connection.
    saw_certificate: bool,
    /// Counts this connection among the unauthenticated until it is admitted.
    unauthenticated: Option<Unauthenticated>,
    /// Session channels open now (each channel task holds one count).
    channels: Arc<AtomicUsize>,
    /// `ssh -R` listeners; they stop when this handler (the connection) goes.
    remote_forwards: RemoteForwards,
}

impl ConnectionHandler {
    pub fn new(
        ctx: Arc<ServerContext>,
        peer: Option<SocketAddr>,
        live: SessionSlot,
        unauthenticated: Unauthenticated,
    ) -> Self {
        ConnectionHandler {
            ctx,
            peer,
            live,
            saw_certificate: false,
            unauthenticated: Some(unauthenticated),
            channels: Arc::new(AtomicUsize::new(0)),
            remote_forwards: RemoteForwards::default(),
        }
    }

    fn session(&self) -> Option<Arc<LiveSession>> {
        match self.live.get() {
            Some(Admitted::Target(live)) => Some(live.clone()),
            _ => None,
        }
    }

    /// Records a refused request on an admitted session.
    async fn refuse(&self, channel: Option<ChannelId>, request: &str, reason: &str) {
        if let Some(live) = self.session() {
            live.record_refused_request(channel, request, reason).await;
        }
    }

    /// A refused authentication: recorded, and counted against the source.
    async fn refuse_auth(&self, cert: Option<&Certificate>, user: &str, refusal: &AuthRefusal) {
        let addr = self.client_addr();
        auth::record_refusal(&self.ctx.store, cert, user, &addr, refusal).await;
        if let Some(peer) = self.peer {
            self.ctx.sources.failed(peer.ip());
        }
    }

    fn admitted(&mut self, admitted: Admitted) -> Auth {
        if self.live.set(admitted).is_err() {
            return Auth::reject();
        }
        self.unauthenticated = None;
        Auth::Accept
    }

    fn client_addr(&self) -> String {
        self.peer
            .map_or_else(|| "unknown".to_string(), |p| p.to_string())
    }
}

const STREAMLOCAL: &str = "forwarding to Unix sockets is not supported by this bastion";

impl russh::server::Handler for ConnectionHandler {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::reject())
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let addr = self.client_addr();
        let identity = auth::identity_for_key(&self.ctx.policy, key.public_key);
        let refusal = match (user == RESERVED_LOGIN, identity) {
            (true, Some(identity)) => {
                let requester = Requester {
                    identity: identity.clone(),
                    client_addr: addr,
                };
                if self.live.get().is_some() {
                    return Ok(Auth::reject());
                }
                return Ok(self.admitted(Admitted::Grant(Arc::new(requester))));
            }
            (true, None) => AuthRefusal::UnknownIdentityKey,
            (false, Some(_)) => AuthRefusal::IdentityKeyOnTarget,
            (false, None) if self.saw_certificate => AuthRefusal::PlainKey,
            (false, None) => AuthRefusal::NoUsableCertificate,
        };
        self.refuse_auth(None, user, &refusal).await;
        Ok(Auth::reject())
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &Certificate,
    ) -> Result<Auth, Self::Error> {
        self.saw_certificate = true;
        if self.live.get().is_some() {
            return Ok(Auth::reject());
        }
        match auth::admit(&self.ctx, certificate, user, self.peer).await {
            Ok(admitted) => {
                let live = LiveSession::start(admitted, self.ctx.clone());
                Ok(self.admitted(Admitted::Target(live)))
            }
            Err(_) => {
                // admit() recorded why; the source pays for the failure.
                if let Some(peer) = self.peer {
                    self.ctx.sources.failed(peer.ip());
                }
                Ok(Auth::reject())
            }
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let open = self.channels.load(Ordering::SeqCst);
        if open >= self.ctx.limits.max_channels_per_session {
            let reason = format!("{open} channels are open already (max_channels_per_session)");
            self.refuse(None, "session channel", &reason).await;
            if let Some(peer) = self.peer {
                let identity = self.session().map(|l| l.authorized.identity().to_string());
                connection::record_limit(
                    &self.ctx,
                    "max_channels_per_session",
                    peer,
                    identity.as_deref(),
                    &reason,
                )
                .await;
            }
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        let count = ChannelCount::new(self.channels.clone());
        match self.live.get() {
            Some(Admitted::Target(live)) => {
                reply.accept().await;
                let (live, handle) = (live.clone(), session.handle());
                tokio::spawn(async move {
                    channel::serve_session_channel(live, channel, handle).await;
                    drop(count);
                });
            }
            Some(Admitted::Grant(requester)) => {
                reply.accept().await;
                let (ctx, requester) = (self.ctx.clone(), requester.clone());
                let handle = session.handle();
                tokio::spawn(async move {
                    channel::serve_grant_channel(ctx, requester, channel, handle).await;
                    drop(count);
                });
            }
            None => {
                reply
                    .reject(ChannelOpenFailure::AdministrativelyProhibited)
                    .await
            }
        }
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        originator: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(live) = self.session() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        // Resolving and connecting take time: decide in a task of its own
        // so this connection's other channels keep moving.
        let request = ForwardRequest {
            host: host.to_string(),
            port,
            originator: format!("{originator}:{originator_port}"),
        };
        tokio::spawn(forward::run(live, channel, request, reply));
        Ok(())
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let request = format!("direct-streamlocal {socket_path}");
        self.refuse(None, &request, STREAMLOCAL).await;
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse(None, "x11", "X11 forwarding is always refused")
            .await;
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    // Answered here (OpenSSH sends pty-req, env and shell back to back and
    // the reply flag is per channel); the channel's task sees the same
    // request in its queue and, by the same scope, keeps it for upstream.
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let refusal = match self.session() {
            Some(live) => live.authorized.scope().authorize_pty().err(),
            None => return session.channel_failure(channel),
        };
        match refusal {
            None => session.channel_success(channel),
            Some(refusal) => {
                self.refuse(Some(channel), "pty-req", &refusal.to_string())
                    .await;
                // The reason goes out before the failure: `ssh -t` gives up
                // on the failure and would never see the shell's answer.
                // One short line, so the unbounded queue is no concern.
                let line = format!("portcullis: refused: terminal: {refusal}\r\n");
                let _ = session.extended_data(channel, 1, line.into_bytes());
                session.channel_failure(channel)
            }
        }
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _protocol: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse(Some(channel), "x11-req", "X11 forwarding is always refused")
            .await;
        session.channel_failure(channel)
    }

    async fn agent_request(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let reason = "agent forwarding is always refused";
        self.refuse(Some(channel), "auth-agent-req", reason).await;
        Ok(false)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Like sshd's AcceptEnv: others are ignored, not worth a record.
        if terminal::env_is_forwarded(name, value) {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    // Shell, exec and subsystem requests are answered at once; the channel's
    // task decides, and a refusal reaches the client as one stderr line.
    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let request = format!("tcpip-forward {address}:{port}");
        let Some(live) = self.session() else {
            return Ok(false);
        };
        match live.authorized.scope().authorize_listen(address, *port) {
            Ok(decision) => Ok(self
                .remote_forwards
                .open(&live, decision, session.handle())
                .await),
            Err(refusal) => {
                self.refuse(None, &request, &refusal.to_string()).await;
                Ok(false)
            }
        }
    }

    async fn cancel_tcpip_forward(
        &mut self,
        address: &str,
        port: u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(self.remote_forwards.cancel(address, port))
    }

    async fn streamlocal_forward(
        &mut self,
        socket_path: &str,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let request = format!("streamlocal-forward {socket_path}");
        self.refuse(None, &request, "remote forwarding is not allowed")
            .await;
        Ok(false)
    }
}

/// One open session channel, counted while it lives.
struct ChannelCount(Arc<AtomicUsize>);

impl ChannelCount {
    fn new(count: Arc<AtomicUsize>) -> ChannelCount {
        count.fetch_add(1, Ordering::SeqCst);
        ChannelCount(count)
    }
}

impl Drop for ChannelCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A request refusal as a store event.
pub fn refused_request(request: &str, reason: &str) -> Event {
    Event::RequestRefused {
        request: request.to_string(),
        reason: reason.to_string(),
    }
}
