//! One session channel: collects the granted terminal and environment,
//! waits for its request (exec, shell, subsystem) and hands it to the code
//! that decides and proxies it.
//!
//! Invariant: the channel is read until it closes (an unread russh channel
//! stalls its whole connection); a terminal or variable is kept only when
//! the handler granted it (the same scope and rule decide both), and is
//! committed to the store before it can reach the target; every request
//! ends in either a proxied run or one refusal line with exit status 126.

use std::sync::Arc;

use russh::server::{Handle, Msg};
use russh::{Channel, ChannelId, ChannelMsg};

use super::live::LiveSession;
use super::ServerContext;
use crate::audit::Event;
use crate::grants::{self, service::Requester};
use crate::proxy::terminal::{ChannelSetup, PtyRequest};
use crate::proxy::{self, BeforeRequest, ClientChannel, EarlyInput};

/// Exit status of a refused request, as a shell reports "cannot execute".
pub const REFUSED_EXIT_STATUS: u32 = 126;

pub async fn serve_session_channel(live: Arc<LiveSession>, channel: Channel<Msg>, handle: Handle) {
    let id = channel.id();
    let (mut reader, writer) = channel.split();
    let client = ClientChannel::new(id, writer, handle);
    let mut setup = ChannelSetup::default();
    // A client may send stdin, even EOF, before its request (OpenSSH's
    // multiplexing does): keep it for the command, do not end here.
    let mut early = EarlyInput::default();
    while let Some(msg) = reader.wait().await {
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
            ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                pix_width,
                pix_height,
                terminal_modes,
                ..
            } => {
                // The handler refused (and recorded) a terminal out of scope.
                if live.authorized.scope().authorize_pty().is_err() {
                    setup.note_terminal_refused();
                } else {
                    let event = Event::PtyAllowed {
                        term: term.clone(),
                        cols: col_width,
                        rows: row_height,
                    };
                    if record(&live, id, event).await {
                        setup.set_pty(PtyRequest {
                            term,
                            cols: col_width,
                            rows: row_height,
                            pix_width,
                            pix_height,
                            modes: terminal_modes,
                        });
                    }
                }
            }
            ChannelMsg::SetEnv {
                variable_name,
                variable_value,
                ..
            } => {
                let mut kept = setup.clone();
                if kept.add_env(&variable_name, &variable_value) {
                    let event = Event::EnvAllowed {
                        name: variable_name,
                        value: variable_value,
                    };
                    if record(&live, id, event).await {
                        setup = kept;
                    }
                }
            }
            // Without a terminal there is nothing to resize.
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            } if setup.pty().is_some() => {
                let event = Event::PtyResize {
                    cols: col_width,
                    rows: row_height,
                };
                if record(&live, id, event).await {
                    setup.resize(col_width, row_height, pix_width, pix_height);
                }
            }
            ChannelMsg::Exec { command, .. } => {
                proxy::exec::run(&live, client, reader, command, setup, early).await;
                return;
            }
            // With OpenSSH's meaning, a forced command replaces the shell.
            ChannelMsg::RequestShell { .. }
                if live.authorized.scope().forced_command().is_some() =>
            {
                proxy::exec::run(&live, client, reader, Vec::new(), setup, early).await;
                return;
            }
            ChannelMsg::RequestShell { .. } => {
                proxy::shell::run(&live, client, reader, setup, early).await;
                return;
            }
            ChannelMsg::RequestSubsystem { name, .. } => {
                proxy::sftp::run(&live, client, reader, &name).await;
                return;
            }
            // x11 and agent requests were refused by the handler.
            _ => {}
        }
    }
}

/// Commits a setup event; false (and logged) when the store cannot, so
/// the setting is dropped rather than applied unrecorded.
async fn record(live: &LiveSession, id: ChannelId, event: Event) -> bool {
    match live.record(Some(id), event).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "could not record a channel setting; dropping it");
            false
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
            _ => {}
        }
    }
}
