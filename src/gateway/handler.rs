//! The russh server handler: translates protocol callbacks into portcullis
//! decisions and replies. Policy lives elsewhere; this file only routes.
//!
//! Invariant: every channel and global request is answered (success or
//! failure), and everything the bastion does not support is refused and
//! recorded. Immediate answers (pty-req, env) use the same scope the
//! channel task decides and records with, so the two never disagree.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use russh::keys::ssh_key::Certificate;
use russh::keys::Algorithm;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure};

use super::admission::{self, AuthRefusal};
use super::grant_login::Requester;
use super::limits::{Limit, Unauthenticated};
use super::prepared::Prepared;
use super::{channel, connection, reload, review_login, Admitted, ServerContext, SessionSlot};
use crate::metrics::metrics;
use crate::policy::{RESERVED_LOGIN, REVIEW_LOGIN};
use crate::proxy::forward::{self, ForwardRequest};
use crate::proxy::listen::RemoteForwards;
use crate::proxy::SessionLink;
use crate::session::setup::PtyRequest;
use crate::session::RefusedRequest;
use crate::upstream::Link;

pub struct ConnectionHandler {
    ctx: Arc<ServerContext>,
    peer: Option<SocketAddr>,
    slot: SessionSlot,
    /// Whether any certificate reached the handler on this connection.
    saw_certificate: bool,
    /// Counts this connection among the unauthenticated until it is admitted.
    unauthenticated: Option<Unauthenticated>,
    /// Session channels open now (each channel task holds one count).
    channels: Arc<AtomicUsize>,
    /// `ssh -R` listeners; they stop when this handler (the connection) goes.
    remote_forwards: RemoteForwards,
    /// Terminal and environment decisions for the channel tasks.
    prepared: Arc<Prepared>,
}

impl ConnectionHandler {
    pub fn new(
        ctx: Arc<ServerContext>,
        peer: Option<SocketAddr>,
        slot: SessionSlot,
        unauthenticated: Unauthenticated,
    ) -> Self {
        ConnectionHandler {
            ctx,
            peer,
            slot,
            saw_certificate: false,
            unauthenticated: Some(unauthenticated),
            channels: Arc::new(AtomicUsize::new(0)),
            remote_forwards: RemoteForwards::default(),
            prepared: Arc::default(),
        }
    }

    fn session(&self) -> Option<SessionLink> {
        match self.slot.get() {
            Some(Admitted::Target(link)) => Some(link.clone()),
            _ => None,
        }
    }

    /// Records a refused request on an admitted session.
    async fn refuse(&self, channel: Option<ChannelId>, request: RefusedRequest, reason: &str) {
        if let Some(link) = self.session() {
            link.live.refuse_request(channel, request, reason).await;
        }
    }

    async fn refuse_auth(&self, cert: Option<&Certificate>, user: &str, refusal: &AuthRefusal) {
        let addr = self.client_addr();
        admission::record_refusal(&self.ctx.store, cert, user, &addr, refusal).await;
    }

