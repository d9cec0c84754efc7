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
use crate::proxy::{self, ClientChannel};

/// Exit status of a refused request, as a shell reports "cannot execute".
pub const REFUSED_EXIT_STATUS: u32 = 126;

pub async fn serve_session_channel(live: Arc<LiveSession>, channel: Channel<Msg>, handle: Handle) {
    let id = channel.id();
    let (mut reader, writer) = channel.split();
    let client = ClientChannel::new(id, writer, handle);
    while let Some(msg) = reader.wait().await {
        match msg {
            ChannelMsg::Exec { command, .. } => {
                proxy::exec::run(&live, client, reader, command).await;
                return;
            }
            ChannelMsg::RequestShell { .. } => {
                let reason = "interactive shells are not enabled on this bastion";
                live.record_refused_request(Some(id), "shell", reason).await;
                client.refuse(reason).await;
                return;
            }
            ChannelMsg::RequestSubsystem { name, .. } => {
                proxy::sftp::run(&live, client, reader, &name).await;
                return;
            }
            ChannelMsg::Close | ChannelMsg::Eof => return,
            // pty-req, env, x11 and agent requests were answered by the
            // handler; data before a request has nowhere to go.
            _ => {}
        }
    }
}
