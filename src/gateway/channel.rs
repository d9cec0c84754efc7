//! One session channel: waits for its request (exec, shell, subsystem) and
//! hands it to the code that decides and proxies it.
//!
//! Invariant: the channel is read until it closes (an unread russh channel
//! stalls its whole connection), and every request ends in either a proxied
//! run or one refusal line with exit status 126.

use std::sync::Arc;

use russh::server::{Handle, Msg};
use russh::{Channel, ChannelMsg};

use super::live::LiveSession;
use super::ServerContext;
use crate::grants::{self, service::Requester};
use crate::proxy::{self, ClientChannel, EarlyInput};

/// Exit status of a refused request, as a shell reports "cannot execute".
pub const REFUSED_EXIT_STATUS: u32 = 126;

pub async fn serve_session_channel(live: Arc<LiveSession>, channel: Channel<Msg>, handle: Handle) {
    let id = channel.id();
    let (mut reader, writer) = channel.split();
    let client = ClientChannel::new(id, writer, handle);
    // A client may send stdin, even EOF, before its request (OpenSSH's
    // multiplexing does): keep it for the command, do not end here.
    let mut early = EarlyInput::default();
    while let Some(msg) = reader.wait().await {
        match msg {
            ChannelMsg::Exec { command, .. } => {
                proxy::exec::run(&live, client, reader, command, early).await;
                return;
            }
            ChannelMsg::RequestShell { .. } => {
                let reason = "interactive shells are not enabled on this bastion";
                live.record_refused_request(Some(id), "shell", reason).await;
                client.refuse(reason).await;
                return;
            }
            ChannelMsg::RequestSubsystem { name, .. } => {
                let request = format!("subsystem {name}");
                let reason = format!("subsystem {name} is not enabled on this bastion");
                live.record_refused_request(Some(id), &request, &reason)
                    .await;
                client.refuse(&reason).await;
                return;
            }
            ChannelMsg::Data { data } => {
                let kept = early.push(data);
                if !kept {
                    client.refuse("too much input before the request").await;
                    return;
                }
            }
            ChannelMsg::Eof => early.closed = true,
            ChannelMsg::Close => return,
            // pty-req, env, x11 and agent requests were answered by the handler.
            _ => {}
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
    while let Some(msg) = reader.wait().await {
        match msg {
            ChannelMsg::Exec { command, .. } => {
                let stdin = grants::service::Stdin { reader, early };
                grants::service::serve(&ctx, &requester, client, stdin, command).await;
                return;
            }
            ChannelMsg::RequestShell { .. } | ChannelMsg::RequestSubsystem { .. } => {
                client
                    .refuse("the grant login only runs: request, status ID, whoami")
                    .await;
                return;
            }
            ChannelMsg::Data { data } => {
                let kept = early.push(data);
                if !kept {
                    client.refuse("too much input before the request").await;
                    return;
                }
            }
            ChannelMsg::Eof => early.closed = true,
            ChannelMsg::Close => return,
            _ => {}
        }
    }
}