    fn admitted(&mut self, admitted: Admitted) -> Auth {
        if self.slot.set(admitted).is_err() {
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

/// The logins an identity key (not a cert) may use.
#[derive(Clone, Copy)]
enum ReservedLogin {
    Grant,
    Review,
}

impl ReservedLogin {
    fn of(user: &str) -> Option<ReservedLogin> {
        match user {
            RESERVED_LOGIN => Some(ReservedLogin::Grant),
            REVIEW_LOGIN => Some(ReservedLogin::Review),
            _ => None,
        }
    }
}

const STREAMLOCAL: &str = "forwarding to Unix sockets is not supported by this bastion";

impl russh::server::Handler for ConnectionHandler {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::reject())
    }

    // Every key offer passes here first (probe or signed): a SHA-1 RSA
    // signature is refused before anything else looks at the key.
    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        self.slot.note_attempt();
        if *offer.algorithm == (Algorithm::Rsa { hash: None }) {
            self.refuse_auth(None, user, &AuthRefusal::Sha1Signature)
                .await;
            return Ok(Auth::reject());
        }
        Ok(Auth::Accept)
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        self.slot.note_attempt();
        let policy = self.ctx.policy();
        let identity = policy.identity_for_key(key.public_key);
        let reserved = ReservedLogin::of(user);
        let refusal = match (reserved, identity) {
            (Some(login), Some(identity)) => {
                if self.slot.get().is_some() {
                    return Ok(Auth::reject());
                }
                let requester = Arc::new(Requester {
                    identity: identity.clone(),
                    client_addr: self.client_addr(),
                });
                // Whether the identity may review is decided (and a
                // refusal recorded) on the channel, so it gets a line.
                let admitted = match login {
                    ReservedLogin::Grant => Admitted::Grant(requester),
                    ReservedLogin::Review => Admitted::Review(requester),
                };
                return Ok(self.admitted(admitted));
            }
            (Some(_), None) => AuthRefusal::UnknownIdentityKey,
            (None, Some(_)) => AuthRefusal::IdentityKeyOnTarget,
            (None, None) if self.saw_certificate => AuthRefusal::PlainKey,
            (None, None) => AuthRefusal::NoUsableCertificate,
        };
        self.refuse_auth(None, user, &refusal).await;
        Ok(Auth::reject())
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &Certificate,
    ) -> Result<Auth, Self::Error> {
        self.slot.note_attempt();
        self.saw_certificate = true;
        if self.slot.get().is_some() {
            return Ok(Auth::reject());
        }
        // admit() records why when it refuses.
        let Ok(admitted) = admission::admit(&self.ctx, certificate, user, self.peer).await else {
            return Ok(Auth::reject());
        };
        let live = admitted.opened.session;
        self.ctx
            .live
            .register(&live, admitted.opened.revocations_seen);
        reload::catch_up(&self.ctx, &live, admitted.policy_generation);
        let link = SessionLink {
            target: Arc::new(Link::new(live.clone(), self.ctx.upstream.clone())),
            live,
        };
        // Dial at once, so the upstream handshake overlaps the client's
        // channel setup.
        let target = link.target.clone();
        tokio::spawn(async move {
            let _ = target.get().await;
        });
        Ok(self.admitted(Admitted::Target(link)))
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
            self.refuse(None, RefusedRequest::SessionChannel, &reason)
                .await;
            if let Some(peer) = self.peer {
                let identity = self.session().map(|l| l.live.identity().to_string());
                connection::record_limit(
                    &self.ctx,
                    Limit::MaxChannelsPerSession,
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
        match self.slot.get() {
            Some(Admitted::Target(link)) => {
                reply.accept().await;
                let (link, handle) = (link.clone(), session.handle());
                let prepared = self.prepared.clone();
                prepared.open(channel.id());
                tokio::spawn(async move {
                    channel::serve_session_channel(link, channel, handle, prepared).await;
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
            Some(Admitted::Review(requester)) => {
                reply.accept().await;
                let (ctx, requester) = (self.ctx.clone(), requester.clone());
                let handle = session.handle();
                tokio::spawn(async move {
                    review_login::serve_review_channel(ctx, requester, channel, handle).await;
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
        let Some(link) = self.session() else {
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
        tokio::spawn(forward::run(link.live, channel, request, reply));
        Ok(())
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let request = RefusedRequest::StreamLocal(socket_path.to_owned());
        self.refuse(None, request, STREAMLOCAL).await;
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
        self.refuse(
            None,
            RefusedRequest::X11,
            "X11 forwarding is always refused",
        )
        .await;
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    // Decided and recorded here, before the reply: OpenSSH sends pty-req,
    // env and shell back to back and acts on each answer (see prepared.rs).
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        cols: u32,
        rows: u32,
        pix_width: u32,
        pix_height: u32,
        modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(link) = self.session() else {
            return session.channel_failure(channel);
        };
        if !self.prepared.pty_room(channel) {
            return session.channel_failure(channel);
        }
        let request = PtyRequest {
            term: term.to_owned(),
            cols,
            rows,
            pix_width,
            pix_height,
            modes: modes.to_vec(),
        };
        match link.live.authorize_pty(channel, request).await {
            Ok(pty) => {
                self.prepared.push_pty(channel, Some(pty));
                session.channel_success(channel)
            }
            Err(denied) => {
                self.prepared.push_pty(channel, None);
                // The reason goes out before the failure: `ssh -t` gives up
                // on the failure and would never see the shell's answer.
                // One short line, so the unbounded queue is no concern.
                let line = format!("portcullis: refused: terminal: {denied}\r\n");
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
        let reason = "X11 forwarding is always refused";
        self.refuse(Some(channel), RefusedRequest::X11, reason)
            .await;
        session.channel_failure(channel)
    }

    async fn agent_request(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let reason = "agent forwarding is always refused";
        self.refuse(Some(channel), RefusedRequest::AgentForwarding, reason)
            .await;
        Ok(false)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Past the channel's bound (or on a channel that is not open) a
        // variable is refused unrecorded and takes no place in line.
        let Some(link) = self.session().filter(|_| self.prepared.env_room(channel)) else {
            return session.channel_failure(channel);
        };
        let decided = link.live.authorize_env(channel, name, value).await.ok();
        let granted = decided.is_some();
        self.prepared.push_env(channel, decided);
        if granted {
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
        let Some(link) = self.session() else {
            return Ok(false);
        };
        if self.remote_forwards.has(address, *port) {
            let request = RefusedRequest::TcpipForward {
                address: address.to_owned(),
                port: *port,
            };
            let reason = "a listener on this address is open already";
            link.live.refuse_request(None, request, reason).await;
            return Ok(false);
        }
        match link.live.authorize_listen(address, *port).await {
            Ok(permit) => Ok(self
                .remote_forwards
                .open(&link.live, permit, session.handle())
                .await),
            Err(_) => Ok(false),
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
        let request = RefusedRequest::StreamLocalForward(socket_path.to_owned());
        self.refuse(None, request, "remote forwarding is not allowed")
            .await;
        Ok(false)
    }
}

/// One open session channel, counted while it lives.
struct ChannelCount(Arc<AtomicUsize>);

impl ChannelCount {
    fn new(count: Arc<AtomicUsize>) -> ChannelCount {
        count.fetch_add(1, Ordering::SeqCst);
        metrics().live_channels.inc();
        ChannelCount(count)
    }
}

impl Drop for ChannelCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
        metrics().live_channels.dec();
    }
}
