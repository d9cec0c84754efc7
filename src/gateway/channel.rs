//! One session channel: collects the granted terminal and environment,
//! waits for its request (exec, shell, subsystem) and hands it to the code
//! that decides and proxies it.
//!
//! Invariant: the channel is read until it closes (an unread russh channel
//! stalls its whole connection); a terminal, a variable or a resize is
//! kept only as a recorded decision of the session (so committed before it
//! can reach the target; terminal and environment are decided in the
//! handler's callbacks, see prepared.rs); a forced command replaces a shell and a
//! subsystem alike; every request ends in either a proxied run or one
//! refusal line with exit status 126.

use std::sync::Arc;

use russh::server::{Handle, Msg};
use russh::{Channel, ChannelId, ChannelMsg, ChannelReadHalf};

use super::grant_login::{self, Requester};
use super::prepared::Prepared;
use super::ServerContext;
use crate::proxy::{self, BeforeRequest, ClientChannel, EarlyInput, SessionLink};
use crate::session::scope::Replaced;
use crate::session::setup::{ChannelSetup, WindowSize};

pub async fn serve_session_channel(
    link: SessionLink,
    channel: Channel<Msg>,
    handle: Handle,
    prepared: Arc<Prepared>,
) {
    let id = channel.id();
    serve(&link, channel, handle, &prepared).await;
    prepared.forget(id);
}

async fn serve(link: &SessionLink, channel: Channel<Msg>, handle: Handle, prepared: &Prepared) {
    let live = &link.live;
    let id = channel.id();
    let (mut reader, writer) = channel.split();
    let client = ClientChannel::new(id, writer, handle);
    let mut setup = ChannelSetup::default();
    // pty-req and env requests seen whose decisions are not applied yet.
    let mut unsettled = Vec::new();
    // A client may send stdin, even EOF, before its request (OpenSSH's
    // multiplexing does): keep it for the command, do not end here.
    let mut early = EarlyInput::default();
    while let Some(msg) = reader.wait().await {
        settle(&mut unsettled, prepared, id, &mut setup);
        let msg = match early.absorb(msg) {
            BeforeRequest::Other(msg) => msg,
            BeforeRequest::Kept => continue,
            BeforeRequest::Closed => return,
            BeforeRequest::Overflow => {
                client.refuse("too much input before the request").await;
                return;
            }
        };
        match msg {
            // Decided and recorded by the handler (prepared.rs); settled
            // when the next message comes.
            ChannelMsg::RequestPty { .. } => unsettled.push(Unsettled::Pty),
            ChannelMsg::SetEnv { .. } => unsettled.push(Unsettled::Env),
            // Without a terminal there is nothing to resize.
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            } if setup.has_terminal() => {
                let size = WindowSize {
                    cols: col_width,
                    rows: row_height,
                    pix_width,
                    pix_height,
                };
                if let Ok(resize) = live.record_resize(id, size).await {
                    setup.resize(resize);
                }
            }
            ChannelMsg::Exec { command, .. } => {
                proxy::exec::run(link, client, reader, command, setup, early).await;
                return;
            }
            ChannelMsg::RequestShell { .. } => {
                // With OpenSSH's meaning, a forced command replaces the shell.
                match live.authorize_forced(id, Replaced::Shell, "").await {
                    Some(permit) => {
                        proxy::exec::run_permitted(link, client, reader, permit, setup, early).await
                    }
                    None => proxy::shell::run(link, client, reader, setup, early).await,
                }
                return;
            }
            ChannelMsg::RequestSubsystem { name, .. } => {
                // ... and a subsystem: no file transfer a forced command
                // did not name.
                match live.authorize_forced(id, Replaced::Subsystem, &name).await {
                    Some(permit) => {
                        proxy::exec::run_permitted(link, client, reader, permit, setup, early).await
                    }
                    None => proxy::sftp::run(link, client, reader, &name).await,
                }
                return;
            }
            // x11 and agent requests were refused by the handler.
            _ => {}
        }
    }
}

/// A pty-req or env request whose decision the handler is making.
enum Unsettled {
    Pty,
    Env,
}

/// Applies the handler's decisions for the requests seen so far. russh
/// queues a request for the channel before it calls the handler, and
/// handles one message of the connection at a time: once a later message
/// of this channel arrives, the handler has decided (and recorded) every
/// earlier request.
fn settle(
    unsettled: &mut Vec<Unsettled>,
    prepared: &Prepared,
    id: ChannelId,
    setup: &mut ChannelSetup,
) {
    for request in unsettled.drain(..) {
        match request {
            Unsettled::Pty => match prepared.take_pty(id) {
                Some(pty) => setup.set_pty(pty),
                // The handler already wrote the line to the client.
                None => setup.note_terminal_refused(),
            },
            Unsettled::Env => {
                if let Some(env) = prepared.take_env(id) {
                    setup.add_env(env);
                }
            }
        }
    }
}

/// A session channel of the `grant` login: only exec requests (the grant
/// command language) are served.
pub async fn serve_grant_channel(
    ctx: Arc<ServerContext>,
    requester: Arc<Requester>,
    channel: Channel<Msg>,
    handle: Handle,
) {
    let id = channel.id();
    let (mut reader, writer) = channel.split();
    let client = ClientChannel::new(id, writer, handle);
    let mut early = EarlyInput::default();
    match first_request(&mut reader, &mut early, &client).await {
        Some(ChannelMsg::Exec { command, .. }) => {
            let stdin = grant_login::Stdin { reader, early };
            grant_login::serve(&ctx, &requester, client, stdin, command).await;
        }
        Some(_) => {
            client
                .refuse("the grant login only runs: request, status ID, whoami")
                .await;
        }
        None => {}
    }
}

/// Reads a reserved login's channel up to its first request (exec, shell
/// or subsystem), keeping what came before it in `early`; `None` when the
/// channel closed first, or sent too much before it (the client is told).
pub(super) async fn first_request(
    reader: &mut ChannelReadHalf,
    early: &mut EarlyInput,
    client: &ClientChannel,
) -> Option<ChannelMsg> {
    while let Some(msg) = reader.wait().await {
        let msg = match early.absorb(msg) {
            BeforeRequest::Other(msg) => msg,
            BeforeRequest::Kept => continue,
            BeforeRequest::Closed => return None,
            BeforeRequest::Overflow => {
                client.refuse("too much input before the request").await;
                return None;
            }
        };
        if matches!(
            msg,
            ChannelMsg::Exec { .. }
                | ChannelMsg::RequestShell { .. }
                | ChannelMsg::RequestSubsystem { .. }
        ) {
            return Some(msg);
        }
    }
    None
}
